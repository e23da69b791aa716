//! RTCP (RFC 3550 §6): sender reports, receiver reports, SDES and BYE.
use std::time::SystemTime;

/// A 64-bit NTP timestamp (RFC 3550 §4): seconds since 1900 in the high
/// 32 bits, fraction in the low 32 bits.
pub type NtpTimestamp = u64;

/// Stub.
pub fn ntp_timestamp(_time: SystemTime) -> NtpTimestamp {
    todo!()
}

/// Stub: sender info of an SR (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderReport {
    pub ssrc: u32,
    pub ntp: NtpTimestamp,
    pub rtp_timestamp: u32,
    pub packet_count: u32,
    pub octet_count: u32,
}

/// Stub: a reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock {
    pub ssrc: u32,
    pub fraction_lost: u8,
    pub cumulative_lost: i32,
    pub highest_seq: u32,
    pub jitter: u32,
    pub last_sr: u32,
    pub delay_since_last_sr: u32,
}

/// Stub: one parsed RTCP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket {
    SenderReport {
        report: SenderReport,
        blocks: Vec<ReportBlock>,
    },
    ReceiverReport {
        ssrc: u32,
        blocks: Vec<ReportBlock>,
    },
    SourceDescription,
    Bye {
        ssrcs: Vec<u32>,
    },
    Other {
        packet_type: u8,
    },
}

/// Stub: RTCP parse errors.
#[derive(Debug, thiserror::Error)]
pub enum RtcpError {
    #[error("bad")]
    Malformed(&'static str),
}

/// Stub.
pub fn parse_compound(_buf: &[u8]) -> Result<Vec<RtcpPacket>, RtcpError> {
    todo!()
}
/// Stub: SR + SDES CNAME compound.
pub fn write_sender_report(_sr: &SenderReport, _cname: &str, _out: &mut Vec<u8>) {
    todo!()
}
/// Stub: SR + SDES CNAME + BYE compound.
pub fn write_bye(_sr: &SenderReport, _cname: &str, _reason: &str, _out: &mut Vec<u8>) {
    todo!()
}
