//! Scanner fingerprints: the first requests of each source are searched
//! for a User-Agent naming an attack tool. Both searches run under
//! `bpf_loop`, so the verifier checks one step of each.

use aya_ebpf::{bindings::xdp_md, helpers::generated::bpf_loop, programs::XdpContext};
use core::ffi::c_void;
use sip_xdp_common::{
    counts::COUNT_FINGERPRINT_BASE,
    fingerprint::{
        fingerprint_at, ua_header_at, ua_value_start, MAX_FINGERPRINTS, UA_SCAN, UA_SCANS_PER_SOURCE, UA_VALUE,
    },
    map_types::SourceStats,
};

use crate::{
    maps::{count, SIP_FINGERPRINTS, SIP_SCRATCH},
    packet::copy_payload,
};

/// The ingress slot of the per-CPU scratch buffer (egress uses 0).
const SCRATCH_INGRESS: u32 = 1;

/// Does this request's User-Agent name an attack tool? Counts the hit by
/// fingerprint. Only the first few requests of a source are searched.
pub fn announced_by(ctx: &XdpContext, payload_offset: usize, stats: *mut SourceStats) -> bool {
    sip_xdp_scanner_check(ctx.ctx, payload_offset as u64, stats) != 0
}

/// A global BPF function: verified once, on its own (see `dest`).
#[no_mangle]
#[inline(never)]
pub extern "C" fn sip_xdp_scanner_check(md: *mut xdp_md, payload_offset: u64, stats: *mut SourceStats) -> u64 {
    if md.is_null() || stats.is_null() {
        return 0;
    }
    let ctx = XdpContext::new(md);
    search(&ctx, payload_offset as usize & 0xffff, unsafe { &mut *stats }) as u64
}

#[inline(always)]
fn search(ctx: &XdpContext, payload_offset: usize, stats: &mut SourceStats) -> bool {
    if stats.ua_scans >= UA_SCANS_PER_SOURCE {
        return false;
    }
    stats.ua_scans += 1;
    let Some(buf) = SIP_SCRATCH.get_ptr_mut(SCRATCH_INGRESS) else { return false };
    if !copy_payload(ctx, payload_offset, unsafe { &mut *buf }) {
        return false;
    }
    let buf = unsafe { &*buf };
    let mut header: u64 = 0;
    unsafe { bpf_loop(UA_SCAN as u32, find_header as *mut c_void, (&raw mut header).cast(), 0) };
    if header == 0 {
        return false;
    }
    let Some(value) = ua_value_start(buf, header as usize - 1) else { return false };
    let mut search = Search { value: value as u32, found: 0 };
    unsafe {
        bpf_loop((MAX_FINGERPRINTS * UA_VALUE) as u32, try_fingerprint as *mut c_void, (&raw mut search).cast(), 0)
    };
    if search.found == 0 {
        return false;
    }
    count(COUNT_FINGERPRINT_BASE + search.found - 1);
    true
}

#[repr(C)]
struct Search {
    value: u32,
    /// Index of the fingerprint found, plus one.
    found: u32,
}

/// `bpf_loop` callback: stops at `\nUser-Agent`, storing its offset + 1.
extern "C" fn find_header(index: u64, found: *mut c_void) -> i64 {
    let Some(buf) = SIP_SCRATCH.get_ptr(SCRATCH_INGRESS) else { return 1 };
    if ua_header_at(unsafe { &*buf }, index as usize) {
        unsafe { *found.cast::<u64>() = index + 1 };
        return 1;
    }
    0
}

/// `bpf_loop` callback: step = fingerprint * UA_VALUE + offset.
extern "C" fn try_fingerprint(step: u64, ctx: *mut c_void) -> i64 {
    let search = unsafe { &mut *ctx.cast::<Search>() };
    let f = (step as usize / UA_VALUE) as u32;
    let offset = step as usize % UA_VALUE;
    let (Some(buf), Some(fp)) = (SIP_SCRATCH.get_ptr(SCRATCH_INGRESS), SIP_FINGERPRINTS.get(f)) else { return 1 };
    if fp.len == 0 {
        // Unused slot: skip the rest of its offsets cheaply.
        return 0;
    }
    if fingerprint_at(unsafe { &*buf }, search.value as usize, offset, fp) {
        search.found = f + 1;
        return 1;
    }
    0
}
