//! What feeds a viewer: sources of access units. Today a file played on
//! the viewer's own timeline.

pub mod playout;

use std::sync::Arc;

use crate::media::mp4::MediaError;

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
