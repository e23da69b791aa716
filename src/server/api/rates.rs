//! Bitrates from counters sampled once a second: per session (bytes sent)
//! and per path (a live path's bytes in, or its file sessions' mean), with
//! each path's last minutes kept for the status page's chart.
//!
//! Session counters are published once a second by their own tasks, out
//! of step with the sampler: a rate over one second would swing between
//! nothing and double, so rates are taken over a window of several
//! samples.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::stats::{LivePathStats, PlayState, SessionStats};

/// Samples a rate is taken over (with one second between samples: a
/// five-second window).
const WINDOW: usize = 6;

/// Samples of a path's bitrate kept: five minutes at one a second.
pub(super) const HISTORY: usize = 300;

/// A counter's latest samples, oldest first.
#[derive(Debug, Default)]
struct Counter(VecDeque<(Instant, u64)>);

impl Counter {
    fn push(&mut self, at: Instant, value: u64) {
        if self.0.len() == WINDOW {
            self.0.pop_front();
        }
        self.0.push_back((at, value));
    }

    /// Bits per second over the window, from bytes; `None` with less
    /// than two samples or no time between them.
    fn bits_per_second(&self) -> Option<f64> {
        let (first_at, first) = *self.0.front()?;
        let (last_at, last) = *self.0.back()?;
        let elapsed = last_at.checked_duration_since(first_at)?;
        (elapsed > Duration::ZERO)
            .then(|| last.saturating_sub(first) as f64 * 8.0 / elapsed.as_secs_f64())
    }
}

/// See the module docs.
#[derive(Debug, Default)]
pub(super) struct Rates {
    sessions: HashMap<String, Counter>,
    live: HashMap<String, Counter>,
    /// Each path's bitrate, one value per sample, oldest first.
    history: HashMap<String, VecDeque<Option<f64>>>,
}

impl Rates {
    /// Takes one sample at `now` of every session's and live path's
    /// counters; forgets sessions and paths that have gone.
    pub(super) fn sample(
        &mut self,
        now: Instant,
        sessions: &[SessionStats],
        live: &[LivePathStats],
    ) {
        self.sessions
            .retain(|id, _| sessions.iter().any(|s| &s.session_id == id));
        for session in sessions {
            let bytes = session.tracks.iter().map(|(_, t)| t.bytes_sent).sum();
            self.sessions
                .entry(session.session_id.clone())
                .or_default()
                .push(now, bytes);
        }
        self.live
            .retain(|mount, _| live.iter().any(|p| &p.mount == mount));
        for path in live {
            self.live
                .entry(path.mount.clone())
                .or_default()
                .push(now, path.stream.bytes);
        }
        let mut paths: HashMap<String, Option<f64>> = HashMap::new();
        for session in sessions {
            paths.entry(session.path.clone()).or_insert(None);
        }
        for path in live {
            paths.insert(path.mount.clone(), None);
        }
        for (path, rate) in paths.iter_mut() {
            *rate = self.compute_path_bps(path, sessions);
        }
        self.history.retain(|path, _| paths.contains_key(path));
        for (path, rate) in paths {
            let history = self.history.entry(path).or_default();
            if history.len() == HISTORY {
                history.pop_front();
            }
            history.push_back(rate);
        }
    }

    fn compute_path_bps(&self, path: &str, sessions: &[SessionStats]) -> Option<f64> {
        if let Some(live) = self.live.get(path) {
            return live.bits_per_second();
        }
        let rates: Vec<f64> = sessions
            .iter()
            .filter(|s| s.path == path && s.state == PlayState::Playing)
            .filter_map(|s| self.session_bps(&s.session_id))
            .collect();
        (!rates.is_empty()).then(|| rates.iter().sum::<f64>() / rates.len() as f64)
    }

    /// A session's bitrate over the last seconds.
    pub(super) fn session_bps(&self, session_id: &str) -> Option<f64> {
        self.sessions.get(session_id)?.bits_per_second()
    }

    /// A path's bitrate at the latest sample.
    pub(super) fn path_bps(&self, path: &str) -> Option<f64> {
        *self.history.get(path)?.back()?
    }

    /// A path's bitrate over the last minutes, oldest first.
    pub(super) fn path_history(&self, path: &str) -> Vec<Option<f64>> {
        self.history
            .get(path)
            .map(|h| h.iter().copied().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::stream::LiveStreamStats;
    use crate::stats::{TrackStats, TransportKind};

    fn session(id: &str, path: &str, bytes: u64) -> SessionStats {
        SessionStats {
            session_id: id.into(),
            path: path.into(),
            client: "127.0.0.1:7000".parse().unwrap(),
            transport: TransportKind::Udp,
            state: PlayState::Playing,
            tracks: vec![(
                0,
                TrackStats {
                    bytes_sent: bytes,
                    ..TrackStats::default()
                },
            )],
            codecs: vec!["H264"],
        }
    }

    fn live(mount: &str, bytes: u64) -> LivePathStats {
        LivePathStats {
            mount: mount.into(),
            viewers: 0,
            codecs: Vec::new(),
            stream: LiveStreamStats {
                bytes,
                ..LiveStreamStats::default()
            },
        }
    }

    #[test]
    fn rates_come_from_the_window_and_paths_keep_their_history() {
        let mut rates = Rates::default();
        let start = Instant::now();
        let second = Duration::from_secs(1);
        rates.sample(
            start,
            &[session("A", "/f", 0), session("B", "/f", 0)],
            &[live("/l", 0)],
        );
        assert_eq!(rates.session_bps("A"), None, "one sample is no rate");
        assert_eq!(rates.path_history("/f"), [None]);
        // A publishes in steps out of phase with the sampler; B steadily.
        for (i, a_bytes) in [0u64, 2000, 2000, 4000, 4000, 6000, 6000, 8000]
            .iter()
            .enumerate()
        {
            let at = start + second * (i as u32 + 1);
            let b_bytes = 500 * (i as u64 + 1);
            let l_bytes = 1000 * (i as u64 + 1);
            rates.sample(
                at,
                &[session("A", "/f", *a_bytes), session("B", "/f", b_bytes)],
                &[live("/l", l_bytes)],
            );
        }
        // Over the last 5 s A went 2000 -> 8000 bytes: 9600 bit/s; B 4000 bit/s.
        assert_eq!(rates.session_bps("A"), Some(9600.0));
        assert_eq!(rates.session_bps("B"), Some(4000.0));
        assert_eq!(rates.path_bps("/f"), Some(6800.0), "mean of its viewers");
        assert_eq!(rates.path_bps("/l"), Some(8000.0), "a live path's intake");
        assert_eq!(rates.path_history("/l").len(), 9);
        rates.sample(start + second * 10, &[session("A", "/f", 9000)], &[]);
        assert_eq!(
            rates.session_bps("B"),
            None,
            "an ended session is forgotten"
        );
        assert!(rates.path_history("/l").is_empty(), "a gone path too");
    }

    #[test]
    fn history_is_bounded() {
        let mut rates = Rates::default();
        let start = Instant::now();
        for i in 0..(HISTORY as u32 + 20) {
            rates.sample(
                start + Duration::from_secs(u64::from(i)),
                &[],
                &[live("/l", u64::from(i) * 100)],
            );
        }
        let history = rates.path_history("/l");
        assert_eq!(history.len(), HISTORY);
        assert_eq!(history.last(), Some(&Some(800.0)));
    }
}
