//! Receiver behaviour on hand-built packet runs, with values worked out
//! from RFC 3550 Appendix A.

// Tests take a real `Instant` as their clock's origin.
#![allow(clippy::disallowed_methods)]

use super::*;

const SSRC: u32 = 0x1234_5678;
const OTHER: u32 = 0x9abc_def0;

fn packet_from(ssrc: u32, sequence_number: u16, timestamp: u32) -> RtpPacket {
    RtpPacket {
        payload_type: 96,
        marker: false,
        sequence_number,
        timestamp,
        ssrc,
        payload: Bytes::copy_from_slice(&sequence_number.to_be_bytes()),
    }
}

fn packet(sequence_number: u16) -> RtpPacket {
    packet_from(SSRC, sequence_number, 0)
}

fn receiver() -> RtpReceiver {
    RtpReceiver::new(ReceiverConfig::new(90_000))
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// Everything `pop` releases at `now`, as (sequence number, extended
/// sequence, gap before).
fn drain(receiver: &mut RtpReceiver, now: Instant) -> Vec<(u16, u64, bool)> {
    std::iter::from_fn(|| receiver.pop(now))
        .map(|released| {
            (
                released.packet.sequence_number,
                released.extended_sequence,
                released.gap_before,
            )
        })
        .collect()
}

/// Pushes `sequence_numbers` at `now` and drains after each.
fn feed(receiver: &mut RtpReceiver, sequence_numbers: &[u16], now: Instant) -> Vec<u16> {
    let mut released = Vec::new();
    for &seq in sequence_numbers {
        assert_eq!(
            receiver.push(packet(seq), now),
            PacketOutcome::Buffered,
            "{seq}"
        );
        released.extend(drain(receiver, now).into_iter().map(|(seq, _, _)| seq));
    }
    released
}

#[test]
fn in_order_packets_are_released_at_once() {
    let t0 = Instant::now();
    let mut rx = receiver();
    assert_eq!(rx.poll_timeout(), None);
    assert_eq!(rx.ssrc(), None);
    assert_eq!(rx.push(packet(7), t0), PacketOutcome::Buffered);
    assert_eq!(rx.ssrc(), Some(SSRC));
    assert_eq!(rx.buffered(), 1);
    assert_eq!(rx.poll_timeout(), Some(t0), "already due");
    let released = rx.pop(t0).expect("in order");
    assert_eq!(released.packet, packet(7));
    assert_eq!(released.extended_sequence, 0);
    assert!(!released.gap_before);
    assert_eq!(rx.push(packet(8), t0 + ms(20)), PacketOutcome::Buffered);
    assert_eq!(drain(&mut rx, t0 + ms(20)), [(8, 1, false)]);
    assert_eq!(rx.buffered(), 0);
    assert_eq!(rx.poll_timeout(), None);
    assert_eq!(rx.pop(t0 + ms(20)), None);
}

#[test]
fn sequence_numbers_wrap_into_the_extended_form() {
    let t0 = Instant::now();
    let mut rx = receiver();
    for seq in [65534, 65535, 0, 1] {
        rx.push(packet(seq), t0);
    }
    assert_eq!(
        drain(&mut rx, t0),
        [
            (65534, 0, false),
            (65535, 1, false),
            (0, 2, false),
            (1, 3, false)
        ]
    );
    let stats = rx.stats();
    assert_eq!(stats.highest_seq, 0x0001_0001, "one cycle, then 1");
    assert_eq!(stats.received, 4);
    assert_eq!(stats.cumulative_lost, 0);
    // Reordering across the wrap.
    let mut rx = receiver();
    assert_eq!(feed(&mut rx, &[65535, 1, 0, 2], t0), [65535, 0, 1, 2]);
    assert_eq!(rx.stats().highest_seq, 0x0001_0002);
}

#[test]
fn reordered_packets_are_released_in_sequence_order() {
    let t0 = Instant::now();
    let mut rx = receiver();
    assert_eq!(feed(&mut rx, &[10], t0), [10]);
    assert_eq!(feed(&mut rx, &[12], t0 + ms(1)), [0u16; 0]);
    assert_eq!(rx.poll_timeout(), Some(t0 + ms(51)));
    assert_eq!(feed(&mut rx, &[13], t0 + ms(2)), [0u16; 0]);
    assert_eq!(rx.poll_timeout(), Some(t0 + ms(51)), "the oldest waits");
    assert_eq!(rx.push(packet(11), t0 + ms(3)), PacketOutcome::Buffered);
    assert_eq!(
        drain(&mut rx, t0 + ms(3)),
        [(11, 1, false), (12, 2, false), (13, 3, false)]
    );
    assert_eq!(rx.stats().skipped, 0);
    assert_eq!(rx.stats().cumulative_lost, 0);
}

#[test]
fn a_gap_is_skipped_after_the_reorder_delay_and_counted_lost() {
    let t0 = Instant::now();
    let mut rx = receiver();
    feed(&mut rx, &[10], t0);
    feed(&mut rx, &[12, 13], t0 + ms(5));
    assert_eq!(rx.pop(t0 + ms(54)), None, "still waiting for 11");
    assert_eq!(rx.poll_timeout(), Some(t0 + ms(55)));
    assert_eq!(drain(&mut rx, t0 + ms(55)), [(12, 2, true), (13, 3, false)]);
    assert_eq!(rx.stats().skipped, 1);
    let block = rx.report_block(t0 + ms(60)).expect("source known");
    assert_eq!(block.cumulative_lost, 1);
    // 11 arrives after all: too late for the output, but received (A.3).
    assert_eq!(rx.push(packet(11), t0 + ms(70)), PacketOutcome::Late);
    assert_eq!(rx.stats().late, 1);
    assert_eq!(rx.stats().cumulative_lost, 0);
    assert_eq!(rx.pop(t0 + ms(70)), None);
}

#[test]
fn the_gap_expires_with_the_packet_that_waited_longest() {
    let t0 = Instant::now();
    let mut rx = receiver();
    feed(&mut rx, &[0], t0);
    // 3 arrives first, then 2 with a later arrival: 3's delay governs.
    feed(&mut rx, &[3], t0);
    feed(&mut rx, &[2], t0 + ms(30));
    assert_eq!(rx.poll_timeout(), Some(t0 + ms(50)));
    assert_eq!(drain(&mut rx, t0 + ms(50)), [(2, 2, true), (3, 3, false)]);
}

#[test]
fn a_full_buffer_skips_its_first_gap() {
    let t0 = Instant::now();
    let mut rx = RtpReceiver::new(ReceiverConfig {
        reorder_capacity: 3,
        ..ReceiverConfig::new(90_000)
    });
    feed(&mut rx, &[0], t0);
    assert_eq!(feed(&mut rx, &[2, 3], t0), [0u16; 0]);
    assert_eq!(rx.buffered(), 2);
    assert_eq!(feed(&mut rx, &[5], t0), [2, 3], "full at 3 packets");
    assert_eq!(rx.stats().skipped, 1);
    // A caller that does not drain finds the buffer bounded.
    for seq in [7, 8] {
        rx.push(packet(seq), t0);
    }
    assert_eq!(rx.buffered(), 3);
    assert_eq!(rx.push(packet(6), t0), PacketOutcome::Overflow);
    assert_eq!(rx.push(packet(9), t0), PacketOutcome::Overflow);
    assert_eq!(rx.stats().overflow, 2);
    assert_eq!(rx.buffered(), 3);
    assert_eq!(rx.poll_timeout(), Some(t0), "full, so due");
    assert_eq!(drain(&mut rx, t0), [(5, 5, true)]);
    assert_eq!(rx.poll_timeout(), Some(t0 + ms(50)));
    assert_eq!(drain(&mut rx, t0 + ms(50)), [(7, 7, true), (8, 8, false)]);
    assert_eq!(rx.stats().skipped, 3);
}

#[test]
fn zero_capacity_means_one() {
    let t0 = Instant::now();
    let mut rx = RtpReceiver::new(ReceiverConfig {
        reorder_capacity: 0,
        ..ReceiverConfig::new(90_000)
    });
    assert_eq!(feed(&mut rx, &[0, 2], t0), [0, 2]);
    assert_eq!(rx.push(packet(1), t0), PacketOutcome::Late);
    assert_eq!(rx.stats().skipped, 1);
}

#[test]
fn duplicates_are_dropped_and_counted() {
    let t0 = Instant::now();
    let mut rx = receiver();
    feed(&mut rx, &[10], t0);
    assert_eq!(
        rx.push(packet(10), t0),
        PacketOutcome::Duplicate,
        "released"
    );
    feed(&mut rx, &[12], t0);
    assert_eq!(rx.push(packet(12), t0), PacketOutcome::Duplicate, "held");
    assert_eq!(rx.stats().duplicates, 2);
    feed(&mut rx, &[11], t0);
    assert_eq!(rx.push(packet(11), t0), PacketOutcome::Duplicate);
    // 13 packets arrived for 3 sequence numbers: duplicates make the A.3
    // loss negative.
    let stats = rx.stats();
    assert_eq!(stats.received, 6);
    assert_eq!(stats.cumulative_lost, -3);
    assert_eq!(rx.report_block(t0).expect("source").fraction_lost, 0);
}

#[test]
fn duplicates_are_told_from_late_packets_for_64_positions() {
    let t0 = Instant::now();
    let mut rx = receiver();
    let run: Vec<u16> = (0..70).collect();
    feed(&mut rx, &run, t0);
    assert_eq!(rx.push(packet(6), t0), PacketOutcome::Duplicate);
    assert_eq!(rx.push(packet(5), t0), PacketOutcome::Late, "beyond memory");
    // A released packet after a skipped one is a duplicate; the skipped
    // one is late.
    feed(&mut rx, &[72], t0);
    assert_eq!(drain(&mut rx, t0 + ms(50)), [(72, 72, true)]);
    assert_eq!(rx.push(packet(72), t0 + ms(50)), PacketOutcome::Duplicate);
    assert_eq!(rx.push(packet(71), t0 + ms(50)), PacketOutcome::Late);
    assert_eq!(rx.push(packet(70), t0 + ms(50)), PacketOutcome::Late);
    assert_eq!(rx.push(packet(69), t0 + ms(50)), PacketOutcome::Duplicate);
    // A wide skip forgets what was released before it.
    feed(&mut rx, &[200], t0 + ms(50));
    assert_eq!(drain(&mut rx, t0 + ms(100)), [(200, 200, true)]);
    assert_eq!(rx.push(packet(199), t0 + ms(100)), PacketOutcome::Late);
    assert_eq!(rx.push(packet(150), t0 + ms(100)), PacketOutcome::Late);
    let stats = rx.stats();
    assert_eq!((stats.duplicates, stats.late), (3, 5));
}

#[test]
fn packets_from_before_the_first_are_late() {
    let t0 = Instant::now();
    let mut rx = receiver();
    // Not released yet: 9 is still before the run's start.
    rx.push(packet(10), t0);
    assert_eq!(rx.push(packet(9), t0), PacketOutcome::Late);
    assert_eq!(drain(&mut rx, t0), [(10, 0, false)]);
    assert_eq!(rx.stats().late, 1);
}

#[test]
fn other_ssrcs_are_ignored_while_the_source_sends() {
    let t0 = Instant::now();
    let mut rx = receiver();
    feed(&mut rx, &[1], t0);
    for (step, seq) in (0..10).zip(100..) {
        let now = t0 + ms(300 * step);
        assert_eq!(
            rx.push(packet_from(OTHER, seq, 0), now),
            PacketOutcome::ForeignSsrc
        );
        assert_eq!(rx.push(packet(2 + seq - 100), now), PacketOutcome::Buffered);
    }
    assert_eq!(drain(&mut rx, t0 + ms(3000)).len(), 10);
    assert_eq!(rx.stats().foreign_ssrc, 10);
    assert_eq!(rx.ssrc(), Some(SSRC));
}

#[test]
fn the_announced_ssrc_is_locked_before_it_sends() {
    let t0 = Instant::now();
    let mut rx = RtpReceiver::new(ReceiverConfig {
        ssrc: Some(OTHER),
        ..ReceiverConfig::new(90_000)
    });
    assert_eq!(rx.push(packet(1), t0), PacketOutcome::ForeignSsrc);
    assert_eq!(rx.ssrc(), None);
    assert_eq!(
        rx.push(packet_from(OTHER, 50, 0), t0 + ms(10)),
        PacketOutcome::Buffered
    );
    assert_eq!(rx.ssrc(), Some(OTHER));
    assert_eq!(drain(&mut rx, t0 + ms(10)), [(50, 0, false)]);
}

#[test]
fn a_wrong_announced_ssrc_gives_way_after_the_source_timeout() {
    let t0 = Instant::now();
    let mut rx = RtpReceiver::new(ReceiverConfig {
        ssrc: Some(OTHER),
        ..ReceiverConfig::new(90_000)
    });
    // Silence is counted from the first packet of the real sender.
    assert_eq!(rx.push(packet(1), t0), PacketOutcome::ForeignSsrc);
    assert_eq!(
        rx.push(packet(2), t0 + ms(1999)),
        PacketOutcome::ForeignSsrc
    );
    assert_eq!(rx.push(packet(3), t0 + ms(2000)), PacketOutcome::Probation);
    assert_eq!(rx.push(packet(4), t0 + ms(2001)), PacketOutcome::NewSource);
    assert_eq!(rx.ssrc(), Some(SSRC));
    assert_eq!(rx.stats().source_changes, 0, "no source was replaced");
    assert_eq!(
        drain(&mut rx, t0 + ms(2001)),
        [(3, 0, false), (4, 1, false)]
    );
}

#[test]
fn a_restarted_source_is_accepted_after_probation() {
    let t0 = Instant::now();
    let mut rx = receiver();
    feed(&mut rx, &[100, 101], t0);
    assert!(rx.handle_sender_report(&sender_report(SSRC), t0));
    let silent = t0 + ms(2000);
    let new = |seq| packet_from(OTHER, seq, 0);
    assert_eq!(
        rx.push(new(500), silent - ms(1)),
        PacketOutcome::ForeignSsrc
    );
    assert_eq!(rx.push(new(501), silent), PacketOutcome::Probation);
    // Not sequential: probation starts again from this one.
    assert_eq!(rx.push(new(503), silent + ms(1)), PacketOutcome::Probation);
    assert_eq!(
        rx.push(packet_from(0x55, 504, 0), silent + ms(2)),
        PacketOutcome::Probation
    );
    assert_eq!(rx.push(new(505), silent + ms(3)), PacketOutcome::Probation);
    assert_eq!(rx.push(new(506), silent + ms(4)), PacketOutcome::NewSource);
    assert_eq!(rx.ssrc(), Some(OTHER));
    assert!(rx.last_sender_report().is_none(), "the old source's SR");
    assert_eq!(
        drain(&mut rx, silent + ms(4)),
        [(505, 2, true), (506, 3, false)]
    );
    let stats = rx.stats();
    assert_eq!(stats.source_changes, 1);
    assert_eq!(stats.foreign_ssrc, 4, "500, 501, 503 and 504 were dropped");
    assert_eq!((stats.received, stats.highest_seq), (2, 506));
    // The old source is now the foreign one.
    assert_eq!(
        rx.push(packet(102), silent + ms(5)),
        PacketOutcome::ForeignSsrc
    );
}

#[test]
fn the_old_source_speaking_again_ends_probation() {
    let t0 = Instant::now();
    let mut rx = receiver();
    feed(&mut rx, &[1], t0);
    let later = t0 + ms(2500);
    assert_eq!(
        rx.push(packet_from(OTHER, 9, 0), later),
        PacketOutcome::Probation
    );
    assert_eq!(feed(&mut rx, &[2], later), [2]);
    assert_eq!(
        rx.push(packet_from(OTHER, 10, 0), later),
        PacketOutcome::ForeignSsrc
    );
    assert_eq!(rx.stats().foreign_ssrc, 2);
    assert_eq!(rx.ssrc(), Some(SSRC));
}

#[test]
fn held_packets_of_a_replaced_source_are_released_first() {
    let t0 = Instant::now();
    let mut rx = RtpReceiver::new(ReceiverConfig {
        max_reorder_delay: Duration::from_secs(10),
        ..ReceiverConfig::new(90_000)
    });
    feed(&mut rx, &[1, 3], t0);
    let later = t0 + ms(2000);
    rx.push(packet_from(OTHER, 0, 0), later);
    assert_eq!(
        rx.push(packet_from(OTHER, 1, 0), later),
        PacketOutcome::NewSource
    );
    assert_eq!(
        drain(&mut rx, later),
        [(3, 2, true), (0, 3, true), (1, 4, false)]
    );
    assert_eq!(rx.stats().skipped, 1, "2 was lost; the change is no loss");
}

#[test]
fn dropout_and_misorder_limits_follow_a1() {
    let t0 = Instant::now();
    let mut rx = receiver();
    feed(&mut rx, &[1000], t0);
    assert_eq!(
        feed(&mut rx, &[3999], t0 + ms(60)),
        [0u16; 0],
        "2999 ahead: a gap"
    );
    drain(&mut rx, t0 + ms(120));
    assert_eq!(rx.stats().highest_seq, 3999);
    // 3000 ahead is a jump.
    assert_eq!(rx.push(packet(6999), t0), PacketOutcome::OutOfRange);
    // 100 behind is a jump too, 99 behind is reordering (here late).
    assert_eq!(rx.push(packet(3899), t0), PacketOutcome::OutOfRange);
    assert_eq!(rx.push(packet(3900), t0), PacketOutcome::Late);
    assert_eq!(rx.stats().out_of_range, 2);
}

#[test]
fn sequence_number_65535_is_no_resync_on_its_own() {
    let t0 = Instant::now();
    let mut rx = receiver();
    feed(&mut rx, &[1000], t0);
    // A.1 starts with no `bad_seq`: 65535 is a jump like any other.
    assert_eq!(rx.push(packet(65535), t0), PacketOutcome::OutOfRange);
    assert_eq!(rx.push(packet(0), t0), PacketOutcome::Buffered);
    assert_eq!(drain(&mut rx, t0), [(0, 1, true)]);
}

#[test]
fn two_sequential_packets_after_a_jump_restart_the_sequence() {
    let t0 = Instant::now();
    let mut rx = receiver();
    assert_eq!(feed(&mut rx, &[100, 101, 103], t0), [100, 101]);
    assert!(rx.handle_sender_report(&sender_report(SSRC), t0));
    assert_eq!(rx.push(packet(20_000), t0), PacketOutcome::OutOfRange);
    assert_eq!(rx.push(packet(30_000), t0), PacketOutcome::OutOfRange);
    assert_eq!(rx.push(packet(30_001), t0), PacketOutcome::Buffered);
    assert_eq!(drain(&mut rx, t0), [(103, 3, true), (30_001, 4, true)]);
    assert_eq!(rx.stats().skipped, 1, "102; the jump is no loss");
    assert_eq!(feed(&mut rx, &[30_002], t0), [30_002]);
    let stats = rx.stats();
    assert_eq!(stats.out_of_range, 2);
    assert_eq!(
        (stats.received, stats.highest_seq, stats.cumulative_lost),
        (2, 30_002, 0)
    );
    assert!(rx.last_sender_report().is_some(), "same source, same SR");
    // The old run's numbers are now jumps.
    assert_eq!(rx.push(packet(102), t0), PacketOutcome::OutOfRange);
}

/// RFC 3550 A.8 by hand, at 90 kHz. Packet 1: timestamp 0 at 0 ms
/// (transit 0). Packet 2: timestamp 3000 at 40 ms = 3600 units, transit
/// 600, D = 600, J = 600/16 = 37.5. Packet 3: timestamp 6000 at 60 ms =
/// 5400 units, transit -600, D = 1200, J = 37.5 + (1200 - 37.5)/16 =
/// 110.16.
#[test]
fn jitter_follows_a8() {
    let t0 = Instant::now();
    let mut rx = receiver();
    rx.push(packet_from(SSRC, 1, 0), t0);
    assert_eq!(rx.stats().jitter, 0);
    rx.push(packet_from(SSRC, 2, 3000), t0 + ms(40));
    assert_eq!(rx.stats().jitter, 37);
    rx.push(packet_from(SSRC, 3, 6000), t0 + ms(60));
    assert_eq!(rx.stats().jitter, 110);
    assert_eq!(rx.report_block(t0 + ms(60)).expect("source").jitter, 110);
}

#[test]
fn jitter_handles_timestamp_wrap_and_rate() {
    let t0 = Instant::now();
    // 8 kHz: 20 ms is 160 units; timestamps cross 2^32 with no jitter.
    let mut rx = RtpReceiver::new(ReceiverConfig::new(8000));
    for step in 0..4u16 {
        let timestamp = (u32::MAX - 200).wrapping_add(160 * u32::from(step));
        rx.push(
            packet_from(SSRC, step, timestamp),
            t0 + ms(20 * u64::from(step)),
        );
    }
    assert_eq!(rx.stats().jitter, 0);
    // A packet 10 ms late: D = 80, J = 5.
    rx.push(
        packet_from(SSRC, 4, (u32::MAX - 200).wrapping_add(640)),
        t0 + ms(90),
    );
    assert_eq!(rx.stats().jitter, 5);
}

/// Ten expected (0-9), three lost (2, 5, 7): fraction 3/10 = 76/256 and
/// cumulative 3 (A.3). The next interval, 10-19, loses nothing new.
#[test]
fn fraction_and_cumulative_loss_per_report_interval() {
    let t0 = Instant::now();
    let mut rx = receiver();
    assert_eq!(rx.report_block(t0), None, "nothing heard yet");
    for seq in [0, 1, 3, 4, 6, 8, 9] {
        rx.push(packet(seq), t0);
    }
    let first = rx.report_block(t0).expect("source");
    assert_eq!(
        (
            first.fraction_lost,
            first.cumulative_lost,
            first.highest_seq
        ),
        (76, 3, 9)
    );
    assert_eq!(first.ssrc, SSRC);
    assert_eq!(rx.stats().fraction_lost, 76);
    for seq in 10..20 {
        rx.push(packet(seq), t0);
    }
    let second = rx.report_block(t0).expect("source");
    assert_eq!((second.fraction_lost, second.cumulative_lost), (0, 3));
    // 20-23 with one lost: 1/4 = 64/256.
    for seq in [20, 22, 23] {
        rx.push(packet(seq), t0);
    }
    let third = rx.report_block(t0).expect("source");
    assert_eq!((third.fraction_lost, third.cumulative_lost), (64, 4));
    // An empty interval reports no loss.
    let fourth = rx.report_block(t0).expect("source");
    assert_eq!((fourth.fraction_lost, fourth.cumulative_lost), (0, 4));
    assert_eq!(rx.stats().fraction_lost, 0);
}

#[test]
fn cumulative_loss_is_clamped_to_24_bits() {
    let mut sequence = SequenceState::new(0, 0);
    sequence.cycles = 0x100 << 16;
    sequence.received = 1;
    assert_eq!(sequence.cumulative_lost(), 0x7f_ffff);
    sequence.cycles = 0;
    sequence.received = 0x80_0002;
    assert_eq!(sequence.cumulative_lost(), -0x80_0000);
    sequence.received = 0x80_0000;
    assert_eq!(sequence.cumulative_lost(), -0x7f_ffff);
    sequence.max_seq = 5;
    sequence.received = 1;
    assert_eq!(sequence.cumulative_lost(), 5);
}

fn sender_report(ssrc: u32) -> SenderReport {
    SenderReport {
        ssrc,
        ntp: 0x83aa_7e80_8000_0000,
        rtp_timestamp: 90_000,
        packet_count: 10,
        octet_count: 1000,
    }
}

/// LSR is the middle 32 bits of the SR's NTP timestamp; DLSR the time
/// since it arrived, 1.5 s = 0x18000 in 1/65536 s (RFC 3550 §6.4.1).
#[test]
fn lsr_and_dlsr_come_from_the_last_sender_report() {
    let t0 = Instant::now();
    let mut rx = receiver();
    rx.push(packet(1), t0);
    let before = rx.report_block(t0).expect("source");
    assert_eq!((before.last_sr, before.delay_since_last_sr), (0, 0));
    assert!(!rx.handle_sender_report(&sender_report(OTHER), t0));
    assert!(rx.last_sender_report().is_none());
    assert!(rx.handle_sender_report(&sender_report(SSRC), t0 + ms(500)));
    let block = rx.report_block(t0 + ms(2000)).expect("source");
    assert_eq!(block.last_sr, 0x7e80_8000);
    assert_eq!(block.delay_since_last_sr, 0x1_8000);
    // 1 ms is 65.536 units, truncated.
    let block = rx.report_block(t0 + ms(2001)).expect("source");
    assert_eq!(block.delay_since_last_sr, 0x1_8000 + 65);
    assert_eq!(
        rx.last_sender_report(),
        Some(&ReceivedSenderReport {
            report: sender_report(SSRC),
            received_at: t0 + ms(500),
        })
    );
}

#[test]
fn sender_reports_arrive_in_compound_rtcp() {
    let t0 = Instant::now();
    let mut rx = RtpReceiver::new(ReceiverConfig {
        ssrc: Some(SSRC),
        ..ReceiverConfig::new(90_000)
    });
    // Before the first RTP packet, the announced SSRC's SR is kept.
    let mut compound = Vec::new();
    crate::rtcp::write_sender_report(&sender_report(SSRC), "cam", &mut compound);
    rx.handle_rtcp(&compound, t0).expect("valid RTCP");
    assert_eq!(
        rx.last_sender_report().map(|sr| sr.report),
        Some(sender_report(SSRC))
    );
    assert!(rx.handle_rtcp(&compound[..7], t0).is_err());
    // Without an announced SSRC, nothing is known to match.
    let mut rx = receiver();
    rx.handle_rtcp(&compound, t0).expect("valid RTCP");
    assert!(rx.last_sender_report().is_none());
}

/// The SR maps RTP timestamp 90000 to NTP 0x83aa7e80.8: one second of
/// 90 kHz later is one NTP second later, half a second earlier is
/// 0x80000000 fractions earlier.
#[test]
fn rtp_timestamps_map_to_the_sources_wall_clock() {
    let t0 = Instant::now();
    let mut rx = receiver();
    assert_eq!(rx.ntp_of(0), None);
    rx.push(packet(1), t0);
    rx.handle_sender_report(&sender_report(SSRC), t0);
    assert_eq!(rx.ntp_of(90_000), Some(0x83aa_7e80_8000_0000));
    assert_eq!(rx.ntp_of(180_000), Some(0x83aa_7e81_8000_0000));
    assert_eq!(rx.ntp_of(45_000), Some(0x83aa_7e80_0000_0000));
    // Across the 32-bit timestamp wrap.
    assert_eq!(
        rx.ntp_of(90_000u32.wrapping_sub(90_000 * 2)),
        Some(0x83aa_7e7e_8000_0000)
    );
    let mut silent_clock = RtpReceiver::new(ReceiverConfig::new(0));
    silent_clock.push(packet(1), t0);
    silent_clock.handle_sender_report(&sender_report(SSRC), t0);
    assert_eq!(silent_clock.ntp_of(90_000), None);
}

#[test]
fn datagrams_are_parsed_and_malformed_ones_counted() {
    let t0 = Instant::now();
    let mut rx = receiver();
    let mut datagram = vec![0x80, 96, 0, 5, 0, 0, 0, 9];
    datagram.extend_from_slice(&SSRC.to_be_bytes());
    datagram.extend_from_slice(b"data");
    assert_eq!(
        rx.receive(&Bytes::from(datagram), t0),
        Ok(PacketOutcome::Buffered)
    );
    let released = rx.pop(t0).expect("released");
    assert_eq!(released.packet.payload, Bytes::from_static(b"data"));
    assert_eq!(released.packet.timestamp, 9);
    assert_eq!(
        rx.receive(&Bytes::from_static(&[0x80, 96, 0]), t0),
        Err(RtpPacketError::Truncated("fixed header"))
    );
    assert_eq!(rx.stats().malformed, 1);
    let mut rtcp = Vec::new();
    crate::rtcp::write_receiver_report(1, &[], &mut rtcp);
    assert_eq!(
        rx.receive(&Bytes::from(rtcp), t0),
        Err(RtpPacketError::Rtcp(201))
    );
    assert_eq!(rx.stats().malformed, 1, "RTCP is not malformed");
}

#[test]
fn time_running_backwards_is_taken_as_standing_still() {
    let t0 = Instant::now();
    let mut rx = receiver();
    feed(&mut rx, &[0], t0 + ms(100));
    feed(&mut rx, &[2], t0 + ms(100));
    // An earlier `now` neither releases nor panics.
    assert_eq!(rx.pop(t0), None);
    assert_eq!(rx.push(packet(3), t0), PacketOutcome::Buffered);
    assert_eq!(rx.poll_timeout(), Some(t0 + ms(150)));
    assert_eq!(drain(&mut rx, t0 + ms(150)), [(2, 2, true), (3, 3, false)]);
    rx.handle_sender_report(&sender_report(SSRC), t0 + ms(200));
    let block = rx.report_block(t0).expect("source");
    assert_eq!(block.delay_since_last_sr, 0);
}

#[test]
fn a_reorder_delay_beyond_the_clock_never_expires() {
    let t0 = Instant::now();
    let mut rx = RtpReceiver::new(ReceiverConfig {
        max_reorder_delay: Duration::MAX,
        ..ReceiverConfig::new(90_000)
    });
    feed(&mut rx, &[0, 2], t0);
    assert_eq!(rx.poll_timeout(), None);
    assert_eq!(rx.pop(t0 + Duration::from_secs(1 << 20)), None);
    assert_eq!(feed(&mut rx, &[1], t0), [1, 2]);
}
