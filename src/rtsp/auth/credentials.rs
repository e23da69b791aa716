//! The `Authorization` header (RFC 7235 §4.2): Basic (RFC 7617) and
//! Digest (RFC 7616, RFC 2617, RFC 2069) credentials, parsed strictly, and
//! the Digest response computed from a stored HA1.

use base64::Engine as _;
use md5::Md5;
use sha2::{Digest as _, Sha256};

use super::password::{hex, StoredPassword};

/// Credentials a client sent.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// Basic: the user name and the password itself.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// Digest: a response computed from the password.
    Digest(DigestResponse),
}

impl std::fmt::Debug for Credentials {
    /// Names the user only: the password and the response stay out of
    /// logs and test output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Basic { username, .. } => write!(f, "Basic({username:?})"),
            Credentials::Digest(digest) => write!(f, "Digest({:?})", digest.username),
        }
    }
}

impl Credentials {
    /// The user name the client gave.
    pub fn username(&self) -> &str {
        match self {
            Credentials::Basic { username, .. } => username,
            Credentials::Digest(digest) => &digest.username,
        }
    }
}

/// Digest hash algorithms (RFC 7616 §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// MD5, the default when a client names none (RFC 2617).
    Md5,
    /// SHA-256.
    Sha256,
}

impl Algorithm {
    /// The name in a challenge.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    fn hash_hex(self, data: &str) -> String {
        match self {
            Algorithm::Md5 => hex(&Md5::digest(data.as_bytes())),
            Algorithm::Sha256 => hex(&Sha256::digest(data.as_bytes())),
        }
    }
}

/// The fields of Digest credentials (RFC 7616 §3.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestResponse {
    /// User name.
    pub username: String,
    /// Realm the client answered.
    pub realm: String,
    /// The server's nonce it answered.
    pub nonce: String,
    /// The request URI the response covers.
    pub uri: String,
    /// The response, lower-case hex.
    pub response: String,
    /// Hash algorithm.
    pub algorithm: Algorithm,
    /// `-sess` variant: HA1 is rehashed with the nonce and cnonce.
    pub session: bool,
    /// `qop=auth` with its nonce count and client nonce; `None` for an
    /// RFC 2069 response.
    pub qop: Option<QopAuth>,
}

/// The `qop=auth` fields (RFC 7616 §3.4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QopAuth {
    /// Nonce count, 8 hex digits as sent.
    pub nc: String,
    /// Client nonce.
    pub cnonce: String,
}

/// Why an `Authorization` header was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MalformedCredentials {
    /// A scheme other than Basic and Digest.
    #[error("unsupported scheme")]
    UnsupportedScheme,
    /// The header breaks the grammar; says where.
    #[error("malformed {0}")]
    Syntax(&'static str),
    /// A field Digest needs is missing.
    #[error("missing {0}")]
    Missing(&'static str),
    /// Something valid this server does not do (`qop=auth-int`,
    /// `userhash`, another algorithm).
    #[error("unsupported {0}")]
    Unsupported(&'static str),
}

/// Parses an `Authorization` value.
///
/// Errors: [`MalformedCredentials`] for anything but well-formed Basic or
/// Digest credentials this server can check.
pub fn parse(value: &str) -> Result<Credentials, MalformedCredentials> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("Basic") {
        return parse_basic(rest.trim());
    }
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(MalformedCredentials::UnsupportedScheme);
    }
    let params = auth_params(rest)?;
    let get = |name: &'static str| {
        params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let need = |name: &'static str| get(name).ok_or(MalformedCredentials::Missing(name));
    if get("userhash").is_some_and(|v| v.eq_ignore_ascii_case("true")) || get("username*").is_some()
    {
        return Err(MalformedCredentials::Unsupported("userhash or username*"));
    }
    let algorithm = get("algorithm").unwrap_or_else(|| "MD5".into());
    let (algorithm, session) = match algorithm.to_ascii_uppercase().as_str() {
        "MD5" => (Algorithm::Md5, false),
        "MD5-SESS" => (Algorithm::Md5, true),
        "SHA-256" => (Algorithm::Sha256, false),
        "SHA-256-SESS" => (Algorithm::Sha256, true),
        _ => return Err(MalformedCredentials::Unsupported("algorithm")),
    };
    let qop = match get("qop") {
        None => None,
        Some(qop) if qop.eq_ignore_ascii_case("auth") => {
            let nc = need("nc")?;
            if nc.len() != 8 || !nc.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(MalformedCredentials::Syntax("nc"));
            }
            Some(QopAuth {
                nc,
                cnonce: need("cnonce")?,
            })
        }
        Some(_) => return Err(MalformedCredentials::Unsupported("qop")),
    };
    if session && qop.is_none() {
        // The -sess HA1 needs a cnonce (RFC 7616 §3.4.2).
        return Err(MalformedCredentials::Missing("cnonce"));
    }
    Ok(Credentials::Digest(DigestResponse {
        username: need("username")?,
        realm: need("realm")?,
        nonce: need("nonce")?,
        uri: need("uri")?,
        response: need("response")?.to_ascii_lowercase(),
        algorithm,
        session,
        qop,
    }))
}

fn parse_basic(token: &str) -> Result<Credentials, MalformedCredentials> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| MalformedCredentials::Syntax("base64"))?;
    let decoded = String::from_utf8(decoded).map_err(|_| MalformedCredentials::Syntax("UTF-8"))?;
    let (username, password) = decoded
        .split_once(':')
        .ok_or(MalformedCredentials::Syntax("user-pass"))?;
    Ok(Credentials::Basic {
        username: username.to_string(),
        password: password.to_string(),
    })
}

/// `#auth-param` (RFC 7235 §2.1): `name=token` or `name="quoted"`, comma
/// separated; a name given twice is refused.
fn auth_params(text: &str) -> Result<Vec<(String, String)>, MalformedCredentials> {
    let is_tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    let mut params: Vec<(String, String)> = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            break;
        }
        let name_end = rest.find(|c: char| !is_tchar(c)).unwrap_or(rest.len());
        let name = &rest[..name_end];
        rest = rest[name_end..].trim_start();
        let after_equals = rest
            .strip_prefix('=')
            .filter(|_| !name.is_empty())
            .ok_or(MalformedCredentials::Syntax("parameter"))?;
        rest = after_equals.trim_start();
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut unescaped = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((index, c)) = chars.next() {
                match c {
                    '"' => {
                        end = Some(index + 1);
                        break;
                    }
                    '\\' => match chars.next() {
                        Some((_, escaped)) => unescaped.push(escaped),
                        None => break,
                    },
                    c if c.is_control() => {
                        return Err(MalformedCredentials::Syntax("quoted string"))
                    }
                    c => unescaped.push(c),
                }
            }
            let end = end.ok_or(MalformedCredentials::Syntax("quoted string"))?;
            value = unescaped;
            rest = &quoted[end..];
        } else {
            let end = rest
                .find(|c: char| !is_tchar(c) && c != '/')
                .unwrap_or(rest.len());
            if end == 0 {
                return Err(MalformedCredentials::Syntax("parameter value"));
            }
            value = rest[..end].to_string();
            rest = &rest[end..];
        }
        rest = rest.trim_start();
        if !(rest.is_empty() || rest.starts_with(',')) {
            return Err(MalformedCredentials::Syntax("parameter list"));
        }
        if params.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            return Err(MalformedCredentials::Syntax("repeated parameter"));
        }
        params.push((name.to_string(), value));
    }
    Ok(params)
}

/// The response a client knowing the password would have sent for
/// `method` (RFC 7616 §3.4.1; RFC 2069 without qop), lower-case hex.
pub fn expected_response(digest: &DigestResponse, stored: &StoredPassword, method: &str) -> String {
    let algorithm = digest.algorithm;
    let mut ha1 = match algorithm {
        Algorithm::Md5 => hex(&stored.md5_ha1),
        Algorithm::Sha256 => hex(&stored.sha256_ha1),
    };
    if let (true, Some(qop)) = (digest.session, &digest.qop) {
        ha1 = algorithm.hash_hex(&format!("{ha1}:{}:{}", digest.nonce, qop.cnonce));
    }
    let ha2 = algorithm.hash_hex(&format!("{method}:{}", digest.uri));
    match &digest.qop {
        Some(qop) => algorithm.hash_hex(&format!(
            "{ha1}:{}:{}:{}:auth:{ha2}",
            digest.nonce, qop.nc, qop.cnonce
        )),
        None => algorithm.hash_hex(&format!("{ha1}:{}:{ha2}", digest.nonce)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(value: &str) -> DigestResponse {
        match parse(value) {
            Ok(Credentials::Digest(digest)) => digest,
            other => panic!("{value}: {other:?}"),
        }
    }

    /// RFC 2617 §3.5, the request as the RFC prints it.
    #[test]
    fn rfc_2617_example_verifies() {
        let value = r#"Digest username="Mufasa",
                 realm="testrealm@host.com",
                 nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
                 uri="/dir/index.html",
                 qop=auth,
                 nc=00000001,
                 cnonce="0a4f113b",
                 response="6629fae49393a05397450978507c4ef1",
                 opaque="5ccc069c403ebaf9f0171e9517f40e41""#
            .replace('\n', " ");
        let sent = digest(&value);
        assert_eq!(sent.algorithm, Algorithm::Md5);
        assert_eq!(sent.uri, "/dir/index.html");
        let stored = StoredPassword::new("Mufasa", "testrealm@host.com", "Circle Of Life");
        assert_eq!(expected_response(&sent, &stored, "GET"), sent.response);
        assert_ne!(expected_response(&sent, &stored, "POST"), sent.response);
        let wrong = StoredPassword::new("Mufasa", "testrealm@host.com", "Circle of Life");
        assert_ne!(expected_response(&sent, &wrong, "GET"), sent.response);
    }

    /// RFC 7616 §3.9.1: the same request answered with SHA-256 and MD5.
    #[test]
    fn rfc_7616_examples_verify() {
        let stored = StoredPassword::new("Mufasa", "http-auth@example.org", "Circle of Life");
        for (algorithm, response) in [
            (
                "SHA-256",
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
            ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ] {
            let sent = digest(&format!(
                "Digest username=\"Mufasa\", realm=\"http-auth@example.org\", \
                 uri=\"/dir/index.html\", algorithm={algorithm}, \
                 nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", nc=00000001, \
                 cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\", qop=auth, \
                 response=\"{response}\", opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
            ));
            assert_eq!(
                expected_response(&sent, &stored, "GET"),
                response,
                "{algorithm}"
            );
        }
    }

    /// RFC 2069 (no qop) and the -sess variants, against responses worked
    /// out with Python's hashlib.
    #[test]
    fn rfc_2069_and_session_responses() {
        let stored = StoredPassword::new("Mufasa", "testrealm@host.com", "Circle Of Life");
        let plain = digest(
            r#"Digest username="Mufasa", realm="testrealm@host.com", nonce="abc", uri="/x", response="00""#,
        );
        assert_eq!(plain.qop, None);
        assert_eq!(
            expected_response(&plain, &stored, "DESCRIBE"),
            "8cdbbd53e277c54a0c32c8bb184b2c81"
        );
        let sess = digest(
            r#"Digest username="Mufasa", realm="testrealm@host.com", nonce="abc", uri="/x", response="00", algorithm=SHA-256-sess, qop=auth, nc=00000002, cnonce="c""#,
        );
        assert!(sess.session);
        assert_eq!(
            expected_response(&sess, &stored, "PLAY"),
            "9cc9151b1ccd6917d12f0c3b4df3afdc9b8093a44ce3dd575381aa1c3e0b2444"
        );
    }

    /// Valid headers with random pieces of the grammar inserted and
    /// random spans cut never panic the parser (CVE-2019-9215's class),
    /// and what still parses can be checked.
    #[test]
    fn mutated_headers_are_parsed_or_refused() {
        use rand::{rngs::StdRng, Rng, SeedableRng};
        let valid = [
            r#"Digest username="u", realm="r", nonce="n", uri="/a", qop=auth, nc=00000001, cnonce="c", response="ab", algorithm=SHA-256-sess"#,
            r#"Digest username="u", realm="r", nonce="n", uri="rtsp://h/a", response="ab""#,
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
        ];
        let pieces = [
            "Digest ",
            "username",
            "qop",
            "=",
            "\"",
            "\\",
            ",",
            " ",
            "auth",
            "MD5-sess",
            "é",
            "\u{0}",
            "==",
            ":",
            "userhash=true",
        ];
        let mut rng = StdRng::from_seed([5; 32]);
        let stored = StoredPassword::new("u", "r", "p");
        let (mut digests, mut refused) = (0, 0);
        for _ in 0..20_000 {
            let mut text: Vec<char> = valid[rng.gen_range(0..valid.len())].chars().collect();
            for _ in 0..rng.gen_range(1..4) {
                let at = rng.gen_range(0..=text.len());
                if rng.gen_bool(0.5) {
                    let piece = pieces[rng.gen_range(0..pieces.len())];
                    text.splice(at..at, piece.chars());
                } else {
                    let end = (at + rng.gen_range(0..8)).min(text.len());
                    text.drain(at..end);
                }
            }
            let text: String = text.into_iter().collect();
            match parse(&text) {
                Ok(Credentials::Digest(digest)) => {
                    digests += 1;
                    assert!(!expected_response(&digest, &stored, "PLAY").is_empty());
                }
                Ok(Credentials::Basic { .. }) => {}
                Err(_) => refused += 1,
            }
        }
        // Both ends of the parser are reached.
        assert!(digests > 1000 && refused > 1000, "{digests} {refused}");
    }

    #[test]
    fn basic_credentials_decode() {
        // RFC 7617 §2's example.
        assert_eq!(
            parse("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==").unwrap(),
            Credentials::Basic {
                username: "Aladdin".into(),
                password: "open sesame".into()
            }
        );
        let shown = format!("{:?}", parse("basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==").unwrap());
        assert!(!shown.contains("sesame"), "{shown}");
        assert_eq!(
            parse("Basic !!!"),
            Err(MalformedCredentials::Syntax("base64"))
        );
        assert_eq!(
            parse("Basic bm9jb2xvbg=="),
            Err(MalformedCredentials::Syntax("user-pass"))
        );
    }

    #[test]
    fn malformed_or_unsupported_digests_are_refused() {
        let base = r#"username="u", realm="r", nonce="n", uri="/", response="ab""#;
        for (value, error) in [
            ("Bearer x", MalformedCredentials::UnsupportedScheme),
            ("", MalformedCredentials::UnsupportedScheme),
            (
                r#"Digest username="u"#,
                MalformedCredentials::Syntax("quoted string"),
            ),
            (
                r#"Digest username="u\"#,
                MalformedCredentials::Syntax("quoted string"),
            ),
            ("Digest username", MalformedCredentials::Syntax("parameter")),
            ("Digest =x", MalformedCredentials::Syntax("parameter")),
            (
                "Digest username=",
                MalformedCredentials::Syntax("parameter value"),
            ),
            (
                r#"Digest username="a" "b""#,
                MalformedCredentials::Syntax("parameter list"),
            ),
            (
                r#"Digest username="a", Username="b""#,
                MalformedCredentials::Syntax("repeated parameter"),
            ),
            (
                "Digest username=\"a\u{1}\"",
                MalformedCredentials::Syntax("quoted string"),
            ),
            (
                r#"Digest realm="r""#,
                MalformedCredentials::Missing("username"),
            ),
            (
                &format!("Digest {base}, algorithm=SHA-512"),
                MalformedCredentials::Unsupported("algorithm"),
            ),
            (
                &format!("Digest {base}, qop=auth-int, nc=00000001, cnonce=\"c\""),
                MalformedCredentials::Unsupported("qop"),
            ),
            (
                &format!("Digest {base}, qop=auth, cnonce=\"c\""),
                MalformedCredentials::Missing("nc"),
            ),
            (
                &format!("Digest {base}, qop=auth, nc=1, cnonce=\"c\""),
                MalformedCredentials::Syntax("nc"),
            ),
            (
                &format!("Digest {base}, algorithm=MD5-sess"),
                MalformedCredentials::Missing("cnonce"),
            ),
            (
                &format!("Digest {base}, userhash=true"),
                MalformedCredentials::Unsupported("userhash or username*"),
            ),
        ] {
            assert_eq!(parse(value), Err(error), "{value}");
        }
        let escaped = digest(r#"Digest username="a\"b", realm=r, nonce=n, uri="/", response=AB"#);
        assert_eq!(escaped.username, "a\"b");
        assert_eq!(escaped.realm, "r");
        assert_eq!(escaped.response, "ab");
    }
}
