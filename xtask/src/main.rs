//! `cargo xtask`: setup, build, run and test sip-xdp. Every step says what
//! it is doing; setup is idempotent and fast when there is nothing to do.

mod kernel_matrix;
mod package;
mod setup;
mod system_vm;
mod vm;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
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
    /// Install what building, testing and packaging need: rust-src for the
    /// nightly, bpf-linker built against the nightly's LLVM, cargo-deb,
    /// Debian packages.
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
    /// tables (BPF_PROG_TEST_RUN), end-to-end tests in namespaces, the
    /// benchmark's smoke run, and the kernel matrix (verdict tables and
    /// attach tests inside Debian's 6.1 and 6.12 under qemu).
    Test,
    /// Set up if needed, build, and run tests or a script inside Debian's
    /// packaged kernels under qemu (software emulation), with this
    /// machine's root filesystem read-only under a tmpfs overlay. Needs
    /// root.
    #[command(after_help = VM_EXAMPLES)]
    Vm {
        /// Only this kernel series (default: each, all at once).
        #[arg(long, value_name = "SERIES", value_parser = ["6.1", "6.12"])]
        kernel: Option<String>,
        /// Stop a guest that runs longer than this, in seconds.
        #[arg(long, value_name = "SECS", default_value_t = kernel_matrix::GUEST_TIMEOUT.as_secs())]
        timeout: u64,
        /// After `--`: nothing for the kernel-matrix layer; a test target
        /// of tests/tests (e.g. verdict_ingress) and its arguments (test
        /// names, libtest options) for that test binary; anything else is
        /// a bash script (the words joined by spaces), run as root in the
        /// workspace with SIP_XDP_BIN set and the built sip-xdp on PATH.
        #[arg(last = true, value_name = "TEST-OR-SCRIPT")]
        args: Vec<String>,
    },
    /// Set up if needed, then benchmark: cost per packet against a
    /// parse-only baseline, allowlist scaling, a veth flood against
    /// nftables, iptables+ipset and an XDP drop-everything ceiling, time to
    /// ban against fail2ban, a trusted trunk's registrations under the
    /// flood, and a fleet's ban propagation through Redis. Writes target/bench/report.md and report.json. Needs root;
    /// about 20 minutes (--quick: under 3).
    Bench {
        /// A short run (few sources, trials and seconds): checks the
        /// machinery, not the figures.
        #[arg(long)]
        quick: bool,
        /// Only these sections (comma-separated, 1-6); the report is partial.
        #[arg(long)]
        sections: Option<String>,
    },
    /// Set up if needed, then build the Debian package (cargo-deb) and print
    /// its path.
    ///
    /// target/debian/sip-xdp_VERSION_amd64.deb (under CARGO_TARGET_DIR if
    /// set), installable on Debian 12 with `apt-get install
    /// ./sip-xdp_*.deb`. It holds the release binary in /usr/sbin
    /// (the XDP programs built in: no toolchain needed on the server), the
    /// systemd unit sip-xdp.service, /etc/sip-xdp/sip-xdp.toml as a
    /// conffile (monitor mode, no interface: installing filters nothing),
    /// man pages and bash, zsh and fish completions generated from the CLI
    /// definition, and under /usr/share/sip-xdp/ the Grafana dashboard and
    /// provisioning files, the Prometheus rules and example configs. See
    /// README, "Install on a server".
    Package,
    /// Boot a Debian 12 system (systemd, Debian's 6.1 kernel) under qemu,
    /// install the package in it and drive the service: enforce, reload,
    /// SIGKILL and adoption, stop, purge (tests/vm/package-test.sh). Part
    /// of `test`; alone, it tests the .deb given. Needs root.
    PackageTest {
        /// The package to test.
        #[arg(long, value_name = "DEB")]
        deb: PathBuf,
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

const VM_EXAMPLES: &str = "Examples:
  cargo xtask vm                                  the kernel-matrix layer alone
  cargo xtask vm --kernel 6.1 -- verdict_ingress  one verdict table on 6.1
  cargo xtask vm -- e2e_filter sigkill --nocapture
  cargo xtask vm --kernel 6.12 -- 'uname -r; sip-xdp doctor'";

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
            let status =
                Command::new(&bin).args(&args).status().with_context(|| format!("cannot run {}", bin.display()))?;
            std::process::exit(status.code().unwrap_or(1));
        }
        Task::Test => test(&root),
        Task::Vm { kernel, timeout, args } => vm_task(&root, kernel.as_deref(), Duration::from_secs(timeout), &args),
        Task::Bench { quick, sections } => {
            setup::all()?;
            let bin = build(&root, false)?;
            step("benchmarking");
            let mut cmd = cargo();
            cmd.current_dir(&root).args([
                "run",
                "--quiet",
                "--release",
                "--package",
                "sip-xdp-tests",
                "--bin",
                "sip-xdp-bench",
                "--",
            ]);
            if quick {
                cmd.arg("--quick");
            }
            if let Some(sections) = sections {
                cmd.args(["--sections", &sections]);
            }
            run_cmd(cmd.env("SIP_XDP_BIN", &bin))
        }
        Task::Package => {
            setup::all()?;
            let deb = package::package(&root)?;
            println!("{}", deb.display());
            Ok(())
        }
        Task::PackageTest { deb } => package_test(&root, &deb),
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

/// The package layer: the .deb installed and driven in a booted Debian 12.
fn package_test(root: &Path, deb: &Path) -> anyhow::Result<()> {
    let cache = Path::new("/var/cache/sip-xdp/vm");
    let image = system_vm::image(cache)?;
    let share = root.join("target/vm/package-test");
    std::fs::create_dir_all(&share)?;
    std::fs::copy(deb, share.join("sip-xdp.deb")).with_context(|| format!("cannot read {}", deb.display()))?;
    std::fs::copy(root.join("tests/fixtures/kamailio.cfg"), share.join("kamailio.cfg"))?;
    std::fs::copy(root.join("tests/vm/package-test.sh"), share.join("script.sh"))?;
    step(&format!("package test: booting Debian 12 (kernel {}, systemd) with {}", image.release, deb.display()));
    let started = std::time::Instant::now();
    let (output, status) = system_vm::run(&image, &share, std::time::Duration::from_secs(900))?;
    eprintln!("{output}");
    step(&format!("package test: exit status {status} after {:.0?}", started.elapsed()));
    if status != 0 {
        bail!("the package test failed in the VM (console log: {})", share.join("console.log").display());
    }
    Ok(())
}

pub fn workspace_root() -> PathBuf {
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

/// Runs a command and returns its stdout; fails with its stderr if it fails.
pub fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Cargo of the nightly toolchain (the eBPF crates need it), without the
/// stable toolchain's settings this process inherited from `cargo xtask`.
fn nightly_cargo() -> Command {
    let mut cmd = Command::new("rustup");
    cmd.args(["run", "nightly", "cargo"]);
    for var in ["CARGO", "RUSTC", "RUSTC_WORKSPACE_WRAPPER", "RUSTDOC"] {
        cmd.env_remove(var);
    }
    cmd
}

/// Where cargo puts what it builds: `CARGO_TARGET_DIR` if set (relative to
/// the workspace, where every cargo command here runs), else `target/`.
fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

fn build(root: &Path, release: bool) -> anyhow::Result<PathBuf> {
    step(&format!("building sip-xdp ({}) with its XDP program", if release { "release" } else { "debug" }));
    let mut cmd = cargo();
    cmd.current_dir(root).args(["build", "--package", "sip-xdp"]);
    if release {
        cmd.arg("--release");
    }
    let bin = executables(&mut cmd, "bin")?.remove("sip-xdp").context("cargo built no sip-xdp binary")?;
    eprintln!("    built {}", bin.display());
    Ok(bin)
}

/// Runs a cargo build command and returns the executables it reports, by
/// target name, of targets of `kind` ("bin", "test"): where cargo put
/// them, which depends on CARGO_TARGET_DIR and the profile. Diagnostics
/// and progress go to the terminal as usual.
pub fn executables(cmd: &mut Command, kind: &str) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    cmd.arg("--message-format=json-render-diagnostics").stdout(Stdio::piped());
    let out = cmd.output().with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed ({})", out.status);
    }
    Ok(artifacts(&String::from_utf8_lossy(&out.stdout), kind))
}

/// The executables in cargo's JSON messages, by target name.
fn artifacts(messages: &str, kind: &str) -> BTreeMap<String, PathBuf> {
    let mut found = BTreeMap::new();
    for message in messages.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()) {
        let target = &message["target"];
        let of_kind = target["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == kind));
        if let (true, Some(name), Some(exe)) = (of_kind, target["name"].as_str(), message["executable"].as_str()) {
            found.insert(name.to_string(), PathBuf::from(exe));
        }
    }
    found
}

/// The layers of the integration tests, in the order they run: every file
/// in `tests/tests/` belongs to the layer its name starts with, so a new
/// file runs by being there, and a file that fits no layer stops the run.
const LAYERS: [(&str, &str); 4] = [
    (
        "host_",
        "host checks of the shipped files: promtool on the alert rules, the dashboard's structure, the Debian package",
    ),
    ("verdict_", "verdict tables through BPF_PROG_TEST_RUN (XDP ingress, TC egress), golden CLI and metrics output"),
    ("e2e_", "end to end in network namespaces (Kamailio, SIPp, sipvicious, Prometheus)"),
    ("bench_", "benchmark smoke: `cargo xtask bench --quick` runs every section and writes a complete report"),
];

/// The integration test targets of each layer, from the files present.
fn test_targets(root: &Path) -> anyhow::Result<Vec<Vec<String>>> {
    let dir = root.join("tests").join("tests");
    let mut layers = vec![Vec::new(); LAYERS.len()];
    let entries = std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        // Cargo builds a test target of each `*.rs` file and of each
        // directory with a `main.rs`.
        let target = match name.strip_suffix(".rs") {
            Some(stem) => stem,
            None if path.join("main.rs").exists() => name,
            None => continue,
        };
        match LAYERS.iter().position(|(prefix, _)| target.starts_with(prefix)) {
            Some(layer) => layers[layer].push(target.to_string()),
            None => bail!(
                "{} belongs to no test layer: name it {}...",
                path.display(),
                LAYERS.iter().map(|(p, _)| *p).collect::<Vec<_>>().join("..., ")
            ),
        }
    }
    layers.iter_mut().for_each(|l| l.sort());
    Ok(layers)
}

fn test(root: &Path) -> anyhow::Result<()> {
    setup::all()?;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the verdict and end-to-end layers load XDP programs and create namespaces: run as root");
    }
    let layers = test_targets(root)?;
    step("style: rustfmt and clippy (host crates, then the eBPF crates for the BPF target)");
    run_cmd(cargo().current_dir(root).args(["fmt", "--all", "--check"]))?;
    run_cmd(cargo().current_dir(root).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--exclude",
        "sip-xdp-ebpf",
        "--exclude",
        "sip-xdp-test-ebpf",
        "--",
        "--deny",
        "warnings",
    ]))?;
    run_cmd(
        nightly_cargo()
            .current_dir(root)
            .args(["clippy", "--release", "--target", "bpfel-unknown-none", "-Z", "build-std=core"])
            .args(["--package", "sip-xdp-ebpf", "--package", "sip-xdp-test-ebpf", "--", "--deny", "warnings"]),
    )?;
    let bin = build(root, false)?;
    step("unit tests of every crate (classifier, verdict function, config, metrics)");
    run_cmd(
        cargo()
            .current_dir(root)
            .args(["test", "--workspace"])
            .args(["sip-xdp-tests", "sip-xdp-ebpf", "sip-xdp-test-ebpf"].iter().flat_map(|p| ["--exclude", p])),
    )?;
    for ((prefix, what), targets) in LAYERS.iter().zip(&layers) {
        step(&format!("{what}: {}", targets.join(", ")));
        let mut cmd = cargo();
        cmd.current_dir(root).args(["test", "--package", "sip-xdp-tests"]);
        for target in targets {
            cmd.args(["--test", target]);
        }
        if *prefix == "bench_" {
            // Its progress lines say where a minute goes.
            cmd.args(["--", "--nocapture"]);
        }
        run_cmd(cmd.env("SIP_XDP_BIN", &bin))?;
    }
    kernel_matrix(root, &layers[VERDICT_LAYER], &bin, None)?;
    step("package: the .deb built, then installed and driven in a booted Debian 12");
    let deb = package::package(root)?;
    package_test(root, &deb)?;
    step("all test layers passed");
    Ok(())
}

/// Where the verdict tables are in [`LAYERS`]: the kernel matrix runs them.
const VERDICT_LAYER: usize = 1;

/// The kernel-matrix layer, on the kernels `which` names (default: all).
fn kernel_matrix(root: &Path, verdict_targets: &[String], bin: &Path, which: Option<&str>) -> anyhow::Result<()> {
    let kernels = kernel_matrix::select(vm::kernels()?, which)?;
    let targets: Vec<&str> =
        verdict_targets.iter().map(String::as_str).chain(kernel_matrix::E2E.iter().map(|(t, _)| *t)).collect();
    step("kernel matrix: the test binaries it runs");
    let binaries = kernel_matrix::build_tests(root, &targets)?;
    let jobs = kernel_matrix::layer_jobs(verdict_targets, &|target| {
        binaries.get(target).cloned().with_context(|| format!("cargo built no test binary {target}"))
    })?;
    kernel_matrix::run_layer(root, bin, kernels, &jobs)
}

/// `cargo xtask vm`.
fn vm_task(root: &Path, which: Option<&str>, timeout: Duration, args: &[String]) -> anyhow::Result<()> {
    setup::all()?;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the guests' kernels are cached in /var/cache and the tests inside load programs: run as root");
    }
    let layers = test_targets(root)?;
    let bin = build(root, false)?;
    let all_targets: Vec<String> = layers.concat();
    match kernel_matrix::vm_work(args, &all_targets) {
        kernel_matrix::VmWork::Layer => kernel_matrix(root, &layers[VERDICT_LAYER], &bin, which),
        kernel_matrix::VmWork::Test { target, args } => {
            let binary = kernel_matrix::build_tests(root, &[&target])?
                .remove(&target)
                .with_context(|| format!("cargo built no test binary {target}"))?;
            let kernels = kernel_matrix::select(vm::kernels()?, which)?;
            step(&format!("{target} in {}", kernels.iter().map(|k| k.version.as_str()).collect::<Vec<_>>().join(", ")));
            kernel_matrix::run_script(&kernels, &kernel_matrix::test_script(root, &bin, &binary, &args), timeout)
        }
        kernel_matrix::VmWork::Script(script) => {
            let kernels = kernel_matrix::select(vm::kernels()?, which)?;
            step(&format!(
                "the script in {}",
                kernels.iter().map(|k| k.version.as_str()).collect::<Vec<_>>().join(", ")
            ));
            let bin_dir = bin.parent().unwrap_or(root);
            let prelude = format!(
                "export SIP_XDP_BIN={} PATH={}:$PATH\ncd {}\n",
                vm::shell_quote(&bin.to_string_lossy()),
                vm::shell_quote(&bin_dir.to_string_lossy()),
                vm::shell_quote(&root.to_string_lossy())
            );
            kernel_matrix::run_script(&kernels, &format!("{prelude}{script}\n"), timeout)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(files: &[&str]) -> PathBuf {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let root = std::env::temp_dir().join(format!("xtask-layers-{}-{n}", std::process::id()));
        let dir = root.join("tests").join("tests");
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&dir).unwrap();
        for f in files {
            if let Some(d) = f.strip_suffix('/') {
                std::fs::create_dir_all(dir.join(d)).unwrap();
                std::fs::write(dir.join(d).join("main.rs"), "").unwrap();
            } else {
                std::fs::write(dir.join(f), "").unwrap();
            }
        }
        root
    }

    #[test]
    fn every_test_file_lands_in_its_layer() {
        let root = layout(&[
            "verdict_b.rs",
            "e2e_a.rs",
            "verdict_a.rs",
            "host_x.rs",
            "bench_smoke.rs",
            "e2e_dir/",
            "notes.txt",
        ]);
        let layers = test_targets(&root).unwrap();
        assert_eq!(
            layers,
            [vec!["host_x"], vec!["verdict_a", "verdict_b"], vec!["e2e_a", "e2e_dir"], vec!["bench_smoke"]]
        );
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn executables_are_taken_from_cargos_messages_by_kind() {
        let messages = r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"sip_xdp_tests"},"executable":null}
{"reason":"compiler-artifact","target":{"kind":["test"],"name":"verdict_pins"},"executable":"/t/debug/deps/verdict_pins-1f"}
{"reason":"compiler-artifact","target":{"kind":["bin"],"name":"sip-xdp"},"executable":"/t/debug/sip-xdp"}
{"reason":"build-finished","success":true}
not json"#;
        let tests = artifacts(messages, "test");
        assert_eq!(
            tests.into_iter().collect::<Vec<_>>(),
            [("verdict_pins".into(), "/t/debug/deps/verdict_pins-1f".into())]
        );
        assert_eq!(artifacts(messages, "bin")["sip-xdp"], PathBuf::from("/t/debug/sip-xdp"));
    }

    #[test]
    fn a_file_of_no_layer_stops_the_run() {
        let root = layout(&["verdict_a.rs", "fleet.rs"]);
        let err = test_targets(&root).unwrap_err().to_string();
        assert!(
            err.contains("fleet.rs belongs to no test layer: name it host_..., verdict_..., e2e_..., bench_..."),
            "{err}"
        );
        std::fs::remove_dir_all(root).unwrap();
    }
}
