//! Failed authentications per client address (issue: "failed attempts
//! are logged and rate-limited per address"): after
//! [`MAX_FAILURES`] within [`WINDOW`] an address is answered without its
//! credentials being checked until the window ends. Pure: driven by the
//! request's `now`; bounded: at most [`MAX_TRACKED`] addresses.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failures an address may have within [`WINDOW`].
pub const MAX_FAILURES: u32 = 5;
/// The window failures count in, from an address's first failure.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at most; beyond, the oldest windows are dropped.
pub const MAX_TRACKED: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Failures {
    since: Instant,
    count: u32,
}

/// Recent failures by client address.
#[derive(Debug, Default)]
pub struct FailedAttempts {
    by_address: HashMap<IpAddr, Failures>,
}

impl FailedAttempts {
    /// When `client` is blocked at `now`: how long until it may try again.
    pub fn blocked_for(&self, client: IpAddr, now: Instant) -> Option<Duration> {
        let failures = self.by_address.get(&client.to_canonical())?;
        let elapsed = now.saturating_duration_since(failures.since);
        (failures.count >= MAX_FAILURES && elapsed < WINDOW).then(|| WINDOW - elapsed)
    }

    /// Counts a failure of `client` at `now`; true when it has just
    /// reached the limit.
    pub fn record_failure(&mut self, client: IpAddr, now: Instant) -> bool {
        let client = client.to_canonical();
        if !self.by_address.contains_key(&client) && self.by_address.len() >= MAX_TRACKED {
            self.by_address
                .retain(|_, f| now.saturating_duration_since(f.since) < WINDOW);
            if self.by_address.len() >= MAX_TRACKED {
                let oldest = self
                    .by_address
                    .iter()
                    .min_by_key(|(_, f)| f.since)
                    .map(|(address, _)| *address);
                if let Some(oldest) = oldest {
                    self.by_address.remove(&oldest);
                }
            }
        }
        let failures = self.by_address.entry(client).or_insert(Failures {
            since: now,
            count: 0,
        });
        if now.saturating_duration_since(failures.since) >= WINDOW {
            *failures = Failures {
                since: now,
                count: 0,
            };
        }
        failures.count += 1;
        failures.count == MAX_FAILURES
    }

    /// Forgets `client`'s failures: it has just authenticated.
    pub fn record_success(&mut self, client: IpAddr) {
        self.by_address.remove(&client.to_canonical());
    }

    /// Addresses remembered.
    pub fn tracked(&self) -> usize {
        self.by_address.len()
    }
}

#[cfg(test)]
mod tests {
    // Tests take a real `Instant` as their clock's origin.
    #![allow(clippy::disallowed_methods)]
    use super::*;

    #[test]
    fn an_address_is_blocked_after_its_failures_until_the_window_ends() {
        let mut attempts = FailedAttempts::default();
        let start = Instant::now();
        let client: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        for n in 1..MAX_FAILURES {
            assert!(!attempts.record_failure(client, start + Duration::from_secs(u64::from(n - 1))));
            assert_eq!(attempts.blocked_for(client, start), None);
        }
        assert!(attempts.record_failure(client, start + Duration::from_secs(10)));
        assert_eq!(
            attempts.blocked_for(client, start + Duration::from_secs(20)),
            Some(WINDOW - Duration::from_secs(20))
        );
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert!(attempts.blocked_for(mapped, start).is_some());
        assert_eq!(attempts.blocked_for(other, start), None);
        assert_eq!(attempts.blocked_for(client, start + WINDOW), None);
        // A failure after the window starts a new count.
        assert!(!attempts.record_failure(client, start + WINDOW));
        assert_eq!(attempts.blocked_for(client, start + WINDOW), None);
    }

    #[test]
    fn success_forgets_failures() {
        let mut attempts = FailedAttempts::default();
        let now = Instant::now();
        let client: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..MAX_FAILURES - 1 {
            attempts.record_failure(client, now);
        }
        attempts.record_success(client);
        attempts.record_failure(client, now);
        assert_eq!(attempts.blocked_for(client, now), None);
        assert_eq!(attempts.tracked(), 1);
    }

    #[test]
    fn memory_is_bounded_dropping_expired_then_oldest() {
        let mut attempts = FailedAttempts::default();
        let start = Instant::now();
        let address = |n: usize| IpAddr::from(std::net::Ipv6Addr::from(n as u128 + 1));
        for n in 0..MAX_TRACKED {
            attempts.record_failure(address(n), start + Duration::from_millis(n as u64));
        }
        assert_eq!(attempts.tracked(), MAX_TRACKED);
        // Full and nothing expired: the oldest goes.
        let late = start + Duration::from_secs(1);
        attempts.record_failure(address(MAX_TRACKED), late);
        assert_eq!(attempts.tracked(), MAX_TRACKED);
        for _ in 1..MAX_FAILURES {
            attempts.record_failure(address(1), late);
        }
        assert!(attempts.blocked_for(address(1), late).is_some());
        // Window over for all but the newest: they go at once.
        let much_later = start + WINDOW + Duration::from_millis(MAX_TRACKED as u64);
        attempts.record_failure(address(MAX_TRACKED + 1), much_later);
        assert_eq!(attempts.tracked(), 1);
    }

    #[test]
    fn failures_exactly_a_window_old_have_expired() {
        let mut attempts = FailedAttempts::default();
        let start = Instant::now();
        let address = |n: usize| IpAddr::from(std::net::Ipv6Addr::from(n as u128 + 1));
        for n in 0..MAX_TRACKED {
            attempts.record_failure(address(n), start);
        }
        attempts.record_failure(address(MAX_TRACKED), start + WINDOW);
        assert_eq!(attempts.tracked(), 1, "every full window dropped at once");
    }
}
