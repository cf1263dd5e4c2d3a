//! Debian's packaged kernels under qemu: the machinery of the kernel-matrix
//! test layer and of `cargo xtask vm`.
//!
//! * [`kernels`] (in `kernels.rs`) keeps the newest Debian 12 kernel of
//!   each series in [`SERIES`] unpacked in `/var/cache/sip-xdp/vm/`.
//! * [`run`] (in `qemu.rs`) boots one of them under
//!   `qemu-system-x86_64 -accel tcg` with an initramfs of our own
//!   (`initramfs.rs`) and runs a bash script as root inside. The guest's
//!   root is this machine's `/`, shared read-only over virtio-9p under a
//!   tmpfs overlay, so the host's binaries, libraries and test executables
//!   run there at the same paths and nothing the guest writes reaches the
//!   host. It mounts fresh proc, sysfs, devtmpfs, devpts, tmpfs on /tmp
//!   /run /var/tmp /dev/shm, bpffs, tracefs, debugfs and cgroup2, binds
//!   the kernel's modules on /lib/modules (so `modprobe` and autoloading
//!   work) and has no network card: traffic stays on its loopback and its
//!   own namespaces.
//!
//! Software emulation, not KVM: the machines this runs on offer no KVM
//! that Debian's kernels boot under.
//!
//! Needs root (the cache lives in /var/cache) and [`HOST_PACKAGES`].

mod initramfs;
mod kernels;
mod qemu;

use std::process::Command;

use anyhow::{bail, Context as _, Result};

use crate::output;

pub use kernels::{kernels, Kernel, SERIES};
pub use qemu::{run, shell_quote, tail_lines, VmRun};

/// Debian packages the runner needs on the host: qemu (with SeaBIOS and
/// the PVH option ROM), the busybox of the initramfs, depmod/modprobe (also
/// used by the guest, whose root is the host's), xz to decompress 6.12's
/// modules for the initramfs and 6.1's kernel, zstd for 6.12's kernel.
pub const HOST_PACKAGES: &[&str] = &["qemu-system-x86", "busybox-static", "kmod", "xz-utils", "zstd"];

/// Runs a command, showing its output only if it fails.
fn run_quiet(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
