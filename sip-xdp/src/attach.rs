//! Attaching the loaded programs to interfaces, adopting what an earlier
//! run left attached, and detaching.
//!
//! The XDP program hangs on a pinned XDP link per interface: a restart
//! points the link at the new program (`bpf_link_update`), so the
//! interface is never unfiltered. The egress observer hangs on a pinned
//! TCX link where the kernel has TCX (Linux 6.6); on older kernels (Debian
//! 12's 6.1) it is a `cls_bpf` filter in the interface's `clsact` qdisc,
//! added over netlink at a fixed priority and handle. Such a filter is no
//! link and cannot be pinned, but it stays in the kernel when the
//! controller dies, and the next start replaces its program in place (a
//! netlink change of the same filter, atomic in the kernel), so adoption
//! works there too; a clean stop removes it.

use std::path::Path;

use anyhow::{anyhow, Context as _};
use aya::{
    programs::{
        links::{FdLink, Link, LinkOrder, PinnedLink},
        tc::{self, NlOptions, SchedClassifierLink, TcAttachOptions, TcHandle},
        xdp::XdpLink,
        SchedClassifier, TcAttachType, Xdp, XdpMode,
    },
    Ebpf,
};
use log::{info, warn};

use crate::{
    loader::{egress, ingress},
    pin::PinDir,
};

/// How to attach the XDP program when nothing is attached yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// Native (driver) mode, falling back to generic (skb) mode.
    Auto,
    Native,
    Skb,
}

/// How to attach the egress observer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EgressAttach {
    /// A TCX link where the kernel has TCX, else a clsact filter.
    Auto,
    Tcx,
    Clsact,
}

/// What `attach` did with the XDP program on one interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attached {
    /// A pinned link from an earlier run now runs this program (atomic
    /// replacement: the interface was never unfiltered).
    Adopted,
    /// Newly attached in this mode.
    New(XdpMode),
}

/// How the egress observer hangs on one interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Egress {
    /// A pinned TCX link (Linux 6.6 and later); `adopted` if it was an
    /// earlier run's.
    Tcx { adopted: bool },
    /// A filter in the `clsact` qdisc (kernels without TCX); `adopted` if
    /// an earlier run's filter now runs this program.
    Clsact { adopted: bool },
}

impl Egress {
    pub fn describe(self) -> &'static str {
        match self {
            Egress::Tcx { adopted: true } => "adopted the pinned TCX link",
            Egress::Tcx { adopted: false } => "attached with a TCX link",
            Egress::Clsact { adopted: true } => "replaced the program of its clsact filter in place",
            Egress::Clsact { adopted: false } => "attached as a clsact filter (no TCX before Linux 6.6)",
        }
    }
}

/// Where the egress filter sits in a `clsact` qdisc: fixed, so a restart
/// finds the earlier run's filter and a stop removes exactly ours.
pub const EGRESS_FILTER_PRIORITY: u16 = 0x5105;
pub const EGRESS_FILTER_HANDLE: TcHandle = TcHandle::new(0, 0x5105);

/// Attaches the loaded programs to every interface, adopting what an
/// earlier run left. All or nothing: if one interface fails, whatever this
/// call attached (on that interface too) is removed again before the error
/// is returned; what it adopted stays as the earlier run left it.
pub fn attach(
    ebpf: &mut Ebpf,
    pins: &PinDir,
    interfaces: &[String],
    mode: AttachMode,
    egress: EgressAttach,
) -> anyhow::Result<Vec<(String, Attached, Egress)>> {
    let mut done: Vec<(String, Attached, Egress)> = Vec::new();
    for interface in interfaces {
        let result = attach_one(ebpf, pins, interface, mode, egress);
        match result {
            Ok(how) => done.push(how),
            Err((err, partial)) => {
                // This interface's XDP attachment (its egress one failed),
                // then every interface done before it.
                if let Some(xdp) = partial {
                    undo(pins, interface, xdp, None);
                }
                for (name, xdp, egress) in &done {
                    undo(pins, name, *xdp, Some(*egress));
                }
                return Err(err.context(format!("cannot attach to {interface}")));
            }
        }
    }
    // Links pinned by an earlier run on interfaces no longer configured.
    for stale in pins.pinned_links() {
        if !interfaces.contains(&stale) {
            info!("detaching from {stale}: no longer configured");
            detach(pins, &[stale]);
        }
    }
    Ok(done)
}

/// Both programs on one interface. On failure, the XDP attachment made
/// (if any), for the caller to undo.
fn attach_one(
    ebpf: &mut Ebpf,
    pins: &PinDir,
    interface: &str,
    mode: AttachMode,
    how: EgressAttach,
) -> Result<(String, Attached, Egress), (anyhow::Error, Option<Attached>)> {
    let program = ingress(ebpf).map_err(|e| (e, None))?;
    let xdp = attach_xdp(program, pins, interface, mode).map_err(|e| (e, None))?;
    let program = egress(ebpf).map_err(|e| (e, Some(xdp)))?;
    let egress = attach_egress(program, pins, interface, how).map_err(|e| (e, Some(xdp)))?;
    Ok((interface.to_string(), xdp, egress))
}

/// Removes what this run attached on `interface`; leaves what it adopted.
fn undo(pins: &PinDir, interface: &str, xdp: Attached, egress: Option<Egress>) {
    if matches!(xdp, Attached::New(_)) {
        remove_pin(&pins.link_path(interface));
    }
    match egress {
        Some(Egress::Tcx { adopted: false }) => {
            remove_pin(&pins.egress_link_path(interface));
        }
        Some(Egress::Clsact { adopted: false }) => {
            remove_egress_filter(interface);
        }
        _ => {}
    }
}

fn attach_xdp(program: &mut Xdp, pins: &PinDir, interface: &str, mode: AttachMode) -> anyhow::Result<Attached> {
    let link_path = pins.link_path(interface);
    if link_path.exists() {
        match adopt_xdp(program, &link_path) {
            Ok(()) => return Ok(Attached::Adopted),
            Err(err) => {
                // The interface was recreated since, say: the old link is
                // defunct and filters nothing; attach afresh.
                warn!("cannot adopt the pinned link on {interface} ({err:#}); attaching afresh");
                std::fs::remove_file(&link_path)
                    .with_context(|| format!("cannot remove stale link {}", link_path.display()))?;
            }
        }
    }
    let modes: &[XdpMode] = match mode {
        AttachMode::Auto => &[XdpMode::Driver, XdpMode::Skb],
        AttachMode::Native => &[XdpMode::Driver],
        AttachMode::Skb => &[XdpMode::Skb],
    };
    let mut last_err = None;
    for &m in modes {
        match program.attach(interface, m) {
            Ok(id) => {
                let link: FdLink = program.take_link(id)?.try_into().context("XDP link is not an fd link")?;
                link.pin(&link_path).with_context(|| format!("cannot pin link at {}", link_path.display()))?;
                return Ok(Attached::New(m));
            }
            Err(err) => {
                if mode == AttachMode::Auto {
                    info!("{interface}: {m:?} mode unavailable ({err}), trying the next mode");
                }
                last_err = Some(err);
            }
        }
    }
    Err(last_err.map(anyhow::Error::from).unwrap_or_else(|| anyhow!("no XDP mode to try")))
}

/// Points a pinned link at `program`, keeping the pin.
fn adopt_xdp(program: &mut Xdp, link_path: &Path) -> anyhow::Result<()> {
    let pinned = PinnedLink::from_pin(link_path)?;
    let link = XdpLink::try_from(FdLink::from(pinned))?;
    program.attach_to_link(link)?;
    Ok(())
}

/// Attaches (or adopts) the egress observer: a pinned TCX link where the
/// kernel has TCX, else our filter in the `clsact` qdisc (or as `how`
/// says).
fn attach_egress(
    program: &mut SchedClassifier,
    pins: &PinDir,
    interface: &str,
    how: EgressAttach,
) -> anyhow::Result<Egress> {
    if how == EgressAttach::Clsact {
        return attach_egress_filter(program, interface);
    }
    let link_path = pins.egress_link_path(interface);
    if link_path.exists() {
        let adopted = PinnedLink::from_pin(&link_path)
            .map_err(anyhow::Error::from)
            .and_then(|pinned| Ok(SchedClassifierLink::try_from(FdLink::from(pinned))?))
            .and_then(|link| Ok(program.attach_to_link(link)?));
        match adopted {
            Ok(_) => return Ok(Egress::Tcx { adopted: true }),
            Err(err) => {
                warn!("cannot adopt the pinned egress link on {interface} ({err:#}); attaching afresh");
                std::fs::remove_file(&link_path)
                    .with_context(|| format!("cannot remove stale link {}", link_path.display()))?;
            }
        }
    }
    let tcx =
        program.attach_with_options(interface, TcAttachType::Egress, TcAttachOptions::TcxOrder(LinkOrder::default()));
    let tcx_err = match tcx {
        Ok(id) => {
            let link: FdLink = program.take_link(id)?.try_into().context("TC link is not an fd link")?;
            link.pin(&link_path).with_context(|| format!("cannot pin link at {}", link_path.display()))?;
            return Ok(Egress::Tcx { adopted: false });
        }
        Err(err) if how == EgressAttach::Tcx => {
            return Err(err).context("cannot attach the egress observer with TCX (Linux 6.6 or later)")
        }
        Err(err) => err,
    };
    attach_egress_filter(program, interface)
        .with_context(|| format!("cannot attach the egress observer: not with TCX ({tcx_err}), nor as a clsact filter"))
}

/// The `clsact` way: replaces the program of our filter if an earlier run
/// left it (in place, atomically), else adds the qdisc (if missing) and
/// the filter.
fn attach_egress_filter(program: &mut SchedClassifier, interface: &str) -> anyhow::Result<Egress> {
    let ours = SchedClassifierLink::attached(
        interface,
        TcAttachType::Egress,
        EGRESS_FILTER_PRIORITY,
        EGRESS_FILTER_HANDLE,
        None,
    )?;
    if let Ok(id) = program.attach_to_link(ours) {
        keep_in_kernel(program.take_link(id)?);
        return Ok(Egress::Clsact { adopted: true });
    }
    if let Err(err) = tc::qdisc_add_clsact(interface) {
        // Already there (another tool's filters, or ours of a stopped run).
        if !already_exists(&err) {
            return Err(err).context("cannot add the clsact qdisc");
        }
    }
    let options = NlOptions { priority: EGRESS_FILTER_PRIORITY, handle: EGRESS_FILTER_HANDLE, ..NlOptions::default() };
    let id = program.attach_with_options(interface, TcAttachType::Egress, TcAttachOptions::Netlink(options))?;
    keep_in_kernel(program.take_link(id)?);
    Ok(Egress::Clsact { adopted: false })
}

/// A clsact filter belongs to the kernel from now on: aya would remove it
/// when its handle is dropped (at any exit of the controller), but a
/// crashed controller must leave the filter running, as it leaves the
/// pinned links; a stop removes it (`detach`).
fn keep_in_kernel(link: SchedClassifierLink) {
    // The handle holds no file descriptor: forgetting it leaks nothing.
    std::mem::forget(link);
}

fn already_exists(err: &tc::TcError) -> bool {
    const EEXIST: i32 = 17;
    match err {
        tc::TcError::AlreadyAttached => true,
        tc::TcError::NetlinkError(err) => err.raw_os_error() == Some(EEXIST),
        tc::TcError::IoError(err) => err.raw_os_error() == Some(EEXIST),
        _ => false,
    }
}

/// Removes our egress filter from `interface`'s `clsact` qdisc, if there;
/// true if it was.
fn remove_egress_filter(interface: &str) -> bool {
    let removed = SchedClassifierLink::attached(
        interface,
        TcAttachType::Egress,
        EGRESS_FILTER_PRIORITY,
        EGRESS_FILTER_HANDLE,
        None,
    )
    .map_err(anyhow::Error::from)
    .and_then(|link| Ok(link.detach()?));
    if let Err(err) = &removed {
        log::debug!("no clsact egress filter of ours on {interface}: {err:#}");
    }
    removed.is_ok()
}

/// Removes a pin; true if it was there.
fn remove_pin(path: &Path) -> bool {
    match std::fs::remove_file(path) {
        Ok(()) => true,
        Err(err) => {
            if err.kind() != std::io::ErrorKind::NotFound {
                warn!("cannot remove {}: {err}", path.display());
            }
            false
        }
    }
}

/// Detaches both programs from `interfaces`: removes the link pins (the
/// links go once the controller's own handles close) and our clsact
/// filter, where the egress observer is one.
pub fn detach(pins: &PinDir, interfaces: &[String]) {
    for interface in interfaces {
        remove_pin(&pins.link_path(interface));
        remove_pin(&pins.egress_link_path(interface));
        remove_egress_filter(interface);
    }
}

/// What a controller that is gone (killed, crashed, handed over) left in
/// force, taken off: every pinned link, and our clsact filter wherever it
/// is, since no pin records those. The caller holds the pin directory's
/// lock, so no `run` is using any of it. Returns the interfaces something
/// was taken off.
pub fn detach_left_behind(pins: &PinDir) -> Vec<String> {
    let mut detached = std::collections::BTreeSet::new();
    for interface in pins.pinned_links() {
        if remove_pin(&pins.link_path(&interface)) {
            detached.insert(interface);
        }
    }
    for interface in pins.pinned_egress_links() {
        if remove_pin(&pins.egress_link_path(&interface)) {
            detached.insert(interface);
        }
    }
    for interface in host_interfaces() {
        if remove_egress_filter(&interface) {
            detached.insert(interface);
        }
    }
    detached.into_iter().collect()
}

/// The interfaces of this network namespace.
fn host_interfaces() -> Vec<String> {
    let mut names = Vec::new();
    // SAFETY: if_nameindex returns an array ended by a zeroed entry, or
    // null; it is freed once read.
    unsafe {
        let list = libc::if_nameindex();
        if list.is_null() {
            return names;
        }
        let mut entry = list;
        while (*entry).if_index != 0 && !(*entry).if_name.is_null() {
            names.push(std::ffi::CStr::from_ptr((*entry).if_name).to_string_lossy().into_owned());
            entry = entry.add(1);
        }
        libc::if_freenameindex(list);
    }
    names
}
