//! UDP and TCP: the destination port and where the payload starts.

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
}

/// `Ok(None)` for protocols other than UDP and TCP.
#[inline(always)]
pub fn parse(ctx: &impl Frame, protocol: u8, offset: usize) -> Result<Option<L4Info>, Packet> {
    match protocol {
        IPPROTO_UDP => {
            let h = header::<[u8; UDP_HLEN]>(ctx, offset).ok_or(Packet::Malformed)?;
            let h = unsafe { &*h };
            Ok(Some(L4Info { sport: be16(h[0], h[1]), dport: be16(h[2], h[3]), payload_offset: offset + UDP_HLEN }))
        }
        IPPROTO_TCP => {
            let h = header::<[u8; TCP_MIN_HLEN]>(ctx, offset).ok_or(Packet::Malformed)?;
            let h = unsafe { &*h };
            let hlen = ((h[12] >> 4) as usize) * 4;
            if hlen < TCP_MIN_HLEN || !has(ctx, offset, hlen) {
                return Err(Packet::Malformed);
            }
            Ok(Some(L4Info { sport: be16(h[0], h[1]), dport: be16(h[2], h[3]), payload_offset: offset + hlen }))
        }
        _ => Ok(None),
    }
}
