//! Timeline, pacing and RTCP of one viewer, driven on the bundled sample
//! with simulated time; the tests play the I/O layer's part and read the
//! samples the viewer asks for.

// Tests take a real `Instant` as their clock's origin.
#![allow(clippy::disallowed_methods)]

use super::*;
use crate::media::TrackInfo;
use crate::rtcp;
use crate::rtcp::SenderReport;
use crate::server::catalog::Catalog;
use std::net::SocketAddr;

const MTU: usize = 1400;

fn udp(port: u16) -> Delivery {
    Delivery::Udp {
        rtp: SocketAddr::from(([127, 0, 0, 1], port)),
        rtcp: SocketAddr::from(([127, 0, 0, 1], port + 1)),
    }
}

fn sample_media() -> Arc<Mp4Media> {
    Catalog::bundled_sample()
        .expect("sample")
        .resolve("/")
        .expect("mount")
}

/// Distinct starting values per track, as a seeded generator would give.
fn stream_start(track: usize) -> StreamStart {
    StreamStart {
        ssrc: 0x1000 + track as u32,
        first_seq: 65_000 + 100 * track as u16,
        timestamp_base: 0xffff_0000 + 7 * track as u32,
    }
}

fn sender(info: &TrackInfo, delivery: Delivery) -> TrackSender {
    TrackSender::new(
        info.clone(),
        delivery,
        96 + info.index as u8,
        MTU,
        stream_start(info.index),
    )
}

fn sample_stream(loop_playback: bool) -> Viewer {
    let media = sample_media();
    let mut stream = Viewer::new(media.clone(), "test".into(), loop_playback);
    for info in media.tracks() {
        let port = 6000 + 2 * info.index as u16;
        stream.set_up_track(sender(info, udp(port)));
    }
    stream
}

/// Reads what the viewer asks for, as the I/O layer does.
fn feed(stream: &mut Viewer) {
    let media = stream.media().unwrap().clone();
    let reads: Vec<(u64, SampleRef)> = stream.missing_reads().collect();
    for (id, sample) in reads {
        stream.deliver(id, media.read_sample(&sample).map(|au| au.data));
    }
}

#[derive(Debug, Clone, Copy)]
struct Sent {
    track: usize,
    first_nal: u8,
    seq: u16,
    timestamp: u32,
    marker: bool,
    at: Instant,
}

/// One compound RTCP packet sent: its sender report, and whether it ended
/// with BYE.
#[derive(Debug, Clone, Copy)]
struct Report {
    track: usize,
    bye: bool,
    sender: SenderReport,
    at: Instant,
}

#[derive(Debug, Default)]
struct Log {
    rtp: Vec<Sent>,
    rtcp: Vec<Report>,
    batches: usize,
}

impl Log {
    /// Compound packets that carried a BYE.
    fn byes(&self) -> usize {
        self.rtcp.iter().filter(|r| r.bye).count()
    }

    /// Sender reports of `track` without BYE.
    fn sender_reports(&self, track: usize) -> Vec<Report> {
        self.rtcp
            .iter()
            .filter(|r| r.track == track && !r.bye)
            .copied()
            .collect()
    }

    /// Panics unless the sequence numbers of `track` are consecutive.
    fn assert_consecutive(&self, track: usize) {
        let seqs: Vec<u16> = self
            .rtp
            .iter()
            .filter(|s| s.track == track)
            .map(|s| s.seq)
            .collect();
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
            "track {track}: sequence numbers not consecutive"
        );
    }
}

fn track_of(delivery: Delivery) -> usize {
    match delivery {
        Delivery::Udp { rtp, .. } => usize::from((rtp.port() - 6000) / 2),
        Delivery::Interleaved { rtp_channel, .. } => usize::from(rtp_channel / 2),
    }
}

/// Drives the stream in 1 ms steps from `from` to `to`.
fn run(stream: &mut Viewer, from: Instant, to: Instant, log: &mut Log) {
    let mut now = from;
    while now <= to {
        feed(stream);
        // At one instant there is at most a unit and a report per track
        // and a chunk: a viewer that keeps answering is stuck, not busy.
        let mut at_this_instant = 0;
        while let Some(transmit) = stream.poll_transmit(now, SystemTime::now()) {
            at_this_instant += 1;
            assert!(
                at_this_instant < 1000,
                "poll_transmit never ends at {now:?}"
            );
            match transmit {
                Transmit::Rtp {
                    delivery,
                    batch,
                    packets,
                    ..
                } => {
                    log.batches += 1;
                    for (header, payload) in batch.packets_in(packets) {
                        let packet = [header, payload].concat();
                        assert!(packet.len() <= MTU);
                        let track = track_of(delivery);
                        log.rtp.push(Sent {
                            track,
                            first_nal: if track == 0 {
                                first_nal_type(payload)
                            } else {
                                0
                            },
                            seq: u16::from_be_bytes([packet[2], packet[3]]),
                            timestamp: u32::from_be_bytes([
                                packet[4], packet[5], packet[6], packet[7],
                            ]),
                            marker: packet[1] & 0x80 != 0,
                            at: now,
                        });
                    }
                }
                Transmit::Rtcp {
                    delivery, packet, ..
                } => {
                    let packets = rtcp::parse_compound(packet).expect("valid RTCP");
                    let sender = packets.iter().find_map(|p| match p {
                        rtcp::RtcpPacket::SenderReport { report, .. } => Some(*report),
                        _ => None,
                    });
                    log.rtcp.push(Report {
                        track: track_of(delivery),
                        bye: packets
                            .iter()
                            .any(|p| matches!(p, rtcp::RtcpPacket::Bye { .. })),
                        sender: sender.expect("every compound starts with an SR"),
                        at: now,
                    });
                }
            }
        }
        match stream.poll_timeout() {
            Some(due) if due <= to => now = due.max(now + Duration::from_millis(1)),
            _ => return,
        }
    }
}

fn frames(log: &Log, track: usize) -> Vec<u32> {
    let mut timestamps: Vec<u32> = log
        .rtp
        .iter()
        .filter(|s| s.track == track && s.marker)
        .map(|s| s.timestamp)
        .collect();
    timestamps.dedup();
    timestamps
}

#[test]
fn whole_sample_is_paced_in_real_time_with_presentation_timestamps() {
    let mut stream = sample_stream(false);
    let t0 = Instant::now();
    let start = stream.play(t0, None, None);
    assert_eq!(start.npt_start, 0.0);
    let mut log = Log::default();
    run(&mut stream, t0, t0 + Duration::from_secs(1), &mut log);
    let first_second = frames(&log, 0).len();
    assert!(
        (29..=32).contains(&first_second),
        "{first_second} video frames in 1 s"
    );
    run(
        &mut stream,
        t0 + Duration::from_secs(1),
        t0 + Duration::from_secs(12),
        &mut log,
    );

    let video = frames(&log, 0);
    assert_eq!(
        video.len(),
        300,
        "every video access unit, marker on the last packet"
    );
    let base = start.tracks[0].rtptime.unwrap();
    let mut offsets: Vec<u32> = video.iter().map(|ts| ts.wrapping_sub(base)).collect();
    assert_ne!(
        offsets,
        {
            let mut sorted = offsets.clone();
            sorted.sort_unstable();
            sorted
        },
        "B-frames: presentation timestamps are not in decode order"
    );
    offsets.sort_unstable();
    assert!(
        offsets.windows(2).all(|w| w[1] - w[0] == 3000),
        "30 fps at 90 kHz"
    );
    assert_eq!(
        offsets[0], 0,
        "RTP-Info rtptime is the first frame's timestamp"
    );

    let audio = frames(&log, 1);
    assert!(
        (466..=472).contains(&audio.len()),
        "{} AAC frames",
        audio.len()
    );
    assert!(audio.windows(2).all(|w| w[1].wrapping_sub(w[0]) == 1024));

    for track in 0..2 {
        let first = log.rtp.iter().find(|s| s.track == track).expect("packets");
        assert_eq!(first.seq, start.tracks[track].seq);
        log.assert_consecutive(track);
    }
    let last = log.rtp.last().expect("packets").at;
    let span = last - t0;
    assert!(
        span > Duration::from_millis(9800) && span < Duration::from_millis(10100),
        "{span:?}"
    );
    assert_eq!(log.byes(), 2, "BYE per track at end of stream");
    assert!(stream.poll_timeout().is_none());
    assert!(!stream.is_playing());

    let again = t0 + Duration::from_secs(15);
    let replay = stream.play(again, None, None);
    assert_eq!(replay.npt_start, 0.0, "PLAY after the end starts over");
    let last_seq = log.rtp.iter().rev().find(|s| s.track == 0).map(|s| s.seq);
    assert_eq!(
        Some(replay.tracks[0].seq),
        last_seq.map(|s| s.wrapping_add(1))
    );
    let sent = log.rtp.len();
    run(
        &mut stream,
        again,
        again + Duration::from_millis(100),
        &mut log,
    );
    assert!(log.rtp.len() > sent);
}

#[test]
fn one_access_unit_per_batch_and_sender_reports_every_five_seconds() {
    let mut stream = sample_stream(false);
    let t0 = Instant::now();
    stream.play(t0, None, None);
    let mut log = Log::default();
    run(&mut stream, t0, t0 + Duration::from_secs(6), &mut log);
    let video_batches = frames(&log, 0).len() + frames(&log, 1).len();
    assert_eq!(
        log.batches, video_batches,
        "each batch holds exactly one access unit"
    );
    let reports = log.sender_reports(0);
    assert_eq!(reports.len(), 2, "an SR at PLAY and one 5 s later");
    assert_eq!(reports[0].at, t0);
    assert!(
        reports[0].sender.packet_count > 0,
        "first SR follows the first RTP packet"
    );
    assert_eq!(reports[1].at - t0, SENDER_REPORT_INTERVAL);
    // The SR maps wall time to the stream clock: 5 s later, 450 000 ticks
    // later, as RTP timestamps advance with media time.
    let elapsed = reports[1]
        .sender
        .rtp_timestamp
        .wrapping_sub(reports[0].sender.rtp_timestamp);
    assert_eq!(elapsed, 450_000);
}

#[test]
fn pause_and_resume_continue_sequence_and_timestamps() {
    let mut stream = sample_stream(false);
    let t0 = Instant::now();
    let first = stream.play(t0, None, None);
    let mut log = Log::default();
    run(&mut stream, t0, t0 + Duration::from_secs(2), &mut log);
    stream.pause();
    let before = log.rtp.len();
    let last_video = *log.rtp.iter().rev().find(|s| s.track == 0).expect("video");
    assert!(
        stream.poll_timeout().is_none(),
        "nothing scheduled while paused"
    );
    let resume_at = t0 + Duration::from_secs(5);
    let resumed = stream.play(resume_at, None, None);
    assert!(
        (1.9..2.2).contains(&resumed.npt_start),
        "{}",
        resumed.npt_start
    );
    assert_eq!(resumed.tracks[0].seq, last_video.seq.wrapping_add(1));
    run(
        &mut stream,
        resume_at,
        resume_at + Duration::from_secs(10),
        &mut log,
    );
    let after = log.rtp[before..]
        .iter()
        .find(|s| s.track == 0)
        .expect("video after resume");
    assert_eq!(
        after.seq,
        last_video.seq.wrapping_add(1),
        "sequence continues"
    );
    // Every frame of the file went out exactly once, on one continuous
    // timeline: no jump backwards, no gap for the pause.
    let mut offsets: Vec<u32> = frames(&log, 0)
        .iter()
        .map(|ts| ts.wrapping_sub(first.tracks[0].rtptime.unwrap()))
        .collect();
    offsets.sort_unstable();
    assert_eq!(offsets.len(), 300);
    assert!(offsets.windows(2).all(|w| w[1] - w[0] == 3000));
}

#[test]
fn seek_starts_at_keyframe_and_timestamps_keep_rising() {
    let mut stream = sample_stream(false);
    let t0 = Instant::now();
    let first = stream.play(t0, None, None);
    let mut log = Log::default();
    run(&mut stream, t0, t0 + Duration::from_secs(1), &mut log);
    let before = log.rtp.len();
    let max_before = log
        .rtp
        .iter()
        .filter(|s| s.track == 0)
        .map(|s| s.timestamp.wrapping_sub(first.tracks[0].rtptime.unwrap()))
        .max()
        .expect("video");
    let seek_at = t0 + Duration::from_secs(1);
    let seek = stream.play(seek_at, Some(5.0), None);
    assert!((4.0..=5.0).contains(&seek.npt_start), "{}", seek.npt_start);
    run(
        &mut stream,
        seek_at,
        seek_at + Duration::from_millis(500),
        &mut log,
    );
    let after: Vec<Sent> = log.rtp[before..]
        .iter()
        .filter(|s| s.track == 0)
        .copied()
        .collect();
    assert_eq!(
        after[0].timestamp,
        seek.tracks[0].rtptime.unwrap(),
        "keyframe carries RTP-Info rtptime"
    );
    assert!(after
        .iter()
        .all(|s| s.timestamp.wrapping_sub(first.tracks[0].rtptime.unwrap()) > max_before));
}

#[test]
fn range_end_stops_after_the_units_decoded_before_it() {
    let mut stream = sample_stream(false);
    let t0 = Instant::now();
    let start = stream.play(t0, Some(2.0), Some(5.0));
    assert!((1.0..=2.0).contains(&start.npt_start));
    let mut log = Log::default();
    run(&mut stream, t0, t0 + Duration::from_secs(5), &mut log);
    let video = frames(&log, 0).len() as f64;
    let expected = (5.0 - start.npt_start) * 30.0;
    assert!(
        (video - expected).abs() <= 3.0,
        "{video} frames for {expected}"
    );
    let last = log.rtp.last().expect("packets").at - t0;
    // Sending starts at the keyframe's decode time, up to the B-frame
    // delay before its presentation time.
    assert!(
        last < Duration::from_secs_f64(5.0 - start.npt_start + 0.1),
        "{last:?}"
    );
    assert_eq!(log.byes(), 2, "BYE at the end");
}

#[test]
fn large_access_units_are_spread_over_a_few_milliseconds() {
    let mut stream = sample_stream(false);
    // The sample's keyframes are ~19 KB; a 4 KB limit makes them large.
    stream.burst_bytes = 4000;
    let t0 = Instant::now();
    let start = stream.play(t0, None, None);
    let mut log = Log::default();
    run(&mut stream, t0, t0 + Duration::from_secs(2), &mut log);
    let keyframe_ts = start.tracks[0].rtptime.unwrap();
    let keyframe: Vec<&Sent> = log
        .rtp
        .iter()
        .filter(|s| s.track == 0 && s.timestamp == keyframe_ts)
        .collect();
    let first = keyframe.first().expect("keyframe").at;
    let last = keyframe.last().expect("keyframe").at;
    let chunks = keyframe.windows(2).filter(|w| w[1].at > w[0].at).count() + 1;
    assert!(chunks >= 4, "{} packets in {chunks} chunks", keyframe.len());
    assert!(last - first >= BURST_GAP * (chunks as u32 - 1));
    assert!(
        last - first < Duration::from_millis(30),
        "{:?}",
        last - first
    );
    log.assert_consecutive(0);
    log.assert_consecutive(1);
    let video = frames(&log, 0).len();
    assert!(
        (59..=62).contains(&video),
        "{video} frames in 2 s: pace kept"
    );
}

#[test]
fn pause_mid_spread_still_finishes_the_access_unit() {
    let mut stream = sample_stream(false);
    stream.burst_bytes = 4000;
    let t0 = Instant::now();
    stream.play(t0, None, None);
    let mut log = Log::default();
    // Only the first chunk of the keyframe goes out at t0.
    feed(&mut stream);
    while let Some(transmit) = stream.poll_transmit(t0, SystemTime::now()) {
        if let Transmit::Rtp { .. } = transmit {
            break;
        }
    }
    stream.pause();
    run(&mut stream, t0, t0 + Duration::from_millis(50), &mut log);
    assert!(
        !log.rtp.is_empty(),
        "the rest of the keyframe went out while paused"
    );
    assert!(stream.poll_timeout().is_none(), "then nothing until PLAY");
    let last = log.rtp.last().expect("packets").seq;
    let resumed = stream.play(t0 + Duration::from_secs(1), None, None);
    assert_eq!(resumed.tracks[0].seq, last.wrapping_add(1));
}

#[test]
fn a_single_set_up_track_plays_alone() {
    let media = sample_media();
    let mut stream = Viewer::new(media.clone(), "test".into(), false);
    stream.set_up_track(sender(&media.tracks()[1], udp(6002)));
    let t0 = Instant::now();
    stream.play(t0, None, None);
    let mut log = Log::default();
    run(&mut stream, t0, t0 + Duration::from_secs(11), &mut log);
    assert!(log.rtp.iter().all(|s| s.track == 1));
    assert!((466..=472).contains(&frames(&log, 1).len()));
}

#[test]
fn teardown_sends_bye_then_finishes() {
    let mut stream = sample_stream(false);
    let t0 = Instant::now();
    stream.play(t0, None, None);
    let mut log = Log::default();
    run(&mut stream, t0, t0 + Duration::from_millis(300), &mut log);
    let sent = log.rtp.len();
    stream.teardown();
    run(
        &mut stream,
        t0 + Duration::from_millis(300),
        t0 + Duration::from_secs(2),
        &mut log,
    );
    assert_eq!(log.rtp.len(), sent, "no RTP after TEARDOWN");
    assert_eq!(log.byes(), 2);
    assert!(stream.is_finished());
    stream.teardown();
    assert!(stream.is_finished(), "TEARDOWN twice is harmless");
}

#[test]
fn looping_restarts_with_rising_timestamps() {
    let mut stream = sample_stream(true);
    let t0 = Instant::now();
    let start = stream.play(t0, None, None);
    let mut log = Log::default();
    run(&mut stream, t0, t0 + Duration::from_secs(21), &mut log);
    let video = frames(&log, 0);
    assert!(
        video.len() >= 600,
        "{} frames in 21 s of looping",
        video.len()
    );
    let mut offsets: Vec<u32> = video
        .iter()
        .map(|ts| ts.wrapping_sub(start.tracks[0].rtptime.unwrap()))
        .collect();
    offsets.sort_unstable();
    offsets.dedup();
    assert!(offsets.len() >= 600, "no timestamp reused across the loop");
    assert_eq!(log.byes(), 0, "no BYE while looping");
    let audio = frames(&log, 1);
    assert!(
        audio
            .windows(2)
            .all(|w| (1..=2048).contains(&w[1].wrapping_sub(w[0]))),
        "audio timestamps step forward by about one frame, across loops too"
    );
    let video_sent: Vec<Instant> = log
        .rtp
        .iter()
        .filter(|s| s.track == 0 && s.marker)
        .map(|s| s.at)
        .collect();
    // Across a loop the video pauses only for the time the audio track
    // runs past the video's end (the next pass starts after both).
    let video_info = &stream.media().unwrap().tracks()[0];
    let video_secs = video_info.duration as f64 / f64::from(video_info.timescale);
    let allowed = Duration::from_secs_f64(
        1.0 / 30.0 + (stream.media().unwrap().duration_secs() - video_secs) + 0.002,
    );
    let longest_gap = video_sent.windows(2).map(|w| w[1] - w[0]).max();
    assert!(
        longest_gap.is_some_and(|gap| gap <= allowed),
        "video keeps its pace across the loop: longest gap {longest_gap:?}, allowed {allowed:?}"
    );
}

#[test]
fn bye_leaves_after_the_last_unit_has_been_presented() {
    let mut stream = sample_stream(false);
    let t0 = Instant::now();
    stream.play(t0, Some(9.0), None);
    let mut log = Log::default();
    run(&mut stream, t0, t0 + Duration::from_secs(3), &mut log);
    let last_rtp = log.rtp.last().expect("packets").at;
    let byes: Vec<Instant> = log.rtcp.iter().filter(|r| r.bye).map(|r| r.at).collect();
    assert_eq!(byes.len(), 2);
    for bye in byes {
        // The last unit is a frame (33 ms) or the file's last AAC frame
        // (16 ms): BYE comes after it has been presented, not with its
        // packets.
        assert!(
            bye >= last_rtp + Duration::from_millis(10),
            "{:?}",
            bye - last_rtp
        );
        // ... and when the file's 10 s end, 1 s after the 9 s keyframe.
        let end = bye - t0;
        assert!(
            end >= Duration::from_millis(990) && end <= Duration::from_millis(1100),
            "{end:?}"
        );
    }
}

#[test]
fn bye_waits_for_the_rest_of_a_spread_last_unit() {
    // Video alone, so the last unit is a frame.
    let media = sample_media();
    let mut stream = Viewer::new(media.clone(), "test".into(), false);
    stream.set_up_track(sender(&media.tracks()[0], udp(6000)));
    // Every video frame spreads over several chunks.
    stream.burst_bytes = 300;
    let t0 = Instant::now();
    stream.play(t0, Some(9.9), None);
    let mut log = Log::default();
    run(&mut stream, t0, t0 + Duration::from_secs(2), &mut log);
    let last_rtp = log.rtp.last().expect("packets").at;
    let first_bye = log.rtcp.iter().find(|r| r.bye).expect("BYE").at;
    assert!(first_bye > last_rtp);
    log.assert_consecutive(0);
    // The last video frame's chunks keep their 1 ms pace while BYE waits.
    let last_frame = log.rtp.iter().rev().find(|s| s.track == 0).expect("video");
    let chunks: Vec<Instant> = log
        .rtp
        .iter()
        .filter(|s| s.track == 0 && s.timestamp == last_frame.timestamp)
        .map(|s| s.at)
        .collect();
    assert!(chunks.len() > 2, "{} chunks", chunks.len());
    assert!(
        chunks.windows(2).all(|w| w[1] - w[0] <= BURST_GAP),
        "chunks held back: {chunks:?}"
    );
}

/// NAL unit type of the first NAL an RTP payload carries (FU-A included).
fn first_nal_type(payload: &[u8]) -> u8 {
    match payload[0] & 0x1f {
        28 => payload[1] & 0x1f,
        nal => nal,
    }
}

#[test]
fn congested_viewer_skips_video_to_the_next_keyframe_and_keeps_audio() {
    let mut stream = sample_stream(false);
    let t0 = Instant::now();
    stream.play(t0, None, None);
    let mut log = Log::default();
    run(&mut stream, t0, t0 + Duration::from_millis(1500), &mut log);
    let before = log.rtp.len();
    let audio_before = frames(&log, 1).len();
    stream.set_congested(true);
    run(
        &mut stream,
        t0 + Duration::from_millis(1500),
        t0 + Duration::from_millis(1700),
        &mut log,
    );
    assert!(
        log.rtp[before..].iter().all(|s| s.track == 1),
        "no video while congested"
    );
    assert!(frames(&log, 1).len() > audio_before + 5, "audio goes on");
    stream.set_congested(false);
    let skipped_mid_gop = stream.stats()[0].1.units_skipped;
    assert!(skipped_mid_gop >= 5, "{skipped_mid_gop}");
    let resumed_from = log.rtp.len();
    run(
        &mut stream,
        t0 + Duration::from_millis(1700),
        t0 + Duration::from_millis(2400),
        &mut log,
    );
    // Video resumes only at the 2 s keyframe, parameter sets first.
    let resumed: Vec<&Sent> = log.rtp[resumed_from..]
        .iter()
        .filter(|s| s.track == 0)
        .collect();
    let first = resumed.first().expect("video after congestion");
    assert!(
        first.at >= t0 + Duration::from_millis(1900),
        "{:?}",
        first.at - t0
    );
    assert_eq!(first.first_nal, 7, "SPS first");
    assert!(stream.stats()[0].1.units_skipped > skipped_mid_gop);
    assert_eq!(stream.stats()[1].1.units_skipped, 0, "audio never skipped");
    // Skipped frames use no sequence numbers: no loss shows.
    log.assert_consecutive(0);
    log.assert_consecutive(1);
}

#[test]
fn a_dropped_video_unit_skips_to_the_next_keyframe() {
    let mut stream = sample_stream(false);
    let t0 = Instant::now();
    stream.play(t0, None, None);
    let mut log = Log::default();
    run(&mut stream, t0, t0 + Duration::from_millis(500), &mut log);
    stream.unit_dropped(0);
    let from = log.rtp.len();
    run(
        &mut stream,
        t0 + Duration::from_millis(500),
        t0 + Duration::from_millis(1100),
        &mut log,
    );
    let video: Vec<&Sent> = log.rtp[from..].iter().filter(|s| s.track == 0).collect();
    let first = video.first().expect("video resumes");
    assert_eq!(first.first_nal, 7, "resumes at the keyframe's SPS");
    assert!(first.at >= t0 + Duration::from_millis(900));
    assert!(stream.stats()[0].1.units_skipped >= 10);
    stream.unit_dropped(1);
    assert_eq!(
        stream.stats()[1].1.units_skipped,
        1,
        "audio counted, not skipped on"
    );
}

#[test]
fn receiver_reports_fill_the_track_stats() {
    let mut stream = sample_stream(false);
    let t0 = Instant::now();
    stream.play(t0, None, None);
    let mut log = Log::default();
    run(&mut stream, t0, t0 + Duration::from_secs(1), &mut log);
    let sr_wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let lsr = (rtcp::ntp_timestamp(sr_wall) >> 16) as u32;
    let block = ReportBlock {
        ssrc: stream_start(1).ssrc,
        fraction_lost: 64,
        cumulative_lost: 3,
        highest_seq: 0,
        jitter: 480,
        last_sr: lsr,
        // Held for 0.5 s (in 1/65536 s units).
        delay_since_last_sr: 32_768,
    };
    let arrival = sr_wall + Duration::from_millis(580);
    assert_eq!(stream.record_report(block, arrival), Some(1));
    let unknown = ReportBlock { ssrc: 42, ..block };
    assert_eq!(stream.record_report(unknown, arrival), None);
    let (track, stats) = stream.stats()[1];
    assert_eq!(track, 1);
    assert_eq!(stats.reports, 1);
    assert_eq!(stats.fraction_lost, 0.25);
    assert_eq!(stats.cumulative_lost, 3);
    assert_eq!(stats.jitter, 480);
    assert!((stats.jitter_ms - 10.0).abs() < 1e-9, "480 ticks at 48 kHz");
    let rtt = stats.round_trip.expect("LSR given");
    assert!(
        rtt >= Duration::from_millis(79) && rtt <= Duration::from_millis(81),
        "{rtt:?}"
    );
    let audio_packets = log.rtp.iter().filter(|s| s.track == 1).count() as u64;
    assert_eq!(stats.packets_sent, audio_packets);
    assert!(stats.bytes_sent > 10 * audio_packets);
    assert_eq!(stream.stats()[0].1.reports, 0);
}

#[test]
fn finished_only_once_torn_down_and_its_byes_are_out() {
    let mut stream = sample_stream(false);
    assert!(!stream.is_finished(), "a new viewer is not finished");
    assert!(!stream.is_playing());
    let t0 = Instant::now();
    stream.play(t0, None, None);
    assert!(stream.is_playing());
    let mut log = Log::default();
    run(&mut stream, t0, t0 + Duration::from_millis(100), &mut log);
    assert!(!stream.is_finished(), "still playing");
    stream.teardown();
    assert!(!stream.is_playing());
    assert!(!stream.is_finished(), "its BYEs are still to send");
    run(
        &mut stream,
        t0 + Duration::from_millis(100),
        t0 + Duration::from_millis(200),
        &mut log,
    );
    assert_eq!(log.byes(), 2);
    assert!(stream.is_finished());
}

#[test]
fn a_closed_viewer_keeps_its_first_end_reason() {
    let mut stream = sample_stream(false);
    assert_eq!(stream.end_reason(), None);
    stream.close(crate::stats::SessionEnd::Timeout);
    assert!(stream.is_finished());
    stream.close(crate::stats::SessionEnd::Shutdown);
    assert_eq!(stream.end_reason(), Some(crate::stats::SessionEnd::Timeout));
}

#[test]
fn teardown_before_play_finishes_without_bye() {
    let mut stream = sample_stream(false);
    stream.teardown();
    assert!(stream.is_finished(), "nothing was sent, so no BYE is owed");
    assert!(stream.poll_timeout().is_none());
    assert!(stream
        .poll_transmit(Instant::now(), SystemTime::now())
        .is_none());
}

/// A compound RTCP packet from the client: an SR (RFC 3550 §6.4.1) with
/// one reception report block, then an RR (§6.4.2) with another, as a
/// client that also sends would report.
fn client_rtcp(sr_block: ReportBlock, rr_block: ReportBlock) -> Vec<u8> {
    let mut out = Vec::new();
    SenderReport {
        ssrc: 0xc11e_0001,
        ntp: 0,
        rtp_timestamp: 0,
        packet_count: 0,
        octet_count: 0,
    }
    .write_to(&mut out);
    // RC = 1 and one more 24-byte block: 6 more 32-bit words.
    out[0] |= 1;
    sr_block.write_to(&mut out);
    let words = u16::from_be_bytes([out[2], out[3]]) + 6;
    out[2..4].copy_from_slice(&words.to_be_bytes());
    rtcp::write_receiver_report(0xc11e_0001, &[rr_block], &mut out);
    out
}

#[test]
fn rtcp_from_the_client_reaches_each_tracks_stats_and_keeps_it_alive() {
    let mut stream = sample_stream(false);
    let t0 = Instant::now();
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    assert_eq!(stream.last_heard(), None);
    assert!(
        !stream.handle_rtcp(&[0xde, 0xad, 0xbe, 0xef], t0, wall),
        "a NAT keepalive is not RTCP"
    );
    assert_eq!(stream.last_heard(), None, "junk is no sign of life");

    let block = |track: usize, fraction_lost: u8| ReportBlock {
        ssrc: stream_start(track).ssrc,
        fraction_lost,
        cumulative_lost: 1,
        highest_seq: 0,
        jitter: 90,
        last_sr: 0,
        delay_since_last_sr: 0,
    };
    let heard = t0 + Duration::from_secs(3);
    let packet = client_rtcp(block(0, 128), block(1, 64));
    assert!(stream.handle_rtcp(&packet, heard, wall));
    assert_eq!(stream.last_heard(), Some(heard));
    let stats = stream.stats();
    assert_eq!(stats[0].1.reports, 1, "block of the client's SR");
    assert_eq!(stats[0].1.fraction_lost, 0.5);
    assert_eq!(stats[1].1.reports, 1, "block of the client's RR");
    assert_eq!(stats[1].1.fraction_lost, 0.25);
    assert_eq!(stream.tracks()[1].last_report, Some(block(1, 64)));
}

#[test]
fn setup_again_changes_the_tracks_delivery() {
    let mut stream = sample_stream(false);
    let video = stream.media().unwrap().tracks()[0].clone();
    let interleaved = Delivery::Interleaved {
        rtp_channel: 0,
        rtcp_channel: 1,
    };
    stream.set_up_track(sender(&video, interleaved));
    assert_eq!(stream.tracks().len(), 2, "the same track, not a new one");
    assert_eq!(stream.tracks()[0].delivery, interleaved);
    assert_eq!(stream.tracks()[1].delivery, udp(6002));
    let t0 = Instant::now();
    stream.play(t0, None, None);
    feed(&mut stream);
    let Some(Transmit::Rtp {
        delivery, track, ..
    }) = stream.poll_transmit(t0, SystemTime::now())
    else {
        panic!("the keyframe is due at PLAY");
    };
    assert_eq!((delivery, track), (interleaved, 0));
}

#[test]
fn teardown_after_the_end_does_not_say_bye_twice() {
    let mut stream = sample_stream(false);
    let t0 = Instant::now();
    stream.play(t0, Some(9.5), None);
    let mut log = Log::default();
    run(&mut stream, t0, t0 + Duration::from_secs(2), &mut log);
    assert_eq!(log.byes(), 2, "BYE per track at the end of the stream");
    stream.teardown();
    assert!(stream.is_finished(), "every BYE is already out");
    run(
        &mut stream,
        t0 + Duration::from_secs(2),
        t0 + Duration::from_secs(3),
        &mut log,
    );
    assert_eq!(log.byes(), 2, "RFC 3550 §6.6: one BYE per source");
}

#[test]
fn video_dropped_twice_in_a_gop_resumes_at_the_next_keyframe() {
    let mut stream = sample_stream(false);
    let t0 = Instant::now();
    stream.play(t0, None, None);
    let mut log = Log::default();
    run(&mut stream, t0, t0 + Duration::from_millis(500), &mut log);
    stream.unit_dropped(0);
    run(
        &mut stream,
        t0 + Duration::from_millis(500),
        t0 + Duration::from_millis(600),
        &mut log,
    );
    stream.unit_dropped(0);
    let from = log.rtp.len();
    run(
        &mut stream,
        t0 + Duration::from_millis(600),
        t0 + Duration::from_millis(1500),
        &mut log,
    );
    let first = log.rtp[from..]
        .iter()
        .find(|s| s.track == 0)
        .expect("video resumes at the 1 s keyframe");
    assert_eq!(first.first_nal, 7, "SPS first");
    assert!(first.at >= t0 + Duration::from_millis(900));
    let resumed: Vec<&Sent> = log.rtp[from..]
        .iter()
        .filter(|s| s.track == 0 && s.marker && s.at > first.at)
        .collect();
    assert!(
        resumed.len() >= 10,
        "the frames after the keyframe follow it: {}",
        resumed.len()
    );
}

#[test]
fn a_live_joiner_gets_rtptime_from_its_first_unit_or_the_paths_clock() {
    let media = sample_media();
    let mut viewer = Viewer::live("/live/a".into(), "test".into(), 1 << 20);
    let start = StreamStart {
        timestamp_base: 0,
        ..stream_start(0)
    };
    viewer.set_up_track(TrackSender::new(
        media.tracks()[0].clone(),
        udp(6000),
        96,
        MTU,
        start,
    ));
    let now = Instant::now();
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let clock = crate::live::ClockMapping {
        wall,
        rtp_timestamp: 1_000,
    };
    // Nothing queued, no clock: RTP-Info cannot say.
    viewer.join_live(std::iter::empty(), &[None], wall);
    assert_eq!(viewer.play(now, None, None).tracks[0].rtptime, None);
    viewer.pause();
    // The path's clock, joined a second after its mapping: 90 000 ticks on.
    viewer.join_live(
        std::iter::empty(),
        &[Some(clock)],
        wall + Duration::from_secs(1),
    );
    assert_eq!(viewer.play(now, None, None).tracks[0].rtptime, Some(91_000));
    viewer.pause();
    // A queued unit's own timestamp wins.
    let mut writer = crate::codec::PayloadWriter::new();
    writer.push(true, 0, &[b"picture"]);
    let unit = Arc::new(crate::live::LiveUnit {
        track: 0,
        rtp_timestamp: 5_000,
        wall,
        keyframe: true,
        video: true,
        payloads: writer.finish(),
        received: now,
    });
    viewer.join_live(std::iter::once(&unit), &[Some(clock)], wall);
    assert_eq!(viewer.play(now, None, None).tracks[0].rtptime, Some(5_000));
}
