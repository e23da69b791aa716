//! RTSP 1.0 (RFC 2326) on top of rtsp-types: connection framing, Transport
//! negotiation, the per-client session state machine and method handling.

pub mod framing;
pub mod handler;
pub mod session;
pub mod transport;
