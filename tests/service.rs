//! The binary as a service runs it: JSON log lines with one line per
//! session start and end, the RTSPS options at start-up, and the
//! Dockerfile's promises (no Docker engine here: the file is read).

// Tests and benches are the I/O side: clocks, sockets and files (clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use serde_json::Value;
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};

/// A running `rtpcast`, killed on drop, and what it has logged so far.
struct Server {
    child: Child,
    stdout: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    log: String,
}

/// Starts the binary on free loopback ports with `args` and waits until
/// it has logged its last start-up line, which names `ready`; returns it
/// and its RTSP address.
async fn start(args: &[&str], ready: &str) -> (Server, SocketAddr) {
    let (mut child, rtsp, _) = spawn_rtpcast(args).await;
    let stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut server = Server {
        child,
        stdout,
        log: String::new(),
    };
    let started = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = server.stdout.next_line().await.unwrap() {
            server.log.push_str(&line);
            server.log.push('\n');
            if line.contains(ready) {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        started == Ok(true),
        "rtpcast did not log {ready:?}:\n{}",
        server.log
    );
    // The SIGTERM handler is installed right after the last start-up line.
    tokio::time::sleep(Duration::from_millis(100)).await;
    (server, rtsp)
}

/// Stops the server with SIGTERM and returns its standard output.
async fn stop(mut server: Server) -> String {
    let pid = server.child.id().expect("running") as libc::pid_t;
    // SAFETY: kill(2) on our own child's pid has no memory effects.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = tokio::time::timeout(Duration::from_secs(5), server.child.wait())
        .await
        .expect("exits within 5 s of SIGTERM")
        .expect("exit status");
    assert!(status.success(), "{status}");
    while let Some(line) = server.stdout.next_line().await.unwrap() {
        server.log.push_str(&line);
        server.log.push('\n');
    }
    server.log
}

/// Every line of `log` as a JSON object; panics at a line that is not one.
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
            assert!(value.is_object(), "log line is not an object: {line}");
            value
        })
        .collect()
}

/// The `fields` of the lines whose message is `message`.
fn events<'a>(lines: &'a [Value], message: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|line| line["fields"]["message"] == message)
        .map(|line| &line["fields"])
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_have_one_line_per_session_start_and_end_with_totals() {
    let (server, rtsp) = start(&["--log-format", "json"], "RTSP on").await;
    let base = format!("rtsp://{rtsp}/sample");

    // A UDP viewer that plays a second and tears down.
    let mut udp_viewer = RtspClient::connect(rtsp).await;
    let (rtp, _rtcp) = udp_pair().await;
    let setup = udp_viewer.setup(&base, 0, &udp_transport(&rtp), None).await;
    let udp_session = setup.session_id();
    udp_viewer
        .session_ok("PLAY", &format!("{base}/"), &udp_session)
        .await;
    let received = recv_for(&rtp, Duration::from_secs(1)).await;
    assert!(!received.is_empty(), "no RTP over UDP");
    udp_viewer.session_ok("TEARDOWN", &base, &udp_session).await;

    // An interleaved viewer that just goes away.
    let mut tcp_viewer = RtspClient::connect(rtsp).await;
    let setup = tcp_viewer
        .setup(&base, 1, "RTP/AVP/TCP;unicast;interleaved=0-1", None)
        .await;
    let tcp_session = setup.session_id();
    tcp_viewer
        .session_ok("PLAY", &format!("{base}/"), &tcp_session)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(tcp_viewer);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let log = stop(server).await;
    let lines = json_lines(&log);
    assert!(
        lines.iter().all(|line| line["level"].is_string()
            && line["timestamp"].is_string()
            && line["target"].is_string()),
        "{log}"
    );
    let started = events(&lines, "session started");
    let ended = events(&lines, "session ended");
    assert_eq!(started.len(), 2, "{log}");
    assert_eq!(ended.len(), 2, "{log}");
    for (session, track, transport, reason) in [
        (&udp_session, 0, "RTP/AVP;unicast;client_port=", "teardown"),
        (
            &tcp_session,
            1,
            "RTP/AVP/TCP;unicast;interleaved=0-1",
            "connection closed",
        ),
    ] {
        let start = started
            .iter()
            .find(|e| e["session"] == session.as_str())
            .unwrap_or_else(|| panic!("no start line for {session}:\n{log}"));
        assert_eq!(start["path"], "/sample", "{start}");
        assert!(
            start["client"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{start}"
        );
        assert!(
            start["transport"].as_str().unwrap().starts_with(transport),
            "{start}"
        );
        let end = ended
            .iter()
            .find(|e| e["session"] == session.as_str())
            .unwrap_or_else(|| panic!("no end line for {session}:\n{log}"));
        assert_eq!(end["reason"], reason, "{end}");
        assert_eq!(end["path"], "/sample", "{end}");
        let duration = end["duration_s"].as_f64().expect("duration_s");
        assert!((0.3..5.0).contains(&duration), "{end}");
        let packets = end["packets_sent"].as_u64().expect("packets_sent");
        let bytes = end["bytes_sent"].as_u64().expect("bytes_sent");
        assert!(packets > 10 && bytes > packets * 100, "{end}");
        assert!(end["units_skipped"].is_u64(), "{end}");
        assert!(end["packets_lost"].is_i64(), "{end}");
        assert!(end["receiver_reports"].is_u64(), "{end}");
        let tracks = end["tracks"].as_str().expect("tracks");
        assert!(
            tracks.starts_with(&format!("track {track}: {packets} packets, {bytes} bytes")),
            "{end}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_stay_the_default() {
    let (server, _) = start(&[], "RTSP on").await;
    let log = stop(server).await;
    let first = log.lines().next().expect("a log line");
    assert!(serde_json::from_str::<Value>(first).is_err(), "{first}");
    assert!(first.contains("INFO"), "{first}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsps_urls_are_logged_at_start_up_and_bad_tls_files_stop_it() {
    let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, pair.cert.pem()).unwrap();
    std::fs::write(&key, pair.key_pair.serialize_pem()).unwrap();
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());

    let rtsps_port = free_tcp_port().await.to_string();
    let (server, _) = start(
        &[
            "--log-format",
            "json",
            "--tls-cert",
            cert,
            "--tls-key",
            key,
            "--rtsps-port",
            &rtsps_port,
        ],
        "RTSPS (TLS",
    )
    .await;
    let log = stop(server).await;
    let messages: Vec<String> = json_lines(&log)
        .iter()
        .filter_map(|line| line["fields"]["message"].as_str().map(str::to_string))
        .collect();
    for url in [
        format!("serving rtsps://127.0.0.1:{rtsps_port}/"),
        format!("serving rtsps://127.0.0.1:{rtsps_port}/sample"),
    ] {
        assert!(messages.contains(&url), "{url} not logged:\n{log}");
    }

    let missing = dir.path().join("missing.pem");
    for (args, says) in [
        (vec!["--tls-cert", cert], "--tls-key"),
        (
            vec!["--tls-cert", missing.to_str().unwrap(), "--tls-key", key],
            "missing.pem",
        ),
        (
            vec!["--tls-cert", key, "--tls-key", key],
            "no PEM CERTIFICATE",
        ),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_rtpcast"))
            .args(["--bind", "127.0.0.1", "--rtsp-port", "0", "--rtp-port", "0"])
            .args(["--rtsps-port", "0"])
            .args(&args)
            .output()
            .await
            .expect("rtpcast runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} started");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

/// The Dockerfile's instructions of its last stage (the image), each as
/// (keyword, arguments) with continuation lines joined and comments left
/// out.
fn image_instructions() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile"))
        .expect("Dockerfile");
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                let (keyword, arguments) = current.split_once(' ').unwrap_or((&current, ""));
                instructions.push((keyword.to_ascii_uppercase(), arguments.trim().to_string()));
                current.clear();
            }
        }
    }
    let last_stage = instructions
        .iter()
        .rposition(|(keyword, _)| keyword == "FROM")
        .expect("a FROM");
    instructions.split_off(last_stage)
}

fn arguments_of<'a>(instructions: &'a [(String, String)], keyword: &str) -> Vec<&'a str> {
    instructions
        .iter()
        .filter(|(k, _)| k == keyword)
        .map(|(_, arguments)| arguments.as_str())
        .collect()
}

#[test]
fn the_image_runs_unprivileged_exposes_every_port_and_checks_its_health() {
    let image = image_instructions();
    let user = *arguments_of(&image, "USER").last().expect("a USER");
    let name = user.split(':').next().unwrap();
    assert!(name != "root" && name != "0", "runs as {user}");

    let exposed: Vec<&str> = arguments_of(&image, "EXPOSE")
        .iter()
        .flat_map(|ports| ports.split_whitespace())
        .collect();
    for port in ["5544/tcp", "322/tcp", "5005-5006/udp", "9997/tcp"] {
        assert!(exposed.contains(&port), "{port} not in EXPOSE {exposed:?}");
    }

    let health = arguments_of(&image, "HEALTHCHECK");
    let [health] = health[..] else {
        panic!("one HEALTHCHECK expected: {health:?}");
    };
    assert!(
        health.contains("\"http://127.0.0.1:9997/health\""),
        "{health}"
    );
    // Its client is installed in the image.
    let command = health.split("CMD").nth(1).expect("HEALTHCHECK CMD");
    let tool = command
        .trim()
        .trim_start_matches("[\"")
        .split('"')
        .next()
        .unwrap();
    let runs = arguments_of(&image, "RUN").join(" ");
    assert!(
        runs.contains(&format!(" {tool} ")),
        "{tool} is not installed: {runs}"
    );
    // 322 is below 1024: the unprivileged user binds it through the
    // binary's file capability.
    assert!(
        runs.contains("setcap cap_net_bind_service=+ep /usr/local/bin/rtpcast"),
        "{runs}"
    );
    // The API is on for the health check to reach.
    assert_eq!(
        arguments_of(&image, "CMD"),
        ["[\"--api-addr\", \"0.0.0.0:9997\", \"/media\"]"]
    );
    assert_eq!(
        arguments_of(&image, "ENTRYPOINT"),
        ["[\"/usr/local/bin/rtpcast-entrypoint\"]"]
    );
}

/// What `docker/entrypoint.sh ARGS` runs, with `RTPCAST_CONFIG` at
/// `config`: a stand-in `rtpcast` first on the PATH prints its arguments.
fn entrypoint_runs(config: &std::path::Path, args: &[&str]) -> String {
    let bin = tempfile::tempdir().unwrap();
    let fake = bin.path().join("rtpcast");
    std::fs::write(&fake, "#!/bin/sh\necho \"$@\"\n").unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = std::process::Command::new("sh")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/docker/entrypoint.sh"))
        .args(args)
        .env("PATH", path)
        .env("RTPCAST_CONFIG", config)
        .output()
        .expect("sh runs");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[test]
fn the_entrypoint_passes_the_config_file_only_when_it_exists() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rtpcast.toml");
    assert_eq!(entrypoint_runs(&config, &["/media"]), "/media");
    std::fs::write(&config, "").unwrap();
    assert_eq!(
        entrypoint_runs(&config, &["--rtsps-port", "8322", "/media"]),
        format!("--config {} --rtsps-port 8322 /media", config.display())
    );
}

#[tokio::test]
async fn hadolint_finds_nothing_in_the_dockerfile() {
    if !require_tool("hadolint") {
        return;
    }
    let dockerfile = concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile");
    let run = run_tool("hadolint", &[dockerfile], Duration::from_secs(30)).await;
    assert!(
        run.status.success(),
        "hadolint:\n{}{}",
        run.stdout,
        run.stderr
    );
}
