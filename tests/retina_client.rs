//! Plays the bundled sample with the retina RTSP client library over TCP
//! and UDP and checks the depacketized frames.

// Tests and benches are the I/O side: clocks, sockets and files (clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use retina::client::{PlayOptions, SessionOptions, SetupOptions, Transport};
use retina::codec::{CodecItem, ParametersRef};

/// What one playback delivered.
#[derive(Debug, Default)]
struct Playback {
    /// Video RTP timestamps in arrival (decode) order.
    video: Vec<i64>,
    /// Whether each video frame is a random access point.
    video_keyframes: Vec<bool>,
    /// Audio RTP timestamps in arrival order.
    audio: Vec<i64>,
    /// Frames reporting lost packets before them.
    lossy_frames: usize,
    /// Streams that sent an RTCP BYE.
    byes: HashSet<usize>,
    /// Streams that sent an RTCP sender report.
    sender_reports: HashSet<usize>,
    /// (width, height) of the video stream once playing.
    dimensions: Option<(u32, u32)>,
    /// From PLAY to the last frame.
    elapsed: Duration,
}

async fn play(transport: Transport) -> Playback {
    let server = start_server().await;
    let url = url::Url::parse(&url(&server, "sample")).unwrap();
    let mut session = retina::client::Session::describe(url, SessionOptions::default())
        .await
        .expect("DESCRIBE");
    let video_i = session
        .streams()
        .iter()
        .position(|s| s.media() == "video")
        .expect("video stream in SDP");
    let audio_i = session
        .streams()
        .iter()
        .position(|s| s.media() == "audio")
        .expect("audio stream in SDP");
    assert_eq!(session.streams()[video_i].encoding_name(), "h264");
    assert_eq!(session.streams()[audio_i].encoding_name(), "mpeg4-generic");
    assert_eq!(session.streams()[audio_i].clock_rate_hz(), 48_000);
    for i in [video_i, audio_i] {
        session
            .setup(i, SetupOptions::default().transport(transport.clone()))
            .await
            .unwrap_or_else(|e| panic!("SETUP stream {i}: {e}"));
    }
    let mut demuxed = session
        .play(PlayOptions::default())
        .await
        .expect("PLAY")
        .demuxed()
        .expect("demuxed");
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut out = Playback::default();
    let mut last_frame = started;
    // After both BYEs, a short grace period for packets still in flight on
    // other sockets (UDP gives no order across ports).
    let mut grace: Option<tokio::time::Instant> = None;
    loop {
        if grace.is_none() && out.byes.len() == 2 {
            grace = Some(tokio::time::Instant::now() + Duration::from_millis(500));
        }
        let item = match tokio::time::timeout_at(grace.unwrap_or(deadline), demuxed.next()).await {
            Err(_) if grace.is_some() => break,
            Err(_) => panic!(
                "playback not over after 20 s: {} video / {} audio frames, BYE from {:?}",
                out.video.len(),
                out.audio.len(),
                out.byes
            ),
            Ok(None) => break,
            Ok(Some(item)) => item.unwrap_or_else(|e| panic!("retina error: {e}")),
        };
        match item {
            CodecItem::VideoFrame(frame) => {
                assert_eq!(frame.stream_id(), video_i);
                out.video.push(frame.timestamp().timestamp());
                out.video_keyframes.push(frame.is_random_access_point());
                out.lossy_frames += usize::from(frame.loss() > 0);
                last_frame = Instant::now();
            }
            CodecItem::AudioFrame(frame) => {
                assert_eq!(frame.stream_id(), audio_i);
                out.audio.push(frame.timestamp().timestamp());
                out.lossy_frames += usize::from(frame.loss() > 0);
                last_frame = Instant::now();
            }
            CodecItem::Rtcp(rtcp) => {
                for packet in rtcp.pkts() {
                    match packet.payload_type() {
                        200 => {
                            out.sender_reports.insert(rtcp.stream_id());
                        }
                        203 => {
                            out.byes.insert(rtcp.stream_id());
                        }
                        _ => {}
                    }
                }
            }
            CodecItem::MessageFrame(_) => panic!("unexpected message frame"),
            _ => {}
        }
    }
    out.elapsed = last_frame.duration_since(started);
    if let Some(ParametersRef::Video(params)) = demuxed.streams()[video_i].parameters() {
        out.dimensions = Some(params.pixel_dimensions());
    }
    out
}

/// Panics unless each of `timestamps` is `step` after the one before.
fn assert_steps(timestamps: &[i64], step: u32, what: &str) {
    for pair in timestamps.windows(2) {
        assert_eq!(pair[1] - pair[0], i64::from(step), "{what}");
    }
}

fn check(playback: &Playback, transport: &str) {
    eprintln!(
        "{transport}: {} video / {} audio frames in {:?}",
        playback.video.len(),
        playback.audio.len(),
        playback.elapsed
    );
    assert_eq!(
        playback.byes.len(),
        2,
        "{transport}: RTCP BYE from streams {:?}",
        playback.byes
    );
    assert_eq!(
        playback.sender_reports.len(),
        2,
        "{transport}: SRs from streams {:?}",
        playback.sender_reports
    );
    assert_eq!(
        playback.lossy_frames, 0,
        "{transport}: frames with packet loss"
    );
    assert_eq!(
        playback.dimensions,
        Some((1280, 720)),
        "{transport}: video dimensions"
    );

    let video = &playback.video;
    assert_eq!(
        video.len(),
        SAMPLE_VIDEO_FRAMES,
        "{transport}: video frames"
    );
    assert!(
        playback.video_keyframes[0],
        "{transport}: first frame is not a keyframe"
    );
    let mut sorted = video.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        video.len(),
        "{transport}: duplicate video timestamps"
    );
    assert_eq!(
        sorted[0], video[0],
        "{transport}: a frame is presented before the first keyframe"
    );
    assert_steps(
        &sorted,
        VIDEO_FRAME_TICKS,
        &format!("{transport}: gap in video presentation timestamps"),
    );
    // Decode order differs from presentation order (B-frames), but never
    // by more than a few frames.
    let reordered = video.windows(2).filter(|w| w[1] < w[0]).count();
    assert!(reordered > 0, "{transport}: no B-frame reordering seen");
    for (decode_index, ts) in video.iter().enumerate() {
        let presentation_index = ((ts - video[0]) / i64::from(VIDEO_FRAME_TICKS)) as usize;
        assert!(
            presentation_index.abs_diff(decode_index) <= 4,
            "{transport}: frame {decode_index} presented at {presentation_index}"
        );
    }

    let audio = &playback.audio;
    assert!(
        (463..=473).contains(&audio.len()),
        "{transport}: {} audio frames for 10 s",
        audio.len()
    );
    assert_steps(
        audio,
        AAC_FRAME_TICKS,
        &format!("{transport}: audio timestamp step"),
    );

    assert!(
        playback.elapsed >= Duration::from_secs(9) && playback.elapsed < Duration::from_secs(14),
        "{transport}: 10 s clip played in {:?}",
        playback.elapsed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retina_plays_sample_over_tcp() {
    let playback = play(Transport::Tcp(Default::default())).await;
    check(&playback, "tcp");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retina_plays_sample_over_udp() {
    let playback = play(Transport::Udp(Default::default())).await;
    check(&playback, "udp");
}
