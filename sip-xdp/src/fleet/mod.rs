//! A fleet of edges acts as one: every ban this edge makes is published to
//! Redis, and every ban another edge publishes is enforced here, with its
//! time left, reason and origin. Redis is never on the packet path: the
//! store runs on its own thread (`store`), and while it is away local
//! detection and enforcement go on unchanged.
//!
//! The keys are the truth (`wire`); the channel only makes changes fast.
//! After every (re)connection, and every `reconcile_secs`, the keys are
//! read again: a ban missed while disconnected is applied, a fleet ban
//! whose key is gone is lifted.

pub mod apply;
pub mod origin;
pub mod store;
pub mod wire;

use std::{
    collections::{BTreeSet, HashSet},
    net::IpAddr,
    sync::mpsc::Sender,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use ipnet::IpNet;
use log::{info, warn};
use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts};
use sip_xdp_common::{bans::BanReason, kernel_config::Mode};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use self::{
    apply::Applied,
    origin::Origins,
    store::{Inbound, Outbound, StoreMetrics},
    wire::{Change, FleetBan, Malformed},
};
use crate::{
    bans::Refused,
    config,
    events::{Event, Kind},
    maps::Maps,
    metrics::Metrics,
    pin::PinDir,
};

/// The fleet's series; registered only when `[fleet]` is configured.
struct FleetMetrics {
    store: StoreMetrics,
    received: IntCounterVec,
    refused: IntCounterVec,
    malformed: IntCounterVec,
    delay: Histogram,
}

impl FleetMetrics {
    fn register(metrics: &Metrics) -> anyhow::Result<FleetMetrics> {
        let connected = IntGauge::new("sipxdp_fleet_connected", "1 while the fleet store (Redis) is reachable.")?;
        let published = IntCounterVec::new(
            Opts::new("sipxdp_fleet_bans_published_total", "Bans and unbans this edge published to the fleet."),
            &["op"],
        )?;
        let received = IntCounterVec::new(
            Opts::new("sipxdp_fleet_bans_received_total", "Bans and unbans announced by other edges."),
            &["op"],
        )?;
        let refused = IntCounterVec::new(
            Opts::new("sipxdp_fleet_bans_refused_total", "Fleet bans not applied here, by why."),
            &["reason"],
        )?;
        let malformed = IntCounterVec::new(
            Opts::new("sipxdp_fleet_messages_malformed_total", "Fleet messages and keys that could not be read."),
            &["kind"],
        )?;
        let delay = Histogram::with_opts(
            HistogramOpts::new(
                "sipxdp_fleet_propagation_delay_seconds",
                "From another edge's publication of a ban (its clock) to its arrival here.",
            )
            .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
        )?;
        for op in ["ban", "unban"] {
            published.with_label_values(&[op]);
            received.with_label_values(&[op]);
        }
        for why in ["trusted", "too_wide"] {
            refused.with_label_values(&[why]);
        }
        metrics.register(Box::new(connected.clone()))?;
        metrics.register(Box::new(published.clone()))?;
        metrics.register(Box::new(received.clone()))?;
        metrics.register(Box::new(refused.clone()))?;
        metrics.register(Box::new(malformed.clone()))?;
        metrics.register(Box::new(delay.clone()))?;
        Ok(FleetMetrics { store: StoreMetrics { connected, published }, received, refused, malformed, delay })
    }
}

/// The daemon's side of the fleet.
pub struct Fleet {
    cfg: config::Fleet,
    /// None when this edge does not publish.
    out: Option<Sender<Outbound>>,
    origins: Origins,
    metrics: FleetMetrics,
    /// Malformed kinds already logged (each is logged once, counted always).
    logged: HashSet<&'static str>,
    /// Keys refused at a reconciliation, reported once each.
    refused_keys: HashSet<IpNet>,
}

/// Where the daemon's reports of fleet changes go (the log, the webhook,
/// the metrics): never back to the fleet.
pub type Emit<'a> = dyn FnMut(&Event) + 'a;

impl Fleet {
    pub fn start(
        cfg: &config::Fleet,
        pins: &PinDir,
        metrics: &Metrics,
    ) -> anyhow::Result<(Fleet, UnboundedReceiver<Inbound>)> {
        let metrics = FleetMetrics::register(metrics)?;
        let (out_tx, out_rx) = std::sync::mpsc::channel();
        let (in_tx, in_rx) = unbounded_channel();
        store::start(cfg, out_rx, in_tx, metrics.store.clone());
        info!(
            "fleet: node {} ({}publishing, {}subscribing) through {}",
            cfg.node,
            if cfg.publish { "" } else { "not " },
            if cfg.subscribe { "" } else { "not " },
            cfg.redis_display()
        );
        let fleet = Fleet {
            cfg: cfg.clone(),
            out: cfg.publish.then_some(out_tx),
            origins: Origins::new(pins),
            metrics,
            logged: HashSet::new(),
            refused_keys: HashSet::new(),
        };
        Ok((fleet, in_rx))
    }

    /// Whether the sweep must run fast (CLI bans published within 100 ms).
    pub fn publishes(&self) -> bool {
        self.out.is_some()
    }

    /// An event of this edge's own: its bans and manual unbans are
    /// published; an expiry or unban ends any fleet origin.
    pub fn local(&mut self, event: &Event) {
        match event.kind {
            Kind::Ban => {
                self.origins.clear(&event.source);
                let (Some(net), Some(secs)) = (net_of(&event.source), event.duration_secs) else { return };
                let Some(reason) = BanReason::from_name(event.reason) else { return };
                let ends = event.at + Duration::from_secs(secs);
                let left = ends.duration_since(SystemTime::now()).unwrap_or_default();
                let banned_at_ms = event.at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
                self.send(Outbound::Ban { net, reason, expires: Instant::now() + left, banned_at_ms });
            }
            Kind::Unban => {
                self.origins.clear(&event.source);
                if event.reason == BanReason::Manual.name() {
                    if let Some(net) = net_of(&event.source) {
                        self.send(Outbound::Unban { net });
                    }
                }
            }
            Kind::Expire => self.origins.clear(&event.source),
            _ => {}
        }
    }

    fn send(&self, op: Outbound) {
        if let Some(out) = &self.out {
            // The store thread only ends with the process.
            let _ = out.send(op);
        }
    }

    /// What the store reports.
    pub fn inbound(
        &mut self,
        msg: Inbound,
        maps: &mut Maps,
        mode: Mode,
        prefix_bans: &mut BTreeSet<IpNet>,
        emit: &mut Emit,
    ) {
        match msg {
            Inbound::Connected | Inbound::Disconnected(_) => {}
            Inbound::Message(payload) => match wire::parse_message(&payload) {
                Err(kind) => self.malformed(kind),
                Ok(ann) => {
                    let (op, origin) = match &ann.change {
                        Change::Ban(b) => ("ban", &b.origin),
                        Change::Unban { origin, .. } => ("unban", origin),
                    };
                    if *origin == self.cfg.node {
                        return; // our own, back from the channel
                    }
                    self.metrics.received.with_label_values(&[op]).inc();
                    if let Some(at) = ann.published_at_ms {
                        let delay_ms = store::now_ms().saturating_sub(at);
                        self.metrics.delay.observe(delay_ms as f64 / 1000.0);
                    }
                    match ann.change {
                        Change::Ban(b) => self.ban(maps, mode, &b, prefix_bans, emit, true),
                        Change::Unban { net, origin } => self.unban(maps, &net, &origin, prefix_bans, emit),
                    }
                }
            },
            Inbound::Snapshot(keys) => self.reconcile(maps, mode, keys, prefix_bans, emit),
        }
    }

    fn malformed(&mut self, kind: Malformed) {
        self.metrics.malformed.with_label_values(&[kind.name()]).inc();
        if self.logged.insert(kind.name()) {
            warn!("fleet: ignoring a message or key that is {} (logged once; counted in sipxdp_fleet_messages_malformed_total)", kind.name());
        }
    }

    fn ban(
        &mut self,
        maps: &mut Maps,
        mode: Mode,
        ban: &FleetBan,
        prefix_bans: &mut BTreeSet<IpNet>,
        emit: &mut Emit,
        report_refusal: bool,
    ) {
        if mode == Mode::Monitor {
            emit(&Event {
                origin: Some(ban.origin.clone()),
                ..Event::new(Kind::WouldBan, ban.reason.name(), ban.net.to_string())
            });
            return;
        }
        let origins = &self.origins;
        let record = |label: &str| {
            if let Err(err) = origins.set(label, &ban.origin) {
                warn!("fleet: cannot record the origin of {label}: {err}");
            }
        };
        match apply::ban(maps, &self.cfg, ban, prefix_bans, record) {
            Ok(Applied::Banned(label)) => {
                emit(&Event {
                    duration_secs: Some(ban.remaining_ms.div_ceil(1000)),
                    origin: Some(ban.origin.clone()),
                    ..Event::new(Kind::Ban, ban.reason.name(), label)
                });
            }
            Ok(Applied::Already) => {}
            Ok(Applied::Refused(refused)) => {
                // A key refused once is not reported again at every
                // reconciliation; a message is always reported.
                if !self.refused_keys.insert(ban.net) && !report_refusal {
                    return;
                }
                let why = refused.name();
                self.metrics.refused.with_label_values(&[why]).inc();
                let detail = match refused {
                    Refused::Trusted(rule) => format!(" (trusted rule {rule})"),
                    Refused::TooWide(_) => String::new(),
                };
                warn!("fleet: not applying the ban of {} from {}: {why}{detail}", ban.net, ban.origin);
                emit(&Event {
                    origin: Some(ban.origin.clone()),
                    ..Event::new(Kind::FleetBanRefused, why, ban.net.to_string())
                });
            }
            Err(err) => warn!("fleet: cannot apply the ban of {} from {}: {err:#}", ban.net, ban.origin),
        }
    }

    fn unban(
        &mut self,
        maps: &mut Maps,
        net: &IpNet,
        origin: &str,
        prefix_bans: &mut BTreeSet<IpNet>,
        emit: &mut Emit,
    ) {
        match apply::unban(maps, net, prefix_bans) {
            Ok(Some(label)) => {
                self.origins.clear(&label);
                emit(&Event { origin: Some(origin.to_string()), ..Event::new(Kind::Unban, "fleet", label) });
            }
            Ok(None) => {}
            Err(err) => warn!("fleet: cannot lift the ban of {net} from {origin}: {err:#}"),
        }
    }

    /// The keys are the truth: apply every ban they hold that is not in
    /// force here, and lift every fleet ban whose key is gone.
    fn reconcile(
        &mut self,
        maps: &mut Maps,
        mode: Mode,
        keys: Vec<store::StoredKey>,
        prefix_bans: &mut BTreeSet<IpNet>,
        emit: &mut Emit,
    ) {
        let mut present = HashSet::new();
        for (key, value, pttl) in keys {
            match wire::parse_key(&key, value.as_deref(), pttl) {
                Err(kind) => self.malformed(kind),
                Ok(None) => {}
                Ok(Some(ban)) => {
                    present.insert(crate::bans::label_of(maps, &ban.net));
                    if ban.origin != self.cfg.node {
                        self.ban(maps, mode, &ban, prefix_bans, emit, false);
                    }
                }
            }
        }
        self.refused_keys.retain(|net| present.contains(&net.to_string()) || present.contains(&net.addr().to_string()));
        for (source, origin) in self.origins.all() {
            if present.contains(&source) {
                continue;
            }
            match net_of(&source) {
                Some(net) => self.unban(maps, &net, &origin, prefix_bans, emit),
                None => self.origins.clear(&source),
            }
            // Expired meanwhile, or lifted: the origin goes either way.
            self.origins.clear(&source);
        }
    }
}

/// A ban's label (an address, or a prefix) as a network.
fn net_of(label: &str) -> Option<IpNet> {
    match label.parse::<IpAddr>() {
        Ok(addr) => Some(IpNet::from(addr)),
        Err(_) => label.parse().ok(),
    }
}
