//! Authentication accounting the way SIP really flows. Digest
//! authentication starts with a challenge: a 401/407 to a request that
//! carried no credentials is its normal first step, not a failure. A
//! failure is a 401, 403 or 407 to a request that did carry credentials;
//! a success (a 2xx, or an 18x to an INVITE) to such a request clears the
//! source's strikes. A source that is challenged again and again and never
//! answers with credentials (extension enumeration, REGISTER floods) is
//! counted apart, against a higher threshold.
//!
//! The ingress program records each request it admits from a source that
//! can be banned ([`PendingKey`] → [`PendingRequest`]); the egress program
//! finds the request a response answers by the Call-ID and CSeq every
//! response repeats, and applies [`judge_response`] and [`account`].

use crate::{
    bans::BanReason,
    kernel_config::FilterConfig,
    limits::count_in_window,
    message::{MessageReader, METHOD_INVITE},
    pod::impl_pod,
};

/// A request waiting for its final response.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PendingKey {
    /// The address the request came from (where the response goes).
    pub peer: [u8; 16],
    /// Hashes of the Call-ID and of the CSeq method.
    pub call_id: u64,
    pub cseq_method: u64,
    pub cseq: u32,
    pub _pad: u32,
}

impl PendingKey {
    /// The key of the message `r` read, to or from `peer`.
    #[inline(always)]
    pub fn of(peer: &[u8; 16], r: &MessageReader) -> PendingKey {
        PendingKey { peer: *peer, call_id: r.call_id, cseq_method: r.cseq_method, cseq: r.cseq, _pad: 0 }
    }
}

/// What the response's accounting needs to know about its request.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PendingRequest {
    /// CLOCK_BOOTTIME ns it was seen.
    pub at_ns: u64,
    /// It carried `Authorization` or `Proxy-Authorization`.
    pub credentials: u8,
    pub _pad: [u8; 7],
}

/// A key and its request side by side: per-CPU room to build them in
/// (the kernel's stack is too small to spare).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PendingEntry {
    pub key: PendingKey,
    pub request: PendingRequest,
}

/// The authentication state of one source (an IPv4 address, an IPv6
/// prefix).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct AuthState {
    /// Credentials rejected within the window.
    pub failures: u32,
    /// Challenges to requests without credentials since the source last
    /// answered one with credentials, within the window.
    pub challenges: u32,
    pub failures_since_ns: u64,
    pub challenges_since_ns: u64,
}

impl_pod!(PendingKey, PendingRequest, AuthState);

crate::closed_set! {
    /// What a response says about its source's authentication.
    pub enum AuthOutcome {
        /// Nothing to count: other codes, provisional responses, and 403s
        /// to requests without credentials (a policy refusal).
        Nothing = 0 => "none",
        /// A 401/407 to a request without credentials (or to a request
        /// the filter did not see).
        Challenge = 1 => "challenge",
        /// A 401, 403 or 407 to a request with credentials.
        Failure = 2 => "failure",
        /// A 2xx, or an 18x to an INVITE, to a request with credentials.
        Success = 3 => "success",
    }
}

/// The outcome of a response with status `code` whose CSeq method hashes
/// to `cseq_method`, answering `request` (None: no request of this Call-ID
/// and CSeq was seen, or it was forgotten).
#[inline(always)]
pub fn judge_response(code: u16, cseq_method: u64, request: Option<&PendingRequest>) -> AuthOutcome {
    let challenge = code == 401 || code == 407;
    let credentials = match request {
        Some(r) => r.credentials != 0,
        None => return if challenge { AuthOutcome::Challenge } else { AuthOutcome::Nothing },
    };
    if !credentials {
        return if challenge { AuthOutcome::Challenge } else { AuthOutcome::Nothing };
    }
    if challenge || code == 403 {
        AuthOutcome::Failure
    } else if (200..300).contains(&code) || (180..190).contains(&code) && cseq_method == METHOD_INVITE {
        AuthOutcome::Success
    } else {
        AuthOutcome::Nothing
    }
}

/// Counts an outcome in the source's state; the ban reason when a
/// threshold is crossed within the window.
#[inline(always)]
pub fn account(state: &mut AuthState, outcome: AuthOutcome, cfg: &FilterConfig, now_ns: u64) -> Option<BanReason> {
    match outcome {
        AuthOutcome::Failure => {
            count_in_window(&mut state.failures, &mut state.failures_since_ns, cfg.auth_window_ns, cfg.auth_max, now_ns)
                .then_some(BanReason::Auth)
        }
        AuthOutcome::Challenge => count_in_window(
            &mut state.challenges,
            &mut state.challenges_since_ns,
            cfg.auth_window_ns,
            cfg.auth_challenges,
            now_ns,
        )
        .then_some(BanReason::Challenges),
        AuthOutcome::Success => {
            *state = AuthState::default();
            None
        }
        AuthOutcome::Nothing => None,
    }
}

/// The source sent a request with credentials: it answers challenges, so
/// those it got so far were not enumeration.
#[inline(always)]
pub fn answered(state: &mut AuthState) {
    state.challenges = 0;
}

/// Whether a request should be remembered for its response: ACK has none.
#[inline(always)]
pub fn awaits_response(r: &MessageReader) -> bool {
    r.call_id != 0 && r.cseq_method != 0 && r.cseq_method != crate::message::METHOD_ACK
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{kernel_config::NS_PER_SEC, message::fnv};

    const S: u64 = NS_PER_SEC;
    const REGISTER: u64 = fnv(b"REGISTER");
    const WITH: PendingRequest = PendingRequest { at_ns: 0, credentials: 1, _pad: [0; 7] };
    const WITHOUT: PendingRequest = PendingRequest { at_ns: 0, credentials: 0, _pad: [0; 7] };

    fn cfg() -> FilterConfig {
        FilterConfig { auth_max: 3, auth_challenges: 5, auth_window_ns: 60 * S, ..FilterConfig::EMPTY }
    }

    #[test]
    fn a_challenge_is_not_a_failure() {
        for code in [401, 407] {
            assert_eq!(judge_response(code, REGISTER, Some(&WITHOUT)), AuthOutcome::Challenge);
            assert_eq!(judge_response(code, REGISTER, Some(&WITH)), AuthOutcome::Failure);
            assert_eq!(judge_response(code, REGISTER, None), AuthOutcome::Challenge, "unlinked");
        }
        // A 403 refuses credentials only when there were some.
        assert_eq!(judge_response(403, METHOD_INVITE, Some(&WITHOUT)), AuthOutcome::Nothing);
        assert_eq!(judge_response(403, METHOD_INVITE, Some(&WITH)), AuthOutcome::Failure);
        assert_eq!(judge_response(403, METHOD_INVITE, None), AuthOutcome::Nothing);
    }

    #[test]
    fn success_is_any_2xx_or_an_18x_to_an_invite_with_credentials() {
        for code in [200, 202, 299] {
            assert_eq!(judge_response(code, fnv(b"SUBSCRIBE"), Some(&WITH)), AuthOutcome::Success);
            assert_eq!(judge_response(code, REGISTER, Some(&WITHOUT)), AuthOutcome::Nothing);
        }
        assert_eq!(judge_response(180, METHOD_INVITE, Some(&WITH)), AuthOutcome::Success);
        assert_eq!(judge_response(183, METHOD_INVITE, Some(&WITH)), AuthOutcome::Success);
        assert_eq!(judge_response(183, fnv(b"MESSAGE"), Some(&WITH)), AuthOutcome::Nothing);
        assert_eq!(judge_response(100, METHOD_INVITE, Some(&WITH)), AuthOutcome::Nothing);
        assert_eq!(judge_response(486, METHOD_INVITE, Some(&WITH)), AuthOutcome::Nothing);
    }

    #[test]
    fn failures_ban_at_max_and_a_success_clears_them() {
        let (c, mut s) = (cfg(), AuthState::default());
        assert_eq!(account(&mut s, AuthOutcome::Failure, &c, 10 * S), None);
        assert_eq!(account(&mut s, AuthOutcome::Failure, &c, 11 * S), None);
        assert_eq!(account(&mut s, AuthOutcome::Success, &c, 12 * S), None, "a typo, then the right password");
        assert_eq!(account(&mut s, AuthOutcome::Failure, &c, 13 * S), None);
        assert_eq!(account(&mut s, AuthOutcome::Failure, &c, 14 * S), None);
        assert_eq!(account(&mut s, AuthOutcome::Failure, &c, 15 * S), Some(BanReason::Auth));
        // Spread over more than the window, they never add up.
        let mut slow = AuthState::default();
        for i in 0..20 {
            assert_eq!(account(&mut slow, AuthOutcome::Failure, &c, i * 40 * S), None, "failure {i}");
        }
    }

    #[test]
    fn a_phone_answering_every_challenge_never_reaches_the_challenge_threshold() {
        let (c, mut phone, mut enumerator) = (cfg(), AuthState::default(), AuthState::default());
        for i in 0..100 {
            let now = 10 * S + i * S / 10;
            // INVITE -> 407, INVITE with credentials -> 200.
            assert_eq!(account(&mut phone, AuthOutcome::Challenge, &c, now), None, "call {i}");
            answered(&mut phone);
            assert_eq!(account(&mut phone, AuthOutcome::Success, &c, now), None);
        }
        let bans: usize =
            (0..5).filter(|i| account(&mut enumerator, AuthOutcome::Challenge, &c, (20 + i) * S).is_some()).count();
        assert_eq!(bans, 1, "the fifth challenge never answered bans");
        assert_eq!(enumerator.challenges, 0, "the count restarts after a ban");
    }
}
