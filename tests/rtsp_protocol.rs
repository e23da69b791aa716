//! RTSP/RTP protocol behaviour checked with a raw client: status codes,
//! headers, RTP/RTCP on the wire over UDP and interleaved TCP.

// Tests and benches are the I/O side: clocks, sockets and files (clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use rtpcast::config::Limit;
use tokio::net::UdpSocket;

/// Receives until nothing has arrived for `idle` (at most `limit`).
async fn drain(socket: &UdpSocket, idle: Duration, limit: Duration) -> Vec<Datagram> {
    let deadline = Instant::now() + limit;
    let mut all = Vec::new();
    loop {
        let got = recv_until(socket, idle, |_| true).await;
        if got.is_empty() || Instant::now() >= deadline {
            all.extend(got);
            return all;
        }
        all.extend(got);
    }
}

#[tokio::test]
async fn options_lists_get_parameter() {
    let (server, mut client) = serve_and_connect().await;
    let response = client
        .request("OPTIONS", &url(&server, "sample"), &[])
        .await;
    assert_eq!(response.status, 200, "{}", response.head);
    let public: Vec<String> = response
        .expect_header("Public")
        .split(',')
        .map(|m| m.trim().to_string())
        .collect();
    for method in [
        "DESCRIBE",
        "SETUP",
        "PLAY",
        "PAUSE",
        "TEARDOWN",
        "GET_PARAMETER",
    ] {
        assert!(
            public.iter().any(|m| m == method),
            "Public lacks {method}: {public:?}"
        );
    }
}

#[tokio::test]
async fn describe_returns_sdp_and_content_base() {
    let (server, mut client) = serve_and_connect().await;
    for path in ["sample", ""] {
        let request_url = url(&server, path);
        let response = client
            .request("DESCRIBE", &request_url, &[("Accept", "application/sdp")])
            .await;
        assert_eq!(response.status, 200, "{}", response.head);
        assert_eq!(response.expect_header("Content-Type"), "application/sdp");
        assert_eq!(
            response.expect_header("Content-Base"),
            format!("{}/", request_url.trim_end_matches('/'))
        );
        let sdp = response.body_text();
        let lines: Vec<&str> = sdp.lines().map(str::trim_end).collect();
        assert_eq!(lines.first(), Some(&"v=0"), "SDP:\n{sdp}");
        let video = lines
            .iter()
            .position(|l| l.starts_with("m=video "))
            .expect("m=video");
        let audio = lines
            .iter()
            .position(|l| l.starts_with("m=audio "))
            .expect("m=audio");
        assert!(lines[video].ends_with("RTP/AVP 96"), "{}", lines[video]);
        assert!(lines[audio].ends_with("RTP/AVP 97"), "{}", lines[audio]);
        let (video_lines, audio_lines) = if video < audio {
            (&lines[video..audio], &lines[audio..])
        } else {
            (&lines[video..], &lines[audio..video])
        };
        assert!(
            video_lines.contains(&"a=rtpmap:96 H264/90000"),
            "SDP:\n{sdp}"
        );
        assert!(video_lines.contains(&"a=control:trackID=0"), "SDP:\n{sdp}");
        assert!(
            video_lines.iter().any(|l| l.starts_with("a=fmtp:96 ")
                && l.contains("packetization-mode=1")
                && l.contains("sprop-parameter-sets=")),
            "SDP:\n{sdp}"
        );
        assert!(
            audio_lines
                .iter()
                .any(|l| l.eq_ignore_ascii_case("a=rtpmap:97 mpeg4-generic/48000/2")),
            "SDP:\n{sdp}"
        );
        assert!(audio_lines.contains(&"a=control:trackID=1"), "SDP:\n{sdp}");
        assert!(
            lines.iter().any(|l| l.starts_with("a=range:npt=0-10")),
            "SDP has no 10 s range:\n{sdp}"
        );
    }
}

#[tokio::test]
async fn unknown_path_is_404() {
    let (server, mut client) = serve_and_connect().await;
    let response = client
        .request("DESCRIBE", &url(&server, "no/such/file"), &[])
        .await;
    assert_eq!(response.status, 404, "{}", response.head);
    let (rtp, _rtcp) = udp_pair().await;
    let response = client
        .request(
            "SETUP",
            &url(&server, "missing/trackID=0"),
            &[("Transport", &udp_transport(&rtp))],
        )
        .await;
    assert_eq!(response.status, 404, "{}", response.head);
}

#[tokio::test]
async fn pause_before_play_is_455() {
    let mut udp = UdpSession::setup().await;
    let response = udp.control.request("PAUSE").await;
    assert_eq!(response.status, 455, "{}", response.head);
    // The session is still usable.
    udp.control.request_ok("PLAY").await;
}

#[tokio::test]
async fn unknown_or_foreign_session_is_454() {
    let (server, mut client) = serve_and_connect().await;
    let base = url(&server, "sample");
    let response = client
        .request("PLAY", &base, &[("Session", "0123456789ABCDEF")])
        .await;
    assert_eq!(response.status, 454, "{}", response.head);

    // An interleaved session belongs to its connection alone.
    let session = client
        .setup(&base, 0, "RTP/AVP/TCP;unicast;interleaved=0-1", None)
        .await
        .session_id();
    let mut other = RtspClient::connect(server.rtsp_addr).await;
    for method in ["PLAY", "TEARDOWN"] {
        let response = other.request(method, &base, &[("Session", &session)]).await;
        assert_eq!(
            response.status, 454,
            "{method} of a foreign session:\n{}",
            response.head
        );
    }
    // The owner's PLAY.
    client.session_ok("PLAY", &base, &session).await;
}

#[tokio::test]
async fn multicast_only_transport_is_461() {
    let (server, mut client) = serve_and_connect().await;
    let response = client
        .request(
            "SETUP",
            &url(&server, "sample/trackID=0"),
            &[("Transport", "RTP/AVP;multicast")],
        )
        .await;
    assert_eq!(response.status, 461, "{}", response.head);
    assert!(
        response.header("Session").is_none(),
        "461 created a session:\n{}",
        response.head
    );
}

#[tokio::test]
async fn udp_play_delivers_rtp_and_sender_reports() {
    let server = start_server().await;
    let server_rtp = std::net::SocketAddr::from(([127, 0, 0, 1], server.rtp_port));
    let server_rtcp = std::net::SocketAddr::from(([127, 0, 0, 1], server.rtp_port + 1));
    let mut client = RtspClient::connect(server.rtsp_addr).await;
    let (video, video_rtcp) = udp_pair().await;
    let (audio, audio_rtcp) = udp_pair().await;
    let base = url(&server, "sample");
    let setup = client.setup(&base, 0, &udp_transport(&video), None).await;
    let transport = setup.expect_header("Transport");
    let client_port = video.local_addr().unwrap().port();
    assert!(
        transport.contains(&format!("client_port={}-{}", client_port, client_port + 1)),
        "Transport reply: {transport}"
    );
    assert!(
        transport.contains(&format!(
            "server_port={}-{}",
            server.rtp_port,
            server.rtp_port + 1
        )),
        "Transport reply: {transport}"
    );
    let session_header = setup.expect_header("Session").to_string();
    assert!(
        session_header.ends_with(";timeout=60"),
        "Session header: {session_header}"
    );
    let session = setup.session_id();
    assert_eq!(session.len(), 16, "session id {session:?}");
    assert!(
        session.chars().all(|c| c.is_ascii_hexdigit()),
        "session id {session:?}"
    );
    client
        .setup(&base, 1, &udp_transport(&audio), Some(&session))
        .await;

    let play = client.session_ok("PLAY", &base, &session).await;
    let played = Instant::now();
    let (start, end) = play.npt_range();
    assert_eq!(start, 0.0, "{}", play.head);
    // Open-ended: the clip plays to its end (duration is in the SDP).
    assert_eq!(end, None, "{}", play.head);
    let video_info = play.rtp_info_for("trackID=0");
    let audio_info = play.rtp_info_for("trackID=1");

    let window = Duration::from_secs(2);
    let (video_rx, audio_rx, video_rtcp_rx, audio_rtcp_rx) = tokio::join!(
        recv_for(&video, window),
        recv_for(&audio, window),
        recv_for(&video_rtcp, window),
        recv_for(&audio_rtcp, window),
    );
    client.session_ok("TEARDOWN", &base, &session).await;

    for (name, received, from) in [
        ("video RTP", &video_rx, server_rtp),
        ("audio RTP", &audio_rx, server_rtp),
        ("video RTCP", &video_rtcp_rx, server_rtcp),
        ("audio RTCP", &audio_rtcp_rx, server_rtcp),
    ] {
        assert!(!received.is_empty(), "no {name} within {window:?} of PLAY");
        for datagram in received.iter() {
            assert_eq!(datagram.from, from, "{name} from the wrong address");
        }
    }

    // Video: ~2 s of 30 fps, consecutive, one marker per frame.
    let video_headers = rtp_headers(&video_rx);
    assert_consecutive(&video_headers, "video");
    let first = video_headers[0];
    assert_eq!(
        Some(first.seq),
        video_info.seq,
        "first video seq vs RTP-Info"
    );
    assert_eq!(
        Some(first.timestamp),
        video_info.rtptime,
        "first video timestamp vs RTP-Info"
    );
    assert!(video_headers
        .iter()
        .all(|h| h.payload_type == 96 && h.ssrc == first.ssrc));
    for pair in video_headers.windows(2) {
        if pair[0].timestamp != pair[1].timestamp {
            assert!(
                pair[0].marker,
                "frame ending at seq {} has no marker bit",
                pair[0].seq
            );
        } else {
            assert!(
                !pair[0].marker,
                "marker bit inside a frame at seq {}",
                pair[0].seq
            );
        }
    }
    let mut frames: Vec<u32> = video_headers.iter().map(|h| h.timestamp).collect();
    frames.dedup();
    assert!(
        (50..=70).contains(&frames.len()),
        "{} video frames in 2 s",
        frames.len()
    );
    let markers = video_headers.iter().filter(|h| h.marker).count();
    assert!(
        markers + 1 >= frames.len() && markers <= frames.len(),
        "{markers} markers for {} frames",
        frames.len()
    );
    for ts in &frames {
        let offset = ts_delta(first.timestamp, *ts);
        assert!(
            offset >= 0 && offset % VIDEO_FRAME_TICKS as i32 == 0,
            "video timestamp offset {offset}"
        );
    }

    // Audio: consecutive, timestamps advance in whole AAC frames.
    let audio_headers = rtp_headers(&audio_rx);
    assert_consecutive(&audio_headers, "audio");
    assert_eq!(
        Some(audio_headers[0].seq),
        audio_info.seq,
        "first audio seq vs RTP-Info"
    );
    let audio_start = audio_info.rtptime.expect("audio rtptime");
    assert!(
        ts_delta(audio_start, audio_headers[0].timestamp).unsigned_abs() <= AAC_FRAME_TICKS,
        "first audio timestamp {} vs rtptime {audio_start}",
        audio_headers[0].timestamp
    );
    for pair in audio_headers.windows(2) {
        let step = ts_delta(pair[0].timestamp, pair[1].timestamp);
        assert!(
            step > 0 && step % AAC_FRAME_TICKS as i32 == 0,
            "audio timestamp step {step}"
        );
        assert_eq!(pair[1].payload_type, 97);
    }
    assert_ne!(audio_headers[0].ssrc, first.ssrc, "tracks share an SSRC");

    // An SR per track right after PLAY, from that track's SSRC.
    for (name, received, ssrc) in [
        ("video", &video_rtcp_rx, first.ssrc),
        ("audio", &audio_rtcp_rx, audio_headers[0].ssrc),
    ] {
        assert_sender_report(&received[0].data, ssrc, name);
        let delay = received[0].at.duration_since(played);
        assert!(
            delay < Duration::from_secs(1),
            "{name} SR only after {delay:?}"
        );
    }
}

#[tokio::test]
async fn seek_starts_at_range_with_matching_timestamps() {
    let mut udp = UdpSession::setup().await;
    let play = udp
        .control
        .request_with("PLAY", &[("Range", "npt=5-")])
        .await;
    let played = Instant::now();
    assert_eq!(play.status, 200, "{}", play.head);
    let (start, end) = play.npt_range();
    assert!(
        (4.0..=5.0).contains(&start),
        "Range start {start} for npt=5-"
    );
    assert_eq!(end, None, "{}", play.head);
    let info = play.rtp_info_for("trackID=0");
    let rtptime = info.rtptime.expect("rtptime");

    // Play to the end: BYE on the video RTCP port.
    let limit = Duration::from_secs(9);
    let (rtp_rx, rtcp_rx) = tokio::join!(
        recv_for(
            &udp.video,
            Duration::from_secs_f64(SAMPLE_DURATION_SECS - start + 1.5)
        ),
        recv_until(&udp.video_rtcp, limit, |d| rtcp_packets(&d.data)
            .iter()
            .any(|p| p.packet_type == 203)),
    );
    let headers = rtp_headers(&rtp_rx);
    assert!(!headers.is_empty(), "no video after seek");
    assert_consecutive(&headers, "video after seek");
    assert_eq!(Some(headers[0].seq), info.seq, "first seq vs RTP-Info");
    assert_eq!(
        headers[0].timestamp, rtptime,
        "first video timestamp vs RTP-Info rtptime"
    );
    let mut offsets: Vec<i32> = headers
        .iter()
        .map(|h| ts_delta(rtptime, h.timestamp))
        .collect();
    offsets.sort_unstable();
    offsets.dedup();
    let expected: Vec<i32> = (0..offsets.len() as i32)
        .map(|i| i * VIDEO_FRAME_TICKS as i32)
        .collect();
    assert_eq!(
        offsets, expected,
        "video timestamps after seek are not rtptime + n*3000"
    );
    let expected_frames = ((SAMPLE_DURATION_SECS - start) * 30.0).round() as usize;
    assert!(
        offsets.len().abs_diff(expected_frames) <= 1,
        "{} frames after seek to {start}, expected {expected_frames}",
        offsets.len()
    );
    let bye = rtcp_rx.last().expect("no RTCP at all after seek");
    assert!(
        rtcp_packets(&bye.data).iter().any(|p| p.packet_type == 203),
        "no BYE at end of file"
    );
    let took = bye.at.duration_since(played).as_secs_f64();
    let expected_secs = SAMPLE_DURATION_SECS - start;
    assert!(
        (took - expected_secs).abs() < 1.0,
        "remaining {expected_secs:.2} s played in {took:.2} s"
    );
}

/// NAL unit type an H.264 RTP payload starts (RFC 6184 §5.3): the type of a
/// single NAL unit packet, or of the unit an FU-A (§5.8) starts; `None` for
/// an FU-A continuing a unit.
fn starting_nal_type(payload: &[u8]) -> Option<u8> {
    const FU_A: u8 = 28;
    let indicator = payload.first().expect("empty H.264 payload") & 0x1f;
    if indicator != FU_A {
        return Some(indicator);
    }
    let fu_header = payload.get(1).expect("FU-A without a header");
    (fu_header & 0x80 != 0).then_some(fu_header & 0x1f)
}

/// The sample has a keyframe at every whole second, so a seek to 5.5 s
/// shows whether the server backs up to the keyframe before (5.0 s) and
/// starts the stream with what a decoder needs there: SPS, PPS, IDR.
#[tokio::test]
async fn seek_between_keyframes_starts_at_the_keyframe_before() {
    let mut udp = UdpSession::setup().await;
    let play = udp
        .control
        .request_with("PLAY", &[("Range", "npt=5.5-")])
        .await;
    assert_eq!(play.status, 200, "{}", play.head);
    assert_eq!(play.expect_header("Range"), "npt=5.000-", "{}", play.head);
    let info = play.rtp_info_for("trackID=0");

    // Everything up to the end of the file: 5 s of media after the
    // keyframe, then silence; generous limits for a loaded machine.
    let (rtp_rx, rtcp_rx) = tokio::join!(
        drain(&udp.video, Duration::from_secs(3), Duration::from_secs(20)),
        recv_until(&udp.video_rtcp, Duration::from_secs(20), |d| {
            rtcp_packets(&d.data).iter().any(|p| p.packet_type == 203)
        }),
    );
    assert!(
        rtcp_types(&rtcp_rx).contains(&203),
        "no BYE at the end of the file"
    );
    let headers = rtp_headers(&rtp_rx);
    assert_consecutive(&headers, "video after seek");
    assert_eq!(Some(headers[0].seq), info.seq, "first seq vs RTP-Info");
    assert_eq!(Some(headers[0].timestamp), info.rtptime);

    // NAL units begun in the first access unit (one RTP timestamp).
    let first_unit: Vec<u8> = rtp_rx
        .iter()
        .take_while(|d| rtp_header(&d.data).timestamp == headers[0].timestamp)
        .filter_map(|d| starting_nal_type(&d.data[12..]))
        .collect();
    assert!(
        first_unit.len() >= 3
            && first_unit[..2] == [7, 8]
            && first_unit[2..].iter().all(|&t| t == 5),
        "NAL units of the first access unit after the seek: {first_unit:?} \
         (want SPS 7, PPS 8, then IDR slices 5)"
    );

    // Every frame from 5.0 s to the end: 150 distinct timestamps.
    let mut frames: Vec<u32> = headers.iter().map(|h| h.timestamp).collect();
    frames.sort_unstable();
    frames.dedup();
    assert_eq!(frames.len(), 150, "video frames from 5.0 s to the end");
}

#[tokio::test]
async fn pause_and_resume_continue_the_stream() {
    // Everything stays bound (and open) to the end of the test.
    let UdpSession {
        server: _server,
        mut control,
        video,
        video_rtcp: _video_rtcp,
        audio,
        audio_rtcp: _audio_rtcp,
    } = UdpSession::playing().await;
    let two_secs = Duration::from_secs(2);
    let (video_before, audio_before) =
        tokio::join!(recv_for(&video, two_secs), recv_for(&audio, two_secs));

    control.request_ok("PAUSE").await;
    let idle = Duration::from_millis(200);
    let (video_drained, audio_drained) = tokio::join!(
        drain(&video, idle, Duration::from_secs(1)),
        drain(&audio, idle, Duration::from_secs(1))
    );
    let one_sec = Duration::from_secs(1);
    let (video_paused, audio_paused) =
        tokio::join!(recv_for(&video, one_sec), recv_for(&audio, one_sec));
    assert!(
        video_paused.is_empty() && audio_paused.is_empty(),
        "{} video and {} audio packets arrived while paused",
        video_paused.len(),
        audio_paused.len()
    );

    let resume = control.request_ok("PLAY").await;
    let (start, _) = resume.npt_range();
    assert!(
        (1.5..=3.0).contains(&start),
        "resumed at npt {start} after ~2 s of play"
    );
    let secs = Duration::from_millis(1500);
    let (video_after, audio_after) = tokio::join!(recv_for(&video, secs), recv_for(&audio, secs));

    for (name, before, drained, after, control) in [
        (
            "video",
            &video_before,
            &video_drained,
            &video_after,
            "trackID=0",
        ),
        (
            "audio",
            &audio_before,
            &audio_drained,
            &audio_after,
            "trackID=1",
        ),
    ] {
        let mut before = rtp_headers(before);
        before.extend(rtp_headers(drained));
        let after = rtp_headers(after);
        assert!(
            !before.is_empty() && !after.is_empty(),
            "{name}: nothing before or after the pause"
        );
        assert_consecutive(&before, name);
        assert_consecutive(&after, name);
        let last = *before.last().unwrap();
        assert_eq!(
            after[0].seq,
            last.seq.wrapping_add(1),
            "{name}: sequence does not continue across PAUSE"
        );
        assert_eq!(
            Some(after[0].seq),
            resume.rtp_info_for(control).seq,
            "{name}: RTP-Info seq on resume"
        );
        assert_eq!(after[0].ssrc, last.ssrc, "{name}: SSRC changed on resume");
        let before_ts: std::collections::HashSet<u32> =
            before.iter().map(|h| h.timestamp).collect();
        let resent: Vec<u32> = after
            .iter()
            .map(|h| h.timestamp)
            .filter(|ts| before_ts.contains(ts))
            .collect();
        assert!(
            resent.is_empty(),
            "{name}: timestamps sent again after resume: {resent:?}"
        );
        if name == "audio" {
            assert_eq!(
                ts_delta(last.timestamp, after[0].timestamp),
                AAC_FRAME_TICKS as i32,
                "audio timeline does not continue across PAUSE"
            );
        } else {
            // With B-frames, all frames up to the last timestamp sent before
            // the pause must be there once resumed, none missing.
            let origin = before[0].timestamp;
            let max_before = before
                .iter()
                .map(|h| ts_delta(origin, h.timestamp))
                .max()
                .unwrap();
            let all: std::collections::HashSet<i32> = before
                .iter()
                .chain(after.iter())
                .map(|h| ts_delta(origin, h.timestamp))
                .collect();
            assert!(
                all.iter().all(|t| *t >= 0),
                "video timestamp before the first frame"
            );
            for frame in 0..=max_before / VIDEO_FRAME_TICKS as i32 {
                assert!(
                    all.contains(&(frame * VIDEO_FRAME_TICKS as i32)),
                    "video frame {frame} missing across PAUSE/PLAY"
                );
            }
        }
    }
}

#[tokio::test]
async fn teardown_stops_packets_and_sends_bye() {
    let UdpSession {
        server: _server,
        mut control,
        video,
        video_rtcp,
        audio,
        audio_rtcp,
    } = UdpSession::playing().await;
    let (video_rx, audio_rx) = tokio::join!(
        recv_for(&video, Duration::from_secs(1)),
        recv_for(&audio, Duration::from_secs(1))
    );
    assert!(
        !video_rx.is_empty() && !audio_rx.is_empty(),
        "no media before TEARDOWN"
    );
    let video_ssrc = rtp_header(&video_rx[0].data).ssrc;
    let audio_ssrc = rtp_header(&audio_rx[0].data).ssrc;

    control.request_ok("TEARDOWN").await;
    let window = Duration::from_millis(1200);
    let silence = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = drain(
            &video,
            Duration::from_millis(50),
            Duration::from_millis(100),
        )
        .await;
        let _ = drain(
            &audio,
            Duration::from_millis(50),
            Duration::from_millis(100),
        )
        .await;
        tokio::join!(
            recv_for(&video, Duration::from_secs(1)),
            recv_for(&audio, Duration::from_secs(1))
        )
    };
    let ((video_late, audio_late), video_rtcp_rx, audio_rtcp_rx) = tokio::join!(
        silence,
        recv_for(&video_rtcp, window),
        recv_for(&audio_rtcp, window)
    );
    assert!(
        video_late.is_empty() && audio_late.is_empty(),
        "{} video / {} audio RTP packets more than 200 ms after TEARDOWN",
        video_late.len(),
        audio_late.len()
    );
    assert_one_bye(&video_rtcp_rx, video_ssrc, "video BYE after TEARDOWN");
    assert_one_bye(&audio_rtcp_rx, audio_ssrc, "audio BYE after TEARDOWN");

    let response = control.request("PLAY").await;
    assert_eq!(
        response.status, 454,
        "PLAY after TEARDOWN:\n{}",
        response.head
    );
}

#[tokio::test]
async fn silent_session_times_out() {
    let server = start_server_with(|c| c.session_timeout_secs = 2).await;
    let mut client = RtspClient::connect(server.rtsp_addr).await;
    let (video, video_rtcp) = udp_pair().await;
    let (audio, _audio_rtcp) = udp_pair().await;
    let base = url(&server, "sample");
    let setup = client.setup(&base, 0, &udp_transport(&video), None).await;
    assert!(
        setup.expect_header("Session").ends_with(";timeout=2"),
        "{}",
        setup.head
    );
    let session = setup.session_id();
    client
        .setup(&base, 1, &udp_transport(&audio), Some(&session))
        .await;
    client.session_ok("PLAY", &base, &session).await;
    let started = Instant::now();
    let video_ssrc = {
        let first = recv_for(&video, Duration::from_millis(500)).await;
        assert!(!first.is_empty(), "no RTP after PLAY");
        rtp_header(&first[0].data).ssrc
    };
    // Stay silent (no RTCP, no RTSP) well past the 2 s timeout.
    let rtcp_rx = recv_for(
        &video_rtcp,
        Duration::from_secs(4).saturating_sub(started.elapsed()),
    )
    .await;
    let _ = drain(&video, Duration::from_millis(300), Duration::from_secs(1)).await;
    let late = recv_for(&video, Duration::from_secs(1)).await;
    assert!(
        late.is_empty(),
        "{} RTP packets still arriving {:?} after PLAY with a 2 s session timeout",
        late.len(),
        started.elapsed()
    );
    assert_one_bye(&rtcp_rx, video_ssrc, "BYE on timeout");
    let response = client
        .request("GET_PARAMETER", &base, &[("Session", &session)])
        .await;
    assert_eq!(
        response.status, 454,
        "request on an expired session:\n{}",
        response.head
    );
}

#[tokio::test]
async fn garbage_on_another_connection_does_not_disturb_playback() {
    let mut udp = UdpSession::playing().await;
    let rtsp_addr = udp.server.rtsp_addr;
    let garbage = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        let mut answers = Vec::new();
        for junk in [&b"\x00\x01GARBAGE\r\n\r\n"[..], b"NOT RTSP AT ALL\r\n\r\n"] {
            let mut rogue = RtspClient::connect(rtsp_addr).await;
            rogue.send_raw(junk).await;
            let answer = match rogue.read_message().await {
                Some(Incoming::Response(response)) => response,
                other => panic!("garbage {junk:?} answered with {other:?}"),
            };
            let closed = rogue.closed_within(Duration::from_secs(2)).await;
            answers.push((String::from_utf8_lossy(junk).into_owned(), answer, closed));
        }
        answers
    };
    let (received, answers) = tokio::join!(recv_for(&udp.video, Duration::from_secs(3)), garbage);
    for (junk, answer, closed) in answers {
        assert_eq!(answer.status, 400, "answer to {junk:?}:\n{}", answer.head);
        assert!(closed, "connection stays open after {junk:?}");
    }
    assert!(
        received.len() > 50,
        "only {} video packets in 3 s",
        received.len()
    );
    assert_consecutive(&rtp_headers(&received), "video");
    let worst = received
        .windows(2)
        .map(|w| w[1].at.duration_since(w[0].at))
        .max()
        .unwrap();
    assert!(
        worst < Duration::from_millis(500),
        "gap of {worst:?} in the video stream"
    );
    // The first client's control connection still works.
    udp.control.request_ok("GET_PARAMETER").await;
}

#[tokio::test]
async fn interleaved_tcp_mixes_media_and_responses() {
    let (server, mut client) = serve_and_connect().await;
    let base = url(&server, "sample");
    let mut session = None;
    for (track, channels) in [(0, "interleaved=0-1"), (1, "interleaved=2-3")] {
        let transport = format!("RTP/AVP/TCP;unicast;{channels}");
        let setup = client
            .setup(&base, track, &transport, session.as_deref())
            .await;
        assert!(
            setup.expect_header("Transport").contains(channels),
            "{}",
            setup.head
        );
        session.get_or_insert_with(|| setup.session_id());
    }
    let session = session.unwrap();
    let play = client.session_ok("PLAY", &base, &session).await;
    let video_info = play.rtp_info_for("trackID=0");

    let mut frames: Vec<(u8, Vec<u8>)> = std::mem::take(&mut client.skipped_frames);
    let started = Instant::now();
    let mut keepalive: Option<(u32, usize)> = None;
    let mut keepalive_answer = None;
    while started.elapsed() < Duration::from_millis(2500) {
        if keepalive.is_none() && started.elapsed() > Duration::from_secs(1) {
            let cseq = client
                .send_request("GET_PARAMETER", &base, &[("Session", &session)])
                .await;
            keepalive = Some((cseq, frames.len()));
        }
        match client
            .read_message()
            .await
            .expect("connection closed while playing")
        {
            Incoming::Interleaved { channel, payload } => frames.push((channel, payload)),
            Incoming::Response(response) => {
                let (cseq, _) = keepalive.expect("response without a request");
                assert_eq!(response.header("CSeq"), Some(cseq.to_string().as_str()));
                keepalive_answer = Some((response, frames.len()));
            }
        }
    }
    let (answer, frames_at_answer) =
        keepalive_answer.expect("no answer to GET_PARAMETER mid-stream");
    assert_eq!(answer.status, 200, "{}", answer.head);
    assert!(
        frames_at_answer < frames.len(),
        "no media after the GET_PARAMETER answer: not mixed"
    );

    let channels: std::collections::BTreeSet<u8> = frames.iter().map(|(c, _)| *c).collect();
    assert_eq!(
        channels,
        [0, 1, 2, 3].into_iter().collect(),
        "interleaved channels used"
    );
    let rtp_on = |channel: u8| -> Vec<RtpHeader> {
        frames
            .iter()
            .filter(|(c, _)| *c == channel)
            .map(|(_, p)| rtp_header(p))
            .collect()
    };
    let video = rtp_on(0);
    assert_consecutive(&video, "interleaved video");
    assert_eq!(Some(video[0].seq), video_info.seq);
    assert_eq!(Some(video[0].timestamp), video_info.rtptime);
    assert!(video.iter().all(|h| h.payload_type == 96));
    let markers = video.iter().filter(|h| h.marker).count();
    assert!(
        (60..=80).contains(&markers),
        "{markers} marked video packets in 2.5 s"
    );
    let audio = rtp_on(2);
    assert_consecutive(&audio, "interleaved audio");
    assert!(audio.iter().all(|h| h.payload_type == 97));
    for (channel, ssrc) in [(1u8, video[0].ssrc), (3, audio[0].ssrc)] {
        let (_, first_rtcp) = frames.iter().find(|(c, _)| *c == channel).unwrap();
        assert_sender_report(first_rtcp, ssrc, &format!("channel {channel}"));
    }
    client.session_ok("TEARDOWN", &base, &session).await;
}

#[tokio::test]
async fn connections_over_the_per_address_limit_get_503() {
    const LIMIT: usize = 8;
    let server = start_server_with(|config| {
        config.max_connections_per_address = Limit::at_most(LIMIT);
    })
    .await;
    let mut open = Vec::new();
    for _ in 0..LIMIT {
        let mut client = RtspClient::connect(server.rtsp_addr).await;
        let options = client
            .request("OPTIONS", &url(&server, "sample"), &[])
            .await;
        assert_eq!(options.status, 200);
        open.push(client);
    }
    let mut refused = tokio::net::TcpStream::connect(server.rtsp_addr)
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read_to_string(&mut refused, &mut answer),
    )
    .await
    .expect("answered and closed")
    .unwrap();
    assert!(answer.starts_with("RTSP/1.0 503 "), "{answer}");
    drop(open.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = RtspClient::connect(server.rtsp_addr).await;
    let options = again.request("OPTIONS", &url(&server, "sample"), &[]).await;
    assert_eq!(options.status, 200, "a freed slot is usable again");
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let (server, mut client) = serve_and_connect().await;
    let base = url(&server, "sample");
    let pipelined = format!(
        "OPTIONS {base} RTSP/1.0\r\nCSeq: 11\r\n\r\n\
         DESCRIBE {base} RTSP/1.0\r\nCSeq: 12\r\nAccept: application/sdp\r\n\r\n\
         DESCRIBE {base}/nothing RTSP/1.0\r\nCSeq: 13\r\n\r\n"
    );
    client.send_raw(pipelined.as_bytes()).await;
    let options = client.response_for(11).await;
    assert!(options.expect_header("Public").contains("GET_PARAMETER"));
    let describe = client.response_for(12).await;
    assert_eq!(describe.status, 200);
    assert!(describe.body_text().contains("m=audio"));
    assert_eq!(client.response_for(13).await.status, 404);
}

#[tokio::test]
async fn udp_session_outlives_its_connection_and_frees_the_slot() {
    const LIMIT: usize = 4;
    let mut udp = UdpSession::setup_with(|config| {
        config.max_connections_per_address = Limit::at_most(LIMIT);
    })
    .await;
    udp.control.request_ok("PLAY").await;
    let UdpSession {
        server,
        control,
        video,
        ..
    } = udp;
    let SessionControl {
        client,
        session,
        base,
    } = control;
    drop(client);
    let after_close = recv_for(&video, Duration::from_millis(500)).await;
    assert!(
        after_close.len() > 20,
        "UDP media continues after the RTSP connection closes ({} packets)",
        after_close.len()
    );
    // Every per-address connection slot is free again: the closed
    // connection's slot is not held by its still-playing session.
    let mut open = Vec::new();
    for _ in 0..LIMIT {
        let mut client = RtspClient::connect(server.rtsp_addr).await;
        assert_eq!(client.request("OPTIONS", &base, &[]).await.status, 200);
        open.push(client);
    }
    // The same client, on a new connection, still controls its session.
    let teardown = open[0]
        .request("TEARDOWN", &base, &[("Session", &session)])
        .await;
    assert_eq!(teardown.status, 200, "{}", teardown.head);
    drain(&video, Duration::from_millis(200), Duration::from_secs(2)).await;
    assert!(recv_for(&video, Duration::from_millis(500))
        .await
        .is_empty());
}

#[tokio::test]
async fn shutdown_ends_every_session_with_bye() {
    let UdpSession {
        server,
        video,
        video_rtcp,
        ..
    } = UdpSession::playing().await;
    assert!(!recv_for(&video, Duration::from_millis(300))
        .await
        .is_empty());
    server.shutdown();
    let reports = recv_until(&video_rtcp, Duration::from_secs(2), |d| {
        rtcp_packets(&d.data).iter().any(|p| p.packet_type == 203)
    })
    .await;
    assert!(
        rtcp_types(&reports).contains(&203),
        "BYE at shutdown: {:?}",
        rtcp_types(&reports)
    );
    drain(&video, Duration::from_millis(200), Duration::from_secs(2)).await;
    assert!(recv_for(&video, Duration::from_millis(500))
        .await
        .is_empty());
}

/// RFC 2326 §4: lines may end in CRLF, LF or CR alone; a client using
/// either of the bare forms is answered like any other.
#[tokio::test]
async fn requests_with_bare_lf_or_bare_cr_line_ends_are_answered() {
    let (server, mut client) = serve_and_connect().await;
    let base = url(&server, "sample");
    client
        .send_raw(format!("OPTIONS {base} RTSP/1.0\nCSeq: 31\n\n").as_bytes())
        .await;
    let options = client.response_for(31).await;
    assert_eq!(options.status, 200, "{}", options.head);
    assert!(options.expect_header("Public").contains("DESCRIBE"));
    client
        .send_raw(
            format!("DESCRIBE {base} RTSP/1.0\rCSeq: 32\rAccept: application/sdp\r\r").as_bytes(),
        )
        .await;
    let describe = client.response_for(32).await;
    assert_eq!(describe.status, 200, "{}", describe.head);
    assert!(describe.body_text().contains("m=video"));
    let options = client.request("OPTIONS", &base, &[]).await;
    assert_eq!(options.status, 200, "CRLF still works after bare line ends");
}

/// The request shapes of clients that append the track control after the
/// presentation URL's query, write keywords in capitals, and ask for
/// another Scale: the stream plays at normal rate and says so.
#[tokio::test]
async fn query_track_urls_capital_npt_and_scale_play_at_normal_rate() {
    let (server, mut client) = serve_and_connect().await;
    let presentation = format!("{}?token=x", url(&server, "sample"));
    let (video, _video_rtcp) = udp_pair().await;
    let (audio, _audio_rtcp) = udp_pair().await;
    let session = client
        .setup(&presentation, 0, &udp_transport(&video), None)
        .await
        .session_id();
    client
        .setup(&presentation, 1, &udp_transport(&audio), Some(&session))
        .await;
    let play = client
        .request_ok(
            "PLAY",
            &presentation,
            &[("Session", &session), ("Range", "NPT=0-"), ("Scale", "2.0")],
        )
        .await;
    assert_eq!(play.header("Scale"), Some("1"), "{}", play.head);
    assert_eq!(play.npt_range(), (0.0, None));
    let base = url(&server, "sample");
    for track in ["trackID=0", "trackID=1"] {
        let info = play.rtp_info_for(track);
        assert_eq!(info.url, format!("{base}/{track}"), "no query in RTP-Info");
    }
    let played = Instant::now();
    let packets = recv_for(&video, Duration::from_secs(2)).await;
    let frames = rtp_headers(&packets).iter().filter(|h| h.marker).count();
    // 30 fps at 1x: about 60 frames in 2 s; at Scale 2 it would be 120.
    assert!(
        (40..=75).contains(&frames),
        "{frames} video frames in {:?}",
        played.elapsed()
    );
    assert!(!recv_for(&audio, Duration::from_millis(300))
        .await
        .is_empty());
}

/// `//sample/...` and `/sample/...` are one presentation: a session set up
/// with both spellings is one session.
#[tokio::test]
async fn doubled_slashes_join_the_same_session() {
    let (server, mut client) = serve_and_connect().await;
    let (video, _video_rtcp) = udp_pair().await;
    let (audio, _audio_rtcp) = udp_pair().await;
    let doubled = format!("rtsp://{}//sample/", server.rtsp_addr);
    let session = client
        .request_ok(
            "SETUP",
            &format!("{doubled}/trackID=0"),
            &[("Transport", &udp_transport(&video))],
        )
        .await
        .session_id();
    let base = url(&server, "sample");
    let audio_setup = client
        .setup(&base, 1, &udp_transport(&audio), Some(&session))
        .await;
    assert_eq!(audio_setup.session_id(), session);
    client.session_ok("PLAY", &doubled, &session).await;
    assert!(!recv_for(&audio, Duration::from_millis(500))
        .await
        .is_empty());
    client.session_ok("TEARDOWN", &base, &session).await;
}
