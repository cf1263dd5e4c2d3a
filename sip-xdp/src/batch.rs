//! Reading and writing whole array maps in a few `bpf()` calls
//! (`BPF_MAP_LOOKUP_BATCH`, `BPF_MAP_UPDATE_BATCH`, Linux 5.6), where a
//! loop of single lookups would make one call per element: the rule index
//! has half a million words, and a start that walks it one by one takes
//! seconds (much more under emulation).

use std::os::fd::{AsFd, AsRawFd};

use anyhow::Context as _;
use aya::maps::MapData;

const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;

/// The `batch` member of the kernel's `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Elements per call: large enough that a start makes a handful of calls,
/// small enough that the buffers stay modest.
const CHUNK: u32 = 65_536;

fn bpf(cmd: libc::c_long, attr: &mut BatchAttr) -> std::io::Result<()> {
    // SAFETY: `attr` is a valid `bpf_attr` prefix for the batch commands;
    // the kernel reads and writes only within its size and the buffers it
    // points at, which the callers size for `count` elements.
    let rc = unsafe {
        libc::syscall(libc::SYS_bpf, cmd, attr as *mut BatchAttr, std::mem::size_of::<BatchAttr>() as libc::c_uint)
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Every element of an array map of `len` u64 values, in index order.
pub fn read_u64_array(map: &MapData, len: u32) -> anyhow::Result<Vec<u64>> {
    let fd = map.fd().as_fd().as_raw_fd() as u32;
    let mut values = vec![0u64; len as usize];
    let mut keys = vec![0u32; CHUNK as usize];
    let mut chunk = vec![0u64; CHUNK as usize];
    let (mut next, mut first) = (0u32, true);
    loop {
        let mut attr = BatchAttr {
            in_batch: if first { 0 } else { &next as *const u32 as u64 },
            out_batch: &mut next as *mut u32 as u64,
            keys: keys.as_mut_ptr() as u64,
            values: chunk.as_mut_ptr() as u64,
            count: CHUNK,
            map_fd: fd,
            ..BatchAttr::default()
        };
        let done = match bpf(BPF_MAP_LOOKUP_BATCH, &mut attr) {
            Ok(()) => false,
            // The last batch: what it filled (`count`) is valid.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => true,
            Err(e) => return Err(e).context("BPF_MAP_LOOKUP_BATCH (Linux 5.6 or later)"),
        };
        for i in 0..attr.count as usize {
            if let Some(slot) = values.get_mut(keys[i] as usize) {
                *slot = chunk[i];
            }
        }
        if done || attr.count == 0 {
            return Ok(values);
        }
        first = false;
    }
}

/// Sets `(index, value)` pairs of an array map of u64 values.
pub fn write_u64_array(map: &MapData, entries: &[(u32, u64)]) -> anyhow::Result<()> {
    let fd = map.fd().as_fd().as_raw_fd() as u32;
    for part in entries.chunks(CHUNK as usize) {
        let keys: Vec<u32> = part.iter().map(|(k, _)| *k).collect();
        let values: Vec<u64> = part.iter().map(|(_, v)| *v).collect();
        let mut attr = BatchAttr {
            keys: keys.as_ptr() as u64,
            values: values.as_ptr() as u64,
            count: part.len() as u32,
            map_fd: fd,
            ..BatchAttr::default()
        };
        bpf(BPF_MAP_UPDATE_BATCH, &mut attr).context("BPF_MAP_UPDATE_BATCH (Linux 5.6 or later)")?;
    }
    Ok(())
}
