//! Bans escalate to the network that keeps attacking: when `[ban]
//! escalate_after` distinct sources inside one IPv4 /24 or one IPv6 /48
//! have been banned within `escalate_window_secs`, the network itself is
//! banned (reason `escalated`). One address, however busy (an office
//! behind one NAT), is one source and never escalates.
//!
//! The controller sees every ban (kernel bans through the ring buffer, the
//! CLI's through the sweep) and decides here; the ban itself goes through
//! `bans::add`, which refuses a network that overlaps a trusted rule.

use std::{
    collections::HashMap,
    net::IpAddr,
    time::{Duration, Instant},
};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::{
    config::BanConfig,
    events::{Event, Kind},
};

/// The network a banned source belongs to, for escalation.
pub const V4_NETWORK: u8 = 24;
pub const V6_NETWORK: u8 = 48;

/// Recent bans, by network.
#[derive(Debug, Default)]
pub struct Escalation {
    /// Per network: each distinct source banned in it, when last.
    networks: HashMap<IpNet, HashMap<IpNet, Instant>>,
}

impl Escalation {
    /// Counts a ban event; the network to ban if this one crosses the
    /// threshold. Prefix bans (and escalations) are not sources.
    pub fn observe(&mut self, event: &Event, cfg: &BanConfig, now: Instant) -> Option<IpNet> {
        if cfg.escalate_after == 0 || !matches!(event.kind, Kind::Ban | Kind::WouldBan) {
            return None;
        }
        let source = single_source(&event.source)?;
        let network = network_of(&source);
        let window = Duration::from_secs(cfg.escalate_window_secs);
        let seen = self.networks.entry(network).or_default();
        seen.retain(|_, at| now.duration_since(*at) <= window);
        seen.insert(source, now);
        if seen.len() < cfg.escalate_after as usize {
            return None;
        }
        self.networks.remove(&network);
        Some(network)
    }

    /// Forgets networks with no ban inside the window (bounded memory under
    /// a long attack from many networks).
    pub fn prune(&mut self, cfg: &BanConfig, now: Instant) {
        let window = Duration::from_secs(cfg.escalate_window_secs);
        self.networks.retain(|_, seen| {
            seen.retain(|_, at| now.duration_since(*at) <= window);
            !seen.is_empty()
        });
    }
}

/// A source as events name it: an address, or an IPv6 prefix of at least
/// /49 (how IPv6 sources are keyed). None for wider prefixes.
fn single_source(text: &str) -> Option<IpNet> {
    if let Ok(addr) = text.parse::<IpAddr>() {
        return Some(IpNet::from(addr));
    }
    match text.parse::<IpNet>().ok()? {
        net @ IpNet::V6(n) if n.prefix_len() > V6_NETWORK => Some(net),
        _ => None,
    }
}

fn network_of(source: &IpNet) -> IpNet {
    match source {
        IpNet::V4(n) => IpNet::V4(Ipv4Net::new(n.addr(), V4_NETWORK).expect("valid length").trunc()),
        IpNet::V6(n) => IpNet::V6(Ipv6Net::new(n.addr(), V6_NETWORK).expect("valid length").trunc()),
    }
}

/// The event of an escalation that monitor mode only reports.
pub fn would_ban(network: IpNet) -> Event {
    Event::new(Kind::WouldBan, sip_xdp_common::bans::BanReason::Escalated.name(), network.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(after: u32) -> BanConfig {
        BanConfig {
            after_excess: 50,
            window_secs: 10,
            duration_secs: 600,
            max_duration_secs: 86_400,
            escalate_after: after,
            escalate_window_secs: 60,
        }
    }

    fn ban(source: &str) -> Event {
        Event::new(Kind::Ban, "auth_failures", source.to_string())
    }

    #[test]
    fn distinct_sources_of_one_network_escalate() {
        let (c, t0) = (cfg(3), Instant::now());
        let mut e = Escalation::default();
        assert_eq!(e.observe(&ban("198.18.7.1"), &c, t0), None);
        assert_eq!(e.observe(&ban("198.18.8.1"), &c, t0), None, "another /24");
        assert_eq!(e.observe(&ban("198.18.7.2"), &c, t0), None);
        assert_eq!(e.observe(&ban("198.18.7.9"), &c, t0), Some("198.18.7.0/24".parse().unwrap()));
        // Counting starts over for that network.
        assert_eq!(e.observe(&ban("198.18.7.10"), &c, t0), None);
    }

    #[test]
    fn one_busy_source_banned_again_and_again_never_escalates() {
        let (c, t0) = (cfg(3), Instant::now());
        let mut e = Escalation::default();
        for i in 0..20 {
            assert_eq!(e.observe(&ban("198.18.7.1"), &c, t0 + Duration::from_secs(i)), None);
        }
    }

    #[test]
    fn ipv6_prefixes_escalate_to_their_48_and_only_within_the_window() {
        let (c, t0) = (cfg(2), Instant::now());
        let mut e = Escalation::default();
        assert_eq!(e.observe(&ban("2001:db8:1:1::/64"), &c, t0), None);
        assert_eq!(
            e.observe(&ban("2001:db8:1:2::/64"), &c, t0 + Duration::from_secs(61)),
            None,
            "the first is too old"
        );
        assert_eq!(
            e.observe(&ban("2001:db8:1:3::/64"), &c, t0 + Duration::from_secs(70)),
            Some("2001:db8:1::/48".parse().unwrap())
        );
    }

    #[test]
    fn prefix_bans_escalations_and_expiries_are_not_sources() {
        let (c, t0) = (cfg(1), Instant::now());
        let mut e = Escalation::default();
        assert_eq!(e.observe(&ban("198.18.7.0/24"), &c, t0), None);
        assert_eq!(e.observe(&ban("2001:db8::/32"), &c, t0), None);
        assert_eq!(e.observe(&Event::new(Kind::Expire, "auth_failures", "198.18.7.1".into()), &c, t0), None);
        assert_eq!(e.observe(&ban("198.18.7.1"), &cfg(0), t0), None, "switched off");
        let would = Event::new(Kind::WouldBan, "auth_failures", "198.18.7.1".into());
        assert_eq!(e.observe(&would, &c, t0), Some("198.18.7.0/24".parse().unwrap()), "monitor mode too");
    }
}
