//! TCP streams read as the server's stack assembles them.
//!
//! A TCP segment is not a message: it may hold several, or a piece of
//! one. The server reads the byte stream; the filter must read the same
//! stream, or an attacker can make the two readings differ (a message cut
//! so that its Request-URI straddles two segments, a segment sent out of
//! order). So, per connection, the filter keeps where the stream is
//! ([`StreamState`]): the sequence number of the next byte it expects, the
//! body bytes still to come before the next message starts, and the
//! reading of a message cut by the last segment's end, which the next
//! segment continues.
//!
//! A stream is known from its handshake: the server's SYN-ACK (seen on
//! egress) gives the sequence number the client's data starts at
//! ([`Handshake`]), and the client's ACK that completes the handshake,
//! which only the real client can send (it echoes the server's own
//! sequence number), turns it into a [`StreamState`]. So the table of
//! streams holds connections the server accepted, no more than it keeps,
//! and spoofed SYNs cannot crowd them out.
//!
//! A segment is read only when it continues the stream ([`place`]). One
//! that arrives out of order, or that repeats bytes the server has not
//! acknowledged, is dropped for the classes the filter judges by what
//! they send: TCP sends it again, in order. Bytes the server has already
//! acknowledged it discards, so a segment made only of them passes
//! unread. The filter only moves a stream on when it lets the segment
//! through, so a refused segment is judged the same way each time it is
//! sent again.

use crate::{message::MessageReader, pod::impl_pod};

/// A connection, as its segments to the server name it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct StreamKey {
    /// The client's address (IPv4-mapped for IPv4) and the server's.
    pub client: [u8; 16],
    pub server: [u8; 16],
    /// Ports, host byte order.
    pub client_port: u16,
    pub server_port: u16,
}

impl_pod!(StreamKey);

/// A handshake the server answered: what the client's ACK completing it
/// must carry.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Handshake {
    /// The client's first data byte (the SYN-ACK's acknowledgement).
    pub client_next: u32,
    /// The server's first data byte (the SYN-ACK's sequence number + 1),
    /// which the completing ACK acknowledges.
    pub server_next: u32,
}

impl_pod!(Handshake);

impl Handshake {
    /// Does a client segment with these numbers complete the handshake?
    #[inline(always)]
    pub fn completed_by(&self, seq: u32, ack: u32) -> bool {
        seq == self.client_next && ack == self.server_next
    }
}

/// `flags`: `acked` holds an acknowledgement the server sent.
pub const STREAM_ACKED: u8 = 1;
/// `flags`: the last segment let through started at a message boundary
/// (nothing cut, no body to skip), so reading it again needs no state
/// but its start.
pub const STREAM_LAST_AT_BOUNDARY: u8 = 2;

/// Where a connection's stream is, as far as the filter has read it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamState {
    /// Sequence number of the next byte the filter expects: every byte
    /// before it was read and let through.
    pub next_seq: u32,
    /// The server's cumulative acknowledgement (written on egress): the
    /// server holds every byte before it.
    pub acked: u32,
    /// Body bytes of the current message still to come: the next message
    /// starts after them.
    pub skip: u32,
    /// Bytes of the current message read so far, when the last segment
    /// ended inside its headers (0: at a message boundary or in a body).
    pub read: u32,
    /// Where the last segment let through started.
    pub last_seq: u32,
    pub flags: u8,
    pub _pad: [u8; 3],
    /// CLOCK_BOOTTIME ns the last segment was let through.
    pub last_ns: u64,
    /// The reading of the message the last segment cut (when `read` > 0).
    pub reader: MessageReader,
}

impl_pod!(StreamState);

/// A connection and its state side by side: per-CPU room to work on a
/// stream while its segment is judged (the kernel's stack is too small).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamEntry {
    pub key: StreamKey,
    pub _pad: u32,
    pub state: StreamState,
}

impl StreamState {
    /// A stream opened by a SYN at `seq`: its first data byte is `seq + 1`.
    pub const fn opened(seq: u32, now_ns: u64) -> StreamState {
        let next = seq.wrapping_add(1);
        StreamState {
            next_seq: next,
            acked: 0,
            skip: 0,
            read: 0,
            last_seq: next,
            flags: STREAM_LAST_AT_BOUNDARY,
            _pad: [0; 3],
            last_ns: now_ns,
            reader: MessageReader::new(),
        }
    }

    /// A stream whose handshake completed: the server expects (and has
    /// acknowledged everything before) `client_next`.
    pub const fn established(client_next: u32, now_ns: u64) -> StreamState {
        let mut s = StreamState::opened(client_next.wrapping_sub(1), now_ns);
        s.acked = client_next;
        s.flags |= STREAM_ACKED;
        s
    }

    /// A stream taken up at `seq` as if a message started there (a
    /// connection older than the filter's table).
    pub const fn adopted(seq: u32, now_ns: u64) -> StreamState {
        StreamState::opened(seq.wrapping_sub(1), now_ns)
    }

    /// The server acknowledged up to `ack` (sequence space wraps: only a
    /// later acknowledgement moves it).
    #[inline(always)]
    pub fn acknowledge(&mut self, ack: u32) {
        if self.flags & STREAM_ACKED == 0 || after(ack, self.acked) {
            self.acked = ack;
            self.flags |= STREAM_ACKED;
        }
    }
}

/// Is sequence number `a` after `b` (modulo 2^32, RFC 9293 §3.4)?
#[inline(always)]
pub const fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// How long a segment the server has not acknowledged must wait before
/// the filter reads the same bytes again as new: longer than any delayed
/// acknowledgement (200 ms on Linux, at most 500 ms by RFC 1122), so an
/// unacknowledged segment is one the server did not take.
pub const REREAD_AFTER_NS: u64 = 1_000_000_000;

/// Where a segment falls in its stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// It continues the stream: read from `from` bytes into its payload
    /// (past bytes it repeats that the server already acknowledged).
    Next { from: u32 },
    /// The last segment again, which the server did not take: read it
    /// again from its start, from a message boundary.
    Again,
    /// Every byte of it was acknowledged by the server, which discards
    /// them: let through unread.
    Acknowledged,
    /// A gap before it, or bytes read but not acknowledged sent again
    /// (possibly different): not readable in order.
    OutOfOrder,
}

/// Where a segment of `len` payload bytes starting at `seq` falls.
#[inline(always)]
pub fn place(state: &StreamState, seq: u32, len: u32, now_ns: u64) -> Placement {
    if seq == state.next_seq {
        return Placement::Next { from: 0 };
    }
    if after(seq, state.next_seq) {
        return Placement::OutOfOrder;
    }
    let acked = state.flags & STREAM_ACKED != 0;
    let end = seq.wrapping_add(len);
    // Everything up to next_seq is acknowledged: what it repeats, the
    // server drops; what it adds, it reads.
    if acked && !after(state.next_seq, state.acked) {
        if !after(end, state.next_seq) {
            return Placement::Acknowledged;
        }
        return Placement::Next { from: state.next_seq.wrapping_sub(seq) };
    }
    if acked && !after(end, state.acked) {
        return Placement::Acknowledged;
    }
    // The last segment, still unacknowledged long after it went through:
    // the server did not take it (a bad checksum, a full queue), so its
    // bytes are new to the server, and can be read again if it started
    // where nothing needs carrying.
    let again = seq == state.last_seq
        && acked
        && state.acked == state.last_seq
        && state.flags & STREAM_LAST_AT_BOUNDARY != 0
        && now_ns.wrapping_sub(state.last_ns) >= REREAD_AFTER_NS;
    if again {
        return Placement::Again;
    }
    Placement::OutOfOrder
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 5_000_000_000;

    fn acked(mut s: StreamState, ack: u32) -> StreamState {
        s.acknowledge(ack);
        s
    }

    /// A stream after a segment of `len` bytes at `seq` went through.
    fn passed(mut s: StreamState, seq: u32, len: u32, at_boundary: bool) -> StreamState {
        s.last_seq = seq;
        s.next_seq = seq.wrapping_add(len);
        s.last_ns = T0;
        s.flags = (s.flags & STREAM_ACKED) | if at_boundary { STREAM_LAST_AT_BOUNDARY } else { 0 };
        s
    }

    #[test]
    fn in_order_segments_are_read_and_gaps_are_not() {
        let s = StreamState::opened(1000, T0);
        assert_eq!(s.next_seq, 1001);
        assert_eq!(place(&s, 1001, 500, T0), Placement::Next { from: 0 });
        assert_eq!(place(&s, 1501, 500, T0), Placement::OutOfOrder, "a gap");
        // Across the wrap of sequence space.
        let w = StreamState::opened(u32::MAX - 10, T0);
        assert_eq!(place(&w, u32::MAX - 9, 100, T0), Placement::Next { from: 0 });
        assert_eq!(place(&w, 50, 100, T0), Placement::OutOfOrder);
    }

    #[test]
    fn repeats_pass_only_once_the_server_holds_them() {
        let s = passed(acked(StreamState::opened(1000, T0), 1001), 1001, 500, true);
        // Sent again before any acknowledgement: the server may not have
        // it, and the copy may differ.
        assert_eq!(place(&s, 1001, 500, T0 + 1), Placement::OutOfOrder);
        // Acknowledged: the server discards the copy.
        let s = acked(s, 1501);
        assert_eq!(place(&s, 1001, 500, T0 + 1), Placement::Acknowledged);
        assert_eq!(place(&s, 1201, 100, T0 + 1), Placement::Acknowledged);
        // A repeat with new bytes after it: read from the new bytes.
        assert_eq!(place(&s, 1001, 700, T0 + 1), Placement::Next { from: 500 });
        // An older acknowledgement does not move it back.
        let s = acked(s, 1200);
        assert_eq!(s.acked, 1501);
    }

    #[test]
    fn partly_acknowledged_repeats_are_out_of_order() {
        let s = passed(acked(StreamState::opened(1000, T0), 1001), 1001, 500, true);
        let s = passed(s, 1501, 500, true);
        let s = acked(s, 1501);
        // Bytes 1501.. were read but not acknowledged.
        assert_eq!(place(&s, 1001, 1000, T0 + 1), Placement::OutOfOrder);
        assert_eq!(place(&s, 1001, 500, T0 + 1), Placement::Acknowledged);
    }

    #[test]
    fn a_segment_the_server_never_took_is_read_again_after_a_while() {
        let s = passed(acked(StreamState::opened(1000, T0), 1001), 1001, 500, true);
        assert_eq!(place(&s, 1001, 500, T0 + REREAD_AFTER_NS / 2), Placement::OutOfOrder, "too soon");
        assert_eq!(place(&s, 1001, 500, T0 + REREAD_AFTER_NS), Placement::Again);
        // Not if it started inside a message (its reading cannot be rebuilt).
        let cut = passed(acked(StreamState::opened(1000, T0), 1001), 1001, 500, false);
        assert_eq!(place(&cut, 1001, 500, T0 + REREAD_AFTER_NS), Placement::OutOfOrder);
        // Not without any acknowledgement seen (the server's view unknown).
        let blind = passed(StreamState::opened(1000, T0), 1001, 500, true);
        assert_eq!(place(&blind, 1001, 500, T0 + REREAD_AFTER_NS), Placement::OutOfOrder);
    }

    #[test]
    fn only_the_real_client_completes_a_handshake() {
        let h = Handshake { client_next: 1001, server_next: 90001 };
        assert!(h.completed_by(1001, 90001));
        assert!(!h.completed_by(1001, 12345), "a spoofer cannot know the server's number");
        assert!(!h.completed_by(1002, 90001));
        let s = StreamState::established(1001, T0);
        assert_eq!(place(&s, 1001, 10, T0), Placement::Next { from: 0 });
        // The handshake's acknowledgement counts: a repeat of nothing new.
        assert_eq!((s.acked, s.flags & STREAM_ACKED), (1001, STREAM_ACKED));
    }

    #[test]
    fn adopted_streams_start_where_they_are_taken_up() {
        let s = StreamState::adopted(7000, T0);
        assert_eq!(place(&s, 7000, 10, T0), Placement::Next { from: 0 });
    }

    #[test]
    fn layout_has_no_implicit_padding() {
        use core::mem::size_of;
        assert_eq!(size_of::<StreamKey>(), 36);
        assert_eq!(size_of::<StreamState>(), 32 + size_of::<MessageReader>());
        assert_eq!(size_of::<MessageReader>(), 32 + 48 + crate::fingerprint::UA_VALUE + 16);
    }
}
