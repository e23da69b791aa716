//! Fan-out benchmark: one rtpcast server streaming the bundled sample to N
//! viewers on loopback.
//!
//! ```text
//! cargo bench --bench fanout -- [--viewers N] [--seconds S] [--transport udp|tcp]
//! ```
//!
//! The server runs in a child process (this binary, re-executed with
//! `RTPCAST_BENCH_ROLE=server`) so that its CPU time and memory can be read
//! from `/proc/<pid>` apart from the viewers, which run in this process on
//! a multi-thread tokio runtime. Each viewer holds one RTSP connection from
//! its own loopback address (`127.0.0.x`, at most [`viewer::VIEWERS_PER_IP`] per
//! address, because the server admits at most 64 connections per IP) and
//! receives RTP either on two UDP sockets or interleaved on that
//! connection. After every viewer is playing and a one second warm-up, the
//! bench measures for S seconds: packets and bytes delivered, RTP sequence
//! gaps, the server's CPU time and RSS, startup latency and whether each
//! viewer received media at real-time speed.
//!
//! Notes for reading the numbers: the server holds at most 1024 sessions,
//! so larger runs report the rest as failed; viewers join 32 at a time, so
//! the slowest startup latencies are the first wave's; the clip is 10 s
//! long and loops, so a window of 10 s or more spans a loop point; the
//! video media rate comes from the running maximum RTP timestamp, which
//! B-frame reordering makes uncertain by a frame or two at the window
//! edges (audio has no reordering and is exact).
//!
//! Modules: `server_process` (the server child), `counters` (CPU, memory
//! and UDP counters from `/proc`), `viewer` (the viewer tasks and their
//! statistics), `rtsp_client` (the minimal RTSP client they use) and
//! `report` (the results table).

// Tests and benches are the I/O side: clocks, sockets and files (clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod counters;
mod report;
mod rtsp_client;
mod server_process;
mod viewer;

use std::net::{Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;

use counters::{process_rss_kib, Snapshot};
use report::Outcome;
use server_process::{serve, ServerProcess, ROLE_ENV};
use viewer::{bind_udp, viewer, Context, ViewerStats, DONE, MEASURING, WARMING};

/// Most viewers one run accepts.
const MAX_VIEWERS: usize = 2000;
/// Longest measured window one run accepts, in seconds.
const MAX_SECONDS: u64 = 120;
/// Time between the last viewer starting to play and the measured window.
const WARMUP: Duration = Duration::from_secs(1);
/// Viewers doing their SETUP/PLAY exchange at the same time.
const SETUP_CONCURRENCY: usize = 32;

/// How RTP reaches the viewers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    /// Two UDP sockets per viewer (`client_port`).
    Udp,
    /// Interleaved on the RTSP connection (`RTP/AVP/TCP`).
    Tcp,
}

impl Transport {
    /// The name used on the command line.
    fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

/// Command-line options.
#[derive(Debug, Clone, Copy)]
struct Args {
    /// Number of viewers.
    viewers: usize,
    /// Length of the measured window in seconds.
    seconds: u64,
    /// RTP delivery.
    transport: Transport,
}

impl Args {
    /// Parses `--viewers N --seconds S --transport udp|tcp` (also
    /// `--name=value`), ignoring the `--bench` flag cargo adds.
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut parsed = Args {
            viewers: 200,
            seconds: 10,
            transport: Transport::Udp,
        };
        while let Some(arg) = args.next() {
            if arg == "--bench" {
                continue;
            }
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) => (name.to_string(), Some(value.to_string())),
                None => (arg, None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match name.as_str() {
                "--viewers" => parsed.viewers = parse_in(&name, &value()?, 1..=MAX_VIEWERS)?,
                "--seconds" => parsed.seconds = parse_in(&name, &value()?, 1..=MAX_SECONDS)?,
                "--transport" => {
                    parsed.transport = match value()?.as_str() {
                        "udp" => Transport::Udp,
                        "tcp" => Transport::Tcp,
                        other => return Err(format!("--transport {other}: expected udp or tcp")),
                    };
                }
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(parsed)
    }

    /// The command that reproduces this run.
    fn command(&self) -> String {
        format!(
            "cargo bench --bench fanout -- --viewers {} --seconds {} --transport {}",
            self.viewers,
            self.seconds,
            self.transport.name()
        )
    }
}

/// Parses the `value` of option `name` as a number within `range`.
fn parse_in<T>(name: &str, value: &str, range: RangeInclusive<T>) -> Result<T, String>
where
    T: FromStr + PartialOrd + std::fmt::Display,
{
    value
        .parse()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| {
            format!(
                "{name} {value}: expected {}..={}",
                range.start(),
                range.end()
            )
        })
}

fn main() {
    if std::env::var_os(ROLE_ENV).is_some_and(|role| role == "server") {
        if let Err(error) = serve() {
            eprintln!("bench server: {error:#}");
            std::process::exit(1);
        }
        return;
    }
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(error) => {
            eprintln!("{error}");
            eprintln!(
                "usage: cargo bench --bench fanout -- [--viewers N] [--seconds S] [--transport udp|tcp]"
            );
            std::process::exit(2);
        }
    };
    if let Err(error) = bench(args) {
        eprintln!("fanout bench failed: {error:#}");
        std::process::exit(1);
    }
}

/// Runs one benchmark: server child, viewers, report.
fn bench(args: Args) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let server = ServerProcess::spawn()?;
    let pid = server.pid();
    let limit = Duration::from_secs(90 + args.seconds + args.viewers as u64 / 10);
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!("fanout bench: no result after {limit:?}; giving up");
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        std::process::exit(3);
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let server_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, server.rtsp_port));
    let outcome = runtime.block_on(run(args, server_addr, pid))?;
    let report = outcome.report(&args, cores);
    drop(server);
    print!("{report}");
    Ok(())
}

/// Starts the viewers, measures, tears everything down.
async fn run(args: Args, server: SocketAddr, pid: u32) -> anyhow::Result<Outcome> {
    let sample = rtpcast::server::catalog::Catalog::bundled_sample()?.resolve("/sample")?;
    let clock = |index: usize| {
        sample
            .tracks()
            .get(index)
            .map(|t| f64::from(t.codec.clock_rate()))
            .ok_or_else(|| anyhow::anyhow!("the sample has no track {index}"))
    };
    let context = Arc::new(Context {
        server,
        transport: args.transport,
        phase: AtomicU8::new(WARMING),
        setup_slots: Semaphore::new(SETUP_CONCURRENCY),
        video_clock: clock(0)?,
        audio_clock: clock(1)?,
    });
    let granted_rcvbuf = match args.transport {
        Transport::Udp => Some(bind_udp(Ipv4Addr::LOCALHOST, true)?.1),
        Transport::Tcp => None,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let (ready_tx, mut ready_rx) = mpsc::channel(args.viewers);
    let started = Instant::now();
    let tasks: Vec<JoinHandle<Option<ViewerStats>>> = (0..args.viewers)
        .map(|index| {
            tokio::spawn(viewer(
                index,
                context.clone(),
                ready_tx.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();
    drop(ready_tx);
    let mut playing = 0;
    let mut failures = (0, None);
    while let Some(ready) = ready_rx.recv().await {
        match ready {
            Ok(()) => playing += 1,
            Err(error) => {
                failures.0 += 1;
                failures.1.get_or_insert(error);
            }
        }
    }
    let setup_time = started.elapsed();
    if playing == 0 {
        anyhow::bail!("no viewer got to PLAY: {}", failures.1.unwrap_or_default());
    }
    tokio::time::sleep(WARMUP).await;
    let before = Snapshot::take(pid)?;
    context.phase.store(MEASURING, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    context.phase.store(DONE, Ordering::Relaxed);
    let after = Snapshot::take(pid)?;
    let server_rss_kib = process_rss_kib(pid)?;
    let _ = stop_tx.send(true);
    let mut viewers = Vec::with_capacity(playing);
    for task in tasks {
        if let Some(stats) = task.await? {
            viewers.push(stats);
        }
    }
    Ok(Outcome {
        playing,
        failures,
        setup_time,
        before,
        after,
        server_rss_kib,
        viewers,
        granted_rcvbuf,
    })
}
