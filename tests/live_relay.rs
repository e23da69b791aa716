//! Relays (`--relay`): an edge server pulls a path from an origin in the
//! same process, its viewers decode it, they get BYE when the origin goes
//! away and the stream again when it comes back; an upstream that cannot
//! be reached is answered 404 within the bound, not hung on.

// Tests and benches are the I/O side: clocks, sockets and files (clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use retina::client::{PlayOptions, SessionOptions, SetupOptions, Transport};
use retina::codec::CodecItem;
use rtpcast::config::{ChannelConfig, Config, RelayConfig, RelayPull};
use rtpcast::server::catalog::Catalog;
use rtpcast::server::RunningServer;

/// RTCP packet type of BYE (RFC 3550 §6.6).
const RTCP_BYE: u8 = 203;

fn channel_config(config: &mut Config) {
    config.channels.push(ChannelConfig {
        mount: "/tv".into(),
        file: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("media/sample.mp4"),
    });
}

/// An origin serving the sample as the channel `/tv`.
async fn start_origin() -> RunningServer {
    start_server_with(channel_config).await
}

/// An origin like [`start_origin`] on RTSP port `port`, which the one
/// before it held: retried while its listener is being closed.
async fn restart_origin(port: u16) -> RunningServer {
    let mut config = Config {
        bind: "127.0.0.1".parse().unwrap(),
        rtsp_port: port,
        rtp_port: 0,
        ..Default::default()
    };
    channel_config(&mut config);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let catalog = Catalog::bundled_sample().expect("bundled sample loads");
        match rtpcast::server::start(&config, catalog).await {
            Ok(server) => return server,
            Err(error) if Instant::now() < deadline => {
                eprintln!("origin restart: {error:#}; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("origin cannot bind port {port} again: {error:#}"),
        }
    }
}

fn relay(mount: &str, upstream: &str, pull: RelayPull) -> RelayConfig {
    let (upstream, credentials) = rtpcast::config::relay_upstream(upstream).unwrap();
    RelayConfig {
        mount: mount.into(),
        upstream,
        credentials,
        pull,
    }
}

/// An edge relaying `relays`.
async fn start_edge(relays: Vec<RelayConfig>) -> RunningServer {
    start_server_with(|config| config.relays = relays).await
}

/// What a viewer received.
#[derive(Debug, Default)]
struct Watched {
    /// Keyframe flags of the video frames, in order.
    video: Vec<bool>,
    audio_frames: usize,
    /// The video stream's sender reports as (NTP timestamp, RTP timestamp).
    video_reports: Vec<(u64, u32)>,
    /// When an RTCP BYE arrived (the viewer stops there).
    bye_at: Option<Instant>,
    /// The stream ended or failed before `secs`.
    ended: bool,
}

/// Watches `url` over TCP with retina for `secs` or until BYE.
async fn watch(url: &str, secs: f64) -> Watched {
    let url = url::Url::parse(url).unwrap();
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
            .setup(
                i,
                SetupOptions::default().transport(Transport::Tcp(Default::default())),
            )
            .await
            .expect("SETUP");
    }
    let mut demuxed = session
        .play(PlayOptions::default())
        .await
        .expect("PLAY")
        .demuxed()
        .expect("demuxed");
    let until = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
    let mut watched = Watched::default();
    loop {
        match tokio::time::timeout_at(until, demuxed.next()).await {
            Err(_) => break,
            Ok(None) | Ok(Some(Err(_))) => {
                watched.ended = true;
                break;
            }
            Ok(Some(Ok(CodecItem::VideoFrame(frame)))) => {
                watched.video.push(frame.is_random_access_point())
            }
            Ok(Some(Ok(CodecItem::AudioFrame(_)))) => watched.audio_frames += 1,
            Ok(Some(Ok(CodecItem::Rtcp(compound)))) => {
                if compound.pkts().any(|p| p.payload_type() == RTCP_BYE) {
                    watched.bye_at = Some(Instant::now());
                    break;
                }
                let report = compound.pkts().next().unwrap().as_sender_report();
                if let (Ok(Some(report)), true) = (report, compound.stream_id() == video) {
                    watched
                        .video_reports
                        .push((report.ntp_timestamp().0, report.rtp_timestamp()));
                }
            }
            Ok(Some(Ok(_))) => {}
        }
    }
    watched
}

/// Panics unless `watched` decoded video from a keyframe on, and audio,
/// for about `secs`.
fn assert_decoded(watched: &Watched, secs: f64, what: &str) {
    let frames = watched.video.len() as f64;
    assert!(
        frames > secs * 20.0,
        "{what}: {frames} video frames in {secs} s"
    );
    assert!(watched.video[0], "{what}: the first picture is a keyframe");
    // 48 kHz / 1024: about 47 frames a second.
    assert!(
        watched.audio_frames as f64 > secs * 30.0,
        "{what}: {} audio frames in {secs} s",
        watched.audio_frames
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_relays_the_origin_and_its_viewers_come_back_after_the_origin_restarts() {
    let origin = start_origin().await;
    let origin_port = origin.rtsp_addr.port();
    let edge = start_edge(vec![relay(
        "/edge",
        &url(&origin, "tv"),
        RelayPull::OnDemand,
    )])
    .await;
    let edge_url = url(&edge, "edge");

    let first = watch(&edge_url, 3.0).await;
    assert_decoded(&first, 3.0, "viewer of the edge");
    assert!(first.bye_at.is_none() && !first.ended, "{first:?}");
    // One upstream session feeds the edge's path; the origin sees it as one
    // viewer of its channel.
    let edge_paths = edge.live_stats();
    assert_eq!(edge_paths.len(), 1);
    assert_eq!(edge_paths[0].mount, "/edge");
    assert!(edge_paths[0].stream.units > 100, "{:?}", edge_paths[0]);
    assert_eq!(
        origin.live_stats()[0].viewers,
        1,
        "{:?}",
        origin.live_stats()
    );

    // The origin goes away while a viewer of the edge watches: the viewer
    // gets BYE at once (the origin's BYE, passed on), not after a timeout.
    let (watched, shut_down_at) = tokio::join!(watch(&edge_url, 15.0), async {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let at = Instant::now();
        origin.shutdown();
        at
    });
    let bye_at = watched.bye_at.expect("the edge's viewer gets BYE");
    assert!(
        bye_at.duration_since(shut_down_at) < Duration::from_secs(2),
        "BYE {:?} after the origin stopped",
        bye_at.duration_since(shut_down_at)
    );
    assert!(watched.video[0] && watched.video.len() > 20, "{watched:?}");

    // The origin comes back on the same port: within the first retries a
    // new viewer of the edge decodes the stream again.
    let origin = restart_origin(origin_port).await;
    let back = Instant::now();
    let again = loop {
        let mut client = RtspClient::connect(edge.rtsp_addr).await;
        let describe = client.request("DESCRIBE", &edge_url, &[]).await;
        if describe.status == 200 {
            break watch(&edge_url, 2.0).await;
        }
        assert_eq!(describe.status, 404, "{}", describe.head);
        assert!(
            back.elapsed() < Duration::from_secs(15),
            "the edge did not pull the restarted origin within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_decoded(&again, 2.0, "viewer after the origin restarted");
    origin.shutdown();
    edge.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_decodes_the_relayed_path_over_udp_and_tcp() {
    if !require_tool("ffprobe") {
        return;
    }
    let origin = start_origin().await;
    let edge = start_edge(vec![relay(
        "/edge",
        &url(&origin, "tv"),
        RelayPull::OnDemand,
    )])
    .await;
    let edge_url = url(&edge, "edge");
    for transport in ["udp", "tcp"] {
        let probe = ffprobe(&edge_url, transport, Some("%+3")).await;
        assert!(
            probe.stderr.trim().is_empty(),
            "{transport}: decoder errors: {}",
            probe.stderr
        );
        assert!(probe.frames("h264") >= 80, "{transport}: {probe:?}");
        assert!(probe.frames("aac") >= 120, "{transport}: {probe:?}");
    }
    origin.shutdown();
    edge.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_always_relay_pulls_at_start_up_and_an_on_demand_one_only_while_wanted() {
    let origin = start_origin().await;
    let upstream = url(&origin, "tv");
    let edge = start_edge(vec![
        relay("/always", &upstream, RelayPull::Always),
        relay("/ondemand", &upstream, RelayPull::OnDemand),
    ])
    .await;
    let mounts = |edge: &RunningServer| -> Vec<String> {
        edge.live_stats().into_iter().map(|p| p.mount).collect()
    };
    let started = Instant::now();
    while mounts(&edge).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the always-on relay did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(mounts(&edge), ["/always"], "no viewer asked for /ondemand");

    // A DESCRIBE alone starts the on-demand pull and is answered once the
    // path has its tracks.
    let mut client = RtspClient::connect(edge.rtsp_addr).await;
    let describe = client
        .request_ok("DESCRIBE", &url(&edge, "ondemand"), &[])
        .await;
    assert!(describe.body_text().contains("m=video"));
    assert_eq!(mounts(&edge), ["/always", "/ondemand"]);
    // Nobody plays it: it stops pulling about 10 s later; the always-on
    // relay goes on.
    let asked = Instant::now();
    while mounts(&edge).len() == 2 {
        assert!(
            asked.elapsed() < Duration::from_secs(14),
            "the idle on-demand relay did not stop"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        asked.elapsed() > Duration::from_secs(9),
        "stopped after {:?}, before its viewers had 10 s",
        asked.elapsed()
    );
    assert_eq!(mounts(&edge), ["/always"]);
    origin.shutdown();
    edge.shutdown();
}

/// Seconds of a 64-bit NTP timestamp (RFC 3550 §4).
fn ntp_secs(ntp: u64) -> f64 {
    (ntp >> 32) as f64 + (ntp & 0xffff_ffff) as f64 / 4_294_967_296.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edges_sender_reports_follow_the_origins_clock() {
    let origin = start_origin().await;
    let edge = start_edge(vec![relay(
        "/edge",
        &url(&origin, "tv"),
        RelayPull::OnDemand,
    )])
    .await;
    // The edge joins the origin mid-group (keyframes are 1 s apart): the
    // first picture it gets is 0.6 s old, so its arrival would put the
    // edge's clock 0.6 s off; the origin's sender reports set it right.
    tokio::time::sleep(Duration::from_millis(2_600)).await;
    let (origin_url, edge_url) = (url(&origin, "tv"), url(&edge, "edge"));
    let (at_origin, at_edge) = tokio::join!(watch(&origin_url, 6.5), watch(&edge_url, 6.5));
    let &(origin_ntp, origin_rtp) = at_origin.video_reports.last().expect("origin's SR");
    // The edge's first report may predate the origin's reaching it; its
    // next one (5 s later) follows the origin.
    assert!(at_edge.video_reports.len() >= 2, "{at_edge:?}");
    let &(edge_ntp, edge_rtp) = at_edge.video_reports.last().unwrap();
    let expected = origin_rtp.wrapping_add(
        ((ntp_secs(edge_ntp) - ntp_secs(origin_ntp)) * 90_000.0).round() as i64 as u32,
    );
    let off_ms = f64::from(ts_delta(expected, edge_rtp)) / 90.0;
    assert!(
        off_ms.abs() < 50.0,
        "the edge's RTP clock is {off_ms} ms off the origin's"
    );
    origin.shutdown();
    edge.shutdown();
}

/// The status of a DESCRIBE of `url` and how long its answer took, read
/// with a longer patience than the raw client's.
async fn describe_status(edge: &RunningServer, url: &str) -> (u16, Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(edge.rtsp_addr)
        .await
        .unwrap();
    let asked = Instant::now();
    socket
        .write_all(format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = tokio::time::timeout(Duration::from_secs(15), socket.read(&mut chunk))
            .await
            .expect("answered within 15 s")
            .unwrap();
        assert!(read > 0, "closed without an answer");
        head.extend_from_slice(&chunk[..read]);
    }
    let head = String::from_utf8_lossy(&head);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a response: {head}"));
    (status, asked.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_is_answered_404_within_the_bound() {
    // A port nothing listens on: refused at once.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    // A server that accepts and never answers, counting connections.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let silent_task = tokio::spawn({
        let accepted = accepted.clone();
        async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = silent.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                held.push(socket);
            }
        }
    });
    let edge = start_edge(vec![
        relay(
            "/refused",
            &format!("rtsp://127.0.0.1:{closed_port}/tv"),
            RelayPull::OnDemand,
        ),
        relay(
            "/silent",
            &format!("rtsp://127.0.0.1:{silent_port}/tv"),
            RelayPull::OnDemand,
        ),
    ])
    .await;
    let (status, took) = describe_status(&edge, &url(&edge, "refused")).await;
    assert_eq!(status, 404);
    assert!(
        took < Duration::from_secs(2),
        "a refused upstream is answered at once, not after {took:?}"
    );

    // The silent one: two clients at once share one pull and both get
    // their answer at the 10 s bound.
    let silent_url = url(&edge, "silent");
    let (first, second) = tokio::join!(
        describe_status(&edge, &silent_url),
        describe_status(&edge, &silent_url)
    );
    for (status, took) in [first, second] {
        assert_eq!(status, 404);
        assert!(
            took >= Duration::from_secs(9) && took < Duration::from_secs(13),
            "answered after {took:?}"
        );
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one pull for both");
    assert!(edge.live_stats().is_empty());
    edge.shutdown();
    silent_task.abort();
}
