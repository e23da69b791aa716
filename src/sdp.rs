//! SDP (RFC 4566) session descriptions for DESCRIBE.
use crate::media::TrackInfo;

/// Stub.
pub fn describe(_tracks: &[TrackInfo], _duration_secs: f64, _server_ip: std::net::IpAddr) -> String { todo!() }
