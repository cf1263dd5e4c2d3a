//! End to end for the toll-fraud controls: Kamailio in the edge namespace,
//! the stranger's network in the `customers` class under the destination
//! policy. Needs root.

use std::time::Duration;

use sip_xdp_tests::netns::*;

fn start() -> Lab {
    let mut lab = Lab::new();
    lab.start_kamailio();
    lab.start_controller(&lab.customers_config(
        "[destinations]\ninternational_prefixes = [\"00\", \"011\"]\nblock = [\"252\", \"224\", \"881\", \"882\"]\napplies_to = [\"customers\"]\n",
    ));
    lab
}

/// One INVITE to `number` with SIPp; true if Kamailio answered it.
fn sipp_invite(lab: &Lab, ns: &str, local_ip: &str, server_ip: &str, number: &str) -> bool {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "sipp", &format!("{server_ip}:5060"), "-sf"])
        .arg(fixture("invite.xml"))
        .args([
            "-s",
            number,
            "-i",
            local_ip,
            "-m",
            "1",
            "-nostdin",
            "-recv_timeout",
            "2000",
            "-timeout",
            "6s",
            "-timeout_error",
        ])
        .current_dir(&lab.dir)
        .output()
        .unwrap();
    out.status.code() == Some(0)
}

#[test]
fn invites_to_blocked_prefixes_get_no_answer_and_others_reach_the_server() {
    let mut lab = start();
    assert!(!sipp_invite(&lab, &lab.stranger, STRANGER_IP, EDGE_STRANGER_IP, "+25261234567"), "Somalia is blocked");
    assert!(!sipp_invite(&lab, &lab.stranger, STRANGER_IP, EDGE_STRANGER_IP, "0022461234567"), "Guinea with 00");
    assert!(sipp_invite(&lab, &lab.stranger, STRANGER_IP, EDGE_STRANGER_IP, "+4930123456"), "Germany reaches Kamailio");
    assert!(sipp_invite(&lab, &lab.stranger, STRANGER_IP, EDGE_STRANGER_IP, "0612345678"), "a national number too");
    // The trunk is not under the policy.
    assert!(sipp_invite(&lab, &lab.trunk, TRUNK_IP, EDGE_TRUNK_IP, "+25261234567"));

    let controller = lab.controller.as_mut().unwrap();
    controller.wait_for(
        &format!("event=destination_blocked source={STRANGER_IP} number=+25261234567 reason=destination_blocked"),
        Duration::from_secs(5),
    );
    controller.wait_for(
        &format!("event=destination_blocked source={STRANGER_IP} number=+22461234567"),
        Duration::from_secs(5),
    );
    let metrics = lab.http_get("http://127.0.0.1:9560/metrics");
    assert!(metrics.contains("sipxdp_destination_blocked_total{prefix=\"252\"} "), "{metrics}");
    // SIPp retransmits an unanswered INVITE: every copy is dropped.
    assert!(lab.counter("drop", "destination_blocked").0 >= 2);
    assert!(ban_list(&lab).is_empty(), "blocking a call is not a ban");
}

fn ban_list(lab: &Lab) -> Vec<serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(&lab.cli_ok(&["ban", "list", "--json"]))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn svmap_is_banned_on_its_first_request_and_finds_nothing() {
    let mut lab = start();
    let out = std::process::Command::new("timeout")
        .args(["20", "ip", "netns", "exec", &lab.stranger, "svmap", "-b", STRANGER_IP, "198.18.2.0/30"])
        .current_dir(&lab.dir)
        .env("HOME", &lab.dir)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!said.contains(EDGE_STRANGER_IP), "the scan must find nothing:\n{said}");
    let bans = ban_list(&lab);
    let ban =
        bans.iter().find(|b| b["source"] == STRANGER_IP).unwrap_or_else(|| panic!("not banned: {bans:?}\n{said}"));
    assert_eq!(ban["reason"], "scanner");
    assert_eq!(lab.counter("drop", "scanner").0, 1, "dropped as a scanner once, then as banned");
    lab.controller
        .as_mut()
        .unwrap()
        .wait_for(&format!("event=ban source={STRANGER_IP} reason=scanner"), Duration::from_secs(5));
    let metrics = lab.http_get("http://127.0.0.1:9560/metrics");
    assert!(metrics.contains("sipxdp_scanner_hits_total{fingerprint=\"friendly-scanner\"} 1"), "{metrics}");
}

#[test]
fn a_burst_of_international_calls_over_the_baseline_blocks_them() {
    let mut lab = Lab::new();
    lab.start_kamailio();
    lab.start_controller(&lab.customers_config(
        "[destinations]\nblock = [\"252\"]\napplies_to = [\"customers\"]\n[destinations.cost]\n\"49\" = 0.30\n\
         [anomaly]\nwindow_secs = 300\ncalls_over = 5\ncheck_secs = 1\nblock_secs = 60\n",
    ));
    // Eight calls to Germany: the baseline is 0, the margin 5.
    for _ in 0..8 {
        assert!(sipp_invite(&lab, &lab.stranger, STRANGER_IP, EDGE_STRANGER_IP, "+4930123456"));
    }
    // The check runs every second, so the block may land after 6, 7 or 8.
    let prefix = format!("event=international_block source={STRANGER_IP} reason=spend_anomaly duration=60s calls=");
    lab.controller.as_mut().unwrap().wait_for(&prefix, Duration::from_secs(10));
    let line = block_line(&lab, &prefix);
    let calls: u64 = field(&line, "calls");
    assert!((6..=8).contains(&calls), "{line}");
    assert!(line.contains(" baseline=0.0 ") && line.contains(&format!(" cost={:.2}", calls as f64 * 0.30)), "{line}");
    assert!(
        !sipp_invite(&lab, &lab.stranger, STRANGER_IP, EDGE_STRANGER_IP, "+4930123456"),
        "international calls are blocked"
    );
    assert!(sipp_invite(&lab, &lab.stranger, STRANGER_IP, EDGE_STRANGER_IP, "0612345678"), "national calls go on");
    assert!(lab.cli_ok(&["intl", "list"]).contains(STRANGER_IP));
    let metrics = lab.http_get("http://127.0.0.1:9560/metrics");
    assert!(
        metrics.contains("sipxdp_intl_blocks_active 1") && metrics.contains("sipxdp_intl_blocks_total 1"),
        "{metrics}"
    );
    assert!(lab.counter("drop", "international_blocked").0 >= 1);

    assert_eq!(
        lab.cli_ok(&["intl", "unblock", STRANGER_IP]),
        format!("international calls unblocked for {STRANGER_IP}\n")
    );
    assert!(sipp_invite(&lab, &lab.stranger, STRANGER_IP, EDGE_STRANGER_IP, "+4930123456"), "lifted at once");
    lab.controller
        .as_mut()
        .unwrap()
        .wait_for(&format!("event=international_unblock source={STRANGER_IP} reason=manual"), Duration::from_secs(5));
    assert_eq!(lab.cli(&["intl", "unblock", STRANGER_IP]).status.code(), Some(2), "nothing left to lift");
}

#[test]
fn a_class_spending_spike_blocks_its_biggest_spender() {
    let mut lab = Lab::new();
    let second = "198.18.2.3";
    sh(std::process::Command::new("ip").args([
        "-n",
        &lab.stranger,
        "addr",
        "add",
        &format!("{second}/24"),
        "dev",
        &format!("{}ps", lab.tag),
    ]));
    lab.start_kamailio();
    lab.start_controller(&lab.customers_config(
        "[destinations]\nblock = [\"252\"]\napplies_to = [\"customers\"]\n\
         [anomaly]\nwindow_secs = 300\ncalls_over = 5\ncheck_secs = 1\nblock_secs = 60\n",
    ));
    // Four calls from one customer and three from another: neither is over
    // its own margin of 5, but the class (7) is.
    for (from, calls) in [(STRANGER_IP, 4), (second, 3)] {
        for _ in 0..calls {
            assert!(sipp_invite(&lab, &lab.stranger, from, EDGE_STRANGER_IP, "+4930123456"));
        }
    }
    let prefix =
        format!("event=international_block source={STRANGER_IP} reason=class_spend_anomaly duration=60s calls=");
    lab.controller.as_mut().unwrap().wait_for(&prefix, Duration::from_secs(10));
    let calls: u64 = field(&block_line(&lab, &prefix), "calls");
    assert!((6..=7).contains(&calls), "the class's calls in the window: {calls}");
    assert!(
        !lab.controller.as_ref().unwrap().text().contains(&format!("source={second} reason=")),
        "only the biggest spender"
    );
    assert!(!sipp_invite(&lab, &lab.stranger, STRANGER_IP, EDGE_STRANGER_IP, "+4930123456"));
    assert!(sipp_invite(&lab, &lab.stranger, second, EDGE_STRANGER_IP, "+4930123456"));
}

/// The controller's log line starting with `prefix` (after the log header).
fn block_line(lab: &Lab, prefix: &str) -> String {
    let text = lab.controller.as_ref().unwrap().text();
    let line = text.lines().find(|l| l.contains(prefix)).expect("logged");
    line[line.find(prefix).unwrap()..].to_string()
}

/// The value of `name=` in an event line.
fn field<T: std::str::FromStr>(line: &str, name: &str) -> T {
    let value = line
        .split(' ')
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {line}"));
    value.parse().unwrap_or_else(|_| panic!("bad {name} in {line}"))
}
