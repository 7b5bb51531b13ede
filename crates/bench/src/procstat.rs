//! Resource usage of a process (the server, or the bench itself), read from
//! Linux's /proc.
//!
//! RSS is the figure that matters for "memory per connection": it is what the
//! kernel actually backs with pages, unlike the virtual size, which counts
//! reserved-but-untouched buffers. CPU time is user + system time, so kernel
//! work done for the server's sockets counts too.

use serde::Serialize;

/// Clock ticks per second of /proc/PID/stat's time fields.
///
/// The kernel reports these in USER_HZ, which is part of the Linux ABI and is
/// 100 on every mainstream architecture (independent of the kernel's own HZ),
/// so it is a constant here rather than a `sysconf` call that would need
/// `unsafe` FFI.
const USER_HZ: f64 = 100.0;

/// One reading of a process's memory and CPU time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcSample {
    /// Resident set size, KiB.
    pub rss_kib: u64,
    /// User + system CPU time, in clock ticks.
    pub cpu_ticks: u64,
}

impl ProcSample {
    /// Reads `/proc/PID/status` and `/proc/PID/stat`.
    pub fn read(pid: u32) -> std::io::Result<ProcSample> {
        Self::read_path(&pid.to_string())
    }

    /// The bench's own usage.
    pub fn own() -> std::io::Result<ProcSample> {
        Self::read_path("self")
    }

    fn read_path(which: &str) -> std::io::Result<ProcSample> {
        let bad = |what: &str| std::io::Error::other(format!("cannot parse /proc/{which}/{what}"));
        let status = std::fs::read_to_string(format!("/proc/{which}/status"))?;
        let stat = std::fs::read_to_string(format!("/proc/{which}/stat"))?;
        Ok(ProcSample {
            rss_kib: parse_vm_rss_kib(&status).ok_or_else(|| bad("status"))?,
            cpu_ticks: parse_cpu_ticks(&stat).ok_or_else(|| bad("stat"))?,
        })
    }
}

/// Parses the `VmRSS:` line of /proc/PID/status (always in kB).
pub fn parse_vm_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line["VmRSS:".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Parses utime + stime (fields 14 and 15) of /proc/PID/stat.
///
/// Field 2, the command name, is in parentheses and may itself contain spaces
/// or parentheses, so fields are counted from the last `)`.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // after_comm starts at field 3 (state); utime is field 14.
    let mut fields = after_comm.split_whitespace().skip(14 - 3);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// What a process used between two samples.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Usage {
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    /// May be negative when the process returned memory meanwhile.
    pub rss_delta_kib: i64,
    pub cpu_seconds: f64,
}

impl Usage {
    pub fn between(before: ProcSample, after: ProcSample) -> Usage {
        Usage {
            rss_before_kib: before.rss_kib,
            rss_after_kib: after.rss_kib,
            rss_delta_kib: after.rss_kib as i64 - before.rss_kib as i64,
            cpu_seconds: after.cpu_ticks.saturating_sub(before.cpu_ticks) as f64 / USER_HZ,
        }
    }
}

/// Samples a process when a PID was given, warning (not failing) when it
/// cannot be read: the load figures are still worth having.
pub fn sample(pid: Option<u32>) -> Option<ProcSample> {
    let pid = pid?;
    match ProcSample::read(pid) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("warning: cannot sample process {pid}: {e}");
            None
        }
    }
}

/// File descriptors process `pid` has open (the entries of /proc/PID/fd).
pub fn open_fds(pid: u32) -> std::io::Result<u64> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64)
}

/// The calling thread's id, as in `/proc/self/task/TID` (read from the
/// `/proc/thread-self` link, `PID/task/TID`).
pub fn current_thread_id() -> Option<u32> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

/// User + system CPU time of thread `tid` of this process, in clock ticks.
pub fn thread_cpu_ticks(tid: u32) -> std::io::Result<u64> {
    let path = format!("/proc/self/task/{tid}/stat");
    let stat = std::fs::read_to_string(&path)?;
    parse_cpu_ticks(&stat).ok_or_else(|| std::io::Error::other(format!("cannot parse {path}")))
}

/// CPU seconds in `ticks` clock ticks.
pub fn ticks_to_secs(ticks: u64) -> f64 {
    ticks as f64 / USER_HZ
}

/// Usage between two optional samples.
pub fn usage(before: Option<ProcSample>, after: Option<ProcSample>) -> Option<Usage> {
    Some(Usage::between(before?, after?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_is_read_from_status() {
        let status = "Name:\tchat-server\nVmPeak:\t  99 kB\nVmRSS:\t   12345 kB\nRssAnon:\t 1 kB\n";
        assert_eq!(parse_vm_rss_kib(status), Some(12345));
        assert_eq!(parse_vm_rss_kib("Name:\tx\n"), None);
    }

    #[test]
    fn cpu_ticks_survive_odd_command_names() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt
        // majflt cmajflt utime stime ...
        let stat = "42 (a b) c)) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 4 0";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
        assert_eq!(parse_cpu_ticks("42 (x) S 1"), None);
    }

    #[test]
    fn usage_reports_deltas() {
        let u = Usage::between(
            ProcSample {
                rss_kib: 1000,
                cpu_ticks: 10,
            },
            ProcSample {
                rss_kib: 900,
                cpu_ticks: 160,
            },
        );
        assert_eq!(u.rss_delta_kib, -100);
        assert!((u.cpu_seconds - 1.5).abs() < 1e-9);
    }

    #[test]
    fn own_process_can_be_sampled() {
        let me = ProcSample::own().unwrap();
        assert!(me.rss_kib > 0);
    }

    #[test]
    fn own_open_files_are_counted() {
        // At least the file held here (other tests' files come and go).
        let _file = std::fs::File::open("/proc/self/status").unwrap();
        assert!(open_fds(std::process::id()).unwrap() >= 1);
        assert!(open_fds(u32::MAX).is_err());
    }

    #[test]
    fn own_thread_can_be_sampled() {
        let tid = current_thread_id().unwrap();
        let other = std::thread::spawn(|| current_thread_id().unwrap())
            .join()
            .unwrap();
        assert_ne!(tid, other);
        assert!(thread_cpu_ticks(tid).is_ok());
    }
}
