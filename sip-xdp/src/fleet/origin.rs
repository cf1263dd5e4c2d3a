//! Which edge a ban in this kernel came from, for `ban list` (a separate
//! process) and for the daemon after a restart. A bpffs holds no regular
//! files, but it holds directories and symlinks: `DIR/fleet/<source>` is a
//! symlink whose target is the origin's node name. Nothing follows them.

use std::path::PathBuf;

use crate::pin::PinDir;

pub struct Origins {
    dir: PathBuf,
}

/// `/` cannot be in a file name, and a bpffs refuses names with dots
/// (reserved for itself); `_` and `-` are in no address or prefix.
fn file_name(source: &str) -> String {
    source.replace('/', "_").replace('.', "-")
}

fn source_of(file_name: &str) -> String {
    file_name.replace('_', "/").replace('-', ".")
}

impl Origins {
    pub fn new(pins: &PinDir) -> Origins {
        Origins { dir: pins.root().join("fleet") }
    }

    /// The origin of the ban of `source` (as `ban list` names it), if it
    /// came from another edge.
    pub fn get(&self, source: &str) -> Option<String> {
        let target = std::fs::read_link(self.dir.join(file_name(source))).ok()?;
        target.to_str().map(str::to_string)
    }

    pub fn set(&self, source: &str, origin: &str) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.dir.join(file_name(source));
        let _ = std::fs::remove_file(&path);
        std::os::unix::fs::symlink(origin, path)
    }

    pub fn clear(&self, source: &str) {
        let _ = std::fs::remove_file(self.dir.join(file_name(source)));
    }

    /// Every recorded origin: source and node.
    pub fn all(&self) -> Vec<(String, String)> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return Vec::new() };
        entries
            .flatten()
            .filter_map(|e| {
                let source = source_of(&e.file_name().into_string().ok()?);
                let node = std::fs::read_link(e.path()).ok()?.to_str()?.to_string();
                Some((source, node))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_round_trip_through_symlinks() {
        let dir = std::env::temp_dir().join(format!("sip-xdp-origins-{}", std::process::id()));
        let o = Origins::new(&PinDir::new(&dir));
        assert_eq!(o.get("198.18.2.2"), None);
        o.set("198.18.2.2", "edge-b").unwrap();
        o.set("2001:2:0:1::/64", "edge-c").unwrap();
        o.set("198.18.2.2", "edge-d").unwrap();
        assert_eq!(o.get("198.18.2.2").as_deref(), Some("edge-d"), "replaced");
        let mut all = o.all();
        all.sort();
        assert_eq!(all, [("198.18.2.2".into(), "edge-d".into()), ("2001:2:0:1::/64".into(), "edge-c".into())]);
        o.clear("198.18.2.2");
        assert_eq!(o.get("198.18.2.2"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
