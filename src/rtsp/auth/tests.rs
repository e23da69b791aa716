// Tests take a real `Instant` as their clock's origin.
#![allow(clippy::disallowed_methods)]
use super::*;
use base64::Engine as _;
use md5::Md5;

const URL: &str = "rtsp://127.0.0.1:5544/cams/door";

fn users() -> Vec<UserCredential> {
    vec![UserCredential {
        name: "alice".into(),
        password_hash: StoredPassword::new("alice", "rtpcast", "wonderland").to_string(),
    }]
}

fn client() -> IpAddr {
    "192.0.2.10".parse().unwrap()
}

/// A client's Digest answer, computed here independently of
/// `credentials::expected_response`.
fn answer(challenge: &str, password: &str, method: &str, uri: &str, qop: bool) -> String {
    let field = |name: &str| {
        let start = challenge.find(&format!("{name}=")).unwrap() + name.len() + 1;
        let rest = challenge[start..].trim_start_matches('"');
        rest[..rest.find(['"', ',']).unwrap_or(rest.len())].to_string()
    };
    let (realm, nonce, algorithm) = (field("realm"), field("nonce"), field("algorithm"));
    let hash = |text: String| -> String {
        let bytes: Vec<u8> = match algorithm.as_str() {
            "MD5" => Md5::digest(text.as_bytes()).to_vec(),
            _ => Sha256::digest(text.as_bytes()).to_vec(),
        };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    };
    let ha1 = hash(format!("alice:{realm}:{password}"));
    let ha2 = hash(format!("{method}:{uri}"));
    if qop {
        let response = hash(format!("{ha1}:{nonce}:00000001:0a4f113b:auth:{ha2}"));
        format!(
            "Digest username=\"alice\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
             algorithm={algorithm}, qop=auth, nc=00000001, cnonce=\"0a4f113b\", response=\"{response}\""
        )
    } else {
        let response = hash(format!("{ha1}:{nonce}:{ha2}"));
        format!(
            "Digest username=\"alice\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\""
        )
    }
}

struct Trial {
    auth: Authenticator,
    url: Url,
    start: Instant,
}

impl Trial {
    fn new(config: AuthConfig) -> Trial {
        Trial {
            auth: Authenticator::new(config, &[3; 32]),
            url: Url::parse(URL).unwrap(),
            start: Instant::now(),
        }
    }

    fn try_at(
        &mut self,
        at: Duration,
        method: &str,
        authorization: Option<&str>,
    ) -> Result<String, Denial> {
        let attempt = Attempt {
            method,
            url: &self.url,
            authorization,
            path: "/cams/door",
            client: client(),
            now: self.start + at,
        };
        self.auth.authenticate(&attempt, &users())
    }

    fn challenges(&mut self, at: Duration) -> Vec<String> {
        match self.try_at(at, "DESCRIBE", None) {
            Err(Denial::Challenge(challenges)) => challenges,
            other => panic!("expected a challenge, got {other:?}"),
        }
    }
}

#[test]
fn a_request_without_credentials_gets_one_challenge_per_scheme_in_order() {
    let mut trial = Trial::new(AuthConfig::default());
    let challenges = trial.challenges(Duration::ZERO);
    assert_eq!(challenges.len(), 3, "{challenges:?}");
    assert!(challenges[0].starts_with("Digest realm=\"rtpcast\", nonce=\""));
    assert!(challenges[0].ends_with("algorithm=SHA-256, qop=\"auth\""));
    assert!(challenges[1].ends_with("algorithm=MD5, qop=\"auth\""));
    assert_eq!(challenges[2], "Basic realm=\"rtpcast\"");
    assert!(!challenges[0].contains("stale"));
    // A fresh nonce each time.
    assert_ne!(trial.challenges(Duration::ZERO)[0], challenges[0]);
}

#[test]
fn digest_sha256_md5_rfc2069_and_basic_let_the_right_password_in() {
    let mut trial = Trial::new(AuthConfig::default());
    let challenges = trial.challenges(Duration::ZERO);
    for (challenge, qop) in [
        (&challenges[0], true),
        (&challenges[1], true),
        (&challenges[1], false),
    ] {
        let header = answer(challenge, "wonderland", "DESCRIBE", URL, qop);
        assert_eq!(
            trial.try_at(Duration::from_secs(1), "DESCRIBE", Some(&header)),
            Ok("alice".into()),
            "{header}"
        );
        // The response covers the method.
        assert!(trial
            .try_at(Duration::from_secs(1), "PLAY", Some(&header))
            .is_err());
        // ... and the password.
        let wrong = answer(challenge, "Wonderland", "DESCRIBE", URL, qop);
        assert!(trial
            .try_at(Duration::from_secs(1), "DESCRIBE", Some(&wrong))
            .is_err());
    }
    // The path alone as uri (RFC 7616 §3.4.6 allows the abs-path form).
    let header = answer(&challenges[0], "wonderland", "SETUP", "/cams/door", true);
    assert_eq!(
        trial.try_at(Duration::ZERO, "SETUP", Some(&header)),
        Ok("alice".into())
    );
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice:wonderland")
    );
    assert_eq!(
        trial.try_at(Duration::ZERO, "PLAY", Some(&basic)),
        Ok("alice".into())
    );
    let wrong = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice:wonder")
    );
    assert!(trial.try_at(Duration::ZERO, "PLAY", Some(&wrong)).is_err());
}

#[test]
fn a_digest_for_another_url_or_user_or_nonce_is_refused() {
    let mut trial = Trial::new(AuthConfig::default());
    let challenge = trial.challenges(Duration::ZERO)[0].clone();
    let other_url = answer(
        &challenge,
        "wonderland",
        "DESCRIBE",
        "rtsp://127.0.0.1:5544/cams/back",
        true,
    );
    assert!(trial
        .try_at(Duration::ZERO, "DESCRIBE", Some(&other_url))
        .is_err());
    let other_user =
        answer(&challenge, "wonderland", "DESCRIBE", URL, true).replace("\"alice\"", "\"bob\"");
    assert!(trial
        .try_at(Duration::ZERO, "DESCRIBE", Some(&other_user))
        .is_err());
    // A nonce from another server (key) is answered with a new challenge.
    let mut elsewhere = Authenticator::new(AuthConfig::default(), &[4; 32]);
    let foreign = elsewhere.challenges(client(), trial.start, false)[0].clone();
    let forged = answer(&foreign, "wonderland", "DESCRIBE", URL, true);
    match trial.try_at(Duration::ZERO, "DESCRIBE", Some(&forged)) {
        Err(Denial::Challenge(challenges)) => assert!(!challenges[0].contains("stale")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_old_nonce_with_the_right_password_is_answered_stale() {
    let mut trial = Trial::new(AuthConfig::default());
    let challenge = trial.challenges(Duration::ZERO)[0].clone();
    let header = answer(&challenge, "wonderland", "PLAY", URL, true);
    let late = nonce::NONCE_LIFETIME + Duration::from_secs(1);
    match trial.try_at(late, "PLAY", Some(&header)) {
        Err(Denial::Challenge(challenges)) => {
            assert!(challenges[0].ends_with(", stale=true"), "{challenges:?}");
            assert!(challenges[1].ends_with(", stale=true"));
            assert!(!challenges[2].contains("stale"));
        }
        other => panic!("{other:?}"),
    }
    // Stale answers are no failures: the address is not throttled.
    for _ in 0..throttle::MAX_FAILURES {
        assert!(matches!(
            trial.try_at(late, "PLAY", Some(&header)),
            Err(Denial::Challenge(_))
        ));
    }
    // A wrong password with an old nonce is no "stale".
    let wrong = answer(&challenge, "nope", "PLAY", URL, true);
    match trial.try_at(late, "PLAY", Some(&wrong)) {
        Err(Denial::Challenge(challenges)) => assert!(!challenges[0].contains("stale")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn repeated_failures_throttle_the_address_without_checking() {
    let mut trial = Trial::new(AuthConfig::default());
    let challenge = trial.challenges(Duration::ZERO)[0].clone();
    let wrong = answer(&challenge, "guess", "DESCRIBE", URL, true);
    for _ in 0..throttle::MAX_FAILURES {
        assert!(matches!(
            trial.try_at(Duration::ZERO, "DESCRIBE", Some(&wrong)),
            Err(Denial::Challenge(_))
        ));
    }
    let right = answer(&challenge, "wonderland", "DESCRIBE", URL, true);
    assert_eq!(
        trial.try_at(Duration::from_secs(10), "DESCRIBE", Some(&right)),
        Err(Denial::Throttled(
            throttle::WINDOW - Duration::from_secs(10)
        ))
    );
    // Malformed headers count too.
    let mut trial = Trial::new(AuthConfig::default());
    for _ in 0..throttle::MAX_FAILURES {
        assert!(matches!(
            trial.try_at(Duration::ZERO, "DESCRIBE", Some("Digest nonsense")),
            Err(Denial::Challenge(_))
        ));
    }
    assert!(matches!(
        trial.try_at(Duration::ZERO, "DESCRIBE", None),
        Err(Denial::Throttled(_))
    ));
    // Once the window is over, the right password gets in.
    let challenge = trial.challenges(throttle::WINDOW)[0].clone();
    let right = answer(&challenge, "wonderland", "DESCRIBE", URL, true);
    assert_eq!(
        trial.try_at(throttle::WINDOW, "DESCRIBE", Some(&right)),
        Ok("alice".into())
    );
}

#[test]
fn only_the_configured_schemes_are_offered_and_accepted() {
    let mut trial = Trial::new(AuthConfig {
        realm: "cameras".into(),
        schemes: vec![AuthScheme::Basic],
    });
    assert_eq!(
        trial.challenges(Duration::ZERO),
        vec!["Basic realm=\"cameras\"".to_string()]
    );
    // alice's hash is for realm "rtpcast": she cannot log in to "cameras".
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice:wonderland")
    );
    assert!(trial.try_at(Duration::ZERO, "PLAY", Some(&basic)).is_err());

    let mut trial = Trial::new(AuthConfig {
        realm: "rtpcast".into(),
        schemes: vec![AuthScheme::DigestMd5],
    });
    let challenges = trial.challenges(Duration::ZERO);
    assert_eq!(challenges.len(), 1);
    assert!(trial.try_at(Duration::ZERO, "PLAY", Some(&basic)).is_err());
    let sha = answer(
        &challenges[0].replace("MD5", "SHA-256"),
        "wonderland",
        "PLAY",
        URL,
        true,
    );
    assert!(trial.try_at(Duration::ZERO, "PLAY", Some(&sha)).is_err());
    let md5 = answer(&challenges[0], "wonderland", "PLAY", URL, true);
    assert_eq!(
        trial.try_at(Duration::ZERO, "PLAY", Some(&md5)),
        Ok("alice".into())
    );
}

#[test]
fn digest_uris_match_the_request_url_credentials_aside() {
    let url = Url::parse("rtsp://cam.example:554/a/b?x=1").unwrap();
    assert!(uri_matches("rtsp://cam.example:554/a/b?x=1", &url));
    assert!(uri_matches("rtsp://user:pw@cam.example:554/a/b?x=1", &url));
    assert!(uri_matches("/a/b?x=1", &url));
    assert!(!uri_matches("/a/b", &url));
    assert!(!uri_matches("rtsp://cam.example:554/a/c?x=1", &url));
    assert!(!uri_matches("rtsp://other:554/a/b?x=1", &url));
    assert!(!uri_matches("not a url", &url));
}
