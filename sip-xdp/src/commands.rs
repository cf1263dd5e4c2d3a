//! The commands that read or change a running instance's pinned maps, and
//! `check-config`.

use std::{fmt::Write as _, path::Path, time::Duration};

use ipnet::IpNet;
use serde_json::json;
use sip_xdp_common::{
    bans::BanReason,
    rules::{RuleValue, ORIGIN_CONFIG, ORIGIN_RUNTIME},
};

use crate::{
    bans,
    clock::boottime_ns,
    config::Config,
    error::user_error,
    intl,
    maps::{source_label, Maps, StatRow},
    pin::PinDir,
    rules::parse_cidr,
};

pub fn check_config(file: &Path) -> anyhow::Result<String> {
    let c = Config::load(file)?;
    Ok(format!(
        "{}: OK: interfaces {:?}, ports {:?}, default class {}, mode {:?}, sources_table_size {}, \
         rules {} IPv4 + {} IPv6 prefixes, profiles [{}]\n",
        file.display(),
        c.interfaces,
        c.filter.ports,
        c.default_class_label(),
        c.filter.mode,
        c.filter.sources_table_size,
        c.rules.count_v4(),
        c.rules.count_v6(),
        c.profiles.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
    ))
}

fn parse_arg(cidr: &str) -> anyhow::Result<IpNet> {
    parse_cidr(cidr).map_err(|e| user_error(e.0))
}

pub fn allow_add(pins: &PinDir, cidr: &str) -> anyhow::Result<String> {
    let net = parse_arg(cidr)?;
    let mut maps = Maps::open(pins)?;
    let old = maps.rule_entries()?.get(&net).copied().unwrap_or_default();
    if old.origin & ORIGIN_RUNTIME != 0 {
        return Ok(format!("{net} is already on the allowlist\n"));
    }
    maps.insert_rule(net, RuleValue { origin: old.origin | ORIGIN_RUNTIME, ..old })?;
    Ok(format!("allowed {net}\n"))
}

pub fn allow_del(pins: &PinDir, cidr: &str) -> anyhow::Result<String> {
    let net = parse_arg(cidr)?;
    let mut maps = Maps::open(pins)?;
    let Some(old) = maps.rule_entries()?.get(&net).copied() else {
        return Err(user_error(format!("{net} is not on the allowlist (see `sip-xdp allow list`)")));
    };
    maps.remove_rule(net)?;
    let mut out = format!("removed {net}\n");
    if old.origin & ORIGIN_CONFIG != 0 {
        out.push_str(&format!(
            "note: {net} comes from the config file; it returns at the next reload or restart unless removed there\n"
        ));
    }
    Ok(out)
}

fn origin_names(origin: u8) -> Vec<&'static str> {
    let mut names = Vec::new();
    if origin & ORIGIN_CONFIG != 0 {
        names.push("config");
    }
    if origin & ORIGIN_RUNTIME != 0 {
        names.push("runtime");
    }
    names
}

pub fn allow_list(pins: &PinDir, as_json: bool) -> anyhow::Result<String> {
    let entries = Maps::open(pins)?.rule_entries()?;
    if as_json {
        let list: Vec<_> =
            entries.iter().map(|(net, v)| json!({"cidr": net.to_string(), "origin": origin_names(v.origin)})).collect();
        return Ok(format!("{}\n", serde_json::to_string_pretty(&list)?));
    }
    let mut out = format!("{:<44} ORIGIN\n", "CIDR");
    for (net, v) in &entries {
        writeln!(out, "{:<44} {}", net.to_string(), origin_names(v.origin).join(","))?;
    }
    writeln!(out, "{} entries", entries.len())?;
    Ok(out)
}

/// `detach`: takes off what a controller that is gone left in force.
pub fn detach(pins: &PinDir) -> anyhow::Result<String> {
    if !pins.root().is_dir() {
        return Ok(format!("nothing pinned at {}: nothing to detach\n", pins.root().display()));
    }
    // Held by a running controller, which detaches when stopped: taking
    // the filter from under it would leave it managing nothing.
    let _lock = pins.lock()?;
    let detached = crate::attach::detach_left_behind(pins);
    Ok(if detached.is_empty() {
        "nothing was attached\n".to_string()
    } else {
        format!("detached from {}; the maps stay pinned in {}\n", detached.join(", "), pins.root().display())
    })
}

pub fn stats(pins: &PinDir, as_json: bool) -> anyhow::Result<String> {
    let rows = Maps::open(pins)?.stats()?;
    let interfaces = pins.pinned_links();
    if as_json {
        return Ok(format!("{}\n", serde_json::to_string_pretty(&stats_document(&rows, &interfaces))?));
    }
    let mut out = String::new();
    if interfaces.is_empty() {
        writeln!(out, "attached: none (the filter is not in force)")?;
    } else {
        writeln!(out, "attached: {}", interfaces.join(", "))?;
    }
    writeln!(out, "{:<11} {:<19} {:>14} {:>16}", "ACTION", "REASON", "PACKETS", "BYTES")?;
    for r in rows.iter().filter(|r| r.counter.packets > 0) {
        writeln!(
            out,
            "{:<11} {:<19} {:>14} {:>16}",
            r.action.name(),
            r.reason.name(),
            r.counter.packets,
            r.counter.bytes
        )?;
    }
    let total: u64 = rows.iter().map(|r| r.counter.packets).sum();
    writeln!(out, "total packets: {total}")?;
    Ok(out)
}

/// The counters as `stats --json` prints them and the API's `/v1/stats`
/// returns them.
pub fn stats_document(rows: &[StatRow], interfaces: &[String]) -> serde_json::Value {
    let counters: Vec<_> = rows
        .iter()
        .map(|r| {
            json!({"action": r.action.name(), "reason": r.reason.name(),
                   "packets": r.counter.packets, "bytes": r.counter.bytes})
        })
        .collect();
    json!({"attached": interfaces, "counters": counters})
}

pub fn sources(pins: &PinDir, top: usize, as_json: bool) -> anyhow::Result<String> {
    let maps = Maps::open(pins)?;
    let v6_prefix = maps.v6_prefix();
    let mut sources = maps.sources()?;
    sources.sort_by(|a, b| b.1.packets.cmp(&a.1.packets).then(a.0.cmp(&b.0)));
    let total = sources.len();
    sources.truncate(top);
    let now = boottime_ns();
    let ago = |ns: u64| Duration::from_nanos(now.saturating_sub(ns)).as_secs();
    if as_json {
        let list: Vec<_> = sources
            .iter()
            .map(|(k, s)| {
                json!({"source": source_label(k, v6_prefix), "packets": s.packets, "bytes": s.bytes,
                       "registers": s.registers, "dropped": s.dropped, "last_seen_secs_ago": ago(s.last_seen_ns)})
            })
            .collect();
        return Ok(format!("{}\n", serde_json::to_string_pretty(&list)?));
    }
    let mut out = format!(
        "{:<40} {:>12} {:>14} {:>10} {:>12} {:>10}\n",
        "SOURCE", "PACKETS", "BYTES", "REGISTERS", "DROPPED", "LAST SEEN"
    );
    for (k, s) in &sources {
        writeln!(
            out,
            "{:<40} {:>12} {:>14} {:>10} {:>12} {:>9}s",
            source_label(k, v6_prefix),
            s.packets,
            s.bytes,
            s.registers,
            s.dropped,
            ago(s.last_seen_ns)
        )?;
    }
    writeln!(out, "{} of {total} sources shown", sources.len())?;
    Ok(out)
}

pub fn ban_add(pins: &PinDir, target: &str, duration: Option<u64>) -> anyhow::Result<String> {
    let net = parse_arg(target)?;
    bans::add(&mut Maps::open(pins)?, net, duration, BanReason::Manual)
}

pub fn ban_del(pins: &PinDir, target: &str) -> anyhow::Result<String> {
    let net = parse_arg(target)?;
    bans::del(&mut Maps::open(pins)?, net)
}

/// The bans as `ban list --json` prints them and the API's `/v1/bans`
/// returns them.
pub fn ban_rows_document(rows: &[bans::BanRow], origins: &crate::fleet::origin::Origins) -> serde_json::Value {
    let list: Vec<_> = rows
        .iter()
        .map(|r| {
            let mut row = json!({"source": r.source, "reason": r.reason, "remaining_secs": r.remaining_secs,
                   "dropped": r.dropped, "offenses": r.offenses});
            if let Some(origin) = origins.get(&r.source) {
                row["origin"] = json!(origin);
            }
            row
        })
        .collect();
    serde_json::Value::Array(list)
}

pub fn ban_list(pins: &PinDir, as_json: bool) -> anyhow::Result<String> {
    let rows = bans::list(&Maps::open(pins)?)?;
    // Bans from other edges of a fleet name the edge; others are as ever.
    let origins = crate::fleet::origin::Origins::new(pins);
    if as_json {
        return Ok(format!("{}\n", serde_json::to_string_pretty(&ban_rows_document(&rows, &origins))?));
    }
    let mut out =
        format!("{:<44} {:<14} {:>10} {:>12} {:>9}\n", "SOURCE", "REASON", "REMAINING", "DROPPED", "OFFENSES");
    for r in &rows {
        let remaining = r.remaining_secs.map_or("-".to_string(), |s| format!("{s}s"));
        let dropped = r.dropped.map_or("-".to_string(), |d| d.to_string());
        write!(out, "{:<44} {:<14} {:>10} {:>12} {:>9}", r.source, r.reason, remaining, dropped, r.offenses)?;
        match origins.get(&r.source) {
            Some(origin) => writeln!(out, " origin={origin}")?,
            None => writeln!(out)?,
        }
    }
    writeln!(out, "{} active bans", rows.len())?;
    Ok(out)
}

pub fn intl_list(pins: &PinDir, as_json: bool) -> anyhow::Result<String> {
    let rows = intl::list(&Maps::open(pins)?)?;
    if as_json {
        let list: Vec<_> = rows.iter().map(|(s, secs)| json!({"source": s, "remaining_secs": secs})).collect();
        return Ok(format!("{}\n", serde_json::to_string_pretty(&list)?));
    }
    let mut out = format!("{:<40} {:>10}\n", "SOURCE", "REMAINING");
    for (source, secs) in &rows {
        writeln!(out, "{source:<40} {:>9}s", secs)?;
    }
    writeln!(out, "{} sources with international calls blocked", rows.len())?;
    Ok(out)
}

pub fn intl_unblock(pins: &PinDir, source: &str) -> anyhow::Result<String> {
    let net = parse_arg(source)?;
    intl::unblock(&mut Maps::open(pins)?, net)
}

/// Where the package puts the config: `doctor` reads its interfaces
/// when no other config is named.
pub const PACKAGED_CONFIG: &str = "/etc/sip-xdp/sip-xdp.toml";

/// `sip-xdp doctor`: the report on stdout; status 1 if `run` could not
/// start on this kernel.
pub fn doctor(
    pin_dir: &Path,
    config: Option<&Path>,
    interfaces: Vec<String>,
    try_attach: bool,
) -> anyhow::Result<String> {
    let interfaces = if !interfaces.is_empty() {
        interfaces
    } else if let Some(file) = config {
        Config::load(file)?.interfaces
    } else if Path::new(PACKAGED_CONFIG).exists() {
        Config::load(Path::new(PACKAGED_CONFIG))?.interfaces
    } else {
        Vec::new()
    };
    let (report, ready) = crate::doctor::report(pin_dir, &interfaces, try_attach);
    if !ready {
        print!("{report}");
        return Err(anyhow::anyhow!("this kernel cannot run sip-xdp (see above)"));
    }
    Ok(report)
}
