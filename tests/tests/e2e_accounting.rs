//! End to end for authentication accounting: Kamailio as a PBX (digest
//! authentication on REGISTER and INVITE, calls it answers itself, premium
//! numbers refused for policy) in the edge namespace; real phones (SIPp)
//! and real attack tools (sipvicious) and probes of our own in the
//! stranger namespace, over UDP and TCP, IPv4 and IPv6. Each detection is
//! held against the nearest legitimate flow. Needs root.

use std::time::{Duration, Instant};

use sip_xdp_tests::netns::*;

/// Phones per SIPp instance, and the calls each instance places.
const PHONES: usize = 20;
const CALLS: u64 = 120;
/// Calls per second per instance: 120 calls take a minute.
const CALL_RATE: &str = "2";

/// A twenty-phone office behind one address: each cycle is two REGISTERs,
/// two INVITEs, two ACKs and a BYE. At two cycles a second that is 4
/// REGISTERs, 4 INVITEs and 14 requests a second; the profile leaves
/// headroom for bursts, and no more.
const OFFICE: &str = "[profile.office]\nregister_per_sec = 10\nregister_burst = 20\nrequests_per_sec = 40\n\
                      requests_burst = 80\ninvite_per_sec = 10\ninvite_burst = 20\n";

/// One config for the tests of this file: the trunk trusted (IPv4 and
/// IPv6, plus `trusted`), `office` for `office` networks, `extra` TOML
/// appended. Fingerprints are off: svcrack and svwar announce themselves,
/// and the paths under test are the accounting ones.
fn config(lab: &Lab, trusted: &[&str], office: &[&str], extra: &str) -> String {
    let list = |items: &[&str]| items.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ");
    let mut trusted_rules = vec![format!("{TRUNK_IP}/32"), format!("{TRUNK_IP6}/128")];
    trusted_rules.extend(trusted.iter().map(|s| s.to_string()));
    let trusted_rules: Vec<&str> = trusted_rules.iter().map(String::as_str).collect();
    let office_rule = if office.is_empty() {
        String::new()
    } else {
        format!("[[rule]]\ncidrs = [{}]\nclass = \"office\"\n", list(office))
    };
    format!(
        "interfaces = [\"{}\", \"{}\"]\n[filter]\ndefault_class = \"deny\"\n[[rule]]\ncidrs = [{}]\nclass = \"trusted\"\n\
         {office_rule}{OFFICE}[fingerprints]\nuser_agents = []\n{extra}",
        lab.edge_trunk_if,
        lab.edge_stranger_if,
        list(&trusted_rules)
    )
}

/// Every drop counter of `stats --json` that is not zero.
fn drops(lab: &Lab) -> Vec<String> {
    lab.stats()["counters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] != "pass" && r["packets"].as_u64().unwrap() > 0)
        .map(|r| format!("{}/{}={}", r["action"], r["reason"], r["packets"]))
        .collect()
}

#[test]
fn twenty_phones_registering_and_calling_for_a_minute_over_udp_tcp_ipv4_ipv6_are_never_limited() {
    let started = Instant::now();
    let mut lab = Lab::new();
    // One address per SIPp: IPv4 UDP and TCP, IPv6 UDP and TCP (IPv6 in two
    // /64s, since sources are accounted per /64).
    let phones = [
        ("udp4", "198.18.2.10", EDGE_STRANGER_IP, "u1"),
        ("tcp4", "198.18.2.11", EDGE_STRANGER_IP, "t1"),
        ("udp6", "2001:2:0:2::10", EDGE_STRANGER_IP6, "u1"),
        ("tcp6", "2001:2:0:3::10", EDGE_STRANGER_IP6, "t1"),
    ];
    for (_, addr, _, _) in phones {
        lab.add_stranger_addr(addr);
    }
    lab.start_kamailio();
    lab.start_controller(&config(&lab, &[], &["198.18.2.0/24", "2001:2:0:2::/64", "2001:2:0:3::/64"], ""));

    let users = fixture("phones.csv");
    assert_eq!(
        std::fs::read_to_string(&users).unwrap().lines().skip(1).count(),
        PHONES,
        "SEQUENTIAL, then a phone a line"
    );
    let users = users.to_str().unwrap();
    let calls = CALLS.to_string();
    let running: Vec<_> = phones
        .iter()
        .map(|(name, addr, server, transport)| {
            let sipp = lab.spawn_sipp(
                name,
                &lab.stranger,
                addr,
                server,
                "phone.xml",
                &[
                    "-t",
                    transport,
                    "-inf",
                    users,
                    "-r",
                    CALL_RATE,
                    "-m",
                    &calls,
                    "-recv_timeout",
                    "10000",
                    "-timeout",
                    "150s",
                    "-timeout_error",
                ],
            );
            (name, sipp)
        })
        .collect();
    let mut failures = Vec::new();
    for (name, sipp) in running {
        let run = sipp.wait(Duration::from_secs(180));
        let (made, ok, failed) =
            (run.count("OutgoingCall(C)"), run.count("SuccessfulCall(C)"), run.count("FailedCall(C)"));
        println!("{name}: {made} calls made, {ok} completed, {failed} failed (exit {:?})", run.code);
        if run.code != Some(0) || made != CALLS || ok != CALLS || failed != 0 {
            failures
                .push(format!("{name}: exit {:?}, {made} made, {ok} ok, {failed} failed\n{}", run.code, run.report));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(lab.bans().is_empty(), "{:?}", lab.bans());
    for source in ["198.18.2.10", "198.18.2.11", "2001:2:0:2::/64", "2001:2:0:3::/64"] {
        let row = lab.source(source).unwrap_or_else(|| panic!("no row for {source}"));
        assert_eq!(row["dropped"], 0, "{row}");
        println!("{source}: {row}");
    }
    assert!(drops(&lab).is_empty(), "{:?}", drops(&lab));
    let outcome = |o: &str| lab.metric(&format!("sipxdp_auth_responses_total{{outcome=\"{o}\"}}"));
    let cycles = (CALLS * phones.len() as u64) as f64;
    println!(
        "challenges {} failures {} successes {} for {cycles} cycles; {:?}",
        outcome("challenge"),
        outcome("failure"),
        outcome("success"),
        started.elapsed()
    );
    assert_eq!(outcome("failure"), 0.0);
    // Each cycle: a 401 and a 407 to requests without credentials, a 200 to
    // each answer with credentials.
    assert!(outcome("challenge") >= 2.0 * cycles);
    assert!(outcome("success") >= 2.0 * cycles);
}

#[test]
fn a_customer_whose_calls_are_refused_for_policy_again_and_again_is_not_banned() {
    let mut lab = Lab::new();
    let customer = "198.18.2.20";
    lab.add_stranger_addr(customer);
    lab.start_kamailio();
    // Thresholds as low as they go in practice: were a 403 to a request
    // without credentials counted as a failure or a challenge, the third
    // would ban.
    lab.start_controller(&config(
        &lab,
        &[],
        &["198.18.2.0/24"],
        "[auth_failures]\nmax = 3\nunanswered_challenges = 3\nwindow_secs = 60\n",
    ));
    // Forty calls to a premium number, five a second: Kamailio refuses each
    // with a 403 before asking for credentials.
    let run = lab
        .spawn_sipp(
            "refused",
            &lab.stranger,
            customer,
            EDGE_STRANGER_IP,
            "refused_call.xml",
            &["-s", "9990042", "-r", "5", "-m", "40", "-recv_timeout", "5000", "-timeout", "60s", "-timeout_error"],
        )
        .wait(Duration::from_secs(90));
    assert_eq!(
        (run.code, run.count("SuccessfulCall(C)"), run.count("FailedCall(C)")),
        (Some(0), 40, 0),
        "every call answered with its 403:\n{}",
        run.report
    );
    assert!(lab.metric("sipxdp_sip_responses_total{code=\"403\"}") >= 40.0);
    for outcome in ["challenge", "failure", "success"] {
        assert_eq!(lab.metric(&format!("sipxdp_auth_responses_total{{outcome=\"{outcome}\"}}")), 0.0, "{outcome}");
    }
    assert!(lab.bans().is_empty(), "{:?}", lab.bans());
    assert_eq!(lab.source(customer).expect("tracked")["dropped"], 0);
    assert!(lab.sipp_register(&lab.stranger, customer, EDGE_STRANGER_IP), "and the customer's phone registers");
}

// ---- Attacks ---------------------------------------------------------------

/// Rejected credentials that ban (the default).
const MAX: u64 = 5;
/// Challenges never answered with credentials that ban (the default).
const UNANSWERED: u64 = 20;

/// A lab for one attacker: the trunk trusted, the stranger's network
/// `office`, default thresholds.
fn attack_lab() -> Lab {
    let mut lab = Lab::new();
    lab.start_kamailio();
    lab.start_controller(&config(&lab, &[], &["198.18.2.0/24"], ""));
    lab
}

fn outcome(lab: &Lab, outcome: &str) -> u64 {
    lab.metric(&format!("sipxdp_auth_responses_total{{outcome=\"{outcome}\"}}")) as u64
}

/// The ban of `source`, or a panic naming the bans there are.
fn banned(lab: &Lab, source: &str) -> serde_json::Value {
    lab.ban_of(source).unwrap_or_else(|| panic!("{source} is not banned: {:?}", lab.bans()))
}

/// The trunk still registers, over IPv4 and IPv6.
fn trunk_registers(lab: &Lab) {
    assert!(lab.sipp_register(&lab.trunk, TRUNK_IP, EDGE_TRUNK_IP), "the trunk registers over IPv4");
    assert!(lab.sipp_register(&lab.trunk, TRUNK_IP6, EDGE_TRUNK_IP6), "the trunk registers over IPv6");
}

/// A dictionary of `wrong` wrong passwords, then the right one.
fn dictionary(lab: &Lab, wrong: u32) -> String {
    let mut words: Vec<String> = (0..wrong).map(|i| format!("guess{i}")).collect();
    words.push("secret".into());
    lab.write_config("passwords.txt", &(words.join("\n") + "\n")).to_str().unwrap().to_string()
}

#[test]
fn svcrack_over_udp_is_banned_at_the_fifth_rejected_password() {
    let mut lab = attack_lab();
    // The right password is the 31st guess: never reached.
    let words = dictionary(&lab, 30);
    let out = std::process::Command::new("timeout")
        .args(["30", "ip", "netns", "exec", &lab.stranger, "svcrack", "-u", "1001", "-d", &words])
        .args(["--maximumtime=3", "-b", STRANGER_IP, EDGE_STRANGER_IP])
        .current_dir(&lab.dir)
        .env("HOME", &lab.dir)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!said.contains("secret"), "the cracker must not find the password: {said}");
    let ban = banned(&lab, STRANGER_IP);
    assert_eq!(ban["reason"], "auth_failures", "{ban}");
    // Every guess Kamailio answered is a rejected credential the egress
    // program counted. svcrack guesses with the nonce of each 401 it gets:
    // one chain of guesses per challenge to a REGISTER without credentials
    // (it sends one whenever it has no nonce at hand), so besides the
    // fifth, at most one guess of each other chain is in flight when the
    // fifth rejection bans.
    let (guesses, chains) = (outcome(&lab, "failure"), outcome(&lab, "challenge"));
    println!("svcrack: {guesses} guesses answered; {chains} challenges");
    assert!(guesses >= MAX && guesses < MAX + chains.max(1), "{guesses} guesses answered, {chains} chains");
    assert!(!lab.answered(STRANGER_IP, EDGE_STRANGER_IP), "a banned source gets no answer at all");
    trunk_registers(&lab);
    lab.controller
        .as_mut()
        .unwrap()
        .wait_for(&format!("event=ban source={STRANGER_IP} reason=auth_failures"), Duration::from_secs(5));
}

#[test]
fn password_guessing_over_tcp_one_request_per_segment_is_banned_at_the_fifth() {
    let lab = attack_lab();
    // First a segment whose messages cannot be told apart (two
    // Content-Lengths: where does the second request start?): refused
    // whole, not passed on unread. TCP sends it again and again; each copy
    // is refused.
    let mut smuggler = lab.tcp_in(&lab.stranger, STRANGER_IP, EDGE_STRANGER_IP);
    let port = smuggler.stream.local_addr().unwrap().port();
    let first = String::from_utf8(register_with_credentials("TCP", STRANGER_IP, port, EDGE_STRANGER_IP, "1001", 100))
        .unwrap()
        .replace("Content-Length: 0\r\n", "Content-Length: 0\r\nContent-Length: 300\r\n");
    let second = register_with_credentials("TCP", STRANGER_IP, port, EDGE_STRANGER_IP, "1001", 101);
    smuggler.send(&[first.as_bytes(), &second].concat());
    assert!(smuggler.recv(Duration::from_secs(2)).is_none(), "an unreadable segment reaches no one");
    assert!(lab.counter("drop", "unreadable").0 >= 1);
    assert!(lab.bans().is_empty(), "refused, not banned: {:?}", lab.bans());

    let mut tcp = lab.tcp_in(&lab.stranger, STRANGER_IP, EDGE_STRANGER_IP);
    let port = tcp.stream.local_addr().unwrap().port();
    let mut answered_guesses = 0;
    for seq in 0..20 {
        tcp.send(&register_with_credentials("TCP", STRANGER_IP, port, EDGE_STRANGER_IP, "1001", seq));
        match tcp.recv(Duration::from_secs(2)) {
            Some(answer) => assert!(answer.starts_with("SIP/2.0 401"), "{answer}"),
            None => break,
        }
        answered_guesses += 1;
    }
    println!("TCP, one guess per segment: {answered_guesses} answered");
    assert_eq!(answered_guesses, MAX, "answered until the threshold, not one more");
    assert_eq!(outcome(&lab, "failure"), MAX);
    assert_eq!(banned(&lab, STRANGER_IP)["reason"], "auth_failures");
    // Neither a new connection nor a datagram gets through.
    assert!(lab.try_tcp_in(&lab.stranger, STRANGER_IP, EDGE_STRANGER_IP, Duration::from_secs(2)).is_err());
    assert!(!lab.answered(STRANGER_IP, EDGE_STRANGER_IP));
    trunk_registers(&lab);
    assert!(
        lab.sipp_register_over(&lab.trunk, TRUNK_IP, EDGE_TRUNK_IP, "secret", "t1"),
        "the trunk registers over TCP"
    );
}

#[test]
fn twenty_guesses_pipelined_in_one_tcp_segment_are_each_counted_and_ban() {
    let mut lab = Lab::new();
    // Room for the twenty in one segment: the largest MTU native XDP takes
    // on a veth, on both ends of the stranger's link.
    lab.set_stranger_mtu(MAX_XDP_VETH_MTU);
    lab.start_kamailio();
    lab.start_controller(&config(&lab, &[], &["198.18.2.0/24"], ""));
    let batch: Vec<u8> = (0..20).flat_map(compact_register_with_credentials).collect();
    let mut tcp = lab.tcp_in(&lab.stranger, STRANGER_IP, EDGE_STRANGER_IP);
    // One write, no larger than a segment, on an idle connection without
    // Nagle: one segment.
    assert!(batch.len() <= tcp.mss(), "{} bytes, MSS {}", batch.len(), tcp.mss());
    tcp.send(&batch);
    let mut answers = 0;
    while let Some(answer) = tcp.recv(Duration::from_secs(2)) {
        assert!(answer.starts_with("SIP/2.0 401"), "{answer}");
        answers += 1;
    }
    // The segment was admitted whole, before any answer: the fifth
    // rejection bans, and the fifteen after it, in flight in the same
    // segment, are answered too.
    println!("TCP, twenty guesses in one segment: {answers} answered");
    assert_eq!(answers, MAX + 15);
    assert_eq!(outcome(&lab, "failure"), answers, "every answer counted, from however many segments");
    let source = lab.source(STRANGER_IP).expect("tracked");
    assert_eq!(source["registers"], 20, "each message read and charged: {source}");
    let ban = banned(&lab, STRANGER_IP);
    assert_eq!((ban["reason"].as_str(), ban["offenses"].as_u64()), (Some("auth_failures"), Some(1)), "{ban}");
    // The next batch is dropped, as is any new connection.
    tcp.send(&batch);
    assert!(tcp.recv(Duration::from_secs(2)).is_none(), "no answer after the ban");
    assert!(lab.try_tcp_in(&lab.stranger, STRANGER_IP, EDGE_STRANGER_IP, Duration::from_secs(2)).is_err());
    trunk_registers(&lab);
}

#[test]
fn guessing_from_a_new_ipv6_address_each_time_bans_the_whole_64() {
    let mut lab = Lab::new();
    let rotating: Vec<String> = (0..12).map(|i| format!("2001:2:0:5::{:x}", 0x100 + i)).collect();
    let (trusted, fresh, neighbour) = ("2001:2:0:5::50", "2001:2:0:5::999", "2001:2:0:6::1");
    for addr in rotating.iter().map(String::as_str).chain([trusted, fresh, neighbour]) {
        lab.add_stranger_addr(addr);
    }
    lab.start_kamailio();
    lab.start_controller(&config(&lab, &[&format!("{trusted}/128")], &["2001:2:0:5::/64", "2001:2:0:6::/64"], ""));
    let mut answered_guesses = 0;
    for (seq, from) in rotating.iter().enumerate() {
        match lab.guess(from, EDGE_STRANGER_IP6, seq as u32) {
            Some(status) => assert!(status.starts_with("SIP/2.0 401"), "{status}"),
            None => break,
        }
        answered_guesses += 1;
    }
    println!("IPv6, a new address per guess: {answered_guesses} answered");
    assert_eq!(answered_guesses, MAX, "one /64, one source: banned at its fifth rejected guess");
    assert_eq!(banned(&lab, "2001:2:0:5::/64")["reason"], "auth_failures");
    assert!(!lab.answered(fresh, EDGE_STRANGER_IP6), "an address of the /64 never used before gets no answer");
    assert!(lab.answered(neighbour, EDGE_STRANGER_IP6), "the next /64 is not banned");
    assert!(
        lab.sipp_register(&lab.stranger, trusted, EDGE_STRANGER_IP6),
        "a trusted address inside the banned /64 still registers"
    );
    trunk_registers(&lab);
    lab.controller
        .as_mut()
        .unwrap()
        .wait_for("event=ban source=2001:2:0:5::/64 reason=auth_failures", Duration::from_secs(5));
}

#[test]
fn svwar_enumerating_extensions_is_banned_for_unanswered_challenges() {
    let mut lab = attack_lab();
    // The PBX answers an unknown user 404 and a known one 401: svwar finds
    // the extensions by their challenges, and never answers one. Slowed to
    // about six requests a second, under the profile's REGISTER budget (at
    // its own pace the rate limit bans it first, as `rate_excess`).
    let out = std::process::Command::new("timeout")
        .args(["40", "ip", "netns", "exec", &lab.stranger, "svwar", "-m", "REGISTER", "-e", "990-1100", "-t", "0.15"])
        .args(["--maximumtime=3", "-b", STRANGER_IP, EDGE_STRANGER_IP])
        .current_dir(&lab.dir)
        .env("HOME", &lab.dir)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let ban = banned(&lab, STRANGER_IP);
    assert_eq!(ban["reason"], "unanswered_challenges", "{ban}\n{said}");
    let challenges = outcome(&lab, "challenge");
    println!("svwar: {challenges} requests answered (challenged) before the ban");
    assert!((UNANSWERED..=UNANSWERED + 5).contains(&challenges), "{challenges}\n{said}");
    assert_eq!(outcome(&lab, "failure"), 0, "no credentials, so no failures");
    assert!(!lab.answered(STRANGER_IP, EDGE_STRANGER_IP));
    trunk_registers(&lab);
    lab.controller
        .as_mut()
        .unwrap()
        .wait_for(&format!("event=ban source={STRANGER_IP} reason=unanswered_challenges"), Duration::from_secs(5));
}

// ---- Escalation ------------------------------------------------------------

/// Five sources of one network, each banned by its own guesses.
fn ban_five(lab: &Lab, sources: &[String], server: &str) {
    for (i, from) in sources.iter().enumerate() {
        assert_eq!(lab.guess_until_unanswered(from, server, 10), MAX, "source {i}: {from}");
    }
}

fn addrs(prefix: &str, hosts: std::ops::Range<u32>, v6: bool) -> Vec<String> {
    hosts.map(|h| if v6 { format!("{prefix}{h:x}::1") } else { format!("{prefix}{h}") }).collect()
}

#[test]
fn five_banned_sources_of_a_24_ban_the_24_but_never_a_network_with_a_trusted_host() {
    let v4 = addrs("198.18.2.", 11..16, false);
    let v4_trusted_net = addrs("198.18.3.", 11..16, false);
    let v6_trusted_net = addrs("2001:2:0:", 0x11..0x16, true);
    let (sixth, trusted_host, sixth_trusted_net, sixth_v6) =
        ("198.18.2.16", "198.18.3.50", "198.18.3.16", "2001:2:0:16::1");
    let mut lab = Lab::new();
    for addr in v4.iter().chain(&v4_trusted_net).chain(&v6_trusted_net) {
        lab.add_stranger_addr(addr);
    }
    for addr in [sixth, trusted_host, sixth_trusted_net, sixth_v6] {
        lab.add_stranger_addr(addr);
    }
    lab.start_kamailio();
    // Everyone is `office` by default; the trunk (in 2001:2::/48 too) and
    // one host of 198.18.3.0/24 are trusted.
    let cfg = config(&lab, &[&format!("{trusted_host}/32")], &[], "")
        .replace("default_class = \"deny\"", "default_class = \"office\"");
    lab.start_controller(&cfg);

    ban_five(&lab, &v4, EDGE_STRANGER_IP);
    let controller = lab.controller.as_mut().unwrap();
    controller.wait_for("event=ban source=198.18.2.0/24 reason=escalated", Duration::from_secs(10));
    let ban = banned(&lab, "198.18.2.0/24");
    assert_eq!(ban["reason"], "escalated");
    assert!((590..=600).contains(&ban["remaining_secs"].as_u64().unwrap()), "ban.duration_secs: {ban}");
    assert!(!lab.answered(sixth, EDGE_STRANGER_IP), "an address of the /24 that never guessed gets no answer");
    for from in &v4 {
        assert_eq!(banned(&lab, from)["reason"], "auth_failures");
    }

    // The same in a /24 with a trusted host: its five are banned, the /24
    // is not, and the trusted host goes on registering.
    ban_five(&lab, &v4_trusted_net, EDGE_STRANGER_IP);
    // IPv6: five /64s of 2001:2::/48, where the trunk's IPv6 address is
    // trusted.
    ban_five(&lab, &v6_trusted_net, EDGE_STRANGER_IP6);
    let controller = lab.controller.as_mut().unwrap();
    controller.wait_for("not banning 198.18.3.0/24 (escalation)", Duration::from_secs(10));
    controller.wait_for("not banning 2001:2::/48 (escalation)", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(1500)); // a sweep, in case it reported one
    let log = controller.text();
    assert!(!log.contains("source=198.18.3.0/24") && !log.contains("source=2001:2::/48"), "{log}");
    assert!(lab.ban_of("198.18.3.0/24").is_none() && lab.ban_of("2001:2::/48").is_none(), "{:?}", lab.bans());
    assert!(lab.answered(sixth_trusted_net, EDGE_STRANGER_IP), "the rest of 198.18.3.0/24 is answered");
    assert!(lab.answered(sixth_v6, EDGE_STRANGER_IP6), "and the rest of 2001:2::/48");
    assert!(lab.sipp_register(&lab.stranger, trusted_host, EDGE_STRANGER_IP), "the trusted host registers");
    trunk_registers(&lab);
    let escalations = lab.metric("sipxdp_bans_total{reason=\"escalated\"}");
    assert_eq!(escalations, 1.0);
}

#[test]
fn an_escalation_holds_over_the_customers_rule_of_that_network_and_rules_inside_it() {
    // The usual shape of a customer's range: a rule of exactly its /24 (and
    // here a /25 inside it). Neither may shadow the ban of the /24.
    let v4 = addrs("198.18.2.", 11..16, false);
    let (sixth, in_the_25) = ("198.18.2.16", "198.18.2.200");
    let mut lab = Lab::new();
    for addr in v4.iter().map(String::as_str).chain([sixth, in_the_25]) {
        lab.add_stranger_addr(addr);
    }
    lab.start_kamailio();
    lab.start_controller(&config(&lab, &[], &["198.18.2.0/24", "198.18.2.128/25"], ""));
    assert!(lab.answered(in_the_25, EDGE_STRANGER_IP), "answered before");
    ban_five(&lab, &v4, EDGE_STRANGER_IP);
    lab.controller
        .as_mut()
        .unwrap()
        .wait_for("event=ban source=198.18.2.0/24 reason=escalated", Duration::from_secs(10));
    assert!(!lab.answered(sixth, EDGE_STRANGER_IP), "under the rule of the same /24");
    assert!(!lab.answered(in_the_25, EDGE_STRANGER_IP), "under the longer rule inside it");
    // Lifted, both are answered again.
    lab.cli_ok(&["ban", "del", "198.18.2.0/24"]);
    assert!(lab.answered(sixth, EDGE_STRANGER_IP) && lab.answered(in_the_25, EDGE_STRANGER_IP));
}

#[test]
fn five_banned_64s_of_a_48_ban_the_48() {
    let v6 = addrs("2001:2:0:", 0x21..0x26, true);
    let sixth = "2001:2:0:26::1";
    let mut lab = Lab::new();
    for addr in v6.iter().map(String::as_str).chain([sixth]) {
        lab.add_stranger_addr(addr);
    }
    lab.start_kamailio();
    // Every lab IPv6 address is in 2001:2::/48: the trunk is trusted by its
    // IPv4 address only, so no trusted rule overlaps the /48.
    let cfg = format!(
        "interfaces = [\"{}\", \"{}\"]\n[filter]\ndefault_class = \"office\"\n[[rule]]\ncidrs = [\"{TRUNK_IP}/32\"]\n\
         class = \"trusted\"\n{OFFICE}[fingerprints]\nuser_agents = []\n",
        lab.edge_trunk_if, lab.edge_stranger_if
    );
    lab.start_controller(&cfg);
    ban_five(&lab, &v6, EDGE_STRANGER_IP6);
    lab.controller.as_mut().unwrap().wait_for("event=ban source=2001:2::/48 reason=escalated", Duration::from_secs(10));
    let ban = banned(&lab, "2001:2::/48");
    assert_eq!(ban["reason"], "escalated");
    assert!((590..=600).contains(&ban["remaining_secs"].as_u64().unwrap()), "ban.duration_secs: {ban}");
    for from in &v6 {
        let net = format!("{}/64", from.strip_suffix("1").unwrap());
        assert_eq!(banned(&lab, &net)["reason"], "auth_failures");
    }
    assert!(!lab.answered(sixth, EDGE_STRANGER_IP6), "a /64 of the /48 that never guessed gets no answer");
    assert!(!lab.answered(STRANGER_IP6, EDGE_STRANGER_IP6), "nor the stranger's own");
    assert!(lab.answered(STRANGER_IP, EDGE_STRANGER_IP), "IPv4 is another network");
    assert!(lab.sipp_register(&lab.trunk, TRUNK_IP, EDGE_TRUNK_IP), "the trunk registers over IPv4");
}

#[test]
fn escalation_is_only_reported_in_monitor_mode_and_off_with_escalate_after_0() {
    for mode in ["monitor", "off"] {
        let sources = addrs("198.18.2.", 31..36, false);
        let sixth = "198.18.2.36";
        let mut lab = Lab::new();
        for addr in sources.iter().map(String::as_str).chain([sixth]) {
            lab.add_stranger_addr(addr);
        }
        lab.start_kamailio();
        let cfg = match mode {
            "monitor" => {
                config(&lab, &[], &["198.18.2.0/23"], "").replace("[filter]\n", "[filter]\nmode = \"monitor\"\n")
            }
            _ => config(&lab, &[], &["198.18.2.0/23"], "[ban]\nescalate_after = 0\n"),
        };
        lab.start_controller(&cfg);
        for (i, from) in sources.iter().enumerate() {
            let answered = lab.guess_until_unanswered(from, EDGE_STRANGER_IP, MAX as u32);
            if mode == "monitor" {
                // Nothing is dropped: every guess is answered, the fifth
                // would have banned.
                assert_eq!(answered, MAX, "{from}");
                let line = format!("event=would_ban source={from} reason=auth_failures");
                lab.controller.as_mut().unwrap().wait_for(&line, Duration::from_secs(5));
            } else {
                assert_eq!((answered, lab.guess(from, EDGE_STRANGER_IP, 99)), (MAX, None), "source {i}");
            }
        }
        let controller = lab.controller.as_mut().unwrap();
        if mode == "monitor" {
            controller.wait_for("event=would_ban source=198.18.2.0/24 reason=escalated", Duration::from_secs(10));
            assert!(lab.bans().is_empty(), "{:?}", lab.bans());
        } else {
            controller
                .wait_for(&format!("event=ban source={} reason=auth_failures", sources[4]), Duration::from_secs(5));
            std::thread::sleep(Duration::from_millis(2500)); // two sweeps
            assert!(!controller.text().contains("escalat"), "{}", controller.text());
            assert_eq!(lab.bans().len(), 5, "{:?}", lab.bans());
        }
        assert!(lab.answered(sixth, EDGE_STRANGER_IP), "{mode}: the rest of the /24 is answered");
    }
}
