//! Mounts: which URL path serves which media file.
use super::mp4::Mp4Media;
use std::path::Path;
use std::sync::Arc;

/// Stub: why a path could not be resolved to media.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("not found")]
    NotFound(String),
    #[error("forbidden")]
    Forbidden(String),
    #[error("media")]
    Media(super::mp4::MediaError),
}

/// Stub.
#[derive(Debug)]
pub struct Catalog {}

impl Catalog {
    /// Stub: the bundled sample at `/` and `/sample`.
    pub fn bundled_sample() -> Result<Self, super::mp4::MediaError> {
        todo!()
    }
    /// Stub: a file at `/` and `/<name>`, or a directory tree.
    pub fn from_path(_path: &Path) -> Result<Self, super::mp4::MediaError> {
        todo!()
    }
    /// Stub: media for a URL path (already without track suffix).
    pub fn resolve(&self, _url_path: &str) -> Result<Arc<Mp4Media>, ResolveError> {
        todo!()
    }
}
impl Catalog {
    /// Stub.
    pub fn describe_mounts(&self) -> Vec<String> {
        todo!()
    }
}
