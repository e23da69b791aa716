//! RTP payloads → access units: the receiving half of each payload format,
//! for publishers and relays, behind one dispatch by codec.
//!
//! A depacketizer takes the RTP header fields it needs and the payload of
//! each packet, in sequence-number order (reordering is the caller's job, a
//! jitter buffer), and yields whole access units. It parses no RTP header
//! itself, so callers may use any RTP parser. Bad input is an error value
//! for the packet concerned; nothing the network sends can make it panic or
//! grow without bound.

use bytes::Bytes;

use super::aac::depay::{AacDepacketizer, AacPayloadParams};
use super::h264::depay::H264Depacketizer;
use super::jpeg::depay::JpegDepacketizer;
use crate::media::CodecParams;

/// The fields of one received RTP packet that depacketizers use
/// (RFC 3550 §5.1), and its payload (after CSRCs, header extension and
/// padding have been removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedPacket {
    /// RTP sequence number; gaps reveal lost packets.
    pub sequence_number: u16,
    /// RTP timestamp, in the payload format's clock rate.
    pub timestamp: u32,
    /// RTP marker bit: the last packet of an access unit (H.264, RFC 6184
    /// §5.1; JPEG, RFC 2435 §3) or of a fragmented AU (AAC, RFC 3640
    /// §3.2.3).
    pub marker: bool,
    /// The RTP payload.
    pub payload: Bytes,
}

/// One access unit rebuilt from RTP payloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepacketizedUnit {
    /// RTP timestamp of the unit, in the payload format's clock rate.
    pub rtp_timestamp: u32,
    /// True when the unit can start decoding: an H.264 access unit holding
    /// an IDR picture (nal_unit_type 5), and every AAC frame and JPEG
    /// image.
    pub keyframe: bool,
    /// True when data of this unit is known to be missing: a sequence gap,
    /// a rejected packet or an unfinished fragment while it was assembled.
    /// The data present is still well formed (whole NAL units, whole AAC
    /// frames). A JPEG image missing data is dropped whole instead, and
    /// the next image delivered carries the flag.
    pub damaged: bool,
    /// The unit as a container sample: for H.264 the NAL units, each behind
    /// a 4-byte big-endian length (AVCC, ISO/IEC 14496-15 §5.3.3.1 with
    /// `lengthSizeMinusOne` = 3, as MP4 files store them); for AAC one raw
    /// access unit (no ADTS header); for JPEG one whole image, SOI to EOI,
    /// with the headers RFC 2435 Appendix B rebuilds.
    pub data: Bytes,
}

/// Why a packet, or a payload format's parameters, were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DepayError {
    /// The payload ends before a field or unit it announces.
    #[error("truncated RTP payload: {0}")]
    Truncated(&'static str),
    /// A packet type this receiver does not handle (H.264 STAP-B, MTAP,
    /// FU-B: interleaved mode only, RFC 6184 §6.4; AAC interleaving).
    #[error("unsupported RTP payload structure: {0}")]
    Unsupported(&'static str),
    /// The payload breaks a rule of its format (a reserved NAL unit type,
    /// an FU with both start and end bits, sizes that disagree).
    #[error("invalid RTP payload: {0}")]
    Invalid(&'static str),
    /// The packet's sequence number is at or behind one already taken: a
    /// duplicate or a reordered packet, dropped.
    #[error("RTP packet {0} is late or duplicated")]
    OutOfOrder(u16),
    /// An access unit grew beyond [`MAX_UNIT_SIZE`]; it is dropped.
    #[error("access unit larger than {MAX_UNIT_SIZE} bytes")]
    TooLarge,
    /// The SDP `fmtp` parameters describe a layout this receiver cannot
    /// read.
    #[error("unsupported fmtp parameters: {0}")]
    Fmtp(String),
}

/// Largest access unit a depacketizer assembles, in bytes: far above any
/// real coded picture at the levels RTSP cameras use, and a bound on the
/// memory one sender can make us hold.
pub const MAX_UNIT_SIZE: usize = 16 << 20;

/// Sequence number bookkeeping shared by the depacketizers: how many
/// packets are missing before each new one (RFC 3550 §A.1, simplified for
/// in-order input).
#[derive(Debug, Default, Clone)]
pub(crate) struct SequenceTracker {
    next: Option<u16>,
}

impl SequenceTracker {
    /// The number of packets lost just before `sequence_number`, or
    /// [`DepayError::OutOfOrder`] for a packet at or behind the last one.
    pub(crate) fn advance(&mut self, sequence_number: u16) -> Result<u16, DepayError> {
        let lost = match self.next {
            None => 0,
            Some(next) => {
                let gap = sequence_number.wrapping_sub(next);
                // More than half the number space ahead means behind.
                if gap >= 0x8000 {
                    return Err(DepayError::OutOfOrder(sequence_number));
                }
                gap
            }
        };
        self.next = Some(sequence_number.wrapping_add(1));
        Ok(lost)
    }
}

/// The depacketizer of one received track, chosen by its codec.
#[derive(Debug)]
pub enum Depacketizer {
    /// H.264, RFC 6184 packetization-mode 0 or 1.
    H264(H264Depacketizer),
    /// AAC, RFC 3640 mpeg4-generic.
    Aac(AacDepacketizer),
    /// Motion-JPEG, RFC 2435.
    Jpeg(JpegDepacketizer),
}

impl Depacketizer {
    /// The depacketizer for `codec`. `fmtp` is the track's SDP `a=fmtp`
    /// value (without payload type), when one was given: it sets the AAC
    /// AU-header layout (AAC-hbr when absent); H.264 needs nothing from it
    /// beyond the parameter sets already in `codec`, nor does JPEG.
    ///
    /// Errors with [`DepayError::Fmtp`] when the AAC parameters cannot be
    /// read (RFC 3640 §4.1).
    pub fn new(codec: &CodecParams, fmtp: Option<&str>) -> Result<Self, DepayError> {
        Ok(match codec {
            CodecParams::H264 { sps, pps, .. } => {
                Depacketizer::H264(H264Depacketizer::new(sps.clone(), pps.clone()))
            }
            CodecParams::Aac { config, .. } => {
                Depacketizer::Aac(AacDepacketizer::new(match fmtp {
                    Some(fmtp) => AacPayloadParams::from_fmtp(fmtp, config)?,
                    None => AacPayloadParams::hbr(config),
                }))
            }
            CodecParams::Jpeg { .. } => Depacketizer::Jpeg(JpegDepacketizer::new()),
        })
    }

    /// Takes one packet. On error the packet is dropped, the unit being
    /// assembled is marked damaged, and the depacketizer stays usable.
    pub fn push(&mut self, packet: ReceivedPacket) -> Result<(), DepayError> {
        match self {
            Depacketizer::H264(d) => d.push(packet),
            Depacketizer::Aac(d) => d.push(packet),
            Depacketizer::Jpeg(d) => d.push(packet),
        }
    }

    /// The next finished unit, in order; call until `None` after each
    /// [`Depacketizer::push`].
    pub fn pull(&mut self) -> Option<DepacketizedUnit> {
        match self {
            Depacketizer::H264(d) => d.pull(),
            Depacketizer::Aac(d) => d.pull(),
            Depacketizer::Jpeg(d) => d.pull(),
        }
    }
}

/// The packets of a batch as a receiver sees them, for round-trip tests.
#[cfg(test)]
pub(crate) fn received_packets(batch: &crate::rtp::PacketBatch) -> Vec<ReceivedPacket> {
    batch
        .packets_in(0..batch.len())
        .map(|(header, payload)| ReceivedPacket {
            sequence_number: u16::from_be_bytes([header[2], header[3]]),
            timestamp: u32::from_be_bytes([header[4], header[5], header[6], header[7]]),
            marker: header[1] & 0x80 != 0,
            payload: Bytes::copy_from_slice(payload),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_gaps_wrap_and_late_packets_are_refused() {
        let mut tracker = SequenceTracker::default();
        assert_eq!(tracker.advance(65534), Ok(0));
        assert_eq!(tracker.advance(65535), Ok(0));
        assert_eq!(tracker.advance(2), Ok(2), "0 and 1 missing across wrap");
        assert_eq!(tracker.advance(2), Err(DepayError::OutOfOrder(2)));
        assert_eq!(tracker.advance(1), Err(DepayError::OutOfOrder(1)));
        // A refused packet does not move the expectation.
        assert_eq!(tracker.advance(3), Ok(0));
        assert_eq!(tracker.advance(4 + 0x7fff), Ok(0x7fff));
        assert_eq!(
            tracker.advance(4),
            Err(DepayError::OutOfOrder(4)),
            "half the space back is behind"
        );
    }

    #[test]
    fn dispatch_by_codec() {
        let h264 = CodecParams::H264 {
            sps: vec![Bytes::from_static(&[0x67, 1])],
            pps: vec![Bytes::from_static(&[0x68, 2])],
            nal_length_size: 4,
            width: 2,
            height: 2,
        };
        let mut d = Depacketizer::new(&h264, None).expect("h264");
        assert!(matches!(d, Depacketizer::H264(_)));
        d.push(ReceivedPacket {
            sequence_number: 1,
            timestamp: 90,
            marker: true,
            payload: Bytes::from_static(&[0x65, 0xaa]),
        })
        .expect("IDR");
        let unit = d.pull().expect("one unit");
        assert_eq!(&unit.data[..], &[0, 0, 0, 2, 0x65, 0xaa]);
        assert!(unit.keyframe);
        assert_eq!(d.pull(), None);

        let aac = CodecParams::Aac {
            config: Bytes::from_static(&[0x11, 0x90]),
            sample_rate: 48000,
            channels: 2,
        };
        let mut d = Depacketizer::new(&aac, None).expect("aac-hbr");
        assert!(matches!(d, Depacketizer::Aac(_)));
        d.push(ReceivedPacket {
            sequence_number: 9,
            timestamp: 7,
            marker: true,
            payload: Bytes::from_static(&[0x00, 0x10, 0x00, 0x08, 0xab]),
        })
        .expect("one AU");
        let unit = d.pull().expect("one unit");
        assert_eq!((unit.rtp_timestamp, &unit.data[..]), (7, &[0xab][..]));
        assert_eq!(d.pull(), None);

        let lbr = "streamtype=5;mode=AAC-lbr;sizelength=6;indexlength=2;indexdeltalength=2";
        let mut d = Depacketizer::new(&aac, Some(lbr)).expect("aac-lbr");
        d.push(ReceivedPacket {
            sequence_number: 9,
            timestamp: 7,
            marker: true,
            payload: Bytes::from_static(&[0x00, 0x08, 0x04, 0xcd]),
        })
        .expect("one AU");
        assert_eq!(d.pull().map(|u| u.data), Some(Bytes::from_static(&[0xcd])));
        assert!(matches!(
            Depacketizer::new(&aac, Some("streamtype=5;mode=generic")),
            Err(DepayError::Fmtp(_))
        ));

        let jpeg = CodecParams::Jpeg {
            width: 8,
            height: 8,
        };
        let mut d = Depacketizer::new(&jpeg, None).expect("jpeg");
        assert!(matches!(d, Depacketizer::Jpeg(_)));
        // Type 1, Q 50, 16x8 pixels, one byte of scan data.
        d.push(ReceivedPacket {
            sequence_number: 3,
            timestamp: 90,
            marker: true,
            payload: Bytes::from_static(&[0, 0, 0, 0, 1, 50, 2, 1, 0xab]),
        })
        .expect("one fragment");
        let unit = d.pull().expect("one image");
        assert!(unit.keyframe);
        assert!(unit.data.starts_with(&[0xff, 0xd8]));
        assert!(unit.data.ends_with(&[0xab, 0xff, 0xd9]));
        assert_eq!(d.pull(), None);
    }
}
