//! Containers: demuxers that yield access units with their decode and
//! presentation times, and the codec parameters of their tracks.

pub mod mp4;

use bytes::Bytes;

/// Codec-specific description of a track, as needed for SDP (RFC 4566) and
/// the RTP payload formats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecParams {
    /// H.264 video (RFC 6184). Parameter sets are raw NAL units without
    /// start codes or length prefixes.
    H264 {
        /// Sequence parameter sets.
        sps: Vec<Bytes>,
        /// Picture parameter sets.
        pps: Vec<Bytes>,
        /// Size in bytes of the length prefix of each NAL unit in a sample
        /// (`lengthSizeMinusOne + 1` of the avcC box, ISO/IEC 14496-15).
        nal_length_size: u8,
        /// Coded width in pixels.
        width: u16,
        /// Coded height in pixels.
        height: u16,
    },
    /// MPEG-4 AAC audio (RFC 3640, mpeg4-generic AAC-hbr).
    Aac {
        /// The AudioSpecificConfig (ISO/IEC 14496-3) from the esds box.
        config: Bytes,
        /// Sampling rate in Hz; also the RTP clock rate.
        sample_rate: u32,
        /// Number of channels.
        channels: u8,
    },
    /// Motion-JPEG video (RFC 2435): each access unit is one baseline JPEG
    /// image, SOI to EOI.
    Jpeg {
        /// Width in pixels, from the images' frame header (at most 2040).
        width: u16,
        /// Height in pixels (at most 2040).
        height: u16,
    },
}

impl CodecParams {
    /// The RTP clock rate of this codec's payload format: 90 kHz for video
    /// (RFC 6184 §8.2.1, RFC 2435 §3), the sampling rate for AAC (RFC 3640
    /// §4.1).
    pub fn clock_rate(&self) -> u32 {
        match self {
            CodecParams::H264 { .. } | CodecParams::Jpeg { .. } => 90_000,
            CodecParams::Aac { sample_rate, .. } => *sample_rate,
        }
    }

    /// A short name for people and the operations API: `H264`, `AAC`,
    /// `JPEG`.
    pub fn name(&self) -> &'static str {
        match self {
            CodecParams::H264 { .. } => "H264",
            CodecParams::Aac { .. } => "AAC",
            CodecParams::Jpeg { .. } => "JPEG",
        }
    }

    /// True for video tracks: they anchor seeks (keyframes) and are
    /// described as `m=video` (RFC 4566 §5.14).
    pub fn is_video(&self) -> bool {
        matches!(self, CodecParams::H264 { .. } | CodecParams::Jpeg { .. })
    }
}

/// One track of a media file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    /// Index of the track within its file (0-based, in SDP order).
    pub index: usize,
    /// Codec and its parameters.
    pub codec: CodecParams,
    /// Ticks per second of the container's time values for this track.
    pub timescale: u32,
    /// Track duration in `timescale` ticks.
    pub duration: u64,
}

/// One access unit (a coded video frame or a group of audio samples), the
/// unit of pacing and packetization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    /// Index of the track it belongs to.
    pub track: usize,
    /// Decode time in the track's timescale ticks (may be negative when an
    /// edit list shifts B-frame streams).
    pub dts: i64,
    /// Presentation (composition) time in the track's timescale ticks.
    pub pts: i64,
    /// Duration in the track's timescale ticks.
    pub duration: u32,
    /// True for sync samples (IDR pictures, every AAC frame).
    pub keyframe: bool,
    /// The sample bytes as stored in the container (for H.264: NAL units
    /// with length prefixes of `nal_length_size` bytes).
    pub data: Bytes,
}

/// An access unit before its bytes are read: where they are in the file,
/// and its times. Readers yield these so the I/O layer, not the timeline,
/// does the reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleRef {
    /// Index of the track it belongs to.
    pub track: usize,
    /// Decode time in the track's timescale ticks.
    pub dts: i64,
    /// Presentation time in the track's timescale ticks.
    pub pts: i64,
    /// Duration in the track's timescale ticks.
    pub duration: u32,
    /// True for sync samples.
    pub keyframe: bool,
    /// Byte offset of the sample in its file.
    pub offset: u64,
    /// Size of the sample in bytes.
    pub size: u32,
}
