//! Compound RTCP parsing (RFC 3550 §6.1): any datagram is parsed or
//! refused, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtpcast::rtcp::parse_compound;

fuzz_target!(|data: &[u8]| {
    if let Ok(packets) = parse_compound(data) {
        assert!(!packets.is_empty());
    }
});
