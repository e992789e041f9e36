//! What a plugin instance can reach: the per-store state behind the sandbox.
//!
//! A plugin gets a WASI context with nothing in it: no preopened directories,
//! no environment variables, no arguments, closed stdin, no sockets and no
//! name lookup. Clocks and randomness stay (harmless, and language runtimes
//! need them). Its stdout and stderr go to bounded in-memory buffers that are
//! written to the host log, tagged with the plugin's name, after each call;
//! output beyond the bound is counted, never an error, so a chatty plugin
//! cannot crash itself on a full pipe. The `host.log` import is bounded the
//! same way. A memory limiter enforces the plugin's cap and records that it
//! fired, so a failed call can be reported as "memory cap" rather than as the
//! trap a guest's allocator turns the failure into.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::host;

/// Bytes of stdout (and, separately, stderr) kept per call.
pub const OUTPUT_CAP: usize = 16 * 1024;
/// Log lines kept per call from the `host.log` import.
pub const LOG_LINES_PER_CALL: u32 = 100;
/// Bytes kept of one log line.
pub const LOG_LINE_CAP: usize = 4 * 1024;
/// Table elements an instance may grow to (function tables of big guests).
const TABLE_ELEMENTS_CAP: usize = 1_000_000;

/// Who is running, for log lines: the plugin and, when known, the rule.
#[derive(Debug, Clone)]
pub struct LogTag {
    /// The plugin's name.
    pub plugin: Arc<str>,
    /// What the plugin is working for (a rule id, `cli`, `bench`).
    pub context: Arc<str>,
}

/// The data of one plugin store.
pub struct SandboxState {
    wasi: WasiCtx,
    table: ResourceTable,
    tag: LogTag,
    memory_cap: usize,
    /// Set when the limiter refused a growth; cleared per call.
    pub(crate) memory_exceeded: bool,
    stdout: GuestOutput,
    stderr: GuestOutput,
    log_lines: u32,
    log_dropped: u32,
}

impl std::fmt::Debug for SandboxState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxState")
            .field("tag", &self.tag)
            .field("memory_cap", &self.memory_cap)
            .finish_non_exhaustive()
    }
}

impl SandboxState {
    /// A fresh, empty sandbox for one instance.
    pub(crate) fn new(tag: LogTag, memory_cap: usize) -> Self {
        let stdout = GuestOutput::default();
        let stderr = GuestOutput::default();
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            tag,
            memory_cap,
            memory_exceeded: false,
            stdout,
            stderr,
            log_lines: 0,
            log_dropped: 0,
        }
    }

    /// Writes what the guest printed during the call to the host log, and
    /// resets the per-call counters. Returns the last non-empty stderr line,
    /// which usually holds a panic message.
    pub(crate) fn flush_output(&mut self) -> Option<String> {
        let tag = &self.tag;
        let (out, out_dropped) = self.stdout.take();
        emit_stream(tag, "stdout", &out, out_dropped);
        let (err, err_dropped) = self.stderr.take();
        emit_stream(tag, "stderr", &err, err_dropped);
        if self.log_dropped > 0 {
            tracing::warn!(plugin = %tag.plugin, context = %tag.context, dropped = self.log_dropped,
                "plugin log lines over the per-call limit were dropped");
        }
        self.log_lines = 0;
        self.log_dropped = 0;
        String::from_utf8_lossy(&err)
            .lines()
            .rev()
            .map(str::trim)
            // Rust's panic hook ends with a hint line; the message is above it.
            .find(|l| !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
            .map(|l| truncate(l, 512).to_string())
    }
}

fn emit_stream(tag: &LogTag, stream: &str, bytes: &[u8], dropped: usize) {
    if !bytes.is_empty() {
        for line in String::from_utf8_lossy(bytes).lines().filter(|l| !l.trim().is_empty()) {
            tracing::info!(plugin = %tag.plugin, context = %tag.context, stream, "{}", line);
        }
    }
    if dropped > 0 {
        tracing::warn!(plugin = %tag.plugin, context = %tag.context, stream, dropped_bytes = dropped,
            "plugin output over the per-call limit was dropped");
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl WasiView for SandboxState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl wasmtime::ResourceLimiter for SandboxState {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            // Refuse the growth the way the spec allows (memory.grow returns
            // -1) and remember why, for the error the caller will see.
            self.memory_exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= TABLE_ELEMENTS_CAP)
    }
}

impl host::Host for SandboxState {
    fn log(&mut self, level: host::Level, message: String) {
        if self.log_lines >= LOG_LINES_PER_CALL {
            self.log_dropped = self.log_dropped.saturating_add(1);
            return;
        }
        self.log_lines += 1;
        let tag = &self.tag;
        let message = truncate(&message, LOG_LINE_CAP);
        match level {
            host::Level::Trace => {
                tracing::trace!(plugin = %tag.plugin, context = %tag.context, "{}", message)
            }
            host::Level::Debug => {
                tracing::debug!(plugin = %tag.plugin, context = %tag.context, "{}", message)
            }
            host::Level::Info => {
                tracing::info!(plugin = %tag.plugin, context = %tag.context, "{}", message)
            }
            host::Level::Warn => {
                tracing::warn!(plugin = %tag.plugin, context = %tag.context, "{}", message)
            }
            host::Level::Error => {
                tracing::error!(plugin = %tag.plugin, context = %tag.context, "{}", message)
            }
        }
    }
}

/// A bounded capture of one guest output stream. Writes past the bound are
/// accepted and counted, so the guest never sees an error.
#[derive(Clone, Default)]
struct GuestOutput(Arc<Mutex<Captured>>);

#[derive(Default)]
struct Captured {
    bytes: Vec<u8>,
    dropped: usize,
}

impl GuestOutput {
    fn push(&self, data: &[u8]) {
        let mut c = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let room = OUTPUT_CAP.saturating_sub(c.bytes.len());
        let keep = room.min(data.len());
        c.bytes.extend_from_slice(&data[..keep]);
        c.dropped = c.dropped.saturating_add(data.len() - keep);
    }

    fn take(&self) -> (Vec<u8>, usize) {
        let mut c = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        (std::mem::take(&mut c.bytes), std::mem::take(&mut c.dropped))
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always ready: the permit bounds one write, not the total.
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for GuestOutput {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
