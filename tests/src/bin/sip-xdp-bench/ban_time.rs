//! Section 4: time to ban. A new source sends REGISTERs without
//! credentials at a fixed rate; Kamailio answers each with a 401 and logs
//! an auth failure. The ban threshold is the same for both defenders: the
//! 5th 401 within 60 s. Measured from the attacker's side: from the
//! arrival of the 401 that crosses the threshold to the sending of the
//! first request that is never answered (after which none is).
//!
//! sip-xdp counts the 401s on egress and bans in the kernel; fail2ban reads
//! Kamailio's log (polling backend, as on a stock Debian install without
//! pyinotify) and bans with its nftables action. To sip-xdp a 401 to a
//! request without credentials is a challenge, not a failure (the first
//! step of every digest login), counted against
//! `[auth_failures] unanswered_challenges`: the trials set it to 5, so both
//! defenders ban at the same 5th 401. They also switch escalation off
//! (`[ban] escalate_after = 0`): every trial attacks from a new address of
//! 198.18.2.0/24, and the fifth banned would otherwise ban the whole /24,
//! leaving the later trials nothing to measure.

use std::{
    collections::BTreeMap,
    net::UdpSocket,
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use sip_xdp_tests::netns::{register_request, sh, Lab, Proc, EDGE_STRANGER_IP, TRUNK_IP};

/// 401s that ban, for both defenders (to sip-xdp, challenges to requests
/// without credentials).
const THRESHOLD: usize = 5;
/// Requests per second of the attack.
pub const RATE: f64 = 2000.0;
/// The attack is over once nothing has been answered for this long.
const QUIET: Duration = Duration::from_millis(500);

pub struct Trials {
    /// Milliseconds per trial that ended in a ban.
    pub ms: Vec<f64>,
    /// Trials in which no ban came within the attack's time limit.
    pub unbanned: usize,
}

impl Trials {
    pub fn percentile(&self, p: f64) -> Option<f64> {
        let mut v = self.ms.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_by(|a, b| a.total_cmp(b));
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        Some(v[rank.clamp(1, v.len()) - 1])
    }
}

pub struct BanLab {
    lab: Lab,
    attacker_if: String,
    next_host: u8,
}

impl BanLab {
    pub fn new() -> BanLab {
        let mut lab = Lab::new();
        let log = lab.dir.join("kamailio.log");
        lab.start_kamailio_logging_to(Some(&log));
        let attacker_if = lab.stranger_if.clone();
        BanLab { lab, attacker_if, next_host: 20 }
    }

    /// sip-xdp: `trials` attacks, each from a new address.
    pub fn sip_xdp(&mut self, trials: usize, progress: &dyn Fn(usize)) -> Trials {
        let config = format!(
            "interfaces = [\"{}\", \"{}\"]\n[filter]\ndefault_class = \"deny\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n\
             [fingerprints]\nuser_agents = []\n\
             [auth_failures]\nmax = {THRESHOLD}\nunanswered_challenges = {THRESHOLD}\nwindow_secs = 60\n\
             [ban]\nescalate_after = 0\n\
             [[rule]]\nclass = \"trusted\"\ncidrs = [\"{TRUNK_IP}/32\"]\n\
             [[rule]]\nclass = \"customers\"\ncidrs = [\"198.18.2.0/24\"]\n\
             [profile.customers]\nregister_per_sec = 100000\nregister_burst = 100000\nrequests_per_sec = 100000\nrequests_burst = 100000\n",
            self.lab.edge_trunk_if, self.lab.edge_stranger_if
        );
        let path = self.lab.write_config("ban-time.toml", &config);
        let mut controller = self.lab.spawn_controller(&path, &["--xdp-mode", "native"]);
        controller.wait_for("filtering;", Duration::from_secs(60));
        let out = self.run_trials(trials, Duration::from_secs(5), progress);
        controller.signal(libc::SIGINT);
        controller.wait_exit(Duration::from_secs(30));
        out
    }

    /// fail2ban on Kamailio's log, banning with nftables.
    pub fn fail2ban(&mut self, trials: usize, progress: &dyn Fn(usize)) -> Trials {
        let server = self.start_fail2ban();
        let out = self.run_trials(trials, Duration::from_secs(30), progress);
        if out.unbanned > 0 {
            // Say why rather than leave an empty row unexplained.
            let log = std::fs::read_to_string(self.lab.dir.join("fail2ban/server.log")).unwrap_or_default();
            let notable: Vec<&str> = log.lines().filter(|l| !l.contains("] Found ")).rev().take(12).collect();
            println!(
                "    fail2ban did not ban {} attacker(s) within 30 s; its log says:\n      {}",
                out.unbanned,
                notable.into_iter().rev().collect::<Vec<_>>().join("\n      ")
            );
        }
        drop(server);
        let _ = Command::new("ip").args(["netns", "exec", &self.lab.edge, "nft", "flush", "ruleset"]).output();
        out
    }

    fn run_trials(&mut self, trials: usize, limit: Duration, progress: &dyn Fn(usize)) -> Trials {
        let mut out = Trials { ms: Vec::new(), unbanned: 0 };
        for i in 0..trials {
            let addr = format!("198.18.2.{}", self.next_host);
            self.next_host = self.next_host.checked_add(1).expect("at most 230 trials in all");
            sh(Command::new("ip").args([
                "-n",
                &self.lab.stranger,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                &self.attacker_if,
            ]));
            match attack(&self.lab, &addr, limit) {
                Some(ms) => out.ms.push(ms),
                None => out.unbanned += 1,
            }
            progress(i + 1);
        }
        out
    }

    /// fail2ban-server in the edge namespace with a copy of Debian's
    /// configuration: one jail on Kamailio's auth-failure lines, banning
    /// with nftables.
    fn start_fail2ban(&self) -> Proc {
        self.lab.start_fail2ban(
            &self.lab.dir.join("kamailio.log"),
            "auth failure for .* from <HOST>$",
            &format!(
                "maxretry = {THRESHOLD}\nbantime = 3600\nbanaction = nftables-allports\nprotocol = udp\n\
                 ignoreip = 127.0.0.1/8 {TRUNK_IP}\n"
            ),
        )
    }
}

/// One attack from `addr`; the time to ban in ms, or None if no ban came
/// within `limit`.
fn attack(lab: &Lab, addr: &str, limit: Duration) -> Option<f64> {
    let sock = lab.udp_in(&lab.stranger, &format!("{addr}:0"));
    sock.set_read_timeout(Some(Duration::from_millis(20))).expect("timeout");
    let port = sock.local_addr().expect("addr").port();
    let answers: Arc<Mutex<BTreeMap<u32, Instant>>> = Arc::default();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let receiver = {
        let (sock, answers, done) = (sock.try_clone().expect("clone"), Arc::clone(&answers), Arc::clone(&done));
        std::thread::spawn(move || receive(&sock, &answers, &done))
    };
    let mut sent: Vec<Instant> = Vec::new();
    let started = Instant::now();
    let target = format!("{EDGE_STRANGER_IP}:5060");
    loop {
        let seq = sent.len() as u32;
        let due = started + Duration::from_secs_f64(seq as f64 / RATE);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let _ = sock.send_to(&register_request(addr, port, seq), &target);
        sent.push(Instant::now());
        let last_answer = answers.lock().expect("answers").values().max().copied();
        let quiet =
            last_answer.is_some_and(|t| t.elapsed() > QUIET && answers.lock().expect("answers").len() >= THRESHOLD);
        if quiet || started.elapsed() > limit {
            break;
        }
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    receiver.join().expect("receiver");
    let answers = answers.lock().expect("answers");
    if answers.len() < THRESHOLD || answers.values().max().is_some_and(|t| t.elapsed() < QUIET) {
        return None;
    }
    // Responses in arrival order: the THRESHOLD-th is the crossing one.
    let mut arrivals: Vec<Instant> = answers.values().copied().collect();
    arrivals.sort();
    let crossed = arrivals[THRESHOLD - 1];
    let last_answered = *answers.keys().max().expect("answers") as usize;
    let first_dropped = *sent.get(last_answered + 1)?;
    // A request sent just before the crossing answer arrived may already
    // meet the ban: that is a time of zero.
    Some(first_dropped.saturating_duration_since(crossed).as_secs_f64() * 1000.0)
}

/// Records the arrival of each answered request (by its sequence number,
/// carried in the Call-ID) until `done`.
fn receive(sock: &UdpSocket, answers: &Mutex<BTreeMap<u32, Instant>>, done: &std::sync::atomic::AtomicBool) {
    let mut buf = [0u8; 4096];
    while !done.load(std::sync::atomic::Ordering::Relaxed) {
        let Ok(n) = sock.recv(&mut buf) else { continue };
        let now = Instant::now();
        let text = String::from_utf8_lossy(&buf[..n]);
        let seq = text
            .lines()
            .find_map(|l| l.strip_prefix("Call-ID: ").or_else(|| l.strip_prefix("Call-ID:")))
            .and_then(|v| v.trim().split('-').next()?.parse::<u32>().ok());
        if let Some(seq) = seq {
            answers.lock().expect("answers").entry(seq).or_insert(now);
        }
    }
}
