//! Live paths: one source (a publisher, a file played as a channel, a
//! relay, a camera) feeding any number of viewers in real time.
//!
//! A source hands in access units ([`SourceUnit`]); the path's
//! [`LiveStream`](stream::LiveStream) packetizes each once into shared
//! payloads ([`LiveUnit`]) and keeps the units since the last keyframe
//! ([`GopCache`](gop_cache::GopCache)) so a viewer joining mid-stream
//! starts with a picture at once. Each viewer writes its own RTP headers
//! (its SSRC and sequence numbers) in front of the same payload bytes.
//!
//! Timestamps pass through: a live path's RTP timestamps are its source's
//! own (a publisher's, or a random base a channel draws), the same for
//! every viewer, as multicast needs and as RFC 3550 §5.1 allows (the
//! source already starts at a random value). Each unit also carries the
//! wall-clock time its timestamp stands for, from the source's sender
//! reports where it sends them, so viewers' sender reports keep audio
//! and video of the path in sync.

pub mod gop_cache;
pub mod publisher;
pub mod stream;

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use crate::codec::Payloads;

/// One access unit as a source hands it in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceUnit {
    /// Index of its track in the path's description.
    pub track: usize,
    /// Presentation time as an RTP timestamp in the track's clock rate
    /// (RFC 3550 §5.1): a publisher's own, or the channel's.
    pub rtp_timestamp: u32,
    /// True when decoding can start here (an IDR picture; every audio
    /// frame).
    pub keyframe: bool,
    /// The unit as a container sample (H.264: NAL units behind 4-byte
    /// lengths, as the depacketizers write them; AAC: one raw frame).
    pub data: Bytes,
}

/// One access unit of a live path, packetized once, shared by every
/// viewer (behind an `Arc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveUnit {
    /// Index of its track in the path's description.
    pub track: usize,
    /// Its RTP timestamp (the source's, see the module docs).
    pub rtp_timestamp: u32,
    /// The wall-clock time `rtp_timestamp` stands for, by the source's
    /// clock (its sender reports, RFC 3550 §6.4.1, where it sends them):
    /// what viewers' sender reports map their RTP time to.
    pub wall: SystemTime,
    /// True when decoding can start here.
    pub keyframe: bool,
    /// True for a video track's unit.
    pub video: bool,
    /// The RTP payloads (no headers).
    pub payloads: Payloads,
    /// When the server took it in, for the latency it adds.
    pub received: Instant,
}

impl LiveUnit {
    /// Payload bytes in all.
    pub fn bytes(&self) -> usize {
        self.payloads.total_bytes()
    }
}

/// Where the wall clock and a track's RTP clock meet (RFC 3550 §6.4.1: a
/// sender report's NTP and RTP timestamps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockMapping {
    /// Wall-clock time of `rtp_timestamp`.
    pub wall: SystemTime,
    /// An RTP timestamp of the track.
    pub rtp_timestamp: u32,
}

impl ClockMapping {
    /// The wall-clock time of `rtp_timestamp` on a clock of `clock_rate`
    /// Hz, taking the nearer way round the 32-bit wrap (so a timestamp
    /// slightly before the mapping's is earlier, not 13 hours later).
    pub fn wall_of(&self, rtp_timestamp: u32, clock_rate: u32) -> SystemTime {
        let ticks = rtp_timestamp.wrapping_sub(self.rtp_timestamp) as i32;
        let offset = Duration::from_secs_f64(f64::from(ticks).abs() / f64::from(clock_rate.max(1)));
        if ticks >= 0 {
            self.wall.checked_add(offset).unwrap_or(self.wall)
        } else {
            self.wall.checked_sub(offset).unwrap_or(self.wall)
        }
    }

    /// The RTP timestamp of `wall` on a clock of `clock_rate` Hz.
    pub fn rtp_of(&self, wall: SystemTime, clock_rate: u32) -> u32 {
        let secs = match wall.duration_since(self.wall) {
            Ok(ahead) => ahead.as_secs_f64(),
            Err(behind) => -behind.duration().as_secs_f64(),
        };
        let ticks = (secs * f64::from(clock_rate)).round() as i64;
        self.rtp_timestamp.wrapping_add(ticks as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: f64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs_f64(1_000_000.0 + secs)
    }

    #[test]
    fn a_mapping_converts_both_ways_across_the_wrap() {
        let mapping = ClockMapping {
            wall: at(0.0),
            rtp_timestamp: u32::MAX - 44_999,
        };
        // 90 000 ticks later is one second later, past the wrap.
        assert_eq!(mapping.wall_of(45_000, 90_000), at(1.0));
        assert_eq!(mapping.rtp_of(at(1.0), 90_000), 45_000);
        // Slightly before is earlier, not 13 hours later.
        assert_eq!(mapping.wall_of(u32::MAX - 89_999, 90_000), at(-0.5));
        assert_eq!(mapping.rtp_of(at(-0.5), 90_000), u32::MAX - 89_999);
        assert_eq!(
            mapping.rtp_of(at(2.0), 48_000),
            (u32::MAX - 44_999).wrapping_add(96_000)
        );
    }
}
