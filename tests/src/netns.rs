//! End-to-end lab: an edge namespace (Kamailio and sip-xdp) joined by veth
//! pairs to a trunk namespace (allowlisted in the tests' configs) and a
//! stranger namespace, over IPv4 and IPv6. Addresses are from
//! 198.18.0.0/15 and 2001:2::/48 only; traffic never leaves the
//! namespaces. Everything is torn down in `Drop`, so a failing test leaves
//! nothing behind.

use std::{
    collections::BTreeMap,
    fs::File,
    io::{BufRead, BufReader, Read, Write},
    net::{IpAddr, SocketAddr, TcpStream, UdpSocket},
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
/// The same links over IPv6: one /64 per link, inside 2001:2::/48.
pub const EDGE_TRUNK_IP6: &str = "2001:2:0:1::1";
pub const TRUNK_IP6: &str = "2001:2:0:1::2";
pub const EDGE_STRANGER_IP6: &str = "2001:2:0:2::1";
pub const STRANGER_IP6: &str = "2001:2:0:2::2";
/// The largest MTU a veth takes while a native XDP program without frags
/// is attached to its peer (a page, less headroom and the skb's tail).
pub const MAX_XDP_VETH_MTU: u32 = 3500;

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
    /// Their peers, in the trunk and stranger namespaces.
    pub trunk_if: String,
    pub stranger_if: String,
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
            trunk_if: format!("{tag}pt"),
            stranger_if: format!("{tag}ps"),
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
        lab.wire(&lab.trunk, &lab.edge_trunk_if, &lab.trunk_if, [EDGE_TRUNK_IP, TRUNK_IP], [EDGE_TRUNK_IP6, TRUNK_IP6]);
        lab.wire(
            &lab.stranger,
            &lab.edge_stranger_if,
            &lab.stranger_if,
            [EDGE_STRANGER_IP, STRANGER_IP],
            [EDGE_STRANGER_IP6, STRANGER_IP6],
        );
        lab
    }

    /// A veth pair from the edge to `peer_ns`, on an IPv4 /24 and an IPv6
    /// /64 (`[edge, peer]` addresses; no duplicate address detection, so
    /// the IPv6 addresses are usable at once).
    fn wire(&self, peer_ns: &str, edge_if: &str, peer_if: &str, v4: [&str; 2], v6: [&str; 2]) {
        ip(&["link", "add", edge_if, "netns", &self.edge, "type", "veth", "peer", "name", peer_if, "netns", peer_ns]);
        ip(&["-n", &self.edge, "addr", "add", &format!("{}/24", v4[0]), "dev", edge_if]);
        ip(&["-n", peer_ns, "addr", "add", &format!("{}/24", v4[1]), "dev", peer_if]);
        ip(&["-n", &self.edge, "addr", "add", &format!("{}/64", v6[0]), "dev", edge_if, "nodad"]);
        ip(&["-n", peer_ns, "addr", "add", &format!("{}/64", v6[1]), "dev", peer_if, "nodad"]);
        ip(&["-n", &self.edge, "link", "set", edge_if, "up"]);
        ip(&["-n", peer_ns, "link", "set", peer_if, "up"]);
    }

    /// Gives the stranger namespace another address on its link to the
    /// edge, and the edge an on-link route to it: an IPv4 address outside
    /// 198.18.2.0/24 (198.18.3.0/24, say) gets a route for its /24, an
    /// IPv6 address outside 2001:2:0:2::/64 one for its /64. Only
    /// 198.18.0.0/15 and 2001:2::/48 are accepted.
    pub fn add_stranger_addr(&self, addr: &str) {
        match addr.parse::<IpAddr>().unwrap_or_else(|_| panic!("not an address: {addr}")) {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                assert!(o[0] == 198 && (o[1] & 0xfe) == 18, "{addr} is outside 198.18.0.0/15");
                ip(&["-n", &self.stranger, "addr", "add", &format!("{addr}/32"), "dev", &self.stranger_if]);
                if (o[1], o[2]) != (18, 2) {
                    let net = format!("{}.{}.{}.0/24", o[0], o[1], o[2]);
                    ip(&["-n", &self.edge, "route", "replace", &net, "dev", &self.edge_stranger_if]);
                }
            }
            IpAddr::V6(v6) => {
                let s = v6.segments();
                assert!(s[0] == 0x2001 && s[1] == 2 && s[2] == 0, "{addr} is outside 2001:2::/48");
                ip(&["-n", &self.stranger, "addr", "add", &format!("{addr}/128"), "dev", &self.stranger_if, "nodad"]);
                if s[3] != 2 {
                    let net = format!("2001:2:0:{:x}::/64", s[3]);
                    ip(&["-n", &self.edge, "route", "replace", &net, "dev", &self.edge_stranger_if]);
                }
            }
        }
    }

    /// Sets the MTU of both ends of the stranger's link (at most
    /// [`MAX_XDP_VETH_MTU`] while the filter is attached in native mode).
    pub fn set_stranger_mtu(&self, mtu: u32) {
        let mtu = mtu.to_string();
        ip(&["-n", &self.edge, "link", "set", "dev", &self.edge_stranger_if, "mtu", &mtu]);
        ip(&["-n", &self.stranger, "link", "set", "dev", &self.stranger_if, "mtu", &mtu]);
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

    /// Active bans, from `ban list --json`.
    pub fn bans(&self) -> Vec<serde_json::Value> {
        let list: serde_json::Value = serde_json::from_str(&self.cli_ok(&["ban", "list", "--json"])).expect("JSON");
        list.as_array().expect("list").clone()
    }

    /// The ban of `source` (as `ban list` names it), if any.
    pub fn ban_of(&self, source: &str) -> Option<serde_json::Value> {
        self.bans().into_iter().find(|b| b["source"] == source)
    }

    /// One sample of the controller's metrics (listening on its default
    /// 127.0.0.1:9560 in the edge namespace): `series` with its labels as
    /// exported, e.g. `sipxdp_auth_responses_total{outcome="failure"}`.
    pub fn metric(&self, series: &str) -> f64 {
        let text = self.http_get("http://127.0.0.1:9560/metrics");
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("bad sample {series}"))
    }

    /// A TCP connection to port 5060 of `server_ip`, made inside `ns` from
    /// `local_ip` (any free port).
    pub fn tcp_in(&self, ns: &str, local_ip: &str, server_ip: &str) -> SipStream {
        self.try_tcp_in(ns, local_ip, server_ip, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect {local_ip} -> {server_ip}: {e}"))
    }

    /// The same, or the error if it is not up within `wait`.
    pub fn try_tcp_in(&self, ns: &str, local_ip: &str, server_ip: &str, wait: Duration) -> std::io::Result<SipStream> {
        let local: IpAddr = local_ip.parse().expect("local address");
        let server = SocketAddr::new(server_ip.parse().expect("server address"), 5060);
        self.in_netns(ns, move || {
            let stream = tcp_connect(local, server, wait)?;
            stream.set_nodelay(true)?;
            Ok(SipStream { stream, buf: Vec::new() })
        })
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
    let from_ip = sip_host(from_ip);
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

/// `ip` as the host part of a SIP URI or Via: an IPv6 address in brackets.
pub fn sip_host(ip: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    }
}

/// `ip:port`, an IPv6 address in brackets (a socket address, SIPp's
/// remote host).
pub fn host_port(ip: &str, port: u16) -> String {
    format!("{}:{port}", sip_host(ip))
}

/// A REGISTER for `user` carrying digest credentials that are wrong (a
/// guessed password, an invented nonce): the server refuses them with a
/// 401. `transport` is `UDP` or `TCP`; the Call-ID is unique per `seq`.
pub fn register_with_credentials(
    transport: &str,
    from_ip: &str,
    from_port: u16,
    server_ip: &str,
    user: &str,
    seq: u32,
) -> Vec<u8> {
    let (from, server) = (sip_host(from_ip), sip_host(server_ip));
    format!(
        "REGISTER sip:{server} SIP/2.0\r\nVia: SIP/2.0/{transport} {from}:{from_port};branch=z9hG4bK-g{seq}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:{user}@{server}>;tag=g{seq}\r\nTo: <sip:{user}@{server}>\r\n\
         Call-ID: guess-{seq}-{from_port}@{from}\r\nCSeq: 2 REGISTER\r\nContact: <sip:{user}@{from}:{from_port}>\r\n\
         Authorization: Digest username=\"{user}\", realm=\"{server}\", nonce=\"6a1b2c3d{seq:08x}\", \
         uri=\"sip:{server}\", response=\"{:032x}\", algorithm=MD5\r\n\
         Expires: 300\r\nContent-Length: 0\r\n\r\n",
        0x5eed_u128.wrapping_mul(u128::from(seq) + 1)
    )
    .into_bytes()
}

/// The shortest REGISTER with digest credentials (for extension 1000)
/// that Kamailio reads and refuses with a 401: compact headers, empty
/// digest fields, 170 bytes, so that twenty fit one TCP segment at an MTU
/// of [`MAX_XDP_VETH_MTU`]. The Call-ID is unique per `seq` (< 100).
pub fn compact_register_with_credentials(seq: u32) -> Vec<u8> {
    format!(
        "REGISTER sip:d SIP/2.0\r\nv:SIP/2.0/TCP a\r\nf:sip:d\r\nt:sip:1000@d\r\ni:{seq:02}\r\nCSeq:1 REGISTER\r\n\
         Authorization:Digest username=\"1000\",realm=\"d\",nonce=\"\",uri=\"\",response=\"\"\r\nl:0\r\n\r\n"
    )
    .into_bytes()
}

/// A TCP connection to a SIP server, reading whole messages (they are
/// delimited by Content-Length, several may come in one read).
pub struct SipStream {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl SipStream {
    /// The connection's maximum segment size (payload bytes per segment).
    pub fn mss(&self) -> usize {
        use std::os::fd::AsRawFd;
        let mut mss: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt(2) on our own socket, into a c_int of that size.
        let rc = unsafe {
            libc::getsockopt(
                self.stream.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_MAXSEG,
                (&raw mut mss).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0, "TCP_MAXSEG: {}", std::io::Error::last_os_error());
        mss as usize
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send over TCP");
    }

    /// The next whole message, if one arrives within `wait`.
    pub fn recv(&mut self, wait: Duration) -> Option<String> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(message) = take_message(&mut self.buf) {
                return Some(message);
            }
            let left = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())?;
            self.stream.set_read_timeout(Some(left.min(Duration::from_millis(100)))).expect("timeout");
            let mut chunk = [0u8; 8192];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => return None,
            }
        }
    }
}

/// Removes and returns the first whole message of `buf` (leading CRLF
/// keep-alives skipped).
fn take_message(buf: &mut Vec<u8>) -> Option<String> {
    let skip = buf.iter().take_while(|&&c| c == b'\r' || c == b'\n').count();
    buf.drain(..skip);
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let length = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length") || name.trim().eq_ignore_ascii_case("l"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    if buf.len() < head_end + length {
        return None;
    }
    let message = String::from_utf8_lossy(&buf[..head_end + length]).to_string();
    buf.drain(..head_end + length);
    Some(message)
}

/// A TCP connection from `local` (any port) to `server`, in the calling
/// thread's network namespace (std cannot bind before connecting); an
/// error if it is not up within `wait` (a banned source's SYN is dropped).
fn tcp_connect(local: IpAddr, server: SocketAddr, wait: Duration) -> std::io::Result<TcpStream> {
    use std::os::fd::FromRawFd;
    let sockaddr = |addr: SocketAddr| {
        // SAFETY: an all-zero sockaddr_storage is valid; it is then filled
        // as the family's own structure, which it is large enough for.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let len = match addr {
            SocketAddr::V4(a) => {
                let sin = unsafe { &mut *(&raw mut storage).cast::<libc::sockaddr_in>() };
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = a.port().to_be();
                sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
                std::mem::size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                let sin6 = unsafe { &mut *(&raw mut storage).cast::<libc::sockaddr_in6>() };
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = a.port().to_be();
                sin6.sin6_addr.s6_addr = a.ip().octets();
                std::mem::size_of::<libc::sockaddr_in6>()
            }
        };
        (storage, len as libc::socklen_t)
    };
    let check = |rc: libc::c_int| if rc < 0 { Err(std::io::Error::last_os_error()) } else { Ok(rc) };
    let family = if local.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: socket(2), bind(2), connect(2), poll(2) and getsockopt(2) on
    // a fresh descriptor that the TcpStream owns from the start (so it is
    // closed on every path), with initialised structures and their sizes.
    unsafe {
        let fd = check(libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0))?;
        let stream = TcpStream::from_raw_fd(fd);
        let (addr, len) = sockaddr(SocketAddr::new(local, 0));
        check(libc::bind(fd, (&raw const addr).cast(), len))?;
        let (addr, len) = sockaddr(server);
        if libc::connect(fd, (&raw const addr).cast(), len) < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINPROGRESS) {
                return Err(err);
            }
            let mut pfd = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
            if check(libc::poll(&mut pfd, 1, wait.as_millis() as libc::c_int))? == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"));
            }
            let mut so_error: libc::c_int = 0;
            let mut optlen = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            check(libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR, (&raw mut so_error).cast(), &mut optlen))?;
            if so_error != 0 {
                return Err(std::io::Error::from_raw_os_error(so_error));
            }
        }
        stream.set_nonblocking(false)?;
        Ok(stream)
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
