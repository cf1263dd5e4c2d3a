//! The filter reads INVITEs as the server does: a differential test with
//! Kamailio as the oracle. Every generated encoding of an INVITE
//! (`sip_xdp_tests::encodings`) is first sent to a real Kamailio, which
//! answers with its own reading of the Request-URI's user part
//! (`tests/fixtures/kamailio-oracle.cfg`); the reference normaliser
//! ([`destination`]) says what that reading dials. Then the filter judges
//! the same bytes, and must refuse exactly the INVITEs the server's reading
//! puts in a blocked country (and those the server cannot unescape), and
//! let every other one through:
//!
//! - through BPF_PROG_TEST_RUN, each case as a UDP datagram, as one TCP
//!   segment, after two other messages in one segment (an OPTIONS and an
//!   INVITE with a body), and cut in two at every byte of its
//!   Request-URI;
//! - over veth with the controller attached, a representative few sent by
//!   a customer over UDP and TCP (whole, cut inside the Request-URI,
//!   pipelined): what the filter refuses gets no answer, everything else
//!   gets Kamailio's answer with the oracle's reading.
//!
//! `READING_DUMP=1` prints Kamailio's reading of every case. Needs root.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    net::UdpSocket,
    thread::sleep,
    time::{Duration, Instant},
};

use sip_xdp_common::{
    dialled::intl_prefixes,
    kernel_config::{dest_applies_profile, FilterConfig},
    map_types::RateProfile,
    rules::RuleClass,
    Action::{self, *},
    Reason::{self, *},
};
use sip_xdp_tests::{
    encodings::{self, destination, pipeline_head, Case, Destination, BLOCKED_COUNTRIES, INTL_PREFIXES},
    frames::udp4,
    harness::*,
    netns::*,
};

/// How long the oracle is given to answer.
const ORACLE_WAIT: Duration = Duration::from_millis(500);

// ---------------------------------------------------------------------
// The oracle: Kamailio's reading of each case.
// ---------------------------------------------------------------------

/// Kamailio's reading of a message, from its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Reading {
    /// An INVITE whose user part Kamailio unescapes to these bytes.
    User(Vec<u8>),
    /// An INVITE whose user part Kamailio cannot unescape.
    BadEscape,
    /// An INVITE whose Request-URI has no user part.
    NoUser,
    /// An INVITE whose Request-URI Kamailio cannot parse (no user part).
    UnparsedUri,
    /// A request that is not an INVITE to Kamailio.
    NotAnInvite,
    /// No answer: Kamailio did not take it for a request at all.
    Ignored,
}

impl fmt::Display for Reading {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Reading::User(user) => write!(f, "the user part {:?}", String::from_utf8_lossy(user)),
            Reading::BadEscape => write!(f, "a user part it cannot unescape"),
            Reading::NoUser => write!(f, "no user part"),
            Reading::UnparsedUri => write!(f, "a Request-URI it cannot parse"),
            Reading::NotAnInvite => write!(f, "not an INVITE"),
            Reading::Ignored => write!(f, "nothing (no answer)"),
        }
    }
}

/// The reading an answer of the oracle carries.
fn reading_of(answer: &str) -> Reading {
    let status = answer.lines().next().unwrap_or_default();
    let mut fields = status.splitn(3, ' ');
    let (_version, code, reason) = (fields.next(), fields.next(), fields.next().unwrap_or_default());
    match code {
        Some("299") => Reading::User(unhex(reason.strip_prefix("U ").unwrap_or_else(|| panic!("{status:?}")))),
        Some("297") => Reading::BadEscape,
        Some("298") => Reading::NoUser,
        Some("296") => Reading::UnparsedUri,
        Some("200") => Reading::NotAnInvite,
        _ => panic!("the oracle does not answer that: {status:?}"),
    }
}

fn unhex(hex: &str) -> Vec<u8> {
    assert!(hex.len().is_multiple_of(2), "hex of odd length: {hex:?}");
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex")).collect()
}

/// Kamailio's reading of one case as each transport brings it.
#[derive(Clone, Debug)]
struct Readings {
    udp: Reading,
    /// Alone on a fresh connection.
    tcp: Reading,
    /// After [`pipeline_head`] on a fresh connection, all in one write.
    tcp_pipelined: Reading,
}

/// Starts a lab whose Kamailio is the oracle (no filter attached yet).
fn oracle_lab() -> Lab {
    let mut lab = Lab::new();
    lab.start_kamailio_with("kamailio-oracle.cfg", None);
    lab
}

/// Asks the oracle for its readings of every case, from the trunk.
fn ask_oracle(lab: &Lab, cases: &[Case]) -> Vec<Readings> {
    let udp = lab.udp_in(&lab.trunk, &format!("{TRUNK_IP}:0"));
    cases
        .iter()
        .enumerate()
        .map(|(n, case)| Readings {
            udp: ask_over_udp(&udp, case),
            tcp: ask_over_tcp(lab, case, None),
            tcp_pipelined: ask_over_tcp(lab, case, Some(n)),
        })
        .collect()
}

fn ask_over_udp(sock: &UdpSocket, case: &Case) -> Reading {
    sock.send_to(&case.bytes, (EDGE_TRUNK_IP, 5060)).expect("send to the oracle");
    let deadline = Instant::now() + ORACLE_WAIT;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Some(answer) = recv_within(sock, left) else { break };
        let answer = String::from_utf8_lossy(&answer);
        // A late answer to an earlier case is skipped.
        if answer.contains(&case.call_id) {
            return reading_of(&answer);
        }
    }
    Reading::Ignored
}

/// On a fresh connection; after the [`pipeline_head`] numbered `head`, in
/// the same write, if given.
fn ask_over_tcp(lab: &Lab, case: &Case, head: Option<usize>) -> Reading {
    let mut stream = lab.tcp_in(&lab.trunk, TRUNK_IP, EDGE_TRUNK_IP);
    match head {
        Some(n) => {
            stream.send(&[pipeline_head(n), case.bytes.clone()].concat());
            let answer = stream.recv(ORACLE_WAIT).expect("the OPTIONS before it is answered");
            assert_eq!(reading_of(&answer), Reading::NotAnInvite, "{}", case.label);
            let answer = stream.recv(ORACLE_WAIT).expect("the INVITE before it is answered");
            assert_eq!(reading_of(&answer), Reading::User(b"+4930123456".to_vec()), "{}", case.label);
        }
        None => stream.send(&case.bytes),
    }
    stream.recv(ORACLE_WAIT).map_or(Reading::Ignored, |answer| reading_of(&answer))
}

// ---------------------------------------------------------------------
// What the filter must do with what the server reads.
// ---------------------------------------------------------------------

/// What the filter must do with a message the server reads so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expected {
    /// Refuse it, for this reason.
    Refused(Reason),
    /// Let it through (a customer's request within its limits).
    Passes,
    /// Either: the server ignores the message whatever the filter does.
    Either,
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Expected::Refused(reason) => write!(f, "refused ({})", reason.name()),
            Expected::Passes => write!(f, "let through"),
            Expected::Either => write!(f, "anything"),
        }
    }
}

fn expected(reading: &Reading) -> Expected {
    match reading {
        Reading::User(user) => match destination(user) {
            Destination::Blocked(_) => Expected::Refused(DestinationBlocked),
            _ => Expected::Passes,
        },
        Reading::BadEscape => Expected::Refused(Unreadable),
        Reading::NoUser | Reading::NotAnInvite => Expected::Passes,
        // A Request-URI the server cannot parse is no call it can make:
        // Kamailio's sanity checks and its relaying both fail on it. The
        // filter refusing one is no allowed call refused, and one it reads
        // as a blocked number (`sip:+252...@bad_host`) is better refused:
        // a server with a looser URI grammar than Kamailio's may dial it.
        Reading::UnparsedUri => Expected::Either,
        Reading::Ignored => Expected::Either,
    }
}

type Verdict = (u32, Action, Reason);

fn agrees(expected: Expected, verdict: Verdict) -> bool {
    match expected {
        Expected::Refused(reason) => verdict == (XDP_DROP, Drop, reason),
        Expected::Passes => verdict == (XDP_PASS, Pass, Limited),
        Expected::Either => true,
    }
}

fn show(verdict: Verdict) -> String {
    let xdp = if verdict.0 == XDP_DROP { "XDP_DROP" } else { "XDP_PASS" };
    format!("{xdp} {}/{}", verdict.1.name(), verdict.2.name())
}

/// A case on which the filter and the server disagree.
struct Disagreement {
    case: usize,
    /// How the case was sent.
    how: String,
    reading: Reading,
    expected: Expected,
    verdict: Verdict,
}

/// One line per disagreement, under its case's label.
fn report(cases: &[Case], disagreements: &[&Disagreement]) -> String {
    let mut by_case: BTreeMap<usize, Vec<&Disagreement>> = BTreeMap::new();
    for d in disagreements {
        by_case.entry(d.case).or_default().push(d);
    }
    let mut out = String::new();
    for (case, list) in by_case {
        out.push_str(&format!("  {}\n", cases[case].label));
        for d in list {
            out.push_str(&format!(
                "      {}: Kamailio read {} => must be {}; the filter: {}\n",
                d.how,
                d.reading,
                d.expected,
                show(d.verdict)
            ));
        }
    }
    out
}

// ---------------------------------------------------------------------
// The filter through BPF_PROG_TEST_RUN.
// ---------------------------------------------------------------------

/// Customers' sources: limited, profile 0, under the destination policy.
const CUSTOMERS: &str = "198.18.2.0/24";
/// One customer per way of sending, so none shares another's state.
const UDP_CLIENT: [u8; 4] = [198, 18, 2, 10];
const TCP_CLIENT: [u8; 4] = [198, 18, 2, 11];
const PIPELINE_CLIENT: [u8; 4] = [198, 18, 2, 12];
const CUT_CLIENT: [u8; 4] = [198, 18, 2, 13];

/// The edge's filter: customers under the destination policy of the
/// encodings ([`BLOCKED_COUNTRIES`], dialled with [`INTL_PREFIXES`]),
/// with limits no test here comes near.
fn filter() -> Filter {
    let cfg =
        FilterConfig { intl: intl_prefixes(&INTL_PREFIXES), dest_applies: dest_applies_profile(0), ..sip_config() };
    let mut f = Filter::load(cfg);
    let big = 1_000_000;
    f.profile(
        0,
        RateProfile {
            register_per_sec: big,
            register_burst: big,
            requests_per_sec: big,
            requests_burst: big,
            invite_per_sec: big,
            invite_burst: big,
        },
    );
    f.rule(CUSTOMERS, RuleClass::Limited, 0);
    f.maps.write_dest_rules(&destination_rules(&BLOCKED_COUNTRIES, &[])).expect("destination rules");
    f
}

/// Client ports for the test's connections, each new.
struct Ports(u16);

impl Ports {
    fn next(&mut self) -> u16 {
        self.0 = if self.0 >= 60_000 { 10_000 } else { self.0 + 1 };
        self.0
    }
}

/// Judges every case every way against Kamailio's readings; returns the
/// disagreements and how many cuts were judged.
fn judge_every_way(cases: &[Case], readings: &[Readings]) -> (Vec<Disagreement>, usize) {
    let mut f = filter();
    let mut ports = Ports(10_000);
    let mut found = Vec::new();
    let mut cuts = 0;
    for (n, (case, readings)) in cases.iter().zip(readings).enumerate() {
        let mut check = |how: String, reading: &Reading, verdict: Verdict| {
            let expected = expected(reading);
            if !agrees(expected, verdict) {
                found.push(Disagreement { case: n, how, reading: reading.clone(), expected, verdict });
            }
        };
        check("UDP datagram".into(), &readings.udp, f.judge(&udp4(UDP_CLIENT, 5060, &case.bytes)));
        let mut c = f.connect(TCP_CLIENT, ports.next());
        check("TCP, one segment".into(), &readings.tcp, c.send(&mut f, &case.bytes));
        let mut c = f.connect(PIPELINE_CLIENT, ports.next());
        let segment = [pipeline_head(n), case.bytes.clone()].concat();
        check("TCP, after two messages in one segment".into(), &readings.tcp_pipelined, c.send(&mut f, &segment));
        for (how, reading, verdict) in judge_cuts(&mut f, &mut ports, case, &readings.tcp) {
            check(how, &reading, verdict);
        }
        cuts += case.uri.len() + 1;
    }
    (found, cuts)
}

/// The case cut in two at every byte of its Request-URI (from before its
/// first byte to after its last), each on a fresh connection: the first
/// piece must pass (the server holds an unfinished message), the second
/// gets the verdict of the whole. Cuts that disagree alike are reported
/// together.
fn judge_cuts(f: &mut Filter, ports: &mut Ports, case: &Case, reading: &Reading) -> Vec<(String, Reading, Verdict)> {
    let first_piece = if expected(reading) == Expected::Either { Reading::Ignored } else { Reading::NotAnInvite };
    let mut wrong: BTreeMap<(&str, Verdict), Vec<usize>> = BTreeMap::new();
    for at in case.uri.start..=case.uri.end {
        let mut c = f.connect(CUT_CLIENT, ports.next());
        let (head, tail) = case.bytes.split_at(at);
        let verdict = c.send(f, head);
        if !agrees(expected(&first_piece), verdict) {
            wrong.entry(("first piece", verdict)).or_default().push(at - case.uri.start);
            continue;
        }
        let verdict = c.send(f, tail);
        if !agrees(expected(reading), verdict) {
            wrong.entry(("second piece", verdict)).or_default().push(at - case.uri.start);
        }
    }
    wrong
        .into_iter()
        .map(|((piece, verdict), offsets)| {
            let how =
                format!("TCP cut at Request-URI offsets {} (of 0..={}), {piece}", spans(&offsets), case.uri.len());
            let reading = if piece == "first piece" { first_piece.clone() } else { reading.clone() };
            (how, reading, verdict)
        })
        .collect()
}

/// `0-5, 9, 12-14`.
fn spans(offsets: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < offsets.len() {
        let mut j = i;
        while j + 1 < offsets.len() && offsets[j + 1] == offsets[j] + 1 {
            j += 1;
        }
        out.push(if i == j { offsets[i].to_string() } else { format!("{}-{}", offsets[i], offsets[j]) });
        i = j + 1;
    }
    out.join(", ")
}

/// What the oracle's UDP readings hold, so the test cannot pass on an
/// oracle that reads nothing or a generator that dials nothing.
fn assert_the_cases_cover_the_policy(cases: &[Case], readings: &[Readings]) {
    let labels: BTreeSet<&str> = cases.iter().map(|c| c.label.as_str()).collect();
    assert_eq!(labels.len(), cases.len(), "case labels are unique");
    let read_as = |want: fn(&Reading) -> bool| -> Vec<&Case> {
        cases.iter().zip(readings).filter(|(_, r)| want(&r.udp)).map(|(c, _)| c).collect()
    };
    let blocked = read_as(|r| matches!(r, Reading::User(u) if matches!(destination(u), Destination::Blocked(_))));
    let numbers = read_as(
        |r| matches!(r, Reading::User(u) if matches!(destination(u), Destination::International(_) | Destination::National)),
    );
    let malformed = read_as(|r| *r == Reading::BadEscape);
    let no_number = read_as(|r| {
        matches!(r, Reading::NoUser | Reading::UnparsedUri)
            || matches!(r, Reading::User(u) if destination(u) == Destination::NotANumber)
    });
    let count = |list: &[&Case], what: fn(&Case) -> bool| list.iter().filter(|c| what(c)).count();
    let escaped = |c: &Case| c.bytes[c.uri.clone()].contains(&b'%');
    let tel = |c: &Case| c.bytes[c.uri.clone()].to_ascii_lowercase().starts_with(b"tel:");
    let crlf = |c: &Case| c.bytes.starts_with(b"\r\n");
    let lower_case_method = |c: &Case| c.bytes.trim_ascii_start().starts_with(b"invite ");
    let body = |c: &Case| c.label.ends_with("+ SDP body");
    eprintln!(
        "{} cases; Kamailio reads (over UDP) {} as blocked, {} as other numbers, {} as malformed, {} as no number",
        cases.len(),
        blocked.len(),
        numbers.len(),
        malformed.len(),
        no_number.len()
    );
    let dump = std::env::var_os("READING_DUMP").is_some();
    for (case, r) in cases.iter().zip(readings) {
        if dump || r.udp == Reading::Ignored || r.udp != r.tcp || r.tcp != r.tcp_pipelined {
            eprintln!(
                "Kamailio reads {}: over UDP {}; over TCP {}; pipelined {}",
                case.label, r.udp, r.tcp, r.tcp_pipelined
            );
        }
    }
    assert!(cases.len() >= 250, "{} cases", cases.len());
    assert!(blocked.len() >= 80, "{} blocked", blocked.len());
    assert!(count(&blocked, escaped) >= 30, "blocked and escaped");
    assert!(count(&blocked, tel) >= 8, "blocked tel: URIs");
    assert!(count(&blocked, crlf) >= 20, "blocked after CRLFs");
    assert!(count(&blocked, lower_case_method) >= 20, "blocked with a lower-case method");
    assert!(count(&blocked, body) >= 20, "blocked with a body");
    assert!(numbers.len() >= 80, "{} other numbers", numbers.len());
    assert!(count(&numbers, escaped) >= 30, "other numbers escaped");
    assert!(count(&numbers, crlf) >= 20, "other numbers after CRLFs");
    assert!(malformed.len() >= 15, "{} malformed", malformed.len());
    assert!(no_number.len() >= 30, "{} no number", no_number.len());
}

/// Fails with every disagreement: there is no list of tolerated ones, so
/// a reading that differs from the server's is fixed where it is wrong
/// (the filter, or the generator's reference) before anything merges.
fn assert_no_disagreements(cases: &[Case], disagreements: &[Disagreement]) {
    let all: Vec<&Disagreement> = disagreements.iter().collect();
    assert!(
        all.is_empty(),
        "the filter's reading differs from Kamailio's on {} case(s):\n{}",
        all.iter().map(|d| d.case).collect::<BTreeSet<_>>().len(),
        report(cases, &all)
    );
}

#[test]
fn the_filter_reads_every_encoding_as_kamailio_does() {
    let cases = encodings::cases();
    let lab = oracle_lab();
    let started = Instant::now();
    let readings = ask_oracle(&lab, &cases);
    eprintln!("oracle asked in {:?}", started.elapsed());
    drop(lab);
    assert_the_cases_cover_the_policy(&cases, &readings);
    let started = Instant::now();
    let (disagreements, cuts) = judge_every_way(&cases, &readings);
    eprintln!("{} cases judged 3 ways and cut {cuts} ways in {:?}", cases.len(), started.elapsed());
    assert!(cuts >= 20 * cases.len(), "{cuts} cuts");
    assert_no_disagreements(&cases, &disagreements);
}

// ---------------------------------------------------------------------
// The filter over veth, in front of the real server.
// ---------------------------------------------------------------------

/// The controller's config for the veth run: the trunk trusted, the
/// stranger's network (the customer) limited far beyond what it sends and
/// under the destination policy of the encodings.
fn veth_config(lab: &Lab) -> String {
    let quoted = |list: &[&str]| list.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(", ");
    format!(
        r#"interfaces = ["{t}", "{s}"]
[filter]
default_class = "deny"
[[rule]]
cidrs = ["{TRUNK_IP}/32"]
class = "trusted"
[[rule]]
cidrs = ["198.18.2.0/24"]
class = "customers"
[profile.customers]
register_per_sec = 1000
register_burst = 1000
requests_per_sec = 1000
requests_burst = 1000
[destinations]
international_prefixes = [{intl}]
block = [{block}]
applies_to = ["customers"]
"#,
        t = lab.edge_trunk_if,
        s = lab.edge_stranger_if,
        intl = quoted(&INTL_PREFIXES),
        block = quoted(&BLOCKED_COUNTRIES),
    )
}

/// How long, from the last send, the server must stay silent about what
/// the filter refused (the wait is spent once, for all of them); and how
/// long an answer to what it let through may take at most.
const VETH_QUIET: Duration = Duration::from_millis(1500);
const VETH_PATIENCE: Duration = Duration::from_secs(5);

/// The ways a case is sent over veth, each on its own UDP socket or TCP
/// connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Way {
    Udp,
    Tcp,
    /// Two segments, cut inside the Request-URI.
    TcpCut,
    /// After [`pipeline_head`], in one write.
    TcpPipelined,
}

/// Where a case is cut over veth: somewhere inside its Request-URI, a
/// different place for each case.
fn veth_cut(n: usize, case: &Case) -> usize {
    case.uri.start + 1 + (n * 7) % (case.uri.len() - 1)
}

#[test]
fn over_veth_the_server_answers_exactly_what_the_filter_lets_through() {
    let cases = encodings::representative();
    let mut lab = oracle_lab();
    let readings = ask_oracle(&lab, &cases);
    let reading = |n: usize, way: Way| match way {
        Way::Udp => &readings[n].udp,
        Way::Tcp | Way::TcpCut => &readings[n].tcp,
        Way::TcpPipelined => &readings[n].tcp_pipelined,
    };
    let expectations: Vec<Expected> = (0..cases.len()).map(|n| expected(reading(n, Way::Udp))).collect();
    for (case, r) in cases.iter().zip(&readings) {
        // Every case here has a definite reading, the same every way.
        assert!(r.udp != Reading::Ignored && r.udp == r.tcp && r.tcp == r.tcp_pipelined, "{}: {r:?}", case.label);
    }
    let refused = |reason: Reason| expectations.iter().filter(|e| **e == Expected::Refused(reason)).count();
    assert!(refused(DestinationBlocked) >= 8 && refused(Unreadable) >= 3, "{expectations:?}");
    assert!(expectations.iter().filter(|e| **e == Expected::Passes).count() >= 8);

    lab.start_controller(&veth_config(&lab));
    let before = [lab.counter("drop", "destination_blocked").0, lab.counter("drop", "unreadable").0];

    // Everything is sent before anything is awaited.
    let udp = lab.udp_in(&lab.stranger, &format!("{STRANGER_IP}:0"));
    for case in &cases {
        udp.send_to(&case.bytes, (EDGE_STRANGER_IP, 5060)).expect("send over UDP");
    }
    let mut streams = BTreeMap::new();
    for (n, case) in cases.iter().enumerate() {
        let connect = || lab.tcp_in(&lab.stranger, STRANGER_IP, EDGE_STRANGER_IP);
        let mut whole = connect();
        whole.send(&case.bytes);
        let mut pipelined = connect();
        pipelined.send(&[pipeline_head(n), case.bytes.clone()].concat());
        let mut cut = connect();
        cut.send(&case.bytes[..veth_cut(n, case)]);
        streams.insert((n, Way::Tcp), whole);
        streams.insert((n, Way::TcpPipelined), pipelined);
        streams.insert((n, Way::TcpCut), cut);
    }
    // The second pieces go once the first have left, as segments of their
    // own (the connections do not delay small writes).
    sleep(Duration::from_millis(50));
    for (n, case) in cases.iter().enumerate() {
        streams.get_mut(&(n, Way::TcpCut)).expect("cut stream").send(&case.bytes[veth_cut(n, case)..]);
    }

    // The answers, by case and way: what the filter refuses must stay
    // unanswered for VETH_QUIET; what it lets through is awaited for up to
    // VETH_PATIENCE (a loaded machine may be slow to answer).
    let mut answers: BTreeMap<(usize, Way), Reading> = BTreeMap::new();
    let started = Instant::now();
    let (quiet, patience) = (started + VETH_QUIET, started + VETH_PATIENCE);
    let call = |answer: &str| cases.iter().position(|c| answer.contains(&c.call_id));
    let udp_expected = expectations.iter().filter(|e| **e == Expected::Passes).count();
    loop {
        let got = answers.len();
        let deadline = if got >= udp_expected { quiet } else { patience };
        let Some(left) = deadline.checked_duration_since(Instant::now()) else { break };
        let Some(answer) = recv_within(&udp, left) else { continue };
        let answer = String::from_utf8_lossy(&answer).to_string();
        let n = call(&answer).unwrap_or_else(|| panic!("an answer to no case: {answer}"));
        assert!(answers.insert((n, Way::Udp), reading_of(&answer)).is_none(), "two answers over UDP: {answer}");
    }
    for ((n, way), stream) in &mut streams {
        let deadline = if expectations[*n] == Expected::Passes { patience } else { quiet };
        // The pipeline's own messages are answered too when the case is
        // let through, or when the segment that carries them is.
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Some(answer) = stream.recv(left) else { break };
            if call(&answer) == Some(*n) {
                answers.insert((*n, *way), reading_of(&answer));
                break;
            }
        }
    }

    let mut wrong = Vec::new();
    for (n, case) in cases.iter().enumerate() {
        for way in [Way::Udp, Way::Tcp, Way::TcpCut, Way::TcpPipelined] {
            let want = reading(n, way);
            let got = answers.get(&(n, way));
            let ok = match expectations[n] {
                Expected::Refused(_) => got.is_none(),
                Expected::Passes => got == Some(want),
                Expected::Either => true,
            };
            if !ok {
                let got = got.map_or("no answer".to_string(), |r| format!("an answer: {r}"));
                wrong.push(format!("  {} ({way:?}): must be {}; Kamailio got {got}", case.label, expectations[n]));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "over veth, the server's answers differ from the filter's reading:\n{}",
        wrong.join("\n")
    );

    // Each refusal was counted, for its reason: at least once per
    // refused case and way (TCP retransmissions are refused again).
    let after = [lab.counter("drop", "destination_blocked").0, lab.counter("drop", "unreadable").0];
    for (i, reason) in [DestinationBlocked, Unreadable].into_iter().enumerate() {
        let least = 4 * refused(reason) as u64;
        assert!(after[i] - before[i] >= least, "{} drops counted, {least} at least", reason.name());
    }
    // And reported: the number as the filter read it (a tel: URI's host
    // among them), and why the unreadable were.
    let controller = lab.controller.as_mut().expect("controller");
    for line in [
        format!("event=destination_blocked source={STRANGER_IP} number=+25261234567"),
        format!("event=unreadable source={STRANGER_IP} reason=malformed_escape"),
    ] {
        controller.wait_for(&line, Duration::from_secs(5));
    }
}

#[test]
fn the_reference_normaliser_follows_the_number_rules() {
    use Destination::*;
    let read = |user: &str| destination(user.as_bytes());
    assert_eq!(read("+25261234567"), Blocked("252"));
    assert_eq!(read("0025261234567"), Blocked("252"));
    assert_eq!(read("01122461234567"), Blocked("224"));
    assert_eq!(read("+252-61.(234)567;user=phone"), Blocked("252"));
    assert_eq!(read("+252@evil"), Blocked("252"));
    assert_eq!(read("+252 x"), Blocked("252"));
    assert_eq!(read("+4930123456"), International("4930123456".into()));
    assert_eq!(read("0114930"), International("4930".into()));
    assert_eq!(read("+25"), International("25".into()), "shorter than any blocked country");
    assert_eq!(read("0612345678"), National);
    assert_eq!(read("00"), National, "a dialling prefix alone dials nothing abroad");
    assert_eq!(read("100"), National);
    assert_eq!(read("alice"), NotANumber);
    assert_eq!(read("+"), NotANumber);
    assert_eq!(read("++252"), NotANumber);
    assert_eq!(read("252+1"), NotANumber);
    assert_eq!(read("+252%99"), NotANumber, "a % left after unescaping is no digit");
    assert_eq!(read("+252/1"), NotANumber);
    assert_eq!(read(""), NotANumber);
}
