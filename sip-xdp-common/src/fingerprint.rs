//! Scanner fingerprints: substrings of the User-Agent header that attack
//! tools announce themselves with (`friendly-scanner`, `sipvicious`, ...).
//!
//! The message reader keeps the first bytes of a request's User-Agent
//! value, lower-cased ([`crate::message::MessageReader::user_agent`]); the
//! search tries one (fingerprint, offset) pair per step, so the kernel can
//! drive it with `bpf_loop`. Fingerprints are stored lower-case.

use crate::{message::MessageReader, pod::impl_pod};

/// Bytes of the header's value kept and searched for fingerprints.
pub const UA_VALUE: usize = 64;
pub const MAX_FINGERPRINTS: usize = 16;
pub const FINGERPRINT_LEN: usize = 28;
/// Requests per source that are searched: scanners show themselves in
/// their first request, and the search is not free.
pub const UA_SCANS_PER_SOURCE: u32 = 3;

/// A fingerprint as the kernel holds it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Fingerprint {
    /// 0 for an unused slot.
    pub len: u8,
    pub _pad: [u8; 3],
    /// Lower-case.
    pub bytes: [u8; FINGERPRINT_LEN],
}

impl_pod!(Fingerprint);

impl Fingerprint {
    pub fn new(text: &str) -> Option<Fingerprint> {
        let b = text.as_bytes();
        if b.is_empty() || b.len() > FINGERPRINT_LEN || !text.is_ascii() {
            return None;
        }
        let mut f = Fingerprint { len: b.len() as u8, ..Fingerprint::default() };
        for (i, c) in b.iter().enumerate() {
            f.bytes[i] = c.to_ascii_lowercase();
        }
        Some(f)
    }
}

/// The defaults of `[fingerprints] user_agents`.
pub const DEFAULT_USER_AGENTS: [&str; 8] =
    ["friendly-scanner", "sipvicious", "sipcli", "VaxSIPUserAgent", "pplsip", "sundayddr", "iWar", "sip-scan"];

/// Does `fp` occur at `offset` in the value (`ua[..len]`, lower-case)?
#[inline(always)]
pub fn fingerprint_at(ua: &[u8; UA_VALUE], len: usize, offset: usize, fp: &Fingerprint) -> bool {
    let n = fp.len as usize;
    if n == 0 || n > FINGERPRINT_LEN || offset + n > len || len > UA_VALUE {
        return false;
    }
    let mut k = 0;
    while k < FINGERPRINT_LEN {
        if k >= n {
            return true;
        }
        // Masked on an opaque copy: the verifier sees the bound on the
        // register that forms the address.
        if ua[core::hint::black_box(offset + k) & (UA_VALUE - 1)] != fp.bytes[k] {
            return false;
        }
        k += 1;
    }
    true
}

/// Host form of the whole search: the index of the first fingerprint found
/// in the User-Agent the reader kept.
pub fn user_agent_match(reader: &MessageReader, fps: &[Fingerprint]) -> Option<usize> {
    let (ua, len) = reader.user_agent();
    (0..fps.len().min(MAX_FINGERPRINTS) * UA_VALUE).find_map(|step| {
        let (f, offset) = (step / UA_VALUE, step % UA_VALUE);
        fingerprint_at(ua, len, offset, &fps[f]).then_some(f)
    })
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::message::MessageReader;
    use std::{format, vec::Vec};

    fn defaults() -> Vec<Fingerprint> {
        DEFAULT_USER_AGENTS.iter().map(|t| Fingerprint::new(t).unwrap()).collect()
    }

    fn request(headers: &str) -> MessageReader {
        let text = format!(
            "OPTIONS sip:100@198.18.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 198.18.2.2:5060\r\n{headers}Content-Length: 0\r\n\r\n"
        );
        crate::message::read(text.as_bytes())
    }

    #[test]
    fn finds_tools_in_any_case_and_position() {
        let fps = defaults();
        assert_eq!(user_agent_match(&request("User-Agent: friendly-scanner\r\n"), &fps), Some(0));
        assert_eq!(user_agent_match(&request("user-agent:FRIENDLY-SCANNER\r\n"), &fps), Some(0));
        assert_eq!(
            user_agent_match(&request("From: <sip:x@y>\r\nUSER-AGENT :  SIPVicious 0.3.4\r\nTo: <sip:x@y>\r\n"), &fps),
            Some(1)
        );
        assert_eq!(user_agent_match(&request("User-Agent: Mozilla/5.0 VaxSIPUserAgent/3.1\r\n"), &fps), Some(3));
        assert_eq!(user_agent_match(&request("User-Agent:\tsip-scan\r\n"), &fps), Some(7));
    }

    #[test]
    fn leaves_real_phones_and_other_headers_alone() {
        let fps = defaults();
        assert_eq!(user_agent_match(&request("User-Agent: Yealink SIP-T46S 66.86.0.15\r\n"), &fps), None);
        assert_eq!(user_agent_match(&request("User-Agent: Linphone/5.2 (belle-sip/5.2)\r\n"), &fps), None);
        // The tool's name elsewhere than in User-Agent does not count.
        assert_eq!(user_agent_match(&request("Subject: friendly-scanner\r\nUser-Agent: Zoiper\r\n"), &fps), None);
        assert_eq!(user_agent_match(&request("X-User-Agent: sipvicious\r\n"), &fps), None);
        assert_eq!(user_agent_match(&request(""), &fps), None);
        // A fingerprint must fit within the value's line.
        assert_eq!(user_agent_match(&request("User-Agent: friendly-scan\r\nner: x\r\n"), &fps), None);
        // The first User-Agent counts, as a server reads it.
        assert_eq!(user_agent_match(&request("User-Agent: Zoiper\r\nUser-Agent: sipvicious\r\n"), &fps), None);
        // Past the bytes kept, a name is not searched.
        let padded = format!("User-Agent: {}friendly-scanner\r\n", "x".repeat(UA_VALUE));
        assert_eq!(user_agent_match(&request(&padded), &fps), None);
    }

    #[test]
    fn fingerprints_are_validated() {
        assert!(Fingerprint::new("").is_none());
        assert!(Fingerprint::new(&"x".repeat(FINGERPRINT_LEN + 1)).is_none());
        assert_eq!(Fingerprint::new("iWar").unwrap().bytes[..4], *b"iwar");
    }
}
