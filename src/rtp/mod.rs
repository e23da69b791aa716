//! RTP fixed header (RFC 3550 §5.1), per-stream sequence/timestamp/SSRC state
//! and the packet batch that packetizers write into.
//!
//! Packets of one access unit are written back to back into one reusable
//! buffer, each preceded by four bytes reserved for the RTSP interleaved
//! framing (RFC 2326 §10.12), so the same batch is sent over UDP (skipping
//! the reserve) or TCP (one write of the whole buffer) without copying or
//! allocating per packet.

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
    /// A new stream with a random SSRC and initial sequence number.
    pub fn new_random(payload_type: u8) -> Self {
        Self::new(payload_type, rand::random(), rand::random())
    }

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
}

/// A reusable buffer holding the RTP packets (RFC 3550 §5.1) of one access
/// unit, each behind room for its interleaved framing (RFC 2326 §10.12).
#[derive(Debug, Default)]
pub struct PacketBatch {
    buf: Vec<u8>,
    /// Start offset (of the interleaved prefix) and RTP length of each packet.
    packets: Vec<(usize, usize)>,
}

impl PacketBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Empties the batch, keeping its capacity.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.packets.clear();
    }

    /// Number of packets in the batch.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// True when the batch holds no packet.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// Appends one RTP packet whose payload is the concatenation of
    /// `payload_parts`, taking the next sequence number of `stream`
    /// (RFC 3550 §5.1: V=2, no padding, no extension, no CSRC).
    pub fn push(
        &mut self,
        stream: &mut RtpStreamState,
        timestamp: u32,
        marker: bool,
        payload_parts: &[&[u8]],
    ) {
        let payload_len: usize = payload_parts.iter().map(|p| p.len()).sum();
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; INTERLEAVED_PREFIX_LEN]);
        self.buf.push(0x80);
        self.buf
            .push((u8::from(marker) << 7) | (stream.payload_type & 0x7f));
        self.buf.extend_from_slice(&stream.next_seq.to_be_bytes());
        self.buf.extend_from_slice(&timestamp.to_be_bytes());
        self.buf.extend_from_slice(&stream.ssrc.to_be_bytes());
        for part in payload_parts {
            self.buf.extend_from_slice(part);
        }
        self.packets.push((start, RTP_HEADER_LEN + payload_len));
        stream.next_seq = stream.next_seq.wrapping_add(1);
        stream.packet_count = stream.packet_count.wrapping_add(1);
        stream.octet_count = stream.octet_count.wrapping_add(payload_len as u32);
    }

    /// The RTP packets, without interleaved framing, in order.
    pub fn packets(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.packets.iter().map(move |&(start, len)| {
            let rtp = start + INTERLEAVED_PREFIX_LEN;
            &self.buf[rtp..rtp + len]
        })
    }

    /// The packets with indices in `range`, without interleaved framing.
    pub fn packets_in(
        &self,
        range: std::ops::Range<usize>,
    ) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        let len = range.len();
        self.packets().skip(range.start).take(len)
    }

    /// End (exclusive) of the run of packets from `start` whose RTP bytes
    /// add up to at most `max_bytes`; at least one packet.
    pub fn chunk_end(&self, start: usize, max_bytes: usize) -> usize {
        let mut bytes = 0;
        let mut end = start;
        for &(_, len) in self.packets.iter().skip(start) {
            if end > start && bytes + len > max_bytes {
                break;
            }
            bytes += len;
            end += 1;
        }
        end
    }

    /// Fills in the `$ channel length` prefix of every packet (RFC 2326
    /// §10.12) and returns the whole batch as one contiguous TCP payload.
    pub fn interleaved(&mut self, channel: u8) -> &[u8] {
        for &(start, len) in &self.packets {
            self.buf[start..start + INTERLEAVED_PREFIX_LEN]
                .copy_from_slice(&interleaved_prefix(channel, len as u16));
        }
        &self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_follow_rfc3550() {
        let mut stream = RtpStreamState::new(96, 0xdead_beef, 0xffff);
        let mut batch = PacketBatch::new();
        batch.push(&mut stream, 0x0102_0304, true, &[b"ab", b"c"]);
        batch.push(&mut stream, 0x0102_0304, false, &[b"d"]);
        let packets: Vec<&[u8]> = batch.packets().collect();
        assert_eq!(
            packets[0],
            &[0x80, 0xe0, 0xff, 0xff, 1, 2, 3, 4, 0xde, 0xad, 0xbe, 0xef, b'a', b'b', b'c']
        );
        // Sequence number wraps from 65535 to 0; marker clear.
        assert_eq!(&packets[1][..4], &[0x80, 0x60, 0x00, 0x00]);
        assert_eq!(stream.next_seq, 1);
        assert_eq!(stream.packet_count, 2);
        assert_eq!(stream.octet_count, 4);
    }

    #[test]
    fn interleaved_framing_prefixes_each_packet() {
        let mut stream = RtpStreamState::new(97, 1, 10);
        let mut batch = PacketBatch::new();
        batch.push(&mut stream, 5, false, &[b"xy"]);
        batch.push(&mut stream, 5, true, &[b"z"]);
        let wire = batch.interleaved(2).to_vec();
        assert_eq!(wire.len(), (12 + 2) + (12 + 1) + 2 * INTERLEAVED_PREFIX_LEN);
        assert_eq!(&wire[..4], &[b'$', 2, 0, 14]);
        assert_eq!(&wire[18..22], &[b'$', 2, 0, 13]);
        batch.clear();
        assert!(batch.is_empty());
    }

    #[test]
    fn chunks_hold_whole_packets_up_to_a_byte_limit() {
        let mut stream = RtpStreamState::new(96, 1, 0);
        let mut batch = PacketBatch::new();
        for _ in 0..5 {
            batch.push(&mut stream, 0, false, &[&[0; 88]]);
        }
        assert_eq!(batch.chunk_end(0, 200), 2, "two 100-byte packets");
        assert_eq!(batch.chunk_end(2, 200), 4);
        assert_eq!(batch.chunk_end(4, 200), 5);
        assert_eq!(batch.chunk_end(0, 10), 1, "at least one packet");
        let seqs: Vec<u8> = batch.packets_in(2..4).map(|p| p[3]).collect();
        assert_eq!(seqs, [2, 3]);
    }
}
