//! The receiving side of a publisher (RTSP RECORD): per track, its RTP put
//! back in order and checked for loss ([`RtpReceiver`]), depacketized to
//! access units ([`Depacketizer`]) for the path's stream; its sender
//! reports turned into clock mappings; receiver reports for it every few
//! seconds (RFC 3550 §6.4.2).
//!
//! Sans-IO: datagrams and `now` in, units, clock mappings and RTCP bytes
//! out; the I/O layer routes packets here by source address or channel.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use super::{ClockMapping, SourceUnit};
use crate::codec::depay::{Depacketizer, DepayError};
use crate::rtcp::{self, parse_compound, RtcpPacket};
use crate::rtp::{PacketOutcome, ReceiverConfig, ReceiverStats, RtpReceiver};
use crate::sdp::announce::AnnouncedTrack;

/// How often receiver reports go to the publisher (RFC 3550 §6.2 suggests
/// 5 s as the minimum interval).
pub const RECEIVER_REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// Counters of one published track, as a plain copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestStats {
    /// What its RTP receiver counted (received, lost, late, foreign SSRC…).
    pub receiver: ReceiverStats,
    /// Access units rebuilt.
    pub units: u64,
    /// Of those, units with data known to be missing.
    pub damaged_units: u64,
    /// Packets the depacketizer refused.
    pub depacketizer_errors: u64,
    /// Packets with a payload type other than the announced one.
    pub wrong_payload_type: u64,
}

#[derive(Debug)]
struct IngestTrack {
    payload_type: u8,
    clock_rate: u32,
    receiver: RtpReceiver,
    depacketizer: Depacketizer,
    stats: IngestStats,
}

/// See the module docs.
#[derive(Debug)]
pub struct Publisher {
    tracks: Vec<IngestTrack>,
    /// SSRC of our receiver reports (RFC 3550 §6.4.2).
    ssrc: u32,
    cname: String,
    /// Our wall clock minus the publisher's NTP clock, from its first
    /// sender report: its mappings are moved onto our clock so viewers'
    /// sender reports agree with their arrival times, while the tracks
    /// keep their relation to each other (lip sync).
    clock_offset: Option<(SystemTime, SystemTime)>,
    next_report: Option<Instant>,
    next_report_track: usize,
    last_heard: Option<Instant>,
    rtcp: Vec<u8>,
}

impl Publisher {
    /// A receiver of `tracks` (their `info.index` fields 0, 1, … in
    /// order), reporting with SSRC `ssrc` and CNAME `cname`.
    ///
    /// Errors: a track whose fmtp its depacketizer cannot take.
    pub fn new(tracks: &[AnnouncedTrack], ssrc: u32, cname: String) -> Result<Self, DepayError> {
        let tracks = tracks
            .iter()
            .map(|track| {
                let clock_rate = track.info.codec.clock_rate();
                Ok(IngestTrack {
                    payload_type: track.payload_type,
                    clock_rate,
                    receiver: RtpReceiver::new(ReceiverConfig::new(clock_rate)),
                    depacketizer: Depacketizer::new(&track.info.codec, track.fmtp.as_deref())?,
                    stats: IngestStats::default(),
                })
            })
            .collect::<Result<_, DepayError>>()?;
        Ok(Publisher {
            tracks,
            ssrc,
            cname,
            clock_offset: None,
            next_report: None,
            next_report_track: 0,
            last_heard: None,
            rtcp: Vec::with_capacity(128),
        })
    }

    /// Takes one RTP datagram of `track` that arrived at `now`. Returns
    /// whether it was valid RTP of that track (anything else, a stranger's
    /// or junk, is dropped and counted, and does not keep the publisher
    /// alive).
    pub fn handle_rtp(&mut self, track: usize, datagram: &Bytes, now: Instant) -> bool {
        let Some(ingest) = self.tracks.get_mut(track) else {
            return false;
        };
        let outcome = match ingest.receiver.receive(datagram, now) {
            Ok(outcome) => outcome,
            Err(_) => return false,
        };
        match outcome {
            PacketOutcome::ForeignSsrc | PacketOutcome::OutOfRange => false,
            _ => {
                self.last_heard = Some(now);
                self.next_report
                    .get_or_insert(now + RECEIVER_REPORT_INTERVAL);
                true
            }
        }
    }

    /// Takes one RTCP datagram of `track` that arrived at `now`/`wall`.
    /// Returns the track's clock mapping when it held a sender report of
    /// the track's source (RFC 3550 §6.4.1), moved onto our wall clock.
    pub fn handle_rtcp(
        &mut self,
        track: usize,
        datagram: &[u8],
        now: Instant,
        wall: SystemTime,
    ) -> Option<ClockMapping> {
        let ingest = self.tracks.get_mut(track)?;
        let packets = parse_compound(datagram).ok()?;
        self.last_heard = Some(now);
        let mut mapping = None;
        for packet in packets {
            if let RtcpPacket::SenderReport { report, .. } = packet {
                if ingest.receiver.handle_sender_report(&report, now) {
                    let theirs = rtcp::system_time_of(report.ntp);
                    let (ours_at, theirs_at) = *self.clock_offset.get_or_insert((wall, theirs));
                    let on_our_clock = match theirs.duration_since(theirs_at) {
                        Ok(later) => ours_at.checked_add(later),
                        Err(earlier) => ours_at.checked_sub(earlier.duration()),
                    };
                    mapping = on_our_clock.map(|wall| ClockMapping {
                        wall,
                        rtp_timestamp: report.rtp_timestamp,
                    });
                }
            }
        }
        mapping
    }

    /// The next access unit rebuilt by `now`, of any track. Call until it
    /// returns `None` after each datagram and at [`poll_timeout`].
    ///
    /// [`poll_timeout`]: Self::poll_timeout
    pub fn poll_unit(&mut self, now: Instant) -> Option<SourceUnit> {
        for (index, ingest) in self.tracks.iter_mut().enumerate() {
            loop {
                if let Some(unit) = ingest.depacketizer.pull() {
                    ingest.stats.units += 1;
                    if unit.damaged {
                        ingest.stats.damaged_units += 1;
                    }
                    return Some(SourceUnit {
                        track: index,
                        rtp_timestamp: unit.rtp_timestamp,
                        keyframe: unit.keyframe,
                        data: unit.data,
                    });
                }
                let Some(released) = ingest.receiver.pop(now) else {
                    break;
                };
                if released.packet.payload_type != ingest.payload_type {
                    ingest.stats.wrong_payload_type += 1;
                    continue;
                }
                if ingest.depacketizer.push(released.packet.into()).is_err() {
                    ingest.stats.depacketizer_errors += 1;
                }
            }
        }
        None
    }

    /// When [`poll_unit`](Self::poll_unit) or
    /// [`poll_report`](Self::poll_report) next has something without a new
    /// datagram: a held packet's reorder wait ending, or the next report.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.tracks
            .iter()
            .filter_map(|t| t.receiver.poll_timeout())
            .chain(self.next_report)
            .min()
    }

    /// A receiver report due at `now`, as (track, compound RTCP packet:
    /// RR with the track's reception block, then SDES CNAME), one track
    /// per call; `None` when none is due.
    pub fn poll_report(&mut self, now: Instant) -> Option<(usize, &[u8])> {
        let count = self.tracks.len();
        // Each round visits every track once: a track with nothing to
        // report must not hand its turn to one already reported.
        while self.next_report.is_some_and(|due| due <= now) {
            let track = self.next_report_track;
            self.next_report_track = (track + 1) % count;
            if self.next_report_track == 0 {
                self.next_report = Some(now + RECEIVER_REPORT_INTERVAL);
            }
            if let Some(block) = self.tracks[track].receiver.report_block(now) {
                self.rtcp.clear();
                rtcp::write_receiver_report(self.ssrc, &[block], &mut self.rtcp);
                rtcp::write_sdes_cname(self.ssrc, &self.cname, &mut self.rtcp);
                return Some((track, &self.rtcp));
            }
        }
        None
    }

    /// When the publisher last sent valid RTP or RTCP.
    pub fn last_heard(&self) -> Option<Instant> {
        self.last_heard
    }

    /// Per track: its counters.
    pub fn stats(&self) -> Vec<IngestStats> {
        self.tracks
            .iter()
            .map(|t| IngestStats {
                receiver: t.receiver.stats(),
                ..t.stats
            })
            .collect()
    }

    /// The RTP clock rate of `track`, in Hz.
    pub fn clock_rate(&self, track: usize) -> Option<u32> {
        self.tracks.get(track).map(|t| t.clock_rate)
    }
}

#[cfg(test)]
mod tests {
    // Tests take one real `Instant` as their base; every other time is
    // built from it.
    #![allow(clippy::disallowed_methods)]

    use super::*;
    use crate::codec::aac::AacPacketizer;
    use crate::codec::h264::H264Packetizer;
    use crate::codec::{wire_packets, Packetizer, PayloadWriter};
    use crate::media::AccessUnit;
    use crate::rtcp::{ntp_timestamp, write_sender_report, SenderReport};
    use crate::rtp::RtpStreamState;
    use crate::sdp::announce::parse_announcement;

    const OUR_SSRC: u32 = 0x5eed_0001;
    const VIDEO_SSRC: u32 = 0x1111_1111;
    const AUDIO_SSRC: u32 = 0x2222_2222;
    const MTU: usize = 1400;

    /// What FFmpeg announces for H.264 (pt 96) and 48 kHz AAC-hbr (pt 97).
    fn tracks() -> Vec<AnnouncedTrack> {
        let sdp = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
            m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
            a=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z2QADazZQUH7ARAAAAMAEAAAAwMg8UKZYA==,aOvjyyLA\r\n\
            a=control:streamid=0\r\n\
            m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/48000/2\r\n\
            a=fmtp:97 profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1190\r\n\
            a=control:streamid=1\r\n";
        parse_announcement(sdp.as_bytes()).expect("SDP").tracks
    }

    fn publisher() -> Publisher {
        Publisher::new(&tracks(), OUR_SSRC, "rtpcast@test".into()).expect("publisher")
    }

    /// An AVCC sample (4-byte lengths) of NAL units of `sizes` bytes with
    /// header `nal_header`, each filled with a pattern of `seed`.
    fn sample(nal_header: u8, sizes: &[usize], seed: u8) -> Bytes {
        let mut data = Vec::new();
        for (n, &size) in sizes.iter().enumerate() {
            data.extend_from_slice(&(size as u32).to_be_bytes());
            data.push(nal_header);
            data.extend((1..size).map(|i| (i as u8).wrapping_mul(seed).wrapping_add(n as u8)));
        }
        data.into()
    }

    /// A source's unit of `track`.
    fn unit(track: usize, rtp_timestamp: u32, keyframe: bool, data: Bytes) -> SourceUnit {
        SourceUnit {
            track,
            rtp_timestamp,
            keyframe,
            data,
        }
    }

    /// Ten pictures at 25 fps (IDR with its parameter sets first and at
    /// the sixth; some larger than a packet, some of two slices) from RTP
    /// time `start`.
    fn pictures(start: u32) -> Vec<SourceUnit> {
        (0..10u32)
            .map(|n| {
                let timestamp = start.wrapping_add(3600 * n);
                if n % 5 == 0 {
                    let mut data = sample(0x67, &[20], 1).to_vec();
                    data.extend_from_slice(&sample(0x68, &[5], 2));
                    data.extend_from_slice(&sample(0x65, &[4000 + n as usize], 3));
                    unit(0, timestamp, true, data.into())
                } else {
                    let sizes = [100 + n as usize, 2000 + 37 * n as usize];
                    unit(
                        0,
                        timestamp,
                        false,
                        sample(0x41, &sizes[..1 + n as usize % 2], n as u8),
                    )
                }
            })
            .collect()
    }

    /// Ten AAC frames of 1024 samples from RTP time `start`, one larger
    /// than a packet.
    fn frames(start: u32) -> Vec<SourceUnit> {
        (0..10u32)
            .map(|n| {
                let len = if n == 4 { 3000 } else { 200 + 10 * n as usize };
                let data: Vec<u8> = (0..len).map(|i| (i as u8) ^ (n as u8)).collect();
                unit(1, start.wrapping_add(1024 * n), true, data.into())
            })
            .collect()
    }

    /// The RTP datagrams of `units` as a publisher would send them, each
    /// unit cut by the crate's own packetizer (no parameter sets added).
    fn datagrams(units: &[SourceUnit], payload_type: u8, ssrc: u32, first_seq: u16) -> Vec<Bytes> {
        let mut packetizer = match units[0].track {
            0 => Packetizer::H264(H264Packetizer::new(MTU, 4, Vec::new(), Vec::new())),
            _ => Packetizer::Aac(AacPacketizer::new(MTU)),
        };
        let mut writer = PayloadWriter::new();
        let mut stream = RtpStreamState::new(payload_type, ssrc, first_seq);
        units
            .iter()
            .flat_map(|u| {
                let au = AccessUnit {
                    track: u.track,
                    dts: 0,
                    pts: 0,
                    duration: 0,
                    keyframe: u.keyframe,
                    data: u.data.clone(),
                };
                let payloads = packetizer.packetize(&au, &mut writer).expect("packetize");
                wire_packets(&payloads, &mut stream, u.rtp_timestamp)
            })
            .map(Bytes::from)
            .collect()
    }

    /// Feeds `packets` (track, datagram) one per millisecond from `base`,
    /// draining units as they come, then once more 1 s later.
    fn feed(
        publisher: &mut Publisher,
        packets: &[(usize, Bytes)],
        base: Instant,
    ) -> Vec<SourceUnit> {
        let mut units = Vec::new();
        let mut now = base;
        for (track, datagram) in packets {
            assert!(publisher.handle_rtp(*track, datagram, now), "packet taken");
            units.extend(std::iter::from_fn(|| publisher.poll_unit(now)));
            now += Duration::from_millis(1);
        }
        let later = now + Duration::from_secs(1);
        units.extend(std::iter::from_fn(|| publisher.poll_unit(later)));
        units
    }

    /// Panics unless `got` are `sent`, saying where they differ without
    /// printing every byte.
    fn assert_same_units(got: &[SourceUnit], sent: &[SourceUnit]) {
        let summary = |units: &[SourceUnit]| -> Vec<(u32, bool, usize)> {
            units
                .iter()
                .map(|u| (u.rtp_timestamp, u.keyframe, u.data.len()))
                .collect()
        };
        assert_eq!(summary(got), summary(sent));
        for (got, sent) in got.iter().zip(sent) {
            assert!(got == sent, "unit at {} differs", sent.rtp_timestamp);
        }
    }

    fn of_track(units: &[SourceUnit], track: usize) -> Vec<SourceUnit> {
        units.iter().filter(|u| u.track == track).cloned().collect()
    }

    #[test]
    fn units_survive_packetizing_reordering_and_duplicates() {
        let video_in = pictures(u32::MAX - 10_000);
        let audio_in = frames(7_000);
        let video = datagrams(&video_in, 96, VIDEO_SSRC, 65_530);
        let audio = datagrams(&audio_in, 97, AUDIO_SSRC, 100);
        assert!(video.len() > 20 && audio.len() > 10, "fragments cut");
        // Tracks interleaved; some neighbours swapped, one packet twice.
        let mut packets: Vec<(usize, Bytes)> = Vec::new();
        let mut audio = audio.into_iter();
        for (n, datagram) in video.into_iter().enumerate() {
            packets.push((0, datagram));
            if n % 2 == 0 {
                packets.extend(audio.next().map(|a| (1, a)));
            }
        }
        packets.extend(audio.map(|a| (1, a)));
        // v0 a0 v1 v2 a1 v3 v4 a2 v5 v6 a3 v7 v8 a4 v9 v10 …
        for swap in [2, 8, 14, 20] {
            assert_eq!(packets[swap].0, packets[swap + 1].0, "within a track");
            packets.swap(swap, swap + 1);
        }
        // a1 arrives after a2.
        let audio_1 = packets.remove(4);
        assert_eq!(audio_1.0, 1);
        packets.insert(7, audio_1);
        packets.insert(12, packets[10].clone());
        let mut publisher = publisher();
        let base = Instant::now();
        let units = feed(&mut publisher, &packets, base);
        assert_same_units(&of_track(&units, 0), &video_in);
        assert_same_units(&of_track(&units, 1), &audio_in);
        let stats = publisher.stats();
        assert_eq!(stats[0].units + stats[1].units, 20);
        assert_eq!(stats[0].damaged_units + stats[1].damaged_units, 0);
        assert_eq!(
            stats[0].receiver.cumulative_lost + stats[1].receiver.cumulative_lost,
            -1
        );
        assert_eq!(
            stats[0].receiver.duplicates + stats[1].receiver.duplicates,
            1
        );
        assert_eq!(
            publisher.last_heard(),
            Some(base + Duration::from_millis(packets.len() as u64 - 1))
        );
        assert_eq!(publisher.clock_rate(0), Some(90_000));
        assert_eq!(publisher.clock_rate(1), Some(48_000));
        assert_eq!(publisher.clock_rate(2), None);
    }

    #[test]
    fn a_lost_packet_damages_its_unit_and_is_counted() {
        let video_in = pictures(0);
        let mut video = datagrams(&video_in, 96, VIDEO_SSRC, 1);
        // Picture 1 is two slices, the second in FU-A fragments: lose one.
        let picture_1: Vec<usize> = (0..video.len())
            .filter(|&i| u32::from_be_bytes(video[i][4..8].try_into().unwrap()) == 3600)
            .collect();
        assert!(picture_1.len() >= 3, "a small slice then fragments");
        video.remove(picture_1[2]);
        let packets: Vec<_> = video.into_iter().map(|d| (0, d)).collect();
        let mut publisher = publisher();
        let units = feed(&mut publisher, &packets, Instant::now());
        let damaged = units.iter().find(|u| u.rtp_timestamp == 3600);
        if let Some(damaged) = damaged {
            assert!(
                video_in[1].data.starts_with(&damaged.data)
                    && damaged.data.len() < video_in[1].data.len(),
                "only the whole first slice is left"
            );
        }
        for (sent, got) in video_in
            .iter()
            .filter(|u| u.rtp_timestamp != 3600)
            .zip(units.iter().filter(|u| u.rtp_timestamp != 3600))
        {
            assert_eq!(
                (sent.rtp_timestamp, &sent.data),
                (got.rtp_timestamp, &got.data)
            );
        }
        assert_eq!(units.len(), 9 + usize::from(damaged.is_some()));
        let stats = publisher.stats()[0];
        assert_eq!(stats.receiver.cumulative_lost, 1);
        assert_eq!(stats.receiver.skipped, 1);
        assert!(stats.damaged_units >= 1, "{stats:?}");
    }

    #[test]
    fn strangers_and_wrong_payload_types_are_counted_not_taken() {
        let video = datagrams(&pictures(0), 96, VIDEO_SSRC, 1);
        let mut publisher = publisher();
        let base = Instant::now();
        assert!(!publisher.handle_rtp(0, &Bytes::from_static(b"junk"), base));
        assert!(!publisher.handle_rtp(5, &video[0], base), "no such track");
        assert_eq!(publisher.last_heard(), None);
        assert_eq!(
            publisher.poll_timeout(),
            None,
            "nothing held, no report due"
        );
        assert!(publisher.handle_rtp(0, &video[0], base));
        let foreign = datagrams(&pictures(0), 96, 0xdead_beef, 500);
        let later = base + Duration::from_millis(100);
        assert!(!publisher.handle_rtp(0, &foreign[0], later));
        assert_eq!(
            publisher.last_heard(),
            Some(base),
            "a stranger keeps nobody alive"
        );
        let wrong_type = datagrams(&pictures(0), 100, VIDEO_SSRC, 2);
        assert!(publisher.handle_rtp(0, &wrong_type[0], later));
        // NAL unit type 30 is reserved (RFC 6184 §5.2): the depacketizer
        // refuses it.
        let mut reserved = RtpStreamState::new(96, VIDEO_SSRC, 3)
            .next_header(7200, true, 2)
            .to_vec();
        reserved.extend_from_slice(&[0x1e, 0x00]);
        assert!(publisher.handle_rtp(0, &Bytes::from(reserved), later));
        let units: Vec<_> = std::iter::from_fn(|| publisher.poll_unit(later)).collect();
        assert!(units.is_empty(), "{units:?}");
        let stats = publisher.stats()[0];
        assert_eq!(stats.wrong_payload_type, 1);
        assert_eq!(stats.depacketizer_errors, 1);
        assert_eq!(stats.receiver.foreign_ssrc, 1);
        assert_eq!(stats.receiver.malformed, 1);
        assert_eq!(stats.units, 0);
    }

    fn sender_report(ssrc: u32, ntp: SystemTime, rtp_timestamp: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let report = SenderReport {
            ssrc,
            ntp: ntp_timestamp(ntp),
            rtp_timestamp,
            packet_count: 10,
            octet_count: 1000,
        };
        write_sender_report(&report, "publisher", &mut out);
        out
    }

    #[test]
    fn sender_reports_map_onto_our_clock_keeping_the_tracks_apart() {
        let mut publisher = publisher();
        let base = Instant::now();
        let theirs = SystemTime::UNIX_EPOCH + Duration::from_secs(3_000_000_000);
        let ours = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let early = sender_report(VIDEO_SSRC, theirs, 90_000);
        assert_eq!(
            publisher.handle_rtcp(0, &early, base, ours),
            None,
            "a report before any RTP names no known source"
        );
        let video = datagrams(&pictures(0), 96, VIDEO_SSRC, 1);
        let audio = datagrams(&frames(0), 97, AUDIO_SSRC, 1);
        assert!(publisher.handle_rtp(0, &video[0], base));
        assert!(publisher.handle_rtp(1, &audio[0], base));
        let mapping = publisher
            .handle_rtcp(0, &early, base, ours)
            .expect("mapping");
        assert_eq!(
            mapping,
            ClockMapping {
                wall: ours,
                rtp_timestamp: 90_000
            }
        );
        // Audio's report: 250 ms later by their clock, arriving 400 ms
        // later by ours; it keeps their 250 ms.
        let audio_report = sender_report(AUDIO_SSRC, theirs + Duration::from_millis(250), 48_000);
        let mapping = publisher
            .handle_rtcp(1, &audio_report, base, ours + Duration::from_millis(400))
            .expect("mapping");
        assert_eq!(mapping.rtp_timestamp, 48_000);
        let offset = mapping.wall.duration_since(ours).expect("later");
        assert!(
            offset.abs_diff(Duration::from_millis(250)) < Duration::from_micros(1),
            "{offset:?}"
        );
        // A report of their earlier time maps before our first.
        let earlier = sender_report(VIDEO_SSRC, theirs - Duration::from_secs(2), 0);
        let mapping = publisher
            .handle_rtcp(0, &earlier, base, ours)
            .expect("mapping");
        let back = ours.duration_since(mapping.wall).expect("earlier");
        assert!(
            back.abs_diff(Duration::from_secs(2)) < Duration::from_micros(1),
            "{back:?}"
        );
        // Another source's report, or on the wrong track, maps nothing.
        let stranger = sender_report(0xdead_beef, theirs, 0);
        assert_eq!(publisher.handle_rtcp(0, &stranger, base, ours), None);
        assert_eq!(publisher.handle_rtcp(1, &early, base, ours), None);
        assert_eq!(publisher.handle_rtcp(0, b"not rtcp", base, ours), None);
        assert_eq!(publisher.handle_rtcp(7, &early, base, ours), None);
    }

    /// The (reporter SSRC, reported SSRC) of a receiver report compound,
    /// checking an SDES follows.
    fn report_of(compound: &[u8]) -> (u32, u32) {
        let packets = rtcp::parse_compound(compound).expect("RTCP");
        let [RtcpPacket::ReceiverReport { ssrc, blocks }, RtcpPacket::SourceDescription] =
            &packets[..]
        else {
            panic!("RR then SDES: {packets:?}");
        };
        assert_eq!(blocks.len(), 1);
        (*ssrc, blocks[0].ssrc)
    }

    #[test]
    fn receiver_reports_go_every_interval_for_each_track() {
        let mut publisher = publisher();
        let base = Instant::now();
        assert_eq!(publisher.poll_report(base + RECEIVER_REPORT_INTERVAL), None);
        let video = datagrams(&pictures(0), 96, VIDEO_SSRC, 1);
        let audio = datagrams(&frames(0), 97, AUDIO_SSRC, 1);
        assert!(publisher.handle_rtp(0, &video[0], base));
        assert_eq!(
            publisher.poll_timeout(),
            Some(base),
            "the packet is due at once"
        );
        while publisher.poll_unit(base).is_some() {}
        let due = base + RECEIVER_REPORT_INTERVAL;
        assert_eq!(publisher.poll_timeout(), Some(due));
        assert_eq!(publisher.poll_report(due - Duration::from_millis(1)), None);
        // Audio has sent nothing yet: only video is reported, once.
        let (track, compound) = publisher.poll_report(due).expect("report due");
        assert_eq!((track, report_of(compound)), (0, (OUR_SSRC, VIDEO_SSRC)));
        assert_eq!(
            publisher.poll_report(due),
            None,
            "one report per track per interval"
        );
        assert!(publisher.handle_rtp(1, &audio[0], due));
        while publisher.poll_unit(due).is_some() {}
        let next = due + RECEIVER_REPORT_INTERVAL;
        assert_eq!(publisher.poll_timeout(), Some(next));
        assert_eq!(publisher.poll_report(next - Duration::from_millis(1)), None);
        let mut reports = Vec::new();
        while let Some((track, compound)) = publisher.poll_report(next) {
            reports.push((track, report_of(compound)));
        }
        assert_eq!(
            reports,
            [(0, (OUR_SSRC, VIDEO_SSRC)), (1, (OUR_SSRC, AUDIO_SSRC))]
        );
        assert_eq!(
            publisher.poll_timeout(),
            Some(next + RECEIVER_REPORT_INTERVAL)
        );
    }

    #[test]
    fn the_timeout_covers_packets_held_for_reordering() {
        let video = datagrams(&pictures(0), 96, VIDEO_SSRC, 1);
        let mut publisher = publisher();
        let base = Instant::now();
        assert!(publisher.handle_rtp(0, &video[0], base));
        while publisher.poll_unit(base).is_some() {}
        let held_at = base + Duration::from_millis(10);
        assert!(publisher.handle_rtp(0, &video[2], held_at), "behind a gap");
        let wait = ReceiverConfig::new(90_000).max_reorder_delay;
        assert_eq!(publisher.poll_timeout(), Some(held_at + wait));
        let before: Vec<_> =
            std::iter::from_fn(|| publisher.poll_unit(held_at + wait - Duration::from_millis(1)))
                .collect();
        assert!(before.is_empty());
        assert_eq!(publisher.stats()[0].receiver.skipped, 0, "still waiting");
        while publisher.poll_unit(held_at + wait).is_some() {}
        assert_eq!(
            publisher.stats()[0].receiver.skipped,
            1,
            "given up at the timeout"
        );
        assert_eq!(
            publisher.poll_timeout(),
            Some(base + RECEIVER_REPORT_INTERVAL)
        );
    }
}
