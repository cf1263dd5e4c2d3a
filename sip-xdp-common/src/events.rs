//! What the kernel tells the controller through the event ring buffer.

use crate::{dialled::MAX_DIGITS, pod::impl_pod};

crate::closed_set! {
    /// The kinds of event the kernel writes.
    pub enum EventKind {
        Ban = 1 => "ban",
        /// Monitor mode: the source would have been banned.
        WouldBan = 2 => "would_ban",
        Expire = 3 => "expire",
        Unban = 4 => "unban",
        /// An INVITE dropped by the destination policy (`number` is set).
        DestinationBlocked = 5 => "destination_blocked",
        /// A message the filter could not read, refused (`reason` is an
        /// [`UnreadableWhy`]).
        Unreadable = 6 => "unreadable",
    }
}

crate::closed_set! {
    /// Why a message from a source judged by what it sends could not be
    /// read (the `reason` of an [`EventKind::Unreadable`] event).
    pub enum UnreadableWhy {
        /// A `%` in the Request-URI's user part not followed by two hex
        /// digits.
        MalformedEscape = 1 => "malformed_escape",
        /// A Content-Length that is not one number: where the next message
        /// of the stream starts cannot be told.
        BadContentLength = 2 => "bad_content_length",
        /// Headers longer than the filter reads (`MESSAGE_WINDOW`).
        HeadersTooLong = 3 => "headers_too_long",
        /// More messages in one segment than the filter reads.
        TooManyMessages = 4 => "too_many_messages",
        /// Data on a TCP connection the filter did not see open (its table
        /// lost it, or it predates the filter): where its messages start is
        /// unknown.
        UnknownConnection = 5 => "unknown_connection",
        /// A TCP segment split into IP fragments.
        FragmentedSegment = 6 => "fragmented_segment",
    }
}

/// One ring-buffer record.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Event {
    /// An [`EventKind`].
    pub kind: u8,
    /// A [`BanReason`](crate::bans::BanReason).
    pub reason: u8,
    pub _pad: [u8; 2],
    pub offenses: u32,
    pub addr: [u8; 16],
    pub duration_ns: u64,
    /// CLOCK_BOOTTIME ns.
    pub at_ns: u64,
    /// For [`EventKind::DestinationBlocked`]: the E.164 digits dialled.
    pub number: [u8; MAX_DIGITS],
    pub number_len: u8,
    /// For [`EventKind::DestinationBlocked`]: the drop
    /// [`Reason`](crate::reasons::Reason).
    pub drop_reason: u8,
    pub _pad2: [u8; 2],
}

impl_pod!(Event);

impl Event {
    /// An event of `kind` about `addr` at `at_ns`, with no details.
    #[inline(always)]
    pub const fn new(kind: EventKind, addr: [u8; 16], at_ns: u64) -> Event {
        Event {
            kind: kind as u8,
            reason: 0,
            _pad: [0; 2],
            offenses: 0,
            addr,
            duration_ns: 0,
            at_ns,
            number: [0; MAX_DIGITS],
            number_len: 0,
            drop_reason: 0,
            _pad2: [0; 2],
        }
    }
}

impl Event {
    /// Writes an event of `kind` about `addr`, with no details, straight
    /// into `slot` (ring-buffer memory), field by field: built first on
    /// the 512-byte BPF stack, it would cost its whole size there.
    ///
    /// # Safety
    /// `slot` must be valid for writes of an `Event`.
    #[inline(always)]
    pub unsafe fn fill(slot: *mut Event, kind: EventKind, addr: &[u8; 16], at_ns: u64) {
        // Cleared a word at a time with volatile stores: LLVM would turn
        // plain zero stores into a `memset` call, a frame of its own on BPF.
        let words = slot.cast::<u64>();
        let mut i = 0;
        while i < core::mem::size_of::<Event>() / 8 {
            unsafe { words.add(i).write_volatile(0) };
            i += 1;
        }
        unsafe {
            (*slot).kind = kind as u8;
            (*slot).addr = *addr;
            (*slot).at_ns = at_ns;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fill_writes_every_field() {
        let mut e = super::Event { kind: 9, reason: 9, offenses: 9, number_len: 9, ..Default::default() };
        unsafe { super::Event::fill(&mut e, super::EventKind::Ban, &[7; 16], 5) };
        assert_eq!(e, super::Event::new(super::EventKind::Ban, [7; 16], 5));
    }

    #[test]
    fn layout_has_no_implicit_padding() {
        assert_eq!(core::mem::size_of::<super::Event>(), 64);
    }
}
