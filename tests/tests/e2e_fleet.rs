//! A fleet of edges acts as one: three edges in namespaces, each with its
//! own Kamailio and sip-xdp, sharing bans through a real redis-server.
//! The strangers of all edges have the same addresses: one attacker seen
//! by every edge.

use std::time::{Duration, Instant};

use sip_xdp_tests::netns::*;

const AUTH_MAX: u32 = 4;
/// How long a ban may take to reach the other edges (the issue's bound).
const PROPAGATION: Duration = Duration::from_secs(1);

fn config(fleet: &FleetLab, i: usize, trusted: &[&str]) -> String {
    let lab = &fleet.edges[i];
    let trusted: Vec<String> = trusted.iter().map(|c| format!("\"{c}\"")).collect();
    lab.customers_config(&format!(
        "[ban]\nduration_secs = 600\nmax_duration_secs = 3600\nescalate_after = 0\n\
         [auth_failures]\nmax = {AUTH_MAX}\nwindow_secs = 60\n[fingerprints]\nuser_agents = []\n\
         [allow]\ncidrs = [{}]\n{}",
        trusted.join(", "),
        fleet.fleet_section(i)
    ))
}

/// Three edges, Redis up, every controller connected.
fn start(trusted_on_1: &[&str]) -> FleetLab {
    let mut fleet = FleetLab::new(3);
    fleet.start_redis();
    for i in 0..3 {
        let cfg = config(&fleet, i, if i == 1 { trusted_on_1 } else { &[] });
        let lab = &mut fleet.edges[i];
        lab.start_kamailio();
        lab.start_controller(&cfg);
        lab.controller.as_mut().unwrap().wait_for("fleet: connected to Redis", Duration::from_secs(10));
    }
    fleet
}

fn ban_list(lab: &Lab) -> Vec<serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(&lab.cli_ok(&["ban", "list", "--json"]))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn ban_on(lab: &Lab, source: &str) -> Option<serde_json::Value> {
    ban_list(lab).into_iter().find(|b| b["source"] == source)
}

/// Polls until `lab` has (or has not) a ban of `source`; how long it took.
fn wait_ban(lab: &Lab, source: &str, present: bool, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if ban_on(lab, source).is_some() == present {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{}: ban of {source} {} after {within:?}:\n{}",
            lab.edge,
            if present { "still missing" } else { "still there" },
            lab.controller.as_ref().unwrap().text()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Wrong passwords from `from` on edge `lab` until banned (the kernel's
/// own auth-failure ban).
fn crack(lab: &Lab, from: &str) {
    let answered = lab.guess_until_unanswered(from, EDGE_STRANGER_IP, 50);
    assert_eq!(answered, AUTH_MAX as u64, "banned at the {AUTH_MAX}th wrong password");
}

/// The store's ban keys, as a plain client sees them.
fn keys(fleet: &FleetLab) -> String {
    fleet.redis_cli_ok(&["--scan", "--pattern", "sip-xdp:ban:*"])
}

#[test]
fn a_ban_on_one_edge_is_enforced_on_all_and_lifted_from_any() {
    let fleet = start(&[]);
    let [a, b, c] = [&fleet.edges[0], &fleet.edges[1], &fleet.edges[2]];
    // The legitimate twin first: the customer is answered everywhere.
    for lab in [a, b, c] {
        assert!(lab.answered(STRANGER_IP, EDGE_STRANGER_IP), "{}: a customer is answered", lab.edge);
    }

    // svcrack against A: banned there by the kernel.
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &a.stranger, "svcrack", "-u", "alice", "-r", "1000-1200", "-b", STRANGER_IP])
        .arg(EDGE_STRANGER_IP)
        .current_dir(&a.dir)
        .env("HOME", &a.dir)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let ban = ban_on(a, STRANGER_IP).unwrap_or_else(|| panic!("cracker not banned on A; svcrack said: {said}"));
    assert_eq!(ban["reason"], "auth_failures");
    assert!(ban.get("origin").is_none(), "A's own ban has no origin: {ban}");
    let a_left = || ban_on(a, STRANGER_IP).unwrap()["remaining_secs"].as_u64().unwrap();
    // On B and C within a second, with reason, origin and time left.
    for lab in [b, c] {
        let took = wait_ban(lab, STRANGER_IP, true, PROPAGATION);
        eprintln!("{}: ban from edge-0 in force after {took:?}", lab.edge);
        let ban = ban_on(lab, STRANGER_IP).unwrap();
        assert_eq!((ban["reason"].as_str(), ban["origin"].as_str()), (Some("auth_failures"), Some("edge-0")));
        let (left, on_a) = (ban["remaining_secs"].as_u64().unwrap(), a_left());
        assert!(left.abs_diff(on_a) <= 2, "the time left travels: {left}s here, {on_a}s on A");
        assert!(!lab.answered(STRANGER_IP, EDGE_STRANGER_IP), "{}: the attacker gets no answer", lab.edge);
        assert!(lab.cli_ok(&["ban", "list"]).contains("origin=edge-0"), "ban list names the origin");
        let log = lab.controller.as_ref().unwrap().text();
        assert!(
            log.contains(&format!("event=ban source={STRANGER_IP} reason=auth_failures"))
                && log.contains("origin=edge-0"),
            "logged with its origin"
        );
    }
    assert!(keys(&fleet).contains(&format!("sip-xdp:ban:{STRANGER_IP}/32")), "one key per ban");
    let ttl: i64 = fleet.redis_cli_ok(&["PTTL", &format!("sip-xdp:ban:{STRANGER_IP}/32")]).trim().parse().unwrap();
    assert!((ttl / 1000).abs_diff(a_left() as i64) <= 2, "the key's TTL is the time left: {ttl} ms");

    // `ban del` on C lifts it everywhere, and the key goes.
    c.cli_ok(&["ban", "del", STRANGER_IP]);
    for lab in [a, b] {
        let took = wait_ban(lab, STRANGER_IP, false, PROPAGATION + Duration::from_millis(200));
        eprintln!("{}: unban from edge-2 after {took:?}", lab.edge);
        assert!(lab.answered(STRANGER_IP, EDGE_STRANGER_IP), "{}: answered again", lab.edge);
    }
    assert!(!keys(&fleet).contains("sip-xdp:ban:"), "the key is gone: {}", keys(&fleet));
    // No echo: each edge published exactly what it did itself.
    std::thread::sleep(Duration::from_millis(300));
    let published = |lab: &Lab, op: &str| lab.metric(&format!("sipxdp_fleet_bans_published_total{{op=\"{op}\"}}"));
    assert_eq!((published(a, "ban"), published(b, "ban"), published(c, "ban")), (1.0, 0.0, 0.0));
    assert_eq!((published(a, "unban"), published(b, "unban"), published(c, "unban")), (0.0, 0.0, 1.0));
    assert_eq!(b.metric("sipxdp_fleet_connected"), 1.0);
    assert!(b.metric("sipxdp_fleet_propagation_delay_seconds_count") >= 1.0);
}

#[test]
fn a_ban_written_with_redis_cli_is_enforced_but_never_over_a_trusted_address() {
    const SCRIPTED: &str = "198.18.2.9";
    const TWIN: &str = "198.18.2.10";
    const TRUSTED_ON_B: &str = "198.18.2.7";
    let fleet = start(&[TRUSTED_ON_B]);
    for lab in &fleet.edges {
        for addr in [SCRIPTED, TWIN, TRUSTED_ON_B] {
            lab.add_stranger_addr(addr);
        }
    }
    // The README's layout: the key with its TTL, then the announcement.
    for addr in [SCRIPTED, TRUSTED_ON_B] {
        let key = format!("sip-xdp:ban:{addr}/32");
        fleet.redis_cli_ok(&["SET", &key, r#"{"origin":"ops","reason":"manual"}"#, "EX", "600"]);
        let msg = format!(r#"{{"op":"ban","cidr":"{addr}/32","origin":"ops","duration_ms":600000}}"#);
        fleet.redis_cli_ok(&["PUBLISH", "sip-xdp:bans", &msg]);
    }
    for lab in &fleet.edges {
        wait_ban(lab, SCRIPTED, true, PROPAGATION);
        assert_eq!(ban_on(lab, SCRIPTED).unwrap()["origin"], "ops");
        assert!(!lab.answered(SCRIPTED, EDGE_STRANGER_IP), "{}: the scripted ban holds", lab.edge);
        assert!(lab.answered(TWIN, EDGE_STRANGER_IP), "{}: its neighbour is answered", lab.edge);
    }
    // B trusts 198.18.2.7: refused there, reported and counted; A and C apply it.
    let b = &fleet.edges[1];
    for lab in [&fleet.edges[0], &fleet.edges[2]] {
        wait_ban(lab, TRUSTED_ON_B, true, PROPAGATION);
    }
    assert!(ban_on(b, TRUSTED_ON_B).is_none(), "a trusted address is never banned by the fleet");
    assert!(b.answered(TRUSTED_ON_B, EDGE_STRANGER_IP));
    assert!(b
        .controller
        .as_ref()
        .unwrap()
        .text()
        .contains(&format!("event=fleet_ban_refused source={TRUSTED_ON_B}/32 reason=trusted origin=ops")));
    assert_eq!(b.metric("sipxdp_fleet_bans_refused_total{reason=\"trusted\"}"), 1.0);

    // Wider than max_prefix (/16 by default): refused everywhere.
    fleet.redis_cli_ok(&[
        "PUBLISH",
        "sip-xdp:bans",
        r#"{"op":"ban","cidr":"198.0.0.0/8","origin":"ops","duration_ms":600000}"#,
    ]);
    // A key written without an announcement is found by the reconciliation.
    fleet.redis_cli_ok(&["SET", &format!("sip-xdp:ban:{TWIN}/32"), r#"{"origin":"ops"}"#, "EX", "600"]);
    for lab in &fleet.edges {
        wait_ban(lab, TWIN, true, Duration::from_secs(4));
        assert!(ban_on(lab, "198.0.0.0/8").is_none());
        assert_eq!(lab.metric("sipxdp_fleet_bans_refused_total{reason=\"too_wide\"}"), 1.0);
    }
}

#[test]
fn malformed_messages_change_nothing_and_are_counted() {
    let fleet = start(&[]);
    let before: Vec<usize> = fleet.edges.iter().map(|l| ban_list(l).len()).collect();
    let bad = [
        "not json",
        r#"{"op":"ban","cidr":"198.18.2.2/32","origin":"x","duration_ms":600000,"extra":1}"#,
        r#"{"op":"ban","cidr":"198.18.2.300/32","origin":"x","duration_ms":600000}"#,
        r#"{"op":"ban","cidr":"198.18.2.2/32","origin":"x","duration_ms":0}"#,
        r#"{"op":"ban","cidr":"198.18.2.2/32","origin":"x","duration_ms":99999999999999}"#,
        r#"{"op":"ban","cidr":"198.18.2.2/32","origin":"x","duration_ms":600000,"reason":"because"}"#,
        r#"{"op":"drop-all","cidr":"198.18.2.2/32","origin":"x"}"#,
    ];
    for _ in 0..50 {
        for msg in bad {
            fleet.redis_cli_ok(&["PUBLISH", "sip-xdp:bans", msg]);
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    for (i, lab) in fleet.edges.iter().enumerate() {
        assert_eq!(ban_list(lab).len(), before[i], "{}: nothing applied", lab.edge);
        assert!(lab.answered(STRANGER_IP, EDGE_STRANGER_IP), "{}: still serving", lab.edge);
        for kind in ["not_json", "unknown_field", "bad_cidr", "bad_duration", "bad_reason", "bad_op"] {
            let n = lab.metric(&format!("sipxdp_fleet_messages_malformed_total{{kind=\"{kind}\"}}"));
            let expected = if kind == "bad_duration" { 100.0 } else { 50.0 };
            assert_eq!(n, expected, "{}: {kind} counted", lab.edge);
        }
        let log = lab.controller.as_ref().unwrap().text();
        assert_eq!(log.matches("that is not_json").count(), 1, "logged once per kind");
    }
    // And a good message after the flood still works.
    fleet.redis_cli_ok(&["SET", "sip-xdp:ban:198.18.2.2/32", r#"{"origin":"ops"}"#, "EX", "60"]);
    fleet.redis_cli_ok(&[
        "PUBLISH",
        "sip-xdp:bans",
        r#"{"op":"ban","cidr":"198.18.2.2/32","origin":"ops","duration_ms":60000}"#,
    ]);
    for lab in &fleet.edges {
        wait_ban(lab, STRANGER_IP, true, PROPAGATION);
    }
}

#[test]
fn with_redis_down_an_edge_still_bans_and_the_fleet_catches_up() {
    const LATE: &str = "198.18.2.11";
    let mut fleet = start(&[]);
    for lab in &fleet.edges {
        lab.add_stranger_addr(LATE);
    }
    fleet.kill_redis();
    for lab in &fleet.edges {
        let deadline = Instant::now() + Duration::from_secs(5);
        while lab.metric("sipxdp_fleet_connected") != 0.0 {
            assert!(Instant::now() < deadline, "{}: still connected", lab.edge);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // Local detection and enforcement go on.
    crack(&fleet.edges[0], LATE);
    assert!(ban_on(&fleet.edges[0], LATE).is_some());
    std::thread::sleep(Duration::from_millis(500));
    assert!(ban_on(&fleet.edges[1], LATE).is_none(), "no store, no sharing");
    assert!(fleet.edges[1].answered(LATE, EDGE_STRANGER_IP));
    // Back: A publishes what it banned meanwhile; B and C load it.
    fleet.start_redis();
    for lab in &fleet.edges[1..] {
        wait_ban(lab, LATE, true, Duration::from_secs(8));
        assert!(!lab.answered(LATE, EDGE_STRANGER_IP), "{}: enforced", lab.edge);
        assert_eq!(lab.metric("sipxdp_fleet_connected"), 1.0);
    }
}

#[test]
fn an_edge_logs_in_with_its_password_file_and_one_without_stays_out() {
    const PASSWORD: &str = "fleet-secret-1";
    const SCRIPTED: &str = "198.18.2.9";
    let mut fleet = FleetLab::new(2);
    fleet.start_redis_with_password(PASSWORD);
    // Edge 0 reads the password from a file (first line); edge 1 has none.
    let pw_file = fleet.edges[0].dir.join("redis.pw");
    std::fs::write(&pw_file, format!("{PASSWORD}\n")).unwrap();
    let with_pw =
        config(&fleet, 0, &[]).replace("[fleet]\n", &format!("[fleet]\npassword_file = \"{}\"\n", pw_file.display()));
    let without = config(&fleet, 1, &[]);
    fleet.edges[0].start_controller(&with_pw);
    fleet.edges[1].start_controller(&without);
    fleet.edges[0].controller.as_mut().unwrap().wait_for("fleet: connected to Redis", Duration::from_secs(10));
    fleet.edges[1].controller.as_mut().unwrap().wait_for("fleet: Redis", Duration::from_secs(10));
    let (a, b) = (&fleet.edges[0], &fleet.edges[1]);
    assert_eq!(a.metric("sipxdp_fleet_connected"), 1.0);
    assert_eq!(b.metric("sipxdp_fleet_connected"), 0.0, "no password, no fleet");
    let log = b.controller.as_ref().unwrap().text();
    assert!(!log.contains("fleet: connected to Redis"), "edge 1 got in without a password:\n{log}");
    assert!(!log.contains(PASSWORD) && !a.controller.as_ref().unwrap().text().contains(PASSWORD), "never logged");

    // The logged-in edge publishes and receives.
    a.cli_ok(&["ban", "add", "198.18.2.50", "--duration", "600"]);
    let deadline = Instant::now() + PROPAGATION;
    while !keys(&fleet).contains("sip-xdp:ban:198.18.2.50/32") {
        assert!(Instant::now() < deadline, "edge 0's ban never reached Redis");
        std::thread::sleep(Duration::from_millis(10));
    }
    fleet.redis_cli_ok(&["SET", &format!("sip-xdp:ban:{SCRIPTED}/32"), r#"{"origin":"ops"}"#, "EX", "600"]);
    let msg = format!(r#"{{"op":"ban","cidr":"{SCRIPTED}/32","origin":"ops","duration_ms":600000}}"#);
    fleet.redis_cli_ok(&["PUBLISH", "sip-xdp:bans", &msg]);
    wait_ban(a, SCRIPTED, true, PROPAGATION);
    // The other edge, locked out, keeps its own state and no one else's.
    std::thread::sleep(Duration::from_millis(300));
    assert!(ban_on(b, SCRIPTED).is_none() && ban_on(b, "198.18.2.50").is_none(), "edge 1 is not in the fleet");
}
