//! Tells systemd where `sip-xdp run` stands, so that the `Type=notify` unit
//! is active only once the filter is in force: `READY=1` after every
//! interface is attached and the config applied, `RELOADING=1` then
//! `READY=1` around a SIGHUP reload, `STOPPING=1` before the detach, each
//! with a `STATUS=` line that `systemctl status` shows.
//!
//! The protocol (sd_notify(3)): one datagram of newline-separated
//! `KEY=VALUE` assignments to the Unix socket that `$NOTIFY_SOCKET` names,
//! a path, or an abstract socket when the name starts with `@`. Outside
//! systemd the variable is unset and every call here does nothing. The
//! protocol is these few lines of std, so no crate is taken for it.
//!
//! A message that cannot be sent is logged and otherwise ignored: telling
//! systemd is never a reason to stop filtering.

use std::{
    ffi::OsStr,
    io,
    os::{
        linux::net::SocketAddrExt as _,
        unix::{
            ffi::OsStrExt as _,
            net::{SocketAddr, UnixDatagram},
        },
    },
};

use log::warn;

/// The environment variable through which systemd hands a `Type=notify`
/// service its socket.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// The filter is attached to every interface and the config is applied.
pub fn ready(status: &str) {
    notify(&[("READY", "1"), ("STATUS", status)]);
}

/// A SIGHUP reload begins. systemd (253 and later) pairs `RELOADING=1`
/// with the monotonic time it was sent at.
pub fn reloading() {
    notify(&[
        ("RELOADING", "1"),
        ("MONOTONIC_USEC", &monotonic_usec().to_string()),
        ("STATUS", "reloading the config"),
    ]);
}

/// A SIGHUP reload is over: ready again, whether or not the new file was
/// taken (a broken one leaves the running config in force).
pub fn reloaded(ok: bool) {
    ready(if ok { "filtering; config reloaded" } else { "filtering; reload failed, the running config stays" });
}

/// The controller is detaching the filter and will exit.
pub fn stopping() {
    notify(&[("STOPPING", "1"), ("STATUS", "detaching the filter")]);
}

fn notify(assignments: &[(&str, &str)]) {
    let Some(socket) = std::env::var_os(NOTIFY_SOCKET) else { return };
    if let Err(err) = send(&socket, &message(assignments)) {
        warn!("cannot notify systemd through {}: {err}", socket.to_string_lossy());
    }
}

/// The datagram for `assignments`: `KEY=VALUE` lines. A newline inside a
/// value would start a bogus assignment, so it becomes a space.
pub fn message(assignments: &[(&str, &str)]) -> String {
    assignments.iter().map(|(key, value)| format!("{key}={}\n", value.replace('\n', " "))).collect()
}

/// Sends `message` as one datagram to the socket named `socket` in
/// `$NOTIFY_SOCKET`'s form.
pub fn send(socket: &OsStr, message: &str) -> io::Result<()> {
    let address = socket_address(socket)?;
    UnixDatagram::unbound()?.send_to_addr(message.as_bytes(), &address)?;
    Ok(())
}

/// `@name` is the abstract socket `name`; `/path` a socket file. Anything
/// else (newer systemd also knows `vsock:` addresses) is not supported.
fn socket_address(socket: &OsStr) -> io::Result<SocketAddr> {
    let bytes = socket.as_bytes();
    match bytes.first() {
        Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..]),
        Some(b'/') => SocketAddr::from_pathname(socket),
        _ => Err(io::Error::new(io::ErrorKind::Unsupported, "not an absolute path or an @abstract name")),
    }
}

/// CLOCK_MONOTONIC in microseconds, the clock systemd reads.
fn monotonic_usec() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid out pointer; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{path::PathBuf, time::Duration};

    /// A socket file in a directory of its own, removed on drop.
    struct Listener {
        dir: PathBuf,
        socket: UnixDatagram,
    }

    impl Listener {
        fn bind(name: &str) -> Listener {
            let dir = std::env::temp_dir().join(format!("sip-xdp-notify-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let socket = UnixDatagram::bind(dir.join("notify")).unwrap();
            socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            Listener { dir, socket }
        }

        fn path(&self) -> PathBuf {
            self.dir.join("notify")
        }
    }

    impl Drop for Listener {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn receive(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 4096];
        let n = socket.recv(&mut buf).expect("a datagram arrives");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn messages_are_key_value_lines() {
        assert_eq!(message(&[("READY", "1"), ("STATUS", "filtering on eth0")]), "READY=1\nSTATUS=filtering on eth0\n");
        assert_eq!(message(&[("STATUS", "two\nlines")]), "STATUS=two lines\n", "a value stays one assignment");
        assert_eq!(message(&[]), "");
    }

    #[test]
    fn a_datagram_reaches_a_socket_file() {
        let listener = Listener::bind("path");
        send(listener.path().as_os_str(), "READY=1\n").unwrap();
        assert_eq!(receive(&listener.socket), "READY=1\n");
    }

    #[test]
    fn an_at_sign_names_an_abstract_socket() {
        let name = format!("sip-xdp-notify-test-{}", std::process::id());
        let socket = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        send(OsStr::new(&format!("@{name}")), "STOPPING=1\n").unwrap();
        assert_eq!(receive(&socket), "STOPPING=1\n");
    }

    #[test]
    fn other_addresses_are_refused() {
        let err = send(OsStr::new("relative/notify"), "READY=1\n").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
        assert!(send(OsStr::new("/nonexistent/sip-xdp/notify"), "READY=1\n").is_err());
    }

    /// The only test that sets `NOTIFY_SOCKET` (the environment is the
    /// process's): what the daemon's calls send, in the order it makes them.
    #[test]
    fn the_daemon_calls_send_to_the_socket_in_the_environment() {
        let listener = Listener::bind("env");
        std::env::set_var(NOTIFY_SOCKET, listener.path());
        ready("filtering on eth0 in monitor mode");
        reloading();
        reloaded(false);
        stopping();
        std::env::remove_var(NOTIFY_SOCKET);
        assert_eq!(receive(&listener.socket), "READY=1\nSTATUS=filtering on eth0 in monitor mode\n");
        let reload = receive(&listener.socket);
        let usec: u64 = reload
            .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
            .and_then(|rest| rest.strip_suffix("\nSTATUS=reloading the config\n"))
            .unwrap_or_else(|| panic!("{reload:?}"))
            .parse()
            .unwrap();
        assert!(usec > 0 && usec <= monotonic_usec(), "sent at a monotonic time in the past: {usec}");
        assert_eq!(receive(&listener.socket), "READY=1\nSTATUS=filtering; reload failed, the running config stays\n");
        assert_eq!(receive(&listener.socket), "STOPPING=1\nSTATUS=detaching the filter\n");
        ready("not sent: no socket in the environment");
        listener.socket.set_nonblocking(true).unwrap();
        assert!(listener.socket.recv(&mut [0u8; 64]).is_err(), "nothing sent without NOTIFY_SOCKET");
    }
}
