//! End to end for the control API: the controller in the edge namespace
//! with `[api]` on a Unix socket, Kamailio behind it, the trunk trusted and
//! the stranger's network in the `customers` class. The API is held to
//! the repository's OpenAPI document. Needs root.

use std::{collections::BTreeSet, time::Duration};

use serde_json::json;
use sip_xdp_tests::{api::ApiClient, netns::*, openapi::OpenApi};

/// Reported failures that ban.
const AUTH_MAX: u32 = 4;

fn start(extra: &str) -> (Lab, ApiClient) {
    let mut lab = Lab::new();
    lab.start_kamailio();
    let (api, client) = lab.api_unix();
    lab.start_controller(&lab.customers_config(&format!(
        "[auth_failures]\nmax = {AUTH_MAX}\nwindow_secs = 60\n[events]\nformat = \"text\"\n{extra}{api}"
    )));
    (lab, client)
}

/// Does the stranger get any answer to an OPTIONS within a second?
fn stranger_is_answered(lab: &Lab) -> bool {
    let sock = lab.udp_in(&lab.stranger, &format!("{STRANGER_IP}:0"));
    let port = sock.local_addr().unwrap().port();
    sock.send_to(&options_request(STRANGER_IP, port, 7), format!("{EDGE_STRANGER_IP}:5060")).unwrap();
    recv_within(&sock, Duration::from_secs(1)).is_some()
}

fn ban_body(source: &str, secs: u64) -> serde_json::Value {
    json!({"source": source, "duration_secs": secs, "reason": "tls_auth_failures"})
}

/// One request of the schema check: what it documents, and how to make it.
struct Case {
    path: &'static str,
    method: &'static str,
    status: u16,
    /// The path actually requested (templates filled in).
    url: String,
    body: Option<String>,
    token: bool,
}

fn case(path: &'static str, method: &'static str, status: u16, url: &str, body: Option<&str>) -> Case {
    Case { path, method, status, url: url.into(), body: body.map(str::to_string), token: true }
}

#[test]
fn every_documented_path_answers_with_the_documented_shape() {
    let (lab, api) = start("");
    let doc = OpenApi::load();
    let ban = ban_body(STRANGER_IP, 600).to_string();
    let report = json!({"source": "198.18.2.9"}).to_string();
    let trusted = json!({"source": TRUNK_IP}).to_string();
    let prefix = json!({"source": "198.18.2.0/24"}).to_string();
    let mut cases = vec![
        case("/v1/bans", "POST", 201, "/v1/bans", Some(&ban)),
        case("/v1/bans", "POST", 200, "/v1/bans", Some(&ban)),
        case("/v1/bans", "POST", 400, "/v1/bans", Some(r#"{"source": 5}"#)),
        case("/v1/bans", "POST", 409, "/v1/bans", Some(&ban_body(TRUNK_IP, 60).to_string())),
        case("/v1/bans", "POST", 422, "/v1/bans", Some(&ban_body("198.0.0.0/8", 60).to_string())),
        case("/v1/bans", "GET", 200, "/v1/bans", None),
        case("/v1/bans/{cidr}", "DELETE", 200, &format!("/v1/bans/{STRANGER_IP}"), None),
        case("/v1/bans/{cidr}", "DELETE", 404, &format!("/v1/bans/{STRANGER_IP}"), None),
        case("/v1/bans/{cidr}", "DELETE", 422, "/v1/bans/not-an-address", None),
        case("/v1/stats", "GET", 200, "/v1/stats", None),
    ];
    for path in ["/v1/auth-failures", "/v1/auth-successes"] {
        cases.push(case(path, "POST", 200, path, Some(&report)));
        cases.push(case(path, "POST", 400, path, Some("{not json")));
        cases.push(case(path, "POST", 409, path, Some(&trusted)));
        cases.push(case(path, "POST", 422, path, Some(&prefix)));
    }
    // Every operation refuses a request without the token.
    for (path, method, url) in [
        ("/v1/bans", "GET", "/v1/bans"),
        ("/v1/bans", "POST", "/v1/bans"),
        ("/v1/bans/{cidr}", "DELETE", "/v1/bans/198.18.2.2"),
        ("/v1/stats", "GET", "/v1/stats"),
        ("/v1/auth-failures", "POST", "/v1/auth-failures"),
        ("/v1/auth-successes", "POST", "/v1/auth-successes"),
    ] {
        cases.push(Case { token: false, ..case(path, method, 401, url, Some(&report)) });
    }
    let mut answered = BTreeSet::new();
    for c in &cases {
        let client = if c.token { api.clone() } else { api.with_token(None) };
        let got = client.call(c.method, &c.url, c.body.as_deref());
        assert_eq!(got.status, c.status, "{} {}: {}", c.method, c.url, got.body);
        let schema = doc
            .response_schema(c.path, c.method, c.status)
            .unwrap_or_else(|| panic!("{} {} {} is not documented", c.method, c.path, c.status));
        let errors = doc.check(schema, &got.body);
        assert!(errors.is_empty(), "{} {} {}: {:?}\n{}", c.method, c.url, c.status, errors, got.body);
        answered.insert((c.path.to_string(), c.method.to_string(), c.status));
    }
    let documented = doc.operations();
    let untested: Vec<_> = documented.difference(&answered).collect();
    assert!(untested.is_empty(), "documented but never answered here: {untested:?}");
    // The stats had real rows to show, so their shape was checked; the
    // ban list, with a row in it, is checked here.
    assert!(api.get("/v1/stats").body["attached"].as_array().is_some_and(|a| a.len() == 2));
    assert!(api.get("/v1/stats").body["counters"].as_array().is_some_and(|c| !c.is_empty()));
    assert_eq!(api.post("/v1/bans", &ban_body(STRANGER_IP, 600)).status, 201);
    let list = api.get("/v1/bans");
    assert_eq!(list.body["bans"].as_array().map(Vec::len), Some(1));
    let errors = doc.check(doc.response_schema("/v1/bans", "GET", 200).unwrap(), &list.body);
    assert!(errors.is_empty(), "{errors:?}");
    drop(lab);
}

#[test]
fn a_ban_through_the_api_drops_the_source_is_reported_once_and_is_lifted() {
    let mut lab = Lab::new();
    lab.start_kamailio();
    let (hook, bodies) = lab.webhook_receiver();
    let (api_section, api) = lab.api_unix();
    lab.start_controller(
        &lab.customers_config(&format!("[events]\nformat = \"text\"\nwebhook = \"{hook}\"\n{api_section}")),
    );
    assert!(stranger_is_answered(&lab), "a customer is answered before");

    let first = api.post("/v1/bans", &ban_body(STRANGER_IP, 600));
    assert_eq!((first.status, &first.body["created"]), (201, &json!(true)), "{}", first.body);
    assert!(!stranger_is_answered(&lab), "banned: no answer at all");
    // The same ban again is one ban: one offense, one report (asked for
    // once before the sweep has announced it and once after).
    let again = api.post("/v1/bans", &ban_body(STRANGER_IP, 600));
    assert_eq!((again.status, &again.body["created"]), (200, &json!(false)), "{}", again.body);
    let listed = api.get("/v1/bans").body["bans"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!((&listed[0]["reason"], &listed[0]["offenses"]), (&json!("tls_auth_failures"), &json!(1)));
    assert_eq!(lab.ban_of(STRANGER_IP).unwrap()["reason"], "tls_auth_failures", "ban list agrees");

    let controller = lab.controller.as_mut().unwrap();
    controller.wait_for(&format!("event=ban source={STRANGER_IP} reason=tls_auth_failures"), Duration::from_secs(5));
    // Once more after the announcement, with another reason: still the
    // one ban, which keeps its own reason.
    let third = api.post("/v1/bans", &json!({"source": STRANGER_IP, "duration_secs": 60, "reason": "fail2ban"}));
    assert_eq!((third.status, &third.body["reason"]), (200, &json!("tls_auth_failures")), "{}", third.body);
    std::thread::sleep(Duration::from_millis(1500)); // a sweep or two more
    let reported = controller.text().matches(&format!("event=ban source={STRANGER_IP}")).count();
    assert_eq!(reported, 1, "reported once:\n{}", controller.text());
    assert_eq!(lab.metric("sipxdp_bans_total{reason=\"tls_auth_failures\"}"), 1.0);
    let hooked = bodies.lock().unwrap().iter().filter(|b| b.contains("tls_auth_failures")).count();
    assert_eq!(hooked, 1, "the webhook heard of it once");
    assert_eq!(lab.metric("sipxdp_api_requests_total{path=\"/v1/bans\",status=\"201\"}"), 1.0);

    // Lifted through the API: answered again, and the unban reported.
    let lifted = api.call("DELETE", &format!("/v1/bans/{STRANGER_IP}"), None);
    assert_eq!(lifted.status, 200, "{}", lifted.body);
    assert!(stranger_is_answered(&lab), "answered once lifted");
    lab.controller.as_mut().unwrap().wait_for(&format!("event=unban source={STRANGER_IP}"), Duration::from_secs(5));

    // A prefix: banned in the prefix tries, listed by its CIDR, lifted by it
    // with the slash escaped.
    let net = api.post("/v1/bans", &json!({"source": "198.18.2.0/24", "duration_secs": 60, "reason": "fail2ban"}));
    assert_eq!(net.status, 201, "{}", net.body);
    assert!(!stranger_is_answered(&lab));
    assert_eq!(api.call("DELETE", "/v1/bans/198.18.2.0%2F24", None).status, 200);
    assert!(stranger_is_answered(&lab));
}

#[test]
fn refused_requests_change_nothing_and_trusted_sources_are_never_banned() {
    let (lab, api) = start("");
    let refused = [
        (api.call("POST", "/v1/bans", Some("{\"source\": \"198.18.2.2\", \"duration_secs\": ")), 400),
        (api.call("POST", "/v1/bans", Some(r#"{"source": "198.18.2.2", "duration_secs": "600"}"#)), 400),
        (api.call("POST", "/v1/bans", Some(r#"{"source": "198.18.2.2", "duration_secs": 600, "until": 1}"#)), 400),
        (api.post("/v1/bans", &json!({"source": "198.18.2.2", "duration_secs": 0})), 422),
        (api.post("/v1/bans", &json!({"source": "198.18.2.2/24", "duration_secs": 60})), 422),
        (api.post("/v1/bans", &json!({"source": "198.18.2.2", "duration_secs": 60, "reason": "spite"})), 422),
        (api.post("/v1/bans", &json!({"source": "198.18.0.0/15", "duration_secs": 60})), 422),
        (api.post("/v1/bans", &json!({"source": "2001:2::/20", "duration_secs": 60})), 422),
        (api.post("/v1/bans", &ban_body(TRUNK_IP, 600)), 409),
        (api.post("/v1/bans", &ban_body("198.18.1.0/24", 600)), 409),
        (api.post("/v1/bans", &ban_body(&format!("::ffff:{TRUNK_IP}"), 600)), 409),
        (api.post("/v1/bans", &json!({"source": STRANGER_IP, "duration_secs": 60, "reason": "crowdsec"})), 422),
        (api.with_token(Some("not-the-token-at-all")).post("/v1/bans", &ban_body(STRANGER_IP, 600)), 401),
        (api.with_token(None).post("/v1/bans", &ban_body(STRANGER_IP, 600)), 401),
        (api.call("PUT", "/v1/bans", Some("{}")), 405),
        (api.get("/v1/nothing"), 404),
    ];
    for (got, status) in &refused {
        assert_eq!(got.status, *status, "{}", got.body);
        assert!(got.body["reason"].as_str().is_some_and(|r| !r.is_empty()), "says why: {}", got.body);
    }
    assert!(refused[8].0.body["reason"].as_str().unwrap().contains("trusted"), "{}", refused[8].0.body);
    std::thread::sleep(Duration::from_millis(1200)); // a sweep
    assert!(lab.bans().is_empty(), "nothing was banned: {:?}", lab.bans());
    assert!(stranger_is_answered(&lab));
    assert!(lab.sipp_register(&lab.trunk, TRUNK_IP, EDGE_TRUNK_IP), "the trunk registers");
    // A trusted source's reported failures are never counted.
    for _ in 0..AUTH_MAX * 2 {
        assert_eq!(api.post("/v1/auth-failures", &json!({"source": TRUNK_IP})).status, 409);
    }
    assert!(lab.ban_of(TRUNK_IP).is_none());
}

#[test]
fn reported_failures_ban_at_the_threshold_and_a_success_clears_them() {
    let (mut lab, api) = start("");
    let fail = |source: &str| api.post("/v1/auth-failures", &json!({"source": source}));
    // An office behind one NAT address: one user mistypes, another logs
    // in, the first mistypes again. Never AUTH_MAX failures since a
    // success: never banned.
    for round in 0..3 {
        for n in 1..AUTH_MAX {
            let r = fail(STRANGER_IP);
            assert_eq!((r.status, &r.body["failures"], &r.body["banned"]), (200, &json!(n), &json!(false)), "{round}");
            assert_eq!(r.body["threshold"], AUTH_MAX);
        }
        let ok = api.post("/v1/auth-successes", &json!({"source": STRANGER_IP}));
        assert_eq!((ok.status, &ok.body["failures"]), (200, &json!(0)), "{}", ok.body);
    }
    assert!(lab.ban_of(STRANGER_IP).is_none());
    assert!(stranger_is_answered(&lab), "the office is still answered");

    // A guesser: AUTH_MAX failures in a row ban, the kernel's way.
    for _ in 1..AUTH_MAX {
        assert_eq!(fail(STRANGER_IP).body["banned"], false);
    }
    let crossing = fail(STRANGER_IP);
    assert_eq!(crossing.body["banned"], true, "{}", crossing.body);
    assert!(!stranger_is_answered(&lab), "dropped at once");
    let ban = lab.ban_of(STRANGER_IP).expect("banned");
    assert_eq!((&ban["reason"], &ban["offenses"]), (&json!("auth_failures"), &json!(1)));
    lab.controller
        .as_mut()
        .unwrap()
        .wait_for(&format!("event=ban source={STRANGER_IP} reason=auth_failures"), Duration::from_secs(5));

    // IPv6 sources are counted per prefix: four addresses of one /64.
    for i in 1..=AUTH_MAX {
        let r = fail(&format!("2001:2:0:2::{i:x}"));
        assert_eq!(r.body["source"], "2001:2:0:2::/64");
        assert_eq!(r.body["banned"], i == AUTH_MAX, "{}", r.body);
    }
}

#[test]
fn reported_failures_in_monitor_mode_only_say_they_would_ban() {
    let mut lab = Lab::new();
    lab.start_kamailio();
    let (api_section, api) = lab.api_unix();
    let config = lab.customers_config(&format!("[auth_failures]\nmax = {AUTH_MAX}\n{api_section}"));
    lab.start_controller(&config.replace("[filter]\n", "[filter]\nmode = \"monitor\"\n"));
    for _ in 0..AUTH_MAX {
        assert_eq!(api.post("/v1/auth-failures", &json!({"source": STRANGER_IP})).body["banned"], false);
    }
    lab.controller
        .as_mut()
        .unwrap()
        .wait_for(&format!("event=would_ban source={STRANGER_IP} reason=auth_failures"), Duration::from_secs(5));
    assert!(lab.ban_of(STRANGER_IP).is_none(), "monitor mode bans nothing");
    assert!(stranger_is_answered(&lab));
}
