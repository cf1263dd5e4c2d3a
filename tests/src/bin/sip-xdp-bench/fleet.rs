//! Section 6: a fleet of edges sharing bans through Redis (a real
//! `redis-server` in a namespace of its own, every edge a whole lab with
//! its own controller and pin dir, as in `e2e_fleet`).
//!
//! Propagation: `sip-xdp ban add` on edge 0 (the controller finds the ban
//! at its next sweep, every 50 ms, and publishes it); every other edge's
//! pinned ban table is read in a tight loop until the ban is in force
//! there. The delay runs from the ban's own `banned_at_ns` in edge 0's
//! table to the read that finds it on the other edge: every edge runs on
//! this machine, so both are CLOCK_BOOTTIME and need no clock sync.
//!
//! Apply rate: N bans written by a plain `redis-cli --pipe` in the
//! documented layout (a key with its TTL, then the announcement, per
//! ban), from the start of the pipe until every edge's kernel has all N.

use std::{
    io::Write as _,
    net::Ipv4Addr,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use sip_xdp::{clock::boottime_ns, maps::Maps, pin::PinDir};
use sip_xdp_tests::netns::{FleetLab, REDIS_PORT};

/// How long a ban may take to reach an edge before it counts as missed.
const GIVE_UP: Duration = Duration::from_secs(5);

pub struct Propagation {
    pub edges: usize,
    pub trials: usize,
    /// Milliseconds, one per trial and other edge that got the ban.
    pub ms: Vec<f64>,
    /// (trial, edge) pairs that did not have the ban within [`GIVE_UP`].
    pub missed: usize,
}

pub struct ApplyRate {
    pub edges: usize,
    pub bans: usize,
    /// Seconds from the start of the pipe until each edge had all bans.
    pub secs: Vec<f64>,
}

impl ApplyRate {
    /// The slowest edge's rate, bans per second.
    pub fn per_sec(&self) -> f64 {
        self.bans as f64 / self.secs.iter().copied().fold(0.0, f64::max).max(1e-9)
    }
}

pub fn percentile(v: &[f64], p: f64) -> Option<f64> {
    let mut v = v.to_vec();
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

/// `n` edges, Redis up, every controller connected (no Kamailio: nothing
/// here is SIP traffic).
pub fn start(n: usize) -> FleetLab {
    let mut fleet = FleetLab::new(n);
    fleet.start_redis();
    for i in 0..n {
        // Escalation off: many bans of one /24 would otherwise ban it whole.
        let cfg = format!(
            "{}[ban]\nduration_secs = 600\nescalate_after = 0\n{}",
            fleet.edges[i].base_config(&[]),
            fleet.fleet_section(i)
        );
        let lab = &mut fleet.edges[i];
        lab.start_controller(&cfg);
        lab.controller.as_mut().expect("controller").wait_for("fleet: connected to Redis", Duration::from_secs(20));
    }
    fleet
}

fn maps(fleet: &FleetLab) -> Vec<Maps> {
    fleet.edges.iter().map(|lab| Maps::open(&PinDir::new(&lab.pins)).expect("open the pinned maps")).collect()
}

fn key(addr: Ipv4Addr) -> sip_xdp_common::map_types::SourceKey {
    sip_xdp::maps::key_of(addr.into(), 128)
}

pub fn propagation(fleet: &FleetLab, trials: usize) -> Propagation {
    let maps = maps(fleet);
    let n = fleet.edges.len();
    let mut out = Propagation { edges: n, trials, ms: Vec::new(), missed: 0 };
    for t in 0..trials {
        let addr = Ipv4Addr::new(198, 19, 100 + (n as u8), 1 + t as u8);
        fleet.edges[0].cli_ok(&["ban", "add", &addr.to_string(), "--duration", "600"]);
        let k = key(addr);
        let origin = maps[0].bans.get(&k, 0).expect("the ban on edge 0");
        let mut pending: Vec<usize> = (1..n).collect();
        let start = Instant::now();
        while !pending.is_empty() && start.elapsed() < GIVE_UP {
            pending.retain(|&i| {
                let now = boottime_ns();
                match maps[i].bans.get(&k, 0) {
                    Ok(entry) if entry.in_force(now) => {
                        out.ms.push(now.saturating_sub(origin.banned_at_ns) as f64 / 1e6);
                        false
                    }
                    _ => true,
                }
            });
            std::thread::sleep(Duration::from_micros(200));
        }
        out.missed += pending.len();
        // Land the next ban at another phase of the controller's sweep.
        std::thread::sleep(Duration::from_millis(100 + (t as u64 * 17) % 50));
    }
    out
}

/// A Redis protocol command (what `redis-cli --pipe` reads).
fn resp(args: &[&str]) -> String {
    let mut s = format!("*{}\r\n", args.len());
    for a in args {
        s += &format!("${}\r\n{a}\r\n", a.len());
    }
    s
}

pub fn apply_rate(fleet: &FleetLab, bans: usize) -> ApplyRate {
    assert!(bans <= 250 * 40, "addresses for at most 10000 bans");
    let maps = maps(fleet);
    let addrs: Vec<Ipv4Addr> =
        (0..bans).map(|i| Ipv4Addr::new(198, 19, 10 + (i / 250) as u8, 1 + (i % 250) as u8)).collect();
    let mut input = String::new();
    for a in &addrs {
        let cidr = format!("{a}/32");
        input +=
            &resp(&["SET", &format!("sip-xdp:ban:{cidr}"), r#"{"origin":"bench","reason":"manual"}"#, "EX", "600"]);
        input += &resp(&[
            "PUBLISH",
            "sip-xdp:bans",
            &format!(r#"{{"op":"ban","cidr":"{cidr}","origin":"bench","reason":"manual","duration_ms":600000}}"#),
        ]);
    }
    let keys: Vec<_> = addrs.iter().map(|&a| key(a)).collect();
    let start = Instant::now();
    let mut pipe = Command::new("ip")
        .args(["netns", "exec", &fleet.store, "redis-cli", "-h", "127.0.0.1", "-p", &REDIS_PORT.to_string(), "--pipe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-cli --pipe");
    pipe.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("feed redis-cli");
    // Each edge: the first ban (in publication order) not yet seen.
    let mut next = vec![0usize; maps.len()];
    let mut secs = vec![None; maps.len()];
    let deadline = start + GIVE_UP + Duration::from_millis(bans as u64 * 10);
    while secs.iter().any(Option::is_none) {
        assert!(Instant::now() < deadline, "fleet bans not applied in time: {:?} of {bans} per edge", next);
        for (i, m) in maps.iter().enumerate() {
            if secs[i].is_some() {
                continue;
            }
            let now = boottime_ns();
            while next[i] < bans && m.bans.get(&keys[next[i]], 0).is_ok_and(|e| e.in_force(now)) {
                next[i] += 1;
            }
            if next[i] == bans {
                secs[i] = Some(start.elapsed().as_secs_f64());
            }
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    assert!(pipe.wait().expect("redis-cli").success(), "redis-cli --pipe failed");
    ApplyRate { edges: maps.len(), bans, secs: secs.into_iter().map(|s| s.expect("done")).collect() }
}
