//! End-to-end lab: an edge namespace (Kamailio and sip-xdp) joined by veth
//! pairs to a trunk namespace (allowlisted in the tests' configs) and a
//! stranger namespace, over IPv4 and IPv6. Addresses are from
//! 198.18.0.0/15 and 2001:2::/48 only; traffic never leaves the
//! namespaces. Everything is torn down in `Drop`, so a failing test leaves
//! nothing behind.
//!
//! By concern: this module the lab itself (namespaces, links, the
//! programs under test and their CLI), [`process`] the processes it runs,
//! [`sip`] what the tests send and read (requests, UDP and TCP helpers),
//! [`sipp`] SIPp runs.

mod api;
mod crowdsec;
mod fail2ban;
mod fleet;
mod process;
mod sip;
mod sipp;
mod tls;

pub use api::*;
pub use crowdsec::*;
pub use fail2ban::*;
pub use fleet::*;
pub use process::*;
pub use sip::*;
pub use sipp::*;
pub use tls::*;

use std::{
    fs::File,
    net::{IpAddr, SocketAddr, UdpSocket},
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::{Arc, Mutex},
    time::Duration,
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
        self.start_kamailio_with("kamailio.cfg", log);
    }

    /// Starts Kamailio with the config `fixture_name` (a file of
    /// `tests/fixtures`, which must answer an OPTIONS: that is how its
    /// readiness is seen); `log` as for [`Lab::start_kamailio_logging_to`].
    pub fn start_kamailio_with(&mut self, fixture_name: &str, log: Option<&Path>) {
        self.start_kamailio_from(&fixture(fixture_name), log);
    }

    /// Starts Kamailio with the config file `cfg` (which must answer an
    /// OPTIONS on 127.0.0.1:5060 over UDP); `log` as for
    /// [`Lab::start_kamailio_logging_to`].
    pub fn start_kamailio_from(&mut self, cfg: &Path, log: Option<&Path>) {
        let run = self.dir.join("kamailio");
        std::fs::create_dir_all(&run).expect("kamailio dir");
        let run = run.to_str().expect("utf-8").to_string();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.edge]);
        let args = ["-DD", "-E", "-f", cfg.to_str().expect("utf-8"), "-Y", &run, "-w", &run, "-m", "32", "-M", "4"];
        match log {
            // The shell only redirects; `exec` leaves Kamailio its process.
            Some(log) => cmd.args(["sh", "-c", &format!("exec kamailio {} 2>>'{}'", args.join(" "), log.display())]),
            None => cmd.arg("kamailio").args(args),
        };
        let mut k = Proc::spawn("kamailio", &mut cmd);
        // Ready once it answers an OPTIONS, asked over the edge's loopback
        // (which the filter does not watch).
        let sock = self.udp_in(&self.edge, "127.0.0.1:0");
        let port = sock.local_addr().expect("addr").port();
        k.wait_until("it answered an OPTIONS", Duration::from_secs(20), || {
            let _ = sock.send_to(&options_request("127.0.0.1", port, 0), "127.0.0.1:5060");
            recv_within(&sock, Duration::from_millis(200)).is_some()
        });
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
