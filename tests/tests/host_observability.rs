//! The shipped dashboard and alert rules, checked without a kernel: the
//! rules pass `promtool check rules` and their unit tests, and the dashboard
//! is an importable Grafana dashboard whose panels all query Prometheus
//! through the datasource variable. (That every expression returns data
//! from a real scrape is checked in `metrics_end_to_end`.)

use std::{collections::BTreeSet, path::PathBuf, process::Command};

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(repo("prometheus"))
        .output()
        .expect("promtool (Debian package prometheus)");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn alert_rules_pass_promtool_and_their_unit_tests() {
    assert!(promtool(&["check", "rules", "sip-xdp.rules.yml"]).contains("SUCCESS: 11 rules found"));
    assert!(promtool(&["test", "rules", "sip-xdp.rules.test.yml"]).contains("SUCCESS"));
    assert!(promtool(&["check", "config", "prometheus.yml"]).contains("SUCCESS"));
    // Each alert has a unit test.
    let rules = std::fs::read_to_string(repo("prometheus/sip-xdp.rules.yml")).unwrap();
    let tests = std::fs::read_to_string(repo("prometheus/sip-xdp.rules.test.yml")).unwrap();
    for alert in rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")) {
        assert!(tests.contains(&format!("alertname: {alert}")), "no promtool test for {alert}");
    }
}

pub fn dashboard() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(repo("grafana/dashboards/sip-xdp.json")).unwrap())
        .expect("valid JSON")
}

#[test]
fn the_dashboard_is_importable_and_uses_the_datasource_variable() {
    let d = dashboard();
    assert_eq!(d["uid"], "sip-xdp");
    assert!(d["title"].is_string() && d["schemaVersion"].as_u64().unwrap() >= 30);
    let vars = d["templating"]["list"].as_array().unwrap();
    assert!(vars.iter().any(|v| v["type"] == "datasource" && v["name"] == "datasource" && v["query"] == "prometheus"));
    let panels = d["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    let mut titles = Vec::new();
    for p in panels {
        assert!(ids.insert(p["id"].as_u64().expect("numeric id")), "duplicate panel id {}", p["id"]);
        let title = p["title"].as_str().expect("title");
        titles.push(title.to_lowercase());
        for key in ["h", "w", "x", "y"] {
            assert!(p["gridPos"][key].is_u64(), "{title}: gridPos.{key}");
        }
        assert!(
            p["gridPos"]["x"].as_u64().unwrap() + p["gridPos"]["w"].as_u64().unwrap() <= 24,
            "{title} is wider than the grid"
        );
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title} has no query");
        for t in targets {
            assert!(t["expr"].as_str().is_some_and(|e| e.contains("sipxdp_")), "{title}: {t}");
            assert!(t["refId"].is_string());
            assert_eq!(t["datasource"]["uid"], "${datasource}");
        }
    }
    // The panels the operators asked for.
    for wanted in [
        "drop rate by reason",
        "requests by method",
        "challenges, failures, successes",
        "active bans",
        "bans per minute by reason",
        "top sources",
        "trusted-source drops",
        "map utilisation",
        "cost per packet",
        "blocked invites",
        "scanner hits",
        "spend anomaly",
        "fleet: connected",
        "fleet bans published, received, refused",
        "propagation delay",
    ] {
        assert!(titles.iter().any(|t| t.contains(wanted)), "no panel for {wanted}: {titles:?}");
    }
}

#[test]
fn provisioning_points_at_the_dashboard() {
    let dashboards = std::fs::read_to_string(repo("grafana/provisioning/dashboards/sip-xdp.yml")).unwrap();
    assert!(dashboards.contains("apiVersion: 1") && dashboards.contains("type: file"));
    let sources = std::fs::read_to_string(repo("grafana/provisioning/datasources/prometheus.yml")).unwrap();
    assert!(sources.contains("type: prometheus"));
}
