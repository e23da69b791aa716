//! Relays (`--relay /edge=rtsp://origin/tv`): a path pulled from another
//! RTSP server with retina over TCP interleaved, and published into a live
//! path of the hub like any other source, so one upstream session feeds
//! every viewer here. The only place retina is used.
//!
//! Each relay has one task for the server's lifetime. An on-demand relay
//! waits for a viewer's DESCRIBE or SETUP ([`RelaySet::resolve`]), which
//! waits in turn (bounded) until the path has its tracks; concurrent
//! requests share the one pull. A lost or failing upstream ends the path
//! (its viewers get RTCP BYE from the hub) and is retried with exponential
//! backoff; an on-demand relay stops once nobody has watched or asked for
//! a while.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures::StreamExt;
use retina::client::{
    Credentials, Demuxed, PlayOptions, Session, SessionOptions, SetupOptions, TcpTransportOptions,
    Transport,
};
use retina::codec::{CodecItem, FrameFormat, ParametersRef, VideoParametersCodec};
use tokio::sync::{watch, Notify};

use super::live_hub::{LiveHub, LivePath};
use crate::config::{RelayConfig, RelayPull};
use crate::live::gop_cache::DEFAULT_GOP_CACHE_BYTES;
use crate::live::stream::LiveStream;
use crate::live::{ClockMapping, SourceUnit};
use crate::media::{CodecParams, TrackInfo};
use crate::rtsp::handler::ResolvedMedia;
use crate::source::ResolveError;

/// How long a viewer's request waits for a relay's path (its upstream
/// playing) before it is answered 404 Not Found.
const READY_WAIT: Duration = Duration::from_secs(10);

/// How long connecting, DESCRIBE, SETUP, PLAY and the first parameters
/// may take together.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a playing upstream may send no frame before it counts as
/// lost (its connection may stay open, its keepalives answered).
const STALL_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an on-demand relay keeps pulling with no viewer and no
/// request.
const IDLE_STOP: Duration = Duration::from_secs(10);

/// First and longest waits between attempts.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LONGEST_RETRY: Duration = Duration::from_secs(30);

/// RTCP packet type of BYE (RFC 3550 §6.6).
const RTCP_BYE: u8 = 203;

/// Seconds from the NTP epoch (1900) to the Unix epoch (RFC 868).
const NTP_UNIX_OFFSET_SECS: u64 = 2_208_988_800;

/// Every relay by mount; a configuration reload adds and removes them.
#[derive(Debug, Default)]
pub(super) struct RelaySet {
    relays: Mutex<HashMap<String, Arc<Relay>>>,
}

/// One relay's configuration and what its task and the requests waiting
/// for it share.
#[derive(Debug)]
pub(super) struct Relay {
    config: RelayConfig,
    /// Wakes the task of an on-demand relay waiting for a viewer.
    demand: Notify,
    /// When a viewer last asked for the path or was watching it.
    wanted: Mutex<Option<Instant>>,
    /// How its pulls went, for requests waiting on the relay.
    progress: watch::Sender<Progress>,
}

/// Counts of a relay's pulls: a request waiting for the path stops
/// waiting when either moves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Progress {
    /// Pulls that played (their path was put in the hub).
    ready: u64,
    /// Attempts that failed before playing.
    failures: u64,
}

impl RelaySet {
    /// Adds the relay of `config` (a mount no other relay has), returning
    /// it for its task to run.
    pub(super) fn insert(&self, config: &RelayConfig) -> Arc<Relay> {
        let relay = Arc::new(Relay {
            config: config.clone(),
            demand: Notify::new(),
            wanted: Mutex::new(None),
            progress: watch::Sender::new(Progress::default()),
        });
        self.lock().insert(config.mount.clone(), relay.clone());
        relay
    }

    /// Forgets the relay at `mount` (its task is stopped by the caller).
    pub(super) fn remove(&self, mount: &str) {
        self.lock().remove(mount);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Relay>>> {
        self.relays.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What a DESCRIBE or SETUP of `mount` finds among the live paths: the
    /// path if it is there; for a relay's mount with no path yet, the path
    /// once the relay's upstream is playing, or 404 Not Found when it
    /// fails or takes longer than [`READY_WAIT`]. `None` when `mount` is
    /// neither (the file catalog is asked next).
    pub(super) async fn resolve(&self, hub: &LiveHub, mount: &str) -> Option<ResolvedMedia> {
        let relay = self.lock().get(mount).cloned();
        let Some(relay) = relay else {
            return hub.describe(mount).map(Ok);
        };
        // Seen before the task is woken, so an attempt failing at once
        // counts.
        let mut progress = relay.progress.subscribe();
        let before = *progress.borrow_and_update();
        relay.want();
        let deadline = tokio::time::Instant::now() + READY_WAIT;
        loop {
            if let Some(live) = hub.describe(mount) {
                return Some(Ok(live));
            }
            // A pull that failed, or played and is gone again already.
            if *progress.borrow_and_update() != before {
                break;
            }
            match tokio::time::timeout_at(deadline, progress.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => break,
            }
        }
        tracing::warn!(
            mount,
            upstream = %relay.config.upstream,
            "relay upstream not available; answering 404"
        );
        Some(Err(ResolveError::NotFound(mount.to_string())))
    }
}

impl Relay {
    /// Marks the path as wanted now and wakes an idle on-demand task.
    fn want(&self) {
        *self.wanted.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        self.demand.notify_one();
    }

    /// Whether it must keep pulling: always, or someone wanted it lately.
    fn wanted(&self) -> bool {
        self.config.pull == RelayPull::Always
            || self
                .wanted
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some_and(|at| at.elapsed() < IDLE_STOP)
    }

    fn report(&self, change: impl FnOnce(&mut Progress)) {
        self.progress.send_modify(change);
    }
}

/// Waits between attempts: [`FIRST_RETRY`] doubling to [`LONGEST_RETRY`],
/// from the first again after a pull that played.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Backoff { next: FIRST_RETRY }
    }

    fn reset(&mut self) {
        self.next = FIRST_RETRY;
    }

    /// The wait before the next attempt.
    fn step(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(LONGEST_RETRY);
        wait
    }
}

/// How a pull ended.
enum PullEnd {
    /// It never played (connection, RTSP or parameters).
    Failed(String),
    /// It played, then the upstream went away.
    Lost(String),
    /// Nobody has watched an on-demand relay for [`IDLE_STOP`].
    Idle,
}

/// Runs `relay` for as long as the server runs (the server aborts it at
/// shutdown): pulls whenever it is wanted, into the path of `hub` at its
/// mount, packets of at most `mtu` bytes.
pub(super) async fn run(relay: Arc<Relay>, hub: Arc<LiveHub>, mtu: usize) {
    let mount = relay.config.mount.clone();
    let upstream = relay.config.upstream.clone();
    let mut backoff = Backoff::new();
    loop {
        while !relay.wanted() {
            relay.demand.notified().await;
        }
        tracing::info!(mount, %upstream, "relay connecting to upstream");
        match pull(&relay, &hub, mtu).await {
            PullEnd::Failed(error) => {
                relay.report(|p| p.failures += 1);
                tracing::warn!(mount, %upstream, %error, "relay upstream failed");
            }
            PullEnd::Lost(error) => {
                backoff.reset();
                tracing::warn!(mount, %upstream, %error, "relay upstream lost");
            }
            PullEnd::Idle => {
                backoff.reset();
                tracing::info!(mount, %upstream, "relay has no viewers; stopped pulling");
                continue;
            }
        }
        if !relay.wanted() {
            tracing::info!(mount, %upstream, "relay has no viewers; not retrying");
            continue;
        }
        let wait = backoff.step();
        tracing::info!(mount, %upstream, retry_in = ?wait, "relay retrying");
        tokio::time::sleep(wait).await;
    }
}

/// One upstream session: connects, publishes until it ends, then takes
/// the path away (its viewers get BYE).
async fn pull(relay: &Relay, hub: &LiveHub, mtu: usize) -> PullEnd {
    let started = tokio::time::timeout(CONNECT_TIMEOUT, async {
        let (mut demuxed, streams) = connect(&relay.config).await?;
        let tracks = first_parameters(&mut demuxed, &streams).await?;
        Ok::<_, String>((demuxed, streams, tracks))
    })
    .await;
    let (demuxed, streams, tracks) = match started {
        Ok(Ok(started)) => started,
        Ok(Err(error)) => return PullEnd::Failed(error),
        Err(_) => return PullEnd::Failed(format!("not playing within {CONNECT_TIMEOUT:?}")),
    };
    let path = hub.insert(
        relay.config.mount.clone(),
        LiveStream::new(tracks, mtu, DEFAULT_GOP_CACHE_BYTES),
    );
    relay.report(|p| p.ready += 1);
    tracing::info!(
        mount = %relay.config.mount,
        upstream = %relay.config.upstream,
        tracks = streams.len(),
        "relay playing upstream"
    );
    let end = forward(relay, &path, demuxed, &streams).await;
    hub.remove(&path);
    end
}

/// Connects, DESCRIBEs, SETs UP every stream it can carry and PLAYs.
/// Returns the demuxed stream and, per track of the path, the upstream
/// stream index.
async fn connect(config: &RelayConfig) -> Result<(Demuxed, Vec<usize>), String> {
    let mut options = SessionOptions::default()
        .user_agent(format!("rtpcast/{} relay", env!("CARGO_PKG_VERSION")));
    if let Some(credentials) = &config.credentials {
        options = options.creds(Some(Credentials {
            username: credentials.username.clone(),
            password: credentials.password.clone(),
        }));
    }
    let mut session = Session::describe(config.upstream.clone(), options)
        .await
        .map_err(|e| format!("DESCRIBE: {e}"))?;
    let mut streams = Vec::new();
    for (index, stream) in session.streams().iter().enumerate() {
        let encoding = stream.encoding_name().to_ascii_lowercase();
        match (stream.media(), encoding.as_str()) {
            ("video", "h264") | ("audio", "mpeg4-generic") => streams.push(index),
            (media, _) => tracing::warn!(
                mount = %config.mount,
                upstream = %config.upstream,
                media,
                encoding,
                "relay skips an upstream stream it cannot carry (H.264 and AAC only)"
            ),
        }
    }
    if streams.is_empty() {
        return Err("no H.264 or AAC stream upstream".into());
    }
    for &index in &streams {
        session
            .setup(
                index,
                SetupOptions::default()
                    .transport(Transport::Tcp(TcpTransportOptions::default()))
                    .frame_format(FrameFormat::MP4),
            )
            .await
            .map_err(|e| format!("SETUP: {e}"))?;
    }
    let demuxed = session
        .play(PlayOptions::default())
        .await
        .map_err(|e| format!("PLAY: {e}"))?
        .demuxed()
        .map_err(|e| format!("PLAY: {e}"))?;
    Ok((demuxed, streams))
}

/// The path's tracks, once every stream's parameters are known (from the
/// SDP, or else from its first frames, which are dropped until then).
async fn first_parameters(
    demuxed: &mut Demuxed,
    streams: &[usize],
) -> Result<Vec<TrackInfo>, String> {
    loop {
        if let Some(tracks) = tracks_of(demuxed, streams)? {
            return Ok(tracks);
        }
        match demuxed.next().await {
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("upstream ended before its parameters came".into()),
        }
    }
}

/// The tracks of `streams`, `None` while some stream's parameters are not
/// known yet.
fn tracks_of(demuxed: &Demuxed, streams: &[usize]) -> Result<Option<Vec<TrackInfo>>, String> {
    let mut tracks = Vec::with_capacity(streams.len());
    for (index, &stream) in streams.iter().enumerate() {
        let Some(parameters) = demuxed.streams()[stream].parameters() else {
            return Ok(None);
        };
        let codec = codec_params(parameters)?;
        tracks.push(TrackInfo {
            index,
            timescale: codec.clock_rate(),
            codec,
            duration: 0,
        });
    }
    Ok(Some(tracks))
}

/// Our description of a retina stream's parameters: H.264 with its SPS
/// and PPS (the frames come with 4-byte lengths, [`FrameFormat::MP4`]),
/// AAC with its AudioSpecificConfig.
fn codec_params(parameters: ParametersRef<'_>) -> Result<CodecParams, String> {
    match parameters {
        ParametersRef::Video(video) => match video.codec_params() {
            VideoParametersCodec::H264 { sps, pps } => {
                let (width, height) = video.pixel_dimensions();
                Ok(CodecParams::H264 {
                    sps: vec![sps.clone()],
                    pps: vec![pps.clone()],
                    nal_length_size: 4,
                    width: u16::try_from(width).unwrap_or(u16::MAX),
                    height: u16::try_from(height).unwrap_or(u16::MAX),
                })
            }
            other => Err(format!("video codec {other:?} is not H.264")),
        },
        ParametersRef::Audio(audio) => {
            if audio.extra_data().is_empty() {
                return Err("AAC stream without an AudioSpecificConfig".into());
            }
            Ok(CodecParams::Aac {
                config: Bytes::copy_from_slice(audio.extra_data()),
                sample_rate: audio.clock_rate(),
                channels: u8::try_from(audio.channels().get()).unwrap_or(u8::MAX),
            })
        }
        ParametersRef::Message(_) => Err("message streams are not carried".into()),
    }
}

/// Publishes the upstream's frames into `path` and follows its sender
/// reports until it ends, falls silent, says BYE or changes parameters,
/// or (on demand) nobody has watched for [`IDLE_STOP`].
async fn forward(
    relay: &Relay,
    path: &LivePath,
    mut demuxed: Demuxed,
    streams: &[usize],
) -> PullEnd {
    let track_of = |stream: usize| streams.iter().position(|&s| s == stream);
    // One timer for both checks: a timeout around each read would start
    // again at every tick and never expire.
    let mut check = tokio::time::interval(Duration::from_secs(1));
    let mut last_media = Instant::now();
    loop {
        let item = tokio::select! {
            item = demuxed.next() => item,
            _ = check.tick() => {
                if last_media.elapsed() >= STALL_TIMEOUT {
                    return PullEnd::Lost(format!("no media for {STALL_TIMEOUT:?}"));
                }
                if path.stats().viewers > 0 {
                    relay.want();
                } else if !relay.wanted() {
                    return PullEnd::Idle;
                }
                continue;
            }
        };
        let item = match item {
            Some(Ok(item)) => item,
            Some(Err(error)) => return PullEnd::Lost(error.to_string()),
            None => return PullEnd::Lost("upstream closed the session".into()),
        };
        let now = Instant::now();
        let wall = SystemTime::now();
        if matches!(item, CodecItem::VideoFrame(_) | CodecItem::AudioFrame(_)) {
            last_media = now;
        }
        match item {
            CodecItem::VideoFrame(frame) => {
                let Some(track) = track_of(frame.stream_id()) else {
                    continue;
                };
                if frame.has_new_parameters() {
                    return PullEnd::Lost("upstream changed its video parameters".into());
                }
                let unit = SourceUnit {
                    track,
                    rtp_timestamp: frame.timestamp().timestamp() as u32,
                    keyframe: frame.is_random_access_point(),
                    data: frame.into_data().into(),
                };
                path.publish(unit, now, wall);
            }
            CodecItem::AudioFrame(frame) => {
                let Some(track) = track_of(frame.stream_id()) else {
                    continue;
                };
                let unit = SourceUnit {
                    track,
                    rtp_timestamp: frame.timestamp().timestamp() as u32,
                    keyframe: true,
                    data: Bytes::copy_from_slice(frame.data()),
                };
                path.publish(unit, now, wall);
            }
            CodecItem::Rtcp(compound) => {
                let Some(track) = track_of(compound.stream_id()) else {
                    continue;
                };
                for packet in compound.pkts() {
                    if packet.payload_type() == RTCP_BYE {
                        return PullEnd::Lost("upstream sent RTCP BYE".into());
                    }
                    if let Ok(Some(report)) = packet.as_sender_report() {
                        path.set_clock(
                            track,
                            ClockMapping {
                                wall: ntp_to_system_time(report.ntp_timestamp().0),
                                rtp_timestamp: report.rtp_timestamp(),
                            },
                        );
                    }
                }
            }
            _ => {}
        }
    }
}

/// The wall-clock time of a 64-bit NTP timestamp (RFC 3550 §4: seconds
/// since 1900 in the high 32 bits, the fraction in the low).
fn ntp_to_system_time(ntp: u64) -> SystemTime {
    let secs = ntp >> 32;
    let nanos = ((ntp & 0xffff_ffff) * 1_000_000_000) >> 32;
    let since_1900 = Duration::new(secs, nanos as u32);
    match since_1900.checked_sub(Duration::from_secs(NTP_UNIX_OFFSET_SECS)) {
        Some(since_unix) => SystemTime::UNIX_EPOCH + since_unix,
        None => SystemTime::UNIX_EPOCH,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_doubling_to_thirty_seconds_and_reset() {
        let mut backoff = Backoff::new();
        let waits: Vec<u64> = (0..7).map(|_| backoff.step().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        backoff.reset();
        assert_eq!(backoff.step(), FIRST_RETRY);
    }

    #[test]
    fn ntp_timestamps_convert_to_wall_clock_time() {
        // RFC 3550 §4 example era: 2026-01-01T00:00:00Z is Unix 1767225600.
        let unix = 1_767_225_600u64;
        let ntp = ((unix + NTP_UNIX_OFFSET_SECS) << 32) | 0x8000_0000;
        assert_eq!(
            ntp_to_system_time(ntp),
            SystemTime::UNIX_EPOCH + Duration::from_millis(unix * 1000 + 500)
        );
        assert_eq!(ntp_to_system_time(0), SystemTime::UNIX_EPOCH);
    }

    #[test]
    fn h264_parameters_map_to_the_files_own_description() {
        let media =
            crate::media::mp4::Mp4Media::from_static(include_bytes!("../../media/sample.mp4"))
                .unwrap();
        let file = media.tracks()[0].codec.clone();
        let CodecParams::H264 { sps, pps, .. } = &file else {
            panic!("the sample's first track is H.264: {file:?}");
        };
        let video = retina::codec::h264::parameters_from_sps_and_pps(
            &sps[0],
            &pps[0],
            FrameFormat::MP4.h26x_framing,
        )
        .unwrap();
        // The sample's avcC has 4-byte lengths too, as retina's MP4
        // framing writes them: the descriptions match whole.
        assert_eq!(codec_params(ParametersRef::Video(&video)).unwrap(), file);
    }
}
