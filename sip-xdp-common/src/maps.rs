//! Map names, sizes, keys and values. Every type is `#[repr(C)]` with
//! explicit padding, so kernel and userspace agree byte for byte.

/// Global filter settings, a single entry at index 0 of [`CONFIG_MAP`].
pub const CONFIG_MAP: &str = "SIP_CONFIG";
/// IPv4 allowlist: LPM trie keyed by `(prefix_len, [u8; 4])`.
pub const ALLOW_V4_MAP: &str = "ALLOW_V4";
/// IPv6 allowlist: LPM trie keyed by `(prefix_len, [u8; 16])`.
pub const ALLOW_V6_MAP: &str = "ALLOW_V6";
/// Per-CPU `{packets, bytes}` per `(action, reason)`.
pub const STATS_MAP: &str = "SIP_STATS";
/// Per-source counters for traffic to SIP ports (LRU).
pub const SOURCES_MAP: &str = "SIP_SOURCES";
/// Verdicts of first fragments, looked up by later fragments (LRU).
pub const FRAGS_MAP: &str = "SIP_FRAGS";

/// Every map the controller pins, in the order it checks them.
pub const PINNED_MAPS: [&str; 6] = [
    CONFIG_MAP,
    ALLOW_V4_MAP,
    ALLOW_V6_MAP,
    STATS_MAP,
    SOURCES_MAP,
    FRAGS_MAP,
];

/// Capacity of each allowlist trie.
pub const ALLOW_CAPACITY: u32 = 131_072;
/// Default capacity of the per-source table; the config can change it.
pub const DEFAULT_SOURCES_CAPACITY: u32 = 65_536;
/// Datagrams whose fragments are tracked at once.
pub const FRAGS_CAPACITY: u32 = 16_384;
/// Most SIP ports the filter can watch.
pub const MAX_PORTS: usize = 16;

pub const DEFAULT_ACTION_DROP: u8 = 0;
pub const DEFAULT_ACTION_PASS: u8 = 1;
pub const MODE_ENFORCE: u8 = 0;
pub const MODE_MONITOR: u8 = 1;

/// The filter settings the fast path reads on every packet.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FilterConfig {
    /// SIP ports in host byte order; only the first `port_count` count.
    pub ports: [u16; MAX_PORTS],
    pub port_count: u8,
    /// [`DEFAULT_ACTION_DROP`] or [`DEFAULT_ACTION_PASS`] for SIP traffic
    /// from sources not on the allowlist.
    pub default_action: u8,
    /// [`MODE_ENFORCE`] or [`MODE_MONITOR`].
    pub mode: u8,
    pub _pad: [u8; 5],
}

impl FilterConfig {
    /// An all-zero config watches no port, so an attached program with no
    /// config yet passes everything.
    pub const EMPTY: FilterConfig = FilterConfig {
        ports: [0; MAX_PORTS],
        port_count: 0,
        default_action: DEFAULT_ACTION_DROP,
        mode: MODE_ENFORCE,
        _pad: [0; 5],
    };

    /// Is `port` (host byte order) one of the SIP ports?
    #[inline(always)]
    pub fn is_sip_port(&self, port: u16) -> bool {
        let mut i = 0;
        while i < MAX_PORTS {
            if i >= self.port_count as usize {
                return false;
            }
            if self.ports[i] == port {
                return true;
            }
            i += 1;
        }
        false
    }
}

/// Where an allowlist entry came from: reloads replace the config's entries
/// and leave the ones added at run time (`sip-xdp allow add`) alone.
pub const ORIGIN_CONFIG: u8 = 1;
pub const ORIGIN_RUNTIME: u8 = 2;

/// Value of the allowlist tries.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct AllowValue {
    /// Bit set of `ORIGIN_*`.
    pub origin: u8,
    pub _pad: [u8; 3],
}

/// Key of the per-source table: the source address, IPv4 as an
/// IPv4-mapped IPv6 address (`::ffff:a.b.c.d`).
pub type SourceKey = [u8; 16];

/// Per-source counters, for traffic to SIP ports only.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SourceStats {
    pub packets: u64,
    pub bytes: u64,
    pub registers: u64,
    /// Packets dropped (or, in monitor mode, that would have been).
    pub dropped: u64,
    /// `bpf_ktime_get_boot_ns()` of the last packet (CLOCK_BOOTTIME).
    pub last_seen_ns: u64,
}

/// A `{packets, bytes}` pair, per CPU in the stats map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

/// Identifies one IP datagram's fragments (addresses IPv4-mapped for v4).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FragKey {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub id: u32,
    pub protocol: u8,
    pub _pad: [u8; 3],
}

/// The verdict of a first fragment, applied to the rest of its datagram.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FragVerdict {
    pub action: u8,
    pub reason: u8,
    pub _pad: [u8; 2],
}

/// `::ffff:a.b.c.d`, the key form of an IPv4 address in per-source maps.
#[inline(always)]
pub const fn v4_mapped(a: [u8; 4]) -> [u8; 16] {
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a[0], a[1], a[2], a[3]]
}

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: all are repr(C), padding is explicit, every bit pattern is valid.
    unsafe impl aya::Pod for FilterConfig {}
    unsafe impl aya::Pod for AllowValue {}
    unsafe impl aya::Pod for SourceStats {}
    unsafe impl aya::Pod for Counter {}
    unsafe impl aya::Pod for FragKey {}
    unsafe impl aya::Pod for FragVerdict {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn layouts_have_no_implicit_padding() {
        assert_eq!(size_of::<FilterConfig>(), 2 * MAX_PORTS + 8);
        assert_eq!(size_of::<AllowValue>(), 4);
        assert_eq!(size_of::<SourceStats>(), 40);
        assert_eq!(size_of::<Counter>(), 16);
        assert_eq!(size_of::<FragKey>(), 40);
        assert_eq!(size_of::<FragVerdict>(), 4);
    }

    #[test]
    fn port_set_honours_count() {
        let mut c = FilterConfig::EMPTY;
        assert!(!c.is_sip_port(0), "an empty config watches nothing, not port 0");
        c.ports[0] = 5060;
        c.ports[1] = 5061;
        c.port_count = 1;
        assert!(c.is_sip_port(5060));
        assert!(!c.is_sip_port(5061));
        c.port_count = 2;
        assert!(c.is_sip_port(5061));
        c.ports = [7000; MAX_PORTS];
        c.ports[MAX_PORTS - 1] = 9999;
        c.port_count = MAX_PORTS as u8;
        assert!(c.is_sip_port(9999));
        assert!(!c.is_sip_port(5060));
    }

    #[test]
    fn v4_mapping() {
        assert_eq!(v4_mapped([198, 18, 0, 1])[10..], [0xff, 0xff, 198, 18, 0, 1]);
    }
}
