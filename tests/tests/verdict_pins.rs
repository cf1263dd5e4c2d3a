//! Pinned state across versions: a pin directory left by the version that
//! named the rule tries `ALLOW_V4`/`ALLOW_V6` (and the index
//! `ALLOW_INDEX`) is adopted under the new names with its runtime rules,
//! so an upgrade loses nothing. Needs root.

use sip_xdp::{loader, maps::Maps};
use sip_xdp_common::{
    registry::{names, DEFAULT_SOURCES_CAPACITY, PINNED_MAPS},
    rules::{RuleClass, RuleValue, ORIGIN_RUNTIME},
};
use sip_xdp_tests::harness::TempBpffs;

#[test]
fn maps_pinned_under_their_former_names_are_adopted_with_their_rules() {
    let tmp = TempBpffs::new("formerly");
    let pins = tmp.pins();
    let runtime = RuleValue::new(ORIGIN_RUNTIME, RuleClass::Trusted, 0);
    {
        let mut ebpf = loader::load(Some(&pins), DEFAULT_SOURCES_CAPACITY).expect("load (needs root)");
        let mut maps = Maps::from_ebpf(&mut ebpf, Some(&pins)).unwrap();
        maps.insert_rule("198.51.100.9/32".parse().unwrap(), runtime).unwrap();
        maps.insert_rule("2001:db8:7::/48".parse().unwrap(), runtime).unwrap();
    }
    // The earlier version's layout.
    let renamed: Vec<_> = PINNED_MAPS.iter().filter_map(|m| m.formerly.map(|old| (m.name, old))).collect();
    assert_eq!(renamed.len(), 3, "{renamed:?}");
    for (name, old) in &renamed {
        std::fs::rename(pins.map_path(name), pins.map_path(old)).unwrap();
    }

    let mut ebpf = loader::load(Some(&pins), DEFAULT_SOURCES_CAPACITY).expect("adopt the old layout");
    let maps = Maps::from_ebpf(&mut ebpf, Some(&pins)).unwrap();
    let rules = maps.rule_entries().unwrap();
    assert_eq!(rules.get(&"198.51.100.9/32".parse().unwrap()), Some(&runtime));
    assert_eq!(rules.get(&"2001:db8:7::/48".parse().unwrap()), Some(&runtime));
    for (name, old) in &renamed {
        assert!(pins.map_path(name).exists(), "{name} pinned");
        assert!(!pins.map_path(old).exists(), "{old} moved, not left behind");
    }
    // The CLI opens it too.
    assert!(Maps::open(&pins).unwrap().rule_entries().unwrap().contains_key(&"198.51.100.9/32".parse().unwrap()));
    assert!(pins.map_path(names::SIP_RULES_V4).exists());
}
