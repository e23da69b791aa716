//! RTSP method handling (RFC 2326 §10): a request in, a response and the
//! actions the I/O layer must take out. No sockets, no clock reads.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rtsp_types::{headers, Method, Request, Response, StatusCode, Url, Version};

use super::auth::Authenticator;
use super::range::{parse_npt_range, NptRange};
use super::rate;
use super::refusal::Refusal;
use super::session::{ConnectionId, Owner, Session, SessionState};
use super::transport::{self, Delivery};
use super::url::{self, Target};
use crate::config::{Limit, MulticastConfig};
use crate::sdp;
use crate::source::{Presentation, ResolveError};
use crate::stats::SessionEnd;
use crate::viewer::{PlayStart, StreamStart, TrackSender, Viewer, DEFAULT_LIVE_QUEUE_BYTES};
use rand::{rngs::StdRng, Rng, SeedableRng};

/// Methods listed in `Public:` (RFC 2326 §10.1, §12.28); clients use
/// GET_PARAMETER as keep-alive only when listed here.
pub const PUBLIC_METHODS: &str =
    "OPTIONS, DESCRIBE, ANNOUNCE, SETUP, PLAY, PAUSE, RECORD, TEARDOWN, GET_PARAMETER";

/// Value of the `Server:` header.
pub const SERVER_NAME: &str = concat!("rtpcast/", env!("CARGO_PKG_VERSION"));

/// Settings the method handlers need.
#[derive(Debug, Clone)]
pub struct HandlerSettings {
    /// The server's RTP port; RTCP is the next one.
    pub server_rtp_port: u16,
    /// Largest RTP packet in bytes.
    pub mtu: usize,
    /// Restart at end of file.
    pub loop_playback: bool,
    /// Idle time after which a session is torn down.
    pub session_timeout: Duration,
    /// Sessions one connection may hold (CVE-2021-39283: bound state).
    pub max_sessions_per_connection: Limit,
    /// Sessions one client address may hold, across its connections.
    pub max_sessions_per_address: Limit,
    /// Sessions the whole server may hold.
    pub max_sessions: Limit,
    /// Seed of the generator for session ids, SSRCs, first sequence
    /// numbers and timestamp bases (RFC 3550 §5.1): from the OS in the
    /// server, fixed in tests so runs replay exactly.
    pub rng_seed: [u8; 32],
    /// URL paths that take publishers (ANNOUNCE), each with everything
    /// below it: `/live` admits `/live/cam1`.
    pub publish_paths: Vec<String>,
    /// A second publisher to a path in use replaces the first (else it is
    /// answered 455).
    pub publish_takeover: bool,
    /// URL paths a configured source feeds (channels, relays, cameras):
    /// no publisher may take them, even under a publish path.
    pub source_paths: Vec<String>,
    /// Multicast of live paths; `None` answers multicast with 461.
    pub multicast: Option<MulticastConfig>,
    /// Per-path access rules for reading and publishing (see
    /// [`crate::config::PathAccess`]).
    pub access: Vec<crate::config::PathAccess>,
    /// Realm and schemes of the rules that name users.
    pub auth: crate::config::AuthConfig,
}

/// Where a request came from.
#[derive(Debug, Clone, Copy)]
pub struct RequestContext {
    /// The RTSP connection.
    pub connection: ConnectionId,
    /// The client's address.
    pub peer: SocketAddr,
    /// The server's address on this connection.
    pub local: SocketAddr,
    /// When the request arrived: the handler's `now`.
    pub received: Instant,
    /// The connection is RTSPS (TLS): URLs answered say `rtsps://`, and
    /// media may only go interleaved on it.
    pub secure: bool,
}

/// The viewers of the sessions, kept by the I/O layer behind whatever
/// locks it needs: the handler creates and commands them through this and
/// never holds one, so a viewer's sends and reads never wait on RTSP.
pub trait Viewers {
    /// Takes the viewer of the new session `session_id`.
    fn insert(&mut self, session_id: &str, viewer: Viewer);

    /// Runs `command` on the viewer of `session_id`; `None` when it has
    /// gone.
    fn with<R>(&mut self, session_id: &str, command: impl FnOnce(&mut Viewer) -> R) -> Option<R>;

    /// When the client of `session_id` last sent RTP or RTCP: a viewer's
    /// receiver reports, a publisher's media. Either keeps its session
    /// alive like a request does (RFC 2326 §12.37).
    fn last_heard(&mut self, session_id: &str) -> Option<Instant> {
        self.with(session_id, |viewer| viewer.last_heard())
            .flatten()
    }

    /// Joins the live viewer of `session_id` to its path's stream: hands
    /// it the path's GOP cache ([`Viewer::join_live`]) and then every new
    /// unit. False when the path has no source any more.
    fn join_live(&mut self, session_id: &str) -> bool;
}

/// Viewers kept in a plain map, for a single-threaded driver (the
/// simulation tests) that needs no lock at all.
impl Viewers for std::collections::BTreeMap<String, Viewer> {
    fn insert(&mut self, session_id: &str, viewer: Viewer) {
        std::collections::BTreeMap::insert(self, session_id.to_string(), viewer);
    }

    fn with<R>(&mut self, session_id: &str, command: impl FnOnce(&mut Viewer) -> R) -> Option<R> {
        self.get_mut(session_id).map(command)
    }

    /// No live path exists here.
    fn join_live(&mut self, _session_id: &str) -> bool {
        false
    }
}

/// Work for the I/O layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A session was created and its viewer handed to
    /// [`Viewers::insert`]: start driving it.
    Spawn {
        /// The session id.
        session_id: String,
        /// Who it sends to: the RTSP client's address, or the multicast
        /// group's first RTP address for a group's sender.
        client: SocketAddr,
        /// The URL path it plays.
        mount: String,
        /// How its first track is delivered: the Transport header
        /// answered (RFC 2326 §12.39).
        transport: String,
    },
    /// A session's schedule changed (play, pause, teardown): poll it again.
    Wake {
        /// The session id.
        session_id: String,
    },
    /// A publisher's session started recording: take its RTP into the
    /// live path `mount`, which it now feeds.
    Publish {
        /// The session id.
        session_id: String,
        /// The live path.
        mount: String,
        /// The connection interleaved tracks arrive on.
        connection: ConnectionId,
        /// The publisher's address on that connection.
        client: SocketAddr,
        /// Its set-up tracks and where their packets come from.
        tracks: Vec<PublishedTrack>,
    },
    /// A publisher's session ended: its path's viewers get BYE and the
    /// path is free for another publisher.
    Unpublish {
        /// The session id.
        session_id: String,
        /// The live path it fed.
        mount: String,
        /// Close the publisher's RTSP connection: it was taken over by
        /// another, or timed out, and would otherwise go on sending.
        close_connection: bool,
    },
    /// RTCP arriving from `sources` belongs to this session's viewer
    /// (replacing the session's earlier routes): the I/O layer hands it
    /// straight there.
    RouteRtcp {
        /// The session id.
        session_id: String,
        /// Where the client's RTCP comes from, one per set-up track.
        sources: Vec<RtcpSource>,
    },
}

/// A response plus what to do after sending it.
#[derive(Debug)]
pub struct Handled {
    /// The answer to send.
    pub response: Response<Vec<u8>>,
    /// Follow-up actions.
    pub actions: Vec<Action>,
}

/// All sessions of the server and the methods that act on them
/// (RFC 2326 §10).
#[derive(Debug)]
pub struct RtspHandler {
    settings: HandlerSettings,
    sessions: HashMap<String, Session>,
    /// Live paths held by publishers, by mount.
    claims: HashMap<String, record::PublishClaim>,
    /// Live paths' multicast groups, by mount.
    multicast_groups: HashMap<String, multicast::MulticastGroup>,
    rng: StdRng,
    /// Checks credentials where a rule names users.
    authenticator: Authenticator,
    /// The `o=` session id of every description this handler gives.
    sdp_session_id: u64,
}

impl RtspHandler {
    /// A handler with no session yet.
    pub fn new(settings: HandlerSettings) -> Self {
        let mut rng = StdRng::from_seed(settings.rng_seed);
        RtspHandler {
            authenticator: Authenticator::new(settings.auth.clone(), &settings.rng_seed),
            sdp_session_id: rng.gen(),
            rng,
            settings,
            sessions: HashMap::new(),
            claims: HashMap::new(),
            multicast_groups: HashMap::new(),
        }
    }

    /// Replaces the access rules (a configuration reload): they apply to
    /// requests from now on; sessions already set up keep going.
    pub fn set_access(&mut self, access: Vec<crate::config::PathAccess>) {
        self.settings.access = access;
    }

    /// Replaces the paths that take publishers and those configured
    /// sources feed (a configuration reload): ANNOUNCE checks them from now
    /// on.
    pub fn set_paths(&mut self, publish_paths: Vec<String>, source_paths: Vec<String>) {
        self.settings.publish_paths = publish_paths;
        self.settings.source_paths = source_paths;
    }

    /// Replaces the realm and schemes of authentication (a configuration
    /// reload), for requests from now on.
    pub fn set_auth(&mut self, auth: crate::config::AuthConfig) {
        self.authenticator.set_config(auth.clone());
        self.settings.auth = auth;
    }

    /// Number of live sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Answers one request (RFC 2326 §10). `media` is what the I/O layer
    /// found at the mount [`media_needed`] named (DESCRIBE and SETUP), so
    /// no file is touched here. Errors become status codes with a reason
    /// phrase; nothing a client sends can panic here.
    pub fn handle_request(
        &mut self,
        request: &Request<Vec<u8>>,
        ctx: &RequestContext,
        media: Option<ResolvedMedia>,
        viewers: &mut impl Viewers,
    ) -> Handled {
        let Some(cseq) = request_cseq(request) else {
            return refused(None, Refusal::InvalidCSeq);
        };
        if request.version() != Version::V1_0 {
            return refused(Some(&cseq), Refusal::VersionNotSupported);
        }
        // No option extensions are supported (RFC 2326 §12.32).
        let required = [headers::REQUIRE, headers::PROXY_REQUIRE]
            .iter()
            .find_map(|name| request.header(name).map(|v| v.as_str().to_string()));
        if let Some(required) = required {
            let mut handled = refused(Some(&cseq), Refusal::OptionNotSupported);
            handled
                .response
                .insert_header(headers::UNSUPPORTED, required);
            return handled;
        }
        let user = match self.admit(request, ctx).and_then(|user| {
            self.check_session_user(request, user.as_deref())
                .map(|()| user)
        }) {
            Ok(user) => user,
            Err(refusal) => return self.refused_request(request, ctx, &cseq, refusal),
        };
        self.refresh_liveness(request, ctx);
        let mut actions = Vec::new();
        let result = match request.method() {
            Method::Options => Ok(ok(&cseq)
                .header(headers::PUBLIC, PUBLIC_METHODS)
                .build(Vec::new())),
            Method::Describe => self.describe(request, ctx, &cseq, media),
            Method::Announce => self.announce(request, ctx, &cseq, viewers, &mut actions),
            Method::Setup if record::is_record_setup(request) => {
                self.setup_record(request, ctx, &cseq)
            }
            Method::Setup => self.setup(request, ctx, &cseq, media, viewers, &mut actions),
            Method::Record => self.record(request, ctx, &cseq, &mut actions),
            Method::Play => self.play(request, ctx, &cseq, viewers, &mut actions),
            Method::Pause => self.pause(request, ctx, &cseq, viewers, &mut actions),
            Method::Teardown => self.teardown(request, ctx, &cseq, viewers, &mut actions),
            Method::GetParameter => self.get_parameter(request, ctx, &cseq),
            _ => Err(Refusal::MethodNotImplemented),
        };
        match result {
            Ok(response) => {
                self.bind_session_user(
                    response.header(&headers::SESSION).map(|v| v.as_str()),
                    user,
                );
                Handled { response, actions }
            }
            Err(refusal) => self.refused_request(request, ctx, &cseq, refusal),
        }
    }

    /// Answers a request its path's access rule keeps out, so that the
    /// I/O layer need not open what it names first (a file, a relay's
    /// upstream, a wait for a publisher: see [`media_needed`]); `None`
    /// when it may go on to [`RtspHandler::handle_request`], which checks
    /// it again.
    pub fn refuse_unadmitted(
        &mut self,
        request: &Request<Vec<u8>>,
        ctx: &RequestContext,
    ) -> Option<Handled> {
        let cseq = request_cseq(request)?;
        let refusal = self.admit(request, ctx).err()?;
        Some(self.refused_request(request, ctx, &cseq, refusal))
    }

    /// Logs a refused request (its URL without credentials) and answers
    /// it.
    fn refused_request(
        &self,
        request: &Request<Vec<u8>>,
        ctx: &RequestContext,
        cseq: &str,
        refusal: Refusal,
    ) -> Handled {
        tracing::info!(
            peer = %ctx.peer,
            method = ?request.method(),
            uri = request.request_uri().map_or_else(|| "*".into(), url::without_credentials),
            status = u16::from(refusal.status()),
            reason = %refusal,
            "request refused"
        );
        refused(Some(cseq), refusal)
    }

    /// Tears down the sessions whose client has been silent past the
    /// timeout (RFC 2326 §12.37): no request naming them and no RTCP to
    /// their viewer.
    pub fn expire_sessions(&mut self, now: Instant, viewers: &mut impl Viewers) -> Vec<Action> {
        self.drop_idle_claims(now, None);
        let mut expired = Vec::new();
        for session in self.sessions.values_mut() {
            if let Some(heard) = viewers.last_heard(&session.id) {
                session.last_activity = session.last_activity.max(heard);
            }
            if session.expired(now) {
                expired.push(session.id.clone());
            }
        }
        expired
            .into_iter()
            .filter_map(|id| {
                tracing::debug!(session = %id, "session timed out");
                self.remove_session(&id, viewers, SessionEnd::Timeout)
            })
            // A silent publisher may still hold its connection open.
            .map(close_publishers)
            .collect()
    }

    /// Tears down the sessions that delivered over a connection that has
    /// closed, and its publishers' (a publisher is gone with its
    /// connection); UDP viewers outlive their connection until they time
    /// out.
    pub fn connection_closed(
        &mut self,
        connection: ConnectionId,
        now: Instant,
        viewers: &mut impl Viewers,
    ) -> Vec<Action> {
        self.drop_idle_claims(now, Some(connection));
        let gone: Vec<String> = self
            .sessions
            .values()
            .filter(|s| s.owner.connection == connection && (s.interleaved || s.publishing))
            .map(|s| s.id.clone())
            .collect();
        gone.into_iter()
            .filter_map(|id| {
                tracing::debug!(session = %id, connection, "session ended with its connection");
                self.remove_session(&id, viewers, SessionEnd::ConnectionClosed)
            })
            .collect()
    }

    /// Ends one session at an operator's request (the HTTP API's kick): a
    /// viewer says BYE (RFC 3550 §6.6) and its task ends, a publisher's
    /// path ends and its connection closes; the last member of a multicast
    /// group stops the group's sender. `None` when no such session exists.
    pub fn end_session(&mut self, id: &str, viewers: &mut impl Viewers) -> Option<Vec<Action>> {
        if !self.sessions.contains_key(id) {
            return None;
        }
        tracing::info!(session = %id, "session ended by the operator");
        let action = self.remove_session(id, viewers, SessionEnd::Kicked);
        // A kicked publisher must stop sending, not just lose its path.
        Some(action.into_iter().map(close_publishers).collect())
    }

    /// Tears down the sessions of `mounts` and of every path below them
    /// (a configuration reload removed those paths): viewers say BYE, and
    /// publishers' connections are closed so they stop sending.
    pub fn end_sessions_under(
        &mut self,
        mounts: &[String],
        viewers: &mut impl Viewers,
    ) -> Vec<Action> {
        let ids: Vec<String> = self
            .sessions
            .values()
            .filter(|s| mounts.iter().any(|mount| is_at_or_below(&s.mount, mount)))
            .map(|s| s.id.clone())
            .collect();
        ids.iter()
            .filter_map(|id| {
                tracing::debug!(session = %id, "session ended: its path was removed");
                self.remove_session(id, viewers, SessionEnd::PathRemoved)
            })
            .map(close_publishers)
            .collect()
    }

    /// Tears down every session (server shutdown); publishers'
    /// connections are closed, so they learn the server is going.
    pub fn teardown_all(&mut self, viewers: &mut impl Viewers) -> Vec<Action> {
        let ids: Vec<String> = self.sessions.keys().cloned().collect();
        ids.iter()
            .filter_map(|id| self.remove_session(id, viewers, SessionEnd::Shutdown))
            .map(close_publishers)
            .collect()
    }

    /// Ends a session for `reason`: its viewer says BYE and its task
    /// ends, which frees the viewer and its RTCP routes in the I/O layer.
    fn remove_session(
        &mut self,
        id: &str,
        viewers: &mut impl Viewers,
        reason: SessionEnd,
    ) -> Option<Action> {
        let session = self.sessions.remove(id)?;
        if session.multicast {
            return self.leave_multicast(&session, viewers);
        }
        if session.publishing {
            self.release_claim(&session);
            tracing::info!(session = %id, mount = %session.mount, "publisher gone");
            return Some(Action::Unpublish {
                session_id: session.id,
                mount: session.mount,
                close_connection: false,
            });
        }
        viewers.with(id, |viewer| viewer.close(reason));
        Some(Action::Wake {
            session_id: session.id,
        })
    }

    fn describe(
        &self,
        request: &Request<Vec<u8>>,
        ctx: &RequestContext,
        cseq: &str,
        media: Option<ResolvedMedia>,
    ) -> Result<Response<Vec<u8>>, Refusal> {
        let url = request_url(request)?;
        let mount = url::target(url).mount;
        let media = resolved(&mount, media)?;
        let body = sdp::describe(
            media.tracks(),
            media.duration_secs().unwrap_or(f64::INFINITY),
            ctx.local.ip(),
            self.sdp_session_id,
        );
        Ok(ok(cseq)
            .header(
                headers::CONTENT_BASE,
                url::content_base(url, &mount, ctx.secure),
            )
            .header(headers::CONTENT_TYPE, "application/sdp")
            .build(body.into_bytes()))
    }

    fn setup(
        &mut self,
        request: &Request<Vec<u8>>,
        ctx: &RequestContext,
        cseq: &str,
        media: Option<ResolvedMedia>,
        viewers: &mut impl Viewers,
        actions: &mut Vec<Action>,
    ) -> Result<Response<Vec<u8>>, Refusal> {
        let Target { mount, track } = url::target(request_url(request)?);
        let existing = match session_id(request) {
            Some(id) => Some(self.owned_session(&id, ctx, &Method::Setup)?.id.clone()),
            None => None,
        };
        let media = match &existing {
            Some(id) => {
                let session = &self.sessions[id];
                if session.mount != mount {
                    return Err(Refusal::OtherPresentation);
                }
                session.media.clone()
            }
            None => resolved(&mount, media)?,
        };
        let track = match track {
            Some(index) => index,
            None if media.tracks().len() == 1 => 0,
            None => return Err(Refusal::AggregateSetup),
        };
        let Some(info) = media.tracks().get(track).cloned() else {
            return Err(Refusal::NoSuchTrack(track));
        };
        let offer = self.multicast_offer(&mount, &media, track);
        let negotiated =
            self.negotiate_transport(request, ctx, existing.as_deref(), track, offer)?;
        if negotiated.multicast {
            let setup = multicast::MulticastSetup {
                mount,
                media,
                track,
                existing,
                reply: negotiated.reply,
            };
            return self.setup_multicast(ctx, cseq, setup, viewers, actions);
        }
        if existing
            .as_ref()
            .is_some_and(|id| self.sessions[id].multicast)
        {
            return Err(Refusal::UnsupportedTransport(
                "multicast and unicast in one session".into(),
            ));
        }
        let interleaved = matches!(negotiated.delivery, Delivery::Interleaved { .. });
        let other_connection = existing
            .as_ref()
            .is_some_and(|id| self.sessions[id].owner.connection != ctx.connection);
        if interleaved && other_connection {
            // Interleaved packets can only travel on the connection whose
            // writer the session's sender holds.
            return Err(Refusal::UnsupportedTransport(
                "interleave on the session's own connection".into(),
            ));
        }
        let start = StreamStart {
            ssrc: self.rng.gen(),
            first_seq: self.rng.gen(),
            // A live path's timestamps pass through (see `crate::live`).
            timestamp_base: if media.is_live() { 0 } else { self.rng.gen() },
        };
        let payload_type = sdp::payload_type(&info);
        let output = TrackSender::new(
            info,
            negotiated.delivery,
            payload_type,
            self.settings.mtu,
            start,
        );
        let id = match existing {
            Some(id) => {
                viewers
                    .with(&id, |viewer| viewer.set_up_track(output))
                    .ok_or(Refusal::SessionNotFound)?;
                id
            }
            None => {
                let cname = format!("rtpcast@{}", ctx.local.ip());
                let mut viewer = match &media {
                    Presentation::File(file) => {
                        Viewer::new(file.clone(), cname, self.settings.loop_playback)
                    }
                    Presentation::Live { .. } => {
                        Viewer::live(mount.clone(), cname, DEFAULT_LIVE_QUEUE_BYTES)
                    }
                };
                viewer.set_up_track(output);
                let id = self.open_session(ctx, mount.clone(), media, SessionKind::Viewer)?;
                viewers.insert(&id, viewer);
                actions.push(Action::Spawn {
                    session_id: id.clone(),
                    client: ctx.peer,
                    mount,
                    transport: negotiated.reply.clone(),
                });
                id
            }
        };
        let session = self.sessions.get_mut(&id).ok_or(Refusal::SessionNotFound)?;
        session.last_activity = ctx.received;
        session.interleaved |= interleaved;
        session.set_delivery(track, negotiated.delivery);
        actions.push(self.rtcp_route(&id));
        Ok(ok(cseq)
            .header(headers::TRANSPORT, negotiated.reply)
            .header(headers::SESSION, self.session_header(&id))
            .build(Vec::new()))
    }

    fn play(
        &mut self,
        request: &Request<Vec<u8>>,
        ctx: &RequestContext,
        cseq: &str,
        viewers: &mut impl Viewers,
        actions: &mut Vec<Action>,
    ) -> Result<Response<Vec<u8>>, Refusal> {
        let url = request_url(request)?;
        let range = match request.header(&headers::RANGE) {
            Some(range) => parse_npt_range(range.as_str())
                .ok_or_else(|| Refusal::InvalidRange(range.as_str().to_string()))?,
            None => NptRange::default(),
        };
        let rate_headers = rate::headers_to_answer(request)?;
        let id = self.session_id_for(request, ctx, &Method::Play)?;
        let session = self.sessions.get_mut(&id).ok_or(Refusal::SessionNotFound)?;
        if session.publishing {
            return Err(Refusal::MethodNotValidInState(
                "PLAY of a session that records".into(),
            ));
        }
        // A live path has no positions: any Range is answered from now on.
        let duration = session.media.duration_secs().unwrap_or(f64::INFINITY);
        if range.start.is_some_and(|s| s > duration) {
            return Err(Refusal::InvalidRange(format!("beyond {duration:.3}")));
        }
        // An end at or past the duration means "to the end" (GStreamer asks
        // npt=0-<duration from the SDP, rounded to ms>) and is answered
        // open-ended.
        let end = range.end.filter(|&end| end < duration - 0.001);
        if session.multicast {
            let started = self.play_multicast(&id, ctx.received, viewers, actions)?;
            return Ok(self.played(&id, url, ctx, started, None, cseq, rate_headers));
        }
        let sending = viewers.with(&id, |v| v.is_playing()).unwrap_or(false);
        if session.media.is_live() && !sending && !viewers.join_live(&id) {
            return Err(Refusal::NotFound(session.mount.clone()));
        }
        // PLAY without Range while playing changes nothing (RFC 2326 §10.5)
        // but still says where the stream is; once the file has ended it
        // plays it again from the start.
        let started = viewers
            .with(&id, |viewer| {
                if range == NptRange::default() && viewer.is_playing() {
                    (viewer.position(), false)
                } else {
                    (viewer.play(ctx.received, range.start, end), true)
                }
            })
            .ok_or(Refusal::SessionNotFound)?;
        let (started, rescheduled) = started;
        if rescheduled {
            actions.push(Action::Wake {
                session_id: id.clone(),
            });
        }
        Ok(self.played(&id, url, ctx, started, end, cseq, rate_headers))
    }

    /// The answer to a PLAY that started or continued at `started`
    /// (RFC 2326 §10.5: Range, RTP-Info of the session's tracks).
    #[allow(clippy::too_many_arguments)]
    fn played(
        &mut self,
        id: &str,
        url: &Url,
        ctx: &RequestContext,
        started: PlayStart,
        end: Option<f64>,
        cseq: &str,
        rate_headers: Vec<headers::HeaderName>,
    ) -> Response<Vec<u8>> {
        let header = self.session_header(id);
        let Some(session) = self.sessions.get_mut(id) else {
            return Refusal::SessionNotFound.response(None);
        };
        session.state = SessionState::Playing;
        let base = url::presentation_url(url, &session.mount, ctx.secure);
        let rtp_info = started
            .tracks
            .iter()
            .filter(|t| session.tracks.iter().any(|&(index, _)| index == t.track))
            .map(|t| {
                let mut entry = format!("url={base}/{};seq={}", sdp::track_control(t.track), t.seq);
                if let Some(rtptime) = t.rtptime {
                    entry.push_str(&format!(";rtptime={rtptime}"));
                }
                entry
            })
            .collect::<Vec<_>>()
            .join(",");
        let mut response = ok(cseq)
            .header(headers::SESSION, header)
            // Open-ended unless the client asked for an end (RFC 2326
            // §12.29): the SDP already gives the duration, and GStreamer
            // clips at a stated end the pictures its lip-sync delays by the
            // B-frame reorder time.
            .header(
                headers::RANGE,
                match end {
                    Some(end) => format!("npt={:.3}-{end:.3}", started.npt_start),
                    None => format!("npt={:.3}-", started.npt_start),
                },
            )
            .header(headers::RTP_INFO, rtp_info)
            .build(Vec::new());
        for header in rate_headers {
            response.insert_header(header, rate::PLAYED_RATE);
        }
        response
    }

    fn pause(
        &mut self,
        request: &Request<Vec<u8>>,
        ctx: &RequestContext,
        cseq: &str,
        viewers: &mut impl Viewers,
        actions: &mut Vec<Action>,
    ) -> Result<Response<Vec<u8>>, Refusal> {
        let id = self.session_id_for(request, ctx, &Method::Pause)?;
        let header = self.session_header(&id);
        let session = self.sessions.get_mut(&id).ok_or(Refusal::SessionNotFound)?;
        if session.publishing {
            // RFC 2326 §10.6 pauses recording too, and GStreamer's
            // rtspclientsink sends it at end of stream: the path stays live
            // until the publisher resumes or leaves.
            session.state = SessionState::Ready;
            return Ok(ok(cseq).header(headers::SESSION, header).build(Vec::new()));
        }
        // A multicast group plays on for its other viewers.
        if !session.multicast {
            viewers.with(&id, Viewer::pause);
        }
        session.state = SessionState::Ready;
        actions.push(Action::Wake { session_id: id });
        Ok(ok(cseq).header(headers::SESSION, header).build(Vec::new()))
    }

    fn teardown(
        &mut self,
        request: &Request<Vec<u8>>,
        ctx: &RequestContext,
        cseq: &str,
        viewers: &mut impl Viewers,
        actions: &mut Vec<Action>,
    ) -> Result<Response<Vec<u8>>, Refusal> {
        let id = session_id(request).ok_or(Refusal::NoSessionHeader)?;
        self.owned_session(&id, ctx, &Method::Teardown)?;
        tracing::debug!(session = %id, peer = %ctx.peer, "session torn down");
        actions.extend(self.remove_session(&id, viewers, SessionEnd::Teardown));
        Ok(ok(cseq).build(Vec::new()))
    }

    fn get_parameter(
        &self,
        request: &Request<Vec<u8>>,
        ctx: &RequestContext,
        cseq: &str,
    ) -> Result<Response<Vec<u8>>, Refusal> {
        if session_id(request).is_none() {
            return Ok(ok(cseq).build(Vec::new()));
        }
        let id = self.session_id_for(request, ctx, &Method::GetParameter)?;
        Ok(ok(cseq)
            .header(headers::SESSION, self.session_header(&id))
            .build(Vec::new()))
    }

    /// The id of the request's session after checking it exists, belongs
    /// to this client and accepts `method`.
    fn session_id_for(
        &self,
        request: &Request<Vec<u8>>,
        ctx: &RequestContext,
        method: &Method,
    ) -> Result<String, Refusal> {
        let id = session_id(request).ok_or(Refusal::NoSessionHeader)?;
        self.owned_session(&id, ctx, method)?;
        Ok(id)
    }

    /// Any request naming a session its client owns keeps it alive
    /// (RFC 2326 §12.37), whatever the method: some clients keep alive
    /// with OPTIONS.
    fn refresh_liveness(&mut self, request: &Request<Vec<u8>>, ctx: &RequestContext) {
        let Some(id) = session_id(request) else {
            return;
        };
        if let Some(session) = self.sessions.get_mut(&id) {
            if session
                .owner
                .allows(ctx.connection, ctx.peer.ip(), session.interleaved)
            {
                session.last_activity = ctx.received;
            }
        }
    }

    fn owned_session(
        &self,
        id: &str,
        ctx: &RequestContext,
        method: &Method,
    ) -> Result<&Session, Refusal> {
        let session = self
            .sessions
            .get(id)
            .filter(|s| s.owner.allows(ctx.connection, ctx.peer.ip(), s.interleaved))
            .ok_or(Refusal::SessionNotFound)?;
        session
            .state
            .after(method)
            .map_err(|e| Refusal::MethodNotValidInState(e.to_string()))?;
        Ok(session)
    }

    /// Refuses a new session past any of the configured limits, logging
    /// which one so an operator knows what to raise.
    fn check_session_limits(&self, ctx: &RequestContext) -> Result<(), Refusal> {
        let on_connection = self
            .sessions
            .values()
            .filter(|s| s.owner.connection == ctx.connection)
            .count();
        // UDP sessions outlive their connection, so a per-connection cap
        // alone would let one address take every session by reconnecting.
        let from_address = self
            .sessions
            .values()
            .filter(|s| s.owner.ip == ctx.peer.ip())
            .count();
        let exceeded = [
            (
                self.settings.max_sessions_per_connection,
                on_connection,
                "sessions on this connection",
            ),
            (
                self.settings.max_sessions_per_address,
                from_address,
                "sessions from this address (--max-sessions-per-address)",
            ),
            (
                self.settings.max_sessions,
                self.sessions.len(),
                "sessions on the server (--max-sessions)",
            ),
        ]
        .into_iter()
        .find(|(limit, held, _)| !limit.admits_one_more(*held));
        if let Some((limit, _, what)) = exceeded {
            tracing::warn!(peer = %ctx.peer, %limit, "too many {what}; refusing SETUP");
            return Err(Refusal::TooManySessions);
        }
        Ok(())
    }

    /// Agrees the request's Transport for `track` of session `existing`
    /// (or a new one) on the request's connection: interleaved channels
    /// not taken by its other sessions, `multicast` where the path offers
    /// it (RFC 2326 §12.39).
    fn negotiate_transport(
        &self,
        request: &Request<Vec<u8>>,
        ctx: &RequestContext,
        existing: Option<&str>,
        track: usize,
        multicast: Option<transport::MulticastOffer>,
    ) -> Result<transport::Negotiated, Refusal> {
        let header = request
            .header(&headers::TRANSPORT)
            .ok_or_else(|| Refusal::UnsupportedTransport("no Transport header".into()))?;
        // Over RTSPS only the interleaved transport keeps media encrypted:
        // UDP (unicast or multicast) would send it in the clear beside a
        // TLS connection the client chose for privacy, so those
        // alternatives are dropped and a SETUP offering nothing else is
        // answered 461.
        let offered = if ctx.secure {
            transport::interleaved_only(header.as_str())
        } else {
            header.as_str().to_string()
        };
        if offered.is_empty() {
            return Err(Refusal::UnsupportedTransport(
                "UDP over RTSPS would send the media unencrypted; use the interleaved (TCP) transport"
                    .into(),
            ));
        }
        let used = self.channels_in_use(ctx.connection, existing, track);
        let free_channel = (0..=254u8)
            .step_by(2)
            .find(|c| !used.contains(c) && !used.contains(&(c + 1)))
            .unwrap_or(u8::MAX);
        let negotiated = transport::negotiate(
            &offered,
            ctx.peer.ip(),
            self.settings.server_rtp_port,
            free_channel,
            multicast,
        )?;
        if let Delivery::Interleaved {
            rtp_channel,
            rtcp_channel,
        } = negotiated.delivery
        {
            if used.contains(&rtp_channel) || used.contains(&rtcp_channel) {
                return Err(Refusal::UnsupportedTransport(
                    "interleaved channels already in use".into(),
                ));
            }
        }
        Ok(negotiated)
    }

    /// A new session of `kind` for the request's client on `mount`, within
    /// the session limits; returns its id (random, unique).
    fn open_session(
        &mut self,
        ctx: &RequestContext,
        mount: String,
        media: Presentation,
        kind: SessionKind,
    ) -> Result<String, Refusal> {
        self.check_session_limits(ctx)?;
        let mut id = Session::new_id(&mut self.rng);
        while self.sessions.contains_key(&id) {
            id = Session::new_id(&mut self.rng);
        }
        // A viewer's session logs its start (and end, with its totals)
        // from its task, where its transport and counters are known.
        if kind == SessionKind::Viewer {
            tracing::debug!(session = %id, peer = %ctx.peer, %mount, ?kind, "session created");
        } else {
            tracing::info!(session = %id, peer = %ctx.peer, %mount, ?kind, "session created");
        }
        self.sessions.insert(
            id.clone(),
            Session {
                id: id.clone(),
                owner: Owner {
                    connection: ctx.connection,
                    ip: ctx.peer.ip(),
                },
                state: SessionState::Ready,
                mount,
                media,
                tracks: Vec::new(),
                last_activity: ctx.received,
                timeout: self.settings.session_timeout,
                interleaved: false,
                publishing: kind == SessionKind::Publisher,
                multicast: kind == SessionKind::Multicast,
                user: None,
            },
        );
        Ok(id)
    }

    /// Interleaved channels taken on `connection` by its sessions' tracks,
    /// other than `track` of session `setting_up` (being set up again).
    fn channels_in_use(
        &self,
        connection: ConnectionId,
        setting_up: Option<&str>,
        track: usize,
    ) -> Vec<u8> {
        let mut used = Vec::new();
        for session in self.sessions.values() {
            if session.owner.connection != connection {
                continue;
            }
            for &(index, delivery) in &session.tracks {
                let replaced = Some(session.id.as_str()) == setting_up && index == track;
                if let (
                    false,
                    Delivery::Interleaved {
                        rtp_channel,
                        rtcp_channel,
                    },
                ) = (replaced, delivery)
                {
                    used.extend([rtp_channel, rtcp_channel]);
                }
            }
        }
        used
    }

    /// Where the RTCP of every track of session `id` comes from.
    fn rtcp_route(&self, id: &str) -> Action {
        let sources = self.sessions.get(id).map_or_else(Vec::new, |session| {
            session
                .tracks
                .iter()
                .map(|&(_, delivery)| match delivery {
                    Delivery::Udp { rtcp, .. } => RtcpSource::Udp(rtcp),
                    Delivery::Interleaved { rtcp_channel, .. } => {
                        RtcpSource::Interleaved(session.owner.connection, rtcp_channel)
                    }
                })
                .collect()
        });
        Action::RouteRtcp {
            session_id: id.to_string(),
            sources,
        }
    }

    fn session_header(&self, id: &str) -> String {
        format!("{id};timeout={}", self.settings.session_timeout.as_secs())
    }
}

/// The media the I/O layer found for `mount`, or the refusal that says why
/// there is none (RFC 2326 §7.1.1).
fn resolved(mount: &str, media: Option<ResolvedMedia>) -> Result<Presentation, Refusal> {
    let media = media.unwrap_or_else(|| Err(ResolveError::NotFound(mount.to_string())));
    media.map_err(|error| match error {
        ResolveError::NotFound(path) => Refusal::NotFound(path),
        ResolveError::Forbidden(path) => {
            // Answered like a missing file so probing learns nothing.
            tracing::warn!(path = %path, "refused a path that escapes the media root");
            Refusal::NotFound(path)
        }
        ResolveError::Media(error) => {
            // The details stay in the log: they describe our files.
            tracing::warn!(mount, %error, "media cannot be served");
            Refusal::MediaUnplayable
        }
    })
}

/// What a new session does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SessionKind {
    /// Plays to one client (unicast UDP or interleaved).
    Viewer,
    /// Records: a publisher feeding a live path.
    Publisher,
    /// Plays through its path's multicast group.
    Multicast,
}

/// What the I/O layer found at a mount: the media, or why there is none.
pub type ResolvedMedia = Result<Presentation, ResolveError>;

/// Identifies which session an RTCP packet belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RtcpSource {
    /// Received on the server's RTCP UDP port from this address.
    Udp(SocketAddr),
    /// Received interleaved on a connection's channel.
    Interleaved(ConnectionId, u8),
}

fn ok(cseq: &str) -> rtsp_types::ResponseBuilder {
    Response::builder(Version::V1_0, StatusCode::Ok)
        .header(headers::CSEQ, cseq)
        .header(headers::SERVER, SERVER_NAME)
}

fn refused(cseq: Option<&str>, refusal: Refusal) -> Handled {
    Handled {
        response: refusal.response(cseq),
        actions: Vec::new(),
    }
}

/// CSeq is 1*DIGIT (RFC 2326 §12.17); anything else is not echoed.
fn request_cseq(request: &Request<Vec<u8>>) -> Option<String> {
    request
        .header(&headers::CSEQ)
        .map(|v| v.as_str().trim().to_string())
        .filter(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()))
}

fn request_url(request: &Request<Vec<u8>>) -> Result<&Url, Refusal> {
    request.request_uri().ok_or(Refusal::NoUrl)
}

fn session_id(request: &Request<Vec<u8>>) -> Option<String> {
    let value = request.header(&headers::SESSION)?;
    let id = value.as_str().split(';').next()?.trim();
    (!id.is_empty()).then(|| id.to_string())
}

/// The mount a DESCRIBE or SETUP will open, so the I/O layer can open it
/// (file reads, moov parsing) before taking the handler's lock. A
/// publisher's SETUP (`mode=record`) opens nothing.
pub fn media_needed(request: &Request<Vec<u8>>) -> Option<String> {
    match request.method() {
        Method::Setup if record::is_record_setup(request) => None,
        Method::Describe | Method::Setup => request.request_uri().map(|url| url::target(url).mount),
        _ => None,
    }
}

mod admission;
mod multicast;
mod record;
pub use multicast::PORTS_PER_GROUP;
pub use record::{publishable, PublishedTrack};

#[cfg(test)]
mod tests;

/// Whether `mount` is `path` itself or a path below it, by whole
/// segments (`/live/cam` is below `/live`, `/lively` is not).
pub fn is_at_or_below(mount: &str, path: &str) -> bool {
    path == "/"
        || mount == path
        || mount
            .strip_prefix(path)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// A publisher's end from the server's side closes its connection: it
/// would otherwise go on sending to a path that is gone.
fn close_publishers(action: Action) -> Action {
    match action {
        Action::Unpublish {
            session_id, mount, ..
        } => Action::Unpublish {
            session_id,
            mount,
            close_connection: true,
        },
        other => other,
    }
}
