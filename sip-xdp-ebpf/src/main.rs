//! sip-xdp's XDP ingress program. The entry point stays thin: `policy`
//! judges the packet, `policy::account` counts the verdict at the single
//! exit, and the verdict becomes XDP_DROP or XDP_PASS.
#![no_std]
#![no_main]
// For `atomic_xadd`: see `maps::add`.
#![feature(core_intrinsics)]
#![allow(internal_features)]
// Map keys and values go to the helpers by reference on purpose: a value
// passed by value is first copied onto the 512-byte BPF stack (a new
// source's entry comes from read-only data that way).
#![allow(clippy::needless_borrows_for_generic_args)]

mod bans;
mod dest;
mod egress;
mod maps;
mod messages;
mod policy;
mod reader;
mod rules;
mod scanner;
mod sip;
mod stream;

use sip_xdp_ebpf::{eth, ip, l4, packet};

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
