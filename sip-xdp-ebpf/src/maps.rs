//! The program's maps. None is declared pinned: the controller pins them
//! under its pin directory (so tests can load private copies).

use aya_ebpf::{
    macros::map,
    maps::{lpm_trie::LpmTrie, Array, LruHashMap, PerCpuArray},
};
use sip_xdp_common::{
    counters::STATS_ENTRIES,
    maps::{
        AllowValue, Counter, FilterConfig, FragKey, FragVerdict, SourceKey, SourceStats,
        ALLOW_CAPACITY, DEFAULT_SOURCES_CAPACITY, FRAGS_CAPACITY,
    },
};

#[map(name = "SIP_CONFIG")]
pub static SIP_CONFIG: Array<FilterConfig> = Array::with_max_entries(1, 0);

#[map(name = "ALLOW_V4")]
pub static ALLOW_V4: LpmTrie<[u8; 4], AllowValue> = LpmTrie::with_max_entries(ALLOW_CAPACITY, 0);

#[map(name = "ALLOW_V6")]
pub static ALLOW_V6: LpmTrie<[u8; 16], AllowValue> = LpmTrie::with_max_entries(ALLOW_CAPACITY, 0);

#[map(name = "SIP_STATS")]
pub static SIP_STATS: PerCpuArray<Counter> = PerCpuArray::with_max_entries(STATS_ENTRIES, 0);

/// Resized at load time from `sources_table_size`.
#[map(name = "SIP_SOURCES")]
pub static SIP_SOURCES: LruHashMap<SourceKey, SourceStats> =
    LruHashMap::with_max_entries(DEFAULT_SOURCES_CAPACITY, 0);

#[map(name = "SIP_FRAGS")]
pub static SIP_FRAGS: LruHashMap<FragKey, FragVerdict> =
    LruHashMap::with_max_entries(FRAGS_CAPACITY, 0);
