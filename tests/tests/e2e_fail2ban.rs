//! End to end for fail2ban banning through sip-xdp: a private fail2ban
//! with a jail on Kamailio's log and the shipped action
//! (`contrib/fail2ban/action.d/sip-xdp.conf`), which asks the controller's
//! control API (Unix socket, bearer token) instead of iptables. sip-xdp's
//! own auth thresholds are set out of reach here, so that every ban is the
//! jail's. Needs root.

use std::time::{Duration, Instant};

use sip_xdp_tests::netns::*;

/// The jail's maxretry.
const MAXRETRY: u32 = 3;

/// Sends `n` REGISTERs without credentials from `ip` in `ns`, each drawing a
/// 401 that Kamailio logs as an auth failure; how many were answered.
fn failures(lab: &Lab, ns: &str, ip: &str, n: u32) -> u32 {
    let sock = lab.udp_in(ns, &format!("{ip}:0"));
    let port = sock.local_addr().unwrap().port();
    let server = if ip == TRUNK_IP { EDGE_TRUNK_IP } else { EDGE_STRANGER_IP };
    (0..n)
        .filter(|seq| {
            sock.send_to(&register_request(ip, port, *seq), format!("{server}:5060")).unwrap();
            recv_within(&sock, Duration::from_millis(500)).is_some()
        })
        .count() as u32
}

#[test]
fn a_jail_bans_through_sip_xdp_and_unbans_but_never_a_trusted_trunk() {
    let mut lab = Lab::new();
    let log = lab.dir.join("kamailio.log");
    lab.start_kamailio_logging_to(Some(&log));
    let (api, _) = lab.api_unix();
    lab.start_controller(&lab.customers_config(&format!(
        "[auth_failures]\nmax = 100\nunanswered_challenges = 100\n[events]\nformat = \"text\"\n{api}"
    )));
    let _fail2ban = lab.start_fail2ban(
        &log,
        "auth failure for .* from <HOST>$",
        &format!(
            "maxretry = {MAXRETRY}\nbantime = 600\naction = sip-xdp[socket=\"{}\", token_file=\"{}\"]\n",
            lab.dir.join("api.sock").display(),
            lab.dir.join("api-token").display()
        ),
    );

    // The attacker: answered while fail2ban counts, then banned by the
    // kernel at the jail's word.
    let started = Instant::now();
    assert_eq!(failures(&lab, &lab.stranger, STRANGER_IP, MAXRETRY), MAXRETRY);
    while lab.ban_of(STRANGER_IP).is_none() {
        assert!(started.elapsed() < Duration::from_secs(15), "no ban came:\n{}", lab.fail2ban_log());
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("fail2ban -> sip-xdp: banned {} ms after the first failure", started.elapsed().as_millis());
    let ban = lab.ban_of(STRANGER_IP).unwrap();
    assert_eq!(ban["reason"], "fail2ban");
    assert!(ban["remaining_secs"].as_u64().unwrap() > 590, "the jail's bantime: {ban}");
    assert_eq!(failures(&lab, &lab.stranger, STRANGER_IP, 2), 0, "banned: no answer at all");
    lab.controller
        .as_mut()
        .unwrap()
        .wait_for(&format!("event=ban source={STRANGER_IP} reason=fail2ban"), Duration::from_secs(3));
    assert!(lab.fail2ban_client(&["status", JAIL]).contains(STRANGER_IP));

    // The trusted trunk fails as often: the jail asks, sip-xdp refuses.
    assert_eq!(failures(&lab, &lab.trunk, TRUNK_IP, MAXRETRY + 2), MAXRETRY + 2);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !lab.fail2ban_log().contains(&format!("Ban {TRUNK_IP}")) {
        assert!(Instant::now() < deadline, "the jail never tried:\n{}", lab.fail2ban_log());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500)); // the action ran, a sweep passed
    assert!(lab.ban_of(TRUNK_IP).is_none(), "trusted sources are never banned: {:?}", lab.bans());
    // fail2ban tries a failed action again: at least once.
    let refused = lab.metric("sipxdp_api_requests_total{path=\"/v1/bans\",status=\"409\"}");
    assert!(refused >= 1.0, "the jail's ban of the trunk reached sip-xdp and was refused as trusted: {refused}");
    assert!(lab.sipp_register(&lab.trunk, TRUNK_IP, EDGE_TRUNK_IP), "the trunk registers");

    // Unbanned by the jail: lifted in sip-xdp.
    lab.fail2ban_client(&["set", JAIL, "unbanip", STRANGER_IP]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while lab.ban_of(STRANGER_IP).is_some() {
        assert!(Instant::now() < deadline, "not lifted:\n{}", lab.fail2ban_log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(failures(&lab, &lab.stranger, STRANGER_IP, 1), 1, "answered again");
}
