//! The start line of a message, read one byte at a time as the message
//! reader meets it: the method (case-insensitive, as servers compare it),
//! the Request-URI's scheme and, for `sip:`, `sips:`, `tel:` and `urn:`,
//! its user part ([`UserPart`]: what an INVITE dials); or a status line's
//! code.
//!
//! What a start line is agrees with the in-place classifier
//! ([`crate::sip::classify`]) on every line that starts where the
//! classifier looks; reading byte by byte is what lets the same reading
//! follow a message wherever it starts (after CRLFs, deep in a TCP
//! segment) and across segments.

use crate::{
    dialled::{UserPart, SCHEME_SIP, SCHEME_TEL, SCHEME_URN},
    message::{fnv, fnv_step, FNV_OFFSET},
    sip::SipKind,
};

/// Where the reader is in the start line.
/// In the first token (a method, or `SIP/2.0`).
const L_TOKEN: u8 = 0;
/// In the Request-URI's scheme.
const L_SCHEME: u8 = 1;
/// In the Request-URI after the scheme.
const L_URI: u8 = 2;
/// In a status line's code.
const L_STATUS: u8 = 3;
/// In the rest of the line (nothing more to learn).
const L_REST: u8 = 4;

/// Longest first token read (`SUBSCRIBE` is 9); longer ones are no
/// method we know.
const MAX_TOKEN: u8 = 10;
/// Longest scheme read (`sips`).
const MAX_SCHEME: u8 = 4;

/// The methods counted, lower-cased, and what they are.
const METHODS: [(&[u8], SipKind); 14] = [
    (b"register", SipKind::Register),
    (b"invite", SipKind::Invite),
    (b"options", SipKind::Options),
    (b"ack", SipKind::OtherRequest),
    (b"bye", SipKind::OtherRequest),
    (b"cancel", SipKind::OtherRequest),
    (b"info", SipKind::OtherRequest),
    (b"message", SipKind::OtherRequest),
    (b"notify", SipKind::OtherRequest),
    (b"prack", SipKind::OtherRequest),
    (b"publish", SipKind::OtherRequest),
    (b"refer", SipKind::OtherRequest),
    (b"subscribe", SipKind::OtherRequest),
    (b"update", SipKind::OtherRequest),
];

const fn method_hashes() -> [(u64, SipKind); METHODS.len()] {
    let mut out = [(0, SipKind::NotSip); METHODS.len()];
    let mut i = 0;
    while i < METHODS.len() {
        out[i] = (fnv(METHODS[i].0), METHODS[i].1);
        i += 1;
    }
    out
}

/// Computed at compile time: the kernel only compares.
const METHOD_HASHES: [(u64, SipKind); METHODS.len()] = method_hashes();
const STATUS_TOKEN: u64 = fnv(b"sip/2.0");
const SCHEME_SIP_HASH: u64 = fnv(b"sip");
const SCHEME_SIPS_HASH: u64 = fnv(b"sips");
const SCHEME_TEL_HASH: u64 = fnv(b"tel");
/// Kamailio parses `urn:` Request-URIs like `sip:` ones, user part and
/// all (`urn:+25261234567@host`), so they are requests with a number too.
const SCHEME_URN_HASH: u64 = fnv(b"urn");

#[inline(always)]
fn lower(c: u8) -> u8 {
    if c.is_ascii_uppercase() {
        c | 0x20
    } else {
        c
    }
}

/// What has been read of a start line.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartLine {
    /// Hash of the token being read, lower-cased: the method, then the
    /// scheme.
    token: u64,
    /// A status line's code, once its three digits are read.
    pub status: u16,
    state: u8,
    token_len: u8,
    /// The method's kind, until the scheme confirms a request.
    method: u8,
    /// What the line is (a `SipKind`), as far as it has been read.
    kind: u8,
    /// Digits of the status code read.
    digits: u8,
    pub _pad: u8,
    /// The Request-URI's user part (`sip:`, `sips:`, `tel:`, `urn:`).
    pub user: UserPart,
}

impl StartLine {
    pub const fn new() -> StartLine {
        StartLine {
            token: FNV_OFFSET,
            status: 0,
            state: L_TOKEN,
            token_len: 0,
            method: SipKind::NotSip as u8,
            kind: SipKind::NotSip as u8,
            digits: 0,
            _pad: 0,
            user: UserPart::new(SCHEME_SIP),
        }
    }

    /// What the line is, as far as it has been read: a request once its
    /// method and scheme are read, a response once its code is.
    #[inline(always)]
    pub fn kind(&self) -> SipKind {
        match self.kind {
            1 => SipKind::Register,
            2 => SipKind::Invite,
            3 => SipKind::Options,
            4 => SipKind::OtherRequest,
            5 => SipKind::Response,
            _ => SipKind::NotSip,
        }
    }

    /// The status code of a response.
    #[inline(always)]
    pub fn status(&self) -> Option<u16> {
        (self.kind == SipKind::Response as u8).then_some(self.status)
    }

    /// A request whose Request-URI's user part is being (or was) read:
    /// its scheme is one with numbers.
    #[inline(always)]
    pub fn has_uri(&self) -> bool {
        self.kind().is_request()
    }

    /// Feeds the next byte of the line (its CR and LF included).
    #[inline(always)]
    pub fn step(&mut self, c: u8) {
        match self.state {
            L_TOKEN => self.token_char(c),
            L_SCHEME => self.scheme_char(c),
            L_URI if !self.user.step(c) => self.state = L_REST,
            L_STATUS => self.status_char(c),
            _ => {}
        }
    }

    #[inline(always)]
    fn token_char(&mut self, c: u8) {
        if c != b' ' {
            if self.token_len >= MAX_TOKEN || c == b'\r' || c == b'\n' {
                self.state = L_REST;
                return;
            }
            self.token = fnv_step(self.token, lower(c));
            self.token_len += 1;
            return;
        }
        // The single space after the first token.
        if self.token_len == 0 {
            self.state = L_REST;
            return;
        }
        if self.token == STATUS_TOKEN {
            self.state = L_STATUS;
            return;
        }
        let mut m = 0;
        while m < METHOD_HASHES.len() {
            if METHOD_HASHES[m].0 == self.token {
                self.method = METHOD_HASHES[m].1 as u8;
            }
            m += 1;
        }
        if self.method == SipKind::NotSip as u8 {
            self.state = L_REST;
            return;
        }
        self.state = L_SCHEME;
        self.token = FNV_OFFSET;
        self.token_len = 0;
    }

    #[inline(always)]
    fn scheme_char(&mut self, c: u8) {
        if c != b':' {
            if self.token_len >= MAX_SCHEME || !c.is_ascii_alphabetic() {
                self.state = L_REST;
                return;
            }
            self.token = fnv_step(self.token, lower(c));
            self.token_len += 1;
            return;
        }
        let scheme = match self.token {
            SCHEME_SIP_HASH | SCHEME_SIPS_HASH => SCHEME_SIP,
            SCHEME_TEL_HASH => SCHEME_TEL,
            SCHEME_URN_HASH => SCHEME_URN,
            _ => {
                self.state = L_REST;
                return;
            }
        };
        self.kind = self.method;
        self.user.restart(scheme);
        self.state = L_URI;
    }

    /// `SIP/2.0 ddd` then a space or the line's end; codes 100 to 699.
    #[inline(always)]
    fn status_char(&mut self, c: u8) {
        if self.digits == 3 {
            if !matches!(c, b' ' | b'\r' | b'\n') {
                self.kind = SipKind::NotSip as u8;
                self.status = 0;
            }
            self.state = L_REST;
            return;
        }
        let first = self.digits == 0;
        if !c.is_ascii_digit() || (first && !(b'1'..=b'6').contains(&c)) {
            self.state = L_REST;
            self.status = 0;
            return;
        }
        self.status = self.status * 10 + (c - b'0') as u16;
        self.digits += 1;
        if self.digits == 3 {
            self.kind = SipKind::Response as u8;
        }
    }
}

impl Default for StartLine {
    fn default() -> Self {
        StartLine::new()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::{
        dialled::{dialled, intl_prefixes, Dialled},
        sip::classify_bytes,
    };
    use std::{format, vec::Vec};
    use SipKind::*;

    fn read(line: &[u8]) -> StartLine {
        let mut l = StartLine::new();
        for &c in line {
            l.step(c);
            if c == b'\n' {
                break;
            }
        }
        l
    }

    fn kind(line: &[u8]) -> SipKind {
        read(line).kind()
    }

    #[test]
    fn methods_schemes_and_status_lines() {
        assert_eq!(kind(b"REGISTER sip:example.net SIP/2.0\r\n"), Register);
        assert_eq!(kind(b"INVITE sip:+25261234@example.net SIP/2.0\r\n"), Invite);
        assert_eq!(kind(b"OPTIONS sip:100@198.18.0.1 SIP/2.0\r\n"), Options);
        assert_eq!(kind(b"INVITE tel:+15551234 SIP/2.0"), Invite);
        assert_eq!(kind(b"INVITE urn:service:sos SIP/2.0"), Invite);
        assert_eq!(kind(b"INVITE tels:+15551234 SIP/2.0"), NotSip, "no scheme Kamailio parses");
        assert_eq!(kind(b"REGISTER sips:example.net SIP/2.0"), Register);
        assert_eq!(kind(b"REGISTER SIP:example.net SIP/2.0"), Register);
        assert_eq!(kind(b"SUBSCRIBE sips:bob@example.net SIP/2.0"), OtherRequest);
        assert_eq!(kind(b"SIP/2.0 200 OK\r\n"), Response);
        assert_eq!(read(b"SIP/2.0 407 Proxy Authentication Required\r\n").status(), Some(407));
        assert_eq!(read(b"SIP/2.0 100").status(), Some(100));
        assert_eq!(read(b"REGISTER sip:x SIP/2.0\r\n").status(), None);
    }

    #[test]
    fn methods_are_compared_as_servers_compare_them() {
        // Kamailio and others match the method token case-insensitively:
        // an `invite` is an INVITE to them, so it is one to the filter.
        assert_eq!(kind(b"invite sip:+25261234567@pbx SIP/2.0\r\n"), Invite);
        assert_eq!(kind(b"InViTe sip:+25261234567@pbx SIP/2.0\r\n"), Invite);
        assert_eq!(kind(b"sip/2.0 200 OK\r\n"), Response);
    }

    #[test]
    fn what_is_not_a_start_line_we_know() {
        for p in [
            &b""[..],
            b"R",
            b"REGISTER",
            b"REGISTER ",
            b"REGISTER sip",
            b"REGISTER  sip:x",
            b"REGISTERX sip:a SIP/2.0",
            b"INVITES sip:a SIP/2.0",
            b"GET / HTTP/1.1\r\n",
            b"\x00\x01\x02\x03REGISTER sip:x",
            b"INVITE 123:abc",
            b"INVITE sip;x",
            b"INVITE http://x",
            b" INVITE sip:x SIP/2.0",
            b"INVITE\tsip:x SIP/2.0",
            b"FROB sip:x SIP/2.0",
            b"SIP/2.0 099 Nope",
            b"SIP/2.0 700 Nope",
            b"SIP/2.0 2000 OK",
            b"SIP/2.0 20",
            b"SIP/1.0 200 OK",
            b"SIP/2.0 2x0 OK",
        ] {
            assert_eq!(kind(p), NotSip, "{:?}", core::str::from_utf8(p));
        }
    }

    #[test]
    fn the_user_part_is_read_through_the_whole_line() {
        let prefixes = intl_prefixes(&["00"]);
        let line = read(b"INVITE sip:%2B252-61%2D234567@198.18.0.1;transport=tcp SIP/2.0\r\n");
        assert!(line.has_uri());
        let Dialled::International { digits, len } = dialled(&line.user, &prefixes) else { panic!() };
        assert_eq!(&digits[..len as usize], b"25261234567");
        // A REGISTER's URI is read too (the policy only asks of INVITEs).
        assert!(read(b"REGISTER sip:198.18.0.1 SIP/2.0\r\n").has_uri());
        assert!(!read(b"SIP/2.0 200 OK\r\n").has_uri());
        assert!(!read(b"FROB sip:x SIP/2.0\r\n").has_uri());
    }

    /// The byte reader and the in-place classifier agree on every line
    /// the classifier can see whole, and on every cut of them.
    #[test]
    fn agrees_with_the_in_place_classifier() {
        let mut lines: Vec<Vec<u8>> = Vec::new();
        for m in ["REGISTER", "INVITE", "invite", "Options", "ACK", "BYE", "SUBSCRIBE", "FROB", "INVITES", "SIP/2.0"] {
            for uri in [
                "sip:1@x", "SIPS:x", "tel:+1", "URN:x", "tels:+1", "http://x", "sip;x", " sip:x", "200 OK", "2000",
                "099 x",
            ] {
                lines.push(format!("{m} {uri} SIP/2.0\r\n").into_bytes());
            }
        }
        for line in &lines {
            for cut in 0..=line.len() {
                let part = &line[..cut];
                assert_eq!(kind(part), classify_bytes(part), "{:?}", core::str::from_utf8(part));
            }
        }
    }

    #[test]
    fn any_bytes_are_safe() {
        let mut v: Vec<u8> = b"INVITE sip:".to_vec();
        for b in 0..=255u8 {
            v.push(b);
            let _ = read(&v);
        }
    }
}
