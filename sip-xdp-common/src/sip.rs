//! The SIP first-line classifier.
//!
//! The kernel copies at most [`SIP_WINDOW`] bytes from the start of a UDP
//! payload (or of a TCP segment's payload) into a zero-filled buffer and
//! calls [`classify`]. The function is straight-line code over fixed
//! offsets: no loops whose exit depends on the data, so the BPF verifier
//! explores a handful of paths instead of one per possible length, and no
//! index can panic. Bytes past the payload are zero, and zero never matches
//! anything a first line needs, so a short payload simply fails to match.
//!
//! A request line is `Method SP Request-URI SP SIP-Version` (RFC 3261 §7.1);
//! a status line is `SIP-Version SP Status-Code SP Reason-Phrase`. We check
//! the method (the methods of RFC 3261 and its standard extensions), the
//! space, and that the Request-URI starts with `sip:`, `sips:`, `tel:` or
//! `urn:` (the schemes Kamailio parses; case-insensitive), which separates
//! SIP from other text on the same port. Methods are compared case-insensitively: RFC 3261 makes them
//! case-sensitive, but servers (Kamailio among them) take `invite` for an
//! INVITE, and a filter stricter than its server can be walked around.
//! The message reader ([`crate::message`]) reads start lines byte by byte
//! with the same rules.

/// Bytes of payload the classifier looks at.
pub const SIP_WINDOW: usize = 32;

/// What the first line of a payload is.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SipKind {
    NotSip = 0,
    Register = 1,
    Invite = 2,
    Options = 3,
    OtherRequest = 4,
    Response = 5,
}

impl SipKind {
    pub const fn is_request(self) -> bool {
        matches!(self, SipKind::Register | SipKind::Invite | SipKind::Options | SipKind::OtherRequest)
    }
}

/// Methods we recognise, each with the space that must follow it.
const METHODS: [(&[u8], SipKind); 14] = [
    (b"REGISTER ", SipKind::Register),
    (b"INVITE ", SipKind::Invite),
    (b"OPTIONS ", SipKind::Options),
    (b"ACK ", SipKind::OtherRequest),
    (b"BYE ", SipKind::OtherRequest),
    (b"CANCEL ", SipKind::OtherRequest),
    (b"INFO ", SipKind::OtherRequest),
    (b"MESSAGE ", SipKind::OtherRequest),
    (b"NOTIFY ", SipKind::OtherRequest),
    (b"PRACK ", SipKind::OtherRequest),
    (b"PUBLISH ", SipKind::OtherRequest),
    (b"REFER ", SipKind::OtherRequest),
    (b"SUBSCRIBE ", SipKind::OtherRequest),
    (b"UPDATE ", SipKind::OtherRequest),
];

/// A prefix of at most 16 bytes as two little-endian words and masks, so
/// matching it is two masked compares (BPF has no 128-bit integers). Its
/// letters match in either case: `fold` sets their case bit before the
/// compare.
#[derive(Clone, Copy)]
struct Prefix {
    value: [u64; 2],
    mask: [u64; 2],
    fold: [u64; 2],
    len: usize,
}

const fn prefix(text: &[u8]) -> Prefix {
    let mut p = Prefix { value: [0; 2], mask: [0; 2], fold: [0; 2], len: text.len() };
    let mut i = 0;
    while i < text.len() && i < 16 {
        let c = text[i];
        let shift = 8 * (i % 8);
        if c.is_ascii_alphabetic() {
            p.value[i / 8] |= ((c | 0x20) as u64) << shift;
            p.fold[i / 8] |= 0x20 << shift;
        } else {
            p.value[i / 8] |= (c as u64) << shift;
        }
        p.mask[i / 8] |= 0xff << shift;
        i += 1;
    }
    p
}

const fn method_prefixes() -> [(Prefix, SipKind); METHODS.len()] {
    let mut out = [(prefix(b""), SipKind::NotSip); METHODS.len()];
    let mut i = 0;
    while i < METHODS.len() {
        out[i] = (prefix(METHODS[i].0), METHODS[i].1);
        i += 1;
    }
    out
}

/// Computed at compile time: the kernel only compares.
const METHOD_PREFIXES: [(Prefix, SipKind); METHODS.len()] = method_prefixes();
const STATUS_PREFIX: Prefix = prefix(b"SIP/2.0 ");

/// The first 16 bytes of the window as two little-endian words.
#[inline(always)]
fn head(window: &[u8; SIP_WINDOW]) -> [u64; 2] {
    let mut lo = [0u8; 8];
    let mut hi = [0u8; 8];
    lo.copy_from_slice(&window[..8]);
    hi.copy_from_slice(&window[8..16]);
    [u64::from_le_bytes(lo), u64::from_le_bytes(hi)]
}

#[inline(always)]
fn starts_with(head: &[u64; 2], p: &Prefix) -> bool {
    (head[0] | p.fold[0]) & p.mask[0] == p.value[0] && (head[1] | p.fold[1]) & p.mask[1] == p.value[1]
}

/// Classifies a zero-filled window holding the start of a payload.
#[inline(always)]
pub fn classify(window: &[u8; SIP_WINDOW]) -> SipKind {
    if status_code(window).is_some() {
        return SipKind::Response;
    }
    let h = head(window);
    let mut m = 0;
    while m < METHOD_PREFIXES.len() {
        let (p, kind) = METHOD_PREFIXES[m];
        if starts_with(&h, &p) {
            return if has_sip_scheme(window, p.len) { kind } else { SipKind::NotSip };
        }
        m += 1;
    }
    SipKind::NotSip
}

/// Does the Request-URI at `start` begin with `sip:`, `sips:`, `tel:` or
/// `urn:`?
#[inline(always)]
fn has_sip_scheme(window: &[u8; SIP_WINDOW], start: usize) -> bool {
    let uri: &[u8; 5] = match window.get(start..start + 5) {
        Some(uri) => match uri.try_into() {
            Ok(uri) => uri,
            Err(_) => return false,
        },
        None => return false,
    };
    // ASCII letters lower-cased by setting bit 5.
    let s = [uri[0] | 0x20, uri[1] | 0x20, uri[2] | 0x20, uri[3] | 0x20];
    let sip = s[0] == b's' && s[1] == b'i' && s[2] == b'p';
    let tel = s[0] == b't' && s[1] == b'e' && s[2] == b'l';
    let urn = s[0] == b'u' && s[1] == b'r' && s[2] == b'n';
    ((sip || tel || urn) && uri[3] == b':') || (sip && s[3] == b's' && uri[4] == b':')
}

/// The status code, if the window starts with a status line
/// (`SIP/2.0 ddd` then a space or the end of the line; codes 100-699).
#[inline(always)]
pub fn status_code(window: &[u8; SIP_WINDOW]) -> Option<u16> {
    if !starts_with(&head(window), &STATUS_PREFIX) {
        return None;
    }
    let (a, b, c) = (window[8], window[9], window[10]);
    if !(b'1'..=b'6').contains(&a) || !b.is_ascii_digit() || !c.is_ascii_digit() {
        return None;
    }
    if !matches!(window[11], b' ' | b'\r' | b'\n' | 0) {
        return None;
    }
    Some((a - b'0') as u16 * 100 + (b - b'0') as u16 * 10 + (c - b'0') as u16)
}

/// The zero-filled window of a payload, as the kernel builds it.
pub fn window_of(payload: &[u8]) -> [u8; SIP_WINDOW] {
    let mut window = [0u8; SIP_WINDOW];
    let len = payload.len().min(SIP_WINDOW);
    window[..len].copy_from_slice(&payload[..len]);
    window
}

/// Host convenience: classify the start of any byte slice.
pub fn classify_bytes(payload: &[u8]) -> SipKind {
    classify(&window_of(payload))
}

/// Host convenience: status code of any byte slice.
pub fn status_code_bytes(payload: &[u8]) -> Option<u16> {
    status_code(&window_of(payload))
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::{format, vec::Vec};
    use SipKind::*;

    #[test]
    fn recognises_the_methods_we_count() {
        assert_eq!(classify_bytes(b"REGISTER sip:example.net SIP/2.0\r\n"), Register);
        assert_eq!(classify_bytes(b"INVITE sip:+25261234@example.net SIP/2.0\r\n"), Invite);
        assert_eq!(classify_bytes(b"OPTIONS sip:100@198.18.0.1 SIP/2.0\r\n"), Options);
        assert_eq!(classify_bytes(b"INVITE tel:+15551234 SIP/2.0"), Invite);
        assert_eq!(classify_bytes(b"REGISTER sips:example.net SIP/2.0"), Register);
        assert_eq!(classify_bytes(b"REGISTER SIP:example.net SIP/2.0"), Register, "schemes are case-insensitive");
        assert_eq!(classify_bytes(b"invite sip:+252@x SIP/2.0"), Invite, "so are methods, as servers read them");
        assert_eq!(classify_bytes(b"sip/2.0 200 OK"), Response);
        assert_eq!(classify_bytes(b"INVITE\0sip:x SIP/2.0"), NotSip, "only letters fold");
    }

    #[test]
    fn other_requests() {
        for m in
            ["BYE", "ACK", "CANCEL", "SUBSCRIBE", "NOTIFY", "MESSAGE", "PUBLISH", "INFO", "PRACK", "UPDATE", "REFER"]
        {
            let line = format!("{m} sip:alice@example.net SIP/2.0\r\n");
            assert_eq!(classify_bytes(line.as_bytes()), OtherRequest, "{m}");
        }
        // Methods that merely start like a counted one are not requests we know.
        assert_eq!(classify_bytes(b"REGISTERX sip:a SIP/2.0"), NotSip);
        assert_eq!(classify_bytes(b"INVITES sip:a SIP/2.0"), NotSip);
    }

    #[test]
    fn responses() {
        assert_eq!(classify_bytes(b"SIP/2.0 200 OK\r\n"), Response);
        assert_eq!(classify_bytes(b"SIP/2.0 401 Unauthorized\r\n"), Response);
        assert_eq!(classify_bytes(b"SIP/2.0 100"), Response);
        assert_eq!(status_code_bytes(b"SIP/2.0 407 Proxy Authentication Required"), Some(407));
        assert_eq!(status_code_bytes(b"SIP/2.0 403\r\n"), Some(403));
        assert_eq!(status_code_bytes(b"SIP/2.0 699 x"), Some(699));
        assert_eq!(status_code_bytes(b"REGISTER sip:x SIP/2.0"), None);
        for bad in [
            &b"SIP/2.0 099 Nope"[..],
            b"SIP/2.0 700 Nope",
            b"SIP/2.0 2000 OK",
            b"SIP/2.0 20",
            b"SIP/1.0 200 OK",
            b"SIP/2.0 2x0 OK",
        ] {
            assert_eq!(classify_bytes(bad), NotSip, "{:?}", core::str::from_utf8(bad));
        }
    }

    #[test]
    fn rejects_what_is_not_a_sip_first_line() {
        for p in [
            &b""[..],
            b"R",
            b"REGISTER",
            b"REGISTER ",
            b"REGISTER sip",
            b"REGISTER  sip:x",
            b"GET / HTTP/1.1\r\n",
            b"\r\n\r\n",
            b"\x00\x01\x02\x03REGISTER sip:x",
            b"INVITE 123:abc",
            b"INVITE sip;x",
            b"INVITE http://x",
            b" INVITE sip:x SIP/2.0",
            b"FROB sip:x SIP/2.0",
        ] {
            assert_eq!(classify_bytes(p), NotSip, "{:?}", core::str::from_utf8(p));
        }
    }

    #[test]
    fn window_bounds() {
        // The longest method plus "sips:" still fits the window.
        assert_eq!(classify_bytes(b"SUBSCRIBE sips:bob@example.net SIP/2.0"), OtherRequest);
        // A payload cut right after the scheme is still recognised...
        assert_eq!(classify_bytes(b"INVITE sip:"), Invite);
        // ...one cut inside it is not.
        assert_eq!(classify_bytes(b"INVITE si"), NotSip);
        // Bytes past the window do not matter.
        let mut long = Vec::from(&b"OPTIONS sip:x SIP/2.0\r\n"[..]);
        long.resize(4000, b'A');
        assert_eq!(classify_bytes(&long), Options);
    }

    #[test]
    fn never_panics_on_any_short_input() {
        let base = b"INVITE sips:alice@example.net SIP/2.0";
        for cut in 0..base.len() {
            for b in 0..=255u8 {
                let mut v = base[..cut].to_vec();
                v.push(b);
                let _ = classify_bytes(&v);
                let _ = status_code_bytes(&v);
            }
        }
    }
}
