//! The destination policy on INVITEs: the dialled number is read from the
//! Request-URI (one `bpf_loop` step per byte, so the verifier checks the
//! scan once) and matched against the digit trie of block and allow rules.

use aya_ebpf::{bindings::xdp_md, helpers::generated::bpf_loop, maps::lpm_trie::Key, programs::XdpContext};
use core::ffi::c_void;
use sip_xdp_common::{
    counts::COUNT_EVENTS_LOST,
    dialled::{dialled, invite_user_start, Dialled, NumberScan, INVITE_WINDOW, MAX_DIGITS},
    events::{Event, EventKind},
    map_types::{SourceKey, SourceStats},
    reasons::Reason,
    verdict::{judge_destination, DestVerdict},
};

use crate::{
    maps::{add, config, count, SIP_DEST_COUNTS, SIP_DEST_RULES, SIP_EVENTS, SIP_INTL_BLOCKS, SIP_INVITE_BUF},
    packet::copy_payload,
};

/// The scan and where it started, for the `bpf_loop` callback.
#[repr(C)]
struct ScanCtx {
    scan: NumberScan,
    start: u32,
}

/// Judges the INVITE whose payload starts at `payload_offset`; counts the
/// admitted international calls (and their cost) in the source's entry.
pub fn check(
    ctx: &XdpContext,
    payload_offset: usize,
    src: &SourceKey,
    now_ns: u64,
    stats: *mut SourceStats,
) -> DestVerdict {
    match sip_xdp_dest_check(ctx.ctx, payload_offset as u64, src, now_ns, stats) {
        0 => DestVerdict::Pass,
        1 => DestVerdict::NotAllowed,
        2 => DestVerdict::AnomalyBlocked,
        c => DestVerdict::Blocked((c - 3) as u16),
    }
}

/// A global BPF function: the verifier checks it once, on its own, rather
/// than once per path of the caller that reaches it. Returns 0 (pass), 1
/// (not allowed), 2 (international calls blocked for this source) or 3 +
/// the id of the block rule.
#[no_mangle]
#[inline(never)]
pub extern "C" fn sip_xdp_dest_check(
    md: *mut xdp_md,
    payload_offset: u64,
    src: *const SourceKey,
    now_ns: u64,
    stats: *mut SourceStats,
) -> u64 {
    if md.is_null() || src.is_null() {
        return 0;
    }
    let ctx = XdpContext::new(md);
    let src = unsafe { &*src };
    let payload_offset = payload_offset as usize & 0xffff;
    match judge(&ctx, payload_offset, src, now_ns, stats) {
        DestVerdict::Pass => 0,
        DestVerdict::NotAllowed => 1,
        DestVerdict::AnomalyBlocked => 2,
        DestVerdict::Blocked(id) => 3 + id as u64,
    }
}

#[inline(always)]
fn judge(
    ctx: &XdpContext,
    payload_offset: usize,
    src: &SourceKey,
    now_ns: u64,
    stats: *mut SourceStats,
) -> DestVerdict {
    let cfg = config();
    let Some(buf) = SIP_INVITE_BUF.get_ptr_mut(0) else { return DestVerdict::Pass };
    let buf = unsafe { &mut *buf };
    if !copy_payload(ctx, payload_offset, buf) {
        return DestVerdict::Pass;
    }
    let Some(user) = invite_user_start(buf) else { return DestVerdict::Pass };
    let mut scan = ScanCtx { scan: NumberScan::default(), start: user as u32 };
    unsafe { bpf_loop((INVITE_WINDOW - user) as u32, scan_byte as *mut c_void, (&raw mut scan).cast(), 0) };
    let number = dialled(&scan.scan, &cfg.intl);
    let rule = match &number {
        Dialled::International { digits, len } => SIP_DEST_RULES.get(Key::new(*len as u32 * 8, *digits)),
        _ => None,
    };
    let mut verdict = judge_destination(&number, rule, cfg.dest_allow_only != 0);
    if let (DestVerdict::Pass, Dialled::International { .. }) = (verdict, &number) {
        let blocked = unsafe { SIP_INTL_BLOCKS.get(src) }.is_some_and(|until| *until > now_ns);
        if blocked {
            verdict = DestVerdict::AnomalyBlocked;
        } else if !stats.is_null() {
            // Admitted: what the spend-anomaly detector counts.
            let cost = rule.map_or(0, |r| r.cost_milli as u64);
            unsafe {
                add(&raw mut (*stats).intl_invites, 1);
                add(&raw mut (*stats).intl_cost_milli, cost);
            }
        }
    }
    match verdict {
        DestVerdict::Blocked(id) => {
            if let Some(c) = SIP_DEST_COUNTS.get_ptr_mut(id as u32) {
                unsafe { *c += 1 };
            }
            report(src, &number, Reason::DestinationBlocked, now_ns);
        }
        DestVerdict::NotAllowed => report(src, &number, Reason::DestinationNotAllowed, now_ns),
        DestVerdict::AnomalyBlocked => report(src, &number, Reason::InternationalBlocked, now_ns),
        DestVerdict::Pass => {}
    }
    verdict
}

/// `bpf_loop` callback: feeds byte `start + index` of the INVITE to the scan.
extern "C" fn scan_byte(index: u64, ctx: *mut c_void) -> i64 {
    let ctx = unsafe { &mut *ctx.cast::<ScanCtx>() };
    let Some(buf) = SIP_INVITE_BUF.get_ptr(0) else { return 1 };
    let i = ctx.start as usize + index as usize;
    if i >= INVITE_WINDOW {
        return 1;
    }
    let c = unsafe { (*buf)[core::hint::black_box(i) & (INVITE_WINDOW - 1)] };
    if ctx.scan.step(c) {
        0
    } else {
        1
    }
}

/// Tells the controller which source dialled what.
#[inline(always)]
fn report(src: &SourceKey, number: &Dialled, reason: Reason, now_ns: u64) {
    let (digits, len) = match number {
        Dialled::International { digits, len } => (*digits, *len),
        _ => ([0u8; MAX_DIGITS], 0),
    };
    match SIP_EVENTS.reserve::<Event>(0) {
        Some(mut slot) => {
            slot.write(Event {
                number: digits,
                number_len: len,
                drop_reason: reason as u8,
                ..Event::new(EventKind::DestinationBlocked, *src, now_ns)
            });
            slot.submit(0);
        }
        None => count(COUNT_EVENTS_LOST),
    }
}
