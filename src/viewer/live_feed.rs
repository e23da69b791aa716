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
