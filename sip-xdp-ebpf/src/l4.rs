//! UDP and TCP: the ports, where the payload starts, and for TCP where the
//! segment sits in its stream.

use sip_xdp_common::verdict::Packet;

use crate::packet::{be16, has, header, Frame};

pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
const UDP_HLEN: usize = 8;
const TCP_MIN_HLEN: usize = 20;

pub struct L4Info {
    /// Ports, host byte order.
    pub sport: u16,
    pub dport: u16,
    pub payload_offset: usize,
    /// TCP: the sequence number of the first payload byte, the
    /// acknowledgement number and the flags (0 for UDP).
    pub seq: u32,
    pub ack: u32,
    pub tcp_flags: u8,
}

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

#[inline(always)]
fn be32(b: &[u8; TCP_MIN_HLEN], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// `Ok(None)` for protocols other than UDP and TCP.
#[inline(always)]
pub fn parse(ctx: &impl Frame, protocol: u8, offset: usize) -> Result<Option<L4Info>, Packet> {
    match protocol {
        IPPROTO_UDP => {
            let h = header::<[u8; UDP_HLEN]>(ctx, offset).ok_or(Packet::Malformed)?;
            let h = unsafe { &*h };
            Ok(Some(L4Info {
                sport: be16(h[0], h[1]),
                dport: be16(h[2], h[3]),
                payload_offset: offset + UDP_HLEN,
                seq: 0,
                ack: 0,
                tcp_flags: 0,
            }))
        }
        IPPROTO_TCP => {
            let h = header::<[u8; TCP_MIN_HLEN]>(ctx, offset).ok_or(Packet::Malformed)?;
            let h = unsafe { &*h };
            let hlen = ((h[12] >> 4) as usize) * 4;
            if hlen < TCP_MIN_HLEN || !has(ctx, offset, hlen) {
                return Err(Packet::Malformed);
            }
            Ok(Some(L4Info {
                sport: be16(h[0], h[1]),
                dport: be16(h[2], h[3]),
                payload_offset: offset + hlen,
                seq: be32(h, 4),
                ack: be32(h, 8),
                tcp_flags: h[13],
            }))
        }
        _ => Ok(None),
    }
}
