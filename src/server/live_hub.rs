//! The live paths of the running server: each path's [`LiveStream`] and
//! the viewers subscribed to it, behind one lock per path. A source's task
//! (channel, publisher, relay, camera) publishes into its path; each unit
//! is packetized once and handed to every subscriber's viewer, whose own
//! task sends it.
//!
//! Lock order: the hub's map, then a path, then a viewer; nothing takes
//! them the other way round.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use tokio::sync::Notify;

use super::viewer_table::{lock, SharedViewer};
use crate::live::stream::LiveStream;
use crate::live::{ClockMapping, SourceUnit};
use crate::media::TrackInfo;
use crate::source::Presentation;
use crate::stats::LivePathStats;

/// Every live path by mount.
#[derive(Debug, Default)]
pub(super) struct LiveHub {
    paths: Mutex<HashMap<String, Arc<LivePath>>>,
    /// Woken when a path appears, for requests waiting for a publisher.
    inserted: Notify,
}

/// One live path: see the module docs.
#[derive(Debug)]
pub(super) struct LivePath {
    mount: String,
    tracks: Arc<[TrackInfo]>,
    state: Mutex<PathState>,
}

#[derive(Debug)]
struct PathState {
    stream: LiveStream,
    subscribers: Vec<Subscriber>,
    ended: bool,
}

#[derive(Debug)]
struct Subscriber {
    session_id: String,
    viewer: SharedViewer,
    notify: Arc<Notify>,
}

fn lock_or_recover<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl LiveHub {
    /// Every path's counters, ordered by mount.
    pub(super) fn stats(&self) -> Vec<LivePathStats> {
        let paths: Vec<_> = lock_or_recover(&self.paths).values().cloned().collect();
        let mut stats: Vec<_> = paths.iter().map(|path| path.stats()).collect();
        stats.sort_by(|a, b| a.mount.cmp(&b.mount));
        stats
    }

    /// The presentation at `mount` if a live path is there.
    pub(super) fn describe(&self, mount: &str) -> Option<Presentation> {
        let path = self.get(mount)?;
        Some(Presentation::Live {
            tracks: path.tracks.clone(),
        })
    }

    /// The live path at `mount`.
    pub(super) fn get(&self, mount: &str) -> Option<Arc<LivePath>> {
        lock_or_recover(&self.paths).get(mount).cloned()
    }

    /// Puts a new source's stream at `mount`; a path already there (a
    /// publisher taken over) ends, its viewers told with BYE.
    pub(super) fn insert(&self, mount: String, stream: LiveStream) -> Arc<LivePath> {
        let path = Arc::new(LivePath {
            tracks: stream.tracks().into(),
            mount: mount.clone(),
            state: Mutex::new(PathState {
                stream,
                subscribers: Vec::new(),
                ended: false,
            }),
        });
        let replaced = lock_or_recover(&self.paths).insert(mount, path.clone());
        if let Some(old) = replaced {
            old.end();
        }
        self.inserted.notify_waiters();
        path
    }

    /// The presentation at `mount` once a source feeds it, waiting at most
    /// `wait` for one to appear (a viewer arriving just before its
    /// publisher).
    pub(super) async fn describe_within(
        &self,
        mount: &str,
        wait: std::time::Duration,
    ) -> Option<Presentation> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let inserted = self.inserted.notified();
            tokio::pin!(inserted);
            // Registered before looking, so an insertion in between wakes it.
            inserted.as_mut().enable();
            if let Some(live) = self.describe(mount) {
                return Some(live);
            }
            if tokio::time::timeout_at(deadline, inserted).await.is_err() {
                return None;
            }
        }
    }

    /// Takes `path` away (its source has gone) unless a newer source has
    /// replaced it already; its viewers get BYE either way.
    pub(super) fn remove(&self, path: &Arc<LivePath>) {
        {
            let mut paths = lock_or_recover(&self.paths);
            if paths.get(&path.mount).is_some_and(|p| Arc::ptr_eq(p, path)) {
                paths.remove(&path.mount);
            }
        }
        path.end();
    }
}

impl LiveHub {
    /// Takes away whatever path is at `mount` (its source was removed
    /// from the configuration); its viewers get BYE.
    pub(super) fn remove_mount(&self, mount: &str) {
        let removed = lock_or_recover(&self.paths).remove(mount);
        if let Some(path) = removed {
            path.end();
        }
    }
}

impl LivePath {
    /// The mount it is served at.
    pub(super) fn mount(&self) -> &str {
        &self.mount
    }

    /// Sets where `track`'s RTP clock meets the wall clock (RFC 3550
    /// §6.4.1), from the source.
    pub(super) fn set_clock(&self, track: usize, mapping: ClockMapping) {
        lock_or_recover(&self.state)
            .stream
            .set_clock(track, mapping);
    }

    /// Packetizes a source's unit once and hands it to every subscriber.
    pub(super) fn publish(&self, unit: SourceUnit, now: Instant, wall: SystemTime) {
        let mut state = lock_or_recover(&self.state);
        let track = unit.track;
        match state.stream.publish(unit, now, wall) {
            Ok(unit) => {
                for subscriber in &state.subscribers {
                    if lock(&subscriber.viewer).push_live(&unit) {
                        subscriber.notify.notify_one();
                    }
                }
            }
            Err(error) => {
                tracing::debug!(mount = %self.mount, track, %error, "live unit refused");
            }
        }
    }

    /// Starts the viewer of `session_id` at the path's GOP cache and
    /// subscribes it to what follows (once, however often it joins); false
    /// when the path has ended.
    pub(super) fn join(
        &self,
        session_id: &str,
        viewer: &SharedViewer,
        notify: Arc<Notify>,
    ) -> bool {
        let mut state = lock_or_recover(&self.state);
        if state.ended {
            return false;
        }
        let clocks = state.stream.clocks();
        lock(viewer).join_live(state.stream.gop_cache(), &clocks, SystemTime::now());
        if !state.subscribers.iter().any(|s| s.session_id == session_id) {
            state.subscribers.push(Subscriber {
                session_id: session_id.to_string(),
                viewer: viewer.clone(),
                notify,
            });
        }
        true
    }

    /// Unsubscribes the viewer of `session_id` (its session ended).
    pub(super) fn leave(&self, session_id: &str) {
        lock_or_recover(&self.state)
            .subscribers
            .retain(|s| s.session_id != session_id);
    }

    /// Ends the path: every viewer sends what it has queued, then BYE.
    fn end(&self) {
        let mut state = lock_or_recover(&self.state);
        state.ended = true;
        for subscriber in state.subscribers.drain(..) {
            lock(&subscriber.viewer).live_source_ended();
            subscriber.notify.notify_one();
        }
    }

    /// Its counters.
    pub(super) fn stats(&self) -> LivePathStats {
        let state = lock_or_recover(&self.state);
        LivePathStats {
            mount: self.mount.clone(),
            viewers: state.subscribers.len(),
            codecs: self.tracks.iter().map(|t| t.codec.name()).collect(),
            stream: state.stream.stats(),
        }
    }
}
