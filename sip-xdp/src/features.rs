//! What the kernel must offer before `sip-xdp run` touches an interface,
//! probed the way libbpf probes (a tiny program or map per feature), so
//! that an old kernel fails with one line naming what is missing and the
//! first Linux version that has it, instead of a verifier log.
//!
//! The list follows the programs: the helpers are the ones the compiled
//! object calls (check with `llvm-objdump -d` when a program starts using a
//! new one), the maps the kinds in `sip-xdp-common`'s registry.

use aya::{
    maps::MapType,
    programs::ProgramType,
    sys::{is_helper_supported, is_map_supported, is_program_supported, BpfHelper},
    util::KernelVersion,
};

/// One thing the programs need from the kernel.
#[derive(Clone, Copy, Debug)]
pub struct Feature {
    /// As an operator would search for it.
    pub name: &'static str,
    /// The first mainline Linux release that has it.
    pub since: &'static str,
    /// Without it `sip-xdp run` cannot start; optional ones change how it
    /// attaches (TCX) and are reported by `doctor`.
    pub required: bool,
    check: Check,
}

#[derive(Clone, Copy, Debug)]
enum Check {
    Program(ProgramType),
    Map(MapType),
    Helper(ProgramType, BpfHelper),
    /// Attach methods have no cheap probe that leaves the system
    /// untouched; the release that introduced them decides.
    Release(u8, u8),
}

use Check::*;

pub const FEATURES: &[Feature] = &[
    need("XDP programs", "4.8", Program(ProgramType::Xdp)),
    need("TC classifier programs", "4.1", Program(ProgramType::SchedClassifier)),
    need("hash maps", "3.19", Map(MapType::Hash)),
    need("array maps", "3.19", Map(MapType::Array)),
    need("per-CPU array maps", "4.6", Map(MapType::PerCpuArray)),
    need("LRU hash maps", "4.10", Map(MapType::LruHash)),
    need("LPM trie maps", "4.11", Map(MapType::LpmTrie)),
    need("ring buffer maps", "5.8", Map(MapType::RingBuf)),
    need("bpf_ringbuf_reserve in XDP programs", "5.8", Helper(ProgramType::Xdp, BpfHelper::BPF_FUNC_ringbuf_reserve)),
    need(
        "bpf_ktime_get_boot_ns in XDP programs",
        "5.8",
        Helper(ProgramType::Xdp, BpfHelper::BPF_FUNC_ktime_get_boot_ns),
    ),
    need("bpf_loop in XDP programs", "5.17", Helper(ProgramType::Xdp, BpfHelper::BPF_FUNC_loop)),
    need(
        "bpf_xdp_get_buff_len in XDP programs",
        "5.18",
        Helper(ProgramType::Xdp, BpfHelper::BPF_FUNC_xdp_get_buff_len),
    ),
    need("bpf_xdp_load_bytes in XDP programs", "5.18", Helper(ProgramType::Xdp, BpfHelper::BPF_FUNC_xdp_load_bytes)),
    need(
        "bpf_skb_load_bytes in TC programs",
        "4.5",
        Helper(ProgramType::SchedClassifier, BpfHelper::BPF_FUNC_skb_load_bytes),
    ),
    need(
        "bpf_ktime_get_boot_ns in TC programs",
        "5.8",
        Helper(ProgramType::SchedClassifier, BpfHelper::BPF_FUNC_ktime_get_boot_ns),
    ),
    need("XDP links (pinned, replaced on restart)", "5.9", Release(5, 9)),
    need("batched map operations", "5.6", Release(5, 6)),
    Feature { name: "TCX links for the egress observer", since: "6.6", required: false, check: Release(6, 6) },
];

const fn need(name: &'static str, since: &'static str, check: Check) -> Feature {
    Feature { name, since, required: true, check }
}

/// A feature and whether this kernel has it (`Err` when the probe itself
/// failed, e.g. for lack of privilege).
pub struct Probed {
    pub feature: Feature,
    pub present: Result<bool, String>,
}

impl Feature {
    /// Probes this feature on the running kernel (`release`: its version).
    pub fn probe(&self, release: Option<KernelVersion>) -> Probed {
        let present = match self.check {
            Program(kind) => is_program_supported(kind).map_err(|e| e.to_string()),
            Map(kind) => is_map_supported(kind).map_err(|e| e.to_string()),
            Helper(kind, helper) => is_helper_supported(kind, helper).map_err(|e| e.to_string()),
            Release(major, minor) => match release {
                Some(running) => Ok(running >= KernelVersion::new(major, minor, 0)),
                None => Err("cannot read the kernel's version".to_string()),
            },
        };
        Probed { feature: *self, present }
    }
}

/// Probes every feature on the running kernel.
pub fn probe_all() -> Vec<Probed> {
    let release = KernelVersion::current().ok();
    FEATURES.iter().map(|f| f.probe(release)).collect()
}

/// The line `run` stops with when a required feature is missing, or
/// `None` if every one is present. A probe that failed is not taken as
/// absence: loading would then report the real error.
pub fn first_missing(probed: &[Probed]) -> Option<String> {
    let missing = probed.iter().find(|p| p.feature.required && matches!(p.present, Ok(false)))?;
    Some(format!(
        "this kernel lacks {}, which sip-xdp needs (Linux {} or later; `sip-xdp doctor` lists what is there)",
        missing.feature.name, missing.feature.since
    ))
}

/// Stops before any interface is touched if the kernel lacks a feature.
pub fn require() -> anyhow::Result<()> {
    match first_missing(&probe_all()) {
        Some(line) => Err(anyhow::anyhow!(line)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probed(present: &[(&str, Result<bool, String>)]) -> Vec<Probed> {
        FEATURES
            .iter()
            .map(|f| Probed {
                feature: *f,
                present: present.iter().find(|(n, _)| *n == f.name).map(|(_, p)| p.clone()).unwrap_or(Ok(true)),
            })
            .collect()
    }

    #[test]
    fn a_kernel_with_everything_passes() {
        assert_eq!(first_missing(&probed(&[])), None);
    }

    #[test]
    fn the_first_missing_required_feature_is_named_with_its_release() {
        // Ubuntu 22.04's 5.15: no bpf_loop, no XDP load-bytes helpers.
        let ubuntu = probed(&[
            ("bpf_loop in XDP programs", Ok(false)),
            ("bpf_xdp_load_bytes in XDP programs", Ok(false)),
            ("TCX links for the egress observer", Ok(false)),
        ]);
        assert_eq!(
            first_missing(&ubuntu).as_deref(),
            Some(
                "this kernel lacks bpf_loop in XDP programs, which sip-xdp needs (Linux 5.17 or later; \
                 `sip-xdp doctor` lists what is there)"
            )
        );
    }

    #[test]
    fn an_optional_feature_or_a_failed_probe_does_not_stop_the_start() {
        // Debian 12's 6.1: no TCX; the egress observer goes in a clsact qdisc.
        assert_eq!(first_missing(&probed(&[("TCX links for the egress observer", Ok(false))])), None);
        assert_eq!(first_missing(&probed(&[("LPM trie maps", Err("EPERM".into()))])), None);
    }

    #[test]
    fn release_checks_compare_major_then_minor() {
        let xdp_links = FEATURES.iter().find(|f| f.since == "5.9").expect("XDP links");
        assert!(matches!(xdp_links.probe(Some(KernelVersion::new(5, 15, 0))).present, Ok(true)));
        assert!(matches!(xdp_links.probe(Some(KernelVersion::new(5, 8, 18))).present, Ok(false)));
        assert!(matches!(xdp_links.probe(Some(KernelVersion::new(6, 1, 0))).present, Ok(true)));
        assert!(xdp_links.probe(None).present.is_err());
    }
}
