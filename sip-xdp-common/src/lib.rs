//! Types and pure logic shared by the sip-xdp eBPF programs and the
//! controller.
//!
//! Everything here is `no_std` and allocation-free so the same code runs in
//! the kernel (compiled to BPF) and on the host, where it is unit-tested. The
//! kernel program gathers inputs (parsed headers, map lookups) and applies the
//! verdict; the decision itself lives in [`verdict`].
//!
//! By role: [`registry`] lists every map; [`kernel_config`], [`rules`],
//! [`bans`], [`events`], [`map_types`] and [`counts`] are what the maps
//! hold; [`reasons`] are the verdicts' labels; [`sip`], [`dialled`] and
//! [`fingerprint`] read SIP; [`verdict`], [`limits`] and [`allow_index`] decide.
#![no_std]

mod closed_set;
mod pod;

pub mod accounting;
pub mod allow_index;
pub mod bans;
pub mod counts;
pub mod dialled;
pub mod events;
pub mod fingerprint;
pub mod kernel_config;
pub mod limits;
pub mod map_types;
pub mod message;
pub mod reasons;
pub mod registry;
pub mod rules;
pub mod sip;
pub mod stream;
pub mod verdict;

pub use closed_set::ClosedSet;
pub use reasons::{Action, Reason};
