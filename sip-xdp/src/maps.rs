//! Typed access to the programs' pinned maps, whether just loaded or
//! opened from the pin directory by a CLI command. The handles are derived
//! from the registry in `sip-xdp-common` (`registry::pinned_maps!`), so a
//! new map is one entry there and a field here.

use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, Ipv6Addr},
    ops::{Deref, DerefMut},
    path::PathBuf,
};

use anyhow::Context as _;
use aya::{
    maps::{lpm_trie::Key, Array, HashMap, IterableMap, LpmTrie, Map, MapData, PerCpuArray},
    Ebpf,
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use sip_xdp_common::{
    bans::BanEntry,
    dialled::MAX_DIGITS,
    fingerprint::{Fingerprint, MAX_FINGERPRINTS},
    kernel_config::FilterConfig,
    map_types::{Counter, DestRule, RateProfile, SourceKey, SourceStats},
    pinned_maps,
    reasons::{stats_index, Action, Reason},
    rules::RuleValue,
};

use crate::{pin::PinDir, rule_index};

/// A trie's key for a prefix.
fn trie_key<const N: usize>(len: u8, addr: [u8; N]) -> Key<[u8; N]> {
    Key::new(len as u32, addr)
}

/// The entries of a pair of IPv4 and IPv6 tries, by prefix.
fn trie_entries(
    v4: &LpmTrie<MapData, [u8; 4], RuleValue>,
    v6: &LpmTrie<MapData, [u8; 16], RuleValue>,
) -> anyhow::Result<BTreeMap<IpNet, RuleValue>> {
    let mut out = BTreeMap::new();
    for item in v4.iter() {
        let (key, value) = item?;
        out.insert(IpNet::V4(Ipv4Net::new(Ipv4Addr::from(key.data()), key.prefix_len() as u8)?), value);
    }
    for item in v6.iter() {
        let (key, value) = item?;
        out.insert(IpNet::V6(Ipv6Net::new(Ipv6Addr::from(key.data()), key.prefix_len() as u8)?), value);
    }
    Ok(out)
}

/// The aya handle type of a registry entry.
macro_rules! handle_type {
    (Array<$v:ty>) => { Array<MapData, $v> };
    (PerCpuArray<$v:ty>) => { PerCpuArray<MapData, $v> };
    (HashMap<$k:ty, $v:ty>) => { HashMap<MapData, $k, $v> };
    (LruHashMap<$k:ty, $v:ty>) => { HashMap<MapData, $k, $v> };
    (LpmTrie<$k:ty, $v:ty>) => { LpmTrie<MapData, $k, $v> };
}

macro_rules! handles {
    ($( $(#[$doc:meta])* $field:ident: $name:ident = $kind:ident<$($ty:ty),+>[$cap:expr], $policy:ident $(, formerly $old:ident)?; )*) => {
        /// A typed handle on every pinned map.
        pub struct MapHandles {
            $( $(#[$doc])* pub $field: handle_type!($kind<$($ty),+>), )*
        }

        impl MapHandles {
            /// Builds the handles from `map(name)` for each registry entry.
            fn from_fn(mut map: impl FnMut(&'static str) -> anyhow::Result<Map>) -> anyhow::Result<MapHandles> {
                Ok(MapHandles {
                    $( $field: map(stringify!($name))?.try_into().context(stringify!($name))?, )*
                })
            }
        }
    };
}

pinned_maps!(handles);

/// The pinned maps, and where writers of the rule index serialise.
pub struct Maps {
    handles: MapHandles,
    /// A directory in the pin dir used as the rule index's lock; none for
    /// a private, unpinned load.
    index_lock: Option<PathBuf>,
}

impl Deref for Maps {
    type Target = MapHandles;
    fn deref(&self) -> &MapHandles {
        &self.handles
    }
}

impl DerefMut for Maps {
    fn deref_mut(&mut self) -> &mut MapHandles {
        &mut self.handles
    }
}

/// One row of the global counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatRow {
    pub action: Action,
    pub reason: Reason,
    pub counter: Counter,
}

impl Maps {
    /// Takes the maps out of a loaded object. With `pins` (the maps are
    /// pinned there), rule writes take the pin dir's index lock.
    pub fn from_ebpf(ebpf: &mut Ebpf, pins: Option<&PinDir>) -> anyhow::Result<Maps> {
        let handles =
            MapHandles::from_fn(|name| ebpf.take_map(name).with_context(|| format!("the program has no map {name}")))?;
        Ok(Maps { handles, index_lock: pins.map(PinDir::index_lock_dir) })
    }

    /// Opens a running instance's pinned maps.
    pub fn open(pins: &PinDir) -> anyhow::Result<Maps> {
        pins.require_instance()?;
        let handles = MapHandles::from_fn(|name| {
            let path = pins.map_path(name);
            let data = MapData::from_pin(&path).with_context(|| format!("cannot open {}", path.display()))?;
            Ok(Map::from_map_data(data)?)
        })?;
        Ok(Maps { handles, index_lock: Some(pins.index_lock_dir()) })
    }

    pub fn write_profiles(&mut self, profiles: &[RateProfile]) -> anyhow::Result<()> {
        for (i, p) in profiles.iter().enumerate() {
            self.profiles.set(i as u32, p, 0).context("cannot write a rate profile")?;
        }
        Ok(())
    }

    /// Every entry of the ban table, active or kept as history.
    pub fn ban_entries(&self) -> anyhow::Result<Vec<(SourceKey, BanEntry)>> {
        let mut out = Vec::new();
        for item in self.bans.iter() {
            out.push(item?);
        }
        Ok(out)
    }

    pub fn read_config(&self) -> anyhow::Result<FilterConfig> {
        Ok(self.config.get(&0, 0)?)
    }

    /// The prefix length IPv6 sources are keyed by in the running config.
    pub fn v6_prefix(&self) -> u8 {
        self.read_config().map_or(128, |c| c.ipv6_prefix)
    }

    pub fn write_config(&mut self, cfg: &FilterConfig) -> anyhow::Result<()> {
        self.config.set(0, cfg, 0).context("cannot write the filter config")
    }

    /// Every rule (allowlist entries, class rules; and prefix bans an
    /// older version kept there).
    pub fn rule_entries(&self) -> anyhow::Result<BTreeMap<IpNet, RuleValue>> {
        trie_entries(&self.rules_v4, &self.rules_v6)
    }

    /// Every banned prefix, in force or ended and not yet swept.
    pub fn prefix_ban_entries(&self) -> anyhow::Result<BTreeMap<IpNet, RuleValue>> {
        trie_entries(&self.ban_prefixes_v4, &self.ban_prefixes_v6)
    }

    /// Bans a prefix (or changes its ban), and tells the kernel that
    /// prefixes are banned.
    pub fn insert_prefix_ban(&mut self, net: IpNet, value: RuleValue) -> anyhow::Result<()> {
        match net {
            IpNet::V4(n) => self.ban_prefixes_v4.insert(&trie_key(n.prefix_len(), n.addr().octets()), value, 0),
            IpNet::V6(n) => self.ban_prefixes_v6.insert(&trie_key(n.prefix_len(), n.addr().octets()), value, 0),
        }
        .with_context(|| format!("cannot ban {net}"))?;
        self.mark_prefix_bans()
    }

    pub fn remove_prefix_ban(&mut self, net: IpNet) -> anyhow::Result<()> {
        match net {
            IpNet::V4(n) => self.ban_prefixes_v4.remove(&trie_key(n.prefix_len(), n.addr().octets())),
            IpNet::V6(n) => self.ban_prefixes_v6.remove(&trie_key(n.prefix_len(), n.addr().octets())),
        }
        .with_context(|| format!("cannot lift the ban of {net}"))?;
        self.mark_prefix_bans()
    }

    /// Sets the config's `prefix_bans` to whether any prefix is banned, so
    /// the kernel asks the prefix-ban tries only when there is something
    /// to find.
    pub fn mark_prefix_bans(&mut self) -> anyhow::Result<()> {
        let any = !self.prefix_ban_entries()?.is_empty() as u8;
        let mut cfg = self.read_config()?;
        if cfg.prefix_bans != any {
            cfg.prefix_bans = any;
            self.write_config(&cfg)?;
        }
        Ok(())
    }

    /// Adds or changes a rule; its index bits are set first, so the kernel
    /// never skips the trie for an address the rule covers.
    pub fn insert_rule(&mut self, net: IpNet, value: RuleValue) -> anyhow::Result<()> {
        self.insert_rules(&[(net, value)])
    }

    /// Many rules at once: one pass over the index, then the tries.
    pub fn insert_rules(&mut self, entries: &[(IpNet, RuleValue)]) -> anyhow::Result<()> {
        let nets: Vec<IpNet> = entries.iter().map(|(net, _)| *net).collect();
        rule_index::mark(&mut self.handles.rule_index, self.index_lock.as_deref(), &nets)
            .context("cannot update the rule index")?;
        entries.iter().try_for_each(|(net, value)| self.insert_in_trie(*net, *value))
    }

    fn insert_in_trie(&mut self, net: IpNet, value: RuleValue) -> anyhow::Result<()> {
        match net {
            IpNet::V4(n) => self.rules_v4.insert(&trie_key(n.prefix_len(), n.addr().octets()), value, 0),
            IpNet::V6(n) => self.rules_v6.insert(&trie_key(n.prefix_len(), n.addr().octets()), value, 0),
        }
        .with_context(|| format!("cannot add the rule {net}"))
    }

    /// Removes a rule. Its index bits stay (they only cost a trie lookup)
    /// until the next [`Maps::rebuild_rule_index`].
    pub fn remove_rule(&mut self, net: IpNet) -> anyhow::Result<()> {
        match net {
            IpNet::V4(n) => self.rules_v4.remove(&trie_key(n.prefix_len(), n.addr().octets())),
            IpNet::V6(n) => self.rules_v6.remove(&trie_key(n.prefix_len(), n.addr().octets())),
        }
        .with_context(|| format!("cannot remove the rule {net}"))
    }

    /// Recomputes the rule index from the tries, clearing the bits of
    /// removed rules.
    pub fn rebuild_rule_index(&mut self) -> anyhow::Result<()> {
        let MapHandles { rules_v4: v4, rules_v6: v6, rule_index, .. } = &mut self.handles;
        let current = || -> anyhow::Result<Vec<IpNet>> {
            let mut nets = Vec::new();
            for key in v4.keys() {
                let key = key?;
                nets.push(IpNet::V4(Ipv4Net::new(Ipv4Addr::from(key.data()), key.prefix_len() as u8)?));
            }
            for key in v6.keys() {
                let key = key?;
                nets.push(IpNet::V6(Ipv6Net::new(Ipv6Addr::from(key.data()), key.prefix_len() as u8)?));
            }
            Ok(nets)
        };
        rule_index::rebuild(rule_index, self.index_lock.as_deref(), current).context("cannot rebuild the rule index")
    }

    /// The global counters summed over CPUs, one row per known
    /// `(action, reason)`.
    pub fn stats(&self) -> anyhow::Result<Vec<StatRow>> {
        let mut rows = Vec::new();
        for &action in Action::ALL {
            for &reason in Reason::ALL {
                let per_cpu = self.stats.get(&stats_index(action, reason), 0)?;
                let counter = per_cpu.iter().fold(Counter::default(), |acc, c| Counter {
                    packets: acc.packets + c.packets,
                    bytes: acc.bytes + c.bytes,
                });
                rows.push(StatRow { action, reason, counter });
            }
        }
        Ok(rows)
    }

    /// Sources with blocked international calls, and when each block ends
    /// (CLOCK_BOOTTIME ns; 0 once lifted).
    pub fn intl_block_entries(&self) -> anyhow::Result<Vec<(SourceKey, u64)>> {
        let mut out = Vec::new();
        for item in self.intl_blocks.iter() {
            out.push(item?);
        }
        Ok(out)
    }

    /// Writes the scanner fingerprints, clearing unused slots.
    pub fn write_fingerprints(&mut self, fps: &[Fingerprint]) -> anyhow::Result<()> {
        for i in 0..MAX_FINGERPRINTS {
            let fp = fps.get(i).copied().unwrap_or_default();
            self.fingerprints.set(i as u32, fp, 0).context("cannot write a fingerprint")?;
        }
        Ok(())
    }

    /// Destination rules by prefix digits.
    pub fn dest_entries(&self) -> anyhow::Result<BTreeMap<String, DestRule>> {
        let mut out = BTreeMap::new();
        for item in self.dest_rules.iter() {
            let (key, rule) = item?;
            let n = (key.prefix_len() / 8) as usize;
            out.insert(String::from_utf8_lossy(&key.data()[..n.min(MAX_DIGITS)]).into_owned(), rule);
        }
        Ok(out)
    }

    /// Makes the destination trie hold exactly `desired` (digits → rule).
    pub fn write_dest_rules(&mut self, desired: &BTreeMap<String, DestRule>) -> anyhow::Result<()> {
        let key = |digits: &str| {
            let mut data = [0u8; MAX_DIGITS];
            data[..digits.len()].copy_from_slice(digits.as_bytes());
            Key::new(digits.len() as u32 * 8, data)
        };
        let current = self.dest_entries()?;
        for (digits, rule) in desired {
            if current.get(digits) != Some(rule) {
                self.dest_rules
                    .insert(&key(digits), rule, 0)
                    .with_context(|| format!("cannot add destination {digits}"))?;
            }
        }
        for digits in current.keys().filter(|d| !desired.contains_key(*d)) {
            self.dest_rules.remove(&key(digits)).with_context(|| format!("cannot remove destination {digits}"))?;
        }
        Ok(())
    }

    /// INVITEs blocked by destination rule id, summed over CPUs.
    pub fn dest_count(&self, id: u16) -> anyhow::Result<u64> {
        Ok(self.dest_counts.get(&(id as u32), 0)?.iter().sum())
    }

    /// A `COUNT_*` slot summed over CPUs.
    pub fn count(&self, slot: u32) -> anyhow::Result<u64> {
        Ok(self.counts.get(&slot, 0)?.iter().sum())
    }

    /// Entries and capacity of each map worth watching, by map name.
    pub fn utilisation(&self) -> anyhow::Result<Vec<(&'static str, u64, u64)>> {
        let cap = |m: &MapData| -> anyhow::Result<u64> { Ok(m.info()?.max_entries() as u64) };
        Ok(vec![
            // Labels from before the tries were named for rules.
            ("allow_v4", self.rules_v4.keys().count() as u64, cap(self.rules_v4.map())?),
            ("allow_v6", self.rules_v6.keys().count() as u64, cap(self.rules_v6.map())?),
            ("sources", self.sources.keys().count() as u64, cap(self.sources.map())?),
            ("bans", self.bans.keys().count() as u64, cap(self.bans.map())?),
            ("auth", self.auth.keys().count() as u64, cap(self.auth.map())?),
            ("frags", self.frags.keys().count() as u64, cap(self.frags.map())?),
            ("streams", self.streams.keys().count() as u64, cap(self.streams.map())?),
            ("prefix_bans_v4", self.ban_prefixes_v4.keys().count() as u64, cap(self.ban_prefixes_v4.map())?),
            ("prefix_bans_v6", self.ban_prefixes_v6.keys().count() as u64, cap(self.ban_prefixes_v6.map())?),
        ])
    }

    /// Every source in the per-source table.
    pub fn sources(&self) -> anyhow::Result<Vec<(SourceKey, SourceStats)>> {
        let mut out = Vec::new();
        for item in self.sources.iter() {
            out.push(item?);
        }
        Ok(out)
    }
}

/// How a per-source key is shown: an IPv4 address, an IPv6 address, or
/// the IPv6 prefix of `v6_prefix` bits it stands for (`2001:db8:1:2::/64`).
pub fn source_label(key: &SourceKey, v6_prefix: u8) -> String {
    match source_addr(key) {
        std::net::IpAddr::V6(v6) if v6_prefix < 128 => format!("{v6}/{v6_prefix}"),
        addr => addr.to_string(),
    }
}

/// The key a source's state is kept under in the kernel (see
/// `sip_xdp_common::map_types::source_key`).
pub fn key_of(addr: std::net::IpAddr, v6_prefix: u8) -> SourceKey {
    let octets = match addr {
        std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        std::net::IpAddr::V6(v6) => v6.octets(),
    };
    sip_xdp_common::map_types::source_key(&octets, v6_prefix)
}

/// The address a per-source key stands for, IPv4 unwrapped.
pub fn source_addr(key: &SourceKey) -> std::net::IpAddr {
    let v6 = Ipv6Addr::from(*key);
    match v6.to_ipv4_mapped() {
        Some(v4) => v4.into(),
        None => v6.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_keys_show_as_their_prefix() {
        let key = key_of("2001:db8:1:2:aaaa:bbbb:cccc:dddd".parse().unwrap(), 64);
        assert_eq!(source_label(&key, 64), "2001:db8:1:2::/64");
        assert_eq!(source_label(&key_of("2001:db8::5".parse().unwrap(), 128), 128), "2001:db8::5");
        assert_eq!(source_label(&key_of("198.18.2.7".parse().unwrap(), 64), 64), "198.18.2.7");
    }

    #[test]
    fn source_keys_unwrap_ipv4() {
        let key = sip_xdp_common::map_types::v4_mapped([198, 18, 0, 7]);
        assert_eq!(source_addr(&key).to_string(), "198.18.0.7");
        let v6: SourceKey = "2001:db8::5".parse::<Ipv6Addr>().unwrap().octets();
        assert_eq!(source_addr(&v6).to_string(), "2001:db8::5");
    }
}
