//! Keeping the rule index (`sip_xdp_common::allow_index`) true to the
//! tries: bits are set before a rule goes in, and cleared only by a
//! rebuild from the tries' contents. Every writer (the controller and CLI
//! commands) does both under one lock, so a rebuild never clears the bit
//! of a rule another process is adding.

use std::{fs::File, os::fd::AsRawFd, path::Path};

use anyhow::Context as _;
use aya::maps::{Array, IterableMap, MapData};
use ipnet::IpNet;
use sip_xdp_common::allow_index::{position, v4_prefix_buckets, V6Buckets, INDEX_MAP_WORDS, INDEX_WORDS};

use crate::batch;

/// Both families' index bits, word for word as the map holds them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexBits {
    pub v4: Vec<u64>,
    pub v6: Vec<u64>,
}

impl IndexBits {
    /// The bits the given prefixes need.
    pub fn of<'a>(nets: impl IntoIterator<Item = &'a IpNet>) -> IndexBits {
        let mut bits = IndexBits { v4: vec![0; INDEX_WORDS as usize], v6: vec![0; INDEX_WORDS as usize] };
        for net in nets {
            match net {
                IpNet::V4(n) => {
                    v4_prefix_buckets(n.network().octets(), n.prefix_len()).for_each(|b| set(&mut bits.v4, b))
                }
                IpNet::V6(n) => match V6Buckets::of(&n.network().octets(), n.prefix_len()) {
                    V6Buckets::All => bits.v6.fill(u64::MAX),
                    each => each.for_each(|b| set(&mut bits.v6, b)),
                },
            }
        }
        bits
    }

    /// `(map index, word)` in the map's layout: IPv4's words, then IPv6's.
    pub fn words(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.v4.iter().chain(&self.v6).enumerate().map(|(i, w)| (i as u32, *w))
    }
}

fn set(words: &mut [u64], bucket: u32) {
    let (word, bit) = position(bucket);
    words[word as usize] |= bit;
}

/// Sets the bits of `nets` in the index map `words` (adds to what is
/// there), under the lock in `lock_dir`.
pub fn mark(words: &mut Array<MapData, u64>, lock_dir: Option<&Path>, nets: &[IpNet]) -> anyhow::Result<()> {
    let _lock = lock(lock_dir)?;
    let wanted = IndexBits::of(nets);
    for (i, bits) in wanted.words().filter(|(_, b)| *b != 0) {
        let old = words.get(&i, 0)?;
        if old | bits != old {
            words.set(i, old | bits, 0)?;
        }
    }
    Ok(())
}

/// Makes the index exactly what the rules `current` reads need, clearing
/// stale bits. `current` is called under the lock, so no rule can be added
/// between the read and the writes.
pub fn rebuild(
    words: &mut Array<MapData, u64>,
    lock_dir: Option<&Path>,
    current: impl FnOnce() -> anyhow::Result<Vec<IpNet>>,
) -> anyhow::Result<()> {
    let _lock = lock(lock_dir)?;
    let wanted = IndexBits::of(&current()?);
    // Half a million words: read and written in batches, not one call
    // each.
    let found = batch::read_u64_array(words.map(), INDEX_MAP_WORDS)?;
    let changed: Vec<(u32, u64)> = wanted.words().filter(|(i, bits)| found[*i as usize] != *bits).collect();
    batch::write_u64_array(words.map(), &changed)
}

/// An exclusive flock on `dir` (created if missing), held until the file
/// is dropped.
fn lock(dir: Option<&Path>) -> anyhow::Result<Option<File>> {
    let Some(dir) = dir else { return Ok(None) };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let file = File::open(dir).with_context(|| format!("cannot open {}", dir.display()))?;
    // SAFETY: flock on a valid fd we own; blocks until other writers finish.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("cannot lock {}", dir.display()));
    }
    Ok(Some(file))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sip_xdp_common::allow_index::{v4_bucket, v6_bucket};

    fn has(bits: &[u64], bucket: u32) -> bool {
        let (w, b) = position(bucket);
        bits[w as usize] & b != 0
    }

    #[test]
    fn bits_cover_each_prefix_and_nothing_else_nearby() {
        let nets: Vec<IpNet> = ["198.18.1.0/24", "203.0.113.7/32", "10.0.0.0/15", "2001:db8:1::/48"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let bits = IndexBits::of(&nets);
        assert!(has(&bits.v4, v4_bucket([198, 18, 1, 200])));
        assert!(!has(&bits.v4, v4_bucket([198, 18, 2, 1])));
        assert!(has(&bits.v4, v4_bucket([203, 0, 113, 99])), "the /32's /24 is asked");
        assert!(has(&bits.v4, v4_bucket([10, 1, 255, 1])));
        assert!(!has(&bits.v4, v4_bucket([10, 2, 0, 1])));
        let v6 = |s: &str| s.parse::<std::net::Ipv6Addr>().unwrap().octets();
        assert!(has(&bits.v6, v6_bucket(&v6("2001:db8:1::5"))));
        assert_eq!(bits.v4.iter().map(|w| w.count_ones()).sum::<u32>(), 1 + 1 + 512);
        assert_eq!(bits.v6.iter().map(|w| w.count_ones()).sum::<u32>(), 1);
    }

    #[test]
    fn a_short_v6_rule_sets_every_bit() {
        let bits = IndexBits::of(&["2000::/3".parse::<IpNet>().unwrap()]);
        assert!(bits.v6.iter().all(|w| *w == u64::MAX));
        assert!(bits.v4.iter().all(|w| *w == 0));
    }
}
