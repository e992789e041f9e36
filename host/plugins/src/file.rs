//! Reading a plugin file: only a regular file, of bounded size, from where
//! plugins may come.
//!
//! A rule names its plugin by path, and whoever holds the API key writes
//! rules; without this module that key would read any file the server can
//! (`/etc/shadow`, `/proc/self/environ`) or hang the server on one that
//! never ends (`/dev/zero`, a FIFO). [`PluginFiles`] resolves the path
//! (symlinks and `..` included) and refuses it unless it lies under the
//! plugins directory; it opens without blocking and without following a
//! final symlink, checks on the open file that it is a regular file no
//! larger than the limit, and reads at most that many bytes. A refusal of
//! a path outside the directory reads the same whether that path exists or
//! not, and no message ever quotes a file's bytes.

use std::io::Read;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use super::PluginError;

/// Largest plugin file read unless configured (a Python guest is ~20 MB).
pub const DEFAULT_MAX_PLUGIN_BYTES: u64 = 64 << 20;

/// Where plugin files may be read from, and how large they may be.
#[derive(Debug, Clone)]
pub struct PluginFiles {
    /// The plugins directory (absolute, resolved on each use, so one
    /// created after start counts); `None`: anywhere (the `runhook plugin`
    /// commands, run by the operator on their own files).
    root: Option<PathBuf>,
    max_bytes: u64,
}

impl PluginFiles {
    /// Files anywhere the process can read, up to `max_bytes`.
    pub fn anywhere(max_bytes: u64) -> Self {
        Self { root: None, max_bytes }
    }

    /// Files under `dir` only, up to `max_bytes`. A relative `dir` is taken
    /// from the working directory now; while it does not exist, no plugin
    /// file can be read.
    pub fn under(dir: &Path, max_bytes: u64) -> Self {
        let root = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        Self { root: Some(root), max_bytes }
    }

    /// The plugins directory, when plugins are restricted to one.
    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// The canonical path of `path`, if it may be read: the key a plugin
    /// in use is known by.
    pub fn resolve(&self, name: &str, path: &Path) -> Result<PathBuf, PluginError> {
        let outside = || unreadable(name, path, self.where_());
        let canonical = match std::fs::canonicalize(path) {
            Ok(p) => p,
            Err(e) if self.root.is_none() => return Err(unreadable(name, path, io_reason(&e))),
            Err(_) => return Err(outside()),
        };
        match &self.root {
            Some(root) if !std::fs::canonicalize(root).is_ok_and(|root| canonical.starts_with(root)) => Err(outside()),
            _ => Ok(canonical),
        }
    }

    /// Reads the plugin at `path` (see the module doc).
    pub fn read(&self, name: &str, path: &Path) -> Result<Vec<u8>, PluginError> {
        let canonical = self.resolve(name, path)?;
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::open(&canonical, flags, Mode::empty())
            .map_err(|e| unreadable(name, path, io_reason(&e.into())))?;
        let mut file = std::fs::File::from(fd);
        let meta = file.metadata().map_err(|e| unreadable(name, path, io_reason(&e)))?;
        if !meta.is_file() {
            return Err(unreadable(name, path, "it is not a regular file".into()));
        }
        let too_large = || unreadable(name, path, format!("it is larger than the limit of {} bytes", self.max_bytes));
        if meta.len() > self.max_bytes {
            return Err(too_large());
        }
        let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        // The file may grow while being read: never read past the limit.
        (&mut file)
            .take(self.max_bytes + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| unreadable(name, path, io_reason(&e)))?;
        if bytes.len() as u64 > self.max_bytes {
            return Err(too_large());
        }
        Ok(bytes)
    }

    fn where_(&self) -> String {
        match &self.root {
            Some(root) => format!("plugins must be regular files under the plugins directory {}", root.display()),
            None => "it does not exist".into(),
        }
    }
}

fn unreadable(name: &str, path: &Path, reason: String) -> PluginError {
    PluginError::Read { plugin: name.to_string(), path: path.to_path_buf(), reason }
}

/// An I/O error as a reason, without the OS's text (which can differ
/// between "exists" and "does not").
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "it does not exist".into(),
        std::io::ErrorKind::PermissionDenied => "the server may not read it".into(),
        _ if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => "it is a symbolic link".into(),
        _ => format!("it cannot be read ({})", e.kind()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn reason(files: &PluginFiles, path: &Path) -> String {
        files.read("p", path).unwrap_err().to_string()
    }

    #[test]
    fn only_regular_bounded_files_under_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("ok.wasm");
        std::fs::write(&ok, b"\0asm....").unwrap();
        let big = dir.path().join("big.wasm");
        std::fs::write(&big, vec![0u8; 100]).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link.wasm")).unwrap();
        let files = PluginFiles::under(dir.path(), 64);
        assert_eq!(files.read("p", &ok).unwrap(), b"\0asm....");
        assert!(reason(&files, &big).contains("larger than the limit of 64 bytes"));
        assert!(reason(&files, dir.path()).contains("not a regular file"));
        // Outside, through a symlink, `..`, existing or not: one answer.
        let outside = [
            dir.path().join("link.wasm"),
            dir.path().join("../../../../etc/passwd"),
            PathBuf::from("/etc/passwd"),
            PathBuf::from("/etc/no-such-file"),
            PathBuf::from("/dev/zero"),
        ];
        let answers: Vec<String> =
            outside.iter().map(|p| reason(&files, p).replace(&p.display().to_string(), "PATH")).collect();
        assert!(answers.iter().all(|a| a == &answers[0]), "{answers:#?}");
        assert!(answers[0].contains("not a readable plugin file"), "{}", answers[0]);
    }

    #[test]
    fn devices_and_fifos_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.wasm");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let anywhere = PluginFiles::anywhere(DEFAULT_MAX_PLUGIN_BYTES);
        assert!(reason(&anywhere, &fifo).contains("not a regular file"));
        assert!(reason(&anywhere, Path::new("/dev/zero")).contains("not a regular file"));
        assert!(reason(&anywhere, Path::new("/nonexistent.wasm")).contains("does not exist"));
    }
}
