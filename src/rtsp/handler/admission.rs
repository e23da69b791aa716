//! Admission: whether a request may do what it asks on its path, by the
//! path's access rule ([`crate::rtsp::access`]): 403 from a network the
//! rule leaves out, 401 with challenges where it names users and the
//! credentials are missing or wrong ([`crate::rtsp::auth`]).
//!
//! A request naming a session is judged by the session's path and kind
//! (a publisher's session publishes), whatever URL it gives; every other
//! by its URL's path, publishing for ANNOUNCE, RECORD and a record SETUP.
//! OPTIONS, and requests for `*`, are open.

use rtsp_types::{headers, Method, Request};

use super::{record, request_url, session_id, RequestContext, RtspHandler};
use crate::rtsp::access::{self, AccessKind};
use crate::rtsp::auth::{Attempt, Denial};
use crate::rtsp::refusal::Refusal;
use crate::rtsp::url;

impl RtspHandler {
    /// The user `request` authenticated as (`None` where its rule names
    /// no users), or the refusal that keeps it out.
    pub(super) fn admit(
        &mut self,
        request: &Request<Vec<u8>>,
        ctx: &RequestContext,
    ) -> Result<Option<String>, Refusal> {
        let Some((path, kind)) = self.access_target(request, ctx) else {
            return Ok(None);
        };
        let Some(rule) = access::rule_for(&self.settings.access, &path, kind) else {
            return Ok(None);
        };
        if !access::network_allows(rule, ctx.peer.ip()) {
            tracing::warn!(peer = %ctx.peer, %path, ?kind, "refused: address outside the path's networks");
            return Err(Refusal::NetworkNotAllowed(path));
        }
        if rule.users.is_empty() {
            return Ok(None);
        }
        let attempt = Attempt {
            method: request.method().into(),
            url: request_url(request)?,
            authorization: request
                .header(&headers::AUTHORIZATION)
                .map(|value| value.as_str()),
            path: &path,
            client: ctx.peer.ip(),
            now: ctx.received,
        };
        match self.authenticator.authenticate(&attempt, &rule.users) {
            Ok(user) => Ok(Some(user)),
            Err(Denial::Challenge(challenges)) => Err(Refusal::Unauthorized(challenges)),
            Err(Denial::Throttled(wait)) => {
                Err(Refusal::AuthenticationThrottled(wait.as_secs().max(1)))
            }
        }
    }

    /// The path and kind of access `request` needs, `None` for none.
    fn access_target(
        &self,
        request: &Request<Vec<u8>>,
        ctx: &RequestContext,
    ) -> Option<(String, AccessKind)> {
        if *request.method() == Method::Options {
            return None;
        }
        let session = session_id(request)
            .and_then(|id| self.sessions.get(&id))
            .filter(|s| s.owner.allows(ctx.connection, ctx.peer.ip(), s.interleaved));
        if let Some(session) = session {
            let kind = if session.publishing {
                AccessKind::Publish
            } else {
                AccessKind::Read
            };
            return Some((session.mount.clone(), kind));
        }
        let path = url::normalize_mount(request.request_uri()?.path());
        let kind = match request.method() {
            Method::Announce | Method::Record => AccessKind::Publish,
            Method::Setup if record::is_record_setup(request) => AccessKind::Publish,
            _ => AccessKind::Read,
        };
        Some((path, kind))
    }

    /// Refuses a request that names a session created by another user
    /// (CVE-2026-41470's rule: with authentication, the same user).
    pub(super) fn check_session_user(
        &self,
        request: &Request<Vec<u8>>,
        user: Option<&str>,
    ) -> Result<(), Refusal> {
        let owner = session_id(request)
            .and_then(|id| self.sessions.get(&id))
            .and_then(|session| session.user.as_deref());
        match (owner, user) {
            (Some(owner), Some(user)) if owner != user => Err(Refusal::SessionNotFound),
            _ => Ok(()),
        }
    }

    /// Binds the session a successful answer names to `user`, the first
    /// time one authenticated for it.
    pub(super) fn bind_session_user(&mut self, session_header: Option<&str>, user: Option<String>) {
        let (Some(header), Some(user)) = (session_header, user) else {
            return;
        };
        let id = header.split(';').next().unwrap_or_default().trim();
        if let Some(session) = self.sessions.get_mut(id) {
            session.user.get_or_insert(user);
        }
    }
}
