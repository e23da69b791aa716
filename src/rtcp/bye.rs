//! Goodbye (RFC 3550 §6.6).
use super::{
    begin_packet, finish_packet, packet_type, u32_at, write_text, RtcpError, RtcpPacket, MAX_COUNT,
};

/// Appends a BYE packet for `ssrcs` (RFC 3550 §6.6). An empty `reason`
/// omits the optional reason field; a longer one than 255 bytes is cut to
/// fit its 8-bit length. At most 31 SSRCs fit the 5-bit source count; more
/// are left out.
pub fn write_bye_packet(ssrcs: &[u32], reason: &str, out: &mut Vec<u8>) {
    let ssrcs = &ssrcs[..ssrcs.len().min(MAX_COUNT)];
    let start = begin_packet(out, ssrcs.len() as u8, packet_type::BYE);
    for ssrc in ssrcs {
        out.extend_from_slice(&ssrc.to_be_bytes());
    }
    if !reason.is_empty() {
        write_text(reason, out);
    }
    finish_packet(out, start);
}

/// Parses a BYE body (padding removed) listing `count` sources and an
/// optional reason (RFC 3550 §6.6).
pub(super) fn parse(count: u8, body: &[u8]) -> Result<RtcpPacket, RtcpError> {
    let ssrcs = (0..usize::from(count))
        .map(|i| u32_at(body, i * 4))
        .collect::<Result<Vec<_>, _>>()?;
    let rest = &body[ssrcs.len() * 4..];
    let reason = match rest.split_first() {
        None => None,
        Some((&len, text)) => {
            let text = text
                .get(..usize::from(len))
                .ok_or(RtcpError::Malformed("BYE reason exceeds length"))?;
            Some(String::from_utf8_lossy(text).into_owned())
        }
    };
    Ok(RtcpPacket::Bye { ssrcs, reason })
}

#[cfg(test)]
mod tests {
    use super::super::parse_compound;
    use super::*;

    #[test]
    fn bye_packet_layout_with_reason() {
        let mut out = Vec::new();
        write_bye_packet(&[1, 2], "gone", &mut out);
        assert_eq!(
            out,
            [0x82, 203, 0, 4, 0, 0, 0, 1, 0, 0, 0, 2, 4, b'g', b'o', b'n', b'e', 0, 0, 0]
        );
    }

    #[test]
    fn bye_with_reason_round_trip() {
        let mut out = Vec::new();
        write_bye_packet(&[1, 2], "gone", &mut out);
        assert_eq!(
            parse_compound(&out).expect("valid BYE"),
            vec![RtcpPacket::Bye {
                ssrcs: vec![1, 2],
                reason: Some("gone".to_owned())
            }]
        );
    }

    #[test]
    fn bye_without_reason_round_trip() {
        let mut out = Vec::new();
        write_bye_packet(&[3], "", &mut out);
        assert_eq!(out, [0x81, 203, 0, 1, 0, 0, 0, 3]);
        assert_eq!(
            parse_compound(&out).expect("valid BYE"),
            vec![RtcpPacket::Bye {
                ssrcs: vec![3],
                reason: None
            }]
        );
    }

    #[test]
    fn bye_truncated_reason_is_rejected() {
        let buf = [0x81, 203, 0, 2, 0, 0, 0, 3, 9, b'a', b'b', b'c'];
        assert!(parse_compound(&buf).is_err());
    }

    #[test]
    fn bye_source_count_beyond_length_is_rejected() {
        let buf = [0x82, 203, 0, 1, 0, 0, 0, 3];
        assert!(parse_compound(&buf).is_err());
    }
}
