//! `sip-xdp run`: load, apply the config, attach, then serve signals until
//! told to stop. The kernel keeps filtering if this process dies; a new run
//! adopts what it left pinned.

use std::{ffi::CString, path::PathBuf};

use anyhow::Context as _;
use aya::Ebpf;
use log::{error, info, warn};
use sip_xdp_common::maps::{FilterConfig, DEFAULT_ACTION_DROP, DEFAULT_ACTION_PASS, MAX_PORTS, MODE_ENFORCE, MODE_MONITOR};
use tokio::signal::unix::{signal, SignalKind};

use crate::{
    config::{Config, DefaultAction, Mode},
    error::user_error,
    loader::{self, AttachMode, Attached},
    maps::{AllowPlan, Maps},
    pin::PinDir,
};

pub struct RunOptions {
    pub config: PathBuf,
    pub interfaces: Vec<String>,
    pub pin_dir: PinDir,
    pub mode: AttachMode,
}

/// The fast-path form of the config's filter settings.
pub fn filter_config(cfg: &Config) -> FilterConfig {
    let mut out = FilterConfig::EMPTY;
    for (slot, port) in out.ports.iter_mut().zip(&cfg.ports) {
        *slot = *port;
    }
    out.port_count = cfg.ports.len().min(MAX_PORTS) as u8;
    out.default_action = match cfg.default_action {
        DefaultAction::Drop => DEFAULT_ACTION_DROP,
        DefaultAction::Pass => DEFAULT_ACTION_PASS,
    };
    out.mode = match cfg.mode {
        Mode::Enforce => MODE_ENFORCE,
        Mode::Monitor => MODE_MONITOR,
    };
    out
}

/// Makes the kernel state match `cfg` so that no source allowed both
/// before and after is refused in between: new prefixes go in first, then
/// the filter settings, and only then do stale prefixes go.
pub fn apply(maps: &mut Maps, cfg: &Config) -> anyhow::Result<AllowPlan> {
    let plan = AllowPlan::new(&maps.allow_entries()?, &cfg.allow);
    for (net, value) in &plan.add {
        maps.allow_insert(*net, *value)?;
    }
    maps.write_config(&filter_config(cfg))?;
    for (net, keep) in &plan.retire {
        match keep {
            Some(value) => maps.allow_insert(*net, *value)?,
            None => maps.allow_remove(*net)?,
        }
    }
    Ok(plan)
}

fn check_interfaces(interfaces: &[String]) -> anyhow::Result<()> {
    if interfaces.is_empty() {
        return Err(user_error(
            "no interface to attach to: list them in `interfaces` in the config or pass --iface",
        ));
    }
    for name in interfaces {
        let c = CString::new(name.as_str()).map_err(|_| user_error(format!("bad interface name {name:?}")))?;
        // SAFETY: c is a valid NUL-terminated string.
        if unsafe { libc::if_nametoindex(c.as_ptr()) } == 0 {
            return Err(user_error(format!("no such interface: {name}")));
        }
    }
    Ok(())
}

pub async fn run(opts: RunOptions) -> anyhow::Result<()> {
    // Everything that can be wrong with the input is checked before the
    // kernel is touched.
    let cfg = Config::load(&opts.config)?;
    let interfaces = if opts.interfaces.is_empty() { cfg.interfaces.clone() } else { opts.interfaces.clone() };
    check_interfaces(&interfaces)?;

    let pins = &opts.pin_dir;
    if pins.prepare()? {
        warn!(
            "mounted a bpffs on {}; it lives in this mount namespace only, so use a pin directory \
             that other shells (and a restarted controller) can see if you run under `ip netns exec`",
            pins.root().display()
        );
    }
    let adopting = !pins.pinned_links().is_empty();
    info!(
        "loading the XDP program ({} pinned state in {})",
        if adopting { "adopting" } else { "fresh" },
        pins.root().display()
    );
    let mut ebpf = loader::load(Some(pins), cfg.sources_table_size)?;
    start_log_forwarding(&mut ebpf);
    let mut maps = Maps::from_ebpf(&mut ebpf)?;
    let plan = apply(&mut maps, &cfg)?;
    info!(
        "config {}: ports {:?}, default_action {:?}, mode {:?}, allowlist {} IPv4 + {} IPv6 prefixes (+{} -{})",
        cfg.path.display(),
        cfg.ports,
        cfg.default_action,
        cfg.mode,
        cfg.allow.v4.len(),
        cfg.allow.v6.len(),
        plan.add.len(),
        plan.retire.len()
    );
    for (interface, how) in loader::attach(&mut ebpf, pins, &interfaces, opts.mode)? {
        match how {
            Attached::Adopted => info!("{interface}: adopted the pinned filter (no gap in filtering)"),
            Attached::New(mode) => info!("{interface}: attached in {mode:?} mode"),
        }
    }
    info!("filtering; SIGHUP reloads {}, SIGINT/SIGTERM detach and exit", cfg.path.display());

    let result = serve_signals(&mut maps, cfg).await;
    loader::detach(pins, &interfaces);
    drop(ebpf);
    info!("detached from {}", interfaces.join(", "));
    result
}

async fn serve_signals(maps: &mut Maps, mut cfg: Config) -> anyhow::Result<()> {
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut hangup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    loop {
        tokio::select! {
            _ = interrupt.recv() => { info!("SIGINT received"); return Ok(()); }
            _ = terminate.recv() => { info!("SIGTERM received"); return Ok(()); }
            _ = hangup.recv() => cfg = reload(maps, cfg),
        }
    }
}

/// Applies the config file anew; on any error the running config stays.
fn reload(maps: &mut Maps, current: Config) -> Config {
    let new = match Config::load(&current.path) {
        Ok(new) => new,
        Err(err) => {
            error!("reload failed, keeping the running config: {err:#}");
            return current;
        }
    };
    if new.interfaces != current.interfaces {
        warn!("reload: `interfaces` changed; restart sip-xdp to attach to the new set");
    }
    if new.sources_table_size != current.sources_table_size {
        warn!("reload: `sources_table_size` changed; it takes effect at the next start");
    }
    match apply(maps, &new) {
        Ok(plan) => {
            info!(
                "reloaded {}: ports {:?}, default_action {:?}, mode {:?}, allowlist +{} -{}",
                new.path.display(),
                new.ports,
                new.default_action,
                new.mode,
                plan.add.len(),
                plan.retire.len()
            );
            new
        }
        Err(err) => {
            error!("reload failed while applying: {err:#}");
            current
        }
    }
}

/// Forwards the program's aya-log records to this process's logger.
fn start_log_forwarding(ebpf: &mut Ebpf) {
    let logger = match aya_log::EbpfLogger::init(ebpf) {
        Ok(logger) => logger,
        Err(err) => {
            warn!("eBPF log forwarding unavailable: {err}");
            return;
        }
    };
    // SAFETY: the logger owns its ring buffer's fd and keeps it open, and
    // the same, until it is dropped together with the AsyncFd.
    let registered =
        unsafe { tokio::io::unix::AsyncFd::register_with_interest(logger, tokio::io::Interest::READABLE) };
    let mut fd = match registered {
        Ok(fd) => fd,
        Err(err) => {
            warn!("eBPF log forwarding unavailable: {err}");
            return;
        }
    };
    tokio::spawn(async move {
        loop {
            let Ok(mut guard) = fd.readable_mut().await else { return };
            guard.get_inner_mut().flush();
            guard.clear_ready();
        }
    });
}
