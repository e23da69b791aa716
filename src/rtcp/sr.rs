//! Sender report (RFC 3550 §6.4.1).
use super::{
    begin_packet, finish_packet, packet_type, rr, u32_at, NtpTimestamp, RtcpError, RtcpPacket,
};

/// Length of the sender info section (RFC 3550 §6.4.1).
const SENDER_INFO_LEN: usize = 24;

/// Sender info of an SR (RFC 3550 §6.4.1): what a receiver needs to map RTP
/// timestamps to wall-clock time and to estimate the sending rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderReport {
    /// SSRC of the sender.
    pub ssrc: u32,
    /// Wall-clock time at which this report was sent.
    pub ntp: NtpTimestamp,
    /// The same instant as `ntp`, in the stream's RTP timestamp units.
    pub rtp_timestamp: u32,
    /// Packets sent since the stream started.
    pub packet_count: u32,
    /// Payload octets sent since the stream started.
    pub octet_count: u32,
}

impl SenderReport {
    /// Appends an SR packet with no reception report blocks (RC=0, RFC 3550
    /// §6.4.1): the server only sends, so it has no sources to report on.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let start = begin_packet(out, 0, packet_type::SR);
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(&self.ntp.to_be_bytes());
        out.extend_from_slice(&self.rtp_timestamp.to_be_bytes());
        out.extend_from_slice(&self.packet_count.to_be_bytes());
        out.extend_from_slice(&self.octet_count.to_be_bytes());
        finish_packet(out, start);
    }

    /// Parses the sender info from the start of an SR body (after the
    /// common header).
    pub fn parse(body: &[u8]) -> Result<SenderReport, RtcpError> {
        if body.len() < SENDER_INFO_LEN {
            return Err(RtcpError::Malformed("SR shorter than sender info"));
        }
        Ok(SenderReport {
            ssrc: u32_at(body, 0)?,
            ntp: u64::from(u32_at(body, 4)?) << 32 | u64::from(u32_at(body, 8)?),
            rtp_timestamp: u32_at(body, 12)?,
            packet_count: u32_at(body, 16)?,
            octet_count: u32_at(body, 20)?,
        })
    }
}

/// Parses an SR body (padding removed) holding `count` report blocks.
/// Bytes after the blocks are a profile-specific extension (§6.4.1) and
/// are ignored.
pub(super) fn parse(count: u8, body: &[u8]) -> Result<RtcpPacket, RtcpError> {
    let report = SenderReport::parse(body)?;
    let blocks = rr::parse_blocks(count, &body[SENDER_INFO_LEN..])?;
    Ok(RtcpPacket::SenderReport { report, blocks })
}

#[cfg(test)]
mod tests {
    use super::super::parse_compound;
    use super::*;

    #[test]
    fn sr_with_report_block_parses() {
        let mut buf = vec![0x81, 200, 0, 12];
        buf.extend_from_slice(&[0, 0, 0, 9]); // SSRC
        buf.extend_from_slice(&[0x83, 0xaa, 0x7e, 0x80, 0x80, 0, 0, 0]); // NTP
        buf.extend_from_slice(&[0, 0, 0x01, 0x00]); // RTP timestamp
        buf.extend_from_slice(&[0, 0, 0, 3]); // packet count
        buf.extend_from_slice(&[0, 0, 0, 30]); // octet count
        buf.extend_from_slice(&rr::tests::BLOCK);
        let packets = parse_compound(&buf).expect("valid SR");
        assert_eq!(
            packets,
            vec![RtcpPacket::SenderReport {
                report: SenderReport {
                    ssrc: 9,
                    ntp: 0x83AA_7E80_8000_0000,
                    rtp_timestamp: 256,
                    packet_count: 3,
                    octet_count: 30,
                },
                blocks: vec![rr::tests::block()],
            }]
        );
    }

    #[test]
    fn sr_report_count_beyond_length_is_rejected() {
        let mut buf = Vec::new();
        SenderReport {
            ssrc: 1,
            ntp: 2,
            rtp_timestamp: 3,
            packet_count: 4,
            octet_count: 5,
        }
        .write_to(&mut buf);
        // Claim one report block that is not there.
        buf[0] |= 1;
        assert!(parse_compound(&buf).is_err());
    }

    #[test]
    fn sr_shorter_than_sender_info_is_rejected() {
        let buf = [0x80, 200, 0, 1, 0, 0, 0, 1];
        assert!(parse_compound(&buf).is_err());
    }
}
