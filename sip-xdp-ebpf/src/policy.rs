//! Gathers the inputs of the decision (parse results, allowlist and
//! fragment lookups), asks the shared pure function for the verdict, and
//! counts it.

use aya_ebpf::{bindings::BPF_NOEXIST, helpers::bpf_ktime_get_boot_ns, maps::lpm_trie::Key, programs::XdpContext};
use aya_log_ebpf::info;
use core::intrinsics::{atomic_xadd, AtomicOrdering};
use sip_xdp_common::{
    counters::{stats_index, Action},
    maps::{FilterConfig, FragKey, SourceKey, SourceStats},
    sip::SipKind,
    verdict::{decide, Packet, Verdict},
};

use crate::{
    eth::{self, L3},
    ip::{self, Frag, L3Info},
    l4,
    maps::{ALLOW_V4, ALLOW_V6, SIP_CONFIG, SIP_FRAGS, SIP_SOURCES, SIP_STATS},
    packet::frame_len,
    sip,
};

/// A verdict plus what the per-source table needs.
pub struct Outcome {
    pub verdict: Verdict,
    /// Set for traffic to a SIP port: the source whose counters to bump.
    pub source: Option<SourceKey>,
    pub sip: SipKind,
}

impl Outcome {
    #[inline(always)]
    fn of(verdict: Verdict) -> Outcome {
        Outcome { verdict, source: None, sip: SipKind::NotSip }
    }
}

#[inline(always)]
pub fn judge(ctx: &XdpContext) -> Outcome {
    let cfg = match SIP_CONFIG.get(0) {
        Some(cfg) => cfg,
        None => &FilterConfig::EMPTY,
    };
    let (l3, offset) = match eth::parse(ctx) {
        Ok(v) => v,
        Err(packet) => return Outcome::of(decide(packet, cfg)),
    };
    let parsed = match l3 {
        L3::V4 => ip::parse_v4(ctx, offset),
        L3::V6 => ip::parse_v6(ctx, offset),
    };
    let ip = match parsed {
        Ok(ip) => ip,
        Err(packet) => return Outcome::of(decide(packet, cfg)),
    };
    if let Frag::Later(id) = ip.frag {
        let first = unsafe { SIP_FRAGS.get(&frag_key(&ip, id)) }.copied();
        return Outcome::of(decide(Packet::LaterFragment(first), cfg));
    }
    let outcome = judge_l4(ctx, cfg, &ip);
    if let Frag::First(id) = ip.frag {
        // Later fragments carry no ports: they follow this verdict. A failed
        // insert only means they will pass as untracked.
        let _ = SIP_FRAGS.insert(&frag_key(&ip, id), &outcome.verdict.to_frag(), 0);
    }
    outcome
}

#[inline(always)]
fn judge_l4(ctx: &XdpContext, cfg: &FilterConfig, ip: &L3Info) -> Outcome {
    let l4 = match l4::parse(ctx, ip.protocol, ip.l4_offset) {
        Ok(Some(l4)) => l4,
        Ok(None) => return Outcome::of(decide(Packet::NonSip, cfg)),
        Err(packet) => return Outcome::of(decide(packet, cfg)),
    };
    if !cfg.is_sip_port(l4.dport) {
        return Outcome::of(decide(Packet::NonSip, cfg));
    }
    let allowlisted = if ip.is_v4 {
        let addr = [ip.src[12], ip.src[13], ip.src[14], ip.src[15]];
        ALLOW_V4.get(Key::new(32, addr)).is_some()
    } else {
        ALLOW_V6.get(Key::new(128, ip.src)).is_some()
    };
    Outcome {
        verdict: decide(Packet::ToSipPort { allowlisted }, cfg),
        source: Some(ip.src),
        sip: sip::first_line(ctx, l4.payload_offset),
    }
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
    if let Some(source) = outcome.source {
        count_source(&source, outcome, bytes);
    }
    unsafe {
        if core::ptr::read_volatile(&raw const ANNOUNCED) == 0 {
            core::ptr::write_volatile(&raw mut ANNOUNCED, 1);
            info!(ctx, "sip-xdp: first packet seen on ifindex {}", ctx.ingress_ifindex() as u32);
        }
    }
}

#[inline(always)]
fn count_source(source: &SourceKey, outcome: &Outcome, bytes: u64) {
    let now = unsafe { bpf_ktime_get_boot_ns() };
    let register = (outcome.sip == SipKind::Register) as u64;
    let dropped = (!matches!(outcome.verdict.action, Action::Pass)) as u64;
    let stats = match SIP_SOURCES.get_ptr_mut(source) {
        Some(stats) => stats,
        None => {
            let fresh =
                SourceStats { packets: 1, bytes, registers: register, dropped, last_seen_ns: now };
            if SIP_SOURCES.insert(source, &fresh, BPF_NOEXIST as u64).is_ok() {
                return;
            }
            // Another CPU created the entry meanwhile: add to it.
            match SIP_SOURCES.get_ptr_mut(source) {
                Some(stats) => stats,
                None => return,
            }
        }
    };
    // Shared between CPUs: atomic adds keep the counts exact.
    unsafe {
        add(&raw mut (*stats).packets, 1);
        add(&raw mut (*stats).bytes, bytes);
        add(&raw mut (*stats).registers, register);
        add(&raw mut (*stats).dropped, dropped);
        (*stats).last_seen_ns = now;
    }
}

#[inline(always)]
unsafe fn add(counter: *mut u64, value: u64) {
    if value != 0 {
        // The BPF target has no compare-and-swap, so `AtomicU64::fetch_add`
        // is unavailable; the intrinsic lowers to BPF's atomic add.
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(counter, value) };
    }
}
