//! `[destinations]` and `[destinations.cost]`: the policy on numbers
//! dialled in INVITEs, and what calls cost.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use sip_xdp_common::{
    dialled::{MAX_DIGITS, MAX_INTL_PREFIXES, MAX_INTL_PREFIX_LEN},
    registry::DEST_RULES_CAPACITY,
};
use toml::Spanned;

use super::{classes::Classes, source::Source};
use crate::rules::Class;

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Destinations {
    pub international_prefixes: Vec<String>,
    /// Digit prefixes (E.164, country code first) whose INVITEs are dropped.
    pub block: Vec<String>,
    /// If not empty: international numbers outside these are dropped.
    pub allow_only: Vec<String>,
    /// Classes the policy applies to.
    pub applies_to: Vec<Class>,
    /// Estimated cost of a call, by prefix, in the operator's currency.
    pub cost: BTreeMap<String, f64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RawDestinations {
    international_prefixes: Vec<Spanned<String>>,
    block: Vec<Spanned<String>>,
    allow_only: Vec<Spanned<String>>,
    applies_to: Vec<Spanned<String>>,
    cost: BTreeMap<String, Spanned<f64>>,
}

/// Digits of a prefix, a leading `+` dropped.
fn digits(text: &str, max: usize) -> Option<&str> {
    let d = text.trim_start_matches('+');
    (!d.is_empty() && d.len() <= max && d.bytes().all(|b| b.is_ascii_digit())).then_some(d)
}

impl RawDestinations {
    pub fn validate(&self, src: &Source, classes: &Classes) -> anyhow::Result<Destinations> {
        let prefix = |v: &Spanned<String>, key: &str, max: usize| -> anyhow::Result<String> {
            digits(v.get_ref(), max).map(str::to_string).ok_or_else(|| {
                src.error(v.span(), key, format!("{:?} is not a prefix of 1 to {max} digits", v.get_ref()))
            })
        };
        if self.international_prefixes.len() > MAX_INTL_PREFIXES {
            return Err(
                src.whole(format!("key `destinations.international_prefixes`: at most {MAX_INTL_PREFIXES} prefixes"))
            );
        }
        let mut destinations = Destinations::default();
        for p in &self.international_prefixes {
            destinations.international_prefixes.push(prefix(
                p,
                "destinations.international_prefixes",
                MAX_INTL_PREFIX_LEN,
            )?);
        }
        let mut seen = BTreeSet::new();
        for (list, key, out) in [
            (&self.block, "destinations.block", &mut destinations.block),
            (&self.allow_only, "destinations.allow_only", &mut destinations.allow_only),
        ] {
            for p in list {
                let d = prefix(p, key, MAX_DIGITS)?;
                if !seen.insert(d.clone()) {
                    return Err(src.error(p.span(), key, format!("prefix {d} is listed twice")));
                }
                out.push(d);
            }
        }
        if destinations.block.len() + destinations.allow_only.len() > DEST_RULES_CAPACITY as usize {
            return Err(src.whole(format!("more than {DEST_RULES_CAPACITY} destination prefixes")));
        }
        for (text, cost) in &self.cost {
            let Some(d) = digits(text, MAX_DIGITS) else {
                return Err(src.error(
                    cost.span(),
                    "destinations.cost",
                    format!("{text:?} is not a prefix of 1 to {MAX_DIGITS} digits"),
                ));
            };
            let c = *cost.get_ref();
            if !(0.0..=1_000_000.0).contains(&c) {
                return Err(src.error(cost.span(), "destinations.cost", format!("{c} is not a cost (0-1000000)")));
            }
            destinations.cost.insert(d.to_string(), c);
        }
        for name in &self.applies_to {
            match classes.named(name, "destinations.applies_to", src)? {
                Class::Deny => {
                    return Err(src.error(
                        name.span(),
                        "destinations.applies_to",
                        "\"deny\" sources never reach the policy",
                    ))
                }
                class => destinations.applies_to.push(class),
            }
        }
        Ok(destinations)
    }
}
