//! `cargo xtask bench`: what sip-xdp costs and what it stops, in one run.
//! Writes report.md and report.json (to target/bench, or `--out DIR`).
//! Needs root; everything runs in namespaces it creates and removes.
//!
//! 1. cost per packet (BPF_PROG_TEST_RUN) beside a parse-only baseline;
//! 2. allowlist scaling;
//! 3. flood throughput over veth against nftables, iptables+ipset, no
//!    filter and a drop-everything ceiling;
//! 4. time to ban against fail2ban;
//! 5. a trusted trunk's registrations under the flood;
//! 6. a fleet sharing bans through Redis: propagation delay with 3 and 10
//!    edges, and how fast one edge applies fleet bans.

mod ban_time;
mod cost;
mod fleet;
mod flood;
mod report;

use std::{path::PathBuf, time::Instant};

use flood::{FloodLab, Variant};

pub struct Plan {
    pub quick: bool,
    /// Distinct sources per packet class (each BPF_PROG_TEST_RUN call
    /// with repeats costs the kernel ~16 ms of setup, so the quick run
    /// uses few).
    pub sources: usize,
    /// Test runs per measurement (split over the sources).
    pub repeat: u32,
    /// Measurements, of which the median is reported.
    pub rounds: usize,
    pub sizes: Vec<usize>,
    /// Allowlist of the flood (section 3).
    pub flood_allowlist: usize,
    pub flood_secs: f64,
    pub flood_reps: usize,
    pub ban_trials: usize,
    /// Flood rates of section 5, as shares of the generator's maximum.
    pub attack_shares: Vec<f64>,
    pub registrations: usize,
    /// Fleet sizes of section 6, bans per size, and bans of the apply rate.
    pub fleet_edges: Vec<usize>,
    pub fleet_trials: usize,
    pub fleet_bans: usize,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                quick,
                sources: 16,
                repeat: 100_000,
                rounds: 3,
                sizes: vec![10, 1_000, 100_000],
                flood_allowlist: 1_000,
                flood_secs: 1.0,
                flood_reps: 1,
                ban_trials: 5,
                attack_shares: vec![0.5, 1.0],
                registrations: 3,
                fleet_edges: vec![3, 10],
                fleet_trials: 5,
                fleet_bans: 300,
            }
        } else {
            Plan {
                quick,
                sources: 256,
                repeat: 1_000_000,
                rounds: 5,
                sizes: vec![10, 1_000, 100_000, 1_000_000],
                flood_allowlist: 1_000,
                flood_secs: 3.0,
                flood_reps: 3,
                ban_trials: 50,
                attack_shares: vec![0.0, 0.1, 0.25, 0.5, 1.0],
                registrations: 20,
                fleet_edges: vec![3, 10],
                fleet_trials: 20,
                fleet_bans: 2_000,
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!(
            "sip-xdp-bench [--quick] [--out DIR] [--sections 1,2,3,4,5,6]\n\n\
             Runs the benchmark sections and writes DIR/report.md and DIR/report.json\n\
             (default DIR: target/bench). --quick: a short run that checks the machinery,\n\
             not the figures. --sections: run only these (a partial report)."
        );
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let out = match args.iter().position(|a| a == "--out") {
        Some(i) => PathBuf::from(args.get(i + 1).unwrap_or_else(|| fail("--out needs a directory"))),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench"),
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        fail("the benchmark loads BPF programs and builds network namespaces: run it as root");
    }
    let sections: Vec<u32> = match args.iter().position(|a| a == "--sections") {
        Some(i) => {
            args.get(i + 1).map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect()).unwrap_or_default()
        }
        None => vec![1, 2, 3, 4, 5, 6],
    };
    if sections.is_empty() || sections.iter().any(|n| !(1..=6).contains(n)) {
        fail("--sections takes a comma-separated list of 1 to 6");
    }
    let plan = Plan::new(quick);
    let started = Instant::now();
    let mut r = report::Report::default();

    let on = |n: u32| sections.contains(&n);
    if on(1) {
        section(
            1,
            &format!(
                "cost per packet: {} runs over {} sources per class, median of {}",
                plan.repeat, plan.sources, plan.rounds
            ),
        );
        r.costs = cost::cost_per_packet(&plan);
    }
    if on(2) {
        section(2, &format!("allowlist scaling: a non-allowlisted drop at {:?} prefixes", plan.sizes));
        r.scaling = cost::scaling(&plan);
    }
    if on(3) || on(5) {
        flood_sections(&plan, &mut r, on(5));
    }
    if on(4) {
        section(
            4,
            &format!("time to ban: {} trials each, {} REGISTER/s, ban at the 5th 401", plan.ban_trials, ban_time::RATE),
        );
        let mut bans = ban_time::BanLab::new();
        let progress = |what: &'static str| {
            move |n: usize| {
                if n.is_multiple_of(10) || n == plan.ban_trials {
                    println!("    {what}: {n}/{} trials", plan.ban_trials)
                }
            }
        };
        r.ban_sip_xdp = Some(bans.sip_xdp(plan.ban_trials, &progress("sip-xdp")));
        r.ban_fail2ban = Some(bans.fail2ban(plan.ban_trials, &progress("fail2ban")));
    }
    if on(6) {
        section(
            6,
            &format!(
                "fleet: propagation of {} bans with {:?} edges, and {} fleet bans applied",
                plan.fleet_trials, plan.fleet_edges, plan.fleet_bans
            ),
        );
        for (i, &n) in plan.fleet_edges.iter().enumerate() {
            let lab = fleet::start(n);
            let p = fleet::propagation(&lab, plan.fleet_trials);
            let q = |x| fleet::percentile(&p.ms, x).unwrap_or(f64::NAN);
            println!("    {n} edges: p50 {:.1} ms, p99 {:.1} ms, {} missed", q(50.0), q(99.0), p.missed);
            r.fleet_propagation.push(p);
            if i == 0 {
                let rate = fleet::apply_rate(&lab, plan.fleet_bans);
                println!("    {} fleet bans applied by every edge at {:.0} bans/s", rate.bans, rate.per_sec());
                r.fleet_rate = Some(rate);
            }
        }
    }

    r.seconds = started.elapsed().as_secs();
    let (md, json) = r.render(&plan);
    std::fs::create_dir_all(&out).unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", out.display())));
    std::fs::write(out.join("report.md"), &md).expect("report.md");
    std::fs::write(out.join("report.json"), serde_json::to_string_pretty(&json).expect("JSON")).expect("report.json");
    println!("{md}");
    println!("==> wrote {}/report.md and report.json in {} s", out.display(), r.seconds);
}

/// Sections 3 and 5 share the flood lab (5 needs 3's generator rate; with
/// 5 alone, one repetition of 3 calibrates it).
fn flood_sections(plan: &Plan, r: &mut report::Report, with_registrations: bool) {
    section(
        3,
        &format!(
            "flood over veth: {} variants x {} repetitions of {} s, interleaved",
            Variant::ALL.len(),
            plan.flood_reps,
            plan.flood_secs
        ),
    );
    let mut lab = FloodLab::new(plan.flood_allowlist);
    for rep in 0..plan.flood_reps {
        for variant in Variant::ALL {
            let installed = lab.install(variant);
            let sample = lab.flood(plan.flood_secs);
            lab.remove(installed);
            println!(
                "    rep {}  {:<42} {:>9.0} pps received ({:>9.0} sent), receiving core {:>3.0}% busy",
                rep + 1,
                variant.name(),
                sample.received_pps,
                sample.sent_pps,
                sample.busy * 100.0
            );
            r.flood.push((variant, sample));
        }
    }
    r.flood_allowlist = plan.flood_allowlist;

    if !with_registrations {
        return;
    }
    section(5, &format!("trusted trunk registrations under the flood ({} per rate)", plan.registrations));
    lab.add_trunk_address();
    lab.lab.start_kamailio();
    let installed = lab.install(Variant::SipXdpNative);
    let max_pps = r.median_sent_pps();
    for &share in &plan.attack_shares {
        let rate = if share >= 1.0 { None } else { Some(share * max_pps) };
        let ok = lab.registrations_under_flood(rate, plan.registrations);
        let label = rate.map_or("generator maximum".to_string(), |r| format!("{r:.0} pps"));
        println!("    flood at {label:<20} {ok}/{} registrations succeeded", plan.registrations);
        r.under_attack.push(report::UnderAttack {
            share,
            pps: rate.unwrap_or(max_pps),
            attempts: plan.registrations,
            succeeded: ok,
        });
    }
    lab.remove(installed);
}

fn section(n: u32, what: &str) {
    println!("==> {n}. {what}");
}

fn fail(msg: &str) -> ! {
    eprintln!("sip-xdp-bench: {msg}");
    std::process::exit(2);
}
