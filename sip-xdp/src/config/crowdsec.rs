//! `[crowdsec]`: follow a CrowdSec Local API's decisions as a remediation
//! component (a bouncer). Off unless `lapi_url` is given.

use serde::Deserialize;
use toml::Spanned;

use super::source::{default, Source};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrowdSec {
    /// The Local API's base URL, without `/v1/...`.
    pub lapi_url: String,
    /// The key `cscli bouncers add` printed.
    pub api_key: String,
    pub poll_secs: u64,
    /// Range decisions wider than these are refused.
    pub max_prefix_v4: u8,
    pub max_prefix_v6: u8,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCrowdSec {
    lapi_url: Option<Spanned<String>>,
    api_key_file: Option<Spanned<String>>,
    poll_secs: Spanned<i64>,
    max_prefix_v4: Spanned<i64>,
    max_prefix_v6: Spanned<i64>,
}

impl Default for RawCrowdSec {
    fn default() -> Self {
        RawCrowdSec {
            lapi_url: None,
            api_key_file: None,
            poll_secs: default(1),
            max_prefix_v4: default(16),
            max_prefix_v6: default(32),
        }
    }
}

impl RawCrowdSec {
    pub fn validate(&self, src: &Source) -> anyhow::Result<Option<CrowdSec>> {
        let (url, key_file) = match (&self.lapi_url, &self.api_key_file) {
            (None, None) => return Ok(None),
            (Some(url), Some(key)) => (url, key),
            (Some(url), None) => return Err(src.error(url.span(), "crowdsec", "needs `api_key_file` as well")),
            (None, Some(key)) => return Err(src.error(key.span(), "crowdsec", "needs `lapi_url` as well")),
        };
        let u = url.get_ref().trim_end_matches('/');
        let host = u.strip_prefix("http://").or_else(|| u.strip_prefix("https://"));
        if host.is_none_or(|h| h.is_empty() || h.contains('/')) {
            return Err(src.error(
                url.span(),
                "crowdsec.lapi_url",
                format!("{:?} is not an http:// or https:// base URL (like http://127.0.0.1:8080)", url.get_ref()),
            ));
        }
        Ok(Some(CrowdSec {
            lapi_url: u.to_string(),
            api_key: src.secret_file(key_file, "crowdsec.api_key_file")?,
            poll_secs: src.positive(&self.poll_secs, "crowdsec.poll_secs", 3600)?,
            max_prefix_v4: src.prefix_len(&self.max_prefix_v4, "crowdsec.max_prefix_v4", 32)?,
            max_prefix_v6: src.prefix_len(&self.max_prefix_v6, "crowdsec.max_prefix_v6", 128)?,
        }))
    }
}
