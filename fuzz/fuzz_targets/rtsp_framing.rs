//! RTSP connection framing (RFC 2326 §4, §10.12): bytes arriving in any
//! chunking are framed into messages or refused, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtpcast::rtsp::framing::{Incoming, RtspFramer};

fuzz_target!(|data: &[u8]| {
    // The first byte sets the chunk size, so split reads are explored.
    let Some((&chunk, data)) = data.split_first() else {
        return;
    };
    let mut framer = RtspFramer::new();
    for piece in data.chunks(usize::from(chunk) + 1) {
        framer.push(piece);
        loop {
            match framer.next_message() {
                Ok(Some(Incoming::Interleaved { payload, .. })) => {
                    assert!(payload.len() <= usize::from(u16::MAX));
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
