//! End-to-end lab: an edge namespace (Kamailio and sip-xdp) joined by veth
//! pairs to a trunk namespace (allowlisted in the tests' configs) and a
//! stranger namespace. Addresses are from 198.18.0.0/15; traffic never
//! leaves the namespaces. Everything is torn down in `Drop`, so a failing
//! test leaves nothing behind.

use std::{
    fs::File,
    io::{BufRead, BufReader},
    net::{SocketAddr, UdpSocket},
    os::{fd::AsRawFd, unix::process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

pub const EDGE_TRUNK_IP: &str = "198.18.1.1";
pub const TRUNK_IP: &str = "198.18.1.2";
pub const EDGE_STRANGER_IP: &str = "198.18.2.1";
pub const STRANGER_IP: &str = "198.18.2.2";

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

fn ip(args: &[&str]) {
    sh(Command::new("ip").args(args));
}

/// A unique short tag per lab: names of namespaces and (15-byte) interfaces.
fn unique_tag() -> String {
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

pub struct Lab {
    pub tag: String,
    pub edge: String,
    pub trunk: String,
    pub stranger: String,
    /// Edge-side interfaces facing the trunk and the stranger.
    pub edge_trunk_if: String,
    pub edge_stranger_if: String,
    /// A bpffs mounted in the test's own mount namespace, so the
    /// controller (under `ip netns exec`) and the CLI see the same pins.
    pub pins: PathBuf,
    pub dir: PathBuf,
    pub kamailio: Option<Proc>,
    pub controller: Option<Proc>,
    pub prometheus: Option<Proc>,
}

impl Default for Lab {
    fn default() -> Lab {
        Lab::new()
    }
}

impl Lab {
    pub fn new() -> Lab {
        let tag = unique_tag();
        let dir = std::env::temp_dir().join(format!("sip-xdp-e2e-{tag}"));
        let pins = PathBuf::from(format!("/run/sip-xdp-tests/{tag}"));
        let lab = Lab {
            edge: format!("{tag}-edge"),
            trunk: format!("{tag}-trunk"),
            stranger: format!("{tag}-str"),
            edge_trunk_if: format!("{tag}et"),
            edge_stranger_if: format!("{tag}es"),
            pins,
            dir,
            tag,
            kamailio: None,
            controller: None,
            prometheus: None,
        };
        std::fs::create_dir_all(&lab.dir).expect("lab dir");
        std::fs::create_dir_all(&lab.pins).expect("pin dir");
        let pins = lab.pins.to_str().expect("utf-8");
        sh(Command::new("mount").args(["-t", "bpf", "bpffs", pins]));
        for ns in [&lab.edge, &lab.trunk, &lab.stranger] {
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        lab.wire(&lab.trunk, &lab.edge_trunk_if, EDGE_TRUNK_IP, TRUNK_IP, "t");
        lab.wire(&lab.stranger, &lab.edge_stranger_if, EDGE_STRANGER_IP, STRANGER_IP, "s");
        lab
    }

    /// A veth pair from the edge to `peer_ns`, on a /24.
    fn wire(&self, peer_ns: &str, edge_if: &str, edge_ip: &str, peer_ip: &str, suffix: &str) {
        let peer_if = format!("{}p{suffix}", self.tag);
        ip(&["link", "add", edge_if, "netns", &self.edge, "type", "veth", "peer", "name", &peer_if, "netns", peer_ns]);
        ip(&["-n", &self.edge, "addr", "add", &format!("{edge_ip}/24"), "dev", edge_if]);
        ip(&["-n", peer_ns, "addr", "add", &format!("{peer_ip}/24"), "dev", &peer_if]);
        ip(&["-n", &self.edge, "link", "set", edge_if, "up"]);
        ip(&["-n", peer_ns, "link", "set", &peer_if, "up"]);
    }

    pub fn start_kamailio(&mut self) {
        self.start_kamailio_logging_to(None);
    }

    /// Starts Kamailio; with `log`, its log lines go to that file instead
    /// of the collected output (for fail2ban to read).
    pub fn start_kamailio_logging_to(&mut self, log: Option<&Path>) {
        let run = self.dir.join("kamailio");
        std::fs::create_dir_all(&run).expect("kamailio dir");
        let run = run.to_str().expect("utf-8").to_string();
        let cfg = fixture("kamailio.cfg");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.edge]);
        let args = ["-DD", "-E", "-f", cfg.to_str().expect("utf-8"), "-Y", &run, "-w", &run, "-m", "32", "-M", "4"];
        match log {
            // The shell only redirects; `exec` leaves Kamailio its process.
            Some(log) => cmd.args(["sh", "-c", &format!("exec kamailio {} 2>>'{}'", args.join(" "), log.display())]),
            None => cmd.arg("kamailio").args(args),
        };
        let k = Proc::spawn("kamailio", &mut cmd);
        // Ready once it answers an OPTIONS, asked over the edge's loopback
        // (which the filter does not watch).
        let sock = self.udp_in(&self.edge, "127.0.0.1:0");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let _ = sock
                .send_to(&options_request("127.0.0.1", sock.local_addr().expect("addr").port(), 0), "127.0.0.1:5060");
            if recv_within(&sock, Duration::from_millis(200)).is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "Kamailio does not answer:\n{}", k.text());
        }
        self.kamailio = Some(k);
    }

    /// Writes `config` and starts `sip-xdp run` in the edge namespace,
    /// waiting until it is filtering.
    pub fn start_controller(&mut self, config: &str) -> PathBuf {
        let path = self.write_config("sip-xdp.toml", config);
        self.controller = Some(self.spawn_controller(&path, &["--xdp-mode", "native"]));
        self.controller.as_mut().expect("controller").wait_for("filtering;", Duration::from_secs(30));
        path
    }

    pub fn write_config(&self, name: &str, config: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, config).expect("write config");
        path
    }

    pub fn spawn_controller(&self, config: &Path, extra: &[&str]) -> Proc {
        Proc::spawn(
            "sip-xdp run",
            Command::new("ip")
                .args(["netns", "exec", &self.edge])
                .arg(sip_xdp_bin())
                .arg("--pin-dir")
                .arg(&self.pins)
                .args(["run", "--config"])
                .arg(config)
                .args(extra)
                .env("RUST_LOG", "info"),
        )
    }

    /// The config the tests start from: both edge interfaces, the trunk
    /// allowlisted.
    pub fn base_config(&self, extra_cidrs: &[&str]) -> String {
        let mut cidrs = vec![format!("\"{TRUNK_IP}/32\"")];
        cidrs.extend(extra_cidrs.iter().map(|c| format!("\"{c}\"")));
        format!(
            "interfaces = [\"{}\", \"{}\"]\n[filter]\nports = [5060, 5061]\n[allow]\ncidrs = [{}]\n",
            self.edge_trunk_if,
            self.edge_stranger_if,
            cidrs.join(", ")
        )
    }

    /// A config with the trunk trusted and the stranger's network in the
    /// `customers` class (5 REGISTER/s, burst 20; 50 requests/s, burst
    /// 200), followed by `extra` TOML sections.
    pub fn customers_config(&self, extra: &str) -> String {
        format!(
            r#"interfaces = ["{t}", "{s}"]
[filter]
default_class = "deny"
[[rule]]
cidrs = ["{TRUNK_IP}/32"]
class = "trusted"
[[rule]]
cidrs = ["198.18.2.0/24"]
class = "customers"
[profile.customers]
register_per_sec = 5
register_burst = 20
requests_per_sec = 50
requests_burst = 200
{extra}"#,
            t = self.edge_trunk_if,
            s = self.edge_stranger_if,
        )
    }

    /// Runs the CLI against this lab's pins.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(sip_xdp_bin()).arg("--pin-dir").arg(&self.pins).args(args).output().expect("run sip-xdp")
    }

    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(out.status.success(), "sip-xdp {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8")
    }

    pub fn stats(&self) -> serde_json::Value {
        serde_json::from_str(&self.cli_ok(&["stats", "--json"])).expect("stats JSON")
    }

    /// One global counter from `stats --json`.
    pub fn counter(&self, action: &str, reason: &str) -> (u64, u64) {
        let stats = self.stats();
        let row = stats["counters"]
            .as_array()
            .expect("counters")
            .iter()
            .find(|r| r["action"] == action && r["reason"] == reason)
            .unwrap_or_else(|| panic!("no counter {action}/{reason}"));
        (row["packets"].as_u64().expect("packets"), row["bytes"].as_u64().expect("bytes"))
    }

    /// A source's row from `sources --json`.
    pub fn source(&self, addr: &str) -> Option<serde_json::Value> {
        let list: serde_json::Value =
            serde_json::from_str(&self.cli_ok(&["sources", "--top", "100000", "--json"])).expect("JSON");
        list.as_array().expect("list").iter().find(|r| r["source"] == addr).cloned()
    }

    /// Runs `make` on a thread that has entered namespace `ns`; what it
    /// creates (sockets) stays in that namespace.
    pub fn in_netns<T: Send + 'static>(&self, ns: &str, make: impl FnOnce() -> T + Send + 'static) -> T {
        let ns_path = format!("/var/run/netns/{ns}");
        std::thread::spawn(move || {
            let f = File::open(&ns_path).expect("netns file");
            // SAFETY: setns on this thread only; the fd is valid.
            assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns");
            make()
        })
        .join()
        .expect("netns thread")
    }

    /// A UDP socket created inside namespace `ns`.
    pub fn udp_in(&self, ns: &str, bind: &str) -> UdpSocket {
        let bind: SocketAddr = bind.parse().expect("bind address");
        self.in_netns(ns, move || {
            let sock = UdpSocket::bind(bind).expect("bind in namespace");
            sock.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
            sock
        })
    }

    /// A real Prometheus in the edge namespace, scraping the controller's
    /// metrics (127.0.0.1:9560 there) every second and evaluating the
    /// repository's alert rules; returns its base URL once it is ready.
    pub fn start_prometheus(&mut self) -> String {
        let dir = self.dir.join("prometheus");
        std::fs::create_dir_all(&dir).expect("prometheus dir");
        let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../prometheus/sip-xdp.rules.yml");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: sip-xdp\n    static_configs:\n      - targets: [\"127.0.0.1:9560\"]\n",
            rules.display()
        );
        std::fs::write(dir.join("prometheus.yml"), config).expect("prometheus config");
        let mut p = Proc::spawn(
            "prometheus",
            Command::new("ip")
                .args(["netns", "exec", &self.edge, "prometheus"])
                .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
                .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
                .args(["--web.listen-address=127.0.0.1:9090", "--storage.tsdb.retention.time=1h"]),
        );
        p.wait_for("Server is ready to receive web requests", Duration::from_secs(30));
        self.prometheus = Some(p);
        "http://127.0.0.1:9090".to_string()
    }

    /// GET `url` from inside the edge namespace; the body.
    pub fn http_get(&self, url: &str) -> String {
        self.http_get_with(url, &[])
    }

    /// The same with query parameters (encoded by the HTTP client).
    pub fn http_get_with(&self, url: &str, params: &[(&str, &str)]) -> String {
        let url = url.to_string();
        let params: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.in_netns(&self.edge, move || {
            let mut request = ureq::get(&url);
            for (k, v) in &params {
                request = request.query(k, v);
            }
            let mut response = request.call().unwrap_or_else(|e| panic!("GET {url} {params:?}: {e}"));
            response.body_mut().read_to_string().expect("body")
        })
    }

    /// An HTTP server on the edge's loopback that collects the bodies POSTed
    /// to it (the controller's webhook); returns its URL and the bodies.
    pub fn webhook_receiver(&self) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = self.in_netns(&self.edge, || std::net::TcpListener::bind("127.0.0.1:0").expect("bind"));
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let server = tiny_http::Server::from_listener(listener, None).expect("http server");
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&bodies);
        // Ends when the lab's namespace (and so the listener's network) goes.
        std::thread::spawn(move || {
            while let Ok(Some(mut request)) = server.recv_timeout(Duration::from_secs(120)) {
                let mut body = String::new();
                let _ = std::io::Read::read_to_string(request.as_reader(), &mut body);
                sink.lock().expect("bodies").push(body);
                let _ = request.respond(tiny_http::Response::empty(200));
            }
        });
        (url, bodies)
    }

    /// One digest-authenticated registration with SIPp from `ns`; true if
    /// it got its 200 OK.
    pub fn sipp_register(&self, ns: &str, local_ip: &str, server_ip: &str) -> bool {
        self.sipp_register_with(ns, local_ip, server_ip, "secret")
    }

    /// The same with a given password: a wrong one draws two 401s (the
    /// challenge and the refusal) and fails.
    pub fn sipp_register_with(&self, ns: &str, local_ip: &str, server_ip: &str, password: &str) -> bool {
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "sipp", &format!("{server_ip}:5060"), "-sf"])
            .arg(fixture("register.xml"))
            .args([
                "-s",
                "alice",
                "-ap",
                password,
                "-i",
                local_ip,
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

    /// Detaches XDP from the edge interfaces, whatever state they are in.
    fn force_detach(&self) {
        for ifname in [&self.edge_trunk_if, &self.edge_stranger_if] {
            let _ = Command::new("ip").args(["-n", &self.edge, "link", "set", "dev", ifname, "xdp", "off"]).output();
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.prometheus.take();
        self.controller.take();
        self.kamailio.take();
        // Link pins keep the program attached: remove them with the bpffs.
        let _ = Command::new("umount").arg("-l").arg(&self.pins).output();
        let _ = std::fs::remove_dir(&self.pins);
        self.force_detach();
        for ns in [&self.edge, &self.trunk, &self.stranger] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An OPTIONS request with a unique Call-ID.
pub fn options_request(from_ip: &str, from_port: u16, seq: u32) -> Vec<u8> {
    sip_request("OPTIONS", from_ip, from_port, seq)
}

/// A REGISTER request (no credentials) with a unique Call-ID.
pub fn register_request(from_ip: &str, from_port: u16, seq: u32) -> Vec<u8> {
    sip_request("REGISTER", from_ip, from_port, seq)
}

fn sip_request(method: &str, from_ip: &str, from_port: u16, seq: u32) -> Vec<u8> {
    format!(
        "{method} sip:198.18.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {from_ip}:{from_port};branch=z9hG4bK-{seq}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@{from_ip}>;tag={seq}\r\nTo: <sip:probe@{from_ip}>\r\n\
         Call-ID: {seq}-{from_port}@{from_ip}\r\nCSeq: {} {method}\r\nContact: <sip:probe@{from_ip}:{from_port}>\r\n\
         Content-Length: 0\r\n\r\n",
        seq + 1
    )
    .into_bytes()
}

/// A datagram if one arrives within `wait`.
pub fn recv_within(sock: &UdpSocket, wait: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            return Some(buf[..n].to_vec());
        }
    }
    None
}

/// Sends `count` OPTIONS requests (unique Call-IDs) from `sock` to port
/// 5060 of `server_ip`, one every `gap`, on another thread.
pub fn send_options_in_background(
    sock: &UdpSocket,
    server_ip: &str,
    count: u32,
    gap: Duration,
) -> std::thread::JoinHandle<()> {
    let sock = sock.try_clone().expect("clone socket");
    let local = sock.local_addr().expect("local address");
    let server = format!("{server_ip}:5060");
    std::thread::spawn(move || {
        for seq in 0..count {
            let _ = sock.send_to(&options_request(&local.ip().to_string(), local.port(), seq), &server);
            std::thread::sleep(gap);
        }
    })
}

/// Counts, on another thread, the datagrams arriving within `wait`, so a
/// burst of answers never overflows the socket buffer.
pub fn count_in_background(sock: &UdpSocket, wait: Duration) -> std::thread::JoinHandle<usize> {
    let sock = sock.try_clone().expect("clone socket");
    std::thread::spawn(move || drain(&sock, wait))
}

/// Counts datagrams arriving within `wait`.
pub fn drain(sock: &UdpSocket, wait: Duration) -> usize {
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 4096];
    let mut n = 0;
    while Instant::now() < deadline {
        if sock.recv_from(&mut buf).is_ok() {
            n += 1;
        }
    }
    n
}
