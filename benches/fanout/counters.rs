//! Counters read at the edges of the measured window: CPU time and memory
//! of the server child from `/proc/<pid>`, the bench's own CPU time,
//! machine idle time and UDP buffer errors.
//!
//! Shared by the fan-out and live benches (`#[path]`), each of which uses
//! part of it.
#![allow(dead_code)]

use std::time::{Duration, Instant};

/// Server CPU time (user + system) from `/proc/<pid>/stat`.
fn process_cpu(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are
    // fields 14 and 15 of the whole line (proc(5)).
    let rest = stat
        .rsplit_once(')')
        .ok_or_else(|| anyhow::anyhow!("unexpected /proc/{pid}/stat"))?
        .1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields
        .get(11)
        .zip(fields.get(12))
        .and_then(|(u, s)| Some(u.parse::<u64>().ok()? + s.parse::<u64>().ok()?))
        .ok_or_else(|| anyhow::anyhow!("no utime/stime in /proc/{pid}/stat"))?;
    Ok(ticks_to_duration(ticks))
}

/// Resident set size in KiB (`VmRSS` of `/proc/<pid>/status`).
pub(crate) fn process_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS in /proc/{pid}/status"))
}

/// CPU time (user + system) of this process: the viewers.
fn own_cpu() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Idle time of all cores together (idle + iowait of the `cpu` line of
/// `/proc/stat`). Busy time is derived from it rather than read from the
/// same line: with a tickless kernel idle time is measured exactly, while
/// busy time is sampled at ticks and undercounts short, frequent bursts.
fn machine_idle() -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let values: Vec<u64> = stat
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("cpu "))
        .ok_or_else(|| anyhow::anyhow!("no cpu line in /proc/stat"))?
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    Ok(ticks_to_duration(idle))
}

/// Converts clock ticks (`_SC_CLK_TCK`) to a duration.
fn ticks_to_duration(ticks: u64) -> Duration {
    // SAFETY: sysconf has no preconditions.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_nanos(ticks * 1_000_000_000 / per_sec)
}

/// The system-wide UDP `RcvbufErrors` and `SndbufErrors` counters from
/// `/proc/net/snmp`.
fn udp_buffer_errors() -> anyhow::Result<(u64, u64)> {
    let snmp = std::fs::read_to_string("/proc/net/snmp")?;
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = udp
        .next()
        .zip(udp.next())
        .ok_or_else(|| anyhow::anyhow!("no Udp lines in /proc/net/snmp"))?;
    let field = |wanted: &str| -> Option<u64> {
        let index = names.split_whitespace().position(|n| n == wanted)?;
        values.split_whitespace().nth(index)?.parse().ok()
    };
    Ok((
        field("RcvbufErrors").unwrap_or(0),
        field("SndbufErrors").unwrap_or(0),
    ))
}

/// Counters read at the edges of the measured window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Snapshot {
    /// When it was taken.
    pub(crate) at: Instant,
    /// Server process CPU time.
    pub(crate) server_cpu: Duration,
    /// Bench (viewer) process CPU time.
    pub(crate) own_cpu: Duration,
    /// Idle time of all cores together.
    pub(crate) machine_idle: Duration,
    /// UDP receive and send buffer errors, system-wide.
    pub(crate) udp_errors: (u64, u64),
}

impl Snapshot {
    /// Reads the counters now.
    pub(crate) fn take(pid: u32) -> anyhow::Result<Snapshot> {
        Ok(Snapshot {
            at: Instant::now(),
            server_cpu: process_cpu(pid)?,
            own_cpu: own_cpu(),
            machine_idle: machine_idle()?,
            udp_errors: udp_buffer_errors()?,
        })
    }

    /// How busy the machine's `cores` were from this snapshot to `later`:
    /// cores in use, and of them the server's, the bench's (named `bench`)
    /// and the rest's (other processes).
    pub(crate) fn machine_busy(&self, later: &Snapshot, cores: usize, bench: &str) -> String {
        let window = (later.at - self.at).as_secs_f64().max(1e-9);
        let server = (later.server_cpu - self.server_cpu).as_secs_f64() / window;
        let own = (later.own_cpu - self.own_cpu).as_secs_f64() / window;
        let idle = (later.machine_idle - self.machine_idle).as_secs_f64() / window;
        let busy = (cores as f64 - idle).max(0.0);
        format!(
            "{busy:.2} of {cores} cores: server {server:.2}, {bench} {own:.2}, rest {:.2}",
            (busy - server - own).max(0.0)
        )
    }
}

/// Open file descriptors of process `pid` (entries of `/proc/<pid>/fd`).
fn open_fds(pid: u32) -> anyhow::Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// UDP sockets in use and their buffer memory in KiB, system-wide, from
/// the `UDP:` line of `/proc/net/sockstat` (which counts pages).
fn udp_sockstat() -> anyhow::Result<(u64, u64)> {
    let sockstat = std::fs::read_to_string("/proc/net/sockstat")?;
    let line = sockstat
        .lines()
        .find_map(|l| l.strip_prefix("UDP:"))
        .ok_or_else(|| anyhow::anyhow!("no UDP line in /proc/net/sockstat"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let field = |name: &str| {
        words
            .iter()
            .position(|w| *w == name)
            .and_then(|i| words.get(i + 1)?.parse().ok())
            .unwrap_or(0)
    };
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    Ok((field("inuse"), field("mem") * page / 1024))
}

/// Descriptor and socket counts at the end of the window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Resources {
    /// Open descriptors of the bench process (viewers and probe).
    pub(crate) bench_fds: usize,
    /// Open descriptors of the server.
    pub(crate) server_fds: usize,
    /// UDP sockets in use, system-wide.
    pub(crate) udp_sockets: u64,
    /// Memory of UDP socket buffers, system-wide, in KiB.
    pub(crate) udp_mem_kib: u64,
}

impl Resources {
    /// Reads the counts now.
    pub(crate) fn take(server_pid: u32) -> anyhow::Result<Resources> {
        let (udp_sockets, udp_mem_kib) = udp_sockstat()?;
        Ok(Resources {
            bench_fds: open_fds(std::process::id())?,
            server_fds: open_fds(server_pid)?,
            udp_sockets,
            udp_mem_kib,
        })
    }
}

/// Raises this process's soft limit on open files to the hard limit (the
/// server child inherits it) if it is lower; returns the soft limit now.
pub(crate) fn raise_open_files_limit() -> std::io::Result<libc::rlim_t> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(limit.rlim_cur)
}
