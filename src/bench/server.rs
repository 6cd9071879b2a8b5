//! The server's side of a bench run: its CPU time and resident memory, read from Linux's
//! `/proc/<pid>/stat` and `/proc/<pid>/status` before and after the calls.
//!
//! Owns the two readings and the per-call figures made from them: CPU as a percentage of one
//! core for one call (the server's CPU time over the run divided by the calls' summed
//! durations), and RSS growth per call placed. The parsers are pure functions over the files'
//! text. Invariants: `/proc` times are in USER_HZ ticks, which Linux fixes at 100 a second for
//! every program (whatever the kernel's own tick); the command name in `stat` may hold spaces
//! and parentheses, so fields are counted from the last `)`.

use std::path::PathBuf;
use std::time::Duration;

use super::BenchError;

/// Linux's USER_HZ: the unit of `/proc/<pid>/stat` times.
pub const USER_HZ: u64 = 100;
/// Bytes in a MiB.
const MIB: f64 = 1024.0 * 1024.0;

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessSample {
    /// User plus system CPU time, every thread included.
    pub cpu: Duration,
    /// Resident set size.
    pub rss_bytes: u64,
}

/// Reads the process `pid` now.
pub fn sample(pid: u32) -> Result<ProcessSample, BenchError> {
    let read = |file: &str| {
        let path = PathBuf::from(format!("/proc/{pid}/{file}"));
        std::fs::read_to_string(&path).map_err(|source| BenchError::Io {
            what: format!(
                "reading {} (is --server-pid {pid} running?)",
                path.display()
            ),
            source,
        })
    };
    let unreadable = |file: &str| BenchError::Proc {
        pid,
        file: file.to_string(),
    };
    let cpu = parse_stat_cpu(&read("stat")?).ok_or_else(|| unreadable("stat"))?;
    let rss_bytes = parse_status_rss(&read("status")?).ok_or_else(|| unreadable("status"))?;
    Ok(ProcessSample { cpu, rss_bytes })
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line.
pub fn parse_stat_cpu(stat: &str) -> Option<Duration> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Field 3 (state) is the first after the name, so utime (14) is the 12th from there.
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = utime + stime;
    Some(Duration::from_millis(ticks * 1000 / USER_HZ))
}

/// `VmRSS` of a `/proc/<pid>/status`, in bytes.
pub fn parse_status_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut parts = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | None => Some(value * 1024),
        _ => None,
    }
}

/// The server's figures for a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServerFigures {
    /// Percent of one core that one call took, on average over its duration.
    pub cpu_per_call_pct: f64,
    /// Resident memory growth per call placed, in MiB (negative when memory was returned).
    pub rss_per_call_mib: f64,
}

/// The figures from the readings before and after `calls` calls that lasted
/// `call_time` together; `None` when no call ran.
pub fn per_call(
    before: ProcessSample,
    after: ProcessSample,
    calls: usize,
    call_time: Duration,
) -> Option<ServerFigures> {
    if calls == 0 || call_time.is_zero() {
        return None;
    }
    let cpu = after.cpu.saturating_sub(before.cpu).as_secs_f64();
    let rss = after.rss_bytes as f64 - before.rss_bytes as f64;
    Some(ServerFigures {
        cpu_per_call_pct: cpu / call_time.as_secs_f64() * 100.0,
        rss_per_call_mib: rss / MIB / calls as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_times_are_counted_after_the_name() {
        let stat = "4242 (hot line (x)) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 50 0 0 20 0 9 0 \
                    100 0 0";
        assert_eq!(parse_stat_cpu(stat), Some(Duration::from_secs(3)));
        assert_eq!(parse_stat_cpu("garbage"), None);
        assert_eq!(parse_stat_cpu("1 (x) S 1 2"), None);
    }

    #[test]
    fn rss_is_read_in_kib() {
        let status = "Name:\thotline\nVmPeak:\t  999 kB\nVmRSS:\t   2048 kB\nThreads:\t9\n";
        assert_eq!(parse_status_rss(status), Some(2 * 1024 * 1024));
        assert_eq!(parse_status_rss("Name:\tkthread\n"), None);
    }

    #[test]
    fn the_own_process_can_be_read() {
        let me = sample(std::process::id()).expect("/proc/self");
        assert!(me.rss_bytes > 0);
    }

    #[test]
    fn per_call_figures() {
        let before = ProcessSample {
            cpu: Duration::from_secs(10),
            rss_bytes: 100 * 1024 * 1024,
        };
        let after = ProcessSample {
            cpu: Duration::from_secs(16),
            rss_bytes: 112 * 1024 * 1024,
        };
        // 6 s of CPU over 4 calls of 30 s: 5 % of a core each; 12 MiB over 4 calls.
        let figures = per_call(before, after, 4, Duration::from_secs(120)).expect("figures");
        assert!((figures.cpu_per_call_pct - 5.0).abs() < 1e-9);
        assert!((figures.rss_per_call_mib - 3.0).abs() < 1e-9);
        assert_eq!(per_call(before, after, 0, Duration::ZERO), None);
    }
}
