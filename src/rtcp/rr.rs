//! Reception report blocks and the receiver report (RFC 3550 §6.4.1,
//! §6.4.2).
use std::time::Duration;

use super::{
    begin_packet, finish_packet, packet_type, u32_at, NtpTimestamp, RtcpError, RtcpPacket,
    MAX_COUNT,
};

/// Length of one reception report block (RFC 3550 §6.4.1).
const BLOCK_LEN: usize = 24;

/// A reception report block (RFC 3550 §6.4.1): one receiver's view of one
/// source's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock {
    /// SSRC of the source this block reports on.
    pub ssrc: u32,
    /// Fraction of packets lost since the previous report, in 1/256 units.
    pub fraction_lost: u8,
    /// Packets lost since the start; negative when duplicates outnumber
    /// losses (§6.4.1). Carried in 24 bits on the wire.
    pub cumulative_lost: i32,
    /// Extended highest sequence number received (cycles in the high 16
    /// bits).
    pub highest_seq: u32,
    /// Interarrival jitter in RTP timestamp units (§6.4.1, A.8).
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received, or 0.
    pub last_sr: u32,
    /// Delay between receiving that SR and sending this block, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

impl ReportBlock {
    /// Fraction lost as a percentage, for logging (RFC 3550 §6.4.1 defines
    /// it as a fixed-point fraction with the binary point at the left).
    pub fn fraction_lost_percent(&self) -> f32 {
        f32::from(self.fraction_lost) * 100.0 / 256.0
    }

    /// Round-trip time between us and the reporter, given the arrival time
    /// of this block (RFC 3550 §6.4.1, "A - LSR - DLSR").
    ///
    /// `None` when the reporter has not received an SR yet (LSR is 0) or
    /// when the result is negative, which happens with bogus reports.
    pub fn round_trip_time(&self, arrival: NtpTimestamp) -> Option<Duration> {
        if self.last_sr == 0 {
            return None;
        }
        // The middle 32 bits of an NTP timestamp are in 1/65536 s units.
        let arrival_mid = (arrival >> 16) as u32;
        let rtt = arrival_mid
            .wrapping_sub(self.last_sr)
            .wrapping_sub(self.delay_since_last_sr);
        if rtt as i32 >= 0 {
            Some(Duration::from_nanos((u64::from(rtt) * 1_000_000_000) >> 16))
        } else {
            None
        }
    }

    /// Appends the block in wire format (RFC 3550 §6.4.1), clamping the
    /// cumulative loss to the 24-bit signed range as §6.4.1 requires.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let lost = self.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff) as u32 & 0xff_ffff;
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(&(u32::from(self.fraction_lost) << 24 | lost).to_be_bytes());
        out.extend_from_slice(&self.highest_seq.to_be_bytes());
        out.extend_from_slice(&self.jitter.to_be_bytes());
        out.extend_from_slice(&self.last_sr.to_be_bytes());
        out.extend_from_slice(&self.delay_since_last_sr.to_be_bytes());
    }

    /// Parses a block from the first 24 bytes of `buf` (RFC 3550 §6.4.1).
    pub fn parse(buf: &[u8]) -> Result<ReportBlock, RtcpError> {
        let loss = u32_at(buf, 4)?;
        Ok(ReportBlock {
            ssrc: u32_at(buf, 0)?,
            fraction_lost: (loss >> 24) as u8,
            // Shifting the 24-bit field to the top and back sign-extends it.
            cumulative_lost: ((loss << 8) as i32) >> 8,
            highest_seq: u32_at(buf, 8)?,
            jitter: u32_at(buf, 12)?,
            last_sr: u32_at(buf, 16)?,
            delay_since_last_sr: u32_at(buf, 20)?,
        })
    }
}

/// Appends receiver reports from `ssrc` covering all `blocks` (RFC 3550
/// §6.4.2). The report count is 5 bits, so past 31 blocks further RR packets
/// are stacked as §6.4.2 prescribes; no blocks gives one empty RR.
pub fn write_receiver_report(ssrc: u32, blocks: &[ReportBlock], out: &mut Vec<u8>) {
    let mut chunks = blocks.chunks(MAX_COUNT);
    loop {
        let chunk = chunks.next().unwrap_or_default();
        let start = begin_packet(out, chunk.len() as u8, packet_type::RR);
        out.extend_from_slice(&ssrc.to_be_bytes());
        for block in chunk {
            block.write_to(out);
        }
        finish_packet(out, start);
        if chunks.len() == 0 {
            break;
        }
    }
}

/// Parses `count` report blocks from the start of `buf`; trailing bytes are
/// a profile-specific extension (§6.4.1) and are ignored.
pub(super) fn parse_blocks(count: u8, buf: &[u8]) -> Result<Vec<ReportBlock>, RtcpError> {
    let needed = usize::from(count) * BLOCK_LEN;
    let blocks = buf
        .get(..needed)
        .ok_or(RtcpError::Malformed("report count exceeds length"))?;
    blocks
        .chunks_exact(BLOCK_LEN)
        .map(ReportBlock::parse)
        .collect()
}

/// Parses an RR body (padding removed) holding `count` report blocks.
pub(super) fn parse(count: u8, body: &[u8]) -> Result<RtcpPacket, RtcpError> {
    let ssrc = u32_at(body, 0)?;
    let blocks = parse_blocks(count, &body[4..])?;
    Ok(RtcpPacket::ReceiverReport { ssrc, blocks })
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::parse_compound;
    use super::*;

    /// A report block written out byte by byte: fraction lost 0x40 (25 %),
    /// cumulative lost 0xFFFFFF (-1).
    pub(in super::super) const BLOCK: [u8; BLOCK_LEN] = [
        0x11, 0x22, 0x33, 0x44, // SSRC of source
        0x40, 0xff, 0xff, 0xff, // fraction lost, cumulative lost
        0x00, 0x01, 0x00, 0x10, // extended highest sequence number
        0x00, 0x00, 0x00, 0x20, // jitter
        0x7e, 0x81, 0x80, 0x00, // LSR
        0x00, 0x01, 0x00, 0x00, // DLSR: 1 s
    ];

    /// The values `BLOCK` encodes.
    pub(in super::super) fn block() -> ReportBlock {
        ReportBlock {
            ssrc: 0x1122_3344,
            fraction_lost: 0x40,
            cumulative_lost: -1,
            highest_seq: 0x0001_0010,
            jitter: 0x20,
            last_sr: 0x7e81_8000,
            delay_since_last_sr: 0x0001_0000,
        }
    }

    /// An RR from SSRC 0xAABBCCDD carrying the same block as `BLOCK`,
    /// spelled out in full so the whole vector reads against §6.4.2.
    pub(in super::super) const HAND_BUILT_RR: [u8; 32] = [
        0x81, 201, 0x00, 0x07, // V=2, P=0, RC=1, PT=RR, 7 words follow
        0xaa, 0xbb, 0xcc, 0xdd, // SSRC of packet sender
        0x11, 0x22, 0x33, 0x44, // SSRC of source
        0x40, 0xff, 0xff, 0xff, // fraction lost 1/4, cumulative lost -1
        0x00, 0x01, 0x00, 0x10, // extended highest sequence number
        0x00, 0x00, 0x00, 0x20, // jitter
        0x7e, 0x81, 0x80, 0x00, // LSR
        0x00, 0x01, 0x00, 0x00, // DLSR: 1 s
    ];

    #[test]
    fn hand_built_rr_parses() {
        assert_eq!(
            parse_compound(&HAND_BUILT_RR).expect("valid RR"),
            vec![RtcpPacket::ReceiverReport {
                ssrc: 0xaabb_ccdd,
                blocks: vec![block()]
            }]
        );
    }

    #[test]
    fn report_block_round_trip() {
        let mut out = Vec::new();
        block().write_to(&mut out);
        assert_eq!(out, BLOCK);
    }

    #[test]
    fn cumulative_lost_is_clamped_to_24_bits() {
        for (lost, wire) in [(i32::MAX, 0x7f_ffff), (i32::MIN, -0x80_0000), (-5, -5)] {
            let mut out = Vec::new();
            ReportBlock {
                cumulative_lost: lost,
                ..block()
            }
            .write_to(&mut out);
            let parsed = ReportBlock::parse(&out).expect("24 bytes");
            assert_eq!(parsed.cumulative_lost, wire);
        }
    }

    #[test]
    fn fraction_lost_percent_of_quarter() {
        assert_eq!(block().fraction_lost_percent(), 25.0);
    }

    #[test]
    fn round_trip_time_from_lsr_and_dlsr() {
        // Arrival 1.25 s after the SR whose middle bits are 0x7e81_8000,
        // with the reporter holding it for 1 s: RTT is 0.25 s.
        let arrival = (0x7e81_8000_u64 + 0x1_4000) << 16;
        assert_eq!(
            block().round_trip_time(arrival),
            Some(Duration::from_millis(250))
        );
        let early = 0x7e81_8000_u64 << 16;
        assert_eq!(block().round_trip_time(early), None);
        let no_sr = ReportBlock {
            last_sr: 0,
            ..block()
        };
        assert_eq!(no_sr.round_trip_time(arrival), None);
    }

    #[test]
    fn receiver_report_splits_past_31_blocks() {
        let blocks = vec![block(); 40];
        let mut out = Vec::new();
        write_receiver_report(7, &blocks, &mut out);
        let packets = parse_compound(&out).expect("valid RRs");
        assert_eq!(
            packets,
            vec![
                RtcpPacket::ReceiverReport {
                    ssrc: 7,
                    blocks: blocks[..31].to_vec()
                },
                RtcpPacket::ReceiverReport {
                    ssrc: 7,
                    blocks: blocks[31..].to_vec()
                },
            ]
        );
    }

    #[test]
    fn empty_receiver_report() {
        let mut out = Vec::new();
        write_receiver_report(7, &[], &mut out);
        assert_eq!(out, [0x80, 201, 0, 1, 0, 0, 0, 7]);
    }

    #[test]
    fn report_count_beyond_length_is_rejected() {
        let mut buf = HAND_BUILT_RR;
        buf[0] = 0x82;
        assert!(parse_compound(&buf).is_err());
    }
}
