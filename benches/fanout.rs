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
//! its own loopback address (`127.0.0.x`, at most [`VIEWERS_PER_IP`] per
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

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, UdpSocket};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;

/// Environment variable that makes this binary run the server instead.
const ROLE_ENV: &str = "RTPCAST_BENCH_ROLE";
/// Most viewers one run accepts.
const MAX_VIEWERS: usize = 2000;
/// Longest measured window one run accepts, in seconds.
const MAX_SECONDS: u64 = 120;
/// Time between the last viewer starting to play and the measured window.
const WARMUP: Duration = Duration::from_secs(1);
/// Viewers sharing one loopback source address (the server refuses a 65th
/// connection from one IP).
const VIEWERS_PER_IP: usize = 50;
/// Viewers doing their SETUP/PLAY exchange at the same time.
const SETUP_CONCURRENCY: usize = 32;
/// Longest wait for one RTSP response.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// GET_PARAMETER interval, well inside the server's 60 s session timeout.
const KEEPALIVE: Duration = Duration::from_secs(20);
/// SO_RCVBUF asked for on each RTP socket, so a key frame's burst fits.
const RECV_BUFFER: usize = 2 << 20;
/// Nominal video frame interval of the bundled sample (30 fps).
const VIDEO_FRAME_MS: f64 = 1000.0 / 30.0;
/// Interleaved channel of video RTP (`interleaved=0-1`).
const VIDEO_CHANNEL: u8 = 0;
/// Interleaved channel of audio RTP (`interleaved=2-3`).
const AUDIO_CHANNEL: u8 = 2;

/// Phase value: before the measured window.
const WARMING: u8 = 0;
/// Phase value: inside the measured window.
const MEASURING: u8 = 1;
/// Phase value: after the measured window; packets are ignored.
const DONE: u8 = 2;

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
                "--viewers" => {
                    let v = value()?;
                    parsed.viewers = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_VIEWERS).contains(n))
                        .ok_or_else(|| format!("--viewers {v}: expected 1..={MAX_VIEWERS}"))?;
                }
                "--seconds" => {
                    let v = value()?;
                    parsed.seconds = v
                        .parse()
                        .ok()
                        .filter(|s| (1..=MAX_SECONDS).contains(s))
                        .ok_or_else(|| format!("--seconds {v}: expected 1..={MAX_SECONDS}"))?;
                }
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

/// The child role: starts the server on ephemeral loopback ports, prints
/// `READY <rtsp port> <rtp port>` and serves until stdin closes.
fn serve() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let config = rtpcast::config::Config {
            bind: Ipv4Addr::LOCALHOST.into(),
            rtsp_port: 0,
            rtp_port: 0,
            loop_playback: true,
            ..Default::default()
        };
        let catalog = rtpcast::media::catalog::Catalog::bundled_sample()?;
        let server = rtpcast::server::start(&config, catalog).await?;
        println!("READY {} {}", server.rtsp_addr.port(), server.rtp_port);
        tokio::task::spawn_blocking(|| {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
        })
        .await?;
        server.shutdown();
        Ok(())
    })
}

/// The server child process; killed when dropped.
struct ServerProcess {
    /// The child.
    child: Child,
    /// Its RTSP port on 127.0.0.1.
    rtsp_port: u16,
}

impl ServerProcess {
    /// Re-executes this binary as the server and waits for its READY line.
    fn spawn() -> anyhow::Result<ServerProcess> {
        let mut child = Command::new(std::env::current_exe()?)
            .env(ROLE_ENV, "server")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let mut server = ServerProcess {
            child,
            rtsp_port: 0,
        };
        let mut words = line.split_whitespace();
        server.rtsp_port = match (words.next(), words.next().map(str::parse::<u16>)) {
            (Some("READY"), Some(Ok(port))) => port,
            _ => anyhow::bail!("server child did not start: {line:?}"),
        };
        Ok(server)
    }

    /// The child's process id.
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
fn process_rss_kib(pid: u32) -> anyhow::Result<u64> {
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
struct Snapshot {
    /// When it was taken.
    at: Instant,
    /// Server process CPU time.
    server_cpu: Duration,
    /// Bench (viewer) process CPU time.
    own_cpu: Duration,
    /// Idle time of all cores together.
    machine_idle: Duration,
    /// UDP receive and send buffer errors, system-wide.
    udp_errors: (u64, u64),
}

impl Snapshot {
    /// Reads the counters now.
    fn take(pid: u32) -> anyhow::Result<Snapshot> {
        Ok(Snapshot {
            at: Instant::now(),
            server_cpu: process_cpu(pid)?,
            own_cpu: own_cpu(),
            machine_idle: machine_idle()?,
            udp_errors: udp_buffer_errors()?,
        })
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

/// Everything shared by the viewer tasks.
#[derive(Debug)]
struct Context {
    /// The server's RTSP address.
    server: SocketAddr,
    /// RTP delivery.
    transport: Transport,
    /// [`WARMING`], [`MEASURING`] or [`DONE`].
    phase: AtomicU8,
    /// Bounds concurrent SETUP/PLAY exchanges.
    setup_slots: Semaphore,
    /// RTP clock rate of the video track.
    video_clock: f64,
    /// RTP clock rate of the audio track.
    audio_clock: f64,
}

/// What a run produced, before formatting.
struct Outcome {
    /// Viewers that got to PLAY.
    playing: usize,
    /// The first SETUP/PLAY failure and how many viewers failed.
    failures: (usize, Option<String>),
    /// Time from spawning the viewers until the last one was playing.
    setup_time: Duration,
    /// Counters at the start of the window.
    before: Snapshot,
    /// Counters at the end of the window.
    after: Snapshot,
    /// Server RSS at the end of the window, KiB.
    server_rss_kib: u64,
    /// Per viewer statistics.
    viewers: Vec<ViewerStats>,
    /// The receive buffer the kernel granted an RTP socket (UDP only).
    granted_rcvbuf: Option<usize>,
}

/// Starts the viewers, measures, tears everything down.
async fn run(args: Args, server: SocketAddr, pid: u32) -> anyhow::Result<Outcome> {
    let sample = rtpcast::media::catalog::Catalog::bundled_sample()?.resolve("/sample")?;
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

/// Reception statistics of one RTP stream of one viewer.
#[derive(Debug)]
struct TrackStats {
    /// RTP clock rate.
    clock_rate: f64,
    /// Arrival of the first packet (any phase).
    first_arrival: Option<Instant>,
    /// Arrival of the latest packet (any phase).
    last_arrival: Option<Instant>,
    /// Highest in-order sequence number so far.
    last_seq: Option<u16>,
    /// Timestamp of the first packet: origin of relative timestamps.
    first_timestamp: Option<u32>,
    /// Highest timestamp so far, relative to the first, leaving out
    /// jumps. With B-frames the video timestamps are not monotonic, but
    /// their running maximum runs at media speed.
    max_timestamp: i64,
    /// Packets in the window whose timestamp was more than one second
    /// away from the running maximum (left out of it).
    timestamp_jumps: u64,
    /// Packets received in the window.
    packets: u64,
    /// RTP bytes (header and payload) received in the window.
    bytes: u64,
    /// Packets missing from sequence gaps in the window.
    lost: u64,
    /// Duplicate or late packets in the window.
    out_of_order: u64,
    /// Datagrams that were not RTP.
    malformed: u64,
    /// Arrival and new maximum timestamp of the window's first packet
    /// that raised the running maximum.
    window_start: Option<(Instant, i64)>,
    /// The same for the window's latest such packet.
    window_end: Option<(Instant, i64)>,
    /// Longest time between consecutive packets inside the window.
    max_gap: Duration,
}

impl TrackStats {
    /// Empty statistics for a stream with this RTP clock rate.
    fn new(clock_rate: f64) -> Self {
        TrackStats {
            clock_rate,
            first_arrival: None,
            last_arrival: None,
            last_seq: None,
            first_timestamp: None,
            max_timestamp: 0,
            timestamp_jumps: 0,
            packets: 0,
            bytes: 0,
            lost: 0,
            out_of_order: 0,
            malformed: 0,
            window_start: None,
            window_end: None,
            max_gap: Duration::ZERO,
        }
    }

    /// Accounts one RTP packet that arrived at `now` during `phase`.
    fn record(&mut self, packet: &[u8], now: Instant, phase: u8) {
        if phase == DONE {
            return;
        }
        if packet.len() < 12 || packet[0] >> 6 != 2 {
            self.malformed += 1;
            return;
        }
        let measuring = phase == MEASURING;
        let seq = u16::from_be_bytes([packet[2], packet[3]]);
        let timestamp = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        let origin = *self.first_timestamp.get_or_insert(timestamp);
        // i32: valid for ±6.6 h of media at 90 kHz, far beyond a run.
        let relative = i64::from(timestamp.wrapping_sub(origin) as i32);
        let jump = (relative - self.max_timestamp).abs() > self.clock_rate as i64;
        let raised = !jump && relative > self.max_timestamp;
        if jump {
            self.timestamp_jumps += u64::from(measuring);
        } else if raised {
            self.max_timestamp = relative;
        }
        self.first_arrival.get_or_insert(now);
        match self.last_seq {
            Some(last) => {
                let step = seq.wrapping_sub(last);
                if step == 0 || step >= 0x8000 {
                    self.out_of_order += u64::from(measuring);
                } else {
                    if measuring {
                        self.lost += u64::from(step - 1);
                    }
                    self.last_seq = Some(seq);
                }
            }
            None => self.last_seq = Some(seq),
        }
        if measuring {
            if let (true, Some(last)) = (self.packets > 0, self.last_arrival) {
                self.max_gap = self.max_gap.max(now - last);
            }
            self.packets += 1;
            self.bytes += packet.len() as u64;
            // Edges only where the maximum rises: the same point of the
            // B-frame pattern, so its lead over decode order cancels out.
            if raised {
                self.window_start.get_or_insert((now, self.max_timestamp));
                self.window_end = Some((now, self.max_timestamp));
            }
        }
        self.last_arrival = Some(now);
    }

    /// Media seconds delivered per wall second in the window (1.0 is real
    /// time), from the running maximum timestamp, if it rose at least
    /// twice in the window.
    fn media_rate(&self) -> Option<f64> {
        let ((t0, ts0), (t1, ts1)) = self.window_start.zip(self.window_end)?;
        let wall = (t1 - t0).as_secs_f64();
        (wall > 0.0).then(|| (ts1 - ts0) as f64 / self.clock_rate / wall)
    }
}

/// Both streams of one viewer.
#[derive(Debug)]
struct Tracks {
    /// Video (trackID=0).
    video: TrackStats,
    /// Audio (trackID=1).
    audio: TrackStats,
}

impl Tracks {
    /// Accounts one interleaved frame.
    fn on_frame(&mut self, channel: u8, payload: &[u8], phase: u8) {
        let now = Instant::now();
        match channel {
            VIDEO_CHANNEL => self.video.record(payload, now, phase),
            AUDIO_CHANNEL => self.audio.record(payload, now, phase),
            _ => {}
        }
    }
}

/// What one viewer measured.
#[derive(Debug)]
struct ViewerStats {
    /// Both streams.
    tracks: Tracks,
    /// When PLAY was sent.
    play_sent: Instant,
    /// Whether TEARDOWN was answered with 200.
    torn_down: bool,
}

impl ViewerStats {
    /// Time from sending PLAY to the first RTP packet of either stream.
    fn startup(&self) -> Option<Duration> {
        let first = match (
            self.tracks.video.first_arrival,
            self.tracks.audio.first_arrival,
        ) {
            (Some(v), Some(a)) => v.min(a),
            (v, a) => v.or(a)?,
        };
        Some(first.saturating_duration_since(self.play_sent))
    }
}

/// The loopback address viewer `index` connects from.
fn viewer_ip(index: usize) -> Ipv4Addr {
    let host = 1 + index / VIEWERS_PER_IP;
    Ipv4Addr::new(127, 0, (host / 256) as u8, (host % 256) as u8)
}

/// Binds a non-blocking UDP socket on `ip`, with [`RECV_BUFFER`] if
/// `big_buffer`; returns it and the receive buffer the kernel granted.
fn bind_udp(ip: Ipv4Addr, big_buffer: bool) -> std::io::Result<(UdpSocket, usize)> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    if big_buffer {
        socket.set_recv_buffer_size(RECV_BUFFER)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::from((ip, 0)).into())?;
    let granted = socket.recv_buffer_size()?;
    Ok((UdpSocket::from_std(socket.into())?, granted))
}

/// One viewer: set up and play, report readiness, receive until told to
/// stop, tear down. `None` if it never got to play.
async fn viewer(
    index: usize,
    context: Arc<Context>,
    ready: mpsc::Sender<Result<(), String>>,
    stop: watch::Receiver<bool>,
) -> Option<ViewerStats> {
    let ip = viewer_ip(index);
    let permit = context.setup_slots.acquire().await.ok()?;
    let setup = match context.transport {
        Transport::Udp => setup_udp(ip, &context, &stop).await,
        Transport::Tcp => setup_tcp(ip, &context).await,
    };
    drop(permit);
    let playing = match setup {
        Ok(playing) => {
            let _ = ready.send(Ok(())).await;
            playing
        }
        Err(error) => {
            let _ = ready
                .send(Err(format!("viewer {index} ({ip}): {error}")))
                .await;
            return None;
        }
    };
    drop(ready);
    Some(playing.run(&context, stop).await)
}

/// Reads an RTSP connection: responses and interleaved frames.
struct Inbound {
    /// The connection's read half.
    reader: OwnedReadHalf,
    /// Received bytes; `start..end` is not parsed yet.
    buf: Vec<u8>,
    /// First unparsed byte.
    start: usize,
    /// End of received bytes.
    end: usize,
}

/// Something parsed from an RTSP connection.
enum Item<'a> {
    /// An interleaved frame (RFC 2326 §10.12).
    Frame {
        /// Its channel.
        channel: u8,
        /// The RTP or RTCP packet.
        payload: &'a [u8],
    },
    /// A response.
    Response(Reply),
}

/// The parts of an RTSP response the viewer needs.
#[derive(Debug)]
struct Reply {
    /// Status code.
    status: u16,
    /// CSeq header value.
    cseq: Option<u32>,
    /// Session id, without `;timeout=`.
    session: Option<String>,
}

impl Inbound {
    /// Smallest free space offered to one read.
    const MIN_READ: usize = 16 * 1024;

    /// Wraps a read half.
    fn new(reader: OwnedReadHalf) -> Self {
        Inbound {
            reader,
            buf: vec![0; 128 * 1024],
            start: 0,
            end: 0,
        }
    }

    /// Reads more bytes; `Ok(0)` at end of stream.
    async fn fill(&mut self) -> std::io::Result<usize> {
        if self.buf.len() - self.end < Self::MIN_READ {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.buf.len() - self.end < Self::MIN_READ {
                self.buf.resize(self.buf.len() * 2, 0);
            }
        }
        let read = self.reader.read(&mut self.buf[self.end..]).await?;
        self.end += read;
        Ok(read)
    }

    /// The next complete item, if one has arrived.
    fn next_item(&mut self) -> Result<Option<Item<'_>>, String> {
        let pending = &self.buf[self.start..self.end];
        match pending.first() {
            None => Ok(None),
            Some(b'$') => {
                if pending.len() < 4 {
                    return Ok(None);
                }
                let len = usize::from(u16::from_be_bytes([pending[2], pending[3]]));
                if pending.len() < 4 + len {
                    return Ok(None);
                }
                let channel = pending[1];
                let from = self.start + 4;
                self.start = from + len;
                Ok(Some(Item::Frame {
                    channel,
                    payload: &self.buf[from..from + len],
                }))
            }
            Some(b'R') => {
                let Some(head_len) = pending.windows(4).position(|w| w == b"\r\n\r\n") else {
                    return if pending.len() > 64 * 1024 {
                        Err("response header too long".into())
                    } else {
                        Ok(None)
                    };
                };
                let head = String::from_utf8_lossy(&pending[..head_len]);
                let mut lines = head.split("\r\n");
                let status = lines
                    .next()
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
                    .ok_or_else(|| format!("bad status line in {head:?}"))?;
                let mut reply = Reply {
                    status,
                    cseq: None,
                    session: None,
                };
                let mut body = 0;
                for line in lines {
                    let Some((name, value)) = line.split_once(':') else {
                        continue;
                    };
                    let value = value.trim();
                    match name.trim().to_ascii_lowercase().as_str() {
                        "cseq" => reply.cseq = value.parse().ok(),
                        "session" => {
                            reply.session = value.split(';').next().map(|s| s.trim().to_string())
                        }
                        "content-length" => body = value.parse().unwrap_or(0),
                        _ => {}
                    }
                }
                let total = head_len + 4 + body;
                if pending.len() < total {
                    return Ok(None);
                }
                self.start += total;
                Ok(Some(Item::Response(reply)))
            }
            Some(other) => Err(format!(
                "unexpected byte {other:#04x} on the RTSP connection"
            )),
        }
    }
}

/// Writes requests on an RTSP connection.
struct Outbound {
    /// The connection's write half.
    writer: OwnedWriteHalf,
    /// CSeq of the latest request.
    cseq: u32,
    /// The session id once SETUP answered.
    session: Option<String>,
    /// Aggregate URL of the sample.
    url: String,
}

impl Outbound {
    /// Sends `method url` with `extra` header lines (each ending in CRLF)
    /// and the session header; returns its CSeq.
    async fn send(&mut self, method: &str, url: &str, extra: &str) -> Result<u32, String> {
        self.cseq += 1;
        let session = self
            .session
            .as_ref()
            .map(|s| format!("Session: {s}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "{method} {url} RTSP/1.0\r\nCSeq: {}\r\nUser-Agent: rtpcast-fanout-bench\r\n{session}{extra}\r\n",
            self.cseq
        );
        self.writer
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("{method}: {e}"))?;
        Ok(self.cseq)
    }
}

/// Sends a request and waits for its response, passing interleaved
/// frames that arrive meanwhile to `frames`; fails on a non-200 answer.
async fn request(
    out: &mut Outbound,
    inbound: &mut Inbound,
    method: &str,
    url: &str,
    extra: &str,
    frames: &mut (dyn FnMut(u8, &[u8]) + Send),
) -> Result<Reply, String> {
    let cseq = out.send(method, url, extra).await?;
    let exchange = async {
        loop {
            while let Some(item) = inbound.next_item()? {
                match item {
                    Item::Frame { channel, payload } => frames(channel, payload),
                    Item::Response(reply) if reply.cseq == Some(cseq) => return Ok(reply),
                    Item::Response(_) => {}
                }
            }
            match inbound.fill().await {
                Ok(0) => return Err("connection closed".to_string()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    };
    let reply = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("{method}: no response in {REQUEST_TIMEOUT:?}"))??;
    if reply.status != 200 {
        return Err(format!("{method} {url}: status {}", reply.status));
    }
    Ok(reply)
}

/// Opens the RTSP connection from `ip`.
async fn connect(ip: Ipv4Addr, server: SocketAddr) -> Result<(Outbound, Inbound), String> {
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind(SocketAddr::from((ip, 0)))
        .map_err(|e| format!("binding {ip}: {e}"))?;
    let stream = socket
        .connect(server)
        .await
        .map_err(|e| format!("connecting: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (reader, writer) = stream.into_split();
    let url = format!("rtsp://{server}/sample");
    Ok((
        Outbound {
            writer,
            cseq: 0,
            session: None,
            url,
        },
        Inbound::new(reader),
    ))
}

/// SETUPs video then audio with `transports`, then PLAYs; returns when
/// PLAY was sent.
async fn setup_and_play(
    out: &mut Outbound,
    inbound: &mut Inbound,
    transports: [String; 2],
) -> Result<Instant, String> {
    let mut ignore = |_: u8, _: &[u8]| {};
    for (track, transport) in transports.iter().enumerate() {
        let url = format!("{}/trackID={track}", out.url);
        let reply = request(
            out,
            inbound,
            "SETUP",
            &url,
            &format!("Transport: {transport}\r\n"),
            &mut ignore,
        )
        .await?;
        if out.session.is_none() {
            out.session = Some(reply.session.ok_or("SETUP answered without Session")?);
        }
    }
    let play_sent = Instant::now();
    let url = format!("{}/", out.url);
    request(out, inbound, "PLAY", &url, "", &mut ignore).await?;
    Ok(play_sent)
}

/// A viewer that is playing.
enum Playing {
    /// RTP over UDP, read by one task per stream.
    Udp {
        /// The RTSP connection.
        out: Outbound,
        /// Its read side.
        inbound: Inbound,
        /// Video and audio receivers.
        receivers: [JoinHandle<TrackStats>; 2],
        /// The RTCP sockets, open so sender reports are not refused.
        _rtcp: [UdpSocket; 2],
        /// When PLAY was sent.
        play_sent: Instant,
    },
    /// RTP interleaved on the RTSP connection.
    Tcp {
        /// The RTSP connection.
        out: Outbound,
        /// Its read side, carrying the media.
        inbound: Inbound,
        /// When PLAY was sent.
        play_sent: Instant,
    },
}

/// Binds the four UDP sockets, starts the two RTP receivers and plays.
async fn setup_udp(
    ip: Ipv4Addr,
    context: &Arc<Context>,
    stop: &watch::Receiver<bool>,
) -> Result<Playing, String> {
    let bind = |big| bind_udp(ip, big).map(|(s, _)| s).map_err(|e| e.to_string());
    let sockets = [bind(true)?, bind(false)?, bind(true)?, bind(false)?];
    let ports: Vec<u16> = sockets
        .iter()
        .map(|s| s.local_addr().map(|a| a.port()).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let (mut out, mut inbound) = connect(ip, context.server).await?;
    let [video_rtp, video_rtcp, audio_rtp, audio_rtcp] = sockets;
    let receivers = [
        tokio::spawn(receive_udp(
            video_rtp,
            TrackStats::new(context.video_clock),
            context.clone(),
            stop.clone(),
        )),
        tokio::spawn(receive_udp(
            audio_rtp,
            TrackStats::new(context.audio_clock),
            context.clone(),
            stop.clone(),
        )),
    ];
    let transports = [
        format!("RTP/AVP;unicast;client_port={}-{}", ports[0], ports[1]),
        format!("RTP/AVP;unicast;client_port={}-{}", ports[2], ports[3]),
    ];
    match setup_and_play(&mut out, &mut inbound, transports).await {
        Ok(play_sent) => Ok(Playing::Udp {
            out,
            inbound,
            receivers,
            _rtcp: [video_rtcp, audio_rtcp],
            play_sent,
        }),
        Err(error) => {
            for receiver in receivers {
                receiver.abort();
            }
            Err(error)
        }
    }
}

/// Connects and plays with interleaved delivery.
async fn setup_tcp(ip: Ipv4Addr, context: &Context) -> Result<Playing, String> {
    let (mut out, mut inbound) = connect(ip, context.server).await?;
    let transports = [
        "RTP/AVP/TCP;unicast;interleaved=0-1".to_string(),
        "RTP/AVP/TCP;unicast;interleaved=2-3".to_string(),
    ];
    let play_sent = setup_and_play(&mut out, &mut inbound, transports).await?;
    Ok(Playing::Tcp {
        out,
        inbound,
        play_sent,
    })
}

/// Reads one RTP socket until `stop`.
async fn receive_udp(
    socket: UdpSocket,
    mut stats: TrackStats,
    context: Arc<Context>,
    mut stop: watch::Receiver<bool>,
) -> TrackStats {
    let mut buf = vec![0u8; 2048];
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => return stats,
            received = socket.recv(&mut buf) => match received {
                Ok(len) => stats.record(
                    &buf[..len],
                    Instant::now(),
                    context.phase.load(Ordering::Relaxed),
                ),
                Err(_) => return stats,
            },
        }
    }
}

impl Playing {
    /// Receives (interleaved) or keeps the session alive (UDP) until
    /// `stop`, then tears down.
    async fn run(self, context: &Context, mut stop: watch::Receiver<bool>) -> ViewerStats {
        let mut keepalive =
            tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
        match self {
            Playing::Udp {
                mut out,
                mut inbound,
                receivers,
                _rtcp,
                play_sent,
            } => {
                let mut ignore = |_: u8, _: &[u8]| {};
                loop {
                    tokio::select! {
                        biased;
                        _ = stop.changed() => break,
                        _ = keepalive.tick() => {
                            let url = format!("{}/", out.url);
                            let _ = request(&mut out, &mut inbound, "GET_PARAMETER", &url, "", &mut ignore).await;
                        }
                    }
                }
                let [video, audio] = receivers;
                let fallback = || TrackStats::new(0.0);
                let mut tracks = Tracks {
                    video: video.await.unwrap_or_else(|_| fallback()),
                    audio: audio.await.unwrap_or_else(|_| fallback()),
                };
                let torn_down = teardown(&mut out, &mut inbound, &mut tracks, &context.phase).await;
                ViewerStats {
                    tracks,
                    play_sent,
                    torn_down,
                }
            }
            Playing::Tcp {
                mut out,
                mut inbound,
                play_sent,
            } => {
                let mut tracks = Tracks {
                    video: TrackStats::new(context.video_clock),
                    audio: TrackStats::new(context.audio_clock),
                };
                loop {
                    // Frames that came with the PLAY response are already
                    // buffered: account them before waiting for more.
                    let phase = context.phase.load(Ordering::Relaxed);
                    let parsed = loop {
                        match inbound.next_item() {
                            Ok(Some(Item::Frame { channel, payload })) => {
                                tracks.on_frame(channel, payload, phase);
                            }
                            // Keep-alive replies.
                            Ok(Some(Item::Response(_))) => {}
                            Ok(None) => break true,
                            Err(_) => break false,
                        }
                    };
                    if !parsed {
                        break;
                    }
                    tokio::select! {
                        biased;
                        _ = stop.changed() => break,
                        _ = keepalive.tick() => {
                            let url = format!("{}/", out.url);
                            if out.send("GET_PARAMETER", &url, "").await.is_err() {
                                break;
                            }
                        }
                        read = inbound.fill() => {
                            if !matches!(read, Ok(n) if n > 0) {
                                break;
                            }
                        }
                    }
                }
                let torn_down = teardown(&mut out, &mut inbound, &mut tracks, &context.phase).await;
                ViewerStats {
                    tracks,
                    play_sent,
                    torn_down,
                }
            }
        }
    }
}

/// Sends TEARDOWN and waits for its answer, accounting interleaved frames
/// that arrive meanwhile; true if it was answered with 200.
async fn teardown(
    out: &mut Outbound,
    inbound: &mut Inbound,
    tracks: &mut Tracks,
    phase: &AtomicU8,
) -> bool {
    let url = format!("{}/", out.url);
    let mut frames = |channel: u8, payload: &[u8]| {
        tracks.on_frame(channel, payload, phase.load(Ordering::Relaxed));
    };
    request(out, inbound, "TEARDOWN", &url, "", &mut frames)
        .await
        .is_ok()
}

/// The `p`-quantile (0..=1, nearest rank) of sorted `values`.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Sorts `values` and formats p50 / p99 / max with `unit`.
fn distribution(mut values: Vec<f64>, unit: &str) -> String {
    values.sort_by(f64::total_cmp);
    format!(
        "p50 {:.1} {unit}, p99 {:.1} {unit}, max {:.1} {unit} (n={})",
        percentile(&values, 0.5),
        percentile(&values, 0.99),
        percentile(&values, 1.0),
        values.len()
    )
}

/// Formats the min and max of `values` as speed factors.
fn range(values: &[f64]) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if values.is_empty() {
        "n/a".into()
    } else {
        format!("min {min:.4}x, max {max:.4}x (n={})", values.len())
    }
}

impl Outcome {
    /// The results table.
    fn report(&self, args: &Args, cores: usize) -> String {
        let window = (self.after.at - self.before.at).as_secs_f64();
        let tracks = || self.viewers.iter().map(|v| &v.tracks);
        let sum = |f: &dyn Fn(&Tracks) -> u64| tracks().map(f).sum::<u64>();
        let video_packets = sum(&|t| t.video.packets);
        let audio_packets = sum(&|t| t.audio.packets);
        let packets = video_packets + audio_packets;
        let bytes = sum(&|t| t.video.bytes + t.audio.bytes);
        let lost = sum(&|t| t.video.lost + t.audio.lost);
        let out_of_order = sum(&|t| t.video.out_of_order + t.audio.out_of_order);
        let malformed = sum(&|t| t.video.malformed + t.audio.malformed);
        let silent = tracks()
            .filter(|t| t.video.packets == 0 || t.audio.packets == 0)
            .count();
        let video_jumps = sum(&|t| t.video.timestamp_jumps);
        let audio_jumps = sum(&|t| t.audio.timestamp_jumps);
        let jumpy_viewers = tracks()
            .filter(|t| t.video.timestamp_jumps + t.audio.timestamp_jumps > 0)
            .count();
        let lossy_viewers = tracks().filter(|t| t.video.lost + t.audio.lost > 0).count();
        let mbits = bytes as f64 * 8.0 / window / 1e6;
        let server_cpu = (self.after.server_cpu - self.before.server_cpu).as_secs_f64();
        let own_cpu = (self.after.own_cpu - self.before.own_cpu).as_secs_f64();
        let idle = (self.after.machine_idle - self.before.machine_idle).as_secs_f64();
        let machine_cores = (cores as f64 - idle / window).max(0.0);
        let rcvbuf_errors = self.after.udp_errors.0 - self.before.udp_errors.0;
        let sndbuf_errors = self.after.udp_errors.1 - self.before.udp_errors.1;
        let startup: Vec<f64> = self
            .viewers
            .iter()
            .filter_map(ViewerStats::startup)
            .map(|d| d.as_secs_f64() * 1e3)
            .collect();
        let video_rates: Vec<f64> = tracks().filter_map(|t| t.video.media_rate()).collect();
        let audio_rates: Vec<f64> = tracks().filter_map(|t| t.audio.media_rate()).collect();
        let gaps: Vec<f64> = tracks()
            .filter(|t| t.video.packets > 1)
            .map(|t| t.video.max_gap.as_secs_f64() * 1e3)
            .collect();
        let torn_down = self.viewers.iter().filter(|v| v.torn_down).count();
        let ips = (args.viewers - 1) / VIEWERS_PER_IP + 1;

        let mut s = String::new();
        let mut row = |name: &str, value: String| {
            let _ = writeln!(s, "  {name:<24} {value}");
        };
        row("command", args.command());
        row(
            "machine",
            format!(
                "{cores} cores (available_parallelism); server in a child process, viewers in the bench process"
            ),
        );
        row(
            "viewers playing",
            format!(
                "{} / {} over {} ({ips} loopback source address{}), all playing after {:.2} s",
                self.playing,
                args.viewers,
                args.transport.name(),
                if ips == 1 { "" } else { "es" },
                self.setup_time.as_secs_f64()
            ),
        );
        if self.failures.0 > 0 {
            row(
                "failed to play",
                format!(
                    "{} (first: {})",
                    self.failures.0,
                    self.failures.1.as_deref().unwrap_or("?")
                ),
            );
        }
        row(
            "window",
            format!("{window:.2} s after {:.0} s warm-up", WARMUP.as_secs_f64()),
        );
        row(
            "packets delivered",
            format!(
                "{packets} ({video_packets} video, {audio_packets} audio) = {:.0} packets/s",
                packets as f64 / window
            ),
        );
        row(
            "throughput",
            format!(
                "{mbits:.1} Mbit/s total, {:.3} Mbit/s per viewer (RTP header + payload)",
                mbits / self.viewers.len().max(1) as f64
            ),
        );
        let loss = if lost == 0 {
            "none seen".to_string()
        } else {
            format!(
                "LOSS SEEN: {lost} of {} expected ({:.3}%), at {lossy_viewers} viewers",
                packets + lost,
                lost as f64 * 100.0 / (packets + lost) as f64
            )
        };
        row("loss (seq gaps)", loss);
        if out_of_order + malformed > 0 {
            row(
                "out of order / not RTP",
                format!("{out_of_order} / {malformed}"),
            );
        }
        if silent > 0 {
            row(
                "viewers without media",
                format!("{silent} received no video or no audio in the window"),
            );
        }
        if let Some(granted) = self.granted_rcvbuf {
            row(
                "UDP buffer errors",
                format!(
                    "RcvbufErrors +{rcvbuf_errors}, SndbufErrors +{sndbuf_errors} (system-wide); RTP SO_RCVBUF {} KiB asked, kernel reports {} KiB",
                    RECV_BUFFER / 1024,
                    granted / 1024
                ),
            );
        }
        row(
            "server CPU",
            format!(
                "{:.1}% of one core, {:.2} us per delivered packet",
                server_cpu * 100.0 / window,
                server_cpu * 1e6 / packets.max(1) as f64
            ),
        );
        row(
            "server RSS",
            format!("{:.1} MiB", self.server_rss_kib as f64 / 1024.0),
        );
        row(
            "machine busy",
            format!(
                "{machine_cores:.2} of {cores} cores: server {:.2}, viewers {:.2}, rest {:.2}",
                server_cpu / window,
                own_cpu / window,
                (machine_cores - (server_cpu + own_cpu) / window).max(0.0)
            ),
        );
        row("PLAY -> first RTP", distribution(startup, "ms"));
        let jumps = if video_jumps + audio_jumps == 0 {
            "none".to_string()
        } else {
            format!(
                "{video_jumps} video, {audio_jumps} audio packets more than 1 s off the running maximum, at {jumpy_viewers} viewers"
            )
        };
        row("RTP timestamp jumps", jumps);
        row("media rate video", range(&video_rates));
        row("media rate audio", range(&audio_rates));
        row(
            "longest video gap",
            format!(
                "{} (nominal frame interval {VIDEO_FRAME_MS:.1} ms)",
                distribution(gaps, "ms")
            ),
        );
        row(
            "teardown",
            format!("{torn_down} / {} answered 200", self.viewers.len()),
        );
        format!("rtpcast fan-out benchmark\n{s}")
    }
}
