//! Rules: what the rule tries hold for each prefix. The class of the
//! longest matching prefix decides how a source is treated.

use crate::{kernel_config::NS_PER_SEC, pod::impl_pod};

crate::closed_set! {
    /// The class a rule gives the sources it covers.
    pub enum RuleClass {
        /// Trunks and providers: never rate-limited, never banned.
        Trusted = 0 => "trusted",
        /// Dropped.
        Deny = 1 => "deny",
        /// Rate-limited by the rule's profile; banned on sustained excess.
        Limited = 2 => "limited",
        /// A banned prefix (in the prefix-ban tries; rule tries of older
        /// versions held them too): dropped until it expires.
        Banned = 3 => "banned",
    }
}

/// Bits of [`RuleValue::origin`]: where a rule came from. Reloads replace
/// the config's rules and leave the ones added at run time alone.
pub const ORIGIN_CONFIG: u8 = 1;
/// `sip-xdp allow add`.
pub const ORIGIN_RUNTIME: u8 = 2;
/// `sip-xdp ban add CIDR`.
pub const ORIGIN_BAN: u8 = 4;

crate::closed_set! {
    /// [`RuleValue::ban_state`] of a prefix ban: whether the controller has
    /// reported it.
    pub enum PrefixBanState {
        New = 0 => "new",
        Announced = 1 => "announced",
    }
}

/// Value of the rule tries: the class of the longest matching prefix
/// decides.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RuleValue {
    /// Bit set of `ORIGIN_*`.
    pub origin: u8,
    /// A [`RuleClass`].
    pub class: u8,
    /// Rate profile, for [`RuleClass::Limited`].
    pub profile: u8,
    /// For [`RuleClass::Banned`]: a [`PrefixBanState`].
    pub ban_state: u8,
    /// For [`RuleClass::Banned`]: CLOCK_BOOTTIME second at which the
    /// controller's sweep lifts the ban (0: never).
    pub ban_expires_secs: u32,
}

impl_pod!(RuleValue);

impl RuleValue {
    /// A rule of `class` (with `profile` for limited rules) from `origin`.
    pub const fn new(origin: u8, class: RuleClass, profile: u8) -> RuleValue {
        RuleValue { origin, class: class as u8, profile, ban_state: 0, ban_expires_secs: 0 }
    }

    #[inline(always)]
    pub fn is(&self, class: RuleClass) -> bool {
        self.class == class as u8
    }

    /// Is this a prefix ban that has not ended?
    #[inline(always)]
    pub fn ban_in_force(&self, now_ns: u64) -> bool {
        self.is(RuleClass::Banned) && (self.ban_expires_secs == 0 || now_ns / NS_PER_SEC < self.ban_expires_secs as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_prefix_bans() {
        assert_eq!(core::mem::size_of::<RuleValue>(), 8);
        let ban = RuleValue { ban_expires_secs: 100, ..RuleValue::new(ORIGIN_BAN, RuleClass::Banned, 0) };
        assert!(ban.ban_in_force(99 * NS_PER_SEC));
        assert!(!ban.ban_in_force(100 * NS_PER_SEC));
        assert!(RuleValue::new(ORIGIN_BAN, RuleClass::Banned, 0).ban_in_force(u64::MAX), "0: until lifted");
        assert!(!RuleValue::new(ORIGIN_CONFIG, RuleClass::Deny, 0).ban_in_force(0));
    }
}
