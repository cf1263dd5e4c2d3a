//! Kamailio over TLS in the lab: the repository's example config
//! (`examples/kamailio-tls.cfg`) with this lab's certificate and API, and
//! a SIP/TLS client to register through it.

use std::{path::PathBuf, process::Command};

use super::{fixture, sh, Lab, API_TCP, API_TOKEN};

/// What a TLS registration attempt got: its final status, or None when
/// nothing answered (a banned source's SYN is dropped).
pub type TlsAttempts = Vec<Option<u16>>;

impl Lab {
    /// Makes a self-signed certificate, and starts Kamailio with the
    /// example TLS config on 5061 (UDP 5060 for the readiness check),
    /// reporting to the API at `API_TCP` with `API_TOKEN`. Returns the
    /// certificate, for clients to trust.
    pub fn start_kamailio_tls(&mut self) -> PathBuf {
        let (cert, key) = (self.dir.join("kamailio.pem"), self.dir.join("kamailio.key"));
        sh(Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=edge.sip-xdp.test"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert));
        let example = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/kamailio-tls.cfg"));
        let text = std::fs::read_to_string(&example).expect("examples/kamailio-tls.cfg");
        // Only the deployment's values change: the lines that set them.
        let substitutions = [
            ("SIP_XDP_API", format!("http://{API_TCP}")),
            ("SIP_XDP_TOKEN", API_TOKEN.to_string()),
            ("TLS_CERTIFICATE", cert.display().to_string()),
            ("TLS_PRIVATE_KEY", key.display().to_string()),
        ];
        let mut cfg = String::new();
        for line in text.lines() {
            let set = substitutions.iter().find(|(name, _)| line.starts_with(&format!("#!substdef \"!{name}!")));
            match set {
                Some((name, value)) => cfg.push_str(&format!("#!substdef \"!{name}!{value}!g\"\n")),
                None => {
                    cfg.push_str(line);
                    cfg.push('\n');
                }
            }
        }
        assert_eq!(cfg.matches("#!substdef").count(), text.matches("#!substdef").count());
        let path = self.dir.join("kamailio-tls.cfg");
        std::fs::write(&path, cfg).expect("write the Kamailio config");
        self.start_kamailio_from(&path, None);
        cert
    }

    /// `count` registrations of alice over TLS from `local_ip` in the
    /// stranger's namespace, each on a new connection.
    pub fn tls_register(
        &self,
        local_ip: &str,
        server_ip: &str,
        password: &str,
        cert: &PathBuf,
        count: u32,
    ) -> TlsAttempts {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.stranger, "python3"])
            .arg(fixture("tls_register.py"))
            .args(["--server", server_ip, "--local", local_ip, "--password", password, "--count", &count.to_string()])
            .arg("--cafile")
            .arg(cert)
            .output()
            .expect("run tls_register.py");
        assert!(out.status.success(), "tls_register.py: {}", String::from_utf8_lossy(&out.stderr));
        let attempts: TlsAttempts = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
                v["status"].as_u64().map(|s| s as u16)
            })
            .collect();
        assert_eq!(attempts.len(), count as usize);
        attempts
    }
}
