//! The status page in a real browser: headless Chromium (Debian's
//! `chromium`) renders it while two clients play, and the rendered DOM
//! must list both sessions with counters that rise between two loads. A
//! screenshot is kept in `target/status-page.png`.

// Tests and benches are the I/O side: clocks, sockets and files (clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use rtpcast::config::{AccessRule, ApiConfig};
use tokio::net::UdpSocket;

/// A client playing `/sample` over UDP; its sockets stay open (what they
/// receive is left to the kernel to drop) so nothing is refused.
struct Player {
    session: String,
    _control: RtspClient,
    _sockets: [UdpSocket; 4],
}

async fn play(server: &rtpcast::server::RunningServer) -> Player {
    let mut client = RtspClient::connect(server.rtsp_addr).await;
    let (video, video_rtcp) = udp_pair().await;
    let (audio, audio_rtcp) = udp_pair().await;
    let base = url(server, "sample");
    let session = client
        .setup(&base, 0, &udp_transport(&video), None)
        .await
        .session_id();
    client
        .setup(&base, 1, &udp_transport(&audio), Some(&session))
        .await;
    client.session_ok("PLAY", &base, &session).await;
    Player {
        session,
        _control: client,
        _sockets: [video, video_rtcp, audio, audio_rtcp],
    }
}

/// Runs headless Chromium on `page` with `extra` arguments, after letting
/// the page's timers run for two seconds of virtual time.
async fn chromium(page: &str, extra: &[&str]) -> ToolRun {
    let profile = tempfile::tempdir().unwrap();
    let profile_arg = format!("--user-data-dir={}", profile.path().display());
    let mut args = vec![
        "--headless",
        // Root in CI and containers: Chromium's sandbox needs user
        // namespaces it may not have.
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--virtual-time-budget=2000",
        profile_arg.as_str(),
    ];
    args.extend_from_slice(extra);
    args.push(page);
    let run = run_tool("chromium", &args, Duration::from_secs(60)).await;
    assert!(
        run.status.success(),
        "chromium failed: {}\n{}",
        run.status,
        run.stderr
    );
    run
}

/// Packets per session id, from the rendered viewers table: each row is
/// `<tr class="session" data-id="ID">` with a `<td class="packets">N</td>`.
fn packets_by_session(dom: &str) -> HashMap<String, u64> {
    let mut found = HashMap::new();
    for row in dom.split("<tr class=\"session\"").skip(1) {
        let id = row
            .split_once("data-id=\"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(id, _)| id.to_string())
            .expect("a session row has its id");
        let packets = row
            .split_once("<td class=\"packets\">")
            .and_then(|(_, rest)| rest.split_once('<'))
            .and_then(|(n, _)| n.parse().ok())
            .unwrap_or_else(|| panic!("row {id} has a packet count: {row}"));
        found.insert(id, packets);
    }
    found
}

#[tokio::test]
async fn the_status_page_shows_both_viewers_with_rising_counters() {
    if !require_tool("chromium") {
        return;
    }
    let server = start_server_with(|config| {
        config.loop_playback = true;
        config.api = Some(ApiConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            access: AccessRule::default(),
            tls: false,
        });
    })
    .await;
    let page = format!("http://{}/", server.api_addr.unwrap());
    let players = [play(&server).await, play(&server).await];
    // Let both publish stats and the sampler measure some bitrate.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let first = packets_by_session(&chromium(&page, &["--dump-dom"]).await.stdout);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let second_run = chromium(&page, &["--dump-dom"]).await;
    let second = packets_by_session(&second_run.stdout);
    for player in &players {
        let before = first
            .get(&player.session)
            .unwrap_or_else(|| panic!("{} not on the page: {first:?}", player.session));
        let after = second[&player.session];
        assert!(
            after > *before && *before > 0,
            "{}: {before} then {after} packets",
            player.session
        );
    }
    assert!(
        second_run.stdout.contains("data-path=\"/sample\""),
        "the stream is listed"
    );
    assert!(
        second_run.stdout.contains("<polyline points=\""),
        "with its chart"
    );

    let screenshot =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/status-page.png");
    let screenshot_arg = format!("--screenshot={}", screenshot.display());
    chromium(
        &page,
        &[
            &screenshot_arg,
            "--window-size=1100,560",
            "--hide-scrollbars",
        ],
    )
    .await;
    let png = std::fs::read(&screenshot).expect("the screenshot was written");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "a PNG with something on it"
    );
}
