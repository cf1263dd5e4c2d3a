//! The TOML config file: parsing, validation, and error messages that name
//! the file, the line and the key. Nothing here touches the kernel, so a bad
//! file is rejected before anything is attached or changed.

use std::{
    collections::BTreeSet,
    ops::Range,
    path::{Path, PathBuf},
};

use serde::Deserialize;
use sip_xdp_common::maps::{ALLOW_CAPACITY, DEFAULT_SOURCES_CAPACITY, MAX_PORTS};
use toml::Spanned;

use crate::{
    allowlist::{parse_cidr, parse_list, AllowSet},
    error::user_error,
};

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

/// A validated config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub path: PathBuf,
    pub interfaces: Vec<String>,
    pub ports: Vec<u16>,
    pub default_action: DefaultAction,
    pub mode: Mode,
    pub sources_table_size: u32,
    pub allow: AllowSet,
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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFilter {
    #[serde(default = "default_ports")]
    ports: Spanned<Vec<Spanned<i64>>>,
    #[serde(default = "default_action")]
    default_action: DefaultAction,
    #[serde(default = "default_mode")]
    mode: Mode,
    #[serde(default = "default_sources_table_size")]
    sources_table_size: Spanned<i64>,
}

impl Default for RawFilter {
    fn default() -> Self {
        RawFilter {
            ports: default_ports(),
            default_action: default_action(),
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
fn default_action() -> DefaultAction {
    DefaultAction::Drop
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

        let mut allow = AllowSet::default();
        for cidr in &raw.allow.cidrs {
            let net = parse_cidr(cidr.get_ref()).map_err(|e| at(cidr.span(), "allow.cidrs", e.0))?;
            allow.insert(net);
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let mut seen_files = BTreeSet::new();
        for file in &raw.allow.files {
            let file_path = base.join(file.get_ref());
            if !seen_files.insert(file_path.clone()) {
                continue;
            }
            let list = std::fs::read_to_string(&file_path).map_err(|e| {
                at(file.span(), "allow.files", format!("cannot read {}: {e}", file_path.display()))
            })?;
            let nets = parse_list(&list)
                .map_err(|(line, e)| user_error(format!("{}:{line}: {e}", file_path.display())))?;
            for net in nets {
                allow.insert(net);
            }
        }
        for (family, count) in [("IPv4", allow.v4.len()), ("IPv6", allow.v6.len())] {
            if count > ALLOW_CAPACITY as usize {
                return Err(user_error(format!(
                    "{}: the allowlist has {count} {family} prefixes; the kernel table holds {ALLOW_CAPACITY}",
                    path.display()
                )));
            }
        }

        Ok(Config {
            path: path.to_path_buf(),
            interfaces,
            ports,
            default_action: filter.default_action,
            mode: filter.mode,
            sources_table_size,
            allow,
        })
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
        assert_eq!((c.allow.v4.len(), c.allow.v6.len()), (2, 1));
    }

    #[test]
    fn defaults_are_safe() {
        let c = parse("").unwrap();
        assert_eq!(c.ports, [5060, 5061]);
        assert_eq!(c.default_action, DefaultAction::Drop);
        assert_eq!(c.mode, Mode::Enforce);
        assert_eq!(c.sources_table_size, DEFAULT_SOURCES_CAPACITY);
        assert!(c.allow.is_empty() && c.interfaces.is_empty());
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
        assert_eq!((c.allow.v4.len(), c.allow.v6.len()), (1, 1));
        let e = Config::parse(&cfg, "[allow]\nfiles = [\"bad.txt\"]\n").unwrap_err().to_string();
        assert!(e.contains("bad.txt:2: not a CIDR: \"not-an-ip\""), "{e}");
        let e = Config::parse(&cfg, "[allow]\nfiles = [\"missing.txt\"]\n").unwrap_err().to_string();
        assert!(e.contains("c.toml:2:10: key `allow.files`: cannot read") && e.contains("missing.txt"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}
