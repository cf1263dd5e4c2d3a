//! The kernel stamps times with CLOCK_BOOTTIME (`bpf_ktime_get_boot_ns`);
//! people read wall-clock times.

use std::time::{Duration, SystemTime};

pub const NS_PER_SEC: u64 = 1_000_000_000;

/// CLOCK_BOOTTIME now, in ns.
pub fn boottime_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * NS_PER_SEC + ts.tv_nsec as u64
}

/// The wall-clock time of boot-clock instant `at_ns`, given the boot clock
/// now.
pub fn wall_clock_of(at_ns: u64, now_boot_ns: u64) -> SystemTime {
    SystemTime::now() - Duration::from_nanos(now_boot_ns.saturating_sub(at_ns))
}
