//! `sip-xdp run`: load, apply the config, attach, then serve signals until
//! told to stop. The kernel keeps filtering if this process dies; a new run
//! adopts what it left pinned.

use std::{collections::BTreeMap, ffi::CString, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context as _;
use aya::{maps::RingBuf, Ebpf};
use log::{error, info, warn};
use sip_xdp_common::{
    dialled::intl_prefixes,
    fingerprint::Fingerprint,
    maps::{
        dest_applies_profile, DestRule, FilterConfig, RateProfile, DEFAULT_ACTION_DROP, DEFAULT_ACTION_PASS,
        DEST_ALLOW, DEST_APPLIES_TRUSTED, DEST_BLOCK, DEST_COST_ONLY, EVENTS_MAP, MAX_PORTS, MODE_ENFORCE, MODE_MONITOR, NS_PER_SEC,
    },
};
use tokio::{
    signal::unix::{signal, SignalKind},
    sync::mpsc::{unbounded_channel, UnboundedReceiver},
};

use crate::{
    allowlist::Class,
    bans, intl,
    config::{Config, DefaultAction, Mode},
    events::{Event, EventSink},
    error::user_error,
    loader::{self, AttachMode, Attached},
    maps::{AllowPlan, FilterTarget, Maps},
    metrics::{self, Metrics},
    pin::PinDir,
};

pub struct RunOptions {
    pub config: PathBuf,
    pub interfaces: Vec<String>,
    pub pin_dir: PinDir,
    pub mode: AttachMode,
}

/// The fast-path form of the config's filter settings.
pub fn filter_config(cfg: &Config) -> FilterConfig {
    let mut out = FilterConfig::EMPTY;
    for (slot, port) in out.ports.iter_mut().zip(&cfg.ports) {
        *slot = *port;
    }
    out.port_count = cfg.ports.len().min(MAX_PORTS) as u8;
    out.default_action = match cfg.default_action {
        DefaultAction::Drop => DEFAULT_ACTION_DROP,
        DefaultAction::Pass => DEFAULT_ACTION_PASS,
    };
    out.mode = match cfg.mode {
        Mode::Enforce => MODE_ENFORCE,
        Mode::Monitor => MODE_MONITOR,
    };
    (out.default_class, out.default_profile) = cfg.default_class.kernel();
    out.ban_after_excess = cfg.ban.after_excess;
    out.ban_window_ns = cfg.ban.window_secs * NS_PER_SEC;
    out.ban_duration_ns = cfg.ban.duration_secs * NS_PER_SEC;
    out.ban_max_duration_ns = cfg.ban.max_duration_secs * NS_PER_SEC;
    out.auth_max = cfg.auth_failures.max;
    out.auth_window_ns = cfg.auth_failures.window_secs * NS_PER_SEC;
    let prefixes: Vec<&str> = cfg.destinations.international_prefixes.iter().map(String::as_str).collect();
    out.intl = intl_prefixes(&prefixes);
    out.dest_applies = cfg.destinations.applies_to.iter().fold(0, |mask, class| {
        mask | match class {
            Class::Trusted => DEST_APPLIES_TRUSTED,
            Class::Limited(p) => dest_applies_profile(*p),
            Class::Deny => 0,
        }
    });
    out.dest_allow_only = (!cfg.destinations.allow_only.is_empty()) as u8;
    out
}

/// The kernel form of the destination rules: digits → action and the id of
/// the rule's counter (block rules first, then allow rules, in config order),
/// with costs. A cost for a prefix that is no rule becomes a rule of its own
/// that inherits the action of the longest rule covering it, so it never
/// shadows that rule in the longest-prefix match.
pub fn dest_rules(cfg: &Config) -> BTreeMap<String, DestRule> {
    let d = &cfg.destinations;
    let milli = |digits: &str| d.cost.get(digits).map_or(0, |c| (c * 1000.0).round() as u32);
    let mut rules: BTreeMap<String, DestRule> = d
        .block
        .iter()
        .map(|p| (p, DEST_BLOCK))
        .chain(d.allow_only.iter().map(|p| (p, DEST_ALLOW)))
        .enumerate()
        .map(|(id, (digits, action))| (digits.clone(), DestRule { action, id: id as u16, cost_milli: milli(digits), _pad: 0 }))
        .collect();
    let mut next_id = rules.len() as u16;
    for digits in d.cost.keys() {
        if rules.contains_key(digits) {
            continue;
        }
        let cover = rules
            .iter()
            .filter(|(p, r)| digits.starts_with(p.as_str()) && r.action != DEST_COST_ONLY)
            .max_by_key(|(p, _)| p.len())
            .map(|(_, r)| *r);
        let rule = match cover {
            Some(r) => DestRule { cost_milli: milli(digits), ..r },
            None => {
                next_id += 1;
                DestRule { action: DEST_COST_ONLY, id: next_id - 1, cost_milli: milli(digits), _pad: 0 }
            }
        };
        rules.insert(digits.clone(), rule);
    }
    rules
}

/// The kernel form of the rate profiles, in index order.
pub fn rate_profiles(cfg: &Config) -> Vec<RateProfile> {
    cfg.profiles.iter().map(|p| p.rates).collect()
}

/// Makes the kernel state match `cfg` so that no source allowed both
/// before and after is refused in between: profiles and new or changed
/// prefixes go in first, then the filter settings, and only then do stale
/// prefixes go.
pub fn apply(maps: &mut impl FilterTarget, cfg: &Config) -> anyhow::Result<AllowPlan> {
    maps.write_profiles(&rate_profiles(cfg))?;
    maps.write_dest_rules(&dest_rules(cfg))?;
    let fingerprints: Vec<Fingerprint> = cfg.user_agents.iter().filter_map(|u| Fingerprint::new(u)).collect();
    maps.write_fingerprints(&fingerprints)?;
    let plan = AllowPlan::new(&maps.allow_entries()?, &cfg.rules);
    maps.allow_insert_all(&plan.add)?;
    maps.write_config(&filter_config(cfg))?;
    for (net, keep) in &plan.retire {
        match keep {
            Some(value) => maps.allow_insert(*net, *value)?,
            None => maps.allow_remove(*net)?,
        }
    }
    // Clears the index bits of what was removed, here or since the last
    // start (`allow del`, lifted prefix bans).
    maps.rebuild_allow_index()?;
    Ok(plan)
}

/// One line on an applied config, for the log.
fn summary(cfg: &Config, plan: &AllowPlan) -> String {
    format!(
        "{}: ports {:?}, default class {}, mode {:?}, rules {} IPv4 + {} IPv6 prefixes (+{} -{})",
        cfg.path.display(),
        cfg.ports,
        default_class_label(cfg),
        cfg.mode,
        cfg.rules.count_v4(),
        cfg.rules.count_v6(),
        plan.add.len(),
        plan.retire.len()
    )
}

/// "deny (drop)", "deny (pass)" or the default profile's name.
pub fn default_class_label(cfg: &Config) -> String {
    match cfg.default_class {
        Class::Deny => format!("deny ({:?})", cfg.default_action).to_lowercase(),
        class => cfg.class_name(class),
    }
}

fn check_interfaces(interfaces: &[String]) -> anyhow::Result<()> {
    if interfaces.is_empty() {
        return Err(user_error(
            "no interface to attach to: list them in `interfaces` in the config or pass --iface",
        ));
    }
    for name in interfaces {
        let c = CString::new(name.as_str()).map_err(|_| user_error(format!("bad interface name {name:?}")))?;
        // SAFETY: c is a valid NUL-terminated string.
        if unsafe { libc::if_nametoindex(c.as_ptr()) } == 0 {
            return Err(user_error(format!("no such interface: {name}")));
        }
    }
    Ok(())
}

pub async fn run(opts: RunOptions) -> anyhow::Result<()> {
    // Everything that can be wrong with the input is checked before the
    // kernel is touched.
    let cfg = Config::load(&opts.config)?;
    let interfaces = if opts.interfaces.is_empty() { cfg.interfaces.clone() } else { opts.interfaces.clone() };
    check_interfaces(&interfaces)?;

    let pins = &opts.pin_dir;
    if pins.prepare()? {
        info!(
            "mounted a bpffs for {} (it was on none); under `ip netns exec` that mount is private to \
             this process, so pass a --pin-dir on a bpffs mounted outside /sys to share it",
            pins.root().display()
        );
    }
    let _lock = pins.lock()?;
    let metrics_server = metrics::bind(cfg.metrics.listen)?;
    let adopting = !pins.pinned_links().is_empty();
    info!(
        "loading the XDP program ({} pinned state in {})",
        if adopting { "adopting" } else { "fresh" },
        pins.root().display()
    );
    let mut ebpf = loader::load(Some(pins), cfg.sources_table_size)?;
    start_log_forwarding(&mut ebpf);
    let kernel_events = start_event_forwarding(&mut ebpf)?;
    let mut maps = Maps::from_ebpf(&mut ebpf, Some(pins))?;
    let plan = apply(&mut maps, &cfg)?;
    info!("config {}", summary(&cfg, &plan));
    for (interface, how) in loader::attach(&mut ebpf, pins, &interfaces, opts.mode)? {
        match how {
            Attached::Adopted => info!("{interface}: adopted the pinned filter (no gap in filtering)"),
            Attached::New(mode) => info!("{interface}: attached in {mode:?} mode"),
        }
    }
    let _stats = program_stats(cfg.metrics.program_stats);
    let programs = vec![
        ("ingress", loader::ingress(&mut ebpf)?.info()?.id()),
        ("egress", loader::egress(&mut ebpf)?.info()?.id()),
    ];
    let metrics = Arc::new(Metrics::new(cfg.metrics.top_sources)?);
    metrics::serve(metrics_server, Arc::clone(&metrics), pins.clone(), programs);
    info!("metrics on http://{}/metrics", cfg.metrics.listen);
    info!("filtering; SIGHUP reloads {}, SIGINT/SIGTERM detach and exit", cfg.path.display());

    let result = serve(&mut maps, cfg, kernel_events, &metrics).await;
    loader::detach(pins, &interfaces);
    drop(ebpf);
    info!("detached from {}", interfaces.join(", "));
    result
}

/// How often bans are swept: expiries are reported within this.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Signals, kernel events and the ban sweep, until SIGINT/SIGTERM.
async fn serve(
    maps: &mut Maps,
    mut cfg: Config,
    mut kernel_events: UnboundedReceiver<Event>,
    metrics: &Metrics,
) -> anyhow::Result<()> {
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut hangup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    let mut sink = EventSink::new(&cfg.events);
    let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
    let mut prefix_bans = std::collections::BTreeSet::new();
    let mut detectors = intl::Detectors::default();
    let mut anomaly_tick = tokio::time::interval(Duration::from_secs(cfg.anomaly.check_secs));
    anomaly_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interrupt.recv() => { info!("SIGINT received"); return Ok(()); }
            _ = terminate.recv() => { info!("SIGTERM received"); return Ok(()); }
            _ = hangup.recv() => {
                let events = cfg.events.clone();
                let (new, ok) = reload(maps, cfg);
                cfg = new;
                metrics.reload(ok);
                metrics.top_sources.store(cfg.metrics.top_sources, std::sync::atomic::Ordering::Relaxed);
                if cfg.events != events {
                    sink = EventSink::new(&cfg.events);
                }
            }
            Some(event) = kernel_events.recv() => {
                metrics.observe(&event);
                sink.emit(&event);
            }
            _ = anomaly_tick.tick() => {
                match intl::check(maps, &mut detectors, &cfg) {
                    Ok(events) => events.iter().for_each(|e| {
                        metrics.observe(e);
                        sink.emit(e);
                    }),
                    Err(err) => warn!("spend-anomaly check failed: {err:#}"),
                }
            }
            _ = sweep.tick() => {
                let swept = bans::sweep(maps, &cfg.rules, cfg.ban.max_duration_secs * NS_PER_SEC, &mut prefix_bans)
                    .and_then(|mut events| {
                        events.extend(intl::sweep(maps)?);
                        Ok(events)
                    });
                match swept {
                    Ok(events) => events.iter().for_each(|e| {
                        metrics.observe(e);
                        sink.emit(e);
                    }),
                    Err(err) => warn!("ban sweep failed: {err:#}"),
                }
            }
        }
    }
}

/// Switches on the kernel's run-time statistics for BPF programs while the
/// returned fd lives (they cost a little per packet, hence opt-in).
fn program_stats(enable: bool) -> Option<std::os::fd::OwnedFd> {
    if !enable {
        return None;
    }
    match aya::sys::enable_stats(aya::sys::Stats::RunTime) {
        Ok(fd) => Some(fd),
        Err(err) => {
            warn!("cannot switch on BPF run-time statistics: {err}");
            None
        }
    }
}

/// Reads the kernel's event ring buffer and forwards decoded events.
fn start_event_forwarding(ebpf: &mut Ebpf) -> anyhow::Result<UnboundedReceiver<Event>> {
    let map = ebpf.take_map(EVENTS_MAP).ok_or_else(|| anyhow::anyhow!("the program has no map {EVENTS_MAP}"))?;
    let ring = RingBuf::try_from(map).context("event ring buffer")?;
    // SAFETY: the ring buffer owns its fd and keeps it open, and the same,
    // until it is dropped together with the AsyncFd.
    let mut fd = unsafe { tokio::io::unix::AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
        .context("cannot poll the event ring buffer")?;
    let (tx, rx) = unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok(mut guard) = fd.readable_mut().await else { return };
            let ring = guard.get_inner_mut();
            while let Some(record) = ring.next() {
                if let Some(event) = Event::from_kernel(&record) {
                    if tx.send(event).is_err() {
                        return;
                    }
                }
            }
            guard.clear_ready();
        }
    });
    Ok(rx)
}

/// Applies the config file anew; on any error the running config stays.
/// Returns the config in force and whether the reload succeeded.
fn reload(maps: &mut Maps, current: Config) -> (Config, bool) {
    let new = match Config::load(&current.path) {
        Ok(new) => new,
        Err(err) => {
            error!("reload failed, keeping the running config: {err:#}");
            return (current, false);
        }
    };
    if new.interfaces != current.interfaces {
        warn!("reload: `interfaces` changed; restart sip-xdp to attach to the new set");
    }
    if new.sources_table_size != current.sources_table_size {
        warn!("reload: `sources_table_size` changed; it takes effect at the next start");
    }
    if new.metrics.listen != current.metrics.listen || new.metrics.program_stats != current.metrics.program_stats {
        warn!("reload: `metrics.listen` and `metrics.program_stats` take effect at the next start");
    }
    match apply(maps, &new) {
        Ok(plan) => {
            info!("reloaded {}", summary(&new, &plan));
            (new, true)
        }
        Err(err) => {
            error!("reload failed while applying: {err:#}");
            (current, false)
        }
    }
}

/// Forwards the program's aya-log records to this process's logger.
fn start_log_forwarding(ebpf: &mut Ebpf) {
    let logger = match aya_log::EbpfLogger::init(ebpf) {
        Ok(logger) => logger,
        Err(err) => {
            warn!("eBPF log forwarding unavailable: {err}");
            return;
        }
    };
    // SAFETY: the logger owns its ring buffer's fd and keeps it open, and
    // the same, until it is dropped together with the AsyncFd.
    let registered =
        unsafe { tokio::io::unix::AsyncFd::register_with_interest(logger, tokio::io::Interest::READABLE) };
    let mut fd = match registered {
        Ok(fd) => fd,
        Err(err) => {
            warn!("eBPF log forwarding unavailable: {err}");
            return;
        }
    };
    tokio::spawn(async move {
        loop {
            let Ok(mut guard) = fd.readable_mut().await else { return };
            guard.get_inner_mut().flush();
            guard.clear_ready();
        }
    });
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, net::IpAddr, path::Path};

    use ipnet::IpNet;
    use sip_xdp_common::maps::{AllowValue, ORIGIN_CONFIG, ORIGIN_RUNTIME};

    use super::*;

    /// An in-memory allowlist that, after every write, checks that each
    /// probe address allowed by both the old and the new config is allowed.
    struct Fake {
        entries: BTreeMap<IpNet, AllowValue>,
        config: Option<FilterConfig>,
        must_stay_allowed: Vec<IpAddr>,
        writes: usize,
    }

    impl Fake {
        fn check(&mut self) -> anyhow::Result<()> {
            self.writes += 1;
            for addr in &self.must_stay_allowed {
                assert!(
                    self.entries.keys().any(|n| n.contains(addr)),
                    "{addr} was refused after write {}",
                    self.writes
                );
            }
            Ok(())
        }
    }

    impl FilterTarget for Fake {
        fn allow_entries(&self) -> anyhow::Result<BTreeMap<IpNet, AllowValue>> {
            Ok(self.entries.clone())
        }
        fn allow_insert(&mut self, net: IpNet, value: AllowValue) -> anyhow::Result<()> {
            self.entries.insert(net, value);
            self.check()
        }
        fn allow_remove(&mut self, net: IpNet) -> anyhow::Result<()> {
            self.entries.remove(&net);
            self.check()
        }
        fn rebuild_allow_index(&mut self) -> anyhow::Result<()> {
            self.check()
        }
        fn write_config(&mut self, cfg: &FilterConfig) -> anyhow::Result<()> {
            self.config = Some(*cfg);
            self.check()
        }
        fn write_profiles(&mut self, _: &[RateProfile]) -> anyhow::Result<()> {
            self.check()
        }
        fn write_dest_rules(&mut self, _: &BTreeMap<String, DestRule>) -> anyhow::Result<()> {
            self.check()
        }
        fn write_fingerprints(&mut self, _: &[Fingerprint]) -> anyhow::Result<()> {
            self.check()
        }
    }

    fn config(cidrs: &[&str]) -> Config {
        let list: Vec<String> = cidrs.iter().map(|c| format!("\"{c}\"")).collect();
        Config::parse(Path::new("t.toml"), &format!("[allow]\ncidrs = [{}]\n", list.join(","))).unwrap()
    }

    fn allowed(cidrs: &[&str], addr: &IpAddr) -> bool {
        cidrs.iter().any(|c| c.parse::<IpNet>().unwrap().contains(addr))
    }

    #[test]
    fn no_source_allowed_before_and_after_is_refused_in_between() {
        let configs: [&[&str]; 5] = [
            &["198.18.1.2/32", "2001:db8:1::/48"],
            &["198.18.1.0/24"],
            &["198.18.0.0/16", "2001:db8::/32"],
            &["198.18.1.2/32", "198.18.9.0/24"],
            &[],
        ];
        let probes: Vec<IpAddr> = ["198.18.1.2", "198.18.1.77", "198.18.9.1", "198.18.200.1", "2001:db8:1::5", "2001:db8:2::5"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        for from in configs {
            for to in configs {
                let mut fake = Fake { entries: BTreeMap::new(), config: None, must_stay_allowed: vec![], writes: 0 };
                apply(&mut fake, &config(from)).unwrap();
                // A runtime entry must survive every reload.
                fake.entries.insert("203.0.113.7/32".parse().unwrap(), AllowValue { origin: ORIGIN_RUNTIME, ..Default::default() });
                fake.must_stay_allowed = probes.iter().filter(|a| allowed(from, a) && allowed(to, a)).copied().collect();
                fake.must_stay_allowed.push("203.0.113.7".parse().unwrap());
                apply(&mut fake, &config(to)).unwrap();
                let config_entries: Vec<String> = fake
                    .entries
                    .iter()
                    .filter(|(_, v)| v.origin & ORIGIN_CONFIG != 0)
                    .map(|(n, _)| n.to_string())
                    .collect();
                let mut want: Vec<String> = to.iter().map(|s| s.to_string()).collect();
                want.sort();
                let mut got = config_entries.clone();
                got.sort();
                assert_eq!(got, want, "{from:?} -> {to:?}");
                assert!(fake.config.is_some());
            }
        }
    }

    #[test]
    fn costs_inherit_the_rule_that_covers_them() {
        let c = Config::parse(
            Path::new("t.toml"),
            "[destinations]\nblock = [\"252\"]\nallow_only = [\"44\"]\n[destinations.cost]\n\"252\" = 2.5\n\"447\" = 0.2\n\"49\" = 0.05\n",
        )
        .unwrap();
        let rules = dest_rules(&c);
        assert_eq!((rules["252"].action, rules["252"].cost_milli), (DEST_BLOCK, 2500));
        assert_eq!((rules["447"].action, rules["447"].id, rules["447"].cost_milli), (DEST_ALLOW, rules["44"].id, 200), "inherits 44");
        assert_eq!((rules["49"].action, rules["49"].cost_milli), (DEST_COST_ONLY, 50));
        assert_ne!(rules["49"].id, rules["252"].id);
    }

    #[test]
    fn filter_config_carries_ports_action_and_mode() {
        let c = Config::parse(
            Path::new("t.toml"),
            "[filter]\nports = [5060, 5080]\ndefault_action = \"pass\"\nmode = \"monitor\"\n",
        )
        .unwrap();
        let f = filter_config(&c);
        assert_eq!(&f.ports[..3], &[5060, 5080, 0]);
        assert_eq!(f.port_count, 2);
        assert_eq!(f.default_action, DEFAULT_ACTION_PASS);
        assert_eq!(f.mode, MODE_MONITOR);
    }
}
