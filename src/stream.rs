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
mod tests;
