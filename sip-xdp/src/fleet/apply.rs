//! Fleet bans into this edge's kernel, and out again. They are written
//! already announced, so the sweep never reports (and so never publishes)
//! them as this edge's own: no echo.

use std::collections::BTreeSet;

use anyhow::Context as _;
use ipnet::IpNet;
use sip_xdp_common::bans::BanState;

use super::wire::FleetBan;
use crate::{
    bans::{self, source_of, Placed, Refused},
    clock::boottime_ns,
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
    /// Refused: it covers a trusted rule, or is too wide.
    Refused(Refused),
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
    let trusted = bans::Trusted::read(maps)?;
    if let Some(refused) = bans::refusal(&trusted, &ban.net, fleet.max_prefix_v4, fleet.max_prefix_v6) {
        return Ok(Applied::Refused(refused));
    }
    let duration_ns = ban.remaining_ms.saturating_mul(1_000_000);
    Ok(match bans::place(maps, ban.net, duration_ns, ban.reason, true, false, before)? {
        Placed::New(label) => {
            if source_of(&ban.net, maps.v6_prefix()).is_none() {
                // Written announced: the sweep must know it, or it would
                // report the ban's end as an unban.
                prefix_bans.insert(ban.net);
            }
            Applied::Banned(label)
        }
        Placed::Already(_) => Applied::Already,
    })
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
