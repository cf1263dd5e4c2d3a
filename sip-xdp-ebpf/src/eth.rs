//! Ethernet and VLAN tags (802.1Q and 802.1ad, at most two).

use sip_xdp_common::verdict::Packet;

use crate::packet::{be16, header, Frame};

const ETH_HLEN: usize = 14;
const VLAN_HLEN: usize = 4;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
/// Tags walked: one customer tag inside one service tag (QinQ).
const MAX_VLAN_TAGS: usize = 2;

pub enum L3 {
    V4,
    V6,
}

#[inline(always)]
fn is_vlan(proto: u16) -> bool {
    proto == ETH_P_8021Q || proto == ETH_P_8021AD
}

/// The network protocol and the offset of its header, or the verdict input
/// for frames that are not IP or cannot be parsed.
#[inline(always)]
pub fn parse(ctx: &impl Frame) -> Result<(L3, usize), Packet> {
    let eth = header::<[u8; ETH_HLEN]>(ctx, 0).ok_or(Packet::Malformed)?;
    let mut proto = unsafe { be16((*eth)[12], (*eth)[13]) };
    let mut offset = ETH_HLEN;
    for _ in 0..MAX_VLAN_TAGS {
        if !is_vlan(proto) {
            break;
        }
        let tag = header::<[u8; VLAN_HLEN]>(ctx, offset).ok_or(Packet::Malformed)?;
        proto = unsafe { be16((*tag)[2], (*tag)[3]) };
        offset += VLAN_HLEN;
    }
    match proto {
        ETH_P_IP => Ok((L3::V4, offset)),
        ETH_P_IPV6 => Ok((L3::V6, offset)),
        p if is_vlan(p) => Err(Packet::TooDeep),
        _ => Err(Packet::NonIp),
    }
}
