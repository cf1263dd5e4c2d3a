//! The sip-xdp controller as a library: the binary in `main.rs` is a thin
//! CLI over it, and the privileged tests load the same object through it.
//!
//! From file to kernel: `config` validates the TOML, `kernel_config` turns
//! it into the maps' form, `apply` writes it (with `rule_plan` and
//! `rule_index`), `loader` loads, pins and attaches the programs, and
//! `daemon` runs the loop of signals, kernel events and sweeps, telling
//! systemd where it stands through `systemd`. What tools outside the
//! kernel report (`api`, `crowdsec`) is applied the kernel's way by
//! `reports`. The CLI's commands
//! (`commands`, `bans`, `intl`) work on the pinned `maps`.

pub mod anomaly;
pub mod api;
pub mod apply;
pub mod attach;
pub mod bans;
pub mod batch;
pub mod clock;
pub mod commands;
pub mod config;
pub mod crowdsec;
pub mod daemon;
pub mod doctor;
pub mod error;
pub mod escalation;
pub mod events;
pub mod features;
pub mod fleet;
pub mod intl;
pub mod kernel_config;
pub mod loader;
pub mod maps;
pub mod metrics;
pub mod pin;
pub mod reports;
pub mod rule_index;
pub mod rule_plan;
pub mod rules;
pub mod systemd;

/// The command line lives in a crate of its own, so that xtask can render
/// man pages and completions from it without building the eBPF object.
pub use sip_xdp_cli as cli;
