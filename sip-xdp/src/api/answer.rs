//! The daemon's side of the control API: each [`Call`] applied to the maps
//! it owns, answered with a JSON document.

use serde_json::json;

use super::request::{Call, Reply};
use crate::{
    bans::{self, Placed, Refused},
    commands::{ban_rows_document, stats_document},
    config::Api,
    error::UserError,
    events::Event,
    fleet::origin::Origins,
    maps::Maps,
    pin::PinDir,
    reports,
};

/// Answers `call`; also the event to report now, if any (a would-be ban
/// in monitor mode; bans themselves are reported by the sweep).
pub fn answer(maps: &mut Maps, api: &Api, pins: &PinDir, call: Call) -> (Reply, Option<Event>) {
    match try_answer(maps, api, pins, call) {
        Ok(answered) => answered,
        Err(err) => (Reply::error(500, "internal", format!("{err:#}")), None),
    }
}

fn try_answer(maps: &mut Maps, api: &Api, pins: &PinDir, call: Call) -> anyhow::Result<(Reply, Option<Event>)> {
    let reply = match call {
        Call::Ban { net, duration_secs, reason } => {
            let trusted = bans::Trusted::read(maps)?;
            match reports::ban(maps, &trusted, net, duration_secs, reason, (api.max_prefix_v4, api.max_prefix_v6))? {
                Ok(placed) => {
                    let (status, created, source) = match placed {
                        Placed::New(label) => (201, true, label),
                        Placed::Already(label) => (200, false, label),
                    };
                    // The ban in force: when one was there already, its own
                    // reason and end.
                    let row = bans::in_force(maps, &net)?;
                    let (reason, remaining) = row.map_or((reason.name(), None), |r| (r.reason, r.remaining_secs));
                    Reply::ok(
                        status,
                        json!({"source": source, "reason": reason, "created": created, "remaining_secs": remaining}),
                    )
                }
                Err(refused) => refusal(&net.to_string(), &refused),
            }
        }
        Call::Unban(net) => match bans::del(maps, net) {
            Ok(_) => Reply::ok(200, json!({"source": bans::label_of(maps, &net), "lifted": true})),
            Err(err) if err.is::<UserError>() => Reply::error(404, "not_banned", err),
            Err(err) => return Err(err),
        },
        Call::ListBans => {
            let rows = bans::list(maps)?;
            Reply::ok(200, json!({"bans": ban_rows_document(&rows, &Origins::new(pins))}))
        }
        Call::Stats => Reply::ok(200, stats_document(&maps.stats()?, &pins.pinned_links())),
        Call::Auth(addr, outcome) => {
            let (report, event) = reports::auth(maps, addr, outcome)?;
            let reply = match report {
                Ok(r) => Reply::ok(
                    200,
                    json!({"source": r.source, "failures": r.failures, "threshold": r.threshold,
                           "window_secs": r.window_secs, "banned": r.banned}),
                ),
                Err(refused) => refusal(&addr.to_string(), &refused),
            };
            return Ok((reply, event));
        }
    };
    Ok((reply, None))
}

fn refusal(source: &str, refused: &Refused) -> Reply {
    let status = match refused {
        Refused::Trusted(_) => 409,
        Refused::TooWide(_) => 422,
    };
    Reply::error(status, refused.name(), format!("{source}: {refused}"))
}
