//! The guest's initramfs, built by us (once per kernel and layout, cached
//! next to the kernel): busybox-static, the modules that reach the root
//! filesystem, and a two-stage init. Stage 1 mounts the host's root
//! read-only over 9p under a tmpfs overlay, so nothing the guest does
//! reaches the host; stage 2 runs the script on that root and powers off.

use std::{
    collections::{BTreeMap, HashSet},
    fs,
    hash::{Hash, Hasher},
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _, Result};

use super::Kernel;

/// Modules the initramfs loads to reach the root filesystem: the virtio PCI
/// transport (built in on 6.12, a module on 6.1), 9p over virtio, and
/// overlayfs for the writable tmpfs layer over the read-only host root.
/// Their dependencies (virtio, virtio_ring, 9pnet, netfs, fscache, ...) come
/// from modules.dep; built-in ones are skipped.
const BOOT_MODULES: &[&str] = &["virtio_pci", "9pnet_virtio", "9p", "overlay"];
/// Loaded too if the kernel has them: a virtio RNG, so that getrandom()
/// never waits for entropy under emulation.
const OPTIONAL_BOOT_MODULES: &[&str] = &["virtio_rng"];

/// Bumped whenever the initramfs layout changes, so cached images rebuild.
const INITRAMFS_FORMAT: u32 = 3;

/// Stage 1, the initramfs's /init (busybox sh): loads the boot modules,
/// mounts the host root read-only with a tmpfs overlay as the new root,
/// mounts the pseudo and scratch filesystems into it, binds the kernel's
/// modules and the run directory, and switches to stage 2.
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /bin /sbin
/bin/busybox --install -s /bin
export PATH=/bin
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t proc proc /proc
mount -t sysfs sysfs /sys
say() { echo "sip-xdp-vm: $*"; }
fatal() {
    say "FATAL: $*"
    echo SIPXDP-VM-FATAL
    dmesg | tail -n 30
    poweroff -f
    sleep 5
    echo o > /proc/sysrq-trigger
}
for m in $(cat /modules/order); do
    insmod "/modules/$m.ko" || fatal "insmod $m"
done
for m in $(cat /modules/optional); do
    insmod "/modules/$m.ko" 2>/dev/null
done
O9P="trans=virtio,version=9p2000.L,msize=262144"
mkdir -p /share /lower /upper /newroot
mount -t 9p -o "$O9P,cache=none" sxvm_out /share || fatal "cannot mount the run directory share"
. /share/vm.env || fatal "no vm.env in the run directory"
mount -t 9p -o "$O9P,ro,cache=loose" sxvm_root /lower || fatal "cannot mount the host root"
mount -t tmpfs -o mode=0755 upper /upper
mkdir -p /upper/data /upper/work
N=/newroot
mount -t overlay -o lowerdir=/lower,upperdir=/upper/data,workdir=/upper/work overlay $N || fatal "cannot mount the overlay root"
mount -t proc proc $N/proc
mount -t sysfs sysfs $N/sys
mount -t devtmpfs devtmpfs $N/dev
mkdir -p $N/dev/pts $N/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts $N/dev/pts
mount -t tmpfs -o mode=1777 shm $N/dev/shm
mount -t tmpfs -o mode=1777 tmpfs $N/tmp
mount -t tmpfs -o mode=0755 tmpfs $N/run
mount -t tmpfs -o mode=1777 tmpfs $N/var/tmp
# A workspace (or anything the scripts name) under /tmp, /run or /var/tmp
# is hidden by those fresh mounts (CI clones into /tmp): show it again as
# an overlay of the host's copy, writable in the guest only.
for keep in "$VM_WORKSPACE" "$VM_CWD"; do
    case "$keep" in
    /tmp/?*|/run/?*|/var/tmp/?*)
        [ -d "/lower$keep" ] || continue
        grep -q " $N$keep overlay" /proc/mounts && continue
        k=/upper/keep$(echo "$keep" | tr / _)
        mkdir -p "$k/data" "$k/work" "$N$keep"
        mount -t overlay -o "lowerdir=/lower$keep,upperdir=$k/data,workdir=$k/work" overlay "$N$keep" ||
            fatal "cannot show $keep in the guest"
        ;;
    esac
done
mount -t bpf -o mode=0700 bpf $N/sys/fs/bpf || say "no bpffs"
mount -t tracefs tracefs $N/sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs $N/sys/kernel/debug 2>/dev/null
mount -t cgroup2 cgroup2 $N/sys/fs/cgroup 2>/dev/null
mkdir -p $N/lib/modules
# Read-only already: /lower is.
mount --bind "/lower$VM_MODULES" $N/lib/modules || fatal "cannot bind the modules of $VM_KERNEL"
# The guest kernel's config where bpftool and friends look for it.
mkdir -p $N/boot
cp "/lower$VM_CONFIG" "$N/boot/config-$VM_KERNEL" 2>/dev/null
mkdir -p "$N$VM_OUT"
mount --move /share "$N$VM_OUT" || fatal "cannot move the run directory share"
mkdir -p $N/.sip-xdp-vm
cp /bin/busybox /stage2 $N/.sip-xdp-vm/
umount /proc /sys /dev 2>/dev/null
exec switch_root $N /.sip-xdp-vm/busybox sh /.sip-xdp-vm/stage2
fatal "switch_root failed"
"#;

/// Stage 2, PID 1 on the new root: names the host, brings up lo, preloads
/// modules, runs the script (its output to a file in the share, which the
/// host follows: no pipe that daemons the script leaves behind could hold
/// open), records its exit status and powers off.
const STAGE2: &str = r#"B=/.sip-xdp-vm/busybox
$B hostname sip-xdp-vm
$B ip link set lo up
echo /sbin/modprobe > /proc/sys/kernel/modprobe
for m in $VM_PRELOAD; do
    /sbin/modprobe "$m" || echo "sip-xdp-vm: modprobe $m failed"
done
cd "$VM_CWD" 2>/dev/null || cd /
: > "$VM_OUT/output"
$B cat /proc/uptime > "$VM_OUT/uptime-start"
( $B sleep "$VM_TIMEOUT"; echo "sip-xdp-vm: guest-side timeout (${VM_TIMEOUT}s): powering off"; $B poweroff -f ) &
echo SIPXDP-VM-SCRIPT-START
$B env -i \
    PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root USER=root LOGNAME=root SHELL=/bin/bash TERM=dumb LANG=C.UTF-8 \
    VM_OUT="$VM_OUT" VM_KERNEL="$VM_KERNEL" \
    /bin/bash "$VM_OUT/script.sh" < /dev/null >> "$VM_OUT/output" 2>&1
RC=$?
$B cat /proc/uptime > "$VM_OUT/uptime-end"
echo $RC > "$VM_OUT/status"
echo "SIPXDP-VM-EXIT=$RC"
$B sync
$B umount "$VM_OUT" 2>/dev/null
$B poweroff -f
$B sleep 5
echo o > /proc/sysrq-trigger
"#;

/// The initramfs for `kernel`, built if missing: `initramfs-<hash>.cpio`
/// in the kernel's cache directory.
pub fn initramfs(kernel: &Kernel) -> Result<PathBuf> {
    let busybox = find_busybox()?;
    let (required, optional) =
        (resolve_modules(kernel, BOOT_MODULES, true)?, resolve_modules(kernel, OPTIONAL_BOOT_MODULES, false)?);
    let optional: Vec<PathBuf> = optional.into_iter().filter(|m| !required.contains(m)).collect();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (INITRAMFS_FORMAT, INIT, STAGE2, &required, &optional).hash(&mut hasher);
    let meta = fs::metadata(&busybox)?;
    (meta.len(), meta.modified().ok()).hash(&mut hasher);
    let path = kernel.root.join(format!("initramfs-{:016x}.cpio", hasher.finish()));
    if path.exists() {
        return Ok(path);
    }
    eprintln!("    building the initramfs for {}", kernel.version);
    let mut cpio = Cpio::default();
    for dir in ["bin", "sbin", "dev", "proc", "sys", "modules", "newroot", "lower", "upper", "share"] {
        cpio.dir(dir);
    }
    cpio.char_dev("dev/console", 0o600, 5, 1);
    cpio.char_dev("dev/null", 0o666, 1, 3);
    cpio.file("bin/busybox", 0o755, &fs::read(&busybox)?);
    cpio.symlink("bin/sh", "busybox");
    cpio.file("init", 0o755, INIT.as_bytes());
    cpio.file("stage2", 0o644, STAGE2.as_bytes());
    let mut names = |list: &[PathBuf]| -> Result<String> {
        let mut order = String::new();
        for module in list {
            let name = module_name(module);
            cpio.file(&format!("modules/{name}.ko"), 0o644, &read_module(module)?);
            order.push_str(&name);
            order.push('\n');
        }
        Ok(order)
    };
    let order = names(&required)?;
    let optional_order = names(&optional)?;
    cpio.file("modules/order", 0o644, order.as_bytes());
    cpio.file("modules/optional", 0o644, optional_order.as_bytes());
    let tmp = path.with_extension(format!("cpio.partial.{}", std::process::id()));
    fs::write(&tmp, cpio.finish())?;
    fs::rename(&tmp, &path)?;
    // Images of earlier layouts (qemu reads the image at start, so a
    // running guest does not need its file any more).
    for entry in fs::read_dir(&kernel.root)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("initramfs-") && name.ends_with(".cpio") && entry.path() != path {
            let _ = fs::remove_file(entry.path());
        }
    }
    eprintln!("    initramfs: {} ({})", path.display(), order.split_whitespace().collect::<Vec<_>>().join(" "));
    Ok(path)
}

fn find_busybox() -> Result<PathBuf> {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        let path = Path::new(p);
        if path.exists() {
            // A dynamically linked busybox would need its libraries in the
            // initramfs: insist on busybox-static.
            if has_interpreter(&fs::read(path)?) {
                bail!("{p} is dynamically linked: apt-get install busybox-static");
            }
            return Ok(path.to_path_buf());
        }
    }
    bail!("no busybox: apt-get install busybox-static")
}

/// Whether a 64-bit little-endian ELF file names a program interpreter
/// (PT_INTERP), i.e. is dynamically linked.
fn has_interpreter(elf: &[u8]) -> bool {
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u32_at = |o: usize| elf.get(o..o + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let u64_at = |o: usize| elf.get(o..o + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as usize);
    if elf.get(..5) != Some(b"\x7fELF\x02".as_slice()) {
        return true; // not what we expect: treat as unusable
    }
    let (Some(phoff), Some(size), Some(count)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38)) else { return true };
    (0..count).any(|i| u32_at(phoff + i * size) == Some(3))
}

/// The module files for `wanted` and their dependencies, in load order
/// (dependencies first); built-in modules are skipped. A module that is
/// neither is an error if `required`.
fn resolve_modules(kernel: &Kernel, wanted: &[&str], required: bool) -> Result<Vec<PathBuf>> {
    let deps = fs::read_to_string(kernel.modules_dir.join("modules.dep"))
        .context("no modules.dep (is the kernel unpacked?)")?;
    let builtin = fs::read_to_string(kernel.modules_dir.join("modules.builtin")).unwrap_or_default();
    let order =
        load_order(&deps, &builtin, wanted, required).with_context(|| format!("the modules of {}", kernel.version))?;
    Ok(order.into_iter().map(|f| kernel.modules_dir.join(f)).collect())
}

/// [`resolve_modules`] on the texts of `modules.dep` and `modules.builtin`:
/// the files (as modules.dep names them) to load, each once.
fn load_order(deps: &str, builtin: &str, wanted: &[&str], required: bool) -> Result<Vec<String>> {
    // name -> (file, the files it depends on)
    let mut table: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    for line in deps.lines() {
        let Some((module, rest)) = line.split_once(':') else { continue };
        table.insert(
            module_name(Path::new(module)),
            (module.to_string(), rest.split_whitespace().map(str::to_string).collect()),
        );
    }
    let builtin: HashSet<String> = builtin.lines().map(|l| module_name(Path::new(l))).collect();
    fn visit(
        file: &str,
        table: &BTreeMap<String, (String, Vec<String>)>,
        seen: &mut HashSet<String>,
        order: &mut Vec<String>,
    ) {
        if !seen.insert(file.to_string()) {
            return;
        }
        if let Some((_, needs)) = table.get(&module_name(Path::new(file))) {
            for need in needs {
                visit(need, table, seen, order);
            }
        }
        order.push(file.to_string());
    }
    let (mut order, mut seen) = (Vec::new(), HashSet::new());
    for want in wanted {
        let name = want.replace('-', "_");
        match table.get(&name) {
            Some((file, _)) => visit(file, &table, &mut seen, &mut order),
            None if builtin.contains(&name) => {}
            None if required => bail!("no module {want} (neither in modules.dep nor built in)"),
            None => {}
        }
    }
    Ok(order)
}

/// `kernel/fs/9p/9p.ko.xz` -> `9p`; dashes become underscores.
fn module_name(path: &Path) -> String {
    let file = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let base = file.split(".ko").next().unwrap_or(file);
    base.replace('-', "_")
}

/// A module's ELF image, decompressed (busybox's insmod hands the kernel
/// the bytes it reads).
fn read_module(path: &Path) -> Result<Vec<u8>> {
    let name = path.to_string_lossy();
    let tool = if name.ends_with(".xz") {
        Some("xz")
    } else if name.ends_with(".zst") {
        Some("zstd")
    } else if name.ends_with(".gz") {
        Some("gzip")
    } else {
        None
    };
    match tool {
        None => fs::read(path).with_context(|| format!("cannot read {}", path.display())),
        Some(tool) => {
            let out = Command::new(tool)
                .arg("-dc")
                .arg(path)
                .output()
                .with_context(|| format!("cannot run {tool} (apt-get install {tool})"))?;
            if !out.status.success() {
                bail!("{tool} -dc {} failed: {}", path.display(), String::from_utf8_lossy(&out.stderr).trim());
            }
            Ok(out.stdout)
        }
    }
}

/// A `newc` cpio archive, as the kernel unpacks it.
#[derive(Default)]
struct Cpio {
    data: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), body: &[u8]) {
        self.ino += 1;
        let name_len = name.len() + 1;
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            body.len(),
            0,
            0,
            rdev.0,
            rdev.1,
            name_len,
            0
        );
        self.data.extend_from_slice(header.as_bytes());
        self.data.extend_from_slice(name.as_bytes());
        self.data.push(0);
        self.pad();
        self.data.extend_from_slice(body);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.data.len().is_multiple_of(4) {
            self.data.push(0);
        }
    }

    fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, (0, 0), &[]);
    }

    fn file(&mut self, name: &str, perm: u32, body: &[u8]) {
        self.entry(name, 0o100000 | perm, (0, 0), body);
    }

    fn symlink(&mut self, name: &str, target: &str) {
        self.entry(name, 0o120777, (0, 0), target.as_bytes());
    }

    fn char_dev(&mut self, name: &str, perm: u32, major: u32, minor: u32) {
        self.entry(name, 0o020000 | perm, (major, minor), &[]);
    }

    fn finish(mut self) -> Vec<u8> {
        self.ino = 0;
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        // The kernel reads the archive in 512-byte blocks.
        while !self.data.len().is_multiple_of(512) {
            self.data.push(0);
        }
        self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::qemu::{MARK_EXIT, MARK_FATAL, MARK_START, ROOT_TAG, SHARE_TAG};

    const DEPS: &str = "\
kernel/fs/9p/9p.ko.xz: kernel/net/9p/9pnet.ko.xz kernel/fs/netfs/netfs.ko.xz
kernel/net/9p/9pnet_virtio.ko.xz: kernel/net/9p/9pnet.ko.xz kernel/drivers/virtio/virtio_ring.ko.xz
kernel/net/9p/9pnet.ko.xz:
kernel/fs/netfs/netfs.ko.xz: kernel/fs/fscache/fscache.ko.xz
kernel/fs/fscache/fscache.ko.xz:
kernel/drivers/virtio/virtio_ring.ko.xz:
kernel/fs/overlayfs/overlay.ko.xz:
kernel/drivers/char/hw_random/virtio-rng.ko.xz: kernel/drivers/virtio/virtio_ring.ko.xz
";
    const BUILTIN: &str = "kernel/drivers/virtio/virtio_pci.ko\n";

    #[test]
    fn modules_load_after_what_they_need_each_once_built_in_ones_not_at_all() {
        let order = load_order(DEPS, BUILTIN, &["virtio_pci", "9pnet_virtio", "9p", "overlay"], true).unwrap();
        assert_eq!(
            order,
            [
                "kernel/net/9p/9pnet.ko.xz",
                "kernel/drivers/virtio/virtio_ring.ko.xz",
                "kernel/net/9p/9pnet_virtio.ko.xz",
                "kernel/fs/fscache/fscache.ko.xz",
                "kernel/fs/netfs/netfs.ko.xz",
                "kernel/fs/9p/9p.ko.xz",
                "kernel/fs/overlayfs/overlay.ko.xz",
            ]
        );
        // Dashes and underscores name the same module.
        assert_eq!(
            load_order(DEPS, BUILTIN, &["virtio_rng"], false).unwrap().last().unwrap(),
            "kernel/drivers/char/hw_random/virtio-rng.ko.xz"
        );
    }

    #[test]
    fn a_missing_module_stops_the_build_only_if_required() {
        let err = load_order(DEPS, BUILTIN, &["9p", "vsock"], true).unwrap_err().to_string();
        assert!(err.contains("no module vsock"), "{err}");
        assert_eq!(load_order(DEPS, BUILTIN, &["vsock"], false).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn module_names_drop_the_directory_and_compression() {
        assert_eq!(module_name(Path::new("kernel/fs/9p/9p.ko.xz")), "9p");
        assert_eq!(module_name(Path::new("kernel/drivers/char/hw_random/virtio-rng.ko.zst")), "virtio_rng");
        assert_eq!(module_name(Path::new("veth.ko")), "veth");
    }

    #[test]
    fn the_archive_is_newc_with_aligned_entries_and_a_trailer() {
        let mut cpio = Cpio::default();
        cpio.dir("bin");
        cpio.file("init", 0o755, b"#!/bin/sh\n");
        cpio.char_dev("dev/console", 0o600, 5, 1);
        let data = cpio.finish();
        assert_eq!(data.len() % 512, 0);
        // Walk it as the kernel does: header, name, padding, body, padding.
        let (mut at, mut names) = (0, Vec::new());
        loop {
            let header = std::str::from_utf8(&data[at..at + 110]).unwrap();
            assert_eq!(&header[..6], "070701");
            let field = |i: usize| u32::from_str_radix(&header[6 + i * 8..14 + i * 8], 16).unwrap() as usize;
            // c_ino, c_mode, c_uid, c_gid, c_nlink, c_mtime, c_filesize,
            // c_devmajor, c_devminor, c_rdevmajor, c_rdevminor, c_namesize
            let (mode, size, rdev, name_len) = (field(1), field(6), (field(9), field(10)), field(11));
            let name = std::str::from_utf8(&data[at + 110..at + 110 + name_len - 1]).unwrap().to_string();
            at = (at + 110 + name_len).next_multiple_of(4);
            if name == "init" {
                assert_eq!(&data[at..at + size], b"#!/bin/sh\n");
                assert_eq!(mode, 0o100755);
            }
            if name == "dev/console" {
                assert_eq!((mode, rdev), (0o020600, (5, 1)));
            }
            at = (at + size).next_multiple_of(4);
            let done = name == "TRAILER!!!";
            names.push(name);
            if done {
                break;
            }
        }
        assert_eq!(names, ["bin", "init", "dev/console", "TRAILER!!!"]);
        assert!(data[at..].iter().all(|&b| b == 0));
    }

    #[test]
    fn a_dynamically_linked_busybox_is_refused() {
        // ELF64 header with one program header of type 3 (PT_INTERP) or 1.
        let elf = |p_type: u32| {
            let mut e = vec![0u8; 64 + 56];
            e[..5].copy_from_slice(b"\x7fELF\x02");
            e[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
            e[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
            e[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
            e[64..68].copy_from_slice(&p_type.to_le_bytes());
            e
        };
        assert!(has_interpreter(&elf(3)));
        assert!(!has_interpreter(&elf(1)));
        assert!(has_interpreter(b"#!/bin/sh"));
    }

    #[test]
    fn the_init_scripts_speak_the_runners_names() {
        for mark in [MARK_START, MARK_EXIT, MARK_FATAL] {
            assert!(INIT.contains(mark) || STAGE2.contains(mark), "{mark}");
        }
        for tag in [SHARE_TAG, ROOT_TAG] {
            assert!(INIT.contains(&format!(" {tag} ")), "{tag}");
        }
    }
}
