//! How a live path with no source yet answers viewers: at once with 404,
//! or, with `--publisher-wait`, once a publisher starts (within the wait).

// Tests and benches are the I/O side: clocks, sockets and files (clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use rtpcast::server::RunningServer;

/// One AAC track, as ffmpeg announces it.
const SDP: &str = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=late\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
    m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/48000/2\r\n\
    a=fmtp:97 profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1190\r\n\
    a=control:streamid=0\r\n";

/// Announces and records `path` over interleaved TCP; the returned client
/// keeps the publisher's connection (and so its path) open.
async fn publish(server: &RunningServer, path: &str) -> RtspClient {
    let mut publisher = RtspClient::connect(server.rtsp_addr).await;
    let url = url(server, path);
    let announce = format!(
        "ANNOUNCE {url} RTSP/1.0\r\nCSeq: 100\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    );
    publisher.send_raw(announce.as_bytes()).await;
    assert_eq!(publisher.response_for(100).await.status, 200, "ANNOUNCE");
    let setup = publisher
        .request_ok(
            "SETUP",
            &format!("{url}/streamid=0"),
            &[(
                "Transport",
                "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record",
            )],
        )
        .await;
    publisher
        .session_ok("RECORD", &url, &setup.session_id())
        .await;
    publisher
}

#[tokio::test]
async fn a_path_without_publisher_is_not_found_at_once_by_default() {
    let server = start_server().await;
    let mut viewer = RtspClient::connect(server.rtsp_addr).await;
    let asked = Instant::now();
    let answer = viewer
        .request("DESCRIBE", &url(&server, "live/none"), &[])
        .await;
    assert_eq!(answer.status, 404);
    assert!(asked.elapsed() < Duration::from_secs(1));
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_waits_for_a_publisher_within_the_wait() {
    let server = start_server_with(|config| config.publisher_wait = Duration::from_secs(3)).await;
    let describe = {
        let addr = server.rtsp_addr;
        let url = url(&server, "live/late");
        tokio::spawn(async move {
            let mut viewer = RtspClient::connect(addr).await;
            let asked = Instant::now();
            let answer = viewer.request("DESCRIBE", &url, &[]).await;
            (answer, asked.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    let _publisher = publish(&server, "live/late").await;
    let (answer, waited) = describe.await.unwrap();
    assert_eq!(answer.status, 200, "{} after {waited:?}", answer.head);
    let sdp = answer.body_text().to_ascii_lowercase();
    assert!(sdp.contains("mpeg4-generic/48000/2"), "{sdp}");
    assert!(
        waited >= Duration::from_millis(600) && waited < Duration::from_secs(3),
        "answered after {waited:?}, once the publisher recorded"
    );
    // Nobody publishes here: 404 once the wait is over.
    let mut viewer = RtspClient::connect(server.rtsp_addr).await;
    let asked = Instant::now();
    let answer = viewer
        .request("DESCRIBE", &url(&server, "live/never"), &[])
        .await;
    assert_eq!(answer.status, 404);
    assert!(
        asked.elapsed() >= Duration::from_millis(2_900),
        "{:?}",
        asked.elapsed()
    );
    // Outside the publish paths nothing waits.
    let asked = Instant::now();
    let answer = viewer
        .request("DESCRIBE", &url(&server, "elsewhere"), &[])
        .await;
    assert_eq!(answer.status, 404);
    assert!(asked.elapsed() < Duration::from_secs(1));
    server.shutdown();
}
