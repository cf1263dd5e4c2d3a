//! Egress (TC): watches the protected server's SIP responses, every one of
//! a segment, wherever the skb keeps its bytes. Each response is linked to
//! the request it answers (Call-ID and CSeq, remembered on ingress) and
//! counted as the accounting says (`sip_xdp_common::accounting`): a
//! challenge to a request without credentials is no failure; a rejection
//! of credentials is; a success clears the source's strikes. Its TCP
//! segments also tell the ingress program which handshakes the server
//! answered and which bytes of each client's stream it holds (`stream`).
//! Never drops or changes a packet.

use aya_ebpf::{bindings::__sk_buff, helpers::bpf_ktime_get_boot_ns, programs::TcContext};
use sip_xdp_common::{
    accounting::{account, judge_response, AuthOutcome, PendingKey},
    counts::{ResponseCount, COUNT_AUTH_BASE},
    map_types::{source_key, SourceKey},
    rules::RuleClass,
    stream::StreamKey,
};

use crate::{
    bans::ban,
    eth,
    ip::{self, Frag, L3Info},
    l4::{self, IPPROTO_TCP},
    maps::{config, count, on_stack, SIP_PENDING, SIP_PENDING_BUF},
    messages::{auth_state, MAX_MESSAGES},
    reader::{self, EGRESS_SLOT},
    rules::rule_for,
    stream::sip_xdp_stream_egress,
};
use core::mem::MaybeUninit;

#[inline(always)]
pub fn observe(ctx: &TcContext) {
    let cfg = config();
    let Ok((l3, offset)) = eth::parse(ctx) else { return };
    let mut ip = MaybeUninit::<L3Info>::uninit();
    let Ok(ip) = ip::parse(ctx, l3, offset, &mut ip) else { return };
    if matches!(ip.frag, Frag::Later(_)) {
        return;
    }
    let Ok(Some(l4)) = l4::parse(ctx, ip.protocol, ip.l4_offset) else { return };
    let tls = ip.protocol == IPPROTO_TCP && cfg.is_tls_port(l4.sport);
    if !cfg.is_sip_port(l4.sport) || tls {
        // Not SIP; or TLS, opaque: nothing to read, no stream followed.
        return;
    }
    if ip.protocol == IPPROTO_TCP {
        // What the server accepted of the client's stream.
        let key = StreamKey { client: ip.dst, server: ip.src, client_port: l4.dport, server_port: l4.sport };
        sip_xdp_stream_egress(&key, l4.seq as u64, l4.ack as u64, l4.tcp_flags as u64);
    }
    // Trusted peers are never banned: their responses are only counted.
    let accounted = !rule_for(&ip.dst).is_some_and(|r| r.is(RuleClass::Trusted));
    let mut at = l4.payload_offset as u32;
    let mut i = 0;
    while i < MAX_MESSAGES {
        let end = sip_xdp_response(ctx.skb.skb, at as u64, &ip.dst, accounted as u64);
        // A datagram holds one message; a segment's next one starts where
        // this one ends.
        if end == 0 || ip.protocol != IPPROTO_TCP {
            break;
        }
        at += end as u32;
        i += 1;
    }
}

/// Reads the message at `at` and, for a response to `peer` that is
/// `accounted`, counts it. Returns where the message ends from `at` (0:
/// no message, or its end cannot be told). A global BPF function: verified
/// once, however many messages its caller walks.
#[no_mangle]
#[inline(never)]
pub extern "C" fn sip_xdp_response(skb: *mut __sk_buff, at: u64, peer: *const SourceKey, accounted: u64) -> u64 {
    if skb.is_null() || peer.is_null() {
        return 0;
    }
    let peer = &on_stack(unsafe { &*peer });
    let Some(mut message) = reader::open(&skb, at as u32 & 0xffff, EGRESS_SLOT, false, 0) else { return 0 };
    message.read_headers();
    let code = message.status();
    let r = message.reader();
    if let Some(code) = code {
        count(ResponseCount::of(code) as u32);
        if accounted != 0 && code >= 180 {
            let Some(entry) = SIP_PENDING_BUF.get_ptr_mut(EGRESS_SLOT) else { return 0 };
            let key: &PendingKey = unsafe {
                (*entry).key = PendingKey::of(peer, r);
                &(*entry).key
            };
            let request = unsafe { SIP_PENDING.get(key) }.copied();
            let outcome = judge_response(code, r.cseq_method, request.as_ref());
            if code >= 200 && request.is_some() {
                let _ = SIP_PENDING.remove(key);
            }
            if outcome != AuthOutcome::Nothing {
                count(COUNT_AUTH_BASE + outcome as u32);
                charge(peer, outcome);
            }
        }
    }
    r.end().unwrap_or(0) as u64
}

/// Counts an outcome against the peer's source; bans it past a threshold.
#[inline(always)]
fn charge(peer: &SourceKey, outcome: AuthOutcome) {
    let cfg = config();
    let now_ns = unsafe { bpf_ktime_get_boot_ns() };
    let key = source_key(peer, cfg.ipv6_prefix);
    let Some(state) = auth_state(&key) else { return };
    if let Some(reason) = account(unsafe { &mut *state }, outcome, cfg, now_ns) {
        ban(&key, reason, cfg, now_ns, true);
    }
}
