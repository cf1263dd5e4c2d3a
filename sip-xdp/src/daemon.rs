//! `sip-xdp run`: load, apply the config, attach, then serve signals until
//! told to stop. The kernel keeps filtering if this process dies; a new run
//! adopts what it left pinned. SIGTERM detaches; SIGUSR2 leaves the filter
//! in force on purpose, for a new binary to adopt (package upgrades).

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use aya::{maps::RingBuf, Ebpf};
use log::{info, warn};
use sip_xdp_common::{
    bans::BanReason,
    kernel_config::{Mode, NS_PER_SEC},
    registry::private_names::SIP_EVENTS,
};
use tokio::{
    signal::unix::{signal, Signal, SignalKind},
    sync::mpsc::{unbounded_channel, UnboundedReceiver},
};

use crate::{
    api::{self, answer::answer},
    apply::{apply, reload, summary},
    attach::{self, AttachMode, Attached, EgressAttach},
    bans,
    config::{Api, Config},
    crowdsec::{self, Bouncer, Pull},
    escalation::{self, Escalation},
    events::{Event, EventSink},
    fleet::{store::Inbound, Fleet},
    intl, loader,
    maps::Maps,
    metrics::{self, Metrics},
    pin::PinDir,
    systemd,
};

pub struct RunOptions {
    pub config: PathBuf,
    pub interfaces: Vec<String>,
    pub pin_dir: PinDir,
    pub mode: AttachMode,
    pub egress: EgressAttach,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// SIGINT/SIGTERM: the filter is off the interfaces.
    Detached,
    /// SIGUSR2: the filter is left attached and pinned, and the next run
    /// adopts it; the process exits with [`crate::error::HANDED_OVER`].
    HandedOver,
}

pub async fn run(opts: RunOptions) -> anyhow::Result<Stopped> {
    // Everything that can be wrong with the input is checked before the
    // kernel is touched.
    let cfg = Config::load(&opts.config)?;
    // Caught from now on: a SIGHUP (`systemctl reload`) or SIGTERM that
    // comes while the programs load waits for the loop instead of killing
    // the process half-started.
    let signals = Signals::catch()?;
    let interfaces = if opts.interfaces.is_empty() { cfg.interfaces.clone() } else { opts.interfaces.clone() };
    loader::check_interfaces(&interfaces)?;
    crate::features::require()?;

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
    let api_server = cfg.api.as_ref().map(api::bind).transpose()?;
    let adopting = !pins.pinned_links().is_empty();
    info!(
        "loading the XDP program ({} pinned state in {})",
        if adopting { "adopting" } else { "fresh" },
        pins.root().display()
    );
    let mut ebpf = loader::load(Some(pins), cfg.filter.sources_table_size)?;
    start_log_forwarding(&mut ebpf);
    let kernel_events = start_event_forwarding(&mut ebpf)?;
    let mut maps = Maps::from_ebpf(&mut ebpf, Some(pins))?;
    let moved = bans::move_prefix_bans_out_of_rules(&mut maps)?;
    if moved > 0 {
        info!("moved {moved} prefix ban(s) out of the rule tries (no rule shadows a ban any more)");
    }
    let plan = apply(&mut maps, &cfg)?;
    info!("config {}", summary(&cfg, &plan));
    for (interface, how, egress) in attach::attach(&mut ebpf, pins, &interfaces, opts.mode, opts.egress)? {
        match how {
            Attached::Adopted => info!("{interface}: adopted the pinned filter (no gap in filtering)"),
            Attached::New(mode) => info!("{interface}: attached in {mode:?} mode"),
        }
        info!("{interface}: egress observer {}", egress.describe());
    }
    let _stats = program_stats(cfg.metrics.program_stats);
    let programs = vec![
        ("ingress", loader::ingress(&mut ebpf)?.info()?.id()),
        ("egress", loader::egress(&mut ebpf)?.info()?.id()),
    ];
    let metrics = Arc::new(Metrics::new(cfg.metrics.top_sources)?);
    // Started only once this edge enforces on its own: the fleet adds to
    // local enforcement, never stands in for it.
    let fleet = match &cfg.fleet {
        Some(f) => Some(Fleet::start(f, pins, &metrics)?),
        None => None,
    };
    metrics::serve(metrics_server, Arc::clone(&metrics), pins.clone(), programs);
    info!("metrics on http://{}/metrics", cfg.metrics.listen);
    // Like the fleet, both only add to local enforcement, once it is in place.
    let (api_tx, api_rx) = unbounded_channel();
    let api = match (api_server, &cfg.api) {
        (Some(server), Some(api_cfg)) => {
            info!("control API on {}", server.describe());
            api::serve(server, api_tx, &metrics)?;
            Some((api_cfg.clone(), api_rx))
        }
        _ => None,
    };
    let crowdsec = match &cfg.crowdsec {
        Some(c) => Some(crowdsec::start(c, &metrics, pins)?),
        None => None,
    };
    let outside = Outside { api, crowdsec, pins: pins.clone() };
    info!(
        "filtering; SIGHUP reloads {}, SIGINT/SIGTERM detach and exit, SIGUSR2 exits leaving the filter in force",
        cfg.path.display()
    );
    // Only now: a `Type=notify` unit is active once traffic is filtered,
    // so `systemctl start` returning means the host is protected.
    systemd::ready(&format!("filtering on {} in {} mode", interfaces.join(", "), cfg.filter.mode.name()));

    let stopped = serve(&mut maps, cfg, kernel_events, &metrics, signals, fleet, outside).await;
    systemd::stopping();
    match stopped {
        Ok(Stopped::HandedOver) => {
            // Dropping our handles leaves the pinned links (and clsact
            // filters) in the kernel: nothing is detached.
            drop(ebpf);
            info!(
                "left the filter attached to {} and pinned in {}: the next `sip-xdp run` adopts it",
                interfaces.join(", "),
                pins.root().display()
            );
        }
        // An error in the loop detaches as a stop does: no half-managed
        // filter is left behind by a controller that gave up.
        Ok(Stopped::Detached) | Err(_) => {
            attach::detach(pins, &interfaces);
            drop(ebpf);
            info!("detached from {}", interfaces.join(", "));
        }
    }
    stopped
}

struct Signals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
    handover: Signal,
}

impl Signals {
    fn catch() -> anyhow::Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            hangup: signal(SignalKind::hangup()).context("cannot handle SIGHUP")?,
            handover: signal(SignalKind::user_defined2()).context("cannot handle SIGUSR2")?,
        })
    }
}

/// What tools outside the kernel send: control API calls and CrowdSec
/// decisions.
struct Outside {
    api: Option<(Api, UnboundedReceiver<api::Pending>)>,
    crowdsec: Option<(Bouncer, UnboundedReceiver<Pull>)>,
    pins: PinDir,
}

/// How often bans are swept: expiries are reported within this.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// With a fleet to publish to, the ban tables are swept this often, so a
/// `ban add` (another process) reaches the fleet within 100 ms.
const FLEET_SWEEP_INTERVAL: Duration = Duration::from_millis(50);

/// Signals, kernel events and the ban sweep, until SIGINT/SIGTERM or
/// SIGUSR2.
async fn serve(
    maps: &mut Maps,
    mut cfg: Config,
    mut kernel_events: UnboundedReceiver<Vec<u8>>,
    metrics: &Metrics,
    signals: Signals,
    fleet: Option<(Fleet, UnboundedReceiver<Inbound>)>,
    outside: Outside,
) -> anyhow::Result<Stopped> {
    let Signals { mut interrupt, mut terminate, mut hangup, mut handover } = signals;
    let (fleet, mut fleet_inbound) = fleet.unzip();
    let fast = fleet.as_ref().is_some_and(Fleet::publishes);
    let fleet_cfg = cfg.fleet.clone();
    let (api_cfg, mut api_calls) = outside.api.unzip();
    let (mut bouncer, mut crowdsec_pulls) = outside.crowdsec.unzip();
    let started = (cfg.api.clone(), cfg.crowdsec.clone());
    let mut report = Report { sink: EventSink::new(&cfg.events), metrics, escalation: Escalation::default(), fleet };
    let mut sweep = tokio::time::interval(if fast { FLEET_SWEEP_INTERVAL } else { SWEEP_INTERVAL });
    let mut last_slow_sweep = Instant::now();
    let mut prefix_bans = std::collections::BTreeSet::new();
    let mut detectors = intl::Detectors::default();
    let mut anomaly_tick = tokio::time::interval(Duration::from_secs(cfg.anomaly.check_secs));
    anomaly_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interrupt.recv() => { info!("SIGINT received"); return Ok(Stopped::Detached); }
            _ = terminate.recv() => { info!("SIGTERM received"); return Ok(Stopped::Detached); }
            _ = handover.recv() => { info!("SIGUSR2 received: handing over"); return Ok(Stopped::HandedOver); }
            _ = hangup.recv() => {
                systemd::reloading();
                let events = cfg.events.clone();
                let (new, ok) = reload(maps, cfg);
                systemd::reloaded(ok);
                cfg = new;
                metrics.reload(ok);
                metrics.top_sources.store(cfg.metrics.top_sources, std::sync::atomic::Ordering::Relaxed);
                if cfg.events != events {
                    report.sink = EventSink::new(&cfg.events);
                }
                if cfg.fleet != fleet_cfg {
                    warn!("[fleet] changes take effect at the next start");
                }
                if (&cfg.api, &cfg.crowdsec) != (&started.0, &started.1) {
                    warn!("[api] and [crowdsec] changes take effect at the next start");
                }
            }
            Some(msg) = next(&mut fleet_inbound) => {
                let Report { sink, metrics, fleet, .. } = &mut report;
                if let Some(fleet) = fleet {
                    let mut emit = |e: &Event| {
                        metrics.observe(e);
                        sink.emit(e);
                    };
                    fleet.inbound(msg, maps, cfg.filter.mode, &mut prefix_bans, &mut emit);
                }
            }
            Some((call, reply, deadline)) = next(&mut api_calls) => {
                if let (Some(api_cfg), true) = (&api_cfg, Instant::now() < deadline) {
                    let (answered, event) = answer(maps, api_cfg, &outside.pins, call);
                    if let Some(event) = event {
                        report.event(maps, &cfg, &event);
                    }
                    let _ = reply.send(answered);
                }
            }
            Some(pull) = next(&mut crowdsec_pulls) => {
                if let Some(bouncer) = &mut bouncer {
                    bouncer.apply(maps, pull);
                }
            }
            Some(record) = kernel_events.recv() => {
                if let Some(event) = Event::from_kernel(&record, cfg.filter.ipv6_prefix) {
                    report.event(maps, &cfg, &event);
                }
            }
            _ = anomaly_tick.tick() => {
                match intl::check(maps, &mut detectors, &cfg) {
                    Ok(events) => events.iter().for_each(|e| report.event(maps, &cfg, e)),
                    Err(err) => warn!("spend-anomaly check failed: {err:#}"),
                }
            }
            _ = sweep.tick() => {
                let slow = last_slow_sweep.elapsed() >= SWEEP_INTERVAL;
                let swept = bans::sweep(maps, &cfg.rules, cfg.ban.max_duration_secs * NS_PER_SEC, &mut prefix_bans)
                    .and_then(|mut events| {
                        if slow {
                            events.extend(intl::sweep(maps)?);
                        }
                        Ok(events)
                    });
                match swept {
                    Ok(events) => events.iter().for_each(|e| report.event(maps, &cfg, e)),
                    Err(err) => warn!("ban sweep failed: {err:#}"),
                }
                if slow {
                    last_slow_sweep = Instant::now();
                    report.escalation.prune(&cfg.ban, Instant::now());
                }
            }
        }
    }
}

/// Where events go: the metrics, the log and webhook, and the escalation
/// of bans to the networks that keep attacking.
struct Report<'a> {
    sink: EventSink,
    metrics: &'a Metrics,
    escalation: Escalation,
    /// This edge's own bans and unbans are published there.
    fleet: Option<Fleet>,
}

/// The next message from an optional source (the fleet store, the API,
/// CrowdSec), or never without one.
async fn next<T>(rx: &mut Option<UnboundedReceiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Report<'_> {
    fn event(&mut self, maps: &mut Maps, cfg: &Config, event: &Event) {
        self.metrics.observe(event);
        self.sink.emit(event);
        if let Some(fleet) = &mut self.fleet {
            fleet.local(event);
        }
        let Some(network) = self.escalation.observe(event, &cfg.ban, Instant::now()) else { return };
        if cfg.filter.mode == Mode::Monitor {
            let would = escalation::would_ban(network);
            self.metrics.observe(&would);
            self.sink.emit(&would);
            return;
        }
        // Reported by the next sweep, like any ban made outside the kernel.
        if let Err(err) = bans::add(maps, network, None, BanReason::Escalated) {
            warn!("not banning {network} (escalation): {err:#}");
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

/// Reads the kernel's event ring buffer and forwards its records (the run
/// loop decodes them with the config in force).
fn start_event_forwarding(ebpf: &mut Ebpf) -> anyhow::Result<UnboundedReceiver<Vec<u8>>> {
    let map = ebpf.take_map(SIP_EVENTS).with_context(|| format!("the program has no map {SIP_EVENTS}"))?;
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
                if tx.send(record.to_vec()).is_err() {
                    return;
                }
            }
            guard.clear_ready();
        }
    });
    Ok(rx)
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
    let registered = unsafe { tokio::io::unix::AsyncFd::register_with_interest(logger, tokio::io::Interest::READABLE) };
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
