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

#[cfg(test)]
mod tests {
    #[test]
    fn layout_has_no_implicit_padding() {
        assert_eq!(core::mem::size_of::<super::Event>(), 64);
    }
}
