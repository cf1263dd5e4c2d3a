//! Bounds-checked access to the packet. Each header is checked once against
//! `data_end`, then its fields are read through the returned pointer, which
//! is the pattern the verifier accepts.

use aya_ebpf::programs::{TcContext, XdpContext};
use core::mem::size_of;

/// The packet bounds of an XDP or TC context, so one parser serves the
/// ingress (XDP) and egress (TC) programs.
pub trait Frame {
    fn data(&self) -> usize;
    fn data_end(&self) -> usize;
}

// The loads are volatile so that LLVM cannot hoist them out of a
// non-inlined parser into its caller and pass the 32-bit values instead:
// the verifier only accepts packet pointers read from the context itself.
impl Frame for XdpContext {
    #[inline(always)]
    fn data(&self) -> usize {
        unsafe { core::ptr::read_volatile(&raw const (*self.ctx).data) as usize }
    }
    #[inline(always)]
    fn data_end(&self) -> usize {
        unsafe { core::ptr::read_volatile(&raw const (*self.ctx).data_end) as usize }
    }
}

impl Frame for TcContext {
    #[inline(always)]
    fn data(&self) -> usize {
        unsafe { core::ptr::read_volatile(&raw const (*self.skb.skb).data) as usize }
    }
    #[inline(always)]
    fn data_end(&self) -> usize {
        unsafe { core::ptr::read_volatile(&raw const (*self.skb.skb).data_end) as usize }
    }
}

/// A pointer to `T` at `offset` bytes into the packet, if it fits.
#[inline(always)]
pub fn header<T>(ctx: &impl Frame, offset: usize) -> Option<*const T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *const T)
}

/// Does the packet extend at least `len` bytes past `offset`?
#[inline(always)]
pub fn has(ctx: &impl Frame, offset: usize, len: usize) -> bool {
    ctx.data() + offset + len <= ctx.data_end()
}

/// Frame length in bytes, as counted in the byte counters.
#[inline(always)]
pub fn frame_len(ctx: &impl Frame) -> u64 {
    (ctx.data_end() - ctx.data()) as u64
}

#[inline(always)]
pub const fn be16(hi: u8, lo: u8) -> u16 {
    ((hi as u16) << 8) | lo as u16
}
