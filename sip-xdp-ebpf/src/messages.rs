//! Ingress, message by message: for sources the filter judges by what they
//! send (limited classes, and classes under the destination policy), every
//! SIP message of a packet is read, not only the one the packet starts
//! with: leading CRLFs are skipped, each request is counted, charged to the
//! rate limits and remembered (Call-ID, CSeq, credentials) so the egress
//! program can tell a challenge from a failure. Over TCP the next message
//! starts where `Content-Length` says this one ends. The walk over them is
//! `policy::judge_messages`.

use aya_ebpf::{bindings::xdp_md, helpers::bpf_ktime_get_boot_ns, programs::XdpContext};
use sip_xdp_common::{
    accounting::{answered, awaits_response, AuthState, PendingKey, PendingRequest},
    bans::BanReason,
    counts::MethodCount,
    limits::{charge, count_excess, RateOutcome},
    map_types::{source_key, SourceKey, SourceStats},
    sip::SipKind,
    verdict::{DestVerdict, Source},
};

use crate::{
    bans::ban,
    dest,
    maps::{add, config, count, SIP_AUTH, SIP_PENDING, SIP_PENDING_BUF, SIP_PROFILES},
    reader::{self, INGRESS_SLOT},
    scanner,
};

/// Messages read from one packet at most: a TCP segment can hold several
/// (pipelining); a UDP datagram holds one.
pub const MAX_MESSAGES: usize = 32;

/// How the caller sees a source it sends through [`judge_message`].
#[derive(Clone, Copy)]
pub struct Judged {
    /// Charged to the rate limits of this profile.
    pub limited: Option<u8>,
    /// Its INVITEs go to the destination policy.
    pub policy: bool,
    /// Trusted (never banned, never remembered for accounting).
    pub trusted: bool,
}

impl Judged {
    #[inline(always)]
    pub fn pack(self) -> u64 {
        let limited = match self.limited {
            Some(p) => 0x100 | p as u64,
            None => 0,
        };
        limited | (self.policy as u64) << 16 | (self.trusted as u64) << 17
    }

    #[inline(always)]
    pub fn unpack(flags: u64) -> Judged {
        Judged {
            limited: (flags & 0x100 != 0).then_some(flags as u8),
            policy: flags & (1 << 16) != 0,
            trusted: flags & (1 << 17) != 0,
        }
    }
}

// What reading one message says, packed into the global function's
// return value: `code | kind << 8 | start << 16 | end << 32`.
const OK: u64 = 0;
const REGISTER_RATE: u64 = 1;
const INVITE_RATE: u64 = 2;
const REQUEST_RATE: u64 = 3;
const SCANNER: u64 = 4;
const NOT_ALLOWED: u64 = 5;
const ANOMALY: u64 = 6;
/// With the block rule's id `<< 16`.
const BLOCKED: u64 = 7;
/// No message there (past the end, or only CR/LF).
const NOTHING: u64 = 8;
/// Or-ed into the code: the message's end cannot be told although the
/// packet goes on (a length that lies, headers longer than the window).
const UNREADABLE: u64 = 0x10;

#[inline(always)]
fn pack(code: u64, kind: SipKind, start: u32, end: Option<u32>) -> u64 {
    code | (kind as u64) << 8 | ((start & 0xffff) as u64) << 16 | (end.unwrap_or(0) as u64) << 32
}

/// What one message was.
#[derive(Clone, Copy)]
pub struct Read {
    pub found: bool,
    /// Refused by the rate limits.
    pub refusal: Option<Source>,
    pub kind: SipKind,
    /// Where its start line is, from where it was read.
    pub start: u32,
    /// Where it ends, from where it was read (0: unknown).
    pub end: u32,
    /// Its end cannot be told although the packet goes on.
    pub unreadable: bool,
}

impl Read {
    #[inline(always)]
    fn unpack(v: u64) -> Read {
        let refusal = match v & 0x0f {
            REGISTER_RATE => Some(Source::Limited(RateOutcome::RegisterExceeded)),
            INVITE_RATE => Some(Source::Limited(RateOutcome::InviteExceeded)),
            REQUEST_RATE => Some(Source::Limited(RateOutcome::RequestExceeded)),
            _ => None,
        };
        let kind = match (v >> 8) as u8 {
            1 => SipKind::Register,
            2 => SipKind::Invite,
            3 => SipKind::Options,
            4 => SipKind::OtherRequest,
            5 => SipKind::Response,
            _ => SipKind::NotSip,
        };
        Read {
            found: v & 0x0f != NOTHING,
            refusal,
            kind,
            start: (v >> 16) as u32 & 0xffff,
            end: (v >> 32) as u32,
            unreadable: v & UNREADABLE != 0,
        }
    }
}

/// A refusal as one number, for the walk's state (never 0, which it uses
/// for "none"; anything unknown unpacks as unreadable).
#[inline(always)]
pub fn pack_refusal(source: Source) -> u64 {
    match source {
        Source::Limited(RateOutcome::RegisterExceeded) => REGISTER_RATE,
        Source::Limited(RateOutcome::InviteExceeded) => INVITE_RATE,
        Source::Limited(RateOutcome::RequestExceeded) => REQUEST_RATE,
        Source::Scanner => SCANNER,
        Source::Destination(DestVerdict::NotAllowed) => NOT_ALLOWED,
        Source::Destination(DestVerdict::AnomalyBlocked) => ANOMALY,
        Source::Destination(DestVerdict::Blocked(id)) => BLOCKED | (id as u64) << 16,
        _ => NOTHING,
    }
}

/// The refusal [`pack_refusal`] packed.
#[inline(always)]
pub fn unpack_refusal(v: u64) -> Source {
    match v & 0xff {
        REGISTER_RATE => Source::Limited(RateOutcome::RegisterExceeded),
        INVITE_RATE => Source::Limited(RateOutcome::InviteExceeded),
        REQUEST_RATE => Source::Limited(RateOutcome::RequestExceeded),
        SCANNER => Source::Scanner,
        NOT_ALLOWED => Source::Destination(DestVerdict::NotAllowed),
        ANOMALY => Source::Destination(DestVerdict::AnomalyBlocked),
        BLOCKED => Source::Destination(DestVerdict::Blocked((v >> 16) as u16)),
        _ => Source::Unreadable,
    }
}

/// Reads, counts and charges the message at `at` bytes into the packet,
/// from `src`, and remembers it for the accounting of its response.
#[inline(always)]
pub fn read_message(
    ctx: &XdpContext,
    at: u32,
    src: &SourceKey,
    stats: Option<*mut SourceStats>,
    judged: Judged,
) -> Read {
    let stats = stats.unwrap_or(core::ptr::null_mut());
    Read::unpack(sip_xdp_message(ctx.ctx, at as u64, src, stats, judged.pack()))
}

/// A global BPF function: verified once, on its own, however many
/// messages its caller walks. Counts the message by method (and the
/// source's REGISTERs) as it reads it. The scanner and destination checks
/// are the caller's (calling them from here would stack their frames on
/// this one's).
#[no_mangle]
#[inline(never)]
pub extern "C" fn sip_xdp_message(
    md: *mut xdp_md,
    at: u64,
    src: *const SourceKey,
    stats: *mut SourceStats,
    flags: u64,
) -> u64 {
    if md.is_null() || src.is_null() {
        return NOTHING;
    }
    let src = unsafe { &*src };
    let judged = Judged::unpack(flags);
    // Offsets inside a packet fit 16 bits.
    let at = at as u32 & 0xffff;
    let Some(mut message) = reader::open(&md, at, INGRESS_SLOT) else { return NOTHING };
    if !message.reader().found() {
        return NOTHING;
    }
    let kind = message.kind(&md);
    let start = message.reader().start;
    if !kind.is_request() {
        // A response or something else: nothing to charge; its end still
        // says where the next message starts.
        message.read_headers();
        return pack(OK | unreadable(&message), kind, start, message.reader().end());
    }
    if let Some(method) = MethodCount::of(kind) {
        count(method as u32);
    }
    if kind == SipKind::Register && !stats.is_null() {
        unsafe { add(&raw mut (*stats).registers, 1) };
    }
    let cfg = config();
    let now_ns = unsafe { bpf_ktime_get_boot_ns() };
    let key = source_key(src, cfg.ipv6_prefix);
    if let Some(profile) = judged.limited {
        match limit(&key, stats, profile, kind, now_ns) {
            RateOutcome::Within => {}
            RateOutcome::RegisterExceeded => return pack(REGISTER_RATE, kind, start, None),
            RateOutcome::InviteExceeded => return pack(INVITE_RATE, kind, start, None),
            RateOutcome::RequestExceeded => return pack(REQUEST_RATE, kind, start, None),
        }
    }
    message.read_headers();
    let r = message.reader();
    if !judged.trusted && awaits_response(r) {
        if let Some(entry) = SIP_PENDING_BUF.get_ptr_mut(INGRESS_SLOT) {
            let entry = unsafe { &mut *entry };
            entry.key = PendingKey::of(src, r);
            entry.request = PendingRequest { at_ns: now_ns, credentials: r.credentials, _pad: [0; 7] };
            let _ = SIP_PENDING.insert(&entry.key, &entry.request, 0);
        }
        if r.credentials != 0 {
            if let Some(state) = SIP_AUTH.get_ptr_mut(&key) {
                answered(unsafe { &mut *state });
            }
        }
    }
    pack(OK | unreadable(&message), kind, start, r.end())
}

/// [`UNREADABLE`], if the message's end cannot be told although the packet
/// goes on past what was read.
#[inline(always)]
fn unreadable(message: &reader::Message) -> u64 {
    let r = message.reader();
    if r.end().is_none() && (r.complete() || message.window_full()) {
        UNREADABLE
    } else {
        0
    }
}

/// The scanner fingerprints and, for an INVITE of a class under it, the
/// destination policy, on the request whose start line is at `start`.
#[inline(always)]
pub fn check_request(
    ctx: &XdpContext,
    start: u32,
    key: &SourceKey,
    stats: Option<*mut SourceStats>,
    judged: Judged,
    kind: SipKind,
) -> Option<Source> {
    let stats = stats.unwrap_or(core::ptr::null_mut());
    let flags = judged.pack() | ((kind == SipKind::Invite) as u64) << 24;
    match sip_xdp_checks(ctx.ctx, start as u64, key, stats, flags) {
        SCANNER => Some(Source::Scanner),
        NOT_ALLOWED => Some(Source::Destination(DestVerdict::NotAllowed)),
        ANOMALY => Some(Source::Destination(DestVerdict::AnomalyBlocked)),
        v if v & 0xff == BLOCKED => Some(Source::Destination(DestVerdict::Blocked((v >> 16) as u16))),
        _ => None,
    }
}

/// A global BPF function: the scanner search and the destination policy,
/// verified once (their callers walk a packet's messages in a loop).
#[no_mangle]
#[inline(never)]
pub extern "C" fn sip_xdp_checks(
    md: *mut xdp_md,
    start: u64,
    key: *const SourceKey,
    stats: *mut SourceStats,
    flags: u64,
) -> u64 {
    if md.is_null() || key.is_null() {
        return OK;
    }
    let (ctx, key, judged) = (XdpContext::new(md), unsafe { &*key }, Judged::unpack(flags));
    let start = start as usize & 0xffff;
    let cfg = config();
    let now_ns = unsafe { bpf_ktime_get_boot_ns() };
    if !stats.is_null() && scanner::announced_by(&ctx, start, stats) && !judged.trusted {
        // Dropped, and banned at once: the very next packet too.
        ban(key, BanReason::Scanner, cfg, now_ns, true);
        return SCANNER;
    }
    if flags & 1 << 24 != 0 && judged.policy {
        match dest::check(&ctx, start, key, now_ns, stats) {
            DestVerdict::Pass => {}
            DestVerdict::NotAllowed => return NOT_ALLOWED,
            DestVerdict::AnomalyBlocked => return ANOMALY,
            DestVerdict::Blocked(id) => return BLOCKED | (id as u64) << 16,
        }
    }
    OK
}

/// Charges one request of `kind` to the source's buckets; bans it when its
/// excess is sustained.
#[inline(always)]
fn limit(key: &SourceKey, stats: *mut SourceStats, profile: u8, kind: SipKind, now_ns: u64) -> RateOutcome {
    let (false, Some(profile)) = (stats.is_null(), SIP_PROFILES.get(profile as u32)) else {
        // No state to charge (table insert failed): let it through rather
        // than drop a possibly legitimate client.
        return RateOutcome::Within;
    };
    let cfg = config();
    let stats = unsafe { &mut *stats };
    let outcome = charge(stats, profile, kind, now_ns);
    if outcome != RateOutcome::Within && count_excess(stats, cfg, now_ns) {
        ban(key, BanReason::Rate, cfg, now_ns, true);
    }
    outcome
}

/// The auth state of a source, created empty if new.
#[inline(always)]
pub fn auth_state(key: &SourceKey) -> Option<*mut AuthState> {
    if let Some(state) = SIP_AUTH.get_ptr_mut(key) {
        return Some(state);
    }
    let _ = SIP_AUTH.insert(key, &AuthState::default(), 0);
    SIP_AUTH.get_ptr_mut(key)
}
