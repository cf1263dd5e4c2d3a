//! Builds Ethernet frames byte by byte, including deliberately broken ones.
//! Checksums are left zero: XDP runs before any checksum is verified.

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ICMPV6: u8 = 58;
pub const NEXTHDR_HOP: u8 = 0;
pub const NEXTHDR_ROUTING: u8 = 43;
pub const NEXTHDR_FRAGMENT: u8 = 44;
pub const NEXTHDR_DEST: u8 = 60;

pub const OPTIONS: &[u8] =
    b"OPTIONS sip:198.18.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 203.0.113.1\r\nContent-Length: 0\r\n\r\n";
pub const REGISTER: &[u8] = b"REGISTER sip:198.18.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 198.18.1.2:5060\r\n\r\n";
pub const INVITE: &[u8] = b"INVITE sip:100@198.18.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 198.18.1.2:5060\r\n\r\n";
/// A phone's INVITE answering a proxy challenge, as phones send them:
/// full headers, credentials and an SDP offer (about 1 KB).
pub const PHONE_INVITE: &[u8] = b"INVITE sip:+4930123456@198.18.0.1 SIP/2.0\r\n\
Via: SIP/2.0/TCP 203.0.113.10:5060;branch=z9hG4bK-524287-1---77b1c3a9;rport\r\n\
Max-Forwards: 70\r\n\
Contact: <sip:1001@203.0.113.10:5060;transport=tcp>\r\n\
To: <sip:+4930123456@198.18.0.1>\r\n\
From: <sip:1001@198.18.0.1>;tag=4a1f7c2e\r\n\
Call-ID: 9kR2mQ7xLwP4vT8nB3cZ6yH1sD5fG0jK\r\n\
CSeq: 2 INVITE\r\n\
Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE\r\n\
Content-Type: application/sdp\r\n\
Proxy-Authorization: Digest username=\"1001\",realm=\"198.18.0.1\",nonce=\"Y2Fmx2Z8bWQ5c2Rm\",\
uri=\"sip:+4930123456@198.18.0.1\",response=\"8f1e6ad6c0d4bfa0b3c5e5f2a1d0c9e7\",algorithm=MD5\r\n\
Supported: replaces, norefersub, extended-refer, timer, outbound, path, X-cisco-serviceuri\r\n\
User-Agent: Yealink SIP-T46S 66.86.0.15\r\n\
Allow-Events: presence, kpml, talk\r\n\
Content-Length: 295\r\n\
\r\n\
v=0\r\n\
o=1001 1700000000 1700000001 IN IP4 203.0.113.10\r\n\
s=Talk\r\n\
c=IN IP4 203.0.113.10\r\n\
t=0 0\r\n\
m=audio 7078 RTP/AVP 0 8 9 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=sendrecv\r\n\
a=rtcp-mux\r\n\
a=ptime:20\r\n\
a=maxptime:150\r\n";
/// A phone's REGISTER answering a challenge, as phones send them.
pub const REGISTER_WITH_CREDENTIALS: &[u8] = b"REGISTER sip:198.18.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK-524287-1---8d3c4f0a\r\n\
Max-Forwards: 70\r\nContact: <sip:100@203.0.113.10:5060;rinstance=1b2c3d>\r\n\
To: <sip:100@198.18.0.1>\r\nFrom: <sip:100@198.18.0.1>;tag=5a1b2c3d\r\n\
Call-ID: ZjNkYmM0MmQ5NzVmNTg2NjY0MjFiYzRlM2E2ZTE0ZjE\r\nCSeq: 2 REGISTER\r\nExpires: 300\r\n\
Authorization: Digest username=\"100\",realm=\"198.18.0.1\",nonce=\"Y2l3f2Vvb3Z4\",uri=\"sip:198.18.0.1\",\
response=\"5d41402abc4b2a76b9719d911017c592\",algorithm=MD5\r\n\
User-Agent: Yealink SIP-T46S 66.86.0.15\r\nContent-Length: 0\r\n\r\n";

/// Ethernet header with the given VLAN tags (outermost first) and ethertype.
pub fn eth(vlan_tpids: &[u16], ethertype: u16) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    for (i, tpid) in vlan_tpids.iter().enumerate() {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&(100 + i as u16).to_be_bytes()); // VLAN id
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// IPv4 header fields a test may vary.
#[derive(Clone)]
pub struct V4 {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub protocol: u8,
    pub options: Vec<u8>,
    pub id: u16,
    pub more_fragments: bool,
    /// In 8-byte units.
    pub frag_offset: u16,
}

impl V4 {
    pub fn new(src: [u8; 4], protocol: u8) -> V4 {
        V4 {
            src,
            dst: [198, 18, 0, 1],
            protocol,
            options: Vec::new(),
            id: 0x1234,
            more_fragments: false,
            frag_offset: 0,
        }
    }

    pub fn header(&self, payload_len: usize) -> Vec<u8> {
        assert!(self.options.len().is_multiple_of(4) && self.options.len() <= 40);
        let ihl = 5 + self.options.len() / 4;
        let total = (ihl * 4 + payload_len) as u16;
        let flags = (if self.more_fragments { 0x2000 } else { 0 }) | self.frag_offset;
        let mut h = vec![0x40 | ihl as u8, 0];
        h.extend_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&self.id.to_be_bytes());
        h.extend_from_slice(&flags.to_be_bytes());
        h.extend_from_slice(&[64, self.protocol, 0, 0]);
        h.extend_from_slice(&self.src);
        h.extend_from_slice(&self.dst);
        h.extend_from_slice(&self.options);
        h
    }
}

/// IPv6 header fields a test may vary; `ext` is a list of extension
/// headers (type, body) placed before the upper-layer protocol.
#[derive(Clone)]
pub struct V6 {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub protocol: u8,
    pub ext: Vec<(u8, Vec<u8>)>,
}

impl V6 {
    pub fn new(src: [u8; 16], protocol: u8) -> V6 {
        let mut dst = [0u8; 16];
        dst[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        dst[15] = 1;
        V6 { src, dst, protocol, ext: Vec::new() }
    }

    /// Adds a hop-by-hop, routing or destination-options header padded to
    /// `units` 8-byte units.
    pub fn with_ext(mut self, kind: u8, units: usize) -> V6 {
        self.ext.push((kind, vec![0u8; units * 8 - 2]));
        self
    }

    /// Adds a fragment header.
    pub fn with_fragment(mut self, offset_units: u16, more: bool, id: u32) -> V6 {
        let mut body = vec![0u8];
        body.extend_from_slice(&((offset_units << 3) | more as u16).to_be_bytes());
        body.extend_from_slice(&id.to_be_bytes());
        self.ext.push((NEXTHDR_FRAGMENT, body));
        self
    }

    pub fn header(&self, payload_len: usize) -> Vec<u8> {
        let first = self.ext.first().map_or(self.protocol, |(k, _)| *k);
        let mut exts = Vec::new();
        for (i, (kind, body)) in self.ext.iter().enumerate() {
            let next = self.ext.get(i + 1).map_or(self.protocol, |(k, _)| *k);
            exts.push(next);
            if *kind == NEXTHDR_FRAGMENT {
                exts.extend_from_slice(body); // reserved byte already in body
            } else {
                exts.push(((body.len() + 2) / 8 - 1) as u8);
                exts.extend_from_slice(body);
            }
        }
        let plen = (exts.len() + payload_len) as u16;
        let mut h = vec![0x60, 0, 0, 0];
        h.extend_from_slice(&plen.to_be_bytes());
        h.extend_from_slice(&[first, 64]);
        h.extend_from_slice(&self.src);
        h.extend_from_slice(&self.dst);
        h.extend_from_slice(&exts);
        h
    }
}

pub fn udp(dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&5060u16.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    h.extend_from_slice(&[0, 0]);
    h.extend_from_slice(payload);
    h
}

/// A TCP segment with `options_len` bytes of NOP options.
pub fn tcp(dport: u16, options_len: usize, payload: &[u8]) -> Vec<u8> {
    assert!(options_len.is_multiple_of(4));
    let doff = (20 + options_len) / 4;
    let mut h = Vec::new();
    h.extend_from_slice(&40000u16.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
    h.push((doff as u8) << 4);
    h.extend_from_slice(&[0x18, 0xff, 0xff, 0, 0, 0, 0]);
    h.extend(std::iter::repeat_n(1u8, options_len));
    h.extend_from_slice(payload);
    h
}

/// TCP flags.
pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;
pub const PSH: u8 = 0x08;

/// A TCP header and payload with every field a stream test sets.
pub fn tcp_segment(sport: u16, dport: u16, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h.extend_from_slice(&seq.to_be_bytes());
    h.extend_from_slice(&ack.to_be_bytes());
    h.push(5 << 4);
    h.extend_from_slice(&[flags, 0xff, 0xff, 0, 0, 0, 0]);
    h.extend_from_slice(payload);
    h
}

pub fn icmp_echo() -> Vec<u8> {
    vec![8, 0, 0, 0, 0, 1, 0, 1, b'p', b'i', b'n', b'g']
}

pub fn arp_request() -> Vec<u8> {
    let mut f = eth(&[], ETH_P_ARP);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 198, 18, 1, 2]);
    f.extend_from_slice(&[0, 0, 0, 0, 0, 0, 198, 18, 0, 1]);
    f
}

/// A complete IPv4 frame.
pub fn v4_frame(vlans: &[u16], ip: &V4, l4: &[u8]) -> Vec<u8> {
    let mut f = eth(vlans, ETH_P_IP);
    f.extend(ip.header(l4.len()));
    f.extend_from_slice(l4);
    f
}

/// A complete IPv6 frame.
pub fn v6_frame(vlans: &[u16], ip: &V6, l4: &[u8]) -> Vec<u8> {
    let mut f = eth(vlans, ETH_P_IPV6);
    f.extend(ip.header(l4.len()));
    f.extend_from_slice(l4);
    f
}

pub fn v6_addr(text: &str) -> [u8; 16] {
    text.parse::<std::net::Ipv6Addr>().expect("IPv6 literal").octets()
}

/// A UDP datagram from `src` to `port`, in an untagged IPv4 frame.
pub fn udp4(src: [u8; 4], port: u16, payload: &[u8]) -> Vec<u8> {
    v4_frame(&[], &V4::new(src, IPPROTO_UDP), &udp(port, payload))
}

/// A TCP segment from `src` to `port`, in an untagged IPv4 frame.
pub fn tcp4(src: [u8; 4], port: u16, payload: &[u8]) -> Vec<u8> {
    v4_frame(&[], &V4::new(src, IPPROTO_TCP), &tcp(port, 0, payload))
}

/// A TCP segment from `src`'s port `sport` to `port` (sequence number 1,
/// as a connection taken up there), in an untagged IPv4 frame.
pub fn tcp4_from(src: [u8; 4], sport: u16, port: u16, payload: &[u8]) -> Vec<u8> {
    v4_frame(&[], &V4::new(src, IPPROTO_TCP), &tcp_segment(sport, port, 1, 0, ACK | PSH, payload))
}

/// A UDP datagram from `src` to `port`, in an untagged IPv6 frame.
pub fn udp6(src: [u8; 16], port: u16, payload: &[u8]) -> Vec<u8> {
    v6_frame(&[], &V6::new(src, IPPROTO_UDP), &udp(port, payload))
}

/// `prefix` (an IPv6 literal) with its last byte set to `i`.
pub fn v6_host(prefix: &str, i: u8) -> [u8; 16] {
    let mut a = v6_addr(prefix);
    a[15] = i;
    a
}
