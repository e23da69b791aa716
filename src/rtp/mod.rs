//! RTP fixed header (RFC 3550 §5.1), per-stream sequence/timestamp/SSRC
//! state, and one viewer's packets of an access unit: its own headers in
//! front of the payloads the packetizer cut once for everybody. On the
//! receiving side (publishers, relays): [`RtpPacket`] parsing and the
//! [`RtpReceiver`] of one incoming stream (reordering, loss, jitter,
//! receiver reports).

mod delivery;
mod packet;
mod receiver;

pub use delivery::Delivery;
pub use packet::{RtpPacket, RtpPacketError};
pub use receiver::{
    PacketOutcome, ReceivedSenderReport, ReceiverConfig, ReceiverStats, ReleasedPacket, RtpReceiver,
};

use bytes::Bytes;

use crate::codec::Payloads;

/// Length of the RTP fixed header without CSRCs (RFC 3550 §5.1).
pub const RTP_HEADER_LEN: usize = 12;

/// Bytes reserved before each packet for `$`, channel and length.
pub const INTERLEAVED_PREFIX_LEN: usize = 4;

/// The `$ channel length` prefix of an interleaved frame (RFC 2326
/// §10.12).
pub fn interleaved_prefix(channel: u8, len: u16) -> [u8; INTERLEAVED_PREFIX_LEN] {
    let [high, low] = len.to_be_bytes();
    [b'$', channel, high, low]
}

/// Sender-side state of one RTP stream (one track of one session): the
/// values RFC 3550 §5.1 requires to be random at start, and the counters
/// the sender report (§6.4.1) needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpStreamState {
    /// Payload type (RFC 3551 dynamic range 96-127 for our codecs).
    pub payload_type: u8,
    /// Synchronization source identifier.
    pub ssrc: u32,
    /// Sequence number of the next packet.
    pub next_seq: u16,
    /// Packets sent so far (sender's packet count, §6.4.1).
    pub packet_count: u32,
    /// Payload octets sent so far (sender's octet count, §6.4.1).
    pub octet_count: u32,
}

impl RtpStreamState {
    /// A new stream with the given SSRC and first sequence number.
    pub fn new(payload_type: u8, ssrc: u32, first_seq: u16) -> Self {
        RtpStreamState {
            payload_type,
            ssrc,
            next_seq: first_seq,
            packet_count: 0,
            octet_count: 0,
        }
    }

    /// The fixed header of the next packet (RFC 3550 §5.1: V=2, no
    /// padding, no extension, no CSRC), counting it and its `payload_len`
    /// bytes for the sender report (§6.4.1).
    pub fn next_header(
        &mut self,
        timestamp: u32,
        marker: bool,
        payload_len: usize,
    ) -> [u8; RTP_HEADER_LEN] {
        let mut header = [0; RTP_HEADER_LEN];
        header[0] = 0x80;
        header[1] = (u8::from(marker) << 7) | (self.payload_type & 0x7f);
        header[2..4].copy_from_slice(&self.next_seq.to_be_bytes());
        header[4..8].copy_from_slice(&timestamp.to_be_bytes());
        header[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        self.next_seq = self.next_seq.wrapping_add(1);
        self.packet_count = self.packet_count.wrapping_add(1);
        self.octet_count = self.octet_count.wrapping_add(payload_len as u32);
        header
    }
}

/// One viewer's RTP packets of one access unit (RFC 3550 §5.1): the
/// viewer's own 12-byte headers, each behind four bytes reserved for the
/// interleaved framing (RFC 2326 §10.12), in front of payloads shared with
/// every other viewer of the unit. Sent over UDP as two iovecs per packet,
/// over TCP as a vectored write; the payload bytes are never copied.
#[derive(Debug, Default)]
pub struct PacketBatch {
    heads: Vec<[u8; INTERLEAVED_PREFIX_LEN + RTP_HEADER_LEN]>,
    payloads: Vec<Bytes>,
}

impl PacketBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Empties the batch, keeping its capacity.
    pub fn clear(&mut self) {
        self.heads.clear();
        self.payloads.clear();
    }

    /// Number of packets in the batch.
    pub fn len(&self) -> usize {
        self.heads.len()
    }

    /// True when the batch holds no packet.
    pub fn is_empty(&self) -> bool {
        self.heads.is_empty()
    }

    /// Appends one RTP packet carrying `payload`, taking the next sequence
    /// number of `stream` (RFC 3550 §5.1: V=2, no padding, no extension, no
    /// CSRC).
    pub fn push(
        &mut self,
        stream: &mut RtpStreamState,
        timestamp: u32,
        marker: bool,
        payload: Bytes,
    ) {
        let mut head = [0; INTERLEAVED_PREFIX_LEN + RTP_HEADER_LEN];
        head[INTERLEAVED_PREFIX_LEN..].copy_from_slice(&stream.next_header(
            timestamp,
            marker,
            payload.len(),
        ));
        self.heads.push(head);
        self.payloads.push(payload);
    }

    /// Appends a packet for each of `payloads`, the unit's RTP timestamp
    /// being `timestamp` (plus each payload's offset).
    pub fn push_unit(&mut self, stream: &mut RtpStreamState, timestamp: u32, payloads: &Payloads) {
        for payload in payloads.iter() {
            self.push(
                stream,
                timestamp.wrapping_add(payload.ts_offset),
                payload.marker,
                payload.bytes,
            );
        }
    }

    /// Appends copies of `other`'s packets in `range`: their headers by
    /// value, their payloads shared (no payload byte is copied).
    pub fn extend_from(&mut self, other: &PacketBatch, range: std::ops::Range<usize>) {
        self.heads.extend_from_slice(&other.heads[range.clone()]);
        self.payloads.extend(other.payloads[range].iter().cloned());
    }

    /// Packet `index` as its RTP header and its payload.
    pub fn packet(&self, index: usize) -> (&[u8], &Bytes) {
        (
            &self.heads[index][INTERLEAVED_PREFIX_LEN..],
            &self.payloads[index],
        )
    }

    /// The packets with indices in `range`, each as its RTP header and its
    /// payload.
    pub fn packets_in(
        &self,
        range: std::ops::Range<usize>,
    ) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> + '_ {
        self.heads[range.clone()]
            .iter()
            .zip(&self.payloads[range])
            .map(|(head, payload)| (&head[INTERLEAVED_PREFIX_LEN..], &payload[..]))
    }

    /// End (exclusive) of the run of packets from `start` whose RTP bytes
    /// add up to at most `max_bytes`; at least one packet.
    pub fn chunk_end(&self, start: usize, max_bytes: usize) -> usize {
        let mut bytes = 0;
        let mut end = start;
        for payload in self.payloads.iter().skip(start) {
            let len = RTP_HEADER_LEN + payload.len();
            if end > start && bytes + len > max_bytes {
                break;
            }
            bytes += len;
            end += 1;
        }
        end
    }

    /// Takes the packets out as interleaved frames on `channel` (RFC 2326
    /// §10.12), each `$ channel length` prefix filled in, leaving the batch
    /// empty.
    pub fn take_interleaved(&mut self, channel: u8) -> InterleavedPackets {
        for (head, payload) in self.heads.iter_mut().zip(&self.payloads) {
            let len = (RTP_HEADER_LEN + payload.len()) as u16;
            head[..INTERLEAVED_PREFIX_LEN].copy_from_slice(&interleaved_prefix(channel, len));
        }
        InterleavedPackets {
            heads: std::mem::take(&mut self.heads),
            payloads: std::mem::take(&mut self.payloads),
        }
    }
}

/// RTP packets framed for an RTSP connection (RFC 2326 §10.12): for each,
/// its `$` prefix and RTP header in one 16-byte piece, then its shared
/// payload. Written with vectored writes.
#[derive(Debug, Default)]
pub struct InterleavedPackets {
    heads: Vec<[u8; INTERLEAVED_PREFIX_LEN + RTP_HEADER_LEN]>,
    payloads: Vec<Bytes>,
}

impl InterleavedPackets {
    /// The pieces to write, in order: prefix and header, payload, prefix
    /// and header, payload...
    pub fn pieces(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.heads
            .iter()
            .zip(&self.payloads)
            .flat_map(|(head, payload)| [&head[..], &payload[..]])
    }

    /// Bytes on the wire in all.
    pub fn wire_len(&self) -> usize {
        self.heads.len() * (INTERLEAVED_PREFIX_LEN + RTP_HEADER_LEN)
            + self.payloads.iter().map(Bytes::len).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::PayloadWriter;

    fn packet(batch: &PacketBatch, index: usize) -> Vec<u8> {
        let (header, payload) = batch.packet(index);
        [header, &payload[..]].concat()
    }

    #[test]
    fn header_fields_follow_rfc3550() {
        let mut stream = RtpStreamState::new(96, 0xdead_beef, 0xffff);
        let mut batch = PacketBatch::new();
        batch.push(&mut stream, 0x0102_0304, true, Bytes::from_static(b"abc"));
        batch.push(&mut stream, 0x0102_0304, false, Bytes::from_static(b"d"));
        assert_eq!(
            packet(&batch, 0),
            [0x80, 0xe0, 0xff, 0xff, 1, 2, 3, 4, 0xde, 0xad, 0xbe, 0xef, b'a', b'b', b'c']
        );
        // Sequence number wraps from 65535 to 0; marker clear.
        assert_eq!(&packet(&batch, 1)[..4], &[0x80, 0x60, 0x00, 0x00]);
        assert_eq!(stream.next_seq, 1);
        assert_eq!(stream.packet_count, 2);
        assert_eq!(stream.octet_count, 4);
    }

    #[test]
    fn unit_payloads_get_headers_with_their_offsets_and_markers() {
        let mut writer = PayloadWriter::new();
        writer.push(false, 0, &[b"xy"]);
        writer.push(true, 1024, &[b"z"]);
        let payloads = writer.finish();
        let mut stream = RtpStreamState::new(97, 1, 10);
        let mut batch = PacketBatch::new();
        batch.push_unit(&mut stream, u32::MAX, &payloads);
        let packets: Vec<(Vec<u8>, Vec<u8>)> = batch
            .packets_in(0..2)
            .map(|(h, p)| (h.to_vec(), p.to_vec()))
            .collect();
        assert_eq!(
            packets[0].0,
            [0x80, 97, 0, 10, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1]
        );
        assert_eq!(packets[0].1, b"xy");
        // The offset wraps around the 32-bit timestamp; marker set.
        assert_eq!(
            packets[1].0,
            [0x80, 0x80 | 97, 0, 11, 0, 0, 3, 0xff, 0, 0, 0, 1]
        );
        // The payload is the writer's bytes, not a copy.
        let (_, shared) = batch.packet(1);
        assert_eq!(
            shared.as_ptr(),
            payloads.iter().nth(1).unwrap().bytes.as_ptr()
        );
    }

    #[test]
    fn interleaved_framing_prefixes_each_packet() {
        let mut stream = RtpStreamState::new(97, 1, 10);
        let mut batch = PacketBatch::new();
        batch.push(&mut stream, 5, false, Bytes::from_static(b"xy"));
        batch.push(&mut stream, 5, true, Bytes::from_static(b"z"));
        let frames = batch.take_interleaved(2);
        assert!(batch.is_empty());
        let wire: Vec<u8> = frames.pieces().flatten().copied().collect();
        assert_eq!(wire.len(), (12 + 2) + (12 + 1) + 2 * INTERLEAVED_PREFIX_LEN);
        assert_eq!(frames.wire_len(), wire.len());
        assert_eq!(&wire[..4], &[b'$', 2, 0, 14]);
        assert_eq!(&wire[16..18], b"xy");
        assert_eq!(&wire[18..22], &[b'$', 2, 0, 13]);
    }

    #[test]
    fn extending_copies_headers_and_shares_payloads() {
        let mut stream = RtpStreamState::new(96, 7, 100);
        let mut batch = PacketBatch::new();
        for payload in [&b"a"[..], b"bc", b"def"] {
            batch.push(&mut stream, 9, false, Bytes::copy_from_slice(payload));
        }
        assert!(!batch.is_empty());
        assert_eq!(batch.len(), 3);
        let mut copy = PacketBatch::new();
        copy.extend_from(&batch, 1..3);
        assert_eq!(copy.len(), 2);
        assert_eq!(packet(&copy, 0), packet(&batch, 1));
        assert_eq!(packet(&copy, 1), packet(&batch, 2));
        assert_eq!(copy.packet(1).1.as_ptr(), batch.packet(2).1.as_ptr());
        // The copy keeps its headers when the batch moves on.
        batch.clear();
        batch.push(&mut stream, 10, true, Bytes::from_static(b"g"));
        assert_eq!(&copy.packet(0).0[2..4], &[0, 101]);
    }

    #[test]
    fn chunks_hold_whole_packets_up_to_a_byte_limit() {
        let mut stream = RtpStreamState::new(96, 1, 0);
        let mut batch = PacketBatch::new();
        for _ in 0..5 {
            batch.push(&mut stream, 0, false, Bytes::from(vec![0; 88]));
        }
        assert_eq!(batch.chunk_end(0, 200), 2, "two 100-byte packets");
        assert_eq!(batch.chunk_end(2, 200), 4);
        assert_eq!(batch.chunk_end(4, 200), 5);
        assert_eq!(batch.chunk_end(0, 10), 1, "at least one packet");
        let seqs: Vec<u8> = batch.packets_in(2..4).map(|(h, _)| h[3]).collect();
        assert_eq!(seqs, [2, 3]);
        batch.clear();
        assert!(batch.is_empty());
    }
}
