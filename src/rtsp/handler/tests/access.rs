//! Access rules through the handler: 401 with challenges, 403 by
//! network, users bound to their paths and sessions, throttling, stale
//! nonces, publishing with credentials.

use super::*;
use crate::config::{AccessRule, PathAccess, UserCredential};
use crate::rtsp::auth::password::StoredPassword;
use base64::Engine as _;
use md5::{Digest as _, Md5};

fn user(name: &str, password: &str) -> UserCredential {
    UserCredential {
        name: name.into(),
        password_hash: StoredPassword::new(name, "rtpcast", password).to_string(),
    }
}

fn users(list: &[(&str, &str)]) -> AccessRule {
    AccessRule {
        users: list.iter().map(|(n, p)| user(n, p)).collect(),
        networks: Vec::new(),
    }
}

/// A handler whose `/sample` alice and bob may read, whose `/` only
/// carol may, and whose `/live` only the publisher may publish to.
fn guarded() -> TestServer {
    let mut h = handler();
    h.handler.set_access(vec![
        PathAccess {
            path: "/".into(),
            read: users(&[("carol", "c-pass")]),
            publish: AccessRule::default(),
        },
        PathAccess {
            path: "/sample".into(),
            read: users(&[("alice", "a-pass"), ("bob", "b-pass")]),
            publish: AccessRule::default(),
        },
        PathAccess {
            path: "/live".into(),
            read: AccessRule::default(),
            publish: users(&[("publisher", "p-pass")]),
        },
    ]);
    h
}

fn basic(name: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{name}:{password}"));
    format!("Basic {token}")
}

/// The `WWW-Authenticate` challenges of a 401, one per header line.
fn challenges(handled: &Handled) -> Vec<String> {
    header(&handled.response, "WWW-Authenticate")
        .map(|value| {
            value
                .split("\r\nWWW-Authenticate: ")
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// An RFC 2617 MD5 answer to `challenge` (its nonce), computed here.
fn md5_digest(challenge: &str, name: &str, password: &str, method: &str, uri: &str) -> String {
    let start = challenge.find("nonce=\"").expect("nonce") + 7;
    let nonce = &challenge[start..start + 64];
    let hex = |text: String| -> String {
        Md5::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let ha1 = hex(format!("{name}:rtpcast:{password}"));
    let ha2 = hex(format!("{method}:{uri}"));
    let response = hex(format!("{ha1}:{nonce}:00000001:cafe:auth:{ha2}"));
    format!(
        "Digest username=\"{name}\", realm=\"rtpcast\", nonce=\"{nonce}\", uri=\"{uri}\", \
         algorithm=MD5, qop=auth, nc=00000001, cnonce=\"cafe\", response=\"{response}\""
    )
}

fn describe(
    h: &mut TestServer,
    c: &RequestContext,
    url: &str,
    auth: Option<&str>,
    now: Instant,
) -> Handled {
    let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
    h.handle(&request(Method::Describe, url, &headers), c, now)
}

#[test]
fn a_path_with_users_challenges_and_lets_in_only_the_right_password() {
    let mut h = guarded();
    let c = ctx(1, [127, 0, 0, 1]);
    let now = Instant::now();
    let refused = describe(&mut h, &c, BASE, None, now);
    assert_eq!(status(&refused), 401);
    assert!(
        refused.response.body().is_empty(),
        "no SDP before authentication"
    );
    let offered = challenges(&refused);
    assert_eq!(offered.len(), 3, "{offered:?}");
    assert!(offered[0].contains("algorithm=SHA-256"));
    assert!(offered[1].contains("algorithm=MD5"));
    assert!(offered[2].starts_with("Basic"));
    // OPTIONS stays open: clients ask it before anything else.
    assert_eq!(
        status(&h.handle(&request(Method::Options, BASE, &[]), &c, now)),
        200
    );

    let wrong = describe(&mut h, &c, BASE, Some(&basic("alice", "b-pass")), now);
    assert_eq!(status(&wrong), 401);
    assert_eq!(challenges(&wrong).len(), 3);
    // Credentials in the URL never come back in Content-Base.
    let with_credentials = "rtsp://alice:a-pass@127.0.0.1:5544/sample";
    let ok = describe(
        &mut h,
        &c,
        with_credentials,
        Some(&basic("alice", "a-pass")),
        now,
    );
    assert_eq!(status(&ok), 200);
    assert_eq!(
        header(&ok.response, "Content-Base"),
        Some("rtsp://127.0.0.1:5544/sample/")
    );

    let digest = md5_digest(&offered[1], "bob", "b-pass", "DESCRIBE", BASE);
    assert_eq!(status(&describe(&mut h, &c, BASE, Some(&digest), now)), 200);
    // The response covers the URL: the same answer for another is refused.
    let elsewhere = format!("{BASE}/trackID=0");
    let replayed = h.handle(
        &request(
            Method::Setup,
            &elsewhere,
            &[
                ("Transport", "RTP/AVP;unicast;client_port=6000-6001"),
                ("Authorization", &digest),
            ],
        ),
        &c,
        now,
    );
    assert_eq!(status(&replayed), 401);
}

#[test]
fn a_user_of_one_path_cannot_read_another() {
    let mut h = guarded();
    let c = ctx(1, [127, 0, 0, 1]);
    let now = Instant::now();
    let root = "rtsp://127.0.0.1:5544/";
    assert_eq!(
        status(&describe(
            &mut h,
            &c,
            root,
            Some(&basic("alice", "a-pass")),
            now
        )),
        401
    );
    assert_eq!(
        status(&describe(
            &mut h,
            &c,
            root,
            Some(&basic("carol", "c-pass")),
            now
        )),
        200
    );
    assert_eq!(
        status(&describe(
            &mut h,
            &c,
            BASE,
            Some(&basic("carol", "c-pass")),
            now
        )),
        401
    );
    // Track URLs and doubled slashes fall under the same rule.
    let track = h.handle(
        &request(
            Method::Setup,
            "rtsp://127.0.0.1:5544//sample/trackID=0",
            &[
                ("Transport", "RTP/AVP;unicast;client_port=6000-6001"),
                ("Authorization", &basic("carol", "c-pass")),
            ],
        ),
        &c,
        now,
    );
    assert_eq!(status(&track), 401);
    // A path under no rule with users stays open for reading.
    h.handler.set_access(vec![PathAccess {
        path: "/live".into(),
        read: AccessRule::default(),
        publish: users(&[("publisher", "p-pass")]),
    }]);
    assert_eq!(status(&describe(&mut h, &c, BASE, None, now)), 200);
}

#[test]
fn a_session_answers_only_its_own_user() {
    let mut h = guarded();
    let c = ctx(1, [127, 0, 0, 1]);
    let now = Instant::now();
    let alice = basic("alice", "a-pass");
    let set_up = h.handle(
        &request(
            Method::Setup,
            &format!("{BASE}/trackID=0"),
            &[
                ("Transport", "RTP/AVP;unicast;client_port=6000-6001"),
                ("Authorization", &alice),
            ],
        ),
        &c,
        now,
    );
    assert_eq!(status(&set_up), 200);
    let id = session_of(&set_up);
    let play = |h: &mut TestServer, auth: &str| {
        let headers = [("Session", id.as_str()), ("Authorization", auth)];
        status(&h.handle(&request(Method::Play, BASE, &headers), &c, now))
    };
    assert_eq!(
        play(&mut h, &basic("bob", "b-pass")),
        454,
        "bob may read /sample, not alice's session"
    );
    assert_eq!(play(&mut h, "Basic Ym9ndXM="), 401);
    let unauthenticated = h.handle(
        &request(Method::Play, BASE, &[("Session", id.as_str())]),
        &c,
        now,
    );
    assert_eq!(status(&unauthenticated), 401);
    assert_eq!(play(&mut h, &alice), 200);
    // Credentials in the request URL never come back in RTP-Info.
    let in_url = "rtsp://alice:a-pass@127.0.0.1:5544/sample";
    let headers = [("Session", id.as_str()), ("Authorization", alice.as_str())];
    let played = h.handle(&request(Method::Play, in_url, &headers), &c, now);
    assert_eq!(status(&played), 200);
    let rtp_info = header(&played.response, "RTP-Info").expect("RTP-Info");
    assert!(
        rtp_info.starts_with("url=rtsp://127.0.0.1:5544/sample/"),
        "{rtp_info}"
    );
    // A session is judged by its own path, whatever URL the request gives.
    let headers = [
        ("Session", id.as_str()),
        ("Authorization", &basic("carol", "c-pass")),
    ];
    let other_url = h.handle(
        &request(Method::Pause, "rtsp://127.0.0.1:5544/", &headers),
        &c,
        now,
    );
    assert_eq!(status(&other_url), 401);
}

#[test]
fn unadmitted_requests_are_answered_before_media_is_opened() {
    let mut h = guarded();
    let c = ctx(1, [127, 0, 0, 1]);
    let now = Instant::now();
    let ctx_now = RequestContext { received: now, ..c };
    let bare = request(Method::Describe, BASE, &[]);
    let refused = h
        .handler
        .refuse_unadmitted(&bare, &ctx_now)
        .expect("refused");
    assert_eq!(status(&refused), 401);
    assert_eq!(challenges(&refused).len(), 3);
    let alice = basic("alice", "a-pass");
    let admitted = request(Method::Describe, BASE, &[("Authorization", &alice)]);
    assert!(h.handler.refuse_unadmitted(&admitted, &ctx_now).is_none());
    // Checked again when answered.
    assert_eq!(status(&h.handle(&admitted, &c, now)), 200);
    let options = request(Method::Options, BASE, &[]);
    assert!(h.handler.refuse_unadmitted(&options, &ctx_now).is_none());
    let no_cseq = Request::builder(Method::Describe, Version::V1_0)
        .request_uri(Url::parse(BASE).unwrap())
        .build(Vec::new());
    assert!(h.handler.refuse_unadmitted(&no_cseq, &ctx_now).is_none());
}

#[test]
fn a_reload_changes_the_schemes_offered() {
    let mut h = guarded();
    let c = ctx(1, [127, 0, 0, 1]);
    let now = Instant::now();
    h.handler.set_auth(crate::config::AuthConfig {
        realm: "rtpcast".into(),
        schemes: vec![crate::config::AuthScheme::DigestMd5],
    });
    let offered = challenges(&describe(&mut h, &c, BASE, None, now));
    assert_eq!(offered.len(), 1);
    assert!(offered[0].contains("algorithm=MD5"));
    let refused = describe(&mut h, &c, BASE, Some(&basic("alice", "a-pass")), now);
    assert_eq!(status(&refused), 401, "Basic is no longer accepted");
    let digest = md5_digest(&offered[0], "alice", "a-pass", "DESCRIBE", BASE);
    assert_eq!(status(&describe(&mut h, &c, BASE, Some(&digest), now)), 200);
}

#[test]
fn a_client_outside_the_networks_is_forbidden() {
    let mut h = handler();
    h.handler.set_access(vec![PathAccess {
        path: "/sample".into(),
        read: AccessRule {
            users: vec![user("alice", "a-pass")],
            networks: vec!["10.0.0.0/8".parse().unwrap()],
        },
        publish: AccessRule::default(),
    }]);
    let now = Instant::now();
    let outside = describe(
        &mut h,
        &ctx(1, [192, 0, 2, 1]),
        BASE,
        Some(&basic("alice", "a-pass")),
        now,
    );
    assert_eq!(status(&outside), 403);
    assert!(challenges(&outside).is_empty());
    let inside = ctx(2, [10, 1, 2, 3]);
    assert_eq!(status(&describe(&mut h, &inside, BASE, None, now)), 401);
    assert_eq!(
        status(&describe(
            &mut h,
            &inside,
            BASE,
            Some(&basic("alice", "a-pass")),
            now
        )),
        200
    );
}

#[test]
fn repeated_failures_are_answered_503_without_checking() {
    let mut h = guarded();
    let c = ctx(1, [192, 0, 2, 9]);
    let now = Instant::now();
    for _ in 0..crate::rtsp::auth::throttle::MAX_FAILURES {
        assert_eq!(
            status(&describe(
                &mut h,
                &c,
                BASE,
                Some(&basic("alice", "guess")),
                now
            )),
            401
        );
    }
    let later = now + Duration::from_secs(20);
    let blocked = describe(&mut h, &c, BASE, Some(&basic("alice", "a-pass")), later);
    assert_eq!(status(&blocked), 503);
    assert_eq!(header(&blocked.response, "Retry-After"), Some("40"));
    // Another address is not affected.
    let other = ctx(2, [192, 0, 2, 10]);
    assert_eq!(
        status(&describe(
            &mut h,
            &other,
            BASE,
            Some(&basic("alice", "a-pass")),
            later
        )),
        200
    );
    let after = now + crate::rtsp::auth::throttle::WINDOW;
    assert_eq!(
        status(&describe(
            &mut h,
            &c,
            BASE,
            Some(&basic("alice", "a-pass")),
            after
        )),
        200
    );
}

#[test]
fn an_old_nonce_is_challenged_as_stale() {
    let mut h = guarded();
    let c = ctx(1, [127, 0, 0, 1]);
    let now = Instant::now();
    let offered = challenges(&describe(&mut h, &c, BASE, None, now));
    let digest = md5_digest(&offered[1], "alice", "a-pass", "DESCRIBE", BASE);
    let late = now + crate::rtsp::auth::nonce::NONCE_LIFETIME + Duration::from_secs(1);
    let stale = describe(&mut h, &c, BASE, Some(&digest), late);
    assert_eq!(status(&stale), 401);
    assert!(
        challenges(&stale)[1].ends_with("stale=true"),
        "{:?}",
        challenges(&stale)
    );
    let fresh = challenges(&stale)[1].clone();
    let digest = md5_digest(&fresh, "alice", "a-pass", "DESCRIBE", BASE);
    assert_eq!(
        status(&describe(&mut h, &c, BASE, Some(&digest), late)),
        200
    );
}

#[test]
fn publishing_needs_the_publish_rules_users() {
    let mut h = guarded();
    let c = ctx(1, [127, 0, 0, 1]);
    let now = Instant::now();
    let live = "rtsp://127.0.0.1:5544/live/cam";
    let sdp = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\n\
               m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/48000/2\r\n\
               a=fmtp:97 mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1190\r\n\
               a=control:streamid=0\r\n";
    let announce = |h: &mut TestServer, auth: Option<&str>| {
        let mut headers = vec![("Content-Type", "application/sdp")];
        headers.extend(auth.map(|a| ("Authorization", a)));
        let request =
            request(Method::Announce, live, &headers).replace_body(sdp.as_bytes().to_vec());
        h.handle(&request, &c, now)
    };
    assert_eq!(status(&announce(&mut h, None)), 401);
    assert_eq!(
        status(&announce(&mut h, Some(&basic("alice", "a-pass")))),
        401
    );
    let publisher = basic("publisher", "p-pass");
    assert_eq!(status(&announce(&mut h, Some(&publisher))), 200);
    let setup = |h: &mut TestServer, auth: Option<&str>| {
        let mut headers = vec![(
            "Transport",
            "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record",
        )];
        headers.extend(auth.map(|a| ("Authorization", a)));
        h.handle(
            &request(Method::Setup, &format!("{live}/streamid=0"), &headers),
            &c,
            now,
        )
    };
    assert_eq!(status(&setup(&mut h, None)), 401);
    let set_up = setup(&mut h, Some(&publisher));
    assert_eq!(status(&set_up), 200);
    let id = session_of(&set_up);
    let record = |h: &mut TestServer, auth: Option<&str>| {
        let mut headers = vec![("Session", id.as_str())];
        headers.extend(auth.map(|a| ("Authorization", a)));
        h.handle(&request(Method::Record, live, &headers), &c, now)
    };
    assert_eq!(status(&record(&mut h, None)), 401);
    assert_eq!(status(&record(&mut h, Some(&publisher))), 200);
    // Reading the path is open: its read rule names nobody.
    let read = describe(&mut h, &c, live, None, now);
    assert_ne!(status(&read), 401);
}
