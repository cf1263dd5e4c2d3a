//! The exporter against the kernel and a real Prometheus: metric values
//! match the kernel counters and the traffic sent, `promtool check metrics`
//! is clean, and every PromQL expression of the dashboard and the alert
//! rules returns data when evaluated by Prometheus. Needs root.

use std::{collections::BTreeSet, process::Stdio, time::Duration};

use sip_xdp_tests::netns::*;

fn config(lab: &Lab) -> String {
    lab.customers_config(&format!(
        "[auth_failures]\nmax = 3\nwindow_secs = 60\n[metrics]\nlisten = \"127.0.0.1:9560\"\ntop_sources = 5\nprogram_stats = true\n\
         [destinations]\nblock = [\"252\"]\napplies_to = [\"customers\"]\n\
         [fleet]\nredis = \"redis://{NO_REDIS}:6379/0\"\nnode = \"metrics-edge\"\n",
    ))
}

/// An address on the trunk's link that no host holds: the fleet's Redis
/// is never reached, so its series exist, `sipxdp_fleet_connected` is 0
/// and the fleet panels and alert have data to show.
const NO_REDIS: &str = "198.18.1.99";

/// `name{labels} value` lines of the exposition, labels as written.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn families(text: &str) -> BTreeSet<String> {
    text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).map(|l| l.split(' ').next().unwrap().to_string()).collect()
}

/// The left operand of a rule's top-level comparison: the value the
/// alert tests, which has data whether or not the alert fires.
fn left_of_comparison(expr: &str) -> &str {
    let bytes = expr.as_bytes();
    let (mut depth, mut quoted) = (0i32, false);
    for i in 0..bytes.len() {
        match bytes[i] {
            b'"' => quoted = !quoted,
            b'(' | b'{' | b'[' if !quoted => depth += 1,
            b')' | b'}' | b']' if !quoted => depth -= 1,
            b'>' | b'<' | b'=' | b'!'
                if !quoted && depth == 0 && !(bytes[i] == b'=' && i > 0 && b"=!<>".contains(&bytes[i - 1])) =>
            {
                return expr[..i].trim();
            }
            _ => {}
        }
    }
    expr
}

#[test]
fn metrics_match_the_kernel_and_every_dashboard_and_alert_query_has_data() {
    let mut lab = Lab::new();
    lab.start_kamailio();
    lab.start_controller(&config(&lab));
    let prometheus = lab.start_prometheus();

    // Traffic: 30 OPTIONS from the trunk, a stranger outside every rule, and
    // a customer whose failed logins (wrong credentials) get it banned.
    let trunk = lab.udp_in(&lab.trunk, &format!("{TRUNK_IP}:0"));
    let answered = count_in_background(&trunk, Duration::from_secs(2));
    send_options_in_background(&trunk, EDGE_TRUNK_IP, 30, Duration::from_millis(2)).join().unwrap();
    assert_eq!(answered.join().unwrap(), 30);
    let customer = lab.udp_in(&lab.stranger, &format!("{STRANGER_IP}:0"));
    let port = customer.local_addr().unwrap().port();
    for seq in 0..5 {
        let guess = register_with_credentials("UDP", STRANGER_IP, port, EDGE_STRANGER_IP, "alice", seq);
        customer.send_to(&guess, format!("{EDGE_STRANGER_IP}:5060")).unwrap();
        let _ = recv_within(&customer, Duration::from_millis(500));
    }
    lab.controller
        .as_mut()
        .unwrap()
        .wait_for("event=ban source=198.18.2.2 reason=auth_failures", Duration::from_secs(5));

    // The exposition against the kernel counters.
    let text = lab.http_get("http://127.0.0.1:9560/metrics");
    let stats = lab.stats();
    for row in stats["counters"].as_array().unwrap() {
        let series = format!(
            "sipxdp_packets_total{{action=\"{}\",reason=\"{}\"}}",
            row["action"].as_str().unwrap(),
            row["reason"].as_str().unwrap()
        );
        // Counters only grow between the two reads; at rest they are equal.
        let exported = sample(&text, &series);
        assert!(exported <= row["packets"].as_u64().unwrap() as f64, "{series}");
    }
    assert_eq!(sample(&text, "sipxdp_packets_total{action=\"pass\",reason=\"allowlisted\"}"), 30.0);
    assert_eq!(sample(&text, "sipxdp_source_packets_total{source=\"198.18.1.2\"}"), 30.0);
    assert_eq!(sample(&text, "sipxdp_sip_requests_total{method=\"OPTIONS\"}"), 30.0);
    assert_eq!(
        sample(&text, "sipxdp_sip_requests_total{method=\"REGISTER\"}"),
        5.0,
        "dropped requests are counted too"
    );
    assert_eq!(sample(&text, "sipxdp_source_registers_total{source=\"198.18.2.2\"}"), 5.0);
    assert_eq!(sample(&text, "sipxdp_sip_responses_total{code=\"401\"}"), 3.0, "three refusals, then the ban");
    assert_eq!(sample(&text, "sipxdp_auth_responses_total{outcome=\"failure\"}"), 3.0, "each a failure");
    assert_eq!(sample(&text, "sipxdp_auth_responses_total{outcome=\"challenge\"}"), 0.0);
    assert_eq!(sample(&text, "sipxdp_sip_responses_total{code=\"200\"}"), 30.0);
    assert_eq!(sample(&text, "sipxdp_packets_total{action=\"drop\",reason=\"banned\"}"), 2.0);
    assert_eq!(sample(&text, "sipxdp_bans_total{reason=\"auth_failures\"}"), 1.0);
    assert_eq!(sample(&text, "sipxdp_bans_active"), 1.0);
    assert_eq!(sample(&text, "sipxdp_trusted_dropped_packets_total"), 0.0);
    assert_eq!(sample(&text, "sipxdp_allowlist_entries{family=\"ipv4\"}"), 2.0);
    assert_eq!(sample(&text, "sipxdp_map_capacity{map=\"allow_v4\"}"), 1048576.0);
    assert_eq!(sample(&text, "sipxdp_map_entries{map=\"bans\"}"), 1.0);
    assert!(sample(&text, "sipxdp_program_runs_total{program=\"ingress\"}") >= 37.0);
    assert!(sample(&text, "sipxdp_program_run_seconds_total{program=\"egress\"}") > 0.0);
    assert_eq!(sample(&text, "sipxdp_fleet_connected"), 0.0, "no Redis at {NO_REDIS}");
    assert_eq!(sample(&text, "sipxdp_fleet_bans_published_total{op=\"ban\"}"), 0.0, "nothing published");

    // promtool's lint is clean.
    let mut check = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(check.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    let out = check.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics: {said}");

    // Every metric the dashboard and rules name is exported.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../grafana/dashboards/sip-xdp.json")).unwrap(),
    )
    .unwrap();
    let mut exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter().map(|t| t["expr"].as_str().unwrap().to_string()))
        .collect();
    let exported = families(&text);
    let query = |q: &str| -> serde_json::Value {
        serde_json::from_str(&lab.http_get_with(&format!("{prometheus}/api/v1/query"), &[("query", q)])).unwrap()
    };
    // Enough scrapes for rates over 15 s windows.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while query("count_over_time(up{job=\"sip-xdp\"}[1m])")["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap_or("0")
        .parse::<u32>()
        .unwrap()
        < 12
    {
        assert!(std::time::Instant::now() < deadline, "Prometheus is not scraping the controller");
        std::thread::sleep(Duration::from_millis(500));
    }
    let rules: serde_json::Value = serde_json::from_str(&lab.http_get(&format!("{prometheus}/api/v1/rules"))).unwrap();
    let rule_queries: Vec<String> = rules["data"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["query"].as_str().unwrap().to_string())
        .collect();
    let rules_file =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../prometheus/sip-xdp.rules.yml")).unwrap();
    let alerts = rules_file.lines().filter(|l| l.trim_start().starts_with("- alert:")).count();
    assert_eq!(rule_queries.len(), alerts, "all alert rules loaded");
    for q in &rule_queries {
        exprs.push(left_of_comparison(q).to_string());
    }
    for expr in &exprs {
        for name in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| w.starts_with("sipxdp_"))
        {
            // A histogram's series carry its family's name and a suffix.
            let family = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
            assert!(exported.contains(name) || exported.contains(family), "{name} (in {expr}) is not exported");
        }
        let concrete = expr.replace("$__rate_interval", "15s").replace("$__range", "1m").replace("$instance", ".+");
        let result = query(&concrete);
        assert_eq!(result["status"], "success", "{concrete}: {result}");
        assert!(!result["data"]["result"].as_array().unwrap().is_empty(), "no data for {concrete}");
    }
}
