//! Fleet bans into this edge's kernel, and out again. They are written
//! already announced, so the sweep never reports (and so never publishes)
//! them as this edge's own: no echo.

use std::collections::BTreeSet;

use anyhow::Context as _;
use ipnet::IpNet;
use sip_xdp_common::{
    bans::{BanEntry, BanState},
    rules::{PrefixBanState, RuleClass, RuleValue, ORIGIN_BAN},
};

use super::wire::FleetBan;
use crate::{
    bans::{source_of, trusted_cover},
    clock::{boottime_ns, NS_PER_SEC},
    config::Fleet,
    maps::{source_label, Maps},
};

/// What became of a fleet ban.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    /// In force now, under this label (what `ban list` shows).
    Banned(String),
    /// Banned here already; left as it is.
    Already,
    /// Refused: `trusted` (it covers a trusted rule: the rule) or
    /// `too_wide`.
    Refused(&'static str, Option<IpNet>),
}

/// The label the ban of `net` has in this kernel.
pub fn label_of(maps: &Maps, net: &IpNet) -> String {
    let v6_prefix = maps.v6_prefix();
    source_of(net, v6_prefix).map_or_else(|| net.to_string(), |key| source_label(&key, v6_prefix))
}

pub fn ban(
    maps: &mut Maps,
    fleet: &Fleet,
    ban: &FleetBan,
    prefix_bans: &mut BTreeSet<IpNet>,
    // Called with the label just before the kernel has the ban, so that
    // whoever sees the ban finds its origin too.
    before: impl FnOnce(&str),
) -> anyhow::Result<Applied> {
    let widest = match ban.net {
        IpNet::V4(_) => fleet.max_prefix_v4,
        IpNet::V6(_) => fleet.max_prefix_v6,
    };
    if ban.net.prefix_len() < widest {
        return Ok(Applied::Refused("too_wide", None));
    }
    if let Some(rule) = trusted_cover(maps, &ban.net)? {
        return Ok(Applied::Refused("trusted", Some(rule)));
    }
    let now = boottime_ns();
    let duration_ns = ban.remaining_ms.saturating_mul(1_000_000);
    let v6_prefix = maps.v6_prefix();
    match source_of(&ban.net, v6_prefix) {
        Some(key) => {
            let previous = maps.bans.get(&key, 0).ok();
            if previous.is_some_and(|p| p.in_force(now)) {
                return Ok(Applied::Already);
            }
            let entry = BanEntry {
                expires_ns: now + duration_ns,
                banned_at_ns: now,
                dropped: 0,
                offenses: previous.map_or(0, |p| p.offenses) + 1,
                reason: ban.reason as u8,
                state: BanState::Active as u8,
                announced: 1,
                _pad: 0,
            };
            let label = source_label(&key, v6_prefix);
            before(&label);
            maps.bans.insert(key, entry, 0).with_context(|| format!("cannot ban {label}"))?;
            Ok(Applied::Banned(label))
        }
        None => {
            if maps.prefix_ban_entries()?.get(&ban.net).is_some_and(|v| v.ban_in_force(now)) {
                return Ok(Applied::Already);
            }
            let expires = (now + duration_ns).div_ceil(NS_PER_SEC);
            let value = RuleValue {
                ban_state: PrefixBanState::Announced as u8,
                ban_expires_secs: u32::try_from(expires).unwrap_or(u32::MAX),
                ..RuleValue::new(ORIGIN_BAN, RuleClass::Banned, ban.reason as u8)
            };
            before(&ban.net.to_string());
            maps.insert_prefix_ban(ban.net, value)?;
            prefix_bans.insert(ban.net);
            Ok(Applied::Banned(ban.net.to_string()))
        }
    }
}

/// Lifts the ban of `net` if one is in force; its label if so. A lifted
/// source keeps its history (offenses), as an expired ban does, and the
/// sweep has nothing to report.
pub fn unban(maps: &mut Maps, net: &IpNet, prefix_bans: &mut BTreeSet<IpNet>) -> anyhow::Result<Option<String>> {
    let now = boottime_ns();
    let v6_prefix = maps.v6_prefix();
    match source_of(net, v6_prefix) {
        Some(key) => match maps.bans.get(&key, 0) {
            Ok(mut b) if b.in_force(now) => {
                b.state = BanState::Expired as u8;
                b.expires_ns = now;
                let label = source_label(&key, v6_prefix);
                maps.bans.insert(key, b, 0).with_context(|| format!("cannot unban {label}"))?;
                Ok(Some(label))
            }
            _ => Ok(None),
        },
        None => match maps.prefix_ban_entries()?.get(net) {
            Some(v) if v.ban_in_force(now) => {
                maps.remove_prefix_ban(*net)?;
                prefix_bans.remove(net);
                Ok(Some(net.to_string()))
            }
            _ => Ok(None),
        },
    }
}
