//! Copies the start of the payload into a window for the shared
//! first-line classifier.

use sip_xdp_common::sip::{classify, SipKind, SIP_WINDOW};

use crate::packet::{header, Frame};

#[inline(always)]
pub fn first_line(ctx: &impl Frame, payload_offset: usize) -> SipKind {
    match window(ctx, payload_offset) {
        Some(window) => classify(&window),
        None => SipKind::NotSip,
    }
}

/// The first bytes of the payload, if it is at least a window long.
///
/// One fixed-size copy: the verifier sees one path, not one per payload
/// length. A shorter payload is not classified (no SIP message of headers
/// and first line is shorter than a window; keep-alives are not requests):
/// zero-filling a short copy compiles to a call to the memset subprogram,
/// one frame deeper than Debian 12's verifier allows on this path (512
/// bytes of stack over the whole call chain).
#[inline(always)]
pub fn window(ctx: &impl Frame, payload_offset: usize) -> Option<[u8; SIP_WINDOW]> {
    header::<[u8; SIP_WINDOW]>(ctx, payload_offset).map(|p| unsafe { *p })
}
