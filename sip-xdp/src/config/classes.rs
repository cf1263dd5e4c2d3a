//! `[profile.NAME]` tables and the class names rules refer to: `trusted`,
//! `deny`, or a profile's name.

use std::collections::BTreeMap;

use serde::Deserialize;
use sip_xdp_common::{kernel_config::MAX_PROFILES, map_types::RateProfile};
use toml::Spanned;

use super::source::Source;
use crate::rules::Class;

/// Highest accepted rate, per second: beyond it a limit limits nothing.
pub const MAX_RATE: i64 = 1_000_000;

/// A `[profile.NAME]` table: token-bucket rates for a `limited` class, in
/// the kernel's form (INVITE rates default to the request rates).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    pub rates: RateProfile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    register_per_sec: Spanned<i64>,
    register_burst: Spanned<i64>,
    requests_per_sec: Spanned<i64>,
    requests_burst: Spanned<i64>,
    #[serde(default)]
    invite_per_sec: Option<Spanned<i64>>,
    #[serde(default)]
    invite_burst: Option<Spanned<i64>>,
}

/// The profiles in name order: the kernel rules refer to them by index.
pub fn profiles(raw: &BTreeMap<String, Spanned<RawProfile>>, src: &Source) -> anyhow::Result<Vec<Profile>> {
    if raw.len() > MAX_PROFILES as usize {
        return Err(src.whole(format!("{} profiles defined; at most {MAX_PROFILES} are supported", raw.len())));
    }
    let mut profiles = Vec::new();
    for (name, p) in raw {
        let key = |field: &str| format!("profile.{name}.{field}");
        let rate = |v: &Spanned<i64>, field: &str| -> anyhow::Result<u32> {
            let n = *v.get_ref();
            if !(1..=MAX_RATE).contains(&n) {
                return Err(src.error(v.span(), &key(field), format!("{n} is out of range (1-{MAX_RATE})")));
            }
            Ok(n as u32)
        };
        let p = p.get_ref();
        let requests_per_sec = rate(&p.requests_per_sec, "requests_per_sec")?;
        let requests_burst = rate(&p.requests_burst, "requests_burst")?;
        profiles.push(Profile {
            name: name.clone(),
            rates: RateProfile {
                register_per_sec: rate(&p.register_per_sec, "register_per_sec")?,
                register_burst: rate(&p.register_burst, "register_burst")?,
                requests_per_sec,
                requests_burst,
                invite_per_sec: p
                    .invite_per_sec
                    .as_ref()
                    .map_or(Ok(requests_per_sec), |v| rate(v, "invite_per_sec"))?,
                invite_burst: p.invite_burst.as_ref().map_or(Ok(requests_burst), |v| rate(v, "invite_burst"))?,
            },
        });
    }
    Ok(profiles)
}

/// Resolves the class names of a config against its profiles.
pub struct Classes<'a> {
    pub profiles: &'a [Profile],
}

impl Classes<'_> {
    pub fn named(&self, name: &Spanned<String>, key: &str, src: &Source) -> anyhow::Result<Class> {
        match name.get_ref().as_str() {
            "trusted" => Ok(Class::Trusted),
            "deny" => Ok(Class::Deny),
            other => {
                self.profiles.iter().position(|p| p.name == other).map(|i| Class::Limited(i as u8)).ok_or_else(|| {
                    src.error(
                        name.span(),
                        key,
                        format!(
                            "unknown class {other:?}: use \"trusted\", \"deny\" or a profile defined as [profile.NAME]"
                        ),
                    )
                })
            }
        }
    }

    /// The name a class has in the config file.
    pub fn label(&self, class: Class) -> String {
        match class {
            Class::Trusted => "trusted".into(),
            Class::Deny => "deny".into(),
            Class::Limited(i) => {
                self.profiles.get(i as usize).map_or_else(|| format!("profile #{i}"), |p| p.name.clone())
            }
        }
    }
}
