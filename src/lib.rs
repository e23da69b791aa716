//! rtpcast: an RTSP (RFC 2326) / RTP (RFC 3550) streaming server.
//!
//! The protocol logic is sans-IO: RTSP session handling, SDP, packetizers,
//! RTCP and pacing are plain structs fed bytes, `now` and a seeded
//! generator. The [`server`] module is the thin tokio layer that moves bytes
//! between sockets, files and that core; `clippy.toml` keeps clocks, files,
//! sockets, locks and OS randomness out of everything else.
//!
//! Where a setting comes from: [`settings`] merges the command line and
//! the TOML configuration file into a [`config::Config`], with file, line
//! and key in every error; [`server::reload`] reads the file again and
//! applies it to a running server.
//!
//! Where a byte comes from:
//!
//! - [`rtsp`]: requests framed ([`rtsp::framing`]), answered by
//!   [`rtsp::handler::RtspHandler`] with refusals from one table
//!   ([`rtsp::refusal`]); [`sdp`] writes DESCRIBE bodies and reads ANNOUNCE
//!   ones ([`sdp::announce`]).
//! - [`media`]: containers demuxed to samples ([`media::mp4`]).
//! - [`source`]: what feeds a viewer; [`source::playout::FilePlayout`] is
//!   one viewer's timeline over a file (seek, loop, Range end), planning the
//!   reads the I/O layer does.
//! - [`codec`]: one folder per RTP payload format; packetizers cut access
//!   units into shared [`codec::Payloads`] (bytes and marker bits only).
//! - [`viewer`]: pacing, sender reports and BYE of one session
//!   ([`viewer::Viewer`]) over per-track senders that write each viewer's
//!   RTP header ([`viewer::sender::TrackSender`], [`rtp`]) and keep what
//!   its receiver reports say ([`stats`]).
//! - [`rtcp`]: sender/receiver reports, SDES, BYE on the wire.
//! - [`stats`] and [`metrics`]: the snapshots the I/O layer publishes, and
//!   their Prometheus text for the HTTP API (`server/api`).
//!
//! The drive loop, as `server/` runs it (and `tests/virtual_clock.rs` with
//! simulated time):
//!
//! ```text
//! request  --> RtspHandler::handle_request(request, ctx{received: now}, media, viewers)
//!                -> response + actions (Spawn, Wake, RouteRtcp)
//! per viewer:  loop {
//!                 viewer.missing_reads() --> read the samples --> viewer.deliver(..)
//!                 while let Some(t) = viewer.poll_transmit(now, wall) { send t }
//!                 sleep until viewer.poll_timeout() or a Wake
//!              }
//! RTCP     --> routed by source --> viewer.handle_rtcp(bytes, now, wall)
//! each 1 s --> RtspHandler::expire_sessions(now, viewers)
//! ```

#![warn(missing_docs)]

pub mod codec;
pub mod config;
pub mod live;
pub mod media;
pub mod metrics;
pub mod rtcp;
pub mod rtp;
pub mod rtsp;
pub mod sdp;
pub mod server;
pub mod settings;
pub mod source;
pub mod stats;
pub mod viewer;
