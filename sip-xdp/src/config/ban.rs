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
    /// Distinct sources banned inside one IPv4 /24 or IPv6 /48 within
    /// `escalate_window_secs` that ban the whole network; 0: never.
    pub escalate_after: u32,
    pub escalate_window_secs: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthFailures {
    /// Rejected credentials that ban.
    pub max: u32,
    /// Challenges never answered with credentials that ban.
    pub unanswered_challenges: u32,
    pub window_secs: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawBan {
    after_excess: Spanned<i64>,
    window_secs: Spanned<i64>,
    duration_secs: Spanned<i64>,
    max_duration_secs: Spanned<i64>,
    escalate_after: Spanned<i64>,
    escalate_window_secs: Spanned<i64>,
}

impl Default for RawBan {
    fn default() -> Self {
        RawBan {
            after_excess: default(50),
            window_secs: default(10),
            duration_secs: default(600),
            max_duration_secs: default(86_400),
            // A single address, however busy (an office behind one NAT),
            // is one source: five distinct ones banned within an hour is a
            // network attacking.
            escalate_after: default(5),
            escalate_window_secs: default(3600),
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
            escalate_after: match *self.escalate_after.get_ref() {
                0 => 0,
                _ => src.positive(&self.escalate_after, "ban.escalate_after", 65_536)? as u32,
            },
            escalate_window_secs: src.positive(&self.escalate_window_secs, "ban.escalate_window_secs", YEAR)?,
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
    unanswered_challenges: Spanned<i64>,
    window_secs: Spanned<i64>,
}

impl Default for RawAuth {
    fn default() -> Self {
        RawAuth { max: default(5), unanswered_challenges: default(20), window_secs: default(60) }
    }
}

impl RawAuth {
    pub fn validate(&self, src: &Source) -> anyhow::Result<AuthFailures> {
        Ok(AuthFailures {
            max: src.positive(&self.max, "auth_failures.max", 1_000_000)? as u32,
            unanswered_challenges: src.positive(
                &self.unanswered_challenges,
                "auth_failures.unanswered_challenges",
                1_000_000,
            )? as u32,
            window_secs: src.positive(&self.window_secs, "auth_failures.window_secs", YEAR)?,
        })
    }
}
