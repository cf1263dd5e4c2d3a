//! Reading SIP messages out of a packet, wherever its bytes are: the
//! message's window is copied into per-CPU scratch space with the
//! load-bytes helper of the program's kind (which reads an XDP frame's
//! fragments and a non-linear skb alike), then fed to the shared
//! `MessageReader` one byte per `bpf_loop` step.

use aya_ebpf::{
    bindings::{__sk_buff, xdp_md},
    helpers::generated::{bpf_loop, bpf_skb_load_bytes, bpf_xdp_get_buff_len, bpf_xdp_load_bytes},
};
use core::ffi::c_void;
use sip_xdp_common::{
    message::{MessageReader, MESSAGE_WINDOW},
    sip::{classify, status_code, SipKind, SIP_WINDOW},
};

/// Shorter starts are not classified: no SIP message is this short (a
/// first line alone is longer, and headers must follow).
const MIN_CLASSIFIED: usize = SIP_WINDOW / 2;

use crate::maps::{SIP_MESSAGE, SIP_READER};

/// The scratch slot of each program kind.
pub const EGRESS_SLOT: u32 = 0;
pub const INGRESS_SLOT: u32 = 1;

/// A packet whose bytes can be copied out, linear or not.
pub trait Bytes {
    /// Bytes in the whole packet.
    fn total_len(&self) -> u32;
    /// Copies `len` bytes at `offset` to `dst`.
    fn load(&self, offset: u32, dst: *mut u8, len: u32) -> bool;
}

impl Bytes for *mut xdp_md {
    #[inline(always)]
    fn total_len(&self) -> u32 {
        unsafe { bpf_xdp_get_buff_len(*self) as u32 }
    }
    #[inline(always)]
    fn load(&self, offset: u32, dst: *mut u8, len: u32) -> bool {
        unsafe { bpf_xdp_load_bytes(*self, offset, dst.cast(), len) == 0 }
    }
}

impl Bytes for *mut __sk_buff {
    #[inline(always)]
    fn total_len(&self) -> u32 {
        unsafe { (**self).len }
    }
    #[inline(always)]
    fn load(&self, offset: u32, dst: *mut u8, len: u32) -> bool {
        unsafe { bpf_skb_load_bytes(*self as *const c_void, offset, dst.cast(), len) == 0 }
    }
}

/// Where the `bpf_loop` callback reads (the reader itself is in
/// `SIP_READER`).
#[repr(C)]
struct ReadCtx {
    slot: u32,
    /// Bytes in the window.
    len: u32,
    /// Where this loop starts in the window (the byte of step `index` is
    /// `base + index`: the verifier sees a fresh index each step, not a
    /// counter it would follow through every value).
    base: u32,
    /// 1: stop once the start line is found.
    until_start: u32,
}

/// A message being read: its window is in the scratch slot, the reader's
/// state in `SIP_READER` (read through a pointer, not copied, to keep the
/// caller's stack small).
pub struct Message {
    state: *const MessageReader,
    /// Where the window starts in the packet.
    at: u32,
    slot: u32,
    len: u32,
    /// The next byte of the window to read.
    next: u32,
}

/// Copies the window of the message at `at` bytes into the packet and
/// finds its start line (past leading CR/LF). None if there is no byte at
/// `at` or the copy fails.
#[inline(always)]
pub fn open(packet: &impl Bytes, at: u32, slot: u32) -> Option<Message> {
    let total = packet.total_len();
    if at >= total {
        return None;
    }
    let available = total - at;
    let len = if available > MESSAGE_WINDOW as u32 { MESSAGE_WINDOW as u32 } else { available };
    // In [1, MESSAGE_WINDOW] by construction, so the oldest verifiers see
    // the helper's length bounded on both sides on the very register they
    // check (a plain `min` can lose its lower bound).
    let len = ((len.wrapping_sub(1)) & (MESSAGE_WINDOW as u32 - 1)) + 1;
    let buf = SIP_MESSAGE.get_ptr_mut(slot)?;
    if !packet.load(at, buf.cast(), len) {
        return None;
    }
    let state = SIP_READER.get_ptr_mut(slot)?;
    unsafe { *state = MessageReader::new() };
    let mut message = Message { state, at, slot, len, next: 0 };
    message.run(true);
    Some(message)
}

impl Message {
    /// Feeds the window to the reader from where it stopped, until the
    /// start line is found (`until_start`) or the headers end.
    #[inline(always)]
    fn run(&mut self, until_start: bool) {
        if self.next >= self.len {
            return;
        }
        let steps = self.len - self.next;
        let mut ctx = ReadCtx { slot: self.slot, len: self.len, base: self.next, until_start: until_start as u32 };
        // The number of steps taken, the last one included.
        let taken = unsafe { bpf_loop(steps, step as *mut c_void, (&raw mut ctx).cast(), 0) };
        self.next += if taken > 0 { taken as u32 } else { 0 };
    }

    /// The window ends before the packet does (more bytes follow what
    /// the reader could see).
    #[inline(always)]
    pub fn window_full(&self) -> bool {
        self.len == MESSAGE_WINDOW as u32
    }

    /// What has been read so far.
    #[inline(always)]
    pub fn reader(&self) -> &MessageReader {
        unsafe { &*self.state }
    }

    /// Reads the headers to their end (or to the window's).
    #[inline(always)]
    pub fn read_headers(&mut self) {
        self.run(false);
    }

    /// The zero-filled first bytes of the start line, for the classifier:
    /// copied from the packet again, in one of two fixed sizes (a copy
    /// from the window byte by byte would branch on its end at each byte,
    /// and the verifier would follow every combination).
    #[inline(always)]
    fn first_line(&self, packet: &impl Bytes) -> [u8; SIP_WINDOW] {
        let mut window = [0u8; SIP_WINDOW];
        let from = self.at + self.reader().start;
        let total = packet.total_len();
        if from < total {
            let available = total - from;
            if available >= SIP_WINDOW as u32 {
                packet.load(from, window.as_mut_ptr(), SIP_WINDOW as u32);
            } else if available >= MIN_CLASSIFIED as u32 {
                packet.load(from, window.as_mut_ptr(), MIN_CLASSIFIED as u32);
            }
        }
        window
    }

    /// What the start line is.
    #[inline(always)]
    pub fn kind(&self, packet: &impl Bytes) -> SipKind {
        if !self.reader().found() {
            return SipKind::NotSip;
        }
        classify(&self.first_line(packet))
    }

    /// The status code, if the message is a response.
    #[inline(always)]
    pub fn status(&self, packet: &impl Bytes) -> Option<u16> {
        if !self.reader().found() {
            return None;
        }
        status_code(&self.first_line(packet))
    }
}

/// `bpf_loop` callback: feeds byte `base + index` of the window.
extern "C" fn step(index: u64, ctx: *mut c_void) -> i64 {
    let ctx = unsafe { &mut *ctx.cast::<ReadCtx>() };
    let i = ctx.base as u64 + index;
    if i >= ctx.len as u64 {
        return 1;
    }
    let (Some(buf), Some(reader)) = (SIP_MESSAGE.get_ptr(ctx.slot), SIP_READER.get_ptr_mut(ctx.slot)) else { return 1 };
    let c = unsafe { (*buf)[core::hint::black_box(i as usize) & (MESSAGE_WINDOW - 1)] };
    let reader = unsafe { &mut *reader };
    if !reader.step(i as u32, c) || (ctx.until_start != 0 && reader.found()) {
        return 1;
    }
    0
}
