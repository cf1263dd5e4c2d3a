//! Ban events: from the kernel's ring buffer (bans, would-be bans) and from
//! the controller's own sweep (expiries, unbans, bans made with the CLI).
//! Each becomes one structured log line, text or JSON, and optionally a
//! JSON POST to a webhook so administrators hear of attacks as they happen.

use std::{
    sync::mpsc::{sync_channel, SyncSender, TrySendError},
    time::{Duration, SystemTime},
};

use log::{info, warn};
use serde_json::json;
use sip_xdp_common::{
    bans::BanReason,
    events::{self as kernel, EventKind, UnreadableWhy},
    Reason,
};

use crate::{
    clock::{boottime_ns, wall_clock_of},
    config::{EventFormat, Events},
    maps::source_label,
};

/// Webhook POSTs waiting to be sent; past this, events are still logged
/// but not posted (a dead webhook must not hold the controller up).
const WEBHOOK_QUEUE: usize = 1024;
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);

sip_xdp_common::closed_set! {
    /// What an event reports; the name is its `event` field.
    pub enum Kind {
        Ban = 1 => "ban",
        WouldBan = 2 => "would_ban",
        Expire = 3 => "expire",
        Unban = 4 => "unban",
        /// An INVITE dropped by the destination policy.
        DestinationBlocked = 5 => "destination_blocked",
        /// A source's international calls blocked after a spending anomaly.
        IntlBlock = 6 => "international_block",
        IntlUnblock = 7 => "international_unblock",
        /// A message from a source judged by what it sends, refused because
        /// the filter could not read it (`reason` says why).
        Unreadable = 8 => "unreadable",
        /// A ban announced by another edge and not applied here (`reason`:
        /// `trusted` or `too_wide`).
        FleetBanRefused = 9 => "fleet_ban_refused",
    }
}

/// One event, ready to log or post.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub kind: Kind,
    /// `rate_excess`, `auth_failures`, `manual`, or why an unban happened.
    pub reason: &'static str,
    /// An address or a CIDR prefix.
    pub source: String,
    pub duration_secs: Option<u64>,
    pub offenses: Option<u32>,
    /// For `DestinationBlocked`: the E.164 number dialled (`+` and digits),
    /// or `?` when the program could not read it.
    pub number: Option<String>,
    /// For `IntlBlock`: international calls in the window, the baseline,
    /// and the estimated spend.
    pub calls: Option<u64>,
    pub baseline: Option<f64>,
    pub cost: Option<f64>,
    /// For fleet bans: the edge that made the ban.
    pub origin: Option<String>,
    pub at: SystemTime,
}

/// The name of a kernel ban reason byte.
pub fn reason_name(reason: u8) -> &'static str {
    BanReason::from_u8(reason).map_or("unknown", BanReason::name)
}

impl Event {
    /// An event happening now, with no details yet.
    pub fn new(kind: Kind, reason: &'static str, source: String) -> Event {
        Event {
            kind,
            reason,
            source,
            duration_secs: None,
            offenses: None,
            number: None,
            calls: None,
            baseline: None,
            cost: None,
            origin: None,
            at: SystemTime::now(),
        }
    }

    /// Decodes a ring-buffer record; IPv6 sources are shown as their
    /// prefix of `v6_prefix` bits.
    pub fn from_kernel(bytes: &[u8], v6_prefix: u8) -> Option<Event> {
        if bytes.len() < std::mem::size_of::<kernel::Event>() {
            return None;
        }
        // SAFETY: length checked; the record is a plain repr(C) struct.
        let e: kernel::Event = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
        let kind = match EventKind::from_u8(e.kind)? {
            EventKind::Ban => Kind::Ban,
            EventKind::WouldBan => Kind::WouldBan,
            EventKind::Expire => Kind::Expire,
            EventKind::Unban => Kind::Unban,
            EventKind::DestinationBlocked => Kind::DestinationBlocked,
            EventKind::Unreadable => Kind::Unreadable,
        };
        let number = (kind == Kind::DestinationBlocked).then(|| {
            let digits = &e.number[..(e.number_len as usize).min(e.number.len())];
            if digits.is_empty() {
                "?".to_string()
            } else {
                format!("+{}", String::from_utf8_lossy(digits))
            }
        });
        let reason = match kind {
            Kind::DestinationBlocked => Reason::from_u8(e.drop_reason).map_or("unknown", Reason::name),
            Kind::Unreadable => UnreadableWhy::from_u8(e.reason).map_or("unknown", UnreadableWhy::name),
            _ => reason_name(e.reason),
        };
        Some(Event {
            number,
            duration_secs: (kind == Kind::Ban).then_some(e.duration_ns.div_ceil(1_000_000_000)),
            offenses: (kind == Kind::Ban).then_some(e.offenses),
            at: wall_clock_of(e.at_ns, boottime_ns()),
            ..Event::new(kind, reason, source_label(&e.addr, v6_prefix))
        })
    }

    pub fn to_json(&self) -> serde_json::Value {
        let mut doc = json!({
            "event": self.kind.name(),
            "source": self.source,
            "reason": self.reason,
            "duration_secs": self.duration_secs,
            "offenses": self.offenses,
            "number": self.number,
            "calls": self.calls,
            "baseline": self.baseline,
            "cost": self.cost,
            "time": humantime::format_rfc3339_seconds(self.at).to_string(),
        });
        // Only fleet events carry it, so every other document is as it was.
        if let Some(origin) = &self.origin {
            doc["origin"] = json!(origin);
        }
        doc
    }

    pub fn to_text(&self) -> String {
        let mut line = format!("event={} source={}", self.kind.name(), self.source);
        if let Some(n) = &self.number {
            line.push_str(&format!(" number={n}"));
        }
        line.push_str(&format!(" reason={}", self.reason));
        if let Some(d) = self.duration_secs {
            line.push_str(&format!(" duration={d}s"));
        }
        if let Some(n) = self.offenses {
            line.push_str(&format!(" offenses={n}"));
        }
        if let Some(c) = self.calls {
            line.push_str(&format!(" calls={c}"));
        }
        if let Some(b) = self.baseline {
            line.push_str(&format!(" baseline={b:.1}"));
        }
        if let Some(c) = self.cost {
            line.push_str(&format!(" cost={c:.2}"));
        }
        if let Some(o) = &self.origin {
            line.push_str(&format!(" origin={o}"));
        }
        line
    }
}

/// Where events go: the log, and the webhook if one is configured.
pub struct EventSink {
    format: EventFormat,
    webhook: Option<SyncSender<String>>,
}

impl EventSink {
    pub fn new(cfg: &Events) -> EventSink {
        let webhook = cfg.webhook.clone().map(|url| {
            let (tx, rx) = sync_channel::<String>(WEBHOOK_QUEUE);
            std::thread::spawn(move || {
                let agent: ureq::Agent =
                    ureq::Agent::config_builder().timeout_global(Some(WEBHOOK_TIMEOUT)).build().into();
                // Ends when the sink (the sender) is dropped.
                for body in rx {
                    let sent = agent.post(&url).header("Content-Type", "application/json").send(body.as_str());
                    if let Err(err) = sent {
                        warn!("webhook {url}: {err}");
                    }
                }
            });
            tx
        });
        EventSink { format: cfg.format, webhook }
    }

    pub fn emit(&self, event: &Event) {
        let doc = event.to_json();
        match self.format {
            EventFormat::Text => info!(target: "sip_xdp::event", "{}", event.to_text()),
            EventFormat::Json => info!(target: "sip_xdp::event", "{doc}"),
        }
        if let Some(tx) = &self.webhook {
            if let Err(TrySendError::Full(_)) = tx.try_send(doc.to_string()) {
                warn!("webhook queue full; event for {} not posted", event.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sip_xdp_common::map_types::v4_mapped;

    fn kernel_record(kind: u8, reason: u8) -> Vec<u8> {
        let e = kernel::Event {
            kind,
            reason,
            offenses: 2,
            duration_ns: 1_200_000_000_000,
            number: *b"25261234567\0\0\0\0\0\0\0\0\0",
            number_len: if kind == EventKind::DestinationBlocked as u8 { 11 } else { 0 },
            drop_reason: Reason::DestinationBlocked as u8,
            ..kernel::Event::new(EventKind::Ban, v4_mapped([198, 18, 2, 2]), boottime_ns())
        };
        // SAFETY: viewing a repr(C) value as bytes.
        unsafe { std::slice::from_raw_parts((&raw const e).cast::<u8>(), std::mem::size_of::<kernel::Event>()) }
            .to_vec()
    }

    #[test]
    fn kernel_bans_decode_to_lines_and_json() {
        let ev = Event::from_kernel(&kernel_record(EventKind::Ban as u8, BanReason::Auth as u8), 64).unwrap();
        assert_eq!(ev.to_text(), "event=ban source=198.18.2.2 reason=auth_failures duration=1200s offenses=2");
        let j = ev.to_json();
        assert_eq!(j["event"], "ban");
        assert_eq!(j["source"], "198.18.2.2");
        assert_eq!(j["duration_secs"], 1200);
        assert!(j["time"].as_str().unwrap().ends_with('Z'));
        let would = Event::from_kernel(&kernel_record(EventKind::WouldBan as u8, BanReason::Rate as u8), 64).unwrap();
        assert_eq!(would.to_text(), "event=would_ban source=198.18.2.2 reason=rate_excess");
    }

    #[test]
    fn destination_blocks_carry_the_number() {
        let ev = Event::from_kernel(&kernel_record(EventKind::DestinationBlocked as u8, 0), 64).unwrap();
        assert_eq!(
            ev.to_text(),
            "event=destination_blocked source=198.18.2.2 number=+25261234567 reason=destination_blocked"
        );
        assert_eq!(ev.to_json()["number"], "+25261234567");
    }

    #[test]
    fn garbage_records_are_ignored() {
        assert!(Event::from_kernel(&[1, 2, 3], 64).is_none());
        assert!(Event::from_kernel(&kernel_record(99, 1), 64).is_none());
    }
}
