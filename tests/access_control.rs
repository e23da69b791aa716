//! Access control with real clients: ffprobe, GStreamer's rtspsrc and
//! retina authenticate with Digest and with Basic and decode; a wrong
//! password gets 401 and no media; ffmpeg publishes with credentials.
//!
//! Which scheme a client used is read from the server's own log line
//! ("authenticated … user=… scheme=…"), captured in-process; each test
//! has its own user name so parallel tests do not mix.

// Tests and benches are the I/O side: clocks, sockets and files (clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::*;
use futures::StreamExt;
use rtpcast::config::{AccessRule, AuthConfig, AuthScheme, Config, PathAccess, UserCredential};
use rtpcast::rtsp::auth::password::StoredPassword;
use rtpcast::server::RunningServer;

const PASSWORD: &str = "s3cret pass";

/// The server's log, from the first test that asks on.
fn server_log() -> &'static Mutex<Vec<u8>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        tracing_subscriber::fmt()
            .with_env_filter("rtpcast::rtsp=debug")
            .with_ansi(false)
            .with_writer(move || LogWriter(sink.clone()))
            .init();
        buffer
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log_lines_of(user: &str, message: &str) -> Vec<String> {
    let log = String::from_utf8_lossy(&server_log().lock().unwrap()).into_owned();
    log.lines()
        .filter(|line| line.contains(message) && line.contains(&format!("user=\"{user}\"")))
        .map(str::to_string)
        .collect()
}

/// The schemes `user` authenticated with, one per request let in.
fn schemes_used(user: &str) -> Vec<String> {
    let mut schemes: Vec<String> = log_lines_of(user, " authenticated ")
        .iter()
        .filter_map(|line| Some(line.split_once("scheme=")?.1.trim().to_string()))
        .collect();
    schemes.dedup();
    schemes
}

fn user(name: &str) -> UserCredential {
    UserCredential {
        name: name.into(),
        password_hash: StoredPassword::new(name, "rtpcast", PASSWORD).to_string(),
    }
}

/// A server whose `/sample` only `reader` may read, and whose `/live`
/// only `publisher` may publish to, offering `schemes`.
async fn guarded_server(reader: &str, publisher: &str, schemes: &[AuthScheme]) -> RunningServer {
    server_log();
    start_server_with(|config: &mut Config| {
        config.access = vec![
            PathAccess {
                path: "/sample".into(),
                read: AccessRule {
                    users: vec![user(reader)],
                    networks: Vec::new(),
                },
                publish: AccessRule::default(),
            },
            PathAccess {
                path: "/live".into(),
                read: AccessRule::default(),
                publish: AccessRule {
                    users: vec![user(publisher)],
                    networks: Vec::new(),
                },
            },
        ];
        config.auth = AuthConfig {
            schemes: schemes.to_vec(),
            ..AuthConfig::default()
        };
    })
    .await
}

const ALL: [AuthScheme; 3] = [
    AuthScheme::DigestSha256,
    AuthScheme::DigestMd5,
    AuthScheme::Basic,
];

/// `rtsp://NAME:PASSWORD@server/path`, the password percent-encoded.
fn url_with_credentials(server: &RunningServer, name: &str, password: &str, path: &str) -> String {
    let password = password.replace(' ', "%20");
    format!("rtsp://{name}:{password}@{}/{path}", server.rtsp_addr)
}

/// ffprobe decodes 1 s of `/sample` as `name`; returns the schemes the
/// server saw it use.
async fn ffprobe_as(name: &str, schemes: &[AuthScheme]) -> Vec<String> {
    let server = guarded_server(name, "nobody", schemes).await;
    let probe = ffprobe(
        &url_with_credentials(&server, name, PASSWORD, "sample"),
        "tcp",
        Some("%+1"),
    )
    .await;
    assert!(probe.frames("h264") >= 20, "{name}: {probe:?}");
    assert!(probe.frames("aac") >= 20, "{name}: {probe:?}");
    server.shutdown();
    schemes_used(name)
}

#[tokio::test]
async fn ffprobe_authenticates_with_digest_md5_and_with_basic() {
    if !require_tool("ffprobe") {
        return;
    }
    // Offered all three, FFmpeg answers the last Digest challenge it read.
    assert_eq!(ffprobe_as("ffprobe-any", &ALL).await, ["Digest MD5"]);
    assert_eq!(
        ffprobe_as("ffprobe-md5", &[AuthScheme::DigestMd5]).await,
        ["Digest MD5"]
    );
    assert_eq!(
        ffprobe_as("ffprobe-basic", &[AuthScheme::Basic]).await,
        ["Basic"]
    );
}

#[tokio::test]
async fn ffprobe_with_a_wrong_password_gets_401_and_no_media() {
    if !require_tool("ffprobe") {
        return;
    }
    let server = guarded_server("ffprobe-wrong", "nobody", &ALL).await;
    let wrong = url_with_credentials(&server, "ffprobe-wrong", "guess", "sample");
    let run = run_tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-show_entries",
            "stream=codec_name",
            &wrong,
        ],
        Duration::from_secs(20),
    )
    .await;
    assert!(!run.status.success(), "{run:?}");
    assert!(run.stderr.contains("401"), "{}", run.stderr);
    assert!(!run.stdout.contains("codec_name"), "{}", run.stdout);
    assert!(server.stats().is_empty(), "no session was set up");
    let failures = log_lines_of("ffprobe-wrong", "authentication failed");
    assert!(!failures.is_empty());
    assert!(
        failures
            .iter()
            .all(|line| line.contains("wrong password") && !line.contains("guess")),
        "{failures:?}"
    );
    // Without credentials at all: 401 too.
    let bare = run_tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            &url(&server, "sample"),
        ],
        Duration::from_secs(20),
    )
    .await;
    assert!(
        !bare.status.success() && bare.stderr.contains("401"),
        "{}",
        bare.stderr
    );
    server.shutdown();
}

/// GStreamer's rtspsrc plays `/sample` as `name` with `password`
/// (decoding 1280x720 pictures) for 40 video buffers; true when it did.
async fn gstreamer_as(server: &RunningServer, name: &str, password: &str) -> bool {
    let location = format!("location={}", url(server, "sample"));
    let user_id = format!("user-id={name}");
    let user_pw = format!("user-pw={password}");
    let run = run_tool(
        "gst-launch-1.0",
        &[
            "rtspsrc",
            &location,
            &user_id,
            &user_pw,
            "protocols=tcp",
            "name=src",
            "src.",
            "!",
            "application/x-rtp,media=video",
            "!",
            "rtph264depay",
            "!",
            "h264parse",
            "!",
            "avdec_h264",
            "!",
            "video/x-raw,width=1280,height=720",
            "!",
            "fakesink",
            "num-buffers=40",
            "src.",
            "!",
            "application/x-rtp,media=audio",
            "!",
            "fakesink",
            "num-buffers=40",
        ],
        Duration::from_secs(20),
    )
    .await;
    let output = format!("{}\n{}", run.stdout, run.stderr);
    let played = run.status.success() && output.contains("Got EOS from element \"pipeline0\"");
    // rtspsrc retries a refused password until the server stops checking.
    let refused = output.contains("Unauthorized (401)")
        || output.contains("too many failed authentications (503)");
    assert!(played || refused, "{name}: {output}");
    played
}

#[tokio::test]
async fn gstreamer_authenticates_with_digest_md5_and_with_basic() {
    if !require_tool("gst-launch-1.0") {
        return;
    }
    for (name, schemes, expected) in [
        ("gst-any", &ALL[..], "Digest MD5 (RFC 2069)"),
        (
            "gst-md5",
            &[AuthScheme::DigestMd5][..],
            "Digest MD5 (RFC 2069)",
        ),
        ("gst-basic", &[AuthScheme::Basic][..], "Basic"),
    ] {
        let server = guarded_server(name, "nobody", schemes).await;
        assert!(gstreamer_as(&server, name, PASSWORD).await, "{name}");
        assert_eq!(schemes_used(name), [expected], "{name}");
        server.shutdown();
    }
    let server = guarded_server("gst-wrong", "nobody", &ALL).await;
    assert!(!gstreamer_as(&server, "gst-wrong", "guess").await);
    assert!(server.stats().is_empty(), "no session was set up");
    assert!(!log_lines_of("gst-wrong", "authentication failed").is_empty());
    server.shutdown();
}

/// retina plays `/sample` as `name` until 30 video frames arrived.
async fn retina_as(server: &RunningServer, name: &str, password: &str) -> Result<(), String> {
    let url = url::Url::parse(&url(server, "sample")).unwrap();
    let options =
        retina::client::SessionOptions::default().creds(Some(retina::client::Credentials {
            username: name.into(),
            password: password.into(),
        }));
    let mut session = retina::client::Session::describe(url, options)
        .await
        .map_err(|e| e.to_string())?;
    for stream in 0..session.streams().len() {
        session
            .setup(stream, retina::client::SetupOptions::default())
            .await
            .map_err(|e| e.to_string())?;
    }
    let mut demuxed = session
        .play(retina::client::PlayOptions::default())
        .await
        .map_err(|e| e.to_string())?
        .demuxed()
        .map_err(|e| e.to_string())?;
    let mut frames = 0;
    while frames < 30 {
        let item = tokio::time::timeout(Duration::from_secs(5), demuxed.next())
            .await
            .map_err(|_| "no frame within 5 s".to_string())?;
        match item {
            Some(Ok(retina::codec::CodecItem::VideoFrame(_))) => frames += 1,
            Some(Ok(_)) => {}
            Some(Err(error)) => return Err(error.to_string()),
            None => return Err("stream ended".into()),
        }
    }
    Ok(())
}

#[tokio::test]
async fn retina_authenticates_with_digest_sha256_md5_and_basic() {
    for (name, schemes, expected) in [
        ("retina-any", &ALL[..], "Digest SHA-256"),
        (
            "retina-sha256",
            &[AuthScheme::DigestSha256][..],
            "Digest SHA-256",
        ),
        ("retina-md5", &[AuthScheme::DigestMd5][..], "Digest MD5"),
        ("retina-basic", &[AuthScheme::Basic][..], "Basic"),
    ] {
        let server = guarded_server(name, "nobody", schemes).await;
        retina_as(&server, name, PASSWORD)
            .await
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(schemes_used(name), [expected], "{name}");
        server.shutdown();
    }
    let server = guarded_server("retina-wrong", "nobody", &ALL).await;
    let error = retina_as(&server, "retina-wrong", "guess")
        .await
        .unwrap_err();
    assert!(error.contains("401"), "{error}");
    assert!(server.stats().is_empty());
    server.shutdown();
}

/// `ffmpeg -re` publishing 3 s of the sample to `/live/cam` as `name`;
/// returns how it ended and the most units the path held while it ran.
async fn publish_as(server: &RunningServer, name: &str, password: &str) -> (ToolRun, u64) {
    let sample = format!("{}/media/sample.mp4", env!("CARGO_MANIFEST_DIR"));
    let target = url_with_credentials(server, name, password, "live/cam");
    let args = [
        "-v",
        "error",
        "-nostdin",
        "-re",
        "-t",
        "3",
        "-i",
        &sample,
        "-c",
        "copy",
        "-f",
        "rtsp",
        "-rtsp_transport",
        "tcp",
        &target,
    ];
    let publisher = run_tool("ffmpeg", &args, Duration::from_secs(20));
    tokio::pin!(publisher);
    let mut units = 0;
    loop {
        tokio::select! {
            run = &mut publisher => return (run, units),
            _ = tokio::time::sleep(Duration::from_millis(50)) => {
                let now = server
                    .live_stats()
                    .iter()
                    .find(|path| path.mount == "/live/cam")
                    .map_or(0, |path| path.stream.units);
                units = units.max(now);
            }
        }
    }
}

#[tokio::test]
async fn ffmpeg_publishes_with_credentials_and_not_without() {
    if !require_tool("ffmpeg") {
        return;
    }
    let server = guarded_server("nobody", "ffmpeg-publisher", &ALL).await;
    let (refused, units) = publish_as(&server, "ffmpeg-publisher", "guess").await;
    assert!(!refused.status.success());
    assert!(refused.stderr.contains("401"), "{}", refused.stderr);
    assert_eq!(units, 0);
    assert!(server.publisher_stats().is_empty());
    let (published, units) = publish_as(&server, "ffmpeg-publisher", PASSWORD).await;
    assert!(published.status.success(), "{}", published.stderr);
    assert!(units >= 60, "{units} units published");
    assert_eq!(schemes_used("ffmpeg-publisher"), ["Digest MD5"]);
    server.shutdown();
}

/// A viewer without credentials is answered at once: it does not wait
/// for a publisher (`--publisher-wait`), nor would it start a relay.
#[tokio::test]
async fn an_unauthenticated_viewer_of_a_publish_path_waits_for_nothing() {
    server_log();
    let server = start_server_with(|config: &mut Config| {
        config.publisher_wait = Duration::from_secs(5);
        config.access = vec![PathAccess {
            path: "/live".into(),
            read: AccessRule {
                users: vec![user("live-viewer")],
                networks: Vec::new(),
            },
            publish: AccessRule::default(),
        }];
    })
    .await;
    let mut client = RtspClient::connect(server.rtsp_addr).await;
    let started = std::time::Instant::now();
    let answer = client
        .request("DESCRIBE", &url(&server, "live/cam"), &[])
        .await;
    assert_eq!(answer.status, 401, "{}", answer.head);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    server.shutdown();
}

#[tokio::test]
async fn a_server_with_an_unusable_password_hash_does_not_start() {
    let config = Config {
        bind: "127.0.0.1".parse().unwrap(),
        rtsp_port: 0,
        rtp_port: 0,
        access: vec![PathAccess {
            path: "/sample".into(),
            read: AccessRule {
                users: vec![UserCredential {
                    name: "mallory".into(),
                    password_hash: "plain-text".into(),
                }],
                networks: Vec::new(),
            },
            publish: AccessRule::default(),
        }],
        ..Config::default()
    };
    let catalog = rtpcast::server::catalog::Catalog::bundled_sample().unwrap();
    let Err(error) = rtpcast::server::start(&config, catalog).await else {
        panic!("started with a plain-text password");
    };
    let error = error.to_string();
    assert!(
        error.contains("\"mallory\"") && error.contains("--hash-password"),
        "{error}"
    );
    assert!(!error.contains("plain-text"), "{error}");
}
