//! The receiving end of one incoming RTP stream (one track of a publisher
//! or relay), sans-IO: the source it listens to, sequence numbers extended
//! and validated as RFC 3550 Appendix A.1 does, a bounded reorder buffer
//! that releases packets in sequence order, reception statistics (A.3,
//! A.8) and the reception report block of §6.4.2.
//!
//! Time is passed in as `now`; nothing here reads a clock. The caller feeds
//! packets with [`RtpReceiver::receive`], drains [`RtpReceiver::pop`] until
//! it returns `None`, and wakes again at [`RtpReceiver::poll_timeout`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::packet::{RtpPacket, RtpPacketError};
use crate::rtcp::{parse_compound, NtpTimestamp, ReportBlock, RtcpError, RtcpPacket, SenderReport};

/// Sequence number modulus (RFC 3550 A.1 `RTP_SEQ_MOD`).
const RTP_SEQ_MOD: u32 = 1 << 16;

/// Largest forward jump, in packets, still taken as the same run of
/// sequence numbers (RFC 3550 A.1 `MAX_DROPOUT`).
const MAX_DROPOUT: u16 = 3000;

/// Largest step back, in packets, taken as reordering rather than a jump
/// (RFC 3550 A.1 `MAX_MISORDER`).
const MAX_MISORDER: u32 = 100;

/// A.1's "no bad sequence number yet" value: one that no `u16` equals.
const NO_BAD_SEQ: u32 = RTP_SEQ_MOD + 1;

/// Sequence numbers remembered behind the release point, to tell a
/// duplicate of a released packet from a late one whose gap was skipped.
const RELEASED_MEMORY: u64 = 64;

/// Largest cumulative loss a report block carries (24-bit signed field,
/// RFC 3550 §6.4.1).
const MAX_CUMULATIVE_LOST: i64 = 0x7f_ffff;

/// Smallest cumulative loss a report block carries.
const MIN_CUMULATIVE_LOST: i64 = -0x80_0000;

/// How an [`RtpReceiver`] is set up for one track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverConfig {
    /// The payload format's RTP clock rate, in Hz (e.g. 90000 for video,
    /// the sampling rate for AAC): jitter (A.8) is in these units.
    pub clock_rate: u32,
    /// The SSRC announced in the Transport header's `ssrc=` parameter
    /// (RFC 2326 §12.39), if any: the receiver locks to it instead of the
    /// first SSRC it hears.
    pub ssrc: Option<u32>,
    /// Longest time a packet is held waiting for a missing one before it
    /// is released anyway and the gap skipped.
    pub max_reorder_delay: Duration,
    /// Most packets the reorder buffer holds; when full, the oldest gap is
    /// skipped. At least 1.
    pub reorder_capacity: usize,
    /// How long the locked source must have been silent before another
    /// SSRC may replace it (a restarted encoder).
    pub source_timeout: Duration,
}

impl ReceiverConfig {
    /// Defaults for a track with `clock_rate` (Hz): no announced SSRC, at
    /// most 50 ms and 128 packets of reordering, a new source accepted
    /// after 2 s of silence from the old one.
    pub fn new(clock_rate: u32) -> ReceiverConfig {
        ReceiverConfig {
            clock_rate,
            ssrc: None,
            max_reorder_delay: Duration::from_millis(50),
            reorder_capacity: 128,
            source_timeout: Duration::from_secs(2),
        }
    }
}

/// What happened to one packet given to [`RtpReceiver::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketOutcome {
    /// Taken into the reorder buffer; [`RtpReceiver::pop`] releases it in
    /// sequence order.
    Buffered,
    /// A packet from another SSRC that replaced a silent source: it and
    /// the candidate packet before it are buffered, behind a gap.
    NewSource,
    /// The second copy of a packet already held or released; dropped.
    Duplicate,
    /// A packet behind the release point whose gap was already skipped,
    /// or from before the current run of sequence numbers; dropped.
    Late,
    /// A packet from an SSRC other than the locked one; dropped.
    ForeignSsrc,
    /// The first packet of another SSRC while the locked one is silent:
    /// kept aside until the next packet confirms the new source (RFC 3550
    /// A.1 probation, `MIN_SEQUENTIAL` = 2).
    Probation,
    /// A sequence number more than `MAX_DROPOUT` ahead or `MAX_MISORDER`
    /// behind (RFC 3550 A.1); dropped, unless the next packet follows it,
    /// in which case the stream restarts there.
    OutOfRange,
    /// The reorder buffer is full because the caller has not drained
    /// [`RtpReceiver::pop`]; dropped.
    Overflow,
}

/// One packet released in sequence order by [`RtpReceiver::pop`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleasedPacket {
    /// The packet.
    pub packet: RtpPacket,
    /// Its place in the receiver's output: the RFC 3550 A.1 extended
    /// sequence number, counted on across sequence resyncs and source
    /// changes so that it strictly increases from one released packet to
    /// the next.
    pub extended_sequence: u64,
    /// True when packets are missing just before this one: a skipped gap,
    /// a sequence resync or a new source.
    pub gap_before: bool,
}

/// A sender report from the locked source (RFC 3550 §6.4.1) and when it
/// arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceivedSenderReport {
    /// The sender info: its (NTP, RTP timestamp) pair maps the source's
    /// RTP timestamps to its wall clock.
    pub report: SenderReport,
    /// Arrival time, for the DLSR field of reception reports.
    pub received_at: Instant,
}

/// Reception statistics of an [`RtpReceiver`]. `received`, `cumulative_lost`,
/// `highest_seq` and `jitter` describe the current source (they restart
/// with a new source or a sequence resync, as in RFC 3550 A.1); the other
/// counters cover the receiver's whole life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    /// Packets received from the current source since its sequence
    /// numbers were (re)initialised, duplicates included (A.1).
    pub received: u64,
    /// Expected minus received (A.3), clamped to the 24-bit signed range
    /// of §6.4.1; negative when duplicates outnumber losses.
    pub cumulative_lost: i32,
    /// Extended highest sequence number received: cycles in the high 16
    /// bits (§6.4.1).
    pub highest_seq: u32,
    /// Interarrival jitter estimate (A.8), in RTP timestamp units.
    pub jitter: u32,
    /// Fraction lost in the interval before the last report block, in
    /// 1/256 units (A.3).
    pub fraction_lost: u8,
    /// Packets given up on by the reorder buffer: the sum of the gaps it
    /// skipped.
    pub skipped: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Packets dropped for arriving after their place was released.
    pub late: u64,
    /// Packets dropped for coming from another SSRC.
    pub foreign_ssrc: u64,
    /// Packets dropped for a sequence number jump (A.1 `bad_seq`).
    pub out_of_range: u64,
    /// Packets dropped because the reorder buffer was full.
    pub overflow: u64,
    /// Datagrams that were not valid RTP (RTCP on a shared port aside).
    pub malformed: u64,
    /// Times a new SSRC replaced a silent source.
    pub source_changes: u64,
}

/// Sequence number state of one source (RFC 3550 A.1 `source`), with the
/// position in the receiver's output of its highest sequence number.
#[derive(Debug, Clone)]
struct SequenceState {
    max_seq: u16,
    /// Sequence number wraps, times 2^16 (A.1 `cycles`).
    cycles: u64,
    base_seq: u16,
    bad_seq: u32,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    /// Output position of `max_seq`.
    max_index: u64,
    /// Output position of `base_seq`: nothing before it belongs to this
    /// run of sequence numbers.
    first_index: u64,
}

/// Where A.1's checks put a packet.
enum Sequenced {
    /// In the current run, at this output position (`None`: before its
    /// start).
    At(Option<u64>),
    /// A jump, dropped; A.1 remembers it in `bad_seq`.
    Jump,
    /// The packet after a jump that followed it: a new run starts here.
    Restarted,
}

impl SequenceState {
    /// A.1 `init_seq`: a run of sequence numbers starting with `seq`, at
    /// output position `index`.
    fn new(seq: u16, index: u64) -> SequenceState {
        SequenceState {
            max_seq: seq,
            cycles: 0,
            base_seq: seq,
            bad_seq: NO_BAD_SEQ,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            max_index: index,
            first_index: index,
        }
    }

    /// A.1 `update_seq` for a validated source; `index_end` is where a
    /// restarted run would begin in the output.
    fn update(&mut self, seq: u16, index_end: u64) -> Sequenced {
        let udelta = seq.wrapping_sub(self.max_seq);
        let sequenced = if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles += u64::from(RTP_SEQ_MOD);
            }
            self.max_seq = seq;
            self.max_index += u64::from(udelta);
            Sequenced::At(Some(self.max_index))
        } else if u32::from(udelta) <= RTP_SEQ_MOD - MAX_MISORDER {
            if u32::from(seq) != self.bad_seq {
                self.bad_seq = (u32::from(seq) + 1) & (RTP_SEQ_MOD - 1);
                return Sequenced::Jump;
            }
            // Two sequential packets after a jump: the sender restarted.
            *self = SequenceState::new(seq, index_end);
            Sequenced::Restarted
        } else {
            let behind = RTP_SEQ_MOD - u32::from(udelta);
            Sequenced::At(
                self.max_index
                    .checked_sub(u64::from(behind))
                    .filter(|&index| index >= self.first_index),
            )
        };
        self.received += 1;
        sequenced
    }

    /// A.1 extended highest sequence number.
    fn extended_max(&self) -> u64 {
        self.cycles + u64::from(self.max_seq)
    }

    /// A.3 expected packet count.
    fn expected(&self) -> u64 {
        self.extended_max() + 1 - u64::from(self.base_seq)
    }

    /// A.3 cumulative loss, clamped to 24 bits signed.
    fn cumulative_lost(&self) -> i32 {
        let lost = self.expected() as i64 - self.received as i64;
        lost.clamp(MIN_CUMULATIVE_LOST, MAX_CUMULATIVE_LOST) as i32
    }
}

/// The locked source.
#[derive(Debug, Clone)]
struct Source {
    ssrc: u32,
    sequence: SequenceState,
    /// Arrival of the source's first packet: origin of the arrival times
    /// in RTP units that A.8 compares with timestamps.
    clock_origin: Instant,
    /// A.8 relative transit time of the previous packet, in RTP units.
    last_transit: Option<u32>,
    /// A.8 jitter estimate times 16 (the integer form of A.8).
    jitter_x16: u64,
}

impl Source {
    /// A.8: folds the transit time of a packet stamped `timestamp`,
    /// arriving at `arrival`, into the jitter estimate.
    fn update_jitter(&mut self, timestamp: u32, arrival: Instant, clock_rate: u32) {
        let elapsed = arrival.saturating_duration_since(self.clock_origin);
        // Arrival in RTP units, modulo 2^32 like the timestamps.
        let arrival_rtp = (elapsed.as_nanos() * u128::from(clock_rate) / 1_000_000_000) as u32;
        let transit = arrival_rtp.wrapping_sub(timestamp);
        if let Some(last) = self.last_transit {
            let d = u64::from((transit.wrapping_sub(last) as i32).unsigned_abs());
            self.jitter_x16 = self.jitter_x16 + d - ((self.jitter_x16 + 8) >> 4);
        }
        self.last_transit = Some(transit);
    }

    /// A.8 jitter in RTP units.
    fn jitter(&self) -> u32 {
        u32::try_from(self.jitter_x16 >> 4).unwrap_or(u32::MAX)
    }
}

/// A packet of another SSRC on probation to replace the silent source.
#[derive(Debug, Clone)]
struct Candidate {
    packet: RtpPacket,
    arrival: Instant,
}

/// A packet waiting in the reorder buffer.
#[derive(Debug, Clone)]
struct Held {
    index: u64,
    arrival: Instant,
    /// The first packet of a new source or sequence run.
    discontinuity: bool,
    packet: RtpPacket,
}

/// The receiving end of one RTP stream (RFC 3550): source locking,
/// sequence validation (A.1), reordering, statistics (A.3, A.8) and
/// reception report blocks (§6.4.2).
#[derive(Debug, Clone)]
pub struct RtpReceiver {
    config: ReceiverConfig,
    source: Option<Source>,
    candidate: Option<Candidate>,
    /// The locked source's last packet or, before it has sent anything,
    /// the first packet of another SSRC: silence is measured from here.
    silent_since: Option<Instant>,
    /// Held packets, sorted by output position, at most
    /// `config.reorder_capacity`.
    held: VecDeque<Held>,
    /// Output position of the next packet to release.
    next_index: u64,
    /// One past the highest output position given to any packet.
    index_end: u64,
    /// Held packets before this position belong to an earlier source or
    /// run and are released without waiting.
    flush_until: u64,
    /// Bit k set when position `next_index - 1 - k` was released (not
    /// skipped).
    released_recent: u64,
    last_sender_report: Option<ReceivedSenderReport>,
    /// Latest `now` seen; earlier values are taken as this one so time
    /// never runs backwards.
    latest: Option<Instant>,
    stats: ReceiverStats,
}

impl RtpReceiver {
    /// A receiver with nothing received yet.
    pub fn new(mut config: ReceiverConfig) -> RtpReceiver {
        config.reorder_capacity = config.reorder_capacity.max(1);
        RtpReceiver {
            held: VecDeque::with_capacity(config.reorder_capacity),
            config,
            source: None,
            candidate: None,
            silent_since: None,
            next_index: 0,
            index_end: 0,
            flush_until: 0,
            released_recent: 0,
            last_sender_report: None,
            latest: None,
            stats: ReceiverStats::default(),
        }
    }

    /// The SSRC of the source the receiver is locked to, once it has heard
    /// it.
    pub fn ssrc(&self) -> Option<u32> {
        self.source.as_ref().map(|source| source.ssrc)
    }

    /// Number of packets in the reorder buffer (at most the configured
    /// capacity).
    pub fn buffered(&self) -> usize {
        self.held.len()
    }

    /// Parses `datagram` as RTP (RFC 3550 §5.1) and pushes it.
    ///
    /// Errors: the parse error; all but [`RtpPacketError::Rtcp`] (RTCP
    /// sharing the port, RFC 5761, for the caller to route) count as
    /// malformed.
    pub fn receive(
        &mut self,
        datagram: &Bytes,
        now: Instant,
    ) -> Result<PacketOutcome, RtpPacketError> {
        match RtpPacket::parse(datagram) {
            Ok(packet) => Ok(self.push(packet, now)),
            Err(error) => {
                if !matches!(error, RtpPacketError::Rtcp(_)) {
                    self.stats.malformed += 1;
                }
                Err(error)
            }
        }
    }

    /// Takes one parsed packet that arrived at `now`.
    pub fn push(&mut self, packet: RtpPacket, now: Instant) -> PacketOutcome {
        let now = self.advance_clock(now);
        let locked = self
            .source
            .as_ref()
            .map(|source| source.ssrc)
            .or(self.config.ssrc);
        if locked.is_some_and(|ssrc| ssrc != packet.ssrc) {
            return self.push_foreign(packet, now);
        }
        self.silent_since = Some(now);
        if self.candidate.take().is_some() {
            self.stats.foreign_ssrc += 1;
        }
        let Some(source) = self.source.as_mut() else {
            return self.start_source(packet, now);
        };
        let index = match source
            .sequence
            .update(packet.sequence_number, self.index_end)
        {
            Sequenced::Jump => {
                self.stats.out_of_range += 1;
                return PacketOutcome::OutOfRange;
            }
            Sequenced::Restarted => {
                let index = self.index_end;
                source.update_jitter(packet.timestamp, now, self.config.clock_rate);
                self.begin_run(index);
                return self.insert(index, true, packet, now);
            }
            Sequenced::At(index) => index,
        };
        source.update_jitter(packet.timestamp, now, self.config.clock_rate);
        match index {
            Some(index) => self.insert(index, false, packet, now),
            None => {
                self.stats.late += 1;
                PacketOutcome::Late
            }
        }
    }

    /// A packet of another SSRC: ignored while the locked source is alive,
    /// on probation once it has been silent for `source_timeout`.
    fn push_foreign(&mut self, packet: RtpPacket, now: Instant) -> PacketOutcome {
        let silent_since = *self.silent_since.get_or_insert(now);
        if now.saturating_duration_since(silent_since) < self.config.source_timeout {
            self.stats.foreign_ssrc += 1;
            return PacketOutcome::ForeignSsrc;
        }
        match self.candidate.take() {
            Some(candidate)
                if candidate.packet.ssrc == packet.ssrc
                    && candidate.packet.sequence_number.wrapping_add(1)
                        == packet.sequence_number =>
            {
                if self.source.is_some() {
                    self.stats.source_changes += 1;
                }
                self.start_source(candidate.packet, candidate.arrival);
                self.push(packet, now);
                PacketOutcome::NewSource
            }
            replaced => {
                if replaced.is_some() {
                    self.stats.foreign_ssrc += 1;
                }
                self.candidate = Some(Candidate {
                    packet,
                    arrival: now,
                });
                PacketOutcome::Probation
            }
        }
    }

    /// Locks to the SSRC of `first`, which arrived at `arrival`, and
    /// buffers it as the start of a new run.
    fn start_source(&mut self, first: RtpPacket, arrival: Instant) -> PacketOutcome {
        let index = self.index_end;
        let mut source = Source {
            ssrc: first.ssrc,
            sequence: SequenceState::new(first.sequence_number, index),
            clock_origin: arrival,
            last_transit: None,
            jitter_x16: 0,
        };
        source.sequence.received = 1;
        source.update_jitter(first.timestamp, arrival, self.config.clock_rate);
        if self
            .last_sender_report
            .is_some_and(|sr| sr.report.ssrc != first.ssrc)
        {
            self.last_sender_report = None;
        }
        self.source = Some(source);
        self.silent_since = Some(arrival);
        self.begin_run(index);
        // The first packet ever follows nothing, so no gap precedes it.
        let discontinuity = index > 0;
        self.insert(index, discontinuity, first, arrival)
    }

    /// A new run of sequence numbers starts at output position `index`:
    /// what is held from before is released without waiting.
    fn begin_run(&mut self, index: u64) {
        self.flush_until = index;
    }

    /// Puts a packet at output position `index` into the reorder buffer.
    fn insert(
        &mut self,
        index: u64,
        discontinuity: bool,
        packet: RtpPacket,
        arrival: Instant,
    ) -> PacketOutcome {
        self.index_end = self.index_end.max(index + 1);
        if index < self.next_index {
            let behind = self.next_index - 1 - index;
            return if behind < RELEASED_MEMORY && self.released_recent >> behind & 1 == 1 {
                self.stats.duplicates += 1;
                PacketOutcome::Duplicate
            } else {
                self.stats.late += 1;
                PacketOutcome::Late
            };
        }
        match self.held.binary_search_by_key(&index, |held| held.index) {
            Ok(_) => {
                self.stats.duplicates += 1;
                PacketOutcome::Duplicate
            }
            Err(_) if self.held.len() >= self.config.reorder_capacity => {
                self.stats.overflow += 1;
                PacketOutcome::Overflow
            }
            Err(position) => {
                self.held.insert(
                    position,
                    Held {
                        index,
                        arrival,
                        discontinuity,
                        packet,
                    },
                );
                PacketOutcome::Buffered
            }
        }
    }

    /// The next packet in sequence order, if one may be released at `now`:
    /// the one expected next, or the first after a gap once a packet held
    /// behind that gap has waited `max_reorder_delay` or the buffer is
    /// full. Call until it returns `None`.
    pub fn pop(&mut self, now: Instant) -> Option<ReleasedPacket> {
        let now = self.advance_clock(now);
        if !self.front_is_due() && self.gap_deadline().is_none_or(|deadline| deadline > now) {
            return None;
        }
        let held = self.held.pop_front()?;
        let missing = held.index - self.next_index;
        if !held.discontinuity {
            self.stats.skipped += missing;
        }
        self.released_recent = self
            .released_recent
            .checked_shl(u32::try_from(missing + 1).unwrap_or(u32::MAX))
            .unwrap_or(0)
            | 1;
        self.next_index = held.index + 1;
        Some(ReleasedPacket {
            packet: held.packet,
            extended_sequence: held.index,
            gap_before: missing > 0 || held.discontinuity,
        })
    }

    /// True when the first held packet may go without waiting: it is the
    /// next expected, it belongs to a finished run, or the buffer is full.
    fn front_is_due(&self) -> bool {
        self.held.front().is_some_and(|front| {
            front.index == self.next_index
                || front.index < self.flush_until
                || self.held.len() >= self.config.reorder_capacity
        })
    }

    /// When the packet held longest has waited `max_reorder_delay`: the
    /// gaps before it are given up then. `None` when nothing is held (or
    /// the delay is beyond the clock's range).
    fn gap_deadline(&self) -> Option<Instant> {
        let oldest = self.held.iter().map(|held| held.arrival).min()?;
        oldest.checked_add(self.config.max_reorder_delay)
    }

    /// When [`RtpReceiver::pop`] will next release a packet without a new
    /// one arriving: `None` when nothing is held; a time not after the
    /// latest `now` when a packet is already due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.front_is_due() {
            return self.latest;
        }
        self.gap_deadline()
    }

    /// Takes in a sender report (RFC 3550 §6.4.1) that arrived at `now`.
    /// Only reports from the locked source (or the announced SSRC before it
    /// has sent) are kept; returns whether this one was.
    pub fn handle_sender_report(&mut self, report: &SenderReport, now: Instant) -> bool {
        let now = self.advance_clock(now);
        let ours = match &self.source {
            Some(source) => source.ssrc == report.ssrc,
            None => self.config.ssrc == Some(report.ssrc),
        };
        if ours {
            self.last_sender_report = Some(ReceivedSenderReport {
                report: *report,
                received_at: now,
            });
        }
        ours
    }

    /// Parses a compound RTCP packet (RFC 3550 §6.1) from the source and
    /// takes in its sender reports.
    ///
    /// Errors: [`RtcpError::Malformed`] when it is not valid RTCP.
    pub fn handle_rtcp(&mut self, datagram: &[u8], now: Instant) -> Result<(), RtcpError> {
        for packet in parse_compound(datagram)? {
            if let RtcpPacket::SenderReport { report, .. } = packet {
                self.handle_sender_report(&report, now);
            }
        }
        Ok(())
    }

    /// The latest sender report of the locked source.
    pub fn last_sender_report(&self) -> Option<&ReceivedSenderReport> {
        self.last_sender_report.as_ref()
    }

    /// The source's wall-clock time (NTP, RFC 3550 §4) of RTP timestamp
    /// `rtp_timestamp`, from the latest sender report's (NTP, RTP) pair
    /// and the clock rate (§6.4.1). Timestamps up to 2^31 ticks either side
    /// of the report's are mapped. `None` before a sender report, or with
    /// a clock rate of 0.
    pub fn ntp_of(&self, rtp_timestamp: u32) -> Option<NtpTimestamp> {
        let report = self.last_sender_report?.report;
        if self.config.clock_rate == 0 {
            return None;
        }
        let ticks = i128::from(rtp_timestamp.wrapping_sub(report.rtp_timestamp) as i32);
        let offset = (ticks << 32) / i128::from(self.config.clock_rate);
        Some(report.ntp.wrapping_add(offset as u64))
    }

    /// Current statistics (see [`ReceiverStats`] for which cover the
    /// current source only).
    pub fn stats(&self) -> ReceiverStats {
        let mut stats = self.stats;
        if let Some(source) = &self.source {
            stats.received = source.sequence.received;
            stats.cumulative_lost = source.sequence.cumulative_lost();
            stats.highest_seq = source.sequence.extended_max() as u32;
            stats.jitter = source.jitter();
        }
        stats
    }

    /// The reception report block on the locked source for a receiver
    /// report sent at `now` (RFC 3550 §6.4.1, §6.4.2), starting a new
    /// report interval for the fraction lost (A.3). LSR and DLSR come from
    /// the latest sender report (0 when none has arrived); DLSR is in
    /// 1/65536 s. `None` before the source has sent a packet.
    pub fn report_block(&mut self, now: Instant) -> Option<ReportBlock> {
        let now = self.advance_clock(now);
        let source = self.source.as_mut()?;
        let sequence = &mut source.sequence;
        let expected = sequence.expected();
        let expected_interval = expected.saturating_sub(sequence.expected_prior);
        let received_interval = sequence.received - sequence.received_prior;
        sequence.expected_prior = expected;
        sequence.received_prior = sequence.received;
        let fraction_lost = match expected_interval.checked_sub(received_interval) {
            Some(lost_interval) if lost_interval > 0 => {
                u8::try_from((lost_interval << 8) / expected_interval).unwrap_or(u8::MAX)
            }
            _ => 0,
        };
        self.stats.fraction_lost = fraction_lost;
        let (last_sr, delay_since_last_sr) = match &self.last_sender_report {
            Some(sr) => {
                let delay = now.saturating_duration_since(sr.received_at);
                let units = (delay.as_nanos() << 16) / 1_000_000_000;
                (
                    (sr.report.ntp >> 16) as u32,
                    u32::try_from(units).unwrap_or(u32::MAX),
                )
            }
            None => (0, 0),
        };
        Some(ReportBlock {
            ssrc: source.ssrc,
            fraction_lost,
            cumulative_lost: sequence.cumulative_lost(),
            highest_seq: sequence.extended_max() as u32,
            jitter: source.jitter(),
            last_sr,
            delay_since_last_sr,
        })
    }

    /// `now`, or the latest time already seen if `now` is earlier.
    fn advance_clock(&mut self, now: Instant) -> Instant {
        let now = self.latest.map_or(now, |latest| latest.max(now));
        self.latest = Some(now);
        now
    }
}

#[cfg(test)]
mod tests;
