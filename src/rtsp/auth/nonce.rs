//! Digest nonces (RFC 7616 §3.3, §5.4): random, bound to this server and
//! the client's address by a keyed hash, and expiring.
//!
//! A nonce is hex of `issued (8 bytes, ms since the keeper's epoch) ||
//! random (8 bytes) || HMAC-SHA-256(key, issued || random || client IP)`
//! cut to 16 bytes. The server keeps no table of nonces: it checks the tag
//! and the age.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use rand::{rngs::StdRng, Rng};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::password::{from_hex, hex};

/// How long a nonce is accepted; after that the client is challenged
/// again with `stale=true` and answers without asking its user.
pub const NONCE_LIFETIME: Duration = Duration::from_secs(300);

const TAG_BYTES: usize = 16;

/// What a nonce a client answered is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    /// Issued here, to this address, within its lifetime.
    Fresh,
    /// Issued here to this address, but too long ago.
    Stale,
    /// Not one of ours (forged, altered, another server's or restart's, or
    /// issued to another address).
    Foreign,
}

/// Issues and checks nonces.
#[derive(Debug)]
pub struct NonceKeeper {
    key: [u8; 32],
    /// The first `now` seen: issue times count from it.
    epoch: Option<Instant>,
}

impl NonceKeeper {
    /// A keeper whose tags use `key` (secret, random per server run).
    pub fn new(key: [u8; 32]) -> NonceKeeper {
        NonceKeeper { key, epoch: None }
    }

    fn millis_since_epoch(&mut self, now: Instant) -> u64 {
        let epoch = *self.epoch.get_or_insert(now);
        u64::try_from(now.saturating_duration_since(epoch).as_millis()).unwrap_or(u64::MAX)
    }

    fn tag(&self, body: &[u8; 16], client: IpAddr) -> [u8; TAG_BYTES] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(body);
        match client.to_canonical() {
            IpAddr::V4(v4) => mac.update(&v4.octets()),
            IpAddr::V6(v6) => mac.update(&v6.octets()),
        }
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(&full[..TAG_BYTES]);
        tag
    }

    /// A new nonce for `client` at `now`.
    pub fn issue(&mut self, client: IpAddr, now: Instant, rng: &mut StdRng) -> String {
        let mut body = [0u8; 16];
        body[..8].copy_from_slice(&self.millis_since_epoch(now).to_be_bytes());
        body[8..].copy_from_slice(&rng.gen::<[u8; 8]>());
        let tag = self.tag(&body, client);
        format!("{}{}", hex(&body), hex(&tag))
    }

    /// What `nonce`, answered by `client` at `now`, is worth.
    pub fn check(&mut self, nonce: &str, client: IpAddr, now: Instant) -> NonceCheck {
        let Some(bytes) = from_hex::<32>(nonce) else {
            return NonceCheck::Foreign;
        };
        let mut body = [0u8; 16];
        body.copy_from_slice(&bytes[..16]);
        let expected = self.tag(&body, client);
        if !bool::from(expected.ct_eq(&bytes[16..])) {
            return NonceCheck::Foreign;
        }
        let mut issued = [0u8; 8];
        issued.copy_from_slice(&body[..8]);
        let issued = u64::from_be_bytes(issued);
        let age = self.millis_since_epoch(now).checked_sub(issued);
        match age {
            Some(age) if Duration::from_millis(age) <= NONCE_LIFETIME => NonceCheck::Fresh,
            Some(_) => NonceCheck::Stale,
            // Issued "later than now": not from this epoch.
            None => NonceCheck::Foreign,
        }
    }
}

#[cfg(test)]
mod tests {
    // Tests take a real `Instant` as their clock's origin.
    #![allow(clippy::disallowed_methods)]
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn a_nonce_is_fresh_for_its_lifetime_then_stale() {
        let mut rng = StdRng::from_seed([1; 32]);
        let mut keeper = NonceKeeper::new([9; 32]);
        let start = Instant::now();
        let client: IpAddr = "192.0.2.7".parse().unwrap();
        let nonce = keeper.issue(client, start, &mut rng);
        assert_eq!(nonce.len(), 64);
        assert_eq!(keeper.check(&nonce, client, start), NonceCheck::Fresh);
        assert_eq!(
            keeper.check(&nonce, client, start + NONCE_LIFETIME),
            NonceCheck::Fresh
        );
        let late = start + NONCE_LIFETIME + Duration::from_millis(1);
        assert_eq!(keeper.check(&nonce, client, late), NonceCheck::Stale);
        // Issued later still checks against the same epoch.
        let later = keeper.issue(client, late, &mut rng);
        assert_ne!(later, nonce);
        assert_eq!(keeper.check(&later, client, late), NonceCheck::Fresh);
        // The same address as IPv4-mapped IPv6 (a dual-stack listener).
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(keeper.check(&later, mapped, late), NonceCheck::Fresh);
    }

    #[test]
    fn nonces_are_bound_to_the_server_and_the_client() {
        let mut rng = StdRng::from_seed([1; 32]);
        let now = Instant::now();
        let client: IpAddr = "192.0.2.7".parse().unwrap();
        let mut keeper = NonceKeeper::new([9; 32]);
        let nonce = keeper.issue(client, now, &mut rng);
        let mut other_server = NonceKeeper::new([8; 32]);
        other_server.issue(client, now, &mut rng);
        assert_eq!(other_server.check(&nonce, client, now), NonceCheck::Foreign);
        let elsewhere: IpAddr = "192.0.2.8".parse().unwrap();
        assert_eq!(keeper.check(&nonce, elsewhere, now), NonceCheck::Foreign);
        // Every byte counts: an issue time moved forward, or any bit of
        // the random part or the tag changed, is refused.
        for index in [0, 15, 16, 40, 63] {
            let mut altered = nonce.clone().into_bytes();
            altered[index] = if altered[index] == b'0' { b'1' } else { b'0' };
            let altered = String::from_utf8(altered).unwrap();
            assert_eq!(
                keeper.check(&altered, client, now),
                NonceCheck::Foreign,
                "{index}"
            );
        }
        for junk in ["", "xyz", &nonce[..62], &format!("{nonce}00")] {
            assert_eq!(
                keeper.check(junk, client, now),
                NonceCheck::Foreign,
                "{junk}"
            );
        }
    }
}
