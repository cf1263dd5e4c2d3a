//! Errors that are the user's to fix (bad config, bad argument) exit with
//! status 2 and a message that says where and why; everything else exits 1.
//! A `run` that hands over (SIGUSR2) exits with [`HANDED_OVER`].

use std::fmt;

/// The exit status of a `run` that left the filter in force on SIGUSR2
/// (sysexits' EX_TEMPFAIL: "try again"). The packaged unit restarts on it
/// (`RestartForceExitStatus=`), so the new start adopts the filter.
pub const HANDED_OVER: i32 = 75;

/// Bad input: a config file, an allowlist file or a command-line argument.
#[derive(Debug)]
pub struct UserError(pub String);

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UserError {}

/// Shorthand for returning a [`UserError`] through `anyhow`.
pub fn user_error(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UserError(msg.into()))
}

/// The process exit status for an error.
pub fn exit_status(err: &anyhow::Error) -> i32 {
    if err.chain().any(|e| e.is::<UserError>()) {
        2
    } else {
        1
    }
}
