//! AAC depacketizer (RFC 3640): any fmtp and packet run is refused or
//! turned into whole access units.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rtpcast::codec::depay::{Depacketizer, MAX_UNIT_SIZE};
use rtpcast::media::CodecParams;

mod packets;

fuzz_target!(|data: &[u8]| {
    // The fmtp runs up to the first newline; no newline means AAC-hbr.
    let (fmtp, data) = match data.iter().position(|&b| b == b'\n') {
        Some(end) => (std::str::from_utf8(&data[..end]).ok(), &data[end + 1..]),
        None => (None, data),
    };
    let codec = CodecParams::Aac {
        config: Bytes::from_static(&[0x11, 0x90]),
        sample_rate: 48_000,
        channels: 2,
    };
    let Ok(mut depacketizer) = Depacketizer::new(&codec, fmtp) else {
        return;
    };
    for packet in packets::packets(data) {
        let _ = depacketizer.push(packet);
        while let Some(unit) = depacketizer.pull() {
            assert!(unit.data.len() <= MAX_UNIT_SIZE);
            assert!(unit.keyframe && !unit.damaged);
        }
    }
});
