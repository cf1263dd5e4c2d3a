//! The number dialled in an INVITE: the user part of its Request-URI,
//! normalised to E.164 digits when it is international.
//!
//! `sip:+25261234567@host`, `sips:00252...@host`, `sip:011252...@host` and
//! `tel:+252-61-234-567` all dial 25261234567 internationally; `sip:0612345@`
//! is national; `sip:alice@` is no number. The scan is a small state machine
//! fed one byte at a time, so the kernel can drive it with `bpf_loop` (the
//! verifier checks one step, not every path through the URI) and the host
//! tests drive it with a plain loop.

/// Bytes of an INVITE read for its Request-URI.
pub const INVITE_WINDOW: usize = 128;
/// Digits kept; longer numbers are matched on their first digits.
pub const MAX_DIGITS: usize = 20;
/// International dialling prefixes ("00", "011") the config may give.
pub const MAX_INTL_PREFIXES: usize = 4;
pub const MAX_INTL_PREFIX_LEN: usize = 4;

/// Where the user part starts: after `INVITE sip:`, `INVITE sips:` or
/// `INVITE tel:` (scheme case-insensitive); None for anything else.
#[inline(always)]
pub fn invite_user_start(buf: &[u8; INVITE_WINDOW]) -> Option<usize> {
    let head = [buf[0], buf[1], buf[2], buf[3], buf[4], buf[5], buf[6]];
    if &head != b"INVITE " {
        return None;
    }
    let s = [buf[7] | 0x20, buf[8] | 0x20, buf[9] | 0x20, buf[10] | 0x20, buf[11]];
    if s[0] == b's' && s[1] == b'i' && s[2] == b'p' && buf[10] == b':' {
        Some(11)
    } else if s[0] == b's' && s[1] == b'i' && s[2] == b'p' && s[3] == b's' && s[4] == b':' {
        Some(12)
    } else if s[0] == b't' && s[1] == b'e' && s[2] == b'l' && buf[10] == b':' {
        Some(11)
    } else {
        None
    }
}

/// The scan's state between bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct NumberScan {
    pub digits: [u8; MAX_DIGITS],
    pub len: u8,
    /// A leading '+'.
    pub plus: u8,
    /// 0 scanning, 1 ended at a delimiter, 2 not a number.
    pub state: u8,
    pub _pad: u8,
}

pub const SCAN_RUNNING: u8 = 0;
pub const SCAN_ENDED: u8 = 1;
pub const SCAN_NOT_A_NUMBER: u8 = 2;

impl NumberScan {
    /// Feeds one byte; false once the scan is over.
    #[inline(always)]
    pub fn step(&mut self, c: u8) -> bool {
        if self.state != SCAN_RUNNING {
            return false;
        }
        match c {
            b'0'..=b'9' => {
                let i = self.len as usize;
                if i < MAX_DIGITS {
                    self.digits[i] = c;
                    self.len += 1;
                }
                // Past MAX_DIGITS the number is matched on its first digits.
            }
            b'+' if self.len == 0 && self.plus == 0 => self.plus = 1,
            // Visual separators of tel URIs (RFC 3966).
            b'-' | b'.' | b'(' | b')' => {}
            // End of the user part.
            b'@' | b';' | b'?' | b'>' | b':' | b' ' | b'\r' | b'\n' => {
                self.state = if self.len == 0 { SCAN_NOT_A_NUMBER } else { SCAN_ENDED };
                return false;
            }
            _ => {
                self.state = SCAN_NOT_A_NUMBER;
                return false;
            }
        }
        true
    }
}

/// International dialling prefixes, as the kernel holds them.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct IntlPrefixes {
    pub digits: [[u8; MAX_INTL_PREFIX_LEN]; MAX_INTL_PREFIXES],
    /// 0 for an unused slot.
    pub lens: [u8; MAX_INTL_PREFIXES],
}

/// What was dialled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialled {
    /// Not a number (`sip:alice@`), or not an INVITE.
    NotANumber,
    National,
    /// E.164 digits (country code first) in `digits[..len]`; the scan may
    /// have stopped at the window's end, which prefix matching tolerates.
    International {
        digits: [u8; MAX_DIGITS],
        len: u8,
    },
    /// The window ended before enough digits to know the country (padding
    /// with visual separators, say): the policy must not let it through.
    Unverifiable,
}

/// Digits that identify any country code (they are 1 to 3 digits long).
const COUNTRY_DIGITS: u8 = 4;

/// Classifies a finished (or window-truncated) scan.
#[inline(always)]
pub fn dialled(scan: &NumberScan, prefixes: &IntlPrefixes) -> Dialled {
    if scan.state == SCAN_NOT_A_NUMBER {
        return Dialled::NotANumber;
    }
    if scan.state == SCAN_RUNNING && scan.len < COUNTRY_DIGITS {
        return Dialled::Unverifiable;
    }
    if scan.len == 0 {
        return Dialled::NotANumber;
    }
    if scan.plus != 0 {
        return Dialled::International { digits: scan.digits, len: scan.len };
    }
    let mut p = 0;
    while p < MAX_INTL_PREFIXES {
        let n = prefixes.lens[p] as usize;
        if n > 0
            && n <= MAX_INTL_PREFIX_LEN
            && (scan.len as usize) > n
            && starts_with(&scan.digits, &prefixes.digits[p], n)
        {
            let mut digits = [0u8; MAX_DIGITS];
            let mut i = 0;
            while i + n < MAX_DIGITS {
                digits[i] = scan.digits[i + n];
                i += 1;
            }
            return Dialled::International { digits, len: scan.len - n as u8 };
        }
        p += 1;
    }
    Dialled::National
}

#[inline(always)]
fn starts_with(digits: &[u8; MAX_DIGITS], prefix: &[u8; MAX_INTL_PREFIX_LEN], n: usize) -> bool {
    let mut i = 0;
    while i < MAX_INTL_PREFIX_LEN {
        if i < n && digits[i] != prefix[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Host convenience: the number dialled by an INVITE payload.
pub fn dialled_bytes(payload: &[u8], prefixes: &IntlPrefixes) -> Dialled {
    let mut buf = [0u8; INVITE_WINDOW];
    let n = payload.len().min(INVITE_WINDOW);
    buf[..n].copy_from_slice(&payload[..n]);
    let Some(start) = invite_user_start(&buf) else { return Dialled::NotANumber };
    let mut scan = NumberScan::default();
    for &c in &buf[start..] {
        if !scan.step(c) {
            break;
        }
    }
    dialled(&scan, prefixes)
}

/// `IntlPrefixes` from strings of digits (host side; at most 4 of 4 digits).
pub fn intl_prefixes(list: &[&str]) -> IntlPrefixes {
    let mut p = IntlPrefixes::default();
    for (slot, text) in list.iter().take(MAX_INTL_PREFIXES).enumerate() {
        let bytes = text.as_bytes();
        let n = bytes.len().min(MAX_INTL_PREFIX_LEN);
        p.digits[slot][..n].copy_from_slice(&bytes[..n]);
        p.lens[slot] = n as u8;
    }
    p
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::{string::String, vec::Vec};

    fn number(payload: &str) -> Option<(bool, String)> {
        match dialled_bytes(payload.as_bytes(), &intl_prefixes(&["00", "011"])) {
            Dialled::NotANumber => None,
            Dialled::Unverifiable => Some((true, String::from("?"))),
            Dialled::National => Some((false, String::new())),
            Dialled::International { digits, len } => {
                Some((true, String::from_utf8(digits[..len as usize].to_vec()).unwrap()))
            }
        }
    }

    fn intl(s: &str) -> Option<(bool, String)> {
        Some((true, s.into()))
    }

    #[test]
    fn international_forms_normalise_to_e164() {
        assert_eq!(number("INVITE sip:+25261234567@198.18.0.1 SIP/2.0\r\n"), intl("25261234567"));
        assert_eq!(number("INVITE sip:0025261234567@198.18.0.1 SIP/2.0\r\n"), intl("25261234567"));
        assert_eq!(number("INVITE sip:01125261234567@pbx SIP/2.0\r\n"), intl("25261234567"));
        assert_eq!(number("INVITE tel:+252-61-234-567 SIP/2.0\r\n"), intl("25261234567"));
        assert_eq!(number("INVITE tel:+252(61)234.567;phone-context=x SIP/2.0\r\n"), intl("25261234567"));
        assert_eq!(number("INVITE sips:+4930123@pbx SIP/2.0\r\n"), intl("4930123"));
        assert_eq!(number("INVITE SIP:+4930123@pbx SIP/2.0\r\n"), intl("4930123"), "scheme case");
        assert_eq!(number("INVITE sip:+4930123;user=phone@pbx SIP/2.0\r\n"), intl("4930123"));
        assert_eq!(number("INVITE sip:+4930123:secret@pbx SIP/2.0\r\n"), intl("4930123"));
    }

    #[test]
    fn national_numbers_and_names() {
        assert_eq!(number("INVITE sip:0612345678@pbx SIP/2.0\r\n"), Some((false, String::new())));
        assert_eq!(number("INVITE sip:100@pbx SIP/2.0\r\n"), Some((false, String::new())));
        assert_eq!(
            number("INVITE sip:00@pbx SIP/2.0\r\n"),
            Some((false, String::new())),
            "a prefix alone dials nothing abroad"
        );
        assert_eq!(number("INVITE sip:alice@pbx SIP/2.0\r\n"), None);
        assert_eq!(number("INVITE sip:@pbx SIP/2.0\r\n"), None);
        assert_eq!(number("INVITE sip:+@pbx SIP/2.0\r\n"), None);
        assert_eq!(number("INVITE sip:12+34@pbx SIP/2.0\r\n"), None, "a plus inside is not a number");
        assert_eq!(number("invite sip:+25261234567@pbx SIP/2.0\r\n"), None, "methods are case-sensitive");
        assert_eq!(number("REGISTER sip:+25261234567@pbx SIP/2.0\r\n"), None);
        assert_eq!(number("INVITE http://+252 HTTP\r\n"), None);
    }

    #[test]
    fn uris_longer_than_the_window_keep_their_first_digits() {
        let mut long = String::from("INVITE sip:+252");
        long.extend(core::iter::repeat_n('1', 300));
        long.push_str("@pbx SIP/2.0\r\n");
        let (international, digits) = number(&long).unwrap();
        assert!(international);
        assert_eq!(digits.len(), MAX_DIGITS);
        assert!(digits.starts_with("252111"));
        // Padding with separators cannot hide the country: too few digits
        // in the window is unverifiable, whatever the prefix.
        for head in ["INVITE tel:+", "INVITE sip:00", "INVITE sip:+25"] {
            let mut padded = String::from(head);
            padded.extend(core::iter::repeat_n('-', 200));
            padded.push_str("252 SIP/2.0\r\n");
            assert_eq!(number(&padded), intl("?"), "{head}");
        }
    }

    #[test]
    fn any_byte_sequence_is_safe() {
        let prefixes = intl_prefixes(&["00"]);
        let mut v: Vec<u8> = b"INVITE sip:".to_vec();
        for b in 0..=255u8 {
            v.push(b);
            let _ = dialled_bytes(&v, &prefixes);
        }
    }
}
