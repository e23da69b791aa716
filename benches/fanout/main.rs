//! Fan-out benchmark: one rtpcast server streaming the bundled sample to N
//! viewers on loopback, with the control plane timed under that load.
//!
//! ```text
//! cargo bench --bench fanout -- [--viewers N] [--seconds S] [--transport udp|tcp] [--server-args "..."] [--server-bin PATH]
//! ```
//!
//! The runs behind the README's performance numbers (the control plane
//! under load at 500 viewers, setup at 1,000) and the largest run it takes:
//!
//! ```text
//! cargo bench --bench fanout -- --viewers 200 --seconds 10 --transport udp
//! cargo bench --bench fanout -- --viewers 500 --seconds 10 --transport udp
//! cargo bench --bench fanout -- --viewers 1000 --seconds 10 --transport udp
//! cargo bench --bench fanout -- --viewers 2500 --seconds 10 --transport udp
//! cargo bench --bench fanout -- --viewers 200 --seconds 10 --transport tcp
//! ```
//!
//! The server is the `rtpcast` binary that cargo builds beside the bench,
//! run as a child process (`--bind 127.0.0.1 --rtsp-port <free port>
//! --rtp-port 0 --loop --log-level warn`) so that its CPU time and memory
//! can be read from `/proc/<pid>` apart from the viewers, which run in this
//! process on a multi-thread tokio runtime. If the server's `--help` lists
//! `--max-sessions`, the bench adds `--max-sessions 10000`; without it the
//! server's built-in limit applies (1024 sessions before the limits became
//! options) and the viewers beyond it are reported as failed. `--server-args
//! "..."` appends arguments (split at whitespace) to the server's command
//! line; an option given there replaces the bench's default for it.
//! `--server-bin PATH` runs another build (an older commit, say) in its
//! place, for before/after numbers. The table's `server` row shows the
//! command line as run.
//!
//! Each viewer holds one RTSP connection from a loopback address
//! (`127.0.x.y`, [`viewer::VIEWERS_PER_IP`] viewers per address, below the
//! 64 connections and 64 sessions per address the server admitted before
//! those limits became options) and receives RTP either on two UDP sockets
//! (RTCP sockets open beside them) or interleaved on that connection. At
//! most 32 viewers are in their SETUP/PLAY exchange at a time. A UDP viewer
//! holds five descriptors, so the bench raises its soft limit on open files
//! to the hard limit (the server inherits it) and refuses a run that would
//! not fit.
//!
//! After every viewer is playing and a one second warm-up, the bench
//! measures for S seconds: packets and bytes delivered, RTP sequence gaps,
//! the server's CPU time and RSS, and whether each viewer received media at
//! real-time speed. Meanwhile a control-plane probe on its own address
//! (`127.1.0.1`), thread and single-thread runtime starts a pair of requests
//! every 20 ms: OPTIONS on one kept-alive connection (request written to
//! response parsed), then DESCRIBE on a new connection each time (TCP
//! connect started to SDP received, so an accept loop that lags shows).
//! Pairs are sequential: a slow one delays the next rather than queueing
//! more, so under a stall the sample count drops and `max` shows the stall.
//!
//! Setup rows: `setup, all sessions` is the wall time from the first
//! viewer's TCP connect to the last viewer's PLAY response (viewers that
//! failed left out); `PLAY round trip` is PLAY written to its 200 parsed,
//! per viewer; `PLAY -> first RTP` is PLAY written to the viewer reading
//! its first RTP packet of either track (timestamped by the bench's task
//! that reads it, so it includes the bench's own scheduling delay).
//!
//! Notes for reading the numbers: the machine's other work shows in the
//! `machine busy` row; the clip is 10 s long and loops, so a window of 10 s
//! or more spans a loop point; the video media rate comes from the running
//! maximum RTP timestamp, which B-frame reordering makes uncertain by a
//! frame or two at the window edges (audio has no reordering and is
//! exact).
//!
//! Modules: `server_process` (the server child), `control` (the
//! control-plane probe), `counters` (CPU, memory, descriptor and UDP
//! counters from `/proc`), `viewer` (the viewer tasks and their
//! statistics), `rtsp_client` (the minimal RTSP client they use),
//! `distribution` (percentiles), `cli` (option parsing) and `report` (the
//! results table). `server_process`, `rtsp_client`, `distribution` and
//! `cli` also serve the live bench (`benches/live`).

// Tests and benches are the I/O side: clocks, sockets and files (clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod cli;
mod control;
mod counters;
mod distribution;
mod report;
mod rtsp_client;
mod server_process;
mod viewer;

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;

use cli::{options, parse_in, ServerOptions, Transport};
use counters::{process_rss_kib, raise_open_files_limit, Resources, Snapshot};
use report::Outcome;
use rtsp_client::{connect, describe};
use server_process::ServerProcess;
use viewer::{bind_udp, viewer, Context, ViewerStats, DONE, MEASURING, WARMING};

/// Most viewers one run accepts.
const MAX_VIEWERS: usize = 2500;
/// Longest measured window one run accepts, in seconds.
const MAX_SECONDS: u64 = 120;
/// Time between the last viewer starting to play and the measured window.
const WARMUP: Duration = Duration::from_secs(1);
/// Viewers doing their SETUP/PLAY exchange at the same time.
const SETUP_CONCURRENCY: usize = 32;
/// Descriptors the bench needs besides its viewers' sockets.
const SPARE_FDS: u64 = 256;

impl Transport {
    /// Descriptors one viewer holds: its RTSP connection, and four UDP
    /// sockets (RTP and RTCP of two tracks) when not interleaved.
    fn fds_per_viewer(self) -> u64 {
        match self {
            Transport::Udp => 5,
            Transport::Tcp => 1,
        }
    }
}

/// Command-line options.
#[derive(Debug, Clone)]
struct Args {
    /// Number of viewers.
    viewers: usize,
    /// Length of the measured window in seconds.
    seconds: u64,
    /// RTP delivery.
    transport: Transport,
    /// `--server-args` and `--server-bin`.
    server: ServerOptions,
}

impl Args {
    /// Parses `--viewers N --seconds S --transport udp|tcp
    /// --server-args "..."` (also `--name=value`), ignoring the `--bench`
    /// flag cargo adds.
    fn parse(args: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut parsed = Args {
            viewers: 200,
            seconds: 10,
            transport: Transport::Udp,
            server: ServerOptions::default(),
        };
        for (name, value) in options(args)? {
            match name.as_str() {
                "--viewers" => parsed.viewers = parse_in(&name, &value, 1..=MAX_VIEWERS)?,
                "--seconds" => parsed.seconds = parse_in(&name, &value, 1..=MAX_SECONDS)?,
                "--transport" => parsed.transport = Transport::parse(&name, &value)?,
                _ if parsed.server.take(&name, &value) => {}
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(parsed)
    }

    /// The command that reproduces this run.
    fn command(&self) -> String {
        format!(
            "cargo bench --bench fanout -- --viewers {} --seconds {} --transport {}{}",
            self.viewers,
            self.seconds,
            self.transport.name(),
            self.server.command_suffix()
        )
    }
}

fn main() {
    cli::main(
        "fanout",
        "[--viewers N] [--seconds S] [--transport udp|tcp] [--server-args \"...\"] [--server-bin PATH]",
        Args::parse,
        bench,
    );
}

/// Runs one benchmark: server child, viewers, report.
fn bench(args: &Args) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let open_files_limit = raise_open_files_limit()?;
    let needed = args.viewers as u64 * args.transport.fds_per_viewer() + SPARE_FDS;
    if needed > open_files_limit {
        anyhow::bail!(
            "{} {} viewers need about {needed} open files; the limit is {open_files_limit} (ulimit -Hn)",
            args.viewers,
            args.transport.name()
        );
    }
    let server = ServerProcess::spawn(args.server.bin.as_deref(), &args.server.args)?;
    let limit = Duration::from_secs(90 + args.seconds + args.viewers as u64 / 10);
    server_process::watchdog(server.pid(), limit, "fanout");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(run(args, &server, open_files_limit))?;
    let report = outcome.report(args, cores);
    drop(server);
    print!("{report}");
    Ok(())
}

/// The RTP clock rates of the first video and the first audio stream of
/// an SDP description (RFC 4566 `a=rtpmap:`).
fn clock_rates(sdp: &str) -> anyhow::Result<(f64, f64)> {
    let (mut media, mut video, mut audio) = ("", None, None);
    for line in sdp.lines() {
        if let Some(m) = line.strip_prefix("m=") {
            media = m.split_whitespace().next().unwrap_or("");
        } else if let Some(rtpmap) = line.strip_prefix("a=rtpmap:") {
            let rate = rtpmap
                .split_whitespace()
                .nth(1)
                .and_then(|encoding| encoding.split('/').nth(1)?.parse::<f64>().ok());
            match media {
                "video" => video = video.or(rate),
                "audio" => audio = audio.or(rate),
                _ => {}
            }
        }
    }
    video
        .zip(audio)
        .ok_or_else(|| anyhow::anyhow!("no video and audio rtpmap in the SDP: {sdp:?}"))
}

/// Starts the viewers, measures, tears everything down.
async fn run(
    args: &Args,
    server_process: &ServerProcess,
    open_files_limit: u64,
) -> anyhow::Result<Outcome> {
    let (server, pid) = (server_process.rtsp_addr, server_process.pid());
    let sdp = {
        let (mut out, mut inbound) = connect(control::CONTROL_IP, server)
            .await
            .map_err(anyhow::Error::msg)?;
        describe(&mut out, &mut inbound)
            .await
            .map_err(anyhow::Error::msg)?
    };
    let (video_clock, audio_clock) = clock_rates(&sdp)?;
    let context = Arc::new(Context {
        server,
        transport: args.transport,
        phase: Arc::new(AtomicU8::new(WARMING)),
        setup_slots: Semaphore::new(SETUP_CONCURRENCY),
        video_clock,
        audio_clock,
    });
    let granted_rcvbuf = match args.transport {
        Transport::Udp => Some(bind_udp(Ipv4Addr::LOCALHOST, true)?.1),
        Transport::Tcp => None,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let (ready_tx, mut ready_rx) = mpsc::channel(args.viewers);
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
    if playing == 0 {
        anyhow::bail!("no viewer got to PLAY: {}", failures.1.unwrap_or_default());
    }
    let probe = control::start(server, context.phase.clone());
    tokio::time::sleep(WARMUP).await;
    let before = Snapshot::take(pid)?;
    context.phase.store(MEASURING, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    context.phase.store(DONE, Ordering::Relaxed);
    let after = Snapshot::take(pid)?;
    let server_rss_kib = process_rss_kib(pid)?;
    let resources = Resources::take(pid)?;
    let control = tokio::task::spawn_blocking(move || probe.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the control-plane probe panicked"))?;
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
        before,
        after,
        server_rss_kib,
        resources,
        viewers,
        granted_rcvbuf,
        control,
        server_command: server_process.command(),
        server_has_max_sessions: server_process.has_max_sessions,
        open_files_limit,
    })
}
