//! Spend anomalies: international calls per source over a sliding window,
//! against an exponentially weighted baseline of earlier windows. When the
//! current window exceeds the baseline by `calls_over` calls or `cost_over`
//! in money, the source's international calls are blocked in the kernel
//! (through the destination policy, so national calls go on) for
//! `block_secs`.
//!
//! The kernel counts each source's admitted international INVITEs and their
//! estimated cost; this module only sees those running totals, sampled.

use std::{
    collections::{HashMap, VecDeque},
    hash::Hash,
};

use crate::config::Anomaly;

#[derive(Debug, Default)]
struct Track {
    /// Kernel totals at the previous sample.
    last_calls: u64,
    last_cost_milli: u64,
    /// Samples inside the current window: (second, calls, cost in milli).
    samples: VecDeque<(u64, u64, u64)>,
    baseline_calls: f64,
    baseline_cost: f64,
    /// When the baseline was last folded forward.
    baseline_at: u64,
    /// What the last sample added: (calls, cost in milli).
    last_delta: (u64, u64),
}

/// An anomaly found: the source (or class) and what its window held.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding<K> {
    pub source: K,
    pub calls: u64,
    pub cost: f64,
    pub baseline_calls: f64,
    pub baseline_cost: f64,
}

/// Windows and baselines per key: a source, or a class.
#[derive(Debug)]
pub struct Detector<K> {
    tracks: HashMap<K, Track>,
}

impl<K> Default for Detector<K> {
    fn default() -> Self {
        Detector { tracks: HashMap::new() }
    }
}

impl<K: Hash + Eq + Clone> Detector<K> {
    /// Calls in the key's current window.
    pub fn window_calls(&self, key: &K) -> u64 {
        self.tracks.get(key).map_or(0, |t| t.samples.iter().map(|s| s.1).sum())
    }

    /// What the last `observe` added for the key: (calls, cost in milli).
    pub fn last_delta(&self, key: &K) -> (u64, u64) {
        self.tracks.get(key).map_or((0, 0), |t| t.last_delta)
    }

    /// Feeds running totals at second `now`; returns the keys whose window
    /// now exceeds their baseline.
    pub fn observe(
        &mut self,
        cfg: &Anomaly,
        now: u64,
        totals: impl IntoIterator<Item = (K, u64, u64)>,
    ) -> Vec<Finding<K>> {
        let mut findings = Vec::new();
        for (source, calls, cost_milli) in totals {
            let t = self.tracks.entry(source.clone()).or_insert_with(|| Track { baseline_at: now, ..Track::default() });
            // Totals only grow, unless the kernel entry was evicted and
            // recreated: then the new total is all new.
            let dc = calls.checked_sub(t.last_calls).unwrap_or(calls);
            let dm = cost_milli.checked_sub(t.last_cost_milli).unwrap_or(cost_milli);
            t.last_calls = calls;
            t.last_cost_milli = cost_milli;
            t.last_delta = (dc, dm);
            if dc > 0 || dm > 0 {
                t.samples.push_back((now, dc, dm));
            }
            while t.samples.front().is_some_and(|(at, _, _)| now.saturating_sub(*at) >= cfg.window_secs) {
                t.samples.pop_front();
            }
            let window_calls: u64 = t.samples.iter().map(|s| s.1).sum();
            let window_cost = t.samples.iter().map(|s| s.2).sum::<u64>() as f64 / 1000.0;
            // Once per window, the window's totals join the baseline.
            if now.saturating_sub(t.baseline_at) >= cfg.window_secs {
                t.baseline_calls =
                    cfg.baseline_weight * window_calls as f64 + (1.0 - cfg.baseline_weight) * t.baseline_calls;
                t.baseline_cost = cfg.baseline_weight * window_cost + (1.0 - cfg.baseline_weight) * t.baseline_cost;
                t.baseline_at = now;
            }
            let over_calls = window_calls as f64 > t.baseline_calls + cfg.calls_over as f64;
            let over_cost = cfg.cost_over.is_some_and(|c| window_cost > t.baseline_cost + c);
            if over_calls || over_cost {
                findings.push(Finding {
                    source,
                    calls: window_calls,
                    cost: window_cost,
                    baseline_calls: t.baseline_calls,
                    baseline_cost: t.baseline_cost,
                });
                // Start afresh: the block is the answer to this window.
                t.samples.clear();
            }
        }
        findings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Anomaly {
        Anomaly {
            window_secs: 3600,
            baseline_weight: 0.5,
            calls_over: 10,
            cost_over: Some(40.0),
            block_secs: 3600,
            check_secs: 60,
        }
    }

    const SRC: [u8; 16] = [1; 16];

    #[test]
    fn a_burst_over_the_baseline_is_found_and_steady_use_is_not() {
        let mut d = Detector::default();
        let c = cfg();
        // Five calls an hour for three hours: the baseline settles near 5.
        let mut total = 0;
        for hour in 0..3u64 {
            for minute in 0..60u64 {
                if minute % 12 == 0 {
                    total += 1;
                }
                assert!(
                    d.observe(&c, hour * 3600 + minute * 60, [(SRC, total, 0)]).is_empty(),
                    "steady use at {hour}h{minute}"
                );
            }
        }
        // Then thirty calls within ten minutes.
        let start = 3 * 3600;
        let mut found = Vec::new();
        for minute in 0..10u64 {
            total += 3;
            found.extend(d.observe(&c, start + minute * 60, [(SRC, total, 0)]));
        }
        // Found (and, as the calls go on in this test, found again).
        assert!(!found.is_empty());
        assert!(found[0].calls > 10 && found[0].baseline_calls > 2.0 && found[0].baseline_calls < 6.0, "{found:?}");
    }

    #[test]
    fn spend_alone_can_trigger() {
        let mut d = Detector::default();
        let c = cfg();
        // Two calls at 25.00 each: few calls, but 50 over a baseline of 0.
        assert!(d.observe(&c, 0, [(SRC, 1, 25_000)]).is_empty());
        let found = d.observe(&c, 60, [(SRC, 2, 50_000)]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].cost, 50.0);
        let no_cost = Anomaly { cost_over: None, ..c };
        let mut d = Detector::default();
        assert!(d.observe(&no_cost, 0, [(SRC, 2, 50_000)]).is_empty());
    }

    #[test]
    fn a_recreated_kernel_entry_counts_from_zero() {
        let mut d = Detector::default();
        let c = cfg();
        assert!(d.observe(&c, 0, [(SRC, 8, 0)]).is_empty());
        // The entry was evicted and came back with 3: those 3 are new.
        assert!(d.observe(&c, 60, [(SRC, 3, 0)]).len() == 1, "8 + 3 = 11 > 0 + 10");
    }
}
