//! `sip-xdp run` as the packaged systemd unit drives it: readiness told
//! over `$NOTIFY_SOCKET` (READY=1 only once the interfaces are filtered,
//! RELOADING=1/READY=1 around a reload, STOPPING=1 on SIGTERM, nothing from
//! a start that fails), the hand-over on SIGUSR2 that package upgrades use
//! (the filter left in force, adopted by the next start without a gap),
//! and `sip-xdp detach`, which the package's prerm runs to take off a
//! filter whose controller is gone.
//!
//! Needs root.

use std::{
    io::Read as _,
    os::{fd::AsRawFd as _, unix::net::UnixDatagram},
    path::{Path, PathBuf},
    process::{Child, ChildStderr, Command, Stdio},
    time::{Duration, Instant},
};

use sip_xdp_tests::netns::*;

/// Exit status of a `run` that handed over (sip_xdp::error::HANDED_OVER).
const HANDED_OVER: i32 = 75;
/// Our clsact filter as `tc` prints it (priority 0x5105, handle 0x5105).
const OUR_FILTER: &str = "pref 20741 bpf chain 0 handle 0x5105";

/// Does `interface` (in the edge namespace) have an XDP program attached?
fn has_xdp(lab: &Lab, interface: &str) -> bool {
    let out = sh(Command::new("ip").args(["-n", &lab.edge, "-d", "link", "show", "dev", interface]));
    let text = String::from_utf8_lossy(&out.stdout);
    text.contains("prog/xdp") || text.contains("xdpgeneric") || text.contains("xdp ")
}

fn egress_filters(lab: &Lab, interface: &str) -> String {
    let out = sh(Command::new("tc").args(["-n", &lab.edge, "filter", "show", "dev", interface, "egress"]));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn pinned(lab: &Lab, dir: &str) -> Vec<String> {
    let entries = std::fs::read_dir(lab.pins.join(dir)).into_iter().flatten().flatten();
    let mut names: Vec<String> = entries.map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

fn both_interfaces(lab: &Lab) -> [&str; 2] {
    [&lab.edge_trunk_if, &lab.edge_stranger_if]
}

/// A Unix datagram socket standing in for systemd's notify socket, in a
/// directory of the lab's (removed with it).
struct NotifySocket {
    path: PathBuf,
    socket: UnixDatagram,
}

impl NotifySocket {
    fn bind(lab: &Lab) -> NotifySocket {
        let path = lab.dir.join("notify");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        socket.set_read_timeout(Some(Duration::from_millis(50))).expect("timeout");
        NotifySocket { path, socket }
    }

    fn try_recv(&self) -> Option<String> {
        let mut buf = [0u8; 4096];
        let n = self.socket.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }
}

/// `sip-xdp run` in the edge namespace with `NOTIFY_SOCKET` set, its log
/// read from a non-blocking pipe: whatever the controller wrote before it
/// sent a datagram is in the pipe by the time the datagram is received.
struct NotifiedRun {
    child: Child,
    stderr: ChildStderr,
    log: String,
}

impl NotifiedRun {
    fn spawn(lab: &Lab, config: &Path, notify: &NotifySocket) -> NotifiedRun {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &lab.edge])
            .arg(sip_xdp_bin())
            .arg("--pin-dir")
            .arg(&lab.pins)
            .args(["run", "--xdp-mode", "native", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .env("NOTIFY_SOCKET", &notify.path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sip-xdp run");
        let stderr = child.stderr.take().expect("stderr");
        // SAFETY: fcntl on a pipe fd this process owns.
        unsafe {
            let fd = stderr.as_raw_fd();
            libc::fcntl(fd, libc::F_SETFL, libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK);
        }
        NotifiedRun { child, stderr, log: String::new() }
    }

    /// Reads what the controller has written so far.
    fn read_log(&mut self) -> &str {
        let mut buf = [0u8; 8192];
        while let Ok(n) = self.stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            self.log.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        &self.log
    }

    /// The next datagram, with the log as it stood when it arrived; None
    /// if the controller exited or `timeout` passed first.
    fn next_notification(&mut self, notify: &NotifySocket, timeout: Duration) -> Option<(String, String)> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(message) = notify.try_recv() {
                let log = self.read_log().to_string();
                return Some((message, log));
            }
            self.read_log();
            if let Ok(Some(_)) = self.child.try_wait() {
                return notify.try_recv().map(|m| (m, self.read_log().to_string()));
            }
        }
        None
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                self.read_log();
                return status.code();
            }
            assert!(Instant::now() < deadline, "sip-xdp run did not exit:\n{}", self.read_log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NotifiedRun {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn ready_only_once_filtering_reloading_around_a_reload_and_stopping_on_sigterm() {
    let lab = Lab::new();
    let notify = NotifySocket::bind(&lab);
    let config = lab.write_config("sip-xdp.toml", &lab.base_config(&[]));
    let mut run = NotifiedRun::spawn(&lab, &config, &notify);

    // The first word from the controller is READY=1, and by then it has
    // logged that it filters and both interfaces carry the program.
    let (ready, log) = run.next_notification(&notify, Duration::from_secs(60)).expect("READY=1 within a minute");
    assert!(ready.starts_with("READY=1\n"), "{ready:?}");
    assert!(log.contains("filtering;"), "READY=1 came before the log said \"filtering;\":\n{log}");
    for interface in both_interfaces(&lab) {
        assert!(has_xdp(&lab, interface), "READY=1 came before {interface} was filtered");
    }
    let status = format!("STATUS=filtering on {}, {} in enforce mode\n", lab.edge_trunk_if, lab.edge_stranger_if);
    assert!(ready.ends_with(&status), "{ready:?}");
    assert_eq!(notify.try_recv(), None, "one READY=1");

    // A reload is framed by RELOADING=1 and READY=1.
    run.signal(libc::SIGHUP);
    let (reloading, _) = run.next_notification(&notify, Duration::from_secs(10)).expect("RELOADING=1");
    assert!(reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{reloading:?}");
    let (ready, _) = run.next_notification(&notify, Duration::from_secs(10)).expect("READY=1 after the reload");
    assert_eq!(ready, "READY=1\nSTATUS=filtering; config reloaded\n");

    // SIGTERM: STOPPING=1, then the detach and a clean exit.
    run.signal(libc::SIGTERM);
    let (stopping, _) = run.next_notification(&notify, Duration::from_secs(10)).expect("STOPPING=1");
    assert_eq!(stopping, "STOPPING=1\nSTATUS=detaching the filter\n");
    assert_eq!(run.wait_exit(Duration::from_secs(10)), Some(0), "{}", run.log);
    assert!(run.log.contains("detached from"), "{}", run.log);
    for interface in both_interfaces(&lab) {
        assert!(!has_xdp(&lab, interface), "{interface} still filtered after the stop");
    }
    assert_eq!(notify.try_recv(), None, "nothing after STOPPING=1");
}

#[test]
fn a_start_that_fails_never_says_ready() {
    let lab = Lab::new();
    let notify = NotifySocket::bind(&lab);
    let config = lab.write_config("sip-xdp.toml", "interfaces = [\"sxnosuchif0\"]\n");
    let mut run = NotifiedRun::spawn(&lab, &config, &notify);
    assert_eq!(run.wait_exit(Duration::from_secs(30)), Some(2), "{}", run.log);
    assert!(run.log.contains("no such interface: sxnosuchif0"), "{}", run.log);
    assert_eq!(notify.try_recv(), None, "no word to systemd from a start that failed");
}

#[test]
fn sigusr2_leaves_the_filter_in_force_and_the_next_start_adopts_it_without_a_gap() {
    let mut lab = Lab::new();
    lab.start_kamailio();
    let config = lab.write_config("sip-xdp.toml", &lab.base_config(&[]));
    let clsact = ["--xdp-mode", "native", "--egress-attach", "clsact"];
    let mut first = lab.spawn_controller(&config, &clsact);
    first.wait_for("filtering;", Duration::from_secs(30));
    assert!(!lab.answered(STRANGER_IP, EDGE_STRANGER_IP), "the stranger is dropped");

    first.signal(libc::SIGUSR2);
    assert_eq!(first.wait_exit(Duration::from_secs(10)), Some(HANDED_OVER), "{}", first.text());
    assert!(first.text().contains("left the filter attached to"), "{}", first.text());
    assert!(!first.text().contains("detached from"), "{}", first.text());
    // No controller now, and still filtered, as the kernel was left it.
    for interface in both_interfaces(&lab) {
        assert!(has_xdp(&lab, interface), "{interface} unfiltered after the hand-over");
        assert!(egress_filters(&lab, interface).contains(OUR_FILTER), "{interface} lost its egress observer");
    }
    assert_eq!(pinned(&lab, "links").len(), 2);
    assert!(!lab.answered(STRANGER_IP, EDGE_STRANGER_IP), "the stranger is still dropped");

    // The next start takes over in place while the stranger probes every
    // 5 ms: not one probe may reach Kamailio.
    let stranger = lab.udp_in(&lab.stranger, &format!("{STRANGER_IP}:0"));
    let prober = send_options_in_background(&stranger, EDGE_STRANGER_IP, 600, Duration::from_millis(5));
    let mut second = lab.spawn_controller(&config, &clsact);
    second.wait_for("filtering;", Duration::from_secs(30));
    prober.join().unwrap();
    assert_eq!(drain(&stranger, Duration::from_millis(500)), 0, "no answer leaked during the hand-over");
    for interface in both_interfaces(&lab) {
        assert!(second.text().contains(&format!("{interface}: adopted the pinned filter")), "{}", second.text());
        assert_eq!(egress_filters(&lab, interface).matches(OUR_FILTER).count(), 1, "one egress filter of ours");
    }
    second.signal(libc::SIGTERM);
    assert_eq!(second.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(lab.answered(STRANGER_IP, EDGE_STRANGER_IP), "a stop detaches");
}

/// `sip-xdp detach` in the edge namespace, on the lab's pins.
fn detach(lab: &Lab) -> std::process::Output {
    Command::new("ip")
        .args(["netns", "exec", &lab.edge])
        .arg(sip_xdp_bin())
        .arg("--pin-dir")
        .arg(&lab.pins)
        .arg("detach")
        .output()
        .expect("run sip-xdp detach")
}

#[test]
fn detach_takes_off_what_a_killed_controller_left_and_never_works_under_a_running_one() {
    let mut lab = Lab::new();
    lab.start_kamailio();
    let config = lab.write_config("sip-xdp.toml", &lab.base_config(&[]));
    let mut run = lab.spawn_controller(&config, &["--xdp-mode", "native", "--egress-attach", "clsact"]);
    run.wait_for("filtering;", Duration::from_secs(30));
    lab.cli_ok(&["allow", "add", "198.18.2.99"]);

    let refused = detach(&lab);
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("another `sip-xdp run` is already managing"), "{err}");
    assert!(has_xdp(&lab, &lab.edge_stranger_if), "nothing detached under a running controller");

    run.signal(libc::SIGKILL);
    assert_eq!(run.wait_exit(Duration::from_secs(10)), None);
    assert!(!lab.answered(STRANGER_IP, EDGE_STRANGER_IP), "filtered with the controller dead");

    let out = detach(&lab);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    // Named in order: the stranger's link ends in "es", the trunk's in "et".
    let expected = format!("detached from {}, {};", lab.edge_stranger_if, lab.edge_trunk_if);
    assert!(text.starts_with(&expected), "{text}");
    for interface in both_interfaces(&lab) {
        assert!(!has_xdp(&lab, interface), "{interface} still has XDP");
        assert!(!egress_filters(&lab, interface).contains(OUR_FILTER), "{interface} still has our egress filter");
    }
    assert_eq!(pinned(&lab, "links"), Vec::<String>::new());
    assert!(lab.answered(STRANGER_IP, EDGE_STRANGER_IP), "the stranger reaches Kamailio: nothing filters");
    // The maps stay, with the runtime allowlist, for the next start.
    assert!(lab.cli_ok(&["allow", "list"]).contains("198.18.2.99/32"));

    let again = detach(&lab);
    assert!(again.status.success());
    assert_eq!(String::from_utf8_lossy(&again.stdout), "nothing was attached\n");
}
