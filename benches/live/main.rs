//! Live-path benchmark: the latency rtpcast adds between a publisher and
//! its viewers, and how long a viewer joining a live path, a file played
//! as a channel or a file on demand waits for its first picture.
//!
//! ```text
//! cargo bench --bench live -- [--viewers M] [--seconds S] [--joins J] [--fps F]
//!     [--transport udp|tcp|both] [--publish-transport udp|tcp] [--server-args "..."] [--server-bin PATH]
//! ```
//!
//! The server is the `rtpcast` binary cargo builds beside the bench, run
//! as a child process on loopback (see the fan-out bench's
//! `server_process`) with `--mtu 1400` and `--channel /tv=media/sample.mp4`;
//! it also serves the sample on demand at `/sample` (`--loop`).
//!
//! The bench is the publisher: at start-up ffmpeg encodes a 2 s
//! `testsrc2` clip (1280x720, x264 `-tune zerolatency -crf 30`, an IDR
//! every second, no B-frames), which the crate's own packetizer cuts into
//! RTP payloads (single NAL unit and FU-A, SPS and PPS before each IDR).
//! The bench ANNOUNCEs one H.264 track to `/live/bench`, SETUPs it with
//! `mode=record` over UDP (to the server's RTP port) or interleaved
//! (`--publish-transport tcp`), RECORDs and sends one access unit every
//! frame interval, looping the clip on a timestamp that keeps rising,
//! noting when each packet left.
//!
//! Latency: M viewers PLAY `/live/bench` over UDP, then M others over TCP
//! (`--transport` picks one). After a 1 s warm-up, for S seconds every
//! packet a viewer reads is matched to the publisher's by its RTP
//! timestamp and a hash of its payload (the server rewrites sequence
//! numbers and SSRC, keeps the publisher's timestamps and, cutting with
//! the same MTU, the same payloads): latency = viewer read time − publisher
//! send time. The server takes an access unit in at its last packet
//! (the marker), so a unit's earlier packets include the time the
//! publisher took to send the rest of it (back to back, well under a
//! millisecond here). Both ends are tasks of this process, so the bench's
//! own scheduling delay is in the numbers. Packets sent in the window (but
//! its last 0.5 s) that a viewer never read are counted lost.
//!
//! Join time: J times one after the other, at a random point within the
//! 1 s GOP, a fresh viewer DESCRIBEs, SETUPs the video track and PLAYs;
//! the time from writing PLAY to reading the last packet (marker bit) of
//! the first complete keyframe access unit is when a decoder can show its
//! first picture. Each join also checks that the first unit it read was a
//! keyframe; one that sees no complete keyframe in 5 s fails. Joins run
//! against the live path, the channel `/tv` and the file `/sample`, over
//! each transport.
//!
//! Modules: `stream` (the clip and its RTP payloads), `publisher`,
//! `viewer` (a client playing a path's video track), `measure` (latency
//! and first-picture accounting), and from the fan-out bench
//! `server_process`, `rtsp_client`, `distribution` and `cli`.

// Tests and benches are the I/O side: clocks, sockets and files (clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

#[path = "../fanout/cli.rs"]
mod cli;
#[path = "../fanout/counters.rs"]
mod counters;
#[path = "../fanout/distribution.rs"]
mod distribution;
mod measure;
mod publisher;
#[path = "../fanout/rtsp_client.rs"]
mod rtsp_client;
#[path = "../fanout/server_process.rs"]
mod server_process;
mod stream;
mod viewer;

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::{mpsc, oneshot, watch};

use cli::{options, parse_in, ServerOptions, Transport};
use counters::Snapshot;
use distribution::{distribution, Table};
use measure::{Arrival, FirstPicture, Latency};
use server_process::ServerProcess;
use stream::Stream;
use viewer::Viewer;

/// The live path the bench publishes to.
const LIVE_PATH: &str = "/live/bench";
/// The channel path the server plays the sample on.
const CHANNEL_PATH: &str = "/tv";
/// The sample on demand.
const FILE_PATH: &str = "/sample";
/// Time between the last viewer starting to play and the window.
const WARMUP: Duration = Duration::from_secs(1);
/// Time from RECORD to the first viewer, so that the path has a keyframe.
const PUBLISH_LEAD: Duration = Duration::from_millis(1500);
/// Joins start at a random point within this span: the GOP of the
/// bench's clip and of the sample.
const GOP: Duration = Duration::from_secs(1);
/// Longest wait for a joining viewer's first complete keyframe.
const JOIN_LIMIT: Duration = Duration::from_secs(5);
/// Longest wait for the publisher to be recording.
const RECORD_LIMIT: Duration = Duration::from_secs(10);

/// Command-line options.
#[derive(Debug, Clone)]
struct Args {
    /// Viewers of the latency run, per transport.
    viewers: usize,
    /// Length of each latency window in seconds.
    seconds: u64,
    /// Joins per path and transport.
    joins: usize,
    /// Frames a second of the published stream.
    fps: u32,
    /// Viewer transports.
    transports: Vec<Transport>,
    /// How the publisher sends.
    publish_transport: Transport,
    /// `--server-args` and `--server-bin`.
    server: ServerOptions,
}

impl Args {
    /// Parses the options in the module docs (also `--name=value`).
    fn parse(args: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut parsed = Args {
            viewers: 10,
            seconds: 10,
            joins: 50,
            fps: 30,
            transports: vec![Transport::Udp, Transport::Tcp],
            publish_transport: Transport::Udp,
            server: ServerOptions::default(),
        };
        for (name, value) in options(args)? {
            match name.as_str() {
                "--viewers" => parsed.viewers = parse_in(&name, &value, 1..=200)?,
                "--seconds" => parsed.seconds = parse_in(&name, &value, 1..=120)?,
                "--joins" => parsed.joins = parse_in(&name, &value, 1..=1000)?,
                "--fps" => parsed.fps = parse_in(&name, &value, 1..=120)?,
                "--transport" if value == "both" => {
                    parsed.transports = vec![Transport::Udp, Transport::Tcp];
                }
                "--transport" => parsed.transports = vec![Transport::parse(&name, &value)?],
                "--publish-transport" => {
                    parsed.publish_transport = Transport::parse(&name, &value)?;
                }
                _ if parsed.server.take(&name, &value) => {}
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(parsed)
    }

    /// The command that reproduces this run.
    fn command(&self) -> String {
        let transport = match self.transports.as_slice() {
            [only] => only.name(),
            _ => "both",
        };
        format!(
            "cargo bench --bench live -- --viewers {} --seconds {} --joins {} --fps {} --transport {transport} --publish-transport {}{}",
            self.viewers,
            self.seconds,
            self.joins,
            self.fps,
            self.publish_transport.name(),
            self.server.command_suffix()
        )
    }
}

fn main() {
    cli::main(
        "live",
        "[--viewers M] [--seconds S] [--joins J] [--fps F] [--transport udp|tcp|both] [--publish-transport udp|tcp] [--server-args \"...\"] [--server-bin PATH]",
        Args::parse,
        bench,
    );
}

/// Encodes the stream, runs the server child, measures, reports.
fn bench(args: &Args) -> anyhow::Result<()> {
    let stream = Arc::new(Stream::encode(args.fps)?);
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/media/sample.mp4");
    let mut server_args: Vec<String> = vec![
        "--mtu".into(),
        stream::MTU.to_string(),
        "--channel".into(),
        format!("{CHANNEL_PATH}={sample}"),
    ];
    server_args.extend(args.server.args.iter().cloned());
    let server = ServerProcess::spawn(args.server.bin.as_deref(), &server_args)?;
    // A join takes under a second unless it times out.
    let runs = args.transports.len() as u64;
    let limit = Duration::from_secs(60 + runs * (args.seconds + 3 * args.joins as u64 * 2));
    server_process::watchdog(server.pid(), limit, "live");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(run(args, &server, stream.clone()))?;
    drop(server);
    print!("{}", outcome.report(args, &stream));
    Ok(())
}

/// The latency run over one transport.
struct LatencyRun {
    transport: Transport,
    /// Viewers that got through SETUP, and the first failure.
    set_up: usize,
    first_failure: Option<String>,
    /// Each viewer's packets.
    arrivals: Vec<Vec<Arrival>>,
    /// The window.
    from: Instant,
    until: Instant,
    /// Server and machine counters at its edges, where `/proc` has them.
    load: Option<(Snapshot, Snapshot)>,
}

/// The joins to one path over one transport.
struct JoinRun {
    path: &'static str,
    transport: Transport,
    /// PLAY written to the first complete keyframe read, in milliseconds.
    ms: Vec<f64>,
    /// Joins whose first unit was not a keyframe.
    first_not_keyframe: usize,
    /// Joins that failed, and the first reason.
    failures: usize,
    first_failure: Option<String>,
}

/// What a run produced.
struct Outcome {
    server_command: String,
    latency: Vec<(LatencyRun, Latency)>,
    joins: Vec<JoinRun>,
    /// Packets the publisher sent in all.
    published: usize,
    /// Server and machine counters before and after the joins.
    join_load: Option<(Snapshot, Snapshot)>,
}

/// Publishes, runs the latency windows and the joins, stops the
/// publisher.
async fn run(args: &Args, server: &ServerProcess, stream: Arc<Stream>) -> anyhow::Result<Outcome> {
    let address = server.rtsp_addr;
    let (recording_tx, recording_rx) = oneshot::channel();
    let (stop_publisher, stopped) = watch::channel(false);
    let publisher = tokio::spawn(publisher::publish(
        address,
        LIVE_PATH.to_string(),
        stream,
        args.publish_transport,
        recording_tx,
        stopped,
    ));
    if tokio::time::timeout(RECORD_LIMIT, recording_rx)
        .await
        .is_err()
        || publisher.is_finished()
    {
        let reason = match publisher.await {
            Ok(Err(error)) => error,
            _ => format!("not recording after {RECORD_LIMIT:?}"),
        };
        anyhow::bail!("publisher: {reason}");
    }
    tokio::time::sleep(PUBLISH_LEAD).await;
    let mut runs = Vec::new();
    for &transport in &args.transports {
        runs.push(latency_run(args, server, transport).await);
    }
    let mut joins = Vec::new();
    let before_joins = Snapshot::take(server.pid()).ok();
    for path in [LIVE_PATH, CHANNEL_PATH, FILE_PATH] {
        for &transport in &args.transports {
            joins.push(join_run(args.joins, address, path, transport).await);
        }
    }
    let join_load = before_joins.zip(Snapshot::take(server.pid()).ok());
    let _ = stop_publisher.send(true);
    let sent = publisher
        .await?
        .map_err(|e| anyhow::anyhow!("publisher: {e}"))?;
    let latency = runs
        .into_iter()
        .map(|run| {
            let latency = Latency::measure(&sent, &run.arrivals, run.from, run.until);
            (run, latency)
        })
        .collect();
    Ok(Outcome {
        server_command: server.command(),
        latency,
        joins,
        published: sent.len(),
        join_load,
    })
}

/// M viewers play the live path over `transport`; the window starts
/// after they all play and the warm-up.
async fn latency_run(
    args: &Args,
    server_process: &ServerProcess,
    transport: Transport,
) -> LatencyRun {
    let server = server_process.rtsp_addr;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (ready_tx, mut ready_rx) = mpsc::channel(args.viewers);
    let tasks: Vec<_> = (0..args.viewers)
        .map(|_| {
            let (ready, mut stop) = (ready_tx.clone(), stop_rx.clone());
            tokio::spawn(async move {
                let mut viewer = match Viewer::open(server, LIVE_PATH, transport).await {
                    Ok(viewer) => viewer,
                    Err(error) => {
                        let _ = ready.send(Err(error)).await;
                        return Vec::new();
                    }
                };
                let _ = ready.send(Ok(())).await;
                drop(ready);
                let mut arrivals = Vec::new();
                let mut on_packet = |at, packet: &[u8]| {
                    measure::record(&mut arrivals, at, packet);
                    false
                };
                let limit = Duration::from_secs(3600);
                if viewer.play(&mut on_packet, &mut stop, limit).await.is_ok() {
                    let _ = viewer.teardown().await;
                }
                arrivals
            })
        })
        .collect();
    drop(ready_tx);
    let (mut set_up, mut first_failure) = (0, None);
    while let Some(ready) = ready_rx.recv().await {
        match ready {
            Ok(()) => set_up += 1,
            Err(error) => {
                first_failure.get_or_insert(error);
            }
        }
    }
    tokio::time::sleep(WARMUP).await;
    let before = Snapshot::take(server_process.pid()).ok();
    let from = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let until = Instant::now();
    let load = before.zip(Snapshot::take(server_process.pid()).ok());
    let _ = stop_tx.send(true);
    let mut arrivals = Vec::new();
    for task in tasks {
        arrivals.push(task.await.unwrap_or_default());
    }
    LatencyRun {
        transport,
        set_up,
        first_failure,
        arrivals,
        from,
        until,
        load,
    }
}

/// `joins` fresh viewers of `path` over `transport`, one after the other,
/// each at a random point within the GOP.
async fn join_run(
    joins: usize,
    server: std::net::SocketAddr,
    path: &'static str,
    transport: Transport,
) -> JoinRun {
    let mut run = JoinRun {
        path,
        transport,
        ms: Vec::new(),
        first_not_keyframe: 0,
        failures: 0,
        first_failure: None,
    };
    // Never signalled: a join ends at its picture or its time limit.
    let (_never_stop, mut stop) = watch::channel(false);
    for _ in 0..joins {
        let pause = rand::thread_rng().gen_range(Duration::ZERO..GOP);
        tokio::time::sleep(pause).await;
        let mut picture = FirstPicture::default();
        let joined = async {
            let mut viewer = Viewer::open(server, path, transport).await?;
            let mut on_packet = |at, packet: &[u8]| picture.on_packet(at, packet);
            let sent = viewer.play(&mut on_packet, &mut stop, JOIN_LIMIT).await?;
            viewer.teardown().await?;
            Ok::<_, String>(sent)
        };
        let failure = match (joined.await, picture.complete_at) {
            (Ok(sent), Some(complete)) => {
                run.ms
                    .push(complete.saturating_duration_since(sent).as_secs_f64() * 1e3);
                if picture.first_unit_keyframe != Some(true) {
                    run.first_not_keyframe += 1;
                }
                continue;
            }
            (Ok(_), None) => format!("no complete keyframe in {JOIN_LIMIT:?}"),
            (Err(error), _) => error,
        };
        run.failures += 1;
        run.first_failure.get_or_insert(failure);
    }
    run
}

impl Outcome {
    /// The results table.
    fn report(&self, args: &Args, stream: &Stream) -> String {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let busy = |load: &Option<(Snapshot, Snapshot)>| {
            load.as_ref()
                .map_or("n/a (no /proc)".into(), |(before, after)| {
                    before.machine_busy(after, cores, "bench")
                })
        };
        let mut table = Table::new(
            "rtpcast live benchmark",
            args.command(),
            self.server_command.clone(),
            "server in a child process, publisher and viewers in the bench process",
        );
        let mut row = |name: &str, value: String| table.row(name, value);
        row(
            "published stream",
            format!(
                "H.264 1280x720 {} fps, IDR every {} s, {:.2} Mbit/s, {:.0} packets/s, keyframe {:.1} KiB; to {LIVE_PATH} over {}, {} packets in all",
                stream.fps,
                GOP.as_secs(),
                stream.bitrate() / 1e6,
                stream.packet_rate(),
                stream.keyframe_bytes() as f64 / 1024.0,
                args.publish_transport.name(),
                self.published
            ),
        );
        for (run, latency) in &self.latency {
            let name = run.transport.name();
            let window = run.until.saturating_duration_since(run.from).as_secs_f64();
            row(
                &format!("latency, {name} viewers"),
                format!(
                    "{}, publisher send to viewer read; {} viewers, {window:.1} s window after {} s warm-up",
                    distribution(latency.ms.clone(), "ms"),
                    run.set_up,
                    WARMUP.as_secs()
                ),
            );
            let unmatched = if latency.unmatched == 0 {
                String::new()
            } else {
                format!("; {} packets read matched none sent", latency.unmatched)
            };
            row(
                &format!("matched / lost, {name}"),
                format!(
                    "{} packets matched; {} of {} sent in the window (less its last 0.5 s) never read{unmatched}",
                    latency.ms.len(),
                    latency.lost,
                    latency.expected
                ),
            );
            row(&format!("machine busy, {name}"), busy(&run.load));
            if let Some(error) = &run.first_failure {
                row(
                    &format!("failed to set up, {name}"),
                    format!("{} (first: {error})", args.viewers - run.set_up),
                );
            }
        }
        for join in &self.joins {
            let mut value = format!(
                "{}; first unit a keyframe in {} of {}",
                distribution(join.ms.clone(), "ms"),
                join.ms.len() - join.first_not_keyframe,
                join.ms.len()
            );
            if join.failures > 0 {
                let _ = write!(
                    value,
                    "; {} FAILED (first: {})",
                    join.failures,
                    join.first_failure.as_deref().unwrap_or("?")
                );
            }
            row(
                &format!("join {} {}", join.path, join.transport.name()),
                value,
            );
        }
        row("machine busy, joins", busy(&self.join_load));
        row(
            "join time",
            "PLAY written to the last packet of the first complete keyframe read, at a random point in the 1 s GOP".into(),
        );
        table.finish()
    }
}
