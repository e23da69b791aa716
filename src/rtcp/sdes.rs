//! Source description (RFC 3550 §6.5).
use super::{begin_packet, finish_packet, packet_type, write_text, RtcpError, RtcpPacket};

/// SDES item type of the canonical name (RFC 3550 §6.5.1).
const CNAME: u8 = 1;

/// Returned when a chunk or item runs past the end of the packet.
const TRUNCATED: RtcpError = RtcpError::Malformed("SDES chunk exceeds length");

/// Appends an SDES packet with one chunk holding `ssrc`'s CNAME (RFC 3550
/// §6.5.1), which every compound packet must carry (§6.1). A CNAME longer
/// than 255 bytes is cut to fit the 8-bit item length.
pub fn write_sdes_cname(ssrc: u32, cname: &str, out: &mut Vec<u8>) {
    let start = begin_packet(out, 1, packet_type::SDES);
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.push(CNAME);
    write_text(cname, out);
    // §6.5: the item list ends with at least one null octet; the padding
    // to a word boundary that finish_packet adds supplies the rest.
    out.push(0);
    finish_packet(out, start);
}

/// Walks the `count` chunks of an SDES body (padding removed) to check that
/// every item fits (RFC 3550 §6.5); the items themselves are not kept.
pub(super) fn parse(count: u8, body: &[u8]) -> Result<RtcpPacket, RtcpError> {
    // Chunks start on word boundaries; the body starts on one too, since
    // the common header is one word.
    let mut at = 0;
    for _ in 0..count {
        at += 4; // SSRC/CSRC
        loop {
            match body.get(at) {
                None => return Err(TRUNCATED),
                Some(0) => break,
                Some(_) => {
                    let len = usize::from(*body.get(at + 1).ok_or(TRUNCATED)?);
                    at += 2 + len;
                }
            }
        }
        // Skip the null terminator and the padding after it.
        at = (at + 4) & !3;
    }
    if at > body.len() {
        return Err(TRUNCATED);
    }
    Ok(RtcpPacket::SourceDescription)
}

#[cfg(test)]
mod tests {
    use super::super::parse_compound;
    use super::*;

    #[test]
    fn cname_chunk_is_null_terminated_and_padded() {
        for len in 0..12 {
            let cname = "x".repeat(len);
            let mut out = Vec::new();
            write_sdes_cname(5, &cname, &mut out);
            assert_eq!(out.len() % 4, 0, "cname length {len}");
            // Header, SSRC, type, length, text, then at least one null.
            assert!(out.len() > 4 + 4 + 2 + len);
            assert_eq!(&out[8..10], &[CNAME, len as u8]);
            assert!(out[10 + len..].iter().all(|&b| b == 0));
            let words = usize::from(u16::from_be_bytes([out[2], out[3]]));
            assert_eq!((words + 1) * 4, out.len());
            assert_eq!(
                parse_compound(&out).expect("valid SDES"),
                vec![RtcpPacket::SourceDescription]
            );
        }
    }

    #[test]
    fn two_chunks_with_several_items_parse() {
        let buf = [
            0x82, 202, 0, 5, // header, SC=2, 5 words follow
            0, 0, 0, 1, 1, 2, b'a', b'b', 6, 1, b't', 0, // CNAME, TOOL, end
            0, 0, 0, 2, 1, 1, b'c', 0, // CNAME, end
        ];
        assert_eq!(
            parse_compound(&buf).expect("valid SDES"),
            vec![RtcpPacket::SourceDescription]
        );
    }

    #[test]
    fn item_past_end_is_rejected() {
        // CNAME claims 9 bytes of text, the packet has 2.
        let buf = [0x81, 202, 0, 2, 0, 0, 0, 1, 1, 9, b'a', b'b'];
        assert!(parse_compound(&buf).is_err());
        // Source count 2 with only one chunk present.
        let buf = [0x82, 202, 0, 2, 0, 0, 0, 1, 1, 1, b'a', 0];
        assert!(parse_compound(&buf).is_err());
    }
}
