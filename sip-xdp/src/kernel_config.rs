//! A validated config in the kernel's form: the filter settings, the rate
//! profiles, the destination rules and the scanner fingerprints, as the
//! maps hold them. Pure: nothing here touches the kernel.

use std::collections::BTreeMap;

use sip_xdp_common::{
    dialled::intl_prefixes,
    fingerprint::Fingerprint,
    kernel_config::{dest_applies_profile, FilterConfig, DEST_APPLIES_TRUSTED, MAX_PORTS, NS_PER_SEC},
    map_types::{DestAction, DestRule, RateProfile},
};

use crate::{config::Config, rules::Class};

impl From<&Config> for FilterConfig {
    fn from(cfg: &Config) -> FilterConfig {
        let f = &cfg.filter;
        let mut out = FilterConfig::EMPTY;
        for (slot, port) in out.ports.iter_mut().zip(&f.ports) {
            *slot = *port;
        }
        out.port_count = f.ports.len().min(MAX_PORTS) as u8;
        out.tls_ports =
            f.ports.iter().enumerate().filter(|(_, p)| f.tls_ports.contains(p)).fold(0, |m, (i, _)| m | 1 << i);
        out.default_action = f.default_action as u8;
        out.mode = f.mode as u8;
        let (class, profile) = f.default_class.kernel();
        (out.default_class, out.default_profile) = (class as u8, profile);
        out.ban_after_excess = cfg.ban.after_excess;
        out.ban_window_ns = cfg.ban.window_secs * NS_PER_SEC;
        out.ban_duration_ns = cfg.ban.duration_secs * NS_PER_SEC;
        out.ban_max_duration_ns = cfg.ban.max_duration_secs * NS_PER_SEC;
        out.ipv6_prefix = f.ipv6_prefix;
        out.auth_max = cfg.auth_failures.max;
        out.auth_challenges = cfg.auth_failures.unanswered_challenges;
        out.auth_window_ns = cfg.auth_failures.window_secs * NS_PER_SEC;
        let prefixes: Vec<&str> = cfg.destinations.international_prefixes.iter().map(String::as_str).collect();
        out.intl = intl_prefixes(&prefixes);
        out.dest_applies = cfg.destinations.applies_to.iter().fold(0, |mask, class| {
            mask | match class {
                Class::Trusted => DEST_APPLIES_TRUSTED,
                Class::Limited(p) => dest_applies_profile(*p),
                Class::Deny => 0,
            }
        });
        out.dest_allow_only = (!cfg.destinations.allow_only.is_empty()) as u8;
        out
    }
}

/// The kernel form of the destination rules: digits → action and the id of
/// the rule's counter (block rules first, then allow rules, in config order),
/// with costs. A cost for a prefix that is no rule becomes a rule of its own
/// that inherits the action of the longest rule covering it, so it never
/// shadows that rule in the longest-prefix match.
pub fn dest_rules(cfg: &Config) -> BTreeMap<String, DestRule> {
    let d = &cfg.destinations;
    let milli = |digits: &str| d.cost.get(digits).map_or(0, |c| (c * 1000.0).round() as u32);
    let mut rules: BTreeMap<String, DestRule> = d
        .block
        .iter()
        .map(|p| (p, DestAction::Block))
        .chain(d.allow_only.iter().map(|p| (p, DestAction::Allow)))
        .enumerate()
        .map(|(id, (digits, action))| {
            (digits.clone(), DestRule { action: action as u8, id: id as u16, cost_milli: milli(digits), _pad: 0 })
        })
        .collect();
    let mut next_id = rules.len() as u16;
    for digits in d.cost.keys() {
        if rules.contains_key(digits) {
            continue;
        }
        let cover = rules
            .iter()
            .filter(|(p, r)| digits.starts_with(p.as_str()) && !r.is(DestAction::CostOnly))
            .max_by_key(|(p, _)| p.len())
            .map(|(_, r)| *r);
        let rule = match cover {
            Some(r) => DestRule { cost_milli: milli(digits), ..r },
            None => {
                next_id += 1;
                DestRule { action: DestAction::CostOnly as u8, id: next_id - 1, cost_milli: milli(digits), _pad: 0 }
            }
        };
        rules.insert(digits.clone(), rule);
    }
    rules
}

/// The kernel form of the rate profiles, in index order.
pub fn rate_profiles(cfg: &Config) -> Vec<RateProfile> {
    cfg.profiles.iter().map(|p| p.rates).collect()
}

/// The kernel form of the scanner fingerprints.
pub fn fingerprints(cfg: &Config) -> Vec<Fingerprint> {
    cfg.user_agents.iter().filter_map(|u| Fingerprint::new(u)).collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use sip_xdp_common::kernel_config::{DefaultAction, Mode};

    use super::*;

    #[test]
    fn costs_inherit_the_rule_that_covers_them() {
        let c = Config::parse(
            Path::new("t.toml"),
            "[destinations]\nblock = [\"252\"]\nallow_only = [\"44\"]\n[destinations.cost]\n\"252\" = 2.5\n\"447\" = 0.2\n\"49\" = 0.05\n",
        )
        .unwrap();
        let rules = dest_rules(&c);
        assert_eq!((rules["252"].action, rules["252"].cost_milli), (DestAction::Block as u8, 2500));
        assert_eq!(
            (rules["447"].action, rules["447"].id, rules["447"].cost_milli),
            (DestAction::Allow as u8, rules["44"].id, 200),
            "inherits 44"
        );
        assert_eq!((rules["49"].action, rules["49"].cost_milli), (DestAction::CostOnly as u8, 50));
        assert_ne!(rules["49"].id, rules["252"].id);
    }

    #[test]
    fn filter_config_carries_ports_action_and_mode() {
        let c = Config::parse(
            Path::new("t.toml"),
            "[filter]\nports = [5060, 5080]\ndefault_action = \"pass\"\nmode = \"monitor\"\n",
        )
        .unwrap();
        let f = FilterConfig::from(&c);
        assert_eq!(&f.ports[..3], &[5060, 5080, 0]);
        assert_eq!(f.port_count, 2);
        assert_eq!(f.default_action, DefaultAction::Pass as u8);
        assert_eq!(f.mode, Mode::Monitor as u8);
        assert_eq!(f.tls_ports, 0, "no 5061 here");
        let c = Config::parse(Path::new("t.toml"), "[filter]\nports = [5080, 5061, 5060]\n").unwrap();
        assert_eq!(FilterConfig::from(&c).tls_ports, 0b010, "the slot of 5061");
    }
}
