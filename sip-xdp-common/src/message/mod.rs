//! Reading one SIP message the way a server does: leading CRLFs skipped
//! (RFC 3261 §7.5, and RFC 5626 keep-alives; Kamailio skips blanks and NUL
//! bytes there too), the start line
//! ([`StartLine`]: method, status, and the Request-URI's user part,
//! unescaped, which is what an INVITE dials), then the header fields the
//! filter judges by: Call-ID and CSeq (which link a response to its
//! request), whether credentials are present (`Authorization`,
//! `Proxy-Authorization`), the User-Agent (scanner fingerprints), and
//! `Content-Length`, which says where the next message of a TCP stream
//! starts. Header names are case-insensitive and have compact forms (`i`
//! for Call-ID, `l` for Content-Length; RFC 3261 §7.3.3).
//!
//! One reading feeds every decision about a message: its kind (counting,
//! budgets), its number (destination policy), its User-Agent
//! (fingerprints) and its fields (accounting).
//!
//! A state machine fed one byte at a time ([`MessageReader::step`]), so the
//! kernel drives it with `bpf_loop` (the verifier checks one step, not every
//! path through the message) and the host tests drive it with a plain loop.
//! Its whole state is a plain value: a message cut across TCP segments is
//! read on from where the previous segment left it.

mod start_line;

pub use start_line::StartLine;

use crate::{fingerprint::UA_VALUE, sip::SipKind};

/// Bytes of a message the kernel reads at once, from the message's start
/// (a power of two, so an index can be masked into range).
pub const MESSAGE_WINDOW: usize = 2048;
/// A Content-Length past this is not believed: the message cannot be
/// delimited.
pub const MAX_CONTENT_LENGTH: u32 = 1 << 20;

/// FNV-1a, 64 bits: the identity of a Call-ID or a method token.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

#[inline(always)]
pub const fn fnv_step(hash: u64, byte: u8) -> u64 {
    (hash ^ byte as u64).wrapping_mul(FNV_PRIME)
}

/// The hash of a whole token, as the reader computes it byte by byte.
pub const fn fnv(bytes: &[u8]) -> u64 {
    let mut h = FNV_OFFSET;
    let mut i = 0;
    while i < bytes.len() {
        h = fnv_step(h, bytes[i]);
        i += 1;
    }
    h
}

/// The CSeq method of INVITE (18x responses count as success only for it).
pub const METHOD_INVITE: u64 = fnv(b"INVITE");
pub const METHOD_ACK: u64 = fnv(b"ACK");

/// Header fields the reader looks for, lower-case; a compact form is a
/// name of its own.
const NAMES: [&[u8]; 8] =
    [b"call-id", b"i", b"cseq", b"content-length", b"l", b"authorization", b"proxy-authorization", b"user-agent"];
const ALL_NAMES: u8 = ((1u16 << NAMES.len()) - 1) as u8;
const LONGEST_NAME: usize = 19;

const H_NONE: u8 = 0;
const H_CALL_ID: u8 = 1;
const H_CSEQ: u8 = 2;
const H_LENGTH: u8 = 3;
const H_CREDENTIALS: u8 = 4;
const H_USER_AGENT: u8 = 5;

/// The header a name (by index in `NAMES`) is.
const HEADER_OF: [u8; 8] =
    [H_CALL_ID, H_CALL_ID, H_CSEQ, H_LENGTH, H_LENGTH, H_CREDENTIALS, H_CREDENTIALS, H_USER_AGENT];

// Where the reader is.
/// CR/LF (and the other bytes servers skip) before the start line.
const S_SKIP: u8 = 0;
/// In the start line.
const S_START_LINE: u8 = 1;
/// At the start of a header line.
const S_LINE_START: u8 = 2;
/// In a header name.
const S_NAME: u8 = 3;
/// Between a header name and its colon.
const S_BEFORE_COLON: u8 = 4;
/// In a header's value.
const S_VALUE: u8 = 5;
/// In a line of no interest, until its end.
const S_REST_OF_LINE: u8 = 6;
/// The blank line after the headers has been read.
const S_DONE: u8 = 7;

// Where the reader is in a Content-Length value: digits, then only blanks.
const LENGTH_DIGITS: u8 = 0;
const LENGTH_ENDED: u8 = 1;

// Where the reader is in a CSeq value: `*WSP 1*DIGIT 1*WSP method`.
const CSEQ_BEFORE: u8 = 0;
const CSEQ_NUMBER: u8 = 1;
const CSEQ_GAP: u8 = 2;
const CSEQ_METHOD: u8 = 3;
const CSEQ_AFTER: u8 = 4;

/// What was read of a message: its place in the buffer and the fields the
/// filter judges by. Offsets count from where reading began.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageReader {
    /// Hash of the Call-ID's value (its non-blank bytes); 0 if absent.
    pub call_id: u64,
    /// Hash of the CSeq method token; 0 if absent.
    pub cseq_method: u64,
    /// Where the start line begins (after leading CR/LF).
    pub start: u32,
    /// Just past the blank line that ends the headers; 0 until read.
    pub headers_end: u32,
    pub content_length: u32,
    pub cseq: u32,
    /// The start line.
    pub line: StartLine,
    /// The first bytes of the User-Agent's value, lower-cased.
    ua: [u8; UA_VALUE],
    state: u8,
    /// Header whose value is being read.
    header: u8,
    /// Names still matching the current header name (bit per `NAMES`).
    candidates: u8,
    /// Characters of the current header name so far.
    name_len: u8,
    /// Within a CSeq or Content-Length value.
    value_state: u8,
    /// Bytes of the User-Agent's value kept.
    ua_len: u8,
    /// An `Authorization` or `Proxy-Authorization` header is present.
    pub credentials: u8,
    /// Content-Length present and a number.
    pub has_length: u8,
    /// Content-Length present and not a number (or too large).
    pub bad_length: u8,
    /// A User-Agent header was read.
    has_ua: u8,
    pub _pad: [u8; 6],
}

impl Default for MessageReader {
    fn default() -> Self {
        MessageReader::new()
    }
}

#[inline(always)]
fn lower(c: u8) -> u8 {
    if c.is_ascii_uppercase() {
        c | 0x20
    } else {
        c
    }
}

/// Bytes skipped before a start line. RFC 3261 §7.5 lets a server skip
/// CRLFs there; Kamailio also skips spaces, tabs and NUL bytes (its TCP
/// reader skips blanks between messages, and its message parser blanks and
/// NULs before the start line), so ` INVITE` is an INVITE to it: the
/// filter must not take it for something else.
#[inline(always)]
fn skipped_before_start(c: u8) -> bool {
    matches!(c, b'\r' | b'\n' | b' ' | b'\t' | 0)
}

#[inline(always)]
fn is_wsp(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

impl MessageReader {
    pub const fn new() -> MessageReader {
        MessageReader {
            call_id: 0,
            cseq_method: 0,
            start: 0,
            headers_end: 0,
            content_length: 0,
            cseq: 0,
            line: StartLine::new(),
            ua: [0; UA_VALUE],
            state: S_SKIP,
            header: H_NONE,
            candidates: 0,
            name_len: 0,
            value_state: 0,
            ua_len: 0,
            credentials: 0,
            has_length: 0,
            bad_length: 0,
            has_ua: 0,
            _pad: [0; 6],
        }
    }

    /// What the message is, as far as its start line has been read.
    #[inline(always)]
    pub fn kind(&self) -> SipKind {
        self.line.kind()
    }

    /// The kept bytes of the User-Agent's value (lower-case) and how many
    /// there are.
    #[inline(always)]
    pub fn user_agent(&self) -> (&[u8; UA_VALUE], usize) {
        (&self.ua, self.ua_len as usize)
    }

    /// The headers were read to their end.
    #[inline(always)]
    pub fn complete(&self) -> bool {
        self.state == S_DONE
    }

    /// In a line of no interest: until its end, no byte but a line feed
    /// changes anything (the kernel skips such stretches a word at a time).
    #[inline(always)]
    pub fn skipping_line(&self) -> bool {
        self.state == S_REST_OF_LINE
    }

    /// A start line was found (not only bytes skipped before one so far).
    #[inline(always)]
    pub fn found(&self) -> bool {
        self.state != S_SKIP
    }

    /// Where the message ends (headers and body), if its headers were read
    /// and its length is known: on TCP, where the next one begins.
    #[inline(always)]
    pub fn end(&self) -> Option<u32> {
        if self.state == S_DONE && self.bad_length == 0 {
            Some(self.headers_end + self.content_length)
        } else {
            None
        }
    }

    /// Feeds the byte at `pos` (bytes are fed in order, from 0); false
    /// once the headers have ended. The caller keeps the position, so that
    /// in the kernel it is the loop's own index, which the verifier does
    /// not follow from one step to the next.
    #[inline(always)]
    pub fn step(&mut self, pos: u32, c: u8) -> bool {
        match self.state {
            S_SKIP => {
                if !skipped_before_start(c) {
                    self.start = pos;
                    self.state = S_START_LINE;
                    self.line.step(c);
                }
            }
            S_START_LINE => {
                self.line.step(c);
                if c == b'\n' {
                    self.state = S_LINE_START;
                }
            }
            S_REST_OF_LINE => {
                if c == b'\n' {
                    self.state = S_LINE_START;
                }
            }
            S_LINE_START => {
                if c == b'\n' {
                    // A blank line (CRLF or LF alone): the headers end.
                    self.headers_end = pos + 1;
                    self.state = S_DONE;
                    return false;
                }
                if c == b'\r' {
                    return true;
                }
                if is_wsp(c) {
                    // Folded continuation of the previous value (obsolete).
                    self.state = S_REST_OF_LINE;
                    return true;
                }
                self.state = S_NAME;
                self.candidates = ALL_NAMES;
                self.name_len = 0;
                self.name_char(c);
            }
            S_NAME => {
                if c == b':' {
                    self.begin_value();
                } else if is_wsp(c) {
                    self.state = S_BEFORE_COLON;
                } else if c == b'\n' {
                    self.state = S_LINE_START;
                } else {
                    self.name_char(c);
                }
            }
            S_BEFORE_COLON => {
                if c == b':' {
                    self.begin_value();
                } else if c == b'\n' {
                    self.state = S_LINE_START;
                } else if !is_wsp(c) {
                    self.state = S_REST_OF_LINE;
                }
            }
            S_VALUE => {
                if c == b'\n' {
                    self.state = S_LINE_START;
                } else if c != b'\r' {
                    self.value_char(c);
                }
            }
            _ => return false,
        }
        true
    }

    /// One more character of a header name: candidates that do not have
    /// it at this position drop out.
    #[inline(always)]
    fn name_char(&mut self, c: u8) {
        let i = self.name_len as usize;
        let c = lower(c);
        let mut k = 0;
        while k < NAMES.len() {
            let name = NAMES[k];
            if self.candidates & (1 << k) != 0 && (i >= name.len() || name[i] != c) {
                self.candidates &= !(1 << k);
            }
            k += 1;
        }
        if self.candidates == 0 || i >= LONGEST_NAME {
            self.state = S_REST_OF_LINE;
        }
        self.name_len += 1;
    }

    /// The colon: the header is the candidate whose whole name was read.
    #[inline(always)]
    fn begin_value(&mut self) {
        self.header = H_NONE;
        let mut k = 0;
        while k < NAMES.len() {
            if self.candidates & (1 << k) != 0 && NAMES[k].len() == self.name_len as usize {
                self.header = HEADER_OF[k];
            }
            k += 1;
        }
        // A header given twice: the first Call-ID and CSeq count (as a
        // server parses them); two lengths cannot delimit the message.
        let repeated = match self.header {
            H_CALL_ID => self.call_id != 0,
            H_CSEQ => self.cseq_method != 0 || self.cseq != 0,
            H_LENGTH => self.has_length != 0 || self.bad_length != 0,
            H_USER_AGENT => self.has_ua != 0,
            _ => false,
        };
        if self.header == H_LENGTH && repeated {
            self.bad_length = 1;
        }
        match self.header {
            _ if repeated => {
                self.state = S_REST_OF_LINE;
                return;
            }
            H_NONE => {
                self.state = S_REST_OF_LINE;
                return;
            }
            H_CALL_ID => self.call_id = FNV_OFFSET,
            H_CSEQ => self.value_state = CSEQ_BEFORE,
            H_LENGTH => self.value_state = LENGTH_DIGITS,
            H_USER_AGENT => self.has_ua = 1,
            _ => {
                // Their presence is all the accounting needs.
                self.credentials = 1;
                self.state = S_REST_OF_LINE;
                return;
            }
        }
        self.state = S_VALUE;
    }

    #[inline(always)]
    fn value_char(&mut self, c: u8) {
        match self.header {
            // A Call-ID has no blanks (RFC 3261 §25.1, `word ["@" word]`).
            H_CALL_ID if !is_wsp(c) => self.call_id = fnv_step(self.call_id, c),
            H_CSEQ => self.cseq_char(c),
            // Leading blanks are not the value's.
            H_USER_AGENT if self.ua_len != 0 || !is_wsp(c) => {
                let i = self.ua_len as usize;
                if i < UA_VALUE {
                    self.ua[i & (UA_VALUE - 1)] = lower(c);
                    self.ua_len += 1;
                }
            }
            H_LENGTH => {
                if c.is_ascii_digit() && self.value_state == LENGTH_DIGITS {
                    if self.bad_length == 0 {
                        self.content_length = self.content_length * 10 + (c - b'0') as u32;
                        self.has_length = 1;
                        if self.content_length > MAX_CONTENT_LENGTH {
                            self.bad_length = 1;
                        }
                    }
                } else if is_wsp(c) {
                    if self.has_length != 0 {
                        self.value_state = LENGTH_ENDED;
                    }
                } else {
                    self.bad_length = 1;
                }
            }
            _ => {}
        }
    }

    #[inline(always)]
    fn cseq_char(&mut self, c: u8) {
        match self.value_state {
            CSEQ_BEFORE | CSEQ_NUMBER if c.is_ascii_digit() => {
                self.value_state = CSEQ_NUMBER;
                self.cseq = self.cseq.wrapping_mul(10).wrapping_add((c - b'0') as u32);
            }
            CSEQ_BEFORE if is_wsp(c) => {}
            CSEQ_NUMBER | CSEQ_GAP if is_wsp(c) => self.value_state = CSEQ_GAP,
            CSEQ_GAP => {
                self.value_state = CSEQ_METHOD;
                self.cseq_method = fnv_step(FNV_OFFSET, c);
            }
            CSEQ_METHOD if is_wsp(c) => self.value_state = CSEQ_AFTER,
            CSEQ_METHOD => self.cseq_method = fnv_step(self.cseq_method, c),
            CSEQ_AFTER if is_wsp(c) => {}
            // Anything else is not a CSeq: unusable for linking.
            _ => {
                self.cseq_method = 0;
                self.value_state = CSEQ_AFTER;
            }
        }
    }
}

/// Host convenience: reads the message at the start of `bytes`.
pub fn read(bytes: &[u8]) -> MessageReader {
    let mut r = MessageReader::new();
    for (pos, &c) in bytes.iter().take(MESSAGE_WINDOW).enumerate() {
        if !r.step(pos as u32, c) {
            break;
        }
    }
    r
}

/// Host convenience: where each message of a stream starts, as the kernel
/// walks a segment (each message read from its own start; a message whose
/// end cannot be told stops the walk).
pub fn message_starts(mut bytes: &[u8]) -> ([u32; 32], usize) {
    let mut starts = [0u32; 32];
    let mut n = 0;
    let mut offset = 0u32;
    while n < starts.len() {
        let r = read(bytes);
        if !r.found() {
            break;
        }
        starts[n] = offset + r.start;
        n += 1;
        let Some(end) = r.end() else { break };
        if end as usize >= bytes.len() {
            break;
        }
        bytes = &bytes[end as usize..];
        offset += end;
    }
    (starts, n)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::{format, string::String, vec::Vec};

    fn register(extra: &str) -> String {
        format!(
            "REGISTER sip:198.18.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 198.18.2.2:5060;branch=z9hG4bK1\r\n\
             From: <sip:alice@198.18.0.1>;tag=1\r\nTo: <sip:alice@198.18.0.1>\r\nCall-ID: abc123@198.18.2.2\r\n\
             CSeq: 7 REGISTER\r\n{extra}Content-Length: 0\r\n\r\n"
        )
    }

    #[test]
    fn reads_the_linking_fields() {
        let r = read(register("").as_bytes());
        assert!(r.complete());
        assert_eq!(r.call_id, fnv(b"abc123@198.18.2.2"));
        assert_eq!((r.cseq, r.cseq_method), (7, fnv(b"REGISTER")));
        assert_eq!(r.credentials, 0);
        assert_eq!(r.end(), Some(register("").len() as u32));
    }

    #[test]
    fn credentials_in_either_header_and_any_case() {
        for h in [
            "Authorization: Digest username=\"alice\"\r\n",
            "proxy-authorization:Digest x\r\n",
            "AUTHORIZATION : Digest\r\n",
        ] {
            assert_eq!(read(register(h).as_bytes()).credentials, 1, "{h}");
        }
        for h in ["X-Authorization: x\r\n", "Authorization-Info: x\r\n", "WWW-Authenticate: Digest\r\n"] {
            assert_eq!(read(register(h).as_bytes()).credentials, 0, "{h}");
        }
    }

    #[test]
    fn compact_forms_and_spacing_read_the_same() {
        let long = "INVITE sip:1@x SIP/2.0\r\nCall-ID: q1@h\r\nCSeq: 2 INVITE\r\nContent-Length: 4\r\n\r\nbody";
        let compact = "INVITE sip:1@x SIP/2.0\r\ni:q1@h\r\ncseq:2\tINVITE\r\nl : 4\r\n\r\nbody";
        let (a, b) = (read(long.as_bytes()), read(compact.as_bytes()));
        assert_eq!(
            (a.call_id, a.cseq, a.cseq_method, a.content_length),
            (b.call_id, b.cseq, b.cseq_method, b.content_length)
        );
        assert_eq!(a.cseq_method, METHOD_INVITE);
        assert_eq!(a.end(), Some(long.len() as u32));
        assert_eq!(b.end(), Some(compact.len() as u32));
        // Bare LF line ends are read too.
        let lf = "OPTIONS sip:x SIP/2.0\ni: z\nl: 0\n\n";
        assert_eq!(read(lf.as_bytes()).end(), Some(lf.len() as u32));
    }

    #[test]
    fn leading_crlf_and_keepalives_are_skipped() {
        let msg = register("");
        let r = read(format!("\r\n\r\n{msg}").as_bytes());
        assert_eq!(r.start, 4);
        assert_eq!(r.end(), Some(4 + msg.len() as u32));
        let keepalive = read(b"\r\n\r\n");
        assert!(!keepalive.found() && r.found());
        // What Kamailio skips before a start line besides.
        for prefix in [" ", "\t", "\0", "\r\n \r\n", "\0\t \n"] {
            let r = read(format!("{prefix}{msg}").as_bytes());
            assert_eq!((r.start as usize, r.kind()), (prefix.len(), SipKind::Register), "{prefix:?}");
        }
        assert!(!read(b" \t\0").found());
    }

    #[test]
    fn a_response_links_to_its_request() {
        let req = read(register("").as_bytes());
        let resp = read(b"SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/TCP x\r\ncall-id:   abc123@198.18.2.2\r\nCSEQ:7 REGISTER\r\nl:0\r\n\r\n");
        assert_eq!((req.call_id, req.cseq, req.cseq_method), (resp.call_id, resp.cseq, resp.cseq_method));
    }

    #[test]
    fn lengths_that_lie_cannot_delimit() {
        for bad in [
            "Content-Length: 12x\r\n",
            "Content-Length: 99999999999\r\n",
            "l: -1\r\n",
            "Content-Length: 1 2\r\n",
            "Content-Length: 0\r\nl: 5\r\n",
        ] {
            let text = format!("OPTIONS sip:x SIP/2.0\r\n{bad}\r\n");
            let r = read(text.as_bytes());
            assert!(r.complete() && r.end().is_none(), "{bad}");
        }
        // Headers longer than the window are never complete.
        let huge = format!("OPTIONS sip:x SIP/2.0\r\nX-Pad: {}\r\n\r\n", "a".repeat(MESSAGE_WINDOW));
        assert!(!read(huge.as_bytes()).complete());
    }

    #[test]
    fn pipelined_messages_are_found_one_after_another() {
        let one = register("");
        let with_body =
            "MESSAGE sip:bob@x SIP/2.0\r\nCall-ID: m\r\nCSeq: 1 MESSAGE\r\nContent-Length: 11\r\n\r\nhello\r\nbob!";
        let stream: String = [one.as_str(), "\r\n\r\n", with_body, one.as_str()].concat();
        let (starts, n) = message_starts(stream.as_bytes());
        assert_eq!(n, 3);
        assert_eq!(&starts[..3], &[0, one.len() as u32 + 4, (one.len() + 4 + with_body.len()) as u32]);
        // The body's own "lines" are never read as headers.
        let r = read(&stream.as_bytes()[starts[1] as usize..]);
        assert_eq!(r.content_length, 11);
    }

    #[test]
    fn one_reading_gives_kind_number_and_user_agent() {
        let invite = "\r\n\r\nINVITE sip:%2B252-61234567@198.18.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\
                      User-Agent:   FRIENDLY-Scanner 1.0\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nl: 0\r\n\r\n";
        let r = read(invite.as_bytes());
        assert_eq!(r.start, 4);
        assert_eq!(r.kind(), SipKind::Invite);
        let prefixes = crate::dialled::intl_prefixes(&["00"]);
        let crate::dialled::Dialled::International { digits, len } = crate::dialled::dialled(&r.line.user, &prefixes)
        else {
            panic!("not international");
        };
        assert_eq!(&digits[..len as usize], b"25261234567");
        let (ua, n) = r.user_agent();
        assert_eq!(&ua[..n], b"friendly-scanner 1.0");
        assert_eq!(r.end(), Some(invite.len() as u32));
    }

    #[test]
    fn any_bytes_are_safe() {
        let mut v: Vec<u8> = Vec::new();
        for b in 0..=255u8 {
            v.push(b);
            v.extend_from_slice(b"\r\n");
            let _ = read(&v);
            let _ = message_starts(&v);
        }
    }
}
