//! End to end for sip-xdp as a CrowdSec remediation component: Debian's
//! crowdsec (its Local API) in the edge namespace, decisions made with
//! cscli, the controller following the decision stream every second.
//! Needs root.

use std::time::{Duration, Instant};

use sip_xdp_tests::netns::*;

/// Decisions are enforced within this (the bar; poll_secs = 1).
const WITHIN: Duration = Duration::from_secs(2);

fn start() -> (Lab, CrowdSec) {
    let mut lab = Lab::new();
    lab.start_kamailio();
    let crowdsec = lab.start_crowdsec();
    let key = crowdsec.bouncer_key_file("sip-xdp");
    lab.start_controller(&lab.customers_config(&format!(
        "[events]\nformat = \"text\"\n[crowdsec]\nlapi_url = \"{LAPI_URL}\"\napi_key_file = \"{}\"\n",
        key.display()
    )));
    lab.controller.as_mut().unwrap().wait_for("crowdsec: following the decisions", Duration::from_secs(5));
    (lab, crowdsec)
}

/// Does `ip` (an address of the stranger's namespace) get an answer to
/// an OPTIONS within half a second?
fn answered(lab: &Lab, ip: &str) -> bool {
    let sock = lab.udp_in(&lab.stranger, &format!("{ip}:0"));
    let port = sock.local_addr().unwrap().port();
    sock.send_to(&options_request(ip, port, 7), format!("{EDGE_STRANGER_IP}:5060")).unwrap();
    recv_within(&sock, Duration::from_millis(500)).is_some()
}

/// How long until `ban list` says `source` is banned (or not), polled.
fn until_banned(lab: &Lab, source: &str, banned: bool) -> Duration {
    let started = Instant::now();
    while lab.ban_of(source).is_some() != banned {
        assert!(started.elapsed() < Duration::from_secs(10), "{source} banned={banned} never came: {:?}", lab.bans());
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

#[test]
fn a_decision_is_enforced_within_two_seconds_and_lifted_when_deleted() {
    let (mut lab, crowdsec) = start();
    assert!(answered(&lab, STRANGER_IP));

    crowdsec.cscli(&["decisions", "add", "--ip", STRANGER_IP, "--duration", "2m", "--reason", "sip-bf"]);
    let took = until_banned(&lab, STRANGER_IP, true);
    println!("cscli decisions add --ip: enforced in {} ms", took.as_millis());
    assert!(took <= WITHIN, "enforced in {took:?}");
    assert!(!answered(&lab, STRANGER_IP), "banned: no answer");
    let ban = lab.ban_of(STRANGER_IP).unwrap();
    assert_eq!(ban["reason"], "crowdsec");
    let remaining = ban["remaining_secs"].as_u64().unwrap();
    assert!((110..=120).contains(&remaining), "the decision's duration: {remaining}");
    lab.controller
        .as_mut()
        .unwrap()
        .wait_for(&format!("event=ban source={STRANGER_IP} reason=crowdsec"), Duration::from_secs(3));

    crowdsec.cscli(&["decisions", "delete", "--ip", STRANGER_IP]);
    let took = until_banned(&lab, STRANGER_IP, false);
    println!("cscli decisions delete --ip: lifted in {} ms", took.as_millis());
    assert!(took <= WITHIN, "lifted in {took:?}");
    assert!(answered(&lab, STRANGER_IP), "answered again");
    lab.controller.as_mut().unwrap().wait_for(&format!("event=unban source={STRANGER_IP}"), Duration::from_secs(3));

    // A range, and an IPv6 address (banned as its /64).
    crowdsec.cscli(&["decisions", "add", "--range", "198.18.2.0/24", "--duration", "5m"]);
    assert!(until_banned(&lab, "198.18.2.0/24", true) <= WITHIN);
    assert!(!answered(&lab, STRANGER_IP));
    crowdsec.cscli(&["decisions", "add", "--ip", "2001:2:0:9::5", "--duration", "2m"]);
    assert!(until_banned(&lab, "2001:2:0:9::/64", true) <= WITHIN);
    // Two decisions on addresses of one /64 hold the one ban until both go.
    crowdsec.cscli(&["decisions", "add", "--ip", "2001:2:0:9::6", "--duration", "2m"]);
    std::thread::sleep(WITHIN);
    crowdsec.cscli(&["decisions", "delete", "--ip", "2001:2:0:9::5"]);
    std::thread::sleep(WITHIN);
    assert!(lab.ban_of("2001:2:0:9::/64").is_some(), "the other decision still holds it");
    crowdsec.cscli(&["decisions", "delete", "--ip", "2001:2:0:9::6"]);
    assert!(until_banned(&lab, "2001:2:0:9::/64", false) <= WITHIN);
    crowdsec.cscli(&["decisions", "delete", "--range", "198.18.2.0/24"]);
    assert!(until_banned(&lab, "198.18.2.0/24", false) <= WITHIN);
    assert!(answered(&lab, STRANGER_IP));
    assert_eq!(lab.metric("sipxdp_crowdsec_connected"), 1.0);
}

#[test]
fn trusted_sources_are_never_banned_and_other_decisions_are_left_alone() {
    let (mut lab, crowdsec) = start();
    crowdsec.cscli(&["decisions", "add", "--ip", TRUNK_IP, "--duration", "2m"]);
    crowdsec.cscli(&["decisions", "add", "--ip", STRANGER_IP, "--type", "captcha", "--duration", "2m"]);
    crowdsec.cscli(&["decisions", "add", "--range", "198.0.0.0/8", "--duration", "2m"]);
    // A ban after them, to know they were all read.
    crowdsec.cscli(&["decisions", "add", "--ip", "198.18.2.77", "--duration", "2m"]);
    until_banned(&lab, "198.18.2.77", true);
    lab.controller.as_mut().unwrap().wait_for(&format!("crowdsec: not banning {TRUNK_IP}/32"), Duration::from_secs(3));
    assert!(lab.ban_of(TRUNK_IP).is_none(), "trusted: {:?}", lab.bans());
    assert!(lab.sipp_register(&lab.trunk, TRUNK_IP, EDGE_TRUNK_IP), "the trunk registers");
    assert!(answered(&lab, STRANGER_IP), "a captcha decision is not a ban");
    assert!(lab.ban_of("198.0.0.0/8").is_none(), "wider than max_prefix_v4");
    assert_eq!(lab.metric("sipxdp_crowdsec_decisions_total{result=\"refused\"}"), 2.0);
    assert_eq!(lab.metric("sipxdp_crowdsec_decisions_total{result=\"ignored\"}"), 1.0);
    assert_eq!(lab.metric("sipxdp_crowdsec_decisions_total{result=\"banned\"}"), 1.0);
}

#[test]
fn bans_outlive_the_lapi_and_the_controller_and_deletions_made_meanwhile_are_caught_up() {
    let (mut lab, mut crowdsec) = start();
    crowdsec.cscli(&["decisions", "add", "--ip", STRANGER_IP, "--duration", "10m"]);
    until_banned(&lab, STRANGER_IP, true);

    // The LAPI goes away: the ban stays, the controller says so and goes on.
    crowdsec.stop();
    lab.controller.as_mut().unwrap().wait_for("bans already applied stay", Duration::from_secs(5));
    assert_eq!(lab.metric("sipxdp_crowdsec_connected"), 0.0);
    assert!(!answered(&lab, STRANGER_IP), "still banned while the LAPI is down");
    crowdsec.start();
    crowdsec.cscli(&["decisions", "add", "--ip", "198.18.2.78", "--duration", "2m"]);
    assert!(until_banned(&lab, "198.18.2.78", true) <= Duration::from_secs(5), "followed again");

    // The controller dies (the filter stays in force); the decision is
    // deleted meanwhile; the next controller's first full read lifts it.
    let config = lab.dir.join("sip-xdp.toml");
    lab.controller.as_mut().unwrap().signal(libc::SIGKILL);
    lab.controller = None;
    crowdsec.cscli(&["decisions", "delete", "--ip", STRANGER_IP]);
    assert!(!answered(&lab, STRANGER_IP), "the kernel still enforces without a controller");
    let mut controller = lab.spawn_controller(&config, &["--xdp-mode", "native"]);
    controller.wait_for("filtering;", Duration::from_secs(30));
    lab.controller = Some(controller);
    assert!(until_banned(&lab, STRANGER_IP, false) <= WITHIN + Duration::from_secs(1));
    assert!(answered(&lab, STRANGER_IP));
    assert!(lab.ban_of("198.18.2.78").is_some(), "the decision still in force stays");
}
