//! A viewer of one path: DESCRIBE, SETUP of its video track, PLAY, and
//! every video RTP packet handed on with the time it was read.

use std::future::pending;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::rtsp_client::{connect_to, request, setup, Inbound, Outbound};
use crate::Transport;

/// SO_RCVBUF asked for on the RTP socket, so the GOP cache's burst fits.
const RECV_BUFFER: usize = 2 << 20;

/// How a viewer receives its video RTP.
enum Media {
    /// On its own UDP socket; `_rtcp` stays open so sender reports are not
    /// refused.
    Udp { rtp: UdpSocket, _rtcp: UdpSocket },
    /// Interleaved on the RTSP connection, channel 0.
    Interleaved,
}

/// A viewer set up and ready to PLAY.
pub(crate) struct Viewer {
    out: Outbound,
    inbound: Inbound,
    media: Media,
}

/// Binds a UDP socket on loopback with `buffer` bytes of receive buffer.
fn bind_udp(buffer: Option<usize>) -> std::io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    if let Some(size) = buffer {
        socket.set_recv_buffer_size(size)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())?;
    UdpSocket::from_std(socket.into())
}

/// The SETUP URL of the first video track of `sdp`, from its `a=control`
/// (RFC 2326 §C.1.1: absolute, or relative to the presentation URL).
fn video_control(sdp: &str, presentation: &str) -> Option<String> {
    let mut video = false;
    for line in sdp.lines() {
        if let Some(media) = line.strip_prefix("m=") {
            video = media.starts_with("video");
        } else if let Some(control) = line.strip_prefix("a=control:").filter(|_| video) {
            let control = control.trim();
            return Some(if control.contains("://") {
                control.to_string()
            } else {
                format!("{presentation}/{control}")
            });
        }
    }
    None
}

impl Viewer {
    /// Connects, DESCRIBEs `path` and SETUPs its video track.
    pub(crate) async fn open(
        server: SocketAddr,
        path: &str,
        transport: Transport,
    ) -> Result<Viewer, String> {
        let (mut out, mut inbound) = connect_to(Ipv4Addr::LOCALHOST, server, path).await?;
        let url = out.presentation_url().to_string();
        let accept = "Accept: application/sdp\r\n";
        let sdp = request(
            &mut out,
            &mut inbound,
            "DESCRIBE",
            &url,
            accept,
            &mut |_, _| {},
        )
        .await?
        .body;
        let track = video_control(&sdp, &url).ok_or("no video track in the SDP")?;
        let media = match transport {
            Transport::Udp => {
                let io = |e: std::io::Error| e.to_string();
                let rtp = bind_udp(Some(RECV_BUFFER)).map_err(io)?;
                let rtcp = bind_udp(None).map_err(io)?;
                let port = |s: &UdpSocket| s.local_addr().map(|a| a.port()).map_err(io);
                let header = format!(
                    "RTP/AVP;unicast;client_port={}-{}",
                    port(&rtp)?,
                    port(&rtcp)?
                );
                setup(&mut out, &mut inbound, &track, &header).await?;
                Media::Udp { rtp, _rtcp: rtcp }
            }
            Transport::Tcp => {
                let header = "RTP/AVP/TCP;unicast;interleaved=0-1";
                setup(&mut out, &mut inbound, &track, header).await?;
                Media::Interleaved
            }
        };
        Ok(Viewer {
            out,
            inbound,
            media,
        })
    }

    /// Sends PLAY and hands each video RTP packet to `on_packet` with the
    /// time it was read, until `on_packet` returns true (once PLAY is
    /// answered), `stop` changes, or `limit` passes. Returns when PLAY was
    /// sent.
    pub(crate) async fn play(
        &mut self,
        on_packet: &mut (dyn FnMut(Instant, &[u8]) -> bool + Send),
        stop: &mut watch::Receiver<bool>,
        limit: Duration,
    ) -> Result<Instant, String> {
        let Viewer {
            out,
            inbound,
            media,
        } = self;
        let url = format!("{}/", out.presentation_url());
        let sent = Instant::now();
        let cseq = out.send("PLAY", &url, "").await?;
        let deadline = tokio::time::sleep(limit);
        tokio::pin!(deadline);
        let (mut answered, mut done) = (false, false);
        let mut buf = vec![0u8; 2048];
        loop {
            // Frames read together with the PLAY answer are handled before
            // waiting for more.
            let mut frames = |channel: u8, payload: &[u8]| {
                if channel == 0 && !done {
                    done = on_packet(Instant::now(), payload);
                }
            };
            while let Some(reply) = inbound.next_reply(&mut frames)? {
                if reply.cseq == Some(cseq) {
                    if reply.status != 200 {
                        return Err(format!("PLAY {url}: status {}", reply.status));
                    }
                    answered = true;
                }
            }
            if done && answered {
                return Ok(sent);
            }
            let udp = async {
                match media {
                    Media::Udp { rtp, .. } => rtp.recv(&mut buf).await,
                    Media::Interleaved => pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = stop.changed() => return Ok(sent),
                _ = &mut deadline => return Ok(sent),
                read = inbound.fill() => {
                    if !matches!(read, Ok(n) if n > 0) {
                        return Err("the server closed the connection".into());
                    }
                }
                received = udp => {
                    let len = received.map_err(|e| format!("receiving RTP: {e}"))?;
                    if !done {
                        done = on_packet(Instant::now(), &buf[..len]);
                    }
                }
            }
        }
    }

    /// Sends TEARDOWN and waits for its answer.
    pub(crate) async fn teardown(mut self) -> Result<(), String> {
        let url = format!("{}/", self.out.presentation_url());
        request(
            &mut self.out,
            &mut self.inbound,
            "TEARDOWN",
            &url,
            "",
            &mut |_, _| {},
        )
        .await
        .map(|_| ())
    }
}
