//! Writing bans from the kernel: the very next packet from the source is
//! dropped, with no round trip to userspace. Shared by the ingress (rate
//! excess) and egress (auth failures) paths.

use sip_xdp_common::{
    allow_index::slot,
    limits::{next_ban, should_ban},
    maps::{
        is_v4_mapped, AllowValue, Event, FilterConfig, SourceKey, CLASS_TRUSTED, COUNT_EVENTS_LOST, EVENT_BAN, EVENT_WOULD_BAN,
        MODE_MONITOR,
    },
};
use aya_ebpf::maps::lpm_trie::Key;

use crate::maps::{count, ALLOW_INDEX, ALLOW_V4, ALLOW_V6, SIP_BANS, SIP_EVENTS};

/// The rule (longest matching prefix) for an address, IPv4-mapped or not.
/// The index answers first for addresses no rule covers.
#[inline(always)]
pub fn rule_for(addr: &SourceKey) -> Option<&'static AllowValue> {
    if !may_have_rule(addr) {
        return None;
    }
    if is_v4_mapped(addr) {
        ALLOW_V4.get(Key::new(32, [addr[12], addr[13], addr[14], addr[15]]))
    } else {
        ALLOW_V6.get(Key::new(128, *addr))
    }
}

/// False when the allowlist index says no rule covers the address, so the
/// trie need not be asked. An unreadable index word asks the trie.
#[inline(always)]
pub fn may_have_rule(addr: &SourceKey) -> bool {
    let (word, bit) = slot(addr);
    match ALLOW_INDEX.get(word) {
        Some(bits) => bits & bit != 0,
        None => true,
    }
}

/// Bans `addr` (or, in monitor mode, reports that it would have) and tells
/// the controller. Trusted sources are never banned. Not inlined: a ban is
/// rare, and its own stack frame keeps the fast path under the BPF limit.
#[inline(never)]
pub fn ban(addr: &SourceKey, reason: u8, cfg: &FilterConfig, now_ns: u64, trusted_checked: bool) {
    if !trusted_checked {
        if let Some(rule) = rule_for(addr) {
            if rule.class == CLASS_TRUSTED {
                return;
            }
        }
    }
    let (kind, offenses, duration_ns) = if cfg.mode == MODE_MONITOR {
        (EVENT_WOULD_BAN, 0, 0)
    } else {
        let previous = unsafe { SIP_BANS.get(addr) };
        if !should_ban(previous, now_ns) {
            return;
        }
        let entry = next_ban(previous, reason, cfg, now_ns);
        if SIP_BANS.insert(addr, &entry, 0).is_err() {
            return;
        }
        (EVENT_BAN, entry.offenses, entry.expires_ns - entry.banned_at_ns)
    };
    // Written straight into the ring buffer, not built on the stack.
    match SIP_EVENTS.reserve::<Event>(0) {
        Some(mut slot) => {
            slot.write(Event {
                kind,
                reason,
                _pad: [0; 2],
                offenses,
                addr: *addr,
                duration_ns,
                at_ns: now_ns,
                number: [0; 20],
                number_len: 0,
                drop_reason: 0,
                _pad2: [0; 2],
            });
            slot.submit(0);
        }
        None => count(COUNT_EVENTS_LOST),
    }
}
