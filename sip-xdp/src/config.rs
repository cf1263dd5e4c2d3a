//! The TOML config file: parsing, validation, and error messages that name
//! the file, the line and the key. Nothing here touches the kernel, so a bad
//! file is rejected before anything is attached or changed.

use std::{
    collections::{BTreeMap, BTreeSet},
    ops::Range,
    path::{Path, PathBuf},
};

use ipnet::IpNet;
use serde::Deserialize;
use sip_xdp_common::{
    dialled::{MAX_DIGITS, MAX_INTL_PREFIXES, MAX_INTL_PREFIX_LEN},
    fingerprint::{Fingerprint, DEFAULT_USER_AGENTS, FINGERPRINT_LEN, MAX_FINGERPRINTS},
    maps::{RateProfile, ALLOW_CAPACITY, DEFAULT_SOURCES_CAPACITY, DEST_RULES_CAPACITY, MAX_PORTS, MAX_PROFILES},
};
use toml::Spanned;

use crate::{
    allowlist::{parse_cidr, parse_list, Class, Rules},
    error::user_error,
};

/// Highest accepted rate, per second: beyond it a limit limits nothing.
pub const MAX_RATE: i64 = 1_000_000;

/// Bounds for `sources_table_size`: below this the table churns on any
/// busy server; above it the LRU map costs more memory than it is worth.
pub const MIN_SOURCES_TABLE: u32 = 1024;
pub const MAX_SOURCES_TABLE: u32 = 16 * 1024 * 1024;
/// Linux interface names are at most 15 bytes.
const IFNAMSIZ: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DefaultAction {
    Drop,
    Pass,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Enforce,
    Monitor,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventFormat {
    Text,
    Json,
}

/// A `[profile.NAME]` table: token-bucket rates for a `limited` class, in
/// the kernel's form (INVITE rates default to the request rates).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    pub rates: RateProfile,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BanConfig {
    pub after_excess: u32,
    pub window_secs: u64,
    pub duration_secs: u64,
    pub max_duration_secs: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthFailures {
    pub max: u32,
    pub window_secs: u64,
}

/// `[anomaly]`: the spend-anomaly detector.
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

/// `[destinations]`: the policy on numbers dialled in INVITEs.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Destinations {
    pub international_prefixes: Vec<String>,
    /// Digit prefixes (E.164, country code first) whose INVITEs are dropped.
    pub block: Vec<String>,
    /// If not empty: international numbers outside these are dropped.
    pub allow_only: Vec<String>,
    /// Classes the policy applies to.
    pub applies_to: Vec<Class>,
    /// Estimated cost of a call, by prefix, in the operator's currency.
    pub cost: BTreeMap<String, f64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsConfig {
    pub listen: std::net::SocketAddr,
    /// Busiest sources exported with their own series.
    pub top_sources: usize,
    /// Switch on the kernel's per-program run-time statistics.
    pub program_stats: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Events {
    pub format: EventFormat,
    /// POSTed a JSON document per event.
    pub webhook: Option<String>,
}

/// A validated config.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub path: PathBuf,
    pub interfaces: Vec<String>,
    pub ports: Vec<u16>,
    pub default_action: DefaultAction,
    /// Class of sources that match no rule: `Deny` or `Limited`.
    pub default_class: Class,
    pub mode: Mode,
    pub sources_table_size: u32,
    /// Every prefix with its class (`[allow]` entries are `trusted`).
    pub rules: Rules,
    /// Indexed by the profile number stored in the kernel rules.
    pub profiles: Vec<Profile>,
    pub ban: BanConfig,
    pub auth_failures: AuthFailures,
    pub events: Events,
    pub metrics: MetricsConfig,
    pub destinations: Destinations,
    /// Scanner fingerprints: User-Agent substrings of attack tools.
    pub user_agents: Vec<String>,
    pub anomaly: Anomaly,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    interfaces: Vec<Spanned<String>>,
    #[serde(default)]
    filter: RawFilter,
    #[serde(default)]
    allow: RawAllow,
    #[serde(default)]
    rule: Vec<RawRule>,
    #[serde(default)]
    profile: BTreeMap<String, Spanned<RawProfile>>,
    #[serde(default)]
    ban: RawBan,
    #[serde(default)]
    auth_failures: RawAuth,
    #[serde(default)]
    events: RawEvents,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    destinations: RawDestinations,
    #[serde(default)]
    fingerprints: RawFingerprints,
    #[serde(default)]
    anomaly: RawAnomaly,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFingerprints {
    user_agents: Spanned<Vec<Spanned<String>>>,
}

impl Default for RawFingerprints {
    fn default() -> Self {
        let defaults = DEFAULT_USER_AGENTS.iter().map(|s| Spanned::new(0..0, s.to_string())).collect();
        RawFingerprints { user_agents: Spanned::new(0..0, defaults) }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDestinations {
    #[serde(default)]
    international_prefixes: Vec<Spanned<String>>,
    #[serde(default)]
    block: Vec<Spanned<String>>,
    #[serde(default)]
    allow_only: Vec<Spanned<String>>,
    #[serde(default)]
    applies_to: Vec<Spanned<String>>,
    #[serde(default)]
    cost: BTreeMap<String, Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawAnomaly {
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
            window_secs: Spanned::new(0..0, 3600),
            baseline_weight: Spanned::new(0..0, 0.2),
            calls_over: Spanned::new(0..0, 50),
            cost_over: None,
            block_secs: Spanned::new(0..0, 3600),
            check_secs: Spanned::new(0..0, 60),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawMetrics {
    listen: Spanned<String>,
    top_sources: Spanned<i64>,
    program_stats: bool,
}

impl Default for RawMetrics {
    fn default() -> Self {
        RawMetrics {
            listen: Spanned::new(0..0, "127.0.0.1:9560".into()),
            top_sources: Spanned::new(0..0, 20),
            program_stats: false,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    cidrs: Vec<Spanned<String>>,
    #[serde(default)]
    files: Vec<Spanned<String>>,
    class: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    register_per_sec: Spanned<i64>,
    register_burst: Spanned<i64>,
    requests_per_sec: Spanned<i64>,
    requests_burst: Spanned<i64>,
    #[serde(default)]
    invite_per_sec: Option<Spanned<i64>>,
    #[serde(default)]
    invite_burst: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawBan {
    after_excess: Spanned<i64>,
    window_secs: Spanned<i64>,
    duration_secs: Spanned<i64>,
    max_duration_secs: Spanned<i64>,
}

impl Default for RawBan {
    fn default() -> Self {
        RawBan {
            after_excess: Spanned::new(0..0, 50),
            window_secs: Spanned::new(0..0, 10),
            duration_secs: Spanned::new(0..0, 600),
            max_duration_secs: Spanned::new(0..0, 86_400),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawAuth {
    max: Spanned<i64>,
    window_secs: Spanned<i64>,
}

impl Default for RawAuth {
    fn default() -> Self {
        RawAuth { max: Spanned::new(0..0, 5), window_secs: Spanned::new(0..0, 60) }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvents {
    #[serde(default = "default_event_format")]
    format: EventFormat,
    #[serde(default)]
    webhook: Option<Spanned<String>>,
}

impl Default for RawEvents {
    fn default() -> Self {
        RawEvents { format: default_event_format(), webhook: None }
    }
}

fn default_event_format() -> EventFormat {
    EventFormat::Text
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFilter {
    #[serde(default = "default_ports")]
    ports: Spanned<Vec<Spanned<i64>>>,
    #[serde(default)]
    default_action: Option<Spanned<DefaultAction>>,
    #[serde(default)]
    default_class: Option<Spanned<String>>,
    #[serde(default = "default_mode")]
    mode: Mode,
    #[serde(default = "default_sources_table_size")]
    sources_table_size: Spanned<i64>,
}

impl Default for RawFilter {
    fn default() -> Self {
        RawFilter {
            ports: default_ports(),
            default_action: None,
            default_class: None,
            mode: default_mode(),
            sources_table_size: default_sources_table_size(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAllow {
    #[serde(default)]
    cidrs: Vec<Spanned<String>>,
    #[serde(default)]
    files: Vec<Spanned<String>>,
}

fn default_ports() -> Spanned<Vec<Spanned<i64>>> {
    Spanned::new(0..0, vec![Spanned::new(0..0, 5060), Spanned::new(0..0, 5061)])
}
fn default_mode() -> Mode {
    Mode::Enforce
}
fn default_sources_table_size() -> Spanned<i64> {
    Spanned::new(0..0, DEFAULT_SOURCES_CAPACITY as i64)
}

impl Config {
    /// Reads and validates `path`. Every error is a [`UserError`] naming
    /// the file, line and key.
    ///
    /// [`UserError`]: crate::error::UserError
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| user_error(format!("{}: cannot read config: {e}", path.display())))?;
        Config::parse(path, &text)
    }

    /// Validates config `text` as if read from `path` (which also anchors
    /// relative allowlist file names).
    pub fn parse(path: &Path, text: &str) -> anyhow::Result<Config> {
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| user_error(format!("{}: {}", path.display(), e.to_string().trim_end())))?;
        let at = |span: Range<usize>, key: &str, msg: String| {
            let (line, col) = line_col(text, span.start);
            if span.is_empty() && span.start == 0 {
                user_error(format!("{}: key `{key}`: {msg}", path.display()))
            } else {
                user_error(format!("{}:{line}:{col}: key `{key}`: {msg}", path.display()))
            }
        };

        let mut interfaces = Vec::new();
        for name in &raw.interfaces {
            let n = name.get_ref();
            if n.is_empty() || n.len() >= IFNAMSIZ || n.contains(['/', ' ', '\0']) {
                return Err(at(name.span(), "interfaces", format!("{n:?} is not a valid interface name")));
            }
            if interfaces.contains(n) {
                return Err(at(name.span(), "interfaces", format!("{n:?} is listed twice")));
            }
            interfaces.push(n.clone());
        }

        let filter = &raw.filter;
        if filter.ports.get_ref().is_empty() {
            return Err(at(filter.ports.span(), "filter.ports", "needs at least one port".into()));
        }
        if filter.ports.get_ref().len() > MAX_PORTS {
            return Err(at(
                filter.ports.span(),
                "filter.ports",
                format!("{} ports given; at most {MAX_PORTS} are supported", filter.ports.get_ref().len()),
            ));
        }
        let mut ports = Vec::new();
        for port in filter.ports.get_ref() {
            let p = *port.get_ref();
            let p = u16::try_from(p)
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| at(port.span(), "filter.ports", format!("{p} is not a port (1-65535)")))?;
            if ports.contains(&p) {
                return Err(at(port.span(), "filter.ports", format!("port {p} is listed twice")));
            }
            ports.push(p);
        }

        let size = *filter.sources_table_size.get_ref();
        let sources_table_size = u32::try_from(size)
            .ok()
            .filter(|s| (MIN_SOURCES_TABLE..=MAX_SOURCES_TABLE).contains(s))
            .ok_or_else(|| {
                at(
                    filter.sources_table_size.span(),
                    "filter.sources_table_size",
                    format!("{size} is out of range ({MIN_SOURCES_TABLE}-{MAX_SOURCES_TABLE})"),
                )
            })?;

        // Profiles first: rules and the default class refer to them by name.
        if raw.profile.len() > MAX_PROFILES as usize {
            return Err(user_error(format!(
                "{}: {} profiles defined; at most {MAX_PROFILES} are supported",
                path.display(),
                raw.profile.len()
            )));
        }
        let mut profiles = Vec::new();
        for (name, p) in &raw.profile {
            let key = |field: &str| format!("profile.{name}.{field}");
            let rate = |v: &Spanned<i64>, field: &str| -> anyhow::Result<u32> {
                let n = *v.get_ref();
                if !(1..=MAX_RATE).contains(&n) {
                    return Err(at(v.span(), &key(field), format!("{n} is out of range (1-{MAX_RATE})")));
                }
                Ok(n as u32)
            };
            let p = p.get_ref();
            let requests_per_sec = rate(&p.requests_per_sec, "requests_per_sec")?;
            let requests_burst = rate(&p.requests_burst, "requests_burst")?;
            profiles.push(Profile {
                name: name.clone(),
                rates: RateProfile {
                    register_per_sec: rate(&p.register_per_sec, "register_per_sec")?,
                    register_burst: rate(&p.register_burst, "register_burst")?,
                    requests_per_sec,
                    requests_burst,
                    invite_per_sec: p.invite_per_sec.as_ref().map_or(Ok(requests_per_sec), |v| rate(v, "invite_per_sec"))?,
                    invite_burst: p.invite_burst.as_ref().map_or(Ok(requests_burst), |v| rate(v, "invite_burst"))?,
                },
            });
        }
        let class_named = |name: &Spanned<String>, key: &str| -> anyhow::Result<Class> {
            match name.get_ref().as_str() {
                "trusted" => Ok(Class::Trusted),
                "deny" => Ok(Class::Deny),
                other => profiles
                    .iter()
                    .position(|p| p.name == other)
                    .map(|i| Class::Limited(i as u8))
                    .ok_or_else(|| {
                        at(
                            name.span(),
                            key,
                            format!("unknown class {other:?}: use \"trusted\", \"deny\" or a profile defined as [profile.NAME]"),
                        )
                    }),
            }
        };

        let default_class = match &filter.default_class {
            None => Class::Deny,
            Some(name) => match class_named(name, "filter.default_class")? {
                Class::Trusted => {
                    return Err(at(
                        name.span(),
                        "filter.default_class",
                        "\"trusted\" for everyone would switch the filter off; use \"deny\" or a profile".into(),
                    ))
                }
                class => class,
            },
        };
        let default_action = match &filter.default_action {
            None => DefaultAction::Drop,
            Some(a) if *a.get_ref() == DefaultAction::Pass && matches!(default_class, Class::Limited(_)) => {
                return Err(at(
                    a.span(),
                    "filter.default_action",
                    "\"pass\" contradicts a limited default_class; set one of the two".into(),
                ))
            }
            Some(a) => *a.get_ref(),
        };

        let base = path.parent().unwrap_or(Path::new("."));
        let mut rules = Rules::default();
        let mut add = |net: IpNet, class: Class, span: Range<usize>, key: &str, source: Option<&Path>| -> anyhow::Result<()> {
            if let Some(previous) = rules.insert(net, class) {
                if previous != class {
                    let msg = format!("{net} is given two classes ({} and {})", class_label(previous, &profiles), class_label(class, &profiles));
                    return Err(match source {
                        Some(file) => user_error(format!("{}: {msg}", file.display())),
                        None => at(span, key, msg),
                    });
                }
            }
            Ok(())
        };
        let mut seen_files = BTreeSet::new();
        let mut read_file = |file: &Spanned<String>, key: &str| -> anyhow::Result<Option<(PathBuf, Vec<IpNet>)>> {
            let file_path = base.join(file.get_ref());
            if !seen_files.insert(file_path.clone()) {
                return Ok(None);
            }
            let list = std::fs::read_to_string(&file_path)
                .map_err(|e| at(file.span(), key, format!("cannot read {}: {e}", file_path.display())))?;
            let nets = parse_list(&list)
                .map_err(|(line, e)| user_error(format!("{}:{line}: {e}", file_path.display())))?;
            Ok(Some((file_path, nets)))
        };
        let groups = std::iter::once((&raw.allow.cidrs, &raw.allow.files, None))
            .chain(raw.rule.iter().map(|r| (&r.cidrs, &r.files, Some(&r.class))));
        for (cidrs, files, class) in groups {
            let (class, key) = match class {
                None => (Class::Trusted, "allow"),
                Some(name) => (class_named(name, "rule.class")?, "rule"),
            };
            for cidr in cidrs {
                let net = parse_cidr(cidr.get_ref()).map_err(|e| at(cidr.span(), &format!("{key}.cidrs"), e.0))?;
                add(net, class, cidr.span(), &format!("{key}.cidrs"), None)?;
            }
            for file in files {
                if let Some((file_path, nets)) = read_file(file, &format!("{key}.files"))? {
                    for net in nets {
                        add(net, class, file.span(), "", Some(&file_path))?;
                    }
                }
            }
        }
        for (family, count) in [("IPv4", rules.count_v4()), ("IPv6", rules.count_v6())] {
            if count > ALLOW_CAPACITY as usize {
                return Err(user_error(format!(
                    "{}: the rules hold {count} {family} prefixes; the kernel table holds {ALLOW_CAPACITY}",
                    path.display()
                )));
            }
        }

        let positive = |v: &Spanned<i64>, key: &str, max: i64| -> anyhow::Result<u64> {
            let n = *v.get_ref();
            if !(1..=max).contains(&n) {
                return Err(at(v.span(), key, format!("{n} is out of range (1-{max})")));
            }
            Ok(n as u64)
        };
        const YEAR: i64 = 366 * 86_400;
        let ban = BanConfig {
            after_excess: positive(&raw.ban.after_excess, "ban.after_excess", 1_000_000)? as u32,
            window_secs: positive(&raw.ban.window_secs, "ban.window_secs", YEAR)?,
            duration_secs: positive(&raw.ban.duration_secs, "ban.duration_secs", YEAR)?,
            max_duration_secs: positive(&raw.ban.max_duration_secs, "ban.max_duration_secs", YEAR)?,
        };
        if ban.max_duration_secs < ban.duration_secs {
            return Err(at(
                raw.ban.max_duration_secs.span(),
                "ban.max_duration_secs",
                format!("{} is shorter than ban.duration_secs ({})", ban.max_duration_secs, ban.duration_secs),
            ));
        }
        let auth_failures = AuthFailures {
            max: positive(&raw.auth_failures.max, "auth_failures.max", 1_000_000)? as u32,
            window_secs: positive(&raw.auth_failures.window_secs, "auth_failures.window_secs", YEAR)?,
        };
        let webhook = match &raw.events.webhook {
            None => None,
            Some(url) => {
                let u = url.get_ref();
                if !(u.starts_with("http://") || u.starts_with("https://")) || u.parse::<ureq::http::Uri>().is_err() {
                    return Err(at(url.span(), "events.webhook", format!("{u:?} is not an http:// or https:// URL")));
                }
                Some(u.clone())
            }
        };

        let listen = raw.metrics.listen.get_ref().parse().map_err(|_| {
            at(
                raw.metrics.listen.span(),
                "metrics.listen",
                format!("{:?} is not an address:port", raw.metrics.listen.get_ref()),
            )
        })?;
        let metrics = MetricsConfig {
            listen,
            top_sources: positive(&raw.metrics.top_sources, "metrics.top_sources", 1000)? as usize,
            program_stats: raw.metrics.program_stats,
        };

        let raw_dest = &raw.destinations;
        let digits = |v: &Spanned<String>, key: &str, max: usize| -> anyhow::Result<String> {
            let d = v.get_ref().trim_start_matches('+');
            if d.is_empty() || d.len() > max || !d.bytes().all(|b| b.is_ascii_digit()) {
                return Err(at(v.span(), key, format!("{:?} is not a prefix of 1 to {max} digits", v.get_ref())));
            }
            Ok(d.to_string())
        };
        if raw_dest.international_prefixes.len() > MAX_INTL_PREFIXES {
            return Err(user_error(format!(
                "{}: key `destinations.international_prefixes`: at most {MAX_INTL_PREFIXES} prefixes",
                path.display()
            )));
        }
        let mut destinations = Destinations::default();
        for p in &raw_dest.international_prefixes {
            destinations.international_prefixes.push(digits(p, "destinations.international_prefixes", MAX_INTL_PREFIX_LEN)?);
        }
        let mut seen = BTreeSet::new();
        for (list, key, out) in [
            (&raw_dest.block, "destinations.block", &mut destinations.block),
            (&raw_dest.allow_only, "destinations.allow_only", &mut destinations.allow_only),
        ] {
            for p in list {
                let d = digits(p, key, MAX_DIGITS)?;
                if !seen.insert(d.clone()) {
                    return Err(at(p.span(), key, format!("prefix {d} is listed twice")));
                }
                out.push(d);
            }
        }
        if destinations.block.len() + destinations.allow_only.len() > DEST_RULES_CAPACITY as usize {
            return Err(user_error(format!("{}: more than {DEST_RULES_CAPACITY} destination prefixes", path.display())));
        }
        for (prefix, cost) in &raw_dest.cost {
            let d = prefix.trim_start_matches('+');
            if d.is_empty() || d.len() > MAX_DIGITS || !d.bytes().all(|b| b.is_ascii_digit()) {
                return Err(at(cost.span(), "destinations.cost", format!("{prefix:?} is not a prefix of 1 to {MAX_DIGITS} digits")));
            }
            let c = *cost.get_ref();
            if !(0.0..=1_000_000.0).contains(&c) {
                return Err(at(cost.span(), "destinations.cost", format!("{c} is not a cost (0-1000000)")));
            }
            destinations.cost.insert(d.to_string(), c);
        }
        for name in &raw_dest.applies_to {
            match class_named(name, "destinations.applies_to")? {
                Class::Deny => {
                    return Err(at(name.span(), "destinations.applies_to", "\"deny\" sources never reach the policy".into()))
                }
                class => destinations.applies_to.push(class),
            }
        }

        let raw_fps = &raw.fingerprints.user_agents;
        if raw_fps.get_ref().len() > MAX_FINGERPRINTS {
            return Err(at(raw_fps.span(), "fingerprints.user_agents", format!("at most {MAX_FINGERPRINTS} fingerprints")));
        }
        let mut user_agents = Vec::new();
        for ua in raw_fps.get_ref() {
            if Fingerprint::new(ua.get_ref()).is_none() {
                return Err(at(
                    ua.span(),
                    "fingerprints.user_agents",
                    format!("{:?} must be 1 to {FINGERPRINT_LEN} ASCII characters", ua.get_ref()),
                ));
            }
            user_agents.push(ua.get_ref().clone());
        }

        let a = &raw.anomaly;
        let weight = *a.baseline_weight.get_ref();
        if !(weight > 0.0 && weight <= 1.0) {
            return Err(at(a.baseline_weight.span(), "anomaly.baseline_weight", format!("{weight} is not in (0, 1]")));
        }
        let cost_over = match &a.cost_over {
            Some(c) if *c.get_ref() <= 0.0 => {
                return Err(at(c.span(), "anomaly.cost_over", format!("{} must be positive", c.get_ref())))
            }
            Some(c) => Some(*c.get_ref()),
            None => None,
        };
        let anomaly = Anomaly {
            window_secs: positive(&a.window_secs, "anomaly.window_secs", YEAR)?,
            baseline_weight: weight,
            calls_over: positive(&a.calls_over, "anomaly.calls_over", 1_000_000)?,
            cost_over,
            block_secs: positive(&a.block_secs, "anomaly.block_secs", YEAR)?,
            check_secs: positive(&a.check_secs, "anomaly.check_secs", 3600)?,
        };

        Ok(Config {
            path: path.to_path_buf(),
            anomaly,
            user_agents,
            destinations,
            metrics,
            interfaces,
            ports,
            default_action,
            default_class,
            mode: filter.mode,
            sources_table_size,
            rules,
            profiles,
            ban,
            auth_failures,
            events: Events { format: raw.events.format, webhook },
        })
    }

    /// The name a class has in the config file.
    pub fn class_name(&self, class: Class) -> String {
        class_label(class, &self.profiles)
    }
}

fn class_label(class: Class, profiles: &[Profile]) -> String {
    match class {
        Class::Trusted => "trusted".into(),
        Class::Deny => "deny".into(),
        Class::Limited(i) => profiles.get(i as usize).map_or_else(|| format!("profile #{i}"), |p| p.name.clone()),
    }
}

/// 1-based line and column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(before.len(), |nl| before.len() - nl - 1) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::exit_status;

    fn parse(text: &str) -> anyhow::Result<Config> {
        Config::parse(Path::new("/etc/sip-xdp/test.toml"), text)
    }

    fn err(text: &str) -> String {
        let e = parse(text).unwrap_err();
        assert_eq!(exit_status(&e), 2, "config errors exit 2");
        e.to_string()
    }

    #[test]
    fn full_example_parses() {
        let c = parse(
            r#"
interfaces = ["eth0", "eth1"]
[filter]
ports = [5060, 5061, 5080]
default_action = "pass"
mode = "monitor"
sources_table_size = 131072
[allow]
cidrs = ["198.51.100.0/24", "2001:db8::/32", "192.0.2.10"]
"#,
        )
        .unwrap();
        assert_eq!(c.interfaces, ["eth0", "eth1"]);
        assert_eq!(c.ports, [5060, 5061, 5080]);
        assert_eq!(c.default_action, DefaultAction::Pass);
        assert_eq!(c.mode, Mode::Monitor);
        assert_eq!(c.sources_table_size, 131072);
        assert_eq!((c.rules.count_v4(), c.rules.count_v6()), (2, 1));
    }

    #[test]
    fn defaults_are_safe() {
        let c = parse("").unwrap();
        assert_eq!(c.ports, [5060, 5061]);
        assert_eq!(c.default_action, DefaultAction::Drop);
        assert_eq!(c.mode, Mode::Enforce);
        assert_eq!(c.sources_table_size, DEFAULT_SOURCES_CAPACITY);
        assert!(c.rules.nets.is_empty() && c.interfaces.is_empty());
        assert_eq!(c.default_class, Class::Deny);
        assert_eq!(c.ban, BanConfig { after_excess: 50, window_secs: 10, duration_secs: 600, max_duration_secs: 86_400 });
        assert_eq!(c.auth_failures, AuthFailures { max: 5, window_secs: 60 });
        assert_eq!(c.events, Events { format: EventFormat::Text, webhook: None });
        assert_eq!(c.metrics.listen.to_string(), "127.0.0.1:9560");
        assert_eq!((c.metrics.top_sources, c.metrics.program_stats), (20, false));
        assert_eq!(c.user_agents.len(), 8);
        assert_eq!(c.user_agents[0], "friendly-scanner");
        assert!(parse("[fingerprints]\nuser_agents = []\n").unwrap().user_agents.is_empty(), "can be switched off");
        let e = err("[fingerprints]\nuser_agents = [\"\"]\n");
        assert!(e.contains("test.toml:2:16: key `fingerprints.user_agents`"), "{e}");
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = err("[allow]\ncidrs = [\"198.51.100.0/24\",\n  \"10.0.0.0/33\"]\n");
        assert!(e.starts_with("/etc/sip-xdp/test.toml:3:3: key `allow.cidrs`: not a CIDR: \"10.0.0.0/33\""), "{e}");
        let e = err("[filter]\nports = [5060, 70000]\n");
        assert!(e.contains("test.toml:2:16: key `filter.ports`: 70000 is not a port"), "{e}");
        let e = err("[filter]\nports = [5060, 5060]\n");
        assert!(e.contains("port 5060 is listed twice"), "{e}");
        let e = err("[filter]\nports = []\n");
        assert!(e.contains("filter.ports`: needs at least one port"), "{e}");
        let e = err(&format!("[filter]\nports = [{}]\n", (1..=17).map(|p| p.to_string()).collect::<Vec<_>>().join(",")));
        assert!(e.contains("17 ports given; at most 16"), "{e}");
        let e = err("[filter]\nsources_table_size = 10\n");
        assert!(e.contains("test.toml:2:22: key `filter.sources_table_size`: 10 is out of range"), "{e}");
        let e = err("interfaces = [\"this-name-is-too-long\"]\n");
        assert!(e.contains("key `interfaces`"), "{e}");
    }

    #[test]
    fn toml_and_schema_errors_carry_the_line() {
        let e = err("[filter]\ndefault_action = \"dorp\"\n");
        assert!(e.contains("test.toml") && e.contains("line 2") && e.contains("dorp"), "{e}");
        let e = err("[filter]\nmode = \"enforcing\"\n");
        assert!(e.contains("line 2") && e.contains("enforcing"), "{e}");
        let e = err("[filtre]\nports = [5060]\n");
        assert!(e.contains("line 1") && e.contains("filtre"), "{e}");
        let e = err("[filter\n");
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn allow_files_are_read_relative_to_the_config() {
        let dir = std::env::temp_dir().join(format!("sip-xdp-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("trunks.txt"), "# carriers\n198.51.100.0/24\n2001:db8:1::/48 # B\n").unwrap();
        std::fs::write(dir.join("bad.txt"), "198.51.100.0/24\nnot-an-ip\n").unwrap();
        let cfg = dir.join("c.toml");
        let c = Config::parse(&cfg, "[allow]\nfiles = [\"trunks.txt\"]\ncidrs = [\"198.51.100.0/24\"]\n").unwrap();
        assert_eq!((c.rules.count_v4(), c.rules.count_v6()), (1, 1));
        let e = Config::parse(&cfg, "[allow]\nfiles = [\"bad.txt\"]\n").unwrap_err().to_string();
        assert!(e.contains("bad.txt:2: not a CIDR: \"not-an-ip\""), "{e}");
        let e = Config::parse(&cfg, "[allow]\nfiles = [\"missing.txt\"]\n").unwrap_err().to_string();
        assert!(e.contains("c.toml:2:10: key `allow.files`: cannot read") && e.contains("missing.txt"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    const CLASSES: &str = r#"
[filter]
default_class = "public"
[[rule]]
cidrs = ["198.51.100.0/24"]
class = "trusted"
[[rule]]
cidrs = ["203.0.113.0/24", "2001:db8:100::/48"]
class = "customers"
[[rule]]
cidrs = ["192.0.2.0/24"]
class = "deny"
[profile.customers]
register_per_sec = 5
register_burst = 20
requests_per_sec = 50
requests_burst = 200
[profile.public]
register_per_sec = 1
register_burst = 5
requests_per_sec = 10
requests_burst = 30
[ban]
after_excess = 50
window_secs = 10
duration_secs = 600
max_duration_secs = 86400
[auth_failures]
max = 5
window_secs = 60
[events]
format = "json"
webhook = "https://hooks.example.net/sip-xdp"
"#;

    #[test]
    fn classes_profiles_bans_and_events_parse() {
        let c = parse(CLASSES).unwrap();
        let names: Vec<&str> = c.profiles.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["customers", "public"], "profiles are indexed by name order");
        assert_eq!(c.default_class, Class::Limited(1));
        let class = |cidr: &str| c.rules.nets[&cidr.parse::<IpNet>().unwrap()];
        assert_eq!(class("198.51.100.0/24"), Class::Trusted);
        assert_eq!(class("203.0.113.0/24"), Class::Limited(0));
        assert_eq!(class("2001:db8:100::/48"), Class::Limited(0));
        assert_eq!(class("192.0.2.0/24"), Class::Deny);
        assert_eq!(c.profiles[0].rates.register_burst, 20);
        assert_eq!((c.profiles[0].rates.invite_per_sec, c.profiles[0].rates.invite_burst), (50, 200), "default: the request rates");
        assert_eq!(c.ban.max_duration_secs, 86_400);
        assert_eq!(c.auth_failures.max, 5);
        assert_eq!(c.events.format, EventFormat::Json);
        assert_eq!(c.events.webhook.as_deref(), Some("https://hooks.example.net/sip-xdp"));
        assert_eq!(c.class_name(Class::Limited(1)), "public");
    }

    #[test]
    fn class_errors_name_the_line() {
        let e = err("[[rule]]\ncidrs = [\"192.0.2.0/24\"]\nclass = \"custmers\"\n");
        assert!(e.contains("test.toml:3:9: key `rule.class`: unknown class \"custmers\""), "{e}");
        let e = err("[filter]\ndefault_class = \"trusted\"\n");
        assert!(e.contains("key `filter.default_class`") && e.contains("switch the filter off"), "{e}");
        let e = err("[filter]\ndefault_class = \"p\"\ndefault_action = \"pass\"\n[profile.p]\nregister_per_sec = 1\nregister_burst = 1\nrequests_per_sec = 1\nrequests_burst = 1\n");
        assert!(e.contains("key `filter.default_action`") && e.contains("contradicts"), "{e}");
        let e = err("[allow]\ncidrs = [\"192.0.2.0/24\"]\n[[rule]]\ncidrs = [\"192.0.2.0/24\"]\nclass = \"deny\"\n");
        assert!(e.contains("test.toml:4:10") && e.contains("192.0.2.0/24 is given two classes (trusted and deny)"), "{e}");
        let e = err("[profile.p]\nregister_per_sec = 0\nregister_burst = 1\nrequests_per_sec = 1\nrequests_burst = 1\n");
        assert!(e.contains("test.toml:2:20: key `profile.p.register_per_sec`: 0 is out of range"), "{e}");
        let e = err("[profile.p]\nregister_per_sec = 1\n");
        assert!(e.contains("register_burst"), "missing fields are named: {e}");
        let e = err("[ban]\nduration_secs = 100\nmax_duration_secs = 50\n");
        assert!(e.contains("key `ban.max_duration_secs`: 50 is shorter than ban.duration_secs (100)"), "{e}");
        let e = err("[auth_failures]\nmax = 0\n");
        assert!(e.contains("key `auth_failures.max`: 0 is out of range"), "{e}");
        let e = err("[events]\nwebhook = \"ftp://x\"\n");
        assert!(e.contains("key `events.webhook`") && e.contains("not an http:// or https:// URL"), "{e}");
        let e = err("[metrics]\nlisten = \"localhost\"\n");
        assert!(e.contains("test.toml:2:10: key `metrics.listen`: \"localhost\" is not an address:port"), "{e}");
        let e = err("[metrics]\ntop_sources = 0\n");
        assert!(e.contains("key `metrics.top_sources`: 0 is out of range"), "{e}");
        let e = err("[events]\nformat = \"xml\"\n");
        assert!(e.contains("line 2") && e.contains("xml"), "{e}");
    }

    #[test]
    fn destinations_parse_and_errors_name_the_line() {
        let c = parse(&format!(
            "{CLASSES}[destinations]\ninternational_prefixes = [\"00\", \"011\"]\nblock = [\"252\", \"+224\"]\nallow_only = [\"49\"]\napplies_to = [\"customers\", \"trusted\"]\n"
        ))
        .unwrap();
        assert_eq!(c.destinations.international_prefixes, ["00", "011"]);
        assert_eq!(c.destinations.block, ["252", "224"]);
        assert_eq!(c.destinations.allow_only, ["49"]);
        assert_eq!(c.destinations.applies_to, [Class::Limited(0), Class::Trusted]);
        let e = err("[destinations]\nblock = [\"25x\"]\n");
        assert!(e.contains("test.toml:2:10: key `destinations.block`: \"25x\" is not a prefix of 1 to 20 digits"), "{e}");
        let e = err("[destinations]\nblock = [\"252\"]\nallow_only = [\"252\"]\n");
        assert!(e.contains("prefix 252 is listed twice"), "{e}");
        let e = err("[destinations]\napplies_to = [\"nobody\"]\n");
        assert!(e.contains("key `destinations.applies_to`: unknown class"), "{e}");
        let e = err("[destinations]\ninternational_prefixes = [\"00000\"]\n");
        assert!(e.contains("1 to 4 digits"), "{e}");
    }

    #[test]
    fn anomaly_and_costs_parse_with_defaults_and_errors() {
        let c = parse("").unwrap();
        assert_eq!((c.anomaly.window_secs, c.anomaly.calls_over, c.anomaly.cost_over), (3600, 50, None));
        let c = parse("[anomaly]\nwindow_secs = 600\ncalls_over = 5\ncost_over = 40.0\nbaseline_weight = 0.5\n[destinations.cost]\n\"+252\" = 2.5\n").unwrap();
        assert_eq!((c.anomaly.window_secs, c.anomaly.calls_over, c.anomaly.cost_over, c.anomaly.baseline_weight), (600, 5, Some(40.0), 0.5));
        assert_eq!(c.destinations.cost["252"], 2.5);
        let e = err("[anomaly]\nbaseline_weight = 1.5\n");
        assert!(e.contains("test.toml:2:19: key `anomaly.baseline_weight`: 1.5 is not in (0, 1]"), "{e}");
        let e = err("[anomaly]\ncost_over = -1.0\n");
        assert!(e.contains("key `anomaly.cost_over`: -1 must be positive"), "{e}");
        let e = err("[destinations.cost]\n\"25x\" = 1.0\n");
        assert!(e.contains("key `destinations.cost`") && e.contains("25x"), "{e}");
        let e = err("[anomaly]\ncheck_secs = 0\n");
        assert!(e.contains("key `anomaly.check_secs`: 0 is out of range"), "{e}");
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}
