//! Blocks of international calls after a spending anomaly: the periodic
//! check that samples the kernel's per-source totals into the detector,
//! the sweep that ends blocks, and the CLI's view of them.

use anyhow::Context as _;
use ipnet::IpNet;

use crate::{
    anomaly::Detector,
    clock::{boottime_ns, NS_PER_SEC},
    config::Anomaly,
    error::user_error,
    events::{Event, Kind},
    maps::{source_addr, Maps},
};

/// Samples the totals; blocks and reports the sources found anomalous.
pub fn check(maps: &mut Maps, detector: &mut Detector, cfg: &Anomaly) -> anyhow::Result<Vec<Event>> {
    let now = boottime_ns();
    let totals: Vec<_> = maps
        .sources()?
        .into_iter()
        .filter(|(_, s)| s.intl_invites > 0)
        .map(|(k, s)| (k, s.intl_invites, s.intl_cost_milli))
        .collect();
    let mut events = Vec::new();
    for f in detector.observe(cfg, now / NS_PER_SEC, totals) {
        if maps.intl_blocks.get(&f.source, 0).is_ok_and(|until| until > now) {
            continue;
        }
        maps.intl_blocks
            .insert(f.source, now + cfg.block_secs * NS_PER_SEC, 0)
            .context("cannot block international calls")?;
        let mut e = Event::new(Kind::IntlBlock, "spend_anomaly", source_addr(&f.source).to_string());
        e.duration_secs = Some(cfg.block_secs);
        e.calls = Some(f.calls);
        e.baseline = Some(f.baseline_calls);
        e.cost = (f.cost > 0.0).then_some(f.cost);
        events.push(e);
    }
    Ok(events)
}

/// Ends blocks that ran out or were lifted with the CLI, and reports them.
pub fn sweep(maps: &mut Maps) -> anyhow::Result<Vec<Event>> {
    let now = boottime_ns();
    let mut events = Vec::new();
    for (key, until) in maps.intl_block_entries()? {
        if until <= now {
            let _ = maps.intl_blocks.remove(&key);
            let reason = if until == 0 { "manual" } else { "expired" };
            events.push(Event::new(Kind::IntlUnblock, reason, source_addr(&key).to_string()));
        }
    }
    Ok(events)
}

/// `sip-xdp intl list`: blocked sources and the seconds left.
pub fn list(maps: &Maps) -> anyhow::Result<Vec<(String, u64)>> {
    let now = boottime_ns();
    let mut rows: Vec<_> = maps
        .intl_block_entries()?
        .into_iter()
        .filter(|(_, until)| *until > now)
        .map(|(k, until)| (source_addr(&k).to_string(), (until - now).div_ceil(NS_PER_SEC)))
        .collect();
    rows.sort();
    Ok(rows)
}

/// `sip-xdp intl unblock SOURCE`: lifts at once; the controller reports it.
pub fn unblock(maps: &mut Maps, source: IpNet) -> anyhow::Result<String> {
    if source.prefix_len() != source.max_prefix_len() {
        return Err(user_error(format!("{source}: international blocks are per address, not per prefix")));
    }
    let key = match source.addr() {
        std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        std::net::IpAddr::V6(v6) => v6.octets(),
    };
    match maps.intl_blocks.get(&key, 0) {
        Ok(until) if until > boottime_ns() => {
            maps.intl_blocks.insert(key, 0, 0).context("cannot lift the block")?;
            Ok(format!("international calls unblocked for {}\n", source.addr()))
        }
        _ => Err(user_error(format!("{} has no international block (see `sip-xdp intl list`)", source.addr()))),
    }
}
