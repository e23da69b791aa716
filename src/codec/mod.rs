//! RTP payload formats: access unit → RTP payloads (payload bytes and
//! marker bits only; each viewer's sender writes the headers), and the SDP
//! `rtpmap` and `fmtp` values for each codec.

pub mod aac;
pub mod depay;
pub mod h264;
pub mod jpeg;
mod payloads;

pub use payloads::{Payload, PayloadWriter, Payloads};

use crate::media::{AccessUnit, CodecParams};

/// Errors while cutting an access unit into RTP payloads.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The sample's NAL length prefixes do not match its size.
    #[error("malformed H.264 sample: {0}")]
    MalformedH264(&'static str),
    /// The access unit cannot be described by the payload format.
    #[error("AAC access unit of {0} bytes is too large for RFC 3640 AU-size")]
    AacTooLarge(usize),
    /// The access unit is not one whole JPEG image.
    #[error("malformed JPEG image: {0}")]
    MalformedJpeg(&'static str),
    /// The JPEG image is valid but RFC 2435 cannot describe it; the reason
    /// names the limit.
    #[error("JPEG image not carried by RFC 2435: {0}")]
    UnsupportedJpeg(String),
}

/// The packetizer of one track, chosen by its codec.
#[derive(Debug)]
pub enum Packetizer {
    /// H.264, RFC 6184 packetization-mode 1.
    H264(h264::H264Packetizer),
    /// AAC, RFC 3640 mpeg4-generic AAC-hbr.
    Aac(aac::AacPacketizer),
    /// Motion-JPEG, RFC 2435.
    Jpeg(jpeg::JpegPacketizer),
}

impl Packetizer {
    /// The packetizer for `codec`, producing packets of at most `mtu` bytes
    /// (RTP header included).
    pub fn new(codec: &CodecParams, mtu: usize) -> Self {
        match codec {
            CodecParams::H264 {
                sps,
                pps,
                nal_length_size,
                ..
            } => Packetizer::H264(h264::H264Packetizer::new(
                mtu,
                *nal_length_size,
                sps.clone(),
                pps.clone(),
            )),
            CodecParams::Aac { .. } => Packetizer::Aac(aac::AacPacketizer::new(mtu)),
            CodecParams::Jpeg { .. } => Packetizer::Jpeg(jpeg::JpegPacketizer::new(mtu)),
        }
    }

    /// Cuts `au` into RTP payloads (RFC 3550 §5.1 leaves the header to the
    /// sender). On error `out` holds nothing of this unit.
    pub fn packetize(
        &mut self,
        au: &AccessUnit,
        out: &mut PayloadWriter,
    ) -> Result<Payloads, CodecError> {
        let result = match self {
            Packetizer::H264(p) => p.packetize(&au.data, au.keyframe, out),
            Packetizer::Aac(p) => p.packetize(&[&au.data[..]], out),
            Packetizer::Jpeg(p) => p.packetize(&au.data, out),
        };
        match result {
            Ok(()) => Ok(out.finish()),
            Err(error) => {
                out.discard();
                Err(error)
            }
        }
    }
}

/// The `a=rtpmap` encoding name/clock rate[/channels] (RFC 4566 §6).
pub fn rtpmap(codec: &CodecParams) -> String {
    match codec {
        CodecParams::H264 { .. } => "H264/90000".to_string(),
        CodecParams::Aac {
            sample_rate,
            channels,
            ..
        } => format!("mpeg4-generic/{sample_rate}/{channels}"),
        CodecParams::Jpeg { .. } => "JPEG/90000".to_string(),
    }
}

/// The `a=fmtp` parameters (without the payload type); empty for JPEG,
/// which has none (RFC 3551 §6).
pub fn fmtp(codec: &CodecParams) -> String {
    match codec {
        CodecParams::H264 { sps, pps, .. } => h264::fmtp(sps, pps),
        CodecParams::Aac { config, .. } => aac::fmtp(config),
        CodecParams::Jpeg { .. } => String::new(),
    }
}

/// Whole RTP packets (header and payload) of `payloads` for `stream` at
/// `timestamp`, for tests that check bytes on the wire.
#[cfg(test)]
pub(crate) fn wire_packets(
    payloads: &Payloads,
    stream: &mut crate::rtp::RtpStreamState,
    timestamp: u32,
) -> Vec<Vec<u8>> {
    let mut batch = crate::rtp::PacketBatch::new();
    batch.push_unit(stream, timestamp, payloads);
    batch
        .packets_in(0..batch.len())
        .map(|(h, p)| [h, p].concat())
        .collect()
}
