//! SDP (RFC 4566) session descriptions for DESCRIBE (RFC 2326 §10.2,
//! Appendix C).

pub mod announce;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use sdp_types::{Attribute, Connection, Media, MediaType, Origin, Session, Time, TransportProto};

use crate::codec;
use crate::media::{CodecParams, TrackInfo};

/// Static RTP payload type of JPEG (RFC 3551 §6, Table 5).
const JPEG_PT: u8 = 26;
/// First dynamic RTP payload type (RFC 3551 §6).
const FIRST_DYNAMIC_PT: usize = 96;
/// Last dynamic RTP payload type (RFC 3551 §6).
const LAST_DYNAMIC_PT: usize = 127;

/// The session description answering DESCRIBE (RFC 2326 §10.2, Appendix
/// C.1): one `m=` section per track (RFC 4566 §5.14), with its `rtpmap` and
/// `fmtp` from the codec module and a per-track `a=control` (RFC 2326
/// §C.1.1) that SETUP URLs end with.
///
/// `duration_secs` becomes `a=range:npt=0-<duration>` (RFC 2326 §C.1.5);
/// a non-finite or non-positive duration gives an open range `npt=0-`.
/// `session_id` is the `o=` sess-id (RFC 4566 §5.2): any number that,
/// with the server's address, tells this server's descriptions apart
/// from others'.
pub fn describe(
    tracks: &[TrackInfo],
    duration_secs: f64,
    server_ip: IpAddr,
    session_id: u64,
) -> String {
    let described: Vec<SdpTrack> = tracks
        .iter()
        .map(|t| SdpTrack {
            index: t.index,
            payload_type: payload_type(t),
            is_video: t.codec.is_video(),
            rtpmap: codec::rtpmap(&t.codec),
            fmtp: codec::fmtp(&t.codec),
        })
        .collect();
    describe_tracks(&described, duration_secs, server_ip, session_id)
}

/// The RTP payload type of a track (RFC 3551 §6): JPEG's static 26, else
/// from the dynamic range 96 plus its index, so each track of a session
/// has its own; capped at 127.
pub fn payload_type(track: &TrackInfo) -> u8 {
    if matches!(track.codec, CodecParams::Jpeg { .. }) {
        return JPEG_PT;
    }
    let pt = FIRST_DYNAMIC_PT
        .saturating_add(track.index)
        .min(LAST_DYNAMIC_PT);
    // 127 fits a u8; the fallback only satisfies the type checker.
    u8::try_from(pt).unwrap_or(127)
}

/// The `a=control` value of a track (RFC 2326 §C.1.1), relative to the
/// presentation URL: `trackID=N`.
pub fn track_control(track_index: usize) -> String {
    format!("trackID={track_index}")
}

/// The track index named by the last path segment of a SETUP URL (RFC 2326
/// §C.1.1): `trackID=N`, or `streamid=N` as other servers and some clients
/// spell it; the name is matched case-insensitively.
pub fn parse_track_control(last_segment: &str) -> Option<usize> {
    let (name, number) = last_segment.split_once('=')?;
    if !(name.eq_ignore_ascii_case("trackid") || name.eq_ignore_ascii_case("streamid")) {
        return None;
    }
    // Digits only: `usize::from_str` would also accept a leading `+`.
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    number.parse().ok()
}

/// What the SDP needs of one track, with the codec strings already
/// computed so that the text can be built independently of the codecs.
struct SdpTrack {
    index: usize,
    payload_type: u8,
    is_video: bool,
    rtpmap: String,
    fmtp: String,
}

fn describe_tracks(
    tracks: &[SdpTrack],
    duration_secs: f64,
    server_ip: IpAddr,
    session_id: u64,
) -> String {
    let mut session = Session::new(Origin::with_ip_addr(session_id, 1, server_ip), "rtpcast");
    // The real destination is set per client by SETUP (RFC 2326 §C.1.7),
    // so the connection address is the unspecified one of our family.
    let any = match server_ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    session.connection = Some(Connection::from_ip_addr(any));
    session.times.push(Time::new(0, 0));
    session
        .attributes
        .push(Attribute::with_value("tool", "rtpcast"));
    // Aggregate control on the presentation URL itself (RFC 2326 §C.1.1).
    session
        .attributes
        .push(Attribute::with_value("control", "*"));
    let range = if duration_secs.is_finite() && duration_secs > 0.0 {
        format!("npt=0-{duration_secs:.3}")
    } else {
        "npt=0-".to_string()
    };
    session
        .attributes
        .push(Attribute::with_value("range", range));

    for track in tracks {
        let pt = track.payload_type;
        let kind = if track.is_video {
            MediaType::Video
        } else {
            MediaType::Audio
        };
        // Port 0: RTSP negotiates ports in SETUP (RFC 2326 §C.1.7).
        let mut media = Media::new(kind, 0, TransportProto::RtpAvp, pt);
        media.add_attribute_with_value("rtpmap", format!("{pt} {}", track.rtpmap));
        if !track.fmtp.is_empty() {
            media.add_attribute_with_value("fmtp", format!("{pt} {}", track.fmtp));
        }
        media.add_attribute_with_value("control", track_control(track.index));
        session.medias.push(media);
    }

    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = session.write(&mut out);
    // Every value written came from a `String`, so this is UTF-8.
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> Vec<SdpTrack> {
        vec![
            SdpTrack {
                index: 0,
                payload_type: 96,
                is_video: true,
                rtpmap: "H264/90000".into(),
                fmtp: "packetization-mode=1;profile-level-id=42C01F;\
                       sprop-parameter-sets=Z0LAH9oBQBbsBEAAAAMAQAAADyPGDKg=,aM4yyA=="
                    .into(),
            },
            SdpTrack {
                index: 1,
                payload_type: 97,
                is_video: false,
                rtpmap: "mpeg4-generic/48000/2".into(),
                fmtp: "streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;\
                       indexlength=3;indexdeltalength=3;config=1190"
                    .into(),
            },
        ]
    }

    #[test]
    fn video_audio_pair_exact_text() {
        let ip: IpAddr = "192.0.2.1".parse().expect("literal");
        let sdp = describe_tracks(&pair(), 12.3456, ip, 1234567890);
        assert_eq!(
            sdp,
            "v=0\r\n\
             o=- 1234567890 1 IN IP4 192.0.2.1\r\n\
             s=rtpcast\r\n\
             c=IN IP4 0.0.0.0\r\n\
             t=0 0\r\n\
             a=tool:rtpcast\r\n\
             a=control:*\r\n\
             a=range:npt=0-12.346\r\n\
             m=video 0 RTP/AVP 96\r\n\
             a=rtpmap:96 H264/90000\r\n\
             a=fmtp:96 packetization-mode=1;profile-level-id=42C01F;\
             sprop-parameter-sets=Z0LAH9oBQBbsBEAAAAMAQAAADyPGDKg=,aM4yyA==\r\n\
             a=control:trackID=0\r\n\
             m=audio 0 RTP/AVP 97\r\n\
             a=rtpmap:97 mpeg4-generic/48000/2\r\n\
             a=fmtp:97 streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;\
             indexlength=3;indexdeltalength=3;config=1190\r\n\
             a=control:trackID=1\r\n"
        );
    }

    #[test]
    fn output_parses_back() {
        let ip: IpAddr = "2001:db8::1".parse().expect("literal");
        let sdp = describe_tracks(&pair(), 0.0, ip, 42);
        let parsed = Session::parse(sdp.as_bytes()).expect("our SDP parses");
        assert_eq!(parsed.origin.unicast_address, "2001:db8::1");
        assert_eq!(parsed.origin.addrtype, sdp_types::AddrType::Ip6);
        assert_eq!(
            parsed.get_first_attribute_value("range"),
            Some(Some("npt=0-"))
        );
        assert_eq!(parsed.medias.len(), 2);
        assert_eq!(parsed.medias[0].media, "video");
        assert_eq!(parsed.medias[1].fmt, "97");
        assert_eq!(
            parsed.medias[1].get_first_attribute_value("control"),
            Some(Some("trackID=1"))
        );
    }

    fn track(index: usize, codec: CodecParams) -> TrackInfo {
        TrackInfo {
            index,
            codec,
            timescale: 90_000,
            duration: 0,
        }
    }

    #[test]
    fn payload_types() {
        let aac = CodecParams::Aac {
            config: bytes::Bytes::from_static(&[0x11, 0x90]),
            sample_rate: 48000,
            channels: 2,
        };
        assert_eq!(payload_type(&track(0, aac.clone())), 96);
        assert_eq!(payload_type(&track(1, aac.clone())), 97);
        assert_eq!(payload_type(&track(31, aac.clone())), 127);
        assert_eq!(payload_type(&track(usize::MAX, aac)), 127);
        let jpeg = CodecParams::Jpeg {
            width: 320,
            height: 240,
        };
        assert_eq!(payload_type(&track(0, jpeg.clone())), 26);
        assert_eq!(payload_type(&track(3, jpeg)), 26);
    }

    #[test]
    fn jpeg_track_uses_its_static_payload_type() {
        let jpeg = track(
            0,
            CodecParams::Jpeg {
                width: 320,
                height: 240,
            },
        );
        let ip: IpAddr = "192.0.2.1".parse().expect("literal");
        let sdp = describe(&[jpeg], 1.0, ip, 7);
        assert!(
            sdp.contains(
                "m=video 0 RTP/AVP 26\r\na=rtpmap:26 JPEG/90000\r\na=control:trackID=0\r\n"
            ),
            "{sdp}"
        );
        assert!(!sdp.contains("fmtp"), "{sdp}");
    }

    #[test]
    fn track_controls_round_trip() {
        assert_eq!(track_control(3), "trackID=3");
        assert_eq!(parse_track_control(&track_control(3)), Some(3));
        assert_eq!(parse_track_control("TRACKID=0"), Some(0));
        assert_eq!(parse_track_control("streamid=2"), Some(2));
        assert_eq!(parse_track_control("trackID="), None);
        assert_eq!(parse_track_control("trackID=+1"), None);
        assert_eq!(parse_track_control("trackID=-1"), None);
        assert_eq!(parse_track_control("track=1"), None);
        assert_eq!(parse_track_control("movie.mp4"), None);
        assert_eq!(parse_track_control("trackID=99999999999999999999999"), None);
    }
}
