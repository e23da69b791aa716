//! A file played as a live channel (`--channel`): viewers share one
//! timeline, a joiner starts at the latest keyframe at once, and real
//! clients decode it over UDP and TCP.

// Tests and benches are the I/O side: clocks, sockets and files (clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use retina::client::{PlayOptions, SessionOptions, SetupOptions, Transport};
use retina::codec::CodecItem;
use rtpcast::config::ChannelConfig;
use rtpcast::server::RunningServer;

async fn start_channel() -> RunningServer {
    start_server_with(|config| {
        config.channels.push(ChannelConfig {
            mount: "/tv".into(),
            file: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("media/sample.mp4"),
        });
    })
    .await
}

/// One video frame as a viewer received it.
#[derive(Debug, Clone, Copy)]
struct Frame {
    /// Its RTP timestamp as sent (the low 32 bits of retina's extended
    /// timestamp).
    rtp_timestamp: u32,
    keyframe: bool,
    /// A hash of its bytes, to recognise the same frame in two viewers.
    content: u64,
    /// From PLAY's answer to its arrival.
    after_play: Duration,
}

/// Watches `/tv` over `transport` for `secs` and returns its video frames.
async fn watch(server: &RunningServer, transport: Transport, secs: f64) -> Vec<Frame> {
    let url = url::Url::parse(&url(server, "tv")).unwrap();
    let mut session = retina::client::Session::describe(url, SessionOptions::default())
        .await
        .expect("DESCRIBE");
    let video = session
        .streams()
        .iter()
        .position(|s| s.media() == "video")
        .expect("video in the SDP");
    for i in 0..session.streams().len() {
        session
            .setup(i, SetupOptions::default().transport(transport.clone()))
            .await
            .expect("SETUP");
    }
    let mut demuxed = session
        .play(PlayOptions::default())
        .await
        .expect("PLAY")
        .demuxed()
        .expect("demuxed");
    let played = Instant::now();
    let until = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
    let mut frames = Vec::new();
    while let Ok(Some(item)) = tokio::time::timeout_at(until, demuxed.next()).await {
        if let CodecItem::VideoFrame(frame) = item.expect("stream item") {
            assert_eq!(frame.stream_id(), video);
            let mut hasher = DefaultHasher::new();
            frame.data().hash(&mut hasher);
            frames.push(Frame {
                rtp_timestamp: frame.timestamp().timestamp() as u32,
                keyframe: frame.is_random_access_point(),
                content: hasher.finish(),
                after_play: played.elapsed(),
            });
        }
    }
    frames
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_joining_apart_share_one_timeline_and_start_at_a_keyframe() {
    let server = start_channel().await;
    let (first, second) = tokio::join!(
        watch(&server, Transport::Tcp(Default::default()), 4.5),
        async {
            tokio::time::sleep(Duration::from_millis(2_300)).await;
            watch(&server, Transport::Tcp(Default::default()), 2.0).await
        }
    );
    assert!(first.len() > 100, "{} frames in 4.5 s", first.len());
    assert!(second.len() > 50, "{} frames in 2 s", second.len());
    for frames in [&first, &second] {
        let join = frames[0];
        assert!(join.keyframe, "a joiner's first picture is a keyframe");
        // The GOP cache goes out at once: the keyframe arrives long before
        // the next picture of the live edge would (33 ms apart), let alone
        // the next keyframe (1 s apart).
        assert!(
            join.after_play < Duration::from_millis(500),
            "first picture {:?} after PLAY",
            join.after_play
        );
    }
    // The second joined mid-group: it got the group's start from the cache
    // in a burst (pictures closer together than real time).
    let burst = second
        .windows(2)
        .take(5)
        .all(|w| w[1].after_play - w[0].after_play < Duration::from_millis(20));
    assert!(
        burst,
        "the GOP cache is sent as a burst: {:?}",
        &second[..6]
    );
    let by_content: HashMap<u64, u32> =
        first.iter().map(|f| (f.content, f.rtp_timestamp)).collect();
    let mut common = 0;
    for frame in &second {
        if let Some(&timestamp) = by_content.get(&frame.content) {
            assert_eq!(
                timestamp, frame.rtp_timestamp,
                "the same frame carries the same RTP timestamp for both viewers"
            );
            common += 1;
        }
    }
    assert!(common > 50, "{common} frames seen by both");
    // One stream packetized once for both.
    let live = server.live_stats();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].mount, "/tv");
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_decodes_the_channel_over_udp_and_tcp() {
    if !require_tool("ffprobe") {
        return;
    }
    let server = start_channel().await;
    let url = url(&server, "tv");
    for transport in ["udp", "tcp"] {
        let probe = ffprobe(&url, transport, Some("%+3")).await;
        assert!(
            probe.stderr.trim().is_empty(),
            "{transport}: decoder errors: {}",
            probe.stderr
        );
        // Three seconds at 30 fps and 48 kHz / 1024, plus the joiner's GOP
        // cache.
        assert!(probe.frames("h264") >= 80, "{transport}: {probe:?}");
        assert!(probe.frames("aac") >= 120, "{transport}: {probe:?}");
    }
    server.shutdown();
}
