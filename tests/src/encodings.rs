//! INVITE encodings for the differential test of the filter's reading
//! (`tests/tests/e2e_reading.rs`): a few numbers dialled in every way a
//! caller can spell them (dialling forms, percent-escapes, separators,
//! schemes and URI shapes, CRLF prefixes, method case, bodies), and a few
//! spellings at the edges of what a server reads. Each case is a whole
//! INVITE. What a case dials is not decided here: Kamailio's reading of
//! it (the oracle, `tests/fixtures/kamailio-oracle.cfg`) is, and
//! [`destination`] then says what that reading dials under the policy.
//!
//! Deterministic: no randomness, the same cases in the same order on every
//! run, so a failure names a case that can be sent again.

use std::ops::Range;

/// The international dialling prefixes of the policy under test (the
/// filter's config and [`destination`] share them).
pub const INTL_PREFIXES: [&str; 2] = ["00", "011"];
/// The blocked countries of the policy under test (Somalia, Guinea).
pub const BLOCKED_COUNTRIES: [&str; 2] = ["252", "224"];

/// The host the INVITEs are addressed to, and the caller's address (in
/// Via, From, Contact; the server answers the source, `rport`).
const SERVER: &str = "198.18.0.1";
const CALLER: &str = "198.18.2.2";

/// One INVITE as a caller sends it.
#[derive(Clone, Debug)]
pub struct Case {
    /// What it dials and how, then its start line (CRLFs and all) as a
    /// Rust string: unique, and what the failure messages name.
    pub label: String,
    pub bytes: Vec<u8>,
    /// Where the Request-URI lies in `bytes`.
    pub uri: Range<usize>,
    /// Its Call-ID, which the server's answer repeats.
    pub call_id: String,
}

/// How a message is laid out around its Request-URI.
#[derive(Clone, Copy, Debug)]
pub struct Framing {
    /// Bytes before the method: CRLFs, which RFC 3261 §7.5 lets a server
    /// skip (and the keep-alives of RFC 5626), or other bytes a server
    /// might skip too.
    pub before: &'static str,
    pub method: &'static str,
    /// Between the method and the URI (the grammar says one SP).
    pub gap: &'static str,
    /// Between the URI and the version (the grammar says one SP).
    pub after: &'static str,
    /// An SDP offer as the body (with its Content-Type and length).
    pub body: bool,
}

impl Framing {
    pub const PLAIN: Framing = Framing { before: "", method: "INVITE", gap: " ", after: " ", body: false };

    /// The framing of the `i`th case of a list: 0 to 3 CRLFs before the
    /// start line, the method in three cases, an SDP body on every third
    /// case; cycled so that every dialling form meets several of them.
    pub fn nth(i: usize) -> Framing {
        const BEFORE: [&str; 4] = ["", "\r\n", "\r\n\r\n", "\r\n\r\n\r\n"];
        const METHODS: [&str; 3] = ["INVITE", "invite", "Invite"];
        Framing { before: BEFORE[i % 4], method: METHODS[(i / 4) % 3], body: i % 3 == 1, ..Framing::PLAIN }
    }

    pub fn with_before(self, before: &'static str) -> Framing {
        Framing { before, ..self }
    }

    pub fn with_method(self, method: &'static str) -> Framing {
        Framing { method, ..self }
    }

    pub fn with_body(self) -> Framing {
        Framing { body: true, ..self }
    }
}

/// An SDP offer, as phones send them.
const SDP: &str = "v=0\r\no=caller 1700000000 1700000001 IN IP4 198.18.2.2\r\ns=call\r\nc=IN IP4 198.18.2.2\r\n\
                   t=0 0\r\nm=audio 7078 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
                   a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

/// The INVITE numbered `n` (its Call-ID and branch) to `uri`, laid out
/// as `framing` says; `what` describes it for the label.
pub fn invite(n: usize, what: &str, framing: Framing, uri: &str) -> Case {
    let Framing { before, method, gap, after, body } = framing;
    let start = format!("{before}{method}{gap}");
    let start_line = format!("{start}{uri}{after}SIP/2.0");
    let call_id = format!("reading-{n}@{CALLER}");
    let (content, body_text) = if body { ("Content-Type: application/sdp\r\n", SDP) } else { ("", "") };
    let message = format!(
        "{start_line}\r\nVia: SIP/2.0/UDP {CALLER}:5060;rport;branch=z9hG4bK-reading-{n}\r\nMax-Forwards: 70\r\n\
         From: <sip:caller@{CALLER}>;tag=reading-{n}\r\nTo: <sip:callee@{SERVER}>\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:caller@{CALLER}:5060>\r\n{content}Content-Length: {}\r\n\r\n{body_text}",
        body_text.len()
    );
    let label = format!("{what} | {start_line:?}{}", if body { " + SDP body" } else { "" });
    Case { label, bytes: message.into_bytes(), uri: start.len()..start.len() + uri.len(), call_id }
}

/// An OPTIONS numbered `n`, to go before an INVITE in one TCP segment.
pub fn options(n: usize) -> Vec<u8> {
    format!(
        "OPTIONS sip:{SERVER} SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER}:5060;rport;branch=z9hG4bK-options-{n}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:caller@{CALLER}>;tag=options-{n}\r\nTo: <sip:{SERVER}>\r\n\
         Call-ID: options-{n}@{CALLER}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// What goes before an INVITE in one TCP segment when several messages
/// share one (`n` numbers them): an OPTIONS, then an INVITE to Germany
/// with an SDP body, whose Content-Length is all that says where the next
/// message starts.
pub fn pipeline_head(n: usize) -> Vec<u8> {
    let allowed = invite(PIPELINE_HEAD_CALLS + n, "", Framing::PLAIN.with_body(), "sip:+4930123456@198.18.0.1");
    [options(n), allowed.bytes].concat()
}

/// The Call-IDs of [`pipeline_head`]'s INVITEs are numbered from here, far
/// from any case's.
const PIPELINE_HEAD_CALLS: usize = 1_000_000;

/// What the cases dial, as a phone would send it before any encoding.
const NUMBERS: [(&str, &str); 10] = [
    ("Somalia +", "+25261234567"),
    ("Somalia 00", "0025261234567"),
    ("Guinea 011", "01122461234567"),
    ("Guinea +", "+22461234567"),
    ("Germany +", "+4930123456"),
    ("Germany 00", "004930123456"),
    ("Germany 011", "0114930123456"),
    ("national", "0612345678"),
    ("extension", "100"),
    ("name", "alice"),
];

fn number(what: &str) -> &'static str {
    NUMBERS.iter().find(|(w, _)| *w == what).map(|(_, n)| *n).expect("a number of NUMBERS")
}

/// A way to write a user part: `None` where it does not apply to that
/// user part or changes nothing.
type Encoding = (&'static str, fn(&str) -> Option<String>);

/// The encodings of a user part, each tried on every number.
const ENCODINGS: [Encoding; 15] = [
    ("as is", as_is),
    ("plus escaped", plus_escaped),
    ("plus escaped, lower-case hex", plus_escaped_lower),
    ("plus escaped twice", plus_escaped_twice),
    ("dialling prefix escaped", prefix_escaped),
    ("digits escaped", digits_escaped),
    ("every character escaped, mixed-case hex", all_escaped),
    ("separators", separated),
    ("separators escaped", separators_escaped),
    ("escaped ; then a parameter", escaped_semicolon),
    ("raw ; then a parameter", raw_semicolon),
    ("escaped @ then a host", escaped_at),
    ("escaped : then digits", escaped_colon),
    ("escaped space then text", escaped_space),
    ("escaped % then digits", escaped_percent),
];

fn as_is(user: &str) -> Option<String> {
    Some(user.to_string())
}

fn plus_escaped(user: &str) -> Option<String> {
    user.strip_prefix('+').map(|rest| format!("%2B{rest}"))
}

fn plus_escaped_lower(user: &str) -> Option<String> {
    user.strip_prefix('+').map(|rest| format!("%2b{rest}"))
}

/// `%252B`: unescaped once (as servers do) it is `%2B`, not a plus.
fn plus_escaped_twice(user: &str) -> Option<String> {
    user.strip_prefix('+').map(|rest| format!("%252B{rest}"))
}

/// `00` or `011` written as escapes.
fn prefix_escaped(user: &str) -> Option<String> {
    let prefix = INTL_PREFIXES.iter().find(|p| user.starts_with(*p))?;
    let escaped: String = prefix.bytes().map(|c| format!("%{c:02X}")).collect();
    Some(format!("{escaped}{}", &user[prefix.len()..]))
}

fn digits_escaped(user: &str) -> Option<String> {
    let escaped: String =
        user.chars().map(|c| if c.is_ascii_digit() { format!("%{:02X}", c as u8) } else { c.to_string() }).collect();
    (escaped != user).then_some(escaped)
}

/// Every character as an escape, hex digits alternately upper- and
/// lower-case (`%2B%32...`, `%61%6c%69%63%65`).
fn all_escaped(user: &str) -> Option<String> {
    Some(
        user.bytes()
            .enumerate()
            .map(|(i, c)| if i % 2 == 0 { format!("%{c:02X}") } else { format!("%{c:02x}") })
            .collect(),
    )
}

/// The visual separators of RFC 3966 between the digits:
/// `+252-61.23(45)67`.
fn separated(user: &str) -> Option<String> {
    with_separators(user, ["-", ".", "(", ")"])
}

/// The same separators as escapes, in both cases of hex.
fn separators_escaped(user: &str) -> Option<String> {
    with_separators(user, ["%2D", "%2e", "%28", "%29"])
}

/// `user` with `separators` before its 4th, 6th, 8th and 10th digits
/// (those it has).
fn with_separators(user: &str, separators: [&str; 4]) -> Option<String> {
    let mut out = String::new();
    let mut digits = 0;
    for c in user.chars() {
        if c.is_ascii_digit() {
            if let Some(i) = [3, 5, 7, 9].iter().position(|&at| at == digits) {
                out.push_str(separators[i]);
            }
            digits += 1;
        }
        out.push(c);
    }
    (out != user).then_some(out)
}

/// A decoded `;` after the number: it ends the number as a raw one would.
fn escaped_semicolon(user: &str) -> Option<String> {
    Some(format!("{user}%3Bnpdi"))
}

/// A raw `;` inside the user part (before the `@`): Kamailio keeps it and
/// what follows in the user part.
fn raw_semicolon(user: &str) -> Option<String> {
    Some(format!("{user};npdi"))
}

/// A decoded `@` is data: it does not end the user part.
fn escaped_at(user: &str) -> Option<String> {
    Some(format!("{user}%40{SERVER}"))
}

fn escaped_colon(user: &str) -> Option<String> {
    Some(format!("{user}%3A99"))
}

fn escaped_space(user: &str) -> Option<String> {
    Some(format!("{user}%20x"))
}

/// `%2599` decodes to `%99`: a percent sign, not the start of an escape.
fn escaped_percent(user: &str) -> Option<String> {
    Some(format!("{user}%2599"))
}

/// Where a user part goes: a name and the Request-URI around `{u}`.
const SHAPES: [(&str, &str); 15] = [
    ("sips", "sips:{u}@198.18.0.1"),
    ("scheme upper-case", "SIP:{u}@198.18.0.1"),
    ("sips, scheme mixed-case", "sIpS:{u}@198.18.0.1"),
    ("tel", "tel:{u}"),
    ("TEL with phone-context", "TEL:{u};phone-context=example.com"),
    ("tel with a numeric phone-context", "tel:{u};phone-context=+252"),
    ("user=phone after the host", "sip:{u}@198.18.0.1;user=phone"),
    ("user=phone in the user part", "sip:{u};user=phone@198.18.0.1"),
    ("password", "sip:{u}:secret@198.18.0.1"),
    ("port and transport", "sip:{u}@198.18.0.1:5060;transport=tcp"),
    ("IPv6 host", "sip:{u}@[2001:2::1]"),
    ("headers after the host", "sip:{u}@198.18.0.1?Subject=call"),
    ("no user part: the number is the host", "sip:{u}"),
    ("no user part: host and parameter", "sip:{u};transport=tcp"),
    ("no user part: host and port", "sip:{u}:5060"),
];

/// The numbers every shape is tried with.
const SHAPE_NUMBERS: [&str; 6] = ["Somalia +", "Somalia 00", "Guinea 011", "Germany +", "national", "name"];

/// Escapes a server cannot decode, or decodes to bytes no number holds,
/// appended to a user part.
const ODD_ESCAPES: [(&str, &str); 11] = [
    ("escape with a non-hex digit", "%G1"),
    ("escape cut short", "%2"),
    ("trailing %", "%"),
    ("escaped CR", "%0D"),
    ("escaped NUL", "%00"),
    ("escaped TAB", "%09"),
    ("escaped unit separator, the last control byte", "%1F"),
    ("escaped tilde, the last printable byte", "%7E"),
    ("escaped DEL", "%7F"),
    ("escaped non-ASCII byte", "%80"),
    ("escaped non-ASCII byte, lower-case hex", "%ff"),
];

/// The numbers the odd escapes are tried with.
const ODD_NUMBERS: [&str; 3] = ["Somalia +", "Germany +", "name"];

/// The encodings also tried inside `tel:` URIs.
const TEL_ENCODINGS: [&str; 4] = ["plus escaped", "digits escaped", "separators escaped", "escaped ; then a parameter"];

/// Every generated case: encodings × numbers in `sip:user@host`, shapes ×
/// numbers, odd escapes, escapes inside `tel:`, and the spellings at the
/// edges of the grammar. Framings cycle over the list ([`Framing::nth`]),
/// except for the edge spellings, which each set their own.
pub fn cases() -> Vec<Case> {
    let mut uris: Vec<(String, String)> = Vec::new();
    for (encoding, encode) in ENCODINGS {
        for (what, user) in NUMBERS {
            if let Some(user) = encode(user) {
                uris.push((format!("{what}, {encoding}"), format!("sip:{user}@{SERVER}")));
            }
        }
    }
    for (shape, uri) in SHAPES {
        for what in SHAPE_NUMBERS {
            uris.push((format!("{what}, {shape}"), uri.replace("{u}", number(what))));
        }
    }
    for (odd, escape) in ODD_ESCAPES {
        for what in ODD_NUMBERS {
            uris.push((format!("{what}, {odd}"), format!("sip:{}{escape}@{SERVER}", number(what))));
        }
    }
    for what in ODD_NUMBERS {
        let user = number(what);
        uris.push((format!("{what}, malformed escape first"), format!("sip:%zz{user}@{SERVER}")));
        uris.push((format!("{what}, malformed escape in the password"), format!("sip:{user}:%zz@{SERVER}")));
        uris.push((format!("{what}, malformed escape after the host"), format!("sip:{user}@{SERVER};x=%zz")));
    }
    for encoding in TEL_ENCODINGS {
        let encode = ENCODINGS.iter().find(|(name, _)| *name == encoding).expect("an encoding").1;
        for what in ["Somalia +", "Germany +"] {
            let user = encode(number(what)).expect("applies to + numbers");
            uris.push((format!("{what}, tel, {encoding}"), format!("tel:{user}")));
        }
    }
    let mut cases: Vec<Case> =
        uris.iter().enumerate().map(|(n, (what, uri))| invite(n, what, Framing::nth(n), uri)).collect();
    let first = cases.len();
    cases.extend(edge_cases().into_iter().enumerate().map(|(i, (what, framing, uri))| {
        invite(first + i, what, framing, &uri.replace("{somalia}", number("Somalia +")))
    }));
    cases
}

/// Spellings at the edges of the grammar, each with its own framing:
/// what precedes the start line, blanks inside it, schemes a server may
/// know and the filter not, and numbers longer than the filter keeps.
fn edge_cases() -> Vec<(&'static str, Framing, String)> {
    let plain = Framing::PLAIN;
    let somalia = "sip:{somalia}@198.18.0.1".to_string();
    vec![
        ("Somalia +, a lone LF before the start line", plain.with_before("\n"), somalia.clone()),
        ("Somalia +, a lone CR before the start line", plain.with_before("\r"), somalia.clone()),
        ("Somalia +, a space before the method", plain.with_before(" "), somalia.clone()),
        ("Somalia +, a TAB before the method", plain.with_before("\t"), somalia.clone()),
        ("Somalia +, a NUL before the method", plain.with_before("\0"), somalia.clone()),
        ("Somalia +, CRLF, space, CRLF before the method", plain.with_before("\r\n \r\n"), somalia.clone()),
        ("Somalia +, TAB between method and URI", Framing { gap: "\t", ..plain }, somalia.clone()),
        ("Somalia +, two spaces between method and URI", Framing { gap: "  ", ..plain }, somalia.clone()),
        ("Somalia +, two spaces after the URI", Framing { after: "  ", ..plain }, somalia.clone()),
        ("Somalia +, TAB after the URI", Framing { after: "\t", ..plain }, somalia.clone()),
        ("Somalia +, not a method (INVITES)", plain.with_method("INVITES"), somalia.clone()),
        ("Somalia +, tels: scheme", plain, "tels:{somalia}".to_string()),
        ("Somalia +, urn: scheme with a user part", plain, "urn:{somalia}@198.18.0.1".to_string()),
        ("urn: service URN", plain, "urn:service:sos".to_string()),
        ("Somalia +, tel with @ and a host", plain, "tel:{somalia}@198.18.0.1".to_string()),
        (
            "Germany +, tel with phone-context, @ and a host",
            plain,
            "tel:+4930123456;phone-context=+49@198.18.0.1".into(),
        ),
        ("Somalia +, a host Kamailio does not parse", plain, "sip:{somalia}@bad_host".to_string()),
        ("empty user part", plain, "sip:@198.18.0.1".to_string()),
        ("Somalia, plus twice", plain, "sip:%2B%2B25261234567@198.18.0.1".to_string()),
        // Kamailio parses tel: with the sip: grammar, then takes the host
        // for the number: with an `@`, what follows it is dialled.
        ("Germany +, tel, then @ and a Somali number", plain, "tel:+4930123456@0025261234567".into()),
        (
            "Germany +, tel with phone-context, then @ and a Somali number",
            plain,
            "tel:+4930123456;phone-context=+49@0025261234567".into(),
        ),
        ("Germany +, tel, then @ and a Somali number with separators", plain, "tel:+4930123456@00-252-61234567".into()),
        ("Somalia +, tel, then @ and a German number", plain, "tel:+25261234567@004930123456".into()),
        ("malformed escape, tel, then @ and a Somali number", plain, "tel:%zz@0025261234567".into()),
        ("Somalia +, tel with @ and a host name", plain, "tel:+25261234567@pbx.example".into()),
        // urn: as sip:, but a colon followed by more than digits leaves
        // a user part even without an `@`.
        ("Somalia 00, urn: with a colon and a name", plain, "urn:0025261234567:x".into()),
        ("Somalia 00, urn: with a colon and a port", plain, "urn:0025261234567:5060".into()),
        ("Somalia 00, sip: with a colon and a port", plain, "sip:0025261234567:5060".into()),
        // A port and a parameter before an `@`: no URI to Kamailio.
        ("Somalia +, a port and a parameter before the @", plain, "sip:+25261234567:5060;x@198.18.0.1".into()),
        ("Germany +, a port and a malformed escape before the @", plain, "sip:+4930123456:5060;%zz@198.18.0.1".into()),
        ("name, an escaped control byte in the password", plain, "sip:alice:%00@198.18.0.1".into()),
        ("Somalia +, longer than the digits kept", plain, format!("sip:+252{}@198.18.0.1", "7".repeat(30))),
        ("Somalia +, separators before the digits", plain, format!("tel:+{}25261234567", "-".repeat(100))),
        ("Germany +, longer than the digits kept", plain, format!("sip:+49{}@198.18.0.1", "3".repeat(30))),
    ]
}

/// A representative few of the encodings, for the end-to-end run over
/// veth (each is sent four ways there): blocked, malformed and allowed
/// numbers, with CRLF prefixes, escapes, `tel:`, lower-case methods and
/// bodies among them. Numbered apart from [`cases`].
pub fn representative() -> Vec<Case> {
    let plain = Framing::PLAIN;
    let crlf = |n: usize| ["", "\r\n", "\r\n\r\n", "\r\n\r\n\r\n"][n];
    let list: Vec<(&str, Framing, String)> = vec![
        ("Somalia +", plain, "sip:+25261234567@198.18.0.1".into()),
        ("Somalia 00, two CRLFs", plain.with_before(crlf(2)), "sip:0025261234567@198.18.0.1".into()),
        ("Guinea 011, lower-case method", plain.with_method("invite"), "sip:01122461234567@198.18.0.1".into()),
        ("Somalia +, plus escaped, body", plain.with_body(), "sip:%2B25261234567@198.18.0.1".into()),
        (
            "Guinea +, every character escaped, a CRLF",
            plain.with_before(crlf(1)),
            "sip:%2B%32%32%34%36%31%32%33%34%35%36%37@198.18.0.1".into(),
        ),
        ("Somalia +, tel with separators", plain, "tel:+252-61-234-567;phone-context=example.com".into()),
        ("Somalia +, sips, separators escaped", plain, "sips:+252%2D61%2e234%28567%29@198.18.0.1".into()),
        ("Somalia +, escaped ;", plain, "sip:+25261234567%3Bnpdi@198.18.0.1".into()),
        ("Somalia +, user=phone in the user part", plain, "sip:+25261234567;user=phone@198.18.0.1".into()),
        (
            "Guinea +, TEL, three CRLFs, Invite",
            plain.with_before(crlf(3)).with_method("Invite"),
            "TEL:+22461234567".into(),
        ),
        ("Somalia +, non-hex escape", plain, "sip:+25261234567%G1@198.18.0.1".into()),
        ("Germany +, trailing %", plain.with_before(crlf(1)), "sip:+4930123456%@198.18.0.1".into()),
        ("name, escape cut short", plain.with_method("invite"), "sip:alice%2@198.18.0.1".into()),
        ("Germany +", plain, "sip:+4930123456@198.18.0.1".into()),
        (
            "Germany 00, a CRLF, lower-case method",
            plain.with_before(crlf(1)).with_method("invite"),
            "sip:004930123456@198.18.0.1".into(),
        ),
        ("Germany +, plus escaped, body", plain.with_body(), "sip:%2b4930123456@198.18.0.1".into()),
        ("Germany +, tel with separators", plain, "tel:+49-(30)-123.456".into()),
        ("national, three CRLFs", plain.with_before(crlf(3)), "sip:0612345678@198.18.0.1".into()),
        ("extension", plain, "sip:100@198.18.0.1".into()),
        ("name, escaped", plain.with_method("Invite"), "sip:%61lice@198.18.0.1".into()),
        ("Somalia +, no user part", plain, "sip:+25261234567;transport=tcp".into()),
        ("Germany +, escaped @", plain, "sip:+4930123456%40198.18.0.1@198.18.0.1".into()),
        ("Germany +, password", plain.with_before(crlf(2)), "sip:+4930123456:secret@198.18.0.1".into()),
        (
            "Germany 011, body, lower-case method",
            plain.with_body().with_method("invite"),
            "sip:0114930123456@198.18.0.1".into(),
        ),
        (
            "Somalia +, a space and a NUL before the method",
            plain.with_before(" \0"),
            "sip:+25261234567@198.18.0.1".into(),
        ),
        ("Somalia +, escaped NUL", plain, "sip:+25261234567%00@198.18.0.1".into()),
        ("Germany +, malformed escape in the password", plain, "sip:+4930123456:%zz@198.18.0.1".into()),
        ("Germany +, tel, then @ and a Somali number", plain.with_body(), "tel:+4930123456@0025261234567".into()),
        ("Somalia 00, urn: with a colon and a name", plain, "urn:0025261234567:x".into()),
        ("Germany +, urn: with a user part", plain, "urn:+4930123456@198.18.0.1".into()),
    ];
    list.into_iter().enumerate().map(|(i, (what, framing, uri))| invite(10_000 + i, what, framing, &uri)).collect()
}

/// What a user part dials under the policy of these tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// International, to a blocked country (the country's prefix).
    Blocked(&'static str),
    /// International, elsewhere (E.164 digits).
    International(String),
    National,
    NotANumber,
}

/// What a server's reading of a user part (unescaped) dials, by the
/// policy's number rules; written on plain strings, apart from the
/// filter's own reader, so that the two can be held against each other:
///
/// - the number is the user part's leading run of digits, visual
///   separators `-.()` (ignored) and one `+` before any digit;
/// - the run ends at the end of the user part or at one of
///   `@ ; ? > :`, SP, TAB, CR, LF; any other byte first means the user
///   part is no number (a name), as does a run without digits;
/// - a `+` makes it international; so does a dialling prefix of
///   [`INTL_PREFIXES`] followed by more digits (which are the E.164
///   number); otherwise it is national;
/// - an international number is blocked when it starts with one of
///   [`BLOCKED_COUNTRIES`].
pub fn destination(user: &[u8]) -> Destination {
    const ENDS_NUMBER: &[u8] = b"@;?>: \t\r\n";
    let mut digits = String::new();
    let mut plus = false;
    for &c in user {
        match c {
            b'0'..=b'9' => digits.push(c as char),
            b'+' if !plus && digits.is_empty() => plus = true,
            b'-' | b'.' | b'(' | b')' => {}
            c if ENDS_NUMBER.contains(&c) => break,
            _ => return Destination::NotANumber,
        }
    }
    if digits.is_empty() {
        return Destination::NotANumber;
    }
    let e164 = if plus {
        Some(digits.as_str())
    } else {
        INTL_PREFIXES.iter().find_map(|p| digits.strip_prefix(p).filter(|rest| !rest.is_empty()))
    };
    match e164 {
        None => Destination::National,
        Some(e164) => match BLOCKED_COUNTRIES.iter().find(|c| e164.starts_with(*c)) {
            Some(country) => Destination::Blocked(country),
            None => Destination::International(e164.to_string()),
        },
    }
}
