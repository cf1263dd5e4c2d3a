//! The report: a Markdown table per section, the targets with what was
//! measured against them, and the same figures as JSON.

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::{
    ban_time::{self, Trials},
    cost::{Cost, Scale},
    fleet::{percentile, ApplyRate, Propagation},
    flood::{Sample, Variant},
    Plan,
};

pub struct UnderAttack {
    pub share: f64,
    pub pps: f64,
    pub attempts: usize,
    pub succeeded: usize,
}

#[derive(Default)]
pub struct Report {
    pub costs: Vec<Cost>,
    pub scaling: Vec<Scale>,
    pub flood: Vec<(Variant, Sample)>,
    pub flood_allowlist: usize,
    pub under_attack: Vec<UnderAttack>,
    pub ban_sip_xdp: Option<Trials>,
    pub ban_fail2ban: Option<Trials>,
    pub fleet_propagation: Vec<Propagation>,
    pub fleet_rate: Option<ApplyRate>,
    pub seconds: u64,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

impl Report {
    fn flood_median(&self, variant: Variant, field: fn(&Sample) -> f64) -> f64 {
        median(self.flood.iter().filter(|(v, _)| *v == variant).map(|(_, s)| field(s)).collect())
    }

    /// The generator's own rate, over every flood sample.
    pub fn median_sent_pps(&self) -> f64 {
        median(self.flood.iter().map(|(_, s)| s.sent_pps).collect())
    }

    pub fn render(&self, plan: &Plan) -> (String, Value) {
        let mut md = String::new();
        let machine = machine();
        let w = &mut md;
        let _ = writeln!(
            w,
            "# sip-xdp benchmark{}\n",
            if plan.quick { " (quick: checks the machinery, not the figures)" } else { "" }
        );
        let _ = writeln!(
            w,
            "Machine: {machine}. Run time {} s. Reproduce: `cargo xtask bench{}`.\n",
            self.seconds,
            if plan.quick { " --quick" } else { "" }
        );

        let targets = self.targets();
        let best_nf = self.best_netfilter();
        let ceiling = self.flood_median(Variant::DropAll, |s| s.received_pps);
        let _ = writeln!(w, "## Targets\n\n| target | measured | met |\n| --- | --- | --- |");
        for (target, measured, met) in &targets {
            let _ = writeln!(w, "| {target} | {measured} | {} |", if *met { "yes" } else { "**no**" });
        }

        if !self.costs.is_empty() {
            let _ = writeln!(
                w,
                "\n## 1. Cost per packet (BPF_PROG_TEST_RUN, {} runs over {} sources per class, median of {})\n",
                plan.repeat, plan.sources, plan.rounds
            );
            let _ = writeln!(
                w,
                "| class | sip-xdp (ns) | parse-only baseline (ns) | ratio |\n| --- | ---: | ---: | ---: |"
            );
            for c in &self.costs {
                let _ =
                    writeln!(w, "| {} | {:.1} | {:.1} | {:.2} |", c.class, c.ns, c.baseline_ns, c.ns / c.baseline_ns);
            }
        }

        if !self.scaling.is_empty() {
            let _ = writeln!(w, "\n## 2. Allowlist scaling (a non-allowlisted UDP REGISTER, dropped)\n");
            let _ = writeln!(w, "Entries: half IPv4 /32, a quarter IPv4 /24, an eighth each IPv6 /64 and /48. *Random*: sources in /24s no entry touches (a spoofed flood). *Beside an entry*: the odd neighbour of a /32 entry, so the index sends it to the trie (the worst case).\n");
            let _ = writeln!(w, "| entries | random source (ns) | ratio | beside an entry (ns) | ratio | baseline (ns) |\n| ---: | ---: | ---: | ---: | ---: | ---: |");
            for s in &self.scaling {
                let _ = writeln!(
                    w,
                    "| {} | {:.1} | {:.2} | {:.1} | {:.2} | {:.1} |",
                    s.entries,
                    s.random_ns,
                    s.random_ns / s.baseline_ns,
                    s.neighbour_ns,
                    s.neighbour_ns / s.baseline_ns,
                    s.baseline_ns
                );
            }
        }

        if !self.flood.is_empty() {
            let reps = self.flood.iter().filter(|(v, _)| *v == Variant::DropAll).count();
            let _ = writeln!(w, "\n## 3. Flood over veth ({} allowlist entries, REGISTERs from random sources in 198.19.0.0/16, {} repetitions, medians)\n", self.flood_allowlist, reps);
            let _ = writeln!(w, "Generator: our XDP program through BPF_PROG_TEST_RUN live frames on core 0 ({:.2} Mpps offered). Receiver: the edge veth's threaded NAPI pinned to core 1. *Received* counts what the edge's veth took from its ring (the rest overflowed it); *per busy core* divides by the receiving core's busy share.\n", self.median_sent_pps() / 1e6);
            let _ = writeln!(w, "| variant | received (Mpps) | core busy | per busy core (Mpps) | vs best netfilter | vs ceiling |\n| --- | ---: | ---: | ---: | ---: | ---: |");
            for v in Variant::ALL {
                let pps = self.flood_median(v, |s| s.received_pps);
                let busy = self.flood_median(v, |s| s.busy);
                let _ = writeln!(
                    w,
                    "| {} | {:.2} | {:.0}% | {:.2} | {:.2}x | {:.0}% |",
                    v.name(),
                    pps / 1e6,
                    busy * 100.0,
                    pps / busy.max(1e-9) / 1e6,
                    pps / best_nf,
                    pps / ceiling * 100.0
                );
            }
        }

        let (sx, f2b) = (self.ban_sip_xdp.as_ref(), self.ban_fail2ban.as_ref());
        if sx.is_some() {
            let _ = writeln!(
                w,
                "\n## 4. Time to ban ({} REGISTER/s without credentials, each answered with a 401; ban at the 5th)\n",
                ban_time::RATE
            );
            let _ = writeln!(w, "From the arrival of the 401 that crosses the threshold to the sending of the first request never answered, at the attacker.\n");
            let _ = writeln!(
                w,
                "| defender | trials | p50 (ms) | p99 (ms) | not banned in time |\n| --- | ---: | ---: | ---: | ---: |"
            );
            for (name, t) in [("sip-xdp (kernel ban on egress 401s)", sx), ("fail2ban (Kamailio log, nftables)", f2b)] {
                if let Some(t) = t {
                    let p = |q| t.percentile(q).map_or("-".into(), |v| format!("{v:.3}"));
                    let _ = writeln!(
                        w,
                        "| {name} | {} | {} | {} | {} |",
                        t.ms.len() + t.unbanned,
                        p(50.0),
                        p(99.0),
                        t.unbanned
                    );
                }
            }
        }

        if !self.under_attack.is_empty() {
            let _ = writeln!(w, "\n## 5. Trusted trunk registrations under the flood (SIPp, digest auth, across the flooded link, sip-xdp native)\n");
            let _ = writeln!(w, "| flood | succeeded |\n| --- | ---: |");
            for u in &self.under_attack {
                let label = if u.share >= 1.0 {
                    format!("generator maximum (~{:.2} Mpps)", u.pps / 1e6)
                } else {
                    format!("{:.2} Mpps", u.pps / 1e6)
                };
                let _ = writeln!(w, "| {label} | {}/{} |", u.succeeded, u.attempts);
            }
        }

        if !self.fleet_propagation.is_empty() {
            let _ = writeln!(w, "\n## 6. Fleet: bans shared through Redis (a real redis-server; every edge a namespace with its own controller)\n");
            let _ = writeln!(w, "*Propagation*: `sip-xdp ban add` on edge 0 (found by the controller's 50 ms sweep, then published), until the ban is in force in each other edge's kernel (its pinned table read in a loop); from the ban's own timestamp in edge 0's table, on the same clock. One sample per ban and other edge.\n");
            let _ = writeln!(w, "| edges | bans | samples | p50 (ms) | p99 (ms) | max (ms) | not within 5 s |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
            for p in &self.fleet_propagation {
                let q = |x| percentile(&p.ms, x).map_or("-".into(), |v| format!("{v:.1}"));
                let _ = writeln!(
                    w,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    p.edges,
                    p.trials,
                    p.ms.len(),
                    q(50.0),
                    q(99.0),
                    q(100.0),
                    p.missed
                );
            }
            if let Some(r) = &self.fleet_rate {
                let secs: Vec<String> = r.secs.iter().map(|s| format!("{s:.2}")).collect();
                let _ = writeln!(w, "\n*Apply rate*: {} bans written by `redis-cli --pipe` in the documented layout (key with TTL, then announcement); until every one of the {} edges has them all in its kernel: {} s per edge, **{:.0} bans/s** (the slowest edge).", r.bans, r.edges, secs.join(", "), r.per_sec());
            }
        }

        let doc = json!({
            "quick": plan.quick,
            "machine": machine,
            "seconds": self.seconds,
            "targets": targets.iter().map(|(t, m, ok)| json!({"target": t, "measured": m, "met": ok})).collect::<Vec<_>>(),
            "cost_per_packet": self.costs.iter().map(|c| json!({"class": c.class, "ns": c.ns, "baseline_ns": c.baseline_ns, "ratio": c.ns / c.baseline_ns})).collect::<Vec<_>>(),
            "allowlist_scaling": self.scaling.iter().map(|s| json!({"entries": s.entries, "random_ns": s.random_ns, "neighbour_ns": s.neighbour_ns, "baseline_ns": s.baseline_ns, "random_ratio": s.random_ns / s.baseline_ns, "neighbour_ratio": s.neighbour_ns / s.baseline_ns})).collect::<Vec<_>>(),
            "flood_throughput": if self.flood.is_empty() { Value::Null } else { json!({
                "allowlist_entries": self.flood_allowlist,
                "offered_pps": self.median_sent_pps(),
                "samples": self.flood.iter().map(|(v, s)| json!({"variant": v.name(), "received_pps": s.received_pps, "sent_pps": s.sent_pps, "busy": s.busy})).collect::<Vec<_>>(),
                "native_vs_best_netfilter": self.flood_median(Variant::SipXdpNative, |s| s.received_pps) / best_nf,
                "native_vs_ceiling": self.flood_median(Variant::SipXdpNative, |s| s.received_pps) / ceiling,
            }) },
            "time_to_ban": {
                "rate_per_sec": ban_time::RATE,
                "sip_xdp": sx.map(trials_json),
                "fail2ban": f2b.map(trials_json),
            },
            "fleet": {
                "propagation": self.fleet_propagation.iter().map(|p| json!({"edges": p.edges, "bans": p.trials, "samples": p.ms.len(), "missed": p.missed, "p50_ms": percentile(&p.ms, 50.0), "p99_ms": percentile(&p.ms, 99.0), "max_ms": percentile(&p.ms, 100.0), "ms": p.ms})).collect::<Vec<_>>(),
                "apply_rate": self.fleet_rate.as_ref().map(|r| json!({"edges": r.edges, "bans": r.bans, "secs": r.secs, "bans_per_sec": r.per_sec()})),
            },
            "legitimate_under_attack": self.under_attack.iter().map(|u| json!({"share_of_max": u.share, "flood_pps": u.pps, "attempts": u.attempts, "succeeded": u.succeeded})).collect::<Vec<_>>(),
        });
        (md, doc)
    }

    fn best_netfilter(&self) -> f64 {
        [Variant::NftNetdev, Variant::NftInetRaw, Variant::IptablesIpset]
            .into_iter()
            .map(|v| self.flood_median(v, |s| s.received_pps))
            .fold(0.0, f64::max)
    }

    /// (target, what was measured, met).
    fn targets(&self) -> Vec<(String, String, bool)> {
        let mut out = Vec::new();
        if !self.flood.is_empty() {
            let native = self.flood_median(Variant::SipXdpNative, |s| s.received_pps);
            let best_nf = self.best_netfilter();
            let ceiling = self.flood_median(Variant::DropAll, |s| s.received_pps);
            out.push((
                "native drops >= 3x the best nftables/iptables variant".into(),
                format!("{:.2}x", native / best_nf),
                native >= 3.0 * best_nf,
            ));
            out.push((
                "native drops >= 70% of the drop-everything ceiling".into(),
                format!("{:.0}%", native / ceiling * 100.0),
                native >= 0.7 * ceiling,
            ));
        }
        let worst = self
            .scaling
            .iter()
            .map(|s| s.random_ns / s.baseline_ns)
            .chain(
                self.costs
                    .iter()
                    .filter(|c| c.class.starts_with("dropped, not allowlisted"))
                    .map(|c| c.ns / c.baseline_ns),
            )
            .fold(0.0, f64::max);
        let largest = self.scaling.iter().map(|s| s.entries).max().unwrap_or(0);
        if !self.costs.is_empty() || !self.scaling.is_empty() {
            out.push((
                format!("a non-allowlisted drop costs <= 1.5x the baseline, up to {largest} entries"),
                format!("worst {worst:.2}x"),
                worst <= 1.5,
            ));
        }
        if let Some(p99) = self.ban_sip_xdp.as_ref().and_then(|t| t.percentile(99.0)) {
            let unbanned = self.ban_sip_xdp.as_ref().map_or(0, |t| t.unbanned);
            let f2b = self
                .ban_fail2ban
                .as_ref()
                .and_then(|t| t.percentile(50.0))
                .map_or("-".into(), |v| format!("{:.2} s", v / 1000.0));
            out.push((
                "time to ban p99 < 1 ms (fail2ban: seconds)".into(),
                format!("{p99:.3} ms (fail2ban p50 {f2b})"),
                p99 < 1.0 && unbanned == 0,
            ));
        }
        if !self.under_attack.is_empty() {
            let all = self.under_attack.iter().all(|u| u.succeeded == u.attempts);
            let got: Vec<String> =
                self.under_attack.iter().map(|u| format!("{}/{}", u.succeeded, u.attempts)).collect();
            out.push(("trusted trunk registrations succeed 100% at every flood rate".into(), got.join(", "), all));
        }
        if !self.fleet_propagation.is_empty() {
            let p99: Vec<Option<f64>> = self.fleet_propagation.iter().map(|p| percentile(&p.ms, 99.0)).collect();
            let met =
                self.fleet_propagation.iter().zip(&p99).all(|(p, q)| p.missed == 0 && q.is_some_and(|q| q < 1000.0));
            let got: Vec<String> = self
                .fleet_propagation
                .iter()
                .zip(&p99)
                .map(|(p, q)| format!("{} edges {}", p.edges, q.map_or("-".into(), |q| format!("{q:.0} ms"))))
                .collect();
            out.push(("a ban is in force on every other edge within 1 s (p99)".into(), got.join(", "), met));
        }
        out
    }
}

fn trials_json(t: &Trials) -> Value {
    json!({"trials": t.ms.len() + t.unbanned, "banned": t.ms.len(), "unbanned": t.unbanned, "p50_ms": t.percentile(50.0), "p99_ms": t.percentile(99.0), "ms": t.ms})
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let iptables = std::process::Command::new("iptables")
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!(
        "{cpu}, {} cores, Linux {}, {iptables}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        kernel.trim()
    )
}
