//! Compiles the test programs (`tests/ebpf`: the benchmark's baseline,
//! generator and ceiling) for the BPF target, as the controller's build
//! script compiles the shipped ones, so the tests can load them.
use anyhow::{anyhow, Context as _};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR not set")?;
    let root = std::path::Path::new(&manifest_dir);
    let ebpf_dir = root.join("ebpf");
    let root_dir = ebpf_dir.to_str().ok_or_else(|| anyhow!("non-UTF-8 path {}", ebpf_dir.display()))?;
    // The test programs use the shipped crate's parsers.
    println!("cargo:rerun-if-changed={}", root.join("../sip-xdp-ebpf/src").display());
    println!("cargo:rerun-if-changed={}", root.join("../sip-xdp-common/src").display());
    aya_build::build_ebpf([Package { name: "sip-xdp-test-ebpf", root_dir, ..Default::default() }], Toolchain::default())
        .context("building the test eBPF programs failed; run `cargo xtask setup` to install rust-src and bpf-linker")
}
