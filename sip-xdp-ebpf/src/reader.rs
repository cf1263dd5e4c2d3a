//! Reading SIP messages out of a packet, wherever its bytes are: the
//! message's window is copied into per-CPU scratch space with the
//! load-bytes helper of the program's kind (which reads an XDP frame's
//! fragments and a non-linear skb alike), then fed to the shared
//! `MessageReader` one byte per `bpf_loop` step. A message a TCP segment
//! cut is read on from the reader state its stream kept.

use aya_ebpf::{
    bindings::{__sk_buff, xdp_md},
    helpers::generated::{bpf_loop, bpf_skb_load_bytes, bpf_xdp_get_buff_len, bpf_xdp_load_bytes},
};
use core::ffi::c_void;
use sip_xdp_common::message::{MessageReader, MESSAGE_WINDOW};

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
    /// The message's bytes read before the window (in earlier segments):
    /// the reader's positions count from the message's first byte.
    before: u32,
    /// Bytes fed (set where the reading stops early).
    consumed: u32,
}

/// Bytes fed per `bpf_loop` step: a step's call costs more than a byte's
/// reading, so each step reads several.
const STRIDE: u64 = 8;

/// A message being read: its window is in the scratch slot, the reader's
/// state in `SIP_READER` (read through a pointer, not copied, to keep the
/// caller's stack small).
pub struct Message {
    state: *const MessageReader,
    slot: u32,
    len: u32,
    /// The next byte of the window to read.
    next: u32,
    /// The message's bytes read before this window.
    before: u32,
}

/// Copies the window of the message at `at` bytes into the packet and
/// finds its start line (past leading CR/LF). `resumed`: the message began
/// in an earlier segment, `before` bytes of it were read there, and the
/// reader's state in the slot is where that reading stopped. None if there
/// is no byte at `at`, the message has had its window already, or the
/// copy fails.
#[inline(always)]
pub fn open(packet: &impl Bytes, at: u32, slot: u32, resumed: bool, before: u32) -> Option<Message> {
    let total = packet.total_len();
    if at >= total || before >= MESSAGE_WINDOW as u32 {
        return None;
    }
    let available = total - at;
    let room = MESSAGE_WINDOW as u32 - before;
    let len = if available > room { room } else { available };
    // In [1, MESSAGE_WINDOW] by construction, so the oldest verifiers see
    // the helper's length bounded on both sides on the very register they
    // check (a plain `min` can lose its lower bound).
    let len = ((len.wrapping_sub(1)) & (MESSAGE_WINDOW as u32 - 1)) + 1;
    let buf = SIP_MESSAGE.get_ptr_mut(slot)?;
    if !packet.load(at, buf.cast(), len) {
        return None;
    }
    let state = SIP_READER.get_ptr_mut(slot)?;
    if !resumed {
        unsafe { core::ptr::copy_nonoverlapping(&EMPTY_READER, state, 1) };
    }
    Some(Message { state, slot, len, next: 0, before: if resumed { before } else { 0 } })
}

/// A fresh reader, copied from read-only data (building it in place
/// compiles to a byte-at-a-time memset).
static EMPTY_READER: MessageReader = MessageReader::new();

impl Message {
    /// Feeds the window to the reader until the headers end (or the
    /// window does).
    #[inline(always)]
    pub fn read_headers(&mut self) {
        if self.next >= self.len {
            return;
        }
        let bytes = self.len - self.next;
        let mut ctx = ReadCtx { slot: self.slot, len: self.len, base: self.next, before: self.before, consumed: bytes };
        let steps = bytes.div_ceil(STRIDE as u32);
        unsafe { bpf_loop(steps, step as *mut c_void, (&raw mut ctx).cast(), 0) };
        self.next += ctx.consumed;
    }

    /// The message has had all the bytes it may have: whatever follows
    /// in the packet, its headers are read as far as they will be.
    #[inline(always)]
    pub fn window_full(&self) -> bool {
        self.before + self.len >= MESSAGE_WINDOW as u32
    }

    /// Bytes of the message read so far, earlier segments included.
    #[inline(always)]
    pub fn read_so_far(&self) -> u32 {
        self.before + self.next
    }

    /// Bytes of the message read in earlier segments.
    #[inline(always)]
    pub fn before(&self) -> u32 {
        self.before
    }

    /// What has been read so far.
    #[inline(always)]
    pub fn reader(&self) -> &MessageReader {
        unsafe { &*self.state }
    }

    /// The status code, if the message is a response.
    #[inline(always)]
    pub fn status(&self) -> Option<u16> {
        self.reader().line.status()
    }
}

/// `bpf_loop` callback: feeds bytes `base + index * STRIDE` onwards of the
/// window, [`STRIDE`] of them.
extern "C" fn step(index: u64, ctx: *mut c_void) -> i64 {
    let ctx = unsafe { &mut *ctx.cast::<ReadCtx>() };
    let (Some(buf), Some(reader_ptr)) = (SIP_MESSAGE.get_ptr(ctx.slot), SIP_READER.get_ptr_mut(ctx.slot)) else {
        return 1;
    };
    let first = ctx.base as u64 + index * STRIDE;
    // Most of a message's bytes are in lines of no interest (Via, Contact,
    // credentials...): a word of them without a line feed is skipped at
    // once.
    if first.is_multiple_of(STRIDE) && first + STRIDE <= ctx.len as u64 && unsafe { (*reader_ptr).skipping_line() } {
        const WORDS: usize = MESSAGE_WINDOW / STRIDE as usize;
        let at = core::hint::black_box((first / STRIDE) as usize) & (WORDS - 1);
        let word = unsafe { (*buf.cast::<[u64; WORDS]>())[at] };
        if !has_line_feed(word) {
            return 0;
        }
    }
    let mut k = 0;
    while k < STRIDE {
        let i = first + k;
        if i >= ctx.len as u64 {
            ctx.consumed = (i - ctx.base as u64) as u32;
            return 1;
        }
        let c = unsafe { (*buf)[core::hint::black_box(i as usize) & (MESSAGE_WINDOW - 1)] };
        if sip_xdp_read_byte(reader_ptr, (ctx.before + i as u32) as u64, c as u64) == 0 {
            ctx.consumed = (i + 1 - ctx.base as u64) as u32;
            return 1;
        }
        k += 1;
    }
    0
}

/// Does any byte of `word` hold a line feed? (A byte of `word ^ LF..LF`
/// is zero exactly where `word` has one.)
#[inline(always)]
fn has_line_feed(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let x = word ^ (ONES * b'\n' as u64);
    x.wrapping_sub(ONES) & !x & HIGHS != 0
}

/// One byte's reading, a global BPF function: verified once, on its own.
/// Called a stride of bytes per loop step, it keeps the step's
/// verification small (the paths through one byte's reading do not
/// multiply over the stride). Returns 0 once the headers have ended.
#[no_mangle]
#[inline(never)]
pub extern "C" fn sip_xdp_read_byte(reader: *mut MessageReader, pos: u64, c: u64) -> u64 {
    if reader.is_null() {
        return 0;
    }
    unsafe { (*reader).step(pos as u32, c as u8) as u64 }
}
