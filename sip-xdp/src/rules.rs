//! Rules as the config gives them: CIDR prefixes with a class, parsed from
//! the config, allowlist files and the command line.

use std::{collections::BTreeMap, fmt, net::IpAddr, str::FromStr};

use ipnet::IpNet;
use sip_xdp_common::rules::RuleClass;

/// The class a rule gives the sources it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    Trusted,
    Deny,
    /// Rate-limited by the profile with this index.
    Limited(u8),
}

impl Class {
    /// The class and profile of a kernel rule.
    pub fn kernel(self) -> (RuleClass, u8) {
        match self {
            Class::Trusted => (RuleClass::Trusted, 0),
            Class::Deny => (RuleClass::Deny, 0),
            Class::Limited(p) => (RuleClass::Limited, p),
        }
    }
}

/// Prefixes (canonical, host bits clear) and their classes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    pub nets: BTreeMap<IpNet, Class>,
}

impl Rules {
    /// Adds a rule; returns the class the prefix had before, if any.
    pub fn insert(&mut self, net: IpNet, class: Class) -> Option<Class> {
        self.nets.insert(net, class)
    }

    pub fn count_v4(&self) -> usize {
        self.nets.keys().filter(|n| matches!(n, IpNet::V4(_))).count()
    }

    pub fn count_v6(&self) -> usize {
        self.nets.len() - self.count_v4()
    }

    /// The class of the longest matching prefix, as the kernel decides.
    pub fn class_of(&self, addr: IpAddr) -> Option<(IpNet, Class)> {
        self.nets.iter().filter(|(n, _)| n.contains(&addr)).max_by_key(|(n, _)| n.prefix_len()).map(|(n, c)| (*n, *c))
    }
}

/// Why a string is not an allowlist entry.
#[derive(Debug, PartialEq, Eq)]
pub struct CidrError(pub String);

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses `198.51.100.0/24`, `2001:db8::/32`, or a bare address (a /32 or
/// /128). A prefix with host bits set is refused rather than silently
/// widened or narrowed: `198.51.100.7/24` is more often a typo than intent.
pub fn parse_cidr(text: &str) -> Result<IpNet, CidrError> {
    let text = text.trim();
    if text.contains('/') {
        let net = IpNet::from_str(text).map_err(|_| CidrError(format!("not a CIDR: {text:?}")))?;
        if net.trunc() != net {
            return Err(CidrError(format!(
                "not a CIDR: {text:?} has host bits set (the network is {}; for the single address use {}/{})",
                net.trunc(),
                net.addr(),
                net.max_prefix_len()
            )));
        }
        Ok(net)
    } else {
        let addr = IpAddr::from_str(text).map_err(|_| CidrError(format!("not a CIDR: {text:?}")))?;
        Ok(IpNet::from(addr))
    }
}

/// An IPv4-mapped IPv6 address or prefix (`::ffff:198.51.100.7`) as the
/// IPv4 one it is: the kernel keys both alike, so a check against the
/// IPv4 rules (trusted precedence, widths) must see the IPv4 form.
pub fn canonical(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(n) if n.prefix_len() >= 96 => match n.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, n.prefix_len() - 96).map_or(net, IpNet::V4),
            None => net,
        },
        other => other,
    }
}

/// Parses an allowlist file: one CIDR or address per line, `#` starts a
/// comment, blank lines are ignored. Errors name the line.
pub fn parse_list(text: &str) -> Result<Vec<IpNet>, (usize, CidrError)> {
    let mut nets = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        nets.push(parse_cidr(line).map_err(|e| (index + 1, e))?);
    }
    Ok(nets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prefixes_and_addresses() {
        assert_eq!(parse_cidr("198.51.100.0/24").unwrap().to_string(), "198.51.100.0/24");
        assert_eq!(parse_cidr(" 198.18.0.1 ").unwrap().to_string(), "198.18.0.1/32");
        assert_eq!(parse_cidr("2001:db8::1").unwrap().to_string(), "2001:db8::1/128");
        assert_eq!(parse_cidr("2001:db8:100::/48").unwrap().to_string(), "2001:db8:100::/48");
        assert_eq!(parse_cidr("0.0.0.0/0").unwrap().to_string(), "0.0.0.0/0");
    }

    #[test]
    fn refuses_garbage_with_the_input_in_the_message() {
        for bad in ["", "1.2.3", "1.2.3.4/33", "2001:db8::/129", "eth0", "1.2.3.4/", "1.2.3.4/-1"] {
            let err = parse_cidr(bad).unwrap_err();
            assert!(err.0.starts_with("not a CIDR: "), "{bad}: {err}");
        }
        let err = parse_cidr("198.51.100.7/24").unwrap_err();
        assert!(err.0.contains("host bits set") && err.0.contains("198.51.100.0/24"), "{err}");
    }

    #[test]
    fn list_skips_comments_and_names_the_bad_line() {
        let text = "# trunks\n198.51.100.0/24   # carrier A\n\n2001:db8::/32\n";
        let nets = parse_list(text).unwrap();
        assert_eq!(nets.len(), 2);
        let (line, err) = parse_list("198.51.100.0/24\n# ok\nbogus\n").unwrap_err();
        assert_eq!(line, 3);
        assert!(err.0.contains("bogus"));
    }

    #[test]
    fn rules_count_per_family_and_match_longest_prefix() {
        let mut r = Rules::default();
        r.insert(parse_cidr("198.51.100.0/24").unwrap(), Class::Limited(0));
        r.insert(parse_cidr("198.51.100.7").unwrap(), Class::Trusted);
        r.insert(parse_cidr("2001:db8::/32").unwrap(), Class::Deny);
        assert_eq!((r.count_v4(), r.count_v6()), (2, 1));
        assert_eq!(r.class_of("198.51.100.7".parse().unwrap()).unwrap().1, Class::Trusted);
        assert_eq!(r.class_of("198.51.100.8".parse().unwrap()).unwrap().1, Class::Limited(0));
        assert_eq!(r.class_of("2001:db8::1".parse().unwrap()).unwrap().1, Class::Deny);
        assert!(r.class_of("192.0.2.1".parse().unwrap()).is_none());
    }
}
