//! Multicast viewing of a live path, in a network namespace the test
//! makes (loopback with a multicast route, nothing leaves it): two ffprobe
//! viewers join the path's group and decode it, while tshark shows one
//! stream per track on the wire, sent once for both.

// Tests and benches are the I/O side: clocks, sockets and files (clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::time::Duration;

use common::*;

/// A network namespace with only loopback, routed for multicast; deleted
/// on drop.
struct Namespace(String);

impl Namespace {
    async fn create() -> Namespace {
        let name = format!("rtpcast-mc-{}", std::process::id());
        let ns = Namespace(name.clone());
        for args in [
            vec!["netns", "add", &name],
            vec!["-n", &name, "link", "set", "lo", "up"],
            vec!["-n", &name, "link", "set", "lo", "multicast", "on"],
            vec!["-n", &name, "route", "add", "224.0.0.0/4", "dev", "lo"],
        ] {
            let run = run_tool("ip", &args, Duration::from_secs(10)).await;
            assert!(run.status.success(), "ip {args:?}: {}", run.stderr);
        }
        ns
    }

    /// `program args` run inside the namespace.
    fn command(&self, program: &str, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("ip");
        command
            .args(["netns", "exec", &self.0, program])
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "delete", &self.0])
            .status();
    }
}

/// Root can make namespaces; anyone else skips, unless interop is required.
fn can_make_namespaces() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("RTPCAST_REQUIRE_INTEROP").is_ok_and(|v| !v.is_empty()) {
        panic!("the multicast test needs root (network namespaces)");
    }
    eprintln!("\n*** SKIPPED: not root; the multicast test did not run ***\n");
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_viewers_share_one_multicast_stream() {
    if !can_make_namespaces()
        || !require_tool("ip")
        || !require_tool("ffprobe")
        || !require_tool("tshark")
    {
        return;
    }
    let ns = Namespace::create().await;
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/media/sample.mp4");
    let channel = format!("/tv={sample}");
    let mut server = ns
        .command(
            env!("CARGO_BIN_EXE_rtpcast"),
            &[
                "--bind",
                "127.0.0.1",
                "--rtsp-port",
                "8554",
                "--channel",
                &channel,
                "--multicast-range",
                "239.255.7.0/24",
                "--multicast-port",
                "40000",
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting rtpcast in the namespace");
    let capture = std::env::temp_dir().join(format!("rtpcast-mc-{}.pcap", std::process::id()));
    let capture_path = capture.to_str().unwrap().to_string();
    let mut tshark = ns
        .command(
            "tshark",
            &[
                "-q",
                "-i",
                "lo",
                "-f",
                "udp",
                "-a",
                "duration:9",
                "-w",
                &capture_path,
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting tshark");
    // tshark and the server need a moment to start listening.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let url = "rtsp://127.0.0.1:8554/tv";
    let probe = || {
        ns.command(
            "ffprobe",
            &[
                "-v",
                "error",
                "-rtsp_transport",
                "udp_multicast",
                "-count_frames",
                "-read_intervals",
                "%+4",
                "-show_entries",
                "stream=codec_name,nb_read_frames",
                "-of",
                "csv=p=0",
                url,
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
    };
    let (first, second) = tokio::join!(probe(), probe());
    for output in [first, second] {
        let output = output.expect("ffprobe ran");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "ffprobe: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let frames: HashMap<&str, usize> = stdout
            .lines()
            .filter_map(|l| {
                let (codec, n) = l.split_once(',')?;
                Some((codec, n.trim().parse().ok()?))
            })
            .collect();
        assert!(frames.get("h264").is_some_and(|&n| n >= 90), "{frames:?}");
        assert!(frames.get("aac").is_some_and(|&n| n >= 120), "{frames:?}");
    }
    let _ = tokio::time::timeout(Duration::from_secs(15), tshark.wait()).await;
    server.kill().await.ok();
    let run = run_tool(
        "tshark",
        &[
            "-r",
            &capture_path,
            "-d",
            "udp.port==40000,rtp",
            "-d",
            "udp.port==40002,rtp",
            "-Y",
            "udp.srcport==5005",
            "-T",
            "fields",
            "-e",
            "ip.dst",
            "-e",
            "udp.dstport",
            "-e",
            "rtp.ssrc",
            "-e",
            "rtp.seq",
        ],
        Duration::from_secs(60),
    )
    .await;
    let _ = std::fs::remove_file(&capture);
    assert!(run.status.success(), "tshark: {}", run.stderr);
    let mut packets = 0;
    let mut seen = HashSet::new();
    let mut ssrcs: HashMap<String, HashSet<String>> = HashMap::new();
    for line in run.stdout.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let [dst, port, ssrc, seq] = fields[..] else {
            panic!("unexpected tshark line {line:?}");
        };
        assert_eq!(dst, "239.255.7.0", "RTP went only to the group: {line}");
        packets += 1;
        assert!(
            seen.insert((port.to_string(), seq.to_string())),
            "sent twice: {line}"
        );
        ssrcs
            .entry(port.to_string())
            .or_default()
            .insert(ssrc.to_string());
    }
    assert!(packets > 500, "{packets} RTP packets on the wire");
    let mut ports: Vec<_> = ssrcs.keys().cloned().collect();
    ports.sort();
    assert_eq!(ports, ["40000", "40002"], "one port per track");
    for (port, ssrcs) in &ssrcs {
        assert_eq!(
            ssrcs.len(),
            1,
            "one stream on {port} for both viewers: {ssrcs:?}"
        );
    }
    drop(ns);
}
