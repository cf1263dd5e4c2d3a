//! The benchmark's quick run, as CI runs it: every section runs and the
//! report is complete. The figures are not judged here (they are the
//! benchmark's business, on a quiet machine); their presence and sanity
//! are. Needs root.

use serde_json::Value;

fn positive(v: &Value, what: &str) -> f64 {
    let x = v.as_f64().unwrap_or_else(|| panic!("{what} is not a number: {v}"));
    assert!(x.is_finite() && x > 0.0, "{what} = {x}");
    x
}

#[test]
fn quick_benchmark_writes_every_section() {
    let out = std::env::temp_dir().join(format!("sip-xdp-bench-smoke-{}", std::process::id()));
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_sip-xdp-bench"))
        .args(["--quick", "--out"])
        .arg(&out)
        .status()
        .expect("run sip-xdp-bench");
    assert!(status.success(), "sip-xdp-bench --quick failed: {status}");
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).expect("report.json")).expect("JSON");
    let md = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    let _ = std::fs::remove_dir_all(&out);

    let costs = doc["cost_per_packet"].as_array().expect("section 1");
    let timed = sip_xdp_tests::behaviour::rows().into_iter().filter(|r| r.timed).count();
    assert_eq!(
        costs.len(),
        timed + 2 + 3,
        "every packet class the behaviour table times, two TCP stream classes, and three on egress"
    );
    for c in costs {
        positive(&c["ns"], "cost ns");
        positive(&c["baseline_ns"], "baseline ns");
    }
    let scaling = doc["allowlist_scaling"].as_array().expect("section 2");
    assert!(scaling.len() >= 3, "several allowlist sizes");
    for s in scaling {
        positive(&s["random_ns"], "random-source ns");
        positive(&s["neighbour_ns"], "neighbour ns");
    }
    let flood = &doc["flood_throughput"];
    let samples = flood["samples"].as_array().expect("section 3");
    for variant in [
        "sip-xdp, native",
        "sip-xdp, skb",
        "nftables, netdev",
        "nftables, inet",
        "iptables raw",
        "no filter",
        "drop-everything",
    ] {
        let s = samples
            .iter()
            .find(|s| s["variant"].as_str().unwrap().contains(variant))
            .unwrap_or_else(|| panic!("no {variant} sample"));
        positive(&s["received_pps"], "received pps");
        positive(&s["sent_pps"], "sent pps");
    }
    positive(&flood["native_vs_best_netfilter"], "ratio to netfilter");
    positive(&flood["native_vs_ceiling"], "ratio to ceiling");
    for defender in ["sip_xdp", "fail2ban"] {
        let t = &doc["time_to_ban"][defender];
        let trials = t["trials"].as_u64().unwrap_or_else(|| panic!("section 4: {defender}"));
        assert!(trials >= 1);
        assert_eq!(t["banned"].as_u64().unwrap() + t["unbanned"].as_u64().unwrap(), trials);
    }
    positive(&doc["time_to_ban"]["sip_xdp"]["p99_ms"], "sip-xdp p99");
    let legit = doc["legitimate_under_attack"].as_array().expect("section 5");
    assert!(legit.len() >= 2, "several flood rates");
    for l in legit {
        assert!(l["attempts"].as_u64().unwrap() > 0);
        assert!(l["succeeded"].as_u64().is_some());
    }
    let propagation = doc["fleet"]["propagation"].as_array().expect("section 6");
    let sizes: Vec<u64> = propagation.iter().map(|p| p["edges"].as_u64().unwrap()).collect();
    assert_eq!(sizes, [3, 10], "propagation with 3 and with 10 edges");
    for p in propagation {
        let (edges, bans) = (p["edges"].as_u64().unwrap(), p["bans"].as_u64().unwrap());
        assert!(bans >= 1);
        assert_eq!(
            p["samples"].as_u64().unwrap() + p["missed"].as_u64().unwrap(),
            bans * (edges - 1),
            "one per other edge"
        );
        positive(&p["p99_ms"], "propagation p99");
    }
    let rate = &doc["fleet"]["apply_rate"];
    assert_eq!(rate["secs"].as_array().expect("apply rate").len() as u64, rate["edges"].as_u64().unwrap());
    positive(&rate["bans_per_sec"], "fleet bans applied per second");
    assert_eq!(doc["targets"].as_array().expect("targets").len(), 6, "every target is reported against");
    for heading in ["## Targets", "## 1.", "## 2.", "## 3.", "## 4.", "## 5.", "## 6."] {
        assert!(md.contains(heading), "report.md lacks {heading}");
    }
}
