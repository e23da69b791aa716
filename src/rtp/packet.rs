//! Parsing of received RTP packets (RFC 3550 §5.1): the fixed header
//! checked, CSRCs, header extension and padding stripped, the payload kept
//! as a slice of the datagram.

use bytes::Bytes;

use super::RTP_HEADER_LEN;
use crate::codec::depay::ReceivedPacket;

/// RTP version carried in the top two bits of the first octet (RFC 3550
/// §5.1).
const VERSION: u8 = 2;

/// Length of the header extension's own header: 16-bit profile-defined
/// value and 16-bit length in words (RFC 3550 §5.3.1).
const EXTENSION_HEADER_LEN: usize = 4;

/// Second octets that mark an RTCP packet when RTP and RTCP share a port:
/// SR, RR, SDES, BYE and APP (RFC 5761 §4, RFC 3550 §12.1).
const RTCP_PACKET_TYPES: std::ops::RangeInclusive<u8> = 200..=204;

/// One received RTP packet (RFC 3550 §5.1): the header fields a receiver
/// uses and the payload, without CSRCs, header extension or padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket {
    /// Payload type, 0-127 (RFC 3551 §6; 96-127 dynamic).
    pub payload_type: u8,
    /// Marker bit; its meaning is defined by the payload format.
    pub marker: bool,
    /// Sequence number, +1 per packet modulo 2^16.
    pub sequence_number: u16,
    /// Sampling instant of the payload's first octet, in the payload
    /// format's clock rate (modulo 2^32).
    pub timestamp: u32,
    /// Synchronization source identifier.
    pub ssrc: u32,
    /// The payload: a slice of the received datagram, not a copy.
    pub payload: Bytes,
}

/// Why a datagram is not a valid RTP packet (RFC 3550 §5.1 and the
/// validity checks of Appendix A.1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtpPacketError {
    /// The datagram ends inside the fixed header, the CSRC list or the
    /// header extension; the field named is the one cut short.
    #[error("truncated RTP packet: {0}")]
    Truncated(&'static str),
    /// The version field is not 2.
    #[error("RTP version {0}, not 2")]
    Version(u8),
    /// The second octet is an RTCP packet type (200-204): an RTCP packet
    /// on a port that carries both (RFC 5761 §4), to be parsed as RTCP.
    #[error("RTCP packet type {0} where RTP was expected")]
    Rtcp(u8),
    /// The P bit is set but the last octet's padding count is 0 or longer
    /// than the packet after its headers (RFC 3550 §5.1, A.1).
    #[error("RTP padding count {0} does not fit the packet")]
    BadPadding(u8),
}

impl RtpPacket {
    /// Parses one RTP packet from a whole datagram (or interleaved frame,
    /// RFC 2326 §10.12).
    ///
    /// Errors: [`RtpPacketError::Rtcp`] for an RTCP packet multiplexed on
    /// the same port, the other variants for packets that are not valid RTP.
    pub fn parse(datagram: &Bytes) -> Result<RtpPacket, RtpPacketError> {
        // Tested first: an RTCP packet may be shorter than an RTP header
        // (an empty receiver report is 8 octets).
        if let [first, second, ..] = datagram[..] {
            if first >> 6 == VERSION && RTCP_PACKET_TYPES.contains(&second) {
                return Err(RtpPacketError::Rtcp(second));
            }
        }
        let Some(fixed) = datagram.get(..RTP_HEADER_LEN) else {
            return Err(RtpPacketError::Truncated("fixed header"));
        };
        let version = fixed[0] >> 6;
        if version != VERSION {
            return Err(RtpPacketError::Version(version));
        }
        let padded = fixed[0] & 0x20 != 0;
        let extended = fixed[0] & 0x10 != 0;
        let csrc_count = usize::from(fixed[0] & 0x0f);
        let mut header_len = RTP_HEADER_LEN + 4 * csrc_count;
        if datagram.len() < header_len {
            return Err(RtpPacketError::Truncated("CSRC list"));
        }
        if extended {
            let Some(&[_, _, len_hi, len_lo]) =
                datagram.get(header_len..header_len + EXTENSION_HEADER_LEN)
            else {
                return Err(RtpPacketError::Truncated("header extension header"));
            };
            header_len +=
                EXTENSION_HEADER_LEN + 4 * usize::from(u16::from_be_bytes([len_hi, len_lo]));
            if datagram.len() < header_len {
                return Err(RtpPacketError::Truncated("header extension"));
            }
        }
        let mut end = datagram.len();
        if padded {
            // The count includes itself, so it is at least 1, and it may
            // not reach into the headers.
            let count = datagram[end - 1];
            if count == 0 || usize::from(count) > end - header_len {
                return Err(RtpPacketError::BadPadding(count));
            }
            end -= usize::from(count);
        }
        Ok(RtpPacket {
            payload_type: fixed[1] & 0x7f,
            marker: fixed[1] & 0x80 != 0,
            sequence_number: u16::from_be_bytes([fixed[2], fixed[3]]),
            timestamp: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
            ssrc: u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]),
            payload: datagram.slice(header_len..end),
        })
    }
}

impl From<RtpPacket> for ReceivedPacket {
    /// The fields a depacketizer takes; the payload is moved, not copied.
    fn from(packet: RtpPacket) -> ReceivedPacket {
        ReceivedPacket {
            sequence_number: packet.sequence_number,
            timestamp: packet.timestamp,
            marker: packet.marker,
            payload: packet.payload,
        }
    }
}

impl From<&RtpPacket> for ReceivedPacket {
    /// The fields a depacketizer takes; the payload is shared (a reference
    /// count), not copied.
    fn from(packet: &RtpPacket) -> ReceivedPacket {
        ReceivedPacket::from(packet.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// V=2, PT 96 with marker, sequence 0x1234, timestamp 0x0A0B0C0D,
    /// SSRC 0xDEADBEEF (RFC 3550 §5.1 layout).
    const FIXED: [u8; 12] = [
        0x80, 0xe0, 0x12, 0x34, 0x0a, 0x0b, 0x0c, 0x0d, 0xde, 0xad, 0xbe, 0xef,
    ];

    fn parse(bytes: &[u8]) -> Result<RtpPacket, RtpPacketError> {
        RtpPacket::parse(&Bytes::copy_from_slice(bytes))
    }

    #[test]
    fn fixed_header_fields() {
        let datagram = Bytes::from([&FIXED[..], b"abc"].concat());
        let packet = RtpPacket::parse(&datagram).expect("valid");
        assert_eq!(
            packet,
            RtpPacket {
                payload_type: 96,
                marker: true,
                sequence_number: 0x1234,
                timestamp: 0x0a0b_0c0d,
                ssrc: 0xdead_beef,
                payload: Bytes::from_static(b"abc"),
            }
        );
        // Zero-copy: the payload points into the datagram.
        assert_eq!(packet.payload.as_ptr(), datagram[12..].as_ptr());
    }

    #[test]
    fn marker_clear_and_empty_payload() {
        let mut bytes = FIXED;
        bytes[1] = 0x00;
        let packet = parse(&bytes).expect("valid");
        assert!(!packet.marker);
        assert_eq!(packet.payload_type, 0);
        assert!(packet.payload.is_empty());
    }

    #[test]
    fn csrcs_extension_and_padding_are_stripped() {
        let mut bytes = FIXED.to_vec();
        bytes[0] = 0x80 | 0x20 | 0x10 | 2; // P, X, CC=2
        bytes.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2]); // CSRCs
        bytes.extend_from_slice(&[0xbe, 0xde, 0, 2]); // extension: 2 words
        bytes.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        bytes.extend_from_slice(b"payload");
        bytes.extend_from_slice(&[0, 0, 3]); // 3 octets of padding
        let packet = parse(&bytes).expect("valid");
        assert_eq!(packet.payload, Bytes::from_static(b"payload"));
        assert_eq!(packet.ssrc, 0xdead_beef);
    }

    #[test]
    fn empty_extension_and_padding_that_fills_the_payload() {
        let mut bytes = FIXED.to_vec();
        bytes[0] = 0x80 | 0x20 | 0x10;
        bytes.extend_from_slice(&[0x10, 0x00, 0, 0]); // extension: 0 words
        bytes.extend_from_slice(&[0, 0, 0, 4]); // all padding
        let packet = parse(&bytes).expect("valid");
        assert!(packet.payload.is_empty());
    }

    #[test]
    fn rtcp_on_the_rtp_port_is_named() {
        for packet_type in [200, 201, 202, 203, 204] {
            let mut bytes = FIXED;
            bytes[1] = packet_type;
            assert_eq!(parse(&bytes), Err(RtpPacketError::Rtcp(packet_type)));
            assert_eq!(parse(&bytes[..2]), Err(RtpPacketError::Rtcp(packet_type)));
        }
        // Another version is no RTCP either.
        let mut bytes = FIXED;
        bytes[0] = 0x40;
        bytes[1] = 200;
        assert_eq!(parse(&bytes), Err(RtpPacketError::Version(1)));
        // PT 71 and 77 with the marker are RTP (RFC 5761 §4 only reserves
        // 72-76 for the conflict).
        for second in [199, 205] {
            let mut bytes = FIXED;
            bytes[1] = second;
            assert_eq!(parse(&bytes).expect("RTP").payload_type, second & 0x7f);
        }
    }

    #[test]
    fn malformed_packets_are_errors() {
        let with = |first: u8, tail: &[u8]| {
            let mut bytes = FIXED.to_vec();
            bytes[0] = first;
            bytes.extend_from_slice(tail);
            bytes
        };
        let cases: Vec<(Vec<u8>, RtpPacketError)> = vec![
            (vec![], RtpPacketError::Truncated("fixed header")),
            (
                FIXED[..11].to_vec(),
                RtpPacketError::Truncated("fixed header"),
            ),
            (with(0x40, &[]), RtpPacketError::Version(1)),
            (with(0xc0, &[]), RtpPacketError::Version(3)),
            (with(0x00, &[]), RtpPacketError::Version(0)),
            (
                with(0x81, &[0, 0, 0]),
                RtpPacketError::Truncated("CSRC list"),
            ),
            (with(0x8f, &[0; 56]), RtpPacketError::Truncated("CSRC list")),
            (
                with(0x90, &[0xbe, 0xde, 0]),
                RtpPacketError::Truncated("header extension header"),
            ),
            (
                with(0x90, &[0xbe, 0xde, 0, 1, 0, 0, 0]),
                RtpPacketError::Truncated("header extension"),
            ),
            (with(0xa0, &[b'x', 0]), RtpPacketError::BadPadding(0)),
            (with(0xa0, &[b'x', 3]), RtpPacketError::BadPadding(3)),
            // The padding count may not reach back into the header.
            (with(0xa0, &[]), RtpPacketError::BadPadding(0xef)),
            (
                with(0xb0, &[0xbe, 0xde, 0, 0, 5]),
                RtpPacketError::BadPadding(5),
            ),
        ];
        for (bytes, error) in cases {
            assert_eq!(parse(&bytes), Err(error), "{bytes:02x?}");
        }
        // Exactly full CSRC list and extension are fine.
        assert!(parse(&with(0x8f, &[0; 60])).is_ok());
        assert!(parse(&with(0x90, &[0xbe, 0xde, 0, 1, 0, 0, 0, 0])).is_ok());
        assert!(parse(&with(0xa0, &[b'x', 2])).is_ok());
    }

    #[test]
    fn conversion_for_depacketizers_shares_the_payload() {
        let datagram = Bytes::from([&FIXED[..], b"abc"].concat());
        let packet = RtpPacket::parse(&datagram).expect("valid");
        let borrowed = ReceivedPacket::from(&packet);
        assert_eq!(borrowed.payload.as_ptr(), packet.payload.as_ptr());
        let owned = ReceivedPacket::from(packet);
        assert_eq!(
            owned,
            ReceivedPacket {
                sequence_number: 0x1234,
                timestamp: 0x0a0b_0c0d,
                marker: true,
                payload: Bytes::from_static(b"abc"),
            }
        );
        assert_eq!(borrowed, owned);
    }
}
