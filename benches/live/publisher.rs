//! The publisher: ANNOUNCEs the stream to a live path, SETUPs its track
//! with `mode=record` (UDP to the server's RTP port, or interleaved),
//! RECORDs, then sends one access unit per frame interval, noting when
//! each RTP packet left.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{oneshot, watch};

use crate::rtsp_client::{connect_to, request, request_with_body, setup, Inbound, Outbound};
use crate::stream::{payload_hash, PacketKey, Stream, PAYLOAD_TYPE, RTP_HEADER_LEN};
use crate::Transport;

/// GET_PARAMETER interval, well inside the server's 60 s session timeout.
const KEEPALIVE: Duration = Duration::from_secs(20);
/// First RTP timestamp and sequence number (any value; these are not 0
/// so that a wrong offset shows).
const FIRST_TIMESTAMP: u32 = 0x1234_5678;
const FIRST_SEQUENCE: u16 = 0x4321;
/// The publisher's SSRC.
const SSRC: u32 = 0x7274_7063;

/// One RTP packet the publisher sent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sent {
    /// What matches it to the viewers' packets.
    pub(crate) key: PacketKey,
    /// Written to the socket.
    pub(crate) at: Instant,
}

/// Where the publisher's RTP goes.
enum Media {
    /// From `socket` (announced as `client_port`) to the server's RTP port;
    /// `_rtcp` stays open for the server's receiver reports.
    Udp {
        socket: UdpSocket,
        _rtcp: UdpSocket,
        server: SocketAddr,
    },
    /// Interleaved on channel 0 of the RTSP connection.
    Interleaved,
}

/// Publishes `stream` to `path` until `stop`; sends `()` on `recording`
/// once RECORD is answered. Returns every packet sent.
pub(crate) async fn publish(
    server: SocketAddr,
    path: String,
    stream: Arc<Stream>,
    transport: Transport,
    recording: oneshot::Sender<()>,
    mut stop: watch::Receiver<bool>,
) -> Result<Vec<Sent>, String> {
    let (mut out, mut inbound) = connect_to(Ipv4Addr::LOCALHOST, server, &path).await?;
    let url = out.presentation_url().to_string();
    request_with_body(
        &mut out,
        &mut inbound,
        "ANNOUNCE",
        &url,
        "application/sdp",
        &stream.sdp(),
    )
    .await?;
    let track_url = format!("{url}/streamid=0");
    let mut media = match transport {
        Transport::Udp => {
            let bind = || async {
                UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
                    .await
                    .map_err(|e| e.to_string())
            };
            let (socket, rtcp) = (bind().await?, bind().await?);
            let port = |s: &UdpSocket| s.local_addr().map(|a| a.port()).map_err(|e| e.to_string());
            let header = format!(
                "RTP/AVP;unicast;client_port={}-{};mode=record",
                port(&socket)?,
                port(&rtcp)?
            );
            let reply = setup(&mut out, &mut inbound, &track_url, &header).await?;
            let server_port = reply
                .transport
                .as_deref()
                .and_then(server_rtp_port)
                .ok_or("SETUP answered without server_port")?;
            Media::Udp {
                socket,
                _rtcp: rtcp,
                server: SocketAddr::new(server.ip(), server_port),
            }
        }
        Transport::Tcp => {
            let header = "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record";
            setup(&mut out, &mut inbound, &track_url, header).await?;
            Media::Interleaved
        }
    };
    request(&mut out, &mut inbound, "RECORD", &url, "", &mut |_, _| {}).await?;
    let _ = recording.send(());
    send_frames(&stream, &mut out, &mut inbound, &mut media, &mut stop).await
}

/// The RTP port in a SETUP answer's `server_port=RTP-RTCP`.
fn server_rtp_port(transport: &str) -> Option<u16> {
    transport
        .split(';')
        .find_map(|part| part.trim().strip_prefix("server_port="))
        .and_then(|ports| ports.split('-').next()?.parse().ok())
}

/// The sending loop: one access unit every frame interval, the RTSP
/// connection read meanwhile (receiver reports, keep-alive answers).
async fn send_frames(
    stream: &Stream,
    out: &mut Outbound,
    inbound: &mut Inbound,
    media: &mut Media,
    stop: &mut watch::Receiver<bool>,
) -> Result<Vec<Sent>, String> {
    let mut sent = Vec::new();
    let mut frames = tokio::time::interval(Duration::from_secs(1) / stream.fps);
    let mut keepalive =
        tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
    let mut sequence = FIRST_SEQUENCE;
    let mut packet = Vec::new();
    for frame in 0u32.. {
        let unit = &stream.units[frame as usize % stream.units.len()];
        let timestamp = FIRST_TIMESTAMP.wrapping_add(frame.wrapping_mul(stream.frame_ticks()));
        loop {
            tokio::select! {
                biased;
                _ = stop.changed() => return Ok(sent),
                _ = frames.tick() => break,
                _ = keepalive.tick() => {
                    let url = out.presentation_url().to_string();
                    out.send("GET_PARAMETER", &url, "").await?;
                }
                read = inbound.fill() => {
                    if !matches!(read, Ok(n) if n > 0) {
                        return Err("the server closed the publisher's connection".into());
                    }
                    while inbound.next_reply(&mut |_, _| {})?.is_some() {}
                }
            }
        }
        for (index, payload) in unit.payloads.iter().enumerate() {
            let marker = index + 1 == unit.payloads.len();
            packet.clear();
            packet.extend_from_slice(&[0x80, PAYLOAD_TYPE | if marker { 0x80 } else { 0 }]);
            packet.extend_from_slice(&sequence.to_be_bytes());
            packet.extend_from_slice(&timestamp.to_be_bytes());
            packet.extend_from_slice(&SSRC.to_be_bytes());
            debug_assert_eq!(packet.len(), RTP_HEADER_LEN);
            packet.extend_from_slice(payload);
            sequence = sequence.wrapping_add(1);
            let at = Instant::now();
            let written = match media {
                Media::Udp { socket, server, .. } => {
                    socket.send_to(&packet, *server).await.map(|_| ())
                }
                Media::Interleaved => out.send_interleaved(0, &packet).await,
            };
            written.map_err(|e| format!("sending RTP: {e}"))?;
            sent.push(Sent {
                key: (timestamp, payload_hash(payload)),
                at,
            });
        }
    }
    Ok(sent)
}
