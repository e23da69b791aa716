//! The viewers of all sessions, each behind a lock of its own, where each
//! one's RTCP comes from, and their published stats. The RTSP handler
//! reaches viewers through [`HandlerViewers`]; session tasks and the RTCP
//! receiver reach them directly, never through the handler's lock.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::rtsp::handler::RtcpSource;
use crate::stats::{EndedTotals, SessionStats, StatsSnapshot, TransportKind};
use crate::viewer::Viewer;

/// One viewer, shared by its session task, the handler and the RTCP
/// receiver.
pub(super) type SharedViewer = Arc<Mutex<Viewer>>;

/// Locks a viewer; a poisoned lock (a panic elsewhere) still yields it,
/// since the viewer's state stays consistent per call.
pub(super) fn lock(viewer: &Mutex<Viewer>) -> MutexGuard<'_, Viewer> {
    viewer
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Poison-tolerant lock of a table: a panic cannot leave a map
/// half-updated.
fn lock_map<T>(map: &Mutex<T>) -> MutexGuard<'_, T> {
    map.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Debug, Default)]
struct Routes {
    by_source: HashMap<RtcpSource, SharedViewer>,
    by_session: HashMap<String, Vec<RtcpSource>>,
}

/// Published stats: each running session's latest, and what the ended
/// ones sent, per path and transport.
#[derive(Debug, Default)]
struct StatsBook {
    running: HashMap<String, SessionStats>,
    ended: BTreeMap<(String, TransportKind), EndedTotals>,
}

/// The table; see the module docs.
#[derive(Debug, Default)]
pub(super) struct ViewerTable {
    viewers: Mutex<HashMap<String, SharedViewer>>,
    routes: Mutex<Routes>,
    stats: Mutex<StatsBook>,
}

impl ViewerTable {
    /// Takes the viewer of a new session.
    pub(super) fn insert(&self, session_id: &str, viewer: Viewer) {
        lock_map(&self.viewers).insert(session_id.to_string(), Arc::new(Mutex::new(viewer)));
    }

    /// The viewer of `session_id`.
    pub(super) fn get(&self, session_id: &str) -> Option<SharedViewer> {
        lock_map(&self.viewers).get(session_id).cloned()
    }

    /// Sends RTCP from `sources` to the viewer of `session_id`, replacing
    /// its earlier routes.
    pub(super) fn route(&self, session_id: &str, sources: Vec<RtcpSource>) {
        let Some(viewer) = self.get(session_id) else {
            return;
        };
        let mut routes = lock_map(&self.routes);
        for old in routes.by_session.remove(session_id).unwrap_or_default() {
            routes.by_source.remove(&old);
        }
        for source in &sources {
            routes.by_source.insert(*source, viewer.clone());
        }
        routes.by_session.insert(session_id.to_string(), sources);
    }

    /// The viewer RTCP from `source` belongs to.
    pub(super) fn for_rtcp(&self, source: &RtcpSource) -> Option<SharedViewer> {
        lock_map(&self.routes).by_source.get(source).cloned()
    }

    /// Forgets a finished session: its viewer, routes and stats, whose
    /// counters go to the ended sessions' totals.
    pub(super) fn remove(&self, session_id: &str) {
        lock_map(&self.viewers).remove(session_id);
        let mut routes = lock_map(&self.routes);
        for source in routes.by_session.remove(session_id).unwrap_or_default() {
            routes.by_source.remove(&source);
        }
        drop(routes);
        let mut book = lock_map(&self.stats);
        if let Some(last) = book.running.remove(session_id) {
            book.ended
                .entry((last.path.clone(), last.transport))
                .or_default()
                .add(&last);
        }
    }

    /// Replaces the published stats of a session.
    pub(super) fn publish(&self, stats: SessionStats) {
        lock_map(&self.stats)
            .running
            .insert(stats.session_id.clone(), stats);
    }

    /// Every session's latest published stats, ordered by session id.
    pub(super) fn stats(&self) -> Vec<SessionStats> {
        self.snapshot().running
    }

    /// The running sessions' stats and the ended ones' totals, copied
    /// under one short lock of the stats alone.
    pub(super) fn snapshot(&self) -> StatsSnapshot {
        let book = lock_map(&self.stats);
        let mut running: Vec<SessionStats> = book.running.values().cloned().collect();
        let ended = book
            .ended
            .iter()
            .map(|(label, totals)| (label.clone(), *totals))
            .collect();
        drop(book);
        running.sort_by(|a, b| a.session_id.cmp(&b.session_id));
        StatsSnapshot { running, ended }
    }
}
