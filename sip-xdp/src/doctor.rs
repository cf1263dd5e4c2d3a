//! `sip-xdp doctor`: what this host offers the filter, before an operator
//! finds out from a failed start. Kernel features (the same probes `run`
//! makes), privileges and mounts, and for each interface its driver and
//! what is attached to it now. Nothing is changed unless `--try-attach`
//! asks for a trial native attach.

use std::{
    ffi::CString,
    os::fd::{FromRawFd as _, OwnedFd},
    path::Path,
    process::Command,
};

use aya::util::KernelVersion;

use crate::features::{self, Probed};

/// Effective capabilities the controller uses, by bit number.
const CAPABILITIES: &[(&str, u32, &str)] = &[
    ("CAP_BPF", 39, "load programs and create maps (Linux 5.8; older kernels need CAP_SYS_ADMIN)"),
    ("CAP_NET_ADMIN", 12, "attach to interfaces"),
    ("CAP_PERFMON", 38, "programs that read packet memory freely"),
    ("CAP_SYS_RESOURCE", 24, "lift the locked-memory limit on older kernels"),
    ("CAP_SYS_ADMIN", 21, "kernels before 5.8, and mounting bpffs"),
];

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// The report, and whether `run` could start here.
pub fn report(pin_dir: &Path, interfaces: &[String], try_attach: bool) -> (String, bool) {
    let mut out = String::new();
    let release = KernelVersion::current().map(|v| v.to_string()).unwrap_or_else(|_| "unknown".into());
    out += &format!("kernel: Linux {release} ({})\n", uname_release());

    out += "\nkernel features (what the programs need):\n";
    let probed = features::probe_all();
    for p in &probed {
        out += &feature_line(p);
    }

    out += "\nprivileges and mounts:\n";
    // The pin directory is made by `run`; before that, its parent says.
    let bpffs = if pin_dir.exists() { pin_dir } else { pin_dir.parent().unwrap_or(pin_dir) };
    out += &bpffs_line(bpffs);
    let effective = effective_capabilities();
    for (name, bit, why) in CAPABILITIES {
        let mark = match effective {
            Some(caps) if caps & (1 << bit) != 0 => "yes",
            Some(_) => "no ",
            None => "?  ",
        };
        out += &format!("  {mark}  {name}: {why}\n");
    }
    out += &stats_line();

    if !interfaces.is_empty() {
        out += "\ninterfaces:\n";
        for interface in interfaces {
            out += &interface_lines(interface, try_attach);
        }
    }

    let missing = features::first_missing(&probed);
    match &missing {
        Some(line) => out += &format!("\nnot ready: {line}\n"),
        None => out += "\nready: this kernel has every feature `sip-xdp run` needs\n",
    }
    (out, missing.is_none())
}

fn feature_line(p: &Probed) -> String {
    let f = &p.feature;
    let (mark, note) = match (&p.present, f.required) {
        (Ok(true), _) => ("yes", String::new()),
        (Ok(false), true) => ("NO ", " -- required".to_string()),
        (Ok(false), false) if f.since == "6.6" => ("no ", ": the egress observer attaches as a clsact filter".into()),
        (Ok(false), false) => ("no ", String::new()),
        (Err(err), _) => ("?  ", format!(": cannot probe ({err})")),
    };
    format!("  {mark}  {} (Linux {}){note}\n", f.name, f.since)
}

fn uname_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_default()
}

fn bpffs_line(dir: &Path) -> String {
    let c = CString::new(dir.as_os_str().as_encoded_bytes()).unwrap_or_default();
    // SAFETY: statfs(2) fills `st`; `c` is a valid NUL-terminated path.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    if rc == 0 && st.f_type as i64 == BPF_FS_MAGIC {
        format!("  yes  bpffs mounted at {} (pins survive the controller)\n", dir.display())
    } else {
        format!("  no   bpffs at {}: `run` mounts one there, or mount it in fstab\n", dir.display())
    }
}

/// The effective capability set, from /proc/self/status.
fn effective_capabilities() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// Can run-time statistics of BPF programs be turned on
/// (`BPF_ENABLE_STATS`, which the bench and `bpftool prog` use)?
fn stats_line() -> String {
    const BPF_ENABLE_STATS: libc::c_long = 32;
    let sysctl = std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled")
        .map(|s| format!("kernel.bpf_stats_enabled = {}", s.trim()))
        .unwrap_or_else(|_| "no kernel.bpf_stats_enabled".into());
    // union bpf_attr { struct { __u32 type; } enable_stats; }: BPF_STATS_RUN_TIME is 0.
    let mut attr = [0u32; 2];
    // SAFETY: a zeroed 8-byte bpf_attr prefix is valid for BPF_ENABLE_STATS.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, BPF_ENABLE_STATS, attr.as_mut_ptr(), 8u32) };
    if fd >= 0 {
        // SAFETY: the kernel returned a new descriptor that we own; closing
        // it turns the statistics off again.
        drop(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        format!("  yes  BPF_ENABLE_STATS: program run-time statistics can be enabled ({sysctl})\n")
    } else {
        let err = std::io::Error::last_os_error();
        format!("  no   BPF_ENABLE_STATS: {err} ({sysctl})\n")
    }
}

fn interface_lines(interface: &str, try_attach: bool) -> String {
    let Ok(name) = CString::new(interface) else { return format!("  {interface:?}: not an interface name\n") };
    // SAFETY: `name` is NUL-terminated.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        return format!("  {interface}: no such interface\n");
    }
    let driver = driver_of(interface).unwrap_or_else(|| "unknown".into());
    let attached = attached_xdp(interface);
    let native = if !try_attach {
        "not tried (`--try-attach` tries it; some drivers reset the link when XDP comes or goes)".to_string()
    } else if attached.starts_with("none") {
        match trial_native_attach(ifindex) {
            Ok(()) => "yes (a pass-all program attached and detached)".into(),
            Err(err) if err.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                "no: the driver has no native XDP; `run` uses generic (skb) mode".into()
            }
            Err(err) => format!("unknown: trial attach failed ({err})"),
        }
    } else {
        "not tried: a program is attached".into()
    };
    format!("  {interface}: driver {driver}\n    XDP now: {attached}\n    native XDP: {native}\n")
}

/// The driver's name, as `ethtool -i` reports it.
fn driver_of(interface: &str) -> Option<String> {
    // struct ethtool_drvinfo: cmd, then driver[32], version[32], ...
    #[repr(C)]
    struct DrvInfo {
        cmd: u32,
        driver: [u8; 32],
        rest: [u8; 32 * 4 + 12 + 5 * 4],
    }
    const ETHTOOL_GDRVINFO: u32 = 0x3;
    const SIOCETHTOOL: libc::c_ulong = 0x8946;
    let mut info = DrvInfo { cmd: ETHTOOL_GDRVINFO, driver: [0; 32], rest: [0; 32 * 4 + 12 + 5 * 4] };
    // SAFETY: an ifreq zeroed, its name copied in (bounded), its data
    // pointing at `info`, which outlives the ioctl.
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            return None;
        }
        let sock = OwnedFd::from_raw_fd(sock);
        let mut req: libc::ifreq = std::mem::zeroed();
        for (d, s) in req.ifr_name.iter_mut().zip(interface.bytes().take(libc::IFNAMSIZ - 1)) {
            *d = s as libc::c_char;
        }
        req.ifr_ifru.ifru_data = (&mut info as *mut DrvInfo).cast();
        if libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&sock), SIOCETHTOOL, &mut req) < 0 {
            return None;
        }
    }
    let end = info.driver.iter().position(|&b| b == 0).unwrap_or(32);
    Some(String::from_utf8_lossy(&info.driver[..end]).into_owned())
}

/// What XDP program is attached now, and how (from `ip -d -j link`).
fn attached_xdp(interface: &str) -> String {
    let out = Command::new("ip").args(["-d", "-j", "link", "show", "dev", interface]).output();
    let Ok(out) = out else { return "unknown (no `ip` command)".into() };
    let Ok(links) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
        return "unknown".into();
    };
    let xdp = &links[0]["xdp"];
    let mode = match xdp["mode"].as_u64() {
        None | Some(0) => return "none".into(),
        Some(1) => "native",
        Some(2) => "generic (skb)",
        Some(3) => "offloaded",
        Some(_) => "several programs",
    };
    let prog = &xdp["prog"];
    match (prog["id"].as_u64(), prog["name"].as_str()) {
        (Some(id), Some(name)) => format!("{mode}, program {id} ({name})"),
        _ => mode.to_string(),
    }
}

/// Loads a two-instruction XDP_PASS program and links it to `ifindex` in
/// native mode; closing both descriptors detaches it again.
fn trial_native_attach(ifindex: u32) -> std::io::Result<()> {
    const BPF_PROG_LOAD: libc::c_long = 5;
    const BPF_LINK_CREATE: libc::c_long = 28;
    const BPF_PROG_TYPE_XDP: u32 = 6;
    const BPF_XDP: u32 = 37;
    const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
    // r0 = XDP_PASS (2); exit
    let insns: [u64; 2] = [0x0000_0002_0000_00b7, 0x0000_0000_0000_0095];
    let license = c"GPL";
    // union bpf_attr, the prog_load member up to expected_attach_type.
    let mut load = [0u32; 30];
    load[0] = BPF_PROG_TYPE_XDP;
    load[1] = insns.len() as u32;
    load[2..4].copy_from_slice(&split(insns.as_ptr() as u64));
    load[4..6].copy_from_slice(&split(license.as_ptr() as u64));
    load[17] = BPF_XDP; // expected_attach_type, after prog_name[16] and prog_ifindex
    let prog = sys_bpf(BPF_PROG_LOAD, &mut load)?;
    // The link_create member: prog_fd, target_ifindex, attach_type, flags.
    let mut link = [0u32; 16];
    link[0] = std::os::fd::AsRawFd::as_raw_fd(&prog) as u32;
    link[1] = ifindex;
    link[2] = BPF_XDP;
    link[3] = XDP_FLAGS_DRV_MODE;
    let link = sys_bpf(BPF_LINK_CREATE, &mut link)?;
    drop(link);
    drop(prog);
    Ok(())
}

fn split(v: u64) -> [u32; 2] {
    [v as u32, (v >> 32) as u32]
}

fn sys_bpf(cmd: libc::c_long, attr: &mut [u32]) -> std::io::Result<OwnedFd> {
    // SAFETY: `attr` is a zero-padded bpf_attr prefix for `cmd`; the
    // pointers in it stay valid for the call.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), std::mem::size_of_val(attr) as u32) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new descriptor the kernel gave us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}
