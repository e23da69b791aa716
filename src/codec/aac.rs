//! AAC RTP payload format (RFC 3640, mpeg4-generic, AAC-hbr mode).
use crate::rtp::{PacketBatch, RtpStreamState};
use super::CodecError;

/// Packs AAC access units with AU-headers.
#[derive(Debug)]
pub struct AacPacketizer { mtu: usize }

impl AacPacketizer {
    /// Stub.
    pub fn new(mtu: usize) -> Self { Self { mtu } }
    /// Stub.
    pub fn packetize(&mut self, _aus: &[&[u8]], _ts: u32, _stream: &mut RtpStreamState, _out: &mut PacketBatch) -> Result<(), CodecError> {
        let _ = self.mtu;
        todo!()
    }
}

/// Stub.
pub fn fmtp(_config: &[u8]) -> String { todo!() }
