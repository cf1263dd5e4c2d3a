//! Keys and values of the per-source, fragment, counter, profile and
//! destination maps. Every type is `#[repr(C)]` with explicit padding, so
//! kernel and userspace agree byte for byte.

use crate::{pod::impl_pod, stream::StreamKey};

/// Key of the per-source tables: the source address, IPv4 as an
/// IPv4-mapped IPv6 address (`::ffff:a.b.c.d`).
pub type SourceKey = [u8; 16];

/// `::ffff:a.b.c.d`, the key form of an IPv4 address in per-source maps.
#[inline(always)]
pub const fn v4_mapped(a: [u8; 4]) -> [u8; 16] {
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a[0], a[1], a[2], a[3]]
}

/// Whether a source key is an IPv4 address (IPv4-mapped IPv6).
#[inline(always)]
pub fn is_v4_mapped(a: &SourceKey) -> bool {
    a[0] | a[1] | a[2] | a[3] | a[4] | a[5] | a[6] | a[7] | a[8] | a[9] == 0 && a[10] == 0xff && a[11] == 0xff
}

/// The key a source's state is kept under: an IPv4 address as itself, an
/// IPv6 address as its prefix of `v6_prefix` bits (48 to 128), host bits
/// cleared. An attacker who owns a /64 gets one key for all of it.
#[inline(always)]
pub fn source_key(addr: &[u8; 16], v6_prefix: u8) -> SourceKey {
    if is_v4_mapped(addr) || v6_prefix >= 128 {
        return *addr;
    }
    // Two 64-bit halves and a few branches, not a branch per byte: the
    // BPF verifier follows every combination of a loop's branches.
    let (mut hi_bytes, mut lo_bytes) = ([0u8; 8], [0u8; 8]);
    hi_bytes.copy_from_slice(&addr[..8]);
    lo_bytes.copy_from_slice(&addr[8..]);
    let (hi, lo) = (u64::from_be_bytes(hi_bytes), u64::from_be_bytes(lo_bytes));
    let p = v6_prefix as u32;
    let (hi, lo) = if p >= 64 {
        (hi, if p == 64 { 0 } else { lo & (u64::MAX << (128 - p)) })
    } else if p == 0 {
        (0, 0)
    } else {
        (hi & (u64::MAX << (64 - p)), 0)
    };
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&hi.to_be_bytes());
    key[8..].copy_from_slice(&lo.to_be_bytes());
    key
}

/// Per-source counters for traffic to SIP ports, and the token buckets and
/// excess count of `limited` sources.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SourceStats {
    pub packets: u64,
    pub bytes: u64,
    pub registers: u64,
    /// Packets dropped (or, in monitor mode, that would have been).
    pub dropped: u64,
    /// `bpf_ktime_get_boot_ns()` of the last packet (CLOCK_BOOTTIME).
    pub last_seen_ns: u64,
    /// Token buckets, in nano-tokens (one request costs `NS_PER_SEC`).
    pub register_tokens: u64,
    pub request_tokens: u64,
    pub invite_tokens: u64,
    /// When the buckets were last refilled; 0 for new (full) buckets.
    pub refilled_ns: u64,
    /// Start of the current excess-counting window.
    pub excess_since_ns: u64,
    /// Packets over budget in the current window.
    pub excess: u32,
    /// Requests searched for scanner fingerprints so far.
    pub ua_scans: u32,
    /// International INVITEs admitted by the destination policy, and their
    /// estimated cost in thousandths (for the spend-anomaly detector).
    pub intl_invites: u64,
    pub intl_cost_milli: u64,
}

impl SourceStats {
    /// A source seen for the first time.
    pub const EMPTY: SourceStats = SourceStats {
        packets: 0,
        bytes: 0,
        registers: 0,
        dropped: 0,
        last_seen_ns: 0,
        register_tokens: 0,
        request_tokens: 0,
        invite_tokens: 0,
        refilled_ns: 0,
        excess_since_ns: 0,
        excess: 0,
        ua_scans: 0,
        intl_invites: 0,
        intl_cost_milli: 0,
    };
}

/// A `{packets, bytes}` pair, per CPU in the stats map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

/// Identifies one IP datagram's fragments (addresses IPv4-mapped for v4).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FragKey {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub id: u32,
    pub protocol: u8,
    pub _pad: [u8; 3],
}

/// The verdict of a first fragment, applied to the rest of its datagram.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FragVerdict {
    pub action: u8,
    pub reason: u8,
    pub _pad: [u8; 2],
}

/// What the ingress program's walk over a packet's messages needs, kept
/// in per-CPU memory rather than on the 512-byte BPF stack.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct WalkState {
    /// The source's address, and what its state is kept under.
    pub src: SourceKey,
    pub key: SourceKey,
    /// For a first fragment, its key: its verdict is remembered for the
    /// later fragments once its messages have been judged.
    pub frag: FragKey,
    /// For TCP: the connection, where the segment sits in it, what it
    /// acknowledges, and its flags.
    pub stream: StreamKey,
    pub seq: u32,
    pub ack: u32,
    pub payload_offset: u32,
    pub payload_len: u32,
    pub tcp: u8,
    pub tcp_flags: u8,
    pub first_fragment: u8,
    pub _pad: u8,
}

/// Token-bucket rates of a `limited` class.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RateProfile {
    /// REGISTERs per second, and the bucket size.
    pub register_per_sec: u32,
    pub register_burst: u32,
    /// All SIP requests per second, and the bucket size.
    pub requests_per_sec: u32,
    pub requests_burst: u32,
    /// INVITEs per second, and the bucket size.
    pub invite_per_sec: u32,
    pub invite_burst: u32,
}

crate::closed_set! {
    /// What a destination rule does to the INVITEs whose number it matches.
    pub enum DestAction {
        /// Dropped (`destination_blocked`).
        Block = 1 => "block",
        /// Admitted under `allow_only`.
        Allow = 2 => "allow",
        /// Neither: a prefix only present for its cost (the policy treats
        /// it as no rule).
        CostOnly = 3 => "cost_only",
    }
}

/// Value of the destination trie.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DestRule {
    /// A [`DestAction`].
    pub action: u8,
    pub _pad: u8,
    /// Index of the rule's counter in the destination counters.
    pub id: u16,
    /// Estimated cost of one call, in thousandths of the currency unit.
    pub cost_milli: u32,
}

impl DestRule {
    #[inline(always)]
    pub fn is(&self, action: DestAction) -> bool {
        self.action == action as u8
    }
}

impl_pod!(SourceStats, Counter, FragKey, FragVerdict, RateProfile, DestRule);

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn layouts_have_no_implicit_padding() {
        assert_eq!(size_of::<SourceStats>(), 104);
        assert_eq!(size_of::<RateProfile>(), 24);
        assert_eq!(size_of::<DestRule>(), 8);
        assert_eq!(size_of::<Counter>(), 16);
        assert_eq!(size_of::<FragKey>(), 40);
        assert_eq!(size_of::<FragVerdict>(), 4);
    }

    #[test]
    fn ipv6_sources_are_keyed_by_prefix() {
        let a = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4];
        let k64 = source_key(&a, 64);
        assert_eq!(k64[..8], a[..8]);
        assert_eq!(k64[8..], [0; 8]);
        let k48 = source_key(&a, 48);
        assert_eq!((&k48[..6], &k48[6..]), (&a[..6], &[0u8; 10][..]));
        assert_eq!(source_key(&a, 128), a);
        let k60 = source_key(&a, 60);
        assert_eq!((k60[7], k60[8]), (0x00, 0), "a prefix inside a byte keeps its top bits");
        let mut b = a;
        b[7] = 0x0f;
        assert_eq!(source_key(&b, 60)[7], 0x00);
        b[7] = 0x1f;
        assert_eq!(source_key(&b, 60)[7], 0x10);
        // IPv4 stays per address.
        let v4 = v4_mapped([198, 18, 2, 9]);
        assert_eq!(source_key(&v4, 48), v4);
    }

    #[test]
    fn v4_mapping() {
        assert_eq!(v4_mapped([198, 18, 0, 1])[10..], [0xff, 0xff, 198, 18, 0, 1]);
        assert!(is_v4_mapped(&v4_mapped([1, 2, 3, 4])));
        assert!(!is_v4_mapped(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4]));
    }
}
