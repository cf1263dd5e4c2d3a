//! Bans seen from userspace: listing, adding and lifting them from the CLI,
//! and the controller's sweep that reports and expires them.
//!
//! A single address is banned in the kernel's ban table (where the kernel's
//! own bans go); a wider prefix becomes a `banned` rule in the rule tries.
//! The CLI never reports events itself: it marks entries, and the running
//! controller's sweep (every second) reports them, so every ban, expiry and
//! unban goes through the same log and webhook.

use std::{collections::BTreeSet, net::IpAddr};

use anyhow::Context as _;
use ipnet::IpNet;
use sip_xdp_common::{
    bans::{BanEntry, BanReason, BanState},
    map_types::SourceKey,
    rules::{PrefixBanState, RuleClass, RuleValue, ORIGIN_BAN},
};

use crate::{
    clock::{boottime_ns, wall_clock_of, NS_PER_SEC},
    error::user_error,
    events::{reason_name, Event, Kind},
    maps::{source_addr, Maps},
    rules::{Class, Rules},
};

/// One active ban, for `ban list`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BanRow {
    pub source: String,
    pub reason: &'static str,
    /// None: until lifted.
    pub remaining_secs: Option<u64>,
    /// Packets dropped since the ban began (single addresses only).
    pub dropped: Option<u64>,
    pub offenses: u32,
}

fn key_of(addr: IpAddr) -> SourceKey {
    match addr {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// A single address (a /32 or /128) or a wider prefix.
fn single(net: &IpNet) -> Option<IpAddr> {
    (net.prefix_len() == net.max_prefix_len()).then_some(net.addr())
}

pub fn list(maps: &Maps) -> anyhow::Result<Vec<BanRow>> {
    let now = boottime_ns();
    let mut rows = Vec::new();
    for (key, b) in maps.ban_entries()? {
        if b.in_force(now) {
            rows.push(BanRow {
                source: source_addr(&key).to_string(),
                reason: reason_name(b.reason),
                remaining_secs: Some((b.expires_ns - now).div_ceil(NS_PER_SEC)),
                dropped: Some(b.dropped),
                offenses: b.offenses,
            });
        }
    }
    for (net, v) in maps.rule_entries()? {
        if v.ban_in_force(now) {
            rows.push(BanRow {
                source: net.to_string(),
                reason: BanReason::Manual.name(),
                remaining_secs: (v.ban_expires_secs != 0)
                    .then(|| (v.ban_expires_secs as u64).saturating_sub(now / NS_PER_SEC)),
                dropped: None,
                offenses: 1,
            });
        }
    }
    rows.sort_by(|a, b| a.source.cmp(&b.source));
    Ok(rows)
}

/// The trusted rule covering `net`, if any: trusted sources are never banned.
fn trusted_cover(maps: &Maps, net: &IpNet) -> anyhow::Result<Option<IpNet>> {
    Ok(maps
        .rule_entries()?
        .into_iter()
        .filter(|(rule, v)| v.is(RuleClass::Trusted) && (rule.contains(net) || net.contains(rule)))
        .map(|(rule, _)| rule)
        .next())
}

/// Bans `net` for `duration_secs` (default: the running config's first-ban
/// duration).
pub fn add(maps: &mut Maps, net: IpNet, duration_secs: Option<u64>) -> anyhow::Result<String> {
    if let Some(rule) = trusted_cover(maps, &net)? {
        return Err(user_error(format!("{net} overlaps the trusted rule {rule}; trusted sources are never banned")));
    }
    let now = boottime_ns();
    let duration_ns = match duration_secs {
        Some(0) => return Err(user_error("--duration must be at least 1 second")),
        Some(s) => s.saturating_mul(NS_PER_SEC),
        None => maps.read_config()?.ban_duration_ns,
    };
    match single(&net) {
        Some(addr) => {
            let key = key_of(addr);
            let previous = maps.bans.get(&key, 0).ok();
            let entry = BanEntry {
                expires_ns: now + duration_ns,
                banned_at_ns: now,
                dropped: 0,
                offenses: previous.map_or(0, |p| p.offenses) + 1,
                reason: BanReason::Manual as u8,
                state: BanState::Active as u8,
                announced: 0,
                _pad: 0,
            };
            maps.bans.insert(key, entry, 0).with_context(|| format!("cannot ban {addr}"))?;
        }
        None => {
            if maps.rule_entries()?.contains_key(&net) {
                return Err(user_error(format!(
                    "{net} is already a rule or a ban; change the rule in the config, or ban a longer or shorter prefix"
                )));
            }
            let expires = (now + duration_ns).div_ceil(NS_PER_SEC);
            let value = RuleValue {
                ban_state: PrefixBanState::New as u8,
                ban_expires_secs: u32::try_from(expires).unwrap_or(u32::MAX),
                ..RuleValue::new(ORIGIN_BAN, RuleClass::Banned, 0)
            };
            maps.insert_rule(net, value)?;
        }
    }
    Ok(format!("banned {net} for {}s\n", duration_ns / NS_PER_SEC))
}

/// Lifts a ban at once; the controller reports it.
pub fn del(maps: &mut Maps, net: IpNet) -> anyhow::Result<String> {
    let now = boottime_ns();
    match single(&net) {
        Some(addr) => {
            let key = key_of(addr);
            match maps.bans.get(&key, 0) {
                Ok(mut b) if b.in_force(now) => {
                    b.state = BanState::Lifted as u8;
                    maps.bans.insert(key, b, 0).with_context(|| format!("cannot unban {addr}"))?;
                }
                _ => return Err(user_error(format!("{addr} is not banned (see `sip-xdp ban list`)"))),
            }
        }
        // Removed at once; the controller's sweep notices and reports it.
        None => match maps.rule_entries()?.get(&net) {
            Some(v) if v.is(RuleClass::Banned) => maps.remove_rule(net)?,
            _ => return Err(user_error(format!("{net} is not banned (see `sip-xdp ban list`)"))),
        },
    }
    Ok(format!("unbanned {net}\n"))
}

/// Reports and tidies the ban tables: bans made with the CLI, expiries,
/// lifts, bans of sources the config now trusts (lifted), and history
/// older than the maximum ban (forgotten). `prefix_bans` is what the
/// previous sweep saw, so a prefix ban removed by `ban del` is reported.
pub fn sweep(
    maps: &mut Maps,
    rules: &Rules,
    forget_after_ns: u64,
    prefix_bans: &mut BTreeSet<IpNet>,
) -> anyhow::Result<Vec<Event>> {
    let now = boottime_ns();
    let event = |kind, reason, source: String, b: Option<&BanEntry>| Event {
        duration_secs: b.map(|b| (b.expires_ns - b.banned_at_ns) / NS_PER_SEC),
        offenses: b.map(|b| b.offenses),
        ..Event::new(kind, reason, source)
    };
    let mut events = Vec::new();
    for (key, mut b) in maps.ban_entries()? {
        let addr = source_addr(&key);
        let source = addr.to_string();
        let trusted = matches!(rules.class_of(addr), Some((_, Class::Trusted)));
        if b.state == BanState::Active as u8 && trusted {
            let _ = maps.bans.remove(&key);
            events.push(event(Kind::Unban, "now_trusted", source, None));
        } else if b.state == BanState::Lifted as u8 {
            let _ = maps.bans.remove(&key);
            events.push(event(Kind::Unban, BanReason::Manual.name(), source, None));
        } else if b.state == BanState::Active as u8 && !b.in_force(now) {
            b.state = BanState::Expired as u8;
            let _ = maps.bans.insert(key, b, 0);
            events.push(Event {
                at: wall_clock_of(b.expires_ns, now),
                ..event(Kind::Expire, reason_name(b.reason), source, None)
            });
        } else if b.state == BanState::Active as u8 && b.announced == 0 {
            b.announced = 1;
            let _ = maps.bans.insert(key, b, 0);
            events.push(Event {
                at: wall_clock_of(b.banned_at_ns, now),
                ..event(Kind::Ban, reason_name(b.reason), source, Some(&b))
            });
        } else if b.state == BanState::Expired as u8 && now.saturating_sub(b.expires_ns) > forget_after_ns {
            let _ = maps.bans.remove(&key);
        }
    }
    let mut seen = BTreeSet::new();
    for (net, v) in maps.rule_entries()? {
        if !v.is(RuleClass::Banned) {
            continue;
        }
        if !v.ban_in_force(now) {
            maps.remove_rule(net)?;
            prefix_bans.remove(&net);
            events.push(event(Kind::Expire, BanReason::Manual.name(), net.to_string(), None));
            continue;
        }
        if v.ban_state == PrefixBanState::New as u8 {
            maps.insert_rule(net, RuleValue { ban_state: PrefixBanState::Announced as u8, ..v })?;
            events.push(event(Kind::Ban, BanReason::Manual.name(), net.to_string(), None));
        }
        seen.insert(net);
    }
    for gone in prefix_bans.difference(&seen) {
        events.push(event(Kind::Unban, BanReason::Manual.name(), gone.to_string(), None));
    }
    *prefix_bans = seen;
    Ok(events)
}
