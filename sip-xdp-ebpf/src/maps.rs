//! The programs' maps, declared from the registry in `sip-xdp-common`
//! (`registry::pinned_maps!` and `private_maps!`), and the small accessors
//! every part of the programs uses. None is declared pinned here: the
//! controller pins them under its pin directory (so tests can load private
//! copies).

use aya_ebpf::{
    macros::map,
    maps::{lpm_trie::LpmTrie, Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use core::intrinsics::{atomic_xadd, AtomicOrdering};
use sip_xdp_common::{kernel_config::FilterConfig, pinned_maps, private_maps};

/// One `#[map]` static per registry entry.
macro_rules! map_static {
    ($(#[$doc:meta])* $name:ident = RingBuf<$t:ty>[$cap:expr]) => {
        $(#[$doc])*
        #[map]
        pub static $name: RingBuf = RingBuf::with_byte_size($cap, 0);
    };
    ($(#[$doc:meta])* $name:ident = $kind:ident<$($t:ty),+>[$cap:expr]) => {
        $(#[$doc])*
        #[map]
        pub static $name: $kind<$($t),+> = $kind::with_max_entries($cap, 0);
    };
}

macro_rules! declare_pinned {
    ($( $(#[$doc:meta])* $field:ident: $name:ident = $kind:ident<$($ty:ty),+>[$cap:expr], $policy:ident $(, formerly $old:ident)?; )*) => {
        $( map_static!($(#[$doc])* $name = $kind<$($ty),+>[$cap]); )*
    };
}

macro_rules! declare_private {
    ($( $(#[$doc:meta])* $field:ident: $name:ident = $kind:ident<$($ty:ty),+>[$cap:expr]; )*) => {
        $( map_static!($(#[$doc])* $name = $kind<$($ty),+>[$cap]); )*
    };
}

pinned_maps!(declare_pinned);
private_maps!(declare_private);

/// The filter settings (a config the controller has not written yet
/// watches no port).
#[inline(always)]
pub fn config() -> &'static FilterConfig {
    match SIP_CONFIG.get(0) {
        Some(cfg) => cfg,
        None => &FilterConfig::EMPTY,
    }
}

/// Bumps a slot of the counters map (per CPU: no other CPU writes it).
#[inline(always)]
pub fn count(slot: u32) {
    if let Some(c) = SIP_COUNTS.get_ptr_mut(slot) {
        unsafe { *c += 1 };
    }
}

/// A copy, on this function's stack, of a value a global BPF function was
/// handed by pointer. Kernels before 6.2 take only the stack, packets or
/// map values as a map key, not the plain memory a global function's
/// pointer argument is to the verifier; the opaque copy keeps LLVM from
/// passing the argument itself in the copy's place.
#[inline(always)]
pub fn on_stack<T: Copy>(value: &T) -> T {
    core::hint::black_box(*value)
}

/// Adds to a counter that other CPUs update too.
#[inline(always)]
pub unsafe fn add(counter: *mut u64, value: u64) {
    if value != 0 {
        // The BPF target has no compare-and-swap, so `AtomicU64::fetch_add`
        // is unavailable; the intrinsic lowers to BPF's atomic add.
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(counter, value) };
    }
}
