//! The registry of the programs' maps: one entry per map, the only place
//! a map's name, kind, key and value types and capacity are written. The
//! eBPF crate declares its statics from it, the controller derives its
//! typed handles and the pin list from it, and the loader checks pinned
//! maps against the shapes it gives. A new map is one entry here.
//!
//! The lists are macros that hand their entries to a macro of the
//! caller's (`pinned_maps!(declare)`), because each side turns an entry
//! into different code: a `#[map]` static in the kernel, an
//! `aya::maps::*` handle in the controller, a [`MapSpec`] here.
//!
//! Entry syntax: `field: NAME = Kind<Key, Value>[capacity], OnMismatch;`
//! (`Array` and `PerCpuArray` take the value type only), optionally with
//! `, formerly OLD_NAME` for a map that was pinned under another name.

/// Prefixes per rule trie (allocated as entries are added).
pub const RULES_CAPACITY: u32 = 1_048_576;
/// Default capacity of the per-source table; `[filter] sources_table_size`
/// changes it at load time.
pub const DEFAULT_SOURCES_CAPACITY: u32 = 65_536;
/// Datagrams whose fragments are tracked at once.
pub const FRAGS_CAPACITY: u32 = 16_384;
/// Banned prefixes per family (escalations, `sip-xdp ban add CIDR`).
pub const PREFIX_BANS_CAPACITY: u32 = 16_384;
/// Addresses in the ban table and in the auth-failure table.
pub const BANS_CAPACITY: u32 = 65_536;
pub const AUTH_CAPACITY: u32 = 65_536;
/// Requests awaiting a final response.
pub const PENDING_CAPACITY: u32 = 65_536;
/// TCP connections whose stream is followed at once.
pub const STREAMS_CAPACITY: u32 = 65_536;
/// TCP handshakes the server answered and the client has yet to complete.
pub const HANDSHAKES_CAPACITY: u32 = 16_384;
/// Destination rules (and their counters).
pub const DEST_RULES_CAPACITY: u32 = 16_384;
/// Sources whose international calls can be blocked at once.
pub const INTL_BLOCKS_CAPACITY: u32 = 4096;
/// Size of the event ring buffer in bytes (a power of two, page multiple).
pub const EVENTS_BYTES: u32 = 256 * 1024;

/// The maps pinned under `PINDIR/maps/`, which outlive a controller and
/// are adopted by the next one.
#[macro_export]
macro_rules! pinned_maps {
    ($callback:ident) => {
        $callback! {
            /// Global filter settings, at index 0; rewritten at every start.
            config: SIP_CONFIG = Array<$crate::kernel_config::FilterConfig>[1], Recreate;
            /// IPv4 rules (allowlist, class and prefix-ban rules): the class
            /// of the longest matching prefix decides.
            rules_v4: SIP_RULES_V4 = LpmTrie<[u8; 4], $crate::rules::RuleValue>[$crate::registry::RULES_CAPACITY], Keep, formerly ALLOW_V4;
            /// IPv6 rules.
            rules_v6: SIP_RULES_V6 = LpmTrie<[u8; 16], $crate::rules::RuleValue>[$crate::registry::RULES_CAPACITY], Keep, formerly ALLOW_V6;
            /// A bit per address bucket that some rule may cover
            /// (`allow_index`); rebuilt from the tries at every start.
            rule_index: SIP_RULE_INDEX = Array<u64>[$crate::allow_index::INDEX_MAP_WORDS], Recreate, formerly ALLOW_INDEX;
            /// Per-CPU `{packets, bytes}` per `(action, reason)`.
            stats: SIP_STATS = PerCpuArray<$crate::map_types::Counter>[$crate::reasons::STATS_ENTRIES], Recreate;
            /// Per-source counters and token buckets (LRU); sized by
            /// `[filter] sources_table_size` at load time.
            sources: SIP_SOURCES = LruHashMap<$crate::map_types::SourceKey, $crate::map_types::SourceStats>[$crate::registry::DEFAULT_SOURCES_CAPACITY], Recreate;
            /// Verdicts of first fragments, for the later ones (LRU).
            frags: SIP_FRAGS = LruHashMap<$crate::map_types::FragKey, $crate::map_types::FragVerdict>[$crate::registry::FRAGS_CAPACITY], Recreate;
            /// Rate profiles of limited classes, by profile number;
            /// rewritten at every start.
            profiles: SIP_PROFILES = Array<$crate::map_types::RateProfile>[$crate::kernel_config::MAX_PROFILES], Recreate;
            /// Bans of single addresses (LRU), written by the kernel and the
            /// CLI. Losing them forgives, never blocks.
            bans: SIP_BANS = LruHashMap<$crate::map_types::SourceKey, $crate::bans::BanEntry>[$crate::registry::BANS_CAPACITY], Recreate;
            /// Banned IPv4 prefixes (escalations, `sip-xdp ban add CIDR`):
            /// apart from the rules, so no rule inside a banned prefix, nor
            /// one of the same prefix, shadows the ban (a trusted source is
            /// never banned: its rule is asked first).
            ban_prefixes_v4: SIP_BAN_PREFIXES_V4 = LpmTrie<[u8; 4], $crate::rules::RuleValue>[$crate::registry::PREFIX_BANS_CAPACITY], Keep;
            /// Banned IPv6 prefixes.
            ban_prefixes_v6: SIP_BAN_PREFIXES_V6 = LpmTrie<[u8; 16], $crate::rules::RuleValue>[$crate::registry::PREFIX_BANS_CAPACITY], Keep;
            /// Authentication failures per remote address (LRU), counted on
            /// egress.
            auth: SIP_AUTH = LruHashMap<$crate::map_types::SourceKey, $crate::accounting::AuthState>[$crate::registry::AUTH_CAPACITY], Recreate;
            /// Requests awaiting their final response, by peer, Call-ID and
            /// CSeq (LRU): what the egress program links responses to.
            pending: SIP_PENDING = LruHashMap<$crate::accounting::PendingKey, $crate::accounting::PendingRequest>[$crate::registry::PENDING_CAPACITY], Recreate;
            /// TCP connections from sources judged by what they send: where
            /// each stream is, so every message is read whole and in order
            /// (`stream`; LRU).
            streams: SIP_STREAMS = LruHashMap<$crate::stream::StreamKey, $crate::stream::StreamState>[$crate::registry::STREAMS_CAPACITY], Recreate;
            /// TCP handshakes the server answered (its SYN-ACK, on egress),
            /// until the client's ACK completes them (LRU).
            handshakes: SIP_HANDSHAKES = LruHashMap<$crate::stream::StreamKey, $crate::stream::Handshake>[$crate::registry::HANDSHAKES_CAPACITY], Recreate;
            /// Per-CPU counters of SIP methods and response codes (`counts`).
            counts: SIP_COUNTS = PerCpuArray<u64>[$crate::counts::COUNTS_ENTRIES], Recreate;
            /// Destination rules: LPM trie over the ASCII digits of E.164
            /// numbers; rewritten at every start.
            dest_rules: SIP_DEST_RULES = LpmTrie<[u8; $crate::dialled::MAX_DIGITS], $crate::map_types::DestRule>[$crate::registry::DEST_RULES_CAPACITY], Recreate;
            /// Per-CPU INVITEs blocked, by destination rule id.
            dest_counts: SIP_DEST_COUNTS = PerCpuArray<u64>[$crate::registry::DEST_RULES_CAPACITY], Recreate;
            /// Scanner fingerprints; rewritten at every start.
            fingerprints: SIP_FINGERPRINTS = Array<$crate::fingerprint::Fingerprint>[$crate::fingerprint::MAX_FINGERPRINTS as u32], Recreate;
            /// Sources whose international calls are blocked (spend anomaly),
            /// with the CLOCK_BOOTTIME ns the block ends (0: lifted, to be
            /// reported). Losing them lifts blocks early, never blocks more.
            intl_blocks: SIP_INTL_BLOCKS = HashMap<$crate::map_types::SourceKey, u64>[$crate::registry::INTL_BLOCKS_CAPACITY], Recreate;
        }
    };
}

/// The maps each loaded object keeps to itself: the event ring buffer
/// (each controller reads its own) and per-CPU scratch space.
#[macro_export]
macro_rules! private_maps {
    ($callback:ident) => {
        $callback! {
            /// Events for the controller (bans, destination blocks).
            events: SIP_EVENTS = RingBuf<$crate::events::Event>[$crate::registry::EVENTS_BYTES];
            /// Per-CPU room for the message being read: slot 0 egress, slot
            /// 1 ingress.
            message: SIP_MESSAGE = PerCpuArray<[u8; $crate::message::MESSAGE_WINDOW]>[2];
            /// Per-CPU state of the message reader, by the same slots. In
            /// a map, not on the stack: the verifier does not follow values
            /// in map memory, so the reading loop's step is checked once
            /// instead of once per state the reader passes through.
            reader: SIP_READER = PerCpuArray<$crate::message::MessageReader>[2];
            /// Per-CPU room to build a pending request's key and value, by
            /// the same slots.
            pending_buf: SIP_PENDING_BUF = PerCpuArray<$crate::accounting::PendingEntry>[2];
            /// Per-CPU state of the ingress program's walk over a packet's
            /// messages.
            walk: SIP_WALK = PerCpuArray<$crate::map_types::WalkState>[1];
            /// Per-CPU stand-in for the per-source entry of a source that
            /// could not get one (the table refused the insert): what is
            /// read of it goes here, charged to nobody.
            spare_stats: SIP_SPARE_STATS = PerCpuArray<$crate::map_types::SourceStats>[1];
            /// Per-CPU copy of the stream a segment belongs to, worked on
            /// while the segment is judged and written back if it passes.
            stream_buf: SIP_STREAM_BUF = PerCpuArray<$crate::stream::StreamEntry>[1];
        }
    };
}

/// The kinds of map the registry uses (named as in aya-ebpf).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapKind {
    Array,
    PerCpuArray,
    HashMap,
    LruHashMap,
    LpmTrie,
    RingBuf,
}

/// What the loader does with a pinned map whose shape is not this build's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnMismatch {
    /// Holds what cannot be recreated (runtime rules): a map of another
    /// capacity is carried over into a new one; any other difference
    /// stops the start.
    Keep,
    /// Counters, caches or what the controller rewrites at every start:
    /// recreated.
    Recreate,
}

/// A map as the kernel sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapSpec {
    pub name: &'static str,
    pub kind: MapKind,
    pub key_size: u32,
    pub value_size: u32,
    /// Entries (bytes for a ring buffer).
    pub capacity: u32,
    pub on_mismatch: OnMismatch,
    /// The name an earlier version pinned it under.
    pub formerly: Option<&'static str>,
}

/// `(key size, value size)` as the kernel reports them.
#[doc(hidden)]
#[macro_export]
macro_rules! map_sizes {
    (Array<$v:ty>) => {
        (4, ::core::mem::size_of::<$v>() as u32)
    };
    (PerCpuArray<$v:ty>) => {
        (4, ::core::mem::size_of::<$v>() as u32)
    };
    (HashMap<$k:ty, $v:ty>) => {
        (::core::mem::size_of::<$k>() as u32, ::core::mem::size_of::<$v>() as u32)
    };
    (LruHashMap<$k:ty, $v:ty>) => {
        (::core::mem::size_of::<$k>() as u32, ::core::mem::size_of::<$v>() as u32)
    };
    // The key is prefixed with its prefix length (u32).
    (LpmTrie<$k:ty, $v:ty>) => {
        (4 + ::core::mem::size_of::<$k>() as u32, ::core::mem::size_of::<$v>() as u32)
    };
    (RingBuf<$v:ty>) => {
        (0, 0)
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! formerly {
    () => {
        None
    };
    ($old:ident) => {
        Some(stringify!($old))
    };
}

macro_rules! pinned_specs {
    ($( $(#[$doc:meta])* $field:ident: $name:ident = $kind:ident<$($ty:ty),+>[$cap:expr], $policy:ident $(, formerly $old:ident)?; )*) => {
        /// Every pinned map, in registry order.
        pub const PINNED_MAPS: &[MapSpec] = &[$(
            MapSpec {
                name: stringify!($name),
                kind: MapKind::$kind,
                key_size: $crate::map_sizes!($kind<$($ty),+>).0,
                value_size: $crate::map_sizes!($kind<$($ty),+>).1,
                capacity: $cap,
                on_mismatch: OnMismatch::$policy,
                formerly: $crate::formerly!($($old)?),
            },
        )*];

        /// Map names, for code that names one map.
        pub mod names {
            $( pub const $name: &str = stringify!($name); )*
        }
    };
}

macro_rules! private_names {
    ($( $(#[$doc:meta])* $field:ident: $name:ident = $kind:ident<$($ty:ty),+>[$cap:expr]; )*) => {
        /// Names of the maps each object keeps to itself.
        pub mod private_names {
            $( pub const $name: &str = stringify!($name); )*
        }
    };
}

pinned_maps!(pinned_specs);
private_maps!(private_names);

/// The registry entry of a pinned map.
pub fn pinned(name: &str) -> Option<&'static MapSpec> {
    PINNED_MAPS.iter().find(|m| m.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        for (i, m) in PINNED_MAPS.iter().enumerate() {
            assert!(PINNED_MAPS[..i].iter().all(|o| o.name != m.name && o.formerly != Some(m.name)), "{}", m.name);
        }
    }

    #[test]
    fn shapes_follow_the_types() {
        let rules = pinned(names::SIP_RULES_V4).unwrap();
        assert_eq!((rules.kind, rules.key_size, rules.value_size), (MapKind::LpmTrie, 8, 8));
        assert_eq!(rules.formerly, Some("ALLOW_V4"));
        let sources = pinned(names::SIP_SOURCES).unwrap();
        assert_eq!((sources.key_size, sources.value_size, sources.capacity), (16, 104, DEFAULT_SOURCES_CAPACITY));
        assert_eq!(pinned(names::SIP_CONFIG).unwrap().key_size, 4);
        assert_eq!(pinned(private_names::SIP_EVENTS), None, "the ring buffer is not pinned");
    }
}
