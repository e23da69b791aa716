//! Cameras (`--camera`) through a fake capture device: its MJPEG and H.264
//! frames (made by ffmpeg from testsrc2) reach ffmpeg viewers that decode
//! them over UDP and TCP, and unplugging it ends its viewers' sessions
//! with RTCP BYE until it comes back.

// Tests and benches are the I/O side: clocks, sockets and files (clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use retina::client::{PlayOptions, SessionOptions, SetupOptions, Transport};
use retina::codec::CodecItem;
use rtpcast::config::Config;
use rtpcast::server::camera::{Camera, CaptureDevice, CaptureError, CapturedFrame, REOPEN_WAIT};
use rtpcast::server::catalog::Catalog;
use rtpcast::server::RunningServer;
use rtpcast::source::camera::{CameraCodec, CameraFormat};

/// RTCP packet type of BYE (RFC 3550 §6.6).
const RTCP_BYE: u8 = 203;

/// A camera made of recorded frames, played in a loop at their rate,
/// that can be unplugged and plugged in again.
struct FakeCamera {
    frames: Arc<Vec<Vec<u8>>>,
    format: CameraFormat,
    plugged: Arc<AtomicBool>,
    /// Successful openings.
    opened: Arc<AtomicUsize>,
    next: usize,
    due: Instant,
}

impl FakeCamera {
    fn new(frames: Vec<Vec<u8>>, format: CameraFormat) -> Self {
        FakeCamera {
            frames: Arc::new(frames),
            format,
            plugged: Arc::new(AtomicBool::new(true)),
            opened: Arc::new(AtomicUsize::new(0)),
            next: 0,
            due: Instant::now(),
        }
    }

    fn unplugged() -> CaptureError {
        CaptureError::Unavailable("fake camera unplugged".into())
    }
}

impl CaptureDevice for FakeCamera {
    fn open(&mut self, _requested: &CameraFormat) -> Result<CameraFormat, CaptureError> {
        if !self.plugged.load(Ordering::SeqCst) {
            return Err(Self::unplugged());
        }
        self.opened.fetch_add(1, Ordering::SeqCst);
        self.next = 0;
        self.due = Instant::now();
        Ok(self.format)
    }

    fn next_frame(&mut self) -> Result<CapturedFrame, CaptureError> {
        std::thread::sleep(self.due.saturating_duration_since(Instant::now()));
        if !self.plugged.load(Ordering::SeqCst) {
            return Err(Self::unplugged());
        }
        let captured = self.due;
        self.due += Duration::from_secs(1) / self.format.fps;
        let data = self.frames[self.next % self.frames.len()].clone();
        self.next += 1;
        Ok(CapturedFrame { data, captured })
    }
}

/// What ffmpeg writes to standard output for `args`; `None` when ffmpeg
/// is missing.
async fn ffmpeg_bytes(args: &[&str]) -> Option<Vec<u8>> {
    if !require_tool("ffmpeg") {
        return None;
    }
    let output = tokio::process::Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("running ffmpeg");
    assert!(
        output.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(output.stdout)
}

/// `count` frames of testsrc2 at `size` as baseline JPEG images with the
/// standard Huffman tables (RFC 2435 cannot carry others), as a UVC
/// camera's Motion-JPEG gives them.
async fn mjpeg_frames(size: &str, count: usize) -> Option<Vec<Vec<u8>>> {
    let source = format!("testsrc2=size={size}:rate=15");
    let count = count.to_string();
    let stream = ffmpeg_bytes(&[
        "-f",
        "lavfi",
        "-i",
        &source,
        "-frames:v",
        &count,
        "-c:v",
        "mjpeg",
        "-huffman",
        "default",
        "-pix_fmt",
        "yuvj420p",
        "-f",
        "mjpeg",
        "-",
    ])
    .await?;
    // Each image ends at EOI and the next begins at SOI.
    let mut frames = Vec::new();
    let mut start = 0;
    for end in 2..stream.len() {
        if stream[end - 2..end] == [0xff, 0xd9] && stream[end..].starts_with(&[0xff, 0xd8]) {
            frames.push(stream[start..end].to_vec());
            start = end;
        }
    }
    frames.push(stream[start..].to_vec());
    Some(frames)
}

/// `count` frames of testsrc2 at `size` encoded as H.264 access units in
/// Annex B byte streams, as a UVC camera gives them: no B-frames, an IDR
/// with its SPS and PPS each second, each unit starting with an access
/// unit delimiter.
async fn h264_frames(size: &str, fps: u32, count: usize) -> Option<Vec<Vec<u8>>> {
    let source = format!("testsrc2=size={size}:rate={fps}");
    let count = count.to_string();
    let gop = fps.to_string();
    let stream = ffmpeg_bytes(&[
        "-f",
        "lavfi",
        "-i",
        &source,
        "-frames:v",
        &count,
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-bf",
        "0",
        "-g",
        &gop,
        "-x264-params",
        "aud=1:repeat-headers=1",
        "-bsf:v",
        "h264_mp4toannexb",
        "-f",
        "h264",
        "-",
    ])
    .await?;
    // Access units start at their delimiter (NAL type 9), with the zero
    // byte of a 4-byte start code when there is one.
    let mut starts: Vec<usize> = (0..stream.len().saturating_sub(3))
        .filter(|&i| stream[i..i + 3] == [0, 0, 1] && stream[i + 3] & 0x1f == 9)
        .map(|i| {
            if i > 0 && stream[i - 1] == 0 {
                i - 1
            } else {
                i
            }
        })
        .collect();
    assert_eq!(
        starts.first(),
        Some(&0),
        "the stream starts with a delimiter"
    );
    starts.push(stream.len());
    Some(
        starts
            .windows(2)
            .map(|w| stream[w[0]..w[1]].to_vec())
            .collect(),
    )
}

/// A server on ephemeral loopback ports streaming `camera` at
/// `/live/webcam`.
async fn start_camera(camera: FakeCamera, requested: CameraFormat) -> RunningServer {
    let config = Config {
        bind: "127.0.0.1".parse().unwrap(),
        rtsp_port: 0,
        rtp_port: 0,
        ..Default::default()
    };
    let camera = Camera {
        mount: "/live/webcam".into(),
        name: "fake camera".into(),
        requested,
        device: Box::new(camera),
    };
    rtpcast::server::start_with_cameras(&config, Catalog::bundled_sample().unwrap(), vec![camera])
        .await
        .expect("server starts")
}

/// Waits until the server has a path at `/live/webcam` (the camera's
/// first frames are in).
async fn wait_for_path(server: &RunningServer, limit: Duration) {
    let until = Instant::now() + limit;
    while !server
        .live_stats()
        .iter()
        .any(|p| p.mount == "/live/webcam")
    {
        assert!(Instant::now() < until, "no camera path within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Decodes 3 s of `/live/webcam` with ffprobe over UDP and TCP; panics
/// unless every picture decodes cleanly as `codec` at `size`, at least
/// `min_frames` of them each time.
async fn assert_ffprobe_decodes(
    server: &RunningServer,
    codec: &str,
    size: (u32, u32),
    min_frames: usize,
) {
    let url = url(server, "live/webcam");
    for transport in ["udp", "tcp"] {
        let probe = ffprobe(&url, transport, Some("%+3")).await;
        assert!(
            probe.stderr.trim().is_empty(),
            "{transport}: decoder errors: {}",
            probe.stderr
        );
        let [stream] = &probe.streams[..] else {
            panic!("{transport}: one stream expected: {probe:?}");
        };
        assert_eq!(stream.codec, codec, "{transport}");
        assert_eq!(stream.size, Some(size), "{transport}: picture size");
        assert!(
            stream.frames >= min_frames,
            "{transport}: {} frames decoded",
            stream.frames
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_decodes_an_mjpeg_camera_over_udp_and_tcp() {
    if !require_tool("ffprobe") {
        return;
    }
    let Some(frames) = mjpeg_frames("640x480", 30).await else {
        return;
    };
    assert_eq!(frames.len(), 30);
    let format = CameraFormat {
        codec: CameraCodec::Mjpeg,
        width: 640,
        height: 480,
        fps: 15,
    };
    let server = start_camera(FakeCamera::new(frames, format), format).await;
    wait_for_path(&server, Duration::from_secs(5)).await;
    // Three seconds at 15 fps.
    assert_ffprobe_decodes(&server, "mjpeg", (640, 480), 35).await;
    let live = server.live_stats();
    assert_eq!(live[0].stream.refused, 0, "{live:?}");
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_decodes_an_h264_camera_over_udp_and_tcp() {
    if !require_tool("ffprobe") {
        return;
    }
    let Some(frames) = h264_frames("320x240", 25, 50).await else {
        return;
    };
    assert_eq!(frames.len(), 50);
    let format = CameraFormat {
        codec: CameraCodec::H264,
        width: 320,
        height: 240,
        fps: 25,
    };
    // The camera gives another size than asked: the path says what it
    // gives.
    let asked = CameraFormat {
        width: 1280,
        height: 720,
        ..format
    };
    let server = start_camera(FakeCamera::new(frames, format), asked).await;
    wait_for_path(&server, Duration::from_secs(5)).await;
    // Three seconds at 25 fps, from the GOP cache's keyframe on.
    assert_ffprobe_decodes(&server, "h264", (320, 240), 60).await;
    let live = server.live_stats();
    assert_eq!(live[0].stream.refused, 0, "{live:?}");
    server.shutdown();
}

/// What a retina viewer of `/live/webcam` saw.
#[derive(Debug, Default)]
struct Watched {
    /// Keyframe flags of the video frames, in order.
    video: Vec<bool>,
    /// When an RTCP BYE arrived (the viewer stops there).
    bye_at: Option<Instant>,
}

/// Watches `url` over TCP with retina for `secs` or until BYE.
async fn watch(url: &str, secs: f64) -> Watched {
    let url = url::Url::parse(url).unwrap();
    let mut session = retina::client::Session::describe(url, SessionOptions::default())
        .await
        .expect("DESCRIBE");
    session
        .setup(
            0,
            SetupOptions::default().transport(Transport::Tcp(Default::default())),
        )
        .await
        .expect("SETUP");
    let mut demuxed = session
        .play(PlayOptions::default())
        .await
        .expect("PLAY")
        .demuxed()
        .expect("demuxed");
    let until = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
    let mut watched = Watched::default();
    while let Ok(Some(item)) = tokio::time::timeout_at(until, demuxed.next()).await {
        match item.expect("stream item") {
            CodecItem::VideoFrame(frame) => watched.video.push(frame.is_random_access_point()),
            CodecItem::Rtcp(compound) if compound.pkts().any(|p| p.payload_type() == RTCP_BYE) => {
                watched.bye_at = Some(Instant::now());
                break;
            }
            _ => {}
        }
    }
    watched
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unplugged_camera_ends_its_viewers_sessions_and_comes_back() {
    let Some(frames) = h264_frames("320x240", 25, 50).await else {
        return;
    };
    let format = CameraFormat {
        codec: CameraCodec::H264,
        width: 320,
        height: 240,
        fps: 25,
    };
    let camera = FakeCamera::new(frames, format);
    let (plugged, opened) = (camera.plugged.clone(), camera.opened.clone());
    let server = start_camera(camera, format).await;
    wait_for_path(&server, Duration::from_secs(5)).await;
    let url = url(&server, "live/webcam");
    let unplug = async {
        tokio::time::sleep(Duration::from_millis(2_000)).await;
        plugged.store(false, Ordering::SeqCst);
        Instant::now()
    };
    let (watched, unplugged_at) = tokio::join!(watch(&url, 6.0), unplug);
    assert!(watched.video.len() > 30, "{} frames", watched.video.len());
    assert!(watched.video[0], "the first picture is a keyframe");
    let bye_at = watched.bye_at.expect("the viewer gets BYE");
    // The next frame, 40 ms on, finds the camera gone.
    assert!(
        bye_at.duration_since(unplugged_at) < Duration::from_secs(1),
        "BYE {:?} after unplugging",
        bye_at.duration_since(unplugged_at)
    );
    // While it is unplugged the path is gone.
    let mut client = RtspClient::connect(server.rtsp_addr).await;
    let describe = client.request("DESCRIBE", &url, &[]).await;
    assert_eq!(describe.status, 404, "{}", describe.head);
    assert!(server.live_stats().is_empty());
    assert_eq!(opened.load(Ordering::SeqCst), 1);
    // Plugged in again, it is opened within the retry interval and
    // viewers decode it again.
    plugged.store(true, Ordering::SeqCst);
    wait_for_path(&server, REOPEN_WAIT + Duration::from_secs(2)).await;
    assert_eq!(opened.load(Ordering::SeqCst), 2);
    let again = watch(&url, 2.0).await;
    assert!(again.video.len() > 30, "{} frames", again.video.len());
    assert!(again.video[0] && again.bye_at.is_none(), "{again:?}");
    server.shutdown();
}
