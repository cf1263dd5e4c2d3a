//! Bans of single sources (an IPv4 address, an IPv6 prefix), as the ban
//! table holds them.

use crate::pod::impl_pod;

crate::closed_set! {
    /// Why a source was banned.
    pub enum BanReason {
        /// Sustained excess over its rate profile.
        Rate = 1 => "rate_excess",
        /// Too many 401/403/407 sent to it within the window.
        Auth = 2 => "auth_failures",
        /// `sip-xdp ban add`.
        Manual = 3 => "manual",
        /// Its User-Agent named an attack tool.
        Scanner = 4 => "scanner",
        /// Challenged again and again without ever answering with
        /// credentials (extension enumeration, REGISTER floods).
        Challenges = 5 => "unanswered_challenges",
        /// One of the networks that keep attacking (`[ban] escalate_after`
        /// banned sources inside it).
        Escalated = 6 => "escalated",
        /// Banned through the control API without a more precise reason.
        Api = 7 => "api",
        /// The SIP server saw passwords guessed over TLS, which the kernel
        /// cannot read, and asked through the API.
        TlsAuth = 8 => "tls_auth_failures",
        /// A CrowdSec decision (`[crowdsec]`).
        CrowdSec = 9 => "crowdsec",
        /// A fail2ban jail, through its sip-xdp action.
        Fail2ban = 10 => "fail2ban",
    }
}

crate::closed_set! {
    /// The state of a ban entry: dropped while `Active` and unexpired; the
    /// entry stays after expiry as the source's history, so a repeat
    /// offender's ban doubles.
    pub enum BanState {
        Active = 1 => "active",
        Expired = 2 => "expired",
        /// Lifted with `sip-xdp ban del`; the controller reports and
        /// removes it.
        Lifted = 3 => "lifted",
    }
}

/// A single address's ban.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BanEntry {
    /// CLOCK_BOOTTIME ns at which the ban ends.
    pub expires_ns: u64,
    pub banned_at_ns: u64,
    /// Packets dropped since the ban began.
    pub dropped: u64,
    /// Bans of this source so far, this one included.
    pub offenses: u32,
    /// A [`BanReason`].
    pub reason: u8,
    /// A [`BanState`].
    pub state: u8,
    /// Set once the controller has reported the ban (kernel bans are
    /// reported through the ring buffer at once; CLI bans by the sweep).
    pub announced: u8,
    pub _pad: u8,
}

impl_pod!(BanEntry);

impl BanEntry {
    #[inline(always)]
    pub fn in_force(&self, now_ns: u64) -> bool {
        self.state == BanState::Active as u8 && self.expires_ns > now_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn layouts_have_no_implicit_padding() {
        assert_eq!(size_of::<BanEntry>(), 32);
    }
}
