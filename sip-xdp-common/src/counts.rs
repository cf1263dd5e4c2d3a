//! Slots of the per-CPU counters map: SIP requests by method (ingress),
//! responses by code (egress), events the ring buffer had no room for, and
//! scanner-fingerprint hits. Each slot's name is its metric label.

use crate::sip::SipKind;

crate::closed_set! {
    /// Requests arriving at the SIP ports, by method.
    pub enum MethodCount {
        Register = 0 => "REGISTER",
        Invite = 1 => "INVITE",
        Options = 2 => "OPTIONS",
        Other = 3 => "other",
    }
}

crate::closed_set! {
    /// Responses the protected server sends, by code.
    pub enum ResponseCount {
        Ok = 4 => "200",
        Unauthorized = 5 => "401",
        Forbidden = 6 => "403",
        ProxyAuthRequired = 7 => "407",
        Other = 8 => "other",
    }
}

/// Events the ring buffer had no room for.
pub const COUNT_EVENTS_LOST: u32 = 9;
/// From here, responses by what they said of their source's
/// authentication (`COUNT_AUTH_BASE + AuthOutcome`).
pub const COUNT_AUTH_BASE: u32 = 10;
/// From here, scanner fingerprint hits by fingerprint index.
pub const COUNT_FINGERPRINT_BASE: u32 = 16;
/// Slots in the map.
pub const COUNTS_ENTRIES: u32 = 32;

impl MethodCount {
    /// The slot counting a request of this kind; none for the rest.
    #[inline(always)]
    pub const fn of(kind: SipKind) -> Option<MethodCount> {
        match kind {
            SipKind::Register => Some(MethodCount::Register),
            SipKind::Invite => Some(MethodCount::Invite),
            SipKind::Options => Some(MethodCount::Options),
            SipKind::OtherRequest => Some(MethodCount::Other),
            SipKind::NotSip | SipKind::Response => None,
        }
    }
}

impl ResponseCount {
    /// The slot counting a response code.
    #[inline(always)]
    pub const fn of(code: u16) -> ResponseCount {
        match code {
            200 => ResponseCount::Ok,
            401 => ResponseCount::Unauthorized,
            403 => ResponseCount::Forbidden,
            407 => ResponseCount::ProxyAuthRequired,
            _ => ResponseCount::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_distinct_and_below_the_fingerprints() {
        let mut seen = [false; COUNTS_ENTRIES as usize];
        let slots = MethodCount::ALL.iter().map(|m| *m as u32).chain(ResponseCount::ALL.iter().map(|r| *r as u32));
        let auth = crate::accounting::AuthOutcome::ALL.iter().map(|o| COUNT_AUTH_BASE + *o as u32);
        for slot in slots.chain([COUNT_EVENTS_LOST]).chain(auth) {
            assert!(slot < COUNT_FINGERPRINT_BASE && !seen[slot as usize], "slot {slot}");
            seen[slot as usize] = true;
        }
        assert!(COUNT_FINGERPRINT_BASE + crate::fingerprint::MAX_FINGERPRINTS as u32 <= COUNTS_ENTRIES);
    }
}
