//! What the fleet writes to Redis, and how what it reads is judged. Pure
//! functions, so every malformed shape is tested without a server.
//!
//! One key per ban, `sip-xdp:ban:<cidr>`, whose value is a small JSON
//! document and whose Redis TTL is the time the ban has left: the keys are
//! the truth. Changes are announced on the channel `sip-xdp:bans` for speed.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sip_xdp_common::bans::BanReason;

use crate::config::valid_node;

pub const KEY_PREFIX: &str = "sip-xdp:ban:";
pub const CHANNEL: &str = "sip-xdp:bans";
/// The longest fleet ban accepted: a year (a longer one is a mistake).
pub const MAX_DURATION_MS: u64 = 366 * 86_400 * 1000;

sip_xdp_common::closed_set! {
    /// Why something read from the store was not applied; the name is the
    /// `kind` label of `sipxdp_fleet_messages_malformed_total`.
    pub enum Malformed {
        NotJson = 1 => "not_json",
        UnknownField = 2 => "unknown_field",
        /// Missing or mistyped fields.
        BadFields = 3 => "bad_fields",
        BadOp = 4 => "bad_op",
        BadCidr = 5 => "bad_cidr",
        BadDuration = 6 => "bad_duration",
        BadReason = 7 => "bad_reason",
        BadOrigin = 8 => "bad_origin",
    }
}

/// A ban as the fleet shares it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetBan {
    pub net: IpNet,
    pub reason: BanReason,
    pub origin: String,
    /// What the ban had left when published (or when its key was read).
    pub remaining_ms: u64,
}

/// A change read from the channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Ban(FleetBan),
    Unban { net: IpNet, origin: String },
}

/// A channel message with the publisher's clock, for the delay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announcement {
    pub change: Change,
    pub published_at_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMessage {
    op: String,
    cidr: String,
    origin: String,
    reason: Option<String>,
    duration_ms: Option<u64>,
    published_at_ms: Option<u64>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawValue {
    origin: String,
    reason: Option<String>,
    banned_at_ms: Option<u64>,
}

pub fn key_of(net: &IpNet) -> String {
    format!("{KEY_PREFIX}{net}")
}

/// A key's value: who banned, why, when.
pub fn value(reason: BanReason, origin: &str, banned_at_ms: u64) -> String {
    json!({"reason": reason.name(), "origin": origin, "banned_at_ms": banned_at_ms}).to_string()
}

pub fn ban_message(ban: &FleetBan, published_at_ms: u64) -> String {
    json!({"op": "ban", "cidr": ban.net.to_string(), "reason": ban.reason.name(), "origin": ban.origin,
           "duration_ms": ban.remaining_ms, "published_at_ms": published_at_ms})
    .to_string()
}

pub fn unban_message(net: &IpNet, origin: &str, published_at_ms: u64) -> String {
    json!({"op": "unban", "cidr": net.to_string(), "origin": origin, "published_at_ms": published_at_ms}).to_string()
}

fn json_error(e: &serde_json::Error) -> Malformed {
    if e.is_data() {
        if e.to_string().starts_with("unknown field") {
            Malformed::UnknownField
        } else {
            Malformed::BadFields
        }
    } else {
        Malformed::NotJson
    }
}

/// A CIDR in its canonical form: a prefix with host bits set is a typo
/// or worse, never silently widened. A bare address is a host prefix.
pub fn parse_cidr(text: &str) -> Result<IpNet, Malformed> {
    let net = match text.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => text.parse::<std::net::IpAddr>().map(IpNet::from).map_err(|_| Malformed::BadCidr)?,
    };
    if net.trunc() != net {
        return Err(Malformed::BadCidr);
    }
    Ok(net)
}

fn parse_reason(reason: Option<&str>) -> Result<BanReason, Malformed> {
    match reason {
        None => Ok(BanReason::Manual),
        Some(name) => BanReason::from_name(name).ok_or(Malformed::BadReason),
    }
}

fn parse_duration(ms: Option<u64>) -> Result<u64, Malformed> {
    match ms {
        Some(ms) if (1..=MAX_DURATION_MS).contains(&ms) => Ok(ms),
        _ => Err(Malformed::BadDuration),
    }
}

fn parse_origin(origin: String) -> Result<String, Malformed> {
    if valid_node(&origin) {
        Ok(origin)
    } else {
        Err(Malformed::BadOrigin)
    }
}

/// Judges a channel message.
pub fn parse_message(payload: &[u8]) -> Result<Announcement, Malformed> {
    let raw: RawMessage = serde_json::from_slice(payload).map_err(|e| json_error(&e))?;
    let net = parse_cidr(&raw.cidr)?;
    let origin = parse_origin(raw.origin)?;
    let change = match raw.op.as_str() {
        "ban" => Change::Ban(FleetBan {
            net,
            reason: parse_reason(raw.reason.as_deref())?,
            origin,
            remaining_ms: parse_duration(raw.duration_ms)?,
        }),
        "unban" => Change::Unban { net, origin },
        _ => return Err(Malformed::BadOp),
    };
    Ok(Announcement { change, published_at_ms: raw.published_at_ms })
}

/// Judges a key read back with its value and its PTTL (-1: none, which a
/// fleet ban must have; -2: gone since the scan).
pub fn parse_key(key: &str, value: Option<&[u8]>, pttl_ms: i64) -> Result<Option<FleetBan>, Malformed> {
    let Some(value) = value else { return Ok(None) };
    if pttl_ms == -2 {
        return Ok(None);
    }
    let net = parse_cidr(key.strip_prefix(KEY_PREFIX).ok_or(Malformed::BadCidr)?)?;
    let raw: RawValue = serde_json::from_slice(value).map_err(|e| json_error(&e))?;
    let remaining_ms = parse_duration(u64::try_from(pttl_ms).ok())?;
    Ok(Some(FleetBan {
        net,
        reason: parse_reason(raw.reason.as_deref())?,
        origin: parse_origin(raw.origin)?,
        remaining_ms,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn what_is_published_reads_back() {
        let ban = FleetBan {
            net: net("198.18.2.2/32"),
            reason: BanReason::Auth,
            origin: "edge-a".into(),
            remaining_ms: 600_000,
        };
        let read = parse_message(ban_message(&ban, 1_700_000_000_000).as_bytes()).unwrap();
        assert_eq!(read, Announcement { change: Change::Ban(ban.clone()), published_at_ms: Some(1_700_000_000_000) });
        let read = parse_message(unban_message(&ban.net, "edge-c", 5).as_bytes()).unwrap();
        assert_eq!(read.change, Change::Unban { net: ban.net, origin: "edge-c".into() });
        let v = value(BanReason::Auth, "edge-a", 7);
        let key = key_of(&ban.net);
        assert_eq!(key, "sip-xdp:ban:198.18.2.2/32");
        assert_eq!(parse_key(&key, Some(v.as_bytes()), 600_000).unwrap(), Some(ban));
    }

    #[test]
    fn what_a_script_writes_is_read() {
        // The README's redis-cli example: reason and timestamps optional.
        let v = br#"{"origin":"ops"}"#;
        let b = parse_key("sip-xdp:ban:2001:2:0:9::/64", Some(v), 30_000).unwrap().unwrap();
        assert_eq!((b.net, b.reason, b.remaining_ms), (net("2001:2:0:9::/64"), BanReason::Manual, 30_000));
        let m = parse_message(br#"{"op":"ban","cidr":"198.18.9.9","origin":"ops","duration_ms":1000}"#).unwrap();
        assert_eq!(
            m.change,
            Change::Ban(FleetBan {
                net: net("198.18.9.9/32"),
                reason: BanReason::Manual,
                origin: "ops".into(),
                remaining_ms: 1000
            })
        );
    }

    #[test]
    fn malformed_input_is_named_never_applied() {
        let kind = |m: &str| parse_message(m.as_bytes()).unwrap_err();
        assert_eq!(kind("not json"), Malformed::NotJson);
        assert_eq!(kind("{\"op\":\"ban\""), Malformed::NotJson);
        assert_eq!(
            kind(r#"{"op":"ban","cidr":"198.18.0.1","origin":"a","duration_ms":5,"x":1}"#),
            Malformed::UnknownField
        );
        assert_eq!(kind(r#"{"op":"ban","cidr":"198.18.0.1"}"#), Malformed::BadFields);
        assert_eq!(kind(r#"{"op":"ban","cidr":7,"origin":"a"}"#), Malformed::BadFields);
        assert_eq!(kind(r#"{"op":"nuke","cidr":"198.18.0.1","origin":"a"}"#), Malformed::BadOp);
        assert_eq!(kind(r#"{"op":"ban","cidr":"198.18.0.1/33","origin":"a","duration_ms":5}"#), Malformed::BadCidr);
        assert_eq!(kind(r#"{"op":"ban","cidr":"198.18.0.1/24","origin":"a","duration_ms":5}"#), Malformed::BadCidr);
        assert_eq!(kind(r#"{"op":"unban","cidr":"edge","origin":"a"}"#), Malformed::BadCidr);
        assert_eq!(kind(r#"{"op":"ban","cidr":"198.18.0.1","origin":"a"}"#), Malformed::BadDuration);
        assert_eq!(kind(r#"{"op":"ban","cidr":"198.18.0.1","origin":"a","duration_ms":0}"#), Malformed::BadDuration);
        let year = format!(r#"{{"op":"ban","cidr":"198.18.0.1","origin":"a","duration_ms":{}}}"#, MAX_DURATION_MS + 1);
        assert_eq!(kind(&year), Malformed::BadDuration);
        assert_eq!(kind(r#"{"op":"ban","cidr":"198.18.0.1","origin":"a","duration_ms":-5}"#), Malformed::BadFields);
        assert_eq!(
            kind(r#"{"op":"ban","cidr":"198.18.0.1","origin":"a","duration_ms":5,"reason":"x"}"#),
            Malformed::BadReason
        );
        assert_eq!(kind(r#"{"op":"ban","cidr":"198.18.0.1","origin":"a b","duration_ms":5}"#), Malformed::BadOrigin);
        assert_eq!(
            parse_key("sip-xdp:ban:198.18.0.1/32", Some(b"{\"origin\":\"a\"}"), -1),
            Err(Malformed::BadDuration),
            "no TTL: refused"
        );
        assert_eq!(parse_key("sip-xdp:ban:198.18.0.1/32", Some(b"{\"origin\":\"a\"}"), -2), Ok(None), "gone");
        assert_eq!(parse_key("sip-xdp:ban:198.18.0.1/32", None, 5), Ok(None));
        assert_eq!(parse_key("sip-xdp:ban:x", Some(b"{\"origin\":\"a\"}"), 5), Err(Malformed::BadCidr));
    }
}
