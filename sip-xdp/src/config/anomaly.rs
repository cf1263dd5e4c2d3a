//! `[anomaly]`: the spend-anomaly detector.

use serde::Deserialize;
use toml::Spanned;

use super::source::{default, Source, YEAR};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Anomaly {
    pub window_secs: u64,
    /// Weight of the newest window in the baseline (0-1).
    pub baseline_weight: f64,
    /// International calls over the baseline, within a window, that block.
    pub calls_over: u64,
    /// Estimated spend over the baseline that blocks (needs costs).
    pub cost_over: Option<f64>,
    pub block_secs: u64,
    /// How often the kernel's totals are sampled.
    pub check_secs: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAnomaly {
    window_secs: Spanned<i64>,
    baseline_weight: Spanned<f64>,
    calls_over: Spanned<i64>,
    cost_over: Option<Spanned<f64>>,
    block_secs: Spanned<i64>,
    check_secs: Spanned<i64>,
}

impl Default for RawAnomaly {
    fn default() -> Self {
        RawAnomaly {
            window_secs: default(3600),
            baseline_weight: default(0.2),
            calls_over: default(50),
            cost_over: None,
            block_secs: default(3600),
            check_secs: default(60),
        }
    }
}

impl RawAnomaly {
    pub fn validate(&self, src: &Source) -> anyhow::Result<Anomaly> {
        let weight = *self.baseline_weight.get_ref();
        if !(weight > 0.0 && weight <= 1.0) {
            return Err(src.error(
                self.baseline_weight.span(),
                "anomaly.baseline_weight",
                format!("{weight} is not in (0, 1]"),
            ));
        }
        let cost_over = match &self.cost_over {
            Some(c) if *c.get_ref() <= 0.0 => {
                return Err(src.error(c.span(), "anomaly.cost_over", format!("{} must be positive", c.get_ref())))
            }
            Some(c) => Some(*c.get_ref()),
            None => None,
        };
        Ok(Anomaly {
            window_secs: src.positive(&self.window_secs, "anomaly.window_secs", YEAR)?,
            baseline_weight: weight,
            calls_over: src.positive(&self.calls_over, "anomaly.calls_over", 1_000_000)?,
            cost_over,
            block_secs: src.positive(&self.block_secs, "anomaly.block_secs", YEAR)?,
            check_secs: src.positive(&self.check_secs, "anomaly.check_secs", 3600)?,
        })
    }
}
