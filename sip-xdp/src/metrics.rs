//! The Prometheus exporter: `GET /metrics` on `[metrics] listen`. Counters
//! live in the kernel maps; each scrape reads them through the pinned maps
//! (its own handles, so it never contends with the daemon) and renders
//! them with the `prometheus` crate. Event counts (bans, expiries, config
//! reloads) are counted by the daemon in the same registry.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};

use anyhow::Context as _;
use aya::{maps::lpm_trie::Key, programs::loaded_programs};
use log::warn;
use prometheus::{CounterVec, Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};
use sip_xdp_common::{
    accounting::AuthOutcome,
    bans::BanReason,
    counts::{MethodCount, ResponseCount, COUNT_AUTH_BASE, COUNT_EVENTS_LOST, COUNT_FINGERPRINT_BASE},
    map_types::{DestAction, SourceKey},
    rules::RuleClass,
};

use crate::{
    clock::boottime_ns,
    events::{Event, Kind},
    maps::{source_addr, source_label, Maps},
    pin::PinDir,
};

/// Every metric the exporter serves.
pub struct Metrics {
    registry: Registry,
    packets: IntCounterVec,
    bytes: IntCounterVec,
    sip_requests: IntCounterVec,
    sip_responses: IntCounterVec,
    auth_responses: IntCounterVec,
    bans_active: IntGauge,
    bans_total: IntCounterVec,
    ban_expirations: IntCounter,
    allowlist_entries: IntGaugeVec,
    map_entries: IntGaugeVec,
    map_capacity: IntGaugeVec,
    source_packets: IntCounterVec,
    source_registers: IntCounterVec,
    trusted_dropped: IntCounter,
    program_run_seconds: CounterVec,
    program_runs: IntCounterVec,
    config_reloads: IntCounterVec,
    events_lost: IntCounter,
    destination_blocked: IntCounterVec,
    scanner_hits: IntCounterVec,
    intl_blocks_total: IntCounter,
    intl_blocks_active: IntGauge,
    /// How many of the busiest sources get their own series.
    pub top_sources: AtomicUsize,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
}

impl Metrics {
    pub fn new(top_sources: usize) -> anyhow::Result<Metrics> {
        let registry = Registry::new();
        macro_rules! reg {
            ($m:expr) => {{
                let m = $m;
                registry.register(Box::new(m.clone()))?;
                m
            }};
        }
        let m = Metrics {
            packets: reg!(IntCounterVec::new(
                opts("sipxdp_packets_total", "Packets seen by the XDP program, by action and reason."),
                &["action", "reason"]
            )?),
            bytes: reg!(IntCounterVec::new(
                opts("sipxdp_bytes_total", "Bytes seen by the XDP program, by action and reason."),
                &["action", "reason"]
            )?),
            sip_requests: reg!(IntCounterVec::new(
                opts(
                    "sipxdp_sip_requests_total",
                    "SIP requests arriving at the SIP ports, by method (dropped ones included)."
                ),
                &["method"]
            )?),
            sip_responses: reg!(IntCounterVec::new(
                opts("sipxdp_sip_responses_total", "SIP responses sent by the protected server, by code."),
                &["code"]
            )?),
            auth_responses: reg!(IntCounterVec::new(
                opts(
                    "sipxdp_auth_responses_total",
                    "Responses by what they said of their source's authentication: a challenge to a request without credentials, a rejection of credentials (failure), or a success."
                ),
                &["outcome"]
            )?),
            bans_active: reg!(IntGauge::with_opts(opts(
                "sipxdp_bans_active",
                "Bans in force (addresses and prefixes)."
            ))?),
            bans_total: reg!(IntCounterVec::new(
                opts("sipxdp_bans_total", "Bans reported by this controller, by reason."),
                &["reason"]
            )?),
            ban_expirations: reg!(IntCounter::with_opts(opts("sipxdp_ban_expirations_total", "Bans that ran out."))?),
            allowlist_entries: reg!(IntGaugeVec::new(
                opts(
                    "sipxdp_allowlist_entries",
                    "Rules (allowlist, limited and deny prefixes) in the kernel, by address family."
                ),
                &["family"]
            )?),
            map_entries: reg!(IntGaugeVec::new(opts("sipxdp_map_entries", "Entries in a kernel map."), &["map"])?),
            map_capacity: reg!(IntGaugeVec::new(opts("sipxdp_map_capacity", "Capacity of a kernel map."), &["map"])?),
            source_packets: reg!(IntCounterVec::new(
                opts("sipxdp_source_packets_total", "Packets to the SIP ports from each of the busiest sources."),
                &["source"]
            )?),
            source_registers: reg!(IntCounterVec::new(
                opts("sipxdp_source_registers_total", "REGISTERs from each of the busiest sources."),
                &["source"]
            )?),
            trusted_dropped: reg!(IntCounter::with_opts(opts(
                "sipxdp_trusted_dropped_packets_total",
                "Packets from sources of the trusted class that were dropped (should stay zero)."
            ))?),
            program_run_seconds: reg!(CounterVec::new(
                opts(
                    "sipxdp_program_run_seconds_total",
                    "Time the kernel spent in the program (needs [metrics] program_stats)."
                ),
                &["program"]
            )?),
            program_runs: reg!(IntCounterVec::new(
                opts("sipxdp_program_runs_total", "Runs of the program (needs [metrics] program_stats)."),
                &["program"]
            )?),
            config_reloads: reg!(IntCounterVec::new(
                opts("sipxdp_config_reloads_total", "Config reloads (SIGHUP), by result."),
                &["result"]
            )?),
            events_lost: reg!(IntCounter::with_opts(opts(
                "sipxdp_events_lost_total",
                "Ban events the kernel could not queue for the controller."
            ))?),
            destination_blocked: reg!(IntCounterVec::new(
                opts("sipxdp_destination_blocked_total", "INVITEs dropped by a destination block rule, by prefix."),
                &["prefix"]
            )?),
            intl_blocks_total: reg!(IntCounter::with_opts(opts(
                "sipxdp_intl_blocks_total",
                "Sources whose international calls were blocked after a spending anomaly."
            ))?),
            intl_blocks_active: reg!(IntGauge::with_opts(opts(
                "sipxdp_intl_blocks_active",
                "Sources whose international calls are blocked now."
            ))?),
            scanner_hits: reg!(IntCounterVec::new(
                opts(
                    "sipxdp_scanner_hits_total",
                    "Requests whose User-Agent matched a scanner fingerprint, by fingerprint."
                ),
                &["fingerprint"]
            )?),
            top_sources: AtomicUsize::new(top_sources),
            registry,
        };
        let build = IntGaugeVec::new(opts("sipxdp_build_info", "Build of the running controller."), &["version"])?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        m.registry.register(Box::new(build))?;
        // Series that exist from the start, so queries over them have data.
        for reason in BanReason::ALL {
            m.bans_total.with_label_values(&[reason.name()]);
        }
        for outcome in AuthOutcome::ALL.iter().filter(|o| **o != AuthOutcome::Nothing) {
            m.auth_responses.with_label_values(&[outcome.name()]);
        }
        for result in ["success", "failure"] {
            m.config_reloads.with_label_values(&[result]);
        }
        for program in ["ingress", "egress"] {
            m.program_run_seconds.with_label_values(&[program]);
            m.program_runs.with_label_values(&[program]);
        }
        Ok(m)
    }

    /// Counts what the daemon reports.
    pub fn observe(&self, event: &Event) {
        match event.kind {
            Kind::Ban => self.bans_total.with_label_values(&[event.reason]).inc(),
            Kind::Expire => self.ban_expirations.inc(),
            Kind::IntlBlock => self.intl_blocks_total.inc(),
            // Unreadable messages are counted by the kernel, every one (its
            // events are throttled).
            Kind::WouldBan
            | Kind::Unban
            | Kind::DestinationBlocked
            | Kind::IntlUnblock
            | Kind::Unreadable
            | Kind::FleetBanRefused => {}
        }
    }

    /// Adds series that only some configs have (the fleet's).
    pub fn register(&self, collector: Box<dyn prometheus::core::Collector>) -> anyhow::Result<()> {
        Ok(self.registry.register(collector)?)
    }

    pub fn reload(&self, ok: bool) {
        self.config_reloads.with_label_values(&[if ok { "success" } else { "failure" }]).inc();
    }

    /// Reads the kernel's counters into the registry.
    pub fn refresh(&self, maps: &Maps, programs: &[(&str, u32)]) -> anyhow::Result<()> {
        // Kernel counters only grow: a reset and a set keep Prometheus'
        // counter semantics.
        self.packets.reset();
        self.bytes.reset();
        for row in maps.stats()? {
            let labels = [row.action.name(), row.reason.name()];
            self.packets.with_label_values(&labels).inc_by(row.counter.packets);
            self.bytes.with_label_values(&labels).inc_by(row.counter.bytes);
        }
        for &method in MethodCount::ALL {
            set(&self.sip_requests.with_label_values(&[method.name()]), maps.count(method as u32)?);
        }
        for &code in ResponseCount::ALL {
            set(&self.sip_responses.with_label_values(&[code.name()]), maps.count(code as u32)?);
        }
        for &outcome in AuthOutcome::ALL.iter().filter(|o| **o != AuthOutcome::Nothing) {
            let counted = maps.count(COUNT_AUTH_BASE + outcome as u32)?;
            set(&self.auth_responses.with_label_values(&[outcome.name()]), counted);
        }
        set(&self.events_lost, maps.count(COUNT_EVENTS_LOST)?);
        let now = boottime_ns();
        self.intl_blocks_active.set(maps.intl_block_entries()?.iter().filter(|(_, until)| *until > now).count() as i64);
        self.scanner_hits.reset();
        for (i, fp) in maps.fingerprints.iter().enumerate() {
            let fp = fp?;
            if fp.len > 0 {
                let name = String::from_utf8_lossy(&fp.bytes[..fp.len as usize]).into_owned();
                self.scanner_hits.with_label_values(&[&name]).inc_by(maps.count(COUNT_FINGERPRINT_BASE + i as u32)?);
            }
        }
        self.destination_blocked.reset();
        for (prefix, rule) in maps.dest_entries()? {
            if rule.is(DestAction::Block) {
                self.destination_blocked.with_label_values(&[&prefix]).inc_by(maps.dest_count(rule.id)?);
            }
        }

        let now = boottime_ns();
        let rules = maps.rule_entries()?;
        let prefix_bans = maps.prefix_ban_entries()?.values().filter(|v| v.ban_in_force(now)).count();
        let address_bans = maps.ban_entries()?.iter().filter(|(_, b)| b.in_force(now)).count();
        self.bans_active.set((prefix_bans + address_bans) as i64);
        let family = |v4: bool| {
            rules.iter().filter(|(n, v)| !v.is(RuleClass::Banned) && matches!(n, ipnet::IpNet::V4(_)) == v4).count()
        };
        self.allowlist_entries.with_label_values(&["ipv4"]).set(family(true) as i64);
        self.allowlist_entries.with_label_values(&["ipv6"]).set(family(false) as i64);
        for (map, entries, capacity) in maps.utilisation()? {
            self.map_entries.with_label_values(&[map]).set(entries as i64);
            self.map_capacity.with_label_values(&[map]).set(capacity as i64);
        }

        let mut sources = maps.sources()?;
        let mut trusted_dropped = 0;
        for (key, stats) in &sources {
            if stats.dropped > 0 && is_trusted(maps, key) {
                trusted_dropped += stats.dropped;
            }
        }
        set(&self.trusted_dropped, trusted_dropped);
        sources.sort_by_key(|s| std::cmp::Reverse(s.1.packets));
        self.source_packets.reset();
        self.source_registers.reset();
        let v6_prefix = maps.v6_prefix();
        for (key, stats) in sources.iter().take(self.top_sources.load(Ordering::Relaxed)) {
            let source = source_label(key, v6_prefix);
            self.source_packets.with_label_values(&[&source]).inc_by(stats.packets);
            self.source_registers.with_label_values(&[&source]).inc_by(stats.registers);
        }

        for info in loaded_programs().flatten() {
            if let Some((name, _)) = programs.iter().find(|(_, id)| *id == info.id()) {
                let seconds = self.program_run_seconds.with_label_values(&[name]);
                seconds.reset();
                seconds.inc_by(info.run_time().as_secs_f64());
                set(&self.program_runs.with_label_values(&[name]), info.run_count());
            }
        }
        Ok(())
    }

    /// The text exposition format.
    pub fn render(&self) -> anyhow::Result<String> {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(String::from_utf8(out)?)
    }
}

fn set(counter: &IntCounter, value: u64) {
    counter.reset();
    counter.inc_by(value);
}

/// Is the source's rule (longest prefix, as the kernel matches) trusted?
fn is_trusted(maps: &Maps, key: &SourceKey) -> bool {
    let rule = match source_addr(key) {
        std::net::IpAddr::V4(v4) => maps.rules_v4.get(&Key::new(32, v4.octets()), 0).ok(),
        std::net::IpAddr::V6(v6) => maps.rules_v6.get(&Key::new(128, v6.octets()), 0).ok(),
    };
    rule.is_some_and(|r| r.is(RuleClass::Trusted))
}

/// Binds the metrics listener; done before anything else so a taken port
/// fails the start cleanly.
pub fn bind(listen: SocketAddr) -> anyhow::Result<tiny_http::Server> {
    tiny_http::Server::http(listen)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("cannot listen for metrics on {listen}"))
}

/// Serves `/metrics` on its own thread until the process ends.
pub fn serve(server: tiny_http::Server, metrics: Arc<Metrics>, pins: PinDir, programs: Vec<(&'static str, u32)>) {
    std::thread::spawn(move || {
        let mut maps: Option<Maps> = None;
        for request in server.incoming_requests() {
            if request.url() != "/metrics" {
                let _ = request.respond(tiny_http::Response::from_string("see /metrics\n").with_status_code(404));
                continue;
            }
            if maps.is_none() {
                maps = Maps::open(&pins).map_err(|e| warn!("metrics: {e:#}")).ok();
            }
            let body = match &maps {
                Some(m) => metrics.refresh(m, &programs).and_then(|()| metrics.render()),
                None => Err(anyhow::anyhow!("the pinned maps cannot be opened")),
            };
            let response = match body {
                Ok(text) => tiny_http::Response::from_string(text).with_header(
                    "Content-Type: text/plain; version=0.0.4; charset=utf-8"
                        .parse::<tiny_http::Header>()
                        .expect("static header"),
                ),
                Err(err) => {
                    warn!("metrics: {err:#}");
                    tiny_http::Response::from_string(format!("{err:#}\n")).with_status_code(500)
                }
            };
            let _ = request.respond(response);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_named_by_convention_and_present_from_the_start() {
        let text = Metrics::new(20).unwrap().render().unwrap();
        for name in [
            "sipxdp_bans_total",
            "sipxdp_build_info",
            "sipxdp_config_reloads_total",
            "sipxdp_program_runs_total",
            "sipxdp_program_run_seconds_total",
            "sipxdp_events_lost_total",
            "sipxdp_ban_expirations_total",
            "sipxdp_trusted_dropped_packets_total",
            "sipxdp_bans_active",
        ] {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name} missing:\n{text}");
        }
        for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
            let (name, kind) = (line.split(' ').nth(2).unwrap(), line.split(' ').nth(3).unwrap());
            assert!(name.starts_with("sipxdp_"));
            assert_eq!(name.ends_with("_total"), kind == "counter", "{line}");
        }
    }

    #[test]
    fn events_are_counted() {
        let m = Metrics::new(20).unwrap();
        let ev = |kind, reason| Event::new(kind, reason, "198.18.2.2".into());
        m.observe(&ev(Kind::Ban, "auth_failures"));
        m.observe(&ev(Kind::Ban, "auth_failures"));
        m.observe(&ev(Kind::Expire, "auth_failures"));
        m.reload(false);
        let text = m.render().unwrap();
        assert!(text.contains("sipxdp_bans_total{reason=\"auth_failures\"} 2"), "{text}");
        assert!(text.contains("sipxdp_ban_expirations_total 1"));
        assert!(text.contains("sipxdp_config_reloads_total{result=\"failure\"} 1"));
        assert!(text.contains("sipxdp_config_reloads_total{result=\"success\"} 0"));
    }
}
