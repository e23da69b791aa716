//! Cameras (`--camera`): what turns captured frames into a live path's
//! units, without touching the device, the clock or the hub (the I/O
//! layer's camera task does those and hands in times as arguments).
//!
//! A camera that encodes on its own (UVC cameras giving Motion-JPEG or
//! H.264) is streamed without re-encoding:
//!
//! - MJPEG: one JPEG image per frame, every frame a keyframe, carried by
//!   RFC 2435. The first image is checked ([`check_frame`]) so a camera
//!   whose JPEGs RFC 2435 cannot describe is refused with the reason.
//! - H.264: each frame is an access unit as an Annex B byte stream (ITU-T
//!   H.264 Annex B: NAL units behind start codes). It is split into NAL
//!   units and written with 4-byte lengths, as the live path's
//!   packetizer takes them; the path is described once a frame brings an
//!   SPS and a PPS, and described afresh when they change.
//!
//! RTP timestamps (90 kHz, RFC 3550 §5.1) come from the frames' capture
//! times on the monotonic clock, from a random base, so they follow the
//! camera's own pacing and not the jitter of reading it.

use std::fmt;
use std::str::FromStr;
use std::time::{Instant, SystemTime};

use bytes::{BufMut, Bytes, BytesMut};
use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::nal::{Nal, RefNal};

use crate::codec::jpeg::check_frame;
use crate::codec::CodecError;
use crate::live::{ClockMapping, SourceUnit};
use crate::media::{CodecParams, TrackInfo};

/// RTP clock rate of both payload formats (RFC 2435 §3, RFC 6184 §8.2.1).
const VIDEO_CLOCK_RATE: u32 = 90_000;

const NAL_TYPE_MASK: u8 = 0x1f;
const NAL_TYPE_IDR: u8 = 5;
const NAL_TYPE_SPS: u8 = 7;
const NAL_TYPE_PPS: u8 = 8;
const NAL_TYPE_AUD: u8 = 9;

/// How a camera encodes its frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CameraCodec {
    /// Motion-JPEG: one baseline JPEG image per frame (V4L2 `MJPG`).
    Mjpeg,
    /// H.264 as an Annex B byte stream, one access unit per frame (V4L2
    /// `H264`).
    H264,
}

impl fmt::Display for CameraCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CameraCodec::Mjpeg => "mjpeg",
            CameraCodec::H264 => "h264",
        })
    }
}

impl FromStr for CameraCodec {
    type Err = String;

    /// `mjpeg` or `h264`, in any case, as `--camera-format` takes it.
    fn from_str(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "mjpeg" | "mjpg" => Ok(CameraCodec::Mjpeg),
            "h264" | "h.264" => Ok(CameraCodec::H264),
            _ => Err(format!(
                "{text:?} is not a camera format: give mjpeg or h264 (cameras giving only raw \
                 frames can be published with ffmpeg instead)"
            )),
        }
    }
}

/// A capture format: asked of a device, and what it gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CameraFormat {
    /// How frames are encoded.
    pub codec: CameraCodec,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
}

impl fmt::Display for CameraFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}x{} at {} fps",
            self.codec, self.width, self.height, self.fps
        )
    }
}

/// Width and height of `WxH` (`1280x720`), as `--camera-size` takes it.
///
/// Errors: a sentence for the command line when it is not two positive
/// numbers around an `x`.
pub fn parse_frame_size(text: &str) -> Result<(u32, u32), String> {
    let parsed = text
        .split_once(['x', 'X'])
        .and_then(|(w, h)| Some((w.trim().parse().ok()?, h.trim().parse().ok()?)));
    match parsed {
        Some((width, height)) if width > 0 && height > 0 => Ok((width, height)),
        _ => Err(format!("{text:?} is not WIDTHxHEIGHT, e.g. 1280x720")),
    }
}

/// Why a camera's frames cannot be streamed.
#[derive(Debug, thiserror::Error)]
pub enum CameraError {
    /// Its JPEG images are not what RFC 2435 can carry.
    #[error("the camera's JPEG images cannot be sent over RTP (RFC 2435): {0}")]
    Jpeg(CodecError),
}

/// The NAL units of an Annex B byte stream (ITU-T H.264 §B.2): the bytes
/// between start codes (`00 00 01`, or `00 00 00 01` with its leading
/// zero byte), trailing zero bytes dropped. Bytes before the first start
/// code are not a NAL unit and are skipped.
pub fn annex_b_nal_units(stream: &[u8]) -> impl Iterator<Item = &[u8]> + '_ {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i..i + 3] == [0, 0, 1] {
            starts.push((i, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    let ends: Vec<usize> = starts
        .iter()
        .skip(1)
        .map(|&(code, _)| code)
        .chain(std::iter::once(stream.len()))
        .collect();
    starts
        .into_iter()
        .zip(ends)
        .map(move |((_, begin), end)| {
            let nal = &stream[begin..end];
            let kept = nal.iter().rposition(|&b| b != 0).map_or(0, |last| last + 1);
            &nal[..kept]
        })
        .filter(|nal| !nal.is_empty())
}

/// One H.264 access unit of a camera, rewritten for the live path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvccAccessUnit {
    /// Its NAL units behind 4-byte big-endian lengths (ISO/IEC 14496-15
    /// §5.3.3.1), access unit delimiters left out.
    pub data: Bytes,
    /// True when it holds an IDR picture (NAL unit type 5).
    pub idr: bool,
    /// The last SPS (type 7) it carries, if any.
    pub sps: Option<Bytes>,
    /// The last PPS (type 8) it carries, if any.
    pub pps: Option<Bytes>,
}

/// Rewrites one Annex B access unit as 4-byte-length NAL units (see
/// [`AvccAccessUnit`]).
pub fn annex_b_to_avcc(stream: &[u8]) -> AvccAccessUnit {
    let mut data = BytesMut::with_capacity(stream.len() + 16);
    let mut unit = AvccAccessUnit {
        data: Bytes::new(),
        idr: false,
        sps: None,
        pps: None,
    };
    for nal in annex_b_nal_units(stream) {
        match nal[0] & NAL_TYPE_MASK {
            NAL_TYPE_AUD => continue,
            NAL_TYPE_IDR => unit.idr = true,
            NAL_TYPE_SPS => unit.sps = Some(Bytes::copy_from_slice(nal)),
            NAL_TYPE_PPS => unit.pps = Some(Bytes::copy_from_slice(nal)),
            _ => {}
        }
        // A frame is far below 4 GiB; a longer NAL unit could not be
        // described and is left out rather than cut.
        let Ok(length) = u32::try_from(nal.len()) else {
            continue;
        };
        data.put_u32(length);
        data.put_slice(nal);
    }
    unit.data = data.freeze();
    unit
}

/// The picture size an SPS describes (ITU-T H.264 §7.3.2.1.1, cropping
/// applied), if it parses and fits 16 bits.
fn sps_dimensions(sps: &[u8]) -> Option<(u16, u16)> {
    let nal = RefNal::new(sps, &[], true);
    let parsed = SeqParameterSet::from_bits(nal.rbsp_bits()).ok()?;
    let (width, height) = parsed.pixel_dimensions().ok()?;
    Some((u16::try_from(width).ok()?, u16::try_from(height).ok()?))
}

/// RTP timestamps of captured frames: 90 kHz ticks since the first
/// frame's capture, from a base, always moving forward.
#[derive(Debug, Clone)]
pub struct FrameClock {
    start: Instant,
    base: u32,
    last: Option<u32>,
}

impl FrameClock {
    /// A clock whose timestamp at `start` is `base`.
    pub fn new(start: Instant, base: u32) -> Self {
        FrameClock {
            start,
            base,
            last: None,
        }
    }

    /// The RTP timestamp of a frame captured at `captured`: later than
    /// the previous frame's by at least one tick even when a device
    /// reports the same or an earlier time (two frames with one timestamp
    /// would be taken for one picture, RFC 6184 §5.1).
    pub fn timestamp(&mut self, captured: Instant) -> u32 {
        let ticks = match captured.checked_duration_since(self.start) {
            Some(after) => (after.as_secs_f64() * f64::from(VIDEO_CLOCK_RATE)).round() as i64,
            None => {
                let before = self.start.duration_since(captured);
                -((before.as_secs_f64() * f64::from(VIDEO_CLOCK_RATE)).round() as i64)
            }
        };
        let mut timestamp = self.base.wrapping_add(ticks as u32);
        if let Some(last) = self.last {
            if timestamp.wrapping_sub(last) as i32 <= 0 {
                timestamp = last.wrapping_add(1);
            }
        }
        self.last = Some(timestamp);
        timestamp
    }
}

/// What a captured frame gives the camera task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CameraOutput {
    /// Nothing to send yet: an H.264 stream before its first SPS and PPS,
    /// a frame with no NAL unit, or a broken first JPEG.
    Waiting,
    /// Put a path with `track` at the camera's mount (replacing any, whose
    /// viewers get BYE), set its clock to `clock`, then publish `unit`.
    Start {
        /// The path's one track (index 0).
        track: TrackInfo,
        /// Where the camera's RTP clock meets the wall clock.
        clock: ClockMapping,
        /// The frame that started it.
        unit: SourceUnit,
    },
    /// Publish this unit into the path.
    Unit(SourceUnit),
}

/// One opening of a camera: see the module docs.
#[derive(Debug)]
pub struct CameraSource {
    format: CameraFormat,
    rtp_base: u32,
    clock: Option<(FrameClock, ClockMapping)>,
    /// The codec the path was described with; `None` before it starts.
    described: Option<CodecParams>,
}

impl CameraSource {
    /// A source for frames in `format` (what the device gives), whose RTP
    /// timestamps start at `rtp_base` (random, RFC 3550 §5.1).
    pub fn new(format: CameraFormat, rtp_base: u32) -> Self {
        CameraSource {
            format,
            rtp_base,
            clock: None,
            described: None,
        }
    }

    /// Takes one frame captured at `captured` (monotonic), handed in at
    /// `now`/`wall` (the same instant on both clocks).
    ///
    /// Errors: the first whole JPEG image is one RFC 2435 cannot carry
    /// (the camera's format cannot be streamed; the reason names the
    /// limit). Later frames are not checked here: the path's packetizer
    /// refuses and counts a broken one.
    pub fn push(
        &mut self,
        frame: &[u8],
        captured: Instant,
        now: Instant,
        wall: SystemTime,
    ) -> Result<CameraOutput, CameraError> {
        let (codec, data, keyframe) = match self.format.codec {
            CameraCodec::Mjpeg => {
                let codec = match &self.described {
                    Some(codec) => codec.clone(),
                    None => match check_frame(frame) {
                        Ok((width, height)) => CodecParams::Jpeg { width, height },
                        // A camera's first frame may be cut short as it
                        // starts: wait for a whole one.
                        Err(CodecError::MalformedJpeg(_)) => return Ok(CameraOutput::Waiting),
                        Err(error) => return Err(CameraError::Jpeg(error)),
                    },
                };
                (codec, Bytes::copy_from_slice(frame), true)
            }
            CameraCodec::H264 => {
                let unit = annex_b_to_avcc(frame);
                if unit.data.is_empty() {
                    return Ok(CameraOutput::Waiting);
                }
                let codec = match (&self.described, unit.sps, unit.pps) {
                    (_, Some(sps), Some(pps)) => {
                        let (width, height) = sps_dimensions(&sps).unwrap_or((
                            u16::try_from(self.format.width).unwrap_or(u16::MAX),
                            u16::try_from(self.format.height).unwrap_or(u16::MAX),
                        ));
                        CodecParams::H264 {
                            sps: vec![sps],
                            pps: vec![pps],
                            nal_length_size: 4,
                            width,
                            height,
                        }
                    }
                    (Some(codec), _, _) => codec.clone(),
                    (None, _, _) => return Ok(CameraOutput::Waiting),
                };
                (codec, unit.data, unit.idr)
            }
        };
        let (frame_clock, mapping) = self.clock.get_or_insert_with(|| {
            let clock = FrameClock::new(captured, self.rtp_base);
            let age = now.saturating_duration_since(captured);
            let mapping = ClockMapping {
                wall: wall.checked_sub(age).unwrap_or(wall),
                rtp_timestamp: self.rtp_base,
            };
            (clock, mapping)
        });
        let unit = SourceUnit {
            track: 0,
            rtp_timestamp: frame_clock.timestamp(captured),
            keyframe,
            data,
        };
        if self.described.as_ref() == Some(&codec) {
            return Ok(CameraOutput::Unit(unit));
        }
        let clock = *mapping;
        self.described = Some(codec.clone());
        Ok(CameraOutput::Start {
            track: TrackInfo {
                index: 0,
                timescale: codec.clock_rate(),
                codec,
                duration: 0,
            },
            clock,
            unit,
        })
    }
}

#[cfg(test)]
mod tests;
