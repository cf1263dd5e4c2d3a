//! TCP streams (`sip_xdp_common::stream`): where a segment falls in its
//! connection's stream, where reading it starts, and the stream moved on
//! once the segment is let through. The ingress walk opens the stream
//! before reading a segment and closes it after; the egress program learns
//! handshakes and acknowledgements from the server's segments.

use aya_ebpf::bindings::BPF_ANY;
use sip_xdp_common::stream::{place, Handshake, Placement, StreamKey, StreamState, STREAM_LAST_AT_BOUNDARY};

use crate::{
    l4::{TCP_ACK, TCP_SYN},
    maps::{config, on_stack, SIP_HANDSHAKES, SIP_READER, SIP_STREAMS, SIP_STREAM_BUF, SIP_WALK},
    reader::INGRESS_SLOT,
};

// What opening a segment's stream says (`code | resumed << 8 | start << 16
// | before << 32`).
/// Read the segment from `start`; if `resumed`, its first message began
/// in an earlier segment and `before` bytes of it were read there.
pub const OPEN_READ: u64 = 0;
/// Let it through unread; the stream stays as it is.
pub const OPEN_PASS: u64 = 1;
/// All of it is body still to come: let it through unread, and close the
/// stream (which moves on).
pub const OPEN_BODY: u64 = 2;
pub const OPEN_OUT_OF_ORDER: u64 = 3;
/// A connection the filter has no stream for.
pub const OPEN_UNKNOWN: u64 = 4;
/// A segment in IP fragments.
pub const OPEN_FRAGMENTED: u64 = 5;

/// Where the segment in the walk state (`SIP_WALK`) falls in its stream,
/// whose state it copies to `SIP_STREAM_BUF` to work on (and the cut
/// message's reading to the reader's slot). `fail_closed`: the source is
/// judged by what it sends, so what cannot be read in order is refused
/// rather than read out of order. A global BPF function: verified once.
#[no_mangle]
#[inline(never)]
pub extern "C" fn sip_xdp_stream_open(fail_closed: u64, now_ns: u64) -> u64 {
    let (Some(walk), Some(entry)) = (SIP_WALK.get_ptr(0), SIP_STREAM_BUF.get_ptr_mut(0)) else { return OPEN_PASS };
    let (walk, entry) = unsafe { (&*walk, &mut *entry) };
    let fail_closed = fail_closed != 0;
    let len = walk.payload_len;
    if walk.first_fragment != 0 {
        return if fail_closed { OPEN_FRAGMENTED } else { OPEN_PASS };
    }
    entry.key = walk.stream;
    match SIP_STREAMS.get_ptr(&walk.stream) {
        Some(state) => unsafe { core::ptr::copy_nonoverlapping(state, &raw mut entry.state, 1) },
        None => match unsafe { SIP_HANDSHAKES.get(&walk.stream) }.copied() {
            // The client completes a handshake the server answered: its
            // stream starts now.
            Some(h) if walk.tcp_flags & TCP_ACK != 0 && h.completed_by(walk.seq, walk.ack) => {
                let _ = SIP_HANDSHAKES.remove(&walk.stream);
                entry.state = StreamState::established(walk.seq, now_ns);
                if len == 0 {
                    let _ = SIP_STREAMS.insert(&entry.key, &entry.state, BPF_ANY as u64);
                    return OPEN_PASS;
                }
            }
            _ if len == 0 => return OPEN_PASS,
            // A connection older than the table (or that it lost): taken up
            // at this segment, if the source is not judged by what it sends
            // or the filter has only just started.
            _ if !fail_closed || now_ns < config().stream_adopt_until_ns => {
                entry.state = StreamState::adopted(walk.seq, now_ns);
            }
            _ => return OPEN_UNKNOWN,
        },
    }
    if len == 0 {
        return OPEN_PASS;
    }
    let state = &mut entry.state;
    let from = match place(state, walk.seq, len, now_ns) {
        Placement::Next { from } => from,
        // Read again from the message boundary it started at.
        Placement::Again => {
            state.skip = 0;
            state.read = 0;
            0
        }
        Placement::Acknowledged => return OPEN_PASS,
        Placement::OutOfOrder if fail_closed => return OPEN_OUT_OF_ORDER,
        // Not judged by what it sends: taken up again where it is.
        Placement::OutOfOrder => {
            *state = StreamState::adopted(walk.seq, now_ns);
            0
        }
    };
    state.last_seq = walk.seq.wrapping_add(from);
    state.flags &= !STREAM_LAST_AT_BOUNDARY;
    if state.skip == 0 && state.read == 0 {
        state.flags |= STREAM_LAST_AT_BOUNDARY;
    }
    // Past what it repeats, then past the body still to come.
    let room = len - from;
    if state.skip >= room {
        state.skip -= room;
        return OPEN_BODY;
    }
    let start = from + state.skip;
    state.skip = 0;
    let before = state.read;
    if before == 0 {
        return OPEN_READ | (start as u64) << 16;
    }
    let Some(reader) = SIP_READER.get_ptr_mut(INGRESS_SLOT) else { return OPEN_UNKNOWN };
    unsafe { core::ptr::copy_nonoverlapping(&raw const state.reader, reader, 1) };
    OPEN_READ | 1 << 8 | (start as u64) << 16 | (before as u64) << 32
}

/// How a walk leaves its segment's stream: `read` bytes of a message cut
/// by the segment's end (its reading is in the reader's slot), or `skip`
/// body bytes still to come; [`KEEP`] for a segment that was all body.
pub const KEEP: u64 = u64::MAX;

/// Moves the opened stream past its segment, which was let through, and
/// stores it. A global BPF function: verified once.
#[no_mangle]
#[inline(never)]
pub extern "C" fn sip_xdp_stream_close(tail: u64, now_ns: u64) -> u64 {
    let (Some(walk), Some(entry)) = (SIP_WALK.get_ptr(0), SIP_STREAM_BUF.get_ptr_mut(0)) else { return 0 };
    let (walk, entry) = unsafe { (&*walk, &mut *entry) };
    let state = &mut entry.state;
    state.next_seq = walk.seq.wrapping_add(walk.payload_len);
    state.last_ns = now_ns;
    if tail != KEEP {
        state.read = (tail >> 32) as u32;
        state.skip = tail as u32;
        if state.read != 0 {
            let Some(reader) = SIP_READER.get_ptr(INGRESS_SLOT) else { return 0 };
            unsafe { core::ptr::copy_nonoverlapping(reader, &raw mut state.reader, 1) };
        }
    }
    let _ = SIP_STREAMS.insert(&entry.key, &entry.state, BPF_ANY as u64);
    0
}

/// The server's segment to a client (egress): a SYN-ACK opens a handshake;
/// any acknowledgement moves what the server holds of the client's stream.
#[no_mangle]
#[inline(never)]
pub extern "C" fn sip_xdp_stream_egress(key: *const StreamKey, seq: u64, ack: u64, flags: u64) -> u64 {
    if key.is_null() {
        return 0;
    }
    let key = &on_stack(unsafe { &*key });
    let flags = flags as u8;
    if flags & TCP_ACK == 0 {
        return 0;
    }
    if flags & TCP_SYN != 0 {
        // The server accepts a connection on this address and port pair:
        // any stream it had there before is over (a server answers a SYN
        // on a live connection with a bare ACK, not a SYN-ACK).
        let _ = SIP_STREAMS.remove(key);
        let h = Handshake { client_next: ack as u32, server_next: (seq as u32).wrapping_add(1) };
        let _ = SIP_HANDSHAKES.insert(key, &h, BPF_ANY as u64);
        return 0;
    }
    if let Some(state) = SIP_STREAMS.get_ptr_mut(key) {
        unsafe { (*state).acknowledge(ack as u32) };
    }
    0
}
