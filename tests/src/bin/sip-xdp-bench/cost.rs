//! Sections 1 and 2: cost per packet through BPF_PROG_TEST_RUN, beside
//! the parse-only baseline program (`tests/ebpf`), for the rows of the
//! behaviour table the benchmark times; and how the drop of a
//! non-allowlisted packet scales with the allowlist.

use ipnet::IpNet;
use sip_xdp_common::rules::{RuleClass, RuleValue, ORIGIN_CONFIG};
use sip_xdp_tests::{behaviour, frames::*, harness::*};

use crate::Plan;

/// Median over rounds of the mean per-run time over the frames.
fn measure(mut time: impl FnMut(&[u8], u32) -> f64, frames: &[Vec<u8>], plan: &Plan) -> f64 {
    let per_frame = (plan.repeat / frames.len() as u32).max(1);
    let mut rounds: Vec<f64> = (0..plan.rounds)
        .map(|_| frames.iter().map(|fr| time(fr, per_frame)).sum::<f64>() / frames.len() as f64)
        .collect();
    rounds.sort_by(|a, b| a.total_cmp(b));
    rounds[rounds.len() / 2]
}

pub struct Cost {
    pub class: &'static str,
    pub ns: f64,
    pub baseline_ns: f64,
}

/// Each timed row of the behaviour table, from `plan.sources` sources:
/// every frame's verdict is checked against the row before it is timed.
pub fn cost_per_packet(plan: &Plan) -> Vec<Cost> {
    let mut f = behaviour::Setup::Edge.filter();
    let mut baseline = TestPrograms::load(sip_config());
    let mut out = Vec::new();
    for row in behaviour::rows().into_iter().filter(|r| r.timed) {
        let frames: Vec<Vec<u8>> = (0..plan.sources).map(|i| (row.frame)((i % 256) as u8)).collect();
        for (i, frame) in frames.iter().enumerate() {
            let (_, action, reason) = f.judge(frame);
            assert_eq!(
                (action, reason),
                (row.action, row.reason),
                "{} from source {i}: not the path it is named for",
                row.name
            );
        }
        let ns = measure(|fr, n| f.time_ns(fr, n), &frames, plan);
        let baseline_ns = measure(|fr, n| baseline.baseline_ns(fr, n), &frames, plan);
        println!("    {:<34} {ns:>7.1} ns   baseline {baseline_ns:>6.1} ns   x{:.2}", row.name, ns / baseline_ns);
        out.push(Cost { class: row.name, ns, baseline_ns });
    }
    for cost in stream_costs(&mut f, &mut baseline, plan) {
        out.push(cost);
    }
    // The egress program, on responses the server sends; its baseline is
    // the parse-only program on the same bytes (the cost of reaching L4).
    for (class, frames) in egress_classes(plan.sources) {
        let ns = measure(|fr, n| f.time_egress_ns(fr, n), &frames, plan);
        let baseline_ns = measure(|fr, n| baseline.baseline_ns(fr, n), &frames, plan);
        println!("    {class:<34} {ns:>7.1} ns   baseline {baseline_ns:>6.1} ns   x{:.2}", ns / baseline_ns);
        out.push(Cost { class, ns, baseline_ns });
    }
    out
}

/// Connections timed per round for the stream classes, and segments per
/// connection (each test run of a stream segment is one call, and calls
/// are not free).
const STREAM_CONNECTIONS: usize = 16;
const STREAM_SEGMENTS: usize = 8;

/// TCP segments of customers' connections (limited, under the destination
/// policy): each segment continues its stream, which a frame run again
/// and again would not (the second run is a repeat), so each is timed
/// once, over fresh connections each round. Whole phone INVITEs one per
/// segment; and each INVITE cut in two, its second half read on from
/// where the first left it.
fn stream_costs(f: &mut Filter, baseline: &mut TestPrograms, plan: &Plan) -> Vec<Cost> {
    let whole = PHONE_INVITE;
    assert_eq!(sip_xdp_common::message::read(whole).end(), Some(whole.len() as u32), "its Content-Length is right");
    let cut = whole.len() / 2;
    let classes: [(&'static str, Vec<&[u8]>); 2] = [
        ("TCP: phone INVITE per segment, in order", vec![whole]),
        ("TCP: phone INVITE cut across two segments", vec![&whole[..cut], &whole[cut..]]),
    ];
    let mut out = Vec::new();
    for (round_base, (class, pieces)) in classes.into_iter().enumerate() {
        let mut rounds = Vec::new();
        let mut baselines = Vec::new();
        for round in 0..plan.rounds {
            let (mut sum, mut base, mut runs) = (0.0, 0.0, 0usize);
            for conn in 0..STREAM_CONNECTIONS {
                let port = 30_000 + (round_base * 10 + round) as u16 * 100 + conn as u16;
                let mut c = f.connect([203, 0, 113, conn as u8], port);
                for _ in 0..STREAM_SEGMENTS {
                    for piece in &pieces {
                        let frame = c.segment(piece);
                        sum += f.time_ns(&frame, 1);
                        base += baseline.baseline_ns(&frame, 1);
                        c.seq = c.seq.wrapping_add(piece.len() as u32);
                        runs += 1;
                    }
                }
                // Every segment was read in order and let through.
                let (_, action, reason) = c.send(f, OPTIONS);
                assert_eq!(
                    (action, reason),
                    (sip_xdp_common::Action::Pass, sip_xdp_common::Reason::Limited),
                    "{class}"
                );
            }
            rounds.push(sum / runs as f64);
            baselines.push(base / runs as f64);
        }
        rounds.sort_by(|a, b| a.total_cmp(b));
        baselines.sort_by(|a, b| a.total_cmp(b));
        let (ns, baseline_ns) = (rounds[rounds.len() / 2], baselines[baselines.len() / 2]);
        println!("    {class:<34} {ns:>7.1} ns   baseline {baseline_ns:>6.1} ns   x{:.2}", ns / baseline_ns);
        out.push(Cost { class, ns, baseline_ns });
    }
    out
}

/// Responses from the server's SIP port, one frame per client.
fn egress_classes(sources: usize) -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let response = |dst: [u8; 4], tcp: bool, payload: &[u8]| {
        let ip = V4 { dst, ..V4::new([198, 18, 0, 1], if tcp { IPPROTO_TCP } else { IPPROTO_UDP }) };
        let mut l4 = if tcp { frames_tcp(payload) } else { udp(40000, payload) };
        l4[0..2].copy_from_slice(&5060u16.to_be_bytes());
        v4_frame(&[], &ip, &l4)
    };
    let ok = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 198.18.1.2;branch=z9hG4bK1\r\nCall-ID: trunk-1\r\nCSeq: 2 REGISTER\r\nContent-Length: 0\r\n\r\n";
    let challenge = b"SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP 203.0.113.1;branch=z9hG4bK1\r\nCall-ID: guess-1\r\nCSeq: 1 REGISTER\r\nWWW-Authenticate: Digest realm=\"x\", nonce=\"y\"\r\nContent-Length: 0\r\n\r\n";
    let n = |i: usize| (i % 256) as u8;
    vec![
        (
            "egress: 200 OK to a trunk (counted)",
            (0..sources).map(|i| response([198, 18, 1, n(i)], false, ok)).collect(),
        ),
        (
            "egress: 401 to a customer (accounted)",
            (0..sources).map(|i| response([203, 0, 113, n(i)], false, challenge)).collect(),
        ),
        (
            "egress: TCP segment of 4 401s",
            (0..sources).map(|i| response([203, 0, 113, n(i)], true, &challenge.repeat(4))).collect(),
        ),
    ]
}

fn frames_tcp(payload: &[u8]) -> Vec<u8> {
    tcp(40000, 0, payload)
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
    let value = RuleValue::new(ORIGIN_CONFIG, RuleClass::Trusted, 0);
    let mut hosts = 0u32;
    let mut nets: Vec<(IpNet, RuleValue)> = Vec::with_capacity(entries);
    for i in 0..entries {
        let net: IpNet = match i % 8 {
            0..=3 => {
                let a = (10u32 << 24) + 2 * hosts;
                hosts += 1;
                format!("{}/32", std::net::Ipv4Addr::from(a)).parse().unwrap()
            }
            4 | 5 => format!("{}.{}.{}.0/24", 11 + (i >> 16) % 100, (i >> 8) & 255, i & 255).parse().unwrap(),
            6 => format!("2001:db8:{:x}:{:x}::/64", (i >> 16) & 0xffff, i & 0xffff).parse().unwrap(),
            _ => format!("2a00:{:x}:{:x}::/48", (i >> 16) & 0xffff, i & 0xffff).parse().unwrap(),
        };
        nets.push((net, value));
    }
    f.maps.insert_rules(&nets).expect("allowlist insert");
    hosts as usize
}

pub fn scaling(plan: &Plan) -> Vec<Scale> {
    let random: Vec<Vec<u8>> =
        (0..plan.sources).map(|i| udp4([198, 19, (i / 256) as u8 + 9, i as u8], 5060, REGISTER)).collect();
    let mut out = Vec::new();
    for &entries in &plan.sizes {
        let mut f = Filter::load(sip_config());
        let mut baseline = TestPrograms::load(sip_config());
        let hosts = fill(&mut f, entries);
        let neighbours: Vec<Vec<u8>> = (0..plan.sources)
            .map(|i| {
                let a = (10u32 << 24) + 2 * ((i * 7919) % hosts.max(1)) as u32 + 1;
                udp4(a.to_be_bytes(), 5060, REGISTER)
            })
            .collect();
        let random_ns = measure(|fr, n| f.time_ns(fr, n), &random, plan);
        let neighbour_ns = measure(|fr, n| f.time_ns(fr, n), &neighbours, plan);
        let baseline_ns = measure(|fr, n| baseline.baseline_ns(fr, n), &random, plan);
        println!(
            "    {entries:>9} prefixes   {random_ns:>6.1} ns (x{:.2})   beside an entry {neighbour_ns:>6.1} ns (x{:.2})   baseline {baseline_ns:>5.1} ns",
            random_ns / baseline_ns,
            neighbour_ns / baseline_ns
        );
        out.push(Scale { entries, random_ns, neighbour_ns, baseline_ns });
    }
    out
}
