//! Captures the RTP a UDP client receives and lets Wireshark's RTP
//! analysis judge it: two streams, no loss, no sequence problems.

// Tests and benches are the I/O side: clocks, sockets and files (clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::ChildStderr;

/// One row of `tshark -z rtp,streams`.
#[derive(Debug)]
struct RtpStream {
    start: f64,
    end: f64,
    src_port: u16,
    payload: String,
    packets: usize,
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

/// Appends lines of `lines` to `out` until one for which `stop` is true
/// (then true) or the end (then false).
async fn collect_lines_until(
    lines: &mut Lines<BufReader<ChildStderr>>,
    out: &mut String,
    stop: impl Fn(&str) -> bool,
) -> bool {
    while let Ok(Some(line)) = lines.next_line().await {
        out.push_str(&line);
        out.push('\n');
        if stop(&line) {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wireshark_sees_lossless_rtp_streams() {
    if !require_tool("dumpcap") || !require_tool("tshark") || !require_tool("ffmpeg") {
        return;
    }
    let server = start_server().await;
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("rtp.pcapng");
    let capture_path = capture.to_str().unwrap().to_string();
    // Server-to-client RTP only: the client's NAT-opening packets to the
    // server's port would show up as a third stream.
    let filter = format!("udp and src port {}", server.rtp_port);
    let mut dumpcap = tokio::process::Command::new("dumpcap")
        .args([
            "-i",
            "lo",
            "-f",
            &filter,
            "-a",
            "duration:40",
            "-w",
            &capture_path,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawning dumpcap");
    let mut stderr = BufReader::new(dumpcap.stderr.take().unwrap()).lines();
    let mut dumpcap_said = String::new();
    let capturing = tokio::time::timeout(
        Duration::from_secs(10),
        collect_lines_until(&mut stderr, &mut dumpcap_said, |line| {
            line.contains("Capturing on")
        }),
    )
    .await;
    assert!(
        matches!(capturing, Ok(true)),
        "dumpcap did not start capturing:\n{dumpcap_said}"
    );
    // The message comes just before the capture loop starts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Keep reading dumpcap's stderr so it never blocks on a full pipe.
    let stderr_task = tokio::spawn(async move {
        let mut rest = String::new();
        collect_lines_until(&mut stderr, &mut rest, |_| false).await;
        rest
    });

    let url = url(&server, "sample");
    run_ffmpeg(
        "ffmpeg",
        "udp",
        &[
            "-nostdin", "-i", &url, "-map", "0", "-c", "copy", "-f", "null", "-",
        ],
    )
    .await;

    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = dumpcap.id().expect("dumpcap still running") as libc::pid_t;
    // SAFETY: plain kill(2) on the child we spawned and still own.
    assert_eq!(
        unsafe { libc::kill(pid, libc::SIGINT) },
        0,
        "signalling dumpcap"
    );
    let status = tokio::time::timeout(Duration::from_secs(10), dumpcap.wait())
        .await
        .expect("dumpcap did not stop within 10 s")
        .expect("waiting for dumpcap");
    let dumpcap_rest = stderr_task.await.unwrap();
    assert!(status.success(), "dumpcap: {status}\n{dumpcap_rest}");

    let decode_as = format!("udp.port=={},rtp", server.rtp_port);
    let report = run_tool(
        "tshark",
        &[
            "-r",
            &capture_path,
            "-d",
            &decode_as,
            "-q",
            "-z",
            "rtp,streams",
        ],
        Duration::from_secs(30),
    )
    .await;
    assert!(report.status.success(), "tshark failed:\n{}", report.stderr);
    eprintln!("{}", report.stdout);
    let streams = parse_streams(&report.stdout);
    assert_eq!(
        streams.len(),
        2,
        "RTP streams in the capture:\n{}",
        report.stdout
    );
    let mut payloads: Vec<&str> = streams.iter().map(|s| s.payload.as_str()).collect();
    payloads.sort_unstable();
    assert!(
        payloads[0].ends_with("-96") && payloads[1].ends_with("-97"),
        "payload types {payloads:?}"
    );
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
    let video = streams.iter().find(|s| s.payload.ends_with("-96")).unwrap();
    let audio = streams.iter().find(|s| s.payload.ends_with("-97")).unwrap();
    assert!(video.packets >= SAMPLE_VIDEO_FRAMES, "{}", video.row);
    assert!(audio.packets > 0, "{}", audio.row);
}
