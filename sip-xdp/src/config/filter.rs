//! `interfaces` and `[filter]`: where the filter attaches, which ports it
//! watches, and what happens to sources no rule covers.

use serde::Deserialize;
use sip_xdp_common::{
    kernel_config::{DefaultAction, Mode, MAX_PORTS},
    registry::DEFAULT_SOURCES_CAPACITY,
};
use toml::Spanned;

use super::{
    classes::Classes,
    source::{default, Named, Source},
};
use crate::rules::Class;

/// Bounds for `sources_table_size`: below this the table churns on any
/// busy server; above it the LRU map costs more memory than it is worth.
pub const MIN_SOURCES_TABLE: u32 = 1024;
pub const MAX_SOURCES_TABLE: u32 = 16 * 1024 * 1024;
/// The shortest IPv6 prefix sources are accounted by: a /48 is a site.
pub const MIN_IPV6_PREFIX: i64 = 48;
/// The longest grace after a start for TCP connections older than the
/// filter: a day (a longer one would keep the hole open for good).
pub const MAX_TCP_ADOPT_SECS: i64 = 86_400;
/// Linux interface names are at most 15 bytes.
const IFNAMSIZ: usize = 16;

/// `[filter]`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    pub ports: Vec<u16>,
    /// Those of `ports` whose TCP carries TLS (opaque: judged by source
    /// only); UDP to them is read as plain SIP.
    pub tls_ports: Vec<u16>,
    pub default_action: DefaultAction,
    /// Class of sources that match no rule: `Deny` or `Limited`.
    pub default_class: Class,
    pub mode: Mode,
    pub sources_table_size: u32,
    /// IPv6 sources are accounted per prefix of this length.
    pub ipv6_prefix: u8,
    /// For this long after a start, TCP connections the filter did not see
    /// open are taken up where they are.
    pub tcp_adopt_secs: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawFilter {
    ports: Spanned<Vec<Spanned<i64>>>,
    tls_ports: Option<Spanned<Vec<Spanned<i64>>>>,
    default_action: Option<Spanned<Named<DefaultAction>>>,
    default_class: Option<Spanned<String>>,
    mode: Named<Mode>,
    sources_table_size: Spanned<i64>,
    ipv6_prefix: Spanned<i64>,
    tcp_adopt_secs: Spanned<i64>,
}

impl Default for RawFilter {
    fn default() -> Self {
        RawFilter {
            ports: default(vec![default(5060), default(5061)]),
            tls_ports: None,
            default_action: None,
            default_class: None,
            mode: Named(Mode::Enforce),
            sources_table_size: default(DEFAULT_SOURCES_CAPACITY as i64),
            ipv6_prefix: default(64),
            tcp_adopt_secs: default(60),
        }
    }
}

pub fn interfaces(raw: &[Spanned<String>], src: &Source) -> anyhow::Result<Vec<String>> {
    let mut interfaces: Vec<String> = Vec::new();
    for name in raw {
        let n = name.get_ref();
        if n.is_empty() || n.len() >= IFNAMSIZ || n.contains(['/', ' ', '\0']) {
            return Err(src.error(name.span(), "interfaces", format!("{n:?} is not a valid interface name")));
        }
        if interfaces.contains(n) {
            return Err(src.error(name.span(), "interfaces", format!("{n:?} is listed twice")));
        }
        interfaces.push(n.clone());
    }
    Ok(interfaces)
}

impl RawFilter {
    pub fn validate(&self, src: &Source, classes: &Classes) -> anyhow::Result<Filter> {
        if self.ports.get_ref().is_empty() {
            return Err(src.error(self.ports.span(), "filter.ports", "needs at least one port"));
        }
        if self.ports.get_ref().len() > MAX_PORTS {
            let n = self.ports.get_ref().len();
            return Err(src.error(
                self.ports.span(),
                "filter.ports",
                format!("{n} ports given; at most {MAX_PORTS} are supported"),
            ));
        }
        let mut ports = Vec::new();
        for port in self.ports.get_ref() {
            let p = *port.get_ref();
            let p = u16::try_from(p)
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| src.error(port.span(), "filter.ports", format!("{p} is not a port (1-65535)")))?;
            if ports.contains(&p) {
                return Err(src.error(port.span(), "filter.ports", format!("port {p} is listed twice")));
            }
            ports.push(p);
        }

        // 5061 is SIP over TLS (RFC 3261 §26.2.2) unless said otherwise.
        let tls_ports = match &self.tls_ports {
            None => ports.iter().copied().filter(|p| *p == 5061).collect(),
            Some(list) => {
                let mut tls = Vec::new();
                for port in list.get_ref() {
                    let p = *port.get_ref();
                    match u16::try_from(p).ok().filter(|p| ports.contains(p)) {
                        Some(p) if !tls.contains(&p) => tls.push(p),
                        Some(p) => {
                            return Err(src.error(port.span(), "filter.tls_ports", format!("port {p} is listed twice")))
                        }
                        None => {
                            return Err(src.error(
                                port.span(),
                                "filter.tls_ports",
                                format!("{p} is not one of filter.ports {ports:?}"),
                            ))
                        }
                    }
                }
                tls
            }
        };

        let size = *self.sources_table_size.get_ref();
        let sources_table_size = u32::try_from(size)
            .ok()
            .filter(|s| (MIN_SOURCES_TABLE..=MAX_SOURCES_TABLE).contains(s))
            .ok_or_else(|| {
                src.error(
                    self.sources_table_size.span(),
                    "filter.sources_table_size",
                    format!("{size} is out of range ({MIN_SOURCES_TABLE}-{MAX_SOURCES_TABLE})"),
                )
            })?;

        let default_class = match &self.default_class {
            None => Class::Deny,
            Some(name) => match classes.named(name, "filter.default_class", src)? {
                Class::Trusted => {
                    return Err(src.error(
                        name.span(),
                        "filter.default_class",
                        "\"trusted\" for everyone would switch the filter off; use \"deny\" or a profile",
                    ))
                }
                class => class,
            },
        };
        let default_action = match &self.default_action {
            None => DefaultAction::Drop,
            Some(a) => match a.get_ref().0 {
                DefaultAction::Pass if matches!(default_class, Class::Limited(_)) => {
                    return Err(src.error(
                        a.span(),
                        "filter.default_action",
                        "\"pass\" contradicts a limited default_class; set one of the two",
                    ))
                }
                action => action,
            },
        };
        let prefix = *self.ipv6_prefix.get_ref();
        if !(MIN_IPV6_PREFIX..=128).contains(&prefix) {
            return Err(src.error(
                self.ipv6_prefix.span(),
                "filter.ipv6_prefix",
                format!("{prefix} is out of range ({MIN_IPV6_PREFIX}-128)"),
            ));
        }
        let adopt = *self.tcp_adopt_secs.get_ref();
        if !(0..=MAX_TCP_ADOPT_SECS).contains(&adopt) {
            return Err(src.error(
                self.tcp_adopt_secs.span(),
                "filter.tcp_adopt_secs",
                format!("{adopt} is out of range (0-{MAX_TCP_ADOPT_SECS})"),
            ));
        }
        Ok(Filter {
            ports,
            tls_ports,
            default_action,
            default_class,
            mode: self.mode.0,
            sources_table_size,
            ipv6_prefix: prefix as u8,
            tcp_adopt_secs: adopt as u64,
        })
    }
}
