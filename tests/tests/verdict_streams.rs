//! TCP streams read as the server reads them: messages cut across
//! segments, segments out of order or sent again, connections the filter
//! did not see open. The real object, private maps, each connection's
//! handshake and segments through BPF_PROG_TEST_RUN (ingress and egress).
//! Needs root.

use std::{net::IpAddr, thread::sleep, time::Duration};

use sip_xdp_common::{
    dialled::intl_prefixes,
    events::{EventKind, UnreadableWhy},
    kernel_config::{dest_applies_profile, DefaultAction, FilterConfig, Mode},
    map_types::RateProfile,
    rules::RuleClass,
    stream::REREAD_AFTER_NS,
    Action::{self, *},
    Reason::{self, *},
};
use sip_xdp_tests::{frames::*, harness::*};

/// Customers (limited, profile 0, under the destination policy); +252 and
/// +224 blocked. No grace for connections older than the filter.
fn filter() -> Filter {
    filter_with(edge())
}

fn edge() -> FilterConfig {
    FilterConfig { intl: intl_prefixes(&["00", "011"]), dest_applies: dest_applies_profile(0), ..sip_config() }
}

fn filter_with(cfg: FilterConfig) -> Filter {
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
    f.maps.write_dest_rules(&destination_rules(&["252", "224"], &[])).unwrap();
    f
}

const CUSTOMER: [u8; 4] = [203, 0, 113, 10];

fn invite(uri: &str, call_id: &str) -> Vec<u8> {
    format!(
        "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/TCP 203.0.113.10;branch=z9hG4bK{call_id}\r\nFrom: <sip:alice@pbx>;tag=1\r\n\
         To: <{uri}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

const BLOCKED: &str = "sip:+25261234567@198.18.0.1";
const ALLOWED: &str = "sip:+4930123456@198.18.0.1";

fn passes(v: (u32, Action, Reason)) -> bool {
    v.0 == XDP_PASS
}

#[test]
fn a_message_cut_at_any_byte_is_judged_once_whole() {
    let mut f = filter();
    for (uri, expect) in [(BLOCKED, (XDP_DROP, Drop, DestinationBlocked)), (ALLOWED, (XDP_PASS, Pass, Limited))] {
        let message = invite(uri, "cut");
        for cut in 1..message.len() {
            let mut c = f.connect(CUSTOMER, 20000 + cut as u16);
            let (head, tail) = message.split_at(cut);
            // The first part passes: the server holds an unfinished message
            // it will not act on.
            assert_eq!(c.send(&mut f, head), (XDP_PASS, Pass, Limited), "{uri} cut at {cut}: first part");
            assert_eq!(c.send(&mut f, tail), expect, "{uri} cut at {cut}: the rest");
            if expect.0 == XDP_DROP {
                // Sent again, refused again: the stream did not move on.
                assert_eq!(c.send(&mut f, tail), expect, "{uri} cut at {cut}: sent again");
            }
        }
    }
    // Each INVITE is counted once, when whole.
    assert!(f.maps.dest_count(0).unwrap() >= 2 * (invite(BLOCKED, "cut").len() as u64 - 1));
}

#[test]
fn a_message_cut_into_many_pieces_reads_as_the_whole() {
    let mut f = filter();
    let message = [OPTIONS, &invite(BLOCKED, "pieces"), OPTIONS].concat();
    for piece in [1, 2, 3, 7, 50] {
        let mut c = f.connect(CUSTOMER, 21000 + piece as u16);
        let mut refused = None;
        for chunk in message.chunks(piece) {
            let v = c.send(&mut f, chunk);
            if !passes(v) {
                refused = Some(v);
                break;
            }
        }
        assert_eq!(refused, Some((XDP_DROP, Drop, DestinationBlocked)), "pieces of {piece} bytes");
    }
}

#[test]
fn every_message_of_a_segment_is_judged_and_bodies_are_not_messages() {
    let mut f = filter();
    // The blocked INVITE third in a segment.
    let mut c = f.connect(CUSTOMER, 22000);
    let segment = [OPTIONS, OPTIONS, &invite(BLOCKED, "third")].concat();
    assert_eq!(c.send(&mut f, &segment), (XDP_DROP, Drop, DestinationBlocked));
    // A body that reads like an INVITE is a body, over one segment or two;
    // the real INVITE after it is judged.
    let body = b"INVITE sip:+25261234567@x SIP/2.0\r\n\r\n";
    let message = format!(
        "MESSAGE sip:bob@198.18.0.1 SIP/2.0\r\nCall-ID: m\r\nCSeq: 1 MESSAGE\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let with_body = [message.as_bytes(), body].concat();
    let mut c = f.connect(CUSTOMER, 22001);
    assert_eq!(c.send(&mut f, &with_body), (XDP_PASS, Pass, Limited), "a body is not judged");
    let mut c = f.connect(CUSTOMER, 22002);
    let (head, rest) = with_body.split_at(message.len() + 5);
    assert_eq!(c.send(&mut f, head), (XDP_PASS, Pass, Limited));
    assert_eq!(c.send(&mut f, rest), (XDP_PASS, Pass, Limited), "the rest of the body, in the next segment");
    assert_eq!(c.send(&mut f, &invite(BLOCKED, "after-body")), (XDP_DROP, Drop, DestinationBlocked));
    assert_eq!(c.send(&mut f, &invite(ALLOWED, "after-body")), (XDP_PASS, Pass, Limited));
}

#[test]
fn segments_out_of_order_are_refused_until_they_come_in_order() {
    let mut f = filter();
    let mut c = f.connect(CUSTOMER, 23000);
    let first = invite(ALLOWED, "first");
    let second = invite(BLOCKED, "second");
    // The second segment first: a gap before it.
    let early = c.frame_at(c.seq.wrapping_add(first.len() as u32), c.server_seq, ACK | PSH, &second);
    assert_eq!(f.judge(&early), (XDP_DROP, Drop, OutOfOrder));
    assert_eq!(c.send(&mut f, &first), (XDP_PASS, Pass, Limited));
    // In order now, and judged.
    assert_eq!(c.send(&mut f, &second), (XDP_DROP, Drop, DestinationBlocked));
}

#[test]
fn bytes_sent_again_pass_only_once_the_server_holds_them() {
    let mut f = filter();
    let mut c = f.connect(CUSTOMER, 24000);
    let first = invite(ALLOWED, "again");
    let start = c.seq;
    assert_eq!(c.send(&mut f, &first), (XDP_PASS, Pass, Limited));
    // The same bytes again, not yet acknowledged: a copy could differ from
    // what was read (here: a blocked number of the same length), and the
    // server might take it.
    let copy = invite("sip:+2526123456@198.18.0.1", "again");
    assert_eq!(copy.len(), first.len());
    let again = c.frame_at(start, c.server_seq, ACK | PSH, &copy);
    assert_eq!(f.judge(&again), (XDP_DROP, Drop, OutOfOrder));
    // Acknowledged: the server discards a copy, whatever it holds.
    c.acknowledge(&mut f);
    assert_eq!(f.judge(&again), (XDP_PASS, Pass, Limited));
    // Bytes the server holds followed by new ones: the new ones are read.
    let extended = [first.as_slice(), &invite(BLOCKED, "extended")].concat();
    let overlap = c.frame_at(start, c.server_seq, ACK | PSH, &extended);
    assert_eq!(f.judge(&overlap), (XDP_DROP, Drop, DestinationBlocked));
    let extended = [first.as_slice(), &invite(ALLOWED, "extended")].concat();
    let overlap = c.frame_at(start, c.server_seq, ACK | PSH, &extended);
    assert_eq!(f.judge(&overlap), (XDP_PASS, Pass, Limited));
}

#[test]
fn a_segment_the_server_never_took_is_read_again() {
    let mut f = filter();
    let mut c = f.connect(CUSTOMER, 25000);
    let start = c.seq;
    assert_eq!(c.send(&mut f, &invite(ALLOWED, "lost")), (XDP_PASS, Pass, Limited));
    // The server dropped it (say its checksum was bad) and acknowledges
    // nothing; a different copy is read as new once long enough has
    // passed for any acknowledgement to have come.
    let resent = c.frame_at(start, c.server_seq, ACK | PSH, &invite(BLOCKED, "lost"));
    assert_eq!(f.judge(&resent), (XDP_DROP, Drop, OutOfOrder), "too soon");
    sleep(Duration::from_nanos(REREAD_AFTER_NS) + Duration::from_millis(50));
    assert_eq!(f.judge(&resent), (XDP_DROP, Drop, DestinationBlocked));
    let resent = c.frame_at(start, c.server_seq, ACK | PSH, &invite(ALLOWED, "lost"));
    assert_eq!(f.judge(&resent), (XDP_PASS, Pass, Limited));
}

#[test]
fn connections_the_filter_did_not_see_open() {
    // A policy class: refused, with an event saying why.
    let mut f = filter();
    let unknown = tcp4_from(CUSTOMER, 26000, 5060, &invite(ALLOWED, "unknown"));
    assert_eq!(f.judge(&unknown), (XDP_DROP, Drop, Unreadable));
    let events = f.events();
    let e = events.iter().find(|e| e.kind == EventKind::Unreadable as u8).expect("an unreadable event");
    assert_eq!(e.reason, UnreadableWhy::UnknownConnection as u8);
    // A handshake completed by someone who cannot see the server's
    // numbers does not open a stream.
    let c = Connection { client: IpAddr::from(CUSTOMER), port: 26001, seq: 5000, server_seq: 9000 };
    f.run_egress(&c.from_server(8999, 5000, SYN | ACK, b""));
    assert!(passes(f.judge(&c.frame_at(5000, 1234, ACK, b""))), "a bare ACK passes");
    assert_eq!(f.judge(&c.frame_at(5000, 1234, ACK | PSH, &invite(ALLOWED, "x"))), (XDP_DROP, Drop, Unreadable));
    // Just after a start, older connections are taken up where they are.
    let mut f = filter_with(FilterConfig { stream_adopt_until_ns: u64::MAX, ..edge() });
    assert_eq!(f.judge(&unknown), (XDP_PASS, Pass, Limited));
    let blocked = tcp4_from(CUSTOMER, 26002, 5060, &invite(BLOCKED, "adopted"));
    assert_eq!(f.judge(&blocked), (XDP_DROP, Drop, DestinationBlocked));
    // A source only read for accounting (let through by default) is never
    // refused for its stream.
    let mut f = filter_with(FilterConfig { default_action: DefaultAction::Pass as u8, ..edge() });
    let stranger = tcp4_from([198, 19, 0, 7], 26003, 5060, &invite(BLOCKED, "stranger"));
    assert_eq!(f.judge(&stranger), (XDP_PASS, Pass, NotAllowlisted));
    let early = v4_frame(
        &[],
        &V4::new([198, 19, 0, 7], IPPROTO_TCP),
        &tcp_segment(26003, 5060, 999_999, 0, ACK | PSH, OPTIONS),
    );
    assert_eq!(f.judge(&early), (XDP_PASS, Pass, NotAllowlisted));
}

#[test]
fn what_cannot_be_read_in_a_stream_is_refused() {
    let mut f = filter();
    // Headers longer than the filter reads, over two segments.
    let mut c = f.connect(CUSTOMER, 27000);
    let long = format!("OPTIONS sip:x SIP/2.0\r\nX-Pad: {}\r\nContent-Length: 0\r\n\r\n", "a".repeat(2100));
    let (head, tail) = long.as_bytes().split_at(1200);
    assert_eq!(c.send(&mut f, head), (XDP_PASS, Pass, Limited));
    assert_eq!(c.send(&mut f, tail), (XDP_DROP, Drop, Unreadable));
    // A TCP segment in IP fragments.
    let fragment = {
        let ip = V4 { more_fragments: true, ..V4::new(CUSTOMER, IPPROTO_TCP) };
        let c = f.connect(CUSTOMER, 27001);
        v4_frame(&[], &ip, &tcp_segment(27001, 5060, c.seq, c.server_seq, ACK, OPTIONS))
    };
    assert_eq!(f.judge(&fragment), (XDP_DROP, Drop, Unreadable));
    let whys: Vec<u8> = f.events().iter().filter(|e| e.kind == EventKind::Unreadable as u8).map(|e| e.reason).collect();
    assert!(whys.contains(&(UnreadableWhy::HeadersTooLong as u8)), "{whys:?}");
}

#[test]
fn ipv6_connections_are_followed_too() {
    let mut f = filter();
    let client: IpAddr = "2001:db8:100::5".parse().unwrap();
    let mut c = f.connect(client, 28000);
    let message = invite(BLOCKED, "v6");
    let (head, tail) = message.split_at(20);
    assert_eq!(c.send(&mut f, head), (XDP_PASS, Pass, Limited));
    assert_eq!(c.send(&mut f, tail), (XDP_DROP, Drop, DestinationBlocked));
    let mut c = f.connect(client, 28001);
    assert_eq!(c.send(&mut f, &invite(ALLOWED, "v6")), (XDP_PASS, Pass, Limited));
}

#[test]
fn monitor_mode_follows_the_stream_it_lets_through() {
    let mut f = filter_with(FilterConfig { mode: Mode::Monitor as u8, ..edge() });
    let mut c = f.connect(CUSTOMER, 29000);
    assert_eq!(c.send(&mut f, &invite(BLOCKED, "m1")), (XDP_PASS, WouldDrop, DestinationBlocked));
    // Let through, so the stream moved on: the next one is in order.
    assert_eq!(c.send(&mut f, &invite(ALLOWED, "m2")), (XDP_PASS, Pass, Limited));
}

#[test]
fn tls_ports_are_opaque_and_judged_by_their_sources_alone() {
    let mut f = filter();
    // A TLS ClientHello-like record, longer than any SIP header block and
    // without a line break: read as SIP it could only be refused.
    let mut record = vec![0x16, 0x03, 0x01, 0x0c, 0x00];
    record.extend((0..3000u32).map(|i| (i % 251) as u8 | 0x80));
    let to =
        |port: u16| v4_frame(&[], &V4::new(CUSTOMER, IPPROTO_TCP), &tcp_segment(31000, port, 1, 0, ACK | PSH, &record));
    // Port 5061 carries TLS by default: not read, no stream needed.
    assert_eq!(f.judge(&to(5061)), (XDP_PASS, Pass, Limited));
    // The same bytes in cleartext SIP's port are refused.
    let mut c = f.connect(CUSTOMER, 31001);
    assert_eq!(c.send(&mut f, &record), (XDP_DROP, Drop, Unreadable));
    // Sources are still judged there: a ban holds on the TLS port too.
    f.set_ban(
        "203.0.113.10",
        sip_xdp_common::bans::BanEntry {
            expires_ns: now_ns() + 60 * 1_000_000_000,
            banned_at_ns: now_ns(),
            dropped: 0,
            offenses: 1,
            reason: sip_xdp_common::bans::BanReason::Manual as u8,
            state: sip_xdp_common::bans::BanState::Active as u8,
            announced: 0,
            _pad: 0,
        },
    );
    assert_eq!(f.judge(&to(5061)), (XDP_DROP, Drop, Banned));
    // UDP to 5061 is plain SIP, read as ever.
    let blocked = v4_frame(&[], &V4::new([203, 0, 113, 11], IPPROTO_UDP), &udp(5061, &invite(BLOCKED, "udp5061")));
    assert_eq!(f.judge(&blocked), (XDP_DROP, Drop, DestinationBlocked));
}
