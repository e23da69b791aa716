//! Cameras (`--camera /dev/video0`): a capture device behind a small
//! trait ([`CaptureDevice`]; V4L2 in [`v4l2`](super::v4l2) with the `v4l`
//! feature, a fake one in the tests), and the task that streams its
//! frames into a live path without re-encoding
//! ([`CameraSource`](crate::source::camera::CameraSource) turns frames into
//! units).
//!
//! A device that fails (unplugged) takes its path away, so its viewers
//! get RTCP BYE, and is opened again every [`REOPEN_WAIT`] until it works.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::live_hub::{LiveHub, LivePath};
use crate::live::gop_cache::DEFAULT_GOP_CACHE_BYTES;
use crate::live::stream::LiveStream;
use crate::source::camera::{CameraError, CameraFormat, CameraOutput, CameraSource};

/// How long a camera task waits before opening a device again after it
/// failed or went away.
pub const REOPEN_WAIT: Duration = Duration::from_secs(3);

/// One frame as a device captured it.
#[derive(Debug, Clone)]
pub struct CapturedFrame {
    /// The encoded frame: one JPEG image (SOI to EOI), or one H.264
    /// access unit as an Annex B byte stream.
    pub data: Vec<u8>,
    /// When it was captured, on the monotonic clock.
    pub captured: Instant,
}

/// Why a device cannot be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The device is missing, busy or failed (unplugged): tried again.
    #[error("{0}")]
    Unavailable(String),
    /// The device cannot give an encoding that can be streamed (a
    /// camera giving only raw frames): not tried again.
    #[error("{0}")]
    Unsupported(String),
}

/// A camera: opened with a requested format, then read frame by frame.
/// Both calls block (the camera task runs them on tokio's blocking
/// threads).
pub trait CaptureDevice: Send {
    /// Opens the device (again, after a failure) asking for `requested`,
    /// and returns what it gives, which may differ in size or rate.
    ///
    /// Errors: [`CaptureError::Unsupported`] when it cannot give the
    /// requested codec at all; [`CaptureError::Unavailable`] otherwise.
    fn open(&mut self, requested: &CameraFormat) -> Result<CameraFormat, CaptureError>;

    /// Waits for the next frame of the opened device.
    ///
    /// Errors: [`CaptureError::Unavailable`] when it is gone or stalled
    /// (the task then opens it again).
    fn next_frame(&mut self) -> Result<CapturedFrame, CaptureError>;
}

/// A camera to stream: where, what to ask of it, and the device.
pub struct Camera {
    /// The URL path it is served at, normalised (`/live/webcam`).
    pub mount: String,
    /// The device's name for logs (`/dev/video0`).
    pub name: String,
    /// The format asked for at every opening.
    pub requested: CameraFormat,
    /// The device.
    pub device: Box<dyn CaptureDevice>,
}

impl std::fmt::Debug for Camera {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Camera")
            .field("mount", &self.mount)
            .field("name", &self.name)
            .field("requested", &self.requested)
            .finish_non_exhaustive()
    }
}

/// How one opening of a camera ended.
enum CaptureEnd {
    /// The device failed or went away: opened again.
    Lost(CaptureError),
    /// Its frames cannot be streamed: the task stops.
    Refused(CameraError),
}

/// Runs `device` (moved onto a blocking thread and back) for one blocking
/// call. When the task is aborted at shutdown the call in flight finishes
/// and the device is dropped, closing it.
async fn blocking<T: Send + 'static>(
    mut device: Box<dyn CaptureDevice>,
    call: impl FnOnce(&mut dyn CaptureDevice) -> T + Send + 'static,
) -> (Box<dyn CaptureDevice>, T) {
    tokio::task::spawn_blocking(move || {
        let result = call(device.as_mut());
        (device, result)
    })
    .await
    .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()))
}

/// Streams `camera` into its path of `hub`, packets of at most `mtu`
/// bytes, for as long as the server runs (the server aborts it at
/// shutdown), or until its frames turn out to be impossible to stream.
pub(super) async fn run(camera: Camera, hub: Arc<LiveHub>, mtu: usize) {
    let Camera {
        mount,
        name,
        requested,
        mut device,
    } = camera;
    let mut failure_told = false;
    loop {
        let opened;
        (device, opened) = blocking(device, move |d| d.open(&requested)).await;
        match opened {
            Ok(given) => {
                failure_told = false;
                tracing::info!(%mount, camera = %name, %requested, %given, "camera opened");
                let end;
                (device, end) = capture(device, given, &hub, &mount, mtu).await;
                match end {
                    CaptureEnd::Lost(error) => tracing::warn!(
                        %mount,
                        camera = %name,
                        %error,
                        retry_in = ?REOPEN_WAIT,
                        "camera lost; its viewers are told (RTCP BYE)"
                    ),
                    CaptureEnd::Refused(error) => {
                        tracing::error!(%mount, camera = %name, %error, "camera stopped");
                        return;
                    }
                }
            }
            Err(CaptureError::Unsupported(error)) => {
                tracing::error!(%mount, camera = %name, %error, "camera stopped");
                return;
            }
            Err(CaptureError::Unavailable(error)) => {
                // Said once, not at every attempt of an unplugged camera.
                if !failure_told {
                    tracing::warn!(
                        %mount,
                        camera = %name,
                        %error,
                        retry_every = ?REOPEN_WAIT,
                        "camera not available; retrying"
                    );
                    failure_told = true;
                }
            }
        }
        tokio::time::sleep(REOPEN_WAIT).await;
    }
}

/// Reads frames of the opened device into the path at `mount` until the
/// device fails; then takes the path away (its viewers get BYE).
async fn capture(
    mut device: Box<dyn CaptureDevice>,
    given: CameraFormat,
    hub: &LiveHub,
    mount: &str,
    mtu: usize,
) -> (Box<dyn CaptureDevice>, CaptureEnd) {
    let mut source = CameraSource::new(given, rand::random());
    let mut path: Option<Arc<LivePath>> = None;
    let end = loop {
        let read;
        (device, read) = blocking(device, |d| d.next_frame()).await;
        let frame = match read {
            Ok(frame) => frame,
            Err(error) => break CaptureEnd::Lost(error),
        };
        let now = Instant::now();
        let wall = SystemTime::now();
        match source.push(&frame.data, frame.captured, now, wall) {
            Ok(CameraOutput::Waiting) => {}
            Ok(CameraOutput::Start { track, clock, unit }) => {
                tracing::info!(mount, codec = ?track.codec, "camera streaming");
                let started = hub.insert(
                    mount.to_string(),
                    LiveStream::new(vec![track], mtu, DEFAULT_GOP_CACHE_BYTES),
                );
                started.set_clock(0, clock);
                started.publish(unit, now, wall);
                path = Some(started);
            }
            Ok(CameraOutput::Unit(unit)) => {
                if let Some(path) = &path {
                    path.publish(unit, now, wall);
                }
            }
            Err(error) => break CaptureEnd::Refused(error),
        }
    };
    if let Some(path) = path {
        hub.remove(&path);
    }
    (device, end)
}
