//! `[fleet]`: sharing bans with the other edges through Redis. Without a
//! `redis` URL the edge stands alone and nothing below applies.

use serde::Deserialize;
use toml::Spanned;

use super::source::{default, Source};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fleet {
    /// `redis://` or `rediss://` (TLS), as given (a password in it stays in it).
    pub redis: String,
    /// Read from `password_file` at load, so a missing file is a config error.
    pub password: Option<String>,
    /// This edge's name in the fleet (the origin of what it publishes).
    pub node: String,
    pub publish: bool,
    pub subscribe: bool,
    /// Fleet bans wider than these are refused (one message must not
    /// black-hole a continent).
    pub max_prefix_v4: u8,
    pub max_prefix_v6: u8,
    /// How often the keys are read again while connected: catches bans
    /// written by tools that set a key without announcing it.
    pub reconcile_secs: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawFleet {
    redis: Option<Spanned<String>>,
    password_file: Option<Spanned<String>>,
    node: Option<Spanned<String>>,
    publish: bool,
    subscribe: bool,
    max_prefix_v4: Spanned<i64>,
    max_prefix_v6: Spanned<i64>,
    reconcile_secs: Spanned<i64>,
}

impl Default for RawFleet {
    fn default() -> Self {
        RawFleet {
            redis: None,
            password_file: None,
            node: None,
            publish: true,
            subscribe: true,
            max_prefix_v4: default(16),
            max_prefix_v6: default(32),
            reconcile_secs: default(10),
        }
    }
}

/// A node name: what `ban list` shows as `origin=`, and part of no key.
pub fn valid_node(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl RawFleet {
    pub fn validate(&self, src: &Source) -> anyhow::Result<Option<Fleet>> {
        let Some(url) = &self.redis else {
            if let Some(other) = self.password_file.as_ref().or(self.node.as_ref()) {
                return Err(src.error(other.span(), "fleet", "needs `redis`, the store's URL"));
            }
            return Ok(None);
        };
        let u = url.get_ref();
        let scheme_ok = u.starts_with("redis://") || u.starts_with("rediss://");
        if !scheme_ok || redis::Client::open(u.as_str()).is_err() {
            return Err(src.error(url.span(), "fleet.redis", format!("{u:?} is not a redis:// or rediss:// URL")));
        }
        let password = match &self.password_file {
            None => None,
            Some(file) => Some(src.secret_file(file, "fleet.password_file")?),
        };
        let node = match &self.node {
            Some(n) => n.get_ref().clone(),
            None => hostname(),
        };
        if !valid_node(&node) {
            let span = self.node.as_ref().map_or(0..0, Spanned::span);
            return Err(src.error(span, "fleet.node", format!("{node:?} is not 1-64 of A-Z a-z 0-9 . _ -")));
        }
        Ok(Some(Fleet {
            redis: u.clone(),
            password,
            node,
            publish: self.publish,
            subscribe: self.subscribe,
            max_prefix_v4: src.prefix_len(&self.max_prefix_v4, "fleet.max_prefix_v4", 32)?,
            max_prefix_v6: src.prefix_len(&self.max_prefix_v6, "fleet.max_prefix_v6", 128)?,
            reconcile_secs: src.positive(&self.reconcile_secs, "fleet.reconcile_secs", 3600)?,
        }))
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; the result is
    // NUL-terminated when it fits.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(0);
    if rc != 0 {
        return String::new();
    }
    // The short name: fully qualified names carry dots that say nothing here.
    String::from_utf8_lossy(&buf[..end]).split('.').next().unwrap_or("").to_string()
}
