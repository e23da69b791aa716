//! Media files on disk: the [`ByteSource`] the core's demuxer reads
//! through, with positional reads so every viewer shares one handle.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use crate::media::mp4::{ByteSource, MediaError, Mp4Media};

/// An open media file.
#[derive(Debug)]
pub struct FileBytes(File);

impl ByteSource for FileBytes {
    fn byte_len(&self) -> Result<u64, MediaError> {
        Ok(self.0.metadata()?.len())
    }

    fn read_at(&self, offset: u64, size: u32) -> Result<Bytes, MediaError> {
        let mut buf = vec![0; size as usize];
        self.0.read_exact_at(&mut buf, offset).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                MediaError::SampleOutOfRange {
                    offset,
                    size,
                    len: self.0.metadata().map(|m| m.len()).unwrap_or(0),
                }
            } else {
                MediaError::Io(e)
            }
        })?;
        Ok(Bytes::from(buf))
    }
}

/// Opens the MP4 file at `path` and parses its `moov` box (blocking: call
/// it on a blocking thread).
///
/// Errors: the file cannot be opened or read, or is not a usable MP4.
pub fn open_mp4(path: &Path) -> Result<Arc<Mp4Media>, MediaError> {
    Mp4Media::parse(Arc::new(FileBytes(File::open(path)?)))
}
