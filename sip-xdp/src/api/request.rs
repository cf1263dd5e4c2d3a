//! Requests to the control API, read: the route, then the JSON body into
//! exactly the fields each route takes. Everything wrong with a request is
//! found here, before the daemon is asked anything, so a refused request
//! changes nothing.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::{json, Value};
use sip_xdp_common::{accounting::AuthOutcome, bans::BanReason};

use crate::rules::{canonical, parse_cidr};

pub use crate::reports::MAX_BAN_SECS;
/// The largest body read; a ban request is well under 200 bytes.
pub const MAX_BODY: usize = 16 * 1024;

/// The reasons a ban through the API may give. The others are sip-xdp's
/// own: `crowdsec` marks the bans the CrowdSec bouncer may lift, and the
/// kernel's reasons (`auth_failures`, ...) say what the kernel saw.
pub const API_REASONS: &[BanReason] = &[BanReason::Api, BanReason::TlsAuth, BanReason::Fail2ban, BanReason::Manual];

/// What a request asks of the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Ban {
        net: IpNet,
        duration_secs: u64,
        reason: BanReason,
    },
    Unban(IpNet),
    ListBans,
    Stats,
    /// A failure or a success the SIP server saw for this source.
    Auth(IpAddr, AuthOutcome),
}

/// A JSON answer: the status and the document.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    pub fn ok(status: u16, body: Value) -> Reply {
        Reply { status, body }
    }

    /// An error: `{"error": <code>, "reason": <why, for a person>}`.
    pub fn error(status: u16, code: &str, reason: impl std::fmt::Display) -> Reply {
        Reply { status, body: json!({"error": code, "reason": reason.to_string()}) }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BanBody {
    source: String,
    duration_secs: u64,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceBody {
    source: String,
}

/// A request's path, without its query string (which is ignored).
pub fn path_of(url: &str) -> &str {
    url.split('?').next().unwrap_or("")
}

/// The documented route `path` falls under, if any: its name (as the
/// OpenAPI document and the metric label give it, never made from input)
/// and the methods it takes.
pub fn route(path: &str) -> Option<(&'static str, &'static str)> {
    match path {
        "/v1/bans" => Some(("/v1/bans", "GET, POST")),
        "/v1/stats" => Some(("/v1/stats", "GET")),
        "/v1/auth-failures" => Some(("/v1/auth-failures", "POST")),
        "/v1/auth-successes" => Some(("/v1/auth-successes", "POST")),
        p if p.starts_with("/v1/bans/") => Some(("/v1/bans/{cidr}", "DELETE")),
        _ => None,
    }
}

/// Reads a request: its method, its path (a query string is ignored) and
/// its body.
pub fn parse(method: &str, url: &str, body: &[u8]) -> Result<Call, Reply> {
    let path = path_of(url);
    let Some((_, allowed)) = route(path) else {
        return Err(Reply::error(404, "not_found", format!("no such path: {path} (see the API's OpenAPI document)")));
    };
    match (method, path) {
        ("GET", "/v1/bans") => Ok(Call::ListBans),
        ("GET", "/v1/stats") => Ok(Call::Stats),
        ("POST", "/v1/bans") => {
            let b: BanBody = json_body(body)?;
            let net = source(&b.source)?;
            if !(1..=MAX_BAN_SECS).contains(&b.duration_secs) {
                return Err(invalid(format!(
                    "duration_secs must be 1 to {MAX_BAN_SECS} (a year), not {}",
                    b.duration_secs
                )));
            }
            let reason = match b.reason.as_deref() {
                None => BanReason::Api,
                Some(name) => API_REASONS.iter().copied().find(|r| r.name() == name).ok_or_else(|| {
                    let names: Vec<&str> = API_REASONS.iter().map(|r| r.name()).collect();
                    invalid(format!(
                        "reason {name:?} is not one a ban through the API may give; one of: {}",
                        names.join(", ")
                    ))
                })?,
            };
            Ok(Call::Ban { net, duration_secs: b.duration_secs, reason })
        }
        ("POST", "/v1/auth-failures" | "/v1/auth-successes") => {
            let b: SourceBody = json_body(body)?;
            let addr = b.source.trim().parse::<IpAddr>().map_err(|_| {
                invalid(format!("source {:?} is not an IP address (a report names the one address it saw)", b.source))
            })?;
            let outcome = if path == "/v1/auth-failures" { AuthOutcome::Failure } else { AuthOutcome::Success };
            Ok(Call::Auth(addr, outcome))
        }
        ("DELETE", p) => {
            let cidr = percent_decode(&p["/v1/bans/".len()..])
                .ok_or_else(|| invalid("the path's CIDR has a malformed %-escape"))?;
            Ok(Call::Unban(source(&cidr)?))
        }
        _ => Err(Reply::error(405, "method_not_allowed", format!("{path} takes {allowed}, not {method}"))),
    }
}

fn invalid(reason: impl std::fmt::Display) -> Reply {
    Reply::error(422, "invalid", reason)
}

/// The body as `T`: malformed JSON, a wrong type, a missing or an unknown
/// field is a 400 that says which.
fn json_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Reply> {
    serde_json::from_slice(body)
        .map_err(|e| Reply::error(400, "malformed", format!("the body is not what this path takes: {e}")))
}

/// An address or a prefix, as `ban add` takes it; an IPv4-mapped IPv6
/// one as the IPv4 address or prefix it is (what the kernel keys on).
fn source(text: &str) -> Result<IpNet, Reply> {
    parse_cidr(text).map(canonical).map_err(|e| invalid(e.0))
}

/// `%2F` and the like, as clients escape the `/` of a CIDR in a path.
fn percent_decode(text: &str) -> Option<String> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(r: Result<Call, Reply>) -> (u16, String) {
        let e = r.unwrap_err();
        (e.status, e.body["error"].as_str().unwrap().to_string())
    }

    #[test]
    fn routes_read_their_bodies() {
        let ban = br#"{"source": "198.51.100.7", "duration_secs": 600, "reason": "tls_auth_failures"}"#;
        assert_eq!(
            parse("POST", "/v1/bans", ban),
            Ok(Call::Ban { net: "198.51.100.7/32".parse().unwrap(), duration_secs: 600, reason: BanReason::TlsAuth })
        );
        let prefix = br#"{"source": "2001:db8:1::/48", "duration_secs": 60}"#;
        assert_eq!(
            parse("POST", "/v1/bans", prefix),
            Ok(Call::Ban { net: "2001:db8:1::/48".parse().unwrap(), duration_secs: 60, reason: BanReason::Api })
        );
        assert_eq!(
            parse("DELETE", "/v1/bans/198.51.100.0%2F24", b""),
            Ok(Call::Unban("198.51.100.0/24".parse().unwrap()))
        );
        assert_eq!(
            parse("DELETE", "/v1/bans/198.51.100.0/24", b""),
            Ok(Call::Unban("198.51.100.0/24".parse().unwrap()))
        );
        assert_eq!(
            parse("DELETE", "/v1/bans/::ffff:198.51.100.7", b""),
            Ok(Call::Unban("198.51.100.7/32".parse().unwrap()))
        );
        assert_eq!(parse("GET", "/v1/bans?x=1", b""), Ok(Call::ListBans));
        assert_eq!(parse("GET", "/v1/stats", b""), Ok(Call::Stats));
        assert_eq!(
            parse("POST", "/v1/auth-failures", br#"{"source":"198.51.100.7"}"#),
            Ok(Call::Auth("198.51.100.7".parse().unwrap(), AuthOutcome::Failure))
        );
        assert_eq!(
            parse("POST", "/v1/auth-successes", br#"{"source":"2001:db8::5"}"#),
            Ok(Call::Auth("2001:db8::5".parse().unwrap(), AuthOutcome::Success))
        );
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        assert_eq!(status(parse("POST", "/v1/bans", b"{not json")), (400, "malformed".into()));
        assert_eq!(
            status(parse("POST", "/v1/bans", br#"{"source": 7, "duration_secs": 1}"#)),
            (400, "malformed".into())
        );
        assert_eq!(status(parse("POST", "/v1/bans", br#"{"source": "192.0.2.1"}"#)), (400, "malformed".into()));
        let extra = br#"{"source": "192.0.2.1", "duration_secs": 5, "until": 9}"#;
        assert_eq!(status(parse("POST", "/v1/bans", extra)), (400, "malformed".into()));
        let negative = br#"{"source": "192.0.2.1", "duration_secs": -5}"#;
        assert_eq!(status(parse("POST", "/v1/bans", negative)), (400, "malformed".into()));
        let zero = br#"{"source": "192.0.2.1", "duration_secs": 0}"#;
        assert_eq!(status(parse("POST", "/v1/bans", zero)), (422, "invalid".into()));
        let host_bits = br#"{"source": "192.0.2.1/24", "duration_secs": 5}"#;
        assert_eq!(status(parse("POST", "/v1/bans", host_bits)), (422, "invalid".into()));
        let reason = br#"{"source": "192.0.2.1", "duration_secs": 5, "reason": "because"}"#;
        let e = parse("POST", "/v1/bans", reason).unwrap_err();
        assert!(e.body["reason"].as_str().unwrap().contains("tls_auth_failures"), "names the reasons: {e:?}");
        let owned = br#"{"source": "192.0.2.1", "duration_secs": 5, "reason": "crowdsec"}"#;
        assert_eq!(status(parse("POST", "/v1/bans", owned)), (422, "invalid".into()), "the bouncer's own");
        let prefix = br#"{"source": "192.0.2.0/24"}"#;
        assert_eq!(status(parse("POST", "/v1/auth-failures", prefix)), (422, "invalid".into()));
        assert_eq!(status(parse("DELETE", "/v1/bans/192.0.2.0%2", b"")), (422, "invalid".into()));
        assert_eq!(status(parse("PUT", "/v1/bans", b"")), (405, "method_not_allowed".into()));
        assert_eq!(status(parse("GET", "/v1/auth-failures", b"")), (405, "method_not_allowed".into()));
        assert_eq!(status(parse("GET", "/v2/bans", b"")), (404, "not_found".into()));
    }
}
