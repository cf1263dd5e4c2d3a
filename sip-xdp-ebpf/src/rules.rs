//! The rule lookup: the class of the longest matching prefix, with the
//! rule index answering first for addresses no rule covers.

use aya_ebpf::maps::lpm_trie::Key;
use sip_xdp_common::{
    allow_index::slot,
    map_types::{is_v4_mapped, SourceKey},
    rules::RuleValue,
};

use crate::maps::{SIP_BAN_PREFIXES_V4, SIP_BAN_PREFIXES_V6, SIP_RULES_V4, SIP_RULES_V6, SIP_RULE_INDEX};

/// The rule (longest matching prefix) for an address, IPv4-mapped or not.
/// The index answers first for addresses no rule covers.
#[inline(always)]
pub fn rule_for(addr: &SourceKey) -> Option<&'static RuleValue> {
    if !may_have_rule(addr) {
        return None;
    }
    if is_v4_mapped(addr) {
        SIP_RULES_V4.get(Key::new(32, [addr[12], addr[13], addr[14], addr[15]]))
    } else {
        SIP_RULES_V6.get(Key::new(128, *addr))
    }
}

/// The longest banned prefix covering `addr`, if any.
#[inline(always)]
pub fn prefix_ban_for(addr: &SourceKey) -> Option<&'static RuleValue> {
    if is_v4_mapped(addr) {
        SIP_BAN_PREFIXES_V4.get(Key::new(32, [addr[12], addr[13], addr[14], addr[15]]))
    } else {
        SIP_BAN_PREFIXES_V6.get(Key::new(128, *addr))
    }
}

/// False when the rule index says no rule covers the address, so the
/// trie need not be asked. An unreadable index word asks the trie.
#[inline(always)]
pub fn may_have_rule(addr: &SourceKey) -> bool {
    let (word, bit) = slot(addr);
    match SIP_RULE_INDEX.get(word) {
        Some(bits) => bits & bit != 0,
        None => true,
    }
}
