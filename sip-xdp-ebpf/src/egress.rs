//! Egress (TC): watches the protected server's SIP responses. Each 401,
//! 403 or 407 sent to a remote address counts against it; `auth_max` of
//! them within the window ban it in the kernel. A 200 OK to a REGISTER
//! clears the count, so a phone that mistyped its password once is not
//! banned. Never drops or changes a packet.

use aya_ebpf::programs::TcContext;
use sip_xdp_common::{
    bans::{AuthState, BanReason},
    counts::ResponseCount,
    limits::count_auth_failure,
    sip::{cseq_header_at, cseq_value_is_register, status_code, CSEQ_NAME_LEN, CSEQ_SCAN_POSITIONS, RESPONSE_SCAN},
};

use crate::{
    bans::ban,
    eth,
    ip::{self, Frag, L3Info},
    l4,
    maps::{config, count, SIP_AUTH, SIP_SCRATCH},
    sip,
};
use aya_ebpf::helpers::{
    bpf_ktime_get_boot_ns,
    generated::{bpf_loop, bpf_skb_load_bytes},
};
use core::{ffi::c_void, mem::MaybeUninit};

#[inline(always)]
pub fn observe(ctx: &TcContext) {
    let cfg = config();
    let Ok((l3, offset)) = eth::parse(ctx) else { return };
    let mut ip = MaybeUninit::<L3Info>::uninit();
    let Ok(ip) = ip::parse(ctx, l3, offset, &mut ip) else { return };
    if matches!(ip.frag, Frag::Later(_)) {
        return;
    }
    let Ok(Some(l4)) = l4::parse(ctx, ip.protocol, ip.l4_offset) else { return };
    if !cfg.is_sip_port(l4.sport) {
        return;
    }
    let Some(window) = sip::window(ctx, l4.payload_offset) else { return };
    let code = status_code(&window);
    if let Some(code) = code {
        count(ResponseCount::of(code) as u32);
    }
    match code {
        Some(401 | 403 | 407) => {
            let now_ns = unsafe { bpf_ktime_get_boot_ns() };
            let state = match SIP_AUTH.get_ptr_mut(&ip.dst) {
                Some(state) => state,
                None => {
                    let _ = SIP_AUTH.insert(&ip.dst, &AuthState::default(), 0);
                    match SIP_AUTH.get_ptr_mut(&ip.dst) {
                        Some(state) => state,
                        None => return,
                    }
                }
            };
            if count_auth_failure(unsafe { &mut *state }, cfg, now_ns) {
                ban(&ip.dst, BanReason::Auth, cfg, now_ns, false);
            }
        }
        Some(200) if answers_register(ctx, l4.payload_offset) => {
            let _ = SIP_AUTH.remove(&ip.dst);
        }
        _ => {}
    }
}

/// Loads the start of the response (fixed sizes, largest that fits) into
/// the per-CPU scratch buffer and checks its CSeq method.
#[inline(always)]
fn answers_register(ctx: &TcContext, payload_offset: usize) -> bool {
    let Some(buf) = SIP_SCRATCH.get_ptr_mut(0) else { return false };
    let buf = unsafe { &mut *buf };
    *buf = [0u8; RESPONSE_SCAN];
    // min(payload, buffer) bytes in one copy; see `packet::copy_payload`
    // (this is its skb twin) for why `black_box`.
    let available = (unsafe { (*ctx.skb.skb).len } as usize).saturating_sub(payload_offset);
    let len = core::hint::black_box(if available > RESPONSE_SCAN { RESPONSE_SCAN } else { available });
    if len == 0 || len > RESPONSE_SCAN {
        return false;
    }
    let loaded = unsafe {
        bpf_skb_load_bytes(ctx.skb.skb as *const c_void, payload_offset as u32, buf.as_mut_ptr().cast(), len as u32)
            == 0
    };
    if !loaded {
        return false;
    }
    // bpf_loop: the verifier checks the callback once instead of walking
    // every offset, which a plain loop of this length would exhaust.
    let mut found: u64 = 0;
    unsafe { bpf_loop(CSEQ_SCAN_POSITIONS as u32, find_cseq as *mut c_void, (&raw mut found).cast(), 0) };
    if found == 0 || found > CSEQ_SCAN_POSITIONS as u64 {
        return false;
    }
    cseq_value_is_register(buf, found as usize - 1 + CSEQ_NAME_LEN)
}

/// `bpf_loop` callback: stops at the first `\nCSeq`, storing its offset + 1.
extern "C" fn find_cseq(index: u64, found: *mut c_void) -> i64 {
    let Some(buf) = SIP_SCRATCH.get_ptr(0) else { return 1 };
    let i = index as usize;
    if i >= CSEQ_SCAN_POSITIONS {
        return 1;
    }
    if cseq_header_at(unsafe { &*buf }, i) {
        unsafe { *found.cast::<u64>() = index + 1 };
        return 1;
    }
    0
}
