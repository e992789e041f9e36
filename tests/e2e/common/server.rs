//! The real `runhook serve` binary on an ephemeral port, with a temporary
//! data directory that survives restarts of the same `Server`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use super::runhook;

/// The API key every test server uses.
pub const API_KEY: &str = "rh_test_key_0123456789abcdef";

/// A running server.
pub struct Server {
    child: Child,
    /// Base URL, e.g. `http://127.0.0.1:43567`.
    pub url: String,
    data: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts a server on a fresh data directory.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut s = Self::start_on(&data, &[]);
        s._dir = Some(dir);
        s
    }

    /// Starts a server on a fresh data directory with extra environment
    /// variables and, when given, the open-file limit set to `files`.
    pub fn start_with(env: &[(&str, &str)], files: Option<u32>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut s = Self::launch(&data, env, files);
        s._dir = Some(dir);
        s
    }

    /// Starts a server on `data` with extra environment variables.
    pub fn start_on(data: &Path, env: &[(&str, &str)]) -> Self {
        Self::launch(data, env, None)
    }

    fn launch(data: &Path, env: &[(&str, &str)], files: Option<u32>) -> Self {
        let mut cmd = match files {
            None => runhook(),
            Some(n) => {
                // The shell lowers the limit (soft and hard), then becomes runhook.
                let mut sh = std::process::Command::new("sh");
                sh.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(runhook().get_program())
                    .env_remove("RUNHOOK_PLUGIN_CACHE_DIR")
                    .env("NO_COLOR", "1");
                sh
            }
        };
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .env("RUNHOOK_API_KEY", API_KEY)
            // Receivers in tests listen on loopback, which webhooks may not
            // reach by default.
            .env("RUNHOOK_ALLOW_NETWORKS", "127.0.0.0/8")
            // Rules name plugins built under the repository's plugins/.
            .env("RUNHOOK_PLUGINS_DIR", super::repo().join("plugins"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(url) = database_for(data) {
            // Replicas share no data directory: the keys come from a file
            // named explicitly (here, one per test server).
            cmd.env("RUNHOOK_DATABASE_URL", url).env("RUNHOOK_SECRET_KEY_FILE", data.join("secret.key"));
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start runhook serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().rsplit(' ').next().unwrap_or_default().to_string();
        assert!(url.starts_with("http://"), "runhook did not report its address: {line:?}");
        Server { child, url, data: data.to_path_buf(), _dir: None }
    }

    /// Kills the process (SIGKILL, no shutdown) and starts it again on the
    /// same data directory.
    pub fn crash_and_restart(mut self) -> Self {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let dir = self._dir.take();
        let mut s = Self::start_on(&self.data, &[]);
        s._dir = dir;
        s
    }

    /// The server's peak resident memory so far (VmHWM), in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM in /proc/PID/status");
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib * 1024
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`KILL`, `STOP`, `CONT`) to the server.
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill").arg(format!("-{signal}")).arg(self.pid().to_string()).status();
        assert!(status.unwrap().success(), "kill -{signal} failed");
    }

    /// The `host:port` the server listens on.
    pub fn addr(&self) -> String {
        self.url.trim_start_matches("http://").to_string()
    }

    /// `url` + `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// A client that sends the API key.
    pub fn client(&self) -> reqwest::blocking::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-api-key", API_KEY.parse().unwrap());
        reqwest::blocking::Client::builder().default_headers(headers).build().unwrap()
    }
}

/// The Postgres database a server on `data` uses when the suite runs on
/// Postgres (`RUNHOOK_E2E_DATABASE` names a server, as `tests/run.sh` sets
/// it for its second pass): one database per data directory, created on
/// first use, so a restarted server finds what it stored.
pub fn database_for(data: &Path) -> Option<String> {
    use std::hash::{Hash, Hasher};
    let server = std::env::var("RUNHOOK_E2E_DATABASE").ok().filter(|s| !s.is_empty())?;
    let mut hash = std::collections::hash_map::DefaultHasher::new();
    data.hash(&mut hash);
    let name = format!("e2e_{:016x}", hash.finish());
    let out = std::process::Command::new("psql")
        .arg(&server)
        .args(["-qXc", &format!("CREATE DATABASE {name}")])
        .output()
        .expect("psql runs (Postgres's client is installed with its server)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() || stderr.contains("already exists"), "cannot create database {name}: {stderr}");
    let base = server.rsplit_once('/').map_or(server.as_str(), |(base, _)| base);
    Some(format!("{base}/{name}"))
}

/// A new, empty database named after `prefix` on the Postgres server
/// `server` (a URL ending in a database name); its URL.
pub fn fresh_database(server: &str, prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let name = format!("{prefix}_{}_{nanos}", std::process::id());
    let out =
        std::process::Command::new("psql").arg(server).args(["-qXc", &format!("CREATE DATABASE {name}")]).output();
    assert!(out.unwrap().status.success(), "cannot create {name}");
    format!("{}/{name}", server.rsplit_once('/').unwrap().0)
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
