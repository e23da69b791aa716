//! The whole server core on a virtual clock, without sockets: the RTSP
//! handler, the viewers it creates, their file playout, RTCP routing and
//! session timeouts, driven by scripted clients with simulated time and a
//! seeded generator. Fifty viewers over UDP and TCP play the bundled 10 s
//! sample with PAUSE, seek, TEARDOWN and one silent viewer that times out;
//! about 75 s of simulated time run in well under a second.
//!
//! The test plays the I/O layer's part exactly as `server/` does: it
//! resolves mounts, keeps the viewers, reads the samples they ask for,
//! routes RTCP by source and runs the reaper every second; what would go
//! on the wire is recorded per session instead.

// Tests are the I/O side: they start the virtual clock from a real
// `Instant` (clippy.toml keeps clocks out of the core).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rtpcast::config::Limit;
use rtpcast::media::mp4::Mp4Media;
use rtpcast::rtcp::{self, ReportBlock, RtcpPacket};
use rtpcast::rtp::Delivery;
use rtpcast::rtsp::handler::{
    media_needed, Action, HandlerSettings, RequestContext, RtcpSource, RtspHandler,
};
use rtpcast::server::catalog::Catalog;
use rtpcast::source::Presentation;
use rtpcast::viewer::{Transmit, Viewer};
use rtsp_types::{headers, Method, Request, Response, Url, Version};

const VIEWERS: usize = 50;
const SESSION_TIMEOUT: Duration = Duration::from_secs(60);
const END: Duration = Duration::from_secs(75);
const BASE: &str = "rtsp://10.0.0.1:5544/sample";

/// What a scripted client does, and when (from the start of the run).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Step {
    Describe,
    Setup(usize),
    Play(Option<f64>),
    Pause,
    Teardown,
    /// A receiver report about the video track (keeps the session alive).
    ReceiverReport,
}

/// How each client behaves after it starts playing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Plays the whole file, then TEARDOWN.
    Whole,
    /// PAUSE at 3 s, resume at 5 s, sending receiver reports.
    PauseResume,
    /// Seeks to 5.5 s while playing.
    Seek,
    /// TEARDOWN mid-stream.
    Leave,
    /// Never speaks after PLAY: times out.
    Silent,
}

fn kind(client: usize) -> Kind {
    [
        Kind::Whole,
        Kind::PauseResume,
        Kind::Seek,
        Kind::Leave,
        Kind::Silent,
    ][client % 5]
}

fn tcp(client: usize) -> bool {
    client % 2 == 1
}

fn script(client: usize) -> Vec<(Duration, Step)> {
    let start = Duration::from_millis(10 * client as u64);
    let at = |secs: f64| start + Duration::from_secs_f64(secs);
    let mut steps = vec![
        (at(0.0), Step::Describe),
        (at(0.001), Step::Setup(0)),
        (at(0.002), Step::Setup(1)),
        (at(0.003), Step::Play(None)),
    ];
    match kind(client) {
        Kind::Whole => steps.push((at(12.0), Step::Teardown)),
        Kind::PauseResume => {
            steps.push((at(3.0), Step::Pause));
            steps.push((at(5.0), Step::Play(None)));
            for report in 1..=3 {
                steps.push((at(5.0 * f64::from(report)), Step::ReceiverReport));
            }
            steps.push((at(14.0), Step::Teardown));
        }
        Kind::Seek => {
            steps.push((at(2.0), Step::Play(Some(5.5))));
            steps.push((at(9.0), Step::Teardown));
        }
        Kind::Leave => steps.push((at(4.0), Step::Teardown)),
        Kind::Silent => {}
    }
    steps.sort_by_key(|(time, _)| *time);
    steps
}

/// One thing a session put on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sent {
    at: Duration,
    /// Track index.
    track: usize,
    /// A whole RTP packet, or a compound RTCP packet.
    bytes: Vec<u8>,
    rtcp: bool,
}

/// What one client saw: its answers and its session's packets.
#[derive(Debug, Default)]
struct ClientLog {
    session: Option<String>,
    /// PLAY answers: when, the Range and RTP-Info headers.
    plays: Vec<(Duration, String, String)>,
    sent: Vec<Sent>,
    pause_at: Option<Duration>,
    teardown_at: Option<Duration>,
    last_status: u16,
}

struct Sim {
    base: Instant,
    wall_base: SystemTime,
    catalog: Catalog,
    handler: RtspHandler,
    viewers: BTreeMap<String, Viewer>,
    routes: HashMap<RtcpSource, String>,
    owners: HashMap<String, usize>,
    clients: Vec<ClientLog>,
    cseq: u32,
    /// When each timed-out session was reaped.
    expired: HashMap<String, Duration>,
}

impl Sim {
    fn new(seed: u8) -> Self {
        let settings = HandlerSettings {
            server_rtp_port: 5005,
            mtu: 1400,
            loop_playback: false,
            session_timeout: SESSION_TIMEOUT,
            max_sessions_per_connection: Limit::at_most(4),
            max_sessions_per_address: Limit::at_most(100),
            max_sessions: Limit::at_most(1000),
            rng_seed: [seed; 32],
            publish_paths: Vec::new(),
            publish_takeover: false,
            source_paths: Vec::new(),
            multicast: None,
            access: Vec::new(),
            auth: Default::default(),
        };
        Sim {
            base: Instant::now(),
            wall_base: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            catalog: Catalog::bundled_sample().expect("bundled sample"),
            handler: RtspHandler::new(settings),
            viewers: BTreeMap::new(),
            routes: HashMap::new(),
            owners: HashMap::new(),
            clients: (0..VIEWERS).map(|_| ClientLog::default()).collect(),
            cseq: 0,
            expired: HashMap::new(),
        }
    }

    fn wall(&self, at: Duration) -> SystemTime {
        self.wall_base + at
    }

    fn ctx(&self, client: usize, at: Duration) -> RequestContext {
        RequestContext {
            connection: client as u64 + 1,
            peer: SocketAddr::from(([10, 1, 0, 1 + client as u8], 40_000)),
            local: SocketAddr::from(([10, 0, 0, 1], 5544)),
            received: self.base + at,
            secure: false,
        }
    }

    fn client_rtp_port(client: usize) -> u16 {
        10_000 + 4 * client as u16
    }

    fn request(&mut self, client: usize, step: Step) -> Request<Vec<u8>> {
        self.cseq += 1;
        let (method, url) = match step {
            Step::Describe => (Method::Describe, BASE.to_string()),
            Step::Setup(track) => (Method::Setup, format!("{BASE}/trackID={track}")),
            Step::Play(_) => (Method::Play, BASE.to_string()),
            Step::Pause => (Method::Pause, BASE.to_string()),
            Step::Teardown => (Method::Teardown, BASE.to_string()),
            Step::ReceiverReport => unreachable!("not a request"),
        };
        let mut builder = Request::builder(method, Version::V1_0)
            .request_uri(Url::parse(&url).expect("url"))
            .header(headers::CSEQ, self.cseq.to_string());
        if let Some(session) = &self.clients[client].session {
            builder = builder.header(headers::SESSION, session.clone());
        }
        if let Step::Setup(track) = step {
            let transport = if tcp(client) {
                format!(
                    "RTP/AVP/TCP;unicast;interleaved={}-{}",
                    2 * track,
                    2 * track + 1
                )
            } else {
                let port = Self::client_rtp_port(client) + 2 * track as u16;
                format!("RTP/AVP;unicast;client_port={}-{}", port, port + 1)
            };
            builder = builder.header(headers::TRANSPORT, transport);
        }
        if let Step::Play(Some(start)) = step {
            builder = builder.header(headers::RANGE, format!("npt={start}-"));
        }
        builder.build(Vec::new())
    }

    fn step(&mut self, client: usize, at: Duration, step: Step) {
        if step == Step::ReceiverReport {
            self.receiver_report(client, at);
            return;
        }
        let request = self.request(client, step);
        let media = media_needed(&request)
            .map(|mount| self.catalog.resolve(&mount).map(Presentation::File));
        let ctx = self.ctx(client, at);
        let handled = self
            .handler
            .handle_request(&request, &ctx, media, &mut self.viewers);
        let response = &handled.response;
        let log = &mut self.clients[client];
        log.last_status = u16::from(response.status());
        if let Some(session) = header(response, &headers::SESSION) {
            let id = session.split(';').next().unwrap_or_default().to_string();
            self.owners.insert(id.clone(), client);
            log.session = Some(id);
        }
        match step {
            Step::Play(_) => log.plays.push((
                at,
                header(response, &headers::RANGE).unwrap_or_default(),
                header(response, &headers::RTP_INFO).unwrap_or_default(),
            )),
            Step::Pause => log.pause_at = Some(at),
            Step::Teardown => log.teardown_at = Some(at),
            _ => {}
        }
        self.apply(handled.actions);
    }

    /// A receiver report about the video track from the client's RTCP
    /// port or channel.
    fn receiver_report(&mut self, client: usize, at: Duration) {
        let Some(id) = self.clients[client].session.clone() else {
            return;
        };
        let Some(viewer) = self.viewers.get(&id) else {
            return;
        };
        let block = ReportBlock {
            ssrc: viewer.tracks()[0].rtp.ssrc,
            fraction_lost: 0,
            cumulative_lost: 0,
            highest_seq: 0,
            jitter: 90,
            last_sr: 0,
            delay_since_last_sr: 0,
        };
        let mut packet = Vec::new();
        rtcp::write_receiver_report(0xc0ffee, &[block], &mut packet);
        let source = if tcp(client) {
            RtcpSource::Interleaved(client as u64 + 1, 1)
        } else {
            RtcpSource::Udp(SocketAddr::from((
                [10, 1, 0, 1 + client as u8],
                Self::client_rtp_port(client) + 1,
            )))
        };
        let now = self.base + at;
        let wall = self.wall(at);
        if let Some(viewer) = self
            .routes
            .get(&source)
            .and_then(|id| self.viewers.get_mut(id))
        {
            assert!(viewer.handle_rtcp(&packet, now, wall));
        }
    }

    fn apply(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::RouteRtcp {
                    session_id,
                    sources,
                } => {
                    self.routes.retain(|_, routed| *routed != session_id);
                    for source in sources {
                        self.routes.insert(source, session_id.clone());
                    }
                }
                Action::Spawn { .. }
                | Action::Wake { .. }
                | Action::Publish { .. }
                | Action::Unpublish { .. } => {}
            }
        }
    }

    /// Polls every viewer at `at`: reads what it asks for, records what it
    /// sends, drops the finished. Returns the earliest next deadline.
    fn poll_viewers(&mut self, at: Duration) -> Option<Duration> {
        let now = self.base + at;
        let wall = self.wall(at);
        let mut next: Option<Duration> = None;
        let mut finished = Vec::new();
        for (id, viewer) in &mut self.viewers {
            let media = viewer.media().cloned().expect("a file viewer");
            let reads: Vec<_> = viewer.missing_reads().collect();
            for (read, sample) in reads {
                viewer.deliver(read, media.read_sample(&sample).map(|au| au.data));
            }
            let client = self.owners[id];
            while let Some(transmit) = viewer.poll_transmit(now, wall) {
                let log = &mut self.clients[client];
                match transmit {
                    Transmit::Rtp {
                        track,
                        batch,
                        packets,
                        ..
                    } => {
                        for (header, payload) in batch.packets_in(packets) {
                            log.sent.push(Sent {
                                at,
                                track,
                                bytes: [header, payload].concat(),
                                rtcp: false,
                            });
                        }
                    }
                    Transmit::Rtcp {
                        delivery, packet, ..
                    } => log.sent.push(Sent {
                        at,
                        track: track_of(client, delivery),
                        bytes: packet.to_vec(),
                        rtcp: true,
                    }),
                }
            }
            if viewer.is_finished() {
                finished.push(id.clone());
            }
            if let Some(due) = viewer.poll_timeout() {
                let due = due.saturating_duration_since(self.base).max(at);
                next = Some(next.map_or(due, |n| n.min(due)));
            }
        }
        for id in finished {
            self.viewers.remove(&id);
            self.routes.retain(|_, routed| *routed != id);
        }
        next
    }

    /// Runs the scripts to [`END`]; the outcome stays in `self`.
    fn run(&mut self) {
        let mut events: Vec<(Duration, usize, Step)> = (0..VIEWERS)
            .flat_map(|client| {
                script(client)
                    .into_iter()
                    .map(move |(at, step)| (at, client, step))
            })
            .collect();
        events.sort_by_key(|(at, client, _)| (*at, *client));
        let mut events = events.into_iter().peekable();
        let mut at = Duration::ZERO;
        let mut next_reap = Duration::from_secs(1);
        while at <= END {
            while let Some(&(when, client, step)) = events.peek() {
                if when > at {
                    break;
                }
                events.next();
                self.step(client, at, step);
            }
            if at >= next_reap {
                next_reap += Duration::from_secs(1);
                let actions = self
                    .handler
                    .expire_sessions(self.base + at, &mut self.viewers);
                for action in &actions {
                    if let Action::Wake { session_id } = action {
                        self.expired.insert(session_id.clone(), at);
                    }
                }
                self.apply(actions);
            }
            // A viewer woken by a request is polled at the same instant.
            let due = self.poll_viewers(at);
            let mut next = next_reap;
            if let Some(&(when, _, _)) = events.peek() {
                next = next.min(when);
            }
            if let Some(due) = due {
                next = next.min(due);
            }
            at = next.max(at + Duration::from_nanos(1));
        }
    }

    /// Runs and hands out what every client saw.
    fn logs(mut self) -> Vec<ClientLog> {
        self.run();
        self.clients
    }
}

fn header(response: &Response<Vec<u8>>, name: &headers::HeaderName) -> Option<String> {
    response.header(name).map(|v| v.as_str().to_string())
}

fn track_of(client: usize, delivery: Delivery) -> usize {
    match delivery {
        Delivery::Udp { rtp, .. } => usize::from((rtp.port() - Sim::client_rtp_port(client)) / 2),
        Delivery::Interleaved { rtp_channel, .. } => usize::from(rtp_channel / 2),
    }
}

fn seq(packet: &[u8]) -> u16 {
    u16::from_be_bytes([packet[2], packet[3]])
}

fn timestamp(packet: &[u8]) -> u32 {
    u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]])
}

fn marker(packet: &[u8]) -> bool {
    packet[1] & 0x80 != 0
}

/// `seq` and `rtptime` of each track in an RTP-Info header value.
fn rtp_info(value: &str) -> Vec<(u16, u32)> {
    value
        .split(',')
        .map(|entry| {
            let field = |name: &str| {
                entry
                    .split(';')
                    .find_map(|p| p.trim().strip_prefix(name))
                    .expect("RTP-Info field")
                    .to_string()
            };
            (
                field("seq=").parse().expect("seq"),
                field("rtptime=").parse().expect("rtptime"),
            )
        })
        .collect()
}

/// Decode times of the sample's access units per track, in seconds,
/// in decode order, and the largest presentation delay (pts - dts) of
/// each track in seconds.
fn decode_times(media: &Arc<Mp4Media>) -> (Vec<Vec<f64>>, Vec<f64>) {
    let tracks = media.tracks().len();
    let (mut times, mut delay) = (vec![Vec::new(); tracks], vec![0.0f64; tracks]);
    let mut reader = media.reader(0.0);
    while let Some(sample) = reader.next_sample() {
        let scale = f64::from(media.tracks()[sample.track].timescale);
        times[sample.track].push(sample.dts as f64 / scale);
        delay[sample.track] = delay[sample.track].max((sample.pts - sample.dts) as f64 / scale);
    }
    (times, delay)
}

/// Send times of each access unit (its first packet) of `track`.
fn unit_send_times(log: &ClientLog, track: usize) -> Vec<Duration> {
    let mut times = Vec::new();
    let mut in_unit = false;
    for sent in log.sent.iter().filter(|s| !s.rtcp && s.track == track) {
        if !in_unit {
            times.push(sent.at);
        }
        in_unit = !marker(&sent.bytes);
    }
    times
}

/// A canonical byte stream of everything every session sent.
fn serialize(logs: &[ClientLog]) -> Vec<u8> {
    let mut out = Vec::new();
    for (client, log) in logs.iter().enumerate() {
        out.extend_from_slice(&(client as u32).to_be_bytes());
        out.extend_from_slice(log.session.as_deref().unwrap_or("").as_bytes());
        for (at, range, info) in &log.plays {
            out.extend_from_slice(&at.as_nanos().to_be_bytes());
            out.extend_from_slice(range.as_bytes());
            out.extend_from_slice(info.as_bytes());
        }
        for sent in &log.sent {
            out.extend_from_slice(&sent.at.as_nanos().to_be_bytes());
            out.push(sent.track as u8);
            out.extend_from_slice(&sent.bytes);
        }
    }
    out
}

#[test]
fn fifty_viewers_on_a_virtual_clock() {
    let started = Instant::now();
    let logs = Sim::new(7).logs();
    let elapsed = started.elapsed();
    println!("simulated {END:?} of {VIEWERS} viewers in {elapsed:?} of wall time");

    let media = Catalog::bundled_sample()
        .expect("sample")
        .resolve("/")
        .expect("mount");
    let (decode, delay) = decode_times(&media);
    let clock = [90_000.0, 48_000.0];

    for (client, log) in logs.iter().enumerate() {
        let who = format!("client {client} ({:?}, tcp {})", kind(client), tcp(client));
        assert_eq!(
            log.plays.len(),
            1 + usize::from(matches!(kind(client), Kind::PauseResume | Kind::Seek)),
            "{who}"
        );
        let rtp: Vec<&Sent> = log.sent.iter().filter(|s| !s.rtcp).collect();
        assert!(!rtp.is_empty(), "{who}: sent RTP");

        // Sequence numbers run on per track, from RTP-Info's.
        let (first_play_at, first_range, first_info) = &log.plays[0];
        assert_eq!(first_range, "npt=0.000-", "{who}");
        let info = rtp_info(first_info);
        for (track, &(first_seq, _)) in info.iter().enumerate() {
            let packets: Vec<&&Sent> = rtp.iter().filter(|s| s.track == track).collect();
            assert_eq!(seq(&packets[0].bytes), first_seq, "{who} track {track}");
            assert!(
                packets
                    .windows(2)
                    .all(|w| seq(&w[1].bytes) == seq(&w[0].bytes).wrapping_add(1)),
                "{who} track {track}: sequence numbers run on"
            );
            assert!(packets[0].at >= *first_play_at);
        }
        // The first video packet is the keyframe RTP-Info announced.
        let first_video = rtp.iter().find(|s| s.track == 0).expect("video");
        assert_eq!(timestamp(&first_video.bytes), info[0].1, "{who}");

        // Sender reports map NTP time to RTP time (RFC 3550 §6.4.1): audio
        // packets leave at their presentation time, so an SR's mapping
        // predicts their timestamps to the tick; video leaves at its decode
        // time, up to the B-frame delay before its timestamp.
        for track in 0..2 {
            let reports: Vec<(Duration, rtcp::SenderReport)> = log
                .sent
                .iter()
                .filter(|s| s.rtcp && s.track == track)
                .filter_map(|s| {
                    rtcp::parse_compound(&s.bytes)
                        .ok()?
                        .into_iter()
                        .find_map(|p| match p {
                            RtcpPacket::SenderReport { report, .. } => Some((s.at, report)),
                            _ => None,
                        })
                })
                .collect();
            assert!(!reports.is_empty(), "{who}: SRs for track {track}");
            for (at, report) in &reports {
                let expected_ntp = rtcp::ntp_timestamp(
                    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000) + *at,
                );
                assert_eq!(report.ntp, expected_ntp, "{who}: SR NTP is the wall clock");
            }
            let (sr_at, sr) = reports[0];
            let map = |at: Duration| -> i64 {
                let secs = at.as_secs_f64() - sr_at.as_secs_f64();
                i64::from(sr.rtp_timestamp) + (secs * clock[track]).round() as i64
            };
            for sent in rtp.iter().filter(|s| s.track == track) {
                // Only packets on the SR's continuous stretch of time.
                if log.pause_at.is_some() || log.plays.len() > 1 {
                    break;
                }
                let predicted = map(sent.at) as u32;
                let offset = timestamp(&sent.bytes).wrapping_sub(predicted) as i32;
                if track == 1 {
                    assert!(
                        offset.abs() <= 1,
                        "{who}: audio ts off the SR mapping by {offset}"
                    );
                } else {
                    let most = (delay[0] * clock[0]).round() as i32 + 1;
                    assert!(
                        (-1..=most).contains(&offset),
                        "{who}: video ts off by {offset}, most {most}"
                    );
                }
            }
        }

        match kind(client) {
            Kind::Whole | Kind::Silent => {
                // Every unit of the file, each at its decode time.
                for (track, dts_of_track) in decode.iter().enumerate() {
                    let sends = unit_send_times(log, track);
                    assert_eq!(
                        sends.len(),
                        dts_of_track.len(),
                        "{who} track {track}: every unit"
                    );
                    let origin = sends[0].as_secs_f64() - dts_of_track[0];
                    for (sent, dts) in sends.iter().zip(dts_of_track) {
                        let late = sent.as_secs_f64() - (origin + dts);
                        assert!(
                            late.abs() < 1e-6,
                            "{who} track {track}: sent {late} s off its decode time"
                        );
                    }
                }
                // The first unit leaves at the PLAY itself.
                let first_sent = rtp.first().expect("rtp").at;
                assert_eq!(first_sent, *first_play_at, "{who}: first packet at PLAY");
                let video_origin = unit_send_times(log, 0)[0].as_secs_f64() - decode[0][0];
                let audio_origin = unit_send_times(log, 1)[0].as_secs_f64() - decode[1][0];
                assert!(
                    (video_origin - audio_origin).abs() < 1e-6,
                    "{who}: tracks share one timeline"
                );
                // BYE per track once the last unit has been presented.
                let byes: Vec<&Sent> = log
                    .sent
                    .iter()
                    .filter(|s| s.rtcp && is_bye(&s.bytes))
                    .collect();
                assert_eq!(byes.len(), 2, "{who}: BYE per track");
                let last_rtp = rtp.last().expect("rtp").at;
                assert!(
                    byes.iter().all(|b| b.at > last_rtp),
                    "{who}: BYE after the last packet"
                );
            }
            Kind::PauseResume => {
                let (pause, resume) = (log.pause_at.expect("paused"), log.plays[1].0);
                assert!(
                    !rtp.iter()
                        .any(|s| s.at > pause + Duration::from_millis(2) && s.at < resume),
                    "{who}: nothing sent while paused"
                );
                let after = rtp_info(&log.plays[1].2);
                let first_after = rtp
                    .iter()
                    .find(|s| s.at >= resume && s.track == 0)
                    .expect("video");
                assert_eq!(
                    seq(&first_after.bytes),
                    after[0].0,
                    "{who}: resumes at RTP-Info seq"
                );
                assert_eq!(
                    unit_send_times(log, 0).len(),
                    decode[0].len(),
                    "{who}: every frame once"
                );
            }
            Kind::Seek => {
                let (seek_at, range, info) = &log.plays[1];
                assert_eq!(range, "npt=5.000-", "{who}: the keyframe before 5.5 s");
                let after = rtp_info(info);
                let first_after = rtp
                    .iter()
                    .find(|s| s.at >= *seek_at && s.track == 0)
                    .expect("video");
                assert_eq!(
                    timestamp(&first_after.bytes),
                    after[0].1,
                    "{who}: keyframe at RTP-Info rtptime"
                );
                let before_max = rtp
                    .iter()
                    .filter(|s| s.at < *seek_at && s.track == 0)
                    .map(|s| timestamp(&s.bytes).wrapping_sub(info_of(log)[0].1))
                    .max()
                    .expect("video before the seek");
                assert!(
                    after[0].1.wrapping_sub(info_of(log)[0].1) > before_max,
                    "{who}: timestamps rise across the seek"
                );
            }
            Kind::Leave => {}
        }
        if let Some(teardown) = log.teardown_at {
            assert!(
                !rtp.iter().any(|s| s.at > teardown),
                "{who}: no RTP after TEARDOWN"
            );
            assert_eq!(log.last_status, 200, "{who}: TEARDOWN answered");
        }
        if kind(client) == Kind::Leave {
            let byes = log
                .sent
                .iter()
                .filter(|s| s.rtcp && is_bye(&s.bytes))
                .count();
            assert_eq!(byes, 2, "{who}: BYE per track at TEARDOWN");
        }
    }
}

fn info_of(log: &ClientLog) -> Vec<(u16, u32)> {
    rtp_info(&log.plays[0].2)
}

fn is_bye(packet: &[u8]) -> bool {
    rtcp::parse_compound(packet)
        .map(|packets| packets.iter().any(|p| matches!(p, RtcpPacket::Bye { .. })))
        .unwrap_or(false)
}

#[test]
fn the_silent_viewer_times_out_and_nobody_else_does() {
    let mut sim = Sim::new(7);
    sim.run();
    let silent: Vec<usize> = (0..VIEWERS).filter(|&c| kind(c) == Kind::Silent).collect();
    assert_eq!(silent.len(), VIEWERS / 5);
    for client in 0..VIEWERS {
        let session = sim.clients[client].session.clone().expect("session");
        let expired = sim.expired.get(&session).copied();
        if kind(client) != Kind::Silent {
            assert_eq!(
                expired, None,
                "client {client} was torn down, not timed out"
            );
            continue;
        }
        // Silent since its PLAY: gone once the timeout has passed, at the
        // reaper's next one-second tick.
        let play = sim.clients[client].plays[0].0;
        let expired = expired.expect("silent session expired");
        assert!(
            expired > play + SESSION_TIMEOUT
                && expired <= play + SESSION_TIMEOUT + Duration::from_secs(1),
            "client {client}: PLAY at {play:?}, expired at {expired:?}"
        );
        // Its id means nothing afterwards (RFC 2326 §12.37: 454).
        sim.step(client, END, Step::Play(None));
        assert_eq!(sim.clients[client].last_status, 454, "client {client}");
    }
    assert_eq!(
        sim.handler.session_count(),
        0,
        "every session torn down or expired"
    );
    assert!(sim.viewers.is_empty(), "every viewer finished");
    assert!(sim.routes.is_empty(), "no RTCP route left");
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let first = serialize(&Sim::new(7).logs());
    let again = serialize(&Sim::new(7).logs());
    assert!(first.len() > 1_000_000, "{} bytes", first.len());
    assert!(first == again, "two runs with one seed differ");
    let other = serialize(&Sim::new(8).logs());
    assert!(
        first != other,
        "the seed decides SSRCs, sequence numbers and timestamps"
    );
}
