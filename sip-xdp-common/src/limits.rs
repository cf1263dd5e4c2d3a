//! Rate limits and bans as pure functions over the per-source state, so the
//! kernel applies exactly what the host tests check.
//!
//! Token buckets count nano-tokens: one request costs [`NS_PER_SEC`], and a
//! bucket refills `rate` nano-tokens per nanosecond, so the arithmetic is
//! integer-only and exact.

use crate::{
    bans::{BanEntry, BanReason, BanState},
    kernel_config::{FilterConfig, NS_PER_SEC},
    map_types::{RateProfile, SourceStats},
    sip::SipKind,
};

/// Longest refill interval considered: past it a bucket is full anyway
/// (bursts are bounded by config), and capping keeps `elapsed * rate` far
/// from overflowing.
const MAX_REFILL_NS: u64 = 100 * NS_PER_SEC;

/// Result of charging a `limited` source for one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateOutcome {
    Within,
    RegisterExceeded,
    InviteExceeded,
    RequestExceeded,
}

#[inline(always)]
fn refill(tokens: u64, per_sec: u32, burst: u32, elapsed_ns: u64) -> u64 {
    let cap = burst as u64 * NS_PER_SEC;
    let t = tokens + elapsed_ns * per_sec as u64;
    if t > cap {
        cap
    } else {
        t
    }
}

/// Refills the buckets up to `now_ns` and charges one packet of `kind`: a
/// REGISTER or an INVITE costs a token from its own bucket and from the
/// request bucket, any other request one from the request bucket, anything
/// else nothing. Over budget, nothing is taken.
#[inline(always)]
pub fn charge(stats: &mut SourceStats, profile: &RateProfile, kind: SipKind, now_ns: u64) -> RateOutcome {
    if stats.refilled_ns == 0 {
        stats.register_tokens = profile.register_burst as u64 * NS_PER_SEC;
        stats.request_tokens = profile.requests_burst as u64 * NS_PER_SEC;
        stats.invite_tokens = profile.invite_burst as u64 * NS_PER_SEC;
    } else {
        let mut elapsed = now_ns.saturating_sub(stats.refilled_ns);
        if elapsed > MAX_REFILL_NS {
            elapsed = MAX_REFILL_NS;
        }
        stats.register_tokens =
            refill(stats.register_tokens, profile.register_per_sec, profile.register_burst, elapsed);
        stats.request_tokens = refill(stats.request_tokens, profile.requests_per_sec, profile.requests_burst, elapsed);
        stats.invite_tokens = refill(stats.invite_tokens, profile.invite_per_sec, profile.invite_burst, elapsed);
    }
    stats.refilled_ns = now_ns;
    if !kind.is_request() {
        return RateOutcome::Within;
    }
    let register = kind == SipKind::Register;
    let invite = kind == SipKind::Invite;
    if register && stats.register_tokens < NS_PER_SEC {
        return RateOutcome::RegisterExceeded;
    }
    if invite && stats.invite_tokens < NS_PER_SEC {
        return RateOutcome::InviteExceeded;
    }
    if stats.request_tokens < NS_PER_SEC {
        return RateOutcome::RequestExceeded;
    }
    if register {
        stats.register_tokens -= NS_PER_SEC;
    }
    if invite {
        stats.invite_tokens -= NS_PER_SEC;
    }
    stats.request_tokens -= NS_PER_SEC;
    RateOutcome::Within
}

/// Counts one occurrence in a window that opens at the first one; true
/// when `threshold` are reached within `window_ns` (the count restarts).
#[inline(always)]
pub fn count_in_window(count: &mut u32, since_ns: &mut u64, window_ns: u64, threshold: u32, now_ns: u64) -> bool {
    if *count == 0 || now_ns.saturating_sub(*since_ns) > window_ns {
        *count = 0;
        *since_ns = now_ns;
    }
    *count += 1;
    if *count >= threshold {
        *count = 0;
        return true;
    }
    false
}

/// Counts one packet over budget; true when the count reaches
/// `ban_after_excess` within `ban_window_ns`.
#[inline(always)]
pub fn count_excess(stats: &mut SourceStats, cfg: &FilterConfig, now_ns: u64) -> bool {
    count_in_window(&mut stats.excess, &mut stats.excess_since_ns, cfg.ban_window_ns, cfg.ban_after_excess, now_ns)
}

/// Should a source crossing a threshold be banned now? Not while a ban is
/// already in force: responses still in flight when the first ban landed
/// must not count as a second offense and double it.
#[inline(always)]
pub fn should_ban(previous: Option<&BanEntry>, now_ns: u64) -> bool {
    match previous {
        Some(b) => !b.in_force(now_ns),
        None => true,
    }
}

/// The ban to write for a source whose previous ban entry (kept after
/// expiry as history) is `previous`. Each repeat doubles the duration, up
/// to the maximum; a source with no ban for a whole maximum duration starts
/// over.
#[inline(always)]
pub fn next_ban(previous: Option<&BanEntry>, reason: BanReason, cfg: &FilterConfig, now_ns: u64) -> BanEntry {
    let prior = match previous {
        Some(b) if now_ns.saturating_sub(b.expires_ns) < cfg.ban_max_duration_ns => b.offenses,
        _ => 0,
    };
    let shift = if prior > 20 { 20 } else { prior };
    let mut duration = cfg.ban_duration_ns << shift;
    if duration > cfg.ban_max_duration_ns || duration < cfg.ban_duration_ns {
        duration = cfg.ban_max_duration_ns;
    }
    BanEntry {
        expires_ns: now_ns + duration,
        banned_at_ns: now_ns,
        dropped: 0,
        offenses: prior + 1,
        reason: reason as u8,
        state: BanState::Active as u8,
        announced: 1,
        _pad: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = NS_PER_SEC;

    fn profile() -> RateProfile {
        RateProfile {
            register_per_sec: 5,
            register_burst: 20,
            requests_per_sec: 50,
            requests_burst: 200,
            invite_per_sec: 1,
            invite_burst: 2,
        }
    }

    #[test]
    fn a_fresh_source_gets_a_full_burst_then_the_rate() {
        let mut s = SourceStats::default();
        let p = profile();
        let t0 = 1000 * S;
        for i in 0..20 {
            assert_eq!(charge(&mut s, &p, SipKind::Register, t0), RateOutcome::Within, "burst {i}");
        }
        assert_eq!(charge(&mut s, &p, SipKind::Register, t0), RateOutcome::RegisterExceeded);
        // 5/s: one more token every 200 ms.
        assert_eq!(charge(&mut s, &p, SipKind::Register, t0 + 199_000_000), RateOutcome::RegisterExceeded);
        assert_eq!(charge(&mut s, &p, SipKind::Register, t0 + 200_000_000), RateOutcome::Within);
        assert_eq!(charge(&mut s, &p, SipKind::Register, t0 + 200_000_000), RateOutcome::RegisterExceeded);
        // Other requests still have their own budget.
        assert_eq!(charge(&mut s, &p, SipKind::Options, t0 + 200_000_000), RateOutcome::Within);
        // Responses and non-SIP payloads are free.
        assert_eq!(charge(&mut s, &p, SipKind::Response, t0 + 200_000_000), RateOutcome::Within);
        assert_eq!(charge(&mut s, &p, SipKind::NotSip, t0 + 200_000_000), RateOutcome::Within);
        // A long pause refills to the burst, not beyond.
        let later = t0 + 3600 * S;
        for _ in 0..20 {
            assert_eq!(charge(&mut s, &p, SipKind::Register, later), RateOutcome::Within);
        }
        assert_eq!(charge(&mut s, &p, SipKind::Register, later), RateOutcome::RegisterExceeded);
    }

    #[test]
    fn registers_count_against_the_request_budget_too() {
        let p = RateProfile {
            register_per_sec: 100,
            register_burst: 100,
            requests_per_sec: 1,
            requests_burst: 3,
            invite_per_sec: 100,
            invite_burst: 100,
        };
        let mut s = SourceStats::default();
        for _ in 0..3 {
            assert_eq!(charge(&mut s, &p, SipKind::Register, S), RateOutcome::Within);
        }
        assert_eq!(charge(&mut s, &p, SipKind::Register, S), RateOutcome::RequestExceeded);
        assert_eq!(charge(&mut s, &p, SipKind::Invite, S), RateOutcome::RequestExceeded);
    }

    #[test]
    fn invites_have_their_own_budget() {
        let mut s = SourceStats::default();
        let p = profile();
        assert_eq!(charge(&mut s, &p, SipKind::Invite, S), RateOutcome::Within);
        assert_eq!(charge(&mut s, &p, SipKind::Invite, S), RateOutcome::Within);
        assert_eq!(charge(&mut s, &p, SipKind::Invite, S), RateOutcome::InviteExceeded);
        assert_eq!(charge(&mut s, &p, SipKind::Options, S), RateOutcome::Within, "other requests unaffected");
        assert_eq!(charge(&mut s, &p, SipKind::Invite, 2 * S), RateOutcome::Within, "one more per second");
    }

    #[test]
    fn excess_bans_only_when_sustained_within_the_window() {
        let cfg = FilterConfig { ban_after_excess: 3, ban_window_ns: 10 * S, ..FilterConfig::EMPTY };
        let mut s = SourceStats::default();
        assert!(!count_excess(&mut s, &cfg, 100 * S));
        assert!(!count_excess(&mut s, &cfg, 101 * S));
        // The window has passed: counting starts over.
        assert!(!count_excess(&mut s, &cfg, 120 * S));
        assert!(!count_excess(&mut s, &cfg, 121 * S));
        assert!(count_excess(&mut s, &cfg, 122 * S));
        assert_eq!(s.excess, 0, "restarts after a ban");
    }

    #[test]
    fn no_second_ban_while_one_is_in_force() {
        let cfg = FilterConfig { ban_duration_ns: 600 * S, ban_max_duration_ns: 86_400 * S, ..FilterConfig::EMPTY };
        let ban = next_ban(None, BanReason::Auth, &cfg, 1000 * S);
        assert!(should_ban(None, 1000 * S));
        assert!(!should_ban(Some(&ban), 1001 * S));
        assert!(should_ban(Some(&ban), ban.expires_ns));
        let mut expired = ban;
        expired.state = BanState::Expired as u8;
        assert!(should_ban(Some(&expired), 1001 * S));
    }

    #[test]
    fn repeat_offenders_get_doubling_bans_up_to_the_maximum() {
        let cfg = FilterConfig { ban_duration_ns: 600 * S, ban_max_duration_ns: 3000 * S, ..FilterConfig::EMPTY };
        let first = next_ban(None, BanReason::Auth, &cfg, 1000 * S);
        assert_eq!(
            (first.expires_ns - first.banned_at_ns, first.offenses, first.state),
            (600 * S, 1, BanState::Active as u8)
        );
        let mut history = first;
        history.state = BanState::Expired as u8;
        let second = next_ban(Some(&history), BanReason::Rate, &cfg, history.expires_ns + S);
        assert_eq!((second.expires_ns - second.banned_at_ns, second.offenses), (1200 * S, 2));
        let third = next_ban(Some(&second), BanReason::Rate, &cfg, second.expires_ns + S);
        assert_eq!(third.expires_ns - third.banned_at_ns, 2400 * S);
        let fourth = next_ban(Some(&third), BanReason::Rate, &cfg, third.expires_ns + S);
        assert_eq!(fourth.expires_ns - fourth.banned_at_ns, 3000 * S, "capped");
        let mut many = fourth;
        many.offenses = 60;
        let capped = next_ban(Some(&many), BanReason::Rate, &cfg, many.expires_ns + S);
        assert_eq!(capped.expires_ns - capped.banned_at_ns, 3000 * S, "no overflow");
        // Quiet for a whole maximum duration: forgiven.
        let fresh = next_ban(Some(&fourth), BanReason::Rate, &cfg, fourth.expires_ns + 3000 * S);
        assert_eq!((fresh.expires_ns - fresh.banned_at_ns, fresh.offenses), (600 * S, 1));
    }
}
