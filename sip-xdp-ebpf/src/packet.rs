//! Bounds-checked access to the packet. Each header is checked once against
//! `data_end`, then its fields are read through the returned pointer, which
//! is the pattern the verifier accepts.

use aya_ebpf::programs::XdpContext;
use core::mem::size_of;

/// A pointer to `T` at `offset` bytes into the packet, if it fits.
#[inline(always)]
pub fn header<T>(ctx: &XdpContext, offset: usize) -> Option<*const T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *const T)
}

/// Does the packet extend at least `len` bytes past `offset`?
#[inline(always)]
pub fn has(ctx: &XdpContext, offset: usize, len: usize) -> bool {
    ctx.data() + offset + len <= ctx.data_end()
}

/// Frame length in bytes, as counted in the byte counters.
#[inline(always)]
pub fn frame_len(ctx: &XdpContext) -> u64 {
    (ctx.data_end() - ctx.data()) as u64
}

#[inline(always)]
pub const fn be16(hi: u8, lo: u8) -> u16 {
    ((hi as u16) << 8) | lo as u16
}
