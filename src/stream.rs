//! One viewer's media timeline: which access unit is due when, with which
//! RTP timestamp, and when RTCP sender reports go out.
//!
//! Sans-IO: the caller passes the current `Instant` and wall-clock time and
//! drains [`Transmit`]s; it never sleeps here. Timing model (RFC 3550 §5.1,
//! §6.4.1):
//!
//! - *Stream time* is seconds of media played in this session; it never
//!   goes backwards, across PAUSE, seeks and loops.
//! - An access unit's RTP timestamp is its presentation time on that
//!   stream time, so B-frames keep their composition order.
//! - It is sent when the wall clock reaches its *decode* time on the same
//!   stream time (`anchor` + stream time), so decode order and pacing hold.
//! - A sender report maps the wall clock to the stream time the same way
//!   for every track, which is what lets clients line audio up with video.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::codec::Packetizer;
use crate::media::mp4::{Mp4Media, Mp4Reader};
use crate::media::{AccessUnit, TrackInfo};
use crate::rtcp::{self, ReportBlock, SenderReport};
use crate::rtp::{PacketBatch, RtpStreamState};
use crate::rtsp::transport::Delivery;

/// How often a sender report goes out per track (RFC 3550 §6.2 suggests
/// 5 s as the minimum interval).
pub const SENDER_REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// Most RTP bytes sent to one UDP viewer at once: a larger access unit (a
/// big keyframe) goes out in chunks [`BURST_GAP`] apart, so it does not
/// overflow the receiver's socket buffer (Linux defaults to ~208 KiB).
pub const BURST_BYTES: usize = 64 * 1024;

/// Pause between the chunks of a large access unit.
pub const BURST_GAP: Duration = Duration::from_millis(1);

/// How far ahead of the next send the file is read, in stream seconds:
/// more than any B-frame reorder delay, little enough to be cheap.
const READ_AHEAD_SECS: f64 = 0.25;

/// One set-up track of a session: its RTP state (RFC 3550 §5.1) and where
/// its packets go (RFC 2326 §12.39).
#[derive(Debug)]
pub struct TrackOutput {
    /// The track's description.
    pub info: TrackInfo,
    /// Where RTP/RTCP for this track is delivered.
    pub delivery: Delivery,
    /// Sequence number, SSRC and counters.
    pub rtp: RtpStreamState,
    /// Random RTP timestamp of stream time zero (RFC 3550 §5.1).
    pub timestamp_base: u32,
    /// The latest reception report the client sent about this track.
    pub last_report: Option<ReportBlock>,
    packetizer: Packetizer,
    next_sender_report: Option<Instant>,
}

impl TrackOutput {
    /// A track output with random SSRC, first sequence number and
    /// timestamp base.
    pub fn new(info: TrackInfo, delivery: Delivery, payload_type: u8, mtu: usize) -> Self {
        TrackOutput {
            packetizer: Packetizer::new(&info.codec, mtu),
            info,
            delivery,
            rtp: RtpStreamState::new_random(payload_type),
            timestamp_base: rand::random(),
            last_report: None,
            next_sender_report: None,
        }
    }

    /// RTP timestamp of `stream_secs` on this track's clock.
    fn rtp_timestamp(&self, stream_secs: f64) -> u32 {
        let ticks = (stream_secs * f64::from(self.info.codec.clock_rate())).round() as i64;
        self.timestamp_base.wrapping_add(ticks as u32)
    }
}

/// What the RTSP layer needs to answer PLAY (RFC 2326 §12.33 RTP-Info,
/// §12.29 Range).
#[derive(Debug, Clone, PartialEq)]
pub struct PlayStart {
    /// Normal play time where playback starts, in seconds.
    pub npt_start: f64,
    /// One entry per set-up track.
    pub tracks: Vec<TrackStart>,
}

/// One track's `RTP-Info` entry (RFC 2326 §12.33).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackStart {
    /// Index of the track in the file.
    pub track: usize,
    /// Sequence number of the first packet sent from `npt_start`.
    pub seq: u16,
    /// RTP timestamp that corresponds to `npt_start`.
    pub rtptime: u32,
}

/// Something to send now.
#[derive(Debug)]
pub enum Transmit<'a> {
    /// RTP packets of one access unit, to send as one batch: all of them,
    /// or over UDP a chunk of a large one.
    Rtp {
        /// Where to send.
        delivery: Delivery,
        /// The access unit's packets.
        batch: &'a mut PacketBatch,
        /// Which of them to send now (always all for interleaved delivery,
        /// where TCP paces itself).
        packets: Range<usize>,
    },
    /// A compound RTCP packet of one track.
    Rtcp {
        /// Where to send (its RTCP port or channel).
        delivery: Delivery,
        /// The packet.
        packet: &'a [u8],
    },
}

/// The mapping from a segment of the file to stream time.
#[derive(Debug, Clone, Copy)]
struct Segment {
    /// Stream time of `npt_start`.
    offset: f64,
    /// File presentation time where the segment starts.
    npt_start: f64,
}

/// An access unit read from the file with its times on the stream clock,
/// fixed when it is read so a later seek or loop cannot move it.
#[derive(Debug)]
struct Scheduled {
    au: AccessUnit,
    /// Stream time it is sent at.
    decode_at: f64,
    /// Stream time its RTP timestamp carries.
    present_at: f64,
    /// File presentation time, for the Range of a resumed PLAY.
    file_pts: f64,
}

/// The rest of a large access unit still to send.
#[derive(Debug, Clone, Copy)]
struct Spread {
    delivery: Delivery,
    /// Index in the batch of the next packet to send.
    next: usize,
    due: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ready,
    Playing,
    Ended,
    Closed,
}

/// The sending side of one RTSP session: pacing, RTP timestamps
/// (RFC 3550 §5.1), sender reports and BYE (§6.4.1, §6.6), PLAY/PAUSE
/// positions (RFC 2326 §10.5, §10.6).
#[derive(Debug)]
pub struct SessionStream {
    media: Arc<Mp4Media>,
    tracks: Vec<TrackOutput>,
    cname: String,
    loop_playback: bool,
    state: State,
    reader: Option<Mp4Reader>,
    /// Access units read ahead, in decode order. Normally one or two; at a
    /// loop the next pass's first units (whose decode times precede the
    /// presentation start) merge in before the old pass's last ones.
    queue: VecDeque<Scheduled>,
    /// Decode time of the last unit read in this pass, if any.
    last_read: Option<f64>,
    /// File time at which reading stops (a Range end).
    play_end: Option<f64>,
    segment: Segment,
    /// Wall instant of stream time zero; `None` before the first PLAY.
    anchor: Option<Instant>,
    /// Highest stream time reached by the end of any unit read so far.
    high_water: f64,
    batch: PacketBatch,
    /// Chunks of the batch still to send; the next unit waits for them.
    spread: Option<Spread>,
    /// [`BURST_BYTES`], lowered by tests.
    burst_bytes: usize,
    rtcp: Vec<u8>,
    /// Tracks whose BYE is still to be sent (RFC 3550 §6.6).
    bye_pending: Vec<usize>,
}

impl SessionStream {
    /// A stream of `media` with no track set up yet.
    pub fn new(media: Arc<Mp4Media>, cname: String, loop_playback: bool) -> Self {
        SessionStream {
            media,
            tracks: Vec::new(),
            cname,
            loop_playback,
            state: State::Ready,
            reader: None,
            queue: VecDeque::new(),
            last_read: None,
            play_end: None,
            segment: Segment {
                offset: 0.0,
                npt_start: 0.0,
            },
            anchor: None,
            high_water: 0.0,
            batch: PacketBatch::new(),
            spread: None,
            burst_bytes: BURST_BYTES,
            rtcp: Vec::with_capacity(128),
            bye_pending: Vec::new(),
        }
    }

    /// The media this stream plays.
    pub fn media(&self) -> &Arc<Mp4Media> {
        &self.media
    }

    /// The set-up tracks.
    pub fn tracks(&self) -> &[TrackOutput] {
        &self.tracks
    }

    /// Sets up `output.info.index`, replacing an earlier SETUP of the same
    /// track (RFC 2326 §10.4 allows changing the transport this way).
    pub fn set_up_track(&mut self, output: TrackOutput) {
        let index = output.info.index;
        match self.tracks.iter_mut().find(|t| t.info.index == index) {
            Some(existing) => {
                existing.delivery = output.delivery;
            }
            None => {
                self.tracks.push(output);
                self.tracks.sort_by_key(|t| t.info.index);
                // The reader reads only set-up tracks: the next PLAY opens
                // a new one.
                self.reader = None;
                self.queue.clear();
            }
        }
    }

    /// True while access units are being sent.
    pub fn is_playing(&self) -> bool {
        self.state == State::Playing
    }

    /// True once the stream is torn down and has nothing more to send.
    pub fn is_finished(&self) -> bool {
        self.state == State::Closed && self.bye_pending.is_empty()
    }

    /// Starts or resumes playback (RFC 2326 §10.5). `start` is the Range
    /// start in npt seconds; `None` resumes where PAUSE stopped, or starts
    /// at the beginning on the first PLAY and after the end. `end`, if
    /// any, is where the stream stops (the last units sent are those
    /// decoded before it).
    pub fn play(&mut self, now: Instant, start: Option<f64>, end: Option<f64>) -> PlayStart {
        self.play_end = end;
        let resume = start.is_none() && !self.queue.is_empty() && self.state != State::Ended;
        if !resume {
            self.seek(start.unwrap_or(0.0));
        }
        let next_decode = self.queue.front().map_or(self.high_water, |s| s.decode_at);
        self.anchor = Some(sub_secs(now, next_decode));
        if self.state != State::Closed {
            self.state = State::Playing;
            if self.queue.is_empty() && self.reader.is_none() {
                // Nothing left to play (a Range at the very end): say BYE.
                self.end_of_stream();
            }
        }
        // The first report of each track follows its first RTP packet
        // (RFC 3550 §6.4: reports are for active senders); GStreamer
        // ignores a report sent before any data and only syncs at the next.
        for track in &mut self.tracks {
            track.next_sender_report = None;
        }
        if resume {
            self.position()
        } else {
            self.play_start(self.segment.npt_start, self.segment.offset)
        }
    }

    /// Where the stream is: the next unit to send, its npt and the RTP
    /// timestamp and sequence number it will carry (RFC 2326 §12.33).
    pub fn position(&self) -> PlayStart {
        match self.queue.front() {
            Some(next) => self.play_start(next.file_pts, next.present_at),
            None => self.play_start(
                self.segment.npt_start + (self.high_water - self.segment.offset),
                self.high_water,
            ),
        }
    }

    fn play_start(&self, npt_start: f64, stream_start: f64) -> PlayStart {
        PlayStart {
            npt_start,
            tracks: self
                .tracks
                .iter()
                .map(|t| TrackStart {
                    track: t.info.index,
                    seq: t.rtp.next_seq,
                    rtptime: t.rtp_timestamp(stream_start),
                })
                .collect(),
        }
    }

    /// Stops sending, keeping the position (RFC 2326 §10.6).
    pub fn pause(&mut self) {
        if self.state == State::Playing {
            self.state = State::Ready;
        }
    }

    /// Ends the stream: BYE goes out for every track (RFC 3550 §6.6), then
    /// nothing more.
    pub fn teardown(&mut self) {
        if self.state != State::Closed {
            if self.state != State::Ended && self.anchor.is_some() {
                self.bye_pending = self.tracks.iter().map(|t| t.info.index).collect();
            }
            self.state = State::Closed;
        }
    }

    /// Records a reception report from the client (RFC 3550 §6.4.2) for
    /// the track whose SSRC it describes. Returns the track index.
    pub fn record_report(&mut self, block: ReportBlock) -> Option<usize> {
        let track = self.tracks.iter_mut().find(|t| t.rtp.ssrc == block.ssrc)?;
        track.last_report = Some(block);
        Some(track.info.index)
    }

    /// When [`poll_transmit`](Self::poll_transmit) next has something to
    /// send; `None` when nothing is scheduled.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.bye_pending.is_empty() {
            return self.anchor;
        }
        if let Some(spread) = self.spread.filter(|_| self.state != State::Closed) {
            return Some(spread.due);
        }
        if self.state != State::Playing {
            return None;
        }
        let anchor = self.anchor?;
        let next_au = self.queue.front().map(|s| add_secs(anchor, s.decode_at));
        let next_report = self
            .tracks
            .iter()
            .filter_map(|t| t.next_sender_report)
            .min();
        match (next_au, next_report) {
            (Some(a), Some(r)) => Some(a.min(r)),
            (a, r) => a.or(r),
        }
    }

    /// The next thing due at `now`, if any. Call until it returns `None`;
    /// each returned buffer is valid until the next call.
    pub fn poll_transmit(&mut self, now: Instant, wall: SystemTime) -> Option<Transmit<'_>> {
        if let Some(index) = self.bye_pending.pop() {
            return self.bye(index, now, wall);
        }
        // The rest of a spread access unit goes out even after PAUSE: its
        // packets are numbered, and RTP-Info of the next PLAY counts on it.
        if let Some(spread) = self.spread.filter(|_| self.state != State::Closed) {
            if spread.due > now {
                return None;
            }
            return Some(self.chunk(spread.delivery, spread.next, now));
        }
        if self.state != State::Playing {
            return None;
        }
        let anchor = self.anchor?;
        if let Some(pos) = self
            .tracks
            .iter()
            .position(|t| t.next_sender_report.is_some_and(|due| due <= now))
        {
            self.tracks[pos].next_sender_report = Some(now + SENDER_REPORT_INTERVAL);
            return self.sender_report(pos, now, wall, false);
        }
        loop {
            if add_secs(anchor, self.queue.front()?.decode_at) > now {
                return None;
            }
            let next = self.queue.pop_front()?;
            self.fill();
            let packetized = self
                .tracks
                .iter()
                .position(|t| t.info.index == next.au.track)
                .filter(|&pos| self.packetize(pos, &next, now));
            if self.queue.is_empty() && self.reader.is_none() {
                self.end_of_stream();
            }
            if let Some(pos) = packetized {
                return Some(self.chunk(self.tracks[pos].delivery, 0, now));
            }
        }
    }

    /// The batch's packets from `start` that go out now: all of them over
    /// TCP, at most [`BURST_BYTES`] over UDP with the rest due
    /// [`BURST_GAP`] later.
    fn chunk(&mut self, delivery: Delivery, start: usize, now: Instant) -> Transmit<'_> {
        let end = match delivery {
            Delivery::Udp { .. } => self.batch.chunk_end(start, self.burst_bytes),
            Delivery::Interleaved { .. } => self.batch.len(),
        };
        self.spread = (end < self.batch.len()).then_some(Spread {
            delivery,
            next: end,
            due: now + BURST_GAP,
        });
        Transmit::Rtp {
            delivery,
            batch: &mut self.batch,
            packets: start..end,
        }
    }

    /// Cuts one access unit into the batch; false (and a log line) if it is
    /// unusable, so a broken sample costs one frame, not the session.
    fn packetize(&mut self, pos: usize, next: &Scheduled, now: Instant) -> bool {
        let track = &mut self.tracks[pos];
        let timestamp = track.rtp_timestamp(next.present_at);
        self.batch.clear();
        if let Err(error) =
            track
                .packetizer
                .packetize(&next.au, timestamp, &mut track.rtp, &mut self.batch)
        {
            tracing::warn!(track = next.au.track, pts = next.au.pts, %error, "skipping access unit");
            return false;
        }
        track.next_sender_report.get_or_insert(now);
        true
    }

    fn sender_report(
        &mut self,
        pos: usize,
        now: Instant,
        wall: SystemTime,
        bye: bool,
    ) -> Option<Transmit<'_>> {
        let anchor = self.anchor?;
        let stream_now = signed_secs(now, anchor);
        let track = &self.tracks[pos];
        let report = SenderReport {
            ssrc: track.rtp.ssrc,
            ntp: rtcp::ntp_timestamp(wall),
            rtp_timestamp: track.rtp_timestamp(stream_now),
            packet_count: track.rtp.packet_count,
            octet_count: track.rtp.octet_count,
        };
        self.rtcp.clear();
        if bye {
            rtcp::write_bye(&report, &self.cname, "", &mut self.rtcp);
        } else {
            rtcp::write_sender_report(&report, &self.cname, &mut self.rtcp);
        }
        Some(Transmit::Rtcp {
            delivery: track.delivery,
            packet: &self.rtcp,
        })
    }

    fn bye(&mut self, index: usize, now: Instant, wall: SystemTime) -> Option<Transmit<'_>> {
        let pos = self.tracks.iter().position(|t| t.info.index == index)?;
        self.sender_report(pos, now, wall, true)
    }

    /// Drops what was read ahead, opens a reader at `npt` and maps it after
    /// everything read so far, so timestamps never go backwards.
    fn seek(&mut self, npt: f64) {
        self.queue.clear();
        self.open_pass(npt);
        self.fill();
    }

    fn open_pass(&mut self, npt: f64) {
        let tracks = &self.tracks;
        let reader = self
            .media
            .reader(npt)
            .only_tracks(|index| tracks.iter().any(|t| t.info.index == index));
        self.segment = Segment {
            offset: self.high_water,
            npt_start: reader.start_secs(),
        };
        self.reader = Some(reader);
        self.last_read = None;
    }

    /// Reads ahead until the last unit read is due [`READ_AHEAD_SECS`]
    /// after the queue's head. Within a pass the file is in decode order;
    /// the margin lets the next pass of a loop, whose first decode times
    /// precede its presentation start by the B-frame delay, be read before
    /// those are due. At end of file it loops (each pass placed after the
    /// last) or stops reading.
    fn fill(&mut self) {
        let mut looped = false;
        loop {
            let head = self.queue.front().map(|s| s.decode_at);
            if matches!((head, self.last_read), (Some(head), Some(last)) if last > head + READ_AHEAD_SECS)
            {
                return;
            }
            let Some(reader) = self.reader.as_mut() else {
                return;
            };
            match reader.next_access_unit() {
                Some(Ok(au)) => {
                    let decode = au.dts as f64 / self.timescale(au.track);
                    if self.play_end.is_some_and(|end| decode >= end) {
                        self.reader = None;
                    } else {
                        let scheduled = self.schedule(au);
                        self.last_read = Some(scheduled.decode_at);
                        let at = self
                            .queue
                            .partition_point(|s| s.decode_at <= scheduled.decode_at);
                        self.queue.insert(at, scheduled);
                    }
                }
                Some(Err(error)) => {
                    // One unreadable sample costs one unit, not the session.
                    tracing::warn!(%error, "media read failed; skipping the sample");
                }
                None if self.loop_playback && !looped => {
                    looped = true;
                    self.open_pass(0.0);
                }
                None => self.reader = None,
            }
        }
    }

    /// Places `au` on the stream clock of the current pass.
    fn schedule(&mut self, au: AccessUnit) -> Scheduled {
        let timescale = self.timescale(au.track);
        let to_stream =
            |ticks: i64| self.segment.offset + (ticks as f64 / timescale - self.segment.npt_start);
        let present_at = to_stream(au.pts);
        let decode_at = to_stream(au.dts);
        self.high_water = self
            .high_water
            .max(present_at + f64::from(au.duration) / timescale);
        Scheduled {
            file_pts: au.pts as f64 / timescale,
            decode_at,
            present_at,
            au,
        }
    }

    /// Ticks per second of a track's file times.
    fn timescale(&self, track: usize) -> f64 {
        let ticks = self
            .media
            .tracks()
            .get(track)
            .map(|t| t.timescale)
            .filter(|&ts| ts > 0)
            .unwrap_or(1);
        f64::from(ticks)
    }

    fn end_of_stream(&mut self) {
        self.reader = None;
        self.queue.clear();
        if self.state == State::Playing {
            self.bye_pending = self.tracks.iter().map(|t| t.info.index).collect();
            self.state = State::Ended;
        }
    }
}

/// `instant` moved by `secs` (either sign), saturating rather than
/// panicking: times come from files, which may be hostile.
fn add_secs(instant: Instant, secs: f64) -> Instant {
    let delta = Duration::try_from_secs_f64(secs.abs()).unwrap_or(Duration::MAX);
    let moved = if secs >= 0.0 {
        instant.checked_add(delta)
    } else {
        instant.checked_sub(delta)
    };
    moved.unwrap_or(instant)
}

fn sub_secs(instant: Instant, secs: f64) -> Instant {
    add_secs(instant, -secs)
}

fn signed_secs(a: Instant, b: Instant) -> f64 {
    if a >= b {
        (a - b).as_secs_f64()
    } else {
        -(b - a).as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::catalog::Catalog;
    use std::net::SocketAddr;

    const MTU: usize = 1400;

    fn udp(port: u16) -> Delivery {
        Delivery::Udp {
            rtp: SocketAddr::from(([127, 0, 0, 1], port)),
            rtcp: SocketAddr::from(([127, 0, 0, 1], port + 1)),
        }
    }

    fn sample_stream(loop_playback: bool) -> SessionStream {
        let media = Catalog::bundled_sample()
            .expect("sample")
            .resolve("/")
            .expect("mount");
        let mut stream = SessionStream::new(media.clone(), "test".into(), loop_playback);
        for info in media.tracks() {
            let port = 6000 + 2 * info.index as u16;
            stream.set_up_track(TrackOutput::new(
                info.clone(),
                udp(port),
                96 + info.index as u8,
                MTU,
            ));
        }
        stream
    }

    #[derive(Debug, Clone, Copy)]
    struct Sent {
        track: usize,
        seq: u16,
        timestamp: u32,
        marker: bool,
        at: Instant,
    }

    #[derive(Debug, Default)]
    struct Log {
        rtp: Vec<Sent>,
        /// (track, packet type, RTP timestamp of SR, at, sender's packet count)
        rtcp: Vec<(usize, u8, u32, Instant, u32)>,
        batches: usize,
    }

    fn track_of(delivery: Delivery) -> usize {
        match delivery {
            Delivery::Udp { rtp, .. } => usize::from((rtp.port() - 6000) / 2),
            Delivery::Interleaved { rtp_channel, .. } => usize::from(rtp_channel / 2),
        }
    }

    /// Drives the stream in 1 ms steps from `from` to `to`.
    fn run(stream: &mut SessionStream, from: Instant, to: Instant, log: &mut Log) {
        let mut now = from;
        while now <= to {
            while let Some(transmit) = stream.poll_transmit(now, SystemTime::now()) {
                match transmit {
                    Transmit::Rtp {
                        delivery,
                        batch,
                        packets,
                    } => {
                        log.batches += 1;
                        for packet in batch.packets_in(packets) {
                            assert!(packet.len() <= MTU);
                            log.rtp.push(Sent {
                                track: track_of(delivery),
                                seq: u16::from_be_bytes([packet[2], packet[3]]),
                                timestamp: u32::from_be_bytes([
                                    packet[4], packet[5], packet[6], packet[7],
                                ]),
                                marker: packet[1] & 0x80 != 0,
                                at: now,
                            });
                        }
                    }
                    Transmit::Rtcp { delivery, packet } => {
                        let rtp_ts =
                            u32::from_be_bytes([packet[16], packet[17], packet[18], packet[19]]);
                        let packet_count =
                            u32::from_be_bytes([packet[20], packet[21], packet[22], packet[23]]);
                        let types: Vec<u8> = rtcp::parse_compound(packet)
                            .expect("valid RTCP")
                            .iter()
                            .map(|p| match p {
                                rtcp::RtcpPacket::Bye { .. } => 203,
                                rtcp::RtcpPacket::SenderReport { .. } => 200,
                                _ => 0,
                            })
                            .collect();
                        log.rtcp.push((
                            track_of(delivery),
                            if types.contains(&203) {
                                203
                            } else {
                                types.first().copied().unwrap_or(0)
                            },
                            rtp_ts,
                            now,
                            packet_count,
                        ));
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
        let base = start.tracks[0].rtptime;
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
            let seqs: Vec<u16> = log
                .rtp
                .iter()
                .filter(|s| s.track == track)
                .map(|s| s.seq)
                .collect();
            assert_eq!(seqs[0], start.tracks[track].seq);
            assert!(seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)));
        }
        let last = log.rtp.last().expect("packets").at;
        let span = last - t0;
        assert!(
            span > Duration::from_millis(9800) && span < Duration::from_millis(10100),
            "{span:?}"
        );
        let byes: Vec<usize> = log
            .rtcp
            .iter()
            .filter(|r| r.1 == 203)
            .map(|r| r.0)
            .collect();
        assert_eq!(byes.len(), 2, "BYE per track at end of stream");
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
        let reports: Vec<_> = log.rtcp.iter().filter(|r| r.0 == 0 && r.1 == 200).collect();
        assert_eq!(reports.len(), 2, "an SR at PLAY and one 5 s later");
        assert_eq!(reports[0].3, t0);
        assert!(reports[0].4 > 0, "first SR follows the first RTP packet");
        assert_eq!(reports[1].3 - t0, SENDER_REPORT_INTERVAL);
        // The SR maps wall time to the stream clock: 5 s later, 450 000 ticks
        // later, as RTP timestamps advance with media time.
        let elapsed = reports[1].2.wrapping_sub(reports[0].2);
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
            .map(|ts| ts.wrapping_sub(first.tracks[0].rtptime))
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
            .map(|s| s.timestamp.wrapping_sub(first.tracks[0].rtptime))
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
            after[0].timestamp, seek.tracks[0].rtptime,
            "keyframe carries RTP-Info rtptime"
        );
        assert!(after
            .iter()
            .all(|s| s.timestamp.wrapping_sub(first.tracks[0].rtptime) > max_before));
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
        assert_eq!(
            log.rtcp.iter().filter(|r| r.1 == 203).count(),
            2,
            "BYE at the end"
        );
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
        let keyframe_ts = start.tracks[0].rtptime;
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
        for track in 0..2 {
            let seqs: Vec<u16> = log
                .rtp
                .iter()
                .filter(|s| s.track == track)
                .map(|s| s.seq)
                .collect();
            assert!(
                seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
                "track {track} in order"
            );
        }
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
        let media = Catalog::bundled_sample()
            .expect("sample")
            .resolve("/")
            .expect("mount");
        let mut stream = SessionStream::new(media.clone(), "test".into(), false);
        let audio = media.tracks()[1].clone();
        stream.set_up_track(TrackOutput::new(audio, udp(6002), 97, MTU));
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
        assert_eq!(log.rtcp.iter().filter(|r| r.1 == 203).count(), 2);
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
            .map(|ts| ts.wrapping_sub(start.tracks[0].rtptime))
            .collect();
        offsets.sort_unstable();
        offsets.dedup();
        assert!(offsets.len() >= 600, "no timestamp reused across the loop");
        assert!(!log.rtcp.iter().any(|r| r.1 == 203), "no BYE while looping");
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
        let video_info = &stream.media().tracks()[0];
        let video_secs = video_info.duration as f64 / f64::from(video_info.timescale);
        let allowed = Duration::from_secs_f64(
            1.0 / 30.0 + (stream.media().duration_secs() - video_secs) + 0.002,
        );
        let longest_gap = video_sent.windows(2).map(|w| w[1] - w[0]).max();
        assert!(
            longest_gap.is_some_and(|gap| gap <= allowed),
            "video keeps its pace across the loop: longest gap {longest_gap:?}, allowed {allowed:?}"
        );
    }
}
