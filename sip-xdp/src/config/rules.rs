//! `[allow]` and `[[rule]]`: prefixes (inline or from files) and the class
//! each gives its sources.

use std::{
    collections::BTreeSet,
    ops::Range,
    path::{Path, PathBuf},
};

use ipnet::IpNet;
use serde::Deserialize;
use sip_xdp_common::registry::RULES_CAPACITY;
use toml::Spanned;

use super::{classes::Classes, source::Source};
use crate::{
    error::user_error,
    rules::{parse_cidr, parse_list, Class, Rules},
};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawAllow {
    #[serde(default)]
    cidrs: Vec<Spanned<String>>,
    #[serde(default)]
    files: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    #[serde(default)]
    cidrs: Vec<Spanned<String>>,
    #[serde(default)]
    files: Vec<Spanned<String>>,
    class: Spanned<String>,
}

/// Every prefix with its class (`[allow]` entries are `trusted`). Files
/// are read relative to the config's directory; one listed twice is read
/// once; a prefix given two classes is refused.
pub fn rules(allow: &RawAllow, rule: &[RawRule], src: &Source, classes: &Classes) -> anyhow::Result<Rules> {
    let base = src.path.parent().unwrap_or(Path::new("."));
    let mut rules = Rules::default();
    let mut add =
        |net: IpNet, class: Class, span: Range<usize>, key: &str, file: Option<&Path>| -> anyhow::Result<()> {
            if let Some(previous) = rules.insert(net, class) {
                if previous != class {
                    let msg = format!(
                        "{net} is given two classes ({} and {})",
                        classes.label(previous),
                        classes.label(class)
                    );
                    return Err(match file {
                        Some(file) => user_error(format!("{}: {msg}", file.display())),
                        None => src.error(span, key, msg),
                    });
                }
            }
            Ok(())
        };
    let mut seen_files = BTreeSet::new();
    let mut read_file = |file: &Spanned<String>, key: &str| -> anyhow::Result<Option<(PathBuf, Vec<IpNet>)>> {
        let file_path = base.join(file.get_ref());
        if !seen_files.insert(file_path.clone()) {
            return Ok(None);
        }
        let list = std::fs::read_to_string(&file_path)
            .map_err(|e| src.error(file.span(), key, format!("cannot read {}: {e}", file_path.display())))?;
        let nets = parse_list(&list).map_err(|(line, e)| user_error(format!("{}:{line}: {e}", file_path.display())))?;
        Ok(Some((file_path, nets)))
    };
    let groups = std::iter::once((&allow.cidrs, &allow.files, None))
        .chain(rule.iter().map(|r| (&r.cidrs, &r.files, Some(&r.class))));
    for (cidrs, files, class) in groups {
        let (class, key) = match class {
            None => (Class::Trusted, "allow"),
            Some(name) => (classes.named(name, "rule.class", src)?, "rule"),
        };
        for cidr in cidrs {
            let net = parse_cidr(cidr.get_ref()).map_err(|e| src.error(cidr.span(), &format!("{key}.cidrs"), e.0))?;
            add(net, class, cidr.span(), &format!("{key}.cidrs"), None)?;
        }
        for file in files {
            if let Some((file_path, nets)) = read_file(file, &format!("{key}.files"))? {
                for net in nets {
                    add(net, class, file.span(), "", Some(&file_path))?;
                }
            }
        }
    }
    for (family, count) in [("IPv4", rules.count_v4()), ("IPv6", rules.count_v6())] {
        if count > RULES_CAPACITY as usize {
            return Err(
                src.whole(format!("the rules hold {count} {family} prefixes; the kernel table holds {RULES_CAPACITY}"))
            );
        }
    }
    Ok(rules)
}
