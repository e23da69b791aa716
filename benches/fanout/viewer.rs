//! The viewer tasks: each sets up and plays the sample over its own RTSP
//! connection, receives RTP over UDP or interleaved, keeps its session
//! alive and tears down; and the statistics they keep per track.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;

use crate::rtsp_client::{connect, request, setup_and_play, Inbound, Outbound, PlayTimes};
use crate::Transport;

/// Viewers sharing one loopback source address: below the 64 connections
/// and 64 sessions per address that the server admitted before those
/// limits became options.
pub(crate) const VIEWERS_PER_IP: usize = 50;
/// GET_PARAMETER interval, well inside the server's 60 s session timeout.
const KEEPALIVE: Duration = Duration::from_secs(20);
/// SO_RCVBUF asked for on each RTP socket, so a key frame's burst fits.
pub(crate) const RECV_BUFFER: usize = 2 << 20;
/// Interleaved channel of video RTP (`interleaved=0-1`).
const VIDEO_CHANNEL: u8 = 0;
/// Interleaved channel of audio RTP (`interleaved=2-3`).
const AUDIO_CHANNEL: u8 = 2;

/// Phase value: before the measured window.
pub(crate) const WARMING: u8 = 0;
/// Phase value: inside the measured window.
pub(crate) const MEASURING: u8 = 1;
/// Phase value: after the measured window; packets are ignored.
pub(crate) const DONE: u8 = 2;

/// Everything shared by the viewer tasks.
#[derive(Debug)]
pub(crate) struct Context {
    /// The server's RTSP address.
    pub(crate) server: SocketAddr,
    /// RTP delivery.
    pub(crate) transport: Transport,
    /// [`WARMING`], [`MEASURING`] or [`DONE`].
    pub(crate) phase: Arc<AtomicU8>,
    /// Bounds concurrent SETUP/PLAY exchanges.
    pub(crate) setup_slots: Semaphore,
    /// RTP clock rate of the video track.
    pub(crate) video_clock: f64,
    /// RTP clock rate of the audio track.
    pub(crate) audio_clock: f64,
}

/// Reception statistics of one RTP stream of one viewer.
#[derive(Debug)]
pub(crate) struct TrackStats {
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
    pub(crate) timestamp_jumps: u64,
    /// Packets received in the window.
    pub(crate) packets: u64,
    /// RTP bytes (header and payload) received in the window.
    pub(crate) bytes: u64,
    /// Packets missing from sequence gaps in the window.
    pub(crate) lost: u64,
    /// Duplicate or late packets in the window.
    pub(crate) out_of_order: u64,
    /// Datagrams that were not RTP.
    pub(crate) malformed: u64,
    /// Arrival and new maximum timestamp of the window's first packet
    /// that raised the running maximum.
    window_start: Option<(Instant, i64)>,
    /// The same for the window's latest such packet.
    window_end: Option<(Instant, i64)>,
    /// Longest time between consecutive packets inside the window.
    pub(crate) max_gap: Duration,
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
    pub(crate) fn media_rate(&self) -> Option<f64> {
        let ((t0, ts0), (t1, ts1)) = self.window_start.zip(self.window_end)?;
        let wall = (t1 - t0).as_secs_f64();
        (wall > 0.0).then(|| (ts1 - ts0) as f64 / self.clock_rate / wall)
    }
}

/// Both streams of one viewer.
#[derive(Debug)]
pub(crate) struct Tracks {
    /// Video (trackID=0).
    pub(crate) video: TrackStats,
    /// Audio (trackID=1).
    pub(crate) audio: TrackStats,
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
pub(crate) struct ViewerStats {
    /// Both streams.
    pub(crate) tracks: Tracks,
    /// When it started to open its RTSP connection.
    pub(crate) connect_started: Instant,
    /// When it sent PLAY and got the answer.
    pub(crate) play: PlayTimes,
    /// Whether TEARDOWN was answered with 200.
    pub(crate) torn_down: bool,
}

impl ViewerStats {
    /// Time from sending PLAY to the arrival of the first RTP packet of
    /// either stream, as timestamped by the task that read it.
    pub(crate) fn play_to_first_rtp(&self) -> Option<Duration> {
        let first = match (
            self.tracks.video.first_arrival,
            self.tracks.audio.first_arrival,
        ) {
            (Some(v), Some(a)) => v.min(a),
            (v, a) => v.or(a)?,
        };
        Some(first.saturating_duration_since(self.play.sent))
    }
}

/// The loopback address viewer `index` connects from.
fn viewer_ip(index: usize) -> Ipv4Addr {
    let host = 1 + index / VIEWERS_PER_IP;
    Ipv4Addr::new(127, 0, (host / 256) as u8, (host % 256) as u8)
}

/// Binds a non-blocking UDP socket on `ip`, with [`RECV_BUFFER`] if
/// `big_buffer`; returns it and the receive buffer the kernel granted.
pub(crate) fn bind_udp(ip: Ipv4Addr, big_buffer: bool) -> std::io::Result<(UdpSocket, usize)> {
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
pub(crate) async fn viewer(
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

/// A viewer that is playing.
struct Playing {
    /// The RTSP connection.
    out: Outbound,
    /// Its read side, carrying the media when interleaved.
    inbound: Inbound,
    /// When it started to open the connection.
    connect_started: Instant,
    /// When PLAY was sent and answered.
    play: PlayTimes,
    /// How the media arrives.
    media: Media,
}

/// How a playing viewer receives RTP.
enum Media {
    /// Over UDP, read by one task per stream.
    Udp {
        /// Video and audio receivers.
        receivers: [JoinHandle<TrackStats>; 2],
        /// The RTCP sockets, open so sender reports are not refused.
        rtcp: [UdpSocket; 2],
    },
    /// Interleaved on the RTSP connection.
    Interleaved,
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
    let connect_started = Instant::now();
    let (mut out, mut inbound) = connect(ip, context.server).await?;
    let [video_rtp, video_rtcp, audio_rtp, audio_rtcp] = sockets;
    let receive = |socket, clock_rate| {
        tokio::spawn(receive_udp(
            socket,
            TrackStats::new(clock_rate),
            context.clone(),
            stop.clone(),
        ))
    };
    let receivers = [
        receive(video_rtp, context.video_clock),
        receive(audio_rtp, context.audio_clock),
    ];
    let transports = [
        format!("RTP/AVP;unicast;client_port={}-{}", ports[0], ports[1]),
        format!("RTP/AVP;unicast;client_port={}-{}", ports[2], ports[3]),
    ];
    match setup_and_play(&mut out, &mut inbound, transports).await {
        Ok(play) => Ok(Playing {
            out,
            inbound,
            connect_started,
            play,
            media: Media::Udp {
                receivers,
                rtcp: [video_rtcp, audio_rtcp],
            },
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
    let connect_started = Instant::now();
    let (mut out, mut inbound) = connect(ip, context.server).await?;
    let transports = [
        "RTP/AVP/TCP;unicast;interleaved=0-1".to_string(),
        "RTP/AVP/TCP;unicast;interleaved=2-3".to_string(),
    ];
    let play = setup_and_play(&mut out, &mut inbound, transports).await?;
    Ok(Playing {
        out,
        inbound,
        connect_started,
        play,
        media: Media::Interleaved,
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
        let Playing {
            mut out,
            mut inbound,
            connect_started,
            play,
            media,
        } = self;
        let mut keepalive =
            tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
        // The RTCP sockets stay open until after TEARDOWN.
        let (mut tracks, _rtcp) = match media {
            Media::Udp { receivers, rtcp } => {
                let mut ignore = |_: u8, _: &[u8]| {};
                loop {
                    tokio::select! {
                        biased;
                        _ = stop.changed() => break,
                        _ = keepalive.tick() => {
                            let url = out.aggregate_url();
                            let _ = request(&mut out, &mut inbound, "GET_PARAMETER", &url, "", &mut ignore).await;
                        }
                    }
                }
                let [video, audio] = receivers;
                let fallback = || TrackStats::new(0.0);
                let tracks = Tracks {
                    video: video.await.unwrap_or_else(|_| fallback()),
                    audio: audio.await.unwrap_or_else(|_| fallback()),
                };
                (tracks, Some(rtcp))
            }
            Media::Interleaved => {
                let mut tracks = Tracks {
                    video: TrackStats::new(context.video_clock),
                    audio: TrackStats::new(context.audio_clock),
                };
                loop {
                    // Frames that came with the PLAY response are already
                    // buffered: account them before waiting for more.
                    let phase = context.phase.load(Ordering::Relaxed);
                    let mut frames = |channel: u8, payload: &[u8]| {
                        tracks.on_frame(channel, payload, phase);
                    };
                    let parsed = loop {
                        match inbound.next_reply(&mut frames) {
                            // Keep-alive replies.
                            Ok(Some(_)) => {}
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
                            let url = out.aggregate_url();
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
                (tracks, None)
            }
        };
        let torn_down = teardown(&mut out, &mut inbound, &mut tracks, &context.phase).await;
        ViewerStats {
            tracks,
            connect_started,
            play,
            torn_down,
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
    let url = out.aggregate_url();
    let mut frames = |channel: u8, payload: &[u8]| {
        tracks.on_frame(channel, payload, phase.load(Ordering::Relaxed));
    };
    request(out, inbound, "TEARDOWN", &url, "", &mut frames)
        .await
        .is_ok()
}
