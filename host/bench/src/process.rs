//! What this process uses, as Linux reports it: CPU time and resident
//! memory, for the benchmarks that print them.

use std::time::Duration;

use anyhow::Context;

/// CPU time this process has used so far (user and system, all threads),
/// where the system tells it (`/proc/self/stat`, in Linux's fixed 1/100 s
/// ticks); `None` elsewhere.
pub(crate) fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name in parentheses may hold spaces; fields are counted
    // after it: utime and stime are the 14th and 15th of the line.
    let mut fields = stat.get(stat.rfind(')')? + 2..)?.split(' ').skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// The CPU time used since `before` was read by [`cpu_time`].
pub(crate) fn cpu_since(before: Option<Duration>) -> Option<Duration> {
    before.zip(cpu_time()).map(|(b, a)| a.saturating_sub(b))
}

/// This process's resident memory now, in MiB.
pub(crate) fn rss_mib() -> anyhow::Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status").context("read /proc/self/status")?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS in /proc/self/status")?;
    Ok(kib / 1024.0)
}
