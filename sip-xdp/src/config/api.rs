//! `[api]`: the control API through which the SIP server and operators'
//! tools report bans and authentication outcomes. Off unless `listen` is
//! given. A Unix socket is guarded by its file mode and group; a TCP
//! listener by a bearer token, which is required for it.

use std::{net::SocketAddr, path::PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::source::{default, Source};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiListen {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl std::fmt::Display for ApiListen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiListen::Unix(path) => write!(f, "unix:{}", path.display()),
            ApiListen::Tcp(addr) => write!(f, "http://{addr}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Api {
    pub listen: ApiListen,
    /// Every request must carry `Authorization: Bearer <token>` (required
    /// on TCP, optional on a Unix socket).
    pub token: Option<String>,
    /// The socket file's mode and group (Unix sockets only).
    pub socket_mode: u32,
    pub socket_group: Option<(String, u32)>,
    /// Bans wider than these are refused: one request must not black-hole
    /// a continent.
    pub max_prefix_v4: u8,
    pub max_prefix_v6: u8,
}

/// The shortest token accepted: a guessable token is no guard.
const MIN_TOKEN_LEN: usize = 16;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawApi {
    listen: Option<Spanned<String>>,
    token_file: Option<Spanned<String>>,
    socket_mode: Spanned<String>,
    socket_group: Option<Spanned<String>>,
    max_prefix_v4: Spanned<i64>,
    max_prefix_v6: Spanned<i64>,
}

impl Default for RawApi {
    fn default() -> Self {
        RawApi {
            listen: None,
            token_file: None,
            socket_mode: default("0660".into()),
            socket_group: None,
            max_prefix_v4: default(16),
            max_prefix_v6: default(32),
        }
    }
}

impl RawApi {
    pub fn validate(&self, src: &Source) -> anyhow::Result<Option<Api>> {
        let Some(listen) = &self.listen else {
            if let Some(other) = self.token_file.as_ref().or(self.socket_group.as_ref()) {
                return Err(src.error(other.span(), "api", "needs `listen` (\"unix:/path\" or \"127.0.0.1:9561\")"));
            }
            return Ok(None);
        };
        let text = listen.get_ref();
        let address = match text.strip_prefix("unix:") {
            Some(path) if path.starts_with('/') => ApiListen::Unix(PathBuf::from(path)),
            Some(_) => return Err(src.error(listen.span(), "api.listen", "a unix: socket needs an absolute path")),
            None => ApiListen::Tcp(text.parse().map_err(|_| {
                src.error(listen.span(), "api.listen", format!("{text:?} is neither unix:/path nor address:port"))
            })?),
        };
        let token = match &self.token_file {
            None => None,
            Some(file) => {
                let token = src.secret_file(file, "api.token_file")?;
                if token.len() < MIN_TOKEN_LEN || token.bytes().any(|b| !b.is_ascii_graphic()) {
                    return Err(src.error(
                        file.span(),
                        "api.token_file",
                        format!("the token must be at least {MIN_TOKEN_LEN} printable characters, without spaces"),
                    ));
                }
                Some(token)
            }
        };
        if matches!(address, ApiListen::Tcp(_)) && token.is_none() {
            return Err(src.error(
                listen.span(),
                "api.listen",
                "a TCP listener needs `token_file` (a bearer token); a unix: socket is guarded by its mode and group",
            ));
        }
        if matches!(address, ApiListen::Tcp(_)) {
            let unix_only = self.socket_group.as_ref().map(Spanned::span).or_else(|| {
                let span = self.socket_mode.span();
                (!span.is_empty()).then_some(span)
            });
            if let Some(span) = unix_only {
                return Err(src.error(span, "api", "socket_mode and socket_group are for a unix: listener"));
            }
        }
        let mode = self.socket_mode.get_ref();
        let socket_mode =
            u32::from_str_radix(mode, 8).ok().filter(|m| *m <= 0o777 && m & 0o600 == 0o600).ok_or_else(|| {
                src.error(
                    self.socket_mode.span(),
                    "api.socket_mode",
                    format!("{mode:?} is not an octal mode with u+rw"),
                )
            })?;
        let socket_group = match &self.socket_group {
            None => None,
            Some(name) => {
                let gid = group_id(name.get_ref()).ok_or_else(|| {
                    src.error(name.span(), "api.socket_group", format!("no group {:?} on this host", name.get_ref()))
                })?;
                Some((name.get_ref().clone(), gid))
            }
        };
        Ok(Some(Api {
            listen: address,
            token,
            socket_mode,
            socket_group,
            max_prefix_v4: src.prefix_len(&self.max_prefix_v4, "api.max_prefix_v4", 32)?,
            max_prefix_v6: src.prefix_len(&self.max_prefix_v6, "api.max_prefix_v6", 128)?,
        }))
    }
}

/// The id of group `name`, if the host has it.
fn group_id(name: &str) -> Option<u32> {
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: getgrnam reads a NUL-terminated name; the record it returns
    // is read at once, before any other call could reuse it.
    let group = unsafe { libc::getgrnam(name.as_ptr()) };
    (!group.is_null()).then(|| unsafe { (*group).gr_gid })
}
