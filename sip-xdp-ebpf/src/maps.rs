//! The programs' maps. None is declared pinned: the controller pins them
//! under its pin directory (so tests can load private copies).

use aya_ebpf::{
    macros::map,
    maps::{lpm_trie::LpmTrie, Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use sip_xdp_common::{
    allow_index::INDEX_MAP_WORDS,
    counters::STATS_ENTRIES,
    maps::{
        AllowValue, AuthState, BanEntry, Counter, FilterConfig, FragKey, FragVerdict, RateProfile,
        SourceKey, SourceStats, ALLOW_CAPACITY, AUTH_CAPACITY, BANS_CAPACITY,
        COUNTS_ENTRIES, DEFAULT_SOURCES_CAPACITY, EVENTS_BYTES, FRAGS_CAPACITY, MAX_PROFILES,
    },
    sip::RESPONSE_SCAN,
};
use sip_xdp_common::{
    dialled::{INVITE_WINDOW, MAX_DIGITS},
    fingerprint::{Fingerprint, MAX_FINGERPRINTS},
    maps::{DestRule, DEST_RULES_CAPACITY, INTL_BLOCKS_CAPACITY},
};

#[map(name = "SIP_CONFIG")]
pub static SIP_CONFIG: Array<FilterConfig> = Array::with_max_entries(1, 0);

/// Rules: the class of the longest matching prefix decides.
#[map(name = "ALLOW_V4")]
pub static ALLOW_V4: LpmTrie<[u8; 4], AllowValue> = LpmTrie::with_max_entries(ALLOW_CAPACITY, 0);

#[map(name = "ALLOW_V6")]
pub static ALLOW_V6: LpmTrie<[u8; 16], AllowValue> = LpmTrie::with_max_entries(ALLOW_CAPACITY, 0);

/// Bit per address bucket that some rule may cover (`allow_index`).
#[map(name = "ALLOW_INDEX")]
pub static ALLOW_INDEX: Array<u64> = Array::with_max_entries(INDEX_MAP_WORDS, 0);

#[map(name = "SIP_STATS")]
pub static SIP_STATS: PerCpuArray<Counter> = PerCpuArray::with_max_entries(STATS_ENTRIES, 0);

/// Resized at load time from `sources_table_size`.
#[map(name = "SIP_SOURCES")]
pub static SIP_SOURCES: LruHashMap<SourceKey, SourceStats> =
    LruHashMap::with_max_entries(DEFAULT_SOURCES_CAPACITY, 0);

#[map(name = "SIP_FRAGS")]
pub static SIP_FRAGS: LruHashMap<FragKey, FragVerdict> =
    LruHashMap::with_max_entries(FRAGS_CAPACITY, 0);

#[map(name = "SIP_PROFILES")]
pub static SIP_PROFILES: Array<RateProfile> = Array::with_max_entries(MAX_PROFILES, 0);

#[map(name = "SIP_BANS")]
pub static SIP_BANS: LruHashMap<SourceKey, BanEntry> = LruHashMap::with_max_entries(BANS_CAPACITY, 0);

#[map(name = "SIP_AUTH")]
pub static SIP_AUTH: LruHashMap<SourceKey, AuthState> = LruHashMap::with_max_entries(AUTH_CAPACITY, 0);

#[map(name = "SIP_EVENTS")]
pub static SIP_EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

#[map(name = "SIP_COUNTS")]
pub static SIP_COUNTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTS_ENTRIES, 0);

/// Bumps a `COUNT_*` slot (per CPU: no other CPU writes it).
#[inline(always)]
pub fn count(slot: u32) {
    if let Some(c) = SIP_COUNTS.get_ptr_mut(slot) {
        unsafe { *c += 1 };
    }
}

#[map(name = "SIP_DEST_RULES")]
pub static SIP_DEST_RULES: LpmTrie<[u8; MAX_DIGITS], DestRule> = LpmTrie::with_max_entries(DEST_RULES_CAPACITY, 0);

#[map(name = "SIP_DEST_COUNTS")]
pub static SIP_DEST_COUNTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(DEST_RULES_CAPACITY, 0);

#[map(name = "SIP_INTL_BLOCKS")]
pub static SIP_INTL_BLOCKS: HashMap<SourceKey, u64> = HashMap::with_max_entries(INTL_BLOCKS_CAPACITY, 0);

/// Per-CPU room for the start of an INVITE.
#[map(name = "SIP_INVITE_BUF")]
pub static SIP_INVITE_BUF: PerCpuArray<[u8; INVITE_WINDOW]> = PerCpuArray::with_max_entries(1, 0);

/// Per-CPU room for the start of a packet (too big for the BPF stack):
/// slot 0 for egress responses, slot 1 for ingress requests.
#[map(name = "SIP_SCRATCH")]
pub static SIP_SCRATCH: PerCpuArray<[u8; RESPONSE_SCAN]> = PerCpuArray::with_max_entries(2, 0);

#[map(name = "SIP_FINGERPRINTS")]
pub static SIP_FINGERPRINTS: Array<Fingerprint> = Array::with_max_entries(MAX_FINGERPRINTS as u32, 0);
