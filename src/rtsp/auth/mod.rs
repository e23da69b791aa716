//! RTSP authentication (RFC 2326 §D.1 borrowing HTTP's: RFC 7235
//! challenges, RFC 7617 Basic, RFC 7616 Digest with MD5 and SHA-256 and
//! RFC 2617/2069 compatibility), sans-IO: the nonce key and randomness come
//! from the handler's seed, `now` from the request.
//!
//! Failures are logged with the client's address, the path and the user
//! name the client gave (never a password or a response) and counted per
//! address ([`throttle`]).

pub mod credentials;
pub mod nonce;
pub mod password;
pub mod throttle;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use rand::{rngs::StdRng, SeedableRng};
use rtsp_types::Url;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{AuthConfig, AuthScheme, UserCredential};
use credentials::{Algorithm, Credentials, DigestResponse};
use nonce::{NonceCheck, NonceKeeper};
use password::StoredPassword;
use throttle::FailedAttempts;

/// A request asking to be let in.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The method's name as sent (`DESCRIBE`), which Digest covers.
    pub method: &'a str,
    /// The request URL.
    pub url: &'a Url,
    /// The `Authorization` header, if any.
    pub authorization: Option<&'a str>,
    /// The path whose rule applies (for the log).
    pub path: &'a str,
    /// The client's address.
    pub client: IpAddr,
    /// When the request arrived.
    pub now: Instant,
}

/// Why a request is not let in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// No or wrong credentials: answer 401 with these `WWW-Authenticate`
    /// challenges.
    Challenge(Vec<String>),
    /// Too many failures from this address: answer without checking,
    /// and say when to try again.
    Throttled(Duration),
}

/// Checks credentials against a rule's users and makes challenges.
#[derive(Debug)]
pub struct Authenticator {
    config: AuthConfig,
    nonces: NonceKeeper,
    rng: StdRng,
    failures: FailedAttempts,
}

impl Authenticator {
    /// An authenticator whose nonce key and random parts derive from
    /// `seed` (the handler's, from the OS in the server), kept apart from
    /// the handler's own generator.
    pub fn new(config: AuthConfig, seed: &[u8; 32]) -> Authenticator {
        let derive = |label: &[u8]| -> [u8; 32] {
            let mut hash = Sha256::new();
            hash.update(label);
            hash.update(seed);
            hash.finalize().into()
        };
        Authenticator {
            config,
            nonces: NonceKeeper::new(derive(b"rtpcast digest nonce key")),
            rng: StdRng::from_seed(derive(b"rtpcast digest nonce randomness")),
            failures: FailedAttempts::default(),
        }
    }

    /// Replaces the realm and schemes (a configuration reload); nonces
    /// already issued stay valid and failures stay counted.
    pub fn set_config(&mut self, config: AuthConfig) {
        self.config = config;
    }

    /// The challenges for `client` at `now`, one per configured scheme in
    /// order (RFC 7235 §4.1); `stale` tells Digest clients their password
    /// was right and only the nonce old (RFC 7616 §3.3).
    pub fn challenges(&mut self, client: IpAddr, now: Instant, stale: bool) -> Vec<String> {
        let realm = &self.config.realm;
        let nonce = self.nonces.issue(client, now, &mut self.rng);
        self.config
            .schemes
            .iter()
            .map(|scheme| {
                let algorithm = match scheme {
                    AuthScheme::Basic => return format!("Basic realm=\"{realm}\""),
                    AuthScheme::DigestSha256 => Algorithm::Sha256,
                    AuthScheme::DigestMd5 => Algorithm::Md5,
                };
                let mut challenge = format!(
                    "Digest realm=\"{realm}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"",
                    algorithm.name()
                );
                if stale {
                    challenge.push_str(", stale=true");
                }
                challenge
            })
            .collect()
    }

    /// The user `attempt` authenticates as among `users`.
    ///
    /// Errors: [`Denial`]; a failure (malformed credentials, unknown user,
    /// wrong password, a scheme not offered) is logged and counted
    /// against the address, a missing header or an old nonce is not.
    pub fn authenticate(
        &mut self,
        attempt: &Attempt<'_>,
        users: &[UserCredential],
    ) -> Result<String, Denial> {
        if let Some(wait) = self.failures.blocked_for(attempt.client, attempt.now) {
            tracing::debug!(peer = %attempt.client, path = attempt.path, "authentication throttled");
            return Err(Denial::Throttled(wait));
        }
        let Some(header) = attempt.authorization else {
            return Err(self.challenge(attempt, false));
        };
        let credentials = match credentials::parse(header) {
            Ok(credentials) => credentials,
            Err(malformed) => return Err(self.failed(attempt, None, &malformed.to_string())),
        };
        let username = credentials.username().to_string();
        let scheme_offered = match &credentials {
            Credentials::Basic { .. } => AuthScheme::Basic,
            Credentials::Digest(DigestResponse {
                algorithm: Algorithm::Md5,
                ..
            }) => AuthScheme::DigestMd5,
            Credentials::Digest(_) => AuthScheme::DigestSha256,
        };
        if !self.config.schemes.contains(&scheme_offered) {
            return Err(self.failed(attempt, Some(&username), "scheme not offered"));
        }
        let Some(stored) = users
            .iter()
            .find(|user| user.name == username)
            .and_then(|user| StoredPassword::parse(&user.password_hash).ok())
            .filter(|stored| stored.realm == self.config.realm)
        else {
            return Err(self.failed(attempt, Some(&username), "unknown user"));
        };
        let scheme = match credentials {
            Credentials::Basic { username, password } => {
                let sent = StoredPassword::new(&username, &self.config.realm, &password);
                if !bool::from(sent.sha256_ha1.ct_eq(&stored.sha256_ha1)) {
                    return Err(self.failed(attempt, Some(&username), "wrong password"));
                }
                "Basic".to_string()
            }
            Credentials::Digest(digest) => {
                if digest.realm != self.config.realm {
                    return Err(self.failed(attempt, Some(&username), "other realm"));
                }
                let nonce = self
                    .nonces
                    .check(&digest.nonce, attempt.client, attempt.now);
                if nonce == NonceCheck::Foreign {
                    tracing::debug!(peer = %attempt.client, "Digest nonce not issued here");
                    return Err(self.challenge(attempt, false));
                }
                if !uri_matches(&digest.uri, attempt.url) {
                    return Err(self.failed(attempt, Some(&username), "uri is not the request's"));
                }
                let expected = credentials::expected_response(&digest, &stored, attempt.method);
                if !bool::from(expected.as_bytes().ct_eq(digest.response.as_bytes())) {
                    return Err(self.failed(attempt, Some(&username), "wrong password"));
                }
                if nonce == NonceCheck::Stale {
                    return Err(self.challenge(attempt, true));
                }
                let session = if digest.session { "-sess" } else { "" };
                let qop = if digest.qop.is_some() {
                    ""
                } else {
                    " (RFC 2069)"
                };
                format!("Digest {}{session}{qop}", digest.algorithm.name())
            }
        };
        self.failures.record_success(attempt.client);
        tracing::debug!(peer = %attempt.client, path = attempt.path, user = ?username, %scheme, "authenticated");
        Ok(username)
    }

    fn challenge(&mut self, attempt: &Attempt<'_>, stale: bool) -> Denial {
        Denial::Challenge(self.challenges(attempt.client, attempt.now, stale))
    }

    /// Logs and counts a failure, and challenges again.
    fn failed(&mut self, attempt: &Attempt<'_>, username: Option<&str>, reason: &str) -> Denial {
        tracing::warn!(
            peer = %attempt.client,
            path = attempt.path,
            user = ?username.unwrap_or(""),
            reason,
            "authentication failed"
        );
        if self.failures.record_failure(attempt.client, attempt.now) {
            tracing::warn!(
                peer = %attempt.client,
                failures = throttle::MAX_FAILURES,
                window_secs = throttle::WINDOW.as_secs(),
                "too many failed authentications: refusing this address for a while"
            );
        }
        self.challenge(attempt, false)
    }
}

/// Whether a Digest `uri` names the request's URL (RFC 7616 §3.4.6): the
/// same absolute URL (credentials aside), or its path and query.
fn uri_matches(digest_uri: &str, url: &Url) -> bool {
    if digest_uri.starts_with('/') {
        let expected = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_string(),
        };
        return digest_uri == expected;
    }
    let Ok(mut sent) = Url::parse(digest_uri) else {
        return false;
    };
    let mut requested = url.clone();
    for url in [&mut sent, &mut requested] {
        // Fails only for URLs that cannot carry credentials.
        let _ = url.set_username("");
        let _ = url.set_password(None);
    }
    sent == requested
}

#[cfg(test)]
mod tests;
