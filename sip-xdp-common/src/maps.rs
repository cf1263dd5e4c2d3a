//! Map names, sizes, keys and values. Every type is `#[repr(C)]` with
//! explicit padding, so kernel and userspace agree byte for byte.

/// Global filter settings, a single entry at index 0 of [`CONFIG_MAP`].
pub const CONFIG_MAP: &str = "SIP_CONFIG";
/// IPv4 allowlist: LPM trie keyed by `(prefix_len, [u8; 4])`.
pub const ALLOW_V4_MAP: &str = "ALLOW_V4";
/// IPv6 allowlist: LPM trie keyed by `(prefix_len, [u8; 16])`.
pub const ALLOW_V6_MAP: &str = "ALLOW_V6";
/// Bit per IPv4 /24 and per hashed IPv6 /32 that some rule may cover
/// (`allow_index`).
pub const ALLOW_INDEX_MAP: &str = "ALLOW_INDEX";
/// Per-CPU `{packets, bytes}` per `(action, reason)`.
pub const STATS_MAP: &str = "SIP_STATS";
/// Per-source counters for traffic to SIP ports (LRU).
pub const SOURCES_MAP: &str = "SIP_SOURCES";
/// Verdicts of first fragments, looked up by later fragments (LRU).
pub const FRAGS_MAP: &str = "SIP_FRAGS";
/// Rate profiles of the `limited` class, indexed by profile number.
pub const PROFILES_MAP: &str = "SIP_PROFILES";
/// Bans of single addresses (LRU), written by the kernel and the CLI.
pub const BANS_MAP: &str = "SIP_BANS";
/// Authentication failures per remote address (LRU), counted on egress.
pub const AUTH_MAP: &str = "SIP_AUTH";
/// Ring buffer of [`Event`]s for the controller.
pub const EVENTS_MAP: &str = "SIP_EVENTS";
/// Per-CPU counters of SIP methods and response codes (`COUNT_*` slots).
pub const COUNTS_MAP: &str = "SIP_COUNTS";
/// Destination rules: LPM trie over the ASCII digits of E.164 numbers.
pub const DEST_RULES_MAP: &str = "SIP_DEST_RULES";
/// Per-CPU INVITEs blocked, by destination rule id.
pub const DEST_COUNTS_MAP: &str = "SIP_DEST_COUNTS";
/// Scanner fingerprints (`fingerprint::Fingerprint`), up to 16.
pub const FINGERPRINTS_MAP: &str = "SIP_FINGERPRINTS";
/// Sources whose international calls are blocked (spend anomaly), with
/// the CLOCK_BOOTTIME ns the block ends (0: lifted, to be reported).
pub const INTL_BLOCKS_MAP: &str = "SIP_INTL_BLOCKS";
pub const INTL_BLOCKS_CAPACITY: u32 = 4096;

/// Every map the controller pins, in the order it checks them. The event
/// ring buffer is not pinned: each controller reads its own.
pub const PINNED_MAPS: [&str; 15] = [
    CONFIG_MAP,
    ALLOW_V4_MAP,
    ALLOW_V6_MAP,
    ALLOW_INDEX_MAP,
    STATS_MAP,
    SOURCES_MAP,
    FRAGS_MAP,
    PROFILES_MAP,
    BANS_MAP,
    AUTH_MAP,
    COUNTS_MAP,
    DEST_RULES_MAP,
    DEST_COUNTS_MAP,
    FINGERPRINTS_MAP,
    INTL_BLOCKS_MAP,
];

/// Capacity of each allowlist trie (allocated as entries are added).
pub const ALLOW_CAPACITY: u32 = 1_048_576;
/// Default capacity of the per-source table; the config can change it.
pub const DEFAULT_SOURCES_CAPACITY: u32 = 65_536;
/// Datagrams whose fragments are tracked at once.
pub const FRAGS_CAPACITY: u32 = 16_384;
/// Most SIP ports the filter can watch.
pub const MAX_PORTS: usize = 16;
/// Most rate profiles.
pub const MAX_PROFILES: u32 = 16;
/// Capacity of the ban table and of the auth-failure table.
pub const BANS_CAPACITY: u32 = 65_536;
pub const AUTH_CAPACITY: u32 = 65_536;
/// Size of the event ring buffer in bytes (a power of two, page multiple).
pub const EVENTS_BYTES: u32 = 256 * 1024;

/// Capacity of the destination rules (and of their counters).
pub const DEST_RULES_CAPACITY: u32 = 16_384;

pub const DEST_BLOCK: u8 = 1;
pub const DEST_ALLOW: u8 = 2;
/// Neither: a prefix only present for its cost (the policy treats it as
/// no rule).
pub const DEST_COST_ONLY: u8 = 3;

/// Value of the destination trie.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DestRule {
    /// [`DEST_BLOCK`] or [`DEST_ALLOW`].
    pub action: u8,
    pub _pad: u8,
    /// Index of the rule's counter in [`DEST_COUNTS_MAP`].
    pub id: u16,
    /// Estimated cost of one call, in thousandths of the currency unit.
    pub cost_milli: u32,
}

/// Slots of [`COUNTS_MAP`]: requests seen on ingress by method...
pub const COUNT_REQ_REGISTER: u32 = 0;
pub const COUNT_REQ_INVITE: u32 = 1;
pub const COUNT_REQ_OPTIONS: u32 = 2;
pub const COUNT_REQ_OTHER: u32 = 3;
/// ...responses the server sends (egress) by code...
pub const COUNT_RESP_200: u32 = 4;
pub const COUNT_RESP_401: u32 = 5;
pub const COUNT_RESP_403: u32 = 6;
pub const COUNT_RESP_407: u32 = 7;
pub const COUNT_RESP_OTHER: u32 = 8;
/// ...and events the ring buffer had no room for.
pub const COUNT_EVENTS_LOST: u32 = 9;
/// ...and from here, scanner fingerprint hits by fingerprint index.
pub const COUNT_FINGERPRINT_BASE: u32 = 16;
pub const COUNTS_ENTRIES: u32 = 32;

/// The slot counting a response code.
#[inline(always)]
pub const fn response_slot(code: u16) -> u32 {
    match code {
        200 => COUNT_RESP_200,
        401 => COUNT_RESP_401,
        403 => COUNT_RESP_403,
        407 => COUNT_RESP_407,
        _ => COUNT_RESP_OTHER,
    }
}

pub const DEFAULT_ACTION_DROP: u8 = 0;
pub const DEFAULT_ACTION_PASS: u8 = 1;
pub const MODE_ENFORCE: u8 = 0;
pub const MODE_MONITOR: u8 = 1;

/// Classes of sources, the `class` of a rule.
/// Trunks and providers: never rate-limited, never banned.
pub const CLASS_TRUSTED: u8 = 0;
/// Dropped.
pub const CLASS_DENY: u8 = 1;
/// Rate-limited by the rule's profile; banned on sustained excess.
pub const CLASS_LIMITED: u8 = 2;
/// A prefix banned with `sip-xdp ban add CIDR`: dropped until it expires.
pub const CLASS_BANNED: u8 = 3;

/// The filter settings the fast path reads on every packet.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FilterConfig {
    /// SIP ports in host byte order; only the first `port_count` count.
    pub ports: [u16; MAX_PORTS],
    pub port_count: u8,
    /// For sources that match no rule, when `default_class` is
    /// [`CLASS_DENY`]: [`DEFAULT_ACTION_DROP`] or [`DEFAULT_ACTION_PASS`].
    pub default_action: u8,
    /// [`MODE_ENFORCE`] or [`MODE_MONITOR`].
    pub mode: u8,
    /// Class of sources that match no rule: [`CLASS_DENY`] or [`CLASS_LIMITED`].
    pub default_class: u8,
    /// Profile of the default class when it is limited.
    pub default_profile: u8,
    pub _pad: [u8; 3],
    /// Packets over budget within `ban_window_ns` that ban a source.
    pub ban_after_excess: u32,
    /// Auth failures (401/403/407 sent) within `auth_window_ns` that ban.
    pub auth_max: u32,
    pub ban_window_ns: u64,
    /// First ban's length; doubles for each repeat, up to the maximum.
    pub ban_duration_ns: u64,
    pub ban_max_duration_ns: u64,
    pub auth_window_ns: u64,
    /// International dialling prefixes ("00", "011").
    pub intl: crate::dialled::IntlPrefixes,
    /// Classes the destination policy applies to: bit 0 trusted, bit
    /// 1 + p the profile p.
    pub dest_applies: u32,
    /// 1: international numbers must match an allow rule.
    pub dest_allow_only: u8,
    pub _pad2: [u8; 7],
}

/// The `dest_applies` bit of the trusted class, and of a profile.
pub const DEST_APPLIES_TRUSTED: u32 = 1;
#[inline(always)]
pub const fn dest_applies_profile(profile: u8) -> u32 {
    1 << (1 + profile as u32)
}

impl FilterConfig {
    /// An all-zero config watches no port, so an attached program with no
    /// config yet passes everything.
    pub const EMPTY: FilterConfig = FilterConfig {
        ports: [0; MAX_PORTS],
        port_count: 0,
        default_action: DEFAULT_ACTION_DROP,
        mode: MODE_ENFORCE,
        default_class: CLASS_DENY,
        default_profile: 0,
        _pad: [0; 3],
        ban_after_excess: 50,
        auth_max: 5,
        ban_window_ns: 10 * NS_PER_SEC,
        ban_duration_ns: 600 * NS_PER_SEC,
        ban_max_duration_ns: 86_400 * NS_PER_SEC,
        auth_window_ns: 60 * NS_PER_SEC,
        intl: crate::dialled::IntlPrefixes { digits: [[0; 4]; 4], lens: [0; 4] },
        dest_applies: 0,
        dest_allow_only: 0,
        _pad2: [0; 7],
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

/// An entry added by `sip-xdp ban add CIDR`.
pub const ORIGIN_BAN: u8 = 4;

pub const NS_PER_SEC: u64 = 1_000_000_000;

/// Value of the rule tries (`ALLOW_V4`, `ALLOW_V6`): the class of the
/// longest matching prefix decides.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct AllowValue {
    /// Bit set of `ORIGIN_*`.
    pub origin: u8,
    /// `CLASS_*`.
    pub class: u8,
    /// Rate profile, for [`CLASS_LIMITED`].
    pub profile: u8,
    /// For [`CLASS_BANNED`]: `CIDR_BAN_*`, what the controller has reported.
    pub ban_state: u8,
    /// For [`CLASS_BANNED`]: CLOCK_BOOTTIME second at which the controller's
    /// sweep lifts the ban (0: never).
    pub ban_expires_secs: u32,
}

impl AllowValue {
    /// Is this a prefix ban that has not ended?
    #[inline(always)]
    pub fn ban_in_force(&self, now_ns: u64) -> bool {
        self.class == CLASS_BANNED && (self.ban_expires_secs == 0 || now_ns / NS_PER_SEC < self.ban_expires_secs as u64)
    }
}

/// `AllowValue::ban_state` of a prefix ban the controller has not reported yet.
pub const CIDR_BAN_NEW: u8 = 0;
pub const CIDR_BAN_ANNOUNCED: u8 = 1;

/// Token-bucket rates of a `limited` class.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RateProfile {
    /// REGISTERs per second, and the bucket size.
    pub register_per_sec: u32,
    pub register_burst: u32,
    /// All SIP requests per second, and the bucket size.
    pub requests_per_sec: u32,
    pub requests_burst: u32,
    /// INVITEs per second, and the bucket size.
    pub invite_per_sec: u32,
    pub invite_burst: u32,
}

/// Why a source was banned.
pub const BAN_REASON_RATE: u8 = 1;
pub const BAN_REASON_AUTH: u8 = 2;
pub const BAN_REASON_MANUAL: u8 = 3;
pub const BAN_REASON_SCANNER: u8 = 4;

/// Ban states: dropped while `ACTIVE` and unexpired; the entry stays after
/// expiry as the source's history, so a repeat offender's ban doubles.
pub const BAN_ACTIVE: u8 = 1;
pub const BAN_EXPIRED: u8 = 2;
/// Lifted with `sip-xdp ban del`; the controller reports and removes it.
pub const BAN_LIFTED: u8 = 3;

/// A single address's ban.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BanEntry {
    /// CLOCK_BOOTTIME ns at which the ban ends.
    pub expires_ns: u64,
    pub banned_at_ns: u64,
    /// Packets dropped since the ban began.
    pub dropped: u64,
    /// Bans of this source so far, this one included.
    pub offenses: u32,
    /// `BAN_REASON_*`.
    pub reason: u8,
    /// `BAN_ACTIVE`, `BAN_EXPIRED` or `BAN_LIFTED`.
    pub state: u8,
    /// Set once the controller has reported the ban (kernel bans are
    /// reported through the ring buffer at once; CLI bans by the sweep).
    pub announced: u8,
    pub _pad: u8,
}

impl BanEntry {
    #[inline(always)]
    pub fn in_force(&self, now_ns: u64) -> bool {
        self.state == BAN_ACTIVE && self.expires_ns > now_ns
    }
}

/// Authentication failures sent to one remote address.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct AuthState {
    pub failures: u32,
    pub _pad: u32,
    pub window_start_ns: u64,
}

pub const EVENT_BAN: u8 = 1;
/// Monitor mode: the source would have been banned.
pub const EVENT_WOULD_BAN: u8 = 2;
pub const EVENT_EXPIRE: u8 = 3;
pub const EVENT_UNBAN: u8 = 4;
/// An INVITE dropped by the destination policy (`number` is set).
pub const EVENT_DEST_BLOCK: u8 = 5;

/// What the kernel tells the controller through the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Event {
    pub kind: u8,
    /// `BAN_REASON_*`.
    pub reason: u8,
    pub _pad: [u8; 2],
    pub offenses: u32,
    pub addr: [u8; 16],
    pub duration_ns: u64,
    /// CLOCK_BOOTTIME ns.
    pub at_ns: u64,
    /// For [`EVENT_DEST_BLOCK`]: the E.164 digits dialled.
    pub number: [u8; 20],
    pub number_len: u8,
    /// For [`EVENT_DEST_BLOCK`]: the drop reason (`Reason` as u8).
    pub drop_reason: u8,
    pub _pad2: [u8; 2],
}

/// Key of the per-source table: the source address, IPv4 as an
/// IPv4-mapped IPv6 address (`::ffff:a.b.c.d`).
pub type SourceKey = [u8; 16];

/// Per-source counters for traffic to SIP ports, and the token buckets and
/// excess count of `limited` sources.
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
    /// Token buckets, in nano-tokens (one request costs `NS_PER_SEC`).
    pub register_tokens: u64,
    pub request_tokens: u64,
    pub invite_tokens: u64,
    /// When the buckets were last refilled; 0 for new (full) buckets.
    pub refilled_ns: u64,
    /// Start of the current excess-counting window.
    pub excess_since_ns: u64,
    /// Packets over budget in the current window.
    pub excess: u32,
    /// Requests searched for scanner fingerprints so far.
    pub ua_scans: u32,
    /// International INVITEs admitted by the destination policy, and their
    /// estimated cost in thousandths (for the spend-anomaly detector).
    pub intl_invites: u64,
    pub intl_cost_milli: u64,
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

/// Whether a source key is an IPv4 address (IPv4-mapped IPv6).
#[inline(always)]
pub fn is_v4_mapped(a: &SourceKey) -> bool {
    a[0] | a[1] | a[2] | a[3] | a[4] | a[5] | a[6] | a[7] | a[8] | a[9] == 0 && a[10] == 0xff && a[11] == 0xff
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
    unsafe impl aya::Pod for RateProfile {}
    unsafe impl aya::Pod for BanEntry {}
    unsafe impl aya::Pod for AuthState {}
    unsafe impl aya::Pod for Event {}
    unsafe impl aya::Pod for DestRule {}
    unsafe impl aya::Pod for crate::fingerprint::Fingerprint {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn layouts_have_no_implicit_padding() {
        assert_eq!(size_of::<FilterConfig>(), 2 * MAX_PORTS + 8 + 8 + 32 + 32);
        assert_eq!(size_of::<AllowValue>(), 8);
        assert_eq!(size_of::<SourceStats>(), 104);
        assert_eq!(size_of::<RateProfile>(), 24);
        assert_eq!(size_of::<BanEntry>(), 32);
        assert_eq!(size_of::<AuthState>(), 16);
        assert_eq!(size_of::<Event>(), 64);
        assert_eq!(size_of::<DestRule>(), 8);
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
