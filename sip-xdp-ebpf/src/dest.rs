//! The destination policy on INVITEs: the number the message reader read
//! from the Request-URI (unescaped, normalised) is matched against the
//! digit trie of block and allow rules.

use aya_ebpf::maps::lpm_trie::Key;
use sip_xdp_common::{
    counts::COUNT_EVENTS_LOST,
    dialled::{dialled, Dialled},
    events::{Event, EventKind},
    map_types::{SourceKey, SourceStats},
    message::MessageReader,
    reasons::Reason,
    verdict::{judge_destination, DestVerdict},
};

use crate::maps::{add, config, count, SIP_DEST_COUNTS, SIP_DEST_RULES, SIP_EVENTS, SIP_INTL_BLOCKS};

/// Judges the INVITE `message` read; counts the admitted international
/// calls (and their cost) in the source's entry (`stats`, never null).
#[inline(always)]
pub fn check(message: &MessageReader, src: &SourceKey, now_ns: u64, stats: *mut SourceStats) -> DestVerdict {
    let cfg = config();
    let number = dialled(&message.line.user, &cfg.intl);
    let rule = match &number {
        Dialled::International { digits, len } => SIP_DEST_RULES.get(Key::new(*len as u32 * 8, *digits)),
        _ => None,
    };
    let mut verdict = judge_destination(&number, rule, cfg.dest_allow_only != 0);
    if let (DestVerdict::Pass, Dialled::International { .. }) = (verdict, &number) {
        let blocked = unsafe { SIP_INTL_BLOCKS.get(src) }.is_some_and(|until| *until > now_ns);
        if blocked {
            verdict = DestVerdict::AnomalyBlocked;
        } else {
            // Admitted: what the spend-anomaly detector counts.
            let cost = rule.map_or(0, |r| r.cost_milli as u64);
            unsafe {
                add(&raw mut (*stats).intl_invites, 1);
                add(&raw mut (*stats).intl_cost_milli, cost);
            }
        }
    }
    match verdict {
        DestVerdict::Blocked(id) => {
            if let Some(c) = SIP_DEST_COUNTS.get_ptr_mut(id as u32) {
                unsafe { *c += 1 };
            }
            report(src, &number, Reason::DestinationBlocked, now_ns);
        }
        DestVerdict::NotAllowed => report(src, &number, Reason::DestinationNotAllowed, now_ns),
        DestVerdict::AnomalyBlocked => report(src, &number, Reason::InternationalBlocked, now_ns),
        DestVerdict::Unreadable => report(src, &number, Reason::Unreadable, now_ns),
        DestVerdict::Pass => {}
    }
    verdict
}

/// Tells the controller which source dialled what. Not inlined: rare,
/// and its frame stays off the path of every INVITE.
#[inline(never)]
fn report(src: &SourceKey, number: &Dialled, reason: Reason, now_ns: u64) {
    match SIP_EVENTS.reserve::<Event>(0) {
        Some(mut slot) => {
            let e = slot.as_mut_ptr();
            unsafe {
                Event::fill(e, EventKind::DestinationBlocked, src, now_ns);
                (*e).drop_reason = reason as u8;
                if let Dialled::International { digits, len } = number {
                    (*e).number = *digits;
                    (*e).number_len = *len;
                }
            }
            slot.submit(0);
        }
        None => count(COUNT_EVENTS_LOST),
    }
}
