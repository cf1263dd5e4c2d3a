//! Programs the benchmark and tests load beside sip-xdp's own, kept out of
//! the object the controller ships: a parse-only baseline to compare the
//! ingress program's cost with, a traffic generator for the veth flood,
//! and a drop-everything ceiling. None is ever attached by the controller.
#![no_std]
#![no_main]

mod flood;

use core::mem::MaybeUninit;

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::Array,
    programs::XdpContext,
};
use sip_xdp_common::kernel_config::FilterConfig;
use sip_xdp_ebpf::{eth, ip, ip::L3Info, l4};

/// The baseline's filter settings (its ports), written by the benchmark
/// as it writes the ingress program's.
#[map]
static SIP_CONFIG: Array<FilterConfig> = Array::with_max_entries(1, 0);

/// The benchmark's baseline: reads the config, parses Ethernet, IP and
/// UDP/TCP and checks the port like the ingress program does before any
/// policy (the cost every packet pays anyway), then passes.
#[xdp]
pub fn sip_xdp_baseline(ctx: XdpContext) -> u32 {
    parse_only(&ctx);
    xdp_action::XDP_PASS
}

#[inline(always)]
fn parse_only(ctx: &XdpContext) -> bool {
    let cfg = match SIP_CONFIG.get(0) {
        Some(cfg) => cfg,
        None => &FilterConfig::EMPTY,
    };
    let Ok((l3, offset)) = eth::parse(ctx) else { return false };
    let mut info = MaybeUninit::<L3Info>::uninit();
    let Ok(info) = ip::parse(ctx, l3, offset, &mut info) else { return false };
    match l4::parse(ctx, info.protocol, info.l4_offset) {
        Ok(Some(l4)) => cfg.is_sip_port(l4.dport),
        _ => false,
    }
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

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
