//! Which access rule a request falls under ([`crate::config::PathAccess`]):
//! the rules of the longest configured path that is a whole-segment
//! prefix of the request's path, for reading or for publishing.

use std::net::IpAddr;

use crate::config::{AccessRule, AuthConfig, PathAccess};
use crate::rtsp::auth::password;

/// What a request does to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessKind {
    /// DESCRIBE, SETUP and PLAY (and the rest of a viewer's session).
    Read,
    /// ANNOUNCE, SETUP with `mode=record` and RECORD (and the rest of a
    /// publisher's session).
    Publish,
}

/// The rule for `kind` on `path` (normalised, `/cams/door`), if a
/// configured path covers it: `/cams` covers `/cams` and `/cams/door`, not
/// `/camshaft`; `/` covers everything.
pub fn rule_for<'a>(
    access: &'a [PathAccess],
    path: &str,
    kind: AccessKind,
) -> Option<&'a AccessRule> {
    access
        .iter()
        .filter(|entry| covers(&entry.path, path))
        .max_by_key(|entry| entry.path.trim_end_matches('/').len())
        .map(|entry| match kind {
            AccessKind::Read => &entry.read,
            AccessKind::Publish => &entry.publish,
        })
}

fn covers(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    prefix.is_empty()
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Whether `rule` lets a client at `client` in by its address: its
/// networks are empty or one holds the address (IPv4-mapped IPv6
/// addresses count as IPv4).
pub fn network_allows(rule: &AccessRule, client: IpAddr) -> bool {
    let client = client.to_canonical();
    rule.networks.is_empty() || rule.networks.iter().any(|net| net.contains(&client))
}

/// Checks access rules and the authentication settings before the
/// server starts with them (or a reload takes them): paths are URL paths,
/// each path is configured once, every user has a usable name and a
/// password hash made for the realm (see [`password::check_user`]), and
/// rules naming users have a scheme to authenticate with.
///
/// Errors: a sentence naming the path and what is wrong, never a hash.
pub fn check(access: &[PathAccess], auth: &AuthConfig) -> Result<(), String> {
    password::check_realm(&auth.realm)?;
    for (index, entry) in access.iter().enumerate() {
        let path = &entry.path;
        if !path.starts_with('/') {
            return Err(format!("access path {path:?} does not start with '/'"));
        }
        let same =
            |other: &PathAccess| other.path.trim_end_matches('/') == path.trim_end_matches('/');
        if access[..index].iter().any(same) {
            return Err(format!("access path {path:?} is configured twice"));
        }
        for (what, rule) in [("read", &entry.read), ("publish", &entry.publish)] {
            for user in &rule.users {
                password::check_user(&user.name, &user.password_hash, &auth.realm)
                    .map_err(|why| format!("access path {path:?}, {what}: {why}"))?;
            }
            if !rule.users.is_empty() && auth.schemes.is_empty() {
                return Err(format!(
                    "access path {path:?}, {what}: users are listed but no authentication scheme is offered"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UserCredential;

    fn rule(network: &str) -> AccessRule {
        AccessRule {
            users: Vec::new(),
            networks: vec![network.parse().unwrap()],
        }
    }

    fn access() -> Vec<PathAccess> {
        vec![
            PathAccess {
                path: "/".into(),
                read: rule("10.0.0.0/8"),
                publish: rule("10.1.0.0/16"),
            },
            PathAccess {
                path: "/cams".into(),
                read: rule("192.168.0.0/16"),
                publish: AccessRule::default(),
            },
            PathAccess {
                path: "/cams/door".into(),
                read: AccessRule {
                    users: vec![UserCredential {
                        name: "alice".into(),
                        password_hash: String::new(),
                    }],
                    networks: Vec::new(),
                },
                publish: rule("127.0.0.1/32"),
            },
        ]
    }

    #[test]
    fn the_longest_whole_segment_prefix_wins() {
        let access = access();
        let read = |path| rule_for(&access, path, AccessKind::Read).cloned();
        assert_eq!(read("/cams"), Some(access[1].read.clone()));
        assert_eq!(read("/cams/back"), Some(access[1].read.clone()));
        assert_eq!(read("/cams/door"), Some(access[2].read.clone()));
        assert_eq!(read("/cams/door/trackID=1"), Some(access[2].read.clone()));
        assert_eq!(read("/cams/doorbell"), Some(access[1].read.clone()));
        assert_eq!(read("/camshaft"), Some(access[0].read.clone()));
        assert_eq!(read("/"), Some(access[0].read.clone()));
        assert_eq!(
            rule_for(&access, "/cams/door", AccessKind::Publish),
            Some(&access[2].publish)
        );
        assert_eq!(
            rule_for(&access, "/x", AccessKind::Publish),
            Some(&access[0].publish)
        );
        assert_eq!(rule_for(&access[1..], "/x", AccessKind::Read), None);
        // A configured trailing slash changes nothing.
        let mut slashed = access[1..2].to_vec();
        slashed[0].path = "/cams/".into();
        assert_eq!(
            rule_for(&slashed, "/cams/a", AccessKind::Read),
            Some(&slashed[0].read)
        );
        assert_eq!(rule_for(&slashed, "/camsx", AccessKind::Read), None);
    }

    #[test]
    fn rules_are_checked_before_use() {
        let realm = AuthConfig::default();
        let alice = UserCredential {
            name: "alice".into(),
            password_hash: password::StoredPassword::new("alice", "rtpcast", "pw").to_string(),
        };
        let with_reader = |path: &str, user: UserCredential| PathAccess {
            path: path.into(),
            read: AccessRule {
                users: vec![user],
                networks: Vec::new(),
            },
            publish: AccessRule::default(),
        };
        let good = vec![
            with_reader("/cams", alice.clone()),
            with_reader("/", alice.clone()),
        ];
        assert_eq!(check(&good, &realm), Ok(()));
        let twice = vec![
            with_reader("/cams", alice.clone()),
            with_reader("/cams/", alice.clone()),
        ];
        assert!(check(&twice, &realm).unwrap_err().contains("twice"));
        let relative = vec![with_reader("cams", alice.clone())];
        assert!(check(&relative, &realm).unwrap_err().contains("'/'"));
        let plain = UserCredential {
            name: "bob".into(),
            password_hash: "hunter2".into(),
        };
        let error = check(&[with_reader("/cams", plain)], &realm).unwrap_err();
        assert!(error.contains("\"/cams\", read: user \"bob\""), "{error}");
        assert!(!error.contains("hunter2"));
        let other_realm = AuthConfig {
            realm: "cams".into(),
            ..AuthConfig::default()
        };
        assert!(check(&good, &other_realm).unwrap_err().contains("realm"));
        let no_scheme = AuthConfig {
            schemes: Vec::new(),
            ..AuthConfig::default()
        };
        assert!(check(&good, &no_scheme)
            .unwrap_err()
            .contains("no authentication scheme"));
        assert_eq!(check(&[], &no_scheme), Ok(()));
        let networks_only = PathAccess {
            path: "/lan".into(),
            read: rule("10.0.0.0/8"),
            publish: AccessRule::default(),
        };
        assert_eq!(
            check(&[networks_only], &no_scheme),
            Ok(()),
            "a rule without users needs no scheme"
        );
    }

    #[test]
    fn networks_restrict_only_when_given() {
        let lan = rule("192.168.0.0/16");
        assert!(network_allows(&lan, "192.168.4.2".parse().unwrap()));
        assert!(network_allows(&lan, "::ffff:192.168.4.2".parse().unwrap()));
        assert!(!network_allows(&lan, "192.169.0.1".parse().unwrap()));
        assert!(!network_allows(&lan, "2001:db8::1".parse().unwrap()));
        assert!(network_allows(
            &AccessRule::default(),
            "2001:db8::1".parse().unwrap()
        ));
        let v6 = rule("2001:db8::/32");
        assert!(network_allows(&v6, "2001:db8::1".parse().unwrap()));
    }
}
