//! The HTTP API, metrics and health check against a server playing to a
//! raw RTSP client: counters move, a kicked viewer gets BYE and is gone,
//! the access rule refuses other networks, reload calls its hook.

// Tests and benches are the I/O side: clocks, sockets and files (clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use rtpcast::config::{AccessRule, ApiConfig, Config};
use serde_json::Value;

/// An API on any free loopback port, under `access`.
fn api_on_loopback(access: AccessRule) -> impl FnOnce(&mut Config) {
    move |config: &mut Config| {
        config.api = Some(ApiConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            access,
            tls: false,
        });
    }
}

async fn json(addr: std::net::SocketAddr, path: &str) -> Value {
    let answer = http(addr, "GET", path).await;
    assert_eq!(answer.status, 200, "GET {path}: {}", answer.body);
    serde_json::from_str(&answer.body)
        .unwrap_or_else(|e| panic!("GET {path}: {e}: {}", answer.body))
}

/// The session `id` in `GET /api/v1/sessions`, if listed.
async fn listed_session(addr: std::net::SocketAddr, id: &str) -> Option<Value> {
    json(addr, "/api/v1/sessions")
        .await
        .as_array()
        .expect("a list")
        .iter()
        .find(|s| s["id"] == id)
        .cloned()
}

fn packets_of(session: &Value) -> u64 {
    session["tracks"]
        .as_array()
        .expect("tracks")
        .iter()
        .map(|t| t["packets_sent"].as_u64().expect("packets_sent"))
        .sum()
}

#[tokio::test]
async fn sessions_and_metrics_move_while_a_client_plays() {
    let mut udp = UdpSession::setup_with(api_on_loopback(AccessRule::default())).await;
    let api = udp.server.api_addr.expect("the API is on");
    udp.control.request_ok("PLAY").await;
    // An unknown method is counted under a bounded label.
    let mut other = RtspClient::connect(udp.server.rtsp_addr).await;
    let odd = other
        .request("FROBNICATE", &url(&udp.server, "sample"), &[])
        .await;
    recv_for(&udp.video, Duration::from_millis(1500)).await;

    let first = listed_session(api, &udp.control.session)
        .await
        .expect("the playing session is listed");
    assert_eq!(first["transport"], "udp");
    assert_eq!(first["path"], "/sample");
    assert_eq!(first["state"], "playing");
    assert_eq!(
        first["client"].as_str().unwrap().split(':').next(),
        Some("127.0.0.1")
    );
    let codecs: Vec<_> = first["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["codec"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(codecs, ["H264", "AAC"]);
    let scrape1 = http(api, "GET", "/metrics").await;
    assert_eq!(scrape1.status, 200);
    let labels = "path=\"/sample\",transport=\"udp\"";
    assert_eq!(
        metric_value(&scrape1.body, "rtpcast_sessions", labels),
        Some(1.0)
    );
    assert_eq!(
        metric_value(
            &scrape1.body,
            "rtpcast_rtsp_requests_total",
            "method=\"PLAY\",status=\"200\""
        ),
        Some(1.0)
    );
    assert_eq!(
        metric_value(
            &scrape1.body,
            "rtpcast_rtsp_requests_total",
            &format!("method=\"other\",status=\"{}\"", odd.status)
        ),
        Some(1.0),
        "{}",
        scrape1.body
    );
    assert!(
        !scrape1.body.contains(&udp.control.session),
        "no session label"
    );

    recv_for(&udp.video, Duration::from_millis(2500)).await;
    let second = listed_session(api, &udp.control.session).await.unwrap();
    assert!(
        packets_of(&second) > packets_of(&first),
        "packets rise: {first} then {second}"
    );
    assert!(
        second["bitrate_bps"]
            .as_f64()
            .is_some_and(|bps| bps > 10_000.0),
        "{second}"
    );
    let scrape2 = http(api, "GET", "/metrics").await;
    for counter in [
        "rtpcast_rtp_packets_sent_total",
        "rtpcast_rtp_bytes_sent_total",
    ] {
        let before = metric_value(&scrape1.body, counter, labels).expect(counter);
        let after = metric_value(&scrape2.body, counter, labels).expect(counter);
        assert!(
            after > before && before > 0.0,
            "{counter}: {before} then {after}"
        );
    }

    let paths = json(api, "/api/v1/paths").await;
    let sample = paths
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["path"] == "/sample")
        .unwrap_or_else(|| panic!("/sample listed: {paths}"));
    assert_eq!(sample["source"], "file");
    assert_eq!(sample["viewers"], 1);
    assert_eq!(sample["codecs"], serde_json::json!(["H264", "AAC"]));
    assert!(sample["bitrate_history_bps"]
        .as_array()
        .is_some_and(|h| !h.is_empty()));

    let page = http(api, "GET", "/").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<title>rtpcast status</title>"));
    let openapi: Value =
        serde_json::from_str(&http(api, "GET", "/openapi.json").await.body).unwrap();
    assert!(openapi["paths"]["/api/v1/sessions/{id}"]["delete"].is_object());
}

#[tokio::test]
async fn a_kicked_viewer_gets_bye_and_its_totals_stay_counted() {
    let mut udp = UdpSession::setup_with(api_on_loopback(AccessRule::default())).await;
    let api = udp.server.api_addr.unwrap();
    udp.control.request_ok("PLAY").await;
    let rtp = recv_for(&udp.video, Duration::from_millis(1500)).await;
    let ssrc = rtp_header(&rtp[0].data).ssrc;
    // Published once a second: wait until the list has it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while listed_session(api, &udp.control.session).await.is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "session never listed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kicked = http(
        api,
        "DELETE",
        &format!("/api/v1/sessions/{}", udp.control.session),
    )
    .await;
    assert_eq!(kicked.status, 204, "{}", kicked.body);
    let rtcp = recv_until(&udp.video_rtcp, Duration::from_secs(3), |d| {
        rtcp_packets(&d.data).iter().any(|p| p.packet_type == 203)
    })
    .await;
    assert_one_bye(&rtcp, ssrc, "the kicked viewer's video");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while listed_session(api, &udp.control.session).await.is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "kicked session still listed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let scrape = http(api, "GET", "/metrics").await.body;
    let labels = "path=\"/sample\",transport=\"udp\"";
    assert_eq!(metric_value(&scrape, "rtpcast_sessions", labels), Some(0.0));
    let packets = metric_value(&scrape, "rtpcast_rtp_packets_sent_total", labels).unwrap();
    assert!(
        packets >= rtp.len() as f64,
        "the ended session's packets stay counted: {packets} < {} received",
        rtp.len()
    );
    let again = http(
        api,
        "DELETE",
        &format!("/api/v1/sessions/{}", udp.control.session),
    )
    .await;
    assert_eq!(again.status, 404);
    let teardown = udp.control.request("TEARDOWN").await;
    assert_eq!(teardown.status, 454, "the session is gone for RTSP too");
}

#[tokio::test]
async fn only_the_allowed_networks_reach_the_api_but_health_answers_all() {
    let elsewhere = AccessRule {
        users: Vec::new(),
        networks: vec!["10.0.0.0/8".parse().unwrap()],
    };
    let server = start_server_with(api_on_loopback(elsewhere)).await;
    let api = server.api_addr.unwrap();
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/metrics"),
        ("GET", "/api/v1/sessions"),
        ("GET", "/api/v1/paths"),
        ("DELETE", "/api/v1/sessions/0123456789ABCDEF"),
        ("POST", "/api/v1/reload"),
    ] {
        let answer = http(api, method, path).await;
        assert_eq!(answer.status, 403, "{method} {path}: {}", answer.body);
        assert!(
            answer.body.contains("127.0.0.1"),
            "says why: {}",
            answer.body
        );
    }
    let health = http(api, "GET", "/health").await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));

    let loopback = AccessRule {
        users: Vec::new(),
        networks: vec!["127.0.0.0/8".parse().unwrap()],
    };
    let server = start_server_with(api_on_loopback(loopback)).await;
    let answer = http(server.api_addr.unwrap(), "GET", "/api/v1/sessions").await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "[]"));
}

#[tokio::test]
async fn a_rule_with_users_needs_one_of_them_by_digest_or_basic() {
    let users = AccessRule {
        users: vec![rtpcast::config::UserCredential {
            name: "ops".into(),
            password_hash: format!("$digest$r=rtpcast${}", ops_hashes()),
        }],
        networks: Vec::new(),
    };
    let server = start_server_with(api_on_loopback(users)).await;
    let api = server.api_addr.unwrap();
    let anonymous = http(api, "GET", "/metrics").await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    assert_eq!(http(api, "GET", "/health").await.status, 200, "open to all");
    if !require_tool("curl") {
        return;
    }
    let url = format!("http://{api}/api/v1/sessions");
    // curl answers Digest with MD5, and Basic; each with the right and a
    // wrong password. -D - prints the headers, -w the status.
    for (scheme, password, status) in [
        ("--digest", "ops-pass", "200"),
        ("--basic", "ops-pass", "200"),
        ("--digest", "wrong", "401"),
        ("--basic", "wrong", "401"),
    ] {
        let user = format!("ops:{password}");
        let run = run_tool(
            "curl",
            &[
                "-s",
                "-D",
                "-",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                scheme,
                "-u",
                &user,
                &url,
            ],
            Duration::from_secs(10),
        )
        .await;
        assert!(
            run.stdout.ends_with(status),
            "{scheme} {password}: {}",
            run.stdout
        );
        if status == "401" {
            assert!(
                run.stdout
                    .to_ascii_lowercase()
                    .contains("www-authenticate: digest realm=\"rtpcast\""),
                "{}",
                run.stdout
            );
        }
    }
}

/// The hashes of `ops:rtpcast:ops-pass`, as `--hash-password` writes them
/// after the realm.
fn ops_hashes() -> String {
    use md5::Digest as _;
    let hex = |bytes: &[u8]| -> String { bytes.iter().map(|b| format!("{b:02x}")).collect() };
    let secret = b"ops:rtpcast:ops-pass";
    format!(
        "{}${}",
        hex(&md5::Md5::digest(secret)),
        hex(&sha2::Sha256::digest(secret))
    )
}

#[tokio::test]
async fn reload_calls_the_hook_it_was_given() {
    let server = start_server_with(api_on_loopback(AccessRule::default())).await;
    let api = server.api_addr.unwrap();
    let answer = http(api, "POST", "/api/v1/reload").await;
    assert_eq!(answer.status, 501, "no hook yet: {}", answer.body);
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    server.set_reload(Arc::new(move || {
        match counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
            0 => Ok("2 paths added".to_string()),
            _ => Err("rtpcast.toml:3: unknown key `prot`".to_string()),
        }
    }));
    let ok: Value = serde_json::from_str(&http(api, "POST", "/api/v1/reload").await.body).unwrap();
    assert_eq!(
        ok,
        serde_json::json!({"ok": true, "message": "2 paths added"})
    );
    let refused = http(api, "POST", "/api/v1/reload").await;
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("unknown key"), "{}", refused.body);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    let wrong_method = http(api, "GET", "/api/v1/reload").await;
    assert_eq!(wrong_method.status, 405);
}

#[tokio::test]
async fn a_publisher_is_listed_with_its_path_and_can_be_ended() {
    if !require_tool("ffmpeg") {
        return;
    }
    let server = start_server_with(api_on_loopback(AccessRule::default())).await;
    let api = server.api_addr.unwrap();
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/media/sample.mp4");
    let mut publisher = tokio::process::Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-re", "-i", sample])
        .args(["-c", "copy", "-f", "rtsp", "-rtsp_transport", "tcp"])
        .arg(url(&server, "/live/cam"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawning ffmpeg");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let cam = loop {
        let paths = json(api, "/api/v1/paths").await;
        let cam = paths
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["path"] == "/live/cam" && p["bitrate_bps"].is_number())
            .cloned();
        if let Some(cam) = cam {
            break cam;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/live/cam never listed: {paths}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(cam["source"], "publisher");
    assert_eq!(cam["codecs"], serde_json::json!(["H264", "AAC"]));
    assert!(
        cam["publisher"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{cam}"
    );
    let scrape = http(api, "GET", "/metrics").await.body;
    assert_eq!(
        metric_value(
            &scrape,
            "rtpcast_live_path_publishers",
            "path=\"/live/cam\""
        ),
        Some(1.0)
    );

    let session = cam["publisher_session"].as_str().expect("its session id");
    let ended = http(api, "DELETE", &format!("/api/v1/sessions/{session}")).await;
    assert_eq!(ended.status, 204, "{}", ended.body);
    // Its connection is closed: ffmpeg stops, long before the clip's end.
    tokio::time::timeout(Duration::from_secs(5), publisher.wait())
        .await
        .expect("the ended publisher's ffmpeg stops")
        .unwrap();
    let paths = json(api, "/api/v1/paths").await;
    assert!(
        !paths
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["path"] == "/live/cam"),
        "the path ended with its publisher: {paths}"
    );
}
