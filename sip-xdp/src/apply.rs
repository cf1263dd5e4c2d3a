//! Making the kernel's maps hold a config, without a moment in which a
//! source the old and the new config both accept is refused; and SIGHUP
//! reloads, which keep the running config on any error.

use std::{collections::BTreeMap, sync::OnceLock};

use ipnet::IpNet;
use log::{error, info, warn};
use sip_xdp_common::{
    fingerprint::Fingerprint,
    kernel_config::{FilterConfig, NS_PER_SEC},
    map_types::{DestRule, RateProfile},
    rules::RuleValue,
};

use crate::{
    clock::boottime_ns,
    config::Config,
    kernel_config::{dest_rules, fingerprints, rate_profiles},
    maps::Maps,
    rule_plan::RulePlan,
};

/// What applying a config needs of the kernel maps. `Maps` is the real
/// one; the tests use a fake that checks the order of the writes.
pub trait FilterTarget {
    fn rule_entries(&self) -> anyhow::Result<BTreeMap<IpNet, RuleValue>>;
    /// Whether some prefix is banned (the kernel then asks the prefix-ban
    /// tries).
    fn prefix_bans_present(&self) -> anyhow::Result<bool>;
    fn insert_rule(&mut self, net: IpNet, value: RuleValue) -> anyhow::Result<()>;
    fn insert_rules(&mut self, entries: &[(IpNet, RuleValue)]) -> anyhow::Result<()> {
        entries.iter().try_for_each(|(net, value)| self.insert_rule(*net, *value))
    }
    fn remove_rule(&mut self, net: IpNet) -> anyhow::Result<()>;
    fn rebuild_rule_index(&mut self) -> anyhow::Result<()>;
    fn write_config(&mut self, cfg: &FilterConfig) -> anyhow::Result<()>;
    fn write_profiles(&mut self, profiles: &[RateProfile]) -> anyhow::Result<()>;
    fn write_dest_rules(&mut self, rules: &BTreeMap<String, DestRule>) -> anyhow::Result<()>;
    fn write_fingerprints(&mut self, fps: &[Fingerprint]) -> anyhow::Result<()>;
}

impl FilterTarget for Maps {
    fn rule_entries(&self) -> anyhow::Result<BTreeMap<IpNet, RuleValue>> {
        Maps::rule_entries(self)
    }
    fn prefix_bans_present(&self) -> anyhow::Result<bool> {
        Ok(!self.prefix_ban_entries()?.is_empty())
    }
    fn insert_rule(&mut self, net: IpNet, value: RuleValue) -> anyhow::Result<()> {
        Maps::insert_rule(self, net, value)
    }
    fn insert_rules(&mut self, entries: &[(IpNet, RuleValue)]) -> anyhow::Result<()> {
        Maps::insert_rules(self, entries)
    }
    fn remove_rule(&mut self, net: IpNet) -> anyhow::Result<()> {
        Maps::remove_rule(self, net)
    }
    fn rebuild_rule_index(&mut self) -> anyhow::Result<()> {
        Maps::rebuild_rule_index(self)
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

/// Makes the kernel state match `cfg` so that no source allowed both
/// before and after is refused in between: profiles and new or changed
/// prefixes go in first, then the filter settings, and only then do stale
/// prefixes go.
pub fn apply(maps: &mut impl FilterTarget, cfg: &Config) -> anyhow::Result<RulePlan> {
    maps.write_profiles(&rate_profiles(cfg))?;
    maps.write_dest_rules(&dest_rules(cfg))?;
    maps.write_fingerprints(&fingerprints(cfg))?;
    let plan = RulePlan::new(&maps.rule_entries()?, &cfg.rules);
    maps.insert_rules(&plan.add)?;
    let mut kernel = FilterConfig::from(cfg);
    kernel.stream_adopt_until_ns = adopt_until_ns(cfg);
    kernel.prefix_bans = maps.prefix_bans_present()? as u8;
    maps.write_config(&kernel)?;
    for (net, keep) in &plan.retire {
        match keep {
            Some(value) => maps.insert_rule(*net, *value)?,
            None => maps.remove_rule(*net)?,
        }
    }
    // Clears the index bits of what was removed, here or since the last
    // start (`allow del`, lifted prefix bans).
    maps.rebuild_rule_index()?;
    Ok(plan)
}

/// Until when TCP connections older than the filter are taken up: for
/// `tcp_adopt_secs` after this process first applied a config (a reload
/// does not open the grace again).
fn adopt_until_ns(cfg: &Config) -> u64 {
    static STARTED_NS: OnceLock<u64> = OnceLock::new();
    let started = *STARTED_NS.get_or_init(boottime_ns);
    started + cfg.filter.tcp_adopt_secs * NS_PER_SEC
}

/// One line on an applied config, for the log.
pub fn summary(cfg: &Config, plan: &RulePlan) -> String {
    format!(
        "{}: ports {:?}, default class {}, mode {:?}, rules {} IPv4 + {} IPv6 prefixes (+{} -{})",
        cfg.path.display(),
        cfg.filter.ports,
        cfg.default_class_label(),
        cfg.filter.mode,
        cfg.rules.count_v4(),
        cfg.rules.count_v6(),
        plan.add.len(),
        plan.retire.len()
    )
}

/// Applies the config file anew; on any error the running config stays.
/// Returns the config in force and whether the reload succeeded.
pub fn reload(maps: &mut Maps, current: Config) -> (Config, bool) {
    let new = match Config::load(&current.path) {
        Ok(new) => new,
        Err(err) => {
            error!("reload failed, keeping the running config: {err:#}");
            return (current, false);
        }
    };
    if new.interfaces != current.interfaces {
        warn!("reload: `interfaces` changed; restart sip-xdp to attach to the new set");
    }
    if new.filter.sources_table_size != current.filter.sources_table_size {
        warn!("reload: `sources_table_size` changed; it takes effect at the next start");
    }
    if new.metrics.listen != current.metrics.listen || new.metrics.program_stats != current.metrics.program_stats {
        warn!("reload: `metrics.listen` and `metrics.program_stats` take effect at the next start");
    }
    match apply(maps, &new) {
        Ok(plan) => {
            info!("reloaded {}", summary(&new, &plan));
            (new, true)
        }
        Err(err) => {
            error!("reload failed while applying: {err:#}");
            (current, false)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{net::IpAddr, path::Path};

    use ipnet::IpNet;
    use sip_xdp_common::rules::{RuleValue, ORIGIN_CONFIG, ORIGIN_RUNTIME};

    use super::*;

    /// An in-memory allowlist that, after every write, checks that each
    /// probe address allowed by both the old and the new config is allowed.
    struct Fake {
        entries: BTreeMap<IpNet, RuleValue>,
        config: Option<FilterConfig>,
        must_stay_allowed: Vec<IpAddr>,
        writes: usize,
    }

    impl Fake {
        fn check(&mut self) -> anyhow::Result<()> {
            self.writes += 1;
            for addr in &self.must_stay_allowed {
                assert!(
                    self.entries.keys().any(|n| n.contains(addr)),
                    "{addr} was refused after write {}",
                    self.writes
                );
            }
            Ok(())
        }
    }

    impl FilterTarget for Fake {
        fn rule_entries(&self) -> anyhow::Result<BTreeMap<IpNet, RuleValue>> {
            Ok(self.entries.clone())
        }
        fn prefix_bans_present(&self) -> anyhow::Result<bool> {
            Ok(false)
        }
        fn insert_rule(&mut self, net: IpNet, value: RuleValue) -> anyhow::Result<()> {
            self.entries.insert(net, value);
            self.check()
        }
        fn remove_rule(&mut self, net: IpNet) -> anyhow::Result<()> {
            self.entries.remove(&net);
            self.check()
        }
        fn rebuild_rule_index(&mut self) -> anyhow::Result<()> {
            self.check()
        }
        fn write_config(&mut self, cfg: &FilterConfig) -> anyhow::Result<()> {
            self.config = Some(*cfg);
            self.check()
        }
        fn write_profiles(&mut self, _: &[RateProfile]) -> anyhow::Result<()> {
            self.check()
        }
        fn write_dest_rules(&mut self, _: &BTreeMap<String, DestRule>) -> anyhow::Result<()> {
            self.check()
        }
        fn write_fingerprints(&mut self, _: &[Fingerprint]) -> anyhow::Result<()> {
            self.check()
        }
    }

    fn config(cidrs: &[&str]) -> Config {
        let list: Vec<String> = cidrs.iter().map(|c| format!("\"{c}\"")).collect();
        Config::parse(Path::new("t.toml"), &format!("[allow]\ncidrs = [{}]\n", list.join(","))).unwrap()
    }

    fn allowed(cidrs: &[&str], addr: &IpAddr) -> bool {
        cidrs.iter().any(|c| c.parse::<IpNet>().unwrap().contains(addr))
    }

    #[test]
    fn no_source_allowed_before_and_after_is_refused_in_between() {
        let configs: [&[&str]; 5] = [
            &["198.18.1.2/32", "2001:db8:1::/48"],
            &["198.18.1.0/24"],
            &["198.18.0.0/16", "2001:db8::/32"],
            &["198.18.1.2/32", "198.18.9.0/24"],
            &[],
        ];
        let probes: Vec<IpAddr> =
            ["198.18.1.2", "198.18.1.77", "198.18.9.1", "198.18.200.1", "2001:db8:1::5", "2001:db8:2::5"]
                .iter()
                .map(|a| a.parse().unwrap())
                .collect();
        for from in configs {
            for to in configs {
                let mut fake = Fake { entries: BTreeMap::new(), config: None, must_stay_allowed: vec![], writes: 0 };
                apply(&mut fake, &config(from)).unwrap();
                // A runtime entry must survive every reload.
                fake.entries.insert(
                    "203.0.113.7/32".parse().unwrap(),
                    RuleValue { origin: ORIGIN_RUNTIME, ..Default::default() },
                );
                fake.must_stay_allowed =
                    probes.iter().filter(|a| allowed(from, a) && allowed(to, a)).copied().collect();
                fake.must_stay_allowed.push("203.0.113.7".parse().unwrap());
                apply(&mut fake, &config(to)).unwrap();
                let config_entries: Vec<String> = fake
                    .entries
                    .iter()
                    .filter(|(_, v)| v.origin & ORIGIN_CONFIG != 0)
                    .map(|(n, _)| n.to_string())
                    .collect();
                let mut want: Vec<String> = to.iter().map(|s| s.to_string()).collect();
                want.sort();
                let mut got = config_entries.clone();
                got.sort();
                assert_eq!(got, want, "{from:?} -> {to:?}");
                assert!(fake.config.is_some());
            }
        }
    }
}
