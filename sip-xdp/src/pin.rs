//! The pin directory: where a running instance's maps and links live on
//! bpffs, so CLI commands and a restarted controller can find them.
//!
//! Layout: `DIR/maps/<MAP_NAME>`, `DIR/links/<interface>` (XDP) and
//! `DIR/egress/<interface>` (TC), interface names with dots escaped.

use std::{
    ffi::CString,
    io,
    os::{fd::AsRawFd, unix::ffi::OsStrExt},
    path::{Path, PathBuf},
};

use anyhow::{bail, Context as _};
use sip_xdp_common::registry::names::SIP_CONFIG;

pub use sip_xdp_cli::DEFAULT_PIN_DIR;
/// Where bpffs is normally mounted.
const STANDARD_BPFFS: &str = "/sys/fs/bpf";
/// `f_type` of a bpffs mount (linux/magic.h).
const BPF_FS_MAGIC: i64 = 0xcafe4a11;

#[derive(Clone, Debug)]
pub struct PinDir {
    root: PathBuf,
}

impl PinDir {
    pub fn new(root: impl Into<PathBuf>) -> PinDir {
        PinDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn map_path(&self, map: &str) -> PathBuf {
        self.root.join("maps").join(map)
    }

    /// Taken by every writer of the allowlist index (`allow_index`).
    pub fn index_lock_dir(&self) -> PathBuf {
        self.root.join("index-lock")
    }

    pub fn links_dir(&self) -> PathBuf {
        self.root.join("links")
    }

    /// The XDP (ingress) link of an interface.
    pub fn link_path(&self, interface: &str) -> PathBuf {
        self.links_dir().join(pin_name(interface))
    }

    /// The TC egress link of an interface.
    pub fn egress_link_path(&self, interface: &str) -> PathBuf {
        self.root.join("egress").join(pin_name(interface))
    }

    /// Interfaces with a pinned link, i.e. where the filter is in force.
    pub fn pinned_links(&self) -> Vec<String> {
        interfaces_in(&self.links_dir())
    }

    /// Interfaces with a pinned TC egress link (TCX).
    pub fn pinned_egress_links(&self) -> Vec<String> {
        interfaces_in(&self.root.join("egress"))
    }

    /// For CLI commands: fails with a clear message unless an instance's
    /// maps are pinned here.
    pub fn require_instance(&self) -> anyhow::Result<()> {
        if self.map_path(SIP_CONFIG).exists() {
            return Ok(());
        }
        let mut msg = format!("no sip-xdp instance pinned at {}", self.root.display());
        if !is_bpffs(&self.root).unwrap_or(false) && self.root.starts_with("/sys/fs/bpf") {
            msg.push_str(
                " (/sys/fs/bpf is not mounted in this mount namespace; under `ip netns exec`, \
                 pass the --pin-dir the controller was started with, on a bpffs mounted outside /sys)",
            );
        }
        bail!(msg)
    }

    /// For `run`: makes sure the directory exists on bpffs, mounting a bpffs
    /// on it if it is not on one (as under `ip netns exec`, which remounts
    /// /sys). Returns true if this call mounted it.
    pub fn prepare(&self) -> anyhow::Result<bool> {
        let existing = nearest_existing(&self.root).unwrap_or_else(|| PathBuf::from("/"));
        let on_bpffs = is_bpffs(&existing).with_context(|| format!("cannot stat {}", existing.display()))?;
        let mut mounted = false;
        if !on_bpffs && existing == Path::new(STANDARD_BPFFS) {
            // Nothing can be created inside an unmounted /sys/fs/bpf (it is
            // sysfs): mount the bpffs at its standard place, as systemd would.
            mount_bpffs(&existing).with_context(|| format!("cannot mount bpffs on {}", existing.display()))?;
            mounted = true;
        }
        std::fs::create_dir_all(&self.root)
            .with_context(|| format!("cannot create pin directory {}", self.root.display()))?;
        if !on_bpffs && !mounted {
            mount_bpffs(&self.root).with_context(|| format!("cannot mount bpffs on {}", self.root.display()))?;
            mounted = true;
        }
        for sub in ["maps", "links", "egress"] {
            let dir = self.root.join(sub);
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        Ok(mounted)
    }

    /// Takes an exclusive lock on the directory for the life of the
    /// returned file, so two controllers never manage the same maps.
    pub fn lock(&self) -> anyhow::Result<std::fs::File> {
        let dir = std::fs::File::open(&self.root).with_context(|| format!("cannot open {}", self.root.display()))?;
        // SAFETY: flock on a valid fd we own.
        if unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::WouldBlock {
                bail!("another `sip-xdp run` is already managing {}", self.root.display());
            }
            return Err(err).with_context(|| format!("cannot lock {}", self.root.display()));
        }
        Ok(dir)
    }
}

/// bpffs refuses names with a dot (VLAN interfaces have them): `%`-escape
/// dots and the escape character itself.
fn pin_name(interface: &str) -> String {
    interface.replace('%', "%25").replace('.', "%2e")
}

/// The interfaces named by the pins in `dir`, sorted.
fn interfaces_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .map(|n| interface_of(&n))
        .collect();
    names.sort();
    names
}

fn interface_of(pin_name: &str) -> String {
    pin_name.replace("%2e", ".").replace("%25", "%")
}

fn nearest_existing(path: &Path) -> Option<PathBuf> {
    path.ancestors().find(|p| p.exists()).map(Path::to_path_buf)
}

pub fn is_bpffs(path: &Path) -> io::Result<bool> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid NUL-terminated path and st a valid out pointer.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_type as i64 == BPF_FS_MAGIC)
}

fn mount_bpffs(path: &Path) -> io::Result<()> {
    let target = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let source = c"bpffs";
    let fstype = c"bpf";
    let options = c"mode=0700";
    // SAFETY: all pointers are valid NUL-terminated strings.
    let rc = unsafe { libc::mount(source.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, options.as_ptr().cast()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_names_escape_dots_and_round_trip() {
        for name in ["eth0", "eth0.100", "a%2eb", "bond0.10.20"] {
            let pinned = pin_name(name);
            assert!(!pinned.contains('.'), "{pinned}");
            assert_eq!(interface_of(&pinned), name);
        }
    }
}
