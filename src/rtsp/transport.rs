//! Transport header negotiation (RFC 2326 §12.39).
use std::net::{IpAddr, SocketAddr};

/// Stub: where a track's packets go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// UDP unicast to the client's RTP and RTCP ports.
    Udp { rtp: SocketAddr, rtcp: SocketAddr },
    /// Interleaved on the RTSP TCP connection.
    Interleaved { rtp_channel: u8, rtcp_channel: u8 },
}

/// Stub: result of negotiation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The chosen delivery.
    pub delivery: Delivery,
    /// The Transport header value to answer with.
    pub reply: String,
}

/// Stub.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// 461.
    #[error("unsupported transport: {0}")]
    Unsupported(String),
    /// 400.
    #[error("malformed Transport header: {0}")]
    Malformed(String),
}

/// Stub.
pub fn negotiate(_header: &str, _client_ip: IpAddr, _server_rtp_port: u16, _free_channel: u8) -> Result<Negotiated, TransportError> { todo!() }
