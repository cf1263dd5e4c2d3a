//! The CrowdSec Local API's decision stream, read: `GET
//! /v1/decisions/stream` answers `{"new": [...], "deleted": [...]}` (either
//! may be null), each decision with an id, a type, a scope, a value and a
//! Go duration (`"3h59m58.123456s"`; negative once expired). Only `ban`
//! decisions of scope `Ip` and `Range` are enforced here; the others
//! (captcha, countries, AS numbers, simulated ones) are counted and left.

use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::rules::parse_cidr;

/// One decision this edge enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub id: i64,
    pub net: IpNet,
    /// Time left; zero for a deleted or expired decision.
    pub remaining: Duration,
    /// The scenario that made it (`crowdsecurity/ssh-bf`, `manual 'ban' from 'cscli'`).
    pub scenario: String,
}

/// What one pull brought.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Delta {
    pub new: Vec<Decision>,
    pub deleted: Vec<Decision>,
    /// Decisions that are not `ban`s of an address or range, or unreadable.
    pub ignored: usize,
}

#[derive(Deserialize)]
struct Stream {
    #[serde(default)]
    new: Option<Vec<Raw>>,
    #[serde(default)]
    deleted: Option<Vec<Raw>>,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    id: i64,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    duration: String,
    #[serde(default)]
    scenario: String,
    #[serde(default)]
    simulated: bool,
}

impl Raw {
    fn decision(self) -> Option<Decision> {
        let scope = self.scope.to_ascii_lowercase();
        if !self.kind.eq_ignore_ascii_case("ban") || self.simulated || !(scope == "ip" || scope == "range") {
            return None;
        }
        let net = crate::rules::canonical(parse_cidr(&self.value).ok()?);
        let remaining = go_duration(&self.duration)?;
        Some(Decision { id: self.id, net, remaining, scenario: self.scenario })
    }
}

/// Reads a stream answer.
pub fn parse(body: &str) -> anyhow::Result<Delta> {
    let stream: Stream = serde_json::from_str(body)?;
    let mut delta = Delta::default();
    for (raws, into) in [(stream.new, &mut delta.new), (stream.deleted, &mut delta.deleted)] {
        for raw in raws.unwrap_or_default() {
            match raw.decision() {
                Some(d) => into.push(d),
                None => delta.ignored += 1,
            }
        }
    }
    Ok(delta)
}

/// A Go `time.Duration` string (`1h2m3.5s`, `300ms`, `-4.2s`); negative
/// ones are zero. None for anything else, an empty string and a number
/// too large for a `Duration` included.
pub fn go_duration(text: &str) -> Option<Duration> {
    if text.is_empty() {
        return None;
    }
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let seconds = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" | "μs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += number * seconds;
        rest = &rest[unit_end..];
    }
    if negative {
        return Some(Duration::ZERO);
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_read_as_go_writes_them() {
        assert_eq!(go_duration("1h59m58.5s"), Some(Duration::from_millis(7_198_500)));
        assert_eq!(go_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(go_duration("300ms"), Some(Duration::from_millis(300)));
        assert_eq!(go_duration("-3.25s"), Some(Duration::ZERO), "expired");
        assert_eq!(go_duration("0"), Some(Duration::ZERO));
        assert_eq!(go_duration("12"), None, "a unit is required");
        assert_eq!(go_duration("5d"), None);
        assert_eq!(go_duration(""), None, "no duration is no decision");
        assert_eq!(go_duration(&format!("{}h", "9".repeat(400))), None, "too large: refused, no panic");
    }

    #[test]
    fn bans_of_addresses_and_ranges_are_kept_the_rest_counted() {
        let body = r#"{"new": [
            {"id": 1, "origin": "cscli", "type": "ban", "scope": "Ip", "value": "198.51.100.7", "duration": "1m59.9s", "scenario": "manual"},
            {"id": 2, "origin": "cscli", "type": "ban", "scope": "Range", "value": "203.0.113.0/24", "duration": "4h", "scenario": "x"},
            {"id": 3, "origin": "cscli", "type": "ban", "scope": "Ip", "value": "2001:db8::5", "duration": "10s", "scenario": "x"},
            {"id": 4, "origin": "cscli", "type": "captcha", "scope": "Ip", "value": "198.51.100.8", "duration": "1h", "scenario": "x"},
            {"id": 5, "origin": "CAPI", "type": "ban", "scope": "Country", "value": "FR", "duration": "1h", "scenario": "x"},
            {"id": 6, "origin": "cscli", "type": "ban", "scope": "Ip", "value": "not-an-ip", "duration": "1h", "scenario": "x"},
            {"id": 7, "origin": "cscli", "type": "ban", "scope": "Ip", "value": "198.51.100.9", "duration": "1h", "scenario": "x", "simulated": true},
            {"id": 8, "origin": "cscli", "type": "ban", "scope": "Ip", "value": "::ffff:198.51.100.10", "duration": "1h", "scenario": "x"}
        ], "deleted": null}"#;
        let d = parse(body).unwrap();
        let nets: Vec<String> = d.new.iter().map(|d| d.net.to_string()).collect();
        assert_eq!(nets, ["198.51.100.7/32", "203.0.113.0/24", "2001:db8::5/128", "198.51.100.10/32"], "mapped: IPv4");
        assert_eq!(d.new[0].remaining, Duration::from_millis(119_900));
        assert_eq!((d.deleted.len(), d.ignored), (0, 4));
        let gone = parse(r#"{"new": null, "deleted": [{"id": 1, "type": "ban", "scope": "Ip", "value": "198.51.100.7", "duration": "-2s"}]}"#)
            .unwrap();
        assert_eq!((gone.new.len(), gone.deleted[0].remaining), (0, Duration::ZERO));
        assert_eq!(parse(r#"{"new": null, "deleted": null}"#).unwrap(), Delta::default());
        assert!(parse("<html>").is_err());
    }
}
