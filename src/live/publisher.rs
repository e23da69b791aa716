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
        if self.next_report.is_none_or(|due| due > now) {
            return None;
        }
        let count = self.tracks.len();
        for _ in 0..count {
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
