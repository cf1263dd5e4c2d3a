//! The control API (`[api]`): JSON over HTTP, on a Unix socket or a TCP
//! address with a bearer token. Through it the SIP server reports what the
//! kernel cannot see (authentication over TLS), and tools ban and lift.
//! The OpenAPI document is `api/openapi.json` in the repository.
//!
//! The HTTP side runs on a thread of its own (`serve`): it checks the
//! token, reads the request (`request`) and hands the daemon a [`Call`];
//! the daemon, which owns the maps, answers it between its other work
//! (`answer`), so a request is applied whole or not at all.

pub mod answer;
pub mod request;

use std::{
    io::Read as _,
    os::unix::fs::PermissionsExt as _,
    sync::mpsc::{sync_channel, SyncSender},
    time::{Duration, Instant},
};

use anyhow::{anyhow, Context as _};
use log::warn;
use prometheus::{IntCounterVec, Opts};
use tokio::sync::mpsc::UnboundedSender;

pub use self::request::{Call, Reply};
use crate::{
    config::{Api, ApiListen},
    metrics::Metrics,
};

/// A call for the daemon, where its reply goes, and until when the
/// caller waits: a call found after that is dropped unapplied, since its
/// caller was told 503 (a retry must not count twice).
pub type Pending = (Call, SyncSender<Reply>, Instant);

/// How long a request waits for the daemon (busy reloading a large
/// allowlist, say) before it is answered 503.
const DAEMON_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Server {
    http: tiny_http::Server,
    token: Option<String>,
    listen: ApiListen,
}

/// Listens where `[api]` says: before anything is attached, so an address
/// in use stops the start with nothing changed. A Unix socket left by a
/// dead controller is replaced; one another process serves is not.
pub fn bind(cfg: &Api) -> anyhow::Result<Server> {
    let http = match &cfg.listen {
        ApiListen::Tcp(addr) => tiny_http::Server::http(addr)
            .map_err(|e| anyhow!("{e}"))
            .with_context(|| format!("cannot listen for the API on {addr}"))?,
        ApiListen::Unix(path) => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(anyhow!("cannot listen for the API on {}: another process serves it", path.display()));
            }
            // Only a socket left by a dead controller is replaced.
            if let Ok(meta) = std::fs::symlink_metadata(path) {
                if !std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) {
                    return Err(anyhow!(
                        "cannot listen for the API on {}: a file that is not a socket is there",
                        path.display()
                    ));
                }
                std::fs::remove_file(path).with_context(|| format!("cannot replace {}", path.display()))?;
            }
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            }
            // Created owner-only, then opened to the configured mode: the
            // socket is never reachable by more than the config says.
            // SAFETY: umask only swaps the process's file-creation mask.
            let old = unsafe { libc::umask(0o177) };
            let bound = tiny_http::Server::http_unix(path);
            unsafe { libc::umask(old) };
            let http = bound
                .map_err(|e| anyhow!("{e}"))
                .with_context(|| format!("cannot listen for the API on {}", path.display()))?;
            if let Some((name, gid)) = &cfg.socket_group {
                std::os::unix::fs::chown(path, None, Some(*gid)).with_context(|| {
                    format!(
                        "cannot give {} to group {name} (needs CAP_CHOWN and the chown system calls, \
                         which the packaged unit does not grant)",
                        path.display()
                    )
                })?;
            }
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(cfg.socket_mode))
                .with_context(|| format!("cannot set the mode of {}", path.display()))?;
            http
        }
    };
    Ok(Server { http, token: cfg.token.clone(), listen: cfg.listen.clone() })
}

impl Server {
    pub fn describe(&self) -> String {
        self.listen.to_string()
    }
}

/// Answers requests on a thread of its own until the process ends; calls
/// go to the daemon through `daemon`.
pub fn serve(server: Server, daemon: UnboundedSender<Pending>, metrics: &Metrics) -> anyhow::Result<()> {
    let requests = IntCounterVec::new(
        Opts::new("sipxdp_api_requests_total", "Control API requests answered, by path and status."),
        &["path", "status"],
    )?;
    metrics.register(Box::new(requests.clone()))?;
    std::thread::spawn(move || {
        for mut request in server.http.incoming_requests() {
            let reply = handle(&server.token, &daemon, &mut request);
            requests.with_label_values(&[route_label(request.url()), &reply.status.to_string()]).inc();
            let mut response = tiny_http::Response::from_string(format!("{}\n", reply.body))
                .with_status_code(reply.status)
                .with_header("Content-Type: application/json".parse::<tiny_http::Header>().expect("static header"));
            if reply.status == 401 {
                response.add_header("WWW-Authenticate: Bearer".parse::<tiny_http::Header>().expect("static header"));
            }
            if let Err(err) = request.respond(response) {
                warn!("api: cannot answer: {err}");
            }
        }
    });
    Ok(())
}

fn handle(token: &Option<String>, daemon: &UnboundedSender<Pending>, request: &mut tiny_http::Request) -> Reply {
    if let Some(token) = token {
        let given = request
            .headers()
            .iter()
            .find(|h| h.field.equiv("Authorization"))
            .and_then(|h| h.value.as_str().strip_prefix("Bearer "));
        if !given.is_some_and(|g| same(g.trim().as_bytes(), token.as_bytes())) {
            return Reply::error(
                401,
                "unauthorized",
                "this API needs `Authorization: Bearer <token>` with the token of [api] token_file",
            );
        }
    }
    if request.body_length().is_some_and(|n| n > request::MAX_BODY) {
        return Reply::error(413, "too_large", format!("the body is over {} bytes", request::MAX_BODY));
    }
    let mut body = Vec::new();
    if let Err(err) = request.as_reader().take(request::MAX_BODY as u64 + 1).read_to_end(&mut body) {
        return Reply::error(400, "malformed", format!("cannot read the body: {err}"));
    }
    if body.len() > request::MAX_BODY {
        return Reply::error(413, "too_large", format!("the body is over {} bytes", request::MAX_BODY));
    }
    let call = match request::parse(request.method().as_str(), request.url(), &body) {
        Ok(call) => call,
        Err(reply) => return reply,
    };
    let (tx, rx) = sync_channel(1);
    if daemon.send((call, tx, Instant::now() + DAEMON_TIMEOUT)).is_err() {
        return Reply::error(503, "unavailable", "the controller is stopping");
    }
    rx.recv_timeout(DAEMON_TIMEOUT)
        .unwrap_or_else(|_| Reply::error(503, "unavailable", "the controller did not answer in time; try again"))
}

/// A request's path as a metric label: a documented route or `other`,
/// whatever the caller sent (no label is made from input).
fn route_label(url: &str) -> &'static str {
    request::route(request::path_of(url)).map_or("other", |(name, _)| name)
}

/// Compares in time that does not depend on where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_labels_are_route_names_never_the_callers_path() {
        assert_eq!(route_label("/v1/bans?limit=5"), "/v1/bans");
        assert_eq!(route_label("/v1/bans/198.51.100.7"), "/v1/bans/{cidr}");
        assert_eq!(route_label("/v1/bans/2001:db8::%2F64"), "/v1/bans/{cidr}");
        assert_eq!(route_label("/v1/auth-successes"), "/v1/auth-successes");
        assert_eq!(route_label("/v1/../etc/passwd"), "other");
        assert_eq!(route_label("/v2/bans"), "other");
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!same(b"0123456789abcdef", b"0123456789abcdeX"));
        assert!(!same(b"0123456789abcdef", b"0123456789abcde"));
    }
}
