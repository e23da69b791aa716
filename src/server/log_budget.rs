//! A bound on how many lines a kind of event the network can provoke at
//! will (unparseable input, failed TLS handshakes, refused connections)
//! writes to the log: one client must not be able to fill the disk.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines of one kind allowed per window.
const LINES_PER_WINDOW: u32 = 10;

/// The window.
const WINDOW: Duration = Duration::from_secs(10);

/// Counts the lines of one kind of event within the current window.
#[derive(Debug, Default)]
pub(super) struct LogBudget(Mutex<Window>);

#[derive(Debug, Default)]
struct Window {
    started: Option<Instant>,
    logged: u32,
    /// Events not logged since the last line that was.
    suppressed: u64,
}

impl LogBudget {
    /// Whether an event at `now` may be logged: `Some(n)` with the number
    /// of events left unlogged since the last line (for that line to
    /// say), `None` when this window's lines are spent.
    pub(super) fn admit(&self, now: Instant) -> Option<u64> {
        let mut window = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if window
            .started
            .is_none_or(|started| now.duration_since(started) >= WINDOW)
        {
            window.started = Some(now);
            window.logged = 0;
        }
        if window.logged >= LINES_PER_WINDOW {
            window.suppressed += 1;
            return None;
        }
        window.logged += 1;
        Some(std::mem::take(&mut window.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_lines_per_window_then_the_next_window_says_how_many_were_left_out() {
        let budget = LogBudget::default();
        let t0 = Instant::now();
        for _ in 0..LINES_PER_WINDOW {
            assert_eq!(budget.admit(t0), Some(0));
        }
        assert_eq!(budget.admit(t0), None);
        assert_eq!(budget.admit(t0 + Duration::from_secs(9)), None);
        assert_eq!(budget.admit(t0 + WINDOW), Some(2));
        assert_eq!(budget.admit(t0 + WINDOW), Some(0));
    }
}
