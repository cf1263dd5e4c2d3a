//! The ingress program through BPF_PROG_TEST_RUN: the real object, private
//! maps, crafted frames. The behaviour table (`sip_xdp_tests::behaviour`)
//! holds what one frame shows; the tests below it hold what takes several
//! (fragments, per-source counters, the rule index). Each frame asserts the
//! XDP action and that exactly one `(action, reason)` counter moved by one
//! packet of the frame's length. Needs root.

use sip_xdp_common::{
    kernel_config::{FilterConfig, Mode},
    rules::RuleClass,
    Action::{self, *},
    Reason::{self, *},
};
use sip_xdp_tests::{behaviour::*, frames::*, harness::*};

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

/// Every row of the behaviour table, each setup loaded afresh: one frame,
/// one counter moved by one packet of its length, the row's action and
/// reason, and the XDP action that goes with them.
#[test]
fn every_row_of_the_behaviour_table() {
    let mut setups: Vec<Setup> = Vec::new();
    for row in rows() {
        if !setups.contains(&row.setup) {
            setups.push(row.setup);
        }
    }
    let mut failures = Vec::new();
    for setup in setups {
        let mut f = setup.filter();
        for row in rows_of(setup) {
            let (_, action, reason) = f.judge(&(row.frame)(0));
            if (action, reason) != (row.action, row.reason) {
                failures
                    .push(format!("{}: got {action:?}/{reason:?}, want {:?}/{:?}", row.name, row.action, row.reason));
            }
        }
    }
    assert!(failures.is_empty(), "{} rows failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn row_names_are_unique_and_every_source_of_a_timed_row_gets_its_verdict() {
    let all = rows();
    for (i, row) in all.iter().enumerate() {
        assert!(all[..i].iter().all(|r| r.name != row.name), "two rows named {:?}", row.name);
    }
    let mut f = Setup::Edge.filter();
    for row in all.iter().filter(|r| r.timed) {
        assert_eq!(row.setup, Setup::Edge, "{}: the benchmark times rows of the edge", row.name);
        for i in [0, 1, 77, 128, 255] {
            let (_, action, reason) = f.judge(&(row.frame)(i));
            assert_eq!((action, reason), (row.action, row.reason), "{} from source {i}", row.name);
        }
    }
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
    let v6_later =
        v6_frame(&[], &V6::new(stranger6, IPPROTO_UDP).with_fragment(4, false, 0xabcd), b"tail of the datagram");
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
fn monitor_mode_fragments_follow_their_first_fragment() {
    let mut f = Filter::load(FilterConfig { mode: Mode::Monitor as u8, ..sip_config() });
    let mut first = V4::new(STRANGER, IPPROTO_UDP);
    first.more_fragments = true;
    first.id = 8;
    check(
        &mut f,
        &v4_frame(&[], &first, &udp(5061, INVITE)),
        XDP_PASS,
        WouldDrop,
        NotAllowlisted,
        "monitor: first fragment",
    );
    let mut later = first.clone();
    later.more_fragments = false;
    later.frag_offset = 20;
    check(&mut f, &v4_frame(&[], &later, b"tail"), XDP_PASS, WouldDrop, Fragment, "monitor: later fragment");
    // Switching to enforce takes effect on the next packet.
    f.set_config(sip_config());
    check(
        &mut f,
        &v4_frame(&[], &V4::new(STRANGER, IPPROTO_UDP), &udp(5060, REGISTER)),
        XDP_DROP,
        Drop,
        NotAllowlisted,
        "enforce again",
    );
}

#[test]
fn per_source_counters() {
    let mut f = trusted_filter();
    // A deny rule, not no rule: sources no rule covers are not tracked
    // (see the flood test below).
    f.rule("198.19.7.0/24", RuleClass::Deny, 0);
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
    let v6 =
        v6_frame(&[], &V6::new(v6_addr(v6src), IPPROTO_UDP), &udp(5060, b"OPTIONS sip:x@198.18.0.1 SIP/2.0\r\n\r\n"));
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
        let ones = f.maps.rule_index.get(&i, 0).unwrap().count_ones();
        if i < words {
            v4 += ones
        } else {
            v6 += ones
        }
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
    f.maps.rebuild_rule_index().unwrap();
    assert_eq!(index_bits(&f), (0, 1), "rebuilt from the tries");
    check(&mut f, &v6("2001:db8:1::9"), XDP_PASS, Pass, Allowlisted, "the remaining rule still holds");
}

#[test]
fn a_flood_from_sources_no_rule_covers_leaves_the_per_source_table_alone() {
    // The spoofed flood cannot evict real clients' state from the LRU table;
    // in monitor mode the per-source view of who would be dropped stays.
    for (mode, want) in [(Mode::Enforce as u8, false), (Mode::Monitor as u8, true)] {
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
