//! The decision, as a pure function of what the kernel program found out
//! about a packet and of the filter config. The eBPF program parses and does
//! the map lookups, calls [`decide`], and applies and counts the result; the
//! host tests cover the function exhaustively.

use crate::{
    dialled::Dialled,
    kernel_config::{DefaultAction, FilterConfig},
    limits::RateOutcome,
    map_types::{DestAction, DestRule, FragVerdict},
    reasons::{Action, Reason},
};

/// What the ban table, the rules and the rate limits say of a source
/// sending to a SIP port, in the order the kernel asks them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// In the ban table, or in a banned prefix.
    Banned,
    /// Matched a `trusted` rule.
    Trusted,
    /// Matched a `deny` rule.
    Denied,
    /// Matched no rule, and the default class is `deny`.
    Unmatched,
    /// A `limited` rule, or no rule with a limited default class.
    Limited(RateOutcome),
    /// An INVITE the destination policy refuses.
    Destination(DestVerdict),
    /// A request whose User-Agent names an attack tool.
    Scanner,
    /// Messages the filter cannot tell apart, from a source it judges by
    /// what it sends.
    Unreadable,
    /// A TCP segment that is not the next the filter expects on its
    /// connection, from a source it judges by what it sends: read out of
    /// order, it could make the filter's reading of the stream differ
    /// from the server's. The sender retransmits it.
    OutOfOrder,
}

/// What the destination policy says of an INVITE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DestVerdict {
    Pass,
    /// Matched a block rule (its id).
    Blocked(u16),
    /// International and not on `allow_only`, or the country is unreadable.
    NotAllowed,
    /// International, from a source blocked after a spending anomaly.
    AnomalyBlocked,
    /// The user part cannot be read as a server would (a malformed
    /// escape).
    Unreadable,
}

/// The destination policy for a dialled number and the rule its digits
/// match (longest prefix), if any.
#[inline(always)]
pub fn judge_destination(dialled: &Dialled, rule: Option<&DestRule>, allow_only: bool) -> DestVerdict {
    match dialled {
        Dialled::NotANumber | Dialled::National => DestVerdict::Pass,
        Dialled::Unverifiable => DestVerdict::NotAllowed,
        Dialled::Malformed => DestVerdict::Unreadable,
        Dialled::International { .. } => match rule {
            Some(r) if r.is(DestAction::Block) => DestVerdict::Blocked(r.id),
            Some(r) if r.is(DestAction::Allow) => DestVerdict::Pass,
            _ if allow_only => DestVerdict::NotAllowed,
            _ => DestVerdict::Pass,
        },
    }
}

/// What the parser and the map lookups found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packet {
    /// Not IPv4/IPv6.
    NonIp,
    /// A header was truncated or invalid.
    Malformed,
    /// More VLAN tags or IPv6 extension headers than the parser walks.
    TooDeep,
    /// IP, but not UDP/TCP to one of the SIP ports.
    NonSip,
    /// A non-first fragment, with the verdict of its first fragment if that
    /// was seen.
    LaterFragment(Option<FragVerdict>),
    /// UDP or TCP to a SIP port.
    ToSipPort(Source),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub action: Action,
    pub reason: Reason,
}

impl Verdict {
    pub const fn new(action: Action, reason: Reason) -> Verdict {
        Verdict { action, reason }
    }

    /// The form stored for a first fragment, for its later fragments.
    pub const fn to_frag(self) -> FragVerdict {
        FragVerdict { action: self.action as u8, reason: self.reason as u8, _pad: [0; 2] }
    }
}

#[inline(always)]
pub fn decide(packet: Packet, cfg: &FilterConfig) -> Verdict {
    match packet {
        Packet::NonIp => Verdict::new(Action::Pass, Reason::NonIp),
        Packet::NonSip => Verdict::new(Action::Pass, Reason::NonSip),
        Packet::Malformed => drop(cfg, Reason::Malformed),
        Packet::TooDeep => drop(cfg, Reason::TooDeep),
        Packet::LaterFragment(None) => Verdict::new(Action::Pass, Reason::FragmentUntracked),
        Packet::LaterFragment(Some(first)) => {
            // The first fragment's action already reflects monitor mode; an
            // unknown stored value (never written by us) passes.
            let action = match Action::from_u8(first.action) {
                Some(a) => a,
                None => Action::Pass,
            };
            Verdict::new(action, Reason::Fragment)
        }
        Packet::ToSipPort(source) => match source {
            Source::Banned => drop(cfg, Reason::Banned),
            Source::Trusted => Verdict::new(Action::Pass, Reason::Allowlisted),
            Source::Denied => drop(cfg, Reason::Denied),
            Source::Unmatched if cfg.default_action == DefaultAction::Pass as u8 => {
                Verdict::new(Action::Pass, Reason::NotAllowlisted)
            }
            Source::Unmatched => drop(cfg, Reason::NotAllowlisted),
            Source::Limited(RateOutcome::Within) => Verdict::new(Action::Pass, Reason::Limited),
            Source::Limited(RateOutcome::RegisterExceeded) => drop(cfg, Reason::RegisterRate),
            Source::Limited(RateOutcome::RequestExceeded) => drop(cfg, Reason::RequestRate),
            Source::Limited(RateOutcome::InviteExceeded) => drop(cfg, Reason::InviteRate),
            Source::Scanner => drop(cfg, Reason::Scanner),
            Source::Unreadable | Source::Destination(DestVerdict::Unreadable) => drop(cfg, Reason::Unreadable),
            Source::OutOfOrder => drop(cfg, Reason::OutOfOrder),
            Source::Destination(DestVerdict::Blocked(_)) => drop(cfg, Reason::DestinationBlocked),
            Source::Destination(DestVerdict::NotAllowed) => drop(cfg, Reason::DestinationNotAllowed),
            Source::Destination(DestVerdict::AnomalyBlocked) => drop(cfg, Reason::InternationalBlocked),
            // The policy only speaks up to refuse; a pass is decided by
            // the source's class before it.
            Source::Destination(DestVerdict::Pass) => Verdict::new(Action::Pass, Reason::Limited),
        },
    }
}

/// A drop, or in monitor mode a would-be drop.
#[inline(always)]
fn drop(cfg: &FilterConfig, reason: Reason) -> Verdict {
    let action = if cfg.monitor() { Action::WouldDrop } else { Action::Drop };
    Verdict::new(action, reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel_config::Mode;
    use Action::*;
    use Reason::*;

    fn cfg(default_action: u8, mode: u8) -> FilterConfig {
        FilterConfig { default_action, mode, ..FilterConfig::EMPTY }
    }

    const ALL_PACKETS: [Packet; 22] = [
        Packet::NonIp,
        Packet::Malformed,
        Packet::TooDeep,
        Packet::NonSip,
        Packet::LaterFragment(None),
        Packet::LaterFragment(Some(FragVerdict { action: 0, reason: 2, _pad: [0; 2] })),
        Packet::LaterFragment(Some(FragVerdict { action: 1, reason: 3, _pad: [0; 2] })),
        Packet::ToSipPort(Source::Banned),
        Packet::ToSipPort(Source::Trusted),
        Packet::ToSipPort(Source::Denied),
        Packet::ToSipPort(Source::Unmatched),
        Packet::ToSipPort(Source::Limited(RateOutcome::Within)),
        Packet::ToSipPort(Source::Limited(RateOutcome::RegisterExceeded)),
        Packet::ToSipPort(Source::Limited(RateOutcome::RequestExceeded)),
        Packet::ToSipPort(Source::Limited(RateOutcome::InviteExceeded)),
        Packet::ToSipPort(Source::Scanner),
        Packet::ToSipPort(Source::Unreadable),
        Packet::ToSipPort(Source::OutOfOrder),
        Packet::ToSipPort(Source::Destination(DestVerdict::Unreadable)),
        Packet::ToSipPort(Source::Destination(DestVerdict::Blocked(3))),
        Packet::ToSipPort(Source::Destination(DestVerdict::NotAllowed)),
        Packet::ToSipPort(Source::Destination(DestVerdict::AnomalyBlocked)),
    ];

    /// The full table: every packet class under every config.
    #[test]
    fn verdict_table() {
        let expect = |p: Packet, default_action: u8, mode: u8| -> (Action, Reason) {
            let monitor = mode == Mode::Monitor as u8;
            let dropped = if monitor { WouldDrop } else { Drop };
            match p {
                Packet::NonIp => (Pass, NonIp),
                Packet::NonSip => (Pass, NonSip),
                Packet::Malformed => (dropped, Malformed),
                Packet::TooDeep => (dropped, TooDeep),
                Packet::LaterFragment(None) => (Pass, FragmentUntracked),
                Packet::LaterFragment(Some(f)) if f.action == 0 => (Pass, Fragment),
                Packet::LaterFragment(Some(_)) => (Drop, Fragment),
                Packet::ToSipPort(Source::Banned) => (dropped, Banned),
                Packet::ToSipPort(Source::Trusted) => (Pass, Allowlisted),
                Packet::ToSipPort(Source::Denied) => (dropped, Denied),
                Packet::ToSipPort(Source::Unmatched) if default_action == DefaultAction::Pass as u8 => {
                    (Pass, NotAllowlisted)
                }
                Packet::ToSipPort(Source::Unmatched) => (dropped, NotAllowlisted),
                Packet::ToSipPort(Source::Limited(RateOutcome::Within)) => (Pass, Limited),
                Packet::ToSipPort(Source::Limited(RateOutcome::RegisterExceeded)) => (dropped, RegisterRate),
                Packet::ToSipPort(Source::Limited(RateOutcome::RequestExceeded)) => (dropped, RequestRate),
                Packet::ToSipPort(Source::Limited(RateOutcome::InviteExceeded)) => (dropped, InviteRate),
                Packet::ToSipPort(Source::Scanner) => (dropped, Scanner),
                Packet::ToSipPort(Source::Unreadable) => (dropped, Unreadable),
                Packet::ToSipPort(Source::Destination(DestVerdict::Unreadable)) => (dropped, Unreadable),
                Packet::ToSipPort(Source::OutOfOrder) => (dropped, OutOfOrder),
                Packet::ToSipPort(Source::Destination(DestVerdict::Blocked(_))) => (dropped, DestinationBlocked),
                Packet::ToSipPort(Source::Destination(DestVerdict::NotAllowed)) => (dropped, DestinationNotAllowed),
                Packet::ToSipPort(Source::Destination(DestVerdict::AnomalyBlocked)) => (dropped, InternationalBlocked),
                Packet::ToSipPort(Source::Destination(DestVerdict::Pass)) => (Pass, Limited),
            }
        };
        for p in ALL_PACKETS {
            for da in [DefaultAction::Drop as u8, DefaultAction::Pass as u8] {
                for mode in [Mode::Enforce as u8, Mode::Monitor as u8] {
                    let v = decide(p, &cfg(da, mode));
                    assert_eq!((v.action, v.reason), expect(p, da, mode), "{p:?} da={da} mode={mode}");
                }
            }
        }
    }

    #[test]
    fn monitor_mode_never_drops() {
        for p in ALL_PACKETS {
            if matches!(p, Packet::LaterFragment(Some(_))) {
                continue; // follows what its first fragment got
            }
            for da in [DefaultAction::Drop as u8, DefaultAction::Pass as u8] {
                assert!(decide(p, &cfg(da, Mode::Monitor as u8)).action.passes(), "{p:?}");
            }
        }
    }

    #[test]
    fn destination_policy_table() {
        let intl = Dialled::International { digits: [b'2'; 20], len: 11 };
        let block = DestRule { action: DestAction::Block as u8, id: 7, ..DestRule::default() };
        let allow = DestRule { action: DestAction::Allow as u8, id: 8, ..DestRule::default() };
        for allow_only in [false, true] {
            assert_eq!(judge_destination(&Dialled::NotANumber, Some(&block), allow_only), DestVerdict::Pass);
            assert_eq!(judge_destination(&Dialled::National, Some(&block), allow_only), DestVerdict::Pass);
            assert_eq!(judge_destination(&Dialled::Unverifiable, None, allow_only), DestVerdict::NotAllowed);
            assert_eq!(judge_destination(&Dialled::Malformed, None, allow_only), DestVerdict::Unreadable);
            assert_eq!(judge_destination(&intl, Some(&block), allow_only), DestVerdict::Blocked(7));
            assert_eq!(judge_destination(&intl, Some(&allow), allow_only), DestVerdict::Pass);
        }
        assert_eq!(judge_destination(&intl, None, false), DestVerdict::Pass);
        assert_eq!(judge_destination(&intl, None, true), DestVerdict::NotAllowed);
    }

    #[test]
    fn fragment_verdict_round_trip() {
        let v = Verdict::new(WouldDrop, NotAllowlisted);
        let later = decide(Packet::LaterFragment(Some(v.to_frag())), &cfg(0, 0));
        assert_eq!(later, Verdict::new(WouldDrop, Fragment));
        let garbage = FragVerdict { action: 9, reason: 0, _pad: [0; 2] };
        assert_eq!(decide(Packet::LaterFragment(Some(garbage)), &cfg(0, 0)).action, Pass);
    }
}
