//! `cargo xtask setup`: everything a fresh Debian 12 machine with stable and
//! nightly Rust needs to build and test sip-xdp. Each step checks first and
//! does nothing when already done.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{anyhow, Context as _};

use crate::{output, run_cmd, step, vm};

/// Debian packages the tests and the benchmark use: the SIP server,
/// clients and attack tools of the end-to-end layer, Prometheus (server and
/// promtool), iproute2 for namespaces and veth pairs, ethtool for veth
/// offloads, what sip-xdp is compared with: nftables, iptables with
/// ipset, and fail2ban, and the fleet's store: redis-server and redis-cli.
/// For the package: dpkg-dev (cargo-deb's dpkg-shlibdeps computes
/// Depends), and what the package test checks its contents with: systemd
/// (systemd-analyze verify), man-db and groff-base (the man pages render),
/// zsh and fish (their completions load). For the integrations: the TLS
/// and HTTP client modules of Kamailio, openssl (the test's certificate),
/// python3 (the tests' SIP/TLS client: Debian's SIPp has no TLS), curl
/// (the API's client, and fail2ban's action) and crowdsec (its Local API).
/// The VM runners' own are in [`vm::HOST_PACKAGES`] (the kernel matrix)
/// and `system_vm::HOST_PACKAGES` (the package test).
const DEBIAN_PACKAGES: &[&str] = &[
    "kamailio",
    "sip-tester",
    "sipsak",
    "sipvicious",
    "prometheus",
    "iproute2",
    "ethtool",
    "nftables",
    "iptables",
    "ipset",
    "fail2ban",
    "redis-server",
    "redis-tools",
    "dpkg-dev",
    "systemd",
    "man-db",
    "groff-base",
    "zsh",
    "fish",
    "kamailio-tls-modules",
    "kamailio-utils-modules",
    "openssl",
    "python3",
    "curl",
    "crowdsec",
];
/// The cargo-deb release `cargo xtask package` was written against.
const CARGO_DEB_VERSION: &str = "3.8.0";
/// The bpf-linker release known to build against the nightly's LLVM 22.
const BPF_LINKER_VERSION: &str = "0.13.0";
/// Where the LLVM symlinks bpf-linker loads at run time live (they must
/// outlast the build).
const LLVM_LINK_ROOT: &str = "/opt/sip-xdp/llvm";

pub fn all() -> anyhow::Result<()> {
    step("setup 1/6: nightly toolchain");
    nightly()?;
    step("setup 2/6: rust-src for the nightly (the eBPF crate builds core itself)");
    rust_src()?;
    step("setup 3/6: bpf-linker against the nightly's own LLVM");
    bpf_linker()?;
    step("setup 4/6: cargo-deb (cargo xtask package)");
    cargo_deb()?;
    step("setup 5/6: Debian packages for the tests and the package");
    debian_packages()?;
    step("setup 6/6: Debian's kernels for the kernel matrix (downloaded and unpacked, never installed)");
    for kernel in vm::kernels()? {
        eprintln!("    present: {} in {}", kernel.package, kernel.root.display());
    }
    Ok(())
}

/// Any cargo-deb that runs will do; a missing one is built from source
/// with its own lock file (a minute or two).
fn cargo_deb() -> anyhow::Result<()> {
    if let Ok(version) = output(Command::new("cargo").args(["deb", "--version"])) {
        eprintln!("    present: {}", version.trim());
        return Ok(());
    }
    eprintln!("    building cargo-deb {CARGO_DEB_VERSION} (a minute or two)");
    run_cmd(Command::new("cargo").args(["install", "--locked", "cargo-deb", "--version", CARGO_DEB_VERSION]))?;
    output(Command::new("cargo").args(["deb", "--version"])).context("the freshly built cargo-deb does not run")?;
    Ok(())
}

fn nightly() -> anyhow::Result<()> {
    match output(Command::new("rustc").args(["+nightly", "--version"])) {
        Ok(v) => {
            eprintln!("    present: {}", v.trim());
            Ok(())
        }
        Err(_) => {
            eprintln!("    installing the nightly toolchain");
            run_cmd(Command::new("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal"]))
        }
    }
}

fn rust_src() -> anyhow::Result<()> {
    let installed =
        output(Command::new("rustup").args(["component", "list", "--toolchain", "nightly", "--installed"]))?;
    if installed.lines().any(|l| l.starts_with("rust-src")) {
        eprintln!("    present");
        return Ok(());
    }
    run_cmd(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))
}

/// The nightly's shared LLVM library, e.g. `libLLVM.so.22.1-rust-1.97.0-nightly`.
fn nightly_llvm() -> anyhow::Result<(PathBuf, u32)> {
    let sysroot = output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))?;
    let lib_dir = Path::new(sysroot.trim()).join("lib");
    let lib = std::fs::read_dir(&lib_dir)
        .with_context(|| format!("cannot list {}", lib_dir.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libLLVM.so.")))
        .ok_or_else(|| anyhow!("no libLLVM.so.* in {}", lib_dir.display()))?;
    let name = lib.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
    let major = name
        .trim_start_matches("libLLVM.so.")
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| anyhow!("cannot read the LLVM version from {name}"))?;
    Ok((lib, major))
}

fn cargo_bin(name: &str) -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cargo"));
    home.join("bin").join(name)
}

fn bpf_linker() -> anyhow::Result<()> {
    let (llvm, major) = nightly_llvm()?;
    let llvm_name = llvm.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
    let linker = cargo_bin("bpf-linker");
    // Usable if it runs and resolves exactly this nightly's LLVM.
    if linker.exists() {
        let ldd = output(Command::new("ldd").arg(&linker)).unwrap_or_default();
        let resolved = ldd.lines().any(|l| l.contains(&llvm_name) && !l.contains("not found"));
        if resolved && output(Command::new(&linker).arg("--version")).is_ok() {
            eprintln!("    present: {} (LLVM {major}, {llvm_name})", linker.display());
            return Ok(());
        }
        eprintln!("    {} does not load {llvm_name}: rebuilding it", linker.display());
    }
    let prefix = Path::new(LLVM_LINK_ROOT).join(&llvm_name);
    let lib = prefix.join("lib");
    std::fs::create_dir_all(&lib).with_context(|| format!("cannot create {}", lib.display()))?;
    // One name to link against, and the library's own name, which is what
    // the built binary's runpath (this directory) will look for.
    for link in [lib.join("libLLVM.so"), lib.join(&llvm_name)] {
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&llvm, &link).with_context(|| format!("cannot link {}", link.display()))?;
    }
    eprintln!("    building bpf-linker {BPF_LINKER_VERSION} against {} (about a minute)", llvm.display());
    run_cmd(
        Command::new("cargo")
            .args(["+nightly", "install", "bpf-linker", "--version", BPF_LINKER_VERSION, "--force"])
            .args(["--no-default-features", "--features", &format!("llvm-{major}")])
            .env("LLVM_PREFIX", &prefix),
    )?;
    output(Command::new(&linker).arg("--version")).context("the freshly built bpf-linker does not run")?;
    Ok(())
}

/// Debian's crowdsec registers with CrowdSec's central API while it is
/// configured, which fails without the internet and leaves the package
/// half-installed. The tests run the Local API alone, with no central
/// API, so placeholder credentials for it are written first: the package
/// then leaves them alone. A half-configured crowdsec from an earlier
/// attempt is configured again.
fn crowdsec_offline() -> anyhow::Result<()> {
    let credentials = Path::new("/etc/crowdsec/online_api_credentials.yaml");
    if !credentials.metadata().is_ok_and(|m| m.len() > 0) {
        eprintln!("    crowdsec: no central API on this machine ({})", credentials.display());
        std::fs::create_dir_all("/etc/crowdsec").context("cannot create /etc/crowdsec")?;
        std::fs::write(
            credentials,
            "# Written by sip-xdp's test setup: this machine has no central API, so\n\
             # the package configures offline. The tests run the Local API alone.\n\
             url: https://api.crowdsec.net/\nlogin: offline\npassword: offline\n",
        )
        .with_context(|| format!("cannot write {}", credentials.display()))?;
    }
    run_cmd(Command::new("dpkg").args(["--configure", "-a"]).env("DEBIAN_FRONTEND", "noninteractive"))
}

fn debian_packages() -> anyhow::Result<()> {
    // Both VM runners need qemu: each package once.
    let mut wanted: Vec<&str> = Vec::new();
    for package in DEBIAN_PACKAGES.iter().chain(vm::HOST_PACKAGES).chain(crate::system_vm::HOST_PACKAGES) {
        if !wanted.contains(package) {
            wanted.push(package);
        }
    }
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|p| {
            output(Command::new("dpkg-query").args(["-W", "-f=${Status}", p]))
                .map(|s| !s.contains("install ok installed"))
                .unwrap_or(true)
        })
        .collect();
    if missing.is_empty() {
        eprintln!("    present: {}", wanted.join(", "));
        return Ok(());
    }
    eprintln!("    installing {}", missing.join(", "));
    if missing.contains(&"crowdsec") {
        crowdsec_offline()?;
    }
    run_cmd(Command::new("apt-get").args(["update", "-q"]))?;
    run_cmd(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}
