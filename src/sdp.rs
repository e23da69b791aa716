//! SDP (RFC 4566) session descriptions for DESCRIBE.
use crate::media::TrackInfo;

/// Stub.
pub fn describe(_tracks: &[TrackInfo], _duration_secs: f64, _server_ip: std::net::IpAddr) -> String { todo!() }
/// Stub.
pub fn payload_type(_i: usize) -> u8 { todo!() }
/// Stub.
pub fn track_control(_i: usize) -> String { todo!() }
/// Stub.
pub fn parse_track_control(_s: &str) -> Option<usize> { todo!() }
