//! rtpcast: an RTSP (RFC 2326) / RTP (RFC 3550) streaming server.
//!
//! The protocol logic is sans-IO: RTSP session handling, SDP, packetizers,
//! RTCP and pacing are plain structs fed bytes and time. The `server` module
//! is the thin tokio layer that moves bytes between sockets and that core.

#![warn(missing_docs)]

pub mod codec;
pub mod config;
pub mod media;
pub mod rtcp;
pub mod rtp;
pub mod rtsp;
pub mod sdp;
pub mod server;
pub mod source;
pub mod stats;
pub mod viewer;
