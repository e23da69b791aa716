//! What feeds a viewer: a file played on the viewer's own timeline
//! ([`playout`]), or a live path ([`crate::live`]) fed by a publisher, a
//! relay, a camera or a file played as a channel ([`channel`]).

pub mod camera;
pub mod channel;
pub mod playout;

use std::sync::Arc;

use crate::media::mp4::{MediaError, Mp4Media};
use crate::media::TrackInfo;

/// What a URL path serves, as DESCRIBE and SETUP need it.
#[derive(Debug, Clone)]
pub enum Presentation {
    /// A file, played on each viewer's own timeline.
    File(Arc<Mp4Media>),
    /// A live path: one timeline shared by every viewer.
    Live {
        /// Its tracks, indexed 0, 1, … in order.
        tracks: Arc<[TrackInfo]>,
    },
}

impl Presentation {
    /// The tracks, in SDP order.
    pub fn tracks(&self) -> &[TrackInfo] {
        match self {
            Presentation::File(media) => media.tracks(),
            Presentation::Live { tracks } => tracks,
        }
    }

    /// The duration in seconds; `None` for a live path, which has none.
    pub fn duration_secs(&self) -> Option<f64> {
        match self {
            Presentation::File(media) => Some(media.duration_secs()),
            Presentation::Live { .. } => None,
        }
    }

    /// True for a live path.
    pub fn is_live(&self) -> bool {
        matches!(self, Presentation::Live { .. })
    }
}

/// Why a URL path could not be resolved to media; the I/O layer finds
/// out, the RTSP layer answers with the matching status.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ResolveError {
    /// Nothing is mounted there (RTSP 404).
    #[error("no media at {0}")]
    NotFound(String),
    /// The path tries to leave the media root (answered 404 too, and
    /// logged).
    #[error("forbidden path {0}")]
    Forbidden(String),
    /// The file exists but is not a usable MP4 (ISO/IEC 14496-12/14).
    #[error(transparent)]
    Media(Arc<MediaError>),
}

impl From<MediaError> for ResolveError {
    fn from(error: MediaError) -> Self {
        ResolveError::Media(Arc::new(error))
    }
}
