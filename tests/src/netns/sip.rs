//! What the tests send and read: SIP requests, UDP helpers, and TCP
//! connections that read whole messages.

use std::{
    io::{Read, Write},
    net::{IpAddr, SocketAddr, TcpStream, UdpSocket},
    time::{Duration, Instant},
};

use super::Lab;

impl Lab {
    /// One REGISTER with a wrong password over UDP, from a new socket in
    /// the stranger namespace on `from` to `server`: the status line of the
    /// answer, if one comes within a second.
    pub fn guess(&self, from: &str, server: &str, seq: u32) -> Option<String> {
        let sock = self.udp_in(&self.stranger, &host_port(from, 0));
        let port = sock.local_addr().expect("local address").port();
        let request = register_with_credentials("UDP", from, port, server, "1001", seq);
        sock.send_to(&request, host_port(server, 5060)).expect("send");
        recv_within(&sock, Duration::from_secs(1))
            .map(|r| String::from_utf8_lossy(&r).lines().next().unwrap_or_default().to_string())
    }

    /// Guesses from `from` one at a time, each after the previous answer,
    /// until one goes unanswered (at most `limit`); how many were
    /// answered, each with a 401.
    pub fn guess_until_unanswered(&self, from: &str, server: &str, limit: u32) -> u64 {
        for seq in 0..limit {
            match self.guess(from, server, seq) {
                Some(status) => assert!(status.starts_with("SIP/2.0 401"), "{status}"),
                None => return seq as u64,
            }
        }
        limit as u64
    }

    /// Does a fresh OPTIONS from `from` (stranger namespace) get any
    /// answer within a second?
    pub fn answered(&self, from: &str, server: &str) -> bool {
        let sock = self.udp_in(&self.stranger, &host_port(from, 0));
        let port = sock.local_addr().expect("local address").port();
        sock.send_to(&options_request(from, port, 99), host_port(server, 5060)).expect("send");
        recv_within(&sock, Duration::from_secs(1)).is_some()
    }

    /// A TCP connection to port 5060 of `server_ip`, made inside `ns` from
    /// `local_ip` (any free port).
    pub fn tcp_in(&self, ns: &str, local_ip: &str, server_ip: &str) -> SipStream {
        self.try_tcp_in(ns, local_ip, server_ip, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect {local_ip} -> {server_ip}: {e}"))
    }

    /// The same, or the error if it is not up within `wait`.
    pub fn try_tcp_in(&self, ns: &str, local_ip: &str, server_ip: &str, wait: Duration) -> std::io::Result<SipStream> {
        let local: IpAddr = local_ip.parse().expect("local address");
        let server = SocketAddr::new(server_ip.parse().expect("server address"), 5060);
        self.in_netns(ns, move || {
            let stream = tcp_connect(local, server, wait)?;
            stream.set_nodelay(true)?;
            Ok(SipStream { stream, buf: Vec::new() })
        })
    }
}

/// An OPTIONS request with a unique Call-ID.
pub fn options_request(from_ip: &str, from_port: u16, seq: u32) -> Vec<u8> {
    sip_request("OPTIONS", from_ip, from_port, seq)
}

/// A REGISTER request (no credentials) with a unique Call-ID.
pub fn register_request(from_ip: &str, from_port: u16, seq: u32) -> Vec<u8> {
    sip_request("REGISTER", from_ip, from_port, seq)
}

fn sip_request(method: &str, from_ip: &str, from_port: u16, seq: u32) -> Vec<u8> {
    let from_ip = sip_host(from_ip);
    format!(
        "{method} sip:198.18.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {from_ip}:{from_port};branch=z9hG4bK-{seq}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@{from_ip}>;tag={seq}\r\nTo: <sip:probe@{from_ip}>\r\n\
         Call-ID: {seq}-{from_port}@{from_ip}\r\nCSeq: {} {method}\r\nContact: <sip:probe@{from_ip}:{from_port}>\r\n\
         Content-Length: 0\r\n\r\n",
        seq + 1
    )
    .into_bytes()
}

/// A datagram if one arrives within `wait`.
pub fn recv_within(sock: &UdpSocket, wait: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            return Some(buf[..n].to_vec());
        }
    }
    None
}

/// Sends `count` OPTIONS requests (unique Call-IDs) from `sock` to port
/// 5060 of `server_ip`, one every `gap`, on another thread.
pub fn send_options_in_background(
    sock: &UdpSocket,
    server_ip: &str,
    count: u32,
    gap: Duration,
) -> std::thread::JoinHandle<()> {
    let sock = sock.try_clone().expect("clone socket");
    let local = sock.local_addr().expect("local address");
    let server = format!("{server_ip}:5060");
    std::thread::spawn(move || {
        for seq in 0..count {
            let _ = sock.send_to(&options_request(&local.ip().to_string(), local.port(), seq), &server);
            std::thread::sleep(gap);
        }
    })
}

/// Counts, on another thread, the datagrams arriving within `wait`, so a
/// burst of answers never overflows the socket buffer.
pub fn count_in_background(sock: &UdpSocket, wait: Duration) -> std::thread::JoinHandle<usize> {
    let sock = sock.try_clone().expect("clone socket");
    std::thread::spawn(move || drain(&sock, wait))
}

/// Counts datagrams arriving within `wait`.
pub fn drain(sock: &UdpSocket, wait: Duration) -> usize {
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 4096];
    let mut n = 0;
    while Instant::now() < deadline {
        if sock.recv_from(&mut buf).is_ok() {
            n += 1;
        }
    }
    n
}

/// `ip` as the host part of a SIP URI or Via: an IPv6 address in brackets.
pub fn sip_host(ip: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    }
}

/// `ip:port`, an IPv6 address in brackets (a socket address, SIPp's
/// remote host).
pub fn host_port(ip: &str, port: u16) -> String {
    format!("{}:{port}", sip_host(ip))
}

/// A REGISTER for `user` carrying digest credentials that are wrong (a
/// guessed password, an invented nonce): the server refuses them with a
/// 401. `transport` is `UDP` or `TCP`; the Call-ID is unique per `seq`.
pub fn register_with_credentials(
    transport: &str,
    from_ip: &str,
    from_port: u16,
    server_ip: &str,
    user: &str,
    seq: u32,
) -> Vec<u8> {
    let (from, server) = (sip_host(from_ip), sip_host(server_ip));
    format!(
        "REGISTER sip:{server} SIP/2.0\r\nVia: SIP/2.0/{transport} {from}:{from_port};branch=z9hG4bK-g{seq}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:{user}@{server}>;tag=g{seq}\r\nTo: <sip:{user}@{server}>\r\n\
         Call-ID: guess-{seq}-{from_port}@{from}\r\nCSeq: 2 REGISTER\r\nContact: <sip:{user}@{from}:{from_port}>\r\n\
         Authorization: Digest username=\"{user}\", realm=\"{server}\", nonce=\"6a1b2c3d{seq:08x}\", \
         uri=\"sip:{server}\", response=\"{:032x}\", algorithm=MD5\r\n\
         Expires: 300\r\nContent-Length: 0\r\n\r\n",
        0x5eed_u128.wrapping_mul(u128::from(seq) + 1)
    )
    .into_bytes()
}

/// The shortest REGISTER with digest credentials (for extension 1000)
/// that Kamailio reads and refuses with a 401: compact headers, empty
/// digest fields, 170 bytes, so that twenty fit one TCP segment at an MTU
/// of [`MAX_XDP_VETH_MTU`]. The Call-ID is unique per `seq` (< 100).
pub fn compact_register_with_credentials(seq: u32) -> Vec<u8> {
    format!(
        "REGISTER sip:d SIP/2.0\r\nv:SIP/2.0/TCP a\r\nf:sip:d\r\nt:sip:1000@d\r\ni:{seq:02}\r\nCSeq:1 REGISTER\r\n\
         Authorization:Digest username=\"1000\",realm=\"d\",nonce=\"\",uri=\"\",response=\"\"\r\nl:0\r\n\r\n"
    )
    .into_bytes()
}

/// A TCP connection to a SIP server, reading whole messages (they are
/// delimited by Content-Length, several may come in one read).
pub struct SipStream {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl SipStream {
    /// The connection's maximum segment size (payload bytes per segment).
    pub fn mss(&self) -> usize {
        use std::os::fd::AsRawFd;
        let mut mss: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt(2) on our own socket, into a c_int of that size.
        let rc = unsafe {
            libc::getsockopt(
                self.stream.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_MAXSEG,
                (&raw mut mss).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0, "TCP_MAXSEG: {}", std::io::Error::last_os_error());
        mss as usize
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send over TCP");
    }

    /// The next whole message, if one arrives within `wait`.
    pub fn recv(&mut self, wait: Duration) -> Option<String> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(message) = take_message(&mut self.buf) {
                return Some(message);
            }
            let left = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())?;
            self.stream.set_read_timeout(Some(left.min(Duration::from_millis(100)))).expect("timeout");
            let mut chunk = [0u8; 8192];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => return None,
            }
        }
    }
}

/// Removes and returns the first whole message of `buf` (leading CRLF
/// keep-alives skipped).
fn take_message(buf: &mut Vec<u8>) -> Option<String> {
    let skip = buf.iter().take_while(|&&c| c == b'\r' || c == b'\n').count();
    buf.drain(..skip);
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let length = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length") || name.trim().eq_ignore_ascii_case("l"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    if buf.len() < head_end + length {
        return None;
    }
    let message = String::from_utf8_lossy(&buf[..head_end + length]).to_string();
    buf.drain(..head_end + length);
    Some(message)
}

/// A TCP connection from `local` (any port) to `server`, in the calling
/// thread's network namespace (std cannot bind before connecting); an
/// error if it is not up within `wait` (a banned source's SYN is dropped).
fn tcp_connect(local: IpAddr, server: SocketAddr, wait: Duration) -> std::io::Result<TcpStream> {
    use std::os::fd::FromRawFd;
    let sockaddr = |addr: SocketAddr| {
        // SAFETY: an all-zero sockaddr_storage is valid; it is then filled
        // as the family's own structure, which it is large enough for.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let len = match addr {
            SocketAddr::V4(a) => {
                let sin = unsafe { &mut *(&raw mut storage).cast::<libc::sockaddr_in>() };
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = a.port().to_be();
                sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
                std::mem::size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                let sin6 = unsafe { &mut *(&raw mut storage).cast::<libc::sockaddr_in6>() };
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = a.port().to_be();
                sin6.sin6_addr.s6_addr = a.ip().octets();
                std::mem::size_of::<libc::sockaddr_in6>()
            }
        };
        (storage, len as libc::socklen_t)
    };
    let check = |rc: libc::c_int| if rc < 0 { Err(std::io::Error::last_os_error()) } else { Ok(rc) };
    let family = if local.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: socket(2), bind(2), connect(2), poll(2) and getsockopt(2) on
    // a fresh descriptor that the TcpStream owns from the start (so it is
    // closed on every path), with initialised structures and their sizes.
    unsafe {
        let fd = check(libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0))?;
        let stream = TcpStream::from_raw_fd(fd);
        let (addr, len) = sockaddr(SocketAddr::new(local, 0));
        check(libc::bind(fd, (&raw const addr).cast(), len))?;
        let (addr, len) = sockaddr(server);
        if libc::connect(fd, (&raw const addr).cast(), len) < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINPROGRESS) {
                return Err(err);
            }
            let mut pfd = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
            if check(libc::poll(&mut pfd, 1, wait.as_millis() as libc::c_int))? == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"));
            }
            let mut so_error: libc::c_int = 0;
            let mut optlen = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            check(libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR, (&raw mut so_error).cast(), &mut optlen))?;
            if so_error != 0 {
                return Err(std::io::Error::from_raw_os_error(so_error));
            }
        }
        stream.set_nonblocking(false)?;
        Ok(stream)
    }
}
