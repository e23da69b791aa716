//! Per-client RTSP session: identity, owner, state machine (RFC 2326
//! Appendix A.1) and liveness.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use rtsp_types::Method;

use crate::rtp::Delivery;
use crate::source::Presentation;

/// Identifies one RTSP TCP connection for the lifetime of the server.
pub type ConnectionId = u64;

/// The server-side session states of RFC 2326 Appendix A.1 that a session
/// can be in once SETUP created it (Init is "no session").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Transports set up, not sending.
    Ready,
    /// Sending media.
    Playing,
}

/// Why a method cannot be applied to a session in its current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{method} is not valid in state {state:?}")]
pub struct InvalidInState {
    /// The method's name.
    pub method: &'static str,
    /// The state the session was in.
    pub state: SessionState,
}

impl SessionState {
    /// The state after `method` succeeds, or why it is not valid here
    /// (RFC 2326 Appendix A.1, answered with 455).
    ///
    /// SETUP while playing is refused: the streams of a playing aggregate
    /// are fixed, and replacing a transport under a running sender is the
    /// use-after-free live555 shipped (CVE-2021-38381).
    pub fn after(self, method: &Method) -> Result<SessionState, InvalidInState> {
        use SessionState::*;
        let next = match (self, method) {
            (Ready, Method::Setup) => Some(Ready),
            (Ready | Playing, Method::Play | Method::Record) => Some(Playing),
            (Playing, Method::Pause) => Some(Ready),
            (state, Method::GetParameter | Method::Options | Method::Teardown) => Some(state),
            _ => None,
        };
        next.ok_or(InvalidInState {
            method: method_name(method),
            state: self,
        })
    }
}

fn method_name(method: &Method) -> &'static str {
    match method {
        Method::Setup => "SETUP",
        Method::Play => "PLAY",
        Method::Pause => "PAUSE",
        Method::Teardown => "TEARDOWN",
        Method::GetParameter => "GET_PARAMETER",
        Method::Options => "OPTIONS",
        Method::Describe => "DESCRIBE",
        Method::Record => "RECORD",
        _ => "method",
    }
}

/// Who may control a session (security: a session id alone is not
/// enough, CVE-2026-41470).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// The connection that created the session.
    pub connection: ConnectionId,
    /// The client's address on that connection.
    pub ip: IpAddr,
}

impl Owner {
    /// True when a request from `connection`/`ip` may control the session:
    /// the same connection, or a new connection from the same address
    /// (clients such as ffmpeg may reconnect for TEARDOWN). Sessions that
    /// deliver over their TCP connection are bound to it alone.
    pub fn allows(&self, connection: ConnectionId, ip: IpAddr, interleaved: bool) -> bool {
        connection == self.connection || (!interleaved && ip == self.ip)
    }
}

/// One RTSP session (RFC 2326 §3.8, §12.37).
#[derive(Debug)]
pub struct Session {
    /// The session identifier (RFC 2326 §12.37), 64 random bits in hex.
    pub id: String,
    /// Who created it.
    pub owner: Owner,
    /// Current state.
    pub state: SessionState,
    /// URL path of the media (without track part).
    pub mount: String,
    /// What it plays.
    pub media: Presentation,
    /// Its set-up tracks and where each one's packets go.
    pub tracks: Vec<(usize, Delivery)>,
    /// Last RTSP request or RTCP packet from the client.
    pub last_activity: Instant,
    /// Idle time after which the session is torn down.
    pub timeout: Duration,
    /// True when any track is delivered interleaved on the RTSP connection.
    pub interleaved: bool,
    /// True for a publisher's session (RECORD), false for a viewer's.
    pub publishing: bool,
    /// True for a viewer watching through its path's multicast group.
    pub multicast: bool,
    /// The user that authenticated for it, where its path names users:
    /// only that user may control it.
    pub user: Option<String>,
}

impl Session {
    /// A fresh random session id: 64 bits from `rng`, which must be a
    /// CSPRNG seeded from the OS outside tests (security rule from
    /// CVE-2019-15232).
    pub fn new_id(rng: &mut impl rand::RngCore) -> String {
        format!("{:016X}", rng.next_u64())
    }

    /// Records that `track` is delivered to `delivery`, replacing an
    /// earlier SETUP of it (RFC 2326 §10.4).
    pub fn set_delivery(&mut self, track: usize, delivery: Delivery) {
        match self.tracks.iter_mut().find(|(index, _)| *index == track) {
            Some(entry) => entry.1 = delivery,
            None => self.tracks.push((track, delivery)),
        }
    }

    /// True when the client has been silent for longer than the timeout.
    pub fn expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_activity) > self.timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_machine_follows_rfc2326_appendix_a1() {
        use SessionState::*;
        assert_eq!(Ready.after(&Method::Setup), Ok(Ready));
        assert_eq!(Ready.after(&Method::Play), Ok(Playing));
        assert_eq!(Playing.after(&Method::Play), Ok(Playing));
        assert_eq!(Playing.after(&Method::Pause), Ok(Ready));
        assert_eq!(Ready.after(&Method::Teardown), Ok(Ready));
        assert_eq!(Playing.after(&Method::GetParameter), Ok(Playing));
        assert!(Ready.after(&Method::Pause).is_err());
        assert!(Playing.after(&Method::Setup).is_err());
        assert_eq!(Ready.after(&Method::Record), Ok(Playing));
        assert!(Ready.after(&Method::Announce).is_err());
        let err = Playing.after(&Method::Setup).unwrap_err();
        assert_eq!(err.to_string(), "SETUP is not valid in state Playing");
    }

    #[test]
    fn owner_checks_connection_and_address() {
        let ip: IpAddr = [127, 0, 0, 1].into();
        let other: IpAddr = [127, 0, 0, 2].into();
        let owner = Owner { connection: 7, ip };
        assert!(owner.allows(7, ip, true));
        assert!(owner.allows(8, ip, false));
        assert!(!owner.allows(8, ip, true));
        assert!(!owner.allows(8, other, false));
    }

    #[test]
    fn session_ids_are_64_bit_hex_and_distinct() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::from_seed([1; 32]);
        let a = Session::new_id(&mut rng);
        let b = Session::new_id(&mut rng);
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        let mut replay = rand::rngs::StdRng::from_seed([1; 32]);
        assert_eq!(Session::new_id(&mut replay), a, "the seed decides the ids");
    }
}
