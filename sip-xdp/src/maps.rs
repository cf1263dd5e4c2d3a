//! Typed access to the program's maps, whether just loaded or opened from
//! the pin directory by a CLI command, and the allowlist update plan.

use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, Ipv6Addr},
};

use anyhow::{anyhow, Context as _};
use aya::{
    maps::{lpm_trie::Key, Array, HashMap, IterableMap, LpmTrie, Map, MapData, PerCpuArray},
    Ebpf,
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use sip_xdp_common::{
    counters::{stats_index, Action, Reason},
    dialled::MAX_DIGITS,
    fingerprint::{Fingerprint, MAX_FINGERPRINTS},
    maps::{
        AllowValue, AuthState, BanEntry, Counter, FilterConfig, FragKey, FragVerdict, RateProfile, SourceKey,
        SourceStats, ALLOW_INDEX_MAP, ALLOW_V4_MAP, ALLOW_V6_MAP, AUTH_MAP, BANS_MAP, CLASS_TRUSTED, CONFIG_MAP, COUNTS_MAP,
        DEST_COUNTS_MAP, DEST_RULES_MAP, FINGERPRINTS_MAP, FRAGS_MAP, INTL_BLOCKS_MAP, ORIGIN_CONFIG, PINNED_MAPS, ORIGIN_RUNTIME, PROFILES_MAP, SOURCES_MAP,
        STATS_MAP, DestRule,
    },
};

use crate::{allow_index::AllowIndex, allowlist::Rules, pin::PinDir};

pub struct Maps {
    pub config: Array<MapData, FilterConfig>,
    pub allow_v4: LpmTrie<MapData, [u8; 4], AllowValue>,
    pub allow_v6: LpmTrie<MapData, [u8; 16], AllowValue>,
    pub allow_index: AllowIndex,
    pub stats: PerCpuArray<MapData, Counter>,
    pub sources: HashMap<MapData, SourceKey, SourceStats>,
    pub profiles: Array<MapData, RateProfile>,
    pub bans: HashMap<MapData, SourceKey, BanEntry>,
    pub auth: HashMap<MapData, SourceKey, AuthState>,
    pub frags: HashMap<MapData, FragKey, FragVerdict>,
    pub counts: PerCpuArray<MapData, u64>,
    pub dest_rules: LpmTrie<MapData, [u8; MAX_DIGITS], DestRule>,
    pub dest_counts: PerCpuArray<MapData, u64>,
    pub fingerprints: Array<MapData, Fingerprint>,
    pub intl_blocks: HashMap<MapData, SourceKey, u64>,
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
    /// pinned there), allowlist writes take the pin dir's index lock.
    pub fn from_ebpf(ebpf: &mut Ebpf, pins: Option<&PinDir>) -> anyhow::Result<Maps> {
        let mut maps = Vec::new();
        for name in PINNED_MAPS {
            maps.push(ebpf.take_map(name).ok_or_else(|| anyhow!("the program has no map {name}"))?);
        }
        Maps::from_parts(maps, pins)
    }

    /// Opens a running instance's pinned maps.
    pub fn open(pins: &PinDir) -> anyhow::Result<Maps> {
        pins.require_instance()?;
        let mut maps = Vec::new();
        for name in PINNED_MAPS {
            let path = pins.map_path(name);
            let data = MapData::from_pin(&path).with_context(|| format!("cannot open {}", path.display()))?;
            maps.push(Map::from_map_data(data)?);
        }
        Maps::from_parts(maps, Some(pins))
    }

    fn from_parts(maps: Vec<Map>, pins: Option<&PinDir>) -> anyhow::Result<Maps> {
        // In `PINNED_MAPS` order.
        let [config, v4, v6, index, stats, sources, frags, profiles, bans, auth, counts, dest_rules, dest_counts, fingerprints, intl_blocks]: [Map; 15] =
            maps.try_into().map_err(|_| anyhow!("expected {} maps", PINNED_MAPS.len()))?;
        Ok(Maps {
            config: config.try_into().context(CONFIG_MAP)?,
            allow_v4: v4.try_into().context(ALLOW_V4_MAP)?,
            allow_v6: v6.try_into().context(ALLOW_V6_MAP)?,
            allow_index: AllowIndex {
                words: index.try_into().context(ALLOW_INDEX_MAP)?,
                lock_dir: pins.map(PinDir::index_lock_dir),
            },
            stats: stats.try_into().context(STATS_MAP)?,
            sources: sources.try_into().context(SOURCES_MAP)?,
            profiles: profiles.try_into().context(PROFILES_MAP)?,
            bans: bans.try_into().context(BANS_MAP)?,
            auth: auth.try_into().context(AUTH_MAP)?,
            frags: frags.try_into().context(FRAGS_MAP)?,
            counts: counts.try_into().context(COUNTS_MAP)?,
            dest_rules: dest_rules.try_into().context(DEST_RULES_MAP)?,
            dest_counts: dest_counts.try_into().context(DEST_COUNTS_MAP)?,
            fingerprints: fingerprints.try_into().context(FINGERPRINTS_MAP)?,
            intl_blocks: intl_blocks.try_into().context(INTL_BLOCKS_MAP)?,
        })
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

    pub fn write_config(&mut self, cfg: &FilterConfig) -> anyhow::Result<()> {
        self.config.set(0, cfg, 0).context("cannot write the filter config")
    }

    /// Every allowlist entry with its origin flags.
    pub fn allow_entries(&self) -> anyhow::Result<BTreeMap<IpNet, AllowValue>> {
        let mut out = BTreeMap::new();
        for item in self.allow_v4.iter() {
            let (key, value) = item?;
            let net = Ipv4Net::new(Ipv4Addr::from(key.data()), key.prefix_len() as u8)?;
            out.insert(IpNet::V4(net), value);
        }
        for item in self.allow_v6.iter() {
            let (key, value) = item?;
            let net = Ipv6Net::new(Ipv6Addr::from(key.data()), key.prefix_len() as u8)?;
            out.insert(IpNet::V6(net), value);
        }
        Ok(out)
    }

    /// Adds or changes a rule; its index bits are set first, so the kernel
    /// never skips the trie for an address the rule covers.
    pub fn allow_insert(&mut self, net: IpNet, value: AllowValue) -> anyhow::Result<()> {
        self.allow_index.mark(&[net]).context("cannot update the allowlist index")?;
        self.allow_trie_insert(net, value)
    }

    /// Many rules at once: one pass over the index, then the tries.
    pub fn allow_insert_all(&mut self, entries: &[(IpNet, AllowValue)]) -> anyhow::Result<()> {
        let nets: Vec<IpNet> = entries.iter().map(|(net, _)| *net).collect();
        self.allow_index.mark(&nets).context("cannot update the allowlist index")?;
        entries.iter().try_for_each(|(net, value)| self.allow_trie_insert(*net, *value))
    }

    fn allow_trie_insert(&mut self, net: IpNet, value: AllowValue) -> anyhow::Result<()> {
        match net {
            IpNet::V4(n) => self.allow_v4.insert(&Key::new(n.prefix_len() as u32, n.addr().octets()), value, 0),
            IpNet::V6(n) => self.allow_v6.insert(&Key::new(n.prefix_len() as u32, n.addr().octets()), value, 0),
        }
        .with_context(|| format!("cannot add {net} to the allowlist"))
    }

    /// Removes a rule. Its index bits stay (they only cost a trie lookup)
    /// until the next [`Maps::rebuild_allow_index`].
    pub fn allow_remove(&mut self, net: IpNet) -> anyhow::Result<()> {
        match net {
            IpNet::V4(n) => self.allow_v4.remove(&Key::new(n.prefix_len() as u32, n.addr().octets())),
            IpNet::V6(n) => self.allow_v6.remove(&Key::new(n.prefix_len() as u32, n.addr().octets())),
        }
        .with_context(|| format!("cannot remove {net} from the allowlist"))
    }

    /// Recomputes the allowlist index from the tries, clearing the bits of
    /// removed rules.
    pub fn rebuild_allow_index(&mut self) -> anyhow::Result<()> {
        let (v4, v6) = (&self.allow_v4, &self.allow_v6);
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
        self.allow_index.rebuild(current).context("cannot rebuild the allowlist index")
    }

    /// The global counters summed over CPUs, one row per known
    /// `(action, reason)`.
    pub fn stats(&self) -> anyhow::Result<Vec<StatRow>> {
        let mut rows = Vec::new();
        for action in Action::ALL {
            for reason in Reason::ALL {
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
                self.dest_rules.insert(&key(digits), rule, 0).with_context(|| format!("cannot add destination {digits}"))?;
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
            ("allow_v4", self.allow_v4.keys().count() as u64, cap(self.allow_v4.map())?),
            ("allow_v6", self.allow_v6.keys().count() as u64, cap(self.allow_v6.map())?),
            ("sources", self.sources.keys().count() as u64, cap(self.sources.map())?),
            ("bans", self.bans.keys().count() as u64, cap(self.bans.map())?),
            ("auth", self.auth.keys().count() as u64, cap(self.auth.map())?),
            ("frags", self.frags.keys().count() as u64, cap(self.frags.map())?),
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

/// What applying a config needs of the kernel maps. `Maps` is the real
/// one; the tests use a fake that checks the order of the writes.
pub trait FilterTarget {
    fn allow_entries(&self) -> anyhow::Result<BTreeMap<IpNet, AllowValue>>;
    fn allow_insert(&mut self, net: IpNet, value: AllowValue) -> anyhow::Result<()>;
    fn allow_insert_all(&mut self, entries: &[(IpNet, AllowValue)]) -> anyhow::Result<()> {
        entries.iter().try_for_each(|(net, value)| self.allow_insert(*net, *value))
    }
    fn allow_remove(&mut self, net: IpNet) -> anyhow::Result<()>;
    fn rebuild_allow_index(&mut self) -> anyhow::Result<()>;
    fn write_config(&mut self, cfg: &FilterConfig) -> anyhow::Result<()>;
    fn write_profiles(&mut self, profiles: &[RateProfile]) -> anyhow::Result<()>;
    fn write_dest_rules(&mut self, rules: &BTreeMap<String, DestRule>) -> anyhow::Result<()>;
    fn write_fingerprints(&mut self, fps: &[Fingerprint]) -> anyhow::Result<()>;
}

impl FilterTarget for Maps {
    fn allow_entries(&self) -> anyhow::Result<BTreeMap<IpNet, AllowValue>> {
        Maps::allow_entries(self)
    }
    fn allow_insert(&mut self, net: IpNet, value: AllowValue) -> anyhow::Result<()> {
        Maps::allow_insert(self, net, value)
    }
    fn allow_insert_all(&mut self, entries: &[(IpNet, AllowValue)]) -> anyhow::Result<()> {
        Maps::allow_insert_all(self, entries)
    }
    fn allow_remove(&mut self, net: IpNet) -> anyhow::Result<()> {
        Maps::allow_remove(self, net)
    }
    fn rebuild_allow_index(&mut self) -> anyhow::Result<()> {
        Maps::rebuild_allow_index(self)
    }
    fn write_config(&mut self, cfg: &FilterConfig) -> anyhow::Result<()> {
        Maps::write_config(self, cfg)
    }
    fn write_profiles(&mut self, profiles: &[RateProfile]) -> anyhow::Result<()> {
        Maps::write_profiles(self, profiles)
    }
    fn write_dest_rules(&mut self, rules: &BTreeMap<String, DestRule>) -> anyhow::Result<()> {
        Maps::write_dest_rules(self, rules)
    }
    fn write_fingerprints(&mut self, fps: &[Fingerprint]) -> anyhow::Result<()> {
        Maps::write_fingerprints(self, fps)
    }
}

/// What to change in the kernel allowlist to make the config's part of it
/// equal `desired`, leaving runtime (`allow add`) entries alone.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AllowPlan {
    /// Inserted before the new config takes effect.
    pub add: Vec<(IpNet, AllowValue)>,
    /// Config entries no longer wanted, applied after: `Some` keeps the
    /// entry with the config origin cleared, `None` deletes it.
    pub retire: Vec<(IpNet, Option<AllowValue>)>,
}

impl AllowPlan {
    /// Entries from `allow add` stay trusted whatever the config says; the
    /// config's prefixes take the config's class. Ban prefixes
    /// (`ban add CIDR`) are left alone.
    pub fn new(current: &BTreeMap<IpNet, AllowValue>, desired: &Rules) -> AllowPlan {
        let mut plan = AllowPlan::default();
        for (net, class) in &desired.nets {
            let old = current.get(net).copied().unwrap_or_default();
            let (class, profile) = if old.origin & ORIGIN_RUNTIME != 0 { (CLASS_TRUSTED, 0) } else { class.kernel() };
            let want = AllowValue { origin: old.origin | ORIGIN_CONFIG, class, profile, ..old };
            if want != old {
                plan.add.push((*net, want));
            }
        }
        for (net, value) in current {
            if value.origin & ORIGIN_CONFIG != 0 && !desired.nets.contains_key(net) {
                let rest = value.origin & !ORIGIN_CONFIG;
                plan.retire.push((*net, (rest != 0).then_some(AllowValue { origin: rest, class: CLASS_TRUSTED, profile: 0, ..*value })));
            }
        }
        plan
    }

    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.retire.is_empty()
    }
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
    use crate::allowlist::{parse_cidr, Class};
    use sip_xdp_common::maps::{CLASS_LIMITED, ORIGIN_RUNTIME};

    fn net(s: &str) -> IpNet {
        parse_cidr(s).unwrap()
    }
    fn origin(o: u8) -> AllowValue {
        AllowValue { origin: o, ..Default::default() }
    }
    fn limited(o: u8, profile: u8) -> AllowValue {
        AllowValue { origin: o, class: CLASS_LIMITED, profile, ..Default::default() }
    }

    #[test]
    fn plan_adds_new_marks_shared_and_retires_stale() {
        let mut current = BTreeMap::new();
        current.insert(net("198.51.100.0/24"), origin(ORIGIN_CONFIG)); // stays
        current.insert(net("203.0.113.0/24"), origin(ORIGIN_CONFIG)); // dropped from config
        current.insert(net("192.0.2.1/32"), origin(ORIGIN_RUNTIME)); // runtime only: untouched
        current.insert(net("2001:db8::/32"), origin(ORIGIN_CONFIG | ORIGIN_RUNTIME)); // keeps runtime
        current.insert(net("192.0.2.0/24"), origin(ORIGIN_RUNTIME)); // now also in config
        let mut desired = Rules::default();
        for s in ["198.51.100.0/24", "192.0.2.0/24", "2001:db8:1::/48"] {
            desired.insert(net(s), Class::Trusted);
        }
        let plan = AllowPlan::new(&current, &desired);
        assert_eq!(
            plan.add,
            vec![
                (net("192.0.2.0/24"), origin(ORIGIN_CONFIG | ORIGIN_RUNTIME)),
                (net("2001:db8:1::/48"), origin(ORIGIN_CONFIG)),
            ]
        );
        assert_eq!(
            plan.retire,
            vec![
                (net("203.0.113.0/24"), None),
                (net("2001:db8::/32"), Some(origin(ORIGIN_RUNTIME))),
            ]
        );
        // Applying the same config again changes nothing.
        let mut after = current.clone();
        for (n, v) in &plan.add {
            after.insert(*n, *v);
        }
        for (n, v) in &plan.retire {
            match v {
                Some(v) => {
                    after.insert(*n, *v);
                }
                None => {
                    after.remove(n);
                }
            }
        }
        assert!(AllowPlan::new(&after, &desired).is_empty());
    }

    #[test]
    fn plan_changes_classes_but_runtime_entries_stay_trusted() {
        let mut current = BTreeMap::new();
        current.insert(net("203.0.113.0/24"), origin(ORIGIN_CONFIG));
        current.insert(net("192.0.2.9/32"), origin(ORIGIN_RUNTIME));
        let mut desired = Rules::default();
        desired.insert(net("203.0.113.0/24"), Class::Limited(2));
        desired.insert(net("192.0.2.9/32"), Class::Limited(1));
        let plan = AllowPlan::new(&current, &desired);
        assert_eq!(
            plan.add,
            vec![
                (net("192.0.2.9/32"), origin(ORIGIN_CONFIG | ORIGIN_RUNTIME)),
                (net("203.0.113.0/24"), limited(ORIGIN_CONFIG, 2)),
            ]
        );
        assert!(plan.retire.is_empty());
    }

    #[test]
    fn source_keys_unwrap_ipv4() {
        let key = sip_xdp_common::maps::v4_mapped([198, 18, 0, 7]);
        assert_eq!(source_addr(&key).to_string(), "198.18.0.7");
        let v6: SourceKey = "2001:db8::5".parse::<Ipv6Addr>().unwrap().octets();
        assert_eq!(source_addr(&v6).to_string(), "2001:db8::5");
    }
}
