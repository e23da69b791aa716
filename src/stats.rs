//! Snapshots of what the server is doing, as plain values: each session
//! task publishes its own, and readers (tests, later the operations API
//! and metrics) take copies without touching the RTSP handler or any
//! viewer.

use std::net::SocketAddr;
use std::time::Duration;

use crate::rtp::Delivery;

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

/// How a session's media travels (RFC 2326 §12.39).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TransportKind {
    /// RTP/AVP over UDP to the client's ports.
    Udp,
    /// Interleaved on the RTSP TCP connection (§10.12).
    Tcp,
    /// To a multicast group.
    Multicast,
}

impl TransportKind {
    /// The kind a track's delivery is.
    pub fn of(delivery: &Delivery) -> Self {
        match delivery {
            Delivery::Udp { rtp, .. } if rtp.ip().is_multicast() => TransportKind::Multicast,
            Delivery::Udp { .. } => TransportKind::Udp,
            Delivery::Interleaved { .. } => TransportKind::Tcp,
        }
    }

    /// Its name in the API and in metric labels: `udp`, `tcp`,
    /// `multicast`.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Udp => "udp",
            TransportKind::Tcp => "tcp",
            TransportKind::Multicast => "multicast",
        }
    }
}

/// Where a session's sending stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayState {
    /// Set up, not sending (before PLAY, or paused).
    Ready,
    /// Sending media.
    Playing,
    /// Everything was sent; its BYE follows.
    Ended,
    /// Torn down; sending its last BYE.
    Closing,
}

impl PlayState {
    /// Its name in the API: `ready`, `playing`, `ended`, `closing`.
    pub fn as_str(self) -> &'static str {
        match self {
            PlayState::Ready => "ready",
            PlayState::Playing => "playing",
            PlayState::Ended => "ended",
            PlayState::Closing => "closing",
        }
    }
}

/// One session's snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionStats {
    /// The RTSP session id (RFC 2326 §12.37); a multicast group's sender,
    /// shared by the group's sessions, is `multicast:<path>`.
    pub session_id: String,
    /// The URL path it plays.
    pub path: String,
    /// The RTSP client's address; a multicast group's sender gives the
    /// group's address.
    pub client: SocketAddr,
    /// How its media travels (that of its first track).
    pub transport: TransportKind,
    /// Where its sending stands.
    pub state: PlayState,
    /// Per set-up track: its index in the media and its counters.
    pub tracks: Vec<(usize, TrackStats)>,
    /// The codec of each set-up track, in the order of `tracks`
    /// ([`crate::media::CodecParams::name`]).
    pub codecs: Vec<&'static str>,
}

/// What the sessions that have ended sent, added up per path and
/// transport: kept so that counters over all sessions never go back when
/// one ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndedTotals {
    /// RTP packets sent.
    pub packets_sent: u64,
    /// RTP payload bytes sent.
    pub bytes_sent: u64,
    /// Access units skipped.
    pub units_skipped: u64,
}

impl EndedTotals {
    /// Adds the counters of every track of `session`.
    pub fn add(&mut self, session: &SessionStats) {
        for (_, track) in &session.tracks {
            self.packets_sent += track.packets_sent;
            self.bytes_sent += track.bytes_sent;
            self.units_skipped += track.units_skipped;
        }
    }
}

/// The running sessions' stats and the ended ones' totals, taken
/// together so that no session is counted twice or missed.
#[derive(Debug, Clone, Default)]
pub struct StatsSnapshot {
    /// Every running session's latest stats, ordered by session id.
    pub running: Vec<SessionStats>,
    /// What ended sessions sent, per path and transport.
    pub ended: Vec<((String, TransportKind), EndedTotals)>,
}

/// RTSP requests answered with one status, counted per method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestCount {
    /// The method's name, or `other` for one the server does not know
    /// (so the set of labels stays bounded).
    pub method: &'static str,
    /// The status code of the answer.
    pub status: u16,
    /// How many.
    pub count: u64,
}

/// The label of a request method in [`RequestCount`].
pub fn method_label(method: &rtsp_types::Method) -> &'static str {
    use rtsp_types::Method;
    match method {
        Method::Options => "OPTIONS",
        Method::Describe => "DESCRIBE",
        Method::Announce => "ANNOUNCE",
        Method::Setup => "SETUP",
        Method::Play => "PLAY",
        Method::Pause => "PAUSE",
        Method::Record => "RECORD",
        Method::Teardown => "TEARDOWN",
        Method::GetParameter => "GET_PARAMETER",
        Method::SetParameter => "SET_PARAMETER",
        Method::Redirect => "REDIRECT",
        _ => "other",
    }
}

/// A session's counters summed over its tracks, as its end log line and
/// totals elsewhere give them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionTotals {
    /// RTP packets sent.
    pub packets_sent: u64,
    /// RTP payload bytes sent.
    pub bytes_sent: u64,
    /// Access units skipped because the viewer could not keep up.
    pub units_skipped: u64,
    /// Packets lost as the receiver reports say, summed over tracks
    /// (RFC 3550 §6.4.1 cumulative lost; negative with duplicates).
    pub packets_lost: i64,
    /// Receiver reports received, all tracks together; 0 means the loss
    /// is unknown rather than none.
    pub reports: u64,
}

impl SessionTotals {
    /// The sums of `tracks` (as [`SessionStats::tracks`] holds them).
    pub fn of(tracks: &[(usize, TrackStats)]) -> SessionTotals {
        tracks
            .iter()
            .fold(SessionTotals::default(), |sum, (_, track)| SessionTotals {
                packets_sent: sum.packets_sent + track.packets_sent,
                bytes_sent: sum.bytes_sent + track.bytes_sent,
                units_skipped: sum.units_skipped + track.units_skipped,
                packets_lost: sum.packets_lost + i64::from(track.cumulative_lost),
                reports: sum.reports + track.reports,
            })
    }
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// The client sent TEARDOWN (RFC 2326 §10.7).
    Teardown,
    /// Nothing was heard from the client within the session timeout
    /// (RFC 2326 §12.37).
    Timeout,
    /// The RTSP connection carrying its media (interleaved) or its
    /// publisher closed.
    ConnectionClosed,
    /// The server stopped.
    Shutdown,
    /// Another publisher took its path over.
    TakenOver,
    /// A multicast group's sender: the group's last viewer left.
    LastViewerLeft,
    /// Its path was removed from the configuration (a reload).
    PathRemoved,
    /// An operator ended it (the HTTP API).
    Kicked,
}

impl std::fmt::Display for SessionEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SessionEnd::Teardown => "teardown",
            SessionEnd::Timeout => "timeout",
            SessionEnd::ConnectionClosed => "connection closed",
            SessionEnd::Shutdown => "server shutdown",
            SessionEnd::TakenOver => "taken over by another publisher",
            SessionEnd::LastViewerLeft => "last viewer left",
            SessionEnd::PathRemoved => "path removed",
            SessionEnd::Kicked => "ended by the operator",
        })
    }
}

/// A publisher's counters, as a plain copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublisherStats {
    /// Its session.
    pub session_id: String,
    /// The live path it feeds.
    pub mount: String,
    /// The publisher's address on its RTSP connection.
    pub client: SocketAddr,
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
    /// The codec of each track ([`crate::media::CodecParams::name`]).
    pub codecs: Vec<&'static str>,
    /// The stream's counters.
    pub stream: crate::live::stream::LiveStreamStats,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_sum_every_track() {
        let video = TrackStats {
            packets_sent: 1000,
            bytes_sent: 1_300_000,
            units_skipped: 3,
            reports: 4,
            cumulative_lost: 7,
            ..TrackStats::default()
        };
        let audio = TrackStats {
            packets_sent: 200,
            bytes_sent: 60_000,
            reports: 4,
            // Duplicates counted by the receiver (RFC 3550 §6.4.1).
            cumulative_lost: -1,
            ..TrackStats::default()
        };
        assert_eq!(
            SessionTotals::of(&[(0, video), (1, audio)]),
            SessionTotals {
                packets_sent: 1200,
                bytes_sent: 1_360_000,
                units_skipped: 3,
                packets_lost: 6,
                reports: 8,
            }
        );
        assert_eq!(SessionTotals::of(&[]), SessionTotals::default());
    }
}
