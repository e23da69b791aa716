//! ANNOUNCE SDP (RFC 2326 §10.3, RFC 4566): any body is refused with a
//! 400, 413 or 415, or yields bounded tracks that build depacketizers and
//! that our own DESCRIBE writes back to the same codecs.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use rtpcast::codec::depay::Depacketizer;
use rtpcast::media::{CodecParams, TrackInfo};
use rtpcast::sdp::announce::{
    parse_announcement, MAX_BODY_LEN, MAX_MEDIA_SECTIONS, MAX_PARAMETER_SET_LEN,
};
use rtpcast::sdp::describe;
use rtsp_types::StatusCode;

fuzz_target!(|data: &[u8]| {
    let announcement = match parse_announcement(data) {
        Ok(announcement) => announcement,
        Err(error) => {
            assert!(matches!(
                error.status(),
                StatusCode::BadRequest
                    | StatusCode::RequestMessageBodyTooLarge
                    | StatusCode::UnsupportedMediaType
            ));
            return;
        }
    };
    assert!(data.len() <= MAX_BODY_LEN);
    assert!(!announcement.tracks.is_empty());
    assert!(announcement.tracks.len() + announcement.skipped.len() <= MAX_MEDIA_SECTIONS);
    for (index, track) in announcement.tracks.iter().enumerate() {
        assert_eq!(track.info.index, index);
        assert_eq!(track.info.timescale, track.info.codec.clock_rate());
        assert!(track.payload_type <= 127);
        if let CodecParams::H264 { sps, pps, .. } = &track.info.codec {
            assert!(sps.iter().chain(pps).all(|set| set.len() <= MAX_PARAMETER_SET_LEN));
        }
        Depacketizer::new(&track.info.codec, track.fmtp.as_deref())
            .expect("an announced track builds its depacketizer");
    }
    let infos: Vec<TrackInfo> = announcement.tracks.iter().map(|t| t.info.clone()).collect();
    let again = describe(&infos, 0.0, IpAddr::V4(Ipv4Addr::LOCALHOST), 1);
    let reparsed = parse_announcement(again.as_bytes()).expect("our own DESCRIBE parses");
    let codecs = |tracks: &[TrackInfo]| tracks.iter().map(|t| t.codec.clone()).collect::<Vec<_>>();
    let reinfos: Vec<TrackInfo> = reparsed.tracks.iter().map(|t| t.info.clone()).collect();
    assert_eq!(codecs(&reinfos), codecs(&infos), "{again}");
});
