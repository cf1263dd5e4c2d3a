//! Copies the start of the payload into a zero-filled window for the shared
//! first-line classifier.

use aya_ebpf::programs::XdpContext;
use sip_xdp_common::sip::{classify, SipKind, SIP_WINDOW};

use crate::packet::header;

/// Shorter payloads are not classified: no SIP message is this short (a
/// first line alone is longer, and headers must follow).
const MIN_CLASSIFIED: usize = SIP_WINDOW / 2;

#[inline(always)]
pub fn first_line(ctx: &XdpContext, payload_offset: usize) -> SipKind {
    let mut window = [0u8; SIP_WINDOW];
    // Two fixed-size copies instead of a byte loop: the verifier sees two
    // paths, not one per possible payload length.
    if let Some(p) = header::<[u8; SIP_WINDOW]>(ctx, payload_offset) {
        window = unsafe { *p };
    } else if let Some(p) = header::<[u8; MIN_CLASSIFIED]>(ctx, payload_offset) {
        window[..MIN_CLASSIFIED].copy_from_slice(unsafe { &*p });
    } else {
        return SipKind::NotSip;
    }
    classify(&window)
}
