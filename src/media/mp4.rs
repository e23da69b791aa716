//! MP4 (ISO/IEC 14496-12/14) demuxer built on mp4-atom.
use super::{AccessUnit, TrackInfo};
use std::path::Path;
use std::sync::Arc;

/// Stub: errors opening or reading an MP4 file.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("bad")]
    Invalid(String),
}

/// Stub: an opened MP4 file's tracks and sample tables, shared by sessions.
#[derive(Debug)]
pub struct Mp4Media {
    tracks: Vec<TrackInfo>,
}

impl Mp4Media {
    /// Stub.
    pub fn open(_path: &Path) -> Result<Arc<Self>, MediaError> {
        todo!()
    }
    /// Stub.
    pub fn from_static(_bytes: &'static [u8]) -> Result<Arc<Self>, MediaError> {
        todo!()
    }
    /// Stub.
    pub fn tracks(&self) -> &[TrackInfo] {
        &self.tracks
    }
    /// Stub: duration in seconds.
    pub fn duration_secs(&self) -> f64 {
        todo!()
    }
    /// Stub.
    pub fn reader(self: &Arc<Self>, _start_secs: f64) -> Mp4Reader {
        todo!()
    }
}

/// Stub: reads access units of all tracks in decode order.
#[derive(Debug)]
pub struct Mp4Reader {
    media: Arc<Mp4Media>,
}

impl Mp4Reader {
    /// Stub: presentation time (seconds) of the keyframe playback starts at.
    pub fn start_secs(&self) -> f64 {
        todo!()
    }
    /// Stub.
    pub fn next_access_unit(&mut self) -> Option<Result<AccessUnit, MediaError>> {
        let _ = &self.media;
        todo!()
    }
}
