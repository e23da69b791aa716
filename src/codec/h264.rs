//! H.264 RTP payload format (RFC 6184), packetization-mode 1.
use bytes::Bytes;
use crate::rtp::{PacketBatch, RtpStreamState};
use super::CodecError;

/// Cuts H.264 access units into single NAL unit packets and FU-A fragments.
#[derive(Debug)]
pub struct H264Packetizer { mtu: usize, nal_length_size: u8, sps: Vec<Bytes>, pps: Vec<Bytes> }

impl H264Packetizer {
    /// Stub.
    pub fn new(mtu: usize, nal_length_size: u8, sps: Vec<Bytes>, pps: Vec<Bytes>) -> Self {
        Self { mtu, nal_length_size, sps, pps }
    }
    /// Stub.
    pub fn packetize(&mut self, _sample: &[u8], _keyframe: bool, _ts: u32, _stream: &mut RtpStreamState, _out: &mut PacketBatch) -> Result<(), CodecError> {
        todo!()
    }
}

/// Stub.
pub fn fmtp(_sps: &[Bytes], _pps: &[Bytes]) -> String { todo!() }
