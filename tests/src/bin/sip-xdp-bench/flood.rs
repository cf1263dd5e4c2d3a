//! Section 3: flood throughput over veth. The generator (an XDP program of
//! ours, run through BPF_PROG_TEST_RUN in live-frames mode on core 0) sends
//! SIP REGISTERs from random sources in 198.19.0.0/16 out of the stranger's
//! veth; the edge's veth receives them under threaded NAPI pinned to core
//! 1, where each filter variant drops them. Measured: packets the edge
//! received per second, and core 1's busy share.

use std::{
    process::Command,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use aya::programs::{TestRun, TestRunAttrs, TestRunOptions, Xdp, XdpMode};
use sip_xdp_tests::{
    frames::*,
    harness::{sip_config, TestPrograms, DROP_ALL, GENERATOR},
    netns::{sh, Lab, Proc, EDGE_STRANGER_IP},
};

/// Core the generator runs on, and core the receiving NAPI thread is
/// pinned to.
const GENERATOR_CPU: usize = 0;
const RECEIVER_CPU: usize = 1;
/// The trusted trunk that registers across the flooded link (section 5).
pub const UNDER_FLOOD_TRUNK: &str = "198.18.2.200";
/// Frames per BPF_PROG_TEST_RUN call (each call takes tens of ms).
const FRAMES_PER_CALL: u32 = 200_000;

/// A filter set-up compared in the flood.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    SipXdpNative,
    SipXdpSkb,
    NftNetdev,
    NftInetRaw,
    IptablesIpset,
    NoFilter,
    DropAll,
}

impl Variant {
    pub const ALL: [Variant; 7] = [
        Variant::SipXdpNative,
        Variant::SipXdpSkb,
        Variant::NftNetdev,
        Variant::NftInetRaw,
        Variant::IptablesIpset,
        Variant::NoFilter,
        Variant::DropAll,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Variant::SipXdpNative => "sip-xdp, native XDP",
            Variant::SipXdpSkb => "sip-xdp, skb (generic) XDP",
            Variant::NftNetdev => "nftables, netdev ingress",
            Variant::NftInetRaw => "nftables, inet prerouting (raw priority)",
            Variant::IptablesIpset => "iptables raw + ipset",
            Variant::NoFilter => "no filter",
            Variant::DropAll => "XDP drop-everything (ceiling)",
        }
    }
}

/// One measurement.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub sent_pps: f64,
    pub received_pps: f64,
    /// Share of the receiving core that was busy (0..1).
    pub busy: f64,
}

/// What a variant left running, undone by [`FloodLab::remove`].
pub enum Installed {
    Controller(Proc),
    XdpLink(aya::programs::xdp::XdpLinkId),
    Rules,
    Nothing,
}

/// The lab of the flood: the stranger namespace holds the generator, the
/// edge namespace the filter under test.
pub struct FloodLab {
    pub lab: Lab,
    programs: TestPrograms,
    template: Vec<u8>,
    gen_ifindex: u32,
    /// CIDRs of the allowlist every filter variant is given.
    pub allowlist: Vec<String>,
}

impl FloodLab {
    pub fn new(allow_entries: usize) -> FloodLab {
        let lab = Lab::new();
        let gen_if = format!("{}ps", lab.tag);
        let edge_if = lab.edge_stranger_if.clone();
        // GRO on makes veth run NAPI even with no XDP program attached (the
        // generator's XDP_TX frames need it); threaded NAPI gives the
        // receive path a thread we can pin.
        sh(Command::new("ip").args(["netns", "exec", &lab.edge, "ethtool", "-K", &edge_if, "gro", "on"]));
        sh(Command::new("ip").args([
            "netns",
            "exec",
            &lab.edge,
            "sh",
            "-c",
            &format!("echo 1 > /sys/class/net/{edge_if}/threaded"),
        ]));
        let edge_mac = read_in(&lab.edge, &format!("/sys/class/net/{edge_if}/address"));
        let gen_mac = read_in(&lab.stranger, &format!("/sys/class/net/{gen_if}/address"));
        let gen_ifindex: u32 =
            read_in(&lab.stranger, &format!("/sys/class/net/{gen_if}/ifindex")).parse().expect("ifindex");
        let dst: std::net::Ipv4Addr = EDGE_STRANGER_IP.parse().unwrap();
        let ip = V4 { dst: dst.octets(), ..V4::new([198, 19, 0, 1], IPPROTO_UDP) };
        let mut template = v4_frame(&[], &ip, &udp(5060, REGISTER));
        template[..6].copy_from_slice(&mac(&edge_mac));
        template[6..12].copy_from_slice(&mac(&gen_mac));
        let programs = TestPrograms::load(sip_config());
        let allowlist = allowlist(allow_entries);
        FloodLab { lab, programs, template, gen_ifindex, allowlist }
    }

    /// The sip-xdp config of the flood: the edge's stranger-facing
    /// interface, default deny, the allowlist trusted.
    pub fn config(&self) -> String {
        let trunk = format!("{UNDER_FLOOD_TRUNK}/32");
        let cidrs: Vec<String> = self.allowlist.iter().chain([&trunk]).map(|c| format!("\"{c}\"")).collect();
        format!(
            "interfaces = [\"{}\"]\n[filter]\nports = [5060, 5061]\ndefault_class = \"deny\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n[[rule]]\nclass = \"trusted\"\ncidrs = [{}]\n",
            self.lab.edge_stranger_if,
            cidrs.join(", ")
        )
    }

    /// Puts a variant in place on the edge.
    pub fn install(&mut self, variant: Variant) -> Installed {
        let edge = self.lab.edge.clone();
        let edge_if = self.lab.edge_stranger_if.clone();
        match variant {
            Variant::SipXdpNative | Variant::SipXdpSkb => {
                let mode = if variant == Variant::SipXdpNative { "native" } else { "skb" };
                let path = self.lab.write_config("flood.toml", &self.config());
                let mut proc = self.lab.spawn_controller(&path, &["--xdp-mode", mode]);
                proc.wait_for("filtering;", Duration::from_secs(60));
                Installed::Controller(proc)
            }
            Variant::NftNetdev => {
                nft(
                    &edge,
                    &nft_ruleset(
                        "netdev",
                        &format!("type filter hook ingress device \"{edge_if}\" priority -500;"),
                        &self.allowlist,
                    ),
                );
                Installed::Rules
            }
            Variant::NftInetRaw => {
                nft(&edge, &nft_ruleset("inet", "type filter hook prerouting priority raw;", &self.allowlist));
                Installed::Rules
            }
            Variant::IptablesIpset => {
                let mut restore = String::from("create sipxdp_bench hash:net family inet maxelem 2000000\n");
                for c in &self.allowlist {
                    restore.push_str(&format!("add sipxdp_bench {c}\n"));
                }
                pipe(&edge, &["ipset", "restore"], &restore);
                let ports = ["-p", "udp", "-m", "multiport", "--dports", "5060,5061"];
                let mut deny = vec!["iptables", "-t", "raw", "-A", "PREROUTING"];
                deny.extend(ports);
                deny.extend(["-m", "set", "!", "--match-set", "sipxdp_bench", "src", "-j", "DROP"]);
                in_ns(&edge, &deny);
                let mut meter = vec!["iptables", "-t", "raw", "-A", "PREROUTING"];
                meter.extend(ports);
                meter.extend([
                    "-m",
                    "string",
                    "--algo",
                    "bm",
                    "--from",
                    "28",
                    "--to",
                    "36",
                    "--string",
                    "REGISTER",
                    "-m",
                    "hashlimit",
                    "--hashlimit-above",
                    "20/sec",
                    "--hashlimit-burst",
                    "40",
                    "--hashlimit-mode",
                    "srcip",
                    "--hashlimit-name",
                    "sipreg",
                    "-j",
                    "DROP",
                ]);
                in_ns(&edge, &meter);
                Installed::Rules
            }
            Variant::NoFilter => Installed::Nothing,
            Variant::DropAll => {
                let prog = self.drop_all();
                let link = in_netns_pinned(&edge, GENERATOR_CPU, || {
                    prog.attach(&edge_if, XdpMode::Driver).expect("attach drop-all")
                });
                Installed::XdpLink(link)
            }
        }
    }

    fn drop_all(&mut self) -> &mut Xdp {
        self.programs.program(DROP_ALL)
    }

    /// Undoes [`FloodLab::install`], leaving the edge unfiltered.
    pub fn remove(&mut self, installed: Installed) {
        let edge = self.lab.edge.clone();
        match installed {
            Installed::Controller(mut proc) => {
                proc.signal(libc::SIGINT);
                proc.wait_exit(Duration::from_secs(30));
            }
            Installed::XdpLink(link) => {
                self.drop_all().detach(link).expect("detach drop-all");
            }
            Installed::Rules => {
                let _ = Command::new("ip").args(["netns", "exec", &edge, "nft", "flush", "ruleset"]).output();
                let _ = Command::new("ip")
                    .args(["netns", "exec", &edge, "iptables", "-t", "raw", "-F", "PREROUTING"])
                    .output();
                let _ = Command::new("ip").args(["netns", "exec", &edge, "ipset", "destroy"]).output();
            }
            Installed::Nothing => {}
        }
    }

    /// Floods for `secs` from the generator core, measuring the edge.
    pub fn flood(&mut self, secs: f64) -> Sample {
        let edge_if = self.lab.edge_stranger_if.clone();
        pin_napi_threads(&edge_if);
        let rx_before = self.edge_rx_packets();
        let cpu_before = cpu_ticks(RECEIVER_CPU);
        let stop = AtomicBool::new(false);
        let (sent, elapsed) = std::thread::scope(|scope| {
            scope.spawn(|| {
                std::thread::sleep(Duration::from_secs_f64(secs));
                stop.store(true, Ordering::Relaxed);
            });
            self.generate(&stop, None)
        });
        let cpu_after = cpu_ticks(RECEIVER_CPU);
        // Frames still queued in the veth ring are processed in a moment.
        std::thread::sleep(Duration::from_millis(200));
        let rx_after = self.edge_rx_packets();
        let busy = busy_share(cpu_before, cpu_after);
        Sample { sent_pps: sent as f64 / elapsed, received_pps: (rx_after - rx_before) as f64 / elapsed, busy }
    }

    /// Sends until `stop`, at `rate` frames per second or as fast as the
    /// generator core can; returns (frames sent, seconds).
    pub fn generate(&self, stop: &AtomicBool, rate: Option<f64>) -> (u64, f64) {
        let ns = self.lab.stranger.clone();
        let prog: &Xdp = self.programs.ebpf.program(GENERATOR).expect("program").try_into().expect("XDP");
        let template = &self.template;
        // struct xdp_md: data, data_end (must be the frame's length),
        // data_meta, ingress_ifindex (where XDP_TX sends), ...
        let mut ctx = [0u8; 24];
        ctx[4..8].copy_from_slice(&(template.len() as u32).to_ne_bytes());
        ctx[12..16].copy_from_slice(&self.gen_ifindex.to_ne_bytes());
        // Throttled: calls of 10 ms worth of frames, paced.
        let per_call = rate.map_or(FRAMES_PER_CALL, |r| ((r / 100.0) as u32).clamp(1, FRAMES_PER_CALL));
        in_netns_pinned(&ns, GENERATOR_CPU, || {
            let started = Instant::now();
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if let Some(rate) = rate {
                    let due = Duration::from_secs_f64(sent as f64 / rate);
                    if let Some(wait) = due.checked_sub(started.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
                let opts = TestRunOptions {
                    data_in: Some(template),
                    ctx_in: Some(&ctx),
                    repeat: per_call,
                    attrs: TestRunAttrs::new().xdp_live_frames(64),
                    ..TestRunOptions::default()
                };
                prog.test_run(opts).expect("live-frames test run");
                sent += per_call as u64;
            }
            (sent, started.elapsed().as_secs_f64())
        })
    }

    /// Section 5: `attempts` registrations of the trusted trunk (SIPp,
    /// digest auth, across the flooded link) while the flood runs at
    /// `rate`; returns how many succeeded. Needs Kamailio and sip-xdp up.
    pub fn registrations_under_flood(&self, rate: Option<f64>, attempts: usize) -> usize {
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let flood = scope.spawn(|| if rate != Some(0.0) { self.generate(&stop, rate) } else { (0, 0.0) });
            // Let the flood reach its rate first.
            std::thread::sleep(Duration::from_millis(300));
            let ok = (0..attempts)
                .filter(|_| self.lab.sipp_register(&self.lab.stranger, UNDER_FLOOD_TRUNK, EDGE_STRANGER_IP))
                .count();
            stop.store(true, Ordering::Relaxed);
            flood.join().expect("flood");
            ok
        })
    }

    /// Adds the under-flood trunk's address beside the generator.
    pub fn add_trunk_address(&self) {
        sh(Command::new("ip").args([
            "-n",
            &self.lab.stranger,
            "addr",
            "add",
            &format!("{UNDER_FLOOD_TRUNK}/24"),
            "dev",
            &format!("{}ps", self.lab.tag),
        ]));
    }

    fn edge_rx_packets(&self) -> u64 {
        read_in(&self.lab.edge, &format!("/sys/class/net/{}/statistics/rx_packets", self.lab.edge_stranger_if))
            .parse()
            .expect("rx_packets")
    }
}

/// An nftables table equivalent to sip-xdp's policy: SIP ports open only
/// to an interval set of the allowed prefixes, with a per-source REGISTER
/// meter (the payload starts with "REGISTER").
fn nft_ruleset(family: &str, hook: &str, allow: &[String]) -> String {
    format!(
        "table {family} sipxdp_bench {{\n\
         set allowed {{ type ipv4_addr; flags interval; elements = {{ {} }} }}\n\
         chain filter {{ {hook} policy accept;\n\
         udp dport {{ 5060, 5061 }} ip saddr != @allowed drop\n\
         udp dport {{ 5060, 5061 }} @th,64,64 0x5245474953544552 meter sipreg size 65535 {{ ip saddr limit rate over 20/second burst 40 packets }} drop\n\
         }}\n}}\n",
        allow.join(", ")
    )
}

fn nft(ns: &str, ruleset: &str) {
    pipe(ns, &["nft", "-f", "-"], ruleset);
}

fn in_ns(ns: &str, args: &[&str]) {
    sh(Command::new("ip").args(["netns", "exec", ns]).args(args));
}

/// Runs a command in `ns` with `input` on its stdin.
fn pipe(ns: &str, args: &[&str], input: &str) {
    use std::io::Write as _;
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

fn allowlist(entries: usize) -> Vec<String> {
    // /32s, /28s and /24s inside 198.18.0.0/16, none overlapping (the
    // nftables interval set refuses overlaps); the flood comes from
    // 198.19.0.0/16.
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for k in 0usize.. {
        if out.len() >= entries {
            break;
        }
        let cidr = match k % 4 {
            0 if k / 4 < 40 => format!("198.18.{}.0/24", 10 + k / 4),
            0 | 1 => format!("198.18.{}.{}/28", 128 + (k / 2 / 16) % 128, (k / 2 % 16) * 16),
            _ => format!("198.18.{}.{}/32", 64 + (k / 2 / 250) % 64, 1 + (k / 2) % 250),
        };
        if seen.insert(cidr.clone()) {
            out.push(cidr);
        }
    }
    out
}

fn mac(text: &str) -> [u8; 6] {
    let mut m = [0u8; 6];
    for (i, part) in text.trim().split(':').enumerate().take(6) {
        m[i] = u8::from_str_radix(part, 16).expect("MAC");
    }
    m
}

fn read_in(ns: &str, path: &str) -> String {
    let out = sh(Command::new("ip").args(["netns", "exec", ns, "cat", path]));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Pins every NAPI thread of `ifname` to the receiving core.
fn pin_napi_threads(ifname: &str) {
    let prefix = format!("napi/{ifname}");
    let prefix = &prefix[..prefix.len().min(15)];
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) else {
            continue;
        };
        if comm.trim().starts_with(prefix) {
            let pid = entry.file_name().to_string_lossy().to_string();
            sh(Command::new("taskset").args(["-p", "-c", &RECEIVER_CPU.to_string(), &pid]));
        }
    }
}

/// (busy, total) jiffies of one CPU from /proc/stat.
fn cpu_ticks(cpu: usize) -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    let line = stat.lines().find(|l| l.starts_with(&format!("cpu{cpu} "))).expect("cpu line");
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    let total: u64 = v.iter().take(8).sum();
    (total - idle, total)
}

fn busy_share(before: (u64, u64), after: (u64, u64)) -> f64 {
    let total = (after.1 - before.1).max(1) as f64;
    (after.0 - before.0) as f64 / total
}

/// Runs `f` on a thread inside namespace `ns`, pinned to `cpu`.
fn in_netns_pinned<T: Send>(ns: &str, cpu: usize, f: impl FnOnce() -> T + Send) -> T {
    let ns_path = format!("/var/run/netns/{ns}");
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let file = std::fs::File::open(&ns_path).expect("netns");
                // SAFETY: setns and sched_setaffinity on this thread only.
                unsafe {
                    use std::os::fd::AsRawFd;
                    assert_eq!(libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET), 0, "setns");
                    let mut set: libc::cpu_set_t = std::mem::zeroed();
                    libc::CPU_SET(cpu, &mut set);
                    assert_eq!(libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set), 0, "affinity");
                }
                f()
            })
            .join()
            .expect("generator thread")
    })
}
