//! fail2ban in the lab: a private fail2ban-server in the edge namespace
//! with a copy of Debian's configuration and one jail on Kamailio's log.

use std::{path::Path, process::Command, time::Duration};

use super::{sh, Lab, Proc};

/// The jail's name.
pub const JAIL: &str = "kamailio-auth";

impl Lab {
    /// Starts fail2ban-server with one jail, `kamailio-auth`, on the log
    /// file `log` (Kamailio's, see [`Lab::start_kamailio_logging_to`]),
    /// matching `failregex`, with the jail settings `jail` (maxretry,
    /// the action...); the repository's `contrib/fail2ban/action.d/`
    /// actions are installed beside Debian's. Returns once the jail runs.
    pub fn start_fail2ban(&self, log: &Path, failregex: &str, jail: &str) -> Proc {
        let dir = self.dir.join("fail2ban");
        let _ = std::fs::remove_dir_all(&dir);
        sh(Command::new("cp").args(["-r", "/etc/fail2ban"]).arg(&dir));
        // Debian's own jails (sshd) are not part of the tests.
        let _ = std::fs::remove_dir_all(dir.join("jail.d"));
        std::fs::create_dir_all(dir.join("jail.d")).expect("jail.d");
        let contrib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/fail2ban/action.d");
        for action in std::fs::read_dir(&contrib).expect("contrib/fail2ban/action.d") {
            let action = action.expect("entry").path();
            std::fs::copy(&action, dir.join("action.d").join(action.file_name().expect("name"))).expect("copy action");
        }
        write(
            &dir.join("fail2ban.local"),
            &format!(
                "[Definition]\nloglevel = INFO\nlogtarget = {}\nsocket = {}\npidfile = {}\ndbfile = :memory:\n",
                dir.join("server.log").display(),
                dir.join("server.sock").display(),
                dir.join("server.pid").display()
            ),
        );
        // Kamailio's log to stderr has no timestamps: fail2ban stamps lines
        // with the time it reads them.
        write(
            &dir.join(format!("filter.d/{JAIL}.conf")),
            &format!("[Definition]\nfailregex = {failregex}\ndatepattern = {{NONE}}\n"),
        );
        write(
            &dir.join("jail.local"),
            &format!(
                "[{JAIL}]\nenabled = true\nfilter = {JAIL}\nlogpath = {}\nbackend = polling\nfindtime = 60\n{jail}",
                log.display()
            ),
        );
        let mut server = Proc::spawn(
            "fail2ban-server",
            Command::new("ip").args(["netns", "exec", &self.edge, "fail2ban-server", "-f", "-x", "-c"]).arg(&dir),
        );
        let started = format!("Jail '{JAIL}' started");
        server.wait_until("its jail started", Duration::from_secs(30), || {
            std::fs::read_to_string(dir.join("server.log")).unwrap_or_default().contains(&started)
        });
        server
    }

    /// fail2ban-client against the lab's server; its output.
    pub fn fail2ban_client(&self, args: &[&str]) -> String {
        let socket = self.dir.join("fail2ban/server.sock");
        let out = sh(Command::new("fail2ban-client").arg("-s").arg(socket).args(args));
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// fail2ban's own log so far.
    pub fn fail2ban_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("fail2ban/server.log")).unwrap_or_default()
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
    std::fs::write(path, text).expect("write");
}
