//! Transport negotiation (RFC 2326 §12.39) and SETUP track controls
//! (§C.1.1): what the server answers, it can read back the same way.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use rtpcast::rtsp::transport::negotiate;
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
});
