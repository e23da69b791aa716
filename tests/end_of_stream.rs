//! The end of a stream reaches every viewer, and a slow TCP viewer
//! degrades cleanly: real FFmpeg clients, fast over UDP and TCP, and slow
//! behind a proxy that reads the server at a fraction of the stream's
//! bitrate. Test media are made by ffmpeg from its built-in sources.
//!
//! That the bundled sample plays all 300 pictures over UDP and TCP is
//! checked in `ffmpeg_clients.rs`; its last unit is audio, so the last
//! frame's timing against BYE is checked here with video-only files.

// Tests and benches are the I/O side: clocks, sockets and files (clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use rtpcast::server::RunningServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Track index of the video in the bundled sample and the generated clips.
const VIDEO_TRACK: usize = 0;
/// Track index of the audio.
const AUDIO_TRACK: usize = 1;

/// Runs ffmpeg (to make test media) and panics unless it succeeds.
async fn make_media(args: &[&str]) {
    let mut all = vec!["-v", "error", "-nostdin", "-y"];
    all.extend_from_slice(args);
    let run = run_tool("ffmpeg", &all, Duration::from_secs(60)).await;
    assert!(
        run.status.success(),
        "making test media with ffmpeg {args:?} failed:\n{}",
        run.stderr
    );
}

/// A server serving `file` alone.
async fn serve_file(file: &Path) -> RunningServer {
    let file = file.to_path_buf();
    start_server_with(move |config| config.media = Some(file)).await
}

/// The framecrc of every picture of `file` decoded locally.
async fn file_video_framecrcs(file: &Path) -> Vec<FrameCrc> {
    let file = file.to_str().expect("temp path is UTF-8");
    let mut args = vec!["-v", "error", "-nostdin", "-i", file, "-map", "0:v"];
    args.extend(FRAMECRC_EVERY_PICTURE);
    args.push("-");
    let run = run_tool("ffmpeg", &args, Duration::from_secs(60)).await;
    assert!(
        run.status.success(),
        "decoding {file} failed:\n{}",
        run.stderr
    );
    framecrcs(&run.stdout)
}

/// Counts with ffprobe the video frames of `url` over `transport`; panics
/// if ffprobe printed any error.
async fn probe_frame_count(url: &str, transport: &str) -> String {
    let run = run_ffmpeg(
        "ffprobe",
        transport,
        &[
            "-count_frames",
            "-select_streams",
            "v",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
            url,
        ],
    )
    .await;
    assert!(
        run.stderr.trim().is_empty(),
        "ffprobe {transport} reported errors:\n{}",
        run.stderr
    );
    run.stdout.trim().to_string()
}

/// Makes a video-only H.264 file of `frames` pictures (30 fps, B-frames
/// as libx264 chooses) named `name` in `dir`.
async fn video_only_file(dir: &Path, name: &str, frames: usize) -> PathBuf {
    let file = dir.join(name);
    let frames = frames.to_string();
    make_media(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=30:duration=2",
        "-frames:v",
        &frames,
        "-c:v",
        "libx264",
        "-an",
        file.to_str().unwrap(),
    ])
    .await;
    file
}

/// Files whose last access unit is a video frame play every frame over
/// UDP and over TCP: BYE, at which FFmpeg stops reading, leaves only
/// after the last frame's packets and its duration (RFC 3550 §6.6). Sent
/// right after the packets, it overtook them over UDP: ffprobe counted 0
/// frames of a one-frame file. (In the bundled sample audio comes last,
/// which hides this: `ffmpeg_clients.rs` decodes all its 300 pictures
/// either way.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_only_files_play_their_last_frame_over_udp_and_tcp() {
    if !require_tool("ffmpeg") || !require_tool("ffprobe") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let one = video_only_file(dir.path(), "oneframe.mp4", 1).await;
    let many = video_only_file(dir.path(), "frames45.mp4", 45).await;
    let (one_server, many_server) = tokio::join!(serve_file(&one), serve_file(&many));
    let one_url = url(&one_server, "oneframe.mp4");
    let many_url = url(&many_server, "frames45.mp4");
    let counts = tokio::join!(
        probe_frame_count(&one_url, "udp"),
        probe_frame_count(&one_url, "tcp"),
        probe_frame_count(&many_url, "udp"),
        probe_frame_count(&many_url, "tcp"),
    );
    assert_eq!(
        counts,
        (
            "1".to_string(),
            "1".to_string(),
            "45".to_string(),
            "45".to_string()
        ),
        "frames ffprobe read: one-frame file over UDP, TCP; 45-frame file over UDP, TCP"
    );
}

/// Bytes the proxy reads from the server at once: small bursts.
const PROXY_BURST: usize = 4 * 1024;
/// Unused sending time the proxy's token bucket saves up at most.
const PROXY_BURST_TIME: Duration = Duration::from_millis(50);
/// Receive buffer of the proxy's socket to the server, so that the
/// server's writer, not a deep kernel buffer, takes the back-pressure.
const PROXY_RECV_BUFFER: u32 = 32 * 1024;

/// How the proxy forwards server→client.
#[derive(Debug, Clone, Copy)]
struct Link {
    /// Rate of a token bucket with small bursts.
    bits_per_second: f64,
    /// From when to when after the connection opens nothing is read.
    stall: Option<(Duration, Duration)>,
}

impl Link {
    fn steady(bits_per_second: f64) -> Link {
        Link {
            bits_per_second,
            stall: None,
        }
    }
}

/// A TCP proxy to `upstream` on an ephemeral loopback port: forwards
/// client→server freely and server→client over `link`, like a slow link
/// in front of the viewer. Runs until the test's runtime ends.
async fn slow_proxy(upstream: SocketAddr, link: Link) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(proxy_connection(client, upstream, link));
        }
    });
    addr
}

async fn proxy_connection(client: TcpStream, upstream: SocketAddr, link: Link) {
    let opened = Instant::now();
    let bytes_per_second = link.bits_per_second / 8.0;
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(PROXY_RECV_BUFFER).unwrap();
    let server = socket.connect(upstream).await.expect("proxy connects");
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upward = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        let _ = server_write.shutdown().await;
    });
    let mut buf = vec![0u8; PROXY_BURST];
    // When everything forwarded so far has been paid for at the rate.
    let mut paid_until = Instant::now();
    loop {
        if let Some((from, to)) = link.stall {
            let now = Instant::now();
            if now >= opened + from && now < opened + to {
                tokio::time::sleep_until((opened + to).into()).await;
            }
        }
        let len = match server_read.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(len) => len,
        };
        if client_write.write_all(&buf[..len]).await.is_err() {
            break;
        }
        let now = Instant::now();
        let saved_up_from = now.checked_sub(PROXY_BURST_TIME).unwrap_or(now);
        paid_until =
            paid_until.max(saved_up_from) + Duration::from_secs_f64(len as f64 / bytes_per_second);
        tokio::time::sleep_until(paid_until.into()).await;
    }
    let _ = client_write.shutdown().await;
    upward.abort();
}

/// What ffmpeg got through a slow proxy, and what the server's stats said
/// meanwhile.
struct SlowPlay {
    run: ToolRun,
    /// Decoded pictures.
    video: Vec<FrameCrc>,
    /// Decoded audio, bytes of stereo s16.
    audio_bytes: usize,
    /// The highest `units_skipped` published per track index.
    skipped: HashMap<usize, u64>,
    /// Stats snapshots seen.
    snapshots: usize,
}

/// Plays `path` of `server` with ffmpeg over TCP through a proxy reading
/// forwarding over `link`, decoding video and audio to framecrc; ffmpeg
/// must exit by itself within `limit`. Polls the server's stats every
/// 200 ms while it plays.
async fn play_through_slow_link(
    server: &RunningServer,
    path: &str,
    link: Link,
    limit: Duration,
) -> SlowPlay {
    let proxy = slow_proxy(server.rtsp_addr, link).await;
    let url = format!("rtsp://{proxy}/{path}");
    let mut args = vec![
        "-v",
        "error",
        "-nostdin",
        "-rtsp_transport",
        "tcp",
        "-i",
        &url,
        "-map",
        "0:v",
        "-map",
        "0:a",
    ];
    args.extend(FRAMECRC_EVERY_PICTURE);
    args.push("-");
    let play = run_tool("ffmpeg", &args, limit);
    tokio::pin!(play);
    let mut skipped: HashMap<usize, u64> = HashMap::new();
    let mut snapshots = 0;
    let mut poll = tokio::time::interval(Duration::from_millis(200));
    let run = loop {
        tokio::select! {
            run = &mut play => break run,
            _ = poll.tick() => {
                for session in server.stats() {
                    snapshots += 1;
                    for (track, stats) in session.tracks {
                        let most = skipped.entry(track).or_default();
                        *most = (*most).max(stats.units_skipped);
                    }
                }
            }
        }
    };
    assert!(
        run.status.success(),
        "ffmpeg through {link:?} failed: {}\n{}",
        run.status,
        run.stderr
    );
    let frames = framecrcs(&run.stdout);
    assert!(
        frames.iter().all(|f| f.stream <= 1),
        "unexpected stream in {frames:?}"
    );
    let video = frames.iter().filter(|f| f.stream == 0).cloned().collect();
    let audio_bytes = frames
        .iter()
        .filter(|f| f.stream == 1)
        .map(|f| f.size)
        .sum();
    SlowPlay {
        run,
        video,
        audio_bytes,
        skipped,
        snapshots,
    }
}

/// Panics unless `received` are some of `reference`'s pictures, in order,
/// each identical: pictures skipped whole, none damaged or concealed.
fn assert_subsequence(received: &[FrameCrc], reference: &[FrameCrc], what: &str) {
    let mut rest = reference.iter();
    for (index, picture) in received.iter().enumerate() {
        assert!(
            rest.any(|r| r == picture),
            "{what}: picture {index} ({picture:?}) is none of the file's pictures after the previous one"
        );
    }
}

/// A viewer reading at about half the sample's bitrate (~1.2 Mbit/s)
/// gets whole pictures only, all the audio, and the end of the stream:
/// its video skips to the next keyframe while its connection's writer is
/// backed up, audio never, and the skips show in its stats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_tcp_viewer_skips_whole_frames_keeps_audio_and_ends() {
    if !require_tool("ffmpeg") {
        return;
    }
    let reference = reference_video_framecrcs().await;
    let server = start_server().await;
    let play = play_through_slow_link(
        &server,
        "sample",
        Link::steady(600_000.0),
        Duration::from_secs(40),
    )
    .await;
    assert!(
        play.run.stderr.trim().is_empty(),
        "ffmpeg reported errors through the slow link:\n{}",
        play.run.stderr
    );
    assert!(
        play.video.len() < SAMPLE_VIDEO_FRAMES,
        "all {} pictures came through half the bitrate in {:?}: nothing was skipped; skipped {:?}",
        play.video.len(),
        play.run.elapsed,
        play.skipped
    );
    assert!(
        play.video.len() >= 30,
        "only {} pictures came through",
        play.video.len()
    );
    assert_subsequence(&play.video, &reference, "slow TCP viewer");
    let samples = assert_whole_sample_audio(play.audio_bytes, "slow TCP viewer");
    assert!(play.snapshots > 0, "the session never published stats");
    let skipped = |track| play.skipped.get(&track).copied().unwrap_or(0);
    assert!(
        skipped(VIDEO_TRACK) > 0,
        "video skips not counted: {:?}",
        play.skipped
    );
    assert_eq!(skipped(AUDIO_TRACK), 0, "audio units skipped");
    // ffmpeg's TEARDOWN (or its closed connection) ends the session.
    let deadline = Instant::now() + Duration::from_secs(3);
    while !server.stats().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        server.stats().is_empty(),
        "the session's stats outlived it: {:?}",
        server.stats()
    );
    eprintln!(
        "slow TCP viewer: {} of {SAMPLE_VIDEO_FRAMES} pictures, {samples} audio samples in {:?}; \
         {} video units skipped by the latest snapshot",
        play.video.len(),
        play.run.elapsed,
        skipped(VIDEO_TRACK)
    );
}

/// The case: a 20 s clip at ~1.2 Mbit/s through an 800 kbit/s
/// link. ffmpeg used to wait for more after the last frames forever; it
/// must end by itself, with no decode errors and all the audio.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_second_clip_through_800_kbits_ends() {
    if !require_tool("ffmpeg") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file: PathBuf = dir.path().join("clip20.mp4");
    // Noise makes the picture incompressible, so the rate control spends
    // the whole 1.1 Mbit/s; with 96 kbit/s of audio about 1.2 Mbit/s.
    make_media(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x360:rate=30:duration=20",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000:duration=20",
        "-vf",
        "noise=alls=30:allf=t",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-b:v",
        "1100k",
        "-maxrate",
        "1100k",
        "-bufsize",
        "1100k",
        "-g",
        "30",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-b:a",
        "96k",
        "-ac",
        "2",
        file.to_str().unwrap(),
    ])
    .await;
    let reference = file_video_framecrcs(&file).await;
    assert_eq!(reference.len(), 600, "pictures in the generated clip");
    let server = serve_file(&file).await;
    let play = play_through_slow_link(
        &server,
        "clip20.mp4",
        Link::steady(800_000.0),
        Duration::from_secs(50),
    )
    .await;
    assert!(
        play.run.stderr.trim().is_empty(),
        "ffmpeg reported errors through the 800 kbit/s link:\n{}",
        play.run.stderr
    );
    assert!(
        !play.video.is_empty() && play.video.len() < reference.len(),
        "{} of {} pictures came through 800 kbit/s",
        play.video.len(),
        reference.len()
    );
    assert_subsequence(&play.video, &reference, "20 s clip at 800 kbit/s");
    let samples = play.audio_bytes / 4;
    let expected = 20 * 48_000;
    assert!(
        samples.abs_diff(expected) <= 5 * AAC_FRAME_TICKS as usize,
        "{samples} audio samples decoded, expected about {expected}"
    );
    eprintln!(
        "20 s clip at 800 kbit/s: {} of {} pictures, {samples} audio samples in {:?}; skipped {:?}",
        play.video.len(),
        reference.len(),
        play.run.elapsed,
        play.skipped
    );
}

/// A viewer that stops reading before the end, until its connection's
/// writer is full (video held back, then audio refused), and resumes:
/// the end of the stream still reaches it, since BYE waits for room
/// where media would be dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bye_reaches_a_viewer_stalled_at_the_end() {
    if !require_tool("ffmpeg") {
        return;
    }
    let server = start_server().await;
    // The stream ends about 10.5 s after the connection opens, 7.5 s into
    // the stall. Measured: the kernel's buffers take ~1.5 s of media, the
    // writer's free half ~1.7 s, its other half ~2.7 s of audio alone, so
    // the writer is full ~2 s before BYE, which then waits ~4.5 s.
    let link = Link {
        bits_per_second: 20_000_000.0,
        stall: Some((Duration::from_secs(3), Duration::from_secs(15))),
    };
    let play = play_through_slow_link(&server, "sample", link, Duration::from_secs(30)).await;
    assert!(
        play.skipped.get(&AUDIO_TRACK).copied().unwrap_or(0) > 0,
        "the writer never filled, so BYE never had to wait: {:?}",
        play.skipped
    );
    assert!(
        play.run.elapsed >= Duration::from_secs(15),
        "ffmpeg ended in {:?}, before the stall did",
        play.run.elapsed
    );
    eprintln!(
        "stalled viewer: ended in {:?} with {} pictures; skipped {:?}",
        play.run.elapsed,
        play.video.len(),
        play.skipped
    );
}
