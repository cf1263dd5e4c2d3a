//! Verdict tables: the real object, private maps, crafted frames through
//! BPF_PROG_TEST_RUN. Each case asserts the XDP action and that exactly one
//! `(action, reason)` counter moved by one packet of the frame's length.
//! Needs root.

use sip_xdp_common::{
    maps::{FilterConfig, DEFAULT_ACTION_PASS, MODE_MONITOR},
    Action::{self, *},
    Reason::{self, *},
};
use sip_xdp_tests::{frames::*, harness::*};

const TRUSTED: [u8; 4] = [198, 18, 1, 2];
const STRANGER: [u8; 4] = [198, 19, 7, 7];

fn trusted_filter() -> Filter {
    let mut f = Filter::load(sip_config());
    f.allow("198.18.1.2/32");
    f.allow("2001:db8:1::/48");
    f
}

fn check(f: &mut Filter, frame: &[u8], xdp: u32, action: Action, reason: Reason, what: &str) {
    let got = f.judge(frame);
    assert_eq!(got, (xdp, action, reason), "{what}");
}

#[test]
fn ipv4_udp_and_tcp_on_each_port_and_a_non_sip_port() {
    let mut f = trusted_filter();
    for port in [5060, 5061] {
        let udp_t = v4_frame(&[], &V4::new(TRUSTED, IPPROTO_UDP), &udp(port, REGISTER));
        check(&mut f, &udp_t, XDP_PASS, Pass, Allowlisted, "trusted UDP");
        let udp_s = v4_frame(&[], &V4::new(STRANGER, IPPROTO_UDP), &udp(port, REGISTER));
        check(&mut f, &udp_s, XDP_DROP, Drop, NotAllowlisted, "stranger UDP");
        let tcp_t = v4_frame(&[], &V4::new(TRUSTED, IPPROTO_TCP), &tcp(port, 0, INVITE));
        check(&mut f, &tcp_t, XDP_PASS, Pass, Allowlisted, "trusted TCP");
        let tcp_s = v4_frame(&[], &V4::new(STRANGER, IPPROTO_TCP), &tcp(port, 12, INVITE));
        check(&mut f, &tcp_s, XDP_DROP, Drop, NotAllowlisted, "stranger TCP with options");
    }
    for (proto, l4) in [(IPPROTO_UDP, udp(5062, REGISTER)), (IPPROTO_UDP, udp(53, b"dns")), (IPPROTO_TCP, tcp(443, 0, b"tls"))] {
        let frame = v4_frame(&[], &V4::new(STRANGER, proto), &l4);
        check(&mut f, &frame, XDP_PASS, Pass, NonSip, "other port");
    }
}

#[test]
fn ipv6_udp_and_tcp() {
    let mut f = trusted_filter();
    let trusted = v6_addr("2001:db8:1:2::10");
    let stranger = v6_addr("2001:db8:2::10");
    for port in [5060, 5061] {
        check(&mut f, &v6_frame(&[], &V6::new(trusted, IPPROTO_UDP), &udp(port, REGISTER)), XDP_PASS, Pass, Allowlisted, "v6 trusted UDP");
        check(&mut f, &v6_frame(&[], &V6::new(stranger, IPPROTO_UDP), &udp(port, REGISTER)), XDP_DROP, Drop, NotAllowlisted, "v6 stranger UDP");
        check(&mut f, &v6_frame(&[], &V6::new(trusted, IPPROTO_TCP), &tcp(port, 0, INVITE)), XDP_PASS, Pass, Allowlisted, "v6 trusted TCP");
        check(&mut f, &v6_frame(&[], &V6::new(stranger, IPPROTO_TCP), &tcp(port, 0, INVITE)), XDP_DROP, Drop, NotAllowlisted, "v6 stranger TCP");
    }
    check(&mut f, &v6_frame(&[], &V6::new(stranger, IPPROTO_UDP), &udp(5070, REGISTER)), XDP_PASS, Pass, NonSip, "v6 other port");
}

#[test]
fn configured_ports_are_the_ones_filtered() {
    let mut cfg = sip_config();
    cfg.ports[0] = 5080;
    cfg.port_count = 1;
    let mut f = Filter::load(cfg);
    let to = |port| v4_frame(&[], &V4::new(STRANGER, IPPROTO_UDP), &udp(port, REGISTER));
    check(&mut f, &to(5080), XDP_DROP, Drop, NotAllowlisted, "configured port");
    check(&mut f, &to(5060), XDP_PASS, Pass, NonSip, "5060 is not configured here");
    // The sixteenth port of a full set is honoured.
    let mut full = sip_config();
    for (i, p) in full.ports.iter_mut().enumerate() {
        *p = 6000 + i as u16;
    }
    full.port_count = 16;
    f.set_config(full);
    check(&mut f, &to(6015), XDP_DROP, Drop, NotAllowlisted, "16th port");
    check(&mut f, &to(6016), XDP_PASS, Pass, NonSip, "17th is not a port");
}

#[test]
fn vlan_tags() {
    let mut f = trusted_filter();
    for tags in [&[ETH_P_8021Q][..], &[ETH_P_8021AD], &[ETH_P_8021AD, ETH_P_8021Q], &[ETH_P_8021Q, ETH_P_8021Q]] {
        check(&mut f, &v4_frame(tags, &V4::new(TRUSTED, IPPROTO_UDP), &udp(5060, REGISTER)), XDP_PASS, Pass, Allowlisted, "tagged trusted");
        check(&mut f, &v4_frame(tags, &V4::new(STRANGER, IPPROTO_UDP), &udp(5060, REGISTER)), XDP_DROP, Drop, NotAllowlisted, "tagged stranger");
        let v6 = V6::new(v6_addr("2001:db8:9::1"), IPPROTO_UDP);
        check(&mut f, &v6_frame(tags, &v6, &udp(5060, REGISTER)), XDP_DROP, Drop, NotAllowlisted, "tagged v6 stranger");
    }
    // A third tag is more than the parser walks: dropped, not passed blind.
    let three = v4_frame(&[ETH_P_8021AD, ETH_P_8021Q, ETH_P_8021Q], &V4::new(TRUSTED, IPPROTO_UDP), &udp(5060, REGISTER));
    check(&mut f, &three, XDP_DROP, Drop, TooDeep, "three tags");
    // A tagged ARP frame is still not IP.
    let mut arp = eth(&[ETH_P_8021Q], ETH_P_ARP);
    arp.extend_from_slice(&arp_request()[14..]);
    check(&mut f, &arp, XDP_PASS, Pass, NonIp, "tagged ARP");
}

#[test]
fn allowlist_prefix_lengths() {
    let mut f = Filter::load(sip_config());
    let v4 = |src: [u8; 4]| v4_frame(&[], &V4::new(src, IPPROTO_UDP), &udp(5060, REGISTER));
    let v6 = |src: &str| v6_frame(&[], &V6::new(v6_addr(src), IPPROTO_UDP), &udp(5060, REGISTER));

    f.allow("198.18.5.5/32");
    check(&mut f, &v4([198, 18, 5, 5]), XDP_PASS, Pass, Allowlisted, "/32 hit");
    check(&mut f, &v4([198, 18, 5, 6]), XDP_DROP, Drop, NotAllowlisted, "/32 neighbour");

    f.allow("198.18.6.0/24");
    check(&mut f, &v4([198, 18, 6, 0]), XDP_PASS, Pass, Allowlisted, "/24 first");
    check(&mut f, &v4([198, 18, 6, 255]), XDP_PASS, Pass, Allowlisted, "/24 last");
    check(&mut f, &v4([198, 18, 7, 0]), XDP_DROP, Drop, NotAllowlisted, "/24 next");

    f.allow("2001:db8:aa::/48");
    check(&mut f, &v6("2001:db8:aa:ffff::1"), XDP_PASS, Pass, Allowlisted, "/48 hit");
    check(&mut f, &v6("2001:db8:ab::1"), XDP_DROP, Drop, NotAllowlisted, "/48 miss");

    f.allow("2001:db8:bb::7/128");
    check(&mut f, &v6("2001:db8:bb::7"), XDP_PASS, Pass, Allowlisted, "/128 hit");
    check(&mut f, &v6("2001:db8:bb::8"), XDP_DROP, Drop, NotAllowlisted, "/128 neighbour");

    // /0 allows every IPv4 source, and no IPv6 one.
    f.allow("0.0.0.0/0");
    check(&mut f, &v4([203, 0, 113, 9]), XDP_PASS, Pass, Allowlisted, "/0");
    check(&mut f, &v6("2001:db8:cc::1"), XDP_DROP, Drop, NotAllowlisted, "v4 /0 says nothing of v6");
    f.disallow("0.0.0.0/0");
    check(&mut f, &v4([203, 0, 113, 9]), XDP_DROP, Drop, NotAllowlisted, "/0 removed");
    f.allow("::/0");
    check(&mut f, &v6("2001:db8:cc::1"), XDP_PASS, Pass, Allowlisted, "v6 /0");
}

#[test]
fn arp_and_icmp_pass_untouched() {
    let mut f = Filter::load(sip_config());
    check(&mut f, &arp_request(), XDP_PASS, Pass, NonIp, "ARP");
    check(&mut f, &v4_frame(&[], &V4::new(STRANGER, IPPROTO_ICMP), &icmp_echo()), XDP_PASS, Pass, NonSip, "ICMP");
    let icmp6 = v6_frame(&[], &V6::new(v6_addr("2001:db8:2::1"), IPPROTO_ICMPV6), &[128, 0, 0, 0, 0, 1, 0, 1]);
    check(&mut f, &icmp6, XDP_PASS, Pass, NonSip, "ICMPv6");
    // Other L4 protocols (here SCTP) to "port 5060" are not UDP/TCP.
    check(&mut f, &v4_frame(&[], &V4::new(STRANGER, 132), &udp(5060, REGISTER)), XDP_PASS, Pass, NonSip, "SCTP");
}

#[test]
fn ipv4_options_are_skipped_by_ihl() {
    let mut f = trusted_filter();
    for words in [1usize, 3, 10] {
        let mut ip = V4::new(STRANGER, IPPROTO_UDP);
        ip.options = vec![1u8; words * 4]; // NOPs
        check(&mut f, &v4_frame(&[], &ip, &udp(5060, REGISTER)), XDP_DROP, Drop, NotAllowlisted, "stranger with options");
        ip.src = TRUSTED;
        check(&mut f, &v4_frame(&[], &ip, &udp(5060, REGISTER)), XDP_PASS, Pass, Allowlisted, "trusted with options");
        // Read as if there were no options, the port would be 0x0101.
        check(&mut f, &v4_frame(&[], &ip, &udp(257, b"")), XDP_PASS, Pass, NonSip, "port after options");
    }
}

#[test]
fn ipv6_extension_headers_are_walked() {
    let mut f = trusted_filter();
    let stranger = v6_addr("2001:db8:2::10");
    let chains: Vec<V6> = vec![
        V6::new(stranger, IPPROTO_UDP).with_ext(NEXTHDR_HOP, 1),
        V6::new(stranger, IPPROTO_UDP).with_ext(NEXTHDR_HOP, 1).with_ext(NEXTHDR_ROUTING, 3).with_ext(NEXTHDR_DEST, 2),
        V6::new(stranger, IPPROTO_TCP).with_ext(NEXTHDR_DEST, 1).with_fragment(0, false, 7),
    ];
    for ip in &chains {
        let l4 = if ip.protocol == IPPROTO_TCP { tcp(5060, 0, INVITE) } else { udp(5060, REGISTER) };
        check(&mut f, &v6_frame(&[], ip, &l4), XDP_DROP, Drop, NotAllowlisted, "stranger behind extension headers");
        let mut trusted = ip.clone();
        trusted.src = v6_addr("2001:db8:1::99");
        check(&mut f, &v6_frame(&[], &trusted, &l4), XDP_PASS, Pass, Allowlisted, "trusted behind extension headers");
        let other = if ip.protocol == IPPROTO_TCP { tcp(9999, 0, b"x") } else { udp(9999, b"x") };
        check(&mut f, &v6_frame(&[], ip, &other), XDP_PASS, Pass, NonSip, "other port behind extension headers");
    }
    // Eight headers are walked; a ninth means the L4 header is out of reach.
    let mut eight = V6::new(stranger, IPPROTO_UDP);
    for _ in 0..8 {
        eight = eight.with_ext(NEXTHDR_DEST, 1);
    }
    check(&mut f, &v6_frame(&[], &eight, &udp(9999, b"x")), XDP_PASS, Pass, NonSip, "eight headers");
    let nine = eight.clone().with_ext(NEXTHDR_DEST, 1);
    check(&mut f, &v6_frame(&[], &nine, &udp(5060, REGISTER)), XDP_DROP, Drop, TooDeep, "nine headers");
}

#[test]
fn truncated_at_every_layer() {
    let mut f = trusted_filter();
    // Each case: a valid frame and the lengths to cut it to.
    let v4 = v4_frame(&[], &V4::new(TRUSTED, IPPROTO_UDP), &udp(5060, REGISTER));
    let mut ip_opts = V4::new(TRUSTED, IPPROTO_UDP);
    ip_opts.options = vec![1; 8];
    let v4_opts = v4_frame(&[], &ip_opts, &udp(5060, REGISTER));
    let v4_tcp = v4_frame(&[], &V4::new(TRUSTED, IPPROTO_TCP), &tcp(5060, 8, INVITE));
    let v6 = v6_frame(&[], &V6::new(v6_addr("2001:db8:1::1"), IPPROTO_UDP).with_ext(NEXTHDR_HOP, 2), &udp(5060, REGISTER));
    let tagged = v4_frame(&[ETH_P_8021AD, ETH_P_8021Q], &V4::new(TRUSTED, IPPROTO_UDP), &udp(5060, REGISTER));
    let cases: [(&str, &[u8], &[usize]); 5] = [
        // in the IPv4 header; in the UDP header
        ("IPv4/UDP", &v4, &[15, 33, 34, 41]),
        // in the options; in the UDP header after them
        ("IPv4 options", &v4_opts, &[35, 41, 42, 49]),
        // in the TCP header; in its options
        ("IPv4/TCP", &v4_tcp, &[36, 53, 54, 61]),
        // in the IPv6 header; in the hop-by-hop header; in UDP
        ("IPv6", &v6, &[20, 53, 54, 56, 69, 70, 77]),
        // in the outer tag; in the inner tag
        ("VLAN", &tagged, &[15, 17, 19, 21]),
    ];
    for (name, frame, cuts) in cases {
        for &cut in cuts {
            check(&mut f, &frame[..cut], XDP_DROP, Drop, Malformed, &format!("{name} cut at {cut}"));
        }
    }
    // Bad header length fields are malformed too.
    let mut bad_ihl = v4.clone();
    bad_ihl[14] = 0x44; // ihl 4 < 5
    check(&mut f, &bad_ihl, XDP_DROP, Drop, Malformed, "ihl 4");
    let mut bad_version = v4.clone();
    bad_version[14] = 0x65;
    check(&mut f, &bad_version, XDP_DROP, Drop, Malformed, "version 6 in an IPv4 frame");
    let mut bad_doff = v4_tcp.clone();
    bad_doff[14 + 20 + 12] = 0x40; // doff 4 < 5
    check(&mut f, &bad_doff, XDP_DROP, Drop, Malformed, "TCP doff 4");
    let mut long_doff = v4_tcp.clone();
    long_doff[14 + 20 + 12] = 0xf0; // 60 bytes claimed, fewer present
    let long_doff = &long_doff[..14 + 20 + 40];
    check(&mut f, long_doff, XDP_DROP, Drop, Malformed, "TCP doff beyond the frame");
    // Payload may be short or absent: that is not malformed.
    check(&mut f, &v4_frame(&[], &V4::new(TRUSTED, IPPROTO_UDP), &udp(5060, b"")), XDP_PASS, Pass, Allowlisted, "empty payload");
}

#[test]
fn fragments_follow_their_first_fragment() {
    let mut f = trusted_filter();
    let first = |src: [u8; 4], id: u16| {
        let mut ip = V4::new(src, IPPROTO_UDP);
        ip.id = id;
        ip.more_fragments = true;
        v4_frame(&[], &ip, &udp(5060, REGISTER))
    };
    let later = |src: [u8; 4], id: u16, more: bool| {
        let mut ip = V4::new(src, IPPROTO_UDP);
        ip.id = id;
        ip.more_fragments = more;
        ip.frag_offset = 10;
        v4_frame(&[], &ip, b"more SIP headers, no UDP header here")
    };
    check(&mut f, &first(STRANGER, 1), XDP_DROP, Drop, NotAllowlisted, "stranger first fragment");
    check(&mut f, &later(STRANGER, 1, true), XDP_DROP, Drop, Fragment, "stranger middle fragment");
    check(&mut f, &later(STRANGER, 1, false), XDP_DROP, Drop, Fragment, "stranger last fragment");
    check(&mut f, &first(TRUSTED, 2), XDP_PASS, Pass, Allowlisted, "trusted first fragment");
    check(&mut f, &later(TRUSTED, 2, false), XDP_PASS, Pass, Fragment, "trusted last fragment");
    check(&mut f, &later(STRANGER, 99, false), XDP_PASS, Pass, FragmentUntracked, "first never seen");
    // Same id from another source is another datagram.
    check(&mut f, &later(TRUSTED, 1, false), XDP_PASS, Pass, FragmentUntracked, "id reused by another source");
    // A first fragment too short to hold the UDP header.
    let mut tiny = V4::new(STRANGER, IPPROTO_UDP);
    tiny.more_fragments = true;
    tiny.id = 3;
    check(&mut f, &v4_frame(&[], &tiny, &[0x13, 0xc4, 0x13]), XDP_DROP, Drop, Malformed, "tiny first fragment");
    check(&mut f, &later(STRANGER, 3, false), XDP_DROP, Drop, Fragment, "rest of the tiny datagram");

    // IPv6: the fragment header carries offset and id.
    let stranger6 = v6_addr("2001:db8:2::1");
    let v6_first = v6_frame(&[], &V6::new(stranger6, IPPROTO_UDP).with_fragment(0, true, 0xabcd), &udp(5060, REGISTER));
    let v6_later = v6_frame(&[], &V6::new(stranger6, IPPROTO_UDP).with_fragment(4, false, 0xabcd), b"tail of the datagram");
    check(&mut f, &v6_first, XDP_DROP, Drop, NotAllowlisted, "v6 first fragment");
    check(&mut f, &v6_later, XDP_DROP, Drop, Fragment, "v6 later fragment");
    let v6_orphan = v6_frame(&[], &V6::new(stranger6, IPPROTO_UDP).with_fragment(4, false, 0x1111), b"orphan");
    check(&mut f, &v6_orphan, XDP_PASS, Pass, FragmentUntracked, "v6 orphan");
    // Fragments of non-SIP traffic pass, first and later alike.
    let mut dns = V4::new(STRANGER, IPPROTO_UDP);
    dns.id = 4;
    dns.more_fragments = true;
    check(&mut f, &v4_frame(&[], &dns, &udp(53, b"big answer")), XDP_PASS, Pass, NonSip, "non-SIP first fragment");
    check(&mut f, &later(STRANGER, 4, false), XDP_PASS, Pass, Fragment, "non-SIP later fragment");
}

#[test]
fn monitor_mode_counts_but_never_drops() {
    let mut cfg = sip_config();
    cfg.mode = MODE_MONITOR;
    let mut f = Filter::load(cfg);
    f.allow("198.18.1.2/32");
    check(&mut f, &v4_frame(&[], &V4::new(STRANGER, IPPROTO_UDP), &udp(5060, REGISTER)), XDP_PASS, WouldDrop, NotAllowlisted, "monitor: stranger");
    check(&mut f, &v4_frame(&[], &V4::new(TRUSTED, IPPROTO_UDP), &udp(5060, REGISTER)), XDP_PASS, Pass, Allowlisted, "monitor: trusted");
    let v4 = v4_frame(&[], &V4::new(TRUSTED, IPPROTO_UDP), &udp(5060, REGISTER));
    check(&mut f, &v4[..30], XDP_PASS, WouldDrop, Malformed, "monitor: malformed");
    let mut first = V4::new(STRANGER, IPPROTO_UDP);
    first.more_fragments = true;
    first.id = 8;
    check(&mut f, &v4_frame(&[], &first, &udp(5061, INVITE)), XDP_PASS, WouldDrop, NotAllowlisted, "monitor: first fragment");
    let mut later = first.clone();
    later.more_fragments = false;
    later.frag_offset = 20;
    check(&mut f, &v4_frame(&[], &later, b"tail"), XDP_PASS, WouldDrop, Fragment, "monitor: later fragment");
    // Switching to enforce takes effect on the next packet.
    f.set_config(sip_config());
    check(&mut f, &v4_frame(&[], &V4::new(STRANGER, IPPROTO_UDP), &udp(5060, REGISTER)), XDP_DROP, Drop, NotAllowlisted, "enforce again");
}

#[test]
fn default_action_pass_lets_strangers_through_but_counts_them() {
    let mut cfg = sip_config();
    cfg.default_action = DEFAULT_ACTION_PASS;
    let mut f = Filter::load(cfg);
    check(&mut f, &v4_frame(&[], &V4::new(STRANGER, IPPROTO_UDP), &udp(5060, REGISTER)), XDP_PASS, Pass, NotAllowlisted, "default pass");
}

#[test]
fn per_source_counters() {
    let mut f = trusted_filter();
    // A deny rule, not no rule: sources no rule covers are not tracked
    // (see the flood test below).
    f.rule("198.19.7.0/24", sip_xdp_common::maps::CLASS_DENY, 0);
    let reg = v4_frame(&[], &V4::new(STRANGER, IPPROTO_UDP), &udp(5060, REGISTER));
    let inv = v4_frame(&[], &V4::new(STRANGER, IPPROTO_TCP), &tcp(5061, 0, INVITE));
    let other = v4_frame(&[], &V4::new(STRANGER, IPPROTO_UDP), &udp(53, REGISTER));
    for _ in 0..3 {
        f.run(&reg);
    }
    f.run(&inv);
    f.run(&other); // not SIP traffic: not in the per-source table
    let s = f.source("198.19.7.7").expect("stranger is counted");
    assert_eq!(s.packets, 4);
    assert_eq!(s.bytes, 3 * reg.len() as u64 + inv.len() as u64);
    assert_eq!(s.registers, 3);
    assert_eq!(s.dropped, 4);
    assert!(s.last_seen_ns > 0);

    let t = v4_frame(&[], &V4::new(TRUSTED, IPPROTO_UDP), &udp(5060, REGISTER));
    f.run(&t);
    let ts = f.source("198.18.1.2").expect("trusted source counted too");
    assert_eq!((ts.packets, ts.registers, ts.dropped), (1, 1, 0));

    let v6src = "2001:db8:2::42";
    let v6 = v6_frame(&[], &V6::new(v6_addr(v6src), IPPROTO_UDP), &udp(5060, b"OPTIONS sip:x@198.18.0.1 SIP/2.0\r\n\r\n"));
    f.run(&v6);
    let s6 = f.source(v6src).expect("v6 source");
    assert_eq!((s6.packets, s6.registers, s6.dropped), (1, 0, 1));
    assert!(f.source("198.19.9.9").is_none());
}

fn register_v4(src: [u8; 4]) -> Vec<u8> {
    v4_frame(&[], &V4::new(src, IPPROTO_UDP), &udp(5060, REGISTER))
}

/// Set bits in the allowlist index (IPv4 half, IPv6 half).
fn index_bits(f: &Filter) -> (u32, u32) {
    let words = sip_xdp_common::allow_index::INDEX_WORDS;
    let (mut v4, mut v6) = (0, 0);
    for i in 0..2 * words {
        let ones = f.maps.allow_index.words.get(&i, 0).unwrap().count_ones();
        if i < words { v4 += ones } else { v6 += ones }
    }
    (v4, v6)
}

#[test]
fn the_allowlist_index_answers_only_for_buckets_no_rule_covers() {
    let mut f = Filter::load(sip_config());
    f.allow("198.18.1.7/32");
    f.allow("2001:db8:1::/48");
    assert_eq!(index_bits(&f), (1, 1), "one /24 and one hashed /32");
    check(&mut f, &register_v4([198, 18, 1, 7]), XDP_PASS, Pass, Allowlisted, "the rule");
    // Same /24: the bit sends it to the trie, which finds no rule.
    check(&mut f, &register_v4([198, 18, 1, 8]), XDP_DROP, Drop, NotAllowlisted, "same /24, no rule");
    let v6 = |a: &str| v6_frame(&[], &V6::new(v6_addr(a), IPPROTO_UDP), &udp(5060, REGISTER));
    check(&mut f, &v6("2001:db8:1:ff::1"), XDP_PASS, Pass, Allowlisted, "inside the /48");
    check(&mut f, &v6("2001:db8:2::1"), XDP_DROP, Drop, NotAllowlisted, "same /32, no rule");
    // A removed rule's bit stays (it only costs a trie lookup) until the
    // index is rebuilt from the tries.
    f.disallow("198.18.1.7/32");
    check(&mut f, &register_v4([198, 18, 1, 7]), XDP_DROP, Drop, NotAllowlisted, "removed");
    assert_eq!(index_bits(&f), (1, 1));
    f.maps.rebuild_allow_index().unwrap();
    assert_eq!(index_bits(&f), (0, 1), "rebuilt from the tries");
    check(&mut f, &v6("2001:db8:1::9"), XDP_PASS, Pass, Allowlisted, "the remaining rule still holds");
}

#[test]
fn a_flood_from_sources_no_rule_covers_leaves_the_per_source_table_alone() {
    // The spoofed flood cannot evict real clients' state from the LRU table;
    // in monitor mode the per-source view of who would be dropped stays.
    for (mode, want) in [(0, false), (MODE_MONITOR, true)] {
        let mut f = Filter::load(FilterConfig { mode, ..sip_config() });
        f.allow("198.18.1.0/24");
        for i in 0..50u8 {
            f.run(&register_v4([198, 19, 8, i]));
        }
        f.run(&register_v4([198, 18, 1, 9]));
        assert_eq!(f.source("198.19.8.3").is_some(), want, "mode {mode}");
        assert_eq!(f.source("198.18.1.9").map(|s| s.packets), Some(1), "the covered source is tracked");
    }
}
