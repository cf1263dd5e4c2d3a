//! What operators' scripts and dashboards read must not change by
//! accident: the text and JSON of `stats`, `sources`, `allow list` and
//! `ban list`, the metrics page and the event lines, for one fixed run of
//! traffic through the real object, are compared byte for byte with the
//! files in `tests/golden/`. Times that depend on the clock are masked.
//!
//! To accept a deliberate change, run the test with `UPDATE_GOLDEN=1` and
//! review the diff of `tests/golden/`. Needs root.

use std::path::Path;

use aya::{
    maps::RingBuf,
    programs::{TestRun, TestRunOptions},
};
use sip_xdp::{apply::apply, commands, config::Config, events::Event, loader, maps::Maps, metrics::Metrics};
use sip_xdp_common::registry::{private_names::SIP_EVENTS, DEFAULT_SOURCES_CAPACITY};
use sip_xdp_tests::{frames::*, harness::TempBpffs, netns::fixture};

/// A response from the server (port 5060) to `dst`, for the egress program.
fn response4(dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut ip = V4::new([198, 18, 0, 1], IPPROTO_UDP);
    ip.dst = dst;
    let mut l4 = udp(40000, payload);
    l4[0..2].copy_from_slice(&5060u16.to_be_bytes());
    v4_frame(&[], &ip, &l4)
}

/// A MESSAGE with (wrong) credentials.
fn guess(i: u32) -> Vec<u8> {
    format!(
        "MESSAGE sip:100@198.18.0.1 SIP/2.0\r\nCall-ID: guess{i}\r\nCSeq: 1 MESSAGE\r\n\
         Authorization: Digest username=\"100\"\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// The fixed run: every kind of source the config distinguishes.
fn ingress_frames() -> Vec<Vec<u8>> {
    let options = b"OPTIONS sip:100@198.18.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.1\r\n\r\n";
    let scanner =
        b"OPTIONS sip:100@198.18.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.12\r\nUser-Agent: friendly-scanner\r\n\r\n";
    let invite = b"INVITE sip:+25261234567@198.18.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.11\r\n\r\n";
    let mut frames = Vec::new();
    for _ in 0..3 {
        frames.push(udp4([198, 18, 1, 2], 5060, REGISTER));
    }
    frames.push(v6_frame(&[], &V6::new(v6_addr("2001:db8:1::7"), IPPROTO_UDP), &udp(5060, REGISTER)));
    frames.push(v4_frame(&[], &V4::new([198, 18, 1, 3], IPPROTO_TCP), &tcp(5061, 0, INVITE)));
    for _ in 0..2 {
        frames.push(udp4([198, 19, 7, 7], 5060, REGISTER));
    }
    frames.push(udp4([192, 0, 2, 9], 5060, REGISTER));
    // Burst of 2, then 3 excess ban, then two dropped as banned.
    for _ in 0..7 {
        frames.push(udp4([203, 0, 113, 10], 5060, REGISTER));
    }
    frames.push(udp4([203, 0, 113, 11], 5060, options));
    frames.push(udp4([203, 0, 113, 11], 5060, invite));
    frames.push(udp4([203, 0, 113, 12], 5060, scanner));
    frames.push(udp4([203, 0, 113, 12], 5060, options));
    // Three password guesses, each answered with a 401 below.
    for i in 1..=3 {
        frames.push(udp4([203, 0, 113, 20], 5060, &guess(i)));
    }
    frames.push(udp4([198, 19, 1, 1], 5060, b"not SIP, to port 5060 anyway"));
    frames.push(v4_frame(&[], &V4::new([198, 19, 1, 1], IPPROTO_UDP), &udp(53, b"dns")));
    frames.push(arp_request());
    frames.push(udp4([198, 18, 1, 2], 5060, REGISTER)[..30].to_vec());
    frames
}

/// Replaces the digits of `key: N` (JSON) and of `Ns` columns (text) that
/// depend on the clock.
fn mask_clock(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let masked =
            if let Some(i) = line.find("\"remaining_secs\": ").or_else(|| line.find("\"last_seen_secs_ago\": ")) {
                let colon = i + line[i..].find(": ").expect("colon") + 2;
                let rest = &line[colon..];
                let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
                format!("{}N{}", &line[..colon], &rest[end..])
            } else {
                line.split(' ')
                    .map(|w| {
                        if w.len() > 1 && w.ends_with('s') && w[..w.len() - 1].bytes().all(|b| b.is_ascii_digit()) {
                            "Ns"
                        } else {
                            w
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            };
        out.push_str(&masked);
        out.push('\n');
    }
    out
}

fn compare(name: &str, actual: &str) -> Option<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("write golden file");
        return None;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (expected != actual)
        .then(|| format!("{name} differs from {}:\n--- expected\n{expected}\n--- actual\n{actual}", path.display()))
}

#[test]
fn cli_metrics_and_events_are_byte_identical_for_a_fixed_run() {
    let tmp = TempBpffs::new("golden");
    let pins = tmp.pins();
    let cfg = Config::load(&fixture("golden.toml")).expect("golden config");
    let mut ebpf = loader::load(Some(&pins), DEFAULT_SOURCES_CAPACITY).expect("load (needs root)");
    let mut ring = RingBuf::try_from(ebpf.take_map(SIP_EVENTS).expect("events")).expect("ring buffer");
    let mut maps = Maps::from_ebpf(&mut ebpf, Some(&pins)).expect("maps");
    apply(&mut maps, &cfg).expect("apply the config");

    for frame in ingress_frames() {
        let opts = TestRunOptions { data_in: Some(&frame), ..TestRunOptions::default() };
        loader::ingress(&mut ebpf).unwrap().test_run(opts).expect("ingress test run");
    }
    let ok = b"SIP/2.0 200 OK\r\nCSeq: 2 REGISTER\r\nContent-Length: 0\r\n\r\n";
    let mut responses = vec![response4([198, 18, 1, 2], ok)];
    for i in 1..=3 {
        let rejected =
            format!("SIP/2.0 401 Unauthorized\r\nCall-ID: guess{i}\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n");
        responses.push(response4([203, 0, 113, 20], rejected.as_bytes()));
    }
    for frame in responses {
        let opts = TestRunOptions { data_in: Some(&frame), ..TestRunOptions::default() };
        loader::egress(&mut ebpf).unwrap().test_run(opts).expect("egress test run");
    }

    let mut events = String::new();
    while let Some(record) = ring.next() {
        let event = Event::from_kernel(&record, cfg.filter.ipv6_prefix).expect("a known event");
        events.push_str(&event.to_text());
        events.push('\n');
    }
    let metrics = Metrics::new(20).unwrap();
    metrics.refresh(&Maps::open(&pins).unwrap(), &[]).unwrap();

    let outputs = [
        ("stats.txt", commands::stats(&pins, false).unwrap()),
        ("stats.json", commands::stats(&pins, true).unwrap()),
        ("sources.txt", mask_clock(&commands::sources(&pins, 20, false).unwrap())),
        ("sources.json", mask_clock(&commands::sources(&pins, 20, true).unwrap())),
        ("allow-list.txt", commands::allow_list(&pins, false).unwrap()),
        ("allow-list.json", commands::allow_list(&pins, true).unwrap()),
        ("ban-list.txt", mask_clock(&commands::ban_list(&pins, false).unwrap())),
        ("ban-list.json", mask_clock(&commands::ban_list(&pins, true).unwrap())),
        ("events.txt", events),
        ("metrics.txt", metrics.render().unwrap()),
    ];
    let differences: Vec<String> = outputs.iter().filter_map(|(name, text)| compare(name, text)).collect();
    assert!(differences.is_empty(), "{}", differences.join("\n\n"));
}
