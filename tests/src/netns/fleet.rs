//! A fleet lab: N edges (each a whole [`Lab`]: edge, trunk and stranger
//! namespaces, its own Kamailio, controller and pin dir) and a namespace
//! of its own running a real `redis-server`, joined to every edge by a
//! veth pair (198.18.(200+i).0/24: the store at .1, edge i at .2). The
//! strangers of all edges have the same address, so one attacker is seen
//! by every edge. Torn down in `Drop`.

use std::{
    process::{Command, Output},
    time::{Duration, Instant},
};

use super::{ip, Lab, Proc};

pub const REDIS_PORT: u16 = 6379;

pub struct FleetLab {
    pub edges: Vec<Lab>,
    /// The namespace of the store.
    pub store: String,
    pub redis: Option<Proc>,
    /// The store's `requirepass`, if it has one (`redis_cli` gives it).
    pub password: Option<String>,
    dir: std::path::PathBuf,
}

/// The store's address as edge `i` reaches it.
pub fn store_ip(i: usize) -> String {
    format!("198.18.{}.1", 200 + i)
}

fn edge_ip(i: usize) -> String {
    format!("198.18.{}.2", 200 + i)
}

impl FleetLab {
    pub fn new(n: usize) -> FleetLab {
        assert!((1..=50).contains(&n), "1 to 50 edges");
        let edges: Vec<Lab> = (0..n).map(|_| Lab::new()).collect();
        let store = format!("{}-rds", edges[0].tag);
        let dir = edges[0].dir.join("redis");
        std::fs::create_dir_all(&dir).expect("redis dir");
        ip(&["netns", "add", &store]);
        ip(&["-n", &store, "link", "set", "lo", "up"]);
        for (i, lab) in edges.iter().enumerate() {
            let (e, s) = (format!("{}f", lab.tag), format!("{}F", lab.tag));
            ip(&["link", "add", &e, "netns", &lab.edge, "type", "veth", "peer", "name", &s, "netns", &store]);
            ip(&["-n", &lab.edge, "addr", "add", &format!("{}/24", edge_ip(i)), "dev", &e]);
            ip(&["-n", &store, "addr", "add", &format!("{}/24", store_ip(i)), "dev", &s]);
            ip(&["-n", &lab.edge, "link", "set", &e, "up"]);
            ip(&["-n", &store, "link", "set", &s, "up"]);
        }
        FleetLab { edges, store, redis: None, password: None, dir }
    }

    /// Starts `redis-server` in the store's namespace (no persistence: a
    /// restart is an empty store) and waits until it answers.
    pub fn start_redis(&mut self) {
        self.start_redis_with(&[]);
    }

    /// The same, with a password (`requirepass`): clients must log in.
    pub fn start_redis_with_password(&mut self, password: &str) {
        self.password = Some(password.to_string());
        self.start_redis_with(&["--requirepass", password]);
    }

    fn start_redis_with(&mut self, extra: &[&str]) {
        let dir = self.dir.to_str().expect("utf-8").to_string();
        let proc = Proc::spawn(
            "redis-server",
            Command::new("ip")
                .args(["netns", "exec", &self.store, "redis-server"])
                .args([
                    "--port",
                    &REDIS_PORT.to_string(),
                    "--bind",
                    "0.0.0.0",
                    "--protected-mode",
                    "no",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    &dir,
                ])
                .args(extra),
        );
        self.redis = Some(proc);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.redis_cli(&["PING"]).status.success() || self.redis_cli_ok(&["PING"]).trim() != "PONG" {
            assert!(Instant::now() < deadline, "redis-server does not answer");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the store (SIGKILL: no goodbye to the clients).
    pub fn kill_redis(&mut self) {
        if let Some(mut p) = self.redis.take() {
            p.signal(libc::SIGKILL);
            p.wait_exit(Duration::from_secs(5));
        }
    }

    /// A plain `redis-cli` against the store, in its namespace.
    pub fn redis_cli(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.store, "redis-cli", "-h", "127.0.0.1", "-p", &REDIS_PORT.to_string()])
            .args(self.password.iter().flat_map(|pw| ["--no-auth-warning", "-a", pw]))
            .args(args)
            .output()
            .expect("run redis-cli")
    }

    pub fn redis_cli_ok(&self, args: &[&str]) -> String {
        let out = self.redis_cli(args);
        assert!(out.status.success(), "redis-cli {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8")
    }

    /// The `[fleet]` section of edge `i` (node `edge-<i>`).
    pub fn fleet_section(&self, i: usize) -> String {
        format!(
            "[fleet]\nredis = \"redis://{}:{REDIS_PORT}/0\"\nnode = \"edge-{i}\"\nreconcile_secs = 2\n",
            store_ip(i)
        )
    }
}

impl Drop for FleetLab {
    fn drop(&mut self) {
        self.redis.take();
        let _ = Command::new("ip").args(["netns", "del", &self.store]).output();
        // The edges' own Drop removes them (and the veths with them).
    }
}
