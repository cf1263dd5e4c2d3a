//! Types and pure logic shared by the sip-xdp eBPF programs and the
//! controller.
//!
//! Everything here is `no_std` and allocation-free so the same code runs in
//! the kernel (compiled to BPF) and on the host, where it is unit-tested. The
//! kernel program gathers inputs (parsed headers, map lookups) and applies the
//! verdict; the decision itself lives in [`verdict`].
#![no_std]

pub mod allow_index;
pub mod counters;
pub mod dialled;
pub mod fingerprint;
pub mod limits;
pub mod maps;
pub mod sip;
pub mod verdict;

pub use counters::{Action, Reason};
