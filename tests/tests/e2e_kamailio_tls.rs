//! End to end for password guessing over TLS, which the kernel cannot
//! read: Kamailio with the repository's example TLS config
//! (`examples/kamailio-tls.cfg`) reports each wrong and right password to
//! the controller's control API (TCP, bearer token), and sip-xdp bans at
//! its own threshold. Needs root.

use std::time::{Duration, Instant};

use serde_json::json;
use sip_xdp_tests::netns::*;

/// Reported failures that ban.
const AUTH_MAX: usize = 4;
/// A phone of the same customer network as the guesser.
const PHONE_IP: &str = "198.18.2.3";

#[test]
fn a_password_guesser_over_tls_is_banned_while_a_phone_over_tls_keeps_registering() {
    let mut lab = Lab::new();
    lab.add_stranger_addr(PHONE_IP);
    let cert = lab.start_kamailio_tls();
    let (api, client) = lab.api_tcp();
    lab.start_controller(&lab.customers_config(&format!("[auth_failures]\nmax = {AUTH_MAX}\nwindow_secs = 60\n{api}")));
    assert_eq!(
        lab.tls_register(PHONE_IP, EDGE_STRANGER_IP, "secret", &cert, 1),
        [Some(200)],
        "the phone registers over TLS before"
    );

    // The phone's user mistypes three times, then gets it right, twice
    // over: six wrong passwords, never AUTH_MAX since a right one.
    for round in 0..2 {
        let typos = lab.tls_register(PHONE_IP, EDGE_STRANGER_IP, "typo", &cert, AUTH_MAX as u32 - 1);
        assert!(typos.iter().all(|s| *s == Some(401)), "round {round}: {typos:?}");
        assert_eq!(lab.tls_register(PHONE_IP, EDGE_STRANGER_IP, "secret", &cert, 1), [Some(200)], "round {round}");
    }

    // The guesser: a new TLS connection per guess, each refused (401).
    // Kamailio reports a wrong password before it answers, so the ban is
    // in force by the time the guesser reads the 401 that crossed the
    // threshold.
    let started = Instant::now();
    let guesses = lab.tls_register(STRANGER_IP, EDGE_STRANGER_IP, "guess", &cert, AUTH_MAX as u32);
    let answered = started.elapsed();
    let ban = lab.ban_of(STRANGER_IP).expect("the guesser is banned");
    assert_eq!(guesses, [Some(401); AUTH_MAX], "answered until the threshold");
    assert_eq!((&ban["reason"], &ban["offenses"]), (&json!("auth_failures"), &json!(1)));
    println!(
        "TLS guesser: {AUTH_MAX} wrong passwords over {AUTH_MAX} TLS connections in {:.0} ms, each reported by \
         Kamailio; banned when the last 401 arrived",
        answered.as_secs_f64() * 1000.0
    );
    let refused = lab.tls_register(STRANGER_IP, EDGE_STRANGER_IP, "guess", &cert, 2);
    assert_eq!(refused, [None, None], "banned: its new TLS connections get no answer at all");
    assert!(
        lab.tls_register(STRANGER_IP, EDGE_STRANGER_IP, "secret", &cert, 1) == [None],
        "not even the right password"
    );
    lab.controller
        .as_mut()
        .unwrap()
        .wait_for(&format!("event=ban source={STRANGER_IP} reason=auth_failures"), Duration::from_secs(5));

    // The phone beside it is untouched, and keeps registering over TLS.
    assert_eq!(lab.tls_register(PHONE_IP, EDGE_STRANGER_IP, "secret", &cert, 2), [Some(200), Some(200)]);
    assert!(lab.ban_of(PHONE_IP).is_none(), "{:?}", lab.bans());
    let phone = client.post("/v1/auth-successes", &json!({"source": PHONE_IP}));
    assert_eq!((phone.status, &phone.body["banned"]), (200, &json!(false)));
    assert_eq!(lab.metric("sipxdp_api_requests_total{path=\"/v1/auth-failures\",status=\"200\"}"), 10.0);
}
