//! A whole Debian 12 system under qemu, for the package test: systemd as
//! init, Debian's own kernel and initramfs, a root filesystem made with
//! mmdebstrap from the Debian archive the host's apt already uses.
//!
//! The image is built once and cached under `/var/cache/sip-xdp/vm/`
//! (keyed by what goes into it); every boot runs on a throwaway copy-on-write
//! layer (`snapshot=on`), so a test never changes the cached image. A
//! oneshot unit baked into the image mounts a 9p share from the host, runs
//! `script.sh` from it as root after `multi-user.target`, writes `output`
//! and `status` back to the share and powers off.
//!
//! Unlike the kernel matrix (the host's root filesystem over 9p and an
//! initramfs of our own), nothing of the host is visible inside: what the
//! test installs is only what the package brings.

use std::{
    fs,
    hash::{Hash, Hasher},
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use crate::step;

/// Host packages that build and boot the image.
pub const HOST_PACKAGES: &[&str] = &["mmdebstrap", "e2fsprogs", "qemu-system-x86"];

/// What the image holds besides a minimal Debian: systemd as init, Debian's
/// kernel (its postinst makes the initramfs that finds the virtio disk),
/// and what the package test drives: Kamailio as the SIP server, iproute2
/// for namespaces, netcat to send SIP, procps.
const INCLUDE: &[&str] = &[
    "systemd-sysv",
    "udev",
    "iproute2",
    "kmod",
    "procps",
    "kamailio",
    "netcat-openbsd",
    "linux-image-amd64",
    "initramfs-tools",
    "zstd",
];

/// Runs the share's script once the system is up, then powers off.
const RUNNER_UNIT: &str = "[Unit]
Description=sip-xdp VM test script
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'mkdir -p /mnt/vmtest && mount -t 9p -o trans=virtio,version=9p2000.L vmtest /mnt/vmtest && { bash /mnt/vmtest/script.sh > /mnt/vmtest/output 2>&1; echo $? > /mnt/vmtest/status; sync; }; systemctl poweroff --no-block'
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
";

/// Services of the included packages that must not start at boot: the
/// test starts Kamailio itself, with its own config, on port 5060.
const MASKED: &[&str] = &["kamailio.service"];

/// Bump when the way the image is made changes.
const IMAGE_FORMAT: u32 = 1;
const IMAGE_SIZE: &str = "3G";
const STAMP: &str = ".complete";

pub struct SystemImage {
    pub disk: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// The kernel's release, e.g. `6.1.0-56-amd64`.
    pub release: String,
}

/// The cached image, built first if missing (about a minute and 800 MB).
pub fn image(cache: &Path) -> Result<SystemImage> {
    let dir = cache.join(format!("debian12-system-{:016x}", image_key()));
    if !dir.join(STAMP).exists() {
        build_image(&dir)?;
    }
    read_image(&dir)
}

fn image_key() -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (IMAGE_FORMAT, INCLUDE, RUNNER_UNIT, MASKED, IMAGE_SIZE).hash(&mut h);
    h.finish()
}

fn read_image(dir: &Path) -> Result<SystemImage> {
    let release = fs::read_to_string(dir.join("release")).context("cached image without a release file")?;
    let release = release.trim().to_string();
    Ok(SystemImage {
        disk: dir.join("disk.raw"),
        kernel: dir.join(format!("vmlinuz-{release}")),
        initrd: dir.join(format!("initrd.img-{release}")),
        release,
    })
}

fn build_image(dir: &Path) -> Result<()> {
    step(&format!("building a Debian 12 system image for the package test in {}", dir.display()));
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    fs::create_dir_all(dir)?;
    let rootfs = dir.join("rootfs");
    let sources = dir.join("debian.sources");
    fs::write(&sources, host_debian_sources()?)?;
    step("  mmdebstrap bookworm (systemd, Debian's kernel, Kamailio)");
    let log = dir.join("mmdebstrap.log");
    let status = Command::new("mmdebstrap")
        .args(["--variant=minbase", "--components=main", &format!("--include={}", INCLUDE.join(","))])
        .arg("bookworm")
        .arg(&rootfs)
        .arg(&sources)
        .stdout(fs::File::create(&log)?)
        .stderr(fs::File::create(dir.join("mmdebstrap.err"))?)
        .status()
        .context("cannot run mmdebstrap")?;
    if !status.success() {
        let err = fs::read_to_string(dir.join("mmdebstrap.err")).unwrap_or_default();
        bail!("mmdebstrap failed ({status}): {}", tail(&err, 20));
    }
    let etc = rootfs.join("etc");
    fs::write(etc.join("systemd/system/sipxdp-vmtest.service"), RUNNER_UNIT)?;
    let wants = etc.join("systemd/system/multi-user.target.wants");
    fs::create_dir_all(&wants)?;
    std::os::unix::fs::symlink("/etc/systemd/system/sipxdp-vmtest.service", wants.join("sipxdp-vmtest.service"))?;
    for unit in MASKED {
        std::os::unix::fs::symlink("/dev/null", etc.join("systemd/system").join(unit))?;
    }
    fs::write(etc.join("hostname"), "sipxdp-vm\n")?;
    fs::write(etc.join("fstab"), "/dev/vda / ext4 defaults 0 1\n")?;

    // Debian's kernel and the initramfs its postinst made, kept beside the disk.
    let boot = rootfs.join("boot");
    let vmlinuz = fs::read_dir(&boot)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("vmlinuz-"))
        .context("the image has no kernel in /boot")?;
    let release = vmlinuz.trim_start_matches("vmlinuz-").to_string();
    for file in [format!("vmlinuz-{release}"), format!("initrd.img-{release}")] {
        fs::copy(boot.join(&file), dir.join(&file)).with_context(|| format!("cannot copy /boot/{file}"))?;
    }
    step(&format!("  making the {IMAGE_SIZE} ext4 disk (kernel {release})"));
    let out = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "sxroot", "-d"])
        .arg(&rootfs)
        .arg(dir.join("disk.raw"))
        .arg(IMAGE_SIZE)
        .output()
        .context("cannot run mkfs.ext4")?;
    if !out.status.success() {
        bail!("mkfs.ext4 failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    fs::remove_dir_all(&rootfs)?;
    fs::write(dir.join("release"), &release)?;
    fs::write(dir.join(STAMP), "")?;
    Ok(())
}

/// The host's own Debian archive entries (deb822 `.sources` signed by the
/// Debian archive keyring, or one-line `deb` entries for bookworm), so the
/// image comes from wherever this machine's apt already gets Debian.
fn host_debian_sources() -> Result<String> {
    let mut out = String::new();
    let dir = fs::read_dir("/etc/apt/sources.list.d").into_iter().flatten().flatten().map(|e| e.path());
    for path in dir.chain([PathBuf::from("/etc/apt/sources.list")]) {
        let Ok(text) = fs::read_to_string(&path) else { continue };
        let name = path.to_string_lossy();
        if name.ends_with(".sources") {
            for stanza in text.split("\n\n") {
                if stanza.contains("debian-archive-keyring") && stanza.contains("bookworm") {
                    out += stanza.trim();
                    out += "\n\n";
                }
            }
        } else if name.ends_with(".list") {
            for line in text.lines().filter(|l| l.starts_with("deb ") && l.contains(" bookworm")) {
                out += &format!("{line}\n");
            }
        }
    }
    if out.trim().is_empty() {
        bail!("no Debian 12 (bookworm) archive in /etc/apt/sources.list or /etc/apt/sources.list.d");
    }
    Ok(out)
}

/// Boots the image with `share` (holding `script.sh`) on 9p; returns the
/// script's output and exit status. The console log is kept in
/// `share/console.log` for failures.
pub fn run(image: &SystemImage, share: &Path, timeout: Duration) -> Result<(String, i32)> {
    for stale in ["output", "status", "console.log"] {
        let _ = fs::remove_file(share.join(stale));
    }
    let console = share.join("console.log");
    let mut child = Command::new("qemu-system-x86_64")
        // This machine's /dev/kvm does not boot stock kernels: emulate.
        .args(["-accel", "tcg", "-m", "2048", "-smp", "1", "-nographic", "-no-reboot", "-nic", "none"])
        .arg("-kernel")
        .arg(&image.kernel)
        .arg("-initrd")
        .arg(&image.initrd)
        .args(["-append", "root=/dev/vda rw console=ttyS0 panic=-1"])
        .arg("-drive")
        .arg(format!("file={},if=virtio,format=raw,snapshot=on", image.disk.display()))
        .arg("-virtfs")
        .arg(format!("local,path={},mount_tag=vmtest,security_model=none", share.display()))
        .stdin(Stdio::null())
        .stdout(fs::File::create(&console)?)
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start qemu-system-x86_64")?;
    let deadline = Instant::now() + timeout;
    let mut last_report = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                bail!("qemu failed ({status}):\n{}", tail(&fs::read_to_string(&console).unwrap_or_default(), 30));
            }
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "the system did not finish in {timeout:?}; console:\n{}",
                tail(&fs::read_to_string(&console).unwrap_or_default(), 40)
            );
        }
        if last_report.elapsed() > Duration::from_secs(60) {
            eprintln!("    ... still running ({}s left)", deadline.saturating_duration_since(Instant::now()).as_secs());
            let _ = std::io::stderr().flush();
            last_report = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let output = fs::read_to_string(share.join("output")).unwrap_or_default();
    let Ok(status) = fs::read_to_string(share.join("status")) else {
        bail!(
            "the script did not report a status; console:\n{}",
            tail(&fs::read_to_string(&console).unwrap_or_default(), 40)
        );
    };
    Ok((output, status.trim().parse().unwrap_or(-1)))
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
