//! The allowlist as a set of CIDR prefixes, parsed from config, files and
//! the command line.

use std::{collections::BTreeSet, fmt, net::IpAddr, str::FromStr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// A set of IPv4 and IPv6 prefixes, kept in canonical (host bits clear) form.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowSet {
    pub v4: BTreeSet<Ipv4Net>,
    pub v6: BTreeSet<Ipv6Net>,
}

impl AllowSet {
    pub fn insert(&mut self, net: IpNet) {
        match net {
            IpNet::V4(n) => {
                self.v4.insert(n);
            }
            IpNet::V6(n) => {
                self.v6.insert(n);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
    fn set_deduplicates_per_family() {
        let mut s = AllowSet::default();
        for t in ["198.51.100.0/24", "198.51.100.0/24", "2001:db8::/32"] {
            s.insert(parse_cidr(t).unwrap());
        }
        assert_eq!((s.v4.len(), s.v6.len(), s.len()), (1, 1, 2));
    }
}
