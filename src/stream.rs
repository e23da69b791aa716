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

/// One set-up track of a session: its RTP state and where its packets go.
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
    /// Per set-up track: track index, first sequence number, RTP timestamp
    /// of `npt_start`.
    pub tracks: Vec<(usize, u16, u32)>,
}

/// Something to send now.
#[derive(Debug)]
pub enum Transmit<'a> {
    /// The RTP packets of one access unit of `track`, to send as one batch.
    Rtp {
        /// Where to send.
        delivery: Delivery,
        /// The packets.
        batch: &'a mut PacketBatch,
    },
    /// A compound RTCP packet for `track`.
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ready,
    Playing,
    Ended,
    Closed,
}

/// The sending side of one RTSP session.
#[derive(Debug)]
pub struct SessionStream {
    media: Arc<Mp4Media>,
    tracks: Vec<TrackOutput>,
    cname: String,
    loop_playback: bool,
    state: State,
    reader: Option<Mp4Reader>,
    pending: Option<AccessUnit>,
    segment: Segment,
    /// Wall instant of stream time zero; `None` before the first PLAY.
    anchor: Option<Instant>,
    /// Highest stream time reached by any sent access unit's end.
    high_water: f64,
    batch: PacketBatch,
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
            pending: None,
            segment: Segment {
                offset: 0.0,
                npt_start: 0.0,
            },
            anchor: None,
            high_water: 0.0,
            batch: PacketBatch::new(),
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
    /// at the beginning on the first PLAY.
    pub fn play(&mut self, now: Instant, start: Option<f64>) -> PlayStart {
        let resume = start.is_none() && self.reader.is_some() && self.state != State::Ended;
        if !resume {
            self.seek(start.unwrap_or(0.0));
        }
        let npt_start = if resume {
            self.segment.npt_start + (self.high_water - self.segment.offset).max(0.0)
        } else {
            self.segment.npt_start
        };
        let next_decode = self
            .pending
            .as_ref()
            .map(|au| self.stream_secs(au.dts, au.track))
            .unwrap_or(self.high_water);
        self.anchor = Some(sub_secs(now, next_decode));
        self.state = State::Playing;
        let stream_start = self.segment.offset + (npt_start - self.segment.npt_start);
        for track in &mut self.tracks {
            track.next_sender_report = Some(now);
        }
        PlayStart {
            npt_start,
            tracks: self
                .tracks
                .iter()
                .map(|t| (t.info.index, t.rtp.next_seq, t.rtp_timestamp(stream_start)))
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
        if self.state != State::Playing {
            return None;
        }
        let anchor = self.anchor?;
        let next_au = self
            .pending
            .as_ref()
            .map(|au| add_secs(anchor, self.stream_secs(au.dts, au.track)));
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
            let au = self.pending.as_ref()?;
            if add_secs(anchor, self.stream_secs(au.dts, au.track)) > now {
                return None;
            }
            let au = self.pending.take()?;
            self.advance();
            if let Some(pos) = self.tracks.iter().position(|t| t.info.index == au.track) {
                return self.packetize(pos, au);
            }
        }
    }

    fn packetize(&mut self, pos: usize, au: AccessUnit) -> Option<Transmit<'_>> {
        let pts_secs = self.stream_secs(au.pts, au.track);
        let end_secs = pts_secs + f64::from(au.duration) / f64::from(self.timescale(au.track));
        self.high_water = self.high_water.max(end_secs);
        let track = &mut self.tracks[pos];
        let timestamp = track.rtp_timestamp(pts_secs);
        self.batch.clear();
        if let Err(error) =
            track
                .packetizer
                .packetize(&au, timestamp, &mut track.rtp, &mut self.batch)
        {
            tracing::warn!(track = au.track, pts = au.pts, %error, "skipping access unit");
            return None;
        }
        Some(Transmit::Rtp {
            delivery: track.delivery,
            batch: &mut self.batch,
        })
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

    /// Opens a reader at `npt` and maps it after everything sent so far.
    fn seek(&mut self, npt: f64) {
        let reader = self.media.reader(npt);
        self.segment = Segment {
            offset: self.high_water,
            npt_start: reader.start_secs(),
        };
        self.reader = Some(reader);
        self.advance();
    }

    /// Loads the next access unit of a set-up track into `pending`; at end
    /// of file loops or ends the stream.
    fn advance(&mut self) {
        let mut looped = false;
        loop {
            let Some(reader) = self.reader.as_mut() else {
                return;
            };
            match reader.next_access_unit() {
                Some(Ok(au)) => {
                    if self.tracks.iter().any(|t| t.info.index == au.track) {
                        self.pending = Some(au);
                        return;
                    }
                }
                Some(Err(error)) => {
                    tracing::warn!(%error, "media read failed; ending stream");
                    self.end_of_stream();
                    return;
                }
                None if self.loop_playback && !looped => {
                    looped = true;
                    self.seek_for_loop();
                }
                None => {
                    self.end_of_stream();
                    return;
                }
            }
        }
    }

    fn seek_for_loop(&mut self) {
        let reader = self.media.reader(0.0);
        self.segment = Segment {
            offset: self.high_water,
            npt_start: reader.start_secs(),
        };
        self.reader = Some(reader);
    }

    fn end_of_stream(&mut self) {
        self.reader = None;
        self.pending = None;
        if self.state == State::Playing {
            self.bye_pending = self.tracks.iter().map(|t| t.info.index).collect();
            self.state = State::Ended;
        }
    }

    fn timescale(&self, track: usize) -> u32 {
        self.media
            .tracks()
            .get(track)
            .map(|t| t.timescale)
            .filter(|&ts| ts > 0)
            .unwrap_or(1)
    }

    /// Stream time of a file time value of `track`.
    fn stream_secs(&self, ticks: i64, track: usize) -> f64 {
        let file_secs = ticks as f64 / f64::from(self.timescale(track));
        self.segment.offset + (file_secs - self.segment.npt_start)
    }
}

fn add_secs(instant: Instant, secs: f64) -> Instant {
    if secs >= 0.0 {
        instant + Duration::from_secs_f64(secs)
    } else {
        sub_secs(instant, -secs)
    }
}

fn sub_secs(instant: Instant, secs: f64) -> Instant {
    if secs < 0.0 {
        return add_secs(instant, -secs);
    }
    let delta = Duration::from_secs_f64(secs);
    instant.checked_sub(delta).unwrap_or(instant)
}

fn signed_secs(a: Instant, b: Instant) -> f64 {
    if a >= b {
        (a - b).as_secs_f64()
    } else {
        -(b - a).as_secs_f64()
    }
}
