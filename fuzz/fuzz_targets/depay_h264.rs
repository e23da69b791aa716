//! H.264 depacketizer (RFC 6184): any packet run is refused or turned into
//! well-formed AVCC access units.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rtpcast::codec::depay::{Depacketizer, MAX_UNIT_SIZE};
use rtpcast::media::CodecParams;

mod packets;

fuzz_target!(|data: &[u8]| {
    let codec = CodecParams::H264 {
        sps: vec![Bytes::from_static(&[0x67, 0x42, 0xc0, 0x1e])],
        pps: vec![Bytes::from_static(&[0x68, 0xce, 0x3c, 0x80])],
        nal_length_size: 4,
        width: 16,
        height: 16,
    };
    let mut depacketizer = Depacketizer::new(&codec, None).expect("H.264 needs no fmtp");
    for packet in packets::packets(data) {
        let _ = depacketizer.push(packet);
        while let Some(unit) = depacketizer.pull() {
            assert!(unit.data.len() <= MAX_UNIT_SIZE);
            let mut rest = &unit.data[..];
            let mut idr = false;
            assert!(!rest.is_empty(), "units hold at least one NAL unit");
            while !rest.is_empty() {
                let (len, tail) = rest.split_first_chunk::<4>().expect("whole length prefix");
                let (nal, tail) = tail
                    .split_at_checked(u32::from_be_bytes(*len) as usize)
                    .expect("length within the unit");
                let nal_type = nal.first().expect("no empty NAL unit") & 0x1f;
                assert!((1..=23).contains(&nal_type), "type {nal_type}");
                idr |= nal_type == 5;
                rest = tail;
            }
            assert_eq!(unit.keyframe, idr);
        }
    }
});
