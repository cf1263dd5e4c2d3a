//! Actions and reasons: every packet the ingress program sees ends with
//! exactly one `(action, reason)` pair, counted once in the global stats map.
//! The names returned by `name()` are the Prometheus label values and the
//! keys of `sip-xdp stats --json`, so they must stay stable.

/// What happened to a packet.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Pass = 0,
    Drop = 1,
    /// Monitor mode: the packet would have been dropped but was passed.
    WouldDrop = 2,
}

impl Action {
    pub const ALL: [Action; 3] = [Action::Pass, Action::Drop, Action::WouldDrop];

    pub const fn name(self) -> &'static str {
        match self {
            Action::Pass => "pass",
            Action::Drop => "drop",
            Action::WouldDrop => "would_drop",
        }
    }

    pub const fn from_u8(v: u8) -> Option<Action> {
        match v {
            0 => Some(Action::Pass),
            1 => Some(Action::Drop),
            2 => Some(Action::WouldDrop),
            _ => None,
        }
    }

    /// True for the actions that let the packet through to the stack.
    pub const fn passes(self) -> bool {
        !matches!(self, Action::Drop)
    }
}

/// Why a packet got its action.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Not IPv4 or IPv6 (ARP, LLDP, ...).
    NonIp = 0,
    /// IP, but not UDP or TCP to a SIP port (ICMP, other ports, ...).
    NonSip = 1,
    /// To a SIP port from a source on the allowlist.
    Allowlisted = 2,
    /// To a SIP port from a source not on the allowlist; the action is the
    /// configured `default_action`.
    NotAllowlisted = 3,
    /// A header was truncated or invalid, so the program could not tell
    /// whether the packet is SIP. Dropped: the stack would discard it anyway
    /// and passing it would let crafted packets around the filter.
    Malformed = 4,
    /// More VLAN tags or IPv6 extension headers than the program walks.
    /// Dropped for the same reason as `Malformed`.
    TooDeep = 5,
    /// A non-first fragment following its first fragment's verdict.
    Fragment = 6,
    /// A non-first fragment whose first fragment was never seen.
    FragmentUntracked = 7,
    /// To a SIP port from a source whose rule has class `deny`.
    Denied = 8,
    /// From a `limited` source, within its rate profile.
    Limited = 9,
    /// From a `limited` source, over its REGISTER budget.
    RegisterRate = 10,
    /// From a `limited` source, over its budget for all requests.
    RequestRate = 11,
    /// From a banned source.
    Banned = 12,
    /// An INVITE to a prefix on the destination blocklist.
    DestinationBlocked = 13,
    /// An international INVITE outside `allow_only`, or whose country the
    /// program could not read.
    DestinationNotAllowed = 14,
    /// From a `limited` source, over its INVITE budget.
    InviteRate = 15,
    /// A request whose User-Agent names an attack tool.
    Scanner = 16,
    /// An international INVITE from a source whose international calls are
    /// blocked after a spending anomaly.
    InternationalBlocked = 17,
}

/// Slots reserved per action in the stats map, so reasons can be added
/// without changing the map layout.
pub const REASON_SLOTS: usize = 24;
/// Entries in the global stats map.
pub const STATS_ENTRIES: u32 = (Action::ALL.len() * REASON_SLOTS) as u32;

impl Reason {
    pub const ALL: [Reason; 18] = [
        Reason::NonIp,
        Reason::NonSip,
        Reason::Allowlisted,
        Reason::NotAllowlisted,
        Reason::Malformed,
        Reason::TooDeep,
        Reason::Fragment,
        Reason::FragmentUntracked,
        Reason::Denied,
        Reason::Limited,
        Reason::RegisterRate,
        Reason::RequestRate,
        Reason::Banned,
        Reason::DestinationBlocked,
        Reason::DestinationNotAllowed,
        Reason::InviteRate,
        Reason::Scanner,
        Reason::InternationalBlocked,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Reason::NonIp => "non_ip",
            Reason::NonSip => "non_sip",
            Reason::Allowlisted => "allowlisted",
            Reason::NotAllowlisted => "not_allowlisted",
            Reason::Malformed => "malformed",
            Reason::TooDeep => "too_deep",
            Reason::Fragment => "fragment",
            Reason::FragmentUntracked => "fragment_untracked",
            Reason::Denied => "denied",
            Reason::Limited => "limited",
            Reason::RegisterRate => "register_rate",
            Reason::RequestRate => "request_rate",
            Reason::Banned => "banned",
            Reason::DestinationBlocked => "destination_blocked",
            Reason::DestinationNotAllowed => "destination_not_allowed",
            Reason::InviteRate => "invite_rate",
            Reason::Scanner => "scanner",
            Reason::InternationalBlocked => "international_blocked",
        }
    }

    pub const fn from_u8(v: u8) -> Option<Reason> {
        if (v as usize) < Reason::ALL.len() {
            Some(Reason::ALL[v as usize])
        } else {
            None
        }
    }
}

/// Index of `(action, reason)` in the global stats map.
#[inline(always)]
pub const fn stats_index(action: Action, reason: Reason) -> u32 {
    (action as u32) * (REASON_SLOTS as u32) + reason as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_indexes_are_distinct_and_in_range() {
        let mut seen = [false; STATS_ENTRIES as usize];
        for a in Action::ALL {
            for r in Reason::ALL {
                let i = stats_index(a, r) as usize;
                assert!(i < STATS_ENTRIES as usize);
                assert!(!seen[i], "{a:?}/{r:?} collides");
                seen[i] = true;
            }
        }
        assert!(Reason::ALL.len() <= REASON_SLOTS);
    }

    #[test]
    fn enums_round_trip_through_u8() {
        for a in Action::ALL {
            assert_eq!(Action::from_u8(a as u8), Some(a));
        }
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "Reason::ALL must be in discriminant order");
            assert_eq!(Reason::from_u8(*r as u8), Some(*r));
        }
        assert_eq!(Reason::from_u8(200), None);
        assert_eq!(Action::from_u8(3), None);
    }
}
