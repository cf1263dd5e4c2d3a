//! IPv4 (options via `ihl`) and IPv6 (with a bounded walk over hop-by-hop,
//! routing, destination-options and fragment headers).

use core::mem::MaybeUninit;

use sip_xdp_common::{map_types::v4_mapped, verdict::Packet};

use crate::{
    eth::L3,
    packet::{be16, has, header, Frame},
};

const IPV4_MIN_HLEN: usize = 20;
const IPV6_HLEN: usize = 40;
const IPV4_MF: u16 = 0x2000;
const IPV4_OFFSET_MASK: u16 = 0x1fff;

const NEXTHDR_HOP: u8 = 0;
const NEXTHDR_ROUTING: u8 = 43;
const NEXTHDR_FRAGMENT: u8 = 44;
const NEXTHDR_DEST: u8 = 60;
/// Extension headers walked before giving up (and dropping as too deep).
pub const MAX_IPV6_EXT_HEADERS: usize = 8;

/// Where a packet sits in its datagram.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub enum Frag {
    /// Not fragmented.
    #[default]
    Whole,
    /// Offset 0 with more fragments to come: carries the L4 header.
    First(u32),
    /// Any later fragment: no L4 header.
    Later(u32),
}

pub struct L3Info {
    /// The upper-layer protocol (after any extension headers).
    pub protocol: u8,
    /// Offset of the upper-layer header.
    pub l4_offset: usize,
    /// Addresses, IPv4 as IPv4-mapped IPv6.
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub frag: Frag,
}

/// Parses the IP header at `offset`. `out` is the caller's room for the
/// result, uninitialised so the caller need not zero it first (zeroing
/// compiled to a call to a byte-at-a-time memset on every packet).
#[inline(always)]
pub fn parse<'a>(
    ctx: &impl Frame,
    l3: L3,
    offset: usize,
    out: &'a mut MaybeUninit<L3Info>,
) -> Result<&'a L3Info, Packet> {
    parse_into(ctx, l3, offset, out)?;
    // SAFETY: `parse_into` wrote it whole on Ok.
    Ok(unsafe { out.assume_init_ref() })
}

/// Not inlined, and writing through `out` rather than returning the
/// struct: BPF calls return one register, and the caller's stack frame
/// stays small. Writes `out` whole on `Ok`, not at all on `Err`.
#[inline(never)]
fn parse_into(ctx: &impl Frame, l3: L3, offset: usize, out: &mut MaybeUninit<L3Info>) -> Result<(), Packet> {
    match l3 {
        L3::V4 => parse_v4(ctx, offset, out),
        L3::V6 => parse_v6(ctx, offset, out),
    }
}

/// Each parser writes its result in place: a returned struct would take
/// a stack slot of its own per family.
#[inline(always)]
fn parse_v4(ctx: &impl Frame, offset: usize, out: &mut MaybeUninit<L3Info>) -> Result<(), Packet> {
    let h = header::<[u8; IPV4_MIN_HLEN]>(ctx, offset).ok_or(Packet::Malformed)?;
    let h = unsafe { &*h };
    if h[0] >> 4 != 4 {
        return Err(Packet::Malformed);
    }
    let hlen = ((h[0] & 0x0f) as usize) * 4;
    if hlen < IPV4_MIN_HLEN || !has(ctx, offset, hlen) {
        return Err(Packet::Malformed);
    }
    let flags_offset = be16(h[6], h[7]);
    let id = be16(h[4], h[5]) as u32;
    let frag = if flags_offset & IPV4_OFFSET_MASK != 0 {
        Frag::Later(id)
    } else if flags_offset & IPV4_MF != 0 {
        Frag::First(id)
    } else {
        Frag::Whole
    };
    out.write(L3Info {
        protocol: h[9],
        l4_offset: offset + hlen,
        src: mapped([h[12], h[13], h[14], h[15]]),
        dst: mapped([h[16], h[17], h[18], h[19]]),
        frag,
    });
    Ok(())
}

/// `v4_mapped`, built from words with an opaque zero: ten constant zero
/// bytes in place compile to a call to a byte-at-a-time memset, on every
/// IPv4 packet.
#[inline(always)]
fn mapped(a: [u8; 4]) -> [u8; 16] {
    let zero = core::hint::black_box(0u64);
    let mut words = [zero, zero];
    words[1] = u64::from_le_bytes([0, 0, 0xff, 0xff, a[0], a[1], a[2], a[3]]) | zero;
    // SAFETY: two u64s are sixteen bytes, in memory order.
    let bytes: [u8; 16] = unsafe { core::mem::transmute(words) };
    debug_assert!(bytes == v4_mapped(a));
    bytes
}

#[inline(always)]
fn parse_v6(ctx: &impl Frame, offset: usize, out: &mut MaybeUninit<L3Info>) -> Result<(), Packet> {
    let h = header::<[u8; IPV6_HLEN]>(ctx, offset).ok_or(Packet::Malformed)?;
    let h = unsafe { &*h };
    if h[0] >> 4 != 6 {
        return Err(Packet::Malformed);
    }
    let mut next = h[6];
    let mut offset = offset + IPV6_HLEN;
    let mut frag = Frag::Whole;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        match next {
            NEXTHDR_HOP | NEXTHDR_ROUTING | NEXTHDR_DEST => {
                let e = header::<[u8; 2]>(ctx, offset).ok_or(Packet::Malformed)?;
                let e = unsafe { &*e };
                next = e[0];
                // Length in 8-octet units, not counting the first 8.
                offset += (e[1] as usize + 1) * 8;
            }
            NEXTHDR_FRAGMENT => {
                let f = header::<[u8; 8]>(ctx, offset).ok_or(Packet::Malformed)?;
                let f = unsafe { &*f };
                next = f[0];
                offset += 8;
                let offset_flags = be16(f[2], f[3]);
                let id = u32::from_be_bytes([f[4], f[5], f[6], f[7]]);
                if offset_flags >> 3 != 0 {
                    frag = Frag::Later(id);
                    break;
                }
                if offset_flags & 1 != 0 {
                    frag = Frag::First(id);
                }
            }
            _ => break,
        }
    }
    if matches!(frag, Frag::Whole | Frag::First(_)) && is_walked_ext(next) {
        return Err(Packet::TooDeep);
    }
    // Copied into locals that are wholly overwritten, so LLVM drops their
    // zeroing (zeroing the fields in place compiles to memset calls).
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src.copy_from_slice(&h[8..24]);
    dst.copy_from_slice(&h[24..40]);
    out.write(L3Info { protocol: next, l4_offset: offset, src, dst, frag });
    Ok(())
}

#[inline(always)]
fn is_walked_ext(next: u8) -> bool {
    matches!(next, NEXTHDR_HOP | NEXTHDR_ROUTING | NEXTHDR_DEST | NEXTHDR_FRAGMENT)
}
