//! Ingress: gathers the inputs of the decision (parse results, ban, rule,
//! rate limits, fragment lookups), asks the shared pure function for the
//! verdict, and counts it at the single exit.

use core::mem::MaybeUninit;

use aya_ebpf::{
    bindings::{xdp_md, BPF_NOEXIST},
    helpers::{bpf_ktime_get_boot_ns, generated::bpf_loop},
    programs::XdpContext,
};
use aya_log_ebpf::info;
use core::ffi::c_void;
use sip_xdp_common::{
    counts::{MethodCount, COUNT_EVENTS_LOST},
    events::{Event, EventKind, UnreadableWhy},
    kernel_config::{dest_applies_profile, FilterConfig, DEST_APPLIES_TRUSTED},
    limits::RateOutcome,
    map_types::{is_v4_mapped, source_key, FragKey, FragVerdict, SourceKey, SourceStats, WalkState},
    reasons::{stats_index, Action, Reason},
    rules::RuleClass,
    sip::SipKind,
    verdict::{decide, Packet, Source, Verdict},
};

use crate::{
    eth,
    ip::{self, Frag, L3Info},
    l4::{self, L4Info, IPPROTO_TCP},
    maps::{
        add, config, count, on_stack, SIP_BANS, SIP_EVENTS, SIP_FRAGS, SIP_SOURCES, SIP_SPARE_STATS, SIP_STATS,
        SIP_WALK,
    },
    messages::{
        check_request, read_message, unpack_refusal, unreadable, unreadable_why, Judged, Place, MAX_MESSAGES,
        REFUSED_OUT_OF_ORDER,
    },
    packet::frame_len,
    reader::{self, INGRESS_SLOT},
    rules::{may_have_rule, prefix_ban_for, rule_for},
    scanner, sip,
    stream::{
        sip_xdp_stream_close, sip_xdp_stream_open, KEEP, OPEN_BODY, OPEN_FRAGMENTED, OPEN_OUT_OF_ORDER, OPEN_READ,
        OPEN_UNKNOWN,
    },
};

/// A verdict plus what the per-source table needs.
pub struct Outcome {
    pub verdict: Verdict,
    /// For traffic to a SIP port: the source's entry in the per-source
    /// table (null: none).
    pub source: *mut SourceStats,
    /// The request to count by method at the exit (messages judged one by
    /// one are counted as they are read).
    pub sip: SipKind,
    /// REGISTERs the packet held.
    pub registers: u64,
    pub now_ns: u64,
}

impl Outcome {
    #[inline(always)]
    fn of(verdict: Verdict) -> Outcome {
        // An opaque zero: LLVM merges adjacent constant-zero stores into a
        // call to a byte-at-a-time memset subprogram, which every packet
        // would pay for.
        let zero = core::hint::black_box(0u64);
        Outcome { verdict, source: zero as *mut SourceStats, sip: SipKind::NotSip, registers: zero, now_ns: zero }
    }
}

/// The verdict of a packet. Everything here is inlined into the program:
/// the flood path pays no call but the IP parser's. The stack is 512
/// bytes for the whole chain of calls: what the messages' walk calls
/// keeps its frames small for it.
#[inline(always)]
pub fn judge(ctx: &XdpContext) -> Outcome {
    let mut outcome = Outcome::of(Verdict::new(Action::Pass, Reason::NonSip));
    let mut walk = Walk::NONE;
    judge_ip(ctx, &mut outcome, &mut walk);
    if let Some(judged) = walk.judged {
        let flags = judged.pack() | (pack_source(walk.admitted) as u64) << 32;
        let refusal = sip_xdp_walk(ctx.ctx, walk.stats, flags, outcome.now_ns);
        if refusal != NO_REFUSAL {
            outcome.verdict = decide(Packet::ToSipPort(unpack_refusal(refusal)), config());
        }
    }
    outcome
}

/// Parses the headers and judges the source, into `out`; fills `walk` (and
/// the per-CPU walk state) if the packet's messages are to be read.
#[inline(always)]
fn judge_ip(ctx: &XdpContext, out: &mut Outcome, walk: &mut Walk) {
    let cfg = config();
    let (l3, offset) = match eth::parse(ctx) {
        Ok(v) => v,
        Err(packet) => return *out = Outcome::of(decide(packet, cfg)),
    };
    let mut ip = MaybeUninit::<L3Info>::uninit();
    let ip = match ip::parse(ctx, l3, offset, &mut ip) {
        Ok(ip) => ip,
        Err(packet) => return *out = Outcome::of(decide(packet, cfg)),
    };
    if let Frag::Later(id) = ip.frag {
        return *out = Outcome::of(decide(Packet::LaterFragment(first_fragment_verdict(ip, id)), cfg));
    }
    judge_l4(ctx, ip, out, walk);
    if let Frag::First(id) = ip.frag {
        first_fragment(ip, id, walk.judged.is_some(), &out.verdict);
    }
}

/// The verdict a later fragment's first fragment got, if it was seen. Not
/// inlined (fragments are rare): the key's room stays off the entry
/// program's frame.
#[inline(never)]
fn first_fragment_verdict(ip: &L3Info, id: u32) -> Option<FragVerdict> {
    unsafe { SIP_FRAGS.get(&frag_key(ip, id)) }.copied()
}

/// A first fragment: its verdict is remembered for the later ones, at
/// once, or (if its messages are to be walked) once they have been judged.
#[inline(never)]
fn first_fragment(ip: &L3Info, id: u32, walked: bool, verdict: &Verdict) {
    match (walked, SIP_WALK.get_ptr_mut(0)) {
        (true, Some(state)) => unsafe {
            (*state).first_fragment = 1;
            (*state).frag = frag_key(ip, id);
        },
        _ => remember_fragment(&frag_key(ip, id), verdict),
    }
}

/// Later fragments carry no ports: they follow their first fragment's
/// verdict. A failed insert only means they will pass as untracked.
#[inline(always)]
fn remember_fragment(key: &FragKey, verdict: &Verdict) {
    let _ = SIP_FRAGS.insert(key, &verdict.to_frag(), 0);
}

/// Everything past the IP header, into `out` (and `walk`). Inlined: the
/// flood path ends here, and a call costs it.
#[inline(always)]
fn judge_l4(ctx: &XdpContext, ip: &L3Info, out: &mut Outcome, walk: &mut Walk) {
    let cfg = config();
    let l4 = match l4::parse(ctx, ip.protocol, ip.l4_offset) {
        Ok(Some(l4)) => l4,
        Ok(None) => return *out = Outcome::of(decide(Packet::NonSip, cfg)),
        Err(packet) => return *out = Outcome::of(decide(packet, cfg)),
    };
    if !cfg.is_sip_port(l4.dport) {
        return *out = Outcome::of(decide(Packet::NonSip, cfg));
    }
    if let Some(refused) = refuse_uncovered(cfg, &ip.src) {
        return *out = Outcome::of(refused);
    }
    let now_ns = unsafe { bpf_ktime_get_boot_ns() };
    let mut key: SourceKey = ip.src;
    let tcp = ip.protocol == IPPROTO_TCP;
    // TLS runs over TCP (a datagram to the same port is plain SIP).
    let at = l4.payload_offset as u64 | (tcp as u64) << 16 | ((tcp && cfg.is_tls_port(l4.dport)) as u64) << 17;
    let admitted = sip_xdp_admit(ctx.ctx, at, &ip.src, &mut key, now_ns);
    let (source, judged) = unpack_source(admitted);
    let stats = source_entry(&key, now_ns);
    let kind = unpack_kind(admitted);
    *out = Outcome {
        verdict: decide(Packet::ToSipPort(source), cfg),
        source: stats.unwrap_or(core::ptr::null_mut()),
        sip: kind,
        registers: (kind == SipKind::Register) as u64,
        now_ns,
    };
    if admitted & WALK != 0 {
        if ip.protocol == IPPROTO_TCP {
            remember_segment(ip, &l4);
        }
        *walk = Walk { stats: stats.unwrap_or(core::ptr::null_mut()), judged, admitted: source };
    }
}

/// Where a TCP segment whose messages are to be walked sits in its
/// connection, into the walk state. Not inlined: its frame would weigh on
/// the entry program's, which the message walk stacks its own on.
#[inline(never)]
fn remember_segment(ip: &L3Info, l4: &L4Info) {
    let Some(state) = SIP_WALK.get_ptr_mut(0) else { return };
    let state = unsafe { &mut *state };
    state.stream.client = ip.src;
    state.stream.server = ip.dst;
    state.stream.client_port = l4.sport;
    state.stream.server_port = l4.dport;
    state.seq = l4.seq;
    state.ack = l4.ack;
    state.tcp_flags = l4.tcp_flags;
}

/// What walking a packet's messages needs to know that cannot live in
/// the per-CPU walk state (`WalkState`): the pointer to the source's
/// entry, and scalars the verifier should see exactly.
struct Walk {
    /// The source's entry in the per-source table (null: none).
    stats: *mut SourceStats,
    /// None: no walk (the source is refused, or judged by its first line).
    judged: Option<Judged>,
    /// The source's verdict while no message refuses the packet.
    admitted: Source,
}

impl Walk {
    const NONE: Walk = Walk { stats: core::ptr::null_mut(), judged: None, admitted: Source::Unmatched };
}

/// Every message of the packet, each read, counted and charged (by the
/// global function `sip_xdp_message`), then searched for scanner
/// fingerprints and put to the destination policy (`sip_xdp_checks`); the
/// first refused one refuses the packet (over TCP the stream's next bytes
/// then come again, as the sender retransmits them). A TCP segment is
/// read where its stream says (`stream`): a message its end cuts is read
/// on in the next one, and the stream moves on only if the segment is let
/// through. What the filter cannot read, or cannot read in order, it
/// refuses from a source it judges by what it sends, rather than let it
/// through unjudged. Returns the refusal (packed), or [`NO_REFUSAL`].
///
/// A global BPF function: verified once, on its own, so the entry program
/// that calls it stays small enough for the oldest verifiers to follow
/// every packet shape it parses. `flags` is the judged source's
/// (`Judged::pack`) with its admitted verdict (`pack_source`) `<< 32`;
/// `stats` its per-source entry, or null if it has none.
#[no_mangle]
#[inline(never)]
pub extern "C" fn sip_xdp_walk(md: *mut xdp_md, stats: *mut SourceStats, flags: u64, now_ns: u64) -> u64 {
    let (Some(state), false) = (SIP_WALK.get_ptr(0), md.is_null()) else { return NO_REFUSAL };
    let state = unsafe { &*state };
    let mut judged = Judged::unpack(flags);
    let admitted = unpack_source(flags >> 32 & 0xff).0;
    // An untracked source (its entry could not be made) reads into
    // scratch space and is charged nothing.
    let stats = if stats.is_null() {
        judged.untracked = true;
        match SIP_SPARE_STATS.get_ptr_mut(0) {
            Some(spare) => spare,
            None => return NO_REFUSAL,
        }
    } else {
        stats
    };
    let refusal = walk_messages(md, stats, judged, state, admitted, now_ns);
    report_unreadable(refusal, state, now_ns);
    if state.first_fragment != 0 {
        let source = if refusal == NO_REFUSAL { admitted } else { unpack_refusal(refusal) };
        remember_fragment(&state.frag, &decide(Packet::ToSipPort(source), config()));
    }
    refusal
}

#[inline(always)]
fn walk_messages(
    md: *mut xdp_md,
    stats: *mut SourceStats,
    judged: Judged,
    state: &WalkState,
    admitted: Source,
    now_ns: u64,
) -> u64 {
    let mut w = WalkCtx {
        md,
        stats,
        tail: 0,
        judged: judged.pack() as u32,
        at: state.payload_offset,
        end: state.payload_offset + state.payload_len,
        resumed: 0,
        refusal: NO_REFUSAL as u32,
    };
    let tcp = state.tcp != 0;
    if tcp {
        let opened = sip_xdp_stream_open(judged.fail_closed() as u64, now_ns);
        match opened & 0xff {
            OPEN_READ => {}
            OPEN_BODY => {
                // All body: nothing to read; the stream moves on with it.
                if decide(Packet::ToSipPort(admitted), config()).action.passes() {
                    sip_xdp_stream_close(KEEP, now_ns);
                }
                return NO_REFUSAL;
            }
            OPEN_OUT_OF_ORDER => return REFUSED_OUT_OF_ORDER,
            OPEN_UNKNOWN => return unreadable(UnreadableWhy::UnknownConnection),
            OPEN_FRAGMENTED => return unreadable(UnreadableWhy::FragmentedSegment),
            // Let through unread (nothing new to the server).
            _ => return NO_REFUSAL,
        }
        w.at += (opened >> 16) as u32 & 0xffff;
        if opened >> 8 & 1 != 0 {
            w.resumed = RESUMED | (opened >> 32) as u32;
        }
    }
    // One more step than messages read: the last finds more and refuses.
    unsafe { bpf_loop(MAX_MESSAGES as u32 + 1, walk_step as *mut c_void, (&raw mut w).cast(), 0) };
    let refusal = w.refusal as u64;
    let source = if refusal == NO_REFUSAL { admitted } else { unpack_refusal(refusal) };
    if tcp && decide(Packet::ToSipPort(source), config()).action.passes() {
        sip_xdp_stream_close(w.tail, now_ns);
    }
    refusal
}

/// The walk's state for its `bpf_loop` steps (the verifier checks one
/// step, not one per message).
/// Kept small: it lives on the frame of `sip_xdp_walk`, under which the
/// readers stack theirs, and the oldest verifiers round every frame up.
#[repr(C)]
struct WalkCtx {
    md: *mut xdp_md,
    stats: *mut SourceStats,
    /// How the segment leaves its stream (`read << 32 | skip`): the bytes
    /// read of a message its end cuts, or the body bytes still to come.
    tail: u64,
    /// The judged source (`Judged::pack`, which fits 32 bits).
    judged: u32,
    at: u32,
    end: u32,
    /// [`RESUMED`] with the bytes read in earlier segments of the first
    /// message, if it began in one; 0 otherwise.
    resumed: u32,
    /// Why the packet is refused (a packed refusal, which fits 32 bits),
    /// or [`NO_REFUSAL`].
    refusal: u32,
}

const NO_REFUSAL: u64 = 0;
const RESUMED: u32 = 1 << 31;

/// `bpf_loop` step: the message at `at`. Returns 1 to end the walk.
extern "C" fn walk_step(index: u64, w: *mut c_void) -> i64 {
    let w = unsafe { &mut *w.cast::<WalkCtx>() };
    let Some(state) = SIP_WALK.get_ptr(0) else { return 1 };
    if w.md.is_null() {
        return 1;
    }
    if index >= MAX_MESSAGES as u64 {
        // More messages than one packet is read for.
        w.refusal = unreadable(UnreadableWhy::TooManyMessages) as u32;
        return 1;
    }
    let ctx = XdpContext::new(w.md);
    let state = unsafe { &*state };
    let judged = Judged::unpack(w.judged as u64);
    let stats = w.stats;
    let resumed = (index == 0 && w.resumed & RESUMED != 0).then_some(w.resumed & !RESUMED);
    let place = Place { at: w.at, resumed, tcp: state.tcp != 0 };
    let m = read_message(&ctx, place, &state.src, stats, judged);
    if m.refusal != 0 {
        w.refusal = m.refusal as u32;
        return 1;
    }
    if !m.found {
        // Nothing but CR/LF to the end: a message boundary.
        return 1;
    }
    if m.cut {
        // Judged when the rest of it comes.
        w.tail = (m.value as u64) << 32;
        return 1;
    }
    if m.kind.is_request() {
        let refusal = check_request(&state.key, stats, judged, m.kind);
        if refusal != 0 {
            w.refusal = refusal as u32;
            return 1;
        }
    }
    // A datagram holds one message; a segment's next one starts where this
    // one ends.
    if state.tcp == 0 || m.value == 0 {
        return 1;
    }
    let next = w.at + m.value;
    if next >= w.end {
        // Its body goes on into the next segment.
        w.tail = (next - w.end) as u64;
        return 1;
    }
    w.at = next;
    0
}

/// The last time an unreadable message was reported: at most one event
/// per [`UNREADABLE_EVENT_GAP_NS`], so a flood of them is counted in full
/// but does not flood the controller's log.
#[no_mangle]
static mut LAST_UNREADABLE_EVENT_NS: u64 = 0;
const UNREADABLE_EVENT_GAP_NS: u64 = 10_000_000;

/// Tells the controller a message was refused as unreadable, and why.
#[inline(always)]
fn report_unreadable(refusal: u64, state: &WalkState, now_ns: u64) {
    let Some(why) = unreadable_why(refusal) else { return };
    // A plain global written racily by CPUs: a lost update only means one
    // event more or less.
    let last = unsafe { core::ptr::read_volatile(&raw const LAST_UNREADABLE_EVENT_NS) };
    if now_ns.wrapping_sub(last) < UNREADABLE_EVENT_GAP_NS {
        return;
    }
    unsafe { core::ptr::write_volatile(&raw mut LAST_UNREADABLE_EVENT_NS, now_ns) };
    match SIP_EVENTS.reserve::<Event>(0) {
        Some(mut slot) => {
            let e = slot.as_mut_ptr();
            unsafe {
                Event::fill(e, EventKind::Unreadable, &state.key, now_ns);
                (*e).reason = why as u8;
                (*e).drop_reason = Reason::Unreadable as u8;
            }
            slot.submit(0);
        }
        None => count(COUNT_EVENTS_LOST),
    }
}

/// The flood path: a source no rule covers, when such sources are dropped,
/// is refused after one index load — no clock, no per-source entry, no
/// ban or trie lookup (its drop does not depend on them). In monitor mode
/// nothing is dropped, and the full path keeps the per-source view of who
/// would be.
#[inline(always)]
fn refuse_uncovered(cfg: &FilterConfig, src: &SourceKey) -> Option<Verdict> {
    if cfg.default_class != RuleClass::Deny as u8 {
        return None;
    }
    let verdict = decide(Packet::ToSipPort(Source::Unmatched), cfg);
    if verdict.action != Action::Drop || may_have_rule(src) {
        return None;
    }
    Some(verdict)
}

/// Everything about an admitted packet that does not need the parsed
/// headers' pointers, in a global BPF function: verified once, not once per
/// packet shape its caller sees (IPv6 extension headers make many). Ban
/// first (a banned source costs one lookup), then the rule: the verdict of
/// a refused source, or how to judge what an admitted one sends. A trusted
/// source outside the destination policy is judged by its first line
/// (counted, its User-Agent searched: only counted, trusted sources are
/// never banned); any other admitted source gets its messages walked, and
/// the walk's state is written. Writes the key the source's state is kept
/// under to `key`. `at` is the payload's offset, with bit 16 set for TCP
/// and bit 17 for a TLS port.
#[no_mangle]
#[inline(never)]
pub extern "C" fn sip_xdp_admit(
    md: *mut xdp_md,
    at: u64,
    src: *const SourceKey,
    key: *mut SourceKey,
    now_ns: u64,
) -> u64 {
    if md.is_null() || src.is_null() || key.is_null() {
        return SOURCE_UNMATCHED;
    }
    let cfg = config();
    let (src, out) = (on_stack(unsafe { &*src }), unsafe { &mut *key });
    let (src, key) = (&src, &source_key(&src, cfg.ipv6_prefix));
    *out = *key;
    let (source, judged) = judge_source(cfg, src, key, now_ns);
    let ctx = XdpContext::new(md);
    let payload_offset = at as usize & 0xffff;
    // Read in place: the offset bounded well under the verifier's 64 KiB
    // packet limit (a payload starting further in is not SIP).
    let first_line = || {
        if payload_offset > MAX_DIRECT_OFFSET {
            SipKind::NotSip
        } else {
            sip::first_line(&ctx, payload_offset & MAX_DIRECT_OFFSET)
        }
    };
    let Some(judged) = judged else {
        // Refused: counted by its first line, dropped ones included.
        return source | (first_line() as u64) << 8;
    };
    let packed = source | JUDGED | judged.pack() << 32;
    if at >> 17 & 1 != 0 {
        // TLS: opaque. Judged by its rules and bans alone; nothing to read.
        return packed;
    }
    if judged.limited.is_none() && !judged.policy && judged.trusted {
        let kind = first_line();
        if kind.is_request() {
            search_trusted(&md, payload_offset as u32, key, now_ns);
        }
        return packed | (kind as u64) << 8;
    }
    let Some(state) = SIP_WALK.get_ptr_mut(0) else { return packed };
    let state = unsafe { &mut *state };
    state.src = *src;
    state.key = *key;
    state.first_fragment = 0;
    state.payload_offset = payload_offset as u32;
    state.payload_len = (frame_len(&ctx) as u32).saturating_sub(payload_offset as u32);
    state.tcp = (at >> 16 & 1) as u8;
    packed | WALK
}

/// A trusted source's first requests are read and searched for scanner
/// fingerprints too: only counted (a trusted source is never banned), so
/// a compromised trunk shows on the dashboard.
#[inline(always)]
fn search_trusted(md: &*mut xdp_md, at: u32, key: &SourceKey, now_ns: u64) {
    let Some(stats) = source_entry(key, now_ns) else { return };
    if !scanner::wants(unsafe { &*stats }) {
        return;
    }
    if let Some(mut message) = reader::open(md, at, INGRESS_SLOT, false, 0) {
        message.read_headers();
        scanner::announced_by(INGRESS_SLOT, stats);
    }
}

/// Ban first, then the rule, then banned prefixes (over any rule but a
/// trusted one): the source's code, and how to judge it if it is admitted.
#[inline(always)]
fn judge_source(cfg: &FilterConfig, src: &SourceKey, key: &SourceKey, now_ns: u64) -> (u64, Option<Judged>) {
    if let Some(entry) = SIP_BANS.get_ptr_mut(key) {
        // A ban of an IPv6 prefix never covers a trusted address inside it.
        let prefixed = cfg.ipv6_prefix < 128 && !is_v4_mapped(src);
        let trusted = || prefixed && rule_for(src).is_some_and(|r| r.is(RuleClass::Trusted));
        if unsafe { (*entry).in_force(now_ns) } && !trusted() {
            unsafe { add(&raw mut (*entry).dropped, 1) };
            return (SOURCE_BANNED, None);
        }
    }
    let (class, profile, matched) = match rule_for(src) {
        Some(rule) => (rule.class, rule.profile, true),
        None => (cfg.default_class, cfg.default_profile, false),
    };
    let in_banned_prefix = || prefix_ban_for(src).is_some_and(|ban| ban.ban_in_force(now_ns));
    if cfg.prefix_bans != 0 && class != RuleClass::Trusted as u8 && in_banned_prefix() {
        return (SOURCE_BANNED, None);
    }
    match RuleClass::from_u8(class) {
        Some(RuleClass::Trusted) => {
            let policy = cfg.dest_applies & DEST_APPLIES_TRUSTED != 0;
            (SOURCE_TRUSTED, Some(Judged { limited: None, policy, trusted: true, untracked: false }))
        }
        Some(RuleClass::Limited) => {
            let policy = cfg.dest_applies & dest_applies_profile(profile) != 0;
            (SOURCE_LIMITED, Some(Judged { limited: Some(profile), policy, trusted: false, untracked: false }))
        }
        // A prefix ban an older version left in the rule tries (moved to
        // the prefix-ban tries at the next start).
        Some(RuleClass::Banned) => (SOURCE_BANNED, None),
        _ if matched => (SOURCE_DENIED, None),
        // No rule, let through by `default_action = "pass"`: read (so its
        // authentication is accounted), not charged.
        _ if decide(Packet::ToSipPort(Source::Unmatched), cfg).action == Action::Pass => {
            (SOURCE_UNMATCHED, Some(Judged { limited: None, policy: false, trusted: false, untracked: false }))
        }
        _ => (SOURCE_UNMATCHED, None),
    }
}

/// The furthest payload offset read in place (a power of two, less one).
const MAX_DIRECT_OFFSET: usize = 0x3fff;

// What `sip_xdp_admit` says: `source | kind << 8 | JUDGED | WALK | judged
// << 32`.
const SOURCE_BANNED: u64 = 0;
const SOURCE_TRUSTED: u64 = 1;
const SOURCE_LIMITED: u64 = 2;
const SOURCE_DENIED: u64 = 3;
const SOURCE_UNMATCHED: u64 = 4;
/// The source is admitted, judged as the upper half says.
const JUDGED: u64 = 1 << 16;
/// Its messages are to be walked.
const WALK: u64 = 1 << 17;

/// An admitted source's code, as `sip_xdp_admit` packs it.
#[inline(always)]
fn pack_source(source: Source) -> u8 {
    match source {
        Source::Trusted => SOURCE_TRUSTED as u8,
        Source::Limited(_) => SOURCE_LIMITED as u8,
        Source::Denied => SOURCE_DENIED as u8,
        Source::Banned => SOURCE_BANNED as u8,
        _ => SOURCE_UNMATCHED as u8,
    }
}

#[inline(always)]
fn unpack_source(v: u64) -> (Source, Option<Judged>) {
    let source = match v & 0xff {
        SOURCE_BANNED => Source::Banned,
        SOURCE_TRUSTED => Source::Trusted,
        SOURCE_LIMITED => Source::Limited(RateOutcome::Within),
        SOURCE_DENIED => Source::Denied,
        _ => Source::Unmatched,
    };
    (source, (v & JUDGED != 0).then(|| Judged::unpack(v >> 32)))
}

/// The first line's kind, for a source judged by it.
#[inline(always)]
fn unpack_kind(v: u64) -> SipKind {
    match (v >> 8) as u8 {
        1 => SipKind::Register,
        2 => SipKind::Invite,
        3 => SipKind::Options,
        4 => SipKind::OtherRequest,
        5 => SipKind::Response,
        _ => SipKind::NotSip,
    }
}

/// A new source's entry, from read-only data rather than the stack.
static EMPTY_SOURCE: SourceStats = SourceStats::EMPTY;

/// The source's per-source entry, created empty if new. Not inlined: the
/// fresh entry is large for the BPF stack.
#[inline(never)]
fn source_entry(src: &SourceKey, now_ns: u64) -> Option<*mut SourceStats> {
    if let Some(stats) = SIP_SOURCES.get_ptr_mut(src) {
        return Some(stats);
    }
    // BPF_NOEXIST: if another CPU created it meanwhile, use theirs. The
    // empty entry comes from read-only data, not the stack.
    let _ = SIP_SOURCES.insert(src, &EMPTY_SOURCE, BPF_NOEXIST as u64);
    let stats = SIP_SOURCES.get_ptr_mut(src)?;
    unsafe { (*stats).last_seen_ns = now_ns };
    Some(stats)
}

#[inline(always)]
fn frag_key(ip: &L3Info, id: u32) -> FragKey {
    FragKey { src: ip.src, dst: ip.dst, id, protocol: ip.protocol, _pad: [0; 3] }
}

/// Set once the program has logged that it sees traffic; a plain global, so
/// the check costs one load and no helper call.
#[no_mangle]
static mut ANNOUNCED: u8 = 0;

/// The single exit: global counters, then the per-source table.
#[inline(always)]
pub fn account(ctx: &XdpContext, outcome: &Outcome) {
    let bytes = frame_len(ctx);
    let index = stats_index(outcome.verdict.action, outcome.verdict.reason);
    if let Some(counter) = SIP_STATS.get_ptr_mut(index) {
        // Per-CPU slot: no other CPU writes it.
        unsafe {
            (*counter).packets += 1;
            (*counter).bytes += bytes;
        }
    }
    if let Some(method) = MethodCount::of(outcome.sip) {
        count(method as u32);
    }
    if !outcome.source.is_null() {
        let stats = outcome.source;
        let register = outcome.registers;
        let dropped = (outcome.verdict.action != Action::Pass) as u64;
        // Shared between CPUs: atomic adds keep the counts exact.
        unsafe {
            add(&raw mut (*stats).packets, 1);
            add(&raw mut (*stats).bytes, bytes);
            add(&raw mut (*stats).registers, register);
            add(&raw mut (*stats).dropped, dropped);
            (*stats).last_seen_ns = outcome.now_ns;
        }
    }
    if unsafe { core::ptr::read_volatile(&raw const ANNOUNCED) } == 0 {
        announce(ctx);
    }
}

/// Logs (through aya-log) that traffic is flowing. Not inlined: the log
/// record is built on this frame's stack, off the fast path.
#[inline(never)]
fn announce(ctx: &XdpContext) {
    unsafe { core::ptr::write_volatile(&raw mut ANNOUNCED, 1) };
    info!(ctx, "sip-xdp: first packet seen on ifindex {}", ctx.ingress_ifindex() as u32);
}
