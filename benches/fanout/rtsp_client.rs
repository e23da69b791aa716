//! The minimal RTSP client the viewers use: requests and their responses,
//! and interleaved frames read from the same connection.
//!
//! Shared by the fan-out and live benches (`#[path]`), each of which uses
//! part of it.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpSocket;

/// Longest wait for one RTSP response.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads an RTSP connection: responses and interleaved frames.
pub(crate) struct Inbound {
    /// The connection's read half.
    reader: OwnedReadHalf,
    /// Received bytes; `start..end` is not parsed yet.
    buf: Vec<u8>,
    /// First unparsed byte.
    start: usize,
    /// End of received bytes.
    end: usize,
}

/// Something parsed from an RTSP connection.
enum Item<'a> {
    /// An interleaved frame (RFC 2326 §10.12).
    Frame {
        /// Its channel.
        channel: u8,
        /// The RTP or RTCP packet.
        payload: &'a [u8],
    },
    /// A response.
    Response(Reply),
}

/// The parts of an RTSP response the viewer needs.
#[derive(Debug)]
pub(crate) struct Reply {
    /// Status code.
    pub(crate) status: u16,
    /// CSeq header value.
    pub(crate) cseq: Option<u32>,
    /// Session id, without `;timeout=`.
    session: Option<String>,
    /// The Transport header (SETUP's answer: `server_port=`, `interleaved=`).
    pub(crate) transport: Option<String>,
    /// The body (`Content-Length` bytes), e.g. DESCRIBE's SDP.
    pub(crate) body: String,
}

impl Inbound {
    /// Smallest free space offered to one read.
    const MIN_READ: usize = 16 * 1024;

    /// Wraps a read half.
    fn new(reader: OwnedReadHalf) -> Self {
        Inbound {
            reader,
            buf: vec![0; 128 * 1024],
            start: 0,
            end: 0,
        }
    }

    /// Reads more bytes; `Ok(0)` at end of stream.
    pub(crate) async fn fill(&mut self) -> std::io::Result<usize> {
        if self.buf.len() - self.end < Self::MIN_READ {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.buf.len() - self.end < Self::MIN_READ {
                self.buf.resize(self.buf.len() * 2, 0);
            }
        }
        let read = self.reader.read(&mut self.buf[self.end..]).await?;
        self.end += read;
        Ok(read)
    }

    /// The next response that has arrived, passing the interleaved frames
    /// before it to `frames`; `None` once every complete item buffered so
    /// far is parsed.
    pub(crate) fn next_reply(
        &mut self,
        frames: &mut dyn FnMut(u8, &[u8]),
    ) -> Result<Option<Reply>, String> {
        while let Some(item) = self.next_item()? {
            match item {
                Item::Frame { channel, payload } => frames(channel, payload),
                Item::Response(reply) => return Ok(Some(reply)),
            }
        }
        Ok(None)
    }

    /// The next complete item, if one has arrived.
    fn next_item(&mut self) -> Result<Option<Item<'_>>, String> {
        let pending = &self.buf[self.start..self.end];
        match pending.first() {
            None => Ok(None),
            Some(b'$') => {
                if pending.len() < 4 {
                    return Ok(None);
                }
                let len = usize::from(u16::from_be_bytes([pending[2], pending[3]]));
                if pending.len() < 4 + len {
                    return Ok(None);
                }
                let channel = pending[1];
                let from = self.start + 4;
                self.start = from + len;
                Ok(Some(Item::Frame {
                    channel,
                    payload: &self.buf[from..from + len],
                }))
            }
            Some(b'R') => {
                let Some(head_len) = pending.windows(4).position(|w| w == b"\r\n\r\n") else {
                    return if pending.len() > 64 * 1024 {
                        Err("response header too long".into())
                    } else {
                        Ok(None)
                    };
                };
                let head = String::from_utf8_lossy(&pending[..head_len]);
                let mut lines = head.split("\r\n");
                let status = lines
                    .next()
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
                    .ok_or_else(|| format!("bad status line in {head:?}"))?;
                let mut reply = Reply {
                    status,
                    cseq: None,
                    session: None,
                    transport: None,
                    body: String::new(),
                };
                let mut body = 0;
                for line in lines {
                    let Some((name, value)) = line.split_once(':') else {
                        continue;
                    };
                    let value = value.trim();
                    match name.trim().to_ascii_lowercase().as_str() {
                        "cseq" => reply.cseq = value.parse().ok(),
                        "session" => {
                            reply.session = value.split(';').next().map(|s| s.trim().to_string())
                        }
                        "transport" => reply.transport = Some(value.to_string()),
                        "content-length" => body = value.parse().unwrap_or(0),
                        _ => {}
                    }
                }
                let total = head_len + 4 + body;
                if pending.len() < total {
                    return Ok(None);
                }
                reply.body = String::from_utf8_lossy(&pending[head_len + 4..total]).into_owned();
                self.start += total;
                Ok(Some(Item::Response(reply)))
            }
            Some(other) => Err(format!(
                "unexpected byte {other:#04x} on the RTSP connection"
            )),
        }
    }
}

/// Writes requests on an RTSP connection.
pub(crate) struct Outbound {
    /// The connection's write half.
    writer: OwnedWriteHalf,
    /// CSeq of the latest request.
    cseq: u32,
    /// The session id once SETUP answered.
    session: Option<String>,
    /// Presentation URL: the sample's, or the path given to [`connect_to`].
    url: String,
}

impl Outbound {
    /// The sample's presentation URL, used by OPTIONS and DESCRIBE.
    pub(crate) fn presentation_url(&self) -> &str {
        &self.url
    }

    /// The aggregate control URL (the sample's URL with a trailing `/`),
    /// used by PLAY, GET_PARAMETER and TEARDOWN.
    pub(crate) fn aggregate_url(&self) -> String {
        format!("{}/", self.url)
    }

    /// Sends `method url` with `extra` header lines (each ending in CRLF)
    /// and the session header; returns its CSeq.
    pub(crate) async fn send(
        &mut self,
        method: &str,
        url: &str,
        extra: &str,
    ) -> Result<u32, String> {
        self.send_with_body(method, url, extra, "").await
    }

    /// [`Self::send`] with a body (its `Content-Length` added when it is
    /// not empty; `extra` names its type).
    pub(crate) async fn send_with_body(
        &mut self,
        method: &str,
        url: &str,
        extra: &str,
        body: &str,
    ) -> Result<u32, String> {
        self.cseq += 1;
        let session = self
            .session
            .as_ref()
            .map(|s| format!("Session: {s}\r\n"))
            .unwrap_or_default();
        let length = if body.is_empty() {
            String::new()
        } else {
            format!("Content-Length: {}\r\n", body.len())
        };
        let request = format!(
            "{method} {url} RTSP/1.0\r\nCSeq: {}\r\nUser-Agent: rtpcast-bench\r\n{session}{extra}{length}\r\n{body}",
            self.cseq
        );
        self.writer
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("{method}: {e}"))?;
        Ok(self.cseq)
    }

    /// Writes `packet` as an interleaved frame on `channel` (RFC 2326
    /// §10.12).
    pub(crate) async fn send_interleaved(
        &mut self,
        channel: u8,
        packet: &[u8],
    ) -> std::io::Result<()> {
        let len = u16::try_from(packet.len())
            .map_err(|_| std::io::Error::other("packet too long to interleave"))?;
        let [high, low] = len.to_be_bytes();
        let mut frame = Vec::with_capacity(4 + packet.len());
        frame.extend_from_slice(&[b'$', channel, high, low]);
        frame.extend_from_slice(packet);
        self.writer.write_all(&frame).await
    }
}

/// Sends a request and waits for its response, passing interleaved
/// frames that arrive meanwhile to `frames`; fails on a non-200 answer.
pub(crate) async fn request(
    out: &mut Outbound,
    inbound: &mut Inbound,
    method: &str,
    url: &str,
    extra: &str,
    frames: &mut (dyn FnMut(u8, &[u8]) + Send),
) -> Result<Reply, String> {
    let cseq = out.send(method, url, extra).await?;
    response(inbound, cseq, method, url, frames).await
}

/// [`request`] with a body of type `content_type`, for ANNOUNCE.
pub(crate) async fn request_with_body(
    out: &mut Outbound,
    inbound: &mut Inbound,
    method: &str,
    url: &str,
    content_type: &str,
    body: &str,
) -> Result<Reply, String> {
    let extra = format!("Content-Type: {content_type}\r\n");
    let cseq = out.send_with_body(method, url, &extra, body).await?;
    response(inbound, cseq, method, url, &mut |_, _| {}).await
}

/// Waits for the response to request `cseq`, passing interleaved frames
/// that arrive meanwhile to `frames`; fails on a non-200 answer.
async fn response(
    inbound: &mut Inbound,
    cseq: u32,
    method: &str,
    url: &str,
    frames: &mut (dyn FnMut(u8, &[u8]) + Send),
) -> Result<Reply, String> {
    let exchange = async {
        loop {
            while let Some(reply) = inbound.next_reply(frames)? {
                if reply.cseq == Some(cseq) {
                    return Ok(reply);
                }
            }
            match inbound.fill().await {
                Ok(0) => return Err("connection closed".to_string()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    };
    let reply = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("{method}: no response in {REQUEST_TIMEOUT:?}"))??;
    if reply.status != 200 {
        return Err(format!("{method} {url}: status {}", reply.status));
    }
    Ok(reply)
}

/// Opens the RTSP connection from `ip`, for the sample.
pub(crate) async fn connect(
    ip: Ipv4Addr,
    server: SocketAddr,
) -> Result<(Outbound, Inbound), String> {
    connect_to(ip, server, "/sample").await
}

/// Opens the RTSP connection from `ip`, for `path` (`/live/cam`).
pub(crate) async fn connect_to(
    ip: Ipv4Addr,
    server: SocketAddr,
    path: &str,
) -> Result<(Outbound, Inbound), String> {
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind(SocketAddr::from((ip, 0)))
        .map_err(|e| format!("binding {ip}: {e}"))?;
    let stream = socket
        .connect(server)
        .await
        .map_err(|e| format!("connecting: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (reader, writer) = stream.into_split();
    let url = format!("rtsp://{server}{path}");
    Ok((
        Outbound {
            writer,
            cseq: 0,
            session: None,
            url,
        },
        Inbound::new(reader),
    ))
}

/// DESCRIBEs the sample on a connection; returns the SDP.
pub(crate) async fn describe(out: &mut Outbound, inbound: &mut Inbound) -> Result<String, String> {
    let url = out.presentation_url().to_string();
    let mut ignore = |_: u8, _: &[u8]| {};
    let extra = "Accept: application/sdp\r\n";
    let reply = request(out, inbound, "DESCRIBE", &url, extra, &mut ignore).await?;
    Ok(reply.body)
}

/// SETUPs `url` with `transport`; the first SETUP of a connection
/// keeps the session id it answers for the requests after it.
pub(crate) async fn setup(
    out: &mut Outbound,
    inbound: &mut Inbound,
    url: &str,
    transport: &str,
) -> Result<Reply, String> {
    let extra = format!("Transport: {transport}\r\n");
    let reply = request(out, inbound, "SETUP", url, &extra, &mut |_, _| {}).await?;
    if out.session.is_none() {
        out.session = Some(
            reply
                .session
                .clone()
                .ok_or("SETUP answered without Session")?,
        );
    }
    Ok(reply)
}

/// When a viewer sent PLAY and when its answer arrived.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlayTimes {
    /// PLAY written to the connection.
    pub(crate) sent: Instant,
    /// Its 200 response parsed.
    pub(crate) answered: Instant,
}

/// SETUPs video then audio with `transports`, then PLAYs.
pub(crate) async fn setup_and_play(
    out: &mut Outbound,
    inbound: &mut Inbound,
    transports: [String; 2],
) -> Result<PlayTimes, String> {
    let mut ignore = |_: u8, _: &[u8]| {};
    for (track, transport) in transports.iter().enumerate() {
        let url = format!("{}/trackID={track}", out.url);
        setup(out, inbound, &url, transport).await?;
    }
    let sent = Instant::now();
    let url = out.aggregate_url();
    request(out, inbound, "PLAY", &url, "", &mut ignore).await?;
    Ok(PlayTimes {
        sent,
        answered: Instant::now(),
    })
}
