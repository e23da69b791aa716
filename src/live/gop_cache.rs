//! The units a joining viewer needs to show a picture at once: the last
//! keyframe of the path's video and everything after it, audio included,
//! in arrival order. Bounded in bytes: a source sending far faster than
//! its timestamps, or never a keyframe, cannot grow it without limit.

use std::collections::VecDeque;
use std::sync::Arc;

use super::LiveUnit;

/// Default byte limit of a GOP cache: several seconds of a 10 Mbit/s
/// stream.
pub const DEFAULT_GOP_CACHE_BYTES: usize = 8 * 1024 * 1024;

/// See the module docs.
#[derive(Debug)]
pub struct GopCache {
    units: VecDeque<Arc<LiveUnit>>,
    bytes: usize,
    max_bytes: usize,
    /// The track whose keyframes start a group: the first video track.
    video_track: Option<usize>,
    /// Times the cache overflowed and was emptied.
    overflows: u64,
}

impl GopCache {
    /// An empty cache for a path whose first video track is
    /// `video_track` (`None`: audio only, nothing is cached and joiners
    /// start at the live edge), holding at most `max_bytes` of payload.
    pub fn new(video_track: Option<usize>, max_bytes: usize) -> Self {
        GopCache {
            units: VecDeque::new(),
            bytes: 0,
            max_bytes,
            video_track,
            overflows: 0,
        }
    }

    /// Takes in the path's next unit.
    pub fn push(&mut self, unit: &Arc<LiveUnit>) {
        let Some(video) = self.video_track else {
            return;
        };
        if unit.track == video && unit.keyframe {
            self.units.clear();
            self.bytes = 0;
        } else if self.units.is_empty() {
            // Nothing decodable before the first keyframe.
            return;
        }
        self.bytes += unit.bytes();
        self.units.push_back(unit.clone());
        if self.bytes > self.max_bytes {
            // A group too large to replay: joiners wait for the next
            // keyframe rather than the server holding it.
            self.overflows += 1;
            self.units.clear();
            self.bytes = 0;
        }
    }

    /// The cached units, oldest (the keyframe) first.
    pub fn units(&self) -> impl ExactSizeIterator<Item = &Arc<LiveUnit>> + '_ {
        self.units.iter()
    }

    /// Payload bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// How many times a group outgrew the limit and was dropped.
    pub fn overflows(&self) -> u64 {
        self.overflows
    }
}

#[cfg(test)]
mod tests {
    // Tests may read the clock: times here only need to be real instants.
    #![allow(clippy::disallowed_methods)]

    use super::*;
    use crate::codec::PayloadWriter;
    use std::time::{Instant, SystemTime};

    fn unit(track: usize, keyframe: bool, len: usize) -> Arc<LiveUnit> {
        let mut writer = PayloadWriter::new();
        writer.push(true, 0, &[&vec![0u8; len]]);
        Arc::new(LiveUnit {
            track,
            rtp_timestamp: 0,
            wall: SystemTime::UNIX_EPOCH,
            keyframe,
            video: track == 0,
            payloads: writer.finish(),
            received: Instant::now(),
        })
    }

    fn tracks(cache: &GopCache) -> Vec<(usize, bool)> {
        cache.units().map(|u| (u.track, u.keyframe)).collect()
    }

    #[test]
    fn holds_the_last_keyframe_and_what_followed_it() {
        let mut cache = GopCache::new(Some(0), 1000);
        cache.push(&unit(1, true, 10));
        cache.push(&unit(0, false, 10));
        assert_eq!(cache.units().len(), 0, "nothing before the first keyframe");
        cache.push(&unit(0, true, 100));
        cache.push(&unit(1, true, 10));
        cache.push(&unit(0, false, 20));
        assert_eq!(tracks(&cache), [(0, true), (1, true), (0, false)]);
        assert_eq!(cache.bytes(), 130);
        cache.push(&unit(0, true, 50));
        assert_eq!(tracks(&cache), [(0, true)], "a new group replaces the old");
        assert_eq!(cache.bytes(), 50);
        // An audio keyframe does not start a group.
        cache.push(&unit(1, true, 10));
        assert_eq!(cache.units().len(), 2);
    }

    #[test]
    fn a_group_over_the_limit_is_dropped_until_the_next_keyframe() {
        let mut cache = GopCache::new(Some(0), 100);
        cache.push(&unit(0, true, 60));
        cache.push(&unit(0, false, 40));
        assert_eq!(cache.bytes(), 100, "up to the limit is kept");
        assert_eq!(cache.overflows(), 0);
        cache.push(&unit(0, false, 1));
        assert_eq!((cache.units().len(), cache.bytes()), (0, 0));
        assert_eq!(cache.overflows(), 1);
        cache.push(&unit(0, false, 1));
        assert_eq!(cache.units().len(), 0, "waits for a keyframe");
        cache.push(&unit(0, true, 1));
        assert_eq!(cache.units().len(), 1);
        cache.push(&unit(0, false, 100));
        assert_eq!(cache.overflows(), 2, "each overflow counted");
    }

    #[test]
    fn audio_only_paths_cache_nothing() {
        let mut cache = GopCache::new(None, 1000);
        cache.push(&unit(0, true, 10));
        assert_eq!(cache.units().len(), 0);
    }
}
