//! Loads the embedded eBPF object (reusing pinned maps, carrying rules into
//! resized tries). Attaching is `attach`'s.

use std::{ffi::CString, path::Path};

use anyhow::{anyhow, bail, Context as _};
use aya::{
    maps::{lpm_trie::Key, LpmTrie, Map, MapData},
    programs::{SchedClassifier, Xdp},
    Ebpf, EbpfLoader,
};
use log::{info, warn};
use sip_xdp_common::{
    registry::{names, MapSpec, OnMismatch, PINNED_MAPS},
    rules::RuleValue,
};

use crate::{error::user_error, pin::PinDir};

/// The XDP program, compiled by build.rs from `sip-xdp-ebpf`.
pub const OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sip-xdp"));
/// Name of the ingress program in the object.
pub const INGRESS_PROGRAM: &str = "sip_xdp_ingress";
/// Name of the egress (TC) program that counts auth failures.
pub const EGRESS_PROGRAM: &str = "sip_xdp_egress";

/// The capacity this run gives a map: the registry's, or for the
/// per-source table the config's.
fn capacity(spec: &MapSpec, sources_table_size: u32) -> u32 {
    if spec.name == names::SIP_SOURCES {
        sources_table_size
    } else {
        spec.capacity
    }
}

/// Rules read from a pinned trie of another capacity, to be written into
/// the new one.
#[derive(Default)]
struct CarriedRules {
    v4: Vec<(Key<[u8; 4]>, RuleValue)>,
    v6: Vec<(Key<[u8; 16]>, RuleValue)>,
}

/// Checks maps pinned by an earlier run against this build. A map pinned
/// under its former name is moved to its registry name first. Maps that
/// may be recreated and differ (a new `sources_table_size`, say) are
/// unpinned so fresh ones are created; a rule trie of another capacity is
/// read, unpinned and carried into the new one; any other difference stops
/// the start.
fn reconcile_pinned_maps(pins: &PinDir, sources_table_size: u32) -> anyhow::Result<CarriedRules> {
    let mut carried = CarriedRules::default();
    for spec in PINNED_MAPS {
        let path = pins.map_path(spec.name);
        if let Some(old) = spec.formerly.map(|old| pins.map_path(old)) {
            if old.exists() && !path.exists() {
                std::fs::rename(&old, &path)
                    .with_context(|| format!("cannot move {} to {}", old.display(), path.display()))?;
                info!("pinned map {} is now {}", old.display(), path.display());
            }
        }
        if !path.exists() {
            continue;
        }
        let info = MapData::from_pin(&path)
            .and_then(|m| m.info())
            .with_context(|| format!("cannot inspect pinned map {}", path.display()))?;
        let found = (info.key_size(), info.value_size(), info.max_entries());
        let wanted = (spec.key_size, spec.value_size, capacity(spec, sources_table_size));
        if found == wanted {
            continue;
        }
        let resized = found.0 == wanted.0 && found.1 == wanted.1;
        if resized && (spec.name == names::SIP_RULES_V4 || spec.name == names::SIP_RULES_V6) {
            carry(&path, &mut carried).with_context(|| format!("cannot read the rules in {}", path.display()))?;
            info!(
                "rule trie {} resized from {} to {} entries; its rules are carried over",
                spec.name, found.2, wanted.2
            );
            std::fs::remove_file(&path).with_context(|| format!("cannot unpin {}", path.display()))?;
            continue;
        }
        if spec.on_mismatch == OnMismatch::Keep {
            bail!(
                "pinned map {} has key/value/entries {:?}, this build needs {:?}; it was made by an \
                 incompatible version. Stop sip-xdp and remove {} to start afresh",
                path.display(),
                found,
                wanted,
                pins.root().display()
            );
        }
        if spec.name == names::SIP_SOURCES && resized {
            info!("per-source table resized from {} to {} entries; its counters start afresh", found.2, wanted.2);
        } else {
            warn!("pinned map {} is from another version; recreating it (its counters start afresh)", spec.name);
        }
        std::fs::remove_file(&path).with_context(|| format!("cannot unpin {}", path.display()))?;
    }
    Ok(carried)
}

fn carry(path: &Path, carried: &mut CarriedRules) -> anyhow::Result<()> {
    let map = Map::from_map_data(MapData::from_pin(path)?)?;
    if path.ends_with(names::SIP_RULES_V4) {
        let trie: LpmTrie<MapData, [u8; 4], RuleValue> = map.try_into()?;
        carried.v4 = trie.iter().collect::<Result<_, _>>()?;
    } else {
        let trie: LpmTrie<MapData, [u8; 16], RuleValue> = map.try_into()?;
        carried.v6 = trie.iter().collect::<Result<_, _>>()?;
    }
    Ok(())
}

/// Writes carried rules into the freshly created tries (their index bits
/// follow when the config is applied, which rebuilds the index).
fn restore(ebpf: &mut Ebpf, carried: CarriedRules) -> anyhow::Result<()> {
    if !carried.v4.is_empty() {
        let mut trie: LpmTrie<_, [u8; 4], RuleValue> =
            LpmTrie::try_from(ebpf.map_mut(names::SIP_RULES_V4).context(names::SIP_RULES_V4)?)?;
        carried.v4.iter().try_for_each(|(k, v)| trie.insert(k, *v, 0))?;
    }
    if !carried.v6.is_empty() {
        let mut trie: LpmTrie<_, [u8; 16], RuleValue> =
            LpmTrie::try_from(ebpf.map_mut(names::SIP_RULES_V6).context(names::SIP_RULES_V6)?)?;
        carried.v6.iter().try_for_each(|(k, v)| trie.insert(k, *v, 0))?;
    }
    Ok(())
}

/// Loads the object and the ingress program into the kernel (the verifier
/// runs here). With `pins`, maps are reused from and pinned to the pin
/// directory; without, they are private to the returned object (tests).
pub fn load(pins: Option<&PinDir>, sources_table_size: u32) -> anyhow::Result<Ebpf> {
    let mut loader = EbpfLoader::new();
    loader.map_max_entries(names::SIP_SOURCES, sources_table_size);
    let mut carried = CarriedRules::default();
    if let Some(pins) = pins {
        carried = reconcile_pinned_maps(pins, sources_table_size)?;
        for spec in PINNED_MAPS {
            loader.map_pin_path(spec.name, pins.map_path(spec.name));
        }
    }
    let mut ebpf = loader.load(OBJECT).context("cannot load the eBPF object")?;
    restore(&mut ebpf, carried).context("cannot carry the allowlist into the resized tries")?;
    ingress(&mut ebpf)?.load().context("the kernel refused the XDP program")?;
    egress(&mut ebpf)?.load().context("the kernel refused the TC egress program")?;
    Ok(ebpf)
}

pub fn egress(ebpf: &mut Ebpf) -> anyhow::Result<&mut SchedClassifier> {
    let program =
        ebpf.program_mut(EGRESS_PROGRAM).ok_or_else(|| anyhow!("the object has no program {EGRESS_PROGRAM}"))?;
    Ok(program.try_into()?)
}

pub fn ingress(ebpf: &mut Ebpf) -> anyhow::Result<&mut Xdp> {
    let program =
        ebpf.program_mut(INGRESS_PROGRAM).ok_or_else(|| anyhow!("the object has no program {INGRESS_PROGRAM}"))?;
    Ok(program.try_into()?)
}

/// Every interface exists: checked before the kernel is touched.
pub fn check_interfaces(interfaces: &[String]) -> anyhow::Result<()> {
    if interfaces.is_empty() {
        return Err(user_error("no interface to attach to: list them in `interfaces` in the config or pass --iface"));
    }
    for name in interfaces {
        let c = CString::new(name.as_str()).map_err(|_| user_error(format!("bad interface name {name:?}")))?;
        // SAFETY: c is a valid NUL-terminated string.
        if unsafe { libc::if_nametoindex(c.as_ptr()) } == 0 {
            return Err(user_error(format!("no such interface: {name}")));
        }
    }
    Ok(())
}
