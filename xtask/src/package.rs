//! `cargo xtask package`: the Debian package, built by cargo-deb from
//! `[package.metadata.deb]` in `sip-xdp/Cargo.toml`.
//!
//! cargo-deb copies files; what is generated is written here first, under
//! the target directory's `release/package/` (the assets name it
//! `target/release/package/...`, a prefix cargo-deb maps to the real target
//! directory): a man page per command and subcommand, and the bash, zsh and
//! fish completions, all from `sip-xdp-cli`, the same definition the binary
//! parses its arguments with. That crate has clap as its only dependency,
//! so this needs no eBPF build.

use std::{
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{bail, Context as _, Result};
use clap_complete::Shell;
use clap_mangen::{roff::Roff, Man};

use crate::{build, cargo, run_cmd, step, target_dir};

/// The section of every page: `sip-xdp` lives in /usr/sbin, the system
/// administrator's commands.
const MAN_SECTION: &str = "8";

/// Writes the generated assets, builds the release binary and the
/// package; returns the package's path.
pub fn package(root: &Path) -> Result<PathBuf> {
    let assets = target_dir(root).join("release").join("package");
    step("package 1/3: man pages and shell completions from the CLI definition (sip-xdp-cli)");
    let man = assets.join("man");
    let pages = write_man_pages(&man)?;
    // Debian ships man pages compressed; cargo-deb compresses only the
    // files it does not consider built, and these are under the target
    // directory. -n: no name or time inside, the same bytes every build.
    run_cmd(Command::new("gzip").args(["-9", "-n", "-f"]).args(&pages).current_dir(&man))?;
    eprintln!("    {} man pages in {}", pages.len(), man.display());
    let completions = write_completions(&assets.join("completions"))?;
    eprintln!("    completions: {}", completions.join(", "));
    step("package 2/3: the release binary, with the XDP programs built in");
    build(root, true)?;
    step("package 3/3: cargo-deb");
    let out = cargo()
        .current_dir(root)
        .args(["deb", "--package", "sip-xdp", "--no-build"])
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run cargo deb (cargo xtask setup installs it)")?;
    if !out.status.success() {
        bail!("cargo deb failed ({})", out.status);
    }
    // cargo-deb prints the package's path last.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let deb = stdout.lines().rev().map(str::trim).find(|l| l.ends_with(".deb")).map(PathBuf::from);
    match deb {
        Some(deb) if deb.is_file() => {
            eprintln!("    built {}", deb.display());
            Ok(deb)
        }
        _ => bail!("cargo deb named no package it built:\n{stdout}"),
    }
}

/// One page per command and subcommand (`sip-xdp.8`, `sip-xdp-run.8`,
/// `sip-xdp-allow-add.8`, ...), with the sections of
/// [`sip_xdp_cli::MAN_SECTIONS`] after clap's. Returns the file names.
pub fn write_man_pages(dir: &Path) -> Result<Vec<String>> {
    // Stale pages of commands that are gone must not be packaged.
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut cmd = sip_xdp_cli::command().disable_help_subcommand(true);
    // Gives every subcommand its display name (`sip-xdp-allow-add`).
    cmd.build();
    // Subcommands have no version of their own: every page names the
    // program's.
    let source = format!("sip-xdp {}", cmd.get_version().unwrap_or_default());
    let mut written = Vec::new();
    write_page(&cmd, &source, dir, &mut written)?;
    Ok(written)
}

fn write_page(cmd: &clap::Command, source: &str, dir: &Path, written: &mut Vec<String>) -> Result<()> {
    let name = cmd.get_display_name().unwrap_or_else(|| cmd.get_name()).to_string();
    let man = Man::new(cmd.clone()).section(MAN_SECTION).source(source).manual("System Manager's Manual");
    let mut page = Vec::new();
    man.render(&mut page)?;
    let mut extra = Roff::default();
    for (_, heading, paragraphs) in sip_xdp_cli::MAN_SECTIONS.iter().filter(|(page, _, _)| *page == name) {
        extra.control("SH", [*heading]);
        for paragraph in paragraphs.iter() {
            extra.control("PP", []).text([clap_mangen::roff::roman(*paragraph)]);
        }
    }
    extra.to_writer(&mut page)?;
    let file = format!("{name}.{MAN_SECTION}");
    fs::write(dir.join(&file), page).with_context(|| format!("cannot write {file}"))?;
    written.push(file);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_page(sub, source, dir, written)?;
    }
    Ok(())
}

/// bash, zsh and fish completions, under the names their packaged places
/// expect (`sip-xdp.bash` is renamed `sip-xdp` by the asset list).
pub fn write_completions(dir: &Path) -> Result<Vec<String>> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    for (shell, file) in [(Shell::Bash, "sip-xdp.bash"), (Shell::Zsh, "_sip-xdp"), (Shell::Fish, "sip-xdp.fish")] {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut sip_xdp_cli::command(), "sip-xdp", &mut script);
        if shell == Shell::Bash {
            script = fix_bash_states(&String::from_utf8(script)?).into_bytes();
        }
        let mut f = fs::File::create(dir.join(file)).with_context(|| format!("cannot write {file}"))?;
        f.write_all(&script)?;
        written.push(file.to_string());
    }
    Ok(written)
}

/// clap_complete (4.6.11, clap-rs/clap#6421) spells the states of the
/// bash script two ways for a name with a hyphen: the loop over the words
/// reaches `sip__xdp__subcmd__run`, the arms that complete each command's
/// options are labelled `sip__subcmd__xdp__subcmd__run`, so no option of
/// any subcommand would complete. The arms are relabelled as the loop
/// spells them.
fn fix_bash_states(script: &str) -> String {
    script.replace("sip__subcmd__xdp__subcmd__", "sip__xdp__subcmd__")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-package-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_page_for_every_command_and_subcommand_and_no_stale_ones() {
        let dir = scratch("man");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("sip-xdp-gone.8"), "a page of a command that is no more").unwrap();
        let pages = write_man_pages(&dir).unwrap();
        for page in ["sip-xdp.8", "sip-xdp-run.8", "sip-xdp-detach.8", "sip-xdp-allow-add.8", "sip-xdp-ban-list.8"] {
            assert!(pages.iter().any(|p| p == page), "{page} in {pages:?}");
        }
        assert!(!pages.iter().any(|p| p.contains("help")), "no page for clap's help subcommand: {pages:?}");
        assert!(!dir.join("sip-xdp-gone.8").exists());
        let run = fs::read_to_string(dir.join("sip-xdp-run.8")).unwrap();
        let version = env!("CARGO_PKG_VERSION");
        assert!(run.contains(&format!("\n.TH sip-xdp-run 8  \"sip-xdp {version}\"")), "{run}");
        for heading in ["SYNOPSIS", "OPTIONS", "SIGNALS", "SYSTEMD"] {
            assert!(run.contains(&format!(".SH {heading}")), "sip-xdp-run.8 has {heading}");
        }
        assert!(run.contains("\\-\\-egress\\-attach"), "the flags are there");
        let top = fs::read_to_string(dir.join("sip-xdp.8")).unwrap();
        assert!(top.contains(".SH FILES") && top.contains("sip\\-xdp\\-run(8)"), "{top}");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn completions_name_the_subcommands() {
        let dir = scratch("completions");
        write_completions(&dir).unwrap();
        for file in ["sip-xdp.bash", "_sip-xdp", "sip-xdp.fish"] {
            let script = fs::read_to_string(dir.join(file)).unwrap();
            assert!(script.contains("check-config") && script.contains("detach"), "{file}");
        }
        // Every state the bash loop reaches has its arm (the behaviour is
        // checked by completing in bash, in host_package).
        let bash = fs::read_to_string(dir.join("sip-xdp.bash")).unwrap();
        assert!(!bash.contains("sip__subcmd__xdp"), "clap-rs/clap#6421 worked around");
        for state in ["sip__xdp__subcmd__run", "sip__xdp__subcmd__allow__subcmd__add"] {
            assert!(
                bash.contains(&format!("cmd=\"{state}\"")) && bash.contains(&format!("        {state})")),
                "{state}"
            );
        }
        fs::remove_dir_all(dir).unwrap();
    }
}
