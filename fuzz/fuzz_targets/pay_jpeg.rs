//! JPEG packetizer (RFC 2435) on untrusted files: any bytes are refused or
//! cut into packets within the MTU that the depacketizer turns back into
//! a JPEG image the packetizer accepts again, of the same size rounded up
//! to whole 8-pixel blocks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtpcast::codec::depay::{Depacketizer, ReceivedPacket};
use rtpcast::codec::jpeg::{check_frame, JpegPacketizer};
use rtpcast::codec::PayloadWriter;
use rtpcast::media::CodecParams;

fuzz_target!(|data: &[u8]| {
    let Some((&mtu_byte, jpeg)) = data.split_first() else {
        return;
    };
    // 157 (raised to the minimum) to 1177 bytes.
    let mtu = 157 + usize::from(mtu_byte) * 4;
    let mut writer = PayloadWriter::new();
    let result = JpegPacketizer::new(mtu).packetize(jpeg, &mut writer);
    let checked = check_frame(jpeg);
    let Ok(()) = result else {
        assert!(writer.is_empty(), "a refused image writes nothing");
        assert!(checked.is_err(), "packetize refused what check_frame took");
        return;
    };
    let (width, height) = checked.expect("check_frame refused what packetize took");
    let payloads = writer.finish();
    let codec = CodecParams::Jpeg { width, height };
    let mut depacketizer = Depacketizer::new(&codec, None).expect("JPEG needs no fmtp");
    for (seq, payload) in payloads.iter().enumerate() {
        assert!(12 + payload.bytes.len() <= mtu);
        assert_eq!(payload.marker, seq + 1 == payloads.len());
        depacketizer
            .push(ReceivedPacket {
                sequence_number: seq as u16,
                timestamp: 0,
                marker: payload.marker,
                payload: payload.bytes,
            })
            .expect("our own packets are valid");
    }
    let rebuilt = depacketizer.pull().expect("one image");
    assert!(depacketizer.pull().is_none());
    let blocks = |pixels: u16| pixels.div_ceil(8) * 8;
    assert_eq!(
        check_frame(&rebuilt.data).expect("the rebuilt image is carriable"),
        (blocks(width), blocks(height))
    );
});
