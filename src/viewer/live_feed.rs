//! What a viewer of a live path has been handed and not yet sent: the GOP
//! cache when it joined, then each unit as the source produces it. Bounded
//! in bytes, so a viewer whose task falls behind loses its own units
//! (video then resumes at a keyframe) and never holds the source up.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::live::LiveUnit;

/// Default byte limit of a viewer's queue of live units. The bytes are
/// shared with every other viewer; the limit bounds how far behind the
/// live edge a viewer may fall, not memory.
pub const DEFAULT_LIVE_QUEUE_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug)]
pub(super) struct LiveFeed {
    /// The URL path of the live path (its mount).
    pub(super) path: String,
    queue: VecDeque<Arc<LiveUnit>>,
    bytes: usize,
    max_bytes: usize,
    /// The source has gone: what is queued is the last.
    pub(super) ended: bool,
    /// Wall-clock time of the latest join, for the RTP-Info of a track
    /// with nothing queued yet.
    pub(super) joined_at: Option<std::time::SystemTime>,
}

/// What became of a unit offered to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Offered {
    Queued,
    /// Over the byte limit: the unit is dropped.
    Overflow,
}

impl LiveFeed {
    pub(super) fn new(path: String, max_bytes: usize) -> Self {
        LiveFeed {
            path,
            queue: VecDeque::new(),
            bytes: 0,
            max_bytes,
            ended: false,
            joined_at: None,
        }
    }

    pub(super) fn offer(&mut self, unit: Arc<LiveUnit>) -> Offered {
        if self.bytes + unit.bytes() > self.max_bytes {
            return Offered::Overflow;
        }
        self.bytes += unit.bytes();
        self.queue.push_back(unit);
        Offered::Queued
    }

    pub(super) fn front(&self) -> Option<&Arc<LiveUnit>> {
        self.queue.front()
    }

    pub(super) fn pop(&mut self) -> Option<Arc<LiveUnit>> {
        let unit = self.queue.pop_front()?;
        self.bytes -= unit.bytes();
        Some(unit)
    }

    /// The first queued unit of `track`, for RTP-Info.
    pub(super) fn first_of(&self, track: usize) -> Option<&Arc<LiveUnit>> {
        self.queue.iter().find(|u| u.track == track)
    }

    pub(super) fn clear(&mut self) {
        self.queue.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    // Tests may read the clock: times here only need to be real instants.
    #![allow(clippy::disallowed_methods)]

    use super::*;
    use crate::codec::PayloadWriter;
    use std::time::{Instant, SystemTime};

    fn unit(track: usize, len: usize) -> Arc<LiveUnit> {
        let mut writer = PayloadWriter::new();
        writer.push(true, 0, &[&vec![0u8; len]]);
        Arc::new(LiveUnit {
            track,
            rtp_timestamp: len as u32,
            wall: SystemTime::UNIX_EPOCH,
            keyframe: false,
            video: track == 0,
            payloads: writer.finish(),
            received: Instant::now(),
        })
    }

    #[test]
    fn units_queue_up_to_the_byte_limit_and_leave_in_order() {
        let mut feed = LiveFeed::new("/live/a".into(), 100);
        assert!(feed.front().is_none());
        assert_eq!(feed.offer(unit(0, 60)), Offered::Queued);
        assert_eq!(
            feed.offer(unit(1, 40)),
            Offered::Queued,
            "exactly the limit"
        );
        assert_eq!(feed.offer(unit(0, 1)), Offered::Overflow);
        assert_eq!(feed.front().map(|u| u.bytes()), Some(60));
        assert_eq!(feed.first_of(1).map(|u| u.bytes()), Some(40));
        assert_eq!(feed.first_of(0).map(|u| u.bytes()), Some(60));
        assert!(feed.first_of(2).is_none());
        assert_eq!(feed.pop().map(|u| u.bytes()), Some(60));
        // Room again for what left.
        assert_eq!(feed.offer(unit(0, 60)), Offered::Queued);
        assert_eq!(feed.offer(unit(0, 1)), Offered::Overflow);
        assert_eq!(feed.pop().map(|u| u.track), Some(1));
        assert_eq!(feed.pop().map(|u| u.bytes()), Some(60));
        assert!(feed.pop().is_none());
        assert_eq!(feed.offer(unit(0, 100)), Offered::Queued, "empty again");
    }

    #[test]
    fn clearing_empties_the_queue_and_its_byte_count() {
        let mut feed = LiveFeed::new("/live/a".into(), 100);
        feed.offer(unit(0, 80));
        feed.clear();
        assert!(feed.front().is_none());
        assert_eq!(feed.offer(unit(0, 100)), Offered::Queued);
    }
}
