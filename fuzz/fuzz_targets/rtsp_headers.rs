//! Transport negotiation (RFC 2326 §12.39), SETUP track controls
//! (§C.1.1), npt Ranges (§12.29), Scale/Speed (§12.34, §12.35) and
//! request URLs: what the server answers, it can read back the same way,
//! and nothing a client writes there can panic it.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use rtpcast::rtsp::range::parse_npt_range;
use rtpcast::rtsp::rate::{parse_scale, parse_speed};
use rtpcast::rtsp::transport::negotiate;
use rtpcast::rtsp::url;
use rtpcast::sdp::{parse_track_control, track_control};

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(negotiated) = negotiate(text, CLIENT, 6970, 4) {
        let again = negotiate(&negotiated.reply, CLIENT, 6970, 4)
            .expect("the server's own Transport reply negotiates");
        assert_eq!(again.delivery, negotiated.delivery, "{text:?}");
    }
    if let Some(track) = parse_track_control(text) {
        assert_eq!(parse_track_control(&track_control(track)), Some(track));
    }
    if let Some(range) = parse_npt_range(text) {
        if let (Some(start), Some(end)) = (range.start, range.end) {
            assert!(start < end, "{text:?}");
        }
    }
    let _ = (parse_scale(text), parse_speed(text));
    if let Ok(parsed) = rtsp_types::Url::parse(&format!("rtsp://h{text}")) {
        let target = url::target(&parsed);
        assert_eq!(url::normalize_mount(&target.mount), target.mount, "{text:?}");
        let _ = url::content_base(&parsed, &target.mount, false);
        let _ = url::content_base(&parsed, &target.mount, true);
    }
});
