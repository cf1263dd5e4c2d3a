//! The Debian package as `cargo xtask package` builds it, checked without
//! installing it: every file it holds and where (`dpkg-deb -c`), its one
//! conffile, its control fields and maintainer scripts, the unit (`systemd-
//! analyze verify`, and the settings the service depends on), a man page
//! per command that `man` renders and groff reads without a warning,
//! completions that bash, zsh and fish load and that complete, and the
//! shipped config, parsed by the controller's own parser: monitor mode and
//! no interface, so installing filters nothing. What the package does when
//! installed on a booted Debian 12 is the VM test's (tests/vm/).
//!
//! Builds the package (release) on first use: minutes when the release
//! build is cold.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::OnceLock,
};

use sip_xdp::config::Config;
use sip_xdp_common::kernel_config::Mode;

struct Package {
    deb: PathBuf,
    /// The data part, unpacked (`dpkg-deb -x`).
    root: PathBuf,
    /// The control part, unpacked (`dpkg-deb -e`).
    control: PathBuf,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8(run(cmd).stdout).expect("utf-8")
}

/// Built once for all the tests of this file.
fn package() -> &'static Package {
    static PACKAGE: OnceLock<Package> = OnceLock::new();
    PACKAGE.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        // The xtask's progress goes to stderr (shown if the test fails);
        // its stdout is the package's path.
        let built = stdout(Command::new(cargo).current_dir(workspace()).args(["xtask", "package"]));
        let deb = PathBuf::from(built.trim());
        let name = deb.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        assert!(
            name.starts_with(&format!("sip-xdp_{}", env!("CARGO_PKG_VERSION"))) && name.ends_with("_amd64.deb"),
            "{}",
            deb.display()
        );
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("host_package-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (root, control) = (dir.join("root"), dir.join("control"));
        std::fs::create_dir_all(&root).expect("unpack directory");
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
        run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
        Package { deb, root, control }
    })
}

/// Every command and subcommand's page name: `sip-xdp`, `sip-xdp-run`,
/// `sip-xdp-allow-add`, ...
fn commands() -> Vec<(String, String)> {
    fn walk(cmd: &clap::Command, prefix: &str, out: &mut Vec<(String, String)>) {
        let name = if prefix.is_empty() { cmd.get_name().to_string() } else { format!("{prefix}-{}", cmd.get_name()) };
        out.push((name.clone(), cmd.get_about().map(|a| a.to_string()).unwrap_or_default()));
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            walk(sub, &name, out);
        }
    }
    let mut out = Vec::new();
    walk(&sip_xdp::cli::command(), "", &mut out);
    out
}

#[test]
fn the_package_holds_the_binary_unit_config_docs_and_shared_files_and_nothing_else() {
    let listing = stdout(Command::new("dpkg-deb").arg("-c").arg(&package().deb));
    let mut files = BTreeSet::new();
    for line in listing.lines() {
        // -rwxr-xr-x 0/0   1234 2024-01-01 00:00 ./usr/sbin/sip-xdp
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (mode, owner, path) = (fields[0], fields[1], fields[5]);
        assert!(owner == "0/0" || owner == "root/root", "owned by root: {line}");
        if mode.starts_with('d') {
            continue;
        }
        let path = path.trim_start_matches('.').to_string();
        let want = if path == "/usr/sbin/sip-xdp" { "-rwxr-xr-x" } else { "-rw-r--r--" };
        assert_eq!(mode, want, "{line}");
        files.insert(path);
    }
    let mut expected: BTreeSet<String> = [
        "/usr/sbin/sip-xdp",
        "/etc/sip-xdp/sip-xdp.toml",
        "/usr/lib/systemd/system/sip-xdp.service",
        "/usr/share/bash-completion/completions/sip-xdp",
        "/usr/share/zsh/vendor-completions/_sip-xdp",
        "/usr/share/fish/vendor_completions.d/sip-xdp.fish",
        "/usr/share/doc/sip-xdp/README.md",
        "/usr/share/doc/sip-xdp/copyright",
        "/usr/share/sip-xdp/dashboards/sip-xdp.json",
        "/usr/share/sip-xdp/grafana-provisioning/dashboards/sip-xdp.yml",
        "/usr/share/sip-xdp/grafana-provisioning/datasources/prometheus.yml",
        "/usr/share/sip-xdp/prometheus/sip-xdp.rules.yml",
        "/usr/share/sip-xdp/prometheus/prometheus.yml",
        "/usr/share/sip-xdp/examples/sip-xdp.toml",
        "/usr/share/sip-xdp/examples/trunks.txt",
        "/usr/share/sip-xdp/examples/kamailio-tls.cfg",
        "/usr/share/sip-xdp/api/openapi.json",
        "/etc/fail2ban/action.d/sip-xdp.conf",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    expected.extend(commands().into_iter().map(|(name, _)| format!("/usr/share/man/man8/{name}.8.gz")));
    assert_eq!(files, expected, "dpkg-deb -c:\n{listing}");

    // The shared files are the repository's, unchanged.
    for (shipped, source) in [
        ("usr/share/sip-xdp/dashboards/sip-xdp.json", "grafana/dashboards/sip-xdp.json"),
        ("usr/share/sip-xdp/prometheus/sip-xdp.rules.yml", "prometheus/sip-xdp.rules.yml"),
        ("usr/share/sip-xdp/examples/sip-xdp.toml", "examples/sip-xdp.toml"),
        ("usr/share/sip-xdp/examples/kamailio-tls.cfg", "examples/kamailio-tls.cfg"),
        ("usr/share/sip-xdp/api/openapi.json", "api/openapi.json"),
        ("etc/fail2ban/action.d/sip-xdp.conf", "contrib/fail2ban/action.d/sip-xdp.conf"),
    ] {
        let shipped = std::fs::read(package().root.join(shipped)).unwrap();
        assert!(shipped == std::fs::read(workspace().join(source)).unwrap(), "{source} shipped as is");
    }
}

#[test]
fn the_configs_are_the_conffiles_and_the_control_fields_fit_debian_12() {
    let conffiles = std::fs::read_to_string(package().control.join("conffiles")).expect("a conffiles list");
    let mut conffiles: Vec<&str> = conffiles.lines().collect();
    conffiles.sort();
    // The controller's config, and the fail2ban action (kept across
    // upgrades once an operator has tuned it, removed on purge).
    assert_eq!(conffiles, ["/etc/fail2ban/action.d/sip-xdp.conf", "/etc/sip-xdp/sip-xdp.toml"]);

    let field = |name: &str| stdout(Command::new("dpkg-deb").arg("-f").arg(&package().deb).arg(name));
    assert_eq!(field("Package").trim(), "sip-xdp");
    assert_eq!(field("Architecture").trim(), "amd64");
    // Only what the binary links (computed by dpkg-shlibdeps): nothing of
    // a toolchain, and a glibc that Debian 12's (2.36) satisfies.
    let depends = field("Depends");
    for dep in depends.trim().split(", ") {
        let (name, version) = dep.split_once(' ').unwrap_or((dep, ""));
        assert!(["libc6", "libgcc-s1"].contains(&name), "unexpected dependency {dep} in {depends}");
        if let Some(min) = version.strip_prefix("(>= ").and_then(|v| v.strip_suffix(')')) {
            let min: Vec<u32> = min.split(['.', '-', '~']).filter_map(|p| p.parse().ok()).collect();
            if name == "libc6" {
                assert!(min <= vec![2, 36], "{dep} is newer than Debian 12's glibc");
            }
        }
    }
    assert!(depends.contains("libc6"), "{depends}");
}

#[test]
fn the_maintainer_scripts_stop_on_removal_hand_over_on_upgrade_and_purge_the_pins() {
    let control = &package().control;
    for script in ["postinst", "prerm", "postrm"] {
        run(Command::new("sh").arg("-n").arg(control.join(script)));
    }
    let postinst = std::fs::read_to_string(control.join("postinst")).unwrap();
    let prerm = std::fs::read_to_string(control.join("prerm")).unwrap();
    let postrm = std::fs::read_to_string(control.join("postrm")).unwrap();
    // The generated parts took the place of #DEBHELPER#.
    for (name, text) in [("postinst", &postinst), ("prerm", &prerm), ("postrm", &postrm)] {
        assert!(!text.contains("#DEBHELPER#"), "{name}");
    }
    assert!(postinst.contains("deb-systemd-helper update-state sip-xdp.service"), "{postinst}");
    // Neither started on a first install nor restarted on an upgrade (a
    // restart detaches and attaches again): handed over.
    assert!(!postinst.contains("deb-systemd-invoke"), "{postinst}");
    assert!(postinst.contains("systemctl kill --kill-whom=main --signal=SIGUSR2"), "{postinst}");
    // Stopped (detached) on removal only, then whatever a dead controller
    // left taken off.
    assert!(prerm.contains("[ \"$1\" = remove ]; then\n\tdeb-systemd-invoke stop sip-xdp.service"), "{prerm}");
    let (stop, detach) = (prerm.find("deb-systemd-invoke stop"), prerm.find("/usr/sbin/sip-xdp detach"));
    assert!(stop.is_some() && stop < detach, "{prerm}");
    assert!(postrm.contains("deb-systemd-helper purge sip-xdp.service"), "{postrm}");
    assert!(postrm.contains("rm -rf /sys/fs/bpf/sip-xdp"), "{postrm}");
}

/// The unit's value(s) of `key`.
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    unit.lines().filter_map(|l| l.strip_prefix(&format!("{key}="))).map(String::from).collect()
}

/// `systemd-analyze ARGS` on `unit` as packaged, except that it runs the
/// unpacked binary (verify checks that ExecStart= is executable, and this
/// host has no /usr/sbin/sip-xdp), with the package's man pages for
/// Documentation= (verify looks each up with man).
fn systemd_analyze(args: &[&str], unit: &str) -> (bool, String) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("unit-{}-{}", std::process::id(), args[0]));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sip-xdp.service");
    let bin = package().root.join("usr/sbin/sip-xdp");
    std::fs::write(&path, unit.replace("/usr/sbin/sip-xdp", bin.to_str().unwrap())).unwrap();
    let out = Command::new("systemd-analyze")
        .args(args)
        .arg(&path)
        .env("MANPATH", package().root.join("usr/share/man"))
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .expect("systemd-analyze (Debian package systemd)");
    std::fs::remove_dir_all(&dir).unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), said)
}

#[test]
fn the_unit_verifies_and_runs_the_controller_as_the_package_expects() {
    let path = package().root.join("usr/lib/systemd/system/sip-xdp.service");
    let unit = std::fs::read_to_string(&path).unwrap();
    let (ok, said) = systemd_analyze(&["verify"], &unit);
    assert!(ok && said.trim().is_empty(), "systemd-analyze verify:\n{said}");
    // The check can fail: the same unit with a typo does not pass.
    let (ok, said) = systemd_analyze(&["verify"], &unit.replace("Type=notify", "Type=notfy"));
    assert!(!ok || said.contains("Failed to parse service type"), "a typo passes verify: {said}");
    // The sandbox stays tight: systemd's own exposure score (0 to 10, the
    // threshold is in tenths) at most 3.
    let (ok, said) = systemd_analyze(&["security", "--offline=yes", "--threshold=30"], &unit);
    assert!(ok, "exposure above 3.0:\n{said}");

    let one = |key: &str| {
        let values = unit_values(&unit, key);
        assert_eq!(values.len(), 1, "{key}: {values:?}");
        values[0].clone()
    };
    assert_eq!(one("Type"), "notify");
    assert_eq!(one("After"), "network-online.target");
    assert_eq!(one("Wants"), "network-online.target");
    assert_eq!(one("ExecStart"), "/usr/sbin/sip-xdp run --config /etc/sip-xdp/sip-xdp.toml");
    assert_eq!(one("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(one("Restart"), "on-failure");
    assert_eq!(one("RestartPreventExitStatus"), "2", "a bad config is not restarted");
    // The hand-over status the controller exits with is restarted, and is
    // no failure.
    let handed_over = sip_xdp::error::HANDED_OVER.to_string();
    assert_eq!(one("RestartForceExitStatus"), handed_over);
    assert_eq!(one("SuccessExitStatus"), handed_over);
    for key in ["CapabilityBoundingSet", "AmbientCapabilities"] {
        let caps: BTreeSet<String> = one(key).split(' ').map(String::from).collect();
        assert_eq!(caps, ["CAP_BPF", "CAP_NET_ADMIN", "CAP_PERFMON"].map(String::from).into(), "{key}");
    }
    // The sandbox keeps the pins writable, and bpf(2) callable.
    assert_eq!(one("ProtectSystem"), "strict");
    // Not ProtectKernelTunables=: under it, /sys/fs/bpf stays read-only
    // whatever ReadWritePaths= says (systemd 252), and no pin is made; the
    // tunables are read-only all the same.
    assert!(unit_values(&unit, "ProtectKernelTunables").is_empty());
    assert_eq!(one("ReadOnlyPaths"), "/proc/sys /sys");
    // bpffs: where the default pin directory lives.
    assert_eq!(one("ReadWritePaths"), "/sys/fs/bpf");
    assert!(sip_xdp::pin::DEFAULT_PIN_DIR.starts_with("/sys/fs/bpf/"));
    // /run is read-only under ProtectSystem=strict: the API's socket
    // directory is the unit's own.
    assert_eq!(one("RuntimeDirectory"), "sip-xdp");
    assert_eq!(unit_values(&unit, "SystemCallFilter").last().map(String::as_str), Some("bpf"));
    assert_eq!(one("WantedBy"), "multi-user.target");
}

#[test]
fn the_shipped_config_parses_and_filters_nothing() {
    let config = Config::load(&package().root.join("etc/sip-xdp/sip-xdp.toml")).expect("the shipped config parses");
    assert_eq!(config.filter.mode, Mode::Monitor, "installed in monitor mode");
    assert!(config.interfaces.is_empty(), "attached to nothing until the admin names interfaces");
    // The binary's own check agrees.
    let bin = package().root.join("usr/sbin/sip-xdp");
    let check = stdout(Command::new(&bin).arg("check-config").arg(package().root.join("etc/sip-xdp/sip-xdp.toml")));
    assert!(check.contains("OK: interfaces [],") && check.contains("mode Monitor"), "{check}");
    // The shipped example parses too, its allowlist file beside it.
    let example = Config::load(&package().root.join("usr/share/sip-xdp/examples/sip-xdp.toml")).expect("example");
    assert_eq!(example.filter.mode, Mode::Enforce);
}

#[test]
fn every_command_has_a_man_page_that_renders_without_warnings() {
    let dir = package().root.join("usr/share/man/man8");
    for (name, about) in commands() {
        let page = dir.join(format!("{name}.8.gz"));
        let rendered = stdout(
            Command::new("man").arg("-l").arg(&page).env("MANPAGER", "cat").env("MANWIDTH", "100").env("LANG", "C"),
        );
        assert!(rendered.contains("NAME") && rendered.contains("SYNOPSIS"), "{name}:\n{rendered}");
        let first_words: String = about.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
        assert!(rendered.split_whitespace().collect::<Vec<_>>().join(" ").contains(&first_words), "{name}: {about}");
        // groff's own warnings (bad requests, unknown escapes) on stderr.
        let out =
            run(Command::new("sh").arg("-c").arg(format!("zcat '{}' | groff -man -Tutf8 -ww -z", page.display())));
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{name}: groff warnings");
    }
    let run_page = stdout(
        Command::new("man")
            .arg("-l")
            .arg(dir.join("sip-xdp-run.8.gz"))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .env("LANG", "C"),
    );
    for section in ["SIGNALS", "SYSTEMD", "--egress-attach"] {
        assert!(run_page.contains(section), "sip-xdp-run(8) has {section}:\n{run_page}");
    }
}

#[test]
fn completions_load_in_bash_zsh_and_fish_and_complete_subcommands() {
    let root = &package().root;
    let bash = root.join("usr/share/bash-completion/completions/sip-xdp");
    let zsh = root.join("usr/share/zsh/vendor-completions/_sip-xdp");
    let fish = root.join("usr/share/fish/vendor_completions.d/sip-xdp.fish");
    run(Command::new("bash").arg("-n").arg(&bash));
    run(Command::new("zsh").arg("-n").arg(&zsh));
    run(Command::new("fish").arg("--no-execute").arg(&fish));

    // Loaded, they complete: bash's function for `sip-xdp ba<TAB>` and
    // `sip-xdp run --egr<TAB>`, fish's `complete -C`.
    let complete_bash = |words: &str| {
        let script = format!(
            "source '{}'; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             COMP_LINE='{words}'; COMP_POINT=${{#COMP_LINE}}; \
             $(complete -p sip-xdp | sed -e 's/.*-F \\([^ ]*\\) .*/\\1/') sip-xdp \"${{COMP_WORDS[-1]}}\" \"${{COMP_WORDS[-2]}}\"; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            bash.display()
        );
        stdout(Command::new("bash").arg("-c").arg(script))
    };
    assert_eq!(complete_bash("sip-xdp ba").trim(), "ban");
    assert_eq!(complete_bash("sip-xdp run --egr").trim(), "--egress-attach");
    let fished =
        stdout(Command::new("fish").arg("-c").arg(format!("source '{}'; complete -C 'sip-xdp de'", fish.display())));
    assert!(fished.lines().any(|l| l.starts_with("detach")), "{fished}");
}
