//! Authentication accounting the way SIP flows, through both programs:
//! requests go through the ingress program (which remembers their Call-ID,
//! CSeq and credentials), responses through the egress program (which
//! links each to its request). A challenge to a request without
//! credentials is no failure; a rejection of credentials is; a success
//! clears the strikes; challenges never answered with credentials ban at
//! their own threshold. Every message of a TCP segment counts, and IPv6
//! sources are accounted per prefix. Needs root.

use sip_xdp_common::{
    bans::BanReason,
    kernel_config::{FilterConfig, NS_PER_SEC},
    map_types::RateProfile,
    rules::RuleClass,
    Action::*,
    Reason::*,
};
use sip_xdp_tests::{frames::*, harness::*};

const SERVER: [u8; 4] = [198, 18, 0, 1];

/// Customers (203.0.113.0/24, 2001:db8:100::/48) limited generously; bans
/// at 3 rejected credentials or 5 unanswered challenges within 60 s.
fn filter(ipv6_prefix: u8) -> Filter {
    let cfg = FilterConfig {
        auth_max: 3,
        auth_challenges: 5,
        auth_window_ns: 60 * NS_PER_SEC,
        ban_duration_ns: 600 * NS_PER_SEC,
        ban_max_duration_ns: 3600 * NS_PER_SEC,
        ipv6_prefix,
        ..sip_config()
    };
    let mut f = Filter::load(cfg);
    let big = 100_000;
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
    f.rule("203.0.113.0/24", RuleClass::Limited, 0);
    f.rule("2001:db8:100::/48", RuleClass::Limited, 0);
    f
}

/// A request of `method` in dialog `call_id` with sequence `cseq`, with
/// credentials or not.
fn request(method: &str, call_id: &str, cseq: u32, credentials: bool) -> Vec<u8> {
    let auth = if credentials { "Proxy-Authorization: Digest username=\"alice\", response=\"x\"\r\n" } else { "" };
    format!(
        "{method} sip:alice@198.18.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.10;branch=z9hG4bK{cseq}\r\n\
         From: <sip:alice@x>;tag=1\r\nTo: <sip:bob@x>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n{auth}Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// The response `code` to a request of `method` in `call_id`/`cseq`.
fn response(code: u16, method: &str, call_id: &str, cseq: u32) -> Vec<u8> {
    format!(
        "SIP/2.0 {code} Whatever\r\nVia: SIP/2.0/UDP 203.0.113.10;branch=z9hG4bK{cseq}\r\nFrom: <sip:alice@x>;tag=1\r\n\
         To: <sip:bob@x>;tag=2\r\ncall-id: {call_id}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn to_server(client: [u8; 4], payload: &[u8]) -> Vec<u8> {
    udp4(client, 5060, payload)
}

/// From the server's SIP port to `client`.
fn to_client(client: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let ip = V4 { dst: client, ..V4::new(SERVER, IPPROTO_UDP) };
    let mut l4 = udp(5070, payload);
    l4[0..2].copy_from_slice(&5060u16.to_be_bytes());
    v4_frame(&[], &ip, &l4)
}

/// One exchange: the request in, the response out.
fn exchange(f: &mut Filter, client: [u8; 4], req: &[u8], resp: &[u8]) {
    assert_eq!(f.judge(&to_server(client, req)).0, XDP_PASS, "the request is admitted");
    assert_eq!(f.run_egress(&to_client(client, resp)), -1, "egress never drops: TC 'next'");
}

fn ban_reason(f: &Filter, addr: &str) -> Option<u8> {
    f.ban_of(addr).filter(|b| b.in_force(now_ns())).map(|b| b.reason)
}

#[test]
fn a_phone_registering_and_calling_with_digest_auth_is_never_banned() {
    let mut f = filter(64);
    let phone = [203, 0, 113, 10];
    for i in 0..30 {
        // Re-registration: 401 to the REGISTER without credentials, 200 to
        // the one with.
        let reg = format!("reg{i}@phone");
        exchange(&mut f, phone, &request("REGISTER", &reg, 1, false), &response(401, "REGISTER", &reg, 1));
        exchange(&mut f, phone, &request("REGISTER", &reg, 2, true), &response(200, "REGISTER", &reg, 2));
        // A call: 407 to the INVITE, INVITE with credentials, 100, 180,
        // 200, ACK, then BYE and its 200.
        let call = format!("call{i}@phone");
        exchange(&mut f, phone, &request("INVITE", &call, 1, false), &response(407, "INVITE", &call, 1));
        f.judge(&to_server(phone, &request("ACK", &call, 1, false)));
        exchange(&mut f, phone, &request("INVITE", &call, 2, true), &response(100, "INVITE", &call, 2));
        for code in [180, 200] {
            f.run_egress(&to_client(phone, &response(code, "INVITE", &call, 2)));
        }
        f.judge(&to_server(phone, &request("ACK", &call, 2, true)));
        exchange(&mut f, phone, &request("BYE", &call, 3, true), &response(200, "BYE", &call, 3));
    }
    assert_eq!(ban_reason(&f, "203.0.113.10"), None, "60 challenges, all answered");
    assert_eq!(f.judge(&to_server(phone, &request("OPTIONS", "o@phone", 1, false))), (XDP_PASS, Pass, Limited));
}

#[test]
fn rejected_credentials_ban_at_max_for_any_method_and_403_only_with_credentials() {
    let mut f = filter(64);
    let (guesser, pbx_customer) = ([203, 0, 113, 20], [203, 0, 113, 21]);
    for (i, (method, code)) in [("REGISTER", 401), ("INVITE", 407), ("MESSAGE", 403)].into_iter().enumerate() {
        assert_eq!(ban_reason(&f, "203.0.113.20"), None, "{i} failures");
        let id = format!("guess{i}");
        exchange(&mut f, guesser, &request(method, &id, 1, true), &response(code, method, &id, 1));
    }
    assert_eq!(ban_reason(&f, "203.0.113.20"), Some(BanReason::Auth as u8), "the third rejection bans");
    assert_eq!(f.judge(&to_server(guesser, &request("REGISTER", "again", 1, false))), (XDP_DROP, Drop, Banned));
    let events = f.events();
    assert_eq!(events.iter().filter(|e| e.reason == BanReason::Auth as u8).count(), 1);
    // A PBX refusing calls for policy (403 without any credentials).
    for i in 0..20 {
        let id = format!("refused{i}");
        exchange(&mut f, pbx_customer, &request("INVITE", &id, 1, false), &response(403, "INVITE", &id, 1));
    }
    assert_eq!(ban_reason(&f, "203.0.113.21"), None);
}

#[test]
fn a_success_for_any_method_clears_the_strikes() {
    let mut f = filter(64);
    let phone = [203, 0, 113, 30];
    let mut n = 0;
    let mut fail = |f: &mut Filter| {
        n += 1;
        let id = format!("typo{n}");
        exchange(f, phone, &request("REGISTER", &id, 1, true), &response(401, "REGISTER", &id, 1));
    };
    // Two typos, then each kind of success, then two more typos: never three.
    for (method, code) in [("REGISTER", 200), ("SUBSCRIBE", 202), ("INVITE", 183), ("INVITE", 180), ("MESSAGE", 200)] {
        fail(&mut f);
        fail(&mut f);
        let id = format!("ok-{method}-{code}");
        exchange(&mut f, phone, &request(method, &id, 1, true), &response(code, method, &id, 1));
        assert_eq!(ban_reason(&f, "203.0.113.30"), None, "{method} {code} clears");
    }
    // A provisional response to anything but an INVITE is no success, nor
    // is a success to a request without credentials.
    fail(&mut f);
    fail(&mut f);
    exchange(&mut f, phone, &request("MESSAGE", "m183", 1, true), &response(183, "MESSAGE", "m183", 1));
    exchange(&mut f, phone, &request("OPTIONS", "o200", 1, false), &response(200, "OPTIONS", "o200", 1));
    fail(&mut f);
    assert_eq!(ban_reason(&f, "203.0.113.30"), Some(BanReason::Auth as u8));
}

#[test]
fn challenges_never_answered_ban_at_their_own_threshold() {
    let mut f = filter(64);
    let (enumerator, unlinked) = ([203, 0, 113, 40], [203, 0, 113, 41]);
    // svwar-style: one extension after another, never with credentials.
    for i in 0..4 {
        let id = format!("ext{i}");
        exchange(&mut f, enumerator, &request("REGISTER", &id, 1, false), &response(401, "REGISTER", &id, 1));
    }
    assert_eq!(ban_reason(&f, "203.0.113.40"), None, "four challenges");
    exchange(&mut f, enumerator, &request("INVITE", "ext4", 1, false), &response(407, "INVITE", "ext4", 1));
    assert_eq!(ban_reason(&f, "203.0.113.40"), Some(BanReason::Challenges as u8));
    // Answering with credentials starts the count over (a phone does).
    let phone = [203, 0, 113, 42];
    for i in 0..12 {
        let id = format!("c{i}");
        exchange(&mut f, phone, &request("INVITE", &id, 1, false), &response(407, "INVITE", &id, 1));
        if i % 4 == 3 {
            f.judge(&to_server(phone, &request("INVITE", &id, 2, true)));
        }
    }
    assert_eq!(ban_reason(&f, "203.0.113.42"), None);
    // A challenge to a request the filter never saw counts as one too.
    for i in 0..5 {
        f.run_egress(&to_client(unlinked, &response(401, "REGISTER", &format!("unseen{i}"), 1)));
    }
    assert_eq!(ban_reason(&f, "203.0.113.41"), Some(BanReason::Challenges as u8));
}

/// A REGISTER with credentials in compact form (short enough that twenty
/// fit in one frame the test run keeps linear).
fn compact_register(call_id: &str) -> Vec<u8> {
    format!("REGISTER sip:198.18.0.1 SIP/2.0\r\nv:SIP/2.0/TCP h\r\ni:{call_id}\r\nCSeq:1 REGISTER\r\nAuthorization:Digest x\r\nl:0\r\n\r\n")
        .into_bytes()
}

/// `n` REGISTERs with credentials, pipelined in one TCP segment.
fn pipelined(n: u32, first: u32) -> Vec<u8> {
    (first..first + n).flat_map(|i| compact_register(&format!("pipe{i}"))).collect()
}

#[test]
fn every_message_of_a_tcp_segment_is_charged_and_counted() {
    // Ten REGISTERs in one segment take ten tokens.
    let mut f = filter(64);
    f.profile(
        1,
        RateProfile {
            register_per_sec: 1,
            register_burst: 10,
            requests_per_sec: 100,
            requests_burst: 100,
            invite_per_sec: 1,
            invite_burst: 1,
        },
    );
    f.rule("203.0.113.50/32", RuleClass::Limited, 1);
    let mut c = f.connect([203, 0, 113, 50], 40000);
    assert_eq!(c.send(&mut f, &pipelined(10, 0)), (XDP_PASS, Pass, Limited));
    assert_eq!(f.source("203.0.113.50").unwrap().registers, 10, "each counted");
    assert_eq!(c.send(&mut f, &pipelined(1, 10)), (XDP_DROP, Drop, RegisterRate), "the bucket is empty");
    // Twenty in one segment, over the burst: refused whole.
    let mut f = filter(64);
    f.profile(
        1,
        RateProfile {
            register_per_sec: 1,
            register_burst: 5,
            requests_per_sec: 100,
            requests_burst: 100,
            invite_per_sec: 1,
            invite_burst: 1,
        },
    );
    f.rule("203.0.113.51/32", RuleClass::Limited, 1);
    let mut c = f.connect([203, 0, 113, 51], 40000);
    assert_eq!(c.send(&mut f, &pipelined(20, 0)), (XDP_DROP, Drop, RegisterRate));

    // Twenty guesses pipelined, twenty 401s in one segment back: banned at
    // the third.
    let mut f = filter(64);
    let mut c = f.connect([203, 0, 113, 52], 40000);
    assert_eq!(c.send(&mut f, &pipelined(20, 0)), (XDP_PASS, Pass, Limited));
    let answers: Vec<u8> = (0..20)
        .flat_map(|i| format!("SIP/2.0 401 Unauthorized\r\ni:pipe{i}\r\nCSeq:1 REGISTER\r\nl:0\r\n\r\n").into_bytes())
        .collect();
    f.run_egress(&c.from_server(c.server_seq, c.seq, ACK | PSH, &answers));
    assert_eq!(ban_reason(&f, "203.0.113.52"), Some(BanReason::Auth as u8));
    assert_eq!(c.send(&mut f, &pipelined(1, 40)), (XDP_DROP, Drop, Banned));
}

#[test]
fn messages_that_cannot_be_told_apart_are_refused_as_unreadable() {
    let mut f = filter(64);
    let client = [203, 0, 113, 60];
    let mut lying = request("REGISTER", "lie", 1, true);
    let at = lying.windows(16).position(|w| w == b"Content-Length: ").unwrap();
    lying.splice(at + 16..at + 17, b"0x".iter().copied());
    let segment = [lying, request("INVITE", "hidden", 1, true)].concat();
    let mut c = f.connect(client, 40000);
    assert_eq!(c.send(&mut f, &segment), (XDP_DROP, Drop, Unreadable));
    // Over UDP a datagram is one message: the same bytes are one REGISTER.
    assert_eq!(f.judge(&udp4(client, 5060, &segment)).1, Pass);
    // Leading CRLFs and keep-alives between messages are skipped.
    let keepalives =
        [&b"\r\n\r\n"[..], &request("OPTIONS", "k1", 1, false), b"\r\n", &request("OPTIONS", "k2", 1, false)].concat();
    let mut c = f.connect(client, 40001);
    assert_eq!(c.send(&mut f, &keepalives), (XDP_PASS, Pass, Limited));
}

/// A datagram from `src` (IPv6) to the server.
fn from_v6(src: &str, payload: &[u8]) -> Vec<u8> {
    v6_frame(&[], &V6::new(v6_addr(src), IPPROTO_UDP), &udp(5060, payload))
}

fn to_v6(client: &str, payload: &[u8]) -> Vec<u8> {
    let ip = V6 { dst: v6_addr(client), ..V6::new(v6_addr("2001:db8::1"), IPPROTO_UDP) };
    let mut l4 = udp(5070, payload);
    l4[0..2].copy_from_slice(&5060u16.to_be_bytes());
    v6_frame(&[], &ip, &l4)
}

#[test]
fn ipv6_sources_are_accounted_per_prefix() {
    for (prefix, sibling_shares) in [(64u8, true), (48, true), (128, false)] {
        let mut f = filter(prefix);
        // Each guess from a new address of one /64.
        for i in 1..=3u32 {
            let src = format!("2001:db8:100:7::{i:x}");
            let id = format!("v6guess{i}");
            assert_eq!(f.judge(&from_v6(&src, &request("REGISTER", &id, 1, true))).0, XDP_PASS, "/{prefix} guess {i}");
            f.run_egress(&to_v6(&src, &response(401, "REGISTER", &id, 1)));
        }
        let banned = f.judge(&from_v6("2001:db8:100:7::99", &request("REGISTER", "next", 1, true)));
        assert_eq!(banned.2 == Banned, sibling_shares, "/{prefix}: a fresh address of the /64 is banned");
        // The neighbouring /64 shares the ban only when keyed by /48.
        let neighbour = f.judge(&from_v6("2001:db8:100:8::1", &request("REGISTER", "n", 1, true)));
        assert_eq!(neighbour.2 == Banned, prefix == 48, "/{prefix}: the next /64");
    }
}

#[test]
fn a_trusted_address_inside_a_banned_ipv6_prefix_is_never_dropped() {
    let mut f = filter(64);
    f.rule("2001:db8:100:7::5/128", RuleClass::Trusted, 0);
    for i in 1..=3u32 {
        let src = format!("2001:db8:100:7::{i:x}");
        f.judge(&from_v6(&src, &request("REGISTER", &format!("g{i}"), 1, true)));
        f.run_egress(&to_v6(&src, &response(401, "REGISTER", &format!("g{i}"), 1)));
    }
    assert_eq!(f.judge(&from_v6("2001:db8:100:7::9", &request("OPTIONS", "x", 1, false))).2, Banned);
    assert_eq!(
        f.judge(&from_v6("2001:db8:100:7::5", &request("OPTIONS", "y", 1, false))),
        (XDP_PASS, Pass, Allowlisted)
    );
}
