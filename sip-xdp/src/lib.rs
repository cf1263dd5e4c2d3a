//! The sip-xdp controller as a library: the binary in `main.rs` is a thin
//! CLI over it, and the privileged tests load the same object through it.

pub mod allow_index;
pub mod allowlist;
pub mod anomaly;
pub mod bans;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod error;
pub mod events;
pub mod intl;
pub mod loader;
pub mod maps;
pub mod metrics;
pub mod pin;
