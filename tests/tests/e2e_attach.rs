//! How the programs hang on interfaces on kernels without TCX (Debian 12's
//! 6.1): the egress observer as a filter in the `clsact` qdisc, kept by the
//! kernel when the controller dies, replaced in place by the next start,
//! removed by a clean stop; and an attachment that fails half-way leaves
//! nothing attached. `--egress-attach clsact` forces the pre-TCX way on
//! this kernel, so the same code runs here and under qemu on 6.1.
//!
//! Needs root.

use std::{process::Command, time::Duration};

use sip_xdp_tests::netns::*;

/// Our clsact filter as `tc` prints it (priority 0x5105, handle 0x5105).
const OUR_FILTER: &str = "pref 20741 bpf chain 0 handle 0x5105";

/// `tc filter show dev <edge_if> egress` in the edge namespace.
fn egress_filters(lab: &Lab, interface: &str) -> String {
    let out = sh(Command::new("tc").args(["-n", &lab.edge, "filter", "show", "dev", interface, "egress"]));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Does `interface` (in the edge namespace) have an XDP program attached?
fn has_xdp(lab: &Lab, interface: &str) -> bool {
    let out = sh(Command::new("ip").args(["-n", &lab.edge, "-d", "link", "show", "dev", interface]));
    let text = String::from_utf8_lossy(&out.stdout);
    text.contains("prog/xdp") || text.contains("xdpgeneric") || text.contains("xdp ")
}

/// The pins in a subdirectory of the lab's pin directory.
fn pinned(lab: &Lab, dir: &str) -> Vec<String> {
    let entries = std::fs::read_dir(lab.pins.join(dir)).into_iter().flatten().flatten();
    entries.map(|e| e.file_name().to_string_lossy().into_owned()).collect()
}

fn guesser_config(lab: &Lab) -> String {
    lab.customers_config("[auth_failures]\nmax = 3\nunanswered_challenges = 20\nwindow_secs = 60\n")
}

#[test]
fn a_clsact_egress_observer_counts_failures_survives_a_crash_and_goes_on_a_clean_stop() {
    let mut lab = Lab::new();
    lab.start_kamailio();
    let config = lab.write_config("sip-xdp.toml", &guesser_config(&lab));
    let mut first = lab.spawn_controller(&config, &["--xdp-mode", "native", "--egress-attach", "clsact"]);
    first.wait_for("filtering;", Duration::from_secs(30));
    let log = first.text();
    for interface in [&lab.edge_trunk_if, &lab.edge_stranger_if] {
        assert!(log.contains(&format!("{interface}: egress observer attached as a clsact filter")), "{log}");
        let filters = egress_filters(&lab, interface);
        assert!(filters.contains(OUR_FILTER) && filters.contains("sip_xdp_egress"), "{filters}");
    }
    // No TCX link pinned in this mode.
    assert_eq!(pinned(&lab, "egress"), Vec::<String>::new());

    // The observer sees the server's 401s to credentials: the guesser is
    // banned at the third failure, by the kernel.
    assert_eq!(lab.guess_until_unanswered(STRANGER_IP, EDGE_STRANGER_IP, 10), 3);
    assert!(lab.ban_of(STRANGER_IP).is_some_and(|b| b["reason"] == "auth_failures"), "{:?}", lab.bans());

    // A crash leaves the filter and the ban in the kernel: a second
    // guesser is still banned by the egress observer alone.
    first.signal(libc::SIGKILL);
    assert_eq!(first.wait_exit(Duration::from_secs(10)), None);
    let second_guesser = "198.18.2.77";
    lab.add_stranger_addr(second_guesser);
    assert_eq!(lab.guess_until_unanswered(second_guesser, EDGE_STRANGER_IP, 10), 3, "no controller running");
    assert!(egress_filters(&lab, &lab.edge_stranger_if).contains(OUR_FILTER));

    // The next start replaces the filter's program in place: still one
    // filter of ours, both bans kept.
    let mut second = lab.spawn_controller(&config, &["--xdp-mode", "native", "--egress-attach", "clsact"]);
    second.wait_for("filtering;", Duration::from_secs(30));
    let log = second.text();
    assert!(
        log.contains(&format!(
            "{}: egress observer replaced the program of its clsact filter in place",
            lab.edge_stranger_if
        )),
        "{log}"
    );
    let filters = egress_filters(&lab, &lab.edge_stranger_if);
    assert_eq!(filters.matches(OUR_FILTER).count(), 1, "{filters}");
    for source in [STRANGER_IP, second_guesser] {
        assert!(lab.ban_of(source).is_some(), "{source} kept: {:?}", lab.bans());
    }
    // The customers' legitimate twin: a phone that registers with the
    // right password after its challenge is answered 200 and never banned.
    let phone = "198.18.2.78";
    lab.add_stranger_addr(phone);
    for _ in 0..5 {
        assert!(lab.sipp_register_with(&lab.stranger, phone, EDGE_STRANGER_IP, "secret"), "phone registers");
    }
    assert!(lab.ban_of(phone).is_none(), "{:?}", lab.bans());

    // A clean stop removes our filter (and only the qdisc's filter of ours).
    second.signal(libc::SIGTERM);
    assert_eq!(second.wait_exit(Duration::from_secs(10)), Some(0));
    for interface in [&lab.edge_trunk_if, &lab.edge_stranger_if] {
        let filters = egress_filters(&lab, interface);
        assert!(!filters.contains(OUR_FILTER), "{interface}: {filters}");
        assert!(!has_xdp(&lab, interface), "{interface} still has XDP");
    }
}

#[test]
fn an_egress_attachment_that_fails_leaves_no_interface_filtered() {
    let lab = Lab::new();
    // Another tool's filter holds our place in the second interface's
    // clsact qdisc: ours cannot go there, and theirs is not replaced.
    let tc = |args: &[&str]| sh(Command::new("tc").args(["-n", &lab.edge]).args(args));
    tc(&["qdisc", "add", "dev", &lab.edge_stranger_if, "clsact"]);
    let foreign = ["dev", &lab.edge_stranger_if, "egress", "pref", "20741"];
    tc(&[&["filter", "add"], &foreign[..], &["u32", "match", "u32", "0", "0", "classid", "1:1"]].concat());
    let config = lab.write_config("sip-xdp.toml", &lab.base_config(&[]));
    let mut run = lab.spawn_controller(&config, &["--xdp-mode", "native", "--egress-attach", "clsact"]);
    assert_eq!(run.wait_exit(Duration::from_secs(30)), Some(1), "{}", run.text());
    let log = run.text();
    assert!(log.contains(&format!("cannot attach to {}", lab.edge_stranger_if)), "{log}");
    for interface in [&lab.edge_trunk_if, &lab.edge_stranger_if] {
        assert!(!has_xdp(&lab, interface), "{interface} left with XDP: {log}");
        assert!(!egress_filters(&lab, interface).contains(OUR_FILTER), "{interface} left with a filter");
    }
    assert!(egress_filters(&lab, &lab.edge_stranger_if).contains("pref 20741 u32"), "the other tool's filter stays");
    assert_eq!(pinned(&lab, "links"), Vec::<String>::new(), "no XDP link pinned");

    // The same config attaches once the other filter has moved.
    tc(&[&["filter", "del"], &foreign[..]].concat());
    let mut run = lab.spawn_controller(&config, &["--xdp-mode", "native", "--egress-attach", "clsact"]);
    run.wait_for("filtering;", Duration::from_secs(30));
    assert!(has_xdp(&lab, &lab.edge_stranger_if));
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(Duration::from_secs(10)), Some(0));
}

/// `sip-xdp doctor` in the edge namespace, on the lab's interfaces.
fn doctor(lab: &Lab, extra: &[&str]) -> std::process::Output {
    Command::new("ip")
        .args(["netns", "exec", &lab.edge])
        .arg(sip_xdp_bin())
        .arg("--pin-dir")
        .arg(&lab.pins)
        .args(["doctor", "--iface", &lab.edge_trunk_if, "--iface", &lab.edge_stranger_if])
        .args(extra)
        .output()
        .expect("run doctor")
}

#[test]
fn doctor_reports_the_kernel_the_drivers_and_what_is_attached_without_changing_it() {
    let mut lab = Lab::new();
    lab.start_kamailio();
    let out = doctor(&lab, &["--try-attach"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
    for line in [
        "  yes  bpf_loop in XDP programs (Linux 5.17)",
        "  yes  LPM trie maps (Linux 4.11)",
        "  yes  CAP_BPF",
        "ready: this kernel has every feature `sip-xdp run` needs",
    ] {
        assert!(text.contains(line), "{line:?} missing:\n{text}");
    }
    // veth has native XDP: the trial attach says so and leaves nothing.
    let stanza = format!("  {}: driver veth\n    XDP now: none\n    native XDP: yes", lab.edge_trunk_if);
    assert!(text.contains(&stanza), "{text}");
    assert!(!has_xdp(&lab, &lab.edge_trunk_if), "the trial attach left a program");

    // With the filter running, doctor names its program and tries nothing.
    let config = lab.write_config("sip-xdp.toml", &lab.base_config(&[]));
    let mut run = lab.spawn_controller(&config, &["--xdp-mode", "native"]);
    run.wait_for("filtering;", Duration::from_secs(30));
    let out = doctor(&lab, &["--try-attach"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("XDP now: native, program ") && text.contains("(sip_xdp_ingres"), "{text}");
    assert!(text.contains("native XDP: not tried: a program is attached"), "{text}");
    assert!(lab.sipp_register(&lab.trunk, TRUNK_IP, EDGE_TRUNK_IP), "the filter is untouched: the trunk registers");
    assert!(!lab.sipp_register(&lab.stranger, STRANGER_IP, EDGE_STRANGER_IP), "and the stranger is still dropped");
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(Duration::from_secs(10)), Some(0));

    // Bad input: an interface that is not there is said so, not a panic.
    let out = Command::new(sip_xdp_bin()).args(["doctor", "--iface", "nosuchif0"]).output().expect("doctor");
    assert!(String::from_utf8_lossy(&out.stdout).contains("  nosuchif0: no such interface"));
}

#[test]
fn a_reload_or_stop_asked_for_while_the_programs_load_waits_for_the_start_to_finish() {
    let lab = Lab::new();
    let config = lab.write_config("sip-xdp.toml", &lab.base_config(&[]));
    // `systemctl reload` right after `start`: the SIGHUP lands while the
    // programs load (the log line comes before loading), and must not kill
    // the process half-started.
    let mut run = lab.spawn_controller(&config, &["--xdp-mode", "native"]);
    run.wait_for("loading the XDP program", Duration::from_secs(30));
    run.signal(libc::SIGHUP);
    run.wait_for("filtering;", Duration::from_secs(30));
    run.wait_for("reloaded", Duration::from_secs(10));
    assert!(has_xdp(&lab, &lab.edge_stranger_if));
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(Duration::from_secs(10)), Some(0), "{}", run.text());

    // A stop asked for while loading: the start completes, then detaches.
    let mut run = lab.spawn_controller(&config, &["--xdp-mode", "native"]);
    run.wait_for("loading the XDP program", Duration::from_secs(30));
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(Duration::from_secs(30)), Some(0), "{}", run.text());
    assert!(run.text().contains("detached from"), "{}", run.text());
    assert!(!has_xdp(&lab, &lab.edge_stranger_if), "nothing left attached");
}
