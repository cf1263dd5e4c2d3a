//! `cargo xtask`: setup, build, run and test sip-xdp. Every step says what
//! it is doing; setup is idempotent and fast when there is nothing to do.

mod setup;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build, run and test sip-xdp")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what building and testing need: rust-src for the nightly,
    /// bpf-linker built against the nightly's LLVM, Debian packages.
    Setup,
    /// Build the controller with the embedded XDP program.
    Build {
        #[arg(long)]
        release: bool,
    },
    /// Set up if needed, build (release), then run `sip-xdp ARGS`.
    Run {
        /// Arguments for sip-xdp, after `--`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up if needed, then run every test layer: host tests, verdict
    /// tables (BPF_PROG_TEST_RUN) and end-to-end tests in namespaces.
    Test,
    /// Set up if needed, then benchmark: cost per packet against a
    /// parse-only baseline, allowlist scaling, a veth flood against
    /// nftables, iptables+ipset and an XDP drop-everything ceiling, time to
    /// ban against fail2ban, and a trusted trunk's registrations under the
    /// flood. Writes target/bench/report.md and report.json. Needs root;
    /// about 20 minutes (--quick: under 3).
    Bench {
        /// A short run (few sources, trials and seconds): checks the
        /// machinery, not the figures.
        #[arg(long)]
        quick: bool,
        /// Only these sections (comma-separated, 1-5); the report is partial.
        #[arg(long)]
        sections: Option<String>,
    },
    /// Set up if needed, then run a lab of namespaces on this machine
    /// (Kamailio, sip-xdp, Prometheus, a trunk and an attacker) with a live
    /// summary; removes it on exit or Ctrl-C. Needs root.
    Demo {
        /// How long the attack runs, in seconds.
        #[arg(long, default_value_t = 60)]
        duration: u64,
    },
}

fn main() {
    if let Err(err) = run(Cli::parse()) {
        eprintln!("xtask: error: {err:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let root = workspace_root();
    match cli.command {
        Task::Setup => setup::all(),
        Task::Build { release } => build(&root, release).map(|_| ()),
        Task::Run { args } => {
            setup::all()?;
            let bin = build(&root, true)?;
            step(&format!("running {} {}", bin.display(), args.join(" ")));
            let status = Command::new(&bin).args(&args).status().with_context(|| format!("cannot run {}", bin.display()))?;
            std::process::exit(status.code().unwrap_or(1));
        }
        Task::Test => test(&root),
        Task::Bench { quick, sections } => {
            setup::all()?;
            let bin = build(&root, false)?;
            step("benchmarking");
            let mut cmd = cargo();
            cmd.current_dir(&root).args(["run", "--quiet", "--release", "--package", "sip-xdp-tests", "--bin", "sip-xdp-bench", "--"]);
            if quick {
                cmd.arg("--quick");
            }
            if let Some(sections) = sections {
                cmd.args(["--sections", &sections]);
            }
            run_cmd(cmd.env("SIP_XDP_BIN", &bin))
        }
        Task::Demo { duration } => {
            setup::all()?;
            let bin = build(&root, false)?;
            step("starting the demo lab");
            run_cmd(
                cargo()
                    .current_dir(&root)
                    .args(["run", "--quiet", "--package", "sip-xdp-tests", "--bin", "sip-xdp-demo", "--"])
                    .args(["--duration", &duration.to_string()])
                    .env("SIP_XDP_BIN", &bin),
            )
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

pub fn step(what: &str) {
    eprintln!("==> {what}");
}

/// Runs a command with inherited output; fails if it fails.
pub fn run_cmd(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd.status().with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn build(root: &Path, release: bool) -> anyhow::Result<PathBuf> {
    step(&format!("building sip-xdp ({}) with its XDP program", if release { "release" } else { "debug" }));
    let mut cmd = cargo();
    cmd.current_dir(root).args(["build", "--package", "sip-xdp"]);
    if release {
        cmd.arg("--release");
    }
    run_cmd(&mut cmd)?;
    let bin = root.join("target").join(if release { "release" } else { "debug" }).join("sip-xdp");
    eprintln!("    built {}", bin.display());
    Ok(bin)
}

fn test(root: &Path) -> anyhow::Result<()> {
    setup::all()?;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the verdict and end-to-end layers load XDP programs and create namespaces: run as root");
    }
    let bin = build(root, false)?;
    step("layer 1/3: host tests (classifier, verdict function, config, metrics, dashboard and alert rules)");
    run_cmd(cargo().current_dir(root).args(["test", "--workspace", "--exclude", "sip-xdp-tests", "--exclude", "sip-xdp-ebpf"]))?;
    run_cmd(cargo().current_dir(root).args(["test", "--package", "sip-xdp-tests", "--test", "observability"]))?;
    step("layer 2/3: verdict tables through BPF_PROG_TEST_RUN (XDP ingress, TC egress)");
    run_cmd(cargo().current_dir(root).args(["test", "--package", "sip-xdp-tests", "--test", "verdicts", "--test", "limits", "--test", "destinations"]))?;
    step("layer 3/3: end to end in network namespaces (Kamailio, SIPp, sipvicious, Prometheus)");
    run_cmd(
        cargo()
            .current_dir(root)
            .args(["test", "--package", "sip-xdp-tests", "--test", "end_to_end", "--test", "bans_end_to_end", "--test", "metrics_end_to_end", "--test", "toll_fraud_end_to_end"])
            .env("SIP_XDP_BIN", &bin),
    )?;
    step("benchmark smoke: `cargo xtask bench --quick` runs every section and writes a complete report");
    run_cmd(cargo().current_dir(root).args(["test", "--package", "sip-xdp-tests", "--test", "bench_smoke", "--", "--nocapture"]).env("SIP_XDP_BIN", &bin))?;
    step("all test layers passed");
    Ok(())
}
