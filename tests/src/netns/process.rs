//! The processes a lab runs: commands run to completion, and long-lived
//! ones whose output is collected as they run.

use std::{
    io::{BufRead, BufReader},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

/// The controller binary, built by `cargo xtask test` before the tests run.
pub fn sip_xdp_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("SIP_XDP_BIN") {
        return PathBuf::from(bin);
    }
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/sip-xdp");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p sip-xdp` (cargo xtask test does)",
        bin.display()
    );
    bin
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

/// Runs a command to completion, panicking with its output if it fails.
pub fn sh(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub(super) fn ip(args: &[&str]) {
    sh(Command::new("ip").args(args));
}

/// A unique short tag per lab: names of namespaces and (15-byte) interfaces.
pub(super) fn unique_tag() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("sx{}{}", std::process::id() % 100_000, NEXT.fetch_add(1, Ordering::SeqCst))
}

/// A process whose stderr and stdout lines are collected as it runs.
pub struct Proc {
    pub child: Child,
    pub log: Arc<Mutex<Vec<String>>>,
    name: String,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command) -> Proc {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        for stream in [Box::new(out) as Box<dyn std::io::Read + Send>, Box::new(err)] {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    log.lock().expect("log").push(line);
                }
            });
        }
        Proc { child, log, name: name.to_string() }
    }

    pub fn text(&self) -> String {
        self.log.lock().expect("log").join("\n")
    }

    /// Waits until a log line contains `pattern`; panics with the log if it
    /// does not appear within `timeout` or the process exits first.
    pub fn wait_for(&mut self, pattern: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log.lock().expect("log").iter().any(|l| l.contains(pattern)) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100)); // let the readers drain
                panic!("{} exited ({status}) before logging {pattern:?}:\n{}", self.name, self.text());
            }
            assert!(
                Instant::now() < deadline,
                "{} did not log {pattern:?} in {timeout:?}:\n{}",
                self.name,
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `ready()` holds (asked every 50 ms); panics with the
    /// log if the process exits first or `timeout` passes (`what`: what
    /// was awaited, for the message).
    pub fn wait_until(&mut self, what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !ready() {
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100)); // let the readers drain
                panic!("{} exited ({status}) before {what}:\n{}", self.name, self.text());
            }
            assert!(Instant::now() < deadline, "{}: not {what} in {timeout:?}:\n{}", self.name, self.text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits for exit; returns the exit code (None if killed by a signal).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                std::thread::sleep(Duration::from_millis(100));
                return status.code();
            }
            assert!(Instant::now() < deadline, "{} did not exit in {timeout:?}:\n{}", self.name, self.text());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // The whole process group: Kamailio forks workers.
            // SAFETY: kill(2) on our child's process group.
            unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
            let _ = self.child.wait();
        }
    }
}
