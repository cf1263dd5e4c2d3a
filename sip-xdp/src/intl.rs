//! Blocks of international calls after a spending anomaly: the periodic
//! check that samples the kernel's per-source totals into the detector,
//! the sweep that ends blocks, and the CLI's view of them.

use std::collections::HashMap;

use anyhow::Context as _;
use ipnet::IpNet;
use sip_xdp_common::map_types::SourceKey;

use crate::{
    anomaly::Detector,
    clock::{boottime_ns, NS_PER_SEC},
    config::{Anomaly, Config},
    error::user_error,
    events::{Event, Kind},
    maps::{key_of, source_addr, source_label, Maps},
};

/// The detectors' state: per source, and per class (whose totals are the
/// sums of its sources' increments, so an evicted source entry never looks
/// like a spike).
#[derive(Debug, Default)]
pub struct Detectors {
    sources: Detector<SourceKey>,
    classes: Detector<String>,
    class_totals: HashMap<String, (u64, u64)>,
}

/// Samples the totals; blocks and reports the sources found anomalous, on
/// their own or as the biggest spender of a class that is.
pub fn check(maps: &mut Maps, detectors: &mut Detectors, cfg: &Config) -> anyhow::Result<Vec<Event>> {
    let now = boottime_ns();
    let a = &cfg.anomaly;
    let totals: Vec<_> = maps
        .sources()?
        .into_iter()
        .filter(|(_, s)| s.intl_invites > 0)
        .map(|(k, s)| (k, s.intl_invites, s.intl_cost_milli))
        .collect();
    let mut events = Vec::new();
    let findings = detectors.sources.observe(a, now / NS_PER_SEC, totals.iter().copied());
    for f in findings {
        if let Some(e) = block(maps, &f.source, a, now, "spend_anomaly")? {
            events.push(Event {
                calls: Some(f.calls),
                baseline: Some(f.baseline_calls),
                cost: (f.cost > 0.0).then_some(f.cost),
                ..e
            });
        }
    }

    // Classes: each source's increments summed into its class's total.
    let class_of = |key: &SourceKey| {
        let class = cfg.rules.class_of(source_addr(key)).map_or(cfg.filter.default_class, |(_, c)| c);
        cfg.class_name(class)
    };
    for (key, _, _) in &totals {
        let (dc, dm) = detectors.sources.last_delta(key);
        let t = detectors.class_totals.entry(class_of(key)).or_default();
        *t = (t.0 + dc, t.1 + dm);
    }
    let class_totals: Vec<_> = detectors.class_totals.iter().map(|(c, (n, m))| (c.clone(), *n, *m)).collect();
    for f in detectors.classes.observe(a, now / NS_PER_SEC, class_totals) {
        // Block the class's biggest spender in its current window.
        let top = totals
            .iter()
            .filter(|(k, _, _)| class_of(k) == f.source)
            .max_by_key(|(k, _, _)| detectors.sources.window_calls(k))
            .map(|(k, _, _)| *k);
        if let Some(key) = top {
            if let Some(e) = block(maps, &key, a, now, "class_spend_anomaly")? {
                events.push(Event {
                    calls: Some(f.calls),
                    baseline: Some(f.baseline_calls),
                    cost: (f.cost > 0.0).then_some(f.cost),
                    ..e
                });
            }
        }
    }
    Ok(events)
}

/// Blocks a source's international calls unless already blocked.
fn block(
    maps: &mut Maps,
    key: &SourceKey,
    a: &Anomaly,
    now: u64,
    reason: &'static str,
) -> anyhow::Result<Option<Event>> {
    if maps.intl_blocks.get(key, 0).is_ok_and(|until| until > now) {
        return Ok(None);
    }
    maps.intl_blocks.insert(key, now + a.block_secs * NS_PER_SEC, 0).context("cannot block international calls")?;
    let mut e = Event::new(Kind::IntlBlock, reason, source_label(key, maps.v6_prefix()));
    e.duration_secs = Some(a.block_secs);
    Ok(Some(e))
}

/// Ends blocks that ran out or were lifted with the CLI, and reports them.
pub fn sweep(maps: &mut Maps) -> anyhow::Result<Vec<Event>> {
    let now = boottime_ns();
    let v6_prefix = maps.v6_prefix();
    let mut events = Vec::new();
    for (key, until) in maps.intl_block_entries()? {
        if until <= now {
            let _ = maps.intl_blocks.remove(&key);
            let reason = if until == 0 { "manual" } else { "expired" };
            events.push(Event::new(Kind::IntlUnblock, reason, source_label(&key, v6_prefix)));
        }
    }
    Ok(events)
}

/// `sip-xdp intl list`: blocked sources and the seconds left.
pub fn list(maps: &Maps) -> anyhow::Result<Vec<(String, u64)>> {
    let now = boottime_ns();
    let v6_prefix = maps.v6_prefix();
    let mut rows: Vec<_> = maps
        .intl_block_entries()?
        .into_iter()
        .filter(|(_, until)| *until > now)
        .map(|(k, until)| (source_label(&k, v6_prefix), (until - now).div_ceil(NS_PER_SEC)))
        .collect();
    rows.sort();
    Ok(rows)
}

/// `sip-xdp intl unblock SOURCE`: lifts at once; the controller reports it.
pub fn unblock(maps: &mut Maps, source: IpNet) -> anyhow::Result<String> {
    if source.prefix_len() != source.max_prefix_len() {
        return Err(user_error(format!("{source}: international blocks are per address, not per prefix")));
    }
    let key = key_of(source.addr(), maps.v6_prefix());
    match maps.intl_blocks.get(&key, 0) {
        Ok(until) if until > boottime_ns() => {
            maps.intl_blocks.insert(key, 0, 0).context("cannot lift the block")?;
            Ok(format!("international calls unblocked for {}\n", source.addr()))
        }
        _ => Err(user_error(format!("{} has no international block (see `sip-xdp intl list`)", source.addr()))),
    }
}
