//! The rule update plan: what to change in the kernel rule tries to make
//! the config's part of them equal the config, leaving runtime entries
//! (`allow add`) and prefix bans alone.

use std::collections::BTreeMap;

use ipnet::IpNet;
use sip_xdp_common::rules::{RuleClass, RuleValue, ORIGIN_CONFIG, ORIGIN_RUNTIME};

use crate::rules::Rules;

/// What to change in the kernel allowlist to make the config's part of it
/// equal `desired`, leaving runtime (`allow add`) entries alone.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RulePlan {
    /// Inserted before the new config takes effect.
    pub add: Vec<(IpNet, RuleValue)>,
    /// Config entries no longer wanted, applied after: `Some` keeps the
    /// entry with the config origin cleared, `None` deletes it.
    pub retire: Vec<(IpNet, Option<RuleValue>)>,
}

impl RulePlan {
    /// Entries from `allow add` stay trusted whatever the config says; the
    /// config's prefixes take the config's class. Ban prefixes
    /// (`ban add CIDR`) are left alone.
    pub fn new(current: &BTreeMap<IpNet, RuleValue>, desired: &Rules) -> RulePlan {
        let mut plan = RulePlan::default();
        for (net, class) in &desired.nets {
            let old = current.get(net).copied().unwrap_or_default();
            let (class, profile) =
                if old.origin & ORIGIN_RUNTIME != 0 { (RuleClass::Trusted, 0) } else { class.kernel() };
            let want = RuleValue { origin: old.origin | ORIGIN_CONFIG, class: class as u8, profile, ..old };
            if want != old {
                plan.add.push((*net, want));
            }
        }
        for (net, value) in current {
            if value.origin & ORIGIN_CONFIG != 0 && !desired.nets.contains_key(net) {
                let rest = value.origin & !ORIGIN_CONFIG;
                plan.retire.push((
                    *net,
                    (rest != 0).then_some(RuleValue {
                        origin: rest,
                        class: RuleClass::Trusted as u8,
                        profile: 0,
                        ..*value
                    }),
                ));
            }
        }
        plan
    }

    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.retire.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{parse_cidr, Class};

    fn net(s: &str) -> IpNet {
        parse_cidr(s).unwrap()
    }
    fn origin(o: u8) -> RuleValue {
        RuleValue { origin: o, ..Default::default() }
    }
    fn limited(o: u8, profile: u8) -> RuleValue {
        RuleValue::new(o, RuleClass::Limited, profile)
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
        let plan = RulePlan::new(&current, &desired);
        assert_eq!(
            plan.add,
            vec![
                (net("192.0.2.0/24"), origin(ORIGIN_CONFIG | ORIGIN_RUNTIME)),
                (net("2001:db8:1::/48"), origin(ORIGIN_CONFIG)),
            ]
        );
        assert_eq!(
            plan.retire,
            vec![(net("203.0.113.0/24"), None), (net("2001:db8::/32"), Some(origin(ORIGIN_RUNTIME))),]
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
        assert!(RulePlan::new(&after, &desired).is_empty());
    }

    #[test]
    fn plan_changes_classes_but_runtime_entries_stay_trusted() {
        let mut current = BTreeMap::new();
        current.insert(net("203.0.113.0/24"), origin(ORIGIN_CONFIG));
        current.insert(net("192.0.2.9/32"), origin(ORIGIN_RUNTIME));
        let mut desired = Rules::default();
        desired.insert(net("203.0.113.0/24"), Class::Limited(2));
        desired.insert(net("192.0.2.9/32"), Class::Limited(1));
        let plan = RulePlan::new(&current, &desired);
        assert_eq!(
            plan.add,
            vec![
                (net("192.0.2.9/32"), origin(ORIGIN_CONFIG | ORIGIN_RUNTIME)),
                (net("203.0.113.0/24"), limited(ORIGIN_CONFIG, 2)),
            ]
        );
        assert!(plan.retire.is_empty());
    }
}
