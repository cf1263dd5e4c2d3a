//! Copies the start of the payload into a zero-filled window for the shared
//! first-line classifier.

use sip_xdp_common::sip::{classify, SipKind, SIP_WINDOW};

use crate::packet::{header, Frame};

/// Shorter payloads are not classified: no SIP message is this short (a
/// first line alone is longer, and headers must follow).
const MIN_CLASSIFIED: usize = SIP_WINDOW / 2;

#[inline(always)]
pub fn first_line(ctx: &impl Frame, payload_offset: usize) -> SipKind {
    match window(ctx, payload_offset) {
        Some(window) => classify(&window),
        None => SipKind::NotSip,
    }
}

/// The zero-filled first bytes of the payload, if it is long enough.
#[inline(always)]
pub fn window(ctx: &impl Frame, payload_offset: usize) -> Option<[u8; SIP_WINDOW]> {
    // Two fixed-size copies instead of a byte loop: the verifier sees two
    // paths, not one per possible payload length. The common, long case
    // copies without zeroing first (zeroing compiles to a memset call).
    if let Some(p) = header::<[u8; SIP_WINDOW]>(ctx, payload_offset) {
        return Some(unsafe { *p });
    }
    let p = header::<[u8; MIN_CLASSIFIED]>(ctx, payload_offset)?;
    let mut window = [0u8; SIP_WINDOW];
    window[..MIN_CLASSIFIED].copy_from_slice(unsafe { &*p });
    Some(window)
}
