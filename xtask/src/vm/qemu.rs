//! One guest: qemu started on a kernel and our initramfs, a script run
//! inside, its output and exit status brought back through a writable 9p
//! share, qemu killed if the guest overruns its time.

use std::{
    fmt::Write as _,
    fs,
    io::{BufRead, BufReader, Read as _, Seek as _, SeekFrom, Write as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Mutex,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{bail, Context as _, Result};

use super::{initramfs::initramfs, Kernel};

/// Modules the guest loads (with the host's modprobe, from the bound
/// modules tree) before the script runs. Everything else autoloads on
/// demand; these are loaded up front so that a broken module setup shows
/// at boot and not as a confusing netlink error in a test.
const PRELOAD_MODULES: &[&str] = &["veth", "sch_ingress", "cls_bpf", "act_bpf"];

/// Kernel command line: serial console, quiet, reboot (hence qemu exit,
/// with -no-reboot) on panic, no framebuffer or modesetting, no timer or
/// keyboard probing that only costs time under emulation.
const KERNEL_CMDLINE: &str = "console=ttyS0,115200 earlyprintk=serial,ttyS0,115200 quiet loglevel=4 panic=-1 \
     oops=panic nomodeset mitigations=off no_timer_check i8042.noaux i8042.nokbd i8042.nopnp \
     8250.nr_uarts=1 random.trust_cpu=on rdinit=/init";

/// Lines the guest's init prints on the serial console.
pub(super) const MARK_START: &str = "SIPXDP-VM-SCRIPT-START";
pub(super) const MARK_EXIT: &str = "SIPXDP-VM-EXIT=";
pub(super) const MARK_FATAL: &str = "SIPXDP-VM-FATAL";

/// 9p mount tags, as the initramfs's init mounts them. The writable per-run
/// share appears in the guest at the same path as on the host, so paths
/// can be passed around unchanged; the script sees it as `$VM_OUT`.
pub(super) const SHARE_TAG: &str = "sxvm_out";
pub(super) const ROOT_TAG: &str = "sxvm_root";

/// The outcome of one [`run`].
#[derive(Debug)]
pub struct VmRun {
    /// The script's exit status (128+N if a signal killed bash).
    pub status: i32,
    /// The script's stdout and stderr, interleaved.
    pub output: String,
    /// From starting qemu to the script starting (host clock).
    pub boot: Duration,
    /// From starting qemu to qemu exiting.
    pub total: Duration,
    /// The per-run directory on the host: the script, its output, the
    /// console log, and whatever the script wrote to `$VM_OUT`.
    pub dir: PathBuf,
}

static RUN_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Boots `kernel`, runs `script` with bash as root, powers off. Each line
/// of the script's output, and each console line (kernel messages) while
/// it runs, goes to `on_line` as it comes.
///
/// Fails if the guest does not finish within `timeout` (qemu is killed; the
/// error holds the tail of the console) or never reports the script's exit
/// status. A script that fails is not an error: see [`VmRun::status`].
///
/// The per-run directory is a fresh one under `$SIP_XDP_VM_RUNS` (default
/// `/tmp/sip-xdp-vm`); the caller removes it when done with it.
pub fn run(kernel: &Kernel, script: &str, timeout: Duration, on_line: &(dyn Fn(&str) + Sync)) -> Result<VmRun> {
    let base = std::env::var_os("SIP_XDP_VM_RUNS")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("sip-xdp-vm"));
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    let n = RUN_COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = base.join(format!("{}-{stamp}-{}-{n}", kernel.version, std::process::id()));
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let initramfs = initramfs(kernel)?;
    fs::write(dir.join("script.sh"), script)?;
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let mut env = String::new();
    for (key, value) in [
        ("VM_OUT", dir.to_string_lossy().into_owned()),
        ("VM_MODULES", kernel.modules_dir.parent().unwrap_or(&kernel.modules_dir).to_string_lossy().into_owned()),
        ("VM_CWD", cwd.to_string_lossy().into_owned()),
        // The workspace (the test binaries, fixtures and target/): shown
        // again if it lives under a directory the guest mounts afresh.
        ("VM_WORKSPACE", crate::workspace_root().to_string_lossy().into_owned()),
        ("VM_KERNEL", kernel.version.clone()),
        ("VM_CONFIG", kernel.config.to_string_lossy().into_owned()),
        ("VM_PRELOAD", PRELOAD_MODULES.join(" ")),
        // The guest powers itself off a little after the host would kill
        // it, in case the host side is gone.
        ("VM_TIMEOUT", (timeout.as_secs() + 15).to_string()),
    ] {
        writeln!(env, "export {key}={}", shell_quote(&value))?;
    }
    fs::write(dir.join("vm.env"), env)?;

    let mut cmd = qemu_command(kernel, &initramfs, &dir);
    fs::write(dir.join("qemu.cmd"), format!("{}\n", command_line(&cmd)))?;
    let mut log = fs::File::create(dir.join("console.log"))?;
    let started = Instant::now();
    let mut child = Guard(Some(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start qemu-system-x86_64 (apt-get install qemu-system-x86)")?,
    ));
    let stdout = child.0.as_mut().and_then(|c| c.stdout.take()).expect("piped stdout");
    let stderr = child.0.as_mut().and_then(|c| c.stderr.take()).expect("piped stderr");
    let console = Mutex::new(Console::default());
    let deadline = started + timeout;
    let qemu_gone = AtomicBool::new(false);
    let (exit, qemu_stderr) = std::thread::scope(|s| -> Result<_> {
        s.spawn(|| {
            let mut reader = BufReader::new(stdout);
            let mut line = Vec::new();
            while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                let _ = log.write_all(&line);
                let text = String::from_utf8_lossy(&line).replace('\r', "");
                let mut c = console.lock().unwrap_or_else(|e| e.into_inner());
                if c.start.is_some() {
                    // The kernel's own warnings while the script runs.
                    let end = text.contains(MARK_EXIT) || text.contains("reboot: Power down");
                    if !end && !text.trim().is_empty() {
                        on_line(&format!("console: {}", text.trim_end()));
                    }
                } else if text.contains(MARK_START) {
                    c.start = Some(started.elapsed());
                }
                c.text.push_str(&text);
                line.clear();
            }
        });
        s.spawn(|| follow(&dir.join("output"), &qemu_gone, on_line));
        let stderr = s.spawn(|| {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut text);
            text
        });
        let exit = loop {
            if let Some(status) = child.0.as_mut().expect("child").try_wait()? {
                child.0 = None;
                break Some(status);
            }
            if Instant::now() >= deadline {
                // Killing qemu ends both readers.
                if let Some(mut qemu) = child.0.take() {
                    let _ = qemu.kill();
                    let _ = qemu.wait();
                }
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        qemu_gone.store(true, Ordering::Relaxed);
        Ok((exit, stderr.join().unwrap_or_default()))
    })?;
    drop(child);
    let total = started.elapsed();
    let console = console.into_inner().unwrap_or_else(|e| e.into_inner());
    let tail = || tail_lines(&console.text, 40);
    let Some(exit) = exit else {
        bail!(
            "the {} guest did not finish within {} s (killed; run dir {}); console tail:\n{}",
            kernel.version,
            timeout.as_secs(),
            dir.display(),
            tail()
        );
    };
    if !qemu_stderr.trim().is_empty() {
        fs::write(dir.join("qemu.stderr"), &qemu_stderr)?;
    }
    let status = fs::read_to_string(dir.join("status")).ok().and_then(|s| s.trim().parse::<i32>().ok()).or_else(|| {
        // The status file is written over 9p just before the power-off;
        // the console line is the second witness.
        console.text.lines().rev().find_map(|l| l.split_once(MARK_EXIT).and_then(|(_, rest)| rest.trim().parse().ok()))
    });
    let Some(status) = status else {
        bail!(
            "the {} guest stopped ({exit}) without reporting the script's exit status{}; run dir {}; console tail:\n{}{}",
            kernel.version,
            if console.text.contains(MARK_FATAL) { " (its init failed)" } else { "" },
            dir.display(),
            tail(),
            if qemu_stderr.trim().is_empty() { String::new() } else { format!("\nqemu: {}", qemu_stderr.trim()) }
        );
    };
    let output = fs::read(dir.join("output")).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    Ok(VmRun { status, output, boot: console.start.unwrap_or(total), total, dir })
}

/// Hands each line written to `file` (by the guest, through the share) to
/// `on_line` as it comes, until `done` is set and the rest is read.
fn follow(file: &Path, done: &AtomicBool, on_line: &(dyn Fn(&str) + Sync)) {
    let (mut read, mut pending) = (0u64, Vec::new());
    loop {
        // Read before checking `done`, so that nothing written before qemu
        // exited is missed.
        let finished = done.load(Ordering::Relaxed);
        if let Ok(mut f) = fs::File::open(file) {
            if f.seek(SeekFrom::Start(read)).is_ok() {
                let mut chunk = Vec::new();
                if let Ok(n) = f.read_to_end(&mut chunk) {
                    read += n as u64;
                    pending.extend_from_slice(&chunk);
                }
            }
        }
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            on_line(String::from_utf8_lossy(&line).trim_end());
        }
        if finished {
            if !pending.is_empty() {
                on_line(String::from_utf8_lossy(&pending).trim_end());
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[derive(Default)]
struct Console {
    text: String,
    /// When the script started (host clock, from qemu's start).
    start: Option<Duration>,
}

/// Kills qemu if dropped while still set (timeout, error, panic).
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The qemu invocation: TCG, 2 GiB, 2 CPUs, serial console on stdout, no
/// network card, no reboot (a panic or a failed poweroff ends qemu), a
/// virtio RNG, and two virtio-9p shares: the host root (read-only) and the
/// run directory (writable). Boots the extracted vmlinux if there is one.
fn qemu_command(kernel: &Kernel, initramfs: &Path, run_dir: &Path) -> Command {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-accel", "tcg", "-m", "2G", "-smp", "2", "-cpu", "max", "-nographic", "-nodefaults", "-no-reboot"])
        .args(["-serial", "stdio"])
        .arg("-kernel")
        .arg(kernel.vmlinux.as_ref().unwrap_or(&kernel.vmlinuz))
        .arg("-initrd")
        .arg(initramfs)
        .args(["-append", KERNEL_CMDLINE])
        // The host's root, read-only. remap: the host's / spans several
        // filesystems (inode numbers would collide in the guest).
        .arg("-virtfs")
        .arg(format!("local,path=/,mount_tag={ROOT_TAG},security_model=none,readonly=on,multidevs=remap"))
        .arg("-virtfs")
        .arg(format!(
            "local,path={},mount_tag={SHARE_TAG},security_model=none",
            qemu_escape(&run_dir.to_string_lossy())
        ))
        .args(["-device", "virtio-rng-pci"]);
    cmd
}

/// qemu's option syntax doubles a comma inside a value.
fn qemu_escape(s: &str) -> String {
    s.replace(',', ",,")
}

fn command_line(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| shell_quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `s` as one word for bash (and busybox sh).
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_only_when_the_shell_would_split_or_expand_them() {
        assert_eq!(
            shell_quote("/work/vm-target/debug/deps/verdict_ingress-0a1b"),
            "/work/vm-target/debug/deps/verdict_ingress-0a1b"
        );
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn commas_in_qemu_values_are_doubled() {
        assert_eq!(qemu_escape("/tmp/a,b"), "/tmp/a,,b");
    }

    #[test]
    fn the_tail_is_the_last_lines() {
        assert_eq!(tail_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail_lines("a", 5), "a");
    }
}
