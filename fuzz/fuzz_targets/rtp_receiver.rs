//! RTP receiver (RFC 3550 A.1, A.3, A.8): any run of datagrams, sender
//! reports and report requests, at any arrival times, leaves the reorder
//! buffer bounded and the output strictly in order.
//!
//! Input: three config bytes (reorder capacity, reorder delay in ms,
//! announced SSRC), then records of a time step in ms, a control byte, a
//! length and that many bytes. Control bits 0-1 pick the record: a built
//! packet, a raw datagram, a sender report or a report block; bit 2 drains
//! the receiver after it; bit 3 makes the time step go backwards; bits 4-5
//! pick the SSRC; bits 6-7 the sequence step (+1, signed byte, absolute,
//! repeat).
#![no_main]

use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rtpcast::rtcp::SenderReport;
use rtpcast::rtp::{ReceiverConfig, ReleasedPacket, RtpReceiver};

/// The SSRCs built packets come from: two senders and a stray.
const SSRCS: [u32; 3] = [0x1111_1111, 0x2222_2222, 0x3333_3333];

/// Checks one released packet against the previous one.
fn check_order(released: &ReleasedPacket, last: &mut Option<u64>) {
    if let Some(previous) = *last {
        assert!(released.extended_sequence > previous, "out of order");
        if !released.gap_before {
            assert_eq!(released.extended_sequence, previous + 1, "unflagged gap");
        }
    }
    *last = Some(released.extended_sequence);
}

fuzz_target!(|data: &[u8]| {
    let [capacity, delay, announced, records @ ..] = data else {
        return;
    };
    let mut rest = records;
    let capacity = 1 + usize::from(capacity % 32);
    let max_reorder_delay = Duration::from_millis(u64::from(*delay));
    let mut receiver = RtpReceiver::new(ReceiverConfig {
        ssrc: (announced & 1 == 1).then_some(SSRCS[0]),
        max_reorder_delay,
        reorder_capacity: capacity,
        ..ReceiverConfig::new(90_000)
    });
    let origin = Instant::now() + Duration::from_secs(1000);
    let mut now = origin;
    let (mut sequence_number, mut timestamp) = (0xfff0u16, 0u32);
    let mut last = None;
    while let [step, control, len, tail @ ..] = rest {
        let (bytes, tail) = tail.split_at(usize::from(*len).min(tail.len()));
        rest = tail;
        let step = Duration::from_millis(u64::from(*step));
        now = if control & 0x08 != 0 {
            now.checked_sub(step).unwrap_or(now)
        } else {
            now + step
        };
        let word = |at: usize| {
            bytes
                .get(at..at + 4)
                .map_or(0, |b| u32::from_be_bytes(b.try_into().unwrap()))
        };
        match control & 3 {
            0 => {
                sequence_number = match control >> 6 {
                    0 => sequence_number.wrapping_add(1),
                    1 => sequence_number
                        .wrapping_add_signed(i16::from(bytes.first().map_or(0, |&b| b as i8))),
                    2 => word(0) as u16,
                    _ => sequence_number,
                };
                timestamp = timestamp.wrapping_add(word(4) & 0xffff);
                let mut datagram = vec![0x80, 96];
                datagram.extend_from_slice(&sequence_number.to_be_bytes());
                datagram.extend_from_slice(&timestamp.to_be_bytes());
                datagram.extend_from_slice(&SSRCS[usize::from(control >> 4 & 3) % 3].to_be_bytes());
                datagram.extend_from_slice(bytes);
                receiver
                    .receive(&Bytes::from(datagram), now)
                    .expect("a built packet parses");
            }
            1 => {
                let _ = receiver.receive(&Bytes::copy_from_slice(bytes), now);
            }
            2 => {
                let report = SenderReport {
                    ssrc: SSRCS[usize::from(control >> 4 & 3) % 3],
                    ntp: u64::from(word(0)) << 32 | u64::from(word(4)),
                    rtp_timestamp: word(8),
                    packet_count: 0,
                    octet_count: 0,
                };
                receiver.handle_sender_report(&report, now);
                let _ = receiver.ntp_of(word(12));
            }
            _ => {
                if let Some(block) = receiver.report_block(now) {
                    let stats = receiver.stats();
                    assert_eq!(block.cumulative_lost, stats.cumulative_lost);
                    assert_eq!(block.highest_seq, stats.highest_seq);
                }
            }
        }
        assert!(receiver.buffered() <= capacity, "buffer over its bound");
        if control & 0x04 != 0 {
            while let Some(released) = receiver.pop(now) {
                check_order(&released, &mut last);
            }
            // Nothing is due any more; what is held waits for a later time.
            match receiver.poll_timeout() {
                Some(deadline) => assert!(deadline > now),
                None => assert_eq!(receiver.buffered(), 0),
            }
        }
    }
    // Every gap expires: at the deadline, the buffer empties.
    while let Some(deadline) = receiver.poll_timeout() {
        let released = receiver
            .pop(deadline)
            .expect("a packet is due at the deadline");
        check_order(&released, &mut last);
    }
    assert_eq!(receiver.buffered(), 0);
});
