//! A file played as a live channel (`--channel /tv=clip.mp4`): one
//! timeline, looping, that every viewer of the path shares, like a TV
//! channel. It hands access units to the path's
//! [`LiveStream`](crate::live::stream::LiveStream) at their decode times;
//! joiners start at the GOP cache.
//!
//! Sans-IO like [`FilePlayout`], which it drives: the caller reads the
//! samples it asks for and passes the time in.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use super::playout::FilePlayout;
use crate::live::{ClockMapping, SourceUnit};
use crate::media::mp4::{MediaError, Mp4Media};
use crate::media::{SampleRef, TrackInfo};

/// See the module docs.
#[derive(Debug)]
pub struct Channel {
    playout: FilePlayout,
    /// RTP timestamp of stream time zero, per track (RFC 3550 §5.1: random,
    /// drawn by the caller).
    timestamp_bases: Vec<u32>,
    /// Wall instant of stream time zero, once started.
    anchor: Option<Instant>,
}

impl Channel {
    /// A channel playing every track of `media` in a loop, track `i`'s RTP
    /// timestamps starting at `timestamp_bases[i]` (missing bases are 0).
    pub fn new(media: Arc<Mp4Media>, timestamp_bases: Vec<u32>) -> Self {
        let mut playout = FilePlayout::new(media, true);
        for track in 0..playout.media().tracks().len() {
            playout.add_track(track);
        }
        Channel {
            playout,
            timestamp_bases,
            anchor: None,
        }
    }

    /// The tracks, for the path's description.
    pub fn tracks(&self) -> &[TrackInfo] {
        self.playout.media().tracks()
    }

    /// Starts the timeline at `now`/`wall`. Returns, per track, where its
    /// RTP clock meets the wall clock, for the path's stream.
    pub fn start(&mut self, now: Instant, wall: SystemTime) -> Vec<ClockMapping> {
        self.playout.seek(0.0);
        self.anchor = Some(now);
        (0..self.tracks().len())
            .map(|track| ClockMapping {
                wall,
                rtp_timestamp: self.base(track),
            })
            .collect()
    }

    fn base(&self, track: usize) -> u32 {
        self.timestamp_bases.get(track).copied().unwrap_or(0)
    }

    /// The samples to read now, as (read id, where).
    pub fn missing_reads(&self) -> impl Iterator<Item = (u64, SampleRef)> + '_ {
        self.playout.missing_reads()
    }

    /// Hands in the bytes of read `read_id`, or why they could not be read
    /// (that unit is skipped).
    pub fn deliver(&mut self, read_id: u64, result: Result<Bytes, MediaError>) {
        self.playout.deliver(read_id, result);
    }

    /// When the next unit is due; `None` before [`start`](Self::start) or
    /// while its bytes are still to be read.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let anchor = self.anchor?;
        let next = self.playout.front().filter(|unit| unit.data.is_some())?;
        Some(anchor + Duration::from_secs_f64(next.decode_at.max(0.0)))
    }

    /// The next unit due at `now`, with its RTP timestamp (its
    /// presentation time on the channel's clock); `None` when none is due
    /// or its bytes are not read yet.
    pub fn poll_unit(&mut self, now: Instant) -> Option<SourceUnit> {
        if self.poll_timeout()? > now {
            return None;
        }
        let unit = self.playout.pop()?;
        let track = unit.sample.track;
        let clock_rate = self.tracks().get(track)?.codec.clock_rate();
        let ticks = (unit.present_at * f64::from(clock_rate)).round() as i64;
        Some(SourceUnit {
            track,
            rtp_timestamp: self.base(track).wrapping_add(ticks as u32),
            keyframe: unit.sample.keyframe,
            data: unit.data?,
        })
    }
}

#[cfg(test)]
mod tests {
    // Tests may read the clock: times here only need to be real instants.
    #![allow(clippy::disallowed_methods)]

    use super::*;

    fn sample() -> Arc<Mp4Media> {
        Mp4Media::from_static(include_bytes!("../../media/sample.mp4")).unwrap()
    }

    /// Runs the channel for `secs` from `start`, reading every sample.
    fn run(channel: &mut Channel, start: Instant, secs: f64) -> Vec<(Instant, SourceUnit)> {
        let media = channel.playout.media().clone();
        let end = start + Duration::from_secs_f64(secs);
        let mut now = start;
        let mut out = Vec::new();
        loop {
            let reads: Vec<_> = channel.missing_reads().collect();
            for (id, sample) in reads {
                channel.deliver(id, media.read_sample(&sample).map(|au| au.data));
            }
            while let Some(unit) = channel.poll_unit(now) {
                out.push((now, unit));
            }
            match channel.poll_timeout() {
                Some(next) if next <= end => now = now.max(next),
                _ if channel.missing_reads().next().is_some() => {}
                _ => return out,
            }
        }
    }

    #[test]
    fn units_come_at_their_decode_times_with_timestamps_from_the_base() {
        let media = sample();
        let video_rate = media.tracks()[0].codec.clock_rate();
        let mut channel = Channel::new(media.clone(), vec![1_000, 2_000]);
        let start = Instant::now();
        let mappings = channel.start(start, SystemTime::UNIX_EPOCH);
        assert_eq!(mappings[0].rtp_timestamp, 1_000);
        assert_eq!(mappings[1].rtp_timestamp, 2_000);
        assert!(channel.poll_unit(start).is_none(), "nothing read yet");
        let units = run(&mut channel, start, 1.0);
        let video: Vec<_> = units.iter().filter(|(_, u)| u.track == 0).collect();
        assert!(video[0].1.keyframe, "starts at a keyframe");
        // 30 fps: 31 pictures decoded in the first second (0 and 1 s
        // included), plus the two the B-frame delay decodes before 0; each
        // sent no earlier than its decode time.
        assert!((31..=33).contains(&video.len()), "{} pictures", video.len());
        let last = video.last().unwrap();
        assert!(last.0 <= start + Duration::from_secs(1));
        // Timestamps are presentation times from the base: all within the
        // second (plus the B-frame delay), none before the base.
        for (_, unit) in &video {
            let ticks = unit.rtp_timestamp.wrapping_sub(1_000);
            assert!(ticks <= video_rate * 12 / 10, "{ticks}");
        }
        assert!(units.iter().any(|(_, u)| u.track == 1), "audio too");
    }

    #[test]
    fn the_channel_loops_forever_and_time_keeps_going() {
        let media = sample();
        let duration = media.duration_secs();
        let mut channel = Channel::new(media, vec![0, 0]);
        let start = Instant::now();
        channel.start(start, SystemTime::UNIX_EPOCH);
        let units = run(&mut channel, start, duration * 2.5);
        let keyframes_at_zero = units
            .iter()
            .filter(|(_, u)| u.track == 0 && u.keyframe)
            .count();
        assert!(keyframes_at_zero >= 3, "three passes start with a keyframe");
        let last_video = units.iter().rev().find(|(_, u)| u.track == 0).unwrap();
        let secs = f64::from(last_video.1.rtp_timestamp) / 90_000.0;
        assert!(
            secs > duration * 2.0,
            "timestamps keep rising across loops: {secs}"
        );
    }
}
