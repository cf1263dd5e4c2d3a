//! `[metrics]`: the Prometheus endpoint.

use serde::Deserialize;
use toml::Spanned;

use super::source::{default, Source};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsConfig {
    pub listen: std::net::SocketAddr,
    /// Busiest sources exported with their own series.
    pub top_sources: usize,
    /// Switch on the kernel's per-program run-time statistics.
    pub program_stats: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawMetrics {
    listen: Spanned<String>,
    top_sources: Spanned<i64>,
    program_stats: bool,
}

impl Default for RawMetrics {
    fn default() -> Self {
        RawMetrics { listen: default("127.0.0.1:9560".into()), top_sources: default(20), program_stats: false }
    }
}

impl RawMetrics {
    pub fn validate(&self, src: &Source) -> anyhow::Result<MetricsConfig> {
        let listen = self.listen.get_ref().parse().map_err(|_| {
            src.error(
                self.listen.span(),
                "metrics.listen",
                format!("{:?} is not an address:port", self.listen.get_ref()),
            )
        })?;
        Ok(MetricsConfig {
            listen,
            top_sources: src.positive(&self.top_sources, "metrics.top_sources", 1000)? as usize,
            program_stats: self.program_stats,
        })
    }
}
