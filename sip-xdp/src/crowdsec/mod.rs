//! sip-xdp as a CrowdSec remediation component (a "bouncer"): it follows
//! the Local API's decision stream and enforces `ban` decisions on
//! addresses and ranges in the kernel, with their durations, and lifts
//! them when CrowdSec deletes them. The LAPI is never on the packet path:
//! the poller runs on its own thread, and while the LAPI is down the bans
//! already applied stay (they expire on their own), local detection goes
//! on, and the stream is read again from the start once it answers.
//!
//! Trusted rules win: a decision that overlaps one is refused. A ban this
//! module made carries the reason `crowdsec`, so only those are ever
//! lifted for CrowdSec (a source the kernel banned itself stays banned),
//! and after a restart the first full read lifts the ones CrowdSec dropped
//! meanwhile.

pub mod decisions;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    time::Duration,
};

use ipnet::IpNet;
use log::{info, warn};
use prometheus::{IntCounterVec, IntGauge, Opts};
use sip_xdp_common::bans::BanReason;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use self::decisions::{Decision, Delta};
use crate::{
    bans::{self, Placed, Trusted},
    config,
    error::UserError,
    fleet::origin::Origins,
    maps::Maps,
    metrics::Metrics,
    pin::PinDir,
    reports,
};

/// One read of the stream.
#[derive(Debug)]
pub struct Pull {
    /// A full read (`startup=true`): `delta.new` is every active decision.
    pub startup: bool,
    pub delta: Delta,
}

const TIMEOUT: Duration = Duration::from_secs(5);

/// Starts the poller; pulls arrive on the receiver.
pub fn start(
    cfg: &config::CrowdSec,
    metrics: &Metrics,
    pins: &PinDir,
) -> anyhow::Result<(Bouncer, UnboundedReceiver<Pull>)> {
    let connected =
        IntGauge::new("sipxdp_crowdsec_connected", "1 while the CrowdSec Local API answers the decision stream.")?;
    let decisions = IntCounterVec::new(
        Opts::new("sipxdp_crowdsec_decisions_total", "CrowdSec decisions read, by what became of them."),
        &["result"],
    )?;
    for result in ["banned", "already", "lifted", "refused", "ignored"] {
        decisions.with_label_values(&[result]);
    }
    metrics.register(Box::new(connected.clone()))?;
    metrics.register(Box::new(decisions.clone()))?;
    let (tx, rx) = unbounded_channel();
    let url = format!("{}/v1/decisions/stream", cfg.lapi_url);
    let key = cfg.api_key.clone();
    let every = Duration::from_secs(cfg.poll_secs);
    std::thread::spawn(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(TIMEOUT)).build().into();
        let mut startup = true;
        let mut last_error: Option<String> = None;
        loop {
            let answer = agent
                .get(&url)
                .query("startup", if startup { "true" } else { "false" })
                .header("X-Api-Key", &key)
                .header("User-Agent", concat!("sip-xdp/", env!("CARGO_PKG_VERSION")))
                .call()
                .map_err(|e| e.to_string())
                .and_then(|mut r| r.body_mut().read_to_string().map_err(|e| e.to_string()))
                .and_then(|body| decisions::parse(&body).map_err(|e| format!("unreadable answer: {e}")));
            match answer {
                Ok(delta) => {
                    if last_error.take().is_some() || startup {
                        info!("crowdsec: following the decisions of {url}");
                    }
                    connected.set(1);
                    if tx.send(Pull { startup, delta }).is_err() {
                        return;
                    }
                    startup = false;
                }
                Err(err) => {
                    connected.set(0);
                    if last_error.as_deref() != Some(err.as_str()) {
                        warn!("crowdsec: {url}: {err}; bans already applied stay, retrying every {}s", every.as_secs());
                    }
                    last_error = Some(err);
                    // Deltas are kept per bouncer by the LAPI, but what it
                    // lost while down is only sure in a full read.
                    startup = true;
                }
            }
            std::thread::sleep(every);
        }
    });
    let bouncer = Bouncer {
        cfg: cfg.clone(),
        active: HashMap::new(),
        refused: HashSet::new(),
        decisions,
        origins: Origins::new(pins),
    };
    Ok((bouncer, rx))
}

/// The daemon's side: the decisions in force, by the ban they hold.
pub struct Bouncer {
    cfg: config::CrowdSec,
    /// Per ban (as `ban list` names it: decisions on two addresses of one
    /// IPv6 prefix hold one ban): its decisions' ids and scenarios.
    active: HashMap<String, BTreeMap<i64, String>>,
    /// Refused nets, logged once each.
    refused: HashSet<IpNet>,
    decisions: IntCounterVec,
    /// Bans another edge of the fleet made are never this bouncer's.
    origins: Origins,
}

impl Bouncer {
    /// Applies a pull. A decision that cannot be applied is logged and
    /// skipped; the others still are.
    pub fn apply(&mut self, maps: &mut Maps, pull: Pull) {
        self.count("ignored", pull.delta.ignored);
        if pull.startup {
            if let Err(err) = self.catch_up(maps, &pull.delta.new) {
                warn!("crowdsec: cannot compare the bans with the decisions: {err:#}");
            }
        }
        let trusted = match Trusted::read(maps) {
            // Read once for the whole pull: a blocklist brings thousands.
            Ok(trusted) => trusted,
            Err(err) => {
                warn!("crowdsec: cannot read the trusted rules, no decision applied: {err:#}");
                return;
            }
        };
        for d in &pull.delta.deleted {
            let label = bans::label_of(maps, &d.net);
            let Some(ids) = self.active.get_mut(&label) else { continue };
            ids.remove(&d.id);
            if ids.is_empty() {
                self.active.remove(&label);
                if let Err(err) = self.lift(maps, d.net, &label) {
                    warn!("crowdsec: cannot lift {label}: {err:#}");
                }
            }
        }
        for d in pull.delta.new {
            let (id, net) = (d.id, d.net);
            if let Err(err) = self.ban(maps, &trusted, d) {
                warn!("crowdsec: cannot apply decision {id} on {net}: {err:#}");
            }
        }
    }

    fn count(&self, result: &str, n: usize) {
        self.decisions.with_label_values(&[result]).inc_by(n as u64);
    }

    /// A full read: what CrowdSec banned here and no longer has (deleted
    /// while this controller or the LAPI was away) is lifted.
    fn catch_up(&mut self, maps: &mut Maps, live: &[Decision]) -> anyhow::Result<()> {
        let live: HashSet<String> = live.iter().map(|d| bans::label_of(maps, &d.net)).collect();
        self.active.clear();
        for row in bans::list(maps)? {
            if self.ours(&row) && !live.contains(&row.source) {
                let Ok(net) = crate::rules::parse_cidr(&row.source) else { continue };
                self.lift_ours(maps, net, &row.source)?;
            }
        }
        Ok(())
    }

    /// A ban this bouncer made: its reason, and no other edge's.
    fn ours(&self, row: &bans::BanRow) -> bool {
        row.reason == BanReason::CrowdSec.name() && self.origins.get(&row.source).is_none()
    }

    fn ban(&mut self, maps: &mut Maps, trusted: &Trusted, d: Decision) -> anyhow::Result<()> {
        let secs = d.remaining.as_secs();
        if secs == 0 {
            return Ok(());
        }
        let widest = (self.cfg.max_prefix_v4, self.cfg.max_prefix_v6);
        match reports::ban(maps, trusted, d.net, secs, BanReason::CrowdSec, widest)? {
            Ok(placed) => {
                let label = match &placed {
                    Placed::New(label) | Placed::Already(label) => label.clone(),
                };
                self.active.entry(label.clone()).or_default().insert(d.id, d.scenario.clone());
                match placed {
                    Placed::New(_) => {
                        info!("crowdsec: banning {label} for {secs}s (decision {}: {})", d.id, d.scenario);
                        self.count("banned", 1);
                    }
                    Placed::Already(_) => self.count("already", 1),
                }
            }
            Err(refused) => {
                if self.refused.insert(d.net) {
                    warn!("crowdsec: not banning {} (decision {}, {}): {refused}", d.net, d.id, refused.name());
                }
                self.count("refused", 1);
            }
        }
        Ok(())
    }

    /// Lifts the ban `label` of `net` if it is this bouncer's; the sweep
    /// reports it. One that ended meanwhile is no error.
    fn lift(&self, maps: &mut Maps, net: IpNet, label: &str) -> anyhow::Result<()> {
        let Some(row) = bans::in_force(maps, &net)? else { return Ok(()) };
        if !self.ours(&row) {
            return Ok(());
        }
        self.lift_ours(maps, net, label)
    }

    /// Lifts `net`'s ban (`label`), known to be this bouncer's.
    fn lift_ours(&self, maps: &mut Maps, net: IpNet, label: &str) -> anyhow::Result<()> {
        match bans::del(maps, net) {
            Ok(_) => {
                info!("crowdsec: lifting the ban of {label} (its decision is gone)");
                self.count("lifted", 1);
                Ok(())
            }
            Err(err) if err.is::<UserError>() => Ok(()),
            Err(err) => Err(err),
        }
    }
}
