//! Scanner fingerprints: the first requests of each source are searched
//! for a User-Agent naming an attack tool, in the value the message reader
//! kept. The search runs under `bpf_loop`, so the verifier checks one step.

use aya_ebpf::helpers::generated::bpf_loop;
use core::ffi::c_void;
use sip_xdp_common::{
    counts::COUNT_FINGERPRINT_BASE,
    fingerprint::{fingerprint_at, MAX_FINGERPRINTS, UA_SCANS_PER_SOURCE, UA_VALUE},
    map_types::SourceStats,
};

use crate::maps::{count, SIP_FINGERPRINTS, SIP_READER};

/// Is the source still among those whose requests are searched? Only its
/// first few are: scanners show themselves at once, and the search is
/// not free.
#[inline(always)]
pub fn wants(stats: &SourceStats) -> bool {
    stats.ua_scans < UA_SCANS_PER_SOURCE
}

/// Does the User-Agent of the request read into the reader's `slot` name
/// an attack tool? Counts the hit by fingerprint.
#[inline(always)]
pub fn announced_by(slot: u32, stats: *mut SourceStats) -> bool {
    sip_xdp_scanner_check(slot as u64, stats) != 0
}

/// A global BPF function: verified once, on its own.
#[no_mangle]
#[inline(never)]
pub extern "C" fn sip_xdp_scanner_check(slot: u64, stats: *mut SourceStats) -> u64 {
    if stats.is_null() {
        return 0;
    }
    let stats = unsafe { &mut *stats };
    if !wants(stats) {
        return 0;
    }
    stats.ua_scans += 1;
    let mut search = Search { slot: slot as u32, found: 0 };
    unsafe {
        bpf_loop((MAX_FINGERPRINTS * UA_VALUE) as u32, try_fingerprint as *mut c_void, (&raw mut search).cast(), 0)
    };
    if search.found == 0 {
        return 0;
    }
    count(COUNT_FINGERPRINT_BASE + search.found - 1);
    1
}

#[repr(C)]
struct Search {
    slot: u32,
    /// Index of the fingerprint found, plus one.
    found: u32,
}

/// `bpf_loop` callback: step = fingerprint * UA_VALUE + offset.
extern "C" fn try_fingerprint(step: u64, ctx: *mut c_void) -> i64 {
    let search = unsafe { &mut *ctx.cast::<Search>() };
    let f = (step as usize / UA_VALUE) as u32;
    let offset = step as usize % UA_VALUE;
    let (Some(reader), Some(fp)) = (SIP_READER.get_ptr(search.slot), SIP_FINGERPRINTS.get(f)) else { return 1 };
    if fp.len == 0 {
        // Unused slot: skip the rest of its offsets cheaply.
        return 0;
    }
    let (ua, len) = unsafe { (*reader).user_agent() };
    if offset >= len {
        // Past the value: on to the next fingerprint's offsets.
        return 0;
    }
    if fingerprint_at(ua, len, offset, fp) {
        search.found = f + 1;
        return 1;
    }
    0
}
