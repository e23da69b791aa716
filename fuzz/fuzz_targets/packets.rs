//! Fuzz input → a run of received RTP packets for the depacketizers.

use bytes::Bytes;
use rtpcast::codec::depay::ReceivedPacket;

/// Splits `data` into packets, each one control byte, one length byte and
/// that many payload bytes (fewer at the end of the input). Control bits:
/// 7 = marker, 6 = a new timestamp, 0–2 = sequence step minus one (so 0 is
/// in order, 1–6 skip packets and 7 steps back, a duplicate or reordering).
pub fn packets(mut data: &[u8]) -> Vec<ReceivedPacket> {
    let mut packets = Vec::new();
    let (mut sequence_number, mut timestamp) = (0xfff0u16, 0u32);
    while let [control, len, rest @ ..] = data {
        let (payload, tail) = rest.split_at(usize::from(*len).min(rest.len()));
        data = tail;
        sequence_number = match control & 7 {
            7 => sequence_number.wrapping_sub(1),
            step => sequence_number.wrapping_add(u16::from(step) + 1),
        };
        if control & 0x40 != 0 {
            timestamp = timestamp.wrapping_add(3000);
        }
        packets.push(ReceivedPacket {
            sequence_number,
            timestamp,
            marker: control & 0x80 != 0,
            payload: Bytes::copy_from_slice(payload),
        });
    }
    packets
}
