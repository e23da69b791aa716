//! AAC RTP payload format (RFC 3640, mpeg4-generic, AAC-hbr mode §3.3.6):
//! each packet starts with the AU-headers-length and one 16-bit AU-header
//! (13-bit AU-size, 3-bit AU-index/AU-index-delta) per access unit, followed
//! by the access units themselves (§3.2.1).

pub mod depay;

use std::fmt::Write as _;

use super::CodecError;
use super::PayloadWriter;
use crate::rtp::RTP_HEADER_LEN;

/// Samples per AAC access unit, i.e. RTP clock ticks at the sampling rate.
const SAMPLES_PER_AU: u32 = 1024;
/// AU-size field width in AAC-hbr (`sizeLength=13`).
const SIZE_LENGTH: u32 = 13;
/// Largest AU the 13-bit AU-size can describe.
const MAX_AU_SIZE: usize = (1 << SIZE_LENGTH) - 1;
/// AU-headers-length field.
const HEADERS_LENGTH_LEN: usize = 2;
/// One AU-header: sizeLength + indexLength (or indexDeltaLength) bits.
const AU_HEADER_LEN: usize = 2;
/// AU-headers-length counts bits in a 16-bit field, bounding AUs per packet.
const MAX_AUS_PER_PACKET: usize = u16::MAX as usize / (8 * AU_HEADER_LEN);
/// Smallest MTU that still fits one AU byte after a single AU-header.
const MIN_MTU: usize = RTP_HEADER_LEN + HEADERS_LENGTH_LEN + AU_HEADER_LEN + 1;

/// Packs AAC access units with AU-headers (RFC 3640 §3.2, AAC-hbr §3.3.6),
/// several whole AUs per packet when they fit, fragmenting an AU that does
/// not fit alone (§3.2.3).
#[derive(Debug)]
pub struct AacPacketizer {
    mtu: usize,
}

impl AacPacketizer {
    /// A packetizer producing RTP packets of at most `mtu` bytes, header
    /// included (RFC 3640 §3.2). An `mtu` too small for one AU byte after
    /// its AU-header is raised to that minimum, as nothing could honour it.
    pub fn new(mtu: usize) -> Self {
        Self {
            mtu: mtu.max(MIN_MTU),
        }
    }

    /// Appends to `out` the RTP payloads of the consecutive raw access
    /// units `aus` (no ADTS header, 1024 samples each), the first at the
    /// unit's timestamp.
    ///
    /// Whole AUs are packed together as long as they fit (RFC 3640 §3.2.2),
    /// each packet stamped with its first AU's time (§3.2.1, the payload's
    /// `ts_offset` counting 1024 ticks per earlier AU) and carrying
    /// the marker bit. An AU too large for a packet on its own is split into
    /// fragments that each repeat its AU-header with the full AU size, the
    /// marker set on the last fragment only (§3.2.3, §3.3.6).
    ///
    /// An AU above the 13-bit AU-size limit yields
    /// [`CodecError::AacTooLarge`] and no packets.
    pub fn packetize(&self, aus: &[&[u8]], out: &mut PayloadWriter) -> Result<(), CodecError> {
        // Check every AU first so an error never leaves a partial batch.
        if let Some(au) = aus.iter().find(|au| au.len() > MAX_AU_SIZE) {
            return Err(CodecError::AacTooLarge(au.len()));
        }
        let room = self.mtu - RTP_HEADER_LEN - HEADERS_LENGTH_LEN;
        let mut first = 0;
        while let Some(&au) = aus.get(first) {
            let ts_offset = SAMPLES_PER_AU.wrapping_mul(first as u32);
            let count = aus_fitting(&aus[first..], room);
            if count == 0 {
                fragment(au, room - AU_HEADER_LEN, ts_offset, out);
                first += 1;
                continue;
            }
            let group = &aus[first..first + count];
            if let [au] = group {
                // One AU, the usual case: written straight into the batch.
                let length = headers_length(1).to_be_bytes();
                out.push(true, ts_offset, &[&length, &au_header(au.len()), au]);
                first += 1;
                continue;
            }
            out.push_with(true, ts_offset, |buf| {
                buf.extend_from_slice(&headers_length(group.len()).to_be_bytes());
                for au in group {
                    buf.extend_from_slice(&au_header(au.len()));
                }
                for au in group {
                    buf.extend_from_slice(au);
                }
            });
            first += count;
        }
        Ok(())
    }
}

/// How many of the leading `aus` fit whole, with their AU-headers, in
/// `room` payload bytes after the AU-headers-length.
fn aus_fitting(aus: &[&[u8]], room: usize) -> usize {
    let mut used = 0;
    aus.iter()
        .take(MAX_AUS_PER_PACKET)
        .take_while(|au| {
            used += AU_HEADER_LEN + au.len();
            used <= room
        })
        .count()
}

/// Sends one AU as fragments of at most `max_fragment` bytes, each behind
/// the same single AU-header giving the whole AU's size (RFC 3640 §3.2.3).
fn fragment(au: &[u8], max_fragment: usize, ts_offset: u32, out: &mut PayloadWriter) {
    let [len_hi, len_lo] = headers_length(1).to_be_bytes();
    let [size_hi, size_lo] = au_header(au.len());
    let headers = [len_hi, len_lo, size_hi, size_lo];
    let mut chunks = au.chunks(max_fragment).peekable();
    while let Some(chunk) = chunks.next() {
        out.push(chunks.peek().is_none(), ts_offset, &[&headers, chunk]);
    }
}

/// The AU-headers-length field: total AU-header size in bits (§3.2.1).
fn headers_length(count: usize) -> u16 {
    // `count` is capped by MAX_AUS_PER_PACKET, so this cannot overflow.
    (count * AU_HEADER_LEN * 8) as u16
}

/// An AAC-hbr AU-header: 13-bit AU-size then a 3-bit AU-index (first AU)
/// or AU-index-delta (later AUs), both 0 as AUs are sent in order
/// (§3.3.6).
fn au_header(size: usize) -> [u8; 2] {
    // `size` was checked against MAX_AU_SIZE.
    ((size as u16) << (16 - SIZE_LENGTH)).to_be_bytes()
}

/// The `a=fmtp` parameters for AAC-hbr (RFC 3640 §4.1, §3.3.6): audio
/// stream type, and `config` as the hex AudioSpecificConfig
/// (ISO/IEC 14496-3 §1.6.2.1).
pub fn fmtp(config: &[u8]) -> String {
    let mut fmtp = String::from(
        "streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;\
         indexlength=3;indexdeltalength=3;config=",
    );
    for byte in config {
        // Writing to a String cannot fail.
        let _ = write!(fmtp, "{byte:02x}");
    }
    fmtp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(mtu: usize, aus: &[&[u8]], ts: u32) -> Vec<Vec<u8>> {
        let mut stream = crate::rtp::RtpStreamState::new(97, 7, 500);
        let mut writer = PayloadWriter::new();
        AacPacketizer::new(mtu)
            .packetize(aus, &mut writer)
            .expect("valid AUs");
        crate::codec::wire_packets(&writer.finish(), &mut stream, ts)
    }

    fn au(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_add(seed)).collect()
    }

    fn timestamp(packet: &[u8]) -> u32 {
        u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]])
    }

    fn marker(packet: &[u8]) -> bool {
        packet[1] & 0x80 != 0
    }

    #[test]
    fn single_au_header_bytes() {
        let data = au(371, 0);
        let packets = run(1400, &[&data], 1000);
        assert_eq!(packets.len(), 1);
        let packet = &packets[0];
        assert_eq!(&packet[12..16], &[0x00, 0x10, 0x0b, 0x98]);
        assert_eq!(&packet[16..], &data[..]);
        assert!(marker(packet));
        assert_eq!(timestamp(packet), 1000);
    }

    #[test]
    fn several_aus_in_one_packet() {
        let (a, b, c) = (au(371, 0), au(8, 1), au(200, 2));
        let packets = run(1400, &[&a, &b, &c], 5);
        assert_eq!(packets.len(), 1);
        let payload = &packets[0][12..];
        assert_eq!(
            &payload[..8],
            &[0x00, 0x30, 0x0b, 0x98, 0x00, 0x40, 0x06, 0x40]
        );
        assert_eq!(payload[8..], [a, b, c].concat());
        assert!(marker(&packets[0]));
        assert_eq!(timestamp(&packets[0]), 5);
    }

    #[test]
    fn aus_split_across_packets_get_their_own_timestamps() {
        let aus: Vec<Vec<u8>> = (0..5).map(|i| au(300, i)).collect();
        let refs: Vec<&[u8]> = aus.iter().map(Vec::as_slice).collect();
        // 12 + 2 + 2 * (2 + 300) = 618: two AUs per packet.
        let packets = run(700, &refs, u32::MAX - 1023);
        assert_eq!(packets.len(), 3);
        let stamps: Vec<u32> = packets.iter().map(|p| timestamp(p)).collect();
        assert_eq!(stamps, [u32::MAX - 1023, 1024, 3072]);
        assert_eq!(&packets[0][12..14], &[0x00, 0x20]);
        assert_eq!(&packets[2][12..14], &[0x00, 0x10]);
        assert!(packets.iter().all(|p| p.len() <= 700 && marker(p)));
    }

    #[test]
    fn large_au_is_fragmented() {
        let big = au(3000, 3);
        let small = au(100, 4);
        let mtu = 1000;
        let packets = run(mtu, &[&big, &small], 0);
        assert!(packets.iter().all(|p| p.len() <= mtu));
        let (fragments, rest) = packets.split_at(packets.len() - 1);
        assert_eq!(fragments.len(), 4);
        let mut reassembled = Vec::new();
        for (i, packet) in fragments.iter().enumerate() {
            // Full AU size 3000 = 0x0bb8 -> header 0x5dc0.
            assert_eq!(&packet[12..16], &[0x00, 0x10, 0x5d, 0xc0]);
            assert_eq!(marker(packet), i == fragments.len() - 1);
            assert_eq!(timestamp(packet), 0);
            reassembled.extend_from_slice(&packet[16..]);
        }
        assert_eq!(reassembled, big);
        assert_eq!(timestamp(&rest[0]), 1024);
        assert!(marker(&rest[0]));
        assert_eq!(&rest[0][16..], &small[..]);
    }

    #[test]
    fn au_too_large_is_an_error() {
        let mut writer = PayloadWriter::new();
        let ok = au(100, 0);
        let huge = au(8192, 0);
        let result = AacPacketizer::new(1400).packetize(&[&ok, &huge], &mut writer);
        assert!(matches!(result, Err(CodecError::AacTooLarge(8192))));
        assert!(writer.is_empty());
        // The largest describable AU still goes through.
        let max = au(MAX_AU_SIZE, 0);
        assert!(run(1400, &[&max], 0).iter().all(|p| p.len() <= 1400));
    }

    #[test]
    fn sequence_numbers_are_consecutive() {
        let big = au(5000, 0);
        let packets = run(300, &[&big, &big], 0);
        for (i, packet) in packets.iter().enumerate() {
            assert_eq!(u16::from_be_bytes([packet[2], packet[3]]), 500 + i as u16);
        }
    }

    #[test]
    fn fmtp_for_48khz_stereo_aac_lc() {
        assert_eq!(
            fmtp(&[0x11, 0x90]),
            "streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;\
             indexlength=3;indexdeltalength=3;config=1190"
        );
    }
}
