//! Ingress, message by message: for sources the filter judges by what they
//! send (limited classes, and classes under the destination policy), every
//! SIP message of a packet is read, not only the one the packet starts
//! with. One reading per message (`MessageReader`: leading CRLFs skipped,
//! start line, Request-URI's number, headers) feeds everything judged of
//! it: its count by method, the rate limits, the memory of requests for
//! the accounting of their responses, the scanner fingerprints and the
//! destination policy. Over TCP the next message starts where
//! `Content-Length` says this one ends, and a message the segment cuts is
//! judged once the stream brings the rest (`stream`). The walk over them
//! is `policy::judge_messages`.

use aya_ebpf::{bindings::xdp_md, helpers::bpf_ktime_get_boot_ns, programs::XdpContext};
use sip_xdp_common::{
    accounting::{answered, awaits_response, AuthState, PendingKey, PendingRequest},
    bans::BanReason,
    counts::MethodCount,
    events::UnreadableWhy,
    limits::{charge, count_excess, RateOutcome},
    map_types::{source_key, SourceKey, SourceStats},
    sip::SipKind,
    verdict::{DestVerdict, Source},
};

use crate::{
    bans::ban,
    dest,
    maps::{add, config, count, on_stack, SIP_AUTH, SIP_PENDING, SIP_PENDING_BUF, SIP_PROFILES, SIP_READER},
    reader::{self, INGRESS_SLOT},
    scanner,
};

/// Messages read from one packet at most: a TCP segment can hold several
/// (pipelining); a UDP datagram holds one.
pub const MAX_MESSAGES: usize = 32;

/// How the caller sees a source it sends through [`read_message`].
#[derive(Clone, Copy)]
pub struct Judged {
    /// Charged to the rate limits of this profile.
    pub limited: Option<u8>,
    /// Its INVITEs go to the destination policy.
    pub policy: bool,
    /// Trusted (never banned, never remembered for accounting).
    pub trusted: bool,
    /// It has no entry of its own in the per-source table (the insert
    /// failed): the entry handed along is per-CPU scratch, and nothing is
    /// charged to it (a possibly legitimate client is let through rather
    /// than dropped on a shared budget).
    pub untracked: bool,
}

impl Judged {
    #[inline(always)]
    pub fn pack(self) -> u64 {
        let limited = match self.limited {
            Some(p) => 0x100 | p as u64,
            None => 0,
        };
        limited | (self.policy as u64) << 16 | (self.trusted as u64) << 17 | (self.untracked as u64) << 18
    }

    #[inline(always)]
    pub fn unpack(flags: u64) -> Judged {
        Judged {
            limited: (flags & 0x100 != 0).then_some(flags as u8),
            policy: flags & (1 << 16) != 0,
            trusted: flags & (1 << 17) != 0,
            untracked: flags & (1 << 18) != 0,
        }
    }

    /// What it sends is judged: a message it cannot be read in order, or
    /// at all, is refused rather than let through unjudged. (A source let
    /// through by `default_action = "pass"` is only read, for accounting.)
    #[inline(always)]
    pub fn fail_closed(self) -> bool {
        self.limited.is_some() || self.policy
    }
}

// Why a message or packet is refused, as one number (the walk's state, a
// global function's return): a code in the low byte, with the block
// rule's id `<< 16` or the reason it is unreadable `<< 8`.
const OK: u64 = 0;
const REGISTER_RATE: u64 = 1;
const INVITE_RATE: u64 = 2;
const REQUEST_RATE: u64 = 3;
const SCANNER: u64 = 4;
const NOT_ALLOWED: u64 = 5;
const ANOMALY: u64 = 6;
const BLOCKED: u64 = 7;
const UNREADABLE: u64 = 0x0e;
const OUT_OF_ORDER: u64 = 0x0f;

/// The refusal of a message that cannot be read, and why.
#[inline(always)]
pub const fn unreadable(why: UnreadableWhy) -> u64 {
    UNREADABLE | (why as u64) << 8
}

/// The refusal of a segment out of its stream's order.
pub const REFUSED_OUT_OF_ORDER: u64 = OUT_OF_ORDER;

/// A refusal as one number (never 0, which means "none").
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
        Source::Destination(DestVerdict::Unreadable) => unreadable(UnreadableWhy::MalformedEscape),
        Source::OutOfOrder => OUT_OF_ORDER,
        _ => UNREADABLE,
    }
}

/// The refusal [`pack_refusal`] packed (anything unknown is unreadable).
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
        OUT_OF_ORDER => Source::OutOfOrder,
        _ => Source::Unreadable,
    }
}

/// Why a refusal is unreadable, if it is.
#[inline(always)]
pub fn unreadable_why(v: u64) -> Option<UnreadableWhy> {
    if v & 0xff == UNREADABLE {
        UnreadableWhy::from_u8((v >> 8) as u8)
    } else {
        None
    }
}

// What reading one message says (`sip_xdp_message`'s return): `code | kind
// << 8 | value << 32`, the code one of the refusals above or these.
/// No message there (past the end, or only CR/LF).
const NOTHING: u64 = 0x08;
/// A message the segment's end cuts inside its headers: `value` is how
/// many bytes of it have been read; it is judged when the rest comes.
const CUT: u64 = 0x09;

/// What reading one message says.
#[derive(Clone, Copy)]
pub struct Read {
    /// Why it is refused (a packed refusal), or 0.
    pub refusal: u64,
    pub found: bool,
    /// Cut by the segment's end: `value` bytes of it read so far.
    pub cut: bool,
    pub kind: SipKind,
    /// Where it ends, from where its bytes in this packet start (0: the
    /// end cannot be told); for a cut message, its bytes read so far.
    pub value: u32,
}

impl Read {
    #[inline(always)]
    fn unpack(v: u64) -> Read {
        let code = v & 0xff;
        let kind = match (v >> 8) as u8 {
            1 => SipKind::Register,
            2 => SipKind::Invite,
            3 => SipKind::Options,
            4 => SipKind::OtherRequest,
            5 => SipKind::Response,
            _ => SipKind::NotSip,
        };
        let refused = code != OK && code != NOTHING && code != CUT;
        Read {
            refusal: if refused { v & 0xffff } else { 0 },
            found: code != NOTHING,
            cut: code == CUT,
            kind,
            value: (v >> 32) as u32,
        }
    }
}

#[inline(always)]
fn pack(code: u64, kind: SipKind, value: u32) -> u64 {
    code | (kind as u64) << 8 | (value as u64) << 32
}

/// `sip_xdp_message` flags beside the judged source's: the message began
/// in an earlier segment (its reading is in the reader's slot), and the
/// packet is a TCP segment (whose end may cut a message).
const RESUMED: u64 = 1 << 20;
const TCP: u64 = 1 << 21;

/// How a message is to be read.
#[derive(Clone, Copy)]
pub struct Place {
    /// Where its bytes in the packet start.
    pub at: u32,
    /// Bytes of it read in earlier segments, if it began there.
    pub resumed: Option<u32>,
    pub tcp: bool,
}

/// Reads, counts and charges the message at `place`, from `src`, and
/// remembers it for the accounting of its response. Its reading stays in
/// the reader's slot for [`check_request`].
#[inline(always)]
pub fn read_message(ctx: &XdpContext, place: Place, src: &SourceKey, stats: *mut SourceStats, judged: Judged) -> Read {
    let mut flags = judged.pack() | if place.tcp { TCP } else { 0 };
    if let Some(before) = place.resumed {
        flags |= RESUMED | (before as u64) << 32;
    }
    Read::unpack(sip_xdp_message(ctx.ctx, place.at as u64, src, stats, flags))
}

/// A global BPF function: verified once, on its own, however many
/// messages its caller walks. Counts the message by method (and the
/// source's REGISTERs) once it is whole. `stats` is never null (an
/// untracked source gets scratch space): the one null check is the first
/// thing done, so no older verifier has to follow it through the code. The scanner and destination
/// checks are the caller's (calling them from here would stack their
/// frames on this one's).
#[no_mangle]
#[inline(never)]
pub extern "C" fn sip_xdp_message(
    md: *mut xdp_md,
    at: u64,
    src: *const SourceKey,
    stats: *mut SourceStats,
    flags: u64,
) -> u64 {
    if md.is_null() || src.is_null() || stats.is_null() {
        return NOTHING;
    }
    let src = &on_stack(unsafe { &*src });
    let judged = Judged::unpack(flags);
    // Offsets inside a packet fit 16 bits.
    let at = at as u32 & 0xffff;
    let resumed = flags & RESUMED != 0;
    let before = (flags >> 32) as u32 & 0xffff;
    let Some(mut message) = reader::open(&md, at, INGRESS_SLOT, resumed, before) else {
        // A message resumed with no room left: its headers are too long.
        return if resumed { unreadable(UnreadableWhy::HeadersTooLong) } else { NOTHING };
    };
    message.read_headers();
    let r = message.reader();
    if !r.found() {
        return NOTHING;
    }
    let kind = r.kind();
    if !r.complete() && !message.window_full() && flags & TCP != 0 {
        // The segment ends inside the headers: the rest is in the next.
        return pack(CUT, kind, message.read_so_far());
    }
    // Where the next message starts, from this packet's bytes of this one.
    let end = r.end().map_or(0, |end| end.saturating_sub(message.before()));
    let why = if message.window_full() && !r.complete() {
        Some(UnreadableWhy::HeadersTooLong)
    } else if r.complete() && r.end().is_none() {
        Some(UnreadableWhy::BadContentLength)
    } else {
        None
    };
    if !kind.is_request() {
        // A response or something else: nothing to charge.
        return match why {
            Some(why) if flags & TCP != 0 => pack(unreadable(why), kind, 0),
            _ => pack(OK, kind, end),
        };
    }
    if let Some(method) = MethodCount::of(kind) {
        count(method as u32);
    }
    if kind == SipKind::Register {
        unsafe { add(&raw mut (*stats).registers, 1) };
    }
    let cfg = config();
    let now_ns = unsafe { bpf_ktime_get_boot_ns() };
    let key = source_key(src, cfg.ipv6_prefix);
    if let (Some(profile), false) = (judged.limited, judged.untracked) {
        match limit(&key, stats, profile, kind, now_ns) {
            RateOutcome::Within => {}
            RateOutcome::RegisterExceeded => return pack(REGISTER_RATE, kind, 0),
            RateOutcome::InviteExceeded => return pack(INVITE_RATE, kind, 0),
            RateOutcome::RequestExceeded => return pack(REQUEST_RATE, kind, 0),
        }
    }
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
    match why {
        // A datagram is one message, however it ends; in a stream, what
        // follows cannot be found.
        Some(why) if flags & TCP != 0 => pack(unreadable(why), kind, 0),
        _ => pack(OK, kind, end),
    }
}

/// The scanner fingerprints and, for an INVITE of a class under it, the
/// destination policy, on the request just read (its reading is in the
/// reader's slot).
#[inline(always)]
pub fn check_request(key: &SourceKey, stats: *mut SourceStats, judged: Judged, kind: SipKind) -> u64 {
    let flags = judged.pack() | ((kind == SipKind::Invite) as u64) << 24;
    sip_xdp_checks(key, stats, flags)
}

/// A global BPF function: the scanner search and the destination policy,
/// verified once (their callers walk a packet's messages in a loop).
/// Returns a packed refusal, or 0.
#[no_mangle]
#[inline(never)]
pub extern "C" fn sip_xdp_checks(key: *const SourceKey, stats: *mut SourceStats, flags: u64) -> u64 {
    if key.is_null() || stats.is_null() {
        return OK;
    }
    let (key, judged) = (&on_stack(unsafe { &*key }), Judged::unpack(flags));
    let Some(message) = SIP_READER.get_ptr(INGRESS_SLOT) else { return OK };
    let message = unsafe { &*message };
    let cfg = config();
    let now_ns = unsafe { bpf_ktime_get_boot_ns() };
    if !judged.untracked && scanner::announced_by(INGRESS_SLOT, stats) && !judged.trusted {
        // Dropped, and banned at once: the very next packet too.
        ban(key, BanReason::Scanner, cfg, now_ns, true);
        return SCANNER;
    }
    if flags & 1 << 24 != 0 && judged.policy {
        let verdict = dest::check(message, key, now_ns, stats);
        if verdict != DestVerdict::Pass {
            return pack_refusal(Source::Destination(verdict));
        }
    }
    OK
}

/// Charges one request of `kind` to the source's buckets; bans it when its
/// excess is sustained.
#[inline(always)]
fn limit(key: &SourceKey, stats: *mut SourceStats, profile: u8, kind: SipKind, now_ns: u64) -> RateOutcome {
    let Some(profile) = SIP_PROFILES.get(profile as u32) else { return RateOutcome::Within };
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
