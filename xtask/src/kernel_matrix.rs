//! The kernel-matrix layer: the test binaries built on this machine, run
//! inside Debian's own kernels under qemu (see `vm/`), one guest per
//! kernel, all at once. Each guest runs every verdict table and the
//! end-to-end tests of how the programs hang on interfaces ([`E2E`]), and
//! `sip-xdp doctor`; the layer fails if any of them fails, ran no test, or
//! the guest did not finish.
//!
//! Also `cargo xtask vm`: one test binary, or a script, in the guests.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use crate::vm::{self, shell_quote, tail_lines, Kernel, VmRun};

/// End-to-end tests that run in the guests: the egress observer as a
/// clsact filter (the only way on 6.1), a failing attach leaving nothing,
/// doctor on the lab's veths, signals during the load (`e2e_attach`, all
/// of it, whatever it grows to), and a crashed
/// controller's filter staying in force and adopted by the next start.
/// The others depend on no kernel feature these do not cover, and would
/// cost minutes each under emulation.
pub const E2E: &[(&str, &[&str])] = &[
    ("e2e_attach", &[]),
    ("e2e_filter", &["sigkill_leaves_the_filter_in_force_and_a_restart_adopts_it_without_a_gap"]),
];

/// The limit of one test binary inside a guest, and of a whole guest: a
/// guest that hangs is stopped inside the CI's 30 minutes.
const JOB_TIMEOUT: Duration = Duration::from_secs(600);
pub const GUEST_TIMEOUT: Duration = Duration::from_secs(1500);

/// One test binary to run in each guest.
#[derive(Debug, Clone)]
pub struct Job {
    /// The test target, e.g. `verdict_ingress`.
    pub target: String,
    /// Test names to run (exactly), or none for all of them.
    pub tests: Vec<String>,
    pub binary: PathBuf,
    /// Extra arguments for the binary (libtest's).
    pub args: Vec<String>,
    /// Runs with nothing else in the guest (before the others), rather than
    /// beside another job.
    pub alone: bool,
}

impl Job {
    fn title(&self) -> String {
        match self.tests.as_slice() {
            [] => self.target.clone(),
            tests => format!("{} {}", self.target, tests.join(" ")),
        }
    }

    fn command(&self) -> Vec<String> {
        let mut words = vec![self.binary.to_string_lossy().into_owned()];
        words.extend(self.tests.iter().cloned());
        if !self.tests.is_empty() {
            words.push("--exact".into());
        }
        words.extend(self.args.iter().cloned());
        words
    }
}

/// The layer's jobs: [`E2E`], then every verdict table. `binaries` maps
/// test targets to their executables.
pub fn layer_jobs(verdict_targets: &[String], binaries: &dyn Fn(&str) -> Result<PathBuf>) -> Result<Vec<Job>> {
    let mut jobs = Vec::new();
    for (target, tests) in E2E {
        jobs.push(Job {
            target: target.to_string(),
            tests: tests.iter().map(|t| t.to_string()).collect(),
            binary: binaries(target)?,
            // One lab at a time, alone in the guest: their timeouts are set
            // for real CPUs, and the guest's are emulated and shared. They
            // use about one CPU, as does the other guest's: the host's two
            // cores are busy.
            args: vec!["--test-threads".into(), "1".into()],
            alone: true,
        });
    }
    for target in verdict_targets {
        // Deterministic (frames through BPF_PROG_TEST_RUN, private maps
        // and pins): two at a time keep the guest's two CPUs busy while a
        // table with one long test runs, and when the other guest is done.
        jobs.push(Job { target: target.clone(), tests: vec![], binary: binaries(target)?, args: vec![], alone: false });
    }
    Ok(jobs)
}

/// How many jobs that need not run alone run at once in a guest (its CPUs).
const BESIDE: usize = 2;

/// The guest's script: doctor, then the jobs that run alone, one by one,
/// then the others [`BESIDE`] at a time. Job N's output goes to
/// `$VM_OUT/job-N.log` and `STATUS SECONDS` to `$VM_OUT/job-N.status`; the
/// script's own output is one line per job, as it ends.
pub fn guest_script(root: &Path, sip_xdp: &Path, jobs: &[Job]) -> String {
    let mut s = String::new();
    s += "set -u\n";
    s += &format!("export SIP_XDP_BIN={} RUST_BACKTRACE=1\n", shell_quote(&sip_xdp.to_string_lossy()));
    s += &format!("cd {}\n", shell_quote(&root.to_string_lossy()));
    s += r#"echo "kernel $(uname -r): $(nproc) CPUs, $(free -m | awk '/^Mem:/ {print $2}') MiB""#;
    s += "\n";
    s += &doctor_script();
    s += &format!(
        r#"job() {{
    local n=$1 title=$2; shift 2
    local t0=$(date +%s)
    timeout -k 10 {limit} "$@" > "$VM_OUT/job-$n.log" 2>&1
    local rc=$? secs=$(( $(date +%s) - t0 ))
    echo "$rc $secs" > "$VM_OUT/job-$n.status"
    local summary=$(grep -a '^test result:' "$VM_OUT/job-$n.log" | tail -n 1)
    echo "$title: exit $rc in $secs s; ${{summary:-no test summary}}"
}}
beside() {{
    while [ "$(jobs -pr | wc -l)" -ge {beside} ]; do wait -n; done
    job "$@" &
}}
"#,
        limit = JOB_TIMEOUT.as_secs(),
        beside = BESIDE
    );
    let ordered =
        jobs.iter().enumerate().filter(|(_, j)| j.alone).chain(jobs.iter().enumerate().filter(|(_, j)| !j.alone));
    for (n, job) in ordered {
        let words: Vec<String> = job.command().iter().map(|w| shell_quote(w)).collect();
        let how = if job.alone { "job" } else { "beside" };
        s += &format!("{how} {n} {} {}\n", shell_quote(&job.title()), words.join(" "));
    }
    // The host judges from the status files; this says whether all passed.
    s += "wait\n! grep -qv '^0 ' \"$VM_OUT\"/job-*.status\n";
    s
}

/// `sip-xdp doctor` in the guest, on a veth pair of its own with a trial
/// native attach: what the kernel offers the filter, for the report. Its
/// report goes to `$VM_OUT/doctor.txt` and its exit status to
/// `$VM_OUT/doctor.status`. This is the one place the layer calls it.
fn doctor_script() -> String {
    r#"ip link add sxvm-doc0 type veth peer name sxvm-doc1
"$SIP_XDP_BIN" doctor --iface sxvm-doc0 --try-attach > "$VM_OUT/doctor.txt" 2>&1
echo $? > "$VM_OUT/doctor.status"
ip link del sxvm-doc0
echo "doctor: exit $(cat "$VM_OUT/doctor.status")"
"#
    .to_string()
}

/// libtest's summary line of a test binary's output.
#[derive(Debug, PartialEq, Eq)]
pub struct Summary {
    pub ok: bool,
    pub passed: u32,
    pub failed: u32,
    pub ignored: u32,
}

pub fn summary(log: &str) -> Option<Summary> {
    let line = log.lines().rev().find(|l| l.starts_with("test result: "))?;
    let rest = line.strip_prefix("test result: ")?;
    let (verdict, counts) = rest.split_once(". ")?;
    let count = |what: &str| -> Option<u32> {
        counts.split(';').map(str::trim).find_map(|c| c.strip_suffix(what)?.trim().parse().ok())
    };
    Some(Summary {
        ok: verdict == "ok",
        passed: count(" passed")?,
        failed: count(" failed")?,
        ignored: count(" ignored")?,
    })
}

/// What one job did in one guest.
#[derive(Debug)]
struct Outcome {
    status: Option<i32>,
    secs: Option<u64>,
    summary: Option<Summary>,
    log: String,
}

impl Outcome {
    /// Why this job fails the layer, if it does: it failed, did not run, ran
    /// no test or fewer than it names, or skipped some.
    fn problem(&self, job: &Job) -> Option<String> {
        let Some(status) = self.status else { return Some("did not run (the guest stopped before it)".into()) };
        let Some(s) = &self.summary else { return Some(format!("exit {status} without a test summary")) };
        if status != 0 || !s.ok || s.failed > 0 {
            return Some(format!("exit {status}: {} passed, {} failed", s.passed, s.failed));
        }
        if s.passed == 0 || (!job.tests.is_empty() && s.passed as usize != job.tests.len()) {
            return Some(format!("ran {} tests, expected {}", s.passed, job.tests.len().max(1)));
        }
        if s.ignored > 0 {
            return Some(format!("{} tests ignored", s.ignored));
        }
        None
    }
}

/// What one guest did.
struct GuestReport {
    kernel: Kernel,
    run: Result<VmRun>,
    outcomes: Vec<Outcome>,
    doctor: Option<(i32, String)>,
}

fn collect(kernel: Kernel, run: Result<VmRun>, jobs: &[Job]) -> GuestReport {
    let Ok(vm_run) = &run else { return GuestReport { kernel, run, outcomes: vec![], doctor: None } };
    let dir = &vm_run.dir;
    let outcomes = (0..jobs.len())
        .map(|n| {
            let status = std::fs::read_to_string(dir.join(format!("job-{n}.status"))).unwrap_or_default();
            let line = Some(status.split_whitespace().collect::<Vec<_>>()).filter(|w| w.len() == 2);
            let log = std::fs::read(dir.join(format!("job-{n}.log")))
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            Outcome {
                status: line.as_ref().and_then(|w| w[0].parse().ok()),
                secs: line.as_ref().and_then(|w| w[1].parse().ok()),
                summary: summary(&log),
                log,
            }
        })
        .collect();
    let doctor = std::fs::read_to_string(dir.join("doctor.status"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .map(|status| (status, std::fs::read_to_string(dir.join("doctor.txt")).unwrap_or_default()));
    GuestReport { kernel, run, outcomes, doctor }
}

/// Runs `script` in each kernel's guest at once, printing the guests'
/// lines as they come, prefixed with the kernel's series.
pub fn run_guests(kernels: &[Kernel], script: &dyn Fn(&Kernel) -> String, timeout: Duration) -> Vec<Result<VmRun>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = kernels
            .iter()
            .map(|kernel| {
                let script = script(kernel);
                s.spawn(move || {
                    let label = kernel.series;
                    vm::run(kernel, &script, timeout, &|line: &str| eprintln!("    [{label}] {line}"))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("the guest's thread panicked"))))
            .collect()
    })
}

/// The layer: `jobs` and doctor in a guest of each kernel; prints the
/// report, fails if anything failed.
pub fn run_layer(root: &Path, sip_xdp: &Path, kernels: Vec<Kernel>, jobs: &[Job]) -> Result<()> {
    let names: Vec<&str> = kernels.iter().map(|k| k.version.as_str()).collect();
    crate::step(&format!(
        "kernel matrix: {} test binaries and doctor in Debian's {} under qemu (software emulation), {}",
        jobs.len(),
        names.join(" and "),
        if kernels.len() > 1 { "all at once" } else { "one guest" }
    ));
    let started = Instant::now();
    let script = guest_script(root, sip_xdp, jobs);
    let runs = run_guests(&kernels, &|_| script.clone(), GUEST_TIMEOUT);
    let wall = started.elapsed();
    let reports: Vec<GuestReport> = kernels.into_iter().zip(runs).map(|(k, r)| collect(k, r, jobs)).collect();

    crate::step("kernel matrix: report");
    let mut failures = Vec::new();
    for report in &reports {
        let kernel = &report.kernel;
        match &report.run {
            Err(err) => {
                eprintln!("    {} ({}): the guest failed", kernel.version, kernel.package);
                failures.push(format!("{}: {err:#}", kernel.version));
                continue;
            }
            Ok(run) => eprintln!(
                "    {} ({}): booted in {} s, {} s in all",
                kernel.version,
                kernel.package,
                run.boot.as_secs(),
                run.total.as_secs()
            ),
        }
        for (job, outcome) in jobs.iter().zip(&report.outcomes) {
            let problem = outcome.problem(job);
            let counts = match &outcome.summary {
                Some(s) => format!("{} passed, {} failed", s.passed, s.failed),
                None => "no summary".into(),
            };
            let secs = outcome.secs.map(|s| format!("{s} s")).unwrap_or_else(|| "-".into());
            eprintln!(
                "      {:4}  {:<28} {:<22} {secs:>6}",
                if problem.is_some() { "FAIL" } else { "ok" },
                job.title().chars().take(28).collect::<String>(),
                counts
            );
            if let Some(problem) = problem {
                failures.push(format!(
                    "{} {}: {problem}; the end of its output:\n{}",
                    kernel.version,
                    job.title(),
                    indent(&tail_lines(&outcome.log, 60))
                ));
            }
        }
        match &report.doctor {
            Some((status, text)) => {
                eprintln!("      sip-xdp doctor (exit {status}):\n{}", indent(text.trim_end()));
                if *status != 0 {
                    failures.push(format!(
                        "{}: `sip-xdp doctor` says sip-xdp cannot run there (exit {status})",
                        kernel.version
                    ));
                }
            }
            None => failures.push(format!("{}: `sip-xdp doctor` did not run", kernel.version)),
        }
    }
    eprintln!("    wall time of the layer: {} s", wall.as_secs());
    if failures.is_empty() {
        for report in &reports {
            if let Ok(run) = &report.run {
                let _ = std::fs::remove_dir_all(&run.dir);
            }
        }
        return Ok(());
    }
    for report in &reports {
        if let Ok(run) = &report.run {
            eprintln!(
                "    {}: the end of the guest's output (all of it, logs and console in {}):\n{}",
                report.kernel.version,
                run.dir.display(),
                indent(&tail_lines(&run.output, 30))
            );
        }
    }
    for failure in &failures {
        eprintln!("    FAILED {failure}");
    }
    bail!("the kernel-matrix layer failed: {} problem(s) above", failures.len())
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("        {l}")).collect::<Vec<_>>().join("\n")
}

/// The kernels `which` names ("6.1", "6.12"), or all of them.
pub fn select(kernels: Vec<Kernel>, which: Option<&str>) -> Result<Vec<Kernel>> {
    match which {
        None => Ok(kernels),
        Some(series) => {
            let chosen: Vec<Kernel> = kernels.into_iter().filter(|k| k.series == series).collect();
            if chosen.is_empty() {
                let known: Vec<&str> = vm::SERIES.iter().map(|s| s.label).collect();
                bail!("no kernel {series}: choose one of {}", known.join(", "));
            }
            Ok(chosen)
        }
    }
}

/// `cargo xtask vm`'s arguments after `--`: a test target and its
/// arguments, or a script.
#[derive(Debug, PartialEq, Eq)]
pub enum VmWork {
    Layer,
    Test { target: String, args: Vec<String> },
    Script(String),
}

pub fn vm_work(args: &[String], targets: &[String]) -> VmWork {
    match args {
        [] => VmWork::Layer,
        [first, rest @ ..] if targets.contains(first) => VmWork::Test { target: first.clone(), args: rest.to_vec() },
        words => VmWork::Script(words.join(" ")),
    }
}

/// `cargo xtask vm` with a script or one test binary: runs it in each
/// chosen guest with its output as it comes; fails if it fails anywhere.
pub fn run_script(kernels: &[Kernel], script: &str, timeout: Duration) -> Result<()> {
    let runs = run_guests(kernels, &|_| script.to_string(), timeout);
    let mut failed = Vec::new();
    for (kernel, run) in kernels.iter().zip(runs) {
        match run {
            Ok(run) => {
                eprintln!(
                    "    {}: exit {} (booted in {} s, {} s in all; run directory {})",
                    kernel.version,
                    run.status,
                    run.boot.as_secs(),
                    run.total.as_secs(),
                    run.dir.display()
                );
                if run.status != 0 {
                    failed.push(kernel.version.clone());
                }
            }
            Err(err) => {
                eprintln!("    {}: {err:#}", kernel.version);
                failed.push(kernel.version.clone());
            }
        }
    }
    if !failed.is_empty() {
        bail!("failed on {}", failed.join(", "));
    }
    Ok(())
}

/// The script that runs one test binary with `args`, from the workspace.
pub fn test_script(root: &Path, sip_xdp: &Path, binary: &Path, args: &[String]) -> String {
    let words: Vec<String> = std::iter::once(binary.to_string_lossy().into_owned())
        .chain(args.iter().cloned())
        .map(|w| shell_quote(&w))
        .collect();
    format!(
        "export SIP_XDP_BIN={} RUST_BACKTRACE=1\ncd {}\n{}\n",
        shell_quote(&sip_xdp.to_string_lossy()),
        shell_quote(&root.to_string_lossy()),
        words.join(" ")
    )
}

/// The executables of the given test targets, built with `cargo test
/// --no-run` (where cargo says it put them, wherever the target directory
/// is).
pub fn build_tests(root: &Path, targets: &[&str]) -> Result<std::collections::BTreeMap<String, PathBuf>> {
    let mut cmd = crate::cargo();
    cmd.current_dir(root).args(["test", "--no-run", "--package", "sip-xdp-tests"]);
    for target in targets {
        cmd.args(["--test", target]);
    }
    crate::executables(&mut cmd, "test").context("building the test binaries")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn libtest_summaries_are_read() {
        let log = "running 3 tests\ntest a ... ok\n\ntest result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 1.20s\n";
        assert_eq!(summary(log), Some(Summary { ok: true, passed: 3, failed: 0, ignored: 1 }));
        let log = "test result: FAILED. 1 passed; 2 failed; 0 ignored; 0 measured; 5 filtered out; finished in 60.00s";
        assert_eq!(summary(log), Some(Summary { ok: false, passed: 1, failed: 2, ignored: 0 }));
        assert_eq!(summary("thread 'main' panicked"), None);
    }

    fn job(tests: &[&str]) -> Job {
        Job {
            target: "e2e_filter".into(),
            tests: strings(tests),
            binary: "/t/e2e_filter-1".into(),
            args: vec![],
            alone: true,
        }
    }

    fn outcome(status: i32, passed: u32, failed: u32, ignored: u32) -> Outcome {
        Outcome {
            status: Some(status),
            secs: Some(1),
            summary: Some(Summary { ok: failed == 0, passed, failed, ignored }),
            log: String::new(),
        }
    }

    #[test]
    fn a_job_fails_the_layer_if_it_fails_skips_or_runs_nothing() {
        assert_eq!(outcome(0, 3, 0, 0).problem(&job(&[])), None);
        assert_eq!(outcome(0, 1, 0, 0).problem(&job(&["sigkill"])), None);
        assert!(outcome(101, 2, 1, 0).problem(&job(&[])).unwrap().contains("1 failed"));
        // A name that matches nothing runs nothing, and libtest says ok.
        assert!(outcome(0, 0, 0, 0).problem(&job(&["renamed"])).unwrap().contains("ran 0 tests, expected 1"));
        assert!(outcome(0, 0, 0, 0).problem(&job(&[])).is_some());
        assert!(outcome(0, 2, 0, 1).problem(&job(&[])).unwrap().contains("ignored"));
        let killed = Outcome { status: Some(124), secs: Some(600), summary: None, log: String::new() };
        assert!(killed.problem(&job(&[])).unwrap().contains("exit 124 without a test summary"));
        let never = Outcome { status: None, secs: None, summary: None, log: String::new() };
        assert!(never.problem(&job(&[])).unwrap().contains("did not run"));
    }

    #[test]
    fn the_layer_runs_the_named_end_to_end_tests_alone_then_every_verdict_table_two_at_a_time() {
        let jobs =
            layer_jobs(&strings(&["verdict_a", "verdict_b"]), &|t| Ok(PathBuf::from(format!("/t/{t}-0")))).unwrap();
        let titles: Vec<String> = jobs.iter().map(Job::title).collect();
        assert_eq!(
            titles,
            [
                "e2e_attach",
                "e2e_filter sigkill_leaves_the_filter_in_force_and_a_restart_adopts_it_without_a_gap",
                "verdict_a",
                "verdict_b",
            ]
        );
        assert_eq!(jobs.iter().map(|j| j.alone).collect::<Vec<_>>(), [true, true, false, false]);
        assert_eq!(
            jobs[1].command(),
            strings(&[
                "/t/e2e_filter-0",
                "sigkill_leaves_the_filter_in_force_and_a_restart_adopts_it_without_a_gap",
                "--exact",
                "--test-threads",
                "1"
            ])
        );
        let script = guest_script(Path::new("/w"), Path::new("/t/sip-xdp"), &jobs);
        assert!(script.contains("export SIP_XDP_BIN=/t/sip-xdp"), "{script}");
        let doctor = script.find("doctor --iface sxvm-doc0 --try-attach").expect("doctor runs");
        let lines: Vec<&str> =
            script[doctor..].lines().filter(|l| l.starts_with("job ") || l.starts_with("beside ")).collect();
        assert_eq!(
            lines,
            [
                "job 0 e2e_attach /t/e2e_attach-0 --test-threads 1",
                "job 1 'e2e_filter sigkill_leaves_the_filter_in_force_and_a_restart_adopts_it_without_a_gap' \
                 /t/e2e_filter-0 sigkill_leaves_the_filter_in_force_and_a_restart_adopts_it_without_a_gap --exact \
                 --test-threads 1",
                "beside 2 verdict_a /t/verdict_a-0",
                "beside 3 verdict_b /t/verdict_b-0",
            ]
        );
        assert!(script.contains("-ge 2 ]; do wait -n; done"), "{script}");
        assert!(script.ends_with("wait\n! grep -qv '^0 ' \"$VM_OUT\"/job-*.status\n"), "{script}");
    }

    #[test]
    fn vm_arguments_name_a_test_target_or_make_a_script() {
        let targets = strings(&["verdict_ingress", "e2e_filter"]);
        assert_eq!(vm_work(&[], &targets), VmWork::Layer);
        assert_eq!(
            vm_work(&strings(&["e2e_filter", "sigkill", "--nocapture"]), &targets),
            VmWork::Test { target: "e2e_filter".into(), args: strings(&["sigkill", "--nocapture"]) }
        );
        assert_eq!(vm_work(&strings(&["uname", "-r;", "ls"]), &targets), VmWork::Script("uname -r; ls".into()));
    }
}
