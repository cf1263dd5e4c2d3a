//! The benchmark's traffic generator for the flood over veth, driven
//! through BPF_PROG_TEST_RUN in live-frames mode.

use aya_ebpf::{bindings::xdp_action, helpers::bpf_get_prandom_u32, programs::XdpContext};

/// Offset of the IPv4 header in the generator's frames (Ethernet, no VLAN).
const IP: usize = 14;

/// Gives the template frame (Ethernet + IPv4 + UDP, UDP checksum 0) a
/// random source in 198.19.0.0/16 and a correct IPv4 header checksum, and
/// sends it out of the interface it was "received" on. The checksum is
/// computed afresh each time: live-frames mode may hand the program a page
/// it already rewrote.
#[inline(always)]
pub fn generate(ctx: &XdpContext) -> u32 {
    let start = ctx.data();
    if start + IP + 20 > ctx.data_end() {
        return xdp_action::XDP_ABORTED;
    }
    let h = (start + IP) as *mut [u8; 20];
    let random = unsafe { bpf_get_prandom_u32() };
    unsafe {
        (*h)[12] = 198;
        (*h)[13] = 19;
        (*h)[14] = (random >> 8) as u8;
        (*h)[15] = random as u8;
        (*h)[10] = 0;
        (*h)[11] = 0;
        let mut sum = 0u32;
        let mut i = 0;
        while i < 20 {
            sum += ((*h)[i] as u32) << 8 | (*h)[i + 1] as u32;
            i += 2;
        }
        sum = (sum & 0xffff) + (sum >> 16);
        sum = (sum & 0xffff) + (sum >> 16);
        let csum = !(sum as u16);
        (*h)[10] = (csum >> 8) as u8;
        (*h)[11] = csum as u8;
    }
    xdp_action::XDP_TX
}
