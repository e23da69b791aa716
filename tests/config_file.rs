//! The `rtpcast` binary with `--config`: a bad file refused at start-up
//! (exit status 2, file, line and key on stderr), SIGHUP adding and
//! removing paths (a removed path's viewer gets RTCP BYE), a broken file
//! on SIGHUP leaving the running configuration alone, and SIGTERM ending
//! every session with BYE within the bound.

// Tests and benches are the I/O side: clocks, sockets and files (clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use common::*;
use tokio::io::AsyncReadExt;
use tokio::net::UdpSocket;
use tokio::process::{Child, Command};

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/media/sample.mp4");

/// RTCP packet type of BYE (RFC 3550 §6.6).
const BYE: u8 = 203;

/// A running `rtpcast --config FILE`, killed on drop.
struct Server {
    child: Child,
    rtsp: SocketAddr,
}

impl Server {
    /// Starts the binary with `config` on free loopback ports (given on
    /// the command line, which wins over the file) and waits until it
    /// accepts RTSP connections.
    async fn start(config: &Path) -> Server {
        let (child, rtsp, _) =
            spawn_rtpcast(&[std::ffi::OsStr::new("--config"), config.as_os_str()]).await;
        wait_until_listening(rtsp).await;
        Server { child, rtsp }
    }

    fn url(&self, path: &str) -> String {
        format!("rtsp://{}{path}", self.rtsp)
    }

    async fn describe(&self, path: &str) -> u16 {
        let mut client = RtspClient::connect(self.rtsp).await;
        client
            .request(
                "DESCRIBE",
                &self.url(path),
                &[("Accept", "application/sdp")],
            )
            .await
            .status
    }

    /// DESCRIBE of `path` until it answers `status`, for up to 3 s.
    async fn describe_until(&self, path: &str, status: u16) -> u16 {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let answer = self.describe(path).await;
            if answer == status || Instant::now() > deadline {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = self.child.id().expect("still running") as libc::pid_t;
        // SAFETY: kill(2) with the pid of our own child and a signal.
        assert_eq!(
            unsafe { libc::kill(pid, signal) },
            0,
            "kill({pid}, {signal})"
        );
    }

    /// Waits up to `limit` for the process to exit.
    async fn exited_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(limit, self.child.wait())
            .await
            .ok()
            .map(|status| status.expect("wait"))
    }

    /// Stops the server (if still running) and returns what it logged.
    async fn log(mut self) -> String {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        let mut log = String::new();
        for pipe in [
            self.child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin>),
            self.child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin>),
        ]
        .into_iter()
        .flatten()
        {
            let mut pipe = pipe;
            let _ = pipe.read_to_string(&mut log).await;
        }
        log
    }
}

/// Writes `text` as `rtpcast.toml` in `dir`.
fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("rtpcast.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A viewer playing `path` over UDP: its RTP and RTCP sockets and its
/// RTSP connection.
async fn play_udp(server: &Server, path: &str) -> (UdpSocket, UdpSocket, RtspClient) {
    let mut client = RtspClient::connect(server.rtsp).await;
    let (rtp, rtcp) = udp_pair().await;
    let base = server.url(path);
    let session = client
        .setup(&base, 0, &udp_transport(&rtp), None)
        .await
        .session_id();
    client.session_ok("PLAY", &base, &session).await;
    assert!(
        !recv_for(&rtp, Duration::from_millis(500)).await.is_empty(),
        "{path} plays"
    );
    (rtp, rtcp, client)
}

/// Whether a BYE arrives on `rtcp` within `limit`.
async fn bye_within(rtcp: &UdpSocket, limit: Duration) -> bool {
    let reports = recv_until(rtcp, limit, |d| {
        rtcp_packets(&d.data).iter().any(|p| p.packet_type == BYE)
    })
    .await;
    rtcp_types(&reports).contains(&BYE)
}

#[tokio::test]
async fn a_bad_file_stops_start_up_with_status_2_and_its_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    for (text, expected) in [
        ("# sizes\n\nmtu = 100\n", "rtpcast.toml:3: mtu: "),
        ("rtsp_port = 70000\n", "rtpcast.toml:1: rtsp_port: "),
        ("loop = true\nlooping = true\n", "rtpcast.toml:2: looping: "),
        (
            "[[path]]\nname = \"/tv\"\nchannel = \"no-such-file.mp4\"\n",
            "rtpcast.toml:3: path[0].channel: ",
        ),
        (
            "[[path]]\nname = \"/tv\"\npublishers = true\n[path.read]\nnetworks = [\"10.0.0.0/40\"]\n",
            "rtpcast.toml:5: path[0].read.networks[0]: ",
        ),
    ] {
        let config = write_config(dir.path(), text);
        let output = Command::new(env!("CARGO_BIN_EXE_rtpcast"))
            .arg("--config")
            .arg(&config)
            .output()
            .await
            .expect("rtpcast runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{text}: {stderr}");
        assert!(stderr.contains(expected), "{text}: {stderr}");
    }
}

#[tokio::test]
async fn sighup_adds_a_path_and_removes_one_whose_viewer_gets_bye() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!("[[path]]\nname = \"/old\"\nchannel = \"{SAMPLE}\"\n"),
    );
    let server = Server::start(&config).await;
    assert_eq!(server.describe("/new").await, 404);
    let (_rtp, rtcp, _client) = play_udp(&server, "/old").await;
    write_config(
        dir.path(),
        &format!("[[path]]\nname = \"/new\"\nfile = \"{SAMPLE}\"\n"),
    );
    server.signal(libc::SIGHUP);
    assert!(
        bye_within(&rtcp, Duration::from_secs(3)).await,
        "the removed path's viewer gets BYE"
    );
    assert_eq!(server.describe_until("/new", 200).await, 200, "added");
    assert_eq!(server.describe("/old").await, 404, "removed");
    let log = server.log().await;
    assert!(log.contains("configuration reloaded"), "{log}");
}

#[tokio::test]
async fn a_broken_file_on_sighup_keeps_the_running_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!("[[path]]\nname = \"/kept\"\nfile = \"{SAMPLE}\"\n"),
    );
    let server = Server::start(&config).await;
    assert_eq!(server.describe("/kept").await, 200);
    write_config(
        dir.path(),
        "[[path]]\nname = \"/other\"\nfiel = \"x.mp4\"\n",
    );
    server.signal(libc::SIGHUP);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server.describe("/kept").await, 200, "still served");
    assert_eq!(server.describe("/other").await, 404);
    let log = server.log().await;
    assert!(
        log.contains("configuration not reloaded") && log.contains("rtpcast.toml:3: path[0].fiel"),
        "the refusal is logged with its line and key:\n{log}"
    );
}

#[tokio::test]
async fn sigterm_ends_every_session_with_bye_and_exits_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &format!("media = \"{SAMPLE}\"\n"));
    let mut server = Server::start(&config).await;
    let (_rtp, rtcp, mut client) = play_udp(&server, "/").await;
    let stopped = Instant::now();
    server.signal(libc::SIGTERM);
    assert!(
        bye_within(&rtcp, Duration::from_secs(2)).await,
        "BYE at SIGTERM"
    );
    // A client told BYE tears down: still answered while the server stops.
    let teardown = client
        .request("TEARDOWN", &server.url("/"), &[("Session", "gone")])
        .await;
    assert!(teardown.status >= 200, "TEARDOWN answered");
    let status = server
        .exited_within(Duration::from_secs(6))
        .await
        .expect("rtpcast exits within its 5 s bound");
    assert!(status.success(), "{status}");
    assert!(stopped.elapsed() < Duration::from_secs(6));
}

/// What the HTTP API will call: `RunningServer::reload` with a new
/// configuration.
#[tokio::test]
async fn reload_applies_paths_and_access_and_lists_what_needs_a_restart() {
    use rtpcast::config::{AccessRule, ChannelConfig, Config, MediaPathConfig, PathAccess};
    let config = Config {
        bind: "127.0.0.1".parse().unwrap(),
        rtsp_port: 0,
        rtp_port: 0,
        ..Default::default()
    };
    let server = rtpcast::server::start(
        &config,
        rtpcast::server::catalog::Catalog::bundled_sample().unwrap(),
    )
    .await
    .unwrap();
    let describe = |path: &'static str| {
        let addr = server.rtsp_addr;
        async move {
            let mut client = RtspClient::connect(addr).await;
            client
                .request("DESCRIBE", &format!("rtsp://{addr}{path}"), &[])
                .await
                .status
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.mp4");
    std::fs::write(&broken, b"not an mp4").unwrap();
    let mut refused = config.clone();
    refused.media_paths.push(MediaPathConfig {
        mount: "/ok".into(),
        path: SAMPLE.into(),
    });
    refused.channels.push(ChannelConfig {
        mount: "/broken".into(),
        file: broken,
    });
    assert!(
        server.reload(refused).is_err(),
        "a broken channel is refused"
    );
    assert_eq!(
        describe("/ok").await,
        404,
        "nothing of a refused reload applies"
    );

    let mut new = config.clone();
    new.mtu = 1200;
    new.media_paths.push(MediaPathConfig {
        mount: "/clips".into(),
        path: Path::new(SAMPLE).parent().unwrap().into(),
    });
    new.channels.push(ChannelConfig {
        mount: "/tv".into(),
        file: SAMPLE.into(),
    });
    new.access.push(PathAccess {
        path: "/clips".into(),
        read: AccessRule {
            networks: vec!["10.0.0.0/8".parse().unwrap()],
            users: Vec::new(),
        },
        publish: AccessRule::default(),
    });
    let summary = server.reload(new.clone()).unwrap();
    assert_eq!(summary.added, ["/clips", "/tv"]);
    assert!(summary.removed.is_empty());
    assert!(summary.access_changed);
    assert_eq!(summary.restart_needed, ["mtu"]);
    assert_eq!(
        describe("/clips/sample.mp4").await,
        403,
        "the new rule admits 10.0.0.0/8 only"
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    while describe("/tv").await != 200 {
        assert!(Instant::now() < deadline, "/tv never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let again = server.reload(new).unwrap();
    assert!(again.added.is_empty() && again.removed.is_empty() && !again.access_changed);
    assert_eq!(again.restart_needed, ["mtu"], "still not applied");
    let back = server.reload(config).unwrap();
    assert_eq!(back.removed, ["/clips", "/tv"]);
    assert_eq!(describe("/tv").await, 404);
    assert!(server.shutdown().await.unwrap());
}
