//! Verdict tables for source classes, rate limits and bans: the real
//! object, private maps, frames through BPF_PROG_TEST_RUN for both the XDP
//! ingress and the TC egress program. Needs root.

use sip_xdp_common::{
    bans::{BanEntry, BanReason, BanState},
    events::EventKind,
    kernel_config::{FilterConfig, Mode, NS_PER_SEC},
    map_types::RateProfile,
    rules::{RuleClass, RuleValue, ORIGIN_BAN},
    Action::*,
    Reason::*,
};
use sip_xdp_tests::{frames::*, harness::*};

const CUSTOMER: [u8; 4] = [203, 0, 113, 10];
const CUSTOMER_V6: &str = "2001:db8:100::10";

/// Customers (203.0.113.0/24, 2001:db8:100::/48) are limited by profile 0:
/// a burst of 3 REGISTERs at 1/s, 10 requests at 1/s; 4 excess packets
/// within 10 s ban for 60 s.
fn limited_filter(mode: u8) -> Filter {
    let cfg = FilterConfig {
        mode,
        ban_after_excess: 4,
        ban_window_ns: 10 * NS_PER_SEC,
        ban_duration_ns: 60 * NS_PER_SEC,
        ban_max_duration_ns: 600 * NS_PER_SEC,
        auth_max: 3,
        auth_window_ns: 60 * NS_PER_SEC,
        ..sip_config()
    };
    let mut f = Filter::load(cfg);
    f.profile(
        0,
        RateProfile {
            register_per_sec: 1,
            register_burst: 3,
            requests_per_sec: 1,
            requests_burst: 10,
            invite_per_sec: 1,
            invite_burst: 10,
        },
    );
    f.rule("203.0.113.0/24", RuleClass::Limited, 0);
    f.rule("2001:db8:100::/48", RuleClass::Limited, 0);
    f
}

fn register_from(src: [u8; 4]) -> Vec<u8> {
    v4_frame(&[], &V4::new(src, IPPROTO_UDP), &udp(5060, REGISTER))
}

fn options_from(src: [u8; 4]) -> Vec<u8> {
    v4_frame(&[], &V4::new(src, IPPROTO_UDP), &udp(5060, b"OPTIONS sip:100@198.18.0.1 SIP/2.0\r\nVia: x\r\n\r\n"))
}

#[test]
fn limited_source_gets_its_burst_then_is_dropped_then_banned() {
    let mut f = limited_filter(0);
    for i in 0..3 {
        assert_eq!(f.judge(&register_from(CUSTOMER)), (XDP_PASS, Pass, Limited), "burst {i}");
    }
    // Over the REGISTER budget; other requests still have budget.
    assert_eq!(f.judge(&register_from(CUSTOMER)), (XDP_DROP, Drop, RegisterRate));
    assert_eq!(f.judge(&options_from(CUSTOMER)), (XDP_PASS, Pass, Limited));
    assert!(f.ban_of("203.0.113.10").is_none(), "three excess packets are not yet a ban");
    assert_eq!(f.judge(&register_from(CUSTOMER)), (XDP_DROP, Drop, RegisterRate));
    assert_eq!(f.judge(&register_from(CUSTOMER)), (XDP_DROP, Drop, RegisterRate));
    let before = now_ns();
    assert_eq!(f.judge(&register_from(CUSTOMER)), (XDP_DROP, Drop, RegisterRate), "the fourth excess bans");
    let ban = f.ban_of("203.0.113.10").expect("banned in the kernel");
    assert_eq!((ban.reason, ban.state, ban.offenses), (BanReason::Rate as u8, BanState::Active as u8, 1));
    assert_eq!(ban.expires_ns - ban.banned_at_ns, 60 * NS_PER_SEC);
    assert!(ban.banned_at_ns >= before);
    // The very next packet, of any kind, is dropped as banned and counted.
    assert_eq!(f.judge(&options_from(CUSTOMER)), (XDP_DROP, Drop, Banned));
    assert_eq!(f.judge(&register_from(CUSTOMER)), (XDP_DROP, Drop, Banned));
    assert_eq!(f.ban_of("203.0.113.10").unwrap().dropped, 2);
    let events = f.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (events[0].kind, events[0].reason, events[0].offenses),
        (EventKind::Ban as u8, BanReason::Rate as u8, 1)
    );
    assert_eq!(events[0].addr, source_key("203.0.113.10"));
    // Other customers are unaffected.
    assert_eq!(f.judge(&register_from([203, 0, 113, 11])), (XDP_PASS, Pass, Limited));
}

#[test]
fn ipv6_sources_are_limited_and_banned_too() {
    let mut f = limited_filter(0);
    let frame = v6_frame(&[], &V6::new(v6_addr(CUSTOMER_V6), IPPROTO_UDP), &udp(5061, REGISTER));
    for _ in 0..3 {
        assert_eq!(f.judge(&frame), (XDP_PASS, Pass, Limited));
    }
    for _ in 0..4 {
        assert_eq!(f.judge(&frame), (XDP_DROP, Drop, RegisterRate));
    }
    assert_eq!(f.ban_of(CUSTOMER_V6).expect("v6 ban").reason, BanReason::Rate as u8);
    assert_eq!(f.judge(&frame), (XDP_DROP, Drop, Banned));
}

#[test]
fn class_precedence_follows_the_longest_prefix() {
    let mut f = limited_filter(0);
    // A trusted host inside the limited /24 is never limited.
    f.rule("203.0.113.77/32", RuleClass::Trusted, 0);
    for _ in 0..50 {
        assert_eq!(f.judge(&register_from([203, 0, 113, 77])), (XDP_PASS, Pass, Allowlisted));
    }
    assert!(f.ban_of("203.0.113.77").is_none());
    // And the other way round: a limited /28 inside a trusted /16.
    f.rule("198.51.0.0/16", RuleClass::Trusted, 0);
    f.rule("198.51.100.0/28", RuleClass::Limited, 0);
    assert_eq!(f.judge(&register_from([198, 51, 7, 7])), (XDP_PASS, Pass, Allowlisted));
    for _ in 0..3 {
        assert_eq!(f.judge(&register_from([198, 51, 100, 5])), (XDP_PASS, Pass, Limited));
    }
    assert_eq!(f.judge(&register_from([198, 51, 100, 5])), (XDP_DROP, Drop, RegisterRate));
    // A deny rule inside a limited range.
    f.rule("203.0.113.128/25", RuleClass::Deny, 0);
    assert_eq!(f.judge(&register_from([203, 0, 113, 200])), (XDP_DROP, Drop, Denied));
    // IPv6: a trusted /64 inside the limited /48.
    f.rule("2001:db8:100:1::/64", RuleClass::Trusted, 0);
    let trusted6 = v6_frame(&[], &V6::new(v6_addr("2001:db8:100:1::9"), IPPROTO_UDP), &udp(5060, REGISTER));
    for _ in 0..20 {
        assert_eq!(f.judge(&trusted6), (XDP_PASS, Pass, Allowlisted));
    }
}

#[test]
fn a_limited_default_class_covers_sources_with_no_rule() {
    let mut cfg = sip_config();
    cfg.default_class = RuleClass::Limited as u8;
    cfg.default_profile = 1;
    let mut f = Filter::load(cfg);
    f.profile(
        1,
        RateProfile {
            register_per_sec: 1,
            register_burst: 1,
            requests_per_sec: 100,
            requests_burst: 100,
            invite_per_sec: 100,
            invite_burst: 100,
        },
    );
    let anyone = [192, 0, 2, 44];
    assert_eq!(f.judge(&register_from(anyone)), (XDP_PASS, Pass, Limited));
    assert_eq!(f.judge(&register_from(anyone)), (XDP_DROP, Drop, RegisterRate));
    // Non-request traffic to the port (a stray response) is free.
    let response =
        v4_frame(&[], &V4::new(anyone, IPPROTO_UDP), &udp(5060, b"SIP/2.0 200 OK\r\nCSeq: 1 OPTIONS\r\n\r\n"));
    assert_eq!(f.judge(&response), (XDP_PASS, Pass, Limited));
}

#[test]
fn trusted_sources_are_never_limited_or_banned() {
    let mut f = limited_filter(0);
    f.rule("198.18.1.2/32", RuleClass::Trusted, 0);
    for _ in 0..500 {
        assert_eq!(f.run(&register_from([198, 18, 1, 2])), XDP_PASS);
    }
    // Not by the auth path either: a storm of 401s to the trunk.
    for _ in 0..20 {
        f.run_egress(&response_to([198, 18, 1, 2], b"SIP/2.0 401 Unauthorized\r\nCSeq: 1 REGISTER\r\n\r\n"));
    }
    assert!(f.ban_of("198.18.1.2").is_none());
    assert!(f.events().is_empty());
    assert_eq!(f.judge(&register_from([198, 18, 1, 2])), (XDP_PASS, Pass, Allowlisted));
}

#[test]
fn monitor_mode_reports_would_be_bans_without_dropping() {
    let mut f = limited_filter(Mode::Monitor as u8);
    for _ in 0..3 {
        assert_eq!(f.judge(&register_from(CUSTOMER)), (XDP_PASS, Pass, Limited));
    }
    for _ in 0..4 {
        assert_eq!(f.judge(&register_from(CUSTOMER)), (XDP_PASS, WouldDrop, RegisterRate));
    }
    assert!(f.ban_of("203.0.113.10").is_none(), "monitor mode writes no ban");
    let events = f.events();
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].kind, events[0].reason), (EventKind::WouldBan as u8, BanReason::Rate as u8));
    assert_eq!(f.judge(&register_from(CUSTOMER)), (XDP_PASS, WouldDrop, RegisterRate), "not banned after");
}

#[test]
fn ban_entries_drop_only_while_active_and_unexpired() {
    let mut f = limited_filter(0);
    let now = now_ns();
    let ban = |state, expires_ns| BanEntry {
        expires_ns,
        banned_at_ns: now,
        dropped: 0,
        offenses: 1,
        reason: BanReason::Manual as u8,
        state,
        announced: 0,
        _pad: 0,
    };
    let customer = [203, 0, 113, 77];
    f.set_ban("203.0.113.77", ban(BanState::Active as u8, now + 60 * NS_PER_SEC));
    assert_eq!(f.judge(&register_from(customer)), (XDP_DROP, Drop, Banned), "a ban comes before the rule");
    f.set_ban("203.0.113.77", ban(BanState::Active as u8, now - NS_PER_SEC));
    assert_eq!(f.judge(&register_from(customer)), (XDP_PASS, Pass, Limited), "expired");
    f.set_ban("203.0.113.77", ban(BanState::Lifted as u8, now + 60 * NS_PER_SEC));
    assert_eq!(f.judge(&register_from(customer)), (XDP_PASS, Pass, Limited), "lifted");
    // A source no rule covers is refused before the ban table is asked
    // (the flood path): dropped either way, counted as not allowlisted.
    f.set_ban("198.19.5.5", ban(BanState::Active as u8, now + 60 * NS_PER_SEC));
    assert_eq!(f.judge(&register_from([198, 19, 5, 5])), (XDP_DROP, Drop, NotAllowlisted));
    // A prefix ban holds until its end second.
    let mut value = RuleValue::new(ORIGIN_BAN, RuleClass::Banned, 0);
    value.ban_expires_secs = (now / NS_PER_SEC + 60) as u32;
    f.maps.insert_prefix_ban("203.0.113.0/28".parse().unwrap(), value).unwrap();
    assert_eq!(f.judge(&register_from(CUSTOMER)), (XDP_DROP, Drop, Banned));
    // Removed (by the sweep, or `ban del`): the covering rule applies again.
    f.maps.remove_prefix_ban("203.0.113.0/28".parse().unwrap()).unwrap();
    assert_eq!(f.judge(&register_from(CUSTOMER)), (XDP_PASS, Pass, Limited));
    // Ended but not yet swept: no longer in force.
    value.ban_expires_secs = (now / NS_PER_SEC - 1) as u32;
    f.maps.insert_prefix_ban("203.0.113.0/28".parse().unwrap(), value).unwrap();
    assert_eq!(f.judge(&register_from(CUSTOMER)), (XDP_PASS, Pass, Limited));
}

#[test]
fn a_banned_prefix_holds_over_every_rule_inside_it_but_a_trusted_one() {
    let mut f = limited_filter(0);
    let now = now_ns();
    // A rule of exactly the banned prefix, a longer one inside it, and a
    // trusted host: the escalation of a customers' /24 must hold over the
    // first two, never over the third.
    f.rule("198.18.40.0/24", RuleClass::Limited, 0);
    f.rule("198.18.40.0/25", RuleClass::Limited, 0);
    f.rule("198.18.40.50/32", RuleClass::Trusted, 0);
    f.rule("2001:db8:40::/48", RuleClass::Limited, 0);
    f.rule("2001:db8:40:1::/64", RuleClass::Limited, 0);
    for (who, expect) in [([198, 18, 40, 7], Limited), ([198, 18, 40, 200], Limited), ([198, 18, 40, 50], Allowlisted)]
    {
        assert_eq!(f.judge(&register_from(who)).2, expect, "{who:?} before the ban");
    }
    let mut ban = RuleValue::new(ORIGIN_BAN, RuleClass::Banned, BanReason::Escalated as u8);
    ban.ban_expires_secs = (now / NS_PER_SEC + 600) as u32;
    f.maps.insert_prefix_ban("198.18.40.0/24".parse().unwrap(), ban).unwrap();
    f.maps.insert_prefix_ban("2001:db8:40::/48".parse().unwrap(), ban).unwrap();
    assert_eq!(f.judge(&register_from([198, 18, 40, 7])), (XDP_DROP, Drop, Banned), "inside the longer rule");
    assert_eq!(
        f.judge(&register_from([198, 18, 40, 200])),
        (XDP_DROP, Drop, Banned),
        "under the rule of the same prefix"
    );
    assert_eq!(f.judge(&register_from([198, 18, 40, 50])), (XDP_PASS, Pass, Allowlisted), "trusted, never banned");
    let v6 = v6_frame(&[], &V6::new(v6_addr("2001:db8:40:1::9"), IPPROTO_UDP), &udp(5060, REGISTER));
    assert_eq!(f.judge(&v6), (XDP_DROP, Drop, Banned), "an IPv6 /64 rule inside a banned /48");
    // Outside the banned prefix nothing changes.
    assert_eq!(f.judge(&register_from(CUSTOMER)), (XDP_PASS, Pass, Limited));
}

#[test]
fn prefix_bans_an_older_version_kept_as_rules_move_out_of_the_rule_tries() {
    let mut f = limited_filter(0);
    let now = now_ns();
    let mut ban = RuleValue::new(ORIGIN_BAN, RuleClass::Banned, BanReason::Manual as u8);
    ban.ban_expires_secs = (now / NS_PER_SEC + 600) as u32;
    // As an older version stored a ban of a customers' /25.
    f.maps.insert_rule("203.0.113.0/25".parse().unwrap(), ban).unwrap();
    assert_eq!(sip_xdp::bans::move_prefix_bans_out_of_rules(&mut f.maps).unwrap(), 1);
    let net: ipnet::IpNet = "203.0.113.0/25".parse().unwrap();
    assert!(!f.maps.rule_entries().unwrap().contains_key(&net), "no longer a rule");
    assert_eq!(f.maps.prefix_ban_entries().unwrap().get(&net), Some(&ban), "a prefix ban, reason and end kept");
    assert_eq!(f.judge(&register_from(CUSTOMER)), (XDP_DROP, Drop, Banned), "and in force");
    assert_eq!(sip_xdp::bans::move_prefix_bans_out_of_rules(&mut f.maps).unwrap(), 0, "once");
}

#[test]
fn repeat_offenders_get_longer_bans() {
    let mut f = limited_filter(0);
    let now = now_ns();
    // History: banned once before, expired a moment ago.
    f.set_ban(
        "203.0.113.10",
        BanEntry {
            expires_ns: now - NS_PER_SEC,
            banned_at_ns: now - 61 * NS_PER_SEC,
            dropped: 9,
            offenses: 1,
            reason: BanReason::Rate as u8,
            state: BanState::Expired as u8,
            announced: 1,
            _pad: 0,
        },
    );
    for _ in 0..7 {
        f.run(&register_from(CUSTOMER));
    }
    let ban = f.ban_of("203.0.113.10").unwrap();
    assert_eq!((ban.state, ban.offenses), (BanState::Active as u8, 2));
    assert_eq!(ban.expires_ns - ban.banned_at_ns, 120 * NS_PER_SEC, "doubled");
}

/// A SIP response from the server (198.18.0.1:5060) to `client`.
fn response_to(client: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut ip = V4::new([198, 18, 0, 1], IPPROTO_UDP);
    ip.dst = client;
    let mut l4 = udp(5070, payload);
    l4[0..2].copy_from_slice(&5060u16.to_be_bytes()); // from the SIP port
    v4_frame(&[], &ip, &l4)
}

#[test]
fn invites_have_their_own_budget_and_count_toward_a_ban() {
    let mut f = limited_filter(0);
    f.profile(
        2,
        RateProfile {
            register_per_sec: 100,
            register_burst: 100,
            requests_per_sec: 100,
            requests_burst: 100,
            invite_per_sec: 1,
            invite_burst: 2,
        },
    );
    f.rule("192.0.2.0/24", RuleClass::Limited, 2);
    let invite = v4_frame(&[], &V4::new([192, 0, 2, 9], IPPROTO_UDP), &udp(5060, INVITE));
    assert_eq!(f.judge(&invite), (XDP_PASS, Pass, Limited));
    assert_eq!(f.judge(&invite), (XDP_PASS, Pass, Limited));
    assert_eq!(f.judge(&invite), (XDP_DROP, Drop, InviteRate));
    assert_eq!(f.judge(&register_from([192, 0, 2, 9])), (XDP_PASS, Pass, Limited), "REGISTERs are unaffected");
    for _ in 0..3 {
        f.run(&invite);
    }
    let ban = f.ban_of("192.0.2.9").expect("four excess INVITEs ban");
    assert_eq!(ban.reason, BanReason::Rate as u8);
}
