//! Which script a request runs: resolved by the host, so a script name that
//! leaves the document root, or a script that does not exist, is a 404
//! without a round trip.

use std::path::PathBuf;

use super::super::static_files::relative_path;
use super::FastCgi;

/// The script a request runs.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Script {
    /// URL path of the script, e.g. `/blog/index.php`.
    pub(super) name: String,
    pub(super) path_info: String,
    pub(super) filename: PathBuf,
}

impl FastCgi {
    /// Maps the URL path to a script under the root, or `None` for a 404.
    pub(super) fn script(&self, url_path: &str) -> Option<Script> {
        let decoded = percent_encoding::percent_decode_str(url_path)
            .decode_utf8()
            .ok()?;
        let ext = self.s.extension.as_str();
        let (mut name, path_info) = match decoded.find(&format!("{ext}/")) {
            Some(i) if self.s.split_path_info => {
                let end = i + ext.len();
                (decoded[..end].to_string(), decoded[end..].to_string())
            }
            _ => (decoded.to_string(), String::new()),
        };
        if name.ends_with('/') {
            let dir = name.clone();
            for index in &self.s.index {
                let candidate = format!("{dir}{index}");
                if !self.s.check_exists || self.existing(&candidate).is_some() {
                    name = candidate;
                    break;
                }
            }
        }
        let found = if !name.ends_with(ext) {
            None
        } else if self.s.check_exists {
            self.existing(&name)
        } else {
            decoded_relative(&name).map(|rel| self.s.root.join(rel))
        };
        let Some(filename) = found else {
            let front = self.s.front_controller.as_ref()?;
            let filename = self.existing(front)?;
            return Some(Script {
                name: front.clone(),
                path_info: String::new(),
                filename,
            });
        };
        Some(Script {
            name,
            path_info,
            filename,
        })
    }

    /// The file `name` (a decoded URL path) names under the root, if it
    /// exists there. Synchronous: a few cached metadata syscalls cost less
    /// than handing them to the blocking pool.
    fn existing(&self, name: &str) -> Option<PathBuf> {
        if let Some(found) = self.resolved.get(name) {
            return found;
        }
        let found = (|| {
            let real = std::fs::canonicalize(self.s.root.join(decoded_relative(name)?)).ok()?;
            let meta = std::fs::metadata(&real).ok()?;
            (real.starts_with(&self.s.root) && meta.is_file()).then_some(real)
        })();
        self.resolved.insert(name.to_string(), found.clone());
        found
    }
}

/// A decoded URL path as a path under the root (escaping `%` so that
/// nothing is decoded twice).
fn decoded_relative(name: &str) -> Option<PathBuf> {
    relative_path(&name.replace('%', "%25"))
}

#[cfg(test)]
mod tests {
    use super::super::{test_settings, FastCgi};

    #[test]
    fn script_resolution_stays_in_the_root() {
        let dir = std::env::temp_dir().join(format!("kavro-fcgi-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("blog")).unwrap();
        std::fs::write(dir.join("index.php"), "").unwrap();
        std::fs::write(dir.join("blog/post.php"), "").unwrap();
        let f = FastCgi::new(test_settings(dir.clone()).validated().unwrap());
        let s = f.script("/blog/post.php/a/b").unwrap();
        assert_eq!(
            (s.name.as_str(), s.path_info.as_str()),
            ("/blog/post.php", "/a/b")
        );
        assert_eq!(f.script("/").unwrap().name, "/index.php");
        assert!(f.script("/missing.php").is_none());
        assert!(f.script("/../etc/passwd.php").is_none());
        assert!(f.script("/%2e%2e/x.php").is_none());
        assert!(f.script("/style.css").is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
