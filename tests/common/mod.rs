//! Shared helpers for the integration tests: an in-process server, external
//! tool handling with timeouts, a raw RTSP client and RTP/RTCP parsing.
//!
//! Every test binary compiles this module but uses only part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use rtpcast::config::Config;
use rtpcast::server::catalog::Catalog;
use rtpcast::server::RunningServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Video frames in the bundled sample (10 s at 30 fps).
pub const SAMPLE_VIDEO_FRAMES: usize = 300;
/// Duration of the bundled sample in seconds.
pub const SAMPLE_DURATION_SECS: f64 = 10.0;
/// RTP ticks between two video frames (90 kHz / 30 fps).
pub const VIDEO_FRAME_TICKS: u32 = 3000;
/// RTP ticks of one AAC-LC frame (48 kHz clock).
pub const AAC_FRAME_TICKS: u32 = 1024;
/// Bytes of one decoded 1280x720 yuv420p frame.
pub const YUV420_FRAME_BYTES: usize = 1280 * 720 * 3 / 2;

/// How long any single read of the raw client may block.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts a server on ephemeral loopback ports serving the bundled sample.
pub async fn start_server() -> RunningServer {
    start_server_with(|_| {}).await
}

/// Like [`start_server`], after letting `adjust` change the configuration;
/// serves `Config::media` instead of the sample when `adjust` sets it.
pub async fn start_server_with(adjust: impl FnOnce(&mut Config)) -> RunningServer {
    let mut config = Config {
        bind: "127.0.0.1".parse().unwrap(),
        rtsp_port: 0,
        rtp_port: 0,
        session_timeout_secs: 60,
        ..Default::default()
    };
    adjust(&mut config);
    let catalog = match &config.media {
        Some(path) => Catalog::from_path(path)
            .unwrap_or_else(|e| panic!("cannot serve {}: {e}", path.display())),
        None => Catalog::bundled_sample().expect("bundled sample loads"),
    };
    rtpcast::server::start(&config, catalog)
        .await
        .expect("server starts")
}

/// [`start_server`] and a raw client connected to it.
pub async fn serve_and_connect() -> (RunningServer, RtspClient) {
    let server = start_server().await;
    let client = RtspClient::connect(server.rtsp_addr).await;
    (server, client)
}

/// `rtsp://<server>/<path>`.
pub fn url(server: &RunningServer, path: &str) -> String {
    format!(
        "rtsp://{}/{}",
        server.rtsp_addr,
        path.trim_start_matches('/')
    )
}

/// True when `tool` can be run. When it cannot, panics if
/// `RTPCAST_REQUIRE_INTEROP` is set, else prints a loud notice and returns
/// false so the caller can return early.
pub fn require_tool(tool: &str) -> bool {
    let found = std::process::Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if found {
        return true;
    }
    if std::env::var("RTPCAST_REQUIRE_INTEROP").is_ok_and(|v| !v.is_empty()) {
        panic!("{tool} is not installed but RTPCAST_REQUIRE_INTEROP is set");
    }
    eprintln!("\n*** SKIPPED: {tool} not installed; this interop test did not run ***\n");
    false
}

/// What an external program did.
#[derive(Debug)]
pub struct ToolRun {
    /// Exit status.
    pub status: std::process::ExitStatus,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
    /// Wall time from spawn to exit.
    pub elapsed: Duration,
}

/// Runs `program args...` to completion; kills it and panics after `limit`.
pub async fn run_tool(program: &str, args: &[&str], limit: Duration) -> ToolRun {
    let started = Instant::now();
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {program}: {e}"));
    // Dropping the timed-out future drops the child, which kills it.
    let output = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} did not finish within {limit:?}; killed"))
        .unwrap_or_else(|e| panic!("waiting for {program}: {e}"));
    ToolRun {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

/// An RTSP response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Status line and headers as received, for failure messages.
    pub head: String,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body (Content-Length bytes).
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Header `name`, panicking with the whole response if it is missing.
    pub fn expect_header(&self, name: &str) -> &str {
        self.header(name)
            .unwrap_or_else(|| panic!("no {name} header in response:\n{}", self.head))
    }

    /// The session id of the `Session` header (without `;timeout=`).
    pub fn session_id(&self) -> String {
        let value = self.expect_header("Session");
        value.split(';').next().unwrap().trim().to_string()
    }

    /// The body as text.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `RTP-Info` entries as (url, seq, rtptime).
    pub fn rtp_info(&self) -> Vec<RtpInfo> {
        self.expect_header("RTP-Info")
            .split(',')
            .map(|entry| {
                let mut info = RtpInfo {
                    url: String::new(),
                    seq: None,
                    rtptime: None,
                };
                for field in entry.split(';') {
                    let (key, value) = field.trim().split_once('=').unwrap_or((field.trim(), ""));
                    match key {
                        "url" => info.url = value.to_string(),
                        "seq" => info.seq = Some(value.parse().expect("RTP-Info seq")),
                        "rtptime" => info.rtptime = Some(value.parse().expect("RTP-Info rtptime")),
                        _ => {}
                    }
                }
                info
            })
            .collect()
    }

    /// The RTP-Info entry whose url ends with `control` (e.g. `trackID=0`).
    pub fn rtp_info_for(&self, control: &str) -> RtpInfo {
        self.rtp_info()
            .into_iter()
            .find(|i| i.url.ends_with(control))
            .unwrap_or_else(|| panic!("no RTP-Info entry for {control}:\n{}", self.head))
    }

    /// Start and end of `Range: npt=<start>-<end>`.
    pub fn npt_range(&self) -> (f64, Option<f64>) {
        let value = self.expect_header("Range");
        let times = value
            .trim()
            .strip_prefix("npt=")
            .unwrap_or_else(|| panic!("Range is not npt: {value}"));
        let (start, end) = times.split_once('-').expect("npt range has '-'");
        let start = start.trim().parse().expect("npt start is seconds");
        let end = end.trim();
        let end = (!end.is_empty()).then(|| end.parse().expect("npt end is seconds"));
        (start, end)
    }
}

/// One `RTP-Info` entry.
#[derive(Debug, Clone)]
pub struct RtpInfo {
    /// The stream URL.
    pub url: String,
    /// First sequence number.
    pub seq: Option<u16>,
    /// RTP timestamp of the Range start.
    pub rtptime: Option<u32>,
}

/// What arrives on an RTSP connection.
#[derive(Debug)]
pub enum Incoming {
    /// An RTSP response.
    Response(Response),
    /// An interleaved frame (RFC 2326 §10.12).
    Interleaved {
        /// Channel.
        channel: u8,
        /// Payload.
        payload: Vec<u8>,
    },
}

/// What an [`RtspClient`] talks over: a TCP socket or a TLS session.
pub trait Connection: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Connection for T {}

/// A minimal RTSP client on one connection.
pub struct RtspClient {
    stream: Box<dyn Connection>,
    buf: Vec<u8>,
    cseq: u32,
    /// Interleaved frames read while waiting for a response.
    pub skipped_frames: Vec<(u8, Vec<u8>)>,
}

impl RtspClient {
    /// Connects to the server's RTSP port.
    pub async fn connect(addr: SocketAddr) -> RtspClient {
        let stream = TcpStream::connect(addr).await.expect("RTSP connect");
        stream.set_nodelay(true).unwrap();
        RtspClient::over(Box::new(stream))
    }

    /// A client on an open connection (a TLS session, for RTSPS).
    pub fn over(stream: Box<dyn Connection>) -> RtspClient {
        RtspClient {
            stream,
            buf: Vec::new(),
            cseq: 0,
            skipped_frames: Vec::new(),
        }
    }

    /// Writes raw bytes.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("RTSP write");
        // TLS keeps encrypted bytes back until flushed.
        self.stream.flush().await.expect("RTSP flush");
    }

    /// Sends a request with the next CSeq; returns that CSeq.
    pub async fn send_request(&mut self, method: &str, url: &str, headers: &[(&str, &str)]) -> u32 {
        self.cseq += 1;
        let mut text = format!(
            "{method} {url} RTSP/1.0\r\nCSeq: {}\r\nUser-Agent: rtpcast-itest\r\n",
            self.cseq
        );
        for (name, value) in headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str("\r\n");
        self.send_raw(text.as_bytes()).await;
        self.cseq
    }

    /// Sends a request carrying `body` as `content_type` and reads its
    /// response (interleaved frames read on the way are kept).
    pub async fn request_with_body(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        content_type: &str,
        body: &[u8],
    ) -> Response {
        self.cseq += 1;
        let mut text = format!(
            "{method} {url} RTSP/1.0\r\nCSeq: {}\r\nUser-Agent: rtpcast-itest\r\n\
             Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            self.cseq,
            body.len()
        );
        for (name, value) in headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str("\r\n");
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(body);
        self.send_raw(&bytes).await;
        let cseq = self.cseq;
        self.response_for(cseq).await
    }

    /// Sends a request and reads its response; interleaved frames read on
    /// the way are kept in `skipped_frames`. Checks the CSeq echo.
    pub async fn request(&mut self, method: &str, url: &str, headers: &[(&str, &str)]) -> Response {
        let cseq = self.send_request(method, url, headers).await;
        self.response_for(cseq).await
    }

    /// Like [`RtspClient::request`]; panics unless the answer is 200 OK.
    pub async fn request_ok(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Response {
        let response = self.request(method, url, headers).await;
        assert_eq!(response.status, 200, "{method} {url}:\n{}", response.head);
        response
    }

    /// `method` on `url` within `session`; panics unless 200 OK.
    pub async fn session_ok(&mut self, method: &str, url: &str, session: &str) -> Response {
        self.request_ok(method, url, &[("Session", session)]).await
    }

    /// SETUP of `<base>/trackID=<track>` with `transport`, joining
    /// `session` if given; panics unless 200 OK.
    pub async fn setup(
        &mut self,
        base: &str,
        track: u8,
        transport: &str,
        session: Option<&str>,
    ) -> Response {
        let mut headers = vec![("Transport", transport)];
        headers.extend(session.map(|id| ("Session", id)));
        self.request_ok("SETUP", &format!("{base}/trackID={track}"), &headers)
            .await
    }

    /// Reads until the response to `cseq`, keeping interleaved frames.
    pub async fn response_for(&mut self, cseq: u32) -> Response {
        loop {
            match self.read_message().await {
                Some(Incoming::Response(response)) => {
                    assert_eq!(
                        response.header("CSeq").map(str::trim),
                        Some(cseq.to_string().as_str()),
                        "response does not echo CSeq {cseq}:\n{}",
                        response.head
                    );
                    return response;
                }
                Some(Incoming::Interleaved { channel, payload }) => {
                    self.skipped_frames.push((channel, payload))
                }
                None => panic!("connection closed while waiting for the response to CSeq {cseq}"),
            }
        }
    }

    /// Reads the next response or interleaved frame; `None` at end of
    /// stream. Panics if nothing complete arrives within 5 s.
    pub async fn read_message(&mut self) -> Option<Incoming> {
        let deadline = tokio::time::Instant::now() + READ_TIMEOUT;
        loop {
            if let Some(message) = self.parse_buffered() {
                return Some(message);
            }
            let mut chunk = [0u8; 16 * 1024];
            let read = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk))
                .await
                .expect("no complete RTSP message within 5 s")
                .expect("RTSP read");
            if read == 0 {
                assert!(
                    self.buf.is_empty(),
                    "connection closed inside a message: {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
                return None;
            }
            self.buf.extend_from_slice(&chunk[..read]);
        }
    }

    /// True if the server closes the connection within `limit` without
    /// sending anything more.
    pub async fn closed_within(&mut self, limit: Duration) -> bool {
        let mut chunk = [0u8; 1024];
        matches!(
            tokio::time::timeout(limit, self.stream.read(&mut chunk)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    fn parse_buffered(&mut self) -> Option<Incoming> {
        if self.buf.first() == Some(&b'$') {
            if self.buf.len() < 4 {
                return None;
            }
            let len = usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]]));
            if self.buf.len() < 4 + len {
                return None;
            }
            let channel = self.buf[1];
            let payload = self.buf[4..4 + len].to_vec();
            self.buf.drain(..4 + len);
            return Some(Incoming::Interleaved { channel, payload });
        }
        let end = self.buf.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.split_whitespace();
        assert_eq!(
            parts.next(),
            Some("RTSP/1.0"),
            "not an RTSP response: {head:?}"
        );
        let status = parts
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let body_len = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map(|(_, v)| v.parse::<usize>().expect("Content-Length"))
            .unwrap_or(0);
        if self.buf.len() < end + 4 + body_len {
            return None;
        }
        let body = self.buf[end + 4..end + 4 + body_len].to_vec();
        self.buf.drain(..end + 4 + body_len);
        Some(Incoming::Response(Response {
            status,
            head,
            headers,
            body,
        }))
    }
}

/// Binds an even UDP port and the next one on loopback (client RTP and
/// RTCP ports).
pub async fn udp_pair() -> (UdpSocket, UdpSocket) {
    for _ in 0..100 {
        let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = rtp.local_addr().unwrap().port();
        if port % 2 != 0 || port == u16::MAX {
            continue;
        }
        if let Ok(rtcp) = UdpSocket::bind(("127.0.0.1", port + 1)).await {
            return (rtp, rtcp);
        }
    }
    panic!("no free even/odd UDP port pair");
}

/// Transport header for unicast UDP to `rtp`'s port pair.
pub fn udp_transport(rtp: &UdpSocket) -> String {
    let port = rtp.local_addr().unwrap().port();
    format!("RTP/AVP;unicast;client_port={}-{}", port, port + 1)
}

/// A datagram with its source and arrival time.
#[derive(Debug, Clone)]
pub struct Datagram {
    /// Payload.
    pub data: Vec<u8>,
    /// Sender.
    pub from: SocketAddr,
    /// Arrival.
    pub at: Instant,
}

/// Receives everything arriving on `socket` for `duration`.
pub async fn recv_for(socket: &UdpSocket, duration: Duration) -> Vec<Datagram> {
    recv_until(socket, duration, |_| false).await
}

/// Receives datagrams for up to `duration`, stopping early after the
/// first one for which `stop` is true (it is included).
pub async fn recv_until(
    socket: &UdpSocket,
    duration: Duration,
    mut stop: impl FnMut(&Datagram) -> bool,
) -> Vec<Datagram> {
    let deadline = tokio::time::Instant::now() + duration;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Ok(result) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await {
        let (len, from) = result.expect("UDP receive");
        let datagram = Datagram {
            data: buf[..len].to_vec(),
            from,
            at: Instant::now(),
        };
        let done = stop(&datagram);
        out.push(datagram);
        if done {
            break;
        }
    }
    out
}

/// The fixed RTP header fields (RFC 3550 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Marker bit.
    pub marker: bool,
    /// Payload type.
    pub payload_type: u8,
    /// Sequence number.
    pub seq: u16,
    /// Timestamp.
    pub timestamp: u32,
    /// SSRC.
    pub ssrc: u32,
}

/// Parses an RTP header, panicking on anything that is not RTP version 2.
pub fn rtp_header(packet: &[u8]) -> RtpHeader {
    assert!(
        packet.len() >= 12,
        "RTP packet too short: {} bytes",
        packet.len()
    );
    assert_eq!(
        packet[0] >> 6,
        2,
        "RTP version is not 2: {:02x?}",
        &packet[..12]
    );
    RtpHeader {
        marker: packet[1] & 0x80 != 0,
        payload_type: packet[1] & 0x7f,
        seq: u16::from_be_bytes([packet[2], packet[3]]),
        timestamp: u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
        ssrc: u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
    }
}

/// One packet of an RTCP compound packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtcpPacket {
    /// Packet type (200 SR, 201 RR, 202 SDES, 203 BYE).
    pub packet_type: u8,
    /// The count field (report count, source count).
    pub count: u8,
    /// The whole packet, header included.
    pub data: Vec<u8>,
}

impl RtcpPacket {
    /// The SSRC listed first after the header (sender of SR, first source
    /// of BYE).
    pub fn first_ssrc(&self) -> Option<u32> {
        self.data
            .get(4..8)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Splits an RTCP compound packet (RFC 3550 §6.1), panicking if the
/// lengths do not add up.
pub fn rtcp_packets(compound: &[u8]) -> Vec<RtcpPacket> {
    let mut out = Vec::new();
    let mut rest = compound;
    assert!(!rest.is_empty(), "empty RTCP datagram");
    while !rest.is_empty() {
        assert!(rest.len() >= 4, "truncated RTCP header in {compound:02x?}");
        assert_eq!(rest[0] >> 6, 2, "RTCP version is not 2 in {compound:02x?}");
        let len = 4 * (usize::from(u16::from_be_bytes([rest[2], rest[3]])) + 1);
        assert!(
            len <= rest.len(),
            "RTCP length overruns datagram in {compound:02x?}"
        );
        out.push(RtcpPacket {
            packet_type: rest[1],
            count: rest[0] & 0x1f,
            data: rest[..len].to_vec(),
        });
        rest = &rest[len..];
    }
    out
}

/// RTCP packet types found in `datagrams`, in arrival order.
pub fn rtcp_types(datagrams: &[Datagram]) -> Vec<u8> {
    datagrams
        .iter()
        .flat_map(|d| rtcp_packets(&d.data))
        .map(|p| p.packet_type)
        .collect()
}

/// `b - a` as a signed distance on the 16-bit sequence circle.
pub fn seq_delta(a: u16, b: u16) -> i16 {
    b.wrapping_sub(a) as i16
}

/// `b - a` as a signed distance on the 32-bit timestamp circle.
pub fn ts_delta(a: u32, b: u32) -> i32 {
    b.wrapping_sub(a) as i32
}

/// Panics unless sequence numbers of `headers` are consecutive.
pub fn assert_consecutive(headers: &[RtpHeader], what: &str) {
    for pair in headers.windows(2) {
        assert_eq!(
            pair[1].seq,
            pair[0].seq.wrapping_add(1),
            "{what}: sequence jumps from {} to {}",
            pair[0].seq,
            pair[1].seq
        );
    }
}

/// Parses `key=value` lines (ffprobe `-of flat`) into a map.
pub fn flat_map(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect()
}

/// A raw client on a fresh server with both tracks of `/sample` set up
/// over UDP to their own port pairs.
pub struct UdpSession {
    /// The server.
    pub server: RunningServer,
    /// The control connection and its session.
    pub control: SessionControl,
    /// Client RTP socket of the video track.
    pub video: UdpSocket,
    /// Client RTCP socket of the video track.
    pub video_rtcp: UdpSocket,
    /// Client RTP socket of the audio track.
    pub audio: UdpSocket,
    /// Client RTCP socket of the audio track.
    pub audio_rtcp: UdpSocket,
}

impl UdpSession {
    /// Starts a server and sets up both tracks; the session is not playing.
    pub async fn setup() -> UdpSession {
        UdpSession::setup_with(|_| {}).await
    }

    /// Like [`UdpSession::setup`] on a server configured by `adjust`.
    pub async fn setup_with(adjust: impl FnOnce(&mut Config)) -> UdpSession {
        let server = start_server_with(adjust).await;
        let mut client = RtspClient::connect(server.rtsp_addr).await;
        let (video, video_rtcp) = udp_pair().await;
        let (audio, audio_rtcp) = udp_pair().await;
        let base = url(&server, "sample");
        let session = client
            .setup(&base, 0, &udp_transport(&video), None)
            .await
            .session_id();
        let audio_setup = client
            .setup(&base, 1, &udp_transport(&audio), Some(&session))
            .await;
        assert_eq!(
            audio_setup.session_id(),
            session,
            "audio SETUP joined another session"
        );
        UdpSession {
            server,
            control: SessionControl {
                client,
                session,
                base,
            },
            video,
            video_rtcp,
            audio,
            audio_rtcp,
        }
    }

    /// [`UdpSession::setup`], then PLAY from the start (200 OK).
    pub async fn playing() -> UdpSession {
        let mut udp = UdpSession::setup().await;
        udp.control.request_ok("PLAY").await;
        udp
    }
}

/// An RTSP connection with a session on a presentation.
pub struct SessionControl {
    /// The connection.
    pub client: RtspClient,
    /// The session id.
    pub session: String,
    /// The presentation URL.
    pub base: String,
}

impl SessionControl {
    /// `method` on the presentation within the session, with `extra`
    /// headers after `Session`.
    pub async fn request_with(&mut self, method: &str, extra: &[(&str, &str)]) -> Response {
        let mut headers = vec![("Session", self.session.as_str())];
        headers.extend_from_slice(extra);
        self.client.request(method, &self.base, &headers).await
    }

    /// `method` on the presentation within the session.
    pub async fn request(&mut self, method: &str) -> Response {
        self.request_with(method, &[]).await
    }

    /// Like [`SessionControl::request`]; panics unless 200 OK.
    pub async fn request_ok(&mut self, method: &str) -> Response {
        self.client
            .session_ok(method, &self.base, &self.session)
            .await
    }
}

/// The RTP headers of `datagrams`.
pub fn rtp_headers(datagrams: &[Datagram]) -> Vec<RtpHeader> {
    datagrams.iter().map(|d| rtp_header(&d.data)).collect()
}

/// Panics unless `datagrams` hold exactly one BYE listing `ssrc`.
pub fn assert_one_bye(datagrams: &[Datagram], ssrc: u32, what: &str) {
    let byes = datagrams
        .iter()
        .flat_map(|d| rtcp_packets(&d.data))
        .filter(|p| p.packet_type == 203 && p.count >= 1 && p.first_ssrc() == Some(ssrc))
        .count();
    assert_eq!(byes, 1, "{what}: {:?}", rtcp_types(datagrams));
}

/// Panics unless the RTCP compound packet `compound` starts with a sender
/// report from `ssrc`.
pub fn assert_sender_report(compound: &[u8], ssrc: u32, what: &str) {
    let packets = rtcp_packets(compound);
    assert_eq!(
        packets[0].packet_type, 200,
        "{what}: first RTCP is not an SR: {packets:?}"
    );
    assert_eq!(packets[0].first_ssrc(), Some(ssrc), "{what} SR SSRC");
}

/// Runs FFmpeg's `program` (`ffmpeg`, `ffprobe`) at `-v error` with
/// `-rtsp_transport transport` and then `args`, within 30 s; panics unless
/// it exits successfully.
pub async fn run_ffmpeg(program: &str, transport: &str, args: &[&str]) -> ToolRun {
    let mut all = vec!["-v", "error", "-rtsp_transport", transport];
    all.extend_from_slice(args);
    let run = run_tool(program, &all, Duration::from_secs(30)).await;
    assert!(
        run.status.success(),
        "{program} {transport} failed: {}\n{}",
        run.status,
        run.stderr
    );
    run
}

/// One line of FFmpeg's `framecrc` output (`stream, dts, pts, duration,
/// size, crc`) without the timestamps, which differ between a file and a
/// stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameCrc {
    /// Output stream index.
    pub stream: usize,
    /// Decoded frame size in bytes.
    pub size: usize,
    /// Adler-32 of the decoded frame, as printed (`0x…`).
    pub crc: String,
}

/// Parses `framecrc` output, panicking on lines it does not understand.
pub fn framecrcs(text: &str) -> Vec<FrameCrc> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            assert_eq!(fields.len(), 6, "framecrc line {line:?}");
            FrameCrc {
                stream: fields[0].parse().expect("framecrc stream"),
                size: fields[4].parse().expect("framecrc size"),
                crc: fields[5].to_string(),
            }
        })
        .collect()
}

/// FFmpeg's `-f framecrc` arguments that print every decoded picture once,
/// in presentation order, whatever its timestamp: without
/// `-fps_mode passthrough` the frame-rate logic may drop or repeat
/// pictures, which would hide or fake a difference.
pub const FRAMECRC_EVERY_PICTURE: [&str; 4] = ["-fps_mode", "passthrough", "-f", "framecrc"];

/// The framecrc of every picture of the sample decoded straight from the
/// file with ffmpeg.
pub async fn reference_video_framecrcs() -> Vec<FrameCrc> {
    let file = format!("{}/media/sample.mp4", env!("CARGO_MANIFEST_DIR"));
    let mut args = vec!["-v", "error", "-nostdin", "-i", &file, "-map", "0:v"];
    args.extend(FRAMECRC_EVERY_PICTURE);
    args.push("-");
    let run = run_tool("ffmpeg", &args, Duration::from_secs(60)).await;
    assert!(
        run.status.success(),
        "decoding the file failed:\n{}",
        run.stderr
    );
    let frames = framecrcs(&run.stdout);
    assert_eq!(
        frames.len(),
        SAMPLE_VIDEO_FRAMES,
        "pictures decoded from the file"
    );
    frames
}

/// Panics unless `received` are the same pictures as `reference` (size and
/// CRC, in order), naming the first that differs.
pub fn assert_same_pictures(received: &[FrameCrc], reference: &[FrameCrc], what: &str) {
    for (index, (got, want)) in received.iter().zip(reference).enumerate() {
        assert!(
            got.size == want.size && got.crc == want.crc,
            "{what}: picture {index} is {got:?}, decoding the file gave {want:?}"
        );
    }
    assert_eq!(
        received.len(),
        reference.len(),
        "{what}: pictures decoded, against the file's"
    );
}

/// Checks the decoded audio of the whole sample: `bytes` of stereo s16
/// (4 bytes per sample frame) are 10 s at 48 kHz, +/- 5 AAC frames.
/// Returns the sample count.
pub fn assert_whole_sample_audio(bytes: usize, what: &str) -> usize {
    let samples = bytes / 4;
    let expected = (SAMPLE_DURATION_SECS * 48_000.0) as usize;
    assert!(
        samples.abs_diff(expected) <= 5 * AAC_FRAME_TICKS as usize,
        "{what}: {samples} audio samples decoded, expected about {expected}"
    );
    samples
}

/// Panics unless the 10 s sample took real time (9 to 15 s) to play.
pub fn assert_real_time(elapsed: Duration, what: &str) {
    assert!(
        elapsed >= Duration::from_secs(9) && elapsed < Duration::from_secs(15),
        "{what}: 10 s sample played in {elapsed:?} (not real time)"
    );
}

/// One stream as ffprobe decoded it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbedStream {
    /// ffprobe's codec name (`h264`, `aac`, `mjpeg`).
    pub codec: String,
    /// Picture size, for video.
    pub size: Option<(u32, u32)>,
    /// Frames decoded.
    pub frames: usize,
}

/// What ffprobe decoded of an RTSP URL, and what it complained of.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    /// Its streams, in ffprobe's order.
    pub streams: Vec<ProbedStream>,
    /// Its standard error: decoder errors, at `-v error`.
    pub stderr: String,
}

impl Probe {
    /// Frames decoded of the stream with codec `codec` (0 without one).
    pub fn frames(&self, codec: &str) -> usize {
        self.streams
            .iter()
            .find(|s| s.codec == codec)
            .map_or(0, |s| s.frames)
    }
}

/// Decodes `url` with ffprobe over `transport` (`udp`, `tcp`,
/// `udp_multicast`) for `interval` (ffprobe's `-read_intervals`, e.g.
/// `%+3`) or to the end of the stream; panics if ffprobe fails.
pub async fn ffprobe(url: &str, transport: &str, interval: Option<&str>) -> Probe {
    let mut args = vec!["-v", "error", "-rtsp_transport", transport, "-count_frames"];
    if let Some(interval) = interval {
        args.extend(["-read_intervals", interval]);
    }
    args.extend([
        "-show_entries",
        "stream=codec_name,width,height,nb_read_frames",
        url,
    ]);
    let run = run_tool("ffprobe", &args, Duration::from_secs(40)).await;
    assert!(
        run.status.success(),
        "ffprobe {transport} {url}: {}",
        run.stderr
    );
    let mut probe = Probe {
        stderr: run.stderr,
        ..Probe::default()
    };
    let mut width = None;
    for line in run.stdout.lines() {
        match line.split_once('=') {
            None if line == "[STREAM]" => probe.streams.push(ProbedStream::default()),
            Some((key, value)) => {
                let Some(stream) = probe.streams.last_mut() else {
                    continue;
                };
                match key {
                    "codec_name" => stream.codec = value.to_string(),
                    "width" => width = value.parse().ok(),
                    "height" => stream.size = width.zip(value.parse().ok()),
                    "nb_read_frames" => stream.frames = value.parse().unwrap_or(0),
                    _ => {}
                }
            }
            None => {}
        }
    }
    probe
}

/// An HTTP/1.1 answer: status code and body.
#[derive(Debug)]
pub struct HttpAnswer {
    /// Status code.
    pub status: u16,
    /// Body, lossily decoded.
    pub body: String,
}

/// Sends `method path` to the HTTP server at `addr` (one request per
/// connection, `Connection: close`) and reads the whole answer.
pub async fn http(addr: SocketAddr, method: &str, path: &str) -> HttpAnswer {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("HTTP connect");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .expect("HTTP write");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.expect("HTTP read");
        answer
    };
    let answer = tokio::time::timeout(READ_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: no answer within {READ_TIMEOUT:?}"));
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{method} {path}: no header end in {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: no status in {head:?}"));
    let chunked = head
        .lines()
        .any(|line| line.eq_ignore_ascii_case("transfer-encoding: chunked"));
    HttpAnswer {
        status,
        body: if chunked {
            dechunk(body)
        } else {
            body.to_string()
        },
    }
}

/// The body of a chunked transfer (RFC 9112 §7.1), extensions ignored.
fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    while let Some((size_line, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size {size_line:?}"));
        if size == 0 {
            break;
        }
        body.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    body
}

/// The value of the sample of `metric` with exactly `labels` (as written
/// between the braces) in a Prometheus text exposition.
pub fn metric_value(text: &str, metric: &str, labels: &str) -> Option<f64> {
    let series = format!("{metric}{{{labels}}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(series.as_str()))
        .map(|value| value.parse().expect("a number"))
}

/// The MD5 of each picture GStreamer's checksumsink printed: its lines
/// `H:MM:SS.nnnnnnnnn <md5>`, one per buffer.
pub fn gstreamer_checksums(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|line| {
            let (time, hash) = line.trim().split_once(' ')?;
            let is_time = time.contains(':')
                && time
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == ':' || c == '.');
            let is_md5 = hash.len() == 32 && hash.chars().all(|c| c.is_ascii_hexdigit());
            (is_time && is_md5).then(|| hash.to_string())
        })
        .collect()
}

/// The MD5 of every picture of the sample, decoded by GStreamer straight
/// from the file: what a stream of it must decode to.
pub async fn gstreamer_file_checksums() -> Vec<String> {
    let file = format!("location={}/media/sample.mp4", env!("CARGO_MANIFEST_DIR"));
    let run = run_tool(
        "gst-launch-1.0",
        &[
            "-q",
            "filesrc",
            &file,
            "!",
            "qtdemux",
            "!",
            "h264parse",
            "!",
            "avdec_h264",
            "!",
            "checksumsink",
            "hash=md5",
        ],
        Duration::from_secs(30),
    )
    .await;
    assert!(
        run.status.success(),
        "decoding the file failed:\n{}",
        run.stderr
    );
    let sums = gstreamer_checksums(&run.stdout);
    assert_eq!(
        sums.len(),
        SAMPLE_VIDEO_FRAMES,
        "pictures decoded from the file"
    );
    sums
}

/// A TCP port nobody listens on now, on loopback.
pub async fn free_tcp_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// The `rtpcast` binary started on loopback with free RTSP and RTP/RTCP
/// ports, then `args` (options given later win), its output piped and
/// killed on drop; returns it with its RTSP address and RTP port. Waiting
/// for it to be ready is the caller's.
pub async fn spawn_rtpcast<S: AsRef<std::ffi::OsStr>>(
    args: &[S],
) -> (tokio::process::Child, SocketAddr, u16) {
    let rtsp_port = free_tcp_port().await;
    let (rtp, rtcp) = udp_pair().await;
    let rtp_port = rtp.local_addr().unwrap().port();
    drop((rtp, rtcp));
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rtpcast"))
        .args(["--bind", "127.0.0.1"])
        .args(["--rtsp-port", &rtsp_port.to_string()])
        .args(["--rtp-port", &rtp_port.to_string()])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("rtpcast starts");
    (
        child,
        SocketAddr::from(([127, 0, 0, 1], rtsp_port)),
        rtp_port,
    )
}

/// Waits until `rtsp` accepts connections, for up to 5 s.
pub async fn wait_until_listening(rtsp: SocketAddr) {
    for _ in 0..100 {
        if TcpStream::connect(rtsp).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("rtpcast did not listen on {rtsp}");
}
