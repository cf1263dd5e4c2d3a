//! The parse-only program the benchmark compares against.

use core::mem::MaybeUninit;

use aya_ebpf::programs::XdpContext;
use sip_xdp_common::maps::FilterConfig;

use crate::{eth, ip, ip::L3Info, l4, policy::config};

/// Parses to L4 and checks the port, as the ingress program does before
/// any policy: the cost every packet pays anyway.
#[inline(always)]
pub fn parse_only(ctx: &XdpContext) -> bool {
    let cfg: &FilterConfig = config();
    let Ok((l3, offset)) = eth::parse(ctx) else { return false };
    let mut info = MaybeUninit::<L3Info>::uninit();
    let Ok(info) = ip::parse(ctx, l3, offset, &mut info) else { return false };
    match l4::parse(ctx, info.protocol, info.l4_offset) {
        Ok(Some(l4)) => cfg.is_sip_port(l4.dport),
        _ => false,
    }
}
