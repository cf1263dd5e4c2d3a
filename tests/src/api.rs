//! A client of the controller's control API for the tests: curl, the tool
//! operators' scripts (and the shipped fail2ban action) use, over the Unix
//! socket or TCP.

use std::{path::PathBuf, process::Command};

/// Where the API listens.
#[derive(Clone, Debug)]
pub enum ApiAt {
    Unix(PathBuf),
    /// A base URL inside the network namespace given (`ip netns exec`).
    Tcp {
        netns: String,
        base: String,
    },
}

#[derive(Clone, Debug)]
pub struct ApiClient {
    pub at: ApiAt,
    pub token: Option<String>,
}

/// A status and the JSON document that came with it.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
}

impl ApiClient {
    pub fn with_token(&self, token: Option<&str>) -> ApiClient {
        ApiClient { at: self.at.clone(), token: token.map(str::to_string) }
    }

    /// Sends `method path` with `body` (raw, so tests can send what is
    /// not JSON); panics only if curl itself fails or the answer is not
    /// JSON.
    pub fn call(&self, method: &str, path: &str, body: Option<&str>) -> Answer {
        let mut cmd = match &self.at {
            ApiAt::Unix(socket) => {
                let mut c = Command::new("curl");
                c.arg("--unix-socket").arg(socket).arg(format!("http://localhost{path}"));
                c
            }
            ApiAt::Tcp { netns, base } => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", netns, "curl", &format!("{base}{path}")]);
                c
            }
        };
        cmd.args(["-sS", "--max-time", "15", "-X", method, "-w", "\n%{http_code}"]);
        if let Some(token) = &self.token {
            cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
        }
        if let Some(body) = body {
            cmd.args(["-H", "Content-Type: application/json", "--data-binary", body]);
        }
        let out = cmd.output().expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "curl {method} {path}: {}{text}", String::from_utf8_lossy(&out.stderr));
        let (doc, status) = text.rsplit_once('\n').unwrap_or(("", &text));
        let status: u16 = status.trim().parse().unwrap_or_else(|_| panic!("no status from curl: {text}"));
        let body = serde_json::from_str(doc).unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {doc:?}"));
        Answer { status, body }
    }

    pub fn post(&self, path: &str, body: &serde_json::Value) -> Answer {
        self.call("POST", path, Some(&body.to_string()))
    }

    pub fn get(&self, path: &str) -> Answer {
        self.call("GET", path, None)
    }
}
