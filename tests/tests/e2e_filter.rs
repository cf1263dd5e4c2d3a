//! End to end: Kamailio and sip-xdp in an edge namespace, real SIP clients
//! (SIPp with digest auth) and counted probes from a trunk namespace
//! (allowlisted) and a stranger namespace (not). Needs root.

use std::time::Duration;

use sip_xdp_tests::netns::*;

const SETTLE: Duration = Duration::from_millis(800);

#[test]
fn allowlisted_client_registers_stranger_gets_nothing_and_counters_match() {
    let mut lab = Lab::new();
    lab.start_kamailio();
    lab.start_controller(&lab.base_config(&[]));

    assert!(lab.sipp_register(&lab.trunk, TRUNK_IP, EDGE_TRUNK_IP), "the allowlisted trunk must register");
    assert!(!lab.sipp_register(&lab.stranger, STRANGER_IP, EDGE_STRANGER_IP), "the stranger must get no answer");

    // Exact counts: probes with unique Call-IDs, no retransmissions.
    let dropped_before = lab.counter("drop", "not_allowlisted");
    let passed_before = lab.counter("pass", "allowlisted");
    let stranger = lab.udp_in(&lab.stranger, &format!("{STRANGER_IP}:0"));
    let port = stranger.local_addr().expect("addr").port();
    let mut sent_bytes = 0;
    for seq in 0..25 {
        let req = register_request(STRANGER_IP, port, seq);
        sent_bytes += req.len() as u64 + 42; // Ethernet + IPv4 + UDP headers
        stranger.send_to(&req, format!("{EDGE_STRANGER_IP}:5060")).expect("send");
    }
    assert_eq!(drain(&stranger, SETTLE), 0, "no answer at all reaches the stranger");

    let trunk = lab.udp_in(&lab.trunk, &format!("{TRUNK_IP}:0"));
    let tport = trunk.local_addr().expect("addr").port();
    for seq in 0..10 {
        trunk.send_to(&options_request(TRUNK_IP, tport, seq), format!("{EDGE_TRUNK_IP}:5060")).expect("send");
    }
    assert_eq!(drain(&trunk, SETTLE), 10, "every trunk OPTIONS is answered");

    let dropped = lab.counter("drop", "not_allowlisted");
    assert_eq!(dropped.0 - dropped_before.0, 25, "drops counted");
    // The program's own log line reaches the controller's log (aya-log).
    lab.controller.as_mut().unwrap().wait_for("sip-xdp: first packet seen on ifindex", Duration::from_secs(5));
    assert_eq!(dropped.1 - dropped_before.1, sent_bytes, "dropped bytes counted");
    assert_eq!(lab.counter("pass", "allowlisted").0 - passed_before.0, 10, "passes counted");
    // A source no rule covers is dropped on the flood path, which keeps no
    // per-source state (a spoofed flood must not evict real clients').
    assert!(lab.source(STRANGER_IP).is_none(), "the stranger is not tracked");
    let t = lab.source(TRUNK_IP).expect("trunk row");
    assert_eq!(t["dropped"], 0, "the trunk never loses a packet");

    // The text forms name what they show.
    let stats = lab.cli_ok(&["stats"]);
    assert!(stats.contains(&lab.edge_trunk_if) && stats.contains("not_allowlisted"), "{stats}");
    let sources = lab.cli_ok(&["sources", "--top", "1"]);
    assert!(
        sources.contains("SOURCE") && sources.contains(TRUNK_IP) && sources.contains("1 of 1 sources shown"),
        "{sources}"
    );
}

#[test]
fn allow_add_and_del_take_effect_on_the_running_filter() {
    let mut lab = Lab::new();
    lab.start_kamailio();
    lab.start_controller(&lab.base_config(&[]));
    assert!(!lab.sipp_register(&lab.stranger, STRANGER_IP, EDGE_STRANGER_IP));

    assert_eq!(lab.cli_ok(&["allow", "add", "198.18.2.0/24"]), "allowed 198.18.2.0/24\n");
    assert!(lab.sipp_register(&lab.stranger, STRANGER_IP, EDGE_STRANGER_IP), "allowed at run time, no restart");
    let list = lab.cli_ok(&["allow", "list"]);
    assert!(list.contains("198.18.2.0/24") && list.contains("runtime") && list.contains("198.18.1.2/32"), "{list}");
    let json: serde_json::Value = serde_json::from_str(&lab.cli_ok(&["allow", "list", "--json"])).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);

    assert_eq!(lab.cli_ok(&["allow", "del", "198.18.2.0/24"]), "removed 198.18.2.0/24\n");
    assert!(!lab.sipp_register(&lab.stranger, STRANGER_IP, EDGE_STRANGER_IP), "blocked again");
    assert!(lab.sipp_register(&lab.trunk, TRUNK_IP, EDGE_TRUNK_IP), "the trunk is unaffected");

    // Bad input is refused clearly, with status 2.
    let out = lab.cli(&["allow", "add", "198.18.2.0/33"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a CIDR: \"198.18.2.0/33\""));
    let out = lab.cli(&["allow", "del", "203.0.113.0/24"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not on the allowlist"));
    // Deleting a config entry says it comes back on reload.
    let out = lab.cli_ok(&["allow", "del", &format!("{TRUNK_IP}/32")]);
    assert!(out.contains("comes from the config file"), "{out}");
}

#[test]
fn sigkill_leaves_the_filter_in_force_and_a_restart_adopts_it_without_a_gap() {
    let mut lab = Lab::new();
    lab.start_kamailio();
    let config = lab.start_controller(&lab.base_config(&[]));
    lab.cli_ok(&["allow", "add", "198.18.2.99"]); // a runtime entry that must survive

    // A second controller on the same pins is refused, and changes nothing.
    let mut rival = lab.spawn_controller(&config, &[]);
    assert_eq!(rival.wait_exit(Duration::from_secs(10)), Some(1));
    assert!(rival.text().contains("another `sip-xdp run` is already managing"), "{}", rival.text());
    assert!(lab.sipp_register(&lab.trunk, TRUNK_IP, EDGE_TRUNK_IP));

    lab.controller.as_ref().unwrap().signal(libc::SIGKILL);
    assert_eq!(lab.controller.as_mut().unwrap().wait_exit(Duration::from_secs(10)), None);
    assert!(!lab.sipp_register(&lab.stranger, STRANGER_IP, EDGE_STRANGER_IP), "still filtered with no controller");
    assert!(lab.sipp_register(&lab.trunk, TRUNK_IP, EDGE_TRUNK_IP), "trunk still allowed with no controller");

    // A stranger probes every 5 ms while a new controller takes over: if the
    // interface were unfiltered for a moment, Kamailio would answer.
    let stranger = lab.udp_in(&lab.stranger, &format!("{STRANGER_IP}:0"));
    let prober = send_options_in_background(&stranger, EDGE_STRANGER_IP, 600, Duration::from_millis(5));
    let mut second = lab.spawn_controller(&config, &["--xdp-mode", "native"]);
    second.wait_for("filtering;", Duration::from_secs(30));
    prober.join().unwrap();
    assert_eq!(drain(&stranger, SETTLE), 0, "not one answer leaked during the restart");
    let log = second.text();
    assert!(log.contains(&format!("{}: adopted the pinned filter", lab.edge_trunk_if)), "{log}");
    assert!(log.contains(&format!("{}: adopted the pinned filter", lab.edge_stranger_if)), "{log}");
    let list = lab.cli_ok(&["allow", "list"]);
    assert!(list.contains("198.18.2.99/32") && list.contains("198.18.1.2/32"), "allowlist kept: {list}");
    assert!(lab.sipp_register(&lab.trunk, TRUNK_IP, EDGE_TRUNK_IP));

    // SIGTERM detaches: the stranger reaches Kamailio again.
    second.signal(libc::SIGTERM);
    assert_eq!(second.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(second.text().contains("detached from"), "{}", second.text());
    assert!(lab.sipp_register(&lab.stranger, STRANGER_IP, EDGE_STRANGER_IP), "unfiltered after a clean stop");
    lab.controller = Some(second);
}

#[test]
fn sighup_reloads_the_allowlist_without_dropping_kept_sources() {
    let mut lab = Lab::new();
    lab.start_kamailio();
    let config = lab.start_controller(&lab.base_config(&[]));
    assert!(!lab.sipp_register(&lab.stranger, STRANGER_IP, EDGE_STRANGER_IP));

    // The trunk talks all through a series of reloads that replace its
    // entry with covering prefixes and back: it must never lose a packet.
    let trunk = lab.udp_in(&lab.trunk, &format!("{TRUNK_IP}:0"));
    let answers = count_in_background(&trunk, Duration::from_secs(4));
    let talker = send_options_in_background(&trunk, EDGE_TRUNK_IP, 400, Duration::from_millis(5));
    let variants = [
        "interfaces = [\"{T}\", \"{S}\"]\n[allow]\ncidrs = [\"198.18.1.0/24\"]\n",
        "interfaces = [\"{T}\", \"{S}\"]\n[allow]\ncidrs = [\"198.18.0.0/16\", \"2001:db8::/32\"]\n",
        "interfaces = [\"{T}\", \"{S}\"]\n[allow]\ncidrs = [\"198.18.1.2\"]\n",
    ];
    for round in 0..12 {
        let text =
            variants[round % variants.len()].replace("{T}", &lab.edge_trunk_if).replace("{S}", &lab.edge_stranger_if);
        std::fs::write(&config, text).unwrap();
        lab.controller.as_ref().unwrap().signal(libc::SIGHUP);
        std::thread::sleep(Duration::from_millis(120));
    }
    talker.join().unwrap();
    assert_eq!(answers.join().unwrap(), 400, "every trunk request answered through the reloads");
    assert_eq!(lab.source(TRUNK_IP).unwrap()["dropped"], 0);

    // A reload that allows the stranger's network.
    std::fs::write(&config, lab.base_config(&["198.18.2.0/24"])).unwrap();
    lab.controller.as_ref().unwrap().signal(libc::SIGHUP);
    lab.controller.as_mut().unwrap().wait_for("prefixes (+1 -", Duration::from_secs(10));
    assert!(lab.sipp_register(&lab.stranger, STRANGER_IP, EDGE_STRANGER_IP), "allowed by the reloaded config");

    // A broken config is reported and the running one stays.
    std::fs::write(&config, "[allow]\ncidrs = [\"not-an-address\"]\n").unwrap();
    lab.controller.as_ref().unwrap().signal(libc::SIGHUP);
    lab.controller.as_mut().unwrap().wait_for("reload failed, keeping the running config", Duration::from_secs(10));
    assert!(lab.controller.as_ref().unwrap().text().contains("not a CIDR: \"not-an-address\""));
    assert!(lab.sipp_register(&lab.stranger, STRANGER_IP, EDGE_STRANGER_IP), "old config still applied");
}

#[test]
fn bad_config_or_interface_changes_nothing() {
    let lab = Lab::new();
    let xdp_attached = || {
        let out = sh(std::process::Command::new("ip").args(["-n", &lab.edge, "link", "show"]));
        String::from_utf8_lossy(&out.stdout).contains("xdp")
    };

    let bad = lab.write_config(
        "bad.toml",
        &format!("interfaces = [\"{}\"]\n[filter]\nports = [5060, 99999]\n", lab.edge_trunk_if),
    );
    let mut run = lab.spawn_controller(&bad, &[]);
    assert_eq!(run.wait_exit(Duration::from_secs(10)), Some(2));
    let text = run.text();
    assert!(text.contains(&format!("{}:3:16: key `filter.ports`: 99999 is not a port", bad.display())), "{text}");
    assert!(!xdp_attached());
    assert!(!lab.pins.join("maps").exists(), "nothing pinned");

    // One good interface and one that does not exist: neither is touched.
    let cfg = lab.write_config("nosuch.toml", &format!("interfaces = [\"{}\", \"nosuch0\"]\n", lab.edge_trunk_if));
    let mut run = lab.spawn_controller(&cfg, &[]);
    assert_eq!(run.wait_exit(Duration::from_secs(10)), Some(2));
    assert!(run.text().contains("no such interface: nosuch0"), "{}", run.text());
    assert!(!xdp_attached());

    // check-config reports the same problem without any privileges needed.
    let out = std::process::Command::new(sip_xdp_bin()).args(["check-config"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("99999 is not a port"));

    // Commands against a directory with no instance say so.
    let out = std::process::Command::new(sip_xdp_bin())
        .args(["--pin-dir", "/run/sip-xdp-tests/none", "stats"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no sip-xdp instance pinned at /run/sip-xdp-tests/none"));
}

#[test]
fn default_pin_dir_gets_a_bpffs_when_none_is_mounted() {
    // Under `ip netns exec`, /sys is a fresh sysfs with /sys/fs/bpf
    // unmounted, and the mount namespace is private to the command: the
    // controller must mount the bpffs itself, and its mount dies with it.
    let lab = Lab::new();
    let cfg = lab.write_config("default-pins.toml", &lab.base_config(&[]));
    let mut run = Proc::spawn(
        "sip-xdp run (default pin dir)",
        std::process::Command::new("ip")
            .args(["netns", "exec", &lab.edge])
            .arg(sip_xdp_bin())
            .args(["run", "--config"])
            .arg(&cfg)
            .env("RUST_LOG", "info"),
    );
    run.wait_for("filtering;", Duration::from_secs(30));
    assert!(run.text().contains("mounted a bpffs for /sys/fs/bpf/sip-xdp"), "{}", run.text());
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(Duration::from_secs(10)), Some(0), "{}", run.text());
}
