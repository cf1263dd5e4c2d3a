//! `[ban]` and `[auth_failures]`: when the kernel bans a source, and for
//! how long.

use serde::Deserialize;
use toml::Spanned;

use super::source::{default, Source, YEAR};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BanConfig {
    pub after_excess: u32,
    pub window_secs: u64,
    pub duration_secs: u64,
    pub max_duration_secs: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthFailures {
    pub max: u32,
    pub window_secs: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawBan {
    after_excess: Spanned<i64>,
    window_secs: Spanned<i64>,
    duration_secs: Spanned<i64>,
    max_duration_secs: Spanned<i64>,
}

impl Default for RawBan {
    fn default() -> Self {
        RawBan {
            after_excess: default(50),
            window_secs: default(10),
            duration_secs: default(600),
            max_duration_secs: default(86_400),
        }
    }
}

impl RawBan {
    pub fn validate(&self, src: &Source) -> anyhow::Result<BanConfig> {
        let ban = BanConfig {
            after_excess: src.positive(&self.after_excess, "ban.after_excess", 1_000_000)? as u32,
            window_secs: src.positive(&self.window_secs, "ban.window_secs", YEAR)?,
            duration_secs: src.positive(&self.duration_secs, "ban.duration_secs", YEAR)?,
            max_duration_secs: src.positive(&self.max_duration_secs, "ban.max_duration_secs", YEAR)?,
        };
        if ban.max_duration_secs < ban.duration_secs {
            return Err(src.error(
                self.max_duration_secs.span(),
                "ban.max_duration_secs",
                format!("{} is shorter than ban.duration_secs ({})", ban.max_duration_secs, ban.duration_secs),
            ));
        }
        Ok(ban)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAuth {
    max: Spanned<i64>,
    window_secs: Spanned<i64>,
}

impl Default for RawAuth {
    fn default() -> Self {
        RawAuth { max: default(5), window_secs: default(60) }
    }
}

impl RawAuth {
    pub fn validate(&self, src: &Source) -> anyhow::Result<AuthFailures> {
        Ok(AuthFailures {
            max: src.positive(&self.max, "auth_failures.max", 1_000_000)? as u32,
            window_secs: src.positive(&self.window_secs, "auth_failures.window_secs", YEAR)?,
        })
    }
}
