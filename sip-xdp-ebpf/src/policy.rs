//! Ingress: gathers the inputs of the decision (parse results, ban, rule,
//! rate limits, fragment lookups), asks the shared pure function for the
//! verdict, and counts it at the single exit.

use core::mem::MaybeUninit;

use aya_ebpf::{bindings::BPF_NOEXIST, helpers::bpf_ktime_get_boot_ns, programs::XdpContext};
use aya_log_ebpf::info;
use sip_xdp_common::{
    bans::BanReason,
    counts::MethodCount,
    kernel_config::{dest_applies_profile, FilterConfig, DEST_APPLIES_TRUSTED},
    limits::{charge, count_excess, RateOutcome},
    map_types::{FragKey, SourceKey, SourceStats},
    reasons::{stats_index, Action, Reason},
    rules::RuleClass,
    sip::SipKind,
    verdict::{decide, DestVerdict, Packet, Source, Verdict},
};

use crate::{
    bans::ban,
    dest, eth,
    ip::{self, Frag, L3Info},
    l4,
    maps::{add, config, count, SIP_BANS, SIP_FRAGS, SIP_PROFILES, SIP_SOURCES, SIP_STATS},
    packet::frame_len,
    rules::{may_have_rule, rule_for},
    scanner, sip,
};

/// A verdict plus what the per-source table needs.
pub struct Outcome {
    pub verdict: Verdict,
    /// For traffic to a SIP port: the source's entry in the per-source table.
    pub source: Option<*mut SourceStats>,
    pub sip: SipKind,
    pub now_ns: u64,
}

impl Outcome {
    #[inline(always)]
    fn of(verdict: Verdict) -> Outcome {
        Outcome { verdict, source: None, sip: SipKind::NotSip, now_ns: 0 }
    }
}

#[inline(always)]
pub fn judge(ctx: &XdpContext) -> Outcome {
    let cfg = config();
    let (l3, offset) = match eth::parse(ctx) {
        Ok(v) => v,
        Err(packet) => return Outcome::of(decide(packet, cfg)),
    };
    let mut ip = MaybeUninit::<L3Info>::uninit();
    let ip = match ip::parse(ctx, l3, offset, &mut ip) {
        Ok(ip) => ip,
        Err(packet) => return Outcome::of(decide(packet, cfg)),
    };
    if let Frag::Later(id) = ip.frag {
        let first = unsafe { SIP_FRAGS.get(&frag_key(ip, id)) }.copied();
        return Outcome::of(decide(Packet::LaterFragment(first), cfg));
    }
    let mut outcome = Outcome::of(Verdict::new(Action::Pass, Reason::NonSip));
    judge_l4(ctx, ip, &mut outcome);
    if let Frag::First(id) = ip.frag {
        // Later fragments carry no ports: they follow this verdict. A failed
        // insert only means they will pass as untracked.
        let _ = SIP_FRAGS.insert(&frag_key(ip, id), &outcome.verdict.to_frag(), 0);
    }
    outcome
}

/// Everything past the IP header, into `out`. Not inlined (and so not
/// returning a struct, which BPF calls cannot): its own stack frame keeps
/// each frame under the BPF limit.
#[inline(never)]
fn judge_l4(ctx: &XdpContext, ip: &L3Info, out: &mut Outcome) {
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
    let kind = sip::first_line(ctx, l4.payload_offset);
    let stats = source_entry(&ip.src, now_ns);
    let (mut source, class_bit) = judge_source(cfg, &ip.src, stats, kind, now_ns);
    // The deeper checks run only on what would be let through (as the
    // verdict so far says): a dropped packet needs no more work, and a flood
    // of denied sources costs none.
    let admitted = decide(Packet::ToSipPort(source), cfg).action == Action::Pass;
    if admitted && kind.is_request() {
        if let Some(stats) = stats {
            if scanner::announced_by(ctx, l4.payload_offset, stats) && source != Source::Trusted {
                // Dropped, and banned at once: the very next packet too.
                ban(&ip.src, BanReason::Scanner, cfg, now_ns, true);
                source = Source::Scanner;
            }
        }
    }
    if source != Source::Scanner && admitted && kind == SipKind::Invite && cfg.dest_applies & class_bit != 0 {
        match dest::check(ctx, l4.payload_offset, &ip.src, now_ns, stats.unwrap_or(core::ptr::null_mut())) {
            DestVerdict::Pass => {}
            refused => source = Source::Destination(refused),
        }
    }
    *out = Outcome { verdict: decide(Packet::ToSipPort(source), cfg), source: stats, sip: kind, now_ns };
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

/// Ban first (a banned source costs one lookup), then the rule, then the
/// rate limits of a limited source. Also returns the class's bit in
/// `dest_applies` (0 for classes the destination policy never sees).
#[inline(always)]
fn judge_source(
    cfg: &FilterConfig,
    src: &SourceKey,
    stats: Option<*mut SourceStats>,
    kind: SipKind,
    now_ns: u64,
) -> (Source, u32) {
    if let Some(entry) = SIP_BANS.get_ptr_mut(src) {
        if unsafe { (*entry).in_force(now_ns) } {
            unsafe { add(&raw mut (*entry).dropped, 1) };
            return (Source::Banned, 0);
        }
    }
    let (class, profile, matched) = match rule_for(src) {
        Some(rule) => (rule.class, rule.profile, true),
        None => (cfg.default_class, cfg.default_profile, false),
    };
    match RuleClass::from_u8(class) {
        Some(RuleClass::Trusted) => (Source::Trusted, DEST_APPLIES_TRUSTED),
        Some(RuleClass::Limited) => {
            (limit(src, stats.unwrap_or(core::ptr::null_mut()), profile, kind, now_ns), dest_applies_profile(profile))
        }
        // Prefix bans: until the controller's sweep removes them (an ended
        // one cannot fall back here to the shorter rule it shadows).
        Some(RuleClass::Banned) => (Source::Banned, 0),
        _ if matched => (Source::Denied, 0),
        _ => (Source::Unmatched, 0),
    }
}

/// Not inlined, to keep the fast path's stack frame under the BPF limit
/// (and a call takes at most five arguments, hence `config()` inside).
#[inline(never)]
fn limit(src: &SourceKey, stats: *mut SourceStats, profile: u8, kind: SipKind, now_ns: u64) -> Source {
    let (false, Some(profile)) = (stats.is_null(), SIP_PROFILES.get(profile as u32)) else {
        // No state to charge (table insert failed): let it through rather
        // than drop a possibly legitimate client.
        return Source::Limited(RateOutcome::Within);
    };
    let cfg = config();
    let stats = unsafe { &mut *stats };
    let outcome = charge(stats, profile, kind, now_ns);
    if outcome != RateOutcome::Within && count_excess(stats, cfg, now_ns) {
        ban(src, BanReason::Rate, cfg, now_ns, true);
    }
    Source::Limited(outcome)
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
    if let Some(stats) = outcome.source {
        let register = (outcome.sip == SipKind::Register) as u64;
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
