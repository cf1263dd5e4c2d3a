//! Rebuild the eBPF object when bpf-linker changes (a new nightly means a
//! new LLVM, and `cargo xtask setup` rebuilds the linker against it).
fn main() {
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
}
