//! Sections 1 and 2: cost per packet through BPF_PROG_TEST_RUN, beside
//! the parse-only baseline program of the same object, and how the drop of
//! a non-allowlisted packet scales with the allowlist.

use ipnet::IpNet;
use sip_xdp_common::{
    dialled::intl_prefixes,
    maps::{
        dest_applies_profile, AllowValue, BanEntry, FilterConfig, RateProfile, BAN_ACTIVE, BAN_REASON_MANUAL, CLASS_LIMITED,
        CLASS_TRUSTED, NS_PER_SEC, ORIGIN_CONFIG,
    },
};
use sip_xdp_tests::{frames::*, harness::*};

use crate::Plan;

const INGRESS: &str = "sip_xdp_ingress";
const BASELINE: &str = "sip_xdp_baseline";
/// Banned sources set up in the edge filter (at least any plan's sources).
const BANNED: usize = 256;

/// A filter set up like a carrier edge: trunks trusted, customers limited
/// (generously, so the measured path is the admitted one), the destination
/// policy on customers, fingerprints on, banned sources in the ban table.
fn edge_filter() -> Filter {
    let cfg = FilterConfig {
        intl: intl_prefixes(&["00", "011"]),
        dest_applies: dest_applies_profile(0),
        ..sip_config()
    };
    let mut f = Filter::load(cfg);
    let big = 1_000_000;
    f.profile(
        0,
        RateProfile {
            register_per_sec: big,
            register_burst: big,
            requests_per_sec: big,
            requests_burst: big,
            invite_per_sec: big,
            invite_burst: big,
        },
    );
    f.rule("198.18.1.0/24", CLASS_TRUSTED, 0);
    f.rule("203.0.113.0/24", CLASS_LIMITED, 0);
    // Banned customers: a rule covers them, so the ban table is asked (a
    // banned source no rule covers takes the flood path instead).
    f.rule("203.0.114.0/24", CLASS_LIMITED, 0);
    f.rule("2001:db8:1::/48", CLASS_TRUSTED, 0);
    f.maps
        .write_dest_rules(&destination_rules(&["252", "224", "881", "882"], &[]))
        .unwrap();
    f.maps.write_fingerprints(&default_fingerprints()).unwrap();
    let now = now_ns();
    for i in 0..BANNED {
        let ban = BanEntry {
            expires_ns: now + 3600 * NS_PER_SEC,
            banned_at_ns: now,
            offenses: 1,
            reason: BAN_REASON_MANUAL,
            state: BAN_ACTIVE,
            announced: 1,
            ..BanEntry::default()
        };
        f.set_ban(&format!("203.0.114.{i}"), ban);
    }
    f
}

fn v4_udp(src: [u8; 4], port: u16, payload: &[u8]) -> Vec<u8> {
    v4_frame(&[], &V4::new(src, IPPROTO_UDP), &udp(port, payload))
}

/// The packet classes, each as one frame per source.
fn classes(sources: usize) -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let n = |i: usize| (i % 256) as u8;
    let each = |make: &dyn Fn(usize) -> Vec<u8>| (0..sources).map(make).collect::<Vec<_>>();
    let invite = b"INVITE sip:+4930123456@198.18.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.1\r\nUser-Agent: Yealink\r\n\r\n";
    vec![
        ("non-SIP (UDP 53)", each(&|i| v4_udp([198, 19, 1, n(i)], 53, b"dns query"))),
        (
            "dropped, not allowlisted, UDP",
            each(&|i| v4_udp([198, 19, 2, n(i)], 5060, REGISTER)),
        ),
        (
            "dropped, not allowlisted, TCP",
            each(&|i| v4_frame(&[], &V4::new([198, 19, 3, n(i)], IPPROTO_TCP), &tcp(5060, 0, REGISTER))),
        ),
        ("trusted REGISTER", each(&|i| v4_udp([198, 18, 1, n(i)], 5060, REGISTER))),
        ("limited REGISTER", each(&|i| v4_udp([203, 0, 113, n(i)], 5060, REGISTER))),
        ("banned source (a customer)", each(&|i| v4_udp([203, 0, 114, n(i)], 5060, REGISTER))),
        (
            "INVITE with destination lookup",
            each(&|i| v4_udp([203, 0, 113, n(i)], 5060, invite)),
        ),
        (
            "IPv6, trusted",
            each(&|i| {
                let mut a = v6_addr("2001:db8:1::");
                a[15] = n(i);
                v6_frame(&[], &V6::new(a, IPPROTO_UDP), &udp(5060, REGISTER))
            }),
        ),
        (
            "malformed (truncated UDP)",
            each(&|i| v4_udp([198, 19, 4, n(i)], 5060, REGISTER)[..38].to_vec()),
        ),
    ]
}

/// Median over rounds of the mean per-run time over the sources.
fn measure(f: &mut Filter, program: &str, frames: &[Vec<u8>], plan: &Plan) -> f64 {
    let per_frame = (plan.repeat / frames.len() as u32).max(1);
    let mut rounds: Vec<f64> = (0..plan.rounds)
        .map(|_| frames.iter().map(|fr| f.time_ns(program, fr, per_frame)).sum::<f64>() / frames.len() as f64)
        .collect();
    rounds.sort_by(|a, b| a.total_cmp(b));
    rounds[rounds.len() / 2]
}

pub struct Cost {
    pub class: &'static str,
    pub ns: f64,
    pub baseline_ns: f64,
}

pub fn cost_per_packet(plan: &Plan) -> Vec<Cost> {
    let mut f = edge_filter();
    let mut out = Vec::new();
    for (class, frames) in classes(plan.sources) {
        let ns = measure(&mut f, INGRESS, &frames, plan);
        let baseline_ns = measure(&mut f, BASELINE, &frames, plan);
        println!(
            "    {class:<34} {ns:>7.1} ns   baseline {baseline_ns:>6.1} ns   x{:.2}",
            ns / baseline_ns
        );
        out.push(Cost { class, ns, baseline_ns });
    }
    out
}

pub struct Scale {
    pub entries: usize,
    /// Sources in /24s no rule touches: the flood case.
    pub random_ns: f64,
    /// Sources beside /32 entries (same /24, no rule): the index sends
    /// them to the trie, the worst case.
    pub neighbour_ns: f64,
    pub baseline_ns: f64,
}

/// A realistic mix: /32s and /24s for IPv4, /64s and /48s for IPv6
/// (three quarters IPv4). The /32s sit on even addresses of 10.0.0.0/8 so
/// their odd neighbours are misses inside covered /24s.
fn fill(f: &mut Filter, entries: usize) -> usize {
    let value = AllowValue {
        origin: ORIGIN_CONFIG,
        class: CLASS_TRUSTED,
        ..AllowValue::default()
    };
    let mut hosts = 0u32;
    let mut nets: Vec<(IpNet, AllowValue)> = Vec::with_capacity(entries);
    for i in 0..entries {
        let net: IpNet = match i % 8 {
            0..=3 => {
                let a = (10u32 << 24) + 2 * hosts;
                hosts += 1;
                format!("{}/32", std::net::Ipv4Addr::from(a)).parse().unwrap()
            }
            4 | 5 => format!("{}.{}.{}.0/24", 11 + (i >> 16) % 100, (i >> 8) & 255, i & 255)
                .parse()
                .unwrap(),
            6 => format!("2001:db8:{:x}:{:x}::/64", (i >> 16) & 0xffff, i & 0xffff)
                .parse()
                .unwrap(),
            _ => format!("2a00:{:x}:{:x}::/48", (i >> 16) & 0xffff, i & 0xffff)
                .parse()
                .unwrap(),
        };
        nets.push((net, value));
    }
    f.maps.allow_insert_all(&nets).expect("allowlist insert");
    hosts as usize
}

pub fn scaling(plan: &Plan) -> Vec<Scale> {
    let random: Vec<Vec<u8>> = (0..plan.sources)
        .map(|i| v4_udp([198, 19, (i / 256) as u8 + 9, i as u8], 5060, REGISTER))
        .collect();
    let mut out = Vec::new();
    for &entries in &plan.sizes {
        let mut f = Filter::load(sip_config());
        let hosts = fill(&mut f, entries);
        let neighbours: Vec<Vec<u8>> = (0..plan.sources)
            .map(|i| {
                let a = (10u32 << 24) + 2 * ((i * 7919) % hosts.max(1)) as u32 + 1;
                v4_udp(a.to_be_bytes(), 5060, REGISTER)
            })
            .collect();
        let random_ns = measure(&mut f, INGRESS, &random, plan);
        let neighbour_ns = measure(&mut f, INGRESS, &neighbours, plan);
        let baseline_ns = measure(&mut f, BASELINE, &random, plan);
        println!(
            "    {entries:>9} prefixes   {random_ns:>6.1} ns (x{:.2})   beside an entry {neighbour_ns:>6.1} ns (x{:.2})   baseline {baseline_ns:>5.1} ns",
            random_ns / baseline_ns,
            neighbour_ns / baseline_ns
        );
        out.push(Scale {
            entries,
            random_ns,
            neighbour_ns,
            baseline_ns,
        });
    }
    out
}
