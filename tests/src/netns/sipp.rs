//! SIPp runs: one-shot registrations and long-running scenarios whose
//! statistics the tests read.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use super::{fixture, host_port, Lab, Proc};

impl Lab {
    /// One digest-authenticated registration with SIPp from `ns`; true if
    /// it got its 200 OK.
    pub fn sipp_register(&self, ns: &str, local_ip: &str, server_ip: &str) -> bool {
        self.sipp_register_with(ns, local_ip, server_ip, "secret")
    }

    /// The same with a given password: a wrong one draws two 401s (the
    /// challenge and the refusal) and fails.
    pub fn sipp_register_with(&self, ns: &str, local_ip: &str, server_ip: &str, password: &str) -> bool {
        self.sipp_register_over(ns, local_ip, server_ip, password, "u1")
    }

    /// The same over SIPp transport `transport` (`u1`: UDP, `t1`: TCP),
    /// IPv4 or IPv6.
    pub fn sipp_register_over(
        &self,
        ns: &str,
        local_ip: &str,
        server_ip: &str,
        password: &str,
        transport: &str,
    ) -> bool {
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "sipp", &host_port(server_ip, 5060), "-sf"])
            .arg(fixture("register.xml"))
            .args([
                "-s",
                "alice",
                "-ap",
                password,
                "-i",
                local_ip,
                "-t",
                transport,
                "-m",
                "1",
                "-nostdin",
                "-recv_timeout",
                "2000",
                "-timeout",
                "6s",
                "-timeout_error",
            ])
            .current_dir(&self.dir)
            .output()
            .expect("run sipp");
        out.status.code() == Some(0)
    }

    /// Starts SIPp in namespace `ns` from `local_ip` against port 5060 of
    /// `server_ip` with the fixture `scenario` and `args`; `name` names its
    /// files in the lab's directory (statistics, errors, final screen).
    /// SIPp's own limits (`-m`, `-timeout`) should end it;
    /// [`Sipp::wait`] bounds the wait.
    pub fn spawn_sipp(
        &self,
        name: &str,
        ns: &str,
        local_ip: &str,
        server_ip: &str,
        scenario: &str,
        args: &[&str],
    ) -> Sipp {
        let files = self.dir.join(format!("sipp-{name}"));
        std::fs::create_dir_all(&files).expect("sipp dir");
        let stat_file = files.join("stats.csv");
        let error_file = files.join("errors.log");
        let screen_file = files.join("screen.log");
        let proc = Proc::spawn(
            &format!("sipp {name}"),
            Command::new("ip")
                .args(["netns", "exec", ns, "sipp", &host_port(server_ip, 5060), "-sf"])
                .arg(fixture(scenario))
                .args(["-i", local_ip, "-nostdin", "-trace_stat", "-fd", "5", "-stf"])
                .arg(&stat_file)
                .args(["-trace_err", "-error_file"])
                .arg(&error_file)
                .args(["-trace_screen", "-screen_file"])
                .arg(&screen_file)
                .args(args)
                .current_dir(&files),
        );
        Sipp { proc, stat_file, error_file, screen_file }
    }
}

/// A running SIPp (see [`Lab::spawn_sipp`]).
pub struct Sipp {
    pub proc: Proc,
    stat_file: PathBuf,
    error_file: PathBuf,
    screen_file: PathBuf,
}

/// How a SIPp run ended: its exit status (0: every call succeeded) and
/// the last line of its statistics file, by column.
pub struct SippRun {
    pub code: Option<i32>,
    pub stats: BTreeMap<String, String>,
    /// Its final screen and error log, for messages.
    pub report: String,
}

impl Sipp {
    /// Waits for SIPp to exit (killing it after `timeout`).
    pub fn wait(mut self, timeout: Duration) -> SippRun {
        let deadline = Instant::now() + timeout;
        while self.proc.child.try_wait().expect("wait").is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if self.proc.child.try_wait().expect("wait").is_none() {
            // A stuck run is killed; what it wrote so far is reported.
            self.proc.signal(libc::SIGKILL);
        }
        let code = self.proc.wait_exit(Duration::from_secs(10));
        let stats = std::fs::read_to_string(&self.stat_file).unwrap_or_default();
        let mut lines = stats.lines().filter(|l| !l.trim().is_empty());
        let header: Vec<&str> = lines.next().unwrap_or_default().split(';').collect();
        let last: Vec<&str> = lines.next_back().unwrap_or_default().split(';').collect();
        let stats = header.iter().zip(last).map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let report = format!(
            "{}\n-- errors:\n{}\n-- output:\n{}",
            std::fs::read_to_string(&self.screen_file).unwrap_or_default(),
            std::fs::read_to_string(&self.error_file)
                .unwrap_or_default()
                .lines()
                .take(40)
                .collect::<Vec<_>>()
                .join("\n"),
            self.proc.text().lines().rev().take(40).collect::<Vec<_>>().join("\n")
        );
        SippRun { code, stats, report }
    }
}

impl SippRun {
    /// A cumulative count from the statistics (`SuccessfulCall(C)`, ...).
    pub fn count(&self, column: &str) -> u64 {
        self.stats
            .get(column)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {column} in SIPp's statistics:\n{}", self.report))
    }
}
