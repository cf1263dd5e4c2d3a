//! The allowlist index: one bit per address bucket, set when some rule
//! (allowlist entry, class rule or prefix ban) could cover an address of
//! that bucket. The kernel reads one bit before asking the LPM trie, so a
//! source no rule covers — every packet of a spoofed flood, nearly — costs
//! one array load whatever the number of rules, where a trie miss grows
//! with the trie's depth.
//!
//! A set bit only means "ask the trie"; a clear bit must never hide a rule.
//! The controller sets bits before it inserts a rule and clears them only
//! when it rebuilds the index from the tries.
//!
//! IPv4 buckets are the /24s (2^24 of them, exact). IPv6 buckets are the
//! /32s hashed into the same 2^24 slots: a collision only costs a trie
//! lookup. A v6 rule shorter than /16 covers too many /32s to list and sets
//! every bit.

use crate::map_types::is_v4_mapped;

/// Bits per family.
pub const INDEX_BUCKETS: u32 = 1 << 24;
/// `u64` words per family. The index map holds IPv4's words, then IPv6's:
/// one map, so the kernel's lookup has one map at its call site and the
/// verifier inlines it into a plain load.
pub const INDEX_WORDS: u32 = INDEX_BUCKETS / 64;
/// Entries of the index map.
pub const INDEX_MAP_WORDS: u32 = 2 * INDEX_WORDS;

/// The index map word and bit for a source address (IPv4 as IPv4-mapped
/// IPv6, as the kernel keys sources).
#[inline(always)]
pub fn slot(addr: &[u8; 16]) -> (u32, u64) {
    if is_v4_mapped(addr) {
        position(v4_bucket([addr[12], addr[13], addr[14], addr[15]]))
    } else {
        let (word, bit) = position(v6_bucket(addr));
        (INDEX_WORDS + word, bit)
    }
}

/// The bucket of an IPv4 address: its /24.
#[inline(always)]
pub fn v4_bucket(addr: [u8; 4]) -> u32 {
    u32::from_be_bytes(addr) >> 8
}

/// The bucket of an IPv6 address: its /32, hashed (Fibonacci hashing: the
/// top 24 bits of the product mix every input bit).
#[inline(always)]
pub fn v6_bucket(addr: &[u8; 16]) -> u32 {
    v6_bucket_of_top32(u32::from_be_bytes([addr[0], addr[1], addr[2], addr[3]]))
}

#[inline(always)]
fn v6_bucket_of_top32(top: u32) -> u32 {
    top.wrapping_mul(0x9E37_79B1) >> 8
}

/// The word of the index map and the bit in it for a bucket.
#[inline(always)]
pub fn position(bucket: u32) -> (u32, u64) {
    ((bucket >> 6) & (INDEX_WORDS - 1), 1u64 << (bucket & 63))
}

/// The buckets an IPv4 prefix touches (a consecutive range).
pub fn v4_prefix_buckets(addr: [u8; 4], len: u8) -> core::ops::Range<u32> {
    let len = len.min(32);
    let first = v4_bucket(addr) & prefix_mask(len.min(24), 24);
    let count = if len >= 24 { 1 } else { 1u32 << (24 - len) };
    first..first + count
}

/// The buckets an IPv6 prefix touches.
pub enum V6Buckets {
    /// Shorter than /16: every bucket.
    All,
    /// The hashed buckets of these /32s (`top` values).
    Each(core::ops::Range<u64>),
}

impl V6Buckets {
    pub fn of(addr: &[u8; 16], len: u8) -> V6Buckets {
        if len < 16 {
            return V6Buckets::All;
        }
        let top = u32::from_be_bytes([addr[0], addr[1], addr[2], addr[3]]) & prefix_mask(len.min(32), 32);
        let count = if len >= 32 { 1u64 } else { 1u64 << (32 - len) };
        V6Buckets::Each(top as u64..top as u64 + count)
    }

    /// Calls `f` with every bucket (each of `All`'s once).
    pub fn for_each(self, mut f: impl FnMut(u32)) {
        match self {
            V6Buckets::All => (0..INDEX_BUCKETS).for_each(f),
            V6Buckets::Each(tops) => tops.for_each(|top| f(v6_bucket_of_top32(top as u32))),
        }
    }
}

/// The top `len` of `width` bits set.
fn prefix_mask(len: u8, width: u8) -> u32 {
    if len == 0 {
        0
    } else {
        (u32::MAX >> (32 - width)) & !((1u32 << (width - len)) - 1)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn v4_buckets_are_the_24s_a_prefix_touches() {
        assert_eq!(v4_prefix_buckets([198, 18, 1, 7], 32), 0xC61201..0xC61202);
        assert_eq!(v4_prefix_buckets([198, 18, 1, 0], 24), 0xC61201..0xC61202);
        assert_eq!(v4_prefix_buckets([198, 18, 1, 0], 23), 0xC61200..0xC61202);
        assert_eq!(v4_prefix_buckets([10, 0, 0, 0], 8), 0x0A0000..0x0B0000);
        assert_eq!(v4_prefix_buckets([0, 0, 0, 0], 0), 0..INDEX_BUCKETS);
        // Host bits below the prefix are ignored.
        assert_eq!(v4_prefix_buckets([10, 1, 2, 3], 16), 0x0A0100..0x0A0200);
    }

    #[test]
    fn every_v4_address_of_a_prefix_lands_in_its_buckets() {
        for (addr, len) in [([203u8, 0, 113, 64], 26u8), ([198, 18, 0, 0], 15), ([1, 2, 3, 4], 32)] {
            let range = v4_prefix_buckets(addr, len);
            let base = u32::from_be_bytes(addr) & if len == 0 { 0 } else { u32::MAX << (32 - len) };
            let size = 1u64 << (32 - len);
            for step in [0u64, 1, size / 3, size / 2, size - 1] {
                let a = (base as u64 + step) as u32;
                assert!(range.contains(&v4_bucket(a.to_be_bytes())), "{a:#x} in {addr:?}/{len}");
            }
        }
    }

    #[test]
    fn every_v6_address_of_a_prefix_lands_in_its_buckets() {
        let mut addr = [0u8; 16];
        addr[..6].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0x12, 0x34]);
        for len in [16u8, 20, 31, 32, 48, 64, 128] {
            let mut buckets = std::vec::Vec::new();
            V6Buckets::of(&addr, len).for_each(|b| buckets.push(b));
            let mut probe = addr;
            probe[15] = 0x99;
            assert!(buckets.contains(&v6_bucket(&probe)), "/{len}");
            if len <= 31 {
                // An address further inside the prefix, past the first /32.
                probe[3] |= 1;
                assert!(buckets.contains(&v6_bucket(&probe)), "/{len} second /32");
            }
        }
        assert!(matches!(V6Buckets::of(&addr, 15), V6Buckets::All));
    }

    #[test]
    fn slots_put_ipv4_in_the_first_half_and_ipv6_in_the_second() {
        let mut v4 = [0u8; 16];
        v4[10] = 0xff;
        v4[11] = 0xff;
        v4[12..].copy_from_slice(&[198, 18, 1, 7]);
        assert_eq!(slot(&v4), position(v4_bucket([198, 18, 1, 7])));
        let mut v6 = [0u8; 16];
        v6[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        let (word, bit) = slot(&v6);
        assert_eq!((word - INDEX_WORDS, bit), position(v6_bucket(&v6)));
        assert!(word < INDEX_MAP_WORDS);
    }

    #[test]
    fn positions_stay_inside_the_map() {
        for bucket in [0, 63, 64, INDEX_BUCKETS - 1, u32::MAX] {
            let (word, bit) = position(bucket);
            assert!(word < INDEX_WORDS);
            assert_eq!(bit.count_ones(), 1);
        }
    }

    #[test]
    fn v6_buckets_spread() {
        // Neighbouring /32s do not share buckets.
        let mut seen = std::collections::BTreeSet::new();
        for top in 0x2001_0000u32..0x2001_1000 {
            seen.insert(v6_bucket_of_top32(top));
        }
        assert_eq!(seen.len(), 0x1000);
    }
}
