//! A privately loaded copy of the programs (no pins, no attachment),
//! driven through BPF_PROG_TEST_RUN; and the test programs of
//! `tests/ebpf`, which the shipped object does not carry.

use std::{
    collections::BTreeMap,
    net::IpAddr,
    path::{Path, PathBuf},
    process::Command,
};

use crate::frames::{tcp_segment, v4_frame, v6_frame, ACK, IPPROTO_TCP, PSH, SYN, V4, V6};
use aya::{
    maps::{Array, MapData, RingBuf},
    programs::{TestRun, TestRunOptions, Xdp},
    Ebpf,
};
use sip_xdp::{
    config::Config,
    loader,
    maps::{key_of, Maps},
    pin::PinDir,
    rules::parse_cidr,
};
use sip_xdp_common::{
    bans::BanEntry,
    events::Event,
    fingerprint::{Fingerprint, DEFAULT_USER_AGENTS},
    kernel_config::FilterConfig,
    map_types::{Counter, DestAction, DestRule, RateProfile, SourceKey, SourceStats},
    registry::{private_names::SIP_EVENTS, DEFAULT_SOURCES_CAPACITY},
    rules::{RuleClass, RuleValue, ORIGIN_CONFIG},
    Action, Reason,
};

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;

pub struct Filter {
    ebpf: Ebpf,
    pub maps: Maps,
    events: Option<RingBuf<MapData>>,
}

/// The filter config most tests use: the config file's defaults (ports
/// 5060 and 5061, deny by default, drop, enforce) in the kernel's form.
pub fn sip_config() -> FilterConfig {
    let defaults = Config::parse(Path::new("defaults.toml"), "").expect("the empty config is valid");
    FilterConfig::from(&defaults)
}

impl Filter {
    pub fn load(config: FilterConfig) -> Filter {
        let mut ebpf = loader::load(None, DEFAULT_SOURCES_CAPACITY).expect("load the XDP program (needs root)");
        let mut maps = Maps::from_ebpf(&mut ebpf, None).expect("maps");
        maps.write_config(&config).expect("config");
        Filter { ebpf, maps, events: None }
    }

    pub fn set_config(&mut self, config: FilterConfig) {
        self.maps.write_config(&config).expect("config");
    }

    pub fn allow(&mut self, cidr: &str) {
        let net = parse_cidr(cidr).expect("test CIDR");
        self.maps.insert_rule(net, RuleValue::new(ORIGIN_CONFIG, RuleClass::Trusted, 0)).expect("allow");
    }

    pub fn disallow(&mut self, cidr: &str) {
        self.maps.remove_rule(parse_cidr(cidr).expect("test CIDR")).expect("remove");
    }

    /// Runs one frame and returns the XDP action code.
    pub fn run(&mut self, frame: &[u8]) -> u32 {
        let program = loader::ingress(&mut self.ebpf).expect("program");
        let opts = TestRunOptions { data_in: Some(frame), ..TestRunOptions::default() };
        program.test_run(opts).expect("BPF_PROG_TEST_RUN").return_value
    }

    pub fn counters(&self) -> BTreeMap<(u8, u8), Counter> {
        self.maps.stats().expect("stats").into_iter().map(|r| ((r.action as u8, r.reason as u8), r.counter)).collect()
    }

    /// Runs one frame and checks it was counted exactly once, with its
    /// length, under one `(action, reason)`; returns the XDP action and
    /// that pair.
    pub fn judge(&mut self, frame: &[u8]) -> (u32, Action, Reason) {
        let before = self.counters();
        let verdict = self.run(frame);
        let after = self.counters();
        let changed: Vec<_> = after
            .iter()
            .filter(|(k, v)| before[k] != **v)
            .map(|(k, v)| (*k, v.packets - before[k].packets, v.bytes - before[k].bytes))
            .collect();
        assert_eq!(changed.len(), 1, "exactly one counter must move, got {changed:?}");
        let ((action, reason), packets, bytes) = changed[0];
        assert_eq!((packets, bytes), (1, frame.len() as u64), "one packet of the frame's length");
        let action = Action::from_u8(action).expect("action");
        let reason = Reason::from_u8(reason).expect("reason");
        let expected_xdp = if action == Action::Drop { XDP_DROP } else { XDP_PASS };
        assert_eq!(verdict, expected_xdp, "XDP action must agree with the counted action {action:?}");
        (verdict, action, reason)
    }

    /// The key an address's state is kept under, as the loaded config
    /// keys sources (IPv6 by prefix).
    pub fn key(&self, addr: &str) -> SourceKey {
        key_of(addr.parse().expect("address"), self.maps.v6_prefix())
    }

    /// Per-source counters for an address (IPv4 as `a.b.c.d`).
    pub fn source(&self, addr: &str) -> Option<SourceStats> {
        self.maps.sources.get(&self.key(addr), 0).ok()
    }
}

/// What the ban and rate tests need beyond the allowlist.
impl Filter {
    /// Adds a rule with a class and profile.
    pub fn rule(&mut self, cidr: &str, class: RuleClass, profile: u8) {
        let net = parse_cidr(cidr).expect("test CIDR");
        self.maps.insert_rule(net, RuleValue::new(ORIGIN_CONFIG, class, profile)).expect("rule");
    }

    pub fn profile(&mut self, index: u32, profile: RateProfile) {
        self.maps.profiles.set(index, profile, 0).expect("profile");
    }

    pub fn ban_of(&self, addr: &str) -> Option<BanEntry> {
        self.maps.bans.get(&self.key(addr), 0).ok()
    }

    pub fn set_ban(&mut self, addr: &str, entry: BanEntry) {
        let key = self.key(addr);
        self.maps.bans.insert(key, entry, 0).expect("ban");
    }

    /// Events the program has written since the last call.
    pub fn events(&mut self) -> Vec<Event> {
        let ring = self.events.get_or_insert_with(|| {
            let map = self.ebpf.take_map(SIP_EVENTS).expect("events map");
            RingBuf::try_from(map).expect("ring buffer")
        });
        let mut out = Vec::new();
        while let Some(item) = ring.next() {
            assert_eq!(item.len(), std::mem::size_of::<Event>());
            // SAFETY: length checked; plain repr(C) record.
            out.push(unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<Event>()) });
        }
        out
    }

    /// Runs one frame through the egress (TC) program; returns its code.
    pub fn run_egress(&mut self, frame: &[u8]) -> i32 {
        let program = loader::egress(&mut self.ebpf).expect("egress program");
        let opts = TestRunOptions { data_in: Some(frame), ..TestRunOptions::default() };
        program.test_run(opts).expect("BPF_PROG_TEST_RUN (TC)").return_value as i32
    }
}

/// The server's address in the frames of these tests (IPv4; IPv6 frames
/// go to `V6::new`'s destination).
pub const SERVER: [u8; 4] = [198, 18, 0, 1];

/// A client's TCP connection to the server's port 5060, driven through
/// the programs as the kernel would see it: its SYN on ingress, the
/// server's SYN-ACK on egress, the client's ACK on ingress. `seq` is the
/// sequence number of the client's next byte; it moves on only when the
/// filter lets a segment through (TCP sends a dropped one again).
pub struct Connection {
    pub client: IpAddr,
    pub port: u16,
    pub seq: u32,
    /// The server's next sequence number (what the client acknowledges).
    pub server_seq: u32,
}

impl Filter {
    /// Opens a connection from `client`'s `port` (initial sequence numbers
    /// chosen to wrap soon, so the tests cross the wrap of sequence space).
    pub fn connect(&mut self, client: impl Into<IpAddr>, port: u16) -> Connection {
        let isn = u32::MAX - 3000;
        let server_isn = 7_000_000;
        let mut c = Connection { client: client.into(), port, seq: isn, server_seq: server_isn };
        let syn = c.frame_at(isn, 0, SYN, b"");
        assert!(self.judge(&syn).1.passes(), "the SYN of {} is let through", c.client);
        self.run_egress(&c.from_server(server_isn, isn.wrapping_add(1), SYN | ACK, b""));
        c.seq = isn.wrapping_add(1);
        c.server_seq = server_isn.wrapping_add(1);
        let ack = c.frame_at(c.seq, c.server_seq, ACK, b"");
        assert!(self.judge(&ack).1.passes(), "the handshake of {} completes", c.client);
        c
    }
}

impl Connection {
    /// A client segment carrying `payload` at `seq`.
    pub fn frame_at(&self, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let l4 = tcp_segment(self.port, 5060, seq, ack, flags, payload);
        match self.client {
            IpAddr::V4(a) => v4_frame(&[], &V4::new(a.octets(), IPPROTO_TCP), &l4),
            IpAddr::V6(a) => v6_frame(&[], &V6::new(a.octets(), IPPROTO_TCP), &l4),
        }
    }

    /// The client's next segment, carrying `payload`.
    pub fn segment(&self, payload: &[u8]) -> Vec<u8> {
        self.frame_at(self.seq, self.server_seq, ACK | PSH, payload)
    }

    /// Sends `payload` in one segment; the stream moves on if it passes.
    pub fn send(&mut self, f: &mut Filter, payload: &[u8]) -> (u32, Action, Reason) {
        let verdict = f.judge(&self.segment(payload));
        if verdict.1.passes() {
            self.seq = self.seq.wrapping_add(payload.len() as u32);
        }
        verdict
    }

    /// A segment from the server to this client.
    pub fn from_server(&self, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let l4 = tcp_segment(5060, self.port, seq, ack, flags, payload);
        match self.client {
            IpAddr::V4(a) => v4_frame(&[], &V4 { dst: a.octets(), ..V4::new(SERVER, IPPROTO_TCP) }, &l4),
            IpAddr::V6(a) => {
                let to_client = V6::new([0; 16], IPPROTO_TCP);
                v6_frame(&[], &V6 { src: to_client.dst, dst: a.octets(), ..to_client }, &l4)
            }
        }
    }

    /// The server acknowledges everything the client sent so far.
    pub fn acknowledge(&self, f: &mut Filter) {
        f.run_egress(&self.from_server(self.server_seq, self.seq, ACK, b""));
    }
}

/// Destination rules: the block prefixes, then the allow prefixes, with
/// counter ids in that order (as the controller numbers them).
pub fn destination_rules(block: &[&str], allow: &[&str]) -> BTreeMap<String, DestRule> {
    block
        .iter()
        .map(|p| (p, DestAction::Block))
        .chain(allow.iter().map(|p| (p, DestAction::Allow)))
        .enumerate()
        .map(|(id, (p, action))| {
            (p.to_string(), DestRule { action: action as u8, id: id as u16, ..DestRule::default() })
        })
        .collect()
}

/// The default scanner fingerprints, as the kernel holds them.
pub fn default_fingerprints() -> Vec<Fingerprint> {
    DEFAULT_USER_AGENTS.iter().map(|u| Fingerprint::new(u).expect("default fingerprint")).collect()
}

/// The per-source key of an address (IPv4 mapped).
pub fn source_key(addr: &str) -> SourceKey {
    match addr.parse::<std::net::IpAddr>().expect("address") {
        std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        std::net::IpAddr::V6(v6) => v6.octets(),
    }
}

/// CLOCK_BOOTTIME now, the clock of the kernel's timestamps.
pub fn now_ns() -> u64 {
    sip_xdp::clock::boottime_ns()
}

/// Kernel time per run of `program` on `frame`, over `repeat` runs
/// (BPF_PROG_TEST_RUN's own average), in ns.
fn time_ns(program: &mut Xdp, frame: &[u8], repeat: u32) -> f64 {
    let opts = TestRunOptions { data_in: Some(frame), repeat, ..TestRunOptions::default() };
    program.test_run(opts).expect("BPF_PROG_TEST_RUN").duration.as_nanos() as f64
}

impl Filter {
    /// Kernel time per run of the ingress program on `frame` (benchmark).
    pub fn time_ns(&mut self, frame: &[u8], repeat: u32) -> f64 {
        time_ns(loader::ingress(&mut self.ebpf).expect("program"), frame, repeat)
    }

    /// Kernel time per run of the egress (TC) program on `frame`.
    pub fn time_egress_ns(&mut self, frame: &[u8], repeat: u32) -> f64 {
        let program = loader::egress(&mut self.ebpf).expect("egress program");
        let opts = TestRunOptions { data_in: Some(frame), repeat, ..TestRunOptions::default() };
        program.test_run(opts).expect("BPF_PROG_TEST_RUN (TC)").duration.as_nanos() as f64
    }
}

/// The test programs (`tests/ebpf`), compiled by this crate's build
/// script: never part of the object the controller ships.
pub const TEST_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sip-xdp-test"));
/// Parses to L4 and checks the port, like the ingress program before any
/// policy, then passes.
pub const BASELINE: &str = "sip_xdp_baseline";
/// Sends its frame back out with a random source in 198.19.0.0/16.
pub const GENERATOR: &str = "sip_xdp_flood";
/// Drops everything.
pub const DROP_ALL: &str = "sip_xdp_drop_all";

/// A loaded copy of the test programs.
pub struct TestPrograms {
    pub ebpf: Ebpf,
}

impl TestPrograms {
    /// Loads the object and its programs; the baseline reads `config`.
    pub fn load(config: FilterConfig) -> TestPrograms {
        let mut ebpf = Ebpf::load(TEST_OBJECT).expect("load the test programs (needs root)");
        let mut cfg: Array<_, FilterConfig> =
            Array::try_from(ebpf.map_mut("SIP_CONFIG").expect("the baseline's config")).expect("array");
        cfg.set(0, config, 0).expect("config");
        for name in [BASELINE, GENERATOR, DROP_ALL] {
            program(&mut ebpf, name).load().expect("load a test program");
        }
        TestPrograms { ebpf }
    }

    pub fn program(&mut self, name: &str) -> &mut Xdp {
        program(&mut self.ebpf, name)
    }

    /// Kernel time per run of the baseline on `frame`.
    pub fn baseline_ns(&mut self, frame: &[u8], repeat: u32) -> f64 {
        time_ns(self.program(BASELINE), frame, repeat)
    }
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> &'a mut Xdp {
    ebpf.program_mut(name).unwrap_or_else(|| panic!("no program {name}")).try_into().expect("an XDP program")
}

/// A bpffs of the test's own for a pin directory, unmounted on drop (also
/// when the test fails).
pub struct TempBpffs {
    pub dir: PathBuf,
}

impl TempBpffs {
    pub fn new(name: &str) -> TempBpffs {
        let dir = PathBuf::from(format!("/run/sip-xdp-tests/{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("pin dir");
        TempBpffs { dir }
    }

    /// The pin directory, on a bpffs mounted for it.
    pub fn pins(&self) -> PinDir {
        let pins = PinDir::new(&self.dir);
        pins.prepare().expect("bpffs for the pins");
        pins
    }
}

impl Drop for TempBpffs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
