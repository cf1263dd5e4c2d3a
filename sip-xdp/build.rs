//! Compiles the eBPF crate for the BPF target with the nightly toolchain
//! (through bpf-linker) so the controller can embed the object.
use anyhow::{anyhow, Context as _};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR not set")?;
    let ebpf_dir = std::path::Path::new(&manifest_dir)
        .parent()
        .ok_or_else(|| anyhow!("controller crate has no parent directory"))?
        .join("sip-xdp-ebpf");
    let root_dir = ebpf_dir.to_str().ok_or_else(|| anyhow!("non-UTF-8 path {}", ebpf_dir.display()))?;
    println!("cargo:rerun-if-changed={}", ebpf_dir.join("../sip-xdp-common").display());
    aya_build::build_ebpf([Package { name: "sip-xdp-ebpf", root_dir, ..Default::default() }], Toolchain::default())
        .context("building the eBPF program failed; run `cargo xtask setup` to install rust-src and bpf-linker")
}
