//! Where one track's RTP and RTCP packets go: a fact at the RTP level that
//! RTSP negotiation produces (RFC 2326 §12.39) and the sender only reads.

use std::net::SocketAddr;

/// Where a track's packets go, as agreed in SETUP
/// (RFC 2326 §10.4, §12.39).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// UDP unicast to the client's RTP and RTCP ports (`client_port`).
    Udp {
        /// Destination of RTP packets.
        rtp: SocketAddr,
        /// Destination of RTCP packets.
        rtcp: SocketAddr,
    },
    /// Interleaved on the RTSP TCP connection (RFC 2326 §10.12).
    Interleaved {
        /// Channel carrying RTP.
        rtp_channel: u8,
        /// Channel carrying RTCP.
        rtcp_channel: u8,
    },
}
