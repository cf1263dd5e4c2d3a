//! Verdict tables for the destination policy on INVITEs: the real object,
//! private maps, frames through BPF_PROG_TEST_RUN. Needs root.

use sip_xdp_common::{
    dialled::intl_prefixes,
    events::EventKind,
    kernel_config::{dest_applies_profile, FilterConfig, DEST_APPLIES_TRUSTED},
    map_types::{DestAction, DestRule, RateProfile},
    rules::RuleClass,
    Action::*,
    Reason::{self, *},
};
use sip_xdp_tests::{frames::*, harness::*};

const CUSTOMER: [u8; 4] = [203, 0, 113, 10];
const TRUNK: [u8; 4] = [198, 18, 1, 2];

/// Customers (limited, profile 0) are under the policy; the trunk
/// (trusted) is not unless `trusted_too`.
fn filter(allow_only: &[&str], trusted_too: bool) -> Filter {
    let mut cfg =
        FilterConfig { intl: intl_prefixes(&["00", "011"]), dest_applies: dest_applies_profile(0), ..sip_config() };
    if trusted_too {
        cfg.dest_applies |= DEST_APPLIES_TRUSTED;
    }
    cfg.dest_allow_only = (!allow_only.is_empty()) as u8;
    let mut f = Filter::load(cfg);
    f.profile(
        0,
        RateProfile {
            register_per_sec: 100,
            register_burst: 100,
            requests_per_sec: 1000,
            requests_burst: 1000,
            invite_per_sec: 1000,
            invite_burst: 1000,
        },
    );
    f.rule("203.0.113.0/24", RuleClass::Limited, 0);
    f.rule("2001:db8:100::/48", RuleClass::Limited, 0);
    f.rule("198.18.1.2/32", RuleClass::Trusted, 0);
    f.maps.write_dest_rules(&destination_rules(&["252", "224", "881", "882"], allow_only)).unwrap();
    f
}

fn invite(src: [u8; 4], request_line: &str) -> Vec<u8> {
    let payload = format!("{request_line}\r\nVia: SIP/2.0/UDP 203.0.113.10:5060\r\nMax-Forwards: 70\r\n\r\n");
    v4_frame(&[], &V4::new(src, IPPROTO_UDP), &udp(5060, payload.as_bytes()))
}

fn judge(f: &mut Filter, src: [u8; 4], line: &str) -> (u32, sip_xdp_common::Action, Reason) {
    f.judge(&invite(src, line))
}

/// A datagram of exactly `payload`.
fn judge_payload(f: &mut Filter, src: [u8; 4], payload: &[u8]) -> (u32, sip_xdp_common::Action, Reason) {
    f.judge(&v4_frame(&[], &V4::new(src, IPPROTO_UDP), &udp(5060, payload)))
}

#[test]
fn blocked_prefixes_in_every_form_are_dropped() {
    let mut f = filter(&[], false);
    for line in [
        "INVITE sip:+25261234567@198.18.0.1 SIP/2.0",
        "INVITE sip:0025261234567@198.18.0.1 SIP/2.0",
        "INVITE sip:01125261234567@198.18.0.1 SIP/2.0",
        "INVITE tel:+25261234567 SIP/2.0",
        "INVITE sips:+22461234567@198.18.0.1 SIP/2.0",
        "INVITE SIP:+8816123456@pbx SIP/2.0",
        // Visual separators, URI parameters and a password field.
        "INVITE tel:+252-61-234-567;phone-context=+252 SIP/2.0",
        "INVITE sip:+252(61)234.567;user=phone@pbx SIP/2.0",
        "INVITE sip:+25261234567:secret@pbx SIP/2.0",
    ] {
        assert_eq!(judge(&mut f, CUSTOMER, line), (XDP_DROP, Drop, DestinationBlocked), "{line}");
    }
    // A number longer than the digits kept is matched on its first ones.
    let long = format!("INVITE sip:+252{}@pbx SIP/2.0", "7".repeat(300));
    assert_eq!(judge(&mut f, CUSTOMER, &long), (XDP_DROP, Drop, DestinationBlocked));
    // Counted per rule, and reported with the number dialled.
    assert!(f.maps.dest_count(0).unwrap() >= 6, "252 rule counter");
    assert_eq!(f.maps.dest_count(1).unwrap(), 1, "224");
    let events = f.events();
    assert!(events.len() >= 10);
    let first = &events[0];
    assert_eq!((first.kind, first.addr), (EventKind::DestinationBlocked as u8, source_key("203.0.113.10")));
    assert_eq!(&first.number[..first.number_len as usize], b"25261234567");
}

#[test]
fn other_destinations_and_requests_pass() {
    let mut f = filter(&[], false);
    for line in [
        "INVITE sip:+4930123456@198.18.0.1 SIP/2.0", // an allowed country
        "INVITE sip:004930123456@198.18.0.1 SIP/2.0",
        "INVITE sip:0612345678@198.18.0.1 SIP/2.0", // national
        "INVITE sip:100@198.18.0.1 SIP/2.0",        // an extension
        "INVITE sip:alice@198.18.0.1 SIP/2.0",      // a name
        "INVITE sip:+25@pbx SIP/2.0",               // shorter than any rule
    ] {
        assert_eq!(judge(&mut f, CUSTOMER, line), (XDP_PASS, Pass, Limited), "{line}");
    }
    // Only INVITEs are checked.
    assert_eq!(judge(&mut f, CUSTOMER, "MESSAGE sip:+25261234567@pbx SIP/2.0"), (XDP_PASS, Pass, Limited));
}

#[test]
fn methods_are_read_as_servers_read_them() {
    // Kamailio takes `invite` for an INVITE (it compares methods without
    // case), so the filter does too.
    let mut f = filter(&[], false);
    assert_eq!(judge(&mut f, CUSTOMER, "invite sip:+25261234567@pbx SIP/2.0"), (XDP_DROP, Drop, DestinationBlocked));
    assert_eq!(judge(&mut f, CUSTOMER, "Invite sip:+4930123@pbx SIP/2.0"), (XDP_PASS, Pass, Limited));
}

#[test]
fn padding_cannot_push_the_country_out_of_reach() {
    // The whole Request-URI is read, however long.
    let mut f = filter(&[], false);
    let padded = format!("INVITE tel:+{}25261234567 SIP/2.0", "-".repeat(150));
    assert_eq!(judge(&mut f, CUSTOMER, &padded), (XDP_DROP, Drop, DestinationBlocked));
    let padded = format!("INVITE tel:+{}4930123 SIP/2.0", "-".repeat(1500));
    assert_eq!(judge(&mut f, CUSTOMER, &padded), (XDP_PASS, Pass, Limited));
    // Cut before enough digits to know the country: refused.
    let cut = format!("INVITE tel:+{}25", "-".repeat(150));
    assert_eq!(judge_payload(&mut f, CUSTOMER, cut.as_bytes()), (XDP_DROP, Drop, DestinationNotAllowed));
}

#[test]
fn allow_only_blocks_every_other_country() {
    let mut f = filter(&["49", "33"], false);
    assert_eq!(judge(&mut f, CUSTOMER, "INVITE sip:+4930123@pbx SIP/2.0"), (XDP_PASS, Pass, Limited));
    assert_eq!(judge(&mut f, CUSTOMER, "INVITE sip:0033612345678@pbx SIP/2.0"), (XDP_PASS, Pass, Limited));
    assert_eq!(judge(&mut f, CUSTOMER, "INVITE sip:+4420123@pbx SIP/2.0"), (XDP_DROP, Drop, DestinationNotAllowed));
    assert_eq!(
        judge(&mut f, CUSTOMER, "INVITE sip:+25261234567@pbx SIP/2.0"),
        (XDP_DROP, Drop, DestinationBlocked),
        "a block rule still says why"
    );
    assert_eq!(
        judge(&mut f, CUSTOMER, "INVITE sip:0612345678@pbx SIP/2.0"),
        (XDP_PASS, Pass, Limited),
        "national calls are not international"
    );
}

#[test]
fn the_policy_applies_only_to_its_classes() {
    let mut f = filter(&[], false);
    assert_eq!(
        judge(&mut f, TRUNK, "INVITE sip:+25261234567@pbx SIP/2.0"),
        (XDP_PASS, Pass, Allowlisted),
        "trusted is exempt unless listed"
    );
    let mut f = filter(&[], true);
    assert_eq!(judge(&mut f, TRUNK, "INVITE sip:+25261234567@pbx SIP/2.0"), (XDP_DROP, Drop, DestinationBlocked));
    // IPv6 customers too.
    let payload = b"INVITE sip:+22461234567@pbx SIP/2.0\r\nVia: x\r\n\r\n";
    let frame = v6_frame(&[], &V6::new(v6_addr("2001:db8:100::5"), IPPROTO_UDP), &udp(5061, payload));
    assert_eq!(f.judge(&frame), (XDP_DROP, Drop, DestinationBlocked));
    // Over TCP as well.
    let mut c = f.connect(CUSTOMER, 40000);
    assert_eq!(c.send(&mut f, b"INVITE sip:+88161234@pbx SIP/2.0\r\n\r\n"), (XDP_DROP, Drop, DestinationBlocked));
}

mod fingerprints {
    use super::*;
    use sip_xdp_common::{bans::BanReason, counts::COUNT_FINGERPRINT_BASE};

    fn scanner_filter() -> Filter {
        let mut f = filter(&[], false);
        f.maps.write_fingerprints(&default_fingerprints()).unwrap();
        f
    }

    fn options_with(src: [u8; 4], headers: &str) -> Vec<u8> {
        let payload = format!("OPTIONS sip:100@198.18.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.10:5060\r\n{headers}Content-Length: 0\r\n\r\n");
        v4_frame(&[], &V4::new(src, IPPROTO_UDP), &udp(5060, payload.as_bytes()))
    }

    #[test]
    fn a_scanner_is_dropped_and_banned_on_its_first_request() {
        let mut f = scanner_filter();
        let svmap = options_with(CUSTOMER, "From: \"sipvicious\"<sip:100@1.1.1.1>;tag=1\r\nUser-Agent: friendly-scanner\r\nAccept: application/sdp\r\n");
        assert_eq!(f.judge(&svmap), (XDP_DROP, Drop, Scanner));
        let ban = f.ban_of("203.0.113.10").expect("banned at once");
        assert_eq!(ban.reason, BanReason::Scanner as u8);
        assert_eq!(f.judge(&options_with(CUSTOMER, "User-Agent: Zoiper\r\n")), (XDP_DROP, Drop, Banned));
        assert_eq!(f.maps.count(COUNT_FINGERPRINT_BASE).unwrap(), 1, "counted under friendly-scanner");
    }

    #[test]
    fn header_position_and_case_do_not_matter() {
        let mut f = scanner_filter();
        for (i, headers) in [
            "USER-AGENT: SIPVicious 0.3.4\r\n",
            "To: <sip:a@b>\r\nCall-ID: 1\r\nCSeq: 1 OPTIONS\r\nuser-agent :\tsipcli/v1.8\r\n",
            "User-Agent: Mozilla VaxSIPUserAgent/3.0\r\n",
        ]
        .iter()
        .enumerate()
        {
            let src = [203, 0, 113, 100 + i as u8];
            assert_eq!(f.judge(&options_with(src, headers)), (XDP_DROP, Drop, Scanner), "{headers}");
        }
        // A REGISTER or an INVITE announces itself the same way.
        let invite = v4_frame(
            &[],
            &V4::new([203, 0, 113, 120], IPPROTO_UDP),
            &udp(5060, b"INVITE sip:100@pbx SIP/2.0\r\nUser-Agent: pplsip\r\n\r\n"),
        );
        assert_eq!(f.judge(&invite), (XDP_DROP, Drop, Scanner));
    }

    #[test]
    fn compact_header_forms_around_it_do_not_hide_or_fake_it() {
        // RFC 3261 compact forms (v, f, t, i, m, l); User-Agent has none.
        let mut f = scanner_filter();
        let compact = "f: <sip:100@1.1.1.1>;tag=1\r\nt: <sip:100@1.1.1.1>\r\ni: 123@x\r\nm: <sip:100@1.1.1.1>\r\nUser-Agent: friendly-scanner\r\nl: 0\r\n";
        assert_eq!(f.judge(&options_with(CUSTOMER, compact)), (XDP_DROP, Drop, Scanner));
        let fake = "f: \"sipvicious\" <sip:100@1.1.1.1>;tag=1\r\nt: <sip:friendly-scanner@1.1.1.1>\r\n";
        assert_eq!(
            f.judge(&options_with([203, 0, 113, 50], fake)),
            (XDP_PASS, Pass, Limited),
            "only User-Agent counts"
        );
    }

    #[test]
    fn real_phones_pass_and_trusted_sources_are_only_counted() {
        let mut f = scanner_filter();
        assert_eq!(f.judge(&options_with(CUSTOMER, "User-Agent: Yealink SIP-T46S\r\n")), (XDP_PASS, Pass, Limited));
        assert_eq!(f.judge(&options_with(CUSTOMER, "Subject: friendly-scanner\r\n")), (XDP_PASS, Pass, Limited));
        assert_eq!(f.judge(&options_with(TRUNK, "User-Agent: sip-scan\r\n")), (XDP_PASS, Pass, Allowlisted));
        assert!(f.ban_of("198.18.1.2").is_none());
        assert_eq!(f.maps.count(COUNT_FINGERPRINT_BASE + 7).unwrap(), 1, "the trusted hit is counted");
    }

    #[test]
    fn dropped_sources_are_not_searched() {
        // A source no rule admits is dropped as such; searching it would
        // only cost time under a flood of spoofed sources.
        let mut f = scanner_filter();
        let stranger = options_with([198, 19, 7, 7], "User-Agent: friendly-scanner\r\n");
        assert_eq!(f.judge(&stranger), (XDP_DROP, Drop, NotAllowlisted));
        assert!(f.ban_of("198.19.7.7").is_none());
        assert_eq!(f.maps.count(COUNT_FINGERPRINT_BASE).unwrap(), 0);
    }

    #[test]
    fn only_the_first_requests_of_a_source_are_searched() {
        let mut f = scanner_filter();
        for _ in 0..3 {
            assert_eq!(f.judge(&options_with(CUSTOMER, "User-Agent: Zoiper\r\n")), (XDP_PASS, Pass, Limited));
        }
        // The search is bounded per source: a tool that hides for three
        // requests is left to the rate limits and the auth counting.
        assert_eq!(f.judge(&options_with(CUSTOMER, "User-Agent: friendly-scanner\r\n")), (XDP_PASS, Pass, Limited));
    }
}

mod anomaly_blocks {
    use super::*;

    #[test]
    fn admitted_international_calls_are_counted_with_their_cost_and_a_block_stops_them() {
        let mut f = filter(&[], false);
        let mut rules = f.maps.dest_entries().unwrap();
        rules.insert("49".into(), DestRule { action: DestAction::CostOnly as u8, id: 9, cost_milli: 120, _pad: 0 });
        f.maps.write_dest_rules(&rules).unwrap();
        for _ in 0..3 {
            assert_eq!(judge(&mut f, CUSTOMER, "INVITE sip:+4930123@pbx SIP/2.0"), (XDP_PASS, Pass, Limited));
        }
        assert_eq!(judge(&mut f, CUSTOMER, "INVITE sip:+3312345@pbx SIP/2.0"), (XDP_PASS, Pass, Limited));
        assert_eq!(judge(&mut f, CUSTOMER, "INVITE sip:0612345@pbx SIP/2.0"), (XDP_PASS, Pass, Limited));
        let s = f.source("203.0.113.10").unwrap();
        assert_eq!((s.intl_invites, s.intl_cost_milli), (4, 360), "national calls are not counted");

        // The controller blocks the source's international calls.
        f.maps.intl_blocks.insert(source_key("203.0.113.10"), now_ns() + 60 * 1_000_000_000, 0).unwrap();
        assert_eq!(judge(&mut f, CUSTOMER, "INVITE sip:+4930123@pbx SIP/2.0"), (XDP_DROP, Drop, InternationalBlocked));
        assert_eq!(
            judge(&mut f, CUSTOMER, "INVITE sip:0612345@pbx SIP/2.0"),
            (XDP_PASS, Pass, Limited),
            "national calls go on"
        );
        assert_eq!(
            judge(&mut f, [203, 0, 113, 11], "INVITE sip:+4930123@pbx SIP/2.0"),
            (XDP_PASS, Pass, Limited),
            "other sources too"
        );
        // An ended block (0: lifted) no longer applies.
        f.maps.intl_blocks.insert(source_key("203.0.113.10"), 0, 0).unwrap();
        assert_eq!(judge(&mut f, CUSTOMER, "INVITE sip:+4930123@pbx SIP/2.0"), (XDP_PASS, Pass, Limited));
    }
}
