//! A privately loaded copy of the XDP program (no pins, no attachment),
//! driven through BPF_PROG_TEST_RUN.

use std::collections::BTreeMap;

use aya::{
    maps::{MapData, RingBuf},
    programs::{TestRun, TestRunOptions},
    Ebpf,
};
use sip_xdp::{allowlist::parse_cidr, loader, maps::Maps};
use sip_xdp_common::{
    fingerprint::{Fingerprint, DEFAULT_USER_AGENTS},
    maps::{
        AllowValue, BanEntry, Counter, Event, FilterConfig, RateProfile, SourceKey, SourceStats,
        DestRule, DEFAULT_SOURCES_CAPACITY, DEST_ALLOW, DEST_BLOCK, EVENTS_MAP, ORIGIN_CONFIG,
    },
    Action, Reason,
};

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;

pub struct Filter {
    ebpf: Ebpf,
    pub maps: Maps,
    events: Option<RingBuf<MapData>>,
}

/// The filter config most tests use: ports 5060 and 5061, drop, enforce.
pub fn sip_config() -> FilterConfig {
    let mut c = FilterConfig::EMPTY;
    c.ports[0] = 5060;
    c.ports[1] = 5061;
    c.port_count = 2;
    c
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
        self.maps.allow_insert(net, AllowValue { origin: ORIGIN_CONFIG, ..Default::default() }).expect("allow");
    }

    pub fn disallow(&mut self, cidr: &str) {
        self.maps.allow_remove(parse_cidr(cidr).expect("test CIDR")).expect("remove");
    }

    /// Runs one frame and returns the XDP action code.
    pub fn run(&mut self, frame: &[u8]) -> u32 {
        let program = loader::ingress(&mut self.ebpf).expect("program");
        let opts = TestRunOptions { data_in: Some(frame), ..TestRunOptions::default() };
        program.test_run(opts).expect("BPF_PROG_TEST_RUN").return_value
    }

    pub fn counters(&self) -> BTreeMap<(u8, u8), Counter> {
        self.maps
            .stats()
            .expect("stats")
            .into_iter()
            .map(|r| ((r.action as u8, r.reason as u8), r.counter))
            .collect()
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

    /// Per-source counters for an address (IPv4 as `a.b.c.d`).
    pub fn source(&self, addr: &str) -> Option<SourceStats> {
        self.maps.sources.get(&source_key(addr), 0).ok()
    }
}

/// What the ban and rate tests need beyond the allowlist.
impl Filter {
    /// Adds a rule with a class (`CLASS_*`) and profile.
    pub fn rule(&mut self, cidr: &str, class: u8, profile: u8) {
        let net = parse_cidr(cidr).expect("test CIDR");
        let value = AllowValue { origin: ORIGIN_CONFIG, class, profile, ..Default::default() };
        self.maps.allow_insert(net, value).expect("rule");
    }

    pub fn profile(&mut self, index: u32, profile: RateProfile) {
        self.maps.profiles.set(index, profile, 0).expect("profile");
    }

    pub fn ban_of(&self, addr: &str) -> Option<BanEntry> {
        self.maps.bans.get(&source_key(addr), 0).ok()
    }

    pub fn set_ban(&mut self, addr: &str, entry: BanEntry) {
        self.maps.bans.insert(source_key(addr), entry, 0).expect("ban");
    }

    /// Events the program has written since the last call.
    pub fn events(&mut self) -> Vec<Event> {
        let ring = self.events.get_or_insert_with(|| {
            let map = self.ebpf.take_map(EVENTS_MAP).expect("events map");
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

/// Destination rules: the block prefixes, then the allow prefixes, with
/// counter ids in that order (as the controller numbers them).
pub fn destination_rules(block: &[&str], allow: &[&str]) -> BTreeMap<String, DestRule> {
    block
        .iter()
        .map(|p| (p, DEST_BLOCK))
        .chain(allow.iter().map(|p| (p, DEST_ALLOW)))
        .enumerate()
        .map(|(id, (p, action))| (p.to_string(), DestRule { action, id: id as u16, ..DestRule::default() }))
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

/// Timing for the benchmark.
impl Filter {
    /// Kernel time per run of `program` on `frame`, over `repeat` runs
    /// (BPF_PROG_TEST_RUN's own average), in ns. Loads the program first if
    /// it is not (the baseline program is only ever loaded here).
    pub fn time_ns(&mut self, program: &str, frame: &[u8], repeat: u32) -> f64 {
        let prog: &mut aya::programs::Xdp = self.ebpf.program_mut(program).expect("program").try_into().expect("XDP");
        if prog.fd().is_err() {
            prog.load().expect("load");
        }
        let opts = TestRunOptions { data_in: Some(frame), repeat, ..TestRunOptions::default() };
        prog.test_run(opts).expect("BPF_PROG_TEST_RUN").duration.as_nanos() as f64
    }
}
