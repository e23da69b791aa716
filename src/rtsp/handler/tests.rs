// Tests take a real `Instant` as their clock's origin.
#![allow(clippy::disallowed_methods)]
use super::*;
use crate::server::catalog::Catalog;
use std::time::SystemTime;

const BASE: &str = "rtsp://127.0.0.1:5544/sample";

/// The I/O layer's part in these tests: the bundled sample's catalogue
/// resolves the mount a request names before the handler sees it; the
/// viewers live in a map; RTCP is routed as the actions say; a torn-down
/// session's viewer and routes go once it has been woken to say BYE.
struct TestServer {
    handler: RtspHandler,
    viewers: std::collections::BTreeMap<String, Viewer>,
    routes: HashMap<RtcpSource, String>,
}

impl TestServer {
    fn handle(
        &mut self,
        request: &Request<Vec<u8>>,
        ctx: &RequestContext,
        now: Instant,
    ) -> Handled {
        static CATALOG: std::sync::OnceLock<Catalog> = std::sync::OnceLock::new();
        let catalog = CATALOG.get_or_init(|| Catalog::bundled_sample().expect("bundled sample"));
        let media = media_needed(request).map(|mount| {
            catalog
                .resolve(&mount)
                .map(crate::source::Presentation::File)
        });
        let ctx = RequestContext {
            received: now,
            ..*ctx
        };
        let handled = self
            .handler
            .handle_request(request, &ctx, media, &mut self.viewers);
        self.apply(&handled.actions);
        handled
    }

    fn expire_sessions(&mut self, now: Instant) -> Vec<Action> {
        let actions = self.handler.expire_sessions(now, &mut self.viewers);
        self.apply(&actions);
        actions
    }

    fn connection_closed(&mut self, connection: ConnectionId) -> Vec<Action> {
        let actions = self
            .handler
            .connection_closed(connection, Instant::now(), &mut self.viewers);
        self.apply(&actions);
        actions
    }

    fn teardown_all(&mut self) -> Vec<Action> {
        let actions = self.handler.teardown_all(&mut self.viewers);
        self.apply(&actions);
        actions
    }

    fn end_session(&mut self, id: &str) -> Option<Vec<Action>> {
        let actions = self.handler.end_session(id, &mut self.viewers)?;
        self.apply(&actions);
        Some(actions)
    }

    fn session_count(&self) -> usize {
        self.handler.session_count()
    }

    fn viewer(&self, id: &str) -> &Viewer {
        &self.viewers[id]
    }

    fn handle_rtcp(&mut self, source: RtcpSource, packet: &[u8], now: Instant, wall: SystemTime) {
        if let Some(viewer) = self
            .routes
            .get(&source)
            .and_then(|id| self.viewers.get_mut(id))
        {
            viewer.handle_rtcp(packet, now, wall);
        }
    }

    fn apply(&mut self, actions: &[Action]) {
        for action in actions {
            match action {
                Action::RouteRtcp {
                    session_id,
                    sources,
                } => {
                    self.routes.retain(|_, routed| routed != session_id);
                    for source in sources {
                        self.routes.insert(*source, session_id.clone());
                    }
                }
                // The session task would say BYE, then end.
                Action::Wake { session_id } if !self.handler.sessions.contains_key(session_id) => {
                    self.viewers.remove(session_id);
                    self.routes.retain(|_, routed| routed != session_id);
                }
                Action::Spawn { .. }
                | Action::Wake { .. }
                | Action::Publish { .. }
                | Action::Unpublish { .. } => {}
            }
        }
    }
}

fn handler() -> TestServer {
    handler_with_limits(Limit::at_most(4), Limit::at_most(6), Limit::at_most(100))
}

fn handler_with_limits(per_connection: Limit, per_address: Limit, overall: Limit) -> TestServer {
    let handler = RtspHandler::new(HandlerSettings {
        server_rtp_port: 5005,
        mtu: 1400,
        loop_playback: false,
        session_timeout: Duration::from_secs(60),
        max_sessions_per_connection: per_connection,
        max_sessions_per_address: per_address,
        max_sessions: overall,
        rng_seed: [7; 32],
        publish_paths: vec!["/live".into()],
        publish_takeover: false,
        source_paths: vec!["/live/channel".into()],
        multicast: None,
        access: Vec::new(),
        auth: Default::default(),
    });
    TestServer {
        handler,
        viewers: std::collections::BTreeMap::new(),
        routes: HashMap::new(),
    }
}

fn ctx(connection: ConnectionId, ip: [u8; 4]) -> RequestContext {
    RequestContext {
        connection,
        peer: SocketAddr::from((ip, 40000)),
        local: SocketAddr::from(([127, 0, 0, 1], 5544)),
        received: Instant::now(),
        secure: false,
    }
}

fn request(method: Method, url: &str, headers: &[(&str, &str)]) -> Request<Vec<u8>> {
    let mut builder = Request::builder(method, Version::V1_0)
        .request_uri(Url::parse(url).expect("test url"))
        .header(headers::CSEQ, "7");
    for (name, value) in headers {
        builder = builder.header(
            rtsp_types::HeaderName::try_from(*name).expect("header name"),
            *value,
        );
    }
    builder.build(Vec::new())
}

fn header<'a>(response: &'a Response<Vec<u8>>, name: &str) -> Option<&'a str> {
    let name = rtsp_types::HeaderName::try_from(name).expect("header name");
    response.header(&name).map(|v| v.as_str())
}

fn status(handled: &Handled) -> u16 {
    handled.response.status().into()
}

/// SETUPs both tracks over UDP and returns the session id.
fn setup_both(h: &mut TestServer, c: &RequestContext, now: Instant) -> String {
    let first = h.handle(
        &request(
            Method::Setup,
            &format!("{BASE}/trackID=0"),
            &[("Transport", "RTP/AVP;unicast;client_port=6000-6001")],
        ),
        c,
        now,
    );
    assert_eq!(status(&first), 200);
    let session = header(&first.response, "Session").expect("Session header");
    let id = session.split(';').next().expect("id").to_string();
    let second = h.handle(
        &request(
            Method::Setup,
            &format!("{BASE}/trackID=1"),
            &[
                ("Transport", "RTP/AVP;unicast;client_port=6002-6003"),
                ("Session", &id),
            ],
        ),
        c,
        now,
    );
    assert_eq!(status(&second), 200);
    id
}

#[test]
fn options_lists_every_method_and_echoes_cseq() {
    let mut h = handler();
    let handled = h.handle(
        &request(Method::Options, BASE, &[]),
        &ctx(1, [127, 0, 0, 1]),
        Instant::now(),
    );
    assert_eq!(status(&handled), 200);
    assert_eq!(header(&handled.response, "CSeq"), Some("7"));
    let public = header(&handled.response, "Public").expect("Public");
    for method in [
        "OPTIONS",
        "DESCRIBE",
        "SETUP",
        "PLAY",
        "PAUSE",
        "TEARDOWN",
        "GET_PARAMETER",
    ] {
        assert!(public.contains(method), "{method} missing from {public}");
    }
}

#[test]
fn describe_gives_sdp_with_content_base() {
    let mut h = handler();
    let handled = h.handle(
        &request(Method::Describe, BASE, &[]),
        &ctx(1, [127, 0, 0, 1]),
        Instant::now(),
    );
    assert_eq!(status(&handled), 200);
    assert_eq!(
        header(&handled.response, "Content-Base"),
        Some("rtsp://127.0.0.1:5544/sample/")
    );
    assert_eq!(
        header(&handled.response, "Content-Type"),
        Some("application/sdp")
    );
    let sdp = String::from_utf8(handled.response.body().clone()).expect("utf-8 SDP");
    assert!(sdp.contains("m=video 0 RTP/AVP 96"), "{sdp}");
    assert!(sdp.contains("m=audio 0 RTP/AVP 97"), "{sdp}");
    assert!(sdp.contains("a=control:trackID=1"), "{sdp}");
}

#[test]
fn errors_map_to_status_codes() {
    let mut h = handler();
    let c = ctx(1, [127, 0, 0, 1]);
    let now = Instant::now();
    let missing = h.handle(
        &request(Method::Describe, "rtsp://127.0.0.1/nothing", &[]),
        &c,
        now,
    );
    assert_eq!(status(&missing), 404);
    let escape = h.handle(
        &request(Method::Describe, "rtsp://127.0.0.1/%2e%2e/etc", &[]),
        &c,
        now,
    );
    assert_eq!(status(&escape), 404);
    let no_session = h.handle(
        &request(Method::Play, BASE, &[("Session", "0123456789ABCDEF")]),
        &c,
        now,
    );
    assert_eq!(status(&no_session), 454);
    let no_transport = h.handle(
        &request(Method::Setup, &format!("{BASE}/trackID=0"), &[]),
        &c,
        now,
    );
    assert_eq!(status(&no_transport), 461);
    let multicast = h.handle(
        &request(
            Method::Setup,
            &format!("{BASE}/trackID=0"),
            &[("Transport", "RTP/AVP;multicast")],
        ),
        &c,
        now,
    );
    assert_eq!(status(&multicast), 461);
    let unknown = h.handle(&request(Method::Redirect, BASE, &[]), &c, now);
    assert_eq!(status(&unknown), 501);
    let mut no_cseq = request(Method::Options, BASE, &[]);
    no_cseq.remove_header(&headers::CSEQ);
    assert_eq!(status(&h.handle(&no_cseq, &c, now)), 400);
    let mut v2 = request(Method::Options, BASE, &[]);
    v2.set_version(Version::V2_0);
    assert_eq!(status(&h.handle(&v2, &c, now)), 505);
}

#[test]
fn play_answers_rtp_info_for_every_track_and_range() {
    let mut h = handler();
    let c = ctx(1, [127, 0, 0, 1]);
    let now = Instant::now();
    let id = setup_both(&mut h, &c, now);
    let play = h.handle(
        &request(Method::Play, &format!("{BASE}/"), &[("Session", &id)]),
        &c,
        now,
    );
    assert_eq!(status(&play), 200);
    let rtp_info = header(&play.response, "RTP-Info").expect("RTP-Info");
    assert_eq!(rtp_info.matches("url=").count(), 2, "{rtp_info}");
    assert!(
        rtp_info.contains(&format!("url={BASE}/trackID=0;seq=")),
        "{rtp_info}"
    );
    assert!(rtp_info.contains("rtptime="), "{rtp_info}");
    assert!(header(&play.response, "Range")
        .expect("Range")
        .eq("npt=0.000-"));
    assert!(play
        .actions
        .iter()
        .any(|a| matches!(a, Action::Wake { .. })));
}

#[test]
fn every_play_answer_carries_rtp_info_for_the_presentation() {
    let mut h = handler();
    let c = ctx(1, [127, 0, 0, 1]);
    let now = Instant::now();
    let id = setup_both(&mut h, &c, now);
    let first = h.handle(&request(Method::Play, BASE, &[("Session", &id)]), &c, now);
    assert_eq!(status(&first), 200);
    // Again while playing, on a track URL with credentials and a query.
    let again = h.handle(
        &request(
            Method::Play,
            "rtsp://user:secret@127.0.0.1:5544/sample/trackID=0?x=1",
            &[("Session", &id)],
        ),
        &c,
        now,
    );
    assert_eq!(status(&again), 200);
    assert!(again.actions.is_empty(), "nothing restarts");
    let rtp_info = header(&again.response, "RTP-Info").expect("RTP-Info while playing");
    assert!(
        rtp_info.starts_with(&format!("url={BASE}/trackID=0;seq=")),
        "{rtp_info}"
    );
    assert!(
        rtp_info.contains(&format!("url={BASE}/trackID=1;seq=")),
        "{rtp_info}"
    );
    assert!(header(&again.response, "Range").is_some());
}

#[test]
fn seek_starts_at_keyframe_at_or_before_range() {
    let mut h = handler();
    let c = ctx(1, [127, 0, 0, 1]);
    let now = Instant::now();
    let id = setup_both(&mut h, &c, now);
    let play = h.handle(
        &request(Method::Play, BASE, &[("Session", &id), ("Range", "npt=5-")]),
        &c,
        now,
    );
    assert_eq!(status(&play), 200);
    let range = header(&play.response, "Range").expect("Range");
    let start: f64 = range["npt=".len()..]
        .split('-')
        .next()
        .expect("start")
        .parse()
        .expect("number");
    assert!((4.0..=5.0).contains(&start), "{range}");
    let beyond = h.handle(
        &request(
            Method::Play,
            BASE,
            &[("Session", &id), ("Range", "npt=99-")],
        ),
        &c,
        now,
    );
    assert_eq!(status(&beyond), 457);
    let garbage = h.handle(
        &request(
            Method::Play,
            BASE,
            &[("Session", &id), ("Range", "bytes=1-")],
        ),
        &c,
        now,
    );
    assert_eq!(status(&garbage), 457);
}

#[test]
fn state_machine_and_ownership_are_enforced() {
    let mut h = handler();
    let owner = ctx(1, [127, 0, 0, 1]);
    let stranger = ctx(2, [127, 0, 0, 9]);
    let now = Instant::now();
    let id = setup_both(&mut h, &owner, now);
    let pause = h.handle(
        &request(Method::Pause, BASE, &[("Session", &id)]),
        &owner,
        now,
    );
    assert_eq!(status(&pause), 455, "PAUSE before PLAY");
    let hijack = h.handle(
        &request(Method::Play, BASE, &[("Session", &id)]),
        &stranger,
        now,
    );
    assert_eq!(status(&hijack), 454, "another client's session");
    let hijack = h.handle(
        &request(Method::Teardown, BASE, &[("Session", &id)]),
        &stranger,
        now,
    );
    assert_eq!(status(&hijack), 454);
    assert_eq!(
        status(&h.handle(
            &request(Method::Play, BASE, &[("Session", &id)]),
            &owner,
            now
        )),
        200
    );
    let setup_again = h.handle(
        &request(
            Method::Setup,
            &format!("{BASE}/trackID=0"),
            &[
                ("Transport", "RTP/AVP;unicast;client_port=7000-7001"),
                ("Session", &id),
            ],
        ),
        &owner,
        now,
    );
    assert_eq!(status(&setup_again), 455, "SETUP while playing");
    assert_eq!(
        status(&h.handle(
            &request(Method::Pause, BASE, &[("Session", &id)]),
            &owner,
            now
        )),
        200
    );
    let teardown = request(Method::Teardown, BASE, &[("Session", &id)]);
    assert_eq!(status(&h.handle(&teardown, &owner, now)), 200);
    assert_eq!(
        status(&h.handle(&teardown, &owner, now)),
        454,
        "TEARDOWN twice"
    );
    assert_eq!(h.session_count(), 0);
}

#[test]
fn setup_twice_replaces_the_transport() {
    let mut h = handler();
    let c = ctx(1, [127, 0, 0, 1]);
    let now = Instant::now();
    let id = setup_both(&mut h, &c, now);
    let again = h.handle(
        &request(
            Method::Setup,
            &format!("{BASE}/trackID=0"),
            &[
                ("Transport", "RTP/AVP;unicast;client_port=7000-7001"),
                ("Session", &id),
            ],
        ),
        &c,
        now,
    );
    assert_eq!(status(&again), 200);
    let stream = h.viewer(&id);
    assert_eq!(stream.tracks().len(), 2);
    assert_eq!(
        stream.tracks()[0].delivery,
        Delivery::Udp {
            rtp: SocketAddr::from(([127, 0, 0, 1], 7000)),
            rtcp: SocketAddr::from(([127, 0, 0, 1], 7001)),
        }
    );
}

#[test]
fn sessions_expire_and_follow_their_connection() {
    let mut h = handler();
    let now = Instant::now();
    let udp_client = ctx(1, [127, 0, 0, 1]);
    let udp_id = setup_both(&mut h, &udp_client, now);
    let tcp_client = ctx(2, [127, 0, 0, 2]);
    let tcp = h.handle(
        &request(
            Method::Setup,
            &format!("{BASE}/trackID=0"),
            &[("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")],
        ),
        &tcp_client,
        now,
    );
    assert_eq!(status(&tcp), 200);
    assert_eq!(
        h.connection_closed(2).len(),
        1,
        "interleaved session ends with its connection"
    );
    assert_eq!(
        h.connection_closed(1).len(),
        0,
        "UDP session outlives its connection"
    );
    let keepalive = h.handle(
        &request(Method::GetParameter, BASE, &[("Session", &udp_id)]),
        &udp_client,
        now + Duration::from_secs(50),
    );
    assert_eq!(status(&keepalive), 200);
    assert!(
        h.expire_sessions(now + Duration::from_secs(100)).is_empty(),
        "keep-alive counted"
    );
    assert_eq!(h.expire_sessions(now + Duration::from_secs(111)).len(), 1);
    assert_eq!(h.session_count(), 0);
}

#[test]
fn an_operator_ends_a_session_and_its_viewer_says_bye() {
    let mut h = handler();
    let now = Instant::now();
    let client = ctx(1, [127, 0, 0, 1]);
    let setup = h.handle(
        &request(
            Method::Setup,
            &format!("{BASE}/trackID=0"),
            &[("Transport", "RTP/AVP;unicast;client_port=7000-7001")],
        ),
        &client,
        now,
    );
    assert_eq!(status(&setup), 200);
    let id = h.handler.sessions.keys().next().unwrap().clone();
    assert!(
        setup.actions.contains(&Action::Spawn {
            session_id: id.clone(),
            mount: "/sample".into(),
            client: client.peer,
            transport: setup
                .response
                .header(&headers::TRANSPORT)
                .unwrap()
                .as_str()
                .to_string(),
        }),
        "the session task learns its path and client: {:?}",
        setup.actions
    );
    let play = h.handle(
        &request(Method::Play, BASE, &[("Session", &id)]),
        &client,
        now,
    );
    assert_eq!(status(&play), 200);
    assert!(
        h.end_session("0000000000000000").is_none(),
        "no such session"
    );
    assert!(h.viewer(&id).is_playing());
    let actions = h.end_session(&id).expect("the session existed");
    assert_eq!(
        actions,
        [Action::Wake {
            session_id: id.clone()
        }]
    );
    assert_eq!(h.session_count(), 0);
    assert!(
        !h.viewers.contains_key(&id),
        "its viewer was torn down and woken to say BYE"
    );
    assert!(h.end_session(&id).is_none(), "ended once");
}

#[test]
fn session_count_per_connection_is_bounded() {
    let mut h = handler();
    let c = ctx(1, [127, 0, 0, 1]);
    let now = Instant::now();
    let setup = request(
        Method::Setup,
        &format!("{BASE}/trackID=0"),
        &[("Transport", "RTP/AVP;unicast;client_port=6000-6001")],
    );
    for _ in 0..4 {
        assert_eq!(status(&h.handle(&setup, &c, now)), 200);
    }
    assert_eq!(status(&h.handle(&setup, &c, now)), 453);
}

#[test]
fn sessions_per_address_are_bounded_across_connections() {
    let mut h = handler();
    let now = Instant::now();
    let setup = request(
        Method::Setup,
        &format!("{BASE}/trackID=0"),
        &[("Transport", "RTP/AVP;unicast;client_port=6000-6001")],
    );
    for connection in 0..6 {
        assert_eq!(
            status(&h.handle(&setup, &ctx(connection / 2, [127, 0, 0, 1]), now)),
            200
        );
    }
    assert_eq!(status(&h.handle(&setup, &ctx(9, [127, 0, 0, 1]), now)), 453);
    assert_eq!(
        status(&h.handle(&setup, &ctx(9, [127, 0, 0, 2]), now)),
        200,
        "other clients unaffected"
    );
}

#[test]
fn sessions_on_the_server_are_bounded_across_addresses() {
    let mut h = handler_with_limits(Limit::UNLIMITED, Limit::UNLIMITED, Limit::at_most(5));
    let now = Instant::now();
    let setup = request(
        Method::Setup,
        &format!("{BASE}/trackID=0"),
        &[("Transport", "RTP/AVP;unicast;client_port=6000-6001")],
    );
    for client in 0..5u8 {
        assert_eq!(
            status(&h.handle(&setup, &ctx(1, [10, 0, 0, client]), now)),
            200
        );
    }
    let refused = h.handle(&setup, &ctx(1, [10, 0, 0, 9]), now);
    assert_eq!(status(&refused), 453);
    assert_eq!(
        refused.response.reason_phrase(),
        "Not Enough Bandwidth: too many sessions"
    );
    h.teardown_all();
    assert_eq!(
        status(&h.handle(&setup, &ctx(1, [10, 0, 0, 9]), now)),
        200,
        "freed sessions make room again"
    );
}

#[test]
fn zero_limits_mean_unlimited() {
    let mut h = handler_with_limits(Limit::at_most(0), Limit::at_most(0), Limit::at_most(0));
    let c = ctx(1, [127, 0, 0, 1]);
    let now = Instant::now();
    let setup = request(
        Method::Setup,
        &format!("{BASE}/trackID=0"),
        &[("Transport", "RTP/AVP;unicast;client_port=6000-6001")],
    );
    // Well past the default of 16 sessions per connection.
    for _ in 0..300 {
        assert_eq!(status(&h.handle(&setup, &c, now)), 200);
    }
    assert_eq!(h.session_count(), 300);
}

#[test]
fn cseq_must_be_digits_and_required_options_are_refused() {
    let mut h = handler();
    let c = ctx(1, [127, 0, 0, 1]);
    let now = Instant::now();
    let mut bad = request(Method::Options, BASE, &[]);
    bad.insert_header(headers::CSEQ, "7\r\nX-Injected: 1");
    let handled = h.handle(&bad, &c, now);
    assert_eq!(status(&handled), 400);
    assert_eq!(header(&handled.response, "CSeq"), None);
    let require = h.handle(
        &request(Method::Play, BASE, &[("Require", "funky-feature")]),
        &c,
        now,
    );
    assert_eq!(status(&require), 551);
    assert_eq!(
        header(&require.response, "Unsupported"),
        Some("funky-feature")
    );
}

#[test]
fn interleaved_channels_never_collide_on_one_connection() {
    let mut h = handler();
    let c = ctx(1, [127, 0, 0, 1]);
    let now = Instant::now();
    let tcp = |channels: &str| {
        request(
            Method::Setup,
            &format!("{BASE}/trackID=0"),
            &[("Transport", channels)],
        )
    };
    let first = h.handle(&tcp("RTP/AVP/TCP;unicast;interleaved=0-1"), &c, now);
    assert_eq!(status(&first), 200);
    let clash = h.handle(&tcp("RTP/AVP/TCP;unicast;interleaved=0-1"), &c, now);
    assert_eq!(status(&clash), 461, "another session on the same channels");
    let chosen = h.handle(&tcp("RTP/AVP/TCP;unicast"), &c, now);
    assert_eq!(status(&chosen), 200);
    assert!(
        header(&chosen.response, "Transport").is_some_and(|t| t.contains("interleaved=2-3")),
        "{:?}",
        header(&chosen.response, "Transport")
    );
    let other_connection = h.handle(
        &tcp("RTP/AVP/TCP;unicast;interleaved=0-1"),
        &ctx(2, [127, 0, 0, 1]),
        now,
    );
    assert_eq!(
        status(&other_connection),
        200,
        "channels are per connection"
    );
}

#[test]
fn range_end_stops_the_stream_and_is_echoed() {
    let mut h = handler();
    let c = ctx(1, [127, 0, 0, 1]);
    let now = Instant::now();
    let id = setup_both(&mut h, &c, now);
    let play = h.handle(
        &request(
            Method::Play,
            BASE,
            &[("Session", &id), ("Range", "npt=2-5")],
        ),
        &c,
        now,
    );
    assert_eq!(status(&play), 200);
    assert_eq!(header(&play.response, "Range"), Some("npt=2.000-5.000"));
    let to_the_end = h.handle(
        &request(
            Method::Play,
            BASE,
            &[("Session", &id), ("Range", "npt=0-10.5")],
        ),
        &c,
        now,
    );
    assert_eq!(
        header(&to_the_end.response, "Range"),
        Some("npt=0.000-"),
        "an end past the duration plays to the end, open-ended"
    );
}

#[test]
fn range_keywords_are_case_insensitive() {
    let mut h = handler();
    let c = ctx(1, [127, 0, 0, 1]);
    let now = Instant::now();
    let id = setup_both(&mut h, &c, now);
    let play = h.handle(
        &request(Method::Play, BASE, &[("Session", &id), ("Range", "NPT=0-")]),
        &c,
        now,
    );
    assert_eq!(status(&play), 200);
    assert_eq!(header(&play.response, "Range"), Some("npt=0.000-"));
}

/// RFC 2326 §12.34, §12.35: without trick play the stream plays at normal
/// rate, and the response says so for each of Scale and Speed sent.
#[test]
fn scale_and_speed_are_answered_with_the_rate_played() {
    let mut h = handler();
    let c = ctx(1, [127, 0, 0, 1]);
    let now = Instant::now();
    let id = setup_both(&mut h, &c, now);
    let play = |h: &mut TestServer, extra: &[(&str, &str)]| {
        let mut headers = vec![("Session", id.as_str())];
        headers.extend_from_slice(extra);
        h.handle(&request(Method::Play, BASE, &headers), &c, now)
    };
    let plain = play(&mut h, &[]);
    assert_eq!(status(&plain), 200);
    assert_eq!(header(&plain.response, "Scale"), None);
    assert_eq!(header(&plain.response, "Speed"), None);
    for scale in ["2.0", "-1.0", "1"] {
        let fast = play(&mut h, &[("Scale", scale)]);
        assert_eq!(status(&fast), 200, "Scale: {scale}");
        assert_eq!(header(&fast.response, "Scale"), Some("1"), "Scale: {scale}");
        assert_eq!(header(&fast.response, "Speed"), None);
    }
    let both = play(&mut h, &[("Speed", "2.5"), ("Scale", "0.5")]);
    assert_eq!(header(&both.response, "Speed"), Some("1"));
    assert_eq!(header(&both.response, "Scale"), Some("1"));
    let malformed = play(&mut h, &[("Scale", "fast")]);
    assert_eq!(status(&malformed), 400);
    assert_eq!(
        malformed.response.reason_phrase(),
        "Bad Request: Scale fast"
    );
}

#[test]
fn a_track_control_after_the_query_sets_up_that_track() {
    let mut h = handler();
    let c = ctx(1, [127, 0, 0, 1]);
    let now = Instant::now();
    let audio = h.handle(
        &request(
            Method::Setup,
            &format!("{BASE}?token=x/trackID=1"),
            &[("Transport", "RTP/AVP;unicast;client_port=6002-6003")],
        ),
        &c,
        now,
    );
    assert_eq!(status(&audio), 200, "{:?}", audio.response);
    let id = header(&audio.response, "Session")
        .and_then(|s| s.split(';').next())
        .expect("session")
        .to_string();
    let video = h.handle(
        &request(
            Method::Setup,
            &format!("{BASE}?token=x/trackID=0"),
            &[
                ("Transport", "RTP/AVP;unicast;client_port=6000-6001"),
                ("Session", &id),
            ],
        ),
        &c,
        now,
    );
    assert_eq!(status(&video), 200);
    let play = h.handle(
        &request(
            Method::Play,
            &format!("{BASE}?token=x"),
            &[("Session", &id)],
        ),
        &c,
        now,
    );
    assert_eq!(status(&play), 200);
    let rtp_info = header(&play.response, "RTP-Info").expect("RTP-Info");
    assert!(
        rtp_info.contains(&format!("url={BASE}/trackID=0;"))
            && rtp_info.contains(&format!("url={BASE}/trackID=1;")),
        "track URLs under the presentation URL, no query: {rtp_info}"
    );
    let describe = h.handle(
        &request(Method::Describe, &format!("{BASE}?token=x"), &[]),
        &c,
        now,
    );
    assert_eq!(
        header(&describe.response, "Content-Base"),
        Some(format!("{BASE}/").as_str())
    );
    let unknown = h.handle(
        &request(
            Method::Setup,
            "rtsp://127.0.0.1:5544/other?x=/sample/trackID=0",
            &[("Transport", "RTP/AVP;unicast;client_port=6000-6001")],
        ),
        &c,
        now,
    );
    assert_eq!(status(&unknown), 404, "the query is no path to the media");
}

#[test]
fn doubled_slashes_name_the_same_presentation() {
    let mut h = handler();
    let c = ctx(1, [127, 0, 0, 1]);
    let now = Instant::now();
    let first = h.handle(
        &request(
            Method::Setup,
            "rtsp://127.0.0.1:5544//sample//trackID=0",
            &[("Transport", "RTP/AVP;unicast;client_port=6000-6001")],
        ),
        &c,
        now,
    );
    assert_eq!(status(&first), 200);
    let id = header(&first.response, "Session")
        .and_then(|s| s.split(';').next())
        .expect("session")
        .to_string();
    let second = h.handle(
        &request(
            Method::Setup,
            &format!("{BASE}/trackID=1"),
            &[
                ("Transport", "RTP/AVP;unicast;client_port=6002-6003"),
                ("Session", &id),
            ],
        ),
        &c,
        now,
    );
    assert_eq!(status(&second), 200, "{:?}", second.response);
    let other = h.handle(
        &request(
            Method::Setup,
            "rtsp://127.0.0.1:5544/trackID=1",
            &[
                ("Transport", "RTP/AVP;unicast;client_port=6002-6003"),
                ("Session", &id),
            ],
        ),
        &c,
        now,
    );
    assert_eq!(status(&other), 459, "/ is still another presentation");
    let play = h.handle(
        &request(
            Method::Play,
            "rtsp://127.0.0.1:5544//sample/",
            &[("Session", &id)],
        ),
        &c,
        now,
    );
    assert!(
        header(&play.response, "RTP-Info")
            .is_some_and(|info| info.contains(&format!("url={BASE}/trackID=1;"))),
        "{:?}",
        play.response
    );
}

/// Random sequences of methods, URLs and headers from several clients:
/// the handler answers every one with a status and never panics, and the
/// session table stays bounded (security rules from live555's CVEs).
#[test]
fn random_request_sequences_never_panic() {
    let mut h = handler();
    let now = Instant::now();
    let methods = [
        Method::Options,
        Method::Describe,
        Method::Setup,
        Method::Play,
        Method::Pause,
        Method::Teardown,
        Method::GetParameter,
        Method::Record,
    ];
    let urls = [
        BASE,
        "rtsp://127.0.0.1:5544/",
        "rtsp://127.0.0.1:5544/sample/trackID=0",
        "rtsp://127.0.0.1:5544/sample/trackID=1",
        "rtsp://127.0.0.1:5544/sample/trackID=9",
        "rtsp://127.0.0.1:5544/%2e%2e/x",
        "rtsp://127.0.0.1:5544/sample?q=1/trackID=0",
    ];
    let transports = [
        "RTP/AVP;unicast;client_port=6000-6001",
        "RTP/AVP/TCP;unicast;interleaved=0-1",
        "RTP/AVP;unicast;client_port=0-1",
        "RTP/AVP;multicast",
        "garbage;;;=",
        "RTP/AVP/TCP;interleaved=300-301",
    ];
    let ranges = [
        "npt=0-",
        "npt=5-",
        "npt=-1-",
        "npt=1e309-",
        "npt=now-",
        "smpte=0:0:0-",
    ];
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut ids: Vec<String> = vec!["FFFFFFFFFFFFFFFF".into()];
    for step in 0..5000 {
        let c = ctx(next(3) as u64, [127, 0, 0, 1 + next(2) as u8]);
        let mut headers: Vec<(&str, String)> = Vec::new();
        if next(2) == 0 {
            headers.push(("Transport", transports[next(transports.len())].to_string()));
        }
        if next(3) != 0 {
            headers.push(("Session", ids[next(ids.len())].clone()));
        }
        if next(4) == 0 {
            headers.push(("Range", ranges[next(ranges.len())].to_string()));
        }
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let req = request(
            methods[next(methods.len())].clone(),
            urls[next(urls.len())],
            &headers,
        );
        let handled = h.handle(&req, &c, now + Duration::from_millis(step));
        let code = status(&handled);
        assert!((200..600).contains(&code));
        if let Some(session) = header(&handled.response, "Session") {
            let id = session.split(';').next().unwrap_or_default().to_string();
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        assert!(
            h.session_count() <= 3 * 4,
            "bounded by sessions per connection"
        );
    }
    assert!(ids.len() > 3, "sessions were created along the way");
}

#[test]
fn receiver_reports_are_routed_by_source_and_keep_sessions_alive() {
    let mut h = handler();
    let c = ctx(1, [127, 0, 0, 1]);
    let now = Instant::now();
    let id = setup_both(&mut h, &c, now);
    let video_ssrc = h.viewer(&id).tracks()[0].rtp.ssrc;
    let block = crate::rtcp::ReportBlock {
        ssrc: video_ssrc,
        fraction_lost: 64,
        cumulative_lost: 3,
        highest_seq: 1000,
        jitter: 12,
        last_sr: 0,
        delay_since_last_sr: 0,
    };
    let mut report = Vec::new();
    crate::rtcp::write_receiver_report(0x1234, &[block], &mut report);
    let video_rtcp = RtcpSource::Udp(SocketAddr::from(([127, 0, 0, 1], 6001)));
    let stranger = RtcpSource::Udp(SocketAddr::from(([127, 0, 0, 1], 6999)));
    let late = now + Duration::from_secs(50);
    h.handle_rtcp(stranger, &report, late, SystemTime::now());
    h.handle_rtcp(video_rtcp, b"\xce\xfa\xed\xfe", late, SystemTime::now());
    assert_eq!(h.viewer(&id).tracks()[0].last_report, None);
    assert_eq!(
        h.expire_sessions(now + Duration::from_secs(61)).len(),
        1,
        "junk is not liveness"
    );

    let id = setup_both(&mut h, &c, now);
    let block = crate::rtcp::ReportBlock {
        ssrc: h.viewer(&id).tracks()[0].rtp.ssrc,
        ..block
    };
    report.clear();
    crate::rtcp::write_receiver_report(0x1234, &[block], &mut report);
    h.handle_rtcp(video_rtcp, &report, late, SystemTime::now());
    assert_eq!(h.viewer(&id).tracks()[0].last_report, Some(block));
    assert!(
        h.expire_sessions(now + Duration::from_secs(61)).is_empty(),
        "RTCP is liveness"
    );
    assert_eq!(h.expire_sessions(now + Duration::from_secs(111)).len(), 1);
    h.handle_rtcp(video_rtcp, &report, late, SystemTime::now());
    assert_eq!(h.session_count(), 0, "routes of removed sessions are gone");
}

/// SETUP of `track` with `transport`, in session `session` if given.
fn setup(
    h: &mut TestServer,
    c: &RequestContext,
    track: Option<usize>,
    transport: &str,
    session: Option<&str>,
) -> Handled {
    let url = match track {
        Some(track) => format!("{BASE}/trackID={track}"),
        None => BASE.to_string(),
    };
    let mut headers = vec![("Transport", transport)];
    if let Some(session) = session {
        headers.push(("Session", session));
    }
    h.handle(&request(Method::Setup, &url, &headers), c, Instant::now())
}

fn session_of(handled: &Handled) -> String {
    let session = header(&handled.response, "Session").expect("Session header");
    session.split(';').next().expect("id").to_string()
}

#[test]
fn setup_of_the_aggregate_url_needs_a_track_when_there_are_two() {
    let mut h = handler();
    let c = ctx(1, [127, 0, 0, 1]);
    let aggregate = setup(
        &mut h,
        &c,
        None,
        "RTP/AVP;unicast;client_port=6000-6001",
        None,
    );
    assert_eq!(status(&aggregate), 459, "RFC 2326 §10.4: SETUP a track URL");
}

#[test]
fn interleaved_channels_are_assigned_and_never_shared() {
    let mut h = handler();
    let c = ctx(1, [127, 0, 0, 1]);
    // Without interleaved=, the first free pair is given.
    let first = setup(&mut h, &c, Some(0), "RTP/AVP/TCP;unicast", None);
    assert_eq!(status(&first), 200);
    assert!(
        header(&first.response, "Transport").is_some_and(|t| t.contains("interleaved=0-1")),
        "{:?}",
        header(&first.response, "Transport")
    );
    let id = session_of(&first);
    let second = setup(&mut h, &c, Some(1), "RTP/AVP/TCP;unicast", Some(&id));
    assert!(
        header(&second.response, "Transport").is_some_and(|t| t.contains("interleaved=2-3")),
        "{:?}",
        header(&second.response, "Transport")
    );
    // A pair of which one channel is taken is refused, on any session of
    // the connection.
    let overlap = setup(
        &mut h,
        &c,
        Some(1),
        "RTP/AVP/TCP;unicast;interleaved=3-4",
        None,
    );
    assert_eq!(status(&overlap), 461);
    let overlap = setup(
        &mut h,
        &c,
        Some(0),
        "RTP/AVP/TCP;unicast;interleaved=1-2",
        None,
    );
    assert_eq!(status(&overlap), 461);
    // The first pair free on both channels: with 1-2 taken, 4-5.
    let c3 = ctx(3, [127, 0, 0, 1]);
    let odd = setup(
        &mut h,
        &c3,
        Some(0),
        "RTP/AVP/TCP;unicast;interleaved=1-2",
        None,
    );
    assert_eq!(status(&odd), 200);
    let next = setup(
        &mut h,
        &c3,
        Some(1),
        "RTP/AVP/TCP;unicast",
        Some(&session_of(&odd)),
    );
    assert!(
        header(&next.response, "Transport").is_some_and(|t| t.contains("interleaved=4-5")),
        "{:?}",
        header(&next.response, "Transport")
    );
    // Another connection has channels of its own.
    let other = setup(
        &mut h,
        &ctx(2, [127, 0, 0, 1]),
        Some(0),
        "RTP/AVP/TCP;unicast;interleaved=0-1",
        None,
    );
    assert_eq!(status(&other), 200);
}

#[test]
fn interleaving_joins_a_session_only_on_its_own_connection() {
    let mut h = handler();
    let first = setup(
        &mut h,
        &ctx(1, [127, 0, 0, 1]),
        Some(0),
        "RTP/AVP;unicast;client_port=6000-6001",
        None,
    );
    let id = session_of(&first);
    let elsewhere = setup(
        &mut h,
        &ctx(2, [127, 0, 0, 1]),
        Some(1),
        "RTP/AVP/TCP;unicast;interleaved=0-1",
        Some(&id),
    );
    assert_eq!(
        status(&elsewhere),
        461,
        "its packets could not reach that connection"
    );
    let here = setup(
        &mut h,
        &ctx(1, [127, 0, 0, 1]),
        Some(1),
        "RTP/AVP/TCP;unicast;interleaved=0-1",
        Some(&id),
    );
    assert_eq!(status(&here), 200);
    // One interleaved track makes the session end with its connection.
    assert_eq!(h.connection_closed(1).len(), 1);
    assert_eq!(h.session_count(), 0);
}

#[test]
fn a_path_a_configured_source_feeds_takes_no_publisher() {
    let mut h = handler();
    let c = ctx(1, [127, 0, 0, 1]);
    let now = Instant::now();
    let sdp = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n\
               m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/48000/2\r\n\
               a=fmtp:97 mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1190\r\n\
               a=control:streamid=0\r\n";
    let announce = |url: &str| {
        request(
            Method::Announce,
            url,
            &[("Content-Type", "application/sdp")],
        )
        .replace_body(sdp.as_bytes().to_vec())
    };
    let taken = h.handle(&announce("rtsp://127.0.0.1:5544/live/channel"), &c, now);
    assert_eq!(status(&taken), 403, "a channel's path under /live");
    let free = h.handle(&announce("rtsp://127.0.0.1:5544/live/other"), &c, now);
    assert_eq!(status(&free), 200, "its neighbour takes publishers");
}

mod access;
mod record;

#[test]
fn rtsps_serves_interleaved_only_and_answers_rtsps_urls() {
    let mut h = handler();
    let c = RequestContext {
        secure: true,
        ..ctx(1, [127, 0, 0, 1])
    };
    let tls_base = "rtsps://127.0.0.1:322/sample";
    let describe = h.handle(
        &request(Method::Describe, tls_base, &[]),
        &c,
        Instant::now(),
    );
    assert_eq!(
        header(&describe.response, "Content-Base"),
        Some("rtsps://127.0.0.1:322/sample/")
    );
    // UDP would carry the media outside TLS: refused, nothing created.
    for transport in ["RTP/AVP;unicast;client_port=6000-6001", "RTP/AVP;multicast"] {
        let udp = setup(&mut h, &c, Some(0), transport, None);
        assert_eq!(status(&udp), 461, "{transport}");
        assert_eq!(h.session_count(), 0);
    }
    // Offered after UDP, the interleaved alternative is the one taken.
    let tcp = setup(
        &mut h,
        &c,
        Some(0),
        "RTP/AVP;unicast;client_port=6000-6001,RTP/AVP/TCP;unicast;interleaved=0-1",
        None,
    );
    assert_eq!(status(&tcp), 200);
    assert_eq!(
        header(&tcp.response, "Transport"),
        Some("RTP/AVP/TCP;unicast;interleaved=0-1")
    );
    let id = session_of(&tcp);
    let play = h.handle(
        &request(Method::Play, &format!("{tls_base}/"), &[("Session", &id)]),
        &c,
        Instant::now(),
    );
    let rtp_info = header(&play.response, "RTP-Info").expect("RTP-Info");
    assert!(
        rtp_info.starts_with("url=rtsps://127.0.0.1:322/sample/trackID=0;"),
        "{rtp_info}"
    );
    // The same UDP offer on a plain connection is served.
    let plain = setup(
        &mut h,
        &ctx(2, [127, 0, 0, 2]),
        Some(0),
        "RTP/AVP;unicast;client_port=6000-6001",
        None,
    );
    assert_eq!(status(&plain), 200);
}
