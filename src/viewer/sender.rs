//! One track of one viewer as an RTP sender (RFC 3550 §5.1, §6.4): its
//! SSRC, sequence numbers and timestamp base, its packetizer, its sender
//! reports and BYE, and what the viewer's receiver reports say about it.
//! Where its packets go is a [`Delivery`] handed in; the sender knows no
//! RTSP.

use std::time::{Instant, SystemTime};

use crate::codec::{CodecError, Packetizer, PayloadWriter};
use crate::live::{ClockMapping, LiveUnit};
use crate::media::{AccessUnit, TrackInfo};
use crate::rtcp::{self, ReportBlock, SenderReport};
use crate::rtp::{Delivery, PacketBatch, RtpStreamState};
use crate::stats::TrackStats;

/// The random values RFC 3550 §5.1 asks each RTP stream to start from;
/// drawn by the caller from its (seeded) generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamStart {
    /// Synchronization source identifier.
    pub ssrc: u32,
    /// Sequence number of the first packet.
    pub first_seq: u16,
    /// RTP timestamp of stream time zero.
    pub timestamp_base: u32,
}

/// One set-up track of a viewer (RFC 3550 §5.1, §6.4.1).
#[derive(Debug)]
pub struct TrackSender {
    /// The track's description.
    pub info: TrackInfo,
    /// Where its RTP/RTCP goes.
    pub delivery: Delivery,
    /// Sequence number, SSRC and counters.
    pub rtp: RtpStreamState,
    /// RTP timestamp of stream time zero (RFC 3550 §5.1).
    pub timestamp_base: u32,
    /// The latest reception report the viewer sent about this track.
    pub last_report: Option<ReportBlock>,
    stats: TrackStats,
    packetizer: Packetizer,
    writer: PayloadWriter,
    pub(super) next_sender_report: Option<Instant>,
    /// Live tracks: the last unit sent's RTP timestamp and the wall time
    /// it stands for, which sender reports extrapolate from.
    live_clock: Option<ClockMapping>,
}

impl TrackSender {
    /// A sender of `info` to `delivery`, with payload type `payload_type`,
    /// packets of at most `mtu` bytes, starting from `start`.
    pub fn new(
        info: TrackInfo,
        delivery: Delivery,
        payload_type: u8,
        mtu: usize,
        start: StreamStart,
    ) -> Self {
        TrackSender {
            packetizer: Packetizer::new(&info.codec, mtu),
            writer: PayloadWriter::new(),
            info,
            delivery,
            rtp: RtpStreamState::new(payload_type, start.ssrc, start.first_seq),
            timestamp_base: start.timestamp_base,
            last_report: None,
            stats: TrackStats::default(),
            next_sender_report: None,
            live_clock: None,
        }
    }

    /// RTP timestamp of `stream_secs` on this track's clock.
    pub fn rtp_timestamp(&self, stream_secs: f64) -> u32 {
        let ticks = (stream_secs * f64::from(self.info.codec.clock_rate())).round() as i64;
        self.timestamp_base.wrapping_add(ticks as u32)
    }

    /// Counters and the latest reception report, as a plain copy.
    pub fn stats(&self) -> TrackStats {
        self.stats
    }

    /// Cuts `au` into this track's packets in `batch` (emptied first),
    /// stamped with the RTP timestamp of `present_at` stream seconds.
    ///
    /// Errors: the packetizer's, for a sample it cannot carry; `batch` is
    /// then empty and no sequence number is used.
    pub fn packetize(
        &mut self,
        au: &AccessUnit,
        present_at: f64,
        batch: &mut PacketBatch,
    ) -> Result<(), CodecError> {
        batch.clear();
        let payloads = self.packetizer.packetize(au, &mut self.writer)?;
        let timestamp = self.rtp_timestamp(present_at);
        batch.push_unit(&mut self.rtp, timestamp, &payloads);
        self.stats.packets_sent += payloads.len() as u64;
        self.stats.bytes_sent += payloads.total_bytes() as u64;
        Ok(())
    }

    /// The RTP timestamp this viewer gives a live unit: the source's plus
    /// this track's base (0 for live viewers, whose timestamps pass
    /// through; see [`crate::live`]).
    pub fn live_timestamp(&self, unit: &LiveUnit) -> u32 {
        self.timestamp_base.wrapping_add(unit.rtp_timestamp)
    }

    /// Puts a live unit's shared payloads in `batch` (emptied first)
    /// behind this viewer's headers.
    pub fn send_live(&mut self, unit: &LiveUnit, batch: &mut PacketBatch) {
        batch.clear();
        let timestamp = self.live_timestamp(unit);
        batch.push_unit(&mut self.rtp, timestamp, &unit.payloads);
        self.stats.packets_sent += unit.payloads.len() as u64;
        self.stats.bytes_sent += unit.bytes() as u64;
        self.live_clock = Some(ClockMapping {
            wall: unit.wall,
            rtp_timestamp: timestamp,
        });
    }

    /// Takes the live path's clock for this track (RFC 3550 §6.4.1 sender
    /// report mapping, in the source's timestamps) until a unit it sends
    /// gives its own.
    pub fn adopt_live_clock(&mut self, source: ClockMapping) {
        self.live_clock.get_or_insert(ClockMapping {
            wall: source.wall,
            rtp_timestamp: self.timestamp_base.wrapping_add(source.rtp_timestamp),
        });
    }

    /// The RTP timestamp of `wall` on a live track, from the last unit
    /// sent (RFC 3550 §6.4.1: a report's timestamp need not be a packet's);
    /// `None` before any.
    pub fn live_timestamp_at(&self, wall: SystemTime) -> Option<u32> {
        let clock = self.live_clock?;
        Some(clock.rtp_of(wall, self.info.codec.clock_rate()))
    }

    /// Counts one access unit skipped for a viewer that cannot keep up.
    pub fn count_skipped(&mut self) {
        self.stats.units_skipped += 1;
    }

    /// A sender report (RFC 3550 §6.4.1) at `wall`, whose RTP time is
    /// `rtp_timestamp`, written to `out` as a compound with SDES CNAME, and
    /// BYE after them when `bye` (§6.6).
    pub fn write_report(
        &self,
        rtp_timestamp: u32,
        wall: SystemTime,
        cname: &str,
        bye: bool,
        out: &mut Vec<u8>,
    ) {
        let report = SenderReport {
            ssrc: self.rtp.ssrc,
            ntp: rtcp::ntp_timestamp(wall),
            rtp_timestamp,
            packet_count: self.rtp.packet_count,
            octet_count: self.rtp.octet_count,
        };
        out.clear();
        if bye {
            rtcp::write_bye(&report, cname, "", out);
        } else {
            rtcp::write_sender_report(&report, cname, out);
        }
    }

    /// Takes in a reception report about this track (RFC 3550 §6.4.2)
    /// that arrived at `wall`.
    pub fn record_report(&mut self, block: ReportBlock, wall: SystemTime) {
        self.stats.reports += 1;
        self.stats.fraction_lost = f32::from(block.fraction_lost) / 256.0;
        self.stats.cumulative_lost = block.cumulative_lost;
        self.stats.jitter = block.jitter;
        self.stats.jitter_ms =
            f64::from(block.jitter) * 1000.0 / f64::from(self.info.codec.clock_rate());
        self.stats.round_trip = block.round_trip_time(rtcp::ntp_timestamp(wall));
        self.last_report = Some(block);
    }
}
