//! RTSP 1.0 (RFC 2326) on top of rtsp-types: connection framing, request
//! URLs, Range, Scale and Speed, Transport negotiation, the per-client
//! session state machine, method handling and the refusals' status codes;
//! access rules and authentication.

pub mod access;
pub mod auth;
pub mod framing;
pub mod handler;
pub mod range;
pub mod rate;
pub mod refusal;
pub mod session;
pub mod transport;
pub mod url;
