//! RTCP (RFC 3550 §6): sender reports, receiver reports, SDES and BYE.
//!
//! One file per packet type; this module holds the common header (§6.4.1
//! layout shared by all types), compound parsing (§6.1) and the compound
//! packets the server sends.
use std::time::{SystemTime, UNIX_EPOCH};

mod bye;
mod rr;
mod sdes;
mod sr;

pub use bye::write_bye_packet;
pub use rr::{write_receiver_report, ReportBlock};
pub use sdes::write_sdes_cname;
pub use sr::SenderReport;

/// A 64-bit NTP timestamp (RFC 3550 §4): seconds since 1900 in the high
/// 32 bits, fraction in the low 32 bits.
pub type NtpTimestamp = u64;

/// Seconds from 1900-01-01 (NTP epoch) to 1970-01-01 (Unix epoch).
const NTP_UNIX_OFFSET_SECS: i128 = 2_208_988_800;

/// Converts wall-clock time to an NTP timestamp (RFC 3550 §4).
///
/// The seconds wrap modulo 2^32 (NTP era rollover in 2036), which is what
/// §4 asks for: receivers only use differences and the middle 32 bits.
pub fn ntp_timestamp(time: SystemTime) -> NtpTimestamp {
    // A clock set before 1970 is nonsense but must not panic a server.
    let unix_nanos: i128 = match time.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    };
    let ntp_nanos = NTP_UNIX_OFFSET_SECS * 1_000_000_000 + unix_nanos;
    // Truncating to u64 is the era wrap of §4.
    ((ntp_nanos << 32).div_euclid(1_000_000_000)) as u64
}

/// The wall-clock time of an NTP timestamp (RFC 3550 §4), the inverse of
/// [`ntp_timestamp`] for times in NTP era 0 (until 2036).
pub fn system_time_of(ntp: NtpTimestamp) -> SystemTime {
    let ntp_nanos = (i128::from(ntp) * 1_000_000_000) >> 32;
    let unix_nanos = ntp_nanos - NTP_UNIX_OFFSET_SECS * 1_000_000_000;
    let magnitude = std::time::Duration::from_nanos(unix_nanos.unsigned_abs() as u64);
    if unix_nanos >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

/// RTCP packet types (RFC 3550 §12.1).
mod packet_type {
    pub const SR: u8 = 200;
    pub const RR: u8 = 201;
    pub const SDES: u8 = 202;
    pub const BYE: u8 = 203;
}

/// RTP/RTCP version carried in the top two bits (RFC 3550 §6.4.1).
const VERSION: u8 = 2;

/// Length of the common RTCP header (RFC 3550 §6.4.1).
const HEADER_LEN: usize = 4;

/// Largest value of the 5-bit report/source count (RFC 3550 §6.4.1).
const MAX_COUNT: usize = 31;

/// One packet of a parsed compound RTCP packet (RFC 3550 §6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket {
    /// Sender report (RFC 3550 §6.4.1) with its reception report blocks.
    SenderReport {
        /// Sender info.
        report: SenderReport,
        /// Reception report blocks, one per source the sender hears.
        blocks: Vec<ReportBlock>,
    },
    /// Receiver report (RFC 3550 §6.4.2).
    ReceiverReport {
        /// SSRC of the reporting receiver.
        ssrc: u32,
        /// Reception report blocks, one per source the receiver hears.
        blocks: Vec<ReportBlock>,
    },
    /// Source description (RFC 3550 §6.5), checked for structure only:
    /// the server has no use for peers' CNAMEs.
    SourceDescription,
    /// Goodbye (RFC 3550 §6.6).
    Bye {
        /// Sources that are leaving.
        ssrcs: Vec<u32>,
        /// Optional reason for leaving, decoded lossily for logging.
        reason: Option<String>,
    },
    /// Any other packet type (APP, RTPFB, PSFB, XR, ...), skipped by length.
    Other {
        /// The packet type field (RFC 3550 §12.1).
        packet_type: u8,
    },
}

/// Why an RTCP packet was rejected (RFC 3550 §6.1 and Appendix A.2 validity
/// checks).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtcpError {
    /// The bytes are not a well-formed compound RTCP packet.
    #[error("malformed RTCP packet: {0}")]
    Malformed(&'static str),
}

/// The common header fields every RTCP packet starts with (RFC 3550 §6.4.1).
struct Header {
    padding: bool,
    /// Report count or source count, depending on the packet type.
    count: u8,
    packet_type: u8,
    /// Total packet length in bytes, header and padding included.
    len: usize,
}

impl Header {
    fn parse(buf: &[u8]) -> Result<Header, RtcpError> {
        let &[b0, packet_type, len_hi, len_lo, ..] = buf else {
            return Err(RtcpError::Malformed("truncated header"));
        };
        if b0 >> 6 != VERSION {
            return Err(RtcpError::Malformed("version is not 2"));
        }
        let words = usize::from(u16::from_be_bytes([len_hi, len_lo]));
        Ok(Header {
            padding: b0 & 0x20 != 0,
            count: b0 & 0x1f,
            packet_type,
            len: (words + 1) * 4,
        })
    }
}

/// Parses every packet of a compound RTCP packet (RFC 3550 §6.1), applying
/// the validity checks of Appendix A.2 that do not depend on session state.
///
/// Any input, however short or garbled, yields either packets or
/// [`RtcpError::Malformed`]; clients send junk datagrams (NAT keepalives,
/// STUN) to the RTCP port and those must be rejected, not crash a session.
/// The first packet is not required to be SR/RR so that reduced-size RTCP
/// (RFC 5506) feedback is accepted.
pub fn parse_compound(buf: &[u8]) -> Result<Vec<RtcpPacket>, RtcpError> {
    if buf.is_empty() {
        return Err(RtcpError::Malformed("empty datagram"));
    }
    let mut packets = Vec::new();
    let mut rest = buf;
    while !rest.is_empty() {
        let header = Header::parse(rest)?;
        if header.len > rest.len() {
            return Err(RtcpError::Malformed("length field exceeds buffer"));
        }
        let (packet, tail) = rest.split_at(header.len);
        rest = tail;
        let mut body = &packet[HEADER_LEN..];
        if header.padding {
            // A.2: only the last packet of a compound may be padded.
            if !rest.is_empty() {
                return Err(RtcpError::Malformed("padding before the last packet"));
            }
            let pad = body.last().map_or(0, |&n| usize::from(n));
            if pad == 0 || pad > body.len() {
                return Err(RtcpError::Malformed("bad padding count"));
            }
            body = &body[..body.len() - pad];
        }
        packets.push(match header.packet_type {
            packet_type::SR => sr::parse(header.count, body)?,
            packet_type::RR => rr::parse(header.count, body)?,
            packet_type::SDES => sdes::parse(header.count, body)?,
            packet_type::BYE => bye::parse(header.count, body)?,
            packet_type => RtcpPacket::Other { packet_type },
        });
    }
    Ok(packets)
}

/// Appends a compound SR + SDES CNAME packet, the minimal compound a sender
/// emits each reporting interval (RFC 3550 §6.1, §6.4.1, §6.5.1).
pub fn write_sender_report(sr: &SenderReport, cname: &str, out: &mut Vec<u8>) {
    sr.write_to(out);
    write_sdes_cname(sr.ssrc, cname, out);
}

/// Appends a compound SR + SDES CNAME + BYE packet announcing that the
/// sender leaves (RFC 3550 §6.1, §6.6). An empty `reason` omits the reason
/// field.
pub fn write_bye(sr: &SenderReport, cname: &str, reason: &str, out: &mut Vec<u8>) {
    write_sender_report(sr, cname, out);
    write_bye_packet(&[sr.ssrc], reason, out);
}

/// Appends a common header with a zero length and returns its offset for
/// [`finish_packet`], so writers need not compute lengths up front.
fn begin_packet(out: &mut Vec<u8>, count: u8, packet_type: u8) -> usize {
    let start = out.len();
    out.extend_from_slice(&[VERSION << 6 | (count & 0x1f), packet_type, 0, 0]);
    start
}

/// Pads the packet begun at `start` to a 32-bit boundary with zeros and
/// fills in its length field (RFC 3550 §6.4.1: words minus one).
fn finish_packet(out: &mut Vec<u8>, start: usize) {
    pad_to_word(out, start);
    // Our packets are at most a few hundred bytes (255-byte text items, 31
    // report blocks), far below the 256 KiB a 16-bit word count allows.
    let words = ((out.len() - start) / 4 - 1) as u16;
    out[start + 2..start + 4].copy_from_slice(&words.to_be_bytes());
}

/// Appends zeros until the bytes written since `start` fill whole words.
fn pad_to_word(out: &mut Vec<u8>, start: usize) {
    while !(out.len() - start).is_multiple_of(4) {
        out.push(0);
    }
}

/// Appends an 8-bit length and the text (SDES items §6.5, BYE reason §6.6),
/// cutting the text at a character boundary if it exceeds 255 bytes.
fn write_text(text: &str, out: &mut Vec<u8>) {
    let mut end = text.len().min(usize::from(u8::MAX));
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    out.push(end as u8);
    out.extend_from_slice(&text.as_bytes()[..end]);
}

/// Reads a big-endian u32 at `at`, failing instead of panicking when the
/// packet is too short.
fn u32_at(buf: &[u8], at: usize) -> Result<u32, RtcpError> {
    buf.get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or(RtcpError::Malformed("truncated packet"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ntp_of_unix_epoch() {
        assert_eq!(ntp_timestamp(UNIX_EPOCH), 0x83AA_7E80_0000_0000);
        assert_eq!(system_time_of(0x83AA_7E80_0000_0000), UNIX_EPOCH);
        // 2026-11-30 and half a second, to within the 2^-32 s step.
        let t = UNIX_EPOCH + Duration::from_millis(1_796_000_000_500);
        let back = system_time_of(ntp_timestamp(t));
        let error = t.duration_since(back).unwrap_or_else(|e| e.duration());
        assert!(error < Duration::from_nanos(2), "{error:?}");
        assert_eq!(
            system_time_of(0),
            UNIX_EPOCH - Duration::from_secs(2_208_988_800)
        );
    }

    #[test]
    fn ntp_half_second_fraction() {
        let t = UNIX_EPOCH + Duration::from_millis(1500);
        assert_eq!(ntp_timestamp(t), 0x83AA_7E81_8000_0000);
    }

    #[test]
    fn ntp_before_unix_epoch_does_not_panic() {
        let t = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(ntp_timestamp(t), 0x83AA_7E7F_0000_0000);
    }

    fn sample_sr() -> SenderReport {
        SenderReport {
            ssrc: 0x1234_5678,
            ntp: 0x83AA_7E81_8000_0000,
            rtp_timestamp: 90_000,
            packet_count: 42,
            octet_count: 4200,
        }
    }

    #[test]
    fn sender_report_round_trip() {
        let sr = sample_sr();
        let mut out = Vec::new();
        write_sender_report(&sr, "rtpcast@example", &mut out);
        assert_eq!(out.len() % 4, 0);
        // SR: V=2, P=0, RC=0, PT=200, 6 words after the first.
        assert_eq!(&out[..4], &[0x80, 200, 0, 6]);
        let packets = parse_compound(&out).expect("valid compound");
        assert_eq!(
            packets,
            vec![
                RtcpPacket::SenderReport {
                    report: sr,
                    blocks: vec![]
                },
                RtcpPacket::SourceDescription,
            ]
        );
    }

    #[test]
    fn bye_compound_without_reason() {
        let mut out = Vec::new();
        write_bye(&sample_sr(), "c", "", &mut out);
        let packets = parse_compound(&out).expect("valid compound");
        assert_eq!(packets.len(), 3);
        assert_eq!(
            packets[2],
            RtcpPacket::Bye {
                ssrcs: vec![0x1234_5678],
                reason: None
            }
        );
        // BYE is the header plus one SSRC and nothing else.
        assert_eq!(&out[out.len() - 8..out.len() - 4], &[0x81, 203, 0, 1]);
    }

    #[test]
    fn bye_compound_with_reason() {
        let mut out = Vec::new();
        write_bye(&sample_sr(), "c", "end of file", &mut out);
        let packets = parse_compound(&out).expect("valid compound");
        assert_eq!(
            packets[2],
            RtcpPacket::Bye {
                ssrcs: vec![0x1234_5678],
                reason: Some("end of file".to_owned())
            }
        );
    }

    #[test]
    fn padding_bit_strips_padding() {
        // RR with no blocks, P set, 4 bytes of padding ending in the count.
        let buf = [0xa0, 201, 0, 2, 0, 0, 0, 7, 0, 0, 0, 4];
        assert_eq!(
            parse_compound(&buf).expect("valid"),
            vec![RtcpPacket::ReceiverReport {
                ssrc: 7,
                blocks: vec![]
            }]
        );
    }

    #[test]
    fn padding_errors_are_rejected() {
        let zero_count = [0xa0, 201, 0, 1, 0, 0, 0, 0];
        let too_long = [0xa0, 201, 0, 1, 0, 0, 0, 9];
        let header_only = [0xa0, 201, 0, 0];
        // Padded RR followed by another packet.
        let not_last = [0xa0, 201, 0, 1, 0, 0, 0, 4, 0x80, 201, 0, 1, 0, 0, 0, 1];
        for buf in [&zero_count[..], &too_long, &header_only, &not_last] {
            assert!(parse_compound(buf).is_err(), "{buf:02x?}");
        }
    }

    #[test]
    fn header_errors_are_rejected() {
        let cases: [&[u8]; 5] = [
            &[],
            &[0x80, 200],
            // Version 3, as in common NAT keepalive junk.
            &[0xce, 0xfa, 0xed, 0xfe],
            // Length claims 2 words after the header, buffer has 1.
            &[0x80, 201, 0, 2, 0, 0, 0, 1],
            // A valid RR followed by 2 stray bytes.
            &[0x80, 201, 0, 1, 0, 0, 0, 1, 0x80, 201],
        ];
        for buf in cases {
            assert!(parse_compound(buf).is_err(), "{buf:02x?}");
        }
    }

    #[test]
    fn unknown_packet_type_is_skipped() {
        // A PSFB (PLI) packet after an empty RR.
        let buf = [
            0x80, 201, 0, 1, 0, 0, 0, 1, 0x81, 206, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2,
        ];
        assert_eq!(
            parse_compound(&buf).expect("valid"),
            vec![
                RtcpPacket::ReceiverReport {
                    ssrc: 1,
                    blocks: vec![]
                },
                RtcpPacket::Other { packet_type: 206 },
            ]
        );
    }

    #[test]
    fn long_text_is_cut_at_char_boundary() {
        // 200 two-byte characters: the cut must land on byte 254, not 255.
        let cname = "é".repeat(200);
        let mut out = Vec::new();
        write_sdes_cname(1, &cname, &mut out);
        assert_eq!(out[9], 254);
        assert!(parse_compound(&out).is_ok());
    }

    /// Deterministic xorshift64 so failures reproduce.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn fuzz_never_panics() {
        let mut valid = Vec::new();
        write_bye(&sample_sr(), "rtpcast", "bye", &mut valid);
        valid.extend_from_slice(&rr::tests::HAND_BUILT_RR);

        for end in 0..=valid.len() {
            let _ = parse_compound(&valid[..end]);
        }

        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for _ in 0..5000 {
            // Flipped bytes in a valid compound reach deep into the parsers.
            let mut mutated = valid.clone();
            for _ in 0..(rng.next() % 4 + 1) {
                let at = (rng.next() % mutated.len() as u64) as usize;
                mutated[at] = rng.next() as u8;
            }
            let _ = parse_compound(&mutated);

            // Random bytes with a plausible first octet get past the version
            // check often enough to exercise the length handling.
            let len = (rng.next() % 64) as usize;
            let mut junk: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if let Some(first) = junk.first_mut() {
                *first = 0x80 | (*first & 0x3f);
            }
            let _ = parse_compound(&junk);
        }
    }
}
