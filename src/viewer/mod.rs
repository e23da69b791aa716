//! One viewer of a file: its timeline ([`FilePlayout`]) driving its
//! track senders ([`TrackSender`]): which access unit is due when, with
//! which RTP timestamp, and when sender reports and BYE go out.
//!
//! Sans-IO: the caller passes the current `Instant` and wall-clock time,
//! reads the samples the playout asks for, and drains [`Transmit`]s; it
//! never sleeps here. Timing model (RFC 3550 §5.1, §6.4.1):
//!
//! - *Stream time* is seconds of media played in this session; it never
//!   goes backwards, across PAUSE, seeks and loops.
//! - An access unit's RTP timestamp is its presentation time on that
//!   stream time, so B-frames keep their composition order.
//! - It is sent when the wall clock reaches its *decode* time on the same
//!   stream time (`anchor` + stream time), so decode order and pacing hold.
//! - A sender report maps the wall clock to the stream time the same way
//!   for every track, which is what lets clients line audio up with video.
//! - BYE (§6.6) leaves only once the last unit's packets have all gone and
//!   its presentation has ended: clients stop reading at BYE.

mod live_feed;
pub mod sender;

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use crate::live::{ClockMapping, LiveUnit};
use crate::media::mp4::MediaError;
use crate::media::mp4::Mp4Media;
use crate::media::SampleRef;
use crate::rtcp::{self, ReportBlock, RtcpPacket};
use crate::rtp::{Delivery, PacketBatch};
use crate::source::playout::FilePlayout;
use crate::stats::{PlayState, SessionEnd, TrackStats, TransportKind};
pub use live_feed::DEFAULT_LIVE_QUEUE_BYTES;
use live_feed::{LiveFeed, Offered};
pub use sender::{StreamStart, TrackSender};

/// How often a sender report goes out per track (RFC 3550 §6.2 suggests
/// 5 s as the minimum interval).
pub const SENDER_REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// Most RTP bytes sent to one UDP viewer at once: a larger access unit (a
/// big keyframe) goes out in chunks [`BURST_GAP`] apart, so it does not
/// overflow the receiver's socket buffer (Linux defaults to ~208 KiB).
pub const BURST_BYTES: usize = 64 * 1024;

/// Pause between the chunks of a large access unit.
pub const BURST_GAP: Duration = Duration::from_millis(1);

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
    /// RTP timestamp that corresponds to `npt_start`; `None` for a live
    /// track with nothing queued and no clock yet (RTP-Info then omits
    /// it).
    pub rtptime: Option<u32>,
}

/// Something to send now.
#[derive(Debug)]
pub enum Transmit<'a> {
    /// RTP packets of one access unit, to send as one batch: all of them,
    /// or over UDP a chunk of a large one.
    Rtp {
        /// Where to send.
        delivery: Delivery,
        /// Index of the track in the file.
        track: usize,
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
        /// True for the BYE that ends the track: the one packet a
        /// congested connection must still carry.
        bye: bool,
    },
}

/// The rest of a large access unit still to send.
#[derive(Debug, Clone, Copy)]
struct Spread {
    delivery: Delivery,
    track: usize,
    /// Index in the batch of the next packet to send.
    next: usize,
    due: Instant,
}

/// Where a viewer's access units come from.
#[derive(Debug)]
enum Feed {
    /// Its own timeline over a file.
    File(FilePlayout),
    /// A live path's units, shared with its other viewers.
    Live(LiveFeed),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ready,
    Playing,
    /// Everything was sent; BYE follows at `bye_due`.
    Ended,
    Closed,
}

/// The sending side of one RTSP session: pacing, RTP timestamps
/// (RFC 3550 §5.1), sender reports and BYE (§6.4.1, §6.6), PLAY/PAUSE
/// positions (RFC 2326 §10.5, §10.6).
#[derive(Debug)]
pub struct Viewer {
    feed: Feed,
    tracks: Vec<TrackSender>,
    cname: String,
    state: State,
    /// Wall instant of stream time zero; `None` before the first PLAY.
    anchor: Option<Instant>,
    batch: PacketBatch,
    /// Chunks of the batch still to send; the next unit waits for them.
    spread: Option<Spread>,
    /// [`BURST_BYTES`], lowered by tests.
    burst_bytes: usize,
    rtcp: Vec<u8>,
    /// Tracks whose BYE is still to be sent (RFC 3550 §6.6), and when.
    bye_pending: Vec<usize>,
    bye_due: Option<Instant>,
    /// The connection carrying interleaved media cannot take more video
    /// now (told by the I/O layer).
    congested: bool,
    /// Video tracks skipping frames until their next keyframe.
    skipping: Vec<usize>,
    /// When the viewer's last valid RTCP packet arrived.
    last_heard: Option<Instant>,
    /// Live viewers over UDP: start of the current [`BURST_GAP`] window
    /// and the bytes sent in it, so a joiner's GOP cache goes out at most
    /// [`BURST_BYTES`] per window.
    burst: Option<(Instant, usize)>,
    /// Why the session was closed, once it has been.
    end: Option<SessionEnd>,
}

impl Viewer {
    /// A viewer of `media` with no track set up yet; `cname` is the RTCP
    /// CNAME (RFC 3550 §6.5.1).
    pub fn new(media: Arc<Mp4Media>, cname: String, loop_playback: bool) -> Self {
        Self::with_feed(Feed::File(FilePlayout::new(media, loop_playback)), cname)
    }

    /// A viewer of the live path at URL path `path`, with no track set up
    /// yet, queueing at most `max_queue_bytes` of units it has not sent
    /// (see [`DEFAULT_LIVE_QUEUE_BYTES`]). The I/O layer hands it the
    /// path's units: [`join_live`](Self::join_live) on PLAY, then
    /// [`push_live`](Self::push_live).
    pub fn live(path: String, cname: String, max_queue_bytes: usize) -> Self {
        Self::with_feed(Feed::Live(LiveFeed::new(path, max_queue_bytes)), cname)
    }

    fn with_feed(feed: Feed, cname: String) -> Self {
        Viewer {
            feed,
            tracks: Vec::new(),
            cname,
            state: State::Ready,
            anchor: None,
            batch: PacketBatch::new(),
            spread: None,
            burst_bytes: BURST_BYTES,
            rtcp: Vec::with_capacity(128),
            bye_pending: Vec::new(),
            bye_due: None,
            congested: false,
            skipping: Vec::new(),
            last_heard: None,
            burst: None,
            end: None,
        }
    }

    /// The file this viewer plays; `None` for a live viewer.
    pub fn media(&self) -> Option<&Arc<Mp4Media>> {
        match &self.feed {
            Feed::File(playout) => Some(playout.media()),
            Feed::Live(_) => None,
        }
    }

    /// The URL path of the live path this viewer watches; `None` for a
    /// file.
    pub fn live_path(&self) -> Option<&str> {
        match &self.feed {
            Feed::File(_) => None,
            Feed::Live(feed) => Some(&feed.path),
        }
    }

    /// The set-up tracks.
    pub fn tracks(&self) -> &[TrackSender] {
        &self.tracks
    }

    /// Per set-up track: its index and its counters.
    pub fn stats(&self) -> Vec<(usize, TrackStats)> {
        self.tracks
            .iter()
            .map(|t| (t.info.index, t.stats()))
            .collect()
    }

    /// The codec name of each set-up track, in the order of
    /// [`stats`](Self::stats).
    pub fn codecs(&self) -> Vec<&'static str> {
        self.tracks.iter().map(|t| t.info.codec.name()).collect()
    }

    /// How its media travels: that of its first set-up track (RTSP
    /// aggregates use one transport kind); `None` before any SETUP.
    pub fn transport(&self) -> Option<TransportKind> {
        self.tracks.first().map(|t| TransportKind::of(&t.delivery))
    }

    /// Where its sending stands.
    pub fn play_state(&self) -> PlayState {
        match self.state {
            State::Ready => PlayState::Ready,
            State::Playing => PlayState::Playing,
            State::Ended => PlayState::Ended,
            State::Closed => PlayState::Closing,
        }
    }

    /// Sets up `sender.info.index`, replacing the delivery of an earlier
    /// SETUP of the same track (RFC 2326 §10.4 allows changing the
    /// transport this way).
    pub fn set_up_track(&mut self, sender: TrackSender) {
        let index = sender.info.index;
        match self.tracks.iter_mut().find(|t| t.info.index == index) {
            Some(existing) => existing.delivery = sender.delivery,
            None => {
                self.tracks.push(sender);
                self.tracks.sort_by_key(|t| t.info.index);
                if let Feed::File(playout) = &mut self.feed {
                    playout.add_track(index);
                }
            }
        }
    }

    /// True while access units are being sent.
    pub fn is_playing(&self) -> bool {
        self.state == State::Playing
    }

    /// True once the viewer is torn down and has nothing more to send.
    pub fn is_finished(&self) -> bool {
        self.state == State::Closed && self.bye_pending.is_empty()
    }

    /// Starts or resumes playback (RFC 2326 §10.5). `start` is the Range
    /// start in npt seconds; `None` resumes where PAUSE stopped, or starts
    /// at the beginning on the first PLAY and after the end. `end`, if
    /// any, is where the stream stops (the last units sent are those
    /// decoded before it).
    ///
    /// A live viewer ignores `start` and `end` and plays what it was given
    /// by [`join_live`](Self::join_live) just before.
    pub fn play(&mut self, now: Instant, start: Option<f64>, end: Option<f64>) -> PlayStart {
        let playout = match &mut self.feed {
            Feed::File(playout) => playout,
            Feed::Live(feed) => {
                // Stream time is wall time since the first PLAY: sender
                // reports of live tracks map from the units' own clocks.
                self.anchor.get_or_insert(now);
                if self.state != State::Closed {
                    self.state = State::Playing;
                    self.bye_pending.clear();
                    self.bye_due = None;
                    if feed.ended {
                        self.end_of_stream();
                    }
                }
                for track in &mut self.tracks {
                    track.next_sender_report = None;
                }
                return self.position();
            }
        };
        playout.set_end(end);
        let resume =
            start.is_none() && playout.front().is_some() && !matches!(self.state, State::Ended);
        if !resume {
            playout.seek(start.unwrap_or(0.0));
        }
        let next_decode = playout
            .front()
            .map_or(playout.high_water(), |s| s.decode_at);
        let has_more = playout.has_more();
        self.anchor = Some(sub_secs(now, next_decode));
        if self.state != State::Closed {
            self.state = State::Playing;
            self.bye_pending.clear();
            self.bye_due = None;
            if !has_more {
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
        match (&self.feed, resume) {
            (Feed::File(playout), false) => {
                let (offset, npt_start) = playout.pass_start();
                self.play_start(npt_start, offset)
            }
            _ => self.position(),
        }
    }

    /// Where the stream is: the next unit to send, its npt and the RTP
    /// timestamp and sequence number it will carry (RFC 2326 §12.33).
    /// A live viewer's position is npt 0 and, per track, the first unit
    /// queued for it.
    pub fn position(&self) -> PlayStart {
        let playout = match &self.feed {
            Feed::File(playout) => playout,
            Feed::Live(feed) => {
                return PlayStart {
                    npt_start: 0.0,
                    tracks: self
                        .tracks
                        .iter()
                        .map(|t| TrackStart {
                            track: t.info.index,
                            seq: t.rtp.next_seq,
                            rtptime: feed
                                .first_of(t.info.index)
                                .map(|unit| t.live_timestamp(unit))
                                .or_else(|| t.live_timestamp_at(feed.joined_at?)),
                        })
                        .collect(),
                }
            }
        };
        match playout.front() {
            Some(next) => self.play_start(next.file_pts, next.present_at),
            None => {
                let high_water = playout.high_water();
                self.play_start(playout.npt_at(high_water), high_water)
            }
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
                    rtptime: Some(t.rtp_timestamp(stream_start)),
                })
                .collect(),
        }
    }

    /// Stops sending, keeping the position (RFC 2326 §10.6).
    ///
    /// A live viewer drops what it has queued: PLAY joins the live path
    /// again at its latest keyframe.
    pub fn pause(&mut self) {
        if self.state == State::Playing {
            self.state = State::Ready;
        }
        if let Feed::Live(feed) = &mut self.feed {
            feed.clear();
        }
    }

    /// Starts a live viewer at `units`, the path's GOP cache (see
    /// [`LiveStream::gop_cache`](crate::live::stream::LiveStream::gop_cache)),
    /// replacing anything queued; call before [`play`](Self::play). Units
    /// beyond the queue's byte limit are left out. `clocks` are the path's
    /// per-track clock mappings ([`LiveStream::clocks`]) and `wall` the
    /// time of the join: a track with nothing queued yet still gets an
    /// RTP-Info `rtptime` from them (clients such as retina insist on
    /// one). Does nothing for a file viewer.
    ///
    /// [`LiveStream::clocks`]: crate::live::stream::LiveStream::clocks
    pub fn join_live<'a>(
        &mut self,
        units: impl Iterator<Item = &'a Arc<LiveUnit>>,
        clocks: &[Option<ClockMapping>],
        wall: SystemTime,
    ) {
        let Feed::Live(feed) = &mut self.feed else {
            return;
        };
        feed.clear();
        feed.ended = false;
        feed.joined_at = Some(wall);
        for track in &mut self.tracks {
            if let Some(Some(clock)) = clocks.get(track.info.index) {
                track.adopt_live_clock(*clock);
            }
        }
        self.skipping.clear();
        for unit in units {
            if feed.offer(unit.clone()) == Offered::Overflow {
                break;
            }
        }
    }

    /// Hands a live viewer the path's next unit. While it is not playing
    /// the unit is ignored; past its queue's byte limit it is dropped and
    /// counted, and a video track then skips to its next keyframe, as
    /// later pictures would reference the lost one. Returns whether the
    /// unit was queued.
    pub fn push_live(&mut self, unit: &Arc<LiveUnit>) -> bool {
        let Feed::Live(feed) = &mut self.feed else {
            return false;
        };
        if self.state != State::Playing {
            return false;
        }
        if feed.offer(unit.clone()) == Offered::Queued {
            return true;
        }
        self.unit_dropped(unit.track);
        false
    }

    /// Tells a live viewer its source has gone (publisher left, upstream
    /// lost): what is queued still goes out, then BYE (RFC 3550 §6.6).
    pub fn live_source_ended(&mut self) {
        if let Feed::Live(feed) = &mut self.feed {
            feed.ended = true;
            if feed.front().is_none() {
                self.end_of_stream();
            }
        }
    }

    /// Ends the viewer at the client's request: BYE goes out for every
    /// track at once (RFC 3550 §6.6), then nothing more.
    pub fn teardown(&mut self) {
        if self.state != State::Closed {
            let bye_sent = self.state == State::Ended && self.bye_pending.is_empty();
            if !bye_sent && self.anchor.is_some() {
                self.bye_pending = self.tracks.iter().map(|t| t.info.index).collect();
                // Due at once: the anchor is in the past.
                self.bye_due = self.anchor;
            }
            self.state = State::Closed;
        }
    }

    /// Ends the viewer like [`teardown`](Self::teardown), for `reason`,
    /// which [`end_reason`](Self::end_reason) tells from then on (the
    /// first reason given stays).
    pub fn close(&mut self, reason: SessionEnd) {
        self.end.get_or_insert(reason);
        self.teardown();
    }

    /// Why the viewer was [`close`](Self::close)d; `None` while open.
    pub fn end_reason(&self) -> Option<SessionEnd> {
        self.end
    }

    /// Takes in a compound RTCP packet (RFC 3550 §6.1) from the client,
    /// arrived at `now`/`wall`: its reception reports about our tracks
    /// (§6.4.2) go to their senders' stats, and it counts as a sign of
    /// life. Anything that is not valid RTCP (NAT-opening dummies, junk)
    /// is ignored; returns whether the packet was valid.
    pub fn handle_rtcp(&mut self, packet: &[u8], now: Instant, wall: SystemTime) -> bool {
        let Ok(packets) = rtcp::parse_compound(packet) else {
            return false;
        };
        self.last_heard = Some(now);
        for packet in packets {
            let blocks = match packet {
                RtcpPacket::ReceiverReport { blocks, .. } => blocks,
                RtcpPacket::SenderReport { blocks, .. } => blocks,
                _ => continue,
            };
            for block in blocks {
                if let Some(track) = self.record_report(block, wall) {
                    tracing::debug!(
                        cname = %self.cname,
                        track,
                        lost_percent = block.fraction_lost_percent(),
                        cumulative_lost = block.cumulative_lost,
                        jitter = block.jitter,
                        round_trip = ?block.round_trip_time(rtcp::ntp_timestamp(wall)),
                        "receiver report"
                    );
                }
            }
        }
        true
    }

    /// When the client's last valid RTCP packet arrived, if any: RTCP
    /// keeps a session alive like a request does (RFC 2326 §12.37).
    pub fn last_heard(&self) -> Option<Instant> {
        self.last_heard
    }

    /// Takes in a reception report (RFC 3550 §6.4.2) that arrived at
    /// `wall`, for the track whose SSRC it describes. Returns the track
    /// index, `None` for a report about no track of ours.
    pub fn record_report(&mut self, block: ReportBlock, wall: SystemTime) -> Option<usize> {
        let track = self.tracks.iter_mut().find(|t| t.rtp.ssrc == block.ssrc)?;
        track.record_report(block, wall);
        Some(track.info.index)
    }

    /// Tells the viewer whether its interleaved connection can take more
    /// video now. While it cannot, video access units are skipped, and
    /// after it can again, video resumes at the next keyframe; audio is
    /// never skipped here.
    pub fn set_congested(&mut self, congested: bool) {
        self.congested = congested;
    }

    /// Tells the viewer that the access unit it just gave of `track` could
    /// not be handed to the connection: that video track skips to its
    /// next keyframe, as later frames would reference the lost one.
    pub fn unit_dropped(&mut self, track: usize) {
        let Some(sender) = self.tracks.iter_mut().find(|t| t.info.index == track) else {
            return;
        };
        sender.count_skipped();
        if sender.info.codec.is_video() && !self.skipping.contains(&track) {
            self.skipping.push(track);
        }
    }

    /// The samples whose bytes the I/O layer should read now, as (read
    /// id, where); hand each back with [`deliver`](Self::deliver).
    /// Live viewers read nothing.
    pub fn missing_reads(&self) -> impl Iterator<Item = (u64, SampleRef)> + '_ {
        match &self.feed {
            Feed::File(playout) => Some(playout.missing_reads()),
            Feed::Live(_) => None,
        }
        .into_iter()
        .flatten()
    }

    /// Hands in the bytes of read `read_id` (or why they could not be
    /// read: that unit is then skipped).
    pub fn deliver(&mut self, read_id: u64, result: Result<Bytes, MediaError>) {
        if let Feed::File(playout) = &mut self.feed {
            playout.deliver(read_id, result);
        }
    }

    /// When [`poll_transmit`](Self::poll_transmit) next has something to
    /// send; `None` when nothing is scheduled.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let spread = self
            .spread
            .filter(|_| self.state != State::Closed)
            .map(|s| s.due);
        if !self.bye_pending.is_empty() {
            // The rest of a spread last unit first, BYE after it.
            return spread.or(self.bye_due);
        }
        if spread.is_some() {
            return spread;
        }
        if self.state != State::Playing {
            return None;
        }
        let anchor = self.anchor?;
        let next_au = match &self.feed {
            Feed::File(playout) => playout.front().map(|s| add_secs(anchor, s.decode_at)),
            // Queued live units are due at once, unless a joiner's burst
            // window is full.
            Feed::Live(feed) => feed.front().map(|_| match self.burst {
                Some((start, bytes)) if bytes >= self.burst_bytes => start + BURST_GAP,
                _ => anchor,
            }),
        };
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
    /// each returned buffer is valid until the next call. A unit whose
    /// bytes are not read yet waits for them.
    pub fn poll_transmit(&mut self, now: Instant, wall: SystemTime) -> Option<Transmit<'_>> {
        // The rest of a spread access unit goes out even after PAUSE: its
        // packets are numbered, and RTP-Info of the next PLAY counts on it.
        if let Some(spread) = self.spread.filter(|_| self.state != State::Closed) {
            if spread.due > now {
                return None;
            }
            return Some(self.chunk(spread.delivery, spread.track, spread.next, now));
        }
        if self.bye_due.is_some_and(|due| due <= now) {
            if let Some(index) = self.bye_pending.pop() {
                return self.sender_report(index, now, wall, true);
            }
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
            let index = self.tracks[pos].info.index;
            return self.sender_report(index, now, wall, false);
        }
        if matches!(self.feed, Feed::Live(_)) {
            return self.next_live_unit(now);
        }
        loop {
            let Feed::File(playout) = &mut self.feed else {
                return None;
            };
            let front = playout.front()?;
            if add_secs(anchor, front.decode_at) > now || front.data.is_none() {
                return None;
            }
            let next = playout.pop()?;
            if !playout.has_more() {
                self.end_of_stream();
            }
            if let Some(pos) = self.sendable(next.sample.track, next.sample.keyframe) {
                let track = &mut self.tracks[pos];
                if let Some(au) = next.access_unit() {
                    match track.packetize(&au, next.present_at, &mut self.batch) {
                        Ok(()) => {
                            track.next_sender_report.get_or_insert(now);
                            let (delivery, index) = (track.delivery, track.info.index);
                            return Some(self.chunk(delivery, index, 0, now));
                        }
                        Err(error) => {
                            // A broken sample costs one frame, not the
                            // session.
                            tracing::warn!(track = au.track, pts = au.pts, %error, "skipping access unit");
                        }
                    }
                }
            }
        }
    }

    /// The next queued live unit's packets, if one is due: all are, but a
    /// joiner's GOP cache goes out [`BURST_BYTES`] per [`BURST_GAP`] over
    /// UDP.
    fn next_live_unit(&mut self, now: Instant) -> Option<Transmit<'_>> {
        loop {
            let Feed::Live(feed) = &mut self.feed else {
                return None;
            };
            if feed.front().is_none() {
                if feed.ended {
                    self.end_of_stream();
                }
                return None;
            }
            match self.burst {
                Some((start, _)) if now >= start + BURST_GAP => self.burst = None,
                Some((_, bytes)) if bytes >= self.burst_bytes => return None,
                _ => {}
            }
            let unit = feed.pop()?;
            let Some(pos) = self.sendable(unit.track, unit.keyframe) else {
                continue;
            };
            let track = &mut self.tracks[pos];
            track.send_live(&unit, &mut self.batch);
            track.next_sender_report.get_or_insert(now);
            let (delivery, index) = (track.delivery, track.info.index);
            if let Delivery::Udp { .. } = delivery {
                let end = self.batch.chunk_end(0, self.burst_bytes);
                let sent: usize = self
                    .batch
                    .packets_in(0..end)
                    .map(|(header, payload)| header.len() + payload.len())
                    .sum();
                self.burst.get_or_insert((now, 0)).1 += sent;
            }
            return Some(self.chunk(delivery, index, 0, now));
        }
    }

    /// The position of `track` if its unit is to be sent: `None` for a
    /// track not set up, and for video skipped while the viewer cannot
    /// keep up (counted).
    fn sendable(&mut self, index: usize, keyframe: bool) -> Option<usize> {
        let pos = self.tracks.iter().position(|t| t.info.index == index)?;
        if !self.tracks[pos].info.codec.is_video() {
            return Some(pos);
        }
        let skipping = self.skipping.iter().position(|&t| t == index);
        if self.congested {
            if skipping.is_none() {
                self.skipping.push(index);
            }
        } else {
            match skipping {
                None => return Some(pos),
                Some(at) if keyframe => {
                    self.skipping.swap_remove(at);
                    return Some(pos);
                }
                Some(_) => {}
            }
        }
        self.tracks[pos].count_skipped();
        None
    }

    /// The batch's packets from `start` that go out now: all of them over
    /// TCP, at most [`BURST_BYTES`] over UDP with the rest due
    /// [`BURST_GAP`] later.
    fn chunk(
        &mut self,
        delivery: Delivery,
        track: usize,
        start: usize,
        now: Instant,
    ) -> Transmit<'_> {
        let end = match delivery {
            Delivery::Udp { .. } => self.batch.chunk_end(start, self.burst_bytes),
            Delivery::Interleaved { .. } => self.batch.len(),
        };
        self.spread = (end < self.batch.len()).then_some(Spread {
            delivery,
            track,
            next: end,
            due: now + BURST_GAP,
        });
        Transmit::Rtp {
            delivery,
            track,
            batch: &mut self.batch,
            packets: start..end,
        }
    }

    fn sender_report(
        &mut self,
        index: usize,
        now: Instant,
        wall: SystemTime,
        bye: bool,
    ) -> Option<Transmit<'_>> {
        let anchor = self.anchor?;
        let track = self.tracks.iter().find(|t| t.info.index == index)?;
        let rtp_timestamp = match &self.feed {
            Feed::File(_) => track.rtp_timestamp(signed_secs(now, anchor)),
            // Nothing sent yet, nothing to report (BYE only).
            Feed::Live(_) => track
                .live_timestamp_at(wall)
                .unwrap_or(track.timestamp_base),
        };
        track.write_report(rtp_timestamp, wall, &self.cname, bye, &mut self.rtcp);
        Some(Transmit::Rtcp {
            delivery: track.delivery,
            packet: &self.rtcp,
            bye,
        })
    }

    /// Everything is read: BYE once the last unit has been presented.
    /// A live viewer's BYE is due at once: the source has gone.
    fn end_of_stream(&mut self) {
        let bye_due = match &mut self.feed {
            Feed::File(playout) => {
                playout.stop();
                self.anchor
                    .map(|anchor| add_secs(anchor, playout.high_water()))
            }
            Feed::Live(_) => self.anchor,
        };
        if self.state == State::Playing {
            self.bye_pending = self.tracks.iter().map(|t| t.info.index).collect();
            self.bye_due = bye_due;
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
