//! `cargo xtask demo`: a lab on this machine showing sip-xdp at work.
//!
//! Namespaces: an edge (Kamailio, sip-xdp, Prometheus), a trunk (trusted,
//! registering with SIPp) and an attacker network (three addresses, in the
//! `public` default class: answered within its rate limits). The attacker scans (sipvicious svmap), floods
//! REGISTERs and guesses passwords (svcrack) for a bounded time while a
//! live summary shows what is passed, dropped and banned. Everything is
//! removed on exit or Ctrl-C. Needs root.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use sip_xdp_tests::netns::*;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

const SCANNER: &str = "198.18.2.10";
const FLOODER: &str = "198.18.2.11";

fn config(lab: &Lab) -> String {
    format!(
        r#"interfaces = ["{t}", "{s}"]
[filter]
default_class = "public"
[allow]
cidrs = ["{TRUNK_IP}/32"]
[profile.public]
register_per_sec = 2
register_burst = 10
requests_per_sec = 20
requests_burst = 60
[ban]
after_excess = 50
window_secs = 10
duration_secs = 120
max_duration_secs = 3600
[auth_failures]
max = 5
window_secs = 60
[metrics]
listen = "127.0.0.1:9560"
program_stats = true
"#,
        t = lab.edge_trunk_if,
        s = lab.edge_stranger_if
    )
}

fn main() {
    let duration = std::env::args()
        .skip_while(|a| a != "--duration")
        .nth(1)
        .map(|d| d.parse().expect("--duration takes seconds"))
        .unwrap_or(60u64);
    // SAFETY: installing a handler that only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    println!("==> building the lab: edge (Kamailio, sip-xdp, Prometheus), trunk, attacker network");
    let mut lab = Lab::new();
    for addr in [SCANNER, FLOODER] {
        lab.add_stranger_addr(addr);
    }
    lab.start_kamailio();
    lab.start_controller(&config(&lab));
    let prometheus = lab.start_prometheus();
    println!("    metrics:    ip netns exec {} curl -s http://127.0.0.1:9560/metrics", lab.edge);
    println!("    prometheus: ip netns exec {} curl -s '{prometheus}/api/v1/query?query=sipxdp_bans_active'", lab.edge);
    println!("    (both listen inside the edge namespace; the dashboard is grafana/dashboards/sip-xdp.json)");
    println!("    CLI:        sip-xdp --pin-dir {} stats | sources | ban list", lab.pins.display());
    println!(
        "==> running for {duration}s: trunk registers; the attacker scans, floods and guesses passwords (Ctrl-C stops)"
    );

    let lab = Arc::new(lab);
    let end = Instant::now() + Duration::from_secs(duration);
    let running = move || Instant::now() < end && !STOP.load(Ordering::SeqCst);
    let mut workers = Vec::new();
    {
        let lab = Arc::clone(&lab);
        workers.push(std::thread::spawn(move || {
            let (mut ok, mut tries) = (0, 0);
            while running() {
                tries += 1;
                ok += lab.sipp_register(&lab.trunk, TRUNK_IP, EDGE_TRUNK_IP) as u32;
                std::thread::sleep(Duration::from_secs(2));
            }
            format!("trunk registrations: {ok}/{tries} succeeded")
        }));
    }
    {
        let lab = Arc::clone(&lab);
        workers.push(std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(2));
            let out = std::process::Command::new("timeout")
                .args(["15", "ip", "netns", "exec", &lab.stranger, "svmap", "-b", SCANNER, "198.18.2.0/30"])
                .env("HOME", &lab.dir)
                .current_dir(&lab.dir)
                .output();
            let found = out
                .map(|o| String::from_utf8_lossy(&o.stdout).lines().filter(|l| l.contains("198.18.2.1")).count())
                .unwrap_or(0);
            format!("svmap scan from {SCANNER}: {found} SIP servers found")
        }));
    }
    {
        let lab = Arc::clone(&lab);
        workers.push(std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(5));
            let sock = lab.udp_in(&lab.stranger, &format!("{FLOODER}:0"));
            let port = sock.local_addr().unwrap().port();
            let mut sent = 0u32;
            while running() && sent < 200_000 {
                let _ = sock.send_to(&register_request(FLOODER, port, sent), format!("{EDGE_STRANGER_IP}:5060"));
                sent += 1;
                if sent.is_multiple_of(500) {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            format!("REGISTER flood from {FLOODER}: {sent} sent")
        }));
    }
    {
        let lab = Arc::clone(&lab);
        workers.push(std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(8));
            let _ = std::process::Command::new("timeout")
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
                    "1000-3000",
                    EDGE_STRANGER_IP,
                ])
                .env("HOME", &lab.dir)
                .current_dir(&lab.dir)
                .output();
            format!("svcrack password guessing from {STRANGER_IP}: stopped")
        }));
    }

    let started = Instant::now();
    while running() {
        std::thread::sleep(Duration::from_secs(1));
        println!("{}", summary(&lab, started.elapsed().as_secs()));
    }
    for w in workers {
        if let Ok(line) = w.join() {
            println!("    {line}");
        }
    }
    println!("==> final state");
    print!("{}", lab.cli_ok(&["ban", "list"]));
    print!("{}", lab.cli_ok(&["sources", "--top", "5"]));
    println!("==> removing the lab");
    drop(lab);
}

/// One line: passes, drops by reason, bans.
fn summary(lab: &Lab, secs: u64) -> String {
    let stats = lab.stats();
    let (mut passed, mut drops) = (0u64, Vec::new());
    for row in stats["counters"].as_array().unwrap() {
        let n = row["packets"].as_u64().unwrap();
        if n == 0 || row["reason"] == "non_ip" || row["reason"] == "non_sip" {
            continue;
        }
        match row["action"].as_str().unwrap() {
            "pass" => passed += n,
            _ => drops.push(format!("{}={n}", row["reason"].as_str().unwrap())),
        }
    }
    let bans: serde_json::Value = serde_json::from_str(&lab.cli_ok(&["ban", "list", "--json"])).unwrap();
    let bans: Vec<String> = bans
        .as_array()
        .unwrap()
        .iter()
        .map(|b| format!("{}({})", b["source"].as_str().unwrap(), b["reason"].as_str().unwrap()))
        .collect();
    format!(
        "t={secs:>3}s  passed={passed:<6} dropped: {:<60} bans: {}",
        if drops.is_empty() { "-".to_string() } else { drops.join(" ") },
        if bans.is_empty() { "-".to_string() } else { bans.join(" ") }
    )
}
