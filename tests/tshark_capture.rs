//! Captures what a UDP client (ffmpeg) exchanges with the server and lets
//! Wireshark judge it: two RTP streams, no loss, no sequence problems, and
//! exactly as many packets per SSRC as the server's final sender report
//! (RFC 3550 §6.4.1 sender's packet count) says it sent; then the RTP
//! timestamps against the payload types' clocks.
//!
//! Wireshark 4.0 (Debian 12) has no option giving a dynamic payload type a
//! clock rate: it takes one only from SDP that a setup protocol ties to the
//! RTP addresses, and its RTSP dissector does not yet tie the DESCRIBE's
//! SDP to the SETUP's ports (later versions do). The capture holds the
//! RTSP exchange, so a newer tshark does its own jitter analysis on it;
//! the timestamp checks against the 90 kHz and 48 kHz clocks are done here
//! from the fields tshark dissected.

// Tests and benches are the I/O side: clocks, sockets and files (clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::UnboundedReceiver;

/// RTP clock of the video payload type 96 (`a=rtpmap:96 H264/90000`).
const VIDEO_CLOCK_HZ: f64 = 90_000.0;
/// RTP clock of the audio payload type 97 (`a=rtpmap:97
/// mpeg4-generic/48000/2`).
const AUDIO_CLOCK_HZ: f64 = 48_000.0;
/// How long any step of driving tshark may take on a loaded machine.
const TSHARK_STEP: Duration = Duration::from_secs(30);
/// Payload of the datagrams sent before playing; its length tells it apart
/// in tshark's one-line summaries (`Len=…`).
const START_PROBE: &[u8] = b"start";
/// Payload of the datagrams sent after playing.
const END_PROBE: &[u8] = b"end-of-test";

/// One row of `tshark -z rtp,streams`.
#[derive(Debug)]
struct RtpStream {
    start: f64,
    end: f64,
    src_port: u16,
    ssrc: u32,
    payload: String,
    packets: u32,
    lost: String,
    problems: bool,
    row: String,
}

fn parse_streams(report: &str) -> Vec<RtpStream> {
    report
        .lines()
        .filter(|line| line.contains("127.0.0.1"))
        .map(|line| {
            let t: Vec<&str> = line.split_whitespace().collect();
            assert!(t.len() >= 17, "unexpected rtp,streams row: {line}");
            RtpStream {
                start: t[0].parse().expect("start time"),
                end: t[1].parse().expect("end time"),
                src_port: t[3].parse().expect("source port"),
                ssrc: parse_hex(t[6]),
                payload: t[7].to_string(),
                packets: t[8].parse().expect("packet count"),
                lost: format!("{} {}", t[9], t[10]),
                // Wireshark flags sequence errors, wrong timestamps and
                // the like with an "X" in the last column.
                problems: t.len() > 17,
                row: line.to_string(),
            }
        })
        .collect()
}

/// `0x…` as tshark prints SSRCs.
fn parse_hex(text: &str) -> u32 {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or_else(|| panic!("not hex: {text:?}"));
    u32::from_str_radix(digits, 16).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

/// Sends lines of `reader` to the returned channel until it ends.
fn line_channel(reader: impl AsyncRead + Unpin + Send + 'static) -> UnboundedReceiver<String> {
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(reader).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

/// Waits until a line satisfying `found` arrives, keeping every line read
/// in `seen` for failure messages.
async fn wait_for_line(
    lines: &mut UnboundedReceiver<String>,
    seen: &mut String,
    found: impl Fn(&str) -> bool,
) -> bool {
    while let Some(line) = lines.recv().await {
        seen.push_str(&line);
        seen.push('\n');
        if found(&line) {
            return true;
        }
    }
    false
}

/// Sends `probe` to `target` every 100 ms until tshark prints a summary
/// line for it on `stdout`: then the capture holds it and everything the
/// loopback carried after it is captured too.
async fn probe_until_captured(
    sender: &UdpSocket,
    target: u16,
    probe: &[u8],
    stdout: &mut UnboundedReceiver<String>,
    seen: &mut String,
) {
    let summary_end = format!("{target} Len={}", probe.len());
    let captured = wait_for_line(stdout, seen, |line| line.trim_end().ends_with(&summary_end));
    let sending = async {
        loop {
            sender
                .send_to(probe, ("127.0.0.1", target))
                .await
                .expect("sending a probe");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let result = tokio::time::timeout(TSHARK_STEP, async {
        tokio::select! {
            captured = captured => captured,
            () = sending => unreachable!("the probe loop never ends"),
        }
    })
    .await;
    assert!(
        matches!(result, Ok(true)),
        "tshark did not show a {} byte probe to port {target}; it said, last:\n{}",
        probe.len(),
        last_lines(seen, 30)
    );
}

/// The last `count` lines of `text`.
fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

/// `tshark -r capture` with the ports of this run decoded and `args`.
async fn read_capture(capture: &str, decode: &[String], args: &[&str]) -> String {
    let mut all = vec!["-n", "-r", capture];
    for rule in decode {
        all.extend(["-d", rule.as_str()]);
    }
    all.extend_from_slice(args);
    let run = run_tool("tshark", &all, TSHARK_STEP).await;
    assert!(
        run.status.success(),
        "tshark {all:?} failed:\n{}",
        run.stderr
    );
    run.stdout
}

/// RFC 3550 §6.4.1 interarrival jitter of `packets` (RTP timestamp,
/// arrival in seconds) on a `clock_hz` clock, and how far the last
/// packet's transit time drifted from the first's, both in seconds.
fn jitter_and_drift(packets: &[(u32, f64)], clock_hz: f64) -> (f64, f64) {
    let first_ts = packets[0].0;
    let transit = |&(ts, at): &(u32, f64)| at - f64::from(ts.wrapping_sub(first_ts)) / clock_hz;
    let mut jitter = 0.0;
    for pair in packets.windows(2) {
        let d = (transit(&pair[1]) - transit(&pair[0])).abs();
        jitter += (d - jitter) / 16.0;
    }
    let drift = transit(packets.last().unwrap()) - transit(&packets[0]);
    (jitter, drift)
}

/// Panics unless `packets` arrived in real time against their `clock_hz`
/// timestamps: transit times may wobble on a loaded machine but not drift
/// by a quarter of a second over the stream.
fn assert_real_time_on_clock(packets: &[(u32, f64)], clock_hz: f64, what: &str) {
    let (jitter, drift) = jitter_and_drift(packets, clock_hz);
    eprintln!(
        "{what}: interarrival jitter {:.2} ms, drift over the stream {:.1} ms",
        jitter * 1e3,
        drift * 1e3
    );
    assert!(
        drift.abs() < 0.25,
        "{what} arrived {drift:.3} s off its timestamps on the {clock_hz} Hz clock"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wireshark_counts_every_packet_the_server_sent() {
    if !require_tool("tshark") || !require_tool("dumpcap") || !require_tool("ffmpeg") {
        return;
    }
    let server = start_server().await;
    let rtsp_port = server.rtsp_addr.port();
    let rtcp_port = server.rtp_port + 1;
    let probe_target = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let probe_port = probe_target.local_addr().unwrap().port();
    let probe_sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("rtp.pcapng");
    let capture = capture.to_str().unwrap().to_string();
    // The RTSP exchange, the server's RTP and RTCP, and the probes. Not the
    // client's packets to the server's ports: its NAT-opening datagrams
    // would show up as a third RTP stream.
    let filter = format!(
        "tcp port {rtsp_port} or (udp and (src port {} or src port {rtcp_port})) \
         or (udp dst port {probe_port})",
        server.rtp_port
    );
    // -P prints a summary line per captured packet while writing the file,
    // -l flushes each one: that is how the probes are seen.
    let mut tshark = tokio::process::Command::new("tshark")
        .args(["-n", "-l", "-P", "-i", "lo", "-f", &filter, "-w", &capture])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawning tshark");
    let mut stdout = line_channel(tshark.stdout.take().unwrap());
    let mut stderr = line_channel(tshark.stderr.take().unwrap());
    let mut said = String::new();
    let capturing = tokio::time::timeout(
        TSHARK_STEP,
        wait_for_line(&mut stderr, &mut said, |line| line.contains("Capturing on")),
    )
    .await;
    assert!(
        matches!(capturing, Ok(true)),
        "tshark did not start capturing:\n{said}"
    );
    // "Capturing on" comes just before the capture loop starts: only a
    // captured probe shows that it runs.
    probe_until_captured(
        &probe_sender,
        probe_port,
        START_PROBE,
        &mut stdout,
        &mut said,
    )
    .await;

    let url = url(&server, "sample");
    run_ffmpeg(
        "ffmpeg",
        "udp",
        &[
            "-nostdin", "-i", &url, "-map", "0", "-c", "copy", "-f", "null", "-",
        ],
    )
    .await;

    // ffmpeg has its BYEs once it exits; a probe captured after them shows
    // that everything before it is in the file too.
    probe_until_captured(&probe_sender, probe_port, END_PROBE, &mut stdout, &mut said).await;
    let pid = tshark.id().expect("tshark still running") as libc::pid_t;
    // SAFETY: plain kill(2) on the child we spawned and still own.
    assert_eq!(
        unsafe { libc::kill(pid, libc::SIGINT) },
        0,
        "signalling tshark"
    );
    // Keep reading its output so it never blocks on a full pipe.
    let drain = async {
        while stdout.recv().await.is_some() {}
        while let Some(line) = stderr.recv().await {
            said.push_str(&line);
            said.push('\n');
        }
    };
    let (status, ()) = tokio::time::timeout(TSHARK_STEP, async {
        tokio::join!(
            async { tshark.wait().await.expect("waiting for tshark") },
            drain
        )
    })
    .await
    .expect("tshark did not stop");
    assert!(
        status.success(),
        "tshark: {status}\n{}",
        last_lines(&said, 30)
    );

    let decode = vec![
        format!("tcp.port=={rtsp_port},rtsp"),
        format!("udp.port=={},rtp", server.rtp_port),
        format!("udp.port=={rtcp_port},rtcp"),
    ];
    let report = read_capture(&capture, &decode, &["-q", "-z", "rtp,streams"]).await;
    eprintln!("{report}");
    let streams = parse_streams(&report);
    assert_eq!(streams.len(), 2, "RTP streams in the capture:\n{report}");
    for stream in &streams {
        assert_eq!(stream.src_port, server.rtp_port, "{}", stream.row);
        assert_eq!(stream.lost, "0 (0.0%)", "lost packets: {}", stream.row);
        assert!(!stream.problems, "Wireshark flags problems: {}", stream.row);
        assert!(
            stream.end - stream.start > 9.5,
            "stream shorter than the sample: {}",
            stream.row
        );
    }

    let mut payloads: Vec<&str> = streams.iter().map(|s| s.payload.as_str()).collect();
    payloads.sort_unstable();
    assert!(
        payloads[0].ends_with("-96") && payloads[1].ends_with("-97"),
        "payload types {payloads:?}"
    );

    // The server's own count: the sender report in front of each BYE
    // (RFC 3550 §6.6: the last one it sends for that SSRC).
    let byes = read_capture(
        &capture,
        &decode,
        &[
            "-Y",
            "rtcp.pt == 203",
            "-T",
            "fields",
            "-e",
            "rtcp.senderssrc",
            "-e",
            "rtcp.sender.packetcount",
        ],
    )
    .await;
    let mut sent: HashMap<u32, u32> = HashMap::new();
    for line in byes.lines().filter(|l| !l.trim().is_empty()) {
        let (ssrc, count) = line
            .split_once('\t')
            .unwrap_or_else(|| panic!("BYE without a sender report: {line:?}"));
        let previous = sent.insert(parse_hex(ssrc), count.parse().expect("packet count"));
        assert_eq!(previous, None, "two BYEs from {ssrc}:\n{byes}");
    }
    for stream in &streams {
        let sent = sent
            .get(&stream.ssrc)
            .unwrap_or_else(|| panic!("no BYE from {:08x}:\n{byes}", stream.ssrc));
        assert_eq!(
            stream.packets, *sent,
            "packets captured vs the server's final sender report: {}",
            stream.row
        );
    }

    // Timestamps against the clocks, per SSRC, in sequence order (which
    // the lost/sequence checks above showed to be arrival order).
    let fields = read_capture(
        &capture,
        &decode,
        &[
            "-Y",
            "rtp",
            "-T",
            "fields",
            "-e",
            "rtp.p_type",
            "-e",
            "rtp.timestamp",
            "-e",
            "frame.time_relative",
        ],
    )
    .await;
    let mut by_type: HashMap<u8, Vec<(u32, f64)>> = HashMap::new();
    for line in fields.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 3, "RTP fields {line:?}");
        by_type
            .entry(f[0].parse().expect("payload type"))
            .or_default()
            .push((
                f[1].parse().expect("RTP timestamp"),
                f[2].parse().expect("arrival time"),
            ));
    }
    let video = &by_type[&96];
    let audio = &by_type[&97];

    // Video carries presentation times, sent in decode order: B-frames
    // make the timestamps go back and forth, so check that the frames are
    // exactly the sample's 300, 1/30 s of the 90 kHz clock apart, and time
    // only the keyframes (one each whole second, their presentation and
    // decode times a constant reorder delay apart).
    let base = video.iter().map(|(ts, _)| *ts).min().unwrap();
    let mut frames: Vec<u32> = video.iter().map(|(ts, _)| ts.wrapping_sub(base)).collect();
    frames.sort_unstable();
    frames.dedup();
    let frame_ticks = (VIDEO_CLOCK_HZ / 30.0) as u32;
    let expected: Vec<u32> = (0..SAMPLE_VIDEO_FRAMES as u32)
        .map(|i| i * frame_ticks)
        .collect();
    assert_eq!(frames, expected, "video frame times on the 90 kHz clock");
    let second = VIDEO_CLOCK_HZ as u32;
    let mut keyframes: Vec<(u32, f64)> = Vec::new();
    for &(ts, at) in video {
        let new_second = keyframes.last().is_none_or(|&(last, _)| last != ts);
        if ts.wrapping_sub(base) % second == 0 && new_second {
            keyframes.push((ts, at));
        }
    }
    assert_eq!(keyframes.len(), 10, "keyframes at whole seconds");
    assert_real_time_on_clock(&keyframes, VIDEO_CLOCK_HZ, "video keyframes");

    // Audio: one AAC frame per packet, 1024 ticks of 48 kHz apart.
    for pair in audio.windows(2) {
        assert_eq!(
            pair[1].0.wrapping_sub(pair[0].0),
            AAC_FRAME_TICKS,
            "audio timestamp step"
        );
    }
    assert_real_time_on_clock(audio, AUDIO_CLOCK_HZ, "audio");
}
