//! The stored form of a user's password (`UserCredential::password_hash`)
//! and how it is made and checked.
//!
//! Digest (RFC 7616 §3.4.2) needs, per user, `H(username:realm:password)`
//! (HA1) for each algorithm it answers, not the password: so that is what
//! is stored, for MD5 and for SHA-256. The format is
//!
//! ```text
//! $digest$r=<realm>$<MD5 HA1, 32 hex digits>$<SHA-256 HA1, 64 hex digits>
//! ```
//!
//! Basic is verified by recomputing the SHA-256 HA1 from the name and
//! password it carries. An HA1 is password-equivalent within its realm
//! (RFC 7616 §5.13): the configuration file must be kept private. Slow
//! password hashes (argon2) are refused: they cannot answer Digest, and
//! clients resend credentials with every request, each verification
//! costing tens of milliseconds under the handler's lock.

use md5::Md5;
use sha2::{Digest as _, Sha256};

/// Tag that starts the stored form.
const PREFIX: &str = "$digest$r=";

/// A user's stored password, parsed.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredPassword {
    /// The realm the hashes were made for.
    pub realm: String,
    /// `MD5(username:realm:password)`.
    pub md5_ha1: [u8; 16],
    /// `SHA-256(username:realm:password)`.
    pub sha256_ha1: [u8; 32],
}

impl std::fmt::Debug for StoredPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredPassword")
            .field("realm", &self.realm)
            .finish_non_exhaustive()
    }
}

impl StoredPassword {
    /// Hashes `password` of `username` for `realm`.
    pub fn new(username: &str, realm: &str, password: &str) -> StoredPassword {
        let secret = format!("{username}:{realm}:{password}");
        StoredPassword {
            realm: realm.to_string(),
            md5_ha1: Md5::digest(secret.as_bytes()).into(),
            sha256_ha1: Sha256::digest(secret.as_bytes()).into(),
        }
    }

    /// Parses the stored form.
    ///
    /// Errors: a sentence saying what is wrong (for the configuration
    /// loader's message), never quoting the hash itself.
    pub fn parse(text: &str) -> Result<StoredPassword, String> {
        if text.starts_with("$argon2") {
            return Err(
                "argon2 hashes are not supported: Digest authentication needs the \
                        realm hashes; make one with `rtpcast --hash-password USER`"
                    .into(),
            );
        }
        let rest = text.strip_prefix(PREFIX).ok_or_else(|| {
            "a password hash starts with \"$digest$r=\"; make one with \
             `rtpcast --hash-password USER`"
                .to_string()
        })?;
        let mut parts = rest.split('$');
        let (Some(realm), Some(md5), Some(sha256), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("a password hash is $digest$r=REALM$MD5$SHA256".into());
        };
        check_realm(realm)?;
        Ok(StoredPassword {
            realm: realm.to_string(),
            md5_ha1: from_hex(md5).ok_or("the MD5 part of a password hash is not 32 hex digits")?,
            sha256_ha1: from_hex(sha256)
                .ok_or("the SHA-256 part of a password hash is not 64 hex digits")?,
        })
    }
}

impl std::fmt::Display for StoredPassword {
    /// The stored form.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{PREFIX}{}${}${}",
            self.realm,
            hex(&self.md5_ha1),
            hex(&self.sha256_ha1)
        )
    }
}

/// The configuration entry of `username` with `password` hashed for
/// `realm`, as `rtpcast --hash-password` prints it: a TOML inline table.
///
/// Errors: a user name or realm that cannot be used (see
/// [`check_user_name`], [`check_realm`]), or an empty password.
pub fn config_entry(username: &str, realm: &str, password: &str) -> Result<String, String> {
    check_user_name(username)?;
    check_realm(realm)?;
    if password.is_empty() {
        return Err("the password is empty".into());
    }
    let stored = StoredPassword::new(username, realm, password);
    // Neither holds `"`, `\` or a control character: no TOML escapes.
    Ok(format!(
        "{{ name = \"{username}\", password_hash = \"{stored}\" }}"
    ))
}

/// Checks a configured user at start-up (or reload): a name clients can
/// send and a password hash made for `realm`.
///
/// Errors: a sentence naming the user and what is wrong, never the hash.
pub fn check_user(name: &str, password_hash: &str, realm: &str) -> Result<(), String> {
    check_user_name(name)?;
    let stored =
        StoredPassword::parse(password_hash).map_err(|why| format!("user {name:?}: {why}"))?;
    if stored.realm != realm {
        return Err(format!(
            "user {name:?}: the password hash was made for realm {:?}, the server's is {realm:?}",
            stored.realm
        ));
    }
    Ok(())
}

/// A user name must be sayable in Basic (no `:`, RFC 7617 §2) and in a
/// Digest quoted string without escapes.
pub fn check_user_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a user name is empty".into());
    }
    if name
        .chars()
        .any(|c| c.is_control() || matches!(c, ':' | '"' | '\\'))
    {
        return Err(format!(
            "user name {name:?} holds a control character, ':', '\"' or '\\'"
        ));
    }
    Ok(())
}

/// A realm must fit the stored form and a quoted string: printable, no
/// `$`, `"` or `\`.
pub fn check_realm(realm: &str) -> Result<(), String> {
    if realm.is_empty()
        || realm
            .chars()
            .any(|c| c.is_control() || matches!(c, '$' | '"' | '\\'))
    {
        return Err(format!(
            "realm {realm:?} is empty or holds a control character, '$', '\"' or '\\'"
        ));
    }
    Ok(())
}

/// Lower-case hex of `bytes`.
pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Exactly `N` bytes from `2N` hex digits (either case).
pub(super) fn from_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; N];
    for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2617 §3.5's user (MD5) and RFC 7616 §3.9.1's (SHA-256): their
    /// HA1s, worked out from the examples' responses by the digest tests.
    #[test]
    fn the_stored_form_holds_both_realm_hashes_and_round_trips() {
        let stored = StoredPassword::new("Mufasa", "testrealm@host.com", "Circle Of Life");
        assert_eq!(hex(&stored.md5_ha1), "939e7578ed9e3c518a452acee763bce9");
        let text = stored.to_string();
        assert!(text.starts_with("$digest$r=testrealm@host.com$939e7578ed9e3c518a452acee763bce9$"));
        assert_eq!(StoredPassword::parse(&text), Ok(stored.clone()));
        assert_eq!(
            StoredPassword::parse(&text.to_uppercase().replace(
                "$DIGEST$R=TESTREALM@HOST.COM",
                "$digest$r=testrealm@host.com"
            )),
            Ok(stored.clone())
        );
        let shown = format!("{stored:?}");
        assert!(shown.contains("testrealm@host.com"), "{shown}");
        assert!(
            !shown.contains("939e7578"),
            "the hashes stand in for the password"
        );
        let sha = StoredPassword::new("Mufasa", "http-auth@example.org", "Circle of Life");
        assert_eq!(
            hex(&sha.sha256_ha1),
            "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232"
        );
    }

    #[test]
    fn malformed_hashes_are_refused_with_a_sentence() {
        let good = StoredPassword::new("alice", "rtpcast", "pw").to_string();
        let cases = [
            ("secret", "starts with"),
            ("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", "argon2"),
            ("$digest$r=rtpcast$00", "REALM$MD5$SHA256"),
            (&good[..good.len() - 1], "64 hex"),
            (
                &good.replacen("$digest$r=rtpcast$", "$digest$r=rtpcast$zz", 1)[..],
                "32 hex",
            ),
            (&format!("{good}$extra"), "REALM$MD5$SHA256"),
            (&good.replace("r=rtpcast", "r="), "realm"),
        ];
        for (text, says) in cases {
            let error = StoredPassword::parse(text).unwrap_err();
            assert!(error.contains(says), "{text}: {error}");
        }
    }

    #[test]
    fn a_config_entry_holds_the_name_and_a_hash_that_checks() {
        let entry = config_entry("alice", "rtpcast", "wonderland").unwrap();
        let hash = StoredPassword::new("alice", "rtpcast", "wonderland").to_string();
        assert_eq!(
            entry,
            format!("{{ name = \"alice\", password_hash = \"{hash}\" }}")
        );
        assert!(!entry.contains("wonderland"));
        assert_eq!(check_user("alice", &hash, "rtpcast"), Ok(()));
        assert!(config_entry("alice", "rtpcast", "").is_err());
        assert!(config_entry("al:ice", "rtpcast", "pw").is_err());
        assert!(config_entry("alice", "a\"b", "pw").is_err());
    }

    #[test]
    fn users_are_checked_against_the_servers_realm() {
        let hash = StoredPassword::new("alice", "rtpcast", "pw").to_string();
        assert_eq!(check_user("alice", &hash, "rtpcast"), Ok(()));
        let error = check_user("alice", &hash, "cameras").unwrap_err();
        assert!(
            error.contains("\"rtpcast\"") && error.contains("\"cameras\""),
            "{error}"
        );
        assert!(!error.contains(&hash[20..]), "{error}");
        for name in ["", "a:b", "a\"b", "a\nb"] {
            assert!(check_user(name, &hash, "rtpcast").is_err(), "{name:?}");
        }
        assert!(check_user("bob", "plain", "rtpcast")
            .unwrap_err()
            .contains("\"bob\""));
        assert!(check_realm("a$b").is_err());
        assert!(!format!("{:?}", StoredPassword::parse(&hash).unwrap()).contains(&hash[30..40]));
    }
}
