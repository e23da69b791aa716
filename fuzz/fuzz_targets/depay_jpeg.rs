//! JPEG depacketizer (RFC 2435): any packet run is refused or turned into
//! whole JPEG images, SOI to EOI, within the unit size limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtpcast::codec::depay::{Depacketizer, MAX_UNIT_SIZE};
use rtpcast::media::CodecParams;

mod packets;

fuzz_target!(|data: &[u8]| {
    let codec = CodecParams::Jpeg {
        width: 320,
        height: 240,
    };
    let mut depacketizer = Depacketizer::new(&codec, None).expect("JPEG needs no fmtp");
    for packet in packets::packets(data) {
        let _ = depacketizer.push(packet);
        while let Some(unit) = depacketizer.pull() {
            assert!(unit.data.len() <= MAX_UNIT_SIZE);
            assert!(unit.data.starts_with(&[0xff, 0xd8]), "no SOI");
            assert!(unit.data.ends_with(&[0xff, 0xd9]), "no EOI");
            assert!(unit.keyframe);
        }
    }
});
