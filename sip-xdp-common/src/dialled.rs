//! The number dialled in an INVITE: the user part of its Request-URI,
//! unescaped and normalised to E.164 digits when it is international.
//!
//! `sip:+25261234567@host`, `sips:00252...@host`, `sip:011252...@host`,
//! `sip:%2B252...@host` and `tel:+252-61-234-567` all dial 25261234567
//! internationally; `sip:0612345@` is national; `sip:alice@` and `sip:host`
//! (no user part) are no number. [`UserPart`] reads the URI after its
//! scheme one byte at a time, as the message reader meets it, so the
//! reading does not depend on where the URI sits in a packet or whether it
//! is cut across TCP segments.
//!
//! Percent-escapes are decoded first (RFC 3261 §19.1.4: `%HH` and the
//! character it encodes are the same character), so a server that
//! unescapes the user part before matching its dial plan, as PBXs do, and
//! the filter read the same number. A malformed escape, or one of a byte
//! outside printable ASCII (which Kamailio refuses to unescape), cannot be
//! read the way a server would: [`Dialled::Malformed`], which the policy
//! refuses.
//!
//! Where a URI's parts begin and end follows Kamailio's URI parser, the
//! reference of the differential test (`tests/tests/e2e_reading.rs`): a
//! `sip:` user part ends at a `:` (a password follows), `urn:` is read
//! like `sip:`, and a `tel:` URI with an `@` dials what follows the `@`.

/// Digits kept; longer numbers are matched on their first digits.
pub const MAX_DIGITS: usize = 20;
/// International dialling prefixes ("00", "011") the config may give.
pub const MAX_INTL_PREFIXES: usize = 4;
pub const MAX_INTL_PREFIX_LEN: usize = 4;

/// The digits of a number, fed one (decoded) character at a time.
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
    /// Feeds one character; false once the scan is over.
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
            // End of the number: parameters, password, host, URI end.
            b'@' | b';' | b'?' | b'>' | b':' | b' ' | b'\t' | b'\r' | b'\n' => {
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

// Where a `UserPart` is in the URI.
/// In the user part (for `sip:`, not yet known to be one: only an `@`
/// says the URI has a user part at all).
const IN_USER: u8 = 0;
/// Past the user part, in the rest of the URI.
const PAST_USER: u8 = 1;
/// The URI has ended.
const ENDED: u8 = 2;
/// After the first `:` of a `sip:`, `sips:` or `urn:` user part: the
/// password if an `@` follows (Kamailio's user part ends at the colon),
/// otherwise the port of a host.
const IN_PASSWORD: u8 = 3;
/// After an `@` in a `tel:` URI: Kamailio parses `tel:` with the `sip:`
/// grammar and then takes the host for the number, so what follows the
/// `@` is what it dials.
const TEL_HOST: u8 = 4;

// Where a `UserPart` is in a percent-escape.
const NO_ESCAPE: u8 = 0;
/// After `%`.
const ESCAPE_FIRST: u8 = 1;
/// After `%` and one hex digit.
const ESCAPE_SECOND: u8 = 2;

/// The schemes whose URIs have a user part, as [`UserPart`] reads them.
pub const SCHEME_SIP: u8 = 0;
pub const SCHEME_TEL: u8 = 1;
/// `urn:`: Kamailio parses it with the `sip:` grammar, so
/// `urn:+25261234567@host` has the user part `+25261234567` to it.
pub const SCHEME_URN: u8 = 2;

/// The characters an escape may decode to in a user part that servers
/// read: Kamailio's unescaping of a user part fails on any other (a
/// control byte, DEL, a byte past ASCII), so no server reads such a user
/// part as the filter could.
const ESCAPED_PRINTABLE: core::ops::RangeInclusive<u8> = 32..=126;

/// The Request-URI after its scheme's colon, read one byte at a time:
/// escapes decoded, the number scanned from the decoded characters, and
/// whether there is a user part at all, as Kamailio's URI parser splits
/// it. For `sip:`, `sips:` and `urn:` the user part is what precedes an
/// `@` (`sip:0025261234567 SIP/2.0` names a host, not a number: a server
/// sees no user), up to a `:` that starts a password; for `tel:` it is
/// the number up to its parameters, or what follows an `@` if the URI has
/// one.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct UserPart {
    pub number: NumberScan,
    place: u8,
    escape: u8,
    /// The high nibble of an escape being read.
    high: u8,
    /// [`SCHEME_SIP`] (`sips:` too), [`SCHEME_TEL`] or [`SCHEME_URN`].
    scheme: u8,
    /// A `%` not followed by two hex digits, or an escape of a byte no
    /// server reads, in the user part.
    pub malformed: u8,
    /// The URI ended without an `@`: no user part.
    pub no_user: u8,
    /// In [`IN_PASSWORD`]: a byte other than a digit was seen (what
    /// follows the colon is no port).
    alpha: u8,
    pub _pad: u8,
}

#[inline(always)]
fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Ends a URI (outside any escape).
#[inline(always)]
fn ends_uri(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

impl UserPart {
    pub const fn new(scheme: u8) -> UserPart {
        UserPart {
            number: NumberScan { digits: [0; MAX_DIGITS], len: 0, plus: 0, state: SCAN_RUNNING, _pad: 0 },
            place: IN_USER,
            escape: NO_ESCAPE,
            high: 0,
            scheme,
            malformed: 0,
            no_user: 0,
            alpha: 0,
            _pad: 0,
        }
    }

    /// Starts reading a URI's user part afresh, in place. The digits
    /// already there are left (only the first `len` count, and a prefix
    /// match reads no further): clearing them is a `memset` call on BPF,
    /// a frame the oldest verifiers count against the stack.
    #[inline(always)]
    pub fn restart(&mut self, scheme: u8) {
        self.restart_number();
        self.place = IN_USER;
        self.high = 0;
        self.scheme = scheme;
        self.no_user = 0;
        self.alpha = 0;
    }

    /// The number scanned afresh, as if nothing had been read of it.
    #[inline(always)]
    fn restart_number(&mut self) {
        self.number.len = 0;
        self.number.plus = 0;
        self.number.state = SCAN_RUNNING;
        self.escape = NO_ESCAPE;
        self.malformed = 0;
    }

    /// Feeds the next byte of the URI; false once the URI has ended.
    #[inline(always)]
    pub fn step(&mut self, c: u8) -> bool {
        if self.place == ENDED {
            return false;
        }
        if ends_uri(c) {
            self.end();
            return false;
        }
        match self.place {
            IN_USER => self.user_byte(c),
            IN_PASSWORD => self.password_byte(c),
            // Kamailio takes a tel URI's host for its number: the number
            // is read again from there, as it is, undecoded (an escape is
            // no host character: such a URI does not parse at all).
            TEL_HOST => {
                self.number.step(c);
            }
            // A tel URI's parameters may still be followed by `@` and a
            // host, which Kamailio then reads as the number.
            _ => {
                if c == b'@' && self.scheme == SCHEME_TEL {
                    self.tel_host();
                }
            }
        }
        true
    }

    /// A byte of the user part.
    #[inline(always)]
    fn user_byte(&mut self, c: u8) {
        match (self.escape, hex(c)) {
            (ESCAPE_FIRST, Some(h)) => {
                self.high = h;
                self.escape = ESCAPE_SECOND;
            }
            (ESCAPE_SECOND, Some(l)) => {
                self.escape = NO_ESCAPE;
                let decoded = self.high << 4 | l;
                if ESCAPED_PRINTABLE.contains(&decoded) {
                    // A decoded character is data, never the `@` that
                    // ends the user part: it goes to the number as it is.
                    self.number.step(decoded);
                } else {
                    self.malformed();
                }
            }
            (NO_ESCAPE, _) => self.raw(c),
            // A `%` not followed by two hex digits; the byte that broke
            // the escape is read as itself.
            _ => {
                self.malformed();
                self.raw(c);
            }
        }
    }

    /// A byte of the user part that is not inside an escape.
    #[inline(always)]
    fn raw(&mut self, c: u8) {
        if c == b'%' {
            self.escape = ESCAPE_FIRST;
            return;
        }
        if self.scheme == SCHEME_TEL {
            match c {
                b'@' => {
                    self.tel_host();
                    return;
                }
                // The parameters after a tel number (`;phone-context=`).
                b';' => self.place = PAST_USER,
                _ => {}
            }
        } else {
            match c {
                // The `@` after a user part.
                b'@' => self.place = PAST_USER,
                // A password follows (or a port, if no `@` does).
                b':' => {
                    self.place = IN_PASSWORD;
                    self.alpha = 0;
                }
                _ => {}
            }
        }
        self.number.step(c);
    }

    /// A byte after the colon of a `sip:`, `sips:` or `urn:` user part.
    /// The number ended at the colon; what is left to learn is whether
    /// the URI has a user part at all. (A port followed by parameters and
    /// then an `@` is no URI Kamailio parses; the number before the colon
    /// is read then, to err on the side of the policy.)
    #[inline(always)]
    fn password_byte(&mut self, c: u8) {
        match c {
            // A password: the user part was what preceded the colon.
            b'@' => self.place = PAST_USER,
            b'0'..=b'9' => {}
            _ => self.alpha = 1,
        }
    }

    /// An `@` in a `tel:` URI: what follows is the number, and what came
    /// before it (escapes included) is nothing a server reads.
    #[inline(always)]
    fn tel_host(&mut self) {
        self.restart_number();
        self.place = TEL_HOST;
    }

    #[inline(always)]
    fn malformed(&mut self) {
        self.malformed = 1;
        self.escape = NO_ESCAPE;
        self.number.state = SCAN_NOT_A_NUMBER;
    }

    /// The URI ends (a blank or the line's end).
    #[inline(always)]
    pub fn end(&mut self) {
        match self.place {
            IN_USER => {
                if self.escape != NO_ESCAPE {
                    self.malformed();
                }
                if self.scheme != SCHEME_TEL {
                    self.no_user = 1;
                }
                self.number.step(b' ');
            }
            // No `@` after the colon: what preceded it was a host, and
            // what follows a port. Kamailio makes one exception: a `urn:`
            // whose colon is followed by something other than digits
            // keeps what preceded the colon as its user part.
            IN_PASSWORD if self.scheme != SCHEME_URN || self.alpha == 0 => self.no_user = 1,
            TEL_HOST => {
                self.number.step(b' ');
            }
            _ => {}
        }
        self.place = ENDED;
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
    /// The message ended before enough digits to know the country: the
    /// policy must not let it through.
    Unverifiable,
    /// A malformed escape in the user part: no server reads it as we
    /// could, so the policy refuses it.
    Malformed,
}

/// Digits that identify any country code (they are 1 to 3 digits long).
const COUNTRY_DIGITS: u8 = 4;

/// What a Request-URI's user part dials. A URI cut short (the message
/// ended inside it) is read as far as it goes, as a user part.
#[inline(always)]
pub fn dialled(user: &UserPart, prefixes: &IntlPrefixes) -> Dialled {
    if user.malformed != 0 && user.no_user == 0 {
        return Dialled::Malformed;
    }
    if user.no_user != 0 {
        return Dialled::NotANumber;
    }
    let scan = &user.number;
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

/// Host convenience: what the Request-URI after its scheme's colon
/// (`+252...@host SIP/2.0`) dials, in a URI of `scheme`.
pub fn dialled_uri(uri: &[u8], scheme: u8, prefixes: &IntlPrefixes) -> Dialled {
    // Over a used one, as the kernel reads a URI: what `restart` leaves
    // must not matter.
    let mut user = UserPart::new(SCHEME_SIP);
    for c in b"+99999999999999999999:x%zz@ " {
        user.step(*c);
    }
    user.restart(scheme);
    for &c in uri {
        if !user.step(c) {
            break;
        }
    }
    dialled(&user, prefixes)
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

    /// What a URI (scheme included) dials: None for no number, `?` for
    /// unverifiable, `!` for malformed.
    fn number(uri: &str) -> Option<(bool, String)> {
        let (scheme, rest) = uri.split_once(':').unwrap();
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "tel" => SCHEME_TEL,
            "urn" => SCHEME_URN,
            _ => SCHEME_SIP,
        };
        match dialled_uri(rest.as_bytes(), scheme, &intl_prefixes(&["00", "011"])) {
            Dialled::NotANumber => None,
            Dialled::Unverifiable => Some((true, String::from("?"))),
            Dialled::Malformed => Some((true, String::from("!"))),
            Dialled::National => Some((false, String::new())),
            Dialled::International { digits, len } => {
                Some((true, String::from_utf8(digits[..len as usize].to_vec()).unwrap()))
            }
        }
    }

    fn intl(s: &str) -> Option<(bool, String)> {
        Some((true, s.into()))
    }

    fn national() -> Option<(bool, String)> {
        Some((false, String::new()))
    }

    #[test]
    fn international_forms_normalise_to_e164() {
        assert_eq!(number("sip:+25261234567@198.18.0.1 SIP/2.0"), intl("25261234567"));
        assert_eq!(number("sip:0025261234567@198.18.0.1 SIP/2.0"), intl("25261234567"));
        assert_eq!(number("sip:01125261234567@pbx SIP/2.0"), intl("25261234567"));
        assert_eq!(number("tel:+252-61-234-567 SIP/2.0"), intl("25261234567"));
        assert_eq!(number("tel:+252(61)234.567;phone-context=x SIP/2.0"), intl("25261234567"));
        assert_eq!(number("sips:+4930123@pbx SIP/2.0"), intl("4930123"));
        assert_eq!(number("sip:+4930123;user=phone@pbx SIP/2.0"), intl("4930123"));
        assert_eq!(number("sip:+4930123:secret@pbx SIP/2.0"), intl("4930123"));
        assert_eq!(number("sip:+4930123@pbx\r"), intl("4930123"));
    }

    #[test]
    fn escapes_read_as_the_characters_they_encode() {
        for uri in [
            "sip:%2B25261234567@pbx SIP/2.0",
            "sip:%2b25261234567@pbx SIP/2.0",
            "sip:%2B%32%35%32%36%31%32%33%34%35%36%37@pbx SIP/2.0",
            "sip:+%3252%2D61%2d234%2E567@pbx SIP/2.0",
            "sip:%30%30252-61234567@pbx SIP/2.0",
            "tel:%2B252%2861%29234567 SIP/2.0",
        ] {
            assert_eq!(number(uri), intl("25261234567"), "{uri}");
        }
        // A decoded delimiter ends the number as the plain one would; a
        // decoded `@` is data, not the end of the user part.
        assert_eq!(number("sip:+252612%3Bx@pbx SIP/2.0"), intl("252612"));
        assert_eq!(number("sip:+252612%40evil@pbx SIP/2.0"), intl("252612"));
        assert_eq!(number("sip:%41lice@pbx SIP/2.0"), None);
    }

    #[test]
    fn malformed_escapes_are_malformed() {
        for uri in [
            "sip:%2G252@pbx SIP/2.0",
            "sip:+252%@pbx SIP/2.0",
            "sip:+252%4@pbx SIP/2.0",
            "sip:+25261%zz@pbx SIP/2.0",
            "sip:alice%@pbx SIP/2.0",
            "tel:+252%2 SIP/2.0",
            "sip:+252;x=%q@pbx SIP/2.0",
        ] {
            assert_eq!(number(uri), intl("!"), "{uri}");
        }
        // Kamailio unescapes only to printable ASCII: an escaped control
        // byte, DEL or a byte past ASCII fails its unescaping.
        for uri in [
            "sip:+25261234567%0D@pbx SIP/2.0",
            "sip:+4930%00@pbx SIP/2.0",
            "sip:alice%1F@pbx SIP/2.0",
            "sip:alice%7f@pbx SIP/2.0",
            "sip:alice%80@pbx SIP/2.0",
            "tel:+4930%FF SIP/2.0",
        ] {
            assert_eq!(number(uri), intl("!"), "{uri}");
        }
        assert_eq!(number("sip:+252%20x@pbx SIP/2.0"), intl("252"), "a space, the first printable byte");
        assert_eq!(number("sip:alice%7E@pbx SIP/2.0"), None, "a tilde, the last");
        // Past the user part, escapes are not the number's business; nor
        // in a password, which Kamailio does not unescape as the user.
        assert_eq!(number("sip:+252@pbx;x=%zz SIP/2.0"), intl("252"));
        assert_eq!(number("sip:+252:%zz@pbx SIP/2.0"), intl("252"));
        assert_eq!(number("sip:alice:%00@pbx SIP/2.0"), None);
        // Without a user part, a bad escape is in the host: not a number.
        assert_eq!(number("sip:%zz SIP/2.0"), None);
    }

    #[test]
    fn a_sip_uri_without_at_has_no_user_part() {
        assert_eq!(number("sip:0025261234567 SIP/2.0"), None);
        assert_eq!(number("sip:+25261234567;transport=tcp SIP/2.0"), None);
        assert_eq!(number("sip:pbx.example.net SIP/2.0"), None);
        // A tel URI is all number.
        assert_eq!(number("tel:0025261234567 SIP/2.0"), intl("25261234567"));
        // A colon then a port: still no user part.
        assert_eq!(number("sip:0025261234567:5060 SIP/2.0"), None);
        assert_eq!(number("urn:0025261234567:5060 SIP/2.0"), None);
        // Cut short before any `@`: read as a user part (the server never
        // gets the rest, so this errs on the side of the policy).
        assert_eq!(number("sip:+25261234567"), intl("25261234567"));
        assert_eq!(number("sip:+25"), intl("?"));
    }

    #[test]
    fn uris_split_as_kamailio_splits_them() {
        // urn: is parsed like sip:.
        assert_eq!(number("urn:+25261234567@pbx SIP/2.0"), intl("25261234567"));
        assert_eq!(number("urn:0025261234567 SIP/2.0"), None);
        // ...but a urn: whose colon is followed by more than digits keeps
        // what precedes the colon as its user part.
        assert_eq!(number("urn:0025261234567:x SIP/2.0"), intl("25261234567"));
        assert_eq!(number("urn:service:sos SIP/2.0"), None);
        // A tel URI with an `@` dials its host, whatever came before.
        assert_eq!(number("tel:+4930123456@0025261234567 SIP/2.0"), intl("25261234567"));
        assert_eq!(number("tel:+4930;phone-context=+49@0025261234567 SIP/2.0"), intl("25261234567"));
        assert_eq!(number("tel:%zz@0025261234567;x SIP/2.0"), intl("25261234567"));
        assert_eq!(number("tel:+25261234567@198.18.0.1 SIP/2.0"), national());
        assert_eq!(number("tel:+25261234567@pbx.example SIP/2.0"), None);
    }

    #[test]
    fn national_numbers_and_names() {
        assert_eq!(number("sip:0612345678@pbx SIP/2.0"), national());
        assert_eq!(number("sip:100@pbx SIP/2.0"), national());
        assert_eq!(number("sip:00@pbx SIP/2.0"), national(), "a prefix alone dials nothing abroad");
        assert_eq!(number("sip:alice@pbx SIP/2.0"), None);
        assert_eq!(number("sip:@pbx SIP/2.0"), None);
        assert_eq!(number("sip:+@pbx SIP/2.0"), None);
        assert_eq!(number("sip:12+34@pbx SIP/2.0"), None, "a plus inside is not a number");
    }

    #[test]
    fn long_numbers_keep_their_first_digits() {
        let mut long = String::from("sip:+252");
        long.extend(core::iter::repeat_n('1', 300));
        long.push_str("@pbx SIP/2.0");
        let (international, digits) = number(&long).unwrap();
        assert!(international);
        assert_eq!(digits.len(), MAX_DIGITS);
        assert!(digits.starts_with("252111"));
        // Separators cannot pad the country away: the whole URI is read.
        let mut padded = String::from("tel:+");
        padded.extend(core::iter::repeat_n('-', 300));
        padded.push_str("252 SIP/2.0");
        assert_eq!(number(&padded), intl("252"));
    }

    #[test]
    fn any_byte_sequence_is_safe() {
        let prefixes = intl_prefixes(&["00"]);
        let mut v: Vec<u8> = Vec::new();
        for b in 0..=255u8 {
            v.push(b);
            for scheme in [SCHEME_SIP, SCHEME_TEL, SCHEME_URN] {
                let _ = dialled_uri(&v, scheme, &prefixes);
            }
        }
    }
}
