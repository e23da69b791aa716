//! The `rtpcast` binary as a user runs it: its options, serving a file or
//! a folder, refusing paths that leave the folder, and `--loop`.

// Tests and benches are the I/O side: clocks, sockets and files (clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/media/sample.mp4");

/// A running `rtpcast` process, killed on drop.
struct Server {
    child: Child,
    rtsp: SocketAddr,
    rtp_port: u16,
}

impl Server {
    /// Starts the binary on free loopback ports with `args` and waits until
    /// it accepts RTSP connections.
    async fn start(args: &[&str]) -> Server {
        let (child, rtsp, rtp_port) = spawn_rtpcast(args).await;
        wait_until_listening(rtsp).await;
        Server {
            child,
            rtsp,
            rtp_port,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("rtsp://{}{path}", self.rtsp)
    }

    async fn status(&self, method: &str, path: &str) -> u16 {
        let mut client = RtspClient::connect(self.rtsp).await;
        client.request(method, &self.url(path), &[]).await.status
    }

    /// Stops the server and returns what it logged.
    async fn stop(mut self) -> String {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        let mut log = String::new();
        if let Some(mut stdout) = self.child.stdout.take() {
            let _ = stdout.read_to_string(&mut log).await;
        }
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = stderr.read_to_string(&mut log).await;
        }
        log
    }
}

fn copy_sample(to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(SAMPLE, to).unwrap();
}

#[tokio::test]
async fn help_documents_every_option_with_its_default() {
    let output = Command::new(env!("CARGO_BIN_EXE_rtpcast"))
        .arg("--help")
        .output()
        .await
        .expect("rtpcast --help runs");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "--rtsp-port",
        "[default: 5544]",
        "--rtp-port",
        "[default: 5005]",
        "RTCP uses the next port",
        "--bind",
        "--mtu",
        "[default: 1400]",
        "--loop",
        "--log-level",
        "[default: info]",
        "--max-sessions <MAX_SESSIONS>",
        "[default: 10000]",
        "--max-sessions-per-address",
        "--max-connections-per-address",
        "[default: 4096]",
        "0: no limit",
        "--relay <PATH=URL>",
        "--relay-always <PATH=URL>",
        "404 Not Found",
        "--api-addr [<ADDR:PORT>]",
        "127.0.0.1:9997",
        "--api-tls",
        "--config <FILE>",
        "--tls-cert <PEM>",
        "--tls-key <PEM>",
        "--rtsps-port <RTSPS_PORT>",
        "[default: 322]",
        "answered 461",
        "--log-format <LOG_FORMAT>",
        "[default: text]",
        "json",
        "--hash-password <USER>",
    ] {
        assert!(
            help.contains(expected),
            "--help lacks {expected:?}:\n{help}"
        );
    }
}

#[tokio::test]
async fn no_argument_serves_the_bundled_sample() {
    let server = Server::start(&[]).await;
    assert_eq!(server.status("DESCRIBE", "/").await, 200);
    assert_eq!(server.status("DESCRIBE", "/sample").await, 200);
    assert_eq!(server.status("DESCRIBE", "/other").await, 404);
    server.stop().await;
}

#[tokio::test]
async fn a_file_is_served_at_root_and_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("video.mp4");
    copy_sample(&file);
    let server = Server::start(&[file.to_str().unwrap()]).await;
    assert_eq!(server.status("DESCRIBE", "/").await, 200);
    assert_eq!(server.status("DESCRIBE", "/video.mp4").await, 200);
    assert_eq!(server.status("DESCRIBE", "/sample").await, 404);
    server.stop().await;
}

#[tokio::test]
async fn a_folder_serves_every_clip_and_refuses_escapes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    copy_sample(&root.join("sub/clip.mp4"));
    copy_sample(&root.join("top.mp4"));
    copy_sample(&dir.path().join("secret.mp4"));
    let server = Server::start(&[root.to_str().unwrap()]).await;

    let mut client = RtspClient::connect(server.rtsp).await;
    let describe = client
        .request("DESCRIBE", &server.url("/sub/clip.mp4"), &[])
        .await;
    assert_eq!(describe.status, 200, "{}", describe.head);
    assert_eq!(
        describe.header("Content-Base"),
        Some(server.url("/sub/clip.mp4/").as_str())
    );
    assert!(describe.body_text().contains("m=video"));
    assert_eq!(server.status("DESCRIBE", "/top.mp4").await, 200);
    assert_eq!(
        server.status("DESCRIBE", "/").await,
        404,
        "two clips: no default"
    );
    for escape in [
        "/sub%2F..%2F..%2Fsecret.mp4",
        "/..%2Fsecret.mp4",
        "/sub/..%2F..%2Fsecret.mp4",
    ] {
        assert_eq!(server.status("DESCRIBE", escape).await, 404, "{escape}");
    }
    let log = server.stop().await;
    assert!(
        log.contains("escapes the media root"),
        "refused escapes are logged:\n{log}"
    );
}

#[tokio::test]
async fn loop_plays_past_the_end_of_the_file() {
    let server = Server::start(&["--loop"]).await;
    let mut client = RtspClient::connect(server.rtsp).await;
    let (video, _video_rtcp) = udp_pair().await;
    let base = server.url("/sample");
    let session = client
        .setup(&base, 0, &udp_transport(&video), None)
        .await
        .session_id();
    client.session_ok("PLAY", &base, &session).await;
    let packets = recv_for(&video, Duration::from_millis(11_500)).await;
    let headers = rtp_headers(&packets);
    assert!(
        packets.iter().all(|d| d.from.port() == server.rtp_port),
        "RTP leaves from --rtp-port"
    );
    assert_consecutive(&headers, "video across the loop");
    let frames: Vec<u32> = headers
        .iter()
        .filter(|h| h.marker)
        .map(|h| h.timestamp)
        .collect();
    assert!(
        frames.len() > SAMPLE_VIDEO_FRAMES + 30,
        "{} frames in 11.5 s of --loop",
        frames.len()
    );
    let first = frames[0];
    let mut offsets: Vec<u32> = frames.iter().map(|t| t.wrapping_sub(first)).collect();
    offsets.sort_unstable();
    offsets.dedup();
    assert_eq!(
        offsets.len(),
        frames.len(),
        "no timestamp repeats after the loop"
    );
    server.stop().await;
}

#[tokio::test]
async fn limits_are_options_enforced_with_453_and_503_and_logged() {
    let server = Server::start(&[
        "--max-sessions-per-address",
        "1",
        "--max-connections-per-address",
        "2",
    ])
    .await;
    let base = server.url("/sample");
    let (video, _video_rtcp) = udp_pair().await;
    let mut first = RtspClient::connect(server.rtsp).await;
    first.setup(&base, 0, &udp_transport(&video), None).await;
    let mut second = RtspClient::connect(server.rtsp).await;
    let refused = second
        .request(
            "SETUP",
            &format!("{base}/trackID=0"),
            &[("Transport", &udp_transport(&video))],
        )
        .await;
    assert_eq!(refused.status, 453, "{}", refused.head);
    let mut third = TcpStream::connect(server.rtsp).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), third.read_to_string(&mut answer))
        .await
        .expect("answered and closed")
        .unwrap();
    assert!(answer.starts_with("RTSP/1.0 503 "), "{answer}");
    let log = server.stop().await;
    for expected in [
        "--max-sessions-per-address",
        "--max-connections-per-address",
    ] {
        assert!(
            log.contains(expected),
            "no log line names {expected}:\n{log}"
        );
    }
}

#[tokio::test]
async fn sigterm_shuts_down_like_ctrl_c_and_names_with_spaces_log_as_urls() {
    let dir = tempfile::tempdir().unwrap();
    copy_sample(&dir.path().join("my clip.mp4"));
    copy_sample(&dir.path().join("other.mp4"));
    let mut server = Server::start(&[dir.path().to_str().unwrap()]).await;
    assert_eq!(server.status("DESCRIBE", "/my%20clip.mp4").await, 200);
    // `docker stop` and systemd send SIGTERM.
    let pid = server.child.id().expect("running") as libc::pid_t;
    // SAFETY: kill(2) on our own child's pid has no memory effects.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = tokio::time::timeout(Duration::from_secs(5), server.child.wait())
        .await
        .expect("exits within 5 s of SIGTERM")
        .expect("exit status");
    assert!(status.success(), "{status}");
    let log = server.stop().await;
    assert!(log.contains("shutting down"), "{log}");
    assert!(
        log.contains("/my%20clip.mp4"),
        "mounts are logged as URLs a client can use:\n{log}"
    );
}

#[tokio::test]
async fn bad_relays_stop_the_server_at_start_up_with_a_reason() {
    let channel = format!("/x={SAMPLE}");
    for (args, says) in [
        (
            vec!["--relay", "/edge=http://origin/tv"],
            "give an rtsp:// URL",
        ),
        (vec!["--relay-always", "edge"], "is not PATH=URL"),
        (vec!["--relay", "/=rtsp://origin/tv"], "a path other than /"),
        (vec!["--relay", "/edge=rtsp:///tv"], "no host"),
        (
            vec!["--channel", &channel, "--relay", "/x=rtsp://127.0.0.1:1/tv"],
            "/x is given twice",
        ),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_rtpcast"))
            .args(["--bind", "127.0.0.1", "--rtsp-port", "0", "--rtp-port", "0"])
            .args(&args)
            .output()
            .await
            .expect("rtpcast runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} started");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn an_edge_relays_an_origin_and_never_logs_the_upstream_password() {
    let origin = Server::start(&["--channel", &format!("/tv={SAMPLE}")]).await;
    let upstream = format!("rtsp://viewer:s3cret@{}/tv", origin.rtsp);
    let edge = Server::start(&["--relay", &format!("/edge={upstream}")]).await;
    assert_eq!(edge.status("DESCRIBE", "/edge").await, 200);
    let upstream_logged = origin.url("/tv");
    let log = edge.stop().await;
    origin.stop().await;
    assert!(log.contains("relay playing upstream"), "{log}");
    assert!(log.contains(&upstream_logged), "{log}");
    assert!(!log.contains("s3cret"), "the password is logged:\n{log}");
}

#[tokio::test]
async fn bad_camera_options_stop_the_server_at_start_up_with_a_reason() {
    let mut cases = vec![
        (
            vec!["--camera", "/dev/video0", "--camera-format", "yuyv"],
            "mjpeg or h264",
        ),
        (
            vec!["--camera", "/dev/video0", "--camera-size", "720p"],
            "WIDTHxHEIGHT",
        ),
        (
            vec!["--camera", "/dev/video0", "--camera-fps", "0"],
            "--camera-fps",
        ),
    ];
    // A build without V4L2 says how to get one.
    if cfg!(not(feature = "v4l")) {
        cases.push((vec!["--camera", "/dev/video0"], "--features v4l"));
    } else {
        cases.push((
            vec!["--camera", "/dev/video0", "--path", "/"],
            "other than /",
        ));
    }
    for (args, says) in cases {
        let output = Command::new(env!("CARGO_BIN_EXE_rtpcast"))
            .args(["--bind", "127.0.0.1", "--rtsp-port", "0", "--rtp-port", "0"])
            .args(&args)
            .output()
            .await
            .expect("rtpcast runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} started");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn api_addr_serves_the_health_check_and_a_taken_port_stops_the_start() {
    let port = free_tcp_port().await;
    let api = SocketAddr::from(([127, 0, 0, 1], port));
    let server = Server::start(&["--api-addr", &api.to_string()]).await;
    // The API is bound before RTSP, which the start waited for.
    let health = http(api, "GET", "/health").await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    let metrics = http(api, "GET", "/metrics").await;
    assert!(metrics.body.contains("# TYPE rtpcast_sessions gauge"));
    let log = server.stop().await;
    assert!(
        log.contains(&format!("status page on http://{api}/")),
        "{log}"
    );

    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_rtpcast"))
        .args(["--bind", "127.0.0.1", "--rtsp-port", "0", "--rtp-port", "0"])
        .args(["--api-addr", &taken.local_addr().unwrap().to_string()])
        .output()
        .await
        .expect("rtpcast runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("binding the HTTP API"), "{stderr}");
}

#[tokio::test]
async fn api_tls_serves_https_and_needs_the_certificate() {
    let output = Command::new(env!("CARGO_BIN_EXE_rtpcast"))
        .args(["--bind", "127.0.0.1", "--rtsp-port", "0", "--rtp-port", "0"])
        .args(["--api-addr", "127.0.0.1:0", "--api-tls"])
        .output()
        .await
        .expect("rtpcast runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--api-tls"), "{stderr}");

    if !require_tool("curl") {
        return;
    }
    let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (certificate, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&certificate, pair.cert.pem()).unwrap();
    std::fs::write(&key, pair.key_pair.serialize_pem()).unwrap();
    let api = SocketAddr::from(([127, 0, 0, 1], free_tcp_port().await));
    let server = Server::start(&[
        "--api-addr",
        &api.to_string(),
        "--api-tls",
        "--tls-cert",
        certificate.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--rtsps-port",
        "0",
    ])
    .await;
    let health = run_tool(
        "curl",
        &["-sSk", &format!("https://{api}/health")],
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(health.stdout, "ok\n", "{}", health.stderr);
    let log = server.stop().await;
    assert!(
        log.contains(&format!("status page on https://{api}/")),
        "{log}"
    );
}

/// `--hash-password USER` prints an access-rule entry whose hash holds
/// MD5 and SHA-256 of `USER:realm:password` (worked out here with the
/// hash crates directly), and never the password.
#[tokio::test]
async fn hash_password_prints_an_entry_from_standard_input() {
    use md5::Digest as _;
    use tokio::io::AsyncWriteExt;
    let hex = |bytes: &[u8]| -> String { bytes.iter().map(|b| format!("{b:02x}")).collect() };
    for (args, realm) in [
        (vec!["--hash-password", "alice"], "rtpcast"),
        (vec!["--hash-password", "alice", "--realm", "cams"], "cams"),
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rtpcast"))
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("rtpcast runs");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(b"won der:land\r\n")
            .await
            .expect("password written");
        drop(stdin);
        let output = child.wait_with_output().await.expect("rtpcast ends");
        assert!(output.status.success(), "{args:?}: {output:?}");
        let stdout = String::from_utf8(output.stdout).expect("UTF-8");
        let secret = format!("alice:{realm}:won der:land");
        let expected = format!(
            "{{ name = \"alice\", password_hash = \"$digest$r={realm}${}${}\" }}\n",
            hex(&md5::Md5::digest(secret.as_bytes())),
            hex(&sha2::Sha256::digest(secret.as_bytes()))
        );
        assert_eq!(stdout, expected);
        assert!(!stdout.contains("land"));
    }
    let output = Command::new(env!("CARGO_BIN_EXE_rtpcast"))
        .args(["--hash-password", "al:ice"])
        .stdin(Stdio::null())
        .output()
        .await
        .expect("rtpcast runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("user name"));
}
