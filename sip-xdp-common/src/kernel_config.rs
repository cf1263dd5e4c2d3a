//! The filter settings the fast path reads on every packet, as the
//! controller writes them from the config file.

use crate::{dialled::IntlPrefixes, pod::impl_pod, rules::RuleClass};

pub const NS_PER_SEC: u64 = 1_000_000_000;
/// Most SIP ports the filter can watch.
pub const MAX_PORTS: usize = 16;
/// Most rate profiles.
pub const MAX_PROFILES: u32 = 16;

crate::closed_set! {
    /// `[filter] mode`.
    pub enum Mode {
        Enforce = 0 => "enforce",
        /// Count would-be drops and bans; drop and ban nothing.
        Monitor = 1 => "monitor",
    }
}

crate::closed_set! {
    /// `[filter] default_action`: what happens to sources no rule covers
    /// under the `deny` default class.
    pub enum DefaultAction {
        Drop = 0 => "drop",
        /// Count them as not allowlisted, and let them through.
        Pass = 1 => "pass",
    }
}

/// The filter settings, a single entry at index 0 of the config map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FilterConfig {
    /// SIP ports in host byte order; only the first `port_count` count.
    pub ports: [u16; MAX_PORTS],
    pub port_count: u8,
    /// A [`DefaultAction`], for sources that match no rule when
    /// `default_class` is [`RuleClass::Deny`].
    pub default_action: u8,
    /// A [`Mode`].
    pub mode: u8,
    /// Class of sources that match no rule: [`RuleClass::Deny`] or
    /// [`RuleClass::Limited`].
    pub default_class: u8,
    /// Profile of the default class when it is limited.
    pub default_profile: u8,
    /// IPv6 sources are accounted per prefix of this many bits (48-128).
    pub ipv6_prefix: u8,
    /// 1: some prefix is banned (the prefix-ban tries are worth asking).
    pub prefix_bans: u8,
    pub _pad: u8,
    /// Packets over budget within `ban_window_ns` that ban a source.
    pub ban_after_excess: u32,
    /// Credentials rejected (401/403/407 to a request with credentials)
    /// within `auth_window_ns` that ban.
    pub auth_max: u32,
    /// Challenges never answered with credentials within `auth_window_ns`
    /// that ban.
    pub auth_challenges: u32,
    pub _pad1: u32,
    pub ban_window_ns: u64,
    /// First ban's length; doubles for each repeat, up to the maximum.
    pub ban_duration_ns: u64,
    pub ban_max_duration_ns: u64,
    pub auth_window_ns: u64,
    /// International dialling prefixes ("00", "011").
    pub intl: IntlPrefixes,
    /// Classes the destination policy applies to: bit 0 trusted, bit
    /// 1 + p the profile p.
    pub dest_applies: u32,
    /// 1: international numbers must match an allow rule.
    pub dest_allow_only: u8,
    pub _pad2: u8,
    /// Bit i: `ports[i]` carries TLS, opaque to the filter: its sources are
    /// judged by their rules and bans, their messages are not read.
    pub tls_ports: u16,
    pub _pad3: [u8; 4],
    /// Until this CLOCK_BOOTTIME ns, a TCP connection the filter did not
    /// see open (older than its table) is taken up at its next segment;
    /// afterwards such segments from sources judged by what they send are
    /// refused (their stream's position is unknown).
    pub stream_adopt_until_ns: u64,
}

impl_pod!(FilterConfig);

/// The `dest_applies` bit of the trusted class, and of a profile.
pub const DEST_APPLIES_TRUSTED: u32 = 1;
#[inline(always)]
pub const fn dest_applies_profile(profile: u8) -> u32 {
    1 << (1 + profile as u32)
}

impl FilterConfig {
    /// What the kernel reads before the controller writes a config: no
    /// port is watched, so everything passes. The controller's defaults
    /// live with the config file's sections, not here.
    pub const EMPTY: FilterConfig = FilterConfig {
        ports: [0; MAX_PORTS],
        port_count: 0,
        default_action: DefaultAction::Drop as u8,
        mode: Mode::Enforce as u8,
        default_class: RuleClass::Deny as u8,
        default_profile: 0,
        ipv6_prefix: 128,
        prefix_bans: 0,
        _pad: 0,
        ban_after_excess: 0,
        auth_max: 0,
        auth_challenges: 0,
        _pad1: 0,
        ban_window_ns: 0,
        ban_duration_ns: 0,
        ban_max_duration_ns: 0,
        auth_window_ns: 0,
        intl: IntlPrefixes { digits: [[0; 4]; 4], lens: [0; 4] },
        dest_applies: 0,
        dest_allow_only: 0,
        _pad2: 0,
        tls_ports: 0,
        _pad3: [0; 4],
        stream_adopt_until_ns: 0,
    };

    /// Is `port` (host byte order) one of the SIP ports?
    #[inline(always)]
    pub fn is_sip_port(&self, port: u16) -> bool {
        let mut i = 0;
        while i < MAX_PORTS {
            if i >= self.port_count as usize {
                return false;
            }
            if self.ports[i] == port {
                return true;
            }
            i += 1;
        }
        false
    }

    /// Is `port` one of the SIP ports, and does it carry TLS?
    #[inline(always)]
    pub fn is_tls_port(&self, port: u16) -> bool {
        let mut i = 0;
        while i < MAX_PORTS {
            if i >= self.port_count as usize {
                return false;
            }
            if self.ports[i] == port {
                return self.tls_ports & (1 << i) != 0;
            }
            i += 1;
        }
        false
    }

    #[inline(always)]
    pub fn monitor(&self) -> bool {
        self.mode == Mode::Monitor as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn layout_has_no_implicit_padding() {
        assert_eq!(size_of::<FilterConfig>(), 2 * MAX_PORTS + 8 + 16 + 32 + 32 + 8);
    }

    #[test]
    fn port_set_honours_count() {
        let mut c = FilterConfig::EMPTY;
        assert!(!c.is_sip_port(0), "an empty config watches nothing, not port 0");
        c.ports[0] = 5060;
        c.ports[1] = 5061;
        c.port_count = 1;
        assert!(c.is_sip_port(5060));
        assert!(!c.is_sip_port(5061));
        c.port_count = 2;
        assert!(c.is_sip_port(5061));
        c.tls_ports = 0b10;
        assert!(c.is_tls_port(5061) && !c.is_tls_port(5060));
        c.ports = [7000; MAX_PORTS];
        c.ports[MAX_PORTS - 1] = 9999;
        c.port_count = MAX_PORTS as u8;
        assert!(c.is_sip_port(9999));
        assert!(!c.is_sip_port(5060));
    }
}
