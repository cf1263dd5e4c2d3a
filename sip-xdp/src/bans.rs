//! Bans seen from userspace: listing, adding and lifting them from the CLI,
//! and the controller's sweep that reports and expires them.
//!
//! A single address is banned in the kernel's ban table (where the kernel's
//! own bans go); a wider prefix in the prefix-ban tries, apart from the
//! rules, so that no rule inside it (nor one of the same prefix) shadows
//! the ban.
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
    maps::{key_of, source_addr, source_label, Maps},
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

/// The ban-table key `net` is banned under, if it is one source: an IPv4
/// address, or an IPv6 prefix at least as long as the ones sources are
/// accounted by (banning an address bans its prefix). Wider prefixes go
/// to the prefix-ban tries.
pub(crate) fn source_of(net: &IpNet, v6_prefix: u8) -> Option<SourceKey> {
    match net {
        IpNet::V4(n) if n.prefix_len() == 32 => Some(key_of(IpAddr::V4(n.addr()), v6_prefix)),
        IpNet::V6(n) if n.prefix_len() >= v6_prefix => Some(key_of(IpAddr::V6(n.addr()), v6_prefix)),
        _ => None,
    }
}

/// The label the ban of `net` has in this kernel (what `ban list` shows).
pub fn label_of(maps: &Maps, net: &IpNet) -> String {
    let v6_prefix = maps.v6_prefix();
    source_of(net, v6_prefix).map_or_else(|| net.to_string(), |key| source_label(&key, v6_prefix))
}

pub fn list(maps: &Maps) -> anyhow::Result<Vec<BanRow>> {
    let now = boottime_ns();
    let v6_prefix = maps.v6_prefix();
    let mut rows = Vec::new();
    for (key, b) in maps.ban_entries()? {
        if b.in_force(now) {
            rows.push(source_row(&key, &b, v6_prefix, now));
        }
    }
    for (net, v) in maps.prefix_ban_entries()? {
        if v.ban_in_force(now) {
            rows.push(prefix_row(&net, &v, now));
        }
    }
    rows.sort_by(|a, b| a.source.cmp(&b.source));
    Ok(rows)
}

/// The ban in force on `net` (a source, or a prefix ban of exactly that
/// network), if any: one lookup, not a walk of every ban.
pub fn in_force(maps: &Maps, net: &IpNet) -> anyhow::Result<Option<BanRow>> {
    let now = boottime_ns();
    let v6_prefix = maps.v6_prefix();
    Ok(match source_of(net, v6_prefix) {
        Some(key) => {
            maps.bans.get(&key, 0).ok().filter(|b| b.in_force(now)).map(|b| source_row(&key, &b, v6_prefix, now))
        }
        None => maps.prefix_ban_entries()?.get(net).filter(|v| v.ban_in_force(now)).map(|v| prefix_row(net, v, now)),
    })
}

fn source_row(key: &SourceKey, b: &BanEntry, v6_prefix: u8, now: u64) -> BanRow {
    BanRow {
        source: source_label(key, v6_prefix),
        reason: reason_name(b.reason),
        remaining_secs: Some((b.expires_ns - now).div_ceil(NS_PER_SEC)),
        dropped: Some(b.dropped),
        offenses: b.offenses,
    }
}

fn prefix_row(net: &IpNet, v: &RuleValue, now: u64) -> BanRow {
    BanRow {
        source: net.to_string(),
        reason: prefix_reason(v),
        remaining_secs: (v.ban_expires_secs != 0).then(|| (v.ban_expires_secs as u64).saturating_sub(now / NS_PER_SEC)),
        dropped: None,
        offenses: 1,
    }
}

/// The trusted rules, read once: trusted sources are never banned.
pub struct Trusted(Vec<IpNet>);

impl Trusted {
    pub fn read(maps: &Maps) -> anyhow::Result<Trusted> {
        Ok(Trusted(
            maps.rule_entries()?.into_iter().filter(|(_, v)| v.is(RuleClass::Trusted)).map(|(rule, _)| rule).collect(),
        ))
    }

    /// The trusted rule overlapping `net`, if any.
    pub fn cover(&self, net: &IpNet) -> Option<IpNet> {
        self.0.iter().find(|rule| rule.contains(net) || net.contains(*rule)).copied()
    }
}

/// The trusted rule covering `net`, if any: trusted sources are never banned.
pub(crate) fn trusted_cover(maps: &Maps, net: &IpNet) -> anyhow::Result<Option<IpNet>> {
    Ok(Trusted::read(maps)?.cover(net))
}

/// Bans `net` for `duration_secs` (default: the running config's first-ban
/// duration), for `reason`.
pub fn add(maps: &mut Maps, net: IpNet, duration_secs: Option<u64>, reason: BanReason) -> anyhow::Result<String> {
    let net = crate::rules::canonical(net);
    if let Some(rule) = trusted_cover(maps, &net)? {
        return Err(user_error(format!("{net} overlaps the trusted rule {rule}; trusted sources are never banned")));
    }
    let now = boottime_ns();
    let config = maps.read_config()?;
    let duration_ns = match duration_secs {
        Some(0) => return Err(user_error("--duration must be at least 1 second")),
        Some(s) => s.saturating_mul(NS_PER_SEC),
        None => config.ban_duration_ns,
    };
    let banned = match source_of(&net, config.ipv6_prefix) {
        Some(key) => {
            let previous = maps.bans.get(&key, 0).ok();
            let entry = new_entry(previous, now, duration_ns, reason, false);
            let label = source_label(&key, config.ipv6_prefix);
            maps.bans.insert(key, entry, 0).with_context(|| format!("cannot ban {label}"))?;
            label
        }
        None => {
            if maps.prefix_ban_entries()?.get(&net).is_some_and(|v| v.ban_in_force(now)) {
                return Err(user_error(format!("{net} is already banned (see `sip-xdp ban list`)")));
            }
            let expires = (now + duration_ns).div_ceil(NS_PER_SEC);
            // A prefix ban keeps its reason where a limited rule keeps its
            // profile.
            let value = RuleValue {
                ban_state: PrefixBanState::New as u8,
                ban_expires_secs: u32::try_from(expires).unwrap_or(u32::MAX),
                ..RuleValue::new(ORIGIN_BAN, RuleClass::Banned, reason as u8)
            };
            maps.insert_prefix_ban(net, value)?;
            net.to_string()
        }
    };
    Ok(format!("banned {banned} for {}s\n", duration_ns / NS_PER_SEC))
}

/// A ban from now for `duration_ns`, one offense more than `previous`
/// (the source's entry, kept after expiry as its history).
fn new_entry(previous: Option<BanEntry>, now: u64, duration_ns: u64, reason: BanReason, announced: bool) -> BanEntry {
    BanEntry {
        expires_ns: now + duration_ns,
        banned_at_ns: now,
        dropped: 0,
        offenses: previous.map_or(0, |p| p.offenses) + 1,
        reason: reason as u8,
        state: BanState::Active as u8,
        announced: announced as u8,
        _pad: 0,
    }
}

/// Why a ban from outside the kernel (the control API, CrowdSec, the
/// fleet) is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// It overlaps this trusted rule: trusted sources are never banned.
    Trusted(IpNet),
    /// Wider than the widest prefix allowed (this length).
    TooWide(u8),
}

impl Refused {
    /// Its name in events, metric labels and the API's errors.
    pub fn name(&self) -> &'static str {
        match self {
            Refused::Trusted(_) => "trusted",
            Refused::TooWide(_) => "too_wide",
        }
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Trusted(rule) => {
                write!(f, "it overlaps the trusted rule {rule}; trusted sources are never banned")
            }
            Refused::TooWide(widest) => write!(f, "it is wider than /{widest}, the widest ban accepted from outside"),
        }
    }
}

/// Why a ban of `net` from outside the kernel is refused, if it is: wider
/// than `/widest_v4` or `/widest_v6`, or overlapping a trusted rule.
pub(crate) fn refusal(trusted: &Trusted, net: &IpNet, widest_v4: u8, widest_v6: u8) -> Option<Refused> {
    let widest = match net {
        IpNet::V4(_) => widest_v4,
        IpNet::V6(_) => widest_v6,
    };
    if net.prefix_len() < widest {
        return Some(Refused::TooWide(widest));
    }
    trusted.cover(net).map(Refused::Trusted)
}

/// How a ban placed from outside the kernel landed.
#[derive(Debug, PartialEq, Eq)]
pub enum Placed {
    /// In force now, under this label (what `ban list` shows).
    New(String),
    /// A ban was in force already: still one ban (its end pushed out to
    /// the new one's when that is later and `extend` was asked).
    Already(String),
}

/// A ban from outside the kernel (the control API, CrowdSec, the fleet):
/// idempotent, so the same ban twice is one ban, with one offense and one
/// report. `announced`: written as already reported (fleet bans, which
/// must not echo back to the fleet), else the next sweep reports it like
/// any other. `before` is called with the label just before the kernel
/// has a new ban. The caller has checked trusted rules and widths.
pub(crate) fn place(
    maps: &mut Maps,
    net: IpNet,
    duration_ns: u64,
    reason: BanReason,
    announced: bool,
    extend: bool,
    before: impl FnOnce(&str),
) -> anyhow::Result<Placed> {
    let now = boottime_ns();
    let v6_prefix = maps.v6_prefix();
    match source_of(&net, v6_prefix) {
        Some(key) => {
            let label = source_label(&key, v6_prefix);
            let previous = maps.bans.get(&key, 0).ok();
            if let Some(mut p) = previous.filter(|p| p.in_force(now)) {
                if extend && now + duration_ns > p.expires_ns {
                    p.expires_ns = now + duration_ns;
                    maps.bans.insert(key, p, 0).with_context(|| format!("cannot extend the ban of {label}"))?;
                }
                return Ok(Placed::Already(label));
            }
            let entry = new_entry(previous, now, duration_ns, reason, announced);
            before(&label);
            maps.bans.insert(key, entry, 0).with_context(|| format!("cannot ban {label}"))?;
            Ok(Placed::New(label))
        }
        None => {
            let label = net.to_string();
            let expires = u32::try_from((now + duration_ns).div_ceil(NS_PER_SEC)).unwrap_or(u32::MAX);
            if let Some(v) = maps.prefix_ban_entries()?.get(&net).filter(|v| v.ban_in_force(now)) {
                if extend && v.ban_expires_secs != 0 && expires > v.ban_expires_secs {
                    maps.insert_prefix_ban(net, RuleValue { ban_expires_secs: expires, ..*v })?;
                }
                return Ok(Placed::Already(label));
            }
            let state = if announced { PrefixBanState::Announced } else { PrefixBanState::New };
            // A prefix ban keeps its reason where a limited rule keeps its
            // profile.
            let value = RuleValue {
                ban_state: state as u8,
                ban_expires_secs: expires,
                ..RuleValue::new(ORIGIN_BAN, RuleClass::Banned, reason as u8)
            };
            before(&label);
            maps.insert_prefix_ban(net, value)?;
            Ok(Placed::New(label))
        }
    }
}

/// Lifts a ban at once; the controller reports it.
pub fn del(maps: &mut Maps, net: IpNet) -> anyhow::Result<String> {
    let now = boottime_ns();
    let v6_prefix = maps.v6_prefix();
    match source_of(&net, v6_prefix) {
        Some(key) => {
            let label = source_label(&key, v6_prefix);
            match maps.bans.get(&key, 0) {
                Ok(mut b) if b.in_force(now) => {
                    b.state = BanState::Lifted as u8;
                    maps.bans.insert(key, b, 0).with_context(|| format!("cannot unban {label}"))?;
                }
                _ => return Err(user_error(format!("{label} is not banned (see `sip-xdp ban list`)"))),
            }
            Ok(format!("unbanned {label}\n"))
        }
        // Removed at once; the controller's sweep notices and reports it.
        None => match maps.prefix_ban_entries()?.get(&net) {
            Some(v) if v.ban_in_force(now) => {
                maps.remove_prefix_ban(net)?;
                Ok(format!("unbanned {net}\n"))
            }
            _ => Err(user_error(format!("{net} is not banned (see `sip-xdp ban list`)"))),
        },
    }
}

/// Moves prefix bans an older version kept in the rule tries (as `banned`
/// rules) to the prefix-ban tries, where a rule can no longer shadow them.
/// Returns how many moved.
pub fn move_prefix_bans_out_of_rules(maps: &mut Maps) -> anyhow::Result<usize> {
    let old: Vec<(IpNet, RuleValue)> =
        maps.rule_entries()?.into_iter().filter(|(_, v)| v.is(RuleClass::Banned)).collect();
    for (net, value) in &old {
        maps.insert_prefix_ban(*net, *value)?;
        maps.remove_rule(*net)?;
    }
    if !old.is_empty() {
        maps.rebuild_rule_index()?;
    }
    Ok(old.len())
}

/// The reason of a prefix ban (kept in its profile byte).
fn prefix_reason(v: &RuleValue) -> &'static str {
    reason_name(v.profile)
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
    let v6_prefix = maps.v6_prefix();
    for (key, mut b) in maps.ban_entries()? {
        let addr = source_addr(&key);
        let source = source_label(&key, v6_prefix);
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
    for (net, v) in maps.prefix_ban_entries()? {
        if !v.ban_in_force(now) {
            maps.remove_prefix_ban(net)?;
            prefix_bans.remove(&net);
            events.push(event(Kind::Expire, prefix_reason(&v), net.to_string(), None));
            continue;
        }
        if v.ban_state == PrefixBanState::New as u8 {
            maps.insert_prefix_ban(net, RuleValue { ban_state: PrefixBanState::Announced as u8, ..v })?;
            let remaining =
                (v.ban_expires_secs != 0).then(|| (v.ban_expires_secs as u64).saturating_sub(now / NS_PER_SEC));
            events.push(Event {
                duration_secs: remaining,
                offenses: Some(1),
                ..event(Kind::Ban, prefix_reason(&v), net.to_string(), None)
            });
        }
        seen.insert(net);
    }
    for gone in prefix_bans.difference(&seen) {
        events.push(event(Kind::Unban, BanReason::Manual.name(), gone.to_string(), None));
    }
    *prefix_bans = seen;
    Ok(events)
}
