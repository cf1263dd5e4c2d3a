//! Command-line interface. The command and flag names are the interface
//! operators' scripts use: keep them stable.
//!
//! A crate of its own, with clap as its only dependency, so that xtask can
//! render man pages and shell completions from this very definition without
//! building the controller (whose build script compiles the eBPF object and
//! needs the toolchain `cargo xtask setup` installs). The controller
//! re-exports it as `sip_xdp::cli`.

use std::path::PathBuf;

use clap::{Args, CommandFactory as _, Parser, Subcommand, ValueEnum};

/// Where `run` pins the filter's maps and links unless told otherwise.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/sip-xdp";

/// The whole command line as clap sees it (every subcommand, flag and help
/// text): what the man pages and completions are generated from.
pub fn command() -> clap::Command {
    Cli::command()
}

#[derive(Parser, Debug)]
#[command(
    name = "sip-xdp",
    version,
    about = "XDP filter that protects SIP servers: only allowlisted sources reach the SIP ports",
    long_about = "sip-xdp drops traffic to SIP ports (default 5060 and 5061) from sources that are not \
on the allowlist, in the kernel's XDP hook, before the network stack sees it.\n\n\
`sip-xdp run` loads the filter, attaches it and pins its state under the pin directory; the other \
commands work on that pinned state while it runs. Exit status: 0 success, 1 runtime error, 2 bad \
config or argument, 75 (`run` only) handed over on SIGUSR2 with the filter left in force."
)]
pub struct Cli {
    /// Directory on bpffs where the running instance pins its maps and links.
    #[arg(long, global = true, value_name = "DIR", default_value = DEFAULT_PIN_DIR)]
    pub pin_dir: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Load the filter, attach it to the interfaces and keep it configured.
    ///
    /// Runs until SIGINT/SIGTERM, which detach it. SIGHUP reloads the
    /// config. SIGUSR2 hands over: exit with status 75, leaving the filter
    /// attached and pinned for the next start. If an earlier instance left
    /// the filter pinned, it is adopted without a moment unfiltered.
    Run(RunArgs),
    /// Validate a config file (and the allowlist files it names) without
    /// loading anything.
    CheckConfig {
        /// The TOML config file.
        file: PathBuf,
    },
    /// Show or change the allowlist of the running instance.
    #[command(subcommand)]
    Allow(AllowCommand),
    /// Show, add or lift bans on the running instance.
    #[command(subcommand)]
    Ban(BanCommand),
    /// International-call blocks set by the spend-anomaly detector.
    #[command(subcommand)]
    Intl(IntlCommand),
    /// Global counters: packets and bytes per action and reason.
    Stats {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// What this host offers the filter: the kernel features `run` needs
    /// (each with the first Linux release that has it), privileges, bpffs,
    /// and for each interface its driver and what XDP program is attached.
    /// Exit status 1 if `run` could not start here.
    Doctor {
        /// Take the interfaces from this config (default: the packaged
        /// config, if present).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Interface to check (repeatable); replaces the config's.
        #[arg(long = "iface", value_name = "IF")]
        interfaces: Vec<String>,
        /// Attach a pass-all XDP program in native mode for a moment, on
        /// interfaces with none attached, to learn if the driver supports
        /// it. Some drivers reset the link when XDP comes or goes: not on
        /// a live edge at peak.
        #[arg(long)]
        try_attach: bool,
    },
    /// Take the filter off the interfaces when no controller runs.
    ///
    /// A controller that crashed, was killed or handed over (SIGUSR2)
    /// leaves the filter in force; this removes the pinned links and the
    /// clsact egress filters. Refused while a `run` manages the pin
    /// directory: stopping it detaches. The maps (runtime allowlist, bans)
    /// stay pinned.
    Detach,
    /// The busiest sources of traffic to the SIP ports.
    Sources {
        /// How many sources to show, by packets.
        #[arg(long, value_name = "N", default_value_t = 20)]
        top: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The TOML config file.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Interface to attach to (repeatable); replaces `interfaces` from the config.
    #[arg(long = "iface", value_name = "IF")]
    pub interfaces: Vec<String>,
    /// XDP attach mode: native (driver) with fallback to skb, native only, or skb (generic) only.
    #[arg(long, value_enum, default_value_t = XdpModeArg::Auto)]
    pub xdp_mode: XdpModeArg,
    /// How the egress observer attaches: a TCX link where the kernel has
    /// TCX (Linux 6.6) with a clsact filter otherwise, TCX only, or a
    /// clsact filter only.
    #[arg(long, value_enum, default_value_t = EgressAttachArg::Auto)]
    pub egress_attach: EgressAttachArg,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum XdpModeArg {
    Auto,
    Native,
    Skb,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum EgressAttachArg {
    Auto,
    Tcx,
    Clsact,
}

#[derive(Subcommand, Debug)]
pub enum AllowCommand {
    /// Allow a CIDR prefix or address now. It stays until `allow del`, across reloads and restarts.
    Add {
        /// e.g. 198.51.100.0/24, 2001:db8::/32 or 192.0.2.10
        cidr: String,
    },
    /// Remove a prefix (exactly as listed) from the allowlist now.
    Del { cidr: String },
    /// List the allowlist with where each entry came from.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum BanCommand {
    /// Ban an address or a CIDR prefix now (trusted sources cannot be banned).
    Add {
        /// e.g. 203.0.113.7 or 203.0.113.0/24
        target: String,
        /// Length of the ban; default: the running config's ban.duration_secs.
        #[arg(long, value_name = "SECS")]
        duration: Option<u64>,
    },
    /// Lift a ban now.
    Del { target: String },
    /// Active bans: reason, remaining time, packets dropped since the ban.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum IntlCommand {
    /// Sources whose international calls are blocked, and for how long.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Lift a source's block now.
    Unblock { source: String },
}

/// Sections of the man pages that the flags' help cannot hold, by page
/// (`sip-xdp`, `sip-xdp-run`, ...): heading, then paragraphs. Kept here,
/// beside the commands they describe.
pub const MAN_SECTIONS: &[(&str, &str, &[&str])] = &[
    (
        "sip-xdp-run",
        "SIGNALS",
        &[
            "SIGHUP: re-read the config file. A broken file is reported and the running config stays in force.",
            "SIGINT, SIGTERM: detach the filter from every interface and exit (status 0). The maps stay pinned, \
             so the next start finds the runtime allowlist and bans again.",
            "SIGUSR2: hand over. Exit with status 75 leaving the filter attached and pinned; the next run adopts it \
             in place, so the interfaces are never unfiltered. The packaged unit restarts on status 75, and package \
             upgrades hand over this way.",
            "SIGKILL or a crash: the kernel keeps filtering with the last state; the next run adopts it.",
        ],
    ),
    (
        "sip-xdp-run",
        "SYSTEMD",
        &["Under a Type=notify unit (NOTIFY_SOCKET set), run sends READY=1 once every interface is attached and \
             the config applied, RELOADING=1 and READY=1 around a SIGHUP reload, and STOPPING=1 before it exits, \
             each with a STATUS= line."],
    ),
    (
        "sip-xdp-run",
        "ENVIRONMENT",
        &["RUST_LOG: log verbosity (default info). NOTIFY_SOCKET: set by systemd, see SYSTEMD."],
    ),
    (
        "sip-xdp",
        "FILES",
        &[
            "/etc/sip-xdp/sip-xdp.toml: the config of sip-xdp.service (installed in monitor mode, attached to no \
             interface).",
            "/sys/fs/bpf/sip-xdp: the default pin directory: maps/, links/ (XDP) and egress/ (TC) of the running \
             filter.",
            "/usr/share/sip-xdp: the Grafana dashboard and provisioning files, Prometheus alert rules and scrape \
             config, example configs.",
            "/usr/share/doc/sip-xdp/README.md: the config reference, metrics, and how restarts and upgrades \
             keep the filter in force.",
        ],
    ),
    (
        "sip-xdp",
        "SEE ALSO",
        &["systemctl(1), journalctl(1): the service is sip-xdp.service; its log is journalctl -u sip-xdp."],
    ),
];
