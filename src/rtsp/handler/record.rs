//! Publishing (RFC 2326 §10.3 ANNOUNCE, §10.4 SETUP with `mode=record`,
//! §10.11 RECORD): a client announces a live path's SDP, sets up its
//! tracks and records; the I/O layer then takes its RTP into the path.
//!
//! A path is claimed at ANNOUNCE, by that connection, until the publisher's
//! session ends (TEARDOWN, timeout, its connection closing) or another
//! publisher takes it over where that is allowed.

use rtsp_types::{headers, Request, Response};

use super::{
    ok, request_url, session_id, Action, RequestContext, RtspHandler, SessionKind, Viewers,
};
use crate::rtp::Delivery;
use crate::rtsp::refusal::Refusal;
use crate::rtsp::session::{ConnectionId, Session, SessionState};
use crate::rtsp::transport::{self, TransportMode};
use crate::rtsp::url;
use crate::sdp::announce::{parse_announcement, AnnounceError, AnnouncedTrack, Announcement};
use crate::source::Presentation;
use crate::stats::SessionEnd;

/// A path held by a publisher.
#[derive(Debug)]
pub(super) struct PublishClaim {
    /// The connection that announced it.
    pub(super) connection: ConnectionId,
    /// What it announced.
    pub(super) announcement: Announcement,
    /// Its session, once SETUP created one.
    pub(super) session_id: Option<String>,
    /// True once RECORD made the path live: a RECORD after PAUSE resumes
    /// it rather than starting it afresh.
    pub(super) recording: bool,
    /// When it was announced (a claim with no session expires like an
    /// idle session).
    pub(super) announced_at: std::time::Instant,
}

/// One track of a publisher, as the I/O layer needs it to receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedTrack {
    /// The announced track (its codec, payload type and fmtp).
    pub track: AnnouncedTrack,
    /// Where its RTP and RTCP come from (the publisher's `client_port`s)
    /// or on which interleaved channels.
    pub delivery: Delivery,
}

/// True when the request's Transport asks to record (publish).
pub(super) fn is_record_setup(request: &Request<Vec<u8>>) -> bool {
    let anywhere = std::net::Ipv4Addr::UNSPECIFIED.into();
    request
        .header(&headers::TRANSPORT)
        .and_then(|t| transport::negotiate(t.as_str(), anywhere, 0, 0, None).ok())
        .is_some_and(|n| n.mode == TransportMode::Record)
}

/// Whether publishers may announce `mount`: it is one of `publish_paths`
/// or below one, and no configured source feeds it (`source_paths`).
pub fn publishable(mount: &str, publish_paths: &[String], source_paths: &[String]) -> bool {
    if source_paths.iter().any(|path| path == mount) {
        return false;
    }
    publish_paths.iter().any(|prefix| {
        let prefix = prefix.trim_end_matches('/');
        mount == prefix
            || mount
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

impl RtspHandler {
    fn publishable(&self, mount: &str) -> bool {
        publishable(
            mount,
            &self.settings.publish_paths,
            &self.settings.source_paths,
        )
    }

    pub(super) fn announce(
        &mut self,
        request: &Request<Vec<u8>>,
        ctx: &RequestContext,
        cseq: &str,
        viewers: &mut impl Viewers,
        actions: &mut Vec<Action>,
    ) -> Result<Response<Vec<u8>>, Refusal> {
        let target = url::target(request_url(request)?);
        let mount = target.mount;
        if target.track.is_some() || !self.publishable(&mount) {
            return Err(Refusal::PublishNotAllowed(mount));
        }
        let announcement = parse_announcement(request.body()).map_err(|error| match error {
            AnnounceError::TooLarge(_) => Refusal::RequestTooLarge,
            AnnounceError::NoPlayableTrack(_) => {
                Refusal::UnsupportedAnnouncement(error.to_string())
            }
            other => Refusal::InvalidAnnouncement(other.to_string()),
        })?;
        for skipped in &announcement.skipped {
            tracing::warn!(
                %mount,
                media = skipped.media_index,
                reason = %skipped.reason,
                "announced media section left out"
            );
        }
        if let Some(claim) = self.claims.get(&mount) {
            let own = claim.connection == ctx.connection;
            if !own && !self.settings.publish_takeover {
                return Err(Refusal::PathBusy(mount));
            }
            let previous = claim.session_id.clone();
            tracing::info!(%mount, peer = %ctx.peer, "publisher replaces the path's earlier one");
            self.claims.remove(&mount);
            if let Some(id) = previous {
                actions.extend(
                    self.remove_session(&id, viewers, SessionEnd::TakenOver)
                        .map(|action| match action {
                            // Taken over from another connection: tell it.
                            Action::Unpublish {
                                session_id, mount, ..
                            } => Action::Unpublish {
                                session_id,
                                mount,
                                close_connection: !own,
                            },
                            other => other,
                        }),
                );
            }
        }
        tracing::info!(
            %mount,
            peer = %ctx.peer,
            tracks = announcement.tracks.len(),
            "path announced"
        );
        self.claims.insert(
            mount,
            PublishClaim {
                connection: ctx.connection,
                announcement,
                session_id: None,
                recording: false,
                announced_at: ctx.received,
            },
        );
        Ok(ok(cseq).build(Vec::new()))
    }

    /// SETUP of one announced track with `mode=record`.
    pub(super) fn setup_record(
        &mut self,
        request: &Request<Vec<u8>>,
        ctx: &RequestContext,
        cseq: &str,
    ) -> Result<Response<Vec<u8>>, Refusal> {
        let url = request_url(request)?;
        let (mount, slot) = self.announced_track(url)?;
        let claim = &self.claims[&mount];
        if claim.connection != ctx.connection {
            return Err(Refusal::NotAnnounced(mount));
        }
        let existing = match session_id(request) {
            Some(id) => {
                if claim.session_id.as_deref() != Some(id.as_str()) {
                    return Err(Refusal::SessionNotFound);
                }
                self.owned_session(&id, ctx, &rtsp_types::Method::Setup)?;
                Some(id)
            }
            None if claim.session_id.is_some() => {
                // One publisher session per announcement.
                return Err(Refusal::PathBusy(mount));
            }
            None => None,
        };
        let tracks: Vec<_> = claim
            .announcement
            .tracks
            .iter()
            .map(|t| t.info.clone())
            .collect();
        let negotiated = self.negotiate_transport(request, ctx, existing.as_deref(), slot, None)?;
        let interleaved = matches!(negotiated.delivery, Delivery::Interleaved { .. });
        let id = match existing {
            Some(id) => id,
            None => {
                let media = Presentation::Live {
                    tracks: tracks.into(),
                };
                let id = self.open_session(ctx, mount.clone(), media, SessionKind::Publisher)?;
                if let Some(claim) = self.claims.get_mut(&mount) {
                    claim.session_id = Some(id.clone());
                }
                id
            }
        };
        let session = self.sessions.get_mut(&id).ok_or(Refusal::SessionNotFound)?;
        session.last_activity = ctx.received;
        session.interleaved |= interleaved;
        session.set_delivery(slot, negotiated.delivery);
        Ok(ok(cseq)
            .header(headers::TRANSPORT, negotiated.reply)
            .header(headers::SESSION, self.session_header(&id))
            .build(Vec::new()))
    }

    /// The announced path and session track slot a record SETUP URL
    /// names: the section whose `a=control` the URL ends with (relative, as
    /// ffmpeg's `streamid=0` and GStreamer's `stream=0`, or absolute), or
    /// the only track when the URL is the path itself.
    ///
    /// Slots `0..n` are the `n` announced tracks; slots from `n` on stand
    /// for the skipped sections, in order. Those are set up like the rest,
    /// since publishers set up every section they announced (GStreamer's
    /// MP4A-LATM audio), but RECORD leaves them out: their packets are
    /// never received.
    fn announced_track(&self, url: &rtsp_types::Url) -> Result<(String, usize), Refusal> {
        let path = url::normalize_mount(url.path());
        let full = url.as_str().trim_end_matches('/');
        for (mount, claim) in &self.claims {
            let tracks = &claim.announcement.tracks;
            let controls = tracks.iter().map(|t| t.control.as_deref()).chain(
                claim
                    .announcement
                    .skipped
                    .iter()
                    .map(|s| s.control.as_deref()),
            );
            for (slot, control) in controls.enumerate() {
                let Some(control) = control else {
                    continue;
                };
                let matches = if control.contains("://") {
                    control.trim_end_matches('/') == full
                } else {
                    path.strip_prefix(mount.as_str())
                        .and_then(|rest| rest.strip_prefix('/'))
                        .is_some_and(|rest| rest == control.trim_matches('/'))
                };
                if matches {
                    return Ok((mount.clone(), slot));
                }
            }
            if &path == mount {
                return match tracks.as_slice() {
                    [only] => Ok((mount.clone(), only.info.index)),
                    _ => Err(Refusal::AggregateSetup),
                };
            }
        }
        let target = url::target(url);
        Err(Refusal::NotAnnounced(target.mount))
    }

    pub(super) fn record(
        &mut self,
        request: &Request<Vec<u8>>,
        ctx: &RequestContext,
        cseq: &str,
        actions: &mut Vec<Action>,
    ) -> Result<Response<Vec<u8>>, Refusal> {
        let id = self.session_id_for(request, ctx, &rtsp_types::Method::Record)?;
        let header = self.session_header(&id);
        let session = self.sessions.get_mut(&id).ok_or(Refusal::SessionNotFound)?;
        if !session.publishing {
            return Err(Refusal::MethodNotValidInState(
                "RECORD of a session that plays".into(),
            ));
        }
        let claim = self
            .claims
            .get_mut(&session.mount)
            .ok_or_else(|| Refusal::NotAnnounced(session.mount.clone()))?;
        let tracks: Vec<PublishedTrack> = session
            .tracks
            .iter()
            .filter_map(|&(index, delivery)| {
                let track = claim.announcement.tracks.get(index)?.clone();
                Some(PublishedTrack { track, delivery })
            })
            .collect();
        if tracks.is_empty() {
            return Err(Refusal::MethodNotValidInState("RECORD before SETUP".into()));
        }
        session.state = SessionState::Playing;
        if !claim.recording {
            claim.recording = true;
            tracing::info!(session = %id, mount = %session.mount, tracks = tracks.len(), "recording");
            actions.push(Action::Publish {
                session_id: id.clone(),
                mount: session.mount.clone(),
                connection: session.owner.connection,
                client: ctx.peer,
                tracks,
            });
        }
        Ok(ok(cseq).header(headers::SESSION, header).build(Vec::new()))
    }

    /// Frees the path `session` published to.
    pub(super) fn release_claim(&mut self, session: &Session) {
        if self
            .claims
            .get(&session.mount)
            .is_some_and(|c| c.session_id.as_deref() == Some(session.id.as_str()))
        {
            self.claims.remove(&session.mount);
        }
    }

    /// Drops claims with no session that have idled past the session
    /// timeout, or (with `connection`) whose connection closed.
    pub(super) fn drop_idle_claims(
        &mut self,
        now: std::time::Instant,
        connection: Option<ConnectionId>,
    ) {
        let timeout = self.settings.session_timeout;
        self.claims.retain(|mount, claim| {
            let idle = now.saturating_duration_since(claim.announced_at) > timeout;
            let closed = connection == Some(claim.connection);
            let keep = claim.session_id.is_some() || !(idle || closed);
            if !keep {
                tracing::info!(%mount, "announced path released before SETUP");
            }
            keep
        });
    }
}
