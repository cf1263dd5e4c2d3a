//! What tools outside the kernel report, applied the kernel's way: bans
//! (the control API, CrowdSec) and authentication outcomes the SIP server
//! saw where the kernel cannot look (TLS). A reported failure is counted
//! in the same per-source state, against the same threshold and window,
//! as a 401 the egress program reads, and bans the same way (doubling for
//! repeat offenders); a reported success clears the strikes. Trusted
//! sources are never counted nor banned. Bans made here are reported by
//! the next sweep like any other: log, webhook, metrics, fleet,
//! escalation.

use std::net::IpAddr;

use anyhow::Context as _;
use ipnet::IpNet;
use sip_xdp_common::{
    accounting::{account, answered, AuthOutcome},
    bans::BanReason,
    limits::{next_ban, should_ban},
};

use crate::{
    bans::{self, Placed, Refused, Trusted},
    clock::{boottime_ns, NS_PER_SEC},
    events::{Event, Kind},
    maps::{key_of, source_label, Maps},
    rules::canonical,
};

/// The longest ban accepted from outside: a year.
pub const MAX_BAN_SECS: u64 = 366 * 86_400;

/// Bans `net` for `duration_secs` unless refused (`trusted`: the trusted
/// rules, read once for a batch of bans); the same ban twice is one ban
/// (the second pushes its end out, if later).
pub fn ban(
    maps: &mut Maps,
    trusted: &Trusted,
    net: IpNet,
    duration_secs: u64,
    reason: BanReason,
    widest: (u8, u8),
) -> anyhow::Result<Result<Placed, Refused>> {
    let net = canonical(net);
    if let Some(refused) = bans::refusal(trusted, &net, widest.0, widest.1) {
        return Ok(Err(refused));
    }
    let duration_ns = duration_secs.min(MAX_BAN_SECS) * NS_PER_SEC;
    Ok(Ok(bans::place(maps, net, duration_ns, reason, false, true, |_| ())?))
}

/// A source's authentication state after a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthReport {
    /// The source as bans name it (an IPv6 address's prefix).
    pub source: String,
    /// Failures counted in the current window (0 once a ban is made).
    pub failures: u32,
    pub threshold: u32,
    pub window_secs: u64,
    /// A ban is in force for the source now.
    pub banned: bool,
}

/// Counts `outcome` (a failure or a success) for `addr`. The event to
/// report now, if any: a would-be ban in monitor mode (a real ban is
/// reported by the sweep).
pub fn auth(
    maps: &mut Maps,
    addr: IpAddr,
    outcome: AuthOutcome,
) -> anyhow::Result<(Result<AuthReport, Refused>, Option<Event>)> {
    let addr = addr.to_canonical();
    if let Some(rule) = bans::trusted_cover(maps, &IpNet::from(addr))? {
        return Ok((Err(Refused::Trusted(rule)), None));
    }
    let cfg = maps.read_config()?;
    let key = key_of(addr, cfg.ipv6_prefix);
    let label = source_label(&key, cfg.ipv6_prefix);
    let now = boottime_ns();
    let mut state = maps.auth.get(&key, 0).unwrap_or_default();
    // Credentials were presented, wrong or right: whatever challenges the
    // source had were answered.
    answered(&mut state);
    let crossed = account(&mut state, outcome, &cfg, now);
    maps.auth.insert(key, state, 0).with_context(|| format!("cannot count for {label}"))?;
    let mut event = None;
    if let Some(reason) = crossed {
        if cfg.monitor() {
            event = Some(Event::new(Kind::WouldBan, reason.name(), label.clone()));
        } else {
            let previous = maps.bans.get(&key, 0).ok();
            if should_ban(previous.as_ref(), now) {
                // Left unannounced: the sweep reports it like a CLI ban.
                let entry = next_ban(previous.as_ref(), reason, &cfg, now);
                let entry = sip_xdp_common::bans::BanEntry { announced: 0, ..entry };
                maps.bans.insert(key, entry, 0).with_context(|| format!("cannot ban {label}"))?;
            }
        }
    }
    let banned = maps.bans.get(&key, 0).is_ok_and(|b| b.in_force(now));
    let report = AuthReport {
        source: label,
        failures: state.failures,
        threshold: cfg.auth_max,
        window_secs: cfg.auth_window_ns / NS_PER_SEC,
        banned,
    };
    Ok((Ok(report), event))
}
