//! Error messages that name the file, the line and the key, for every
//! section's validation.

use std::{ops::Range, path::Path};

use serde::{de::Error as _, Deserialize, Deserializer};
use sip_xdp_common::ClosedSet;
use toml::Spanned;

use crate::error::user_error;

/// The config's path and text, to locate what a section refuses.
pub struct Source<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl Source<'_> {
    /// A [`UserError`](crate::error::UserError) at `span` (a default value
    /// has no place in the file: the message names the key only).
    pub fn error(&self, span: Range<usize>, key: &str, msg: impl std::fmt::Display) -> anyhow::Error {
        if span.is_empty() && span.start == 0 {
            user_error(format!("{}: key `{key}`: {msg}", self.path.display()))
        } else {
            let (line, col) = line_col(self.text, span.start);
            user_error(format!("{}:{line}:{col}: key `{key}`: {msg}", self.path.display()))
        }
    }

    /// An error about the file as a whole.
    pub fn whole(&self, msg: impl std::fmt::Display) -> anyhow::Error {
        user_error(format!("{}: {msg}", self.path.display()))
    }

    /// The contents of the file `file` names (relative to the config
    /// file), without the trailing newline: a password, a token, a key.
    /// A missing or empty file is an error here, at load.
    pub fn secret_file(&self, file: &Spanned<String>, key: &str) -> anyhow::Result<String> {
        let path = self.path.parent().unwrap_or(Path::new(".")).join(file.get_ref());
        let text = std::fs::read_to_string(&path)
            .map_err(|e| self.error(file.span(), key, format!("cannot read {}: {e}", path.display())))?;
        let secret = text.trim_end_matches(['\n', '\r']).to_string();
        if secret.is_empty() {
            return Err(self.error(file.span(), key, format!("{} is empty", path.display())));
        }
        Ok(secret)
    }

    /// The widest prefix a ban from outside may have, for IPv4 (`/1`-`/32`)
    /// or IPv6 (`/1`-`/128`).
    pub fn prefix_len(&self, v: &Spanned<i64>, key: &str, max: i64) -> anyhow::Result<u8> {
        Ok(self.positive(v, key, max)? as u8)
    }

    /// An integer in `1..=max`.
    pub fn positive(&self, v: &Spanned<i64>, key: &str, max: i64) -> anyhow::Result<u64> {
        let n = *v.get_ref();
        if !(1..=max).contains(&n) {
            return Err(self.error(v.span(), key, format!("{n} is out of range (1-{max})")));
        }
        Ok(n as u64)
    }
}

/// A value of a closed set (`mode = "monitor"`), read by its name; serde
/// reports any other name with the list of accepted ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Named<T>(pub T);

impl<'de, T: ClosedSet> Deserialize<'de> for Named<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        T::from_name(&name).map(Named).ok_or_else(|| D::Error::unknown_variant(&name, T::NAMES))
    }
}

/// A default value, which has no place in the file.
pub fn default<T>(value: T) -> Spanned<T> {
    Spanned::new(0..0, value)
}

/// The longest duration any key accepts: a year, in seconds.
pub const YEAR: i64 = 366 * 86_400;

/// 1-based line and column of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(before.len(), |nl| before.len() - nl - 1) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}
