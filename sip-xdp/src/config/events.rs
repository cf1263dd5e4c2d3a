//! `[events]`: how ban events are logged, and where they are POSTed.

use serde::Deserialize;
use toml::Spanned;

use super::source::Source;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EventFormat {
    #[default]
    Text,
    Json,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Events {
    pub format: EventFormat,
    /// POSTed a JSON document per event.
    pub webhook: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RawEvents {
    format: EventFormat,
    webhook: Option<Spanned<String>>,
}

impl RawEvents {
    pub fn validate(&self, src: &Source) -> anyhow::Result<Events> {
        let webhook = match &self.webhook {
            None => None,
            Some(url) => {
                let u = url.get_ref();
                if !(u.starts_with("http://") || u.starts_with("https://")) || u.parse::<ureq::http::Uri>().is_err() {
                    return Err(src.error(
                        url.span(),
                        "events.webhook",
                        format!("{u:?} is not an http:// or https:// URL"),
                    ));
                }
                Some(u.clone())
            }
        };
        Ok(Events { format: self.format, webhook })
    }
}
