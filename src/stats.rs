//! Snapshots of what the server is doing, as plain values: each session
//! task publishes its own, and readers (tests, later the operations API
//! and metrics) take copies without touching the RTSP handler or any
//! viewer.

use std::time::Duration;

/// What the viewer's receiver reports (RFC 3550 §6.4.2) and our own
/// counters say about one track: the inputs of rate adaptation and of the
/// stats the operations API shows.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TrackStats {
    /// RTP packets sent.
    pub packets_sent: u64,
    /// RTP payload bytes sent.
    pub bytes_sent: u64,
    /// Access units skipped because the viewer could not keep up.
    pub units_skipped: u64,
    /// Receiver reports received about this track.
    pub reports: u64,
    /// Fraction of packets lost since the previous report, 0.0–1.0
    /// (RFC 3550 §6.4.1 fraction lost / 256).
    pub fraction_lost: f32,
    /// Packets lost since the start, as the receiver counts them
    /// (may be negative with duplicates, §6.4.1).
    pub cumulative_lost: i32,
    /// Interarrival jitter in RTP timestamp units (§6.4.1).
    pub jitter: u32,
    /// Interarrival jitter in milliseconds, from the track's clock rate.
    pub jitter_ms: f64,
    /// Round-trip time from the latest report's LSR/DLSR (§6.4.1), if
    /// the report carried them.
    pub round_trip: Option<Duration>,
}

/// One session's snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionStats {
    /// The RTSP session id (RFC 2326 §12.37).
    pub session_id: String,
    /// Per set-up track: its index in the media and its counters.
    pub tracks: Vec<(usize, TrackStats)>,
}

/// A publisher's counters, as a plain copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublisherStats {
    /// Its session.
    pub session_id: String,
    /// The live path it feeds.
    pub mount: String,
    /// Per announced track: what its receiver and depacketizer counted.
    pub tracks: Vec<crate::live::publisher::IngestStats>,
}

/// A live path's counters, as a plain copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LivePathStats {
    /// Its URL path.
    pub mount: String,
    /// Viewers subscribed now.
    pub viewers: usize,
    /// The stream's counters.
    pub stream: crate::live::stream::LiveStreamStats,
}
