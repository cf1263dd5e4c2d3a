//! A privately loaded copy of the XDP program (no pins, no attachment),
//! driven through BPF_PROG_TEST_RUN.

use std::collections::BTreeMap;

use aya::{
    programs::{TestRun, TestRunOptions},
    Ebpf,
};
use sip_xdp::{allowlist::parse_cidr, loader, maps::Maps};
use sip_xdp_common::{
    maps::{AllowValue, Counter, FilterConfig, SourceStats, DEFAULT_SOURCES_CAPACITY, ORIGIN_CONFIG},
    Action, Reason,
};

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;

pub struct Filter {
    ebpf: Ebpf,
    pub maps: Maps,
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
        let mut maps = Maps::from_ebpf(&mut ebpf).expect("maps");
        maps.write_config(&config).expect("config");
        Filter { ebpf, maps }
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
        let ip: std::net::IpAddr = addr.parse().expect("address");
        let key = match ip {
            std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            std::net::IpAddr::V6(v6) => v6.octets(),
        };
        self.maps.sources.get(&key, 0).ok()
    }
}
