//! sip-xdp's XDP ingress program. The entry point stays thin: `policy`
//! judges the packet, `policy::account` counts the verdict at the single
//! exit, and the verdict becomes XDP_DROP or XDP_PASS.
#![no_std]
#![no_main]
// For `atomic_xadd`: see `policy::add`.
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod bans;
mod baseline;
mod dest;
mod egress;
mod eth;
mod flood;
mod ip;
mod l4;
mod maps;
mod packet;
mod policy;
mod scanner;
mod sip;

use aya_ebpf::{
    bindings::{xdp_action, TC_ACT_UNSPEC},
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};
use sip_xdp_common::Action;

#[xdp]
pub fn sip_xdp_ingress(ctx: XdpContext) -> u32 {
    let outcome = policy::judge(&ctx);
    policy::account(&ctx, &outcome);
    match outcome.verdict.action {
        Action::Drop => xdp_action::XDP_DROP,
        Action::Pass | Action::WouldDrop => xdp_action::XDP_PASS,
    }
}

/// The benchmark's baseline: parses Ethernet, IP and UDP/TCP like the
/// ingress program, then passes. Never attached; `cargo xtask bench`
/// compares the ingress program's cost with this one's.
#[xdp]
pub fn sip_xdp_baseline(ctx: XdpContext) -> u32 {
    baseline::parse_only(&ctx);
    xdp_action::XDP_PASS
}

/// The benchmark's traffic generator (BPF_PROG_TEST_RUN, live frames).
#[xdp]
pub fn sip_xdp_flood(ctx: XdpContext) -> u32 {
    flood::generate(&ctx)
}

/// The benchmark's ceiling: drops everything, doing nothing else.
#[xdp]
pub fn sip_xdp_drop_all(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_DROP
}

/// Egress observer: counts the server's auth failures per remote address.
/// Returns "next" so other TC programs still run and the packet passes.
#[classifier]
pub fn sip_xdp_egress(ctx: TcContext) -> i32 {
    egress::observe(&ctx);
    TC_ACT_UNSPEC
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

// The kernel only grants GPL-only helpers to GPL-compatible programs.
#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
