//! Debian's kernel packages, fetched once and kept unpacked: the newest
//! Debian 12 `linux-image-6.1.0-NN-amd64-unsigned` and
//! `linux-image-6.12.NN+deb12-amd64-unsigned` the host's apt lists offer,
//! downloaded with `apt-get download`, unpacked with `dpkg-deb -x` under the
//! cache (never installed as the host's kernel), with `depmod` run on the
//! unpacked tree so that `modules.dep` exists for the guest's `modprobe`.

use std::{
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{anyhow, bail, Context as _, Result};

use super::{output, run_quiet};

/// Where kernels, their modules and the initramfs images are kept
/// (`$SIP_XDP_VM_CACHE` overrides it).
const DEFAULT_CACHE: &str = "/var/cache/sip-xdp/vm";

/// Marks a completely unpacked kernel directory; holds the package name.
const STAMP: &str = ".sip-xdp-vm-complete";

/// A kernel series we boot: its label and how its package names look.
pub struct Series {
    pub label: &'static str,
    prefix: &'static str,
    suffix: &'static str,
}

/// Debian 12's own kernel, and the newer one it ships for recent hardware:
/// the oldest verifier carriers run and a kernel with TCX.
pub const SERIES: &[Series] = &[
    // linux-image-6.1.0-NN-amd64-unsigned (bookworm)
    Series { label: "6.1", prefix: "linux-image-6.1.0-", suffix: "-amd64-unsigned" },
    // linux-image-6.12.NN+deb12-amd64-unsigned (bookworm-security)
    Series { label: "6.12", prefix: "linux-image-6.12.", suffix: "+deb12-amd64-unsigned" },
];

/// An unpacked Debian kernel package.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// "6.1" or "6.12".
    pub series: &'static str,
    /// The package, e.g. `linux-image-6.1.0-56-amd64-unsigned`.
    pub package: String,
    /// The kernel release (`uname -r` in the guest), e.g. `6.1.0-56-amd64`.
    pub version: String,
    /// The unpacked package: boot/, lib/modules/, and our initramfs.
    pub root: PathBuf,
    pub vmlinuz: PathBuf,
    /// The uncompressed kernel (an ELF with a PVH entry point), extracted
    /// from vmlinuz: qemu boots it directly, which skips the firmware's
    /// kernel loading and the decompression (about 3 s under TCG). None if
    /// the extraction failed; then vmlinuz is booted.
    pub vmlinux: Option<PathBuf>,
    /// `.../lib/modules/<version>`, with modules.dep.
    pub modules_dir: PathBuf,
    /// The kernel's build configuration (boot/config-<version>).
    pub config: PathBuf,
}

/// Makes sure the newest kernel of each series is unpacked in the cache and
/// returns them in [`SERIES`] order. Prints only what it fetches; older
/// unpacked kernels of a series are removed once a newer one is there.
pub fn kernels() -> Result<Vec<Kernel>> {
    let cache = std::env::var_os("SIP_XDP_VM_CACHE").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE));
    fs::create_dir_all(&cache).with_context(|| format!("cannot create {}", cache.display()))?;
    let mut refreshed = false;
    let mut kernels = Vec::new();
    for series in SERIES {
        let kernel = match kernel_of_series(&cache, series) {
            Ok(kernel) => kernel,
            // Stale apt lists can name a kernel the archive has since
            // replaced (security updates remove the old package), or none.
            Err(err) if !refreshed => {
                eprintln!("    {err:#}: refreshing the package lists and trying again");
                run_quiet(Command::new("apt-get").args(["update", "-q"]))?;
                refreshed = true;
                kernel_of_series(&cache, series)?
            }
            Err(err) => return Err(err),
        };
        prune_older(&cache, series, &kernel);
        kernels.push(kernel);
    }
    Ok(kernels)
}

fn kernel_of_series(cache: &Path, series: &'static Series) -> Result<Kernel> {
    let available = apt_kernel_packages()?;
    let unpacked: Vec<String> = unpacked_kernels(cache).into_iter().map(|k| k.package).collect();
    let candidates = candidates(series, &available, &unpacked);
    if candidates.is_empty() {
        bail!("no {} kernel package in the apt lists and none unpacked in {}", series.label, cache.display());
    }
    let mut errors = Vec::new();
    for package in &candidates {
        let version = package_release(package);
        let kernel = match read_cached(&cache.join(&version)) {
            Ok(kernel) => kernel,
            Err(_) => match fetch_kernel(cache, package, &version) {
                Ok(kernel) => kernel,
                Err(err) => {
                    errors.push(format!("{package}: {err:#}"));
                    continue;
                }
            },
        };
        if !errors.is_empty() {
            eprintln!("    warning: using {} as newer ones failed: {}", kernel.package, errors.join("; "));
        }
        return Ok(with_vmlinux(kernel));
    }
    bail!("no usable {} kernel: {}", series.label, errors.join("; "))
}

/// The packages of `series` among those apt offers and those already
/// unpacked, newest first, each once.
pub fn candidates(series: &Series, available: &[String], unpacked: &[String]) -> Vec<String> {
    let mut names: Vec<String> =
        available.iter().chain(unpacked).filter(|p| series_key(series, p).is_some()).cloned().collect();
    names.sort_by_key(|p| std::cmp::Reverse(series_key(series, p)));
    names.dedup();
    names
}

/// Ordering key of a package within its series (its numbers after the
/// prefix), if it belongs: `cloud` and `rt` flavours and signed images do
/// not.
pub fn series_key(series: &Series, package: &str) -> Option<Vec<u64>> {
    let middle = package.strip_prefix(series.prefix)?.strip_suffix(series.suffix)?;
    let key: Option<Vec<u64>> = middle.split(['.', '-']).map(|n| n.parse().ok()).collect();
    key.filter(|k| !k.is_empty())
}

/// `linux-image-6.1.0-56-amd64-unsigned` -> `6.1.0-56-amd64`.
pub fn package_release(package: &str) -> String {
    package.trim_start_matches("linux-image-").trim_end_matches("-unsigned").to_string()
}

fn apt_kernel_packages() -> Result<Vec<String>> {
    let out = output(Command::new("apt-cache").args([
        "search",
        "--names-only",
        r"^linux-image-6\.[0-9.+a-z-]*-amd64-unsigned$",
    ]))?;
    Ok(out
        .lines()
        .filter_map(|l| l.split(" - ").next())
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(String::from)
        .collect())
}

fn unpacked_kernels(cache: &Path) -> Vec<Kernel> {
    let entries = fs::read_dir(cache).into_iter().flatten().flatten();
    entries.filter_map(|e| read_cached(&e.path()).ok()).collect()
}

/// Removes unpacked kernels of `series` other than `keep` (a newer one has
/// replaced them), so that the cache does not grow with every update.
fn prune_older(cache: &Path, series: &Series, keep: &Kernel) {
    for old in unpacked_kernels(cache) {
        if old.root != keep.root && series_key(series, &old.package).is_some() {
            eprintln!("    removing {} (replaced by {})", old.root.display(), keep.version);
            let _ = fs::remove_dir_all(&old.root);
        }
    }
}

fn read_cached(dir: &Path) -> Result<Kernel> {
    let package = fs::read_to_string(dir.join(STAMP))
        .with_context(|| format!("{} is not a complete unpacked kernel", dir.display()))?
        .trim()
        .to_string();
    let series = SERIES
        .iter()
        .find(|s| series_key(s, &package).is_some())
        .ok_or_else(|| anyhow!("{}: {package} is of no series we boot", dir.display()))?;
    let version = package_release(&package);
    let kernel = Kernel {
        series: series.label,
        vmlinuz: dir.join("boot").join(format!("vmlinuz-{version}")),
        vmlinux: None,
        modules_dir: modules_root(dir).join(&version),
        config: dir.join("boot").join(format!("config-{version}")),
        root: dir.to_path_buf(),
        package,
        version,
    };
    for p in [&kernel.vmlinuz, &kernel.modules_dir.join("modules.dep")] {
        if !p.exists() {
            bail!("{} is missing", p.display());
        }
    }
    Ok(kernel)
}

/// `lib/modules` of an unpacked package (older packages use lib/, newer ones
/// may use usr/lib/).
fn modules_root(dir: &Path) -> PathBuf {
    let usr = dir.join("usr/lib/modules");
    if usr.is_dir() && !dir.join("lib/modules").is_dir() {
        usr
    } else {
        dir.join("lib/modules")
    }
}

fn fetch_kernel(cache: &Path, package: &str, version: &str) -> Result<Kernel> {
    // Per process, so that two runners filling the cache at once do not
    // trip over each other; the last step is an atomic rename.
    let debs = cache.join(format!("debs.{}", std::process::id()));
    let _ = fs::remove_dir_all(&debs);
    fs::create_dir_all(&debs)?;
    eprintln!("    downloading {package}");
    // As root, apt would drop to the _apt user, who cannot write here.
    run_quiet(
        Command::new("apt-get").args(["-q", "-o", "APT::Sandbox::User=root", "download", package]).current_dir(&debs),
    )?;
    let deb = fs::read_dir(&debs)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .ok_or_else(|| anyhow!("apt-get download {package} left no .deb in {}", debs.display()))?;
    let partial = cache.join(format!("{version}.partial.{}", std::process::id()));
    let _ = fs::remove_dir_all(&partial);
    eprintln!("    unpacking {}", deb.file_name().unwrap_or_default().to_string_lossy());
    run_quiet(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&partial))?;
    let _ = fs::remove_dir_all(&debs);
    let modules = modules_root(&partial);
    if !modules.join(version).is_dir() {
        bail!("{package} has no {}", modules.join(version).display());
    }
    eprintln!("    depmod {version}");
    // depmod -b wants the directory that holds lib/modules.
    let base = modules.parent().and_then(Path::parent).unwrap_or(&partial).to_path_buf();
    run_quiet(Command::new("depmod").arg("-b").arg(&base).arg(version))?;
    fs::write(partial.join(STAMP), format!("{package}\n"))?;
    let dir = cache.join(version);
    if let Ok(kernel) = read_cached(&dir) {
        // Another runner finished first.
        let _ = fs::remove_dir_all(&partial);
        return Ok(kernel);
    }
    let _ = fs::remove_dir_all(&dir);
    fs::rename(&partial, &dir).with_context(|| format!("cannot move {} to {}", partial.display(), dir.display()))?;
    read_cached(&dir)
}

/// Sets `kernel.vmlinux`, extracting it from vmlinuz if not done yet.
fn with_vmlinux(mut kernel: Kernel) -> Kernel {
    let path = kernel.root.join("boot").join(format!("vmlinux-{}", kernel.version));
    if !path.exists() {
        eprintln!("    extracting vmlinux-{}", kernel.version);
        if let Err(err) = extract_vmlinux(&kernel.vmlinuz, &path) {
            eprintln!(
                "    warning: cannot extract vmlinux from {} ({err:#}); booting the compressed kernel (slower)",
                kernel.vmlinuz.display()
            );
            return kernel;
        }
    }
    kernel.vmlinux = Some(path);
    kernel
}

/// Finds the compressed payload in the bzImage by its magic, decompresses
/// it, keeps the first complete ELF (what the kernel's own extract-vmlinux
/// does, without the shell script).
fn extract_vmlinux(vmlinuz: &Path, out: &Path) -> Result<()> {
    let image = fs::read(vmlinuz).with_context(|| format!("cannot read {}", vmlinuz.display()))?;
    let formats: &[(&[u8], &str)] = &[
        (b"\xfd7zXZ\x00", "xz"),
        (b"\x28\xb5\x2f\xfd", "zstd"),
        (b"\x1f\x8b\x08", "gzip"),
        (b"\x02\x21\x4c\x18", "lz4"),
    ];
    for (magic, tool) in formats {
        let mut from = 0;
        while let Some(at) = image[from..].windows(magic.len()).position(|w| w == *magic).map(|p| p + from) {
            from = at + 1;
            // The payload is followed by other data, so the tool complains
            // at the end: judge by the output, not by the exit status.
            let Ok(mut child) = Command::new(tool)
                .arg("-dcq")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
            else {
                break;
            };
            let mut stdin = child.stdin.take().expect("piped");
            let payload = image[at..].to_vec();
            let writer = std::thread::spawn(move || {
                let _ = stdin.write_all(&payload);
            });
            let decompressed = child.wait_with_output().map(|o| o.stdout).unwrap_or_default();
            let _ = writer.join();
            if complete_elf(&decompressed) {
                let tmp = out.with_extension(format!("partial.{}", std::process::id()));
                fs::write(&tmp, &decompressed)?;
                fs::rename(&tmp, out)?;
                return Ok(());
            }
        }
    }
    bail!("no compressed ELF payload found")
}

/// Whether `elf` is a whole 64-bit ELF file: every segment and the section
/// header table lie inside it (a truncated decompression is not).
pub fn complete_elf(elf: &[u8]) -> bool {
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u64_at = |o: usize| elf.get(o..o + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as usize);
    if elf.get(..5) != Some(b"\x7fELF\x02".as_slice()) {
        return false;
    }
    let (Some(phoff), Some(phsize), Some(phnum), Some(shoff), Some(shsize), Some(shnum)) =
        (u64_at(0x20), u16_at(0x36), u16_at(0x38), u64_at(0x28), u16_at(0x3a), u16_at(0x3c))
    else {
        return false;
    };
    let segments_inside = (0..phnum).all(|i| {
        let ph = phoff + i * phsize;
        matches!((u64_at(ph + 8), u64_at(ph + 32)), (Some(off), Some(size)) if off.saturating_add(size) <= elf.len())
    });
    segments_inside && shoff.saturating_add(shsize * shnum) <= elf.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_newest_plain_amd64_kernel_of_each_series_comes_first() {
        let available = names(&[
            "linux-image-6.1.0-9-amd64-unsigned",
            "linux-image-6.1.0-56-cloud-amd64-unsigned",
            "linux-image-6.1.0-56-rt-amd64-unsigned",
            "linux-image-6.1.0-55-amd64-unsigned",
            "linux-image-6.12.117+deb12-amd64-unsigned",
            "linux-image-6.12.117+deb12-cloud-amd64-unsigned",
            "linux-image-6.12.99+deb12-amd64-unsigned",
            "linux-image-6.1.0-56-amd64",
        ]);
        // Numbers compare as numbers (9 < 55 < 56); what is unpacked
        // counts too, once.
        let unpacked = names(&["linux-image-6.1.0-56-amd64-unsigned", "linux-image-6.1.0-55-amd64-unsigned"]);
        assert_eq!(
            candidates(&SERIES[0], &available, &unpacked),
            names(&[
                "linux-image-6.1.0-56-amd64-unsigned",
                "linux-image-6.1.0-55-amd64-unsigned",
                "linux-image-6.1.0-9-amd64-unsigned"
            ])
        );
        assert_eq!(
            candidates(&SERIES[1], &available, &[]),
            names(&["linux-image-6.12.117+deb12-amd64-unsigned", "linux-image-6.12.99+deb12-amd64-unsigned"])
        );
        assert!(candidates(&SERIES[1], &names(&["linux-image-6.12.x+deb12-amd64-unsigned"]), &[]).is_empty());
    }

    #[test]
    fn the_release_is_the_package_name_without_its_wrapping() {
        assert_eq!(package_release("linux-image-6.1.0-56-amd64-unsigned"), "6.1.0-56-amd64");
        assert_eq!(package_release("linux-image-6.12.117+deb12-amd64-unsigned"), "6.12.117+deb12-amd64");
    }

    /// A minimal ELF64 header with one program header and `shnum` section
    /// headers of 64 bytes at `shoff`.
    fn elf(len: usize, seg_end: usize, shoff: usize, shnum: u16) -> Vec<u8> {
        let mut e = vec![0u8; len];
        e[..5].copy_from_slice(b"\x7fELF\x02");
        e[0x20..0x28].copy_from_slice(&64u64.to_le_bytes()); // phoff
        e[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        e[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        e[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        e[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        e[0x3c..0x3e].copy_from_slice(&shnum.to_le_bytes());
        e[64 + 8..64 + 16].copy_from_slice(&120u64.to_le_bytes()); // p_offset
        e[64 + 32..64 + 40].copy_from_slice(&((seg_end - 120) as u64).to_le_bytes()); // p_filesz
        e
    }

    #[test]
    fn a_truncated_decompression_is_not_a_kernel() {
        assert!(complete_elf(&elf(1024, 512, 768, 4)));
        assert!(!complete_elf(&elf(1024, 2048, 768, 4)), "segment past the end");
        assert!(!complete_elf(&elf(1024, 512, 768, 5)), "section headers past the end");
        assert!(!complete_elf(&elf(1024, 512, 768, 4)[..1000]));
        assert!(!complete_elf(b"\x7fELF\x01 32-bit"));
        assert!(!complete_elf(b""));
    }
}
