//! The TOML config file: parsing, validation, and error messages that name
//! the file, the line and the key. Nothing here touches the kernel, so a bad
//! file is rejected before anything is attached or changed.
//!
//! One module per table, each with its raw (serde) form, its defaults
//! (written once, in the raw form's `Default`) and its validation;
//! `kernel` turns a validated config into what the kernel maps hold.

mod anomaly;
mod api;
mod ban;
mod classes;
mod crowdsec;
mod destinations;
mod events;
mod filter;
mod fingerprints;
mod fleet;
mod metrics;
mod rules;
mod source;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::Deserialize;
use toml::Spanned;

pub use self::{
    anomaly::Anomaly,
    api::{Api, ApiListen},
    ban::{AuthFailures, BanConfig},
    classes::{Profile, MAX_RATE},
    crowdsec::CrowdSec,
    destinations::Destinations,
    events::{EventFormat, Events},
    filter::{Filter, MAX_SOURCES_TABLE, MIN_SOURCES_TABLE},
    fleet::{valid_node, Fleet},
    metrics::MetricsConfig,
};
use self::{classes::Classes, source::Source};
use crate::{
    error::user_error,
    rules::{Class, Rules},
};

/// A validated config.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub path: PathBuf,
    pub interfaces: Vec<String>,
    pub filter: Filter,
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
    /// Bans shared with other edges; None: this edge stands alone.
    pub fleet: Option<Fleet>,
    /// The control API; None: off.
    pub api: Option<Api>,
    /// A CrowdSec Local API whose decisions are enforced; None: off.
    pub crowdsec: Option<CrowdSec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    interfaces: Vec<Spanned<String>>,
    #[serde(default)]
    filter: filter::RawFilter,
    #[serde(default)]
    allow: rules::RawAllow,
    #[serde(default)]
    rule: Vec<rules::RawRule>,
    #[serde(default)]
    profile: BTreeMap<String, Spanned<classes::RawProfile>>,
    #[serde(default)]
    ban: ban::RawBan,
    #[serde(default)]
    auth_failures: ban::RawAuth,
    #[serde(default)]
    events: events::RawEvents,
    #[serde(default)]
    metrics: metrics::RawMetrics,
    #[serde(default)]
    destinations: destinations::RawDestinations,
    #[serde(default)]
    fingerprints: fingerprints::RawFingerprints,
    #[serde(default)]
    anomaly: anomaly::RawAnomaly,
    #[serde(default)]
    fleet: fleet::RawFleet,
    #[serde(default)]
    api: api::RawApi,
    #[serde(default)]
    crowdsec: crowdsec::RawCrowdSec,
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
    /// relative allowlist file names). Profiles come first: the other
    /// sections refer to classes by name.
    pub fn parse(path: &Path, text: &str) -> anyhow::Result<Config> {
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| user_error(format!("{}: {}", path.display(), e.to_string().trim_end())))?;
        let src = Source { path, text };
        let profiles = classes::profiles(&raw.profile, &src)?;
        let classes = Classes { profiles: &profiles };
        Ok(Config {
            path: path.to_path_buf(),
            interfaces: filter::interfaces(&raw.interfaces, &src)?,
            filter: raw.filter.validate(&src, &classes)?,
            rules: rules::rules(&raw.allow, &raw.rule, &src, &classes)?,
            ban: raw.ban.validate(&src)?,
            auth_failures: raw.auth_failures.validate(&src)?,
            events: raw.events.validate(&src)?,
            metrics: raw.metrics.validate(&src)?,
            destinations: raw.destinations.validate(&src, &classes)?,
            user_agents: raw.fingerprints.validate(&src)?,
            anomaly: raw.anomaly.validate(&src)?,
            fleet: raw.fleet.validate(&src)?,
            api: raw.api.validate(&src)?,
            crowdsec: raw.crowdsec.validate(&src)?,
            profiles,
        })
    }

    /// The name a class has in the config file.
    pub fn class_name(&self, class: Class) -> String {
        Classes { profiles: &self.profiles }.label(class)
    }

    /// "deny (drop)", "deny (pass)" or the default profile's name.
    pub fn default_class_label(&self) -> String {
        match self.filter.default_class {
            Class::Deny => format!("deny ({})", self.filter.default_action.name()),
            class => self.class_name(class),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::exit_status;
    use ipnet::IpNet;
    use sip_xdp_common::{
        kernel_config::{DefaultAction, Mode},
        registry::DEFAULT_SOURCES_CAPACITY,
    };

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
        assert_eq!(c.filter.ports, [5060, 5061, 5080]);
        assert_eq!(c.filter.default_action, DefaultAction::Pass);
        assert_eq!(c.filter.mode, Mode::Monitor);
        assert_eq!(c.filter.sources_table_size, 131072);
        assert_eq!((c.rules.count_v4(), c.rules.count_v6()), (2, 1));
    }

    #[test]
    fn defaults_are_safe() {
        let c = parse("").unwrap();
        assert_eq!(c.filter.ports, [5060, 5061]);
        assert_eq!(c.filter.default_action, DefaultAction::Drop);
        assert_eq!(c.filter.mode, Mode::Enforce);
        assert_eq!(c.filter.sources_table_size, DEFAULT_SOURCES_CAPACITY);
        assert!(c.rules.nets.is_empty() && c.interfaces.is_empty());
        assert_eq!(c.filter.default_class, Class::Deny);
        assert_eq!(
            c.ban,
            BanConfig {
                after_excess: 50,
                window_secs: 10,
                duration_secs: 600,
                max_duration_secs: 86_400,
                escalate_after: 5,
                escalate_window_secs: 3600
            }
        );
        assert_eq!(c.auth_failures, AuthFailures { max: 5, unanswered_challenges: 20, window_secs: 60 });
        assert_eq!(c.filter.ipv6_prefix, 64);
        assert_eq!(parse("[ban]\nescalate_after = 0\n").unwrap().ban.escalate_after, 0, "can be switched off");
        let e = err("[filter]\nipv6_prefix = 40\n");
        assert!(e.contains("test.toml:2:15: key `filter.ipv6_prefix`: 40 is out of range (48-128)"), "{e}");
        assert_eq!(c.filter.tcp_adopt_secs, 60);
        assert_eq!(c.filter.tls_ports, vec![5061], "5061 carries TLS unless said otherwise");
        assert_eq!(parse("[filter]\nports = [5060]\n").unwrap().filter.tls_ports, Vec::<u16>::new());
        assert_eq!(parse("[filter]\ntls_ports = []\n").unwrap().filter.tls_ports, Vec::<u16>::new());
        let e = err("[filter]\nports = [5060]\ntls_ports = [5061]\n");
        assert!(e.contains("key `filter.tls_ports`: 5061 is not one of filter.ports [5060]"), "{e}");
        assert_eq!(parse("[filter]\ntcp_adopt_secs = 0\n").unwrap().filter.tcp_adopt_secs, 0, "no grace");
        let e = err("[filter]\ntcp_adopt_secs = -1\n");
        assert!(e.contains("key `filter.tcp_adopt_secs`: -1 is out of range (0-86400)"), "{e}");
        let e = err("[auth_failures]\nunanswered_challenges = 0\n");
        assert!(e.contains("key `auth_failures.unanswered_challenges`: 0 is out of range"), "{e}");
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
        let e =
            err(&format!("[filter]\nports = [{}]\n", (1..=17).map(|p| p.to_string()).collect::<Vec<_>>().join(",")));
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
        assert_eq!(c.filter.default_class, Class::Limited(1));
        let class = |cidr: &str| c.rules.nets[&cidr.parse::<IpNet>().unwrap()];
        assert_eq!(class("198.51.100.0/24"), Class::Trusted);
        assert_eq!(class("203.0.113.0/24"), Class::Limited(0));
        assert_eq!(class("2001:db8:100::/48"), Class::Limited(0));
        assert_eq!(class("192.0.2.0/24"), Class::Deny);
        assert_eq!(c.profiles[0].rates.register_burst, 20);
        assert_eq!(
            (c.profiles[0].rates.invite_per_sec, c.profiles[0].rates.invite_burst),
            (50, 200),
            "default: the request rates"
        );
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
        assert!(
            e.contains("test.toml:4:10") && e.contains("192.0.2.0/24 is given two classes (trusted and deny)"),
            "{e}"
        );
        let e =
            err("[profile.p]\nregister_per_sec = 0\nregister_burst = 1\nrequests_per_sec = 1\nrequests_burst = 1\n");
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
        assert!(
            e.contains("test.toml:2:10: key `destinations.block`: \"25x\" is not a prefix of 1 to 20 digits"),
            "{e}"
        );
        let e = err("[destinations]\nblock = [\"252\"]\nallow_only = [\"252\"]\n");
        assert!(e.contains("prefix 252 is listed twice"), "{e}");
        let e = err("[destinations]\napplies_to = [\"nobody\"]\n");
        assert!(e.contains("key `destinations.applies_to`: unknown class"), "{e}");
        let e = err("[destinations]\ninternational_prefixes = [\"00000\"]\n");
        assert!(e.contains("1 to 4 digits"), "{e}");
    }

    #[test]
    fn api_and_crowdsec_are_off_unless_configured_and_refuse_unsafe_settings() {
        let c = parse("").unwrap();
        assert_eq!((c.api, c.crowdsec), (None, None), "both off by default");
        let dir = std::env::temp_dir().join(format!("sip-xdp-api-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("token"), "0123456789abcdef-long-enough\n").unwrap();
        std::fs::write(dir.join("short"), "abc\n").unwrap();
        std::fs::write(dir.join("key"), "bouncer-key\n").unwrap();
        let at = |text: &str| Config::parse(&dir.join("c.toml"), text);
        let a = at("[api]\nlisten = \"unix:/run/sip-xdp/api.sock\"\n").unwrap().api.unwrap();
        assert_eq!(a.listen, ApiListen::Unix("/run/sip-xdp/api.sock".into()));
        assert_eq!((a.token, a.socket_mode, a.socket_group), (None, 0o660, None), "a socket needs no token");
        assert_eq!((a.max_prefix_v4, a.max_prefix_v6), (16, 32));
        let a = at("[api]\nlisten = \"127.0.0.1:9561\"\ntoken_file = \"token\"\n").unwrap().api.unwrap();
        assert_eq!(a.listen, ApiListen::Tcp("127.0.0.1:9561".parse().unwrap()));
        let a = at("[api]\nlisten = \"unix:/run/a.sock\"\ntoken_file = \"token\"\nsocket_group = \"root\"\n").unwrap();
        let a = a.api.unwrap();
        assert_eq!(
            (a.token.as_deref(), a.socket_group),
            (Some("0123456789abcdef-long-enough"), Some(("root".into(), 0)))
        );
        let e = |text: &str| {
            let e = at(text).unwrap_err();
            assert_eq!(exit_status(&e), 2);
            e.to_string()
        };
        let m = e("[api]\nlisten = \"127.0.0.1:9561\"\n");
        assert!(m.contains("c.toml:2:10: key `api.listen`: a TCP listener needs `token_file`"), "{m}");
        let m = e("[api]\nlisten = \"127.0.0.1:9561\"\ntoken_file = \"short\"\n");
        assert!(m.contains("key `api.token_file`: the token must be at least 16"), "{m}");
        let m = e("[api]\nlisten = \"unix:api.sock\"\n");
        assert!(m.contains("key `api.listen`: a unix: socket needs an absolute path"), "{m}");
        let m = e("[api]\nlisten = \"localhost:9561\"\ntoken_file = \"token\"\n");
        assert!(m.contains("is neither unix:/path nor address:port"), "{m}");
        let m = e("[api]\nlisten = \"unix:/run/a.sock\"\nsocket_mode = \"0444\"\n");
        assert!(m.contains("key `api.socket_mode`: \"0444\" is not an octal mode with u+rw"), "{m}");
        let m = e("[api]\nlisten = \"unix:/run/a.sock\"\nsocket_group = \"no-such-group-here\"\n");
        assert!(m.contains("key `api.socket_group`: no group \"no-such-group-here\""), "{m}");
        let m = e("[api]\nlisten = \"127.0.0.1:9561\"\ntoken_file = \"token\"\nsocket_group = \"root\"\n");
        assert!(m.contains("c.toml:4:16: key `api`: socket_mode and socket_group are for a unix: listener"), "{m}");
        let m = e("[api]\ntoken_file = \"token\"\n");
        assert!(m.contains("key `api`: needs `listen`"), "{m}");
        let m = e("[api]\nlisten = \"unix:/run/a.sock\"\nmax_prefix_v4 = 0\n");
        assert!(m.contains("key `api.max_prefix_v4`: 0 is out of range (1-32)"), "{m}");

        let c = at("[crowdsec]\nlapi_url = \"http://127.0.0.1:8080/\"\napi_key_file = \"key\"\n").unwrap();
        let c = c.crowdsec.unwrap();
        assert_eq!((c.lapi_url.as_str(), c.api_key.as_str(), c.poll_secs), ("http://127.0.0.1:8080", "bouncer-key", 1));
        let m = e("[crowdsec]\nlapi_url = \"http://127.0.0.1:8080\"\n");
        assert!(m.contains("key `crowdsec`: needs `api_key_file` as well"), "{m}");
        let m = e("[crowdsec]\nlapi_url = \"127.0.0.1:8080\"\napi_key_file = \"key\"\n");
        assert!(
            m.contains("key `crowdsec.lapi_url`: \"127.0.0.1:8080\" is not an http:// or https:// base URL"),
            "{m}"
        );
        let m = e("[crowdsec]\nlapi_url = \"http://h/v1/decisions\"\napi_key_file = \"key\"\n");
        assert!(m.contains("base URL"), "{m}");
        let m = e("[crowdsec]\nlapi_url = \"http://h\"\napi_key_file = \"missing\"\n");
        assert!(m.contains("key `crowdsec.api_key_file`: cannot read"), "{m}");
        let m = e("[crowdsec]\nlapi_url = \"http://h\"\napi_key_file = \"key\"\npoll_secs = 0\n");
        assert!(m.contains("key `crowdsec.poll_secs`: 0 is out of range"), "{m}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn fleet_parses_with_defaults_and_errors() {
        assert_eq!(parse("").unwrap().fleet, None, "no [fleet]: alone");
        let f = parse("[fleet]\nredis = \"redis://198.18.0.9:6379/0\"\nnode = \"edge-a\"\n").unwrap().fleet.unwrap();
        assert_eq!((f.node.as_str(), f.publish, f.subscribe), ("edge-a", true, true));
        assert_eq!((f.max_prefix_v4, f.max_prefix_v6, f.reconcile_secs, f.password), (16, 32, 10, None));
        let f =
            parse("[fleet]\nredis = \"rediss://:pw@r.example.net:6380\"\npublish = false\n").unwrap().fleet.unwrap();
        assert!(!f.publish && valid_node(&f.node), "node defaults to the hostname: {:?}", f.node);
        let e = err("[fleet]\nredis = \"http://r:6379\"\n");
        assert!(e.contains("test.toml:2:9: key `fleet.redis`: \"http://r:6379\" is not a redis://"), "{e}");
        let e = err("[fleet]\nredis = \"redis://r\"\nnode = \"edge a\"\n");
        assert!(e.contains("test.toml:3:8: key `fleet.node`"), "{e}");
        let e = err("[fleet]\nredis = \"redis://r\"\nmax_prefix_v4 = 0\n");
        assert!(e.contains("key `fleet.max_prefix_v4`: 0 is out of range (1-32)"), "{e}");
        let e = err("[fleet]\nredis = \"redis://r\"\nmax_prefix_v6 = 129\n");
        assert!(e.contains("key `fleet.max_prefix_v6`: 129 is out of range (1-128)"), "{e}");
        let e = err("[fleet]\nredis = \"redis://r\"\npassword_file = \"/nonexistent/pw\"\n");
        assert!(e.contains("key `fleet.password_file`: cannot read /nonexistent/pw"), "{e}");
        let e = err("[fleet]\nnode = \"edge-a\"\n");
        assert!(e.contains("key `fleet`: needs `redis`"), "{e}");
        let e = err("[fleet]\nredis = \"redis://r\"\nchannel = \"x\"\n");
        assert!(e.contains("channel"), "unknown keys are errors: {e}");
    }

    #[test]
    fn anomaly_and_costs_parse_with_defaults_and_errors() {
        let c = parse("").unwrap();
        assert_eq!((c.anomaly.window_secs, c.anomaly.calls_over, c.anomaly.cost_over), (3600, 50, None));
        let c = parse("[anomaly]\nwindow_secs = 600\ncalls_over = 5\ncost_over = 40.0\nbaseline_weight = 0.5\n[destinations.cost]\n\"+252\" = 2.5\n").unwrap();
        assert_eq!(
            (c.anomaly.window_secs, c.anomaly.calls_over, c.anomaly.cost_over, c.anomaly.baseline_weight),
            (600, 5, Some(40.0), 0.5)
        );
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
}
