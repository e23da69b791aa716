//! Publishing through the handler: ANNOUNCE claims, SETUP with
//! `mode=record`, RECORD, and how a publisher's session ends.

use super::*;

const LIVE: &str = "rtsp://127.0.0.1:5544/live/cam";

/// Parameter sets of a 320x240 H.264 High stream, as FFmpeg announces them.
const FFMPEG_H264_FMTP: &str = "packetization-mode=1; \
    sprop-parameter-sets=Z2QADazZQUH7ARAAAAMAEAAAAwMg8UKZYA==,aOvjyyLA; profile-level-id=64000D";
const FFMPEG_AAC_FMTP: &str = "profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;\
    indexdeltalength=3; config=121056E500";

/// An SDP of H.264 (pt 96) and AAC (pt 97) with the given `a=control`s
/// (none when `None`) and session-level lines.
fn two_tracks(session: &str, video: Option<&str>, audio: Option<&str>) -> String {
    let control = |c: Option<&str>| c.map_or(String::new(), |c| format!("a=control:{c}\r\n"));
    format!(
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nt=0 0\r\n{session}\
         m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 {FFMPEG_H264_FMTP}\r\n{}\
         m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/44100/2\r\na=fmtp:97 {FFMPEG_AAC_FMTP}\r\n{}",
        control(video),
        control(audio),
    )
}

/// What `ffmpeg -f rtsp` announces: controls `streamid=0` and `streamid=1`.
fn ffmpeg_sdp() -> String {
    two_tracks("", Some("streamid=0"), Some("streamid=1"))
}

/// One H.264 track with no `a=control`.
fn video_only_sdp() -> String {
    format!(
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
         m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 {FFMPEG_H264_FMTP}\r\n"
    )
}

fn announce(
    h: &mut TestServer,
    c: &RequestContext,
    url: &str,
    body: &str,
    now: Instant,
) -> Handled {
    let request = Request::builder(Method::Announce, Version::V1_0)
        .request_uri(Url::parse(url).expect("test url"))
        .header(headers::CSEQ, "3")
        .header(headers::CONTENT_TYPE, "application/sdp")
        .build(body.as_bytes().to_vec());
    h.handle(&request, c, now)
}

/// SETUP of `url` with `transport` (`mode=record` added), in `session`
/// when given.
fn setup_record(
    h: &mut TestServer,
    c: &RequestContext,
    url: &str,
    transport: &str,
    session: Option<&str>,
    now: Instant,
) -> Handled {
    let transport = format!("{transport};mode=record");
    let mut headers = vec![("Transport", transport.as_str())];
    headers.extend(session.map(|s| ("Session", s)));
    h.handle(&request(Method::Setup, url, &headers), c, now)
}

fn in_session(
    h: &mut TestServer,
    c: &RequestContext,
    method: Method,
    session: &str,
    now: Instant,
) -> Handled {
    h.handle(&request(method, LIVE, &[("Session", session)]), c, now)
}

/// ANNOUNCE of FFmpeg's SDP at `/live/cam`, SETUP of both tracks
/// interleaved on channels 0-1 and 2-3, and RECORD: returns the session
/// and RECORD's answer.
fn publishing(h: &mut TestServer, c: &RequestContext, now: Instant) -> (String, Handled) {
    assert_eq!(status(&announce(h, c, LIVE, &ffmpeg_sdp(), now)), 200);
    let video = setup_record(
        h,
        c,
        &format!("{LIVE}/streamid=0"),
        "RTP/AVP/TCP;unicast;interleaved=0-1",
        None,
        now,
    );
    assert_eq!(status(&video), 200, "{:?}", video.response);
    let id = session_of(&video);
    let audio = setup_record(
        h,
        c,
        &format!("{LIVE}/streamid=1"),
        "RTP/AVP/TCP;unicast;interleaved=2-3",
        Some(&id),
        now,
    );
    assert_eq!(status(&audio), 200, "{:?}", audio.response);
    let record = in_session(h, c, Method::Record, &id, now);
    assert_eq!(status(&record), 200, "{:?}", record.response);
    (id, record)
}

/// The Unpublish actions as (session, mount, whether its connection is
/// closed).
fn unpublished(actions: &[Action]) -> Vec<(String, String, bool)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Unpublish {
                session_id,
                mount,
                close_connection,
            } => Some((session_id.clone(), mount.clone(), *close_connection)),
            _ => None,
        })
        .collect()
}

fn published(actions: &[Action]) -> Vec<(String, String, Vec<PublishedTrack>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Publish {
                session_id,
                mount,
                tracks,
                ..
            } => Some((session_id.clone(), mount.clone(), tracks.clone())),
            _ => None,
        })
        .collect()
}

fn with_takeover() -> TestServer {
    let mut h = handler();
    h.handler.settings.publish_takeover = true;
    h
}

/// Viewers whose clients were all last heard at `heard`: a publisher's
/// media keeps its session alive like a request.
struct HeardAt {
    viewers: std::collections::BTreeMap<String, Viewer>,
    heard: Option<Instant>,
}

impl Viewers for HeardAt {
    fn insert(&mut self, session_id: &str, viewer: Viewer) {
        self.viewers.insert(session_id.to_string(), viewer);
    }

    fn with<R>(&mut self, session_id: &str, command: impl FnOnce(&mut Viewer) -> R) -> Option<R> {
        self.viewers.get_mut(session_id).map(command)
    }

    fn last_heard(&mut self, _session_id: &str) -> Option<Instant> {
        self.heard
    }

    fn join_live(&mut self, _session_id: &str) -> bool {
        false
    }
}

#[test]
fn announce_is_taken_under_the_publish_paths_only() {
    let mut h = handler();
    let now = Instant::now();
    let sdp = ffmpeg_sdp();
    for (connection, url) in [
        (1, LIVE),
        (2, "rtsp://127.0.0.1:5544/live"),
        (3, "rtsp://127.0.0.1:5544//live//deep/cam/"),
    ] {
        let answer = announce(&mut h, &ctx(connection, [127, 0, 0, 1]), url, &sdp, now);
        assert_eq!(status(&answer), 200, "{url}: {:?}", answer.response);
    }
    assert!(h.handler.claims.contains_key("/live/deep/cam"));
    for url in [
        "rtsp://127.0.0.1:5544/livestream",
        "rtsp://127.0.0.1:5544/sample",
        "rtsp://127.0.0.1:5544/",
        "rtsp://127.0.0.1:5544/live/cam2/trackID=0",
        "rtsp://127.0.0.1:5544/other/live/cam",
    ] {
        let answer = announce(&mut h, &ctx(9, [127, 0, 0, 1]), url, &sdp, now);
        assert_eq!(status(&answer), 403, "{url}");
    }
    assert_eq!(
        h.handler.claims.len(),
        3,
        "refused announcements claim nothing"
    );
}

#[test]
fn announce_bodies_are_checked() {
    let mut h = handler();
    let c = ctx(1, [127, 0, 0, 1]);
    let now = Instant::now();
    let pcmu = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n";
    assert_eq!(status(&announce(&mut h, &c, LIVE, pcmu, now)), 415);
    assert_eq!(
        status(&announce(&mut h, &c, LIVE, "this is not SDP", now)),
        400
    );
    assert_eq!(status(&announce(&mut h, &c, LIVE, "", now)), 400);
    let huge = format!(
        "{}a=x:{}\r\n",
        ffmpeg_sdp(),
        "y".repeat(crate::sdp::announce::MAX_BODY_LEN)
    );
    assert_eq!(status(&announce(&mut h, &c, LIVE, &huge, now)), 413);
    let broken_sps = two_tracks("", None, None).replace("Z2QADazZ", "!!!!");
    assert_eq!(status(&announce(&mut h, &c, LIVE, &broken_sps, now)), 400);
    assert!(h.handler.claims.is_empty());
    // The same connection may then announce properly.
    assert_eq!(status(&announce(&mut h, &c, LIVE, &ffmpeg_sdp(), now)), 200);
}

#[test]
fn a_second_publisher_is_refused_unless_takeover_is_allowed() {
    let now = Instant::now();
    let first = ctx(1, [127, 0, 0, 1]);
    let second = ctx(2, [127, 0, 0, 2]);
    let mut h = handler();
    publishing(&mut h, &first, now);
    let refused = announce(&mut h, &second, LIVE, &ffmpeg_sdp(), now);
    assert_eq!(status(&refused), 455);
    assert!(refused.actions.is_empty());
    let hijack = setup_record(
        &mut h,
        &second,
        &format!("{LIVE}/streamid=0"),
        "RTP/AVP/TCP;unicast;interleaved=0-1",
        None,
        now,
    );
    assert_eq!(status(&hijack), 455, "SETUP of another's announcement");
    assert_eq!(h.session_count(), 1);

    let mut h = with_takeover();
    let (old, _) = publishing(&mut h, &first, now);
    let taken = announce(&mut h, &second, LIVE, &ffmpeg_sdp(), now);
    assert_eq!(status(&taken), 200);
    assert_eq!(
        unpublished(&taken.actions),
        [(old.clone(), "/live/cam".into(), true)],
        "the old publisher's connection is closed: it would go on sending"
    );
    assert_eq!(h.session_count(), 0, "the old publisher's session ended");
    assert_eq!(h.handler.claims["/live/cam"].connection, 2);
    let stale = in_session(&mut h, &first, Method::Record, &old, now);
    assert_eq!(status(&stale), 454);
    let (new, record) = publishing(&mut h, &second, now);
    assert_ne!(new, old);
    assert_eq!(published(&record.actions).len(), 1);
}

#[test]
fn setup_for_recording_needs_an_announcement() {
    let mut h = handler();
    let c = ctx(1, [127, 0, 0, 1]);
    let now = Instant::now();
    let answer = setup_record(
        &mut h,
        &c,
        &format!("{LIVE}/streamid=0"),
        "RTP/AVP;unicast;client_port=6000-6001",
        None,
        now,
    );
    assert_eq!(status(&answer), 455);
    assert_eq!(h.session_count(), 0);
    // A viewer SETUP of a path nobody publishes is not found.
    let viewer = h.handle(
        &request(
            Method::Setup,
            &format!("{LIVE}/trackID=0"),
            &[("Transport", "RTP/AVP;unicast;client_port=6000-6001")],
        ),
        &c,
        now,
    );
    assert_eq!(status(&viewer), 404);
    // Announced, an unknown track is not set up either.
    assert_eq!(status(&announce(&mut h, &c, LIVE, &ffmpeg_sdp(), now)), 200);
    let unknown = setup_record(
        &mut h,
        &c,
        &format!("{LIVE}/streamid=7"),
        "RTP/AVP;unicast;client_port=6000-6001",
        None,
        now,
    );
    assert_eq!(status(&unknown), 455);
    let aggregate = setup_record(
        &mut h,
        &c,
        LIVE,
        "RTP/AVP;unicast;client_port=6000-6001",
        None,
        now,
    );
    assert_eq!(status(&aggregate), 459, "two tracks: name one");
}

/// The track index SETUP of `url` picks after announcing `sdp` at `at`.
fn track_set_up(sdp: &str, at: &str, url: &str) -> Result<usize, u16> {
    let mut h = handler();
    let c = ctx(1, [127, 0, 0, 1]);
    let now = Instant::now();
    assert_eq!(status(&announce(&mut h, &c, at, sdp, now)), 200);
    let answer = setup_record(
        &mut h,
        &c,
        url,
        "RTP/AVP;unicast;client_port=6000-6001",
        None,
        now,
    );
    if status(&answer) != 200 {
        return Err(status(&answer));
    }
    let session = &h.handler.sessions[&session_of(&answer)];
    assert!(session.publishing);
    assert_eq!(session.tracks.len(), 1);
    Ok(session.tracks[0].0)
}

#[test]
fn setup_urls_name_tracks_by_their_control() {
    let ffmpeg = ffmpeg_sdp();
    assert_eq!(
        track_set_up(&ffmpeg, LIVE, &format!("{LIVE}/streamid=0")),
        Ok(0)
    );
    assert_eq!(
        track_set_up(&ffmpeg, LIVE, &format!("{LIVE}/streamid=1")),
        Ok(1)
    );
    assert_eq!(
        track_set_up(&ffmpeg, LIVE, &format!("{LIVE}/streamid=1/")),
        Ok(1),
        "a trailing slash"
    );
    assert_eq!(
        track_set_up(&ffmpeg, LIVE, "rtsp://127.0.0.1:5544/live/other/streamid=1"),
        Err(455),
        "another path's track"
    );
    let gstreamer = two_tracks(
        "a=range:npt=now-\r\na=control:rtsp://127.0.0.1:5544/live/cam\r\n",
        Some("stream=0"),
        Some("stream=1"),
    );
    assert_eq!(
        track_set_up(&gstreamer, LIVE, &format!("{LIVE}/stream=1")),
        Ok(1)
    );
    assert_eq!(
        track_set_up(&gstreamer, LIVE, &format!("{LIVE}/stream=0")),
        Ok(0)
    );
    let absolute = two_tracks(
        "",
        Some("rtsp://127.0.0.1:5544/live/cam/video"),
        Some("rtsp://127.0.0.1:5544/live/cam/audio"),
    );
    assert_eq!(
        track_set_up(&absolute, LIVE, &format!("{LIVE}/audio")),
        Ok(1)
    );
    assert_eq!(
        track_set_up(&absolute, LIVE, &format!("{LIVE}/video")),
        Ok(0)
    );
    let single = video_only_sdp();
    assert_eq!(track_set_up(&single, LIVE, LIVE), Ok(0), "the path itself");
    assert_eq!(
        track_set_up(&single, LIVE, &format!("{LIVE}/")),
        Ok(0),
        "the path with a slash"
    );
}

#[test]
fn record_publishes_the_set_up_tracks_where_they_arrive() {
    let mut h = handler();
    let c = ctx(4, [127, 0, 0, 5]);
    let now = Instant::now();
    let (id, record) = publishing(&mut h, &c, now);
    assert_eq!(
        header(&record.response, "Session").map(|s| s.starts_with(&id)),
        Some(true)
    );
    let [(session, mount, tracks)] = published(&record.actions).try_into().expect("one Publish");
    assert_eq!(
        (session.as_str(), mount.as_str()),
        (id.as_str(), "/live/cam")
    );
    assert!(matches!(
        &record.actions[..],
        [Action::Publish { connection: 4, .. }]
    ));
    let announced = &h.handler.claims["/live/cam"].announcement.tracks;
    assert_eq!(
        tracks,
        [
            PublishedTrack {
                track: announced[0].clone(),
                delivery: Delivery::Interleaved {
                    rtp_channel: 0,
                    rtcp_channel: 1
                },
            },
            PublishedTrack {
                track: announced[1].clone(),
                delivery: Delivery::Interleaved {
                    rtp_channel: 2,
                    rtcp_channel: 3
                },
            },
        ]
    );
    // RECORD again changes nothing.
    let again = in_session(&mut h, &c, Method::Record, &id, now);
    assert_eq!(status(&again), 200);
    assert!(again.actions.is_empty());

    // Over UDP, from the publisher's client ports, one track set up.
    let mut h = handler();
    assert_eq!(status(&announce(&mut h, &c, LIVE, &ffmpeg_sdp(), now)), 200);
    let setup = setup_record(
        &mut h,
        &c,
        &format!("{LIVE}/streamid=1"),
        "RTP/AVP;unicast;client_port=6002-6003",
        None,
        now,
    );
    assert_eq!(status(&setup), 200);
    assert_eq!(
        header(&setup.response, "Transport"),
        Some("RTP/AVP;unicast;client_port=6002-6003;server_port=5005-5006;mode=record")
    );
    let id = session_of(&setup);
    let record = in_session(&mut h, &c, Method::Record, &id, now);
    let [(_, _, tracks)] = published(&record.actions).try_into().expect("one Publish");
    assert_eq!(tracks.len(), 1);
    assert_eq!(tracks[0].track.payload_type, 97);
    assert_eq!(
        tracks[0].delivery,
        Delivery::Udp {
            rtp: SocketAddr::from(([127, 0, 0, 5], 6002)),
            rtcp: SocketAddr::from(([127, 0, 0, 5], 6003)),
        }
    );
}

#[test]
fn publishing_and_playing_sessions_keep_to_their_methods() {
    let mut h = handler();
    let c = ctx(1, [127, 0, 0, 1]);
    let now = Instant::now();
    let no_session = h.handle(&request(Method::Record, LIVE, &[]), &c, now);
    assert_eq!(status(&no_session), 454, "RECORD before SETUP");
    assert_eq!(status(&announce(&mut h, &c, LIVE, &ffmpeg_sdp(), now)), 200);
    let early = in_session(&mut h, &c, Method::Record, "0123456789abcdef", now);
    assert_eq!(status(&early), 454, "RECORD of no session");
    assert!(early.actions.is_empty());
    let setup = setup_record(
        &mut h,
        &c,
        &format!("{LIVE}/streamid=0"),
        "RTP/AVP/TCP;unicast;interleaved=0-1",
        None,
        now,
    );
    let id = session_of(&setup);
    for method in [Method::Play, Method::Pause] {
        let answer = in_session(&mut h, &c, method.clone(), &id, now);
        assert_eq!(status(&answer), 455, "{method:?} of a publisher");
        assert!(answer.actions.is_empty());
    }
    let second_session = setup_record(
        &mut h,
        &c,
        &format!("{LIVE}/streamid=1"),
        "RTP/AVP/TCP;unicast;interleaved=2-3",
        None,
        now,
    );
    assert_eq!(status(&second_session), 455, "one session per announcement");
    let record = in_session(&mut h, &c, Method::Record, &id, now);
    assert_eq!(status(&record), 200);
    assert_eq!(published(&record.actions).len(), 1);
    let play = in_session(&mut h, &c, Method::Play, &id, now);
    assert_eq!(status(&play), 455, "PLAY of a recording publisher");
    // PAUSE halts recording (RFC 2326 §10.6; GStreamer sends it at end of
    // stream); RECORD resumes the same path.
    let pause = in_session(&mut h, &c, Method::Pause, &id, now);
    assert_eq!(status(&pause), 200);
    assert!(pause.actions.is_empty(), "the path stays");
    let paused = in_session(&mut h, &c, Method::Pause, &id, now);
    assert_eq!(status(&paused), 455, "PAUSE twice");
    let resume = in_session(&mut h, &c, Method::Record, &id, now);
    assert_eq!(status(&resume), 200);
    assert!(resume.actions.is_empty(), "no new path");
    let playing_setup = setup_record(
        &mut h,
        &c,
        &format!("{LIVE}/streamid=1"),
        "RTP/AVP/TCP;unicast;interleaved=2-3",
        Some(&id),
        now,
    );
    assert_eq!(status(&playing_setup), 455, "SETUP while recording");

    let viewer = setup_both(&mut h, &ctx(2, [127, 0, 0, 2]), now);
    let record = h.handle(
        &request(Method::Record, BASE, &[("Session", &viewer)]),
        &ctx(2, [127, 0, 0, 2]),
        now,
    );
    assert_eq!(status(&record), 455, "RECORD of a viewer");
    assert!(record.actions.is_empty());
}

#[test]
fn a_publisher_leaving_frees_its_path() {
    let now = Instant::now();
    let c = ctx(1, [127, 0, 0, 1]);
    let next = ctx(2, [127, 0, 0, 2]);

    // TEARDOWN.
    let mut h = handler();
    let (id, _) = publishing(&mut h, &c, now);
    let teardown = in_session(&mut h, &c, Method::Teardown, &id, now);
    assert_eq!(status(&teardown), 200);
    assert_eq!(
        unpublished(&teardown.actions),
        [(id, "/live/cam".into(), false)]
    );
    assert!(h.handler.claims.is_empty());
    assert_eq!(
        status(&announce(&mut h, &next, LIVE, &ffmpeg_sdp(), now)),
        200
    );

    // Its connection closing, even over UDP.
    let mut h = handler();
    assert_eq!(status(&announce(&mut h, &c, LIVE, &ffmpeg_sdp(), now)), 200);
    let setup = setup_record(
        &mut h,
        &c,
        &format!("{LIVE}/streamid=0"),
        "RTP/AVP;unicast;client_port=6000-6001",
        None,
        now,
    );
    let id = session_of(&setup);
    assert_eq!(
        status(&in_session(&mut h, &c, Method::Record, &id, now)),
        200
    );
    assert!(
        unpublished(&h.connection_closed(2)).is_empty(),
        "another connection"
    );
    assert_eq!(
        unpublished(&h.connection_closed(1)),
        [(id, "/live/cam".into(), false)]
    );
    assert_eq!(h.session_count(), 0);
    assert_eq!(
        status(&announce(&mut h, &next, LIVE, &ffmpeg_sdp(), now)),
        200
    );

    // Silence past the timeout: media heard keeps it, none ends it.
    let mut h = handler();
    let (id, _) = publishing(&mut h, &c, now);
    let mut sending = HeardAt {
        viewers: std::collections::BTreeMap::new(),
        heard: Some(now + Duration::from_secs(100)),
    };
    let later = now + Duration::from_secs(120);
    assert!(h.handler.expire_sessions(later, &mut sending).is_empty());
    assert!(
        h.handler.claims.contains_key("/live/cam"),
        "a claim with a session lasts as long as the session"
    );
    let mut silent = HeardAt {
        viewers: std::collections::BTreeMap::new(),
        heard: None,
    };
    assert!(
        h.handler
            .expire_sessions(now + Duration::from_secs(160), &mut silent)
            .is_empty(),
        "heard at 100 s, the timeout is 60 s"
    );
    let expired = h
        .handler
        .expire_sessions(now + Duration::from_secs(161), &mut silent);
    assert_eq!(
        unpublished(&expired),
        [(id, "/live/cam".into(), true)],
        "a silent publisher may still hold its connection"
    );
    assert_eq!(
        status(&announce(&mut h, &next, LIVE, &ffmpeg_sdp(), later)),
        200
    );
}

#[test]
fn an_announcement_never_set_up_lapses() {
    let now = Instant::now();
    let c = ctx(1, [127, 0, 0, 1]);
    let other = ctx(2, [127, 0, 0, 2]);
    let mut h = handler();
    assert_eq!(status(&announce(&mut h, &c, LIVE, &ffmpeg_sdp(), now)), 200);
    assert!(h.expire_sessions(now + Duration::from_secs(60)).is_empty());
    assert_eq!(
        status(&announce(&mut h, &other, LIVE, &ffmpeg_sdp(), now)),
        455,
        "claimed until the timeout"
    );
    assert!(h.expire_sessions(now + Duration::from_secs(61)).is_empty());
    assert!(h.handler.claims.is_empty());
    let later = now + Duration::from_secs(61);
    assert_eq!(
        status(&announce(&mut h, &other, LIVE, &ffmpeg_sdp(), later)),
        200
    );
    // And a claim goes with its connection.
    assert!(h.connection_closed(1).is_empty());
    assert!(h.handler.claims.contains_key("/live/cam"));
    assert!(h.connection_closed(2).is_empty());
    assert!(h.handler.claims.is_empty());
    // The same connection announcing again replaces its own claim.
    assert_eq!(status(&announce(&mut h, &c, LIVE, &ffmpeg_sdp(), now)), 200);
    assert_eq!(
        status(&announce(&mut h, &c, LIVE, &video_only_sdp(), now)),
        200
    );
    assert_eq!(h.handler.claims["/live/cam"].announcement.tracks.len(), 1);
    // Announcing again while recording ends its own session, not its own
    // connection, which carries the new announcement.
    h.connection_closed(1);
    let (id, _) = publishing(&mut h, &c, now);
    let again = announce(&mut h, &c, LIVE, &ffmpeg_sdp(), now);
    assert_eq!(status(&again), 200);
    assert_eq!(
        unpublished(&again.actions),
        [(id, "/live/cam".into(), false)]
    );
}

#[test]
fn skipped_sections_are_set_up_but_not_received() {
    let mut h = handler();
    let c = ctx(1, [127, 0, 0, 1]);
    let now = Instant::now();
    // GStreamer's rtspclientsink sends AAC as MP4A-LATM, which is skipped,
    // and sets it up all the same.
    let sdp = format!(
        "{}m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MP4A-LATM/48000/2\r\na=control:stream=1\r\n",
        video_only_sdp().replace("a=fmtp", "a=control:stream=0\r\na=fmtp")
    );
    assert_eq!(status(&announce(&mut h, &c, LIVE, &sdp, now)), 200);
    assert_eq!(h.handler.claims["/live/cam"].announcement.skipped.len(), 1);
    let audio = setup_record(
        &mut h,
        &c,
        &format!("{LIVE}/stream=1"),
        "RTP/AVP/TCP;unicast;interleaved=0-1",
        None,
        now,
    );
    assert_eq!(status(&audio), 200, "{:?}", audio.response);
    let id = session_of(&audio);
    let early = in_session(&mut h, &c, Method::Record, &id, now);
    assert_eq!(status(&early), 455, "nothing receivable set up yet");
    let clash = setup_record(
        &mut h,
        &c,
        &format!("{LIVE}/stream=0"),
        "RTP/AVP/TCP;unicast;interleaved=0-1",
        Some(&id),
        now,
    );
    assert_eq!(
        status(&clash),
        461,
        "the skipped section holds its channels"
    );
    let video = setup_record(
        &mut h,
        &c,
        &format!("{LIVE}/stream=0"),
        "RTP/AVP/TCP;unicast;interleaved=2-3",
        Some(&id),
        now,
    );
    assert_eq!(status(&video), 200);
    let record = in_session(&mut h, &c, Method::Record, &id, now);
    let [(_, _, tracks)] = published(&record.actions).try_into().expect("one Publish");
    assert_eq!(tracks.len(), 1, "only the video is received");
    assert_eq!(tracks[0].track.payload_type, 96);
    assert_eq!(
        tracks[0].delivery,
        Delivery::Interleaved {
            rtp_channel: 2,
            rtcp_channel: 3
        }
    );
}

#[test]
fn interleaved_publishers_get_free_channels_and_keep_their_connection() {
    let mut h = handler();
    let c = ctx(1, [127, 0, 0, 1]);
    let now = Instant::now();
    assert_eq!(status(&announce(&mut h, &c, LIVE, &ffmpeg_sdp(), now)), 200);
    // Odd channels of the client's choosing, then none: the server picks
    // the first free pair.
    let video = setup_record(
        &mut h,
        &c,
        &format!("{LIVE}/streamid=0"),
        "RTP/AVP/TCP;unicast;interleaved=1-2",
        None,
        now,
    );
    assert_eq!(status(&video), 200);
    let id = session_of(&video);
    let overlap = setup_record(
        &mut h,
        &c,
        &format!("{LIVE}/streamid=1"),
        "RTP/AVP/TCP;unicast;interleaved=2-3",
        Some(&id),
        now,
    );
    assert_eq!(status(&overlap), 461, "channel 2 is taken");
    let audio = setup_record(
        &mut h,
        &c,
        &format!("{LIVE}/streamid=1"),
        "RTP/AVP/TCP;unicast",
        Some(&id),
        now,
    );
    assert_eq!(status(&audio), 200, "{:?}", audio.response);
    assert_eq!(
        header(&audio.response, "Transport"),
        Some("RTP/AVP/TCP;unicast;interleaved=4-5;mode=record")
    );
    // Another connection from the same address cannot command it.
    let other = ctx(2, [127, 0, 0, 1]);
    let stranger = in_session(&mut h, &other, Method::Record, &id, now);
    assert_eq!(status(&stranger), 454);
    let owner = in_session(&mut h, &c, Method::Record, &id, now);
    let [(_, _, tracks)] = published(&owner.actions).try_into().expect("one Publish");
    let channels: Vec<Delivery> = tracks.iter().map(|t| t.delivery).collect();
    assert_eq!(
        channels,
        [
            Delivery::Interleaved {
                rtp_channel: 1,
                rtcp_channel: 2
            },
            Delivery::Interleaved {
                rtp_channel: 4,
                rtcp_channel: 5
            },
        ]
    );
}

#[test]
fn removed_paths_end_their_sessions_and_close_their_publishers() {
    let now = Instant::now();
    let c = ctx(1, [127, 0, 0, 1]);
    let mut h = handler();
    let (publisher, _) = publishing(&mut h, &c, now);
    let viewer = setup_both(&mut h, &ctx(2, [127, 0, 0, 2]), now);
    assert_eq!(h.session_count(), 2);
    let untouched = h
        .handler
        .end_sessions_under(&["/lively".into(), "/live/cam/x".into()], &mut h.viewers);
    assert!(untouched.is_empty(), "{untouched:?}");
    let ended = h
        .handler
        .end_sessions_under(&["/live".into()], &mut h.viewers);
    assert_eq!(
        unpublished(&ended),
        [(publisher, "/live/cam".into(), true)],
        "the publisher under the path is told by its connection closing"
    );
    assert_eq!(h.session_count(), 1, "the viewer of /sample stays");
    let ended = h
        .handler
        .end_sessions_under(&["/sample".into()], &mut h.viewers);
    assert_eq!(
        ended,
        [Action::Wake {
            session_id: viewer.clone()
        }]
    );
    assert_eq!(h.session_count(), 0);
}

#[test]
fn shutdown_closes_publishers_connections() {
    let now = Instant::now();
    let c = ctx(1, [127, 0, 0, 1]);
    let mut h = handler();
    let (publisher, _) = publishing(&mut h, &c, now);
    let actions = h.teardown_all();
    assert_eq!(
        unpublished(&actions),
        [(publisher, "/live/cam".into(), true)]
    );
}

#[test]
fn set_paths_moves_where_publishers_are_taken() {
    let now = Instant::now();
    let c = ctx(1, [127, 0, 0, 1]);
    let mut h = handler();
    h.handler.set_paths(vec!["/studio".into()], Vec::new());
    assert_eq!(status(&announce(&mut h, &c, LIVE, &ffmpeg_sdp(), now)), 403);
    let studio = LIVE.replace("/live/", "/studio/");
    assert_eq!(
        status(&announce(&mut h, &c, &studio, &ffmpeg_sdp(), now)),
        200
    );
}

#[test]
fn a_path_holds_itself_and_whole_segments_below() {
    assert!(is_at_or_below("/live", "/live"));
    assert!(is_at_or_below("/live/cam", "/live"));
    assert!(!is_at_or_below("/lively", "/live"));
    assert!(!is_at_or_below("/live", "/live/cam"));
    assert!(is_at_or_below("/anything", "/"));
}
