//! One live path's shared state: its tracks, one packetizer per track
//! (each unit is cut once for every viewer), the clock mapping of each
//! track and the GOP cache joiners start from.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::gop_cache::GopCache;
use super::{ClockMapping, LiveUnit, SourceUnit};
use crate::codec::{CodecError, Packetizer, PayloadWriter};
use crate::media::{AccessUnit, TrackInfo};

/// Why a source's unit was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The unit names a track the path does not have.
    #[error("no track {0} on this live path")]
    NoSuchTrack(usize),
    /// The packetizer cannot carry it.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// Counters of a live path, as a plain copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveStreamStats {
    /// Units taken in and packetized.
    pub units: u64,
    /// Payload bytes of those units.
    pub bytes: u64,
    /// Units refused (broken, or of no track).
    pub refused: u64,
    /// Payload bytes in the GOP cache now.
    pub gop_cache_bytes: usize,
    /// Groups that outgrew the GOP cache.
    pub gop_cache_overflows: u64,
}

#[derive(Debug)]
struct LiveTrack {
    info: TrackInfo,
    packetizer: Packetizer,
    writer: PayloadWriter,
    clock: Option<ClockMapping>,
}

/// See the module docs.
#[derive(Debug)]
pub struct LiveStream {
    tracks: Vec<LiveTrack>,
    gop_cache: GopCache,
    stats: LiveStreamStats,
}

impl LiveStream {
    /// A stream of `tracks` (their `index` fields 0, 1, … in order), cut
    /// into RTP packets of at most `mtu` bytes, with a GOP cache of at most
    /// `gop_cache_bytes`.
    pub fn new(tracks: Vec<TrackInfo>, mtu: usize, gop_cache_bytes: usize) -> Self {
        let video = tracks.iter().position(|t| t.codec.is_video());
        LiveStream {
            tracks: tracks
                .into_iter()
                .map(|info| LiveTrack {
                    packetizer: Packetizer::new(&info.codec, mtu),
                    writer: PayloadWriter::new(),
                    info,
                    clock: None,
                })
                .collect(),
            gop_cache: GopCache::new(video, gop_cache_bytes),
            stats: LiveStreamStats::default(),
        }
    }

    /// The tracks' descriptions, for DESCRIBE and SETUP.
    pub fn tracks(&self) -> Vec<TrackInfo> {
        self.tracks.iter().map(|t| t.info.clone()).collect()
    }

    /// Sets where `track`'s RTP clock meets the wall clock: from the
    /// source's sender report (RFC 3550 §6.4.1), or from the start of a
    /// channel. Until a track has one, its first unit's arrival sets it.
    pub fn set_clock(&mut self, track: usize, mapping: ClockMapping) {
        if let Some(track) = self.tracks.get_mut(track) {
            track.clock = Some(mapping);
        }
    }

    /// Per track, where its RTP clock meets the wall clock, once known
    /// (its source's report or its first unit).
    pub fn clocks(&self) -> Vec<Option<ClockMapping>> {
        self.tracks.iter().map(|t| t.clock).collect()
    }

    /// Takes in a source's unit arrived at `now`/`wall`: cuts it into
    /// shared payloads and keeps it for joiners. The returned unit goes to
    /// every viewer.
    ///
    /// Errors: a track the path does not have, or a unit its packetizer
    /// cannot carry (counted; the stream goes on).
    pub fn publish(
        &mut self,
        unit: SourceUnit,
        now: Instant,
        wall: SystemTime,
    ) -> Result<Arc<LiveUnit>, LiveError> {
        let result = self.packetize(unit, now, wall);
        match &result {
            Ok(unit) => {
                self.stats.units += 1;
                self.stats.bytes += unit.bytes() as u64;
                self.gop_cache.push(unit);
            }
            Err(_) => self.stats.refused += 1,
        }
        result
    }

    fn packetize(
        &mut self,
        unit: SourceUnit,
        now: Instant,
        wall: SystemTime,
    ) -> Result<Arc<LiveUnit>, LiveError> {
        let track = self
            .tracks
            .get_mut(unit.track)
            .ok_or(LiveError::NoSuchTrack(unit.track))?;
        let clock_rate = track.info.codec.clock_rate();
        let clock = *track.clock.get_or_insert(ClockMapping {
            wall,
            rtp_timestamp: unit.rtp_timestamp,
        });
        let access_unit = AccessUnit {
            track: unit.track,
            dts: 0,
            pts: 0,
            duration: 0,
            keyframe: unit.keyframe,
            data: unit.data,
        };
        let payloads = track
            .packetizer
            .packetize(&access_unit, &mut track.writer)?;
        Ok(Arc::new(LiveUnit {
            track: unit.track,
            rtp_timestamp: unit.rtp_timestamp,
            wall: clock.wall_of(unit.rtp_timestamp, clock_rate),
            keyframe: unit.keyframe,
            video: track.info.codec.is_video(),
            payloads,
            received: now,
        }))
    }

    /// What a viewer joining now gets first: the last keyframe and the
    /// units since (parameter sets travel in-band before each keyframe).
    pub fn gop_cache(&self) -> impl ExactSizeIterator<Item = &Arc<LiveUnit>> + '_ {
        self.gop_cache.units()
    }

    /// Counters, as a plain copy.
    pub fn stats(&self) -> LiveStreamStats {
        LiveStreamStats {
            gop_cache_bytes: self.gop_cache.bytes(),
            gop_cache_overflows: self.gop_cache.overflows(),
            ..self.stats
        }
    }
}

#[cfg(test)]
mod tests {
    // Tests may read the clock: times here only need to be real instants.
    #![allow(clippy::disallowed_methods)]

    use super::*;
    use crate::media::CodecParams;
    use bytes::Bytes;
    use std::time::Duration;

    fn h264_track() -> TrackInfo {
        TrackInfo {
            index: 0,
            codec: CodecParams::H264 {
                sps: vec![Bytes::from_static(&[0x67, 0x42, 0xc0, 0x1e])],
                pps: vec![Bytes::from_static(&[0x68, 0xce, 0x3c, 0x80])],
                nal_length_size: 4,
                width: 320,
                height: 240,
            },
            timescale: 90_000,
            duration: 0,
        }
    }

    fn aac_track() -> TrackInfo {
        TrackInfo {
            index: 1,
            codec: CodecParams::Aac {
                config: Bytes::from_static(&[0x11, 0x90]),
                sample_rate: 48_000,
                channels: 2,
            },
            timescale: 48_000,
            duration: 0,
        }
    }

    /// One AVCC sample holding one NAL unit of `len` bytes.
    fn picture(idr: bool, len: usize) -> Bytes {
        let mut sample = (len as u32).to_be_bytes().to_vec();
        sample.push(if idr { 0x65 } else { 0x41 });
        sample.resize(4 + len, 0xab);
        sample.into()
    }

    fn video(rtp_timestamp: u32, idr: bool, len: usize) -> SourceUnit {
        SourceUnit {
            track: 0,
            rtp_timestamp,
            keyframe: idr,
            data: picture(idr, len),
        }
    }

    fn wall(secs: f64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs_f64(1_000.0 + secs)
    }

    #[test]
    fn units_are_cut_once_with_parameter_sets_before_keyframes() {
        let mut stream = LiveStream::new(vec![h264_track(), aac_track()], 1400, 1 << 20);
        assert_eq!(
            stream.tracks(),
            [h264_track(), aac_track()],
            "described as given"
        );
        let now = Instant::now();
        let key = stream
            .publish(video(1000, true, 3000), now, wall(0.0))
            .unwrap();
        assert!(key.keyframe && key.video);
        // SPS and PPS in a STAP-A or alone, then three FU-A packets.
        assert!(key.payloads.len() >= 4, "{} payloads", key.payloads.len());
        let first = key.payloads.iter().next().unwrap();
        assert!(
            matches!(first.bytes[0] & 0x1f, 24 | 7),
            "parameter sets first"
        );
        let markers: Vec<bool> = key.payloads.iter().map(|p| p.marker).collect();
        assert_eq!(markers.iter().filter(|&&m| m).count(), 1);
        assert!(markers.last().unwrap());
        let delta = stream
            .publish(video(4000, false, 100), now, wall(0.1))
            .unwrap();
        assert_eq!(
            delta.payloads.len(),
            1,
            "no parameter sets before a delta picture"
        );
        assert_eq!(stream.stats().units, 2);
        assert_eq!(stream.stats().bytes, (key.bytes() + delta.bytes()) as u64);
    }

    #[test]
    fn wall_times_follow_the_first_unit_or_the_sources_mapping() {
        let mut stream = LiveStream::new(vec![h264_track(), aac_track()], 1400, 1 << 20);
        let now = Instant::now();
        let first = stream
            .publish(video(90_000, true, 10), now, wall(5.0))
            .unwrap();
        assert_eq!(first.wall, wall(5.0), "the first unit sets the mapping");
        // Arriving late does not move its time: the mapping holds.
        let later = stream
            .publish(video(135_000, false, 10), now, wall(9.0))
            .unwrap();
        assert_eq!(later.wall, wall(5.5));
        // A sender report's mapping takes over (audio at 48 kHz here).
        stream.set_clock(
            1,
            ClockMapping {
                wall: wall(3.0),
                rtp_timestamp: 0,
            },
        );
        let audio = SourceUnit {
            track: 1,
            rtp_timestamp: 24_000,
            keyframe: true,
            data: Bytes::from_static(&[1, 2, 3]),
        };
        let audio = stream.publish(audio, now, wall(9.0)).unwrap();
        assert_eq!(audio.wall, wall(3.5));
        assert!(!audio.video);
    }

    #[test]
    fn joiners_get_the_last_group_and_bad_units_are_counted() {
        let mut stream = LiveStream::new(vec![h264_track()], 1400, 1 << 20);
        let now = Instant::now();
        stream.publish(video(0, false, 10), now, wall(0.0)).unwrap();
        stream
            .publish(video(3000, true, 10), now, wall(0.0))
            .unwrap();
        stream
            .publish(video(6000, false, 10), now, wall(0.0))
            .unwrap();
        let cached: Vec<u32> = stream.gop_cache().map(|u| u.rtp_timestamp).collect();
        assert_eq!(cached, [3000, 6000]);
        let stray = SourceUnit {
            track: 3,
            ..video(0, false, 1)
        };
        assert!(matches!(
            stream.publish(stray, now, wall(0.0)),
            Err(LiveError::NoSuchTrack(3))
        ));
        let broken = SourceUnit {
            data: Bytes::from_static(&[0, 0, 0, 9, 0x41]),
            ..video(9000, false, 1)
        };
        assert!(matches!(
            stream.publish(broken, now, wall(0.0)),
            Err(LiveError::Codec(_))
        ));
        let stats = stream.stats();
        assert_eq!((stats.units, stats.refused), (3, 2));
        assert_eq!(
            stats.gop_cache_bytes,
            stream.gop_cache().map(|u| u.bytes()).sum::<usize>()
        );
        assert_eq!(stats.gop_cache_overflows, 0);
        // A group larger than the cache is dropped, and counted.
        let mut small = LiveStream::new(vec![h264_track()], 1400, 100);
        small.publish(video(0, true, 200), now, wall(0.0)).unwrap();
        assert_eq!(small.stats().gop_cache_overflows, 1);
        assert_eq!(small.stats().gop_cache_bytes, 0);
    }
}
