//! Actions and reasons: every packet the ingress program sees ends with
//! exactly one `(action, reason)` pair, counted once in the global stats map.
//! Their names are the Prometheus label values and the keys of
//! `sip-xdp stats --json`, so they must stay stable.

crate::closed_set! {
    /// What happened to a packet.
    pub enum Action {
        Pass = 0 => "pass",
        Drop = 1 => "drop",
        /// Monitor mode: the packet would have been dropped but was passed.
        WouldDrop = 2 => "would_drop",
    }
}

impl Action {
    /// True for the actions that let the packet through to the stack.
    pub const fn passes(self) -> bool {
        !matches!(self, Action::Drop)
    }
}

crate::closed_set! {
    /// Why a packet got its action.
    pub enum Reason {
        /// Not IPv4 or IPv6 (ARP, LLDP, ...).
        NonIp = 0 => "non_ip",
        /// IP, but not UDP or TCP to a SIP port (ICMP, other ports, ...).
        NonSip = 1 => "non_sip",
        /// To a SIP port from a source on the allowlist.
        Allowlisted = 2 => "allowlisted",
        /// To a SIP port from a source not on the allowlist; the action is
        /// the configured `default_action`.
        NotAllowlisted = 3 => "not_allowlisted",
        /// A header was truncated or invalid, so the program could not tell
        /// whether the packet is SIP. Dropped: the stack would discard it
        /// anyway and passing it would let crafted packets around the filter.
        Malformed = 4 => "malformed",
        /// More VLAN tags or IPv6 extension headers than the program walks.
        /// Dropped for the same reason as `Malformed`.
        TooDeep = 5 => "too_deep",
        /// A non-first fragment following its first fragment's verdict.
        Fragment = 6 => "fragment",
        /// A non-first fragment whose first fragment was never seen.
        FragmentUntracked = 7 => "fragment_untracked",
        /// To a SIP port from a source whose rule has class `deny`.
        Denied = 8 => "denied",
        /// From a `limited` source, within its rate profile.
        Limited = 9 => "limited",
        /// From a `limited` source, over its REGISTER budget.
        RegisterRate = 10 => "register_rate",
        /// From a `limited` source, over its budget for all requests.
        RequestRate = 11 => "request_rate",
        /// From a banned source.
        Banned = 12 => "banned",
        /// An INVITE to a prefix on the destination blocklist.
        DestinationBlocked = 13 => "destination_blocked",
        /// An international INVITE outside `allow_only`, or whose country
        /// the program could not read.
        DestinationNotAllowed = 14 => "destination_not_allowed",
        /// From a `limited` source, over its INVITE budget.
        InviteRate = 15 => "invite_rate",
        /// A request whose User-Agent names an attack tool.
        Scanner = 16 => "scanner",
        /// An international INVITE from a source whose international calls
        /// are blocked after a spending anomaly.
        InternationalBlocked = 17 => "international_blocked",
        /// From a source judged by what it sends, messages the filter
        /// cannot read or tell apart (refused rather than let through
        /// unjudged).
        Unreadable = 18 => "unreadable",
        /// From a source judged by what it sends, a TCP segment that is
        /// not the next one the filter expects on its connection (a gap
        /// before it, or bytes the server has not acknowledged sent
        /// again): dropped, so the sender retransmits in order and the
        /// filter's reading of the stream stays the server's.
        OutOfOrder = 19 => "out_of_order",
    }
}

/// Slots reserved per action in the stats map, so reasons can be added
/// without changing the map layout.
pub const REASON_SLOTS: usize = 24;
/// Entries in the global stats map.
pub const STATS_ENTRIES: u32 = (Action::ALL.len() * REASON_SLOTS) as u32;
const _: () = assert!(Reason::ALL.len() <= REASON_SLOTS, "more reasons than stats slots per action");

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
        for &a in Action::ALL {
            for &r in Reason::ALL {
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
        for &a in Action::ALL {
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
