//! The Redis side of the fleet, on a thread of its own: the blocking
//! client keeps the daemon's single-threaded loop free, and Redis being
//! slow or gone never holds up the filter. Ordered in one loop: what this
//! edge changed while disconnected is written first, then the channel is
//! subscribed, then the keys are read (so nothing announced between the
//! read and the subscription is missed).

use std::{
    collections::VecDeque,
    sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use ipnet::IpNet;
use log::{info, warn};
use prometheus::{IntCounterVec, IntGauge};
use redis::{Commands as _, Connection, RedisResult};
use sip_xdp_common::bans::BanReason;
use tokio::sync::mpsc::UnboundedSender;

use super::wire::{self, FleetBan, CHANNEL, KEY_PREFIX};
use crate::config::Fleet;

/// A change this edge made, to publish.
#[derive(Clone, Debug)]
pub enum Outbound {
    Ban { net: IpNet, reason: BanReason, expires: Instant, banned_at_ms: u64 },
    Unban { net: IpNet },
}

/// A ban key read back: its name, value and PTTL.
pub type StoredKey = (String, Option<Vec<u8>>, i64);

/// What the store thread tells the daemon.
#[derive(Debug)]
pub enum Inbound {
    Connected,
    Disconnected(String),
    /// A channel message, judged by the daemon.
    Message(Vec<u8>),
    /// Every ban key: name, value, PTTL.
    Snapshot(Vec<StoredKey>),
}

/// How long the subscriber waits for a message before it looks at what
/// there is to publish: the bound on publishing latency.
const POLL: Duration = Duration::from_millis(10);
const IO_TIMEOUT: Duration = Duration::from_secs(2);
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Changes kept while Redis is away; past this the oldest go (the keys'
/// TTLs and the next local bans still converge).
const PENDING_MAX: usize = 100_000;
const SCAN_BATCH: usize = 500;

/// The store's own counters, shared with the exporter.
#[derive(Clone)]
pub struct StoreMetrics {
    pub connected: IntGauge,
    pub published: IntCounterVec,
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

pub fn start(cfg: &Fleet, rx: Receiver<Outbound>, tx: UnboundedSender<Inbound>, metrics: StoreMetrics) {
    let cfg = cfg.clone();
    std::thread::Builder::new()
        .name("fleet-store".into())
        .spawn(move || run(&cfg, &rx, &tx, &metrics))
        .expect("cannot start the fleet store thread");
}

fn client(cfg: &Fleet) -> RedisResult<redis::Client> {
    let client = redis::Client::open(cfg.redis.as_str())?;
    let Some(password) = &cfg.password else { return Ok(client) };
    let info = client.get_connection_info().clone();
    let settings = info.redis_settings().clone().set_password(password);
    redis::Client::open(info.set_redis_settings(settings))
}

fn run(cfg: &Fleet, rx: &Receiver<Outbound>, tx: &UnboundedSender<Inbound>, metrics: &StoreMetrics) {
    let client = match client(cfg) {
        Ok(c) => c,
        Err(err) => {
            warn!("fleet: {err}; bans are not shared");
            return;
        }
    };
    let mut pending = VecDeque::new();
    let mut backoff = BACKOFF_FIRST;
    let mut was_connected = true;
    loop {
        let mut session = Session { cfg, client: &client, rx, tx, metrics, pending: &mut pending, up: false };
        let result = session.run();
        let up = session.up;
        match result {
            Ok(()) => return,
            Err(err) => {
                metrics.connected.set(0);
                if up || was_connected {
                    warn!("fleet: Redis {}: {err}; local enforcement goes on, reconnecting", cfg.redis_display());
                    if tx.send(Inbound::Disconnected(err.to_string())).is_err() {
                        return;
                    }
                }
                was_connected = false;
                if up {
                    backoff = BACKOFF_FIRST;
                }
            }
        }
        // Keep what is banned meanwhile, to publish it on reconnection.
        let until = Instant::now() + backoff;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match rx.recv_timeout(left) {
                Ok(op) => keep(&mut pending, op),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

fn keep(pending: &mut VecDeque<Outbound>, op: Outbound) {
    if pending.len() >= PENDING_MAX {
        pending.pop_front();
    }
    pending.push_back(op);
}

impl Fleet {
    /// The URL without its password, for logs.
    pub fn redis_display(&self) -> String {
        match (self.redis.find("://"), self.redis.rfind('@')) {
            (Some(s), Some(at)) if at > s => format!("{}***{}", &self.redis[..s + 3], &self.redis[at..]),
            _ => self.redis.clone(),
        }
    }
}

struct Session<'a> {
    cfg: &'a Fleet,
    client: &'a redis::Client,
    rx: &'a Receiver<Outbound>,
    tx: &'a UnboundedSender<Inbound>,
    metrics: &'a StoreMetrics,
    pending: &'a mut VecDeque<Outbound>,
    up: bool,
}

impl Session<'_> {
    /// Until the connection fails (Err) or the daemon goes (Ok).
    fn run(&mut self) -> RedisResult<()> {
        let mut cmd = self.client.get_connection_with_timeout(IO_TIMEOUT)?;
        cmd.set_read_timeout(Some(IO_TIMEOUT))?;
        cmd.set_write_timeout(Some(IO_TIMEOUT))?;
        // A server that wants a password accepts the connection and even
        // the subscription, and refuses only the commands: ask one first,
        // so a refused login is a failed connection, never "connected".
        redis::cmd("PING").query::<()>(&mut cmd)?;
        while let Some(op) = self.pending.front() {
            self.publish(&mut cmd, op)?;
            self.pending.pop_front();
        }
        let mut sub = self.client.get_connection_with_timeout(IO_TIMEOUT)?;
        let mut pubsub = sub.as_pubsub();
        if self.cfg.subscribe {
            pubsub.subscribe(CHANNEL)?;
        }
        pubsub.set_read_timeout(Some(POLL))?;
        self.up = true;
        self.metrics.connected.set(1);
        info!("fleet: connected to Redis {} as {}", self.cfg.redis_display(), self.cfg.node);
        if self.tx.send(Inbound::Connected).is_err() {
            return Ok(());
        }
        let every = Duration::from_secs(self.cfg.reconcile_secs);
        let mut next_scan = Instant::now();
        loop {
            if self.cfg.subscribe && Instant::now() >= next_scan {
                let keys = scan(&mut cmd)?;
                if self.tx.send(Inbound::Snapshot(keys)).is_err() {
                    return Ok(());
                }
                next_scan = Instant::now() + every;
            }
            loop {
                match self.rx.try_recv() {
                    Ok(op) => {
                        if let Err(err) = self.publish(&mut cmd, &op) {
                            self.pending.push_front(op);
                            return Err(err);
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return Ok(()),
                }
            }
            if !self.cfg.subscribe {
                // Nothing to listen to: wait for something to publish, and
                // ask the server now and then whether it is still there.
                match self.rx.recv_timeout(Duration::from_secs(1)) {
                    Ok(op) => {
                        if let Err(err) = self.publish(&mut cmd, &op) {
                            self.pending.push_front(op);
                            return Err(err);
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => redis::cmd("PING").query::<()>(&mut cmd)?,
                    Err(RecvTimeoutError::Disconnected) => return Ok(()),
                }
                continue;
            }
            match pubsub.get_message() {
                Ok(msg) => {
                    if self.tx.send(Inbound::Message(msg.get_payload_bytes().to_vec())).is_err() {
                        return Ok(());
                    }
                }
                Err(err) if err.is_timeout() => {}
                Err(err) => return Err(err),
            }
        }
    }

    /// Key first, then the announcement: whoever hears of a ban finds its
    /// key. An unban deletes the key the same way.
    fn publish(&self, con: &mut Connection, op: &Outbound) -> RedisResult<()> {
        let now = now_ms();
        let mut pipe = redis::pipe();
        let label = match op {
            Outbound::Ban { net, reason, expires, banned_at_ms } => {
                let left = expires.saturating_duration_since(Instant::now()).as_millis() as u64;
                if left == 0 {
                    return Ok(());
                }
                let ban = FleetBan { net: *net, reason: *reason, origin: self.cfg.node.clone(), remaining_ms: left };
                pipe.cmd("SET")
                    .arg(wire::key_of(net))
                    .arg(wire::value(*reason, &self.cfg.node, *banned_at_ms))
                    .arg("PX")
                    .arg(left)
                    .ignore();
                pipe.cmd("PUBLISH").arg(CHANNEL).arg(wire::ban_message(&ban, now)).ignore();
                "ban"
            }
            Outbound::Unban { net } => {
                pipe.cmd("DEL").arg(wire::key_of(net)).ignore();
                pipe.cmd("PUBLISH").arg(CHANNEL).arg(wire::unban_message(net, &self.cfg.node, now)).ignore();
                "unban"
            }
        };
        pipe.query::<()>(con)?;
        self.metrics.published.with_label_values(&[label]).inc();
        Ok(())
    }
}

/// Every ban key with its value and time left.
fn scan(con: &mut Connection) -> RedisResult<Vec<StoredKey>> {
    let keys: Vec<String> =
        con.scan_match::<_, String>(format!("{KEY_PREFIX}*"))?.collect::<RedisResult<Vec<String>>>()?;
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(SCAN_BATCH) {
        let mut pipe = redis::pipe();
        for key in chunk {
            pipe.cmd("GET").arg(key).cmd("PTTL").arg(key);
        }
        let values: Vec<(Option<Vec<u8>>, i64)> = pipe.query(con)?;
        out.extend(chunk.iter().cloned().zip(values).map(|(k, (v, t))| (k, v, t)));
    }
    Ok(out)
}
