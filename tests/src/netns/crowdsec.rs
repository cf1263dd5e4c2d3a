//! A private CrowdSec Local API in the lab's edge namespace (Debian's
//! `crowdsec`, the LAPI alone: no agent, no central API), its `cscli`, and
//! a bouncer key for the controller.

use std::{path::PathBuf, process::Command, time::Duration};

use super::{Lab, Proc};

/// Where the LAPI listens, in the edge namespace.
pub const LAPI_URL: &str = "http://127.0.0.1:8080";

pub struct CrowdSec {
    dir: PathBuf,
    netns: String,
    proc: Option<Proc>,
}

impl Lab {
    /// Writes a config of its own (database and credentials in the lab's
    /// directory), registers a machine for `cscli decisions`, and starts
    /// the LAPI; returns once it answers.
    pub fn start_crowdsec(&self) -> CrowdSec {
        let dir = self.dir.join("crowdsec");
        std::fs::create_dir_all(dir.join("data")).expect("crowdsec dir");
        let d = dir.display();
        let config = format!(
            "common:\n  daemonize: false\n  log_media: stdout\n  log_level: info\n  working_dir: .\n\
             config_paths:\n  config_dir: {d}/\n  data_dir: {d}/data/\n  simulation_path: /etc/crowdsec/simulation.yaml\n  \
             hub_dir: /var/lib/crowdsec/hub/\n  index_path: /var/lib/crowdsec/hub/.index.json\n  \
             notification_dir: {d}/notifications/\n  plugin_dir: /usr/lib/crowdsec/plugins/\n\
             db_config:\n  type: sqlite\n  use_wal: true\n  db_path: {d}/data/crowdsec.db\n\
             api:\n  client:\n    credentials_path: {d}/local_api_credentials.yaml\n  server:\n    \
             listen_uri: 127.0.0.1:8080\n    profiles_path: /etc/crowdsec/profiles.yaml\n    trusted_ips:\n      - 127.0.0.1\n\
             prometheus:\n  enabled: false\n"
        );
        std::fs::write(dir.join("config.yaml"), config).expect("crowdsec config");
        let mut cs = CrowdSec { dir, netns: self.edge.clone(), proc: None };
        let creds = cs.dir.join("local_api_credentials.yaml");
        cs.cscli(&["machines", "add", "tests", "--auto", "-f", creds.to_str().expect("utf-8")]);
        cs.start();
        cs
    }
}

impl CrowdSec {
    /// Starts the LAPI (again, after [`CrowdSec::stop`]: same database).
    pub fn start(&mut self) {
        let mut proc = Proc::spawn(
            "crowdsec",
            Command::new("ip")
                .args(["netns", "exec", &self.netns, "crowdsec", "-no-cs", "-no-capi", "-c"])
                .arg(self.dir.join("config.yaml")),
        );
        proc.wait_until("its LAPI answered", Duration::from_secs(30), || {
            Command::new("ip")
                .args(["netns", "exec", &self.netns, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}"])
                .arg(format!("{LAPI_URL}/health"))
                .output()
                .is_ok_and(|o| !o.stdout.starts_with(b"000"))
        });
        self.proc = Some(proc);
    }

    /// Kills the LAPI.
    pub fn stop(&mut self) {
        self.proc = None;
    }

    /// Runs `cscli` against this LAPI; its standard output.
    pub fn cscli(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.netns, "cscli", "-c"])
            .arg(self.dir.join("config.yaml"))
            .args(args)
            .output()
            .expect("run cscli");
        assert!(out.status.success(), "cscli {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// `cscli bouncers add NAME`: the key, written to a file for `[crowdsec]
    /// api_key_file`.
    pub fn bouncer_key_file(&self, name: &str) -> PathBuf {
        let key = self.cscli(&["bouncers", "add", name, "-o", "raw"]);
        let path = self.dir.join(format!("{name}.key"));
        std::fs::write(&path, key.trim()).expect("key file");
        path
    }
}
