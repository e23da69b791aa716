//! RTSPS (RTSP over TLS): ffmpeg and GStreamer play `rtsps://` and decode
//! the pictures of the file; our own TLS client checks the URLs, the 461
//! for UDP, and that plain-RTSP and garbage clients on the TLS port are
//! turned away without disturbing a playing viewer; the HTTP API serves
//! HTTPS with the same certificate. Certificates are made at test time
//! (rcgen), self-signed.

// Tests and benches are the I/O side: clocks, sockets and files (clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rtpcast::config::{AccessRule, ApiConfig, TlsConfig};
use rtpcast::server::RunningServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

/// A self-signed certificate for `localhost` and 127.0.0.1, written as
/// PEM files into a folder that lives as long as this.
struct SelfSigned {
    _dir: tempfile::TempDir,
    certificate: PathBuf,
    key: PathBuf,
    der: rustls::pki_types::CertificateDer<'static>,
}

fn self_signed() -> SelfSigned {
    let pair =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("self-signed certificate");
    let dir = tempfile::tempdir().unwrap();
    let certificate = dir.path().join("rtpcast.crt");
    let key = dir.path().join("rtpcast.key");
    std::fs::write(&certificate, pair.cert.pem()).unwrap();
    std::fs::write(&key, pair.key_pair.serialize_pem()).unwrap();
    SelfSigned {
        _dir: dir,
        certificate,
        key,
        der: pair.cert.der().clone(),
    }
}

/// A server on ephemeral ports with RTSPS on, and its certificate.
async fn start_tls_server() -> (RunningServer, SelfSigned) {
    let cert = self_signed();
    let server = start_server_with(|config| {
        config.tls = Some(TlsConfig {
            certificate: cert.certificate.clone(),
            key: cert.key.clone(),
            rtsps_port: 0,
        });
    })
    .await;
    (server, cert)
}

/// `rtsps://127.0.0.1:<port>/<path>`.
fn rtsps_url(server: &RunningServer, path: &str) -> String {
    let addr = server.rtsps_addr.expect("RTSPS is listening");
    format!("rtsps://{addr}/{}", path.trim_start_matches('/'))
}

/// An RTSP client over TLS that trusts only `cert`, checking the server's
/// name `localhost` against it.
async fn tls_client(server: &RunningServer, cert: &SelfSigned) -> RtspClient {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let socket = TcpStream::connect(server.rtsps_addr.unwrap())
        .await
        .unwrap();
    socket.set_nodelay(true).unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, socket)
        .await
        .expect("TLS handshake with the server");
    RtspClient::over(Box::new(stream))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_decodes_the_files_pictures_over_rtsps() {
    if !require_tool("ffmpeg") {
        return;
    }
    let reference = reference_video_framecrcs().await;
    let (server, _cert) = start_tls_server().await;
    let url = rtsps_url(&server, "sample");
    // No -rtsp_transport: for rtsps:// ffmpeg uses the interleaved
    // transport by itself, and does not verify the certificate unless
    // told to (-tls_verify 1).
    let mut args = vec!["-v", "error", "-nostdin", "-i", &url, "-map", "0:v"];
    args.extend(FRAMECRC_EVERY_PICTURE);
    args.push("-");
    let run = run_tool("ffmpeg", &args, Duration::from_secs(30)).await;
    assert!(run.status.success(), "ffmpeg rtsps failed:\n{}", run.stderr);
    assert!(
        run.stderr.trim().is_empty(),
        "ffmpeg rtsps reported errors:\n{}",
        run.stderr
    );
    let video = framecrcs(&run.stdout);
    assert_same_pictures(&video, &reference, "ffmpeg rtsps");
    assert_real_time(run.elapsed, "ffmpeg rtsps");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffprobe_counts_frames_over_rtsps() {
    if !require_tool("ffprobe") {
        return;
    }
    let (server, _cert) = start_tls_server().await;
    let probe = ffprobe(&rtsps_url(&server, "sample"), "tcp", Some("%+3")).await;
    assert!(probe.stderr.trim().is_empty(), "{}", probe.stderr);
    assert_eq!(probe.streams.len(), 2, "{probe:?}");
    assert_eq!(
        probe
            .streams
            .iter()
            .find(|s| s.codec == "h264")
            .and_then(|s| s.size),
        Some((1280, 720)),
        "{probe:?}"
    );
    // About 3 s of 30 fps video and 48 kHz AAC (1024 samples a frame).
    assert!((80..=110).contains(&probe.frames("h264")), "{probe:?}");
    assert!((120..=160).contains(&probe.frames("aac")), "{probe:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_decodes_the_files_pictures_over_rtsps() {
    if !require_tool("gst-launch-1.0") {
        return;
    }
    let reference = gstreamer_file_checksums().await;
    let (server, _cert) = start_tls_server().await;
    let location = format!("location={}", rtsps_url(&server, "sample"));
    // tls-validation-flags=0: accept the self-signed certificate. No
    // `protocols`: rtspsrc offers UDP first, is answered 461, and falls
    // back to the interleaved transport by itself.
    let run = run_tool(
        "gst-launch-1.0",
        &[
            "rtspsrc",
            &location,
            "tls-validation-flags=0",
            "!",
            "application/x-rtp,media=video",
            "!",
            "rtph264depay",
            "!",
            "h264parse",
            "!",
            "avdec_h264",
            "!",
            "video/x-raw,format=I420,width=1280,height=720",
            "!",
            "checksumsink",
            "hash=md5",
        ],
        Duration::from_secs(40),
    )
    .await;
    let output = format!("{}\n{}", run.stdout, run.stderr);
    assert!(run.status.success(), "gst-launch rtsps failed:\n{output}");
    assert!(
        output.contains("Got EOS from element \"pipeline0\""),
        "rtsps: pipeline did not reach EOS:\n{output}"
    );
    let received = gstreamer_checksums(&run.stdout);
    assert_eq!(received, reference, "rtsps: pictures against the file's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_certificate_stops_start_up_with_the_files_name() {
    let cert = self_signed();
    let other = self_signed();
    let config = rtpcast::config::Config {
        bind: "127.0.0.1".parse().unwrap(),
        rtsp_port: 0,
        rtp_port: 0,
        tls: Some(TlsConfig {
            certificate: cert.certificate.clone(),
            key: other.key.clone(),
            rtsps_port: 0,
        }),
        ..Default::default()
    };
    let catalog = rtpcast::server::catalog::Catalog::bundled_sample().unwrap();
    let error = rtpcast::server::start(&config, catalog)
        .await
        .expect_err("a key of another certificate");
    let message = format!("{error:#}");
    assert!(message.contains("rtpcast.key"), "{message}");
    assert!(message.contains("cannot be used together"), "{message}");
    // rustls's reason is said once, not again by the chain.
    let reason = message.rsplit(": ").next().unwrap();
    assert_eq!(message.matches(reason).count(), 1, "{message}");
}

/// Reads interleaved frames until a video RTCP BYE or `limit`; returns the
/// arrival times of the video RTP packets with the marker bit (one per
/// picture).
async fn video_pictures(client: &mut RtspClient, limit: Duration) -> Vec<Instant> {
    let deadline = Instant::now() + limit;
    let mut pictures = Vec::new();
    while Instant::now() < deadline {
        let Some(message) = client.read_message().await else {
            break;
        };
        let Incoming::Interleaved { channel, payload } = message else {
            continue;
        };
        match channel {
            0 if rtp_header(&payload).marker => pictures.push(Instant::now()),
            1 if rtcp_packets(&payload).iter().any(|p| p.packet_type == 203) => break,
            _ => {}
        }
    }
    pictures
}

/// Whether the server closes `socket` within `limit`, and the bytes it
/// sent before (a TLS alert at most: never an RTSP answer).
async fn closed_within(socket: &mut TcpStream, limit: Duration) -> (bool, Vec<u8>) {
    let mut received = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    let mut chunk = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(deadline, socket.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (true, received),
            Ok(Ok(read)) => received.extend_from_slice(&chunk[..read]),
            Err(_) => return (false, received),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsps_plays_interleaved_and_bad_clients_do_not_disturb_it() {
    let (server, cert) = start_tls_server().await;
    let base = rtsps_url(&server, "sample");
    let mut viewer = tls_client(&server, &cert).await;
    let describe = viewer
        .request_ok("DESCRIBE", &base, &[("Accept", "application/sdp")])
        .await;
    let content_base = describe.expect_header("Content-Base");
    assert_eq!(content_base, format!("{base}/"));
    // UDP media would leave the TLS session: refused.
    let udp = viewer
        .request(
            "SETUP",
            &format!("{base}/trackID=0"),
            &[("Transport", "RTP/AVP;unicast;client_port=6000-6001")],
        )
        .await;
    assert_eq!(udp.status, 461, "{}", udp.head);
    let setup = viewer
        .setup(&base, 0, "RTP/AVP/TCP;unicast;interleaved=0-1", None)
        .await;
    let session = setup.session_id();
    let play = viewer
        .session_ok("PLAY", &format!("{base}/"), &session)
        .await;
    assert!(
        play.rtp_info_for("trackID=0").url.starts_with("rtsps://"),
        "{}",
        play.head
    );
    let watching = tokio::spawn(async move {
        let pictures = video_pictures(&mut viewer, Duration::from_secs(15)).await;
        (viewer, pictures)
    });

    let tls_port = server.rtsps_addr.unwrap();
    // A client that started a handshake and went silent: dropped once the
    // handshake timeout passes, holding nothing meanwhile.
    let mut stalled = TcpStream::connect(tls_port).await.unwrap();
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x00, 0xc8])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Plain RTSP on the TLS port, and junk: closed at once, no answer.
    let mut plain = TcpStream::connect(tls_port).await.unwrap();
    plain
        .write_all(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n")
        .await
        .unwrap();
    let (closed, said) = closed_within(&mut plain, Duration::from_secs(2)).await;
    assert!(closed, "a plain RTSP client on the TLS port stays open");
    assert!(
        !String::from_utf8_lossy(&said).contains("RTSP/1.0"),
        "answered in plain RTSP: {said:?}"
    );
    for round in 0..20u8 {
        let mut junk = TcpStream::connect(tls_port).await.unwrap();
        let bytes: Vec<u8> = (0..2048u32)
            .map(|i| (i.wrapping_mul(31) as u8) ^ round)
            .collect();
        // The server may close while the junk is still being written.
        let _ = junk.write_all(&bytes).await;
        let (closed, _) = closed_within(&mut junk, Duration::from_secs(2)).await;
        assert!(closed, "junk round {round} left open");
    }
    let (closed, _) = closed_within(&mut stalled, Duration::from_secs(12)).await;
    assert!(closed, "a stalled handshake was never dropped");

    let (mut viewer, pictures) = watching.await.unwrap();
    assert_eq!(
        pictures.len(),
        SAMPLE_VIDEO_FRAMES,
        "pictures the TLS viewer received"
    );
    let longest_gap = pictures
        .windows(2)
        .map(|pair| pair[1] - pair[0])
        .max()
        .unwrap();
    assert!(
        longest_gap < Duration::from_millis(500),
        "the TLS viewer stalled for {longest_gap:?}"
    );
    viewer.session_ok("TEARDOWN", &base, &session).await;
    // The plain port still serves as before.
    let mut plain_client = RtspClient::connect(server.rtsp_addr).await;
    let described = plain_client
        .request_ok("DESCRIBE", &url(&server, "sample"), &[])
        .await;
    assert!(described
        .expect_header("Content-Base")
        .starts_with("rtsp://"));
}

/// `curl -v` fetching `path` from the API over HTTPS, trusting only
/// `cert` (for the name `localhost`, resolved to the API's address): the
/// body, and curl's account of the connection.
async fn curl_https(api: std::net::SocketAddr, cert: &SelfSigned, path: &str) -> (String, String) {
    let resolve = format!("localhost:{}:{}", api.port(), api.ip());
    let url = format!("https://localhost:{}{path}", api.port());
    let cacert = cert.certificate.to_str().unwrap();
    let run = run_tool(
        "curl",
        &[
            "-sSv",
            "--fail",
            "--cacert",
            cacert,
            "--resolve",
            &resolve,
            &url,
        ],
        Duration::from_secs(10),
    )
    .await;
    assert!(run.status.success(), "curl {url}: {}", run.stderr);
    (run.stdout, run.stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_serves_https_with_the_rtsps_certificate() {
    if !require_tool("curl") {
        return;
    }
    let cert = self_signed();
    let server = start_server_with(|config| {
        config.tls = Some(TlsConfig {
            certificate: cert.certificate.clone(),
            key: cert.key.clone(),
            rtsps_port: 0,
        });
        config.api = Some(ApiConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            access: AccessRule::default(),
            tls: true,
        });
    })
    .await;
    let api = server.api_addr.expect("the API is on");
    let (health, account) = curl_https(api, &cert, "/health").await;
    assert_eq!(health, "ok\n");
    // HTTP/1.1 agreed by ALPN ("server did not agree" without it).
    assert!(
        account.lines().any(|line| line.contains("ALPN")
            && line.contains("accepted")
            && line.contains("http/1.1")),
        "{account}"
    );

    // A client that starts a handshake and goes silent holds up no other
    // (handshakes run side by side): the requests below are answered at
    // once, not after its handshake timeout.
    let mut stalled = TcpStream::connect(api).await.unwrap();
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x00, 0xc8])
        .await
        .unwrap();
    let started = Instant::now();
    // Plain HTTP on the HTTPS port: the handshake fails, the connection
    // closes with no HTTP answer.
    let mut plain = TcpStream::connect(api).await.unwrap();
    plain
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (closed, said) = closed_within(&mut plain, Duration::from_secs(5)).await;
    assert!(closed, "a plain-HTTP client on the HTTPS port stays open");
    assert!(
        !String::from_utf8_lossy(&said).contains("HTTP/"),
        "answered in plain HTTP: {said:?}"
    );

    // The failed handshake ended nothing: the API still serves, and its
    // metrics count this server's requests.
    let mut client = RtspClient::connect(server.rtsp_addr).await;
    client
        .request_ok("OPTIONS", &url(&server, "sample"), &[])
        .await;
    let (metrics, _) = curl_https(api, &cert, "/metrics").await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "held up by the stalled handshake: {:?}",
        started.elapsed()
    );
    assert_eq!(
        metric_value(
            &metrics,
            "rtpcast_rtsp_requests_total",
            "method=\"OPTIONS\",status=\"200\""
        ),
        Some(1.0),
        "{metrics}"
    );
    let (closed, _) = closed_within(&mut stalled, Duration::from_secs(12)).await;
    assert!(closed, "a stalled handshake was never dropped");
}

/// Connections from one address that never finish their TLS handshake
/// take at most that address's share of the handshake slots: a client
/// from another address still gets in at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_stalling_handshakes_cannot_keep_others_out() {
    let (server, cert) = start_tls_server().await;
    let addr = server.rtsps_addr.unwrap();
    // More than every slot of the server (256), from 127.0.0.2.
    let mut stalled = Vec::new();
    for _ in 0..300 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        stalled.push(socket.connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let mut client = tokio::time::timeout(Duration::from_secs(3), tls_client(&server, &cert))
        .await
        .expect("the handshake of a client from 127.0.0.1 is not held up");
    let answer = client
        .request("OPTIONS", &rtsps_url(&server, "/"), &[])
        .await;
    assert_eq!(answer.status, 200);
    assert!(started.elapsed() < Duration::from_secs(2));
    drop(stalled);
    server.shutdown();
}
