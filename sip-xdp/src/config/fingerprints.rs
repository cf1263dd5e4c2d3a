//! `[fingerprints]`: the User-Agent substrings of attack tools.

use serde::Deserialize;
use sip_xdp_common::fingerprint::{Fingerprint, DEFAULT_USER_AGENTS, FINGERPRINT_LEN, MAX_FINGERPRINTS};
use toml::Spanned;

use super::source::{default, Source};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFingerprints {
    user_agents: Spanned<Vec<Spanned<String>>>,
}

impl Default for RawFingerprints {
    fn default() -> Self {
        RawFingerprints { user_agents: default(DEFAULT_USER_AGENTS.iter().map(|s| default(s.to_string())).collect()) }
    }
}

impl RawFingerprints {
    pub fn validate(&self, src: &Source) -> anyhow::Result<Vec<String>> {
        let list = &self.user_agents;
        if list.get_ref().len() > MAX_FINGERPRINTS {
            return Err(src.error(
                list.span(),
                "fingerprints.user_agents",
                format!("at most {MAX_FINGERPRINTS} fingerprints"),
            ));
        }
        let mut user_agents = Vec::new();
        for ua in list.get_ref() {
            if Fingerprint::new(ua.get_ref()).is_none() {
                return Err(src.error(
                    ua.span(),
                    "fingerprints.user_agents",
                    format!("{:?} must be 1 to {FINGERPRINT_LEN} ASCII characters", ua.get_ref()),
                ));
            }
            user_agents.push(ua.get_ref().clone());
        }
        Ok(user_agents)
    }
}
