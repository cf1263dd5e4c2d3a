//! End to end for classes, rate limits and bans: Kamailio with digest
//! authentication in the edge namespace, the trunk trusted, the stranger's
//! network in the `customers` class. Needs root.

use std::time::Duration;

use sip_xdp::{maps::Maps, pin::PinDir};
use sip_xdp_tests::{harness::source_key, netns::*};

/// Auth failures that ban, and the first ban's length in seconds.
const AUTH_MAX: u32 = 4;

/// Fingerprints are off here, so that svcrack (which announces itself as
/// `friendly-scanner`) is caught by the auth-failure path under test; the
/// fingerprint path has its own tests.
fn ban_config(lab: &Lab, duration_secs: u64, webhook: Option<&str>) -> String {
    let webhook = webhook.map_or(String::new(), |url| format!("webhook = \"{url}\"\n"));
    lab.customers_config(&format!(
        "[ban]\nafter_excess = 50\nwindow_secs = 10\nduration_secs = {duration_secs}\nmax_duration_secs = 3600\n\
         [auth_failures]\nmax = {AUTH_MAX}\nwindow_secs = 60\n[events]\nformat = \"text\"\n{webhook}\
         [fingerprints]\nuser_agents = []\n"
    ))
}

fn start(duration_secs: u64, webhook: Option<&str>) -> Lab {
    let mut lab = Lab::new();
    lab.start_kamailio();
    lab.start_controller(&ban_config(&lab, duration_secs, webhook));
    lab
}

fn bans(lab: &Lab) -> Vec<serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(&lab.cli_ok(&["ban", "list", "--json"]))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn ban_of(lab: &Lab, source: &str) -> Option<serde_json::Value> {
    bans(lab).into_iter().find(|b| b["source"] == source)
}

/// Does the stranger get any answer to an OPTIONS within a second?
fn stranger_is_answered(lab: &Lab) -> bool {
    let sock = lab.udp_in(&lab.stranger, &format!("{STRANGER_IP}:0"));
    let port = sock.local_addr().unwrap().port();
    sock.send_to(&options_request(STRANGER_IP, port, 7), format!("{EDGE_STRANGER_IP}:5060")).unwrap();
    recv_within(&sock, Duration::from_secs(1)).is_some()
}

/// Sends REGISTERs with wrong credentials (each answered with a 401, a
/// rejection of credentials) one at a time, each after the previous
/// answer, until one goes unanswered; returns how many were answered.
fn register_until_unanswered(lab: &Lab, limit: u32) -> u32 {
    let sock = lab.udp_in(&lab.stranger, &format!("{STRANGER_IP}:0"));
    let port = sock.local_addr().unwrap().port();
    for seq in 0..limit {
        let guess = register_with_credentials("UDP", STRANGER_IP, port, EDGE_STRANGER_IP, "alice", seq);
        sock.send_to(&guess, format!("{EDGE_STRANGER_IP}:5060")).unwrap();
        if recv_within(&sock, Duration::from_millis(800)).is_none() {
            return seq;
        }
    }
    limit
}

#[test]
fn a_password_cracker_is_banned_and_then_gets_no_answer_at_all() {
    let mut lab = Lab::new();
    lab.start_kamailio();
    let (url, posted) = lab.webhook_receiver();
    lab.start_controller(&ban_config(&lab, 600, Some(&url)));

    // sipvicious' cracker, guessing alice's password from the customers' network.
    let out = std::process::Command::new("timeout")
        .args([
            "20",
            "ip",
            "netns",
            "exec",
            &lab.stranger,
            "svcrack",
            "-u",
            "alice",
            "-r",
            "1000-1200",
            "-b",
            STRANGER_IP,
            EDGE_STRANGER_IP,
        ])
        .current_dir(&lab.dir)
        .env("HOME", &lab.dir)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!said.contains("secret"), "the cracker must not find the password: {said}");

    let ban = ban_of(&lab, STRANGER_IP).unwrap_or_else(|| panic!("cracker not banned; svcrack said: {said}"));
    assert_eq!(ban["reason"], "auth_failures");
    assert!(!stranger_is_answered(&lab), "a banned source gets no answer at all");
    assert!(!lab.sipp_register(&lab.stranger, STRANGER_IP, EDGE_STRANGER_IP), "not even with the right password");
    assert!(lab.sipp_register(&lab.trunk, TRUNK_IP, EDGE_TRUNK_IP), "the trunk is unaffected");

    // Reported in the log and to the webhook.
    let controller = lab.controller.as_mut().unwrap();
    controller.wait_for(
        &format!("event=ban source={STRANGER_IP} reason=auth_failures duration=600s offenses=1"),
        Duration::from_secs(5),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let bodies = posted.lock().unwrap().clone();
        if let Some(body) = bodies.iter().find(|b| b.contains("\"ban\"")) {
            let doc: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!((doc["event"].as_str(), doc["source"].as_str()), (Some("ban"), Some(STRANGER_IP)));
            assert_eq!(doc["reason"], "auth_failures");
            assert_eq!(doc["duration_secs"], 600);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "webhook got no ban event: {bodies:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_failure_that_crosses_the_threshold_bans_the_very_next_packet() {
    let lab = start(600, None);
    // Each guess draws one 401 to a request with credentials: the fourth
    // bans.
    assert_eq!(register_until_unanswered(&lab, 10), AUTH_MAX, "answered until the threshold, not one more");
    let maps = Maps::open(&PinDir::new(&lab.pins)).unwrap();
    let key = source_key(STRANGER_IP);
    let ban = maps.bans.get(&key, 0).unwrap();
    let source = maps.sources.get(&key, 0).unwrap();
    assert_eq!(source.dropped, 1, "exactly the next packet was dropped");
    // From the 401 that crossed the threshold (the ban's time) to the drop
    // of the next packet (the source's last-seen time), kernel clock.
    let micros = (source.last_seen_ns - ban.banned_at_ns) as f64 / 1000.0;
    println!("threshold failure -> first dropped packet: {micros:.0} us (includes the client's turnaround)");
    assert!(source.last_seen_ns > ban.banned_at_ns);
}

#[test]
fn a_trusted_trunk_flooding_registers_is_never_banned() {
    let lab = start(600, None);
    let trunk = lab.udp_in(&lab.trunk, &format!("{TRUNK_IP}:0"));
    let port = trunk.local_addr().unwrap().port();
    let answers = count_in_background(&trunk, Duration::from_secs(5));
    // 3,000 REGISTERs without credentials in about a second: far above every
    // profile, and each draws a 401.
    for seq in 0..3000 {
        trunk.send_to(&register_request(TRUNK_IP, port, seq), format!("{EDGE_TRUNK_IP}:5060")).unwrap();
        if seq % 100 == 0 {
            std::thread::sleep(Duration::from_millis(30));
        }
    }
    let answered = answers.join().unwrap();
    assert!(ban_of(&lab, TRUNK_IP).is_none(), "trusted sources are never banned");
    assert_eq!(lab.source(TRUNK_IP).unwrap()["dropped"], 0, "nor is any of their packets dropped");
    assert!(answered > 2000, "Kamailio answered {answered} of 3000");
    assert!(lab.sipp_register(&lab.trunk, TRUNK_IP, EDGE_TRUNK_IP), "and the trunk still registers");
}

#[test]
fn one_wrong_password_then_the_right_one_is_not_banned() {
    let lab = start(600, None);
    // A wrong password draws a challenge (401 to the REGISTER without
    // credentials, not a failure) and a refusal (401 to the one with them,
    // a failure); the right one a challenge and a 200 OK, which clears.
    // Wrong, wrong, wrong, right, wrong, wrong, wrong: six failures, but
    // never four since a success.
    for round in 0..2 {
        for attempt in 0..AUTH_MAX - 1 {
            assert!(!lab.sipp_register_with(&lab.stranger, STRANGER_IP, EDGE_STRANGER_IP, "typo"), "{round}/{attempt}");
        }
        assert!(ban_of(&lab, STRANGER_IP).is_none(), "not banned: {:?}", bans(&lab));
        assert!(lab.sipp_register(&lab.stranger, STRANGER_IP, EDGE_STRANGER_IP), "the right password registers");
    }
    // Four wrong attempts in a row do reach the threshold.
    for _ in 0..AUTH_MAX {
        assert!(!lab.sipp_register_with(&lab.stranger, STRANGER_IP, EDGE_STRANGER_IP, "typo"));
    }
    assert_eq!(ban_of(&lab, STRANGER_IP).expect("banned")["reason"], "auth_failures");
    assert!(!lab.sipp_register(&lab.stranger, STRANGER_IP, EDGE_STRANGER_IP), "not even the right one now");
}

#[test]
fn bans_expire_and_a_repeat_offender_waits_twice_as_long() {
    let mut lab = start(2, None);
    assert_eq!(register_until_unanswered(&lab, 10), AUTH_MAX);
    let first = ban_of(&lab, STRANGER_IP).expect("banned");
    assert_eq!(first["offenses"], 1);
    assert!(first["remaining_secs"].as_u64().unwrap() <= 2);
    assert!(!stranger_is_answered(&lab));
    lab.controller
        .as_mut()
        .unwrap()
        .wait_for(&format!("event=expire source={STRANGER_IP} reason=auth_failures"), Duration::from_secs(6));
    assert!(stranger_is_answered(&lab), "answered again once the ban expired");
    assert!(ban_of(&lab, STRANGER_IP).is_none());

    assert_eq!(register_until_unanswered(&lab, 10), AUTH_MAX);
    let second = ban_of(&lab, STRANGER_IP).expect("banned again");
    assert_eq!(second["offenses"], 2);
    assert!(second["remaining_secs"].as_u64().unwrap() > 2, "{second}");
    lab.controller.as_mut().unwrap().wait_for(
        &format!("event=ban source={STRANGER_IP} reason=auth_failures duration=4s offenses=2"),
        Duration::from_secs(5),
    );
}

#[test]
fn a_limited_client_flooding_requests_is_rate_limited_then_banned() {
    let mut lab = start(600, None);
    let sock = lab.udp_in(&lab.stranger, &format!("{STRANGER_IP}:0"));
    let port = sock.local_addr().unwrap().port();
    let answers = count_in_background(&sock, Duration::from_secs(3));
    // 600 OPTIONS at once: the burst of 200 passes, the rest is over budget,
    // and 50 over budget within 10 s ban the source.
    for seq in 0..600 {
        sock.send_to(&options_request(STRANGER_IP, port, seq), format!("{EDGE_STRANGER_IP}:5060")).unwrap();
    }
    let answered = answers.join().unwrap();
    let admitted = lab.counter("pass", "limited").0;
    assert!((200..=215).contains(&admitted), "the burst (and a little refill) is admitted: {admitted}");
    assert!(answered >= 150, "and Kamailio answers it ({answered}; it may shed some of a burst)");
    assert_eq!(ban_of(&lab, STRANGER_IP).expect("banned")["reason"], "rate_excess");
    assert_eq!(lab.counter("drop", "request_rate").0, 50, "dropped as over budget until the ban");
    assert!(lab.counter("drop", "banned").0 >= 340);
    lab.controller
        .as_mut()
        .unwrap()
        .wait_for(&format!("event=ban source={STRANGER_IP} reason=rate_excess"), Duration::from_secs(5));
}

#[test]
fn ban_add_and_del_take_effect_at_once() {
    let mut lab = start(600, None);
    assert!(stranger_is_answered(&lab));
    assert_eq!(
        lab.cli_ok(&["ban", "add", STRANGER_IP, "--duration", "300"]),
        format!("banned {STRANGER_IP} for 300s\n")
    );
    assert!(!stranger_is_answered(&lab), "banned at once");
    let row = ban_of(&lab, STRANGER_IP).unwrap();
    assert_eq!(row["reason"], "manual");
    assert!(row["remaining_secs"].as_u64().unwrap() > 290);
    assert!(row["dropped"].as_u64().unwrap() >= 1);
    lab.controller
        .as_mut()
        .unwrap()
        .wait_for(&format!("event=ban source={STRANGER_IP} reason=manual duration=300s"), Duration::from_secs(5));
    assert_eq!(lab.cli_ok(&["ban", "del", STRANGER_IP]), format!("unbanned {STRANGER_IP}\n"));
    assert!(stranger_is_answered(&lab), "lifted at once");
    lab.controller
        .as_mut()
        .unwrap()
        .wait_for(&format!("event=unban source={STRANGER_IP} reason=manual"), Duration::from_secs(5));

    // A whole prefix.
    lab.cli_ok(&["ban", "add", "198.18.2.0/25"]);
    assert!(!stranger_is_answered(&lab));
    assert!(lab.cli_ok(&["ban", "list"]).contains("198.18.2.0/25"));
    let again = lab.cli(&["ban", "add", "198.18.2.0/25"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("198.18.2.0/25 is already banned"));
    lab.cli_ok(&["ban", "del", "198.18.2.0/25"]);
    assert!(stranger_is_answered(&lab));
    // The exact prefix of a rule: the ban sits beside the rule, which
    // applies again once the ban is lifted.
    lab.cli_ok(&["ban", "add", "198.18.2.0/24"]);
    assert!(!stranger_is_answered(&lab), "the ban holds over the rule of the same prefix");
    lab.cli_ok(&["ban", "del", "198.18.2.0/24"]);
    assert!(stranger_is_answered(&lab), "and the rule applies again");
    let controller = lab.controller.as_mut().unwrap();
    controller.wait_for("event=ban source=198.18.2.0/25 reason=manual", Duration::from_secs(5));
    controller.wait_for("event=unban source=198.18.2.0/25 reason=manual", Duration::from_secs(5));

    // A ban on an address that a reloaded config trusts is lifted.
    lab.cli_ok(&["ban", "add", STRANGER_IP]);
    assert!(!stranger_is_answered(&lab));
    let trusting = ban_config(&lab, 600, None).replace(
        &format!("cidrs = [\"{TRUNK_IP}/32\"]"),
        &format!("cidrs = [\"{TRUNK_IP}/32\", \"{STRANGER_IP}/32\"]"),
    );
    std::fs::write(lab.dir.join("sip-xdp.toml"), trusting).unwrap();
    let controller = lab.controller.as_mut().unwrap();
    controller.signal(libc::SIGHUP);
    controller.wait_for(&format!("event=unban source={STRANGER_IP} reason=now_trusted"), Duration::from_secs(5));
    assert!(stranger_is_answered(&lab));
    assert_eq!(lab.cli(&["ban", "add", STRANGER_IP]).status.code(), Some(2), "now trusted");

    // Trusted sources cannot be banned; bad input is refused.
    let out = lab.cli(&["ban", "add", TRUNK_IP]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("trusted sources are never banned"));
    let out = lab.cli(&["ban", "del", "198.18.2.77"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not banned"));
    assert_eq!(lab.cli(&["ban", "add", "nonsense"]).status.code(), Some(2));
}
