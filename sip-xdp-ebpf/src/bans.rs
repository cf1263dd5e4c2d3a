//! Writing bans from the kernel: the very next packet from the source is
//! dropped, with no round trip to userspace. Shared by the ingress (rate
//! excess, scanners) and egress (auth failures) paths.

use sip_xdp_common::{
    bans::BanReason,
    counts::COUNT_EVENTS_LOST,
    events::{Event, EventKind},
    kernel_config::FilterConfig,
    limits::{next_ban, should_ban},
    map_types::SourceKey,
    rules::RuleClass,
};

use crate::{
    maps::{count, SIP_BANS, SIP_EVENTS},
    rules::rule_for,
};

/// Bans `addr` (or, in monitor mode, reports that it would have) and tells
/// the controller. Trusted sources are never banned. Not inlined: a ban is
/// rare, and its own stack frame keeps the fast path under the BPF limit.
#[inline(never)]
pub fn ban(addr: &SourceKey, reason: BanReason, cfg: &FilterConfig, now_ns: u64, trusted_checked: bool) {
    if !trusted_checked {
        if let Some(rule) = rule_for(addr) {
            if rule.is(RuleClass::Trusted) {
                return;
            }
        }
    }
    let (kind, offenses, duration_ns) = if cfg.monitor() {
        (EventKind::WouldBan, 0, 0)
    } else {
        let previous = unsafe { SIP_BANS.get(addr) };
        if !should_ban(previous, now_ns) {
            return;
        }
        let entry = next_ban(previous, reason, cfg, now_ns);
        if SIP_BANS.insert(addr, &entry, 0).is_err() {
            return;
        }
        (EventKind::Ban, entry.offenses, entry.expires_ns - entry.banned_at_ns)
    };
    // Written straight into the ring buffer, not built on the stack.
    match SIP_EVENTS.reserve::<Event>(0) {
        Some(mut slot) => {
            let e = slot.as_mut_ptr();
            unsafe {
                Event::fill(e, kind, addr, now_ns);
                (*e).reason = reason as u8;
                (*e).offenses = offenses;
                (*e).duration_ns = duration_ns;
            }
            slot.submit(0);
        }
        None => count(COUNT_EVENTS_LOST),
    }
}
