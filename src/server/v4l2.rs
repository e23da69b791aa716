//! V4L2 capture (Linux video devices, `/dev/video0`) with the `v4l`
//! crate, built with the `v4l` feature: a [`CaptureDevice`] asking the
//! driver for Motion-JPEG (`MJPG`) or H.264 (`H264`) frames through
//! memory-mapped buffers.
//!
//! Not tried against a real camera here (no machine of ours has one):
//! the rest of the camera path runs in the tests with a fake device.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use v4l::buffer::Type;
use v4l::format::FourCC;
use v4l::io::mmap::Stream;
use v4l::io::traits::CaptureStream;
use v4l::video::capture::Parameters;
use v4l::video::Capture;
use v4l::Device;

use super::camera::{CaptureDevice, CaptureError, CapturedFrame};
use crate::source::camera::{CameraCodec, CameraFormat};

/// Driver buffers: enough that a slow read does not drop frames at once.
const BUFFERS: u32 = 4;

/// A camera that sends no frame for this long counts as gone.
const FRAME_TIMEOUT: Duration = Duration::from_secs(5);

/// Frames whose capture time is older than this when read are taken as
/// captured when read: the driver's timestamps are not on the monotonic
/// clock then.
const MAX_FRAME_AGE: Duration = Duration::from_secs(1);

/// A V4L2 capture device by path.
pub struct V4l2Camera {
    path: PathBuf,
    /// The open device's stream; `None` until opened, and after a failure.
    stream: Option<Stream<'static>>,
}

impl V4l2Camera {
    /// The device at `path` (`/dev/video0`), not opened yet.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        V4l2Camera {
            path: path.into(),
            stream: None,
        }
    }

    fn unavailable(&self, what: &str, error: std::io::Error) -> CaptureError {
        CaptureError::Unavailable(format!("{}: {what}: {error}", self.path.display()))
    }
}

fn fourcc_of(codec: CameraCodec) -> FourCC {
    match codec {
        CameraCodec::Mjpeg => FourCC::new(b"MJPG"),
        CameraCodec::H264 => FourCC::new(b"H264"),
    }
}

/// How long ago, on the monotonic clock (which V4L2 drivers stamp
/// buffers with, `V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC`), `stamp` was.
fn age_of(stamp: v4l::timestamp::Timestamp) -> Option<Duration> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) } != 0 {
        return None;
    }
    let now = Duration::new(u64::try_from(now.tv_sec).ok()?, now.tv_nsec as u32);
    let stamp = Duration::new(
        u64::try_from(stamp.sec).ok()?,
        u32::try_from(stamp.usec).ok()? * 1000,
    );
    now.checked_sub(stamp).filter(|age| *age <= MAX_FRAME_AGE)
}

impl CaptureDevice for V4l2Camera {
    fn open(&mut self, requested: &CameraFormat) -> Result<CameraFormat, CaptureError> {
        self.stream = None;
        let device = Device::with_path(&self.path).map_err(|e| self.unavailable("opening", e))?;
        let mut format = device
            .format()
            .map_err(|e| self.unavailable("reading its format", e))?;
        let wanted = fourcc_of(requested.codec);
        format.width = requested.width;
        format.height = requested.height;
        format.fourcc = wanted;
        let format = device
            .set_format(&format)
            .map_err(|e| self.unavailable("setting its format", e))?;
        if format.fourcc != wanted {
            return Err(CaptureError::Unsupported(format!(
                "{} gives {} frames, not {} (try the other --camera-format; a camera giving only \
                 raw frames can be published with ffmpeg instead)",
                self.path.display(),
                format.fourcc,
                wanted
            )));
        }
        // Some drivers have no frame rate to set: they run at their own.
        let fps = match device.set_params(&Parameters::with_fps(requested.fps)) {
            Ok(parameters) if parameters.interval.numerator > 0 => {
                let interval = parameters.interval;
                (interval.denominator + interval.numerator / 2) / interval.numerator
            }
            Ok(_) | Err(_) => requested.fps,
        };
        let mut stream = Stream::with_buffers(&device, Type::VideoCapture, BUFFERS)
            .map_err(|e| self.unavailable("mapping its buffers", e))?;
        stream.set_timeout(FRAME_TIMEOUT);
        self.stream = Some(stream);
        Ok(CameraFormat {
            codec: requested.codec,
            width: format.width,
            height: format.height,
            fps,
        })
    }

    fn next_frame(&mut self) -> Result<CapturedFrame, CaptureError> {
        let Some(stream) = self.stream.as_mut() else {
            return Err(CaptureError::Unavailable(format!(
                "{} is not open",
                self.path.display()
            )));
        };
        match CaptureStream::next(stream) {
            Ok((buffer, metadata)) => {
                let used = (metadata.bytesused as usize).min(buffer.len());
                let captured = age_of(metadata.timestamp)
                    .and_then(|age| Instant::now().checked_sub(age))
                    .unwrap_or_else(Instant::now);
                Ok(CapturedFrame {
                    data: buffer[..used].to_vec(),
                    captured,
                })
            }
            Err(error) => {
                self.stream = None;
                Err(self.unavailable("reading a frame", error))
            }
        }
    }
}
