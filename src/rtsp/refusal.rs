//! Every way the server turns a request or a connection away, and the one
//! table that gives each its RTSP status code and reason phrase (RFC 2326
//! §7.1.1, §11). Method code names the kind of refusal; only this module
//! knows the numbers.

use std::fmt;

use rtsp_types::{headers, Response, StatusCode, Version};

use super::framing::FramingError;
use super::handler::SERVER_NAME;
use super::rate::MalformedRate;
use super::transport::TransportError;

/// Why a request (or a connection) is refused. The response's reason
/// phrase is the status's phrase, then `: ` and what was wrong where there
/// is more to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// CSeq is missing or not digits (RFC 2326 §12.17).
    InvalidCSeq,
    /// The request names no URL where the method needs one.
    NoUrl,
    /// The Transport header cannot be understood (RFC 2326 §12.39); says
    /// which part.
    MalformedTransport(String),
    /// A Scale or Speed value is not a number (RFC 2326 §12.34, §12.35).
    MalformedRate(MalformedRate),
    /// The bytes on the connection are not an RTSP message.
    Unparseable,
    /// No media at this path (also answered for paths that escape the
    /// media root, so probing learns nothing).
    NotFound(String),
    /// The presentation has no track with this index.
    NoSuchTrack(usize),
    /// The header block or the announced body exceeds the framer's caps.
    RequestTooLarge,
    /// A session limit is reached (`--max-sessions…`).
    TooManySessions,
    /// The Session header names no session of this client (RFC 2326 §12.37).
    SessionNotFound,
    /// A method that needs a session came without a Session header.
    NoSessionHeader,
    /// The session's state does not accept the method (RFC 2326 §A.1);
    /// says which state and method.
    MethodNotValidInState(String),
    /// The Range is not a forward npt range within the presentation
    /// (RFC 2326 §12.29); quotes what was wrong.
    InvalidRange(String),
    /// A SETUP joining a session names another presentation (RFC 2326
    /// §10.4: one session, one aggregate).
    OtherPresentation,
    /// A SETUP of a presentation of several tracks names none of them.
    AggregateSetup,
    /// No alternative of the Transport header is one we serve (RFC 2326
    /// §12.39); says why.
    UnsupportedTransport(String),
    /// The media file exists but cannot be served (details only in the
    /// log: they describe our files).
    MediaUnplayable,
    /// The method is not one we implement (RFC 2326 §10).
    MethodNotImplemented,
    /// The client address holds too many connections
    /// (`--max-connections-per-address`).
    TooManyConnections,
    /// The request is not RTSP/1.0.
    VersionNotSupported,
    /// The request requires an option extension (RFC 2326 §12.32).
    OptionNotSupported,
    /// ANNOUNCE to a path that takes no publisher (`--publish-path`).
    PublishNotAllowed(String),
    /// ANNOUNCE to a path another publisher holds.
    PathBusy(String),
    /// An ANNOUNCE body that is not SDP or breaks a bound; says why.
    InvalidAnnouncement(String),
    /// An ANNOUNCE body with nothing we can receive; says why.
    UnsupportedAnnouncement(String),
    /// A SETUP with `mode=record` on a path this connection has not
    /// announced (RFC 2326 §10.3 comes first).
    NotAnnounced(String),
    /// The path's rule names users and the request's credentials are
    /// missing or wrong (RFC 2326 §D.1, RFC 7235 §3.1): answered with one
    /// `WWW-Authenticate` line per challenge.
    Unauthorized(Vec<String>),
    /// The path's rule names networks and the client is in none.
    NetworkNotAllowed(String),
    /// The client's address failed to authenticate too often: answered
    /// without checking, with `Retry-After` (RFC 2326 §12.31) in seconds.
    AuthenticationThrottled(u64),
}

impl Refusal {
    /// The table: status code and reason phrase of each kind (RFC 2326
    /// §7.1.1).
    fn status_and_phrase(&self) -> (StatusCode, &'static str) {
        use Refusal::*;
        match self {
            InvalidCSeq | NoUrl | MalformedTransport(_) | MalformedRate(_) | Unparseable => {
                (StatusCode::BadRequest, "Bad Request")
            }
            NotFound(_) | NoSuchTrack(_) => (StatusCode::NotFound, "Not Found"),
            RequestTooLarge => (
                StatusCode::RequestMessageBodyTooLarge,
                "Request Entity Too Large",
            ),
            TooManySessions => (StatusCode::NotEnoughBandwidth, "Not Enough Bandwidth"),
            SessionNotFound | NoSessionHeader => (StatusCode::SessionNotFound, "Session Not Found"),
            MethodNotValidInState(_) => (
                StatusCode::MethodNotValidInThisState,
                "Method Not Valid In This State",
            ),
            InvalidRange(_) => (StatusCode::InvalidRange, "Invalid Range"),
            OtherPresentation | AggregateSetup => (
                StatusCode::AggregateOperationNotAllowed,
                "Aggregate Operation Not Allowed",
            ),
            UnsupportedTransport(_) => (StatusCode::UnsupportedTransport, "Unsupported Transport"),
            MediaUnplayable => (StatusCode::InternalServerError, "Internal Server Error"),
            MethodNotImplemented => (StatusCode::NotImplemented, "Not Implemented"),
            TooManyConnections => (StatusCode::ServiceUnavailable, "Service Unavailable"),
            VersionNotSupported => (
                StatusCode::RTSPVersionNotSupported,
                "RTSP Version Not Supported",
            ),
            OptionNotSupported => (StatusCode::OptionNotSupported, "Option not supported"),
            PublishNotAllowed(_) => (StatusCode::Forbidden, "Forbidden"),
            PathBusy(_) | NotAnnounced(_) => (
                StatusCode::MethodNotValidInThisState,
                "Method Not Valid In This State",
            ),
            InvalidAnnouncement(_) => (StatusCode::BadRequest, "Bad Request"),
            UnsupportedAnnouncement(_) => {
                (StatusCode::UnsupportedMediaType, "Unsupported Media Type")
            }
            Unauthorized(_) => (StatusCode::Unauthorized, "Unauthorized"),
            NetworkNotAllowed(_) => (StatusCode::Forbidden, "Forbidden"),
            AuthenticationThrottled(_) => (StatusCode::ServiceUnavailable, "Service Unavailable"),
        }
    }

    /// What was wrong, beyond the status's phrase.
    fn detail(&self) -> Option<String> {
        use Refusal::*;
        match self {
            InvalidCSeq => Some("missing or invalid CSeq".into()),
            NoUrl => Some("no URL".into()),
            MalformedTransport(why) => Some(format!("Transport {why}")),
            MalformedRate(malformed) => Some(malformed.to_string()),
            NotFound(path) => Some(path.clone()),
            NoSuchTrack(track) => Some(format!("no track {track}")),
            TooManySessions => Some("too many sessions".into()),
            NoSessionHeader => Some("no Session header".into()),
            MethodNotValidInState(why) | InvalidRange(why) | UnsupportedTransport(why) => {
                Some(why.clone())
            }
            OtherPresentation => Some("other media".into()),
            AggregateSetup => Some("SETUP a track URL".into()),
            MediaUnplayable => Some("media cannot be played".into()),
            TooManyConnections => Some("too many connections from this address".into()),
            PublishNotAllowed(path) => Some(format!("{path} takes no publisher")),
            PathBusy(path) => Some(format!("{path} already has a publisher")),
            InvalidAnnouncement(why) | UnsupportedAnnouncement(why) => Some(why.clone()),
            NotAnnounced(path) => Some(format!("ANNOUNCE {path} first")),
            NetworkNotAllowed(path) => Some(format!("{path} is not open to this address")),
            AuthenticationThrottled(_) => Some("too many failed authentications".into()),
            Unparseable | RequestTooLarge | SessionNotFound | MethodNotImplemented
            | VersionNotSupported | OptionNotSupported | Unauthorized(_) => None,
        }
    }

    /// The RTSP status code answered.
    pub fn status(&self) -> StatusCode {
        self.status_and_phrase().0
    }

    /// The answer: status line with this refusal's reason phrase, `Server`,
    /// and `CSeq` when the request had a valid one to echo.
    pub fn response(&self, cseq: Option<&str>) -> Response<Vec<u8>> {
        // Details may quote the request; control characters would let a
        // client split its own response.
        let reason: String = self
            .to_string()
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        let mut builder = Response::builder(Version::V1_0, self.status())
            .reason_phrase(reason)
            .header(headers::SERVER, SERVER_NAME);
        if let Some(cseq) = cseq {
            builder = builder.header(headers::CSEQ, cseq);
        }
        match self {
            // rtsp-types keeps one value per header name, and RFC 7235's
            // comma-separated list of challenges in one line is read by
            // neither ffmpeg nor live555 (they take one challenge per
            // line): the challenges become consecutive header lines.
            Refusal::Unauthorized(challenges) if !challenges.is_empty() => {
                let lines: Vec<String> = challenges
                    .iter()
                    .map(|c| c.chars().filter(|c| !c.is_control()).collect())
                    .collect();
                builder = builder.header(
                    headers::WWW_AUTHENTICATE,
                    lines.join(&format!("\r\n{}: ", headers::WWW_AUTHENTICATE.as_str())),
                );
            }
            Refusal::AuthenticationThrottled(seconds) => {
                builder = builder.header(headers::RETRY_AFTER, seconds.to_string());
            }
            _ => {}
        }
        builder.build(Vec::new())
    }
}

/// The reason phrase: the status's phrase, then `: ` and the detail.
impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (_, phrase) = self.status_and_phrase();
        match self.detail() {
            Some(detail) => write!(f, "{phrase}: {detail}"),
            None => f.write_str(phrase),
        }
    }
}

impl std::error::Error for Refusal {}

impl From<FramingError> for Refusal {
    fn from(error: FramingError) -> Self {
        match error {
            FramingError::TooLarge => Refusal::RequestTooLarge,
            FramingError::Malformed => Refusal::Unparseable,
        }
    }
}

impl From<TransportError> for Refusal {
    fn from(error: TransportError) -> Self {
        match error {
            TransportError::Unsupported(why) => Refusal::UnsupportedTransport(why),
            TransportError::Malformed(why) => Refusal::MalformedTransport(why),
        }
    }
}

impl From<MalformedRate> for Refusal {
    fn from(malformed: MalformedRate) -> Self {
        Refusal::MalformedRate(malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind with its RFC 2326 §7.1.1 status code and the reason
    /// phrase clients (and the tests) have seen so far.
    #[test]
    fn every_kind_maps_to_its_status_and_reason() {
        let table: Vec<(Refusal, u16, &str)> = vec![
            (
                Refusal::InvalidCSeq,
                400,
                "Bad Request: missing or invalid CSeq",
            ),
            (Refusal::NoUrl, 400, "Bad Request: no URL"),
            (
                Refusal::MalformedTransport("client_port=a-b".into()),
                400,
                "Bad Request: Transport client_port=a-b",
            ),
            (
                Refusal::MalformedRate(MalformedRate {
                    header: headers::SCALE,
                    value: "fast".into(),
                }),
                400,
                "Bad Request: Scale fast",
            ),
            (Refusal::Unparseable, 400, "Bad Request"),
            (Refusal::NotFound("/x".into()), 404, "Not Found: /x"),
            (Refusal::NoSuchTrack(9), 404, "Not Found: no track 9"),
            (Refusal::RequestTooLarge, 413, "Request Entity Too Large"),
            (
                Refusal::TooManySessions,
                453,
                "Not Enough Bandwidth: too many sessions",
            ),
            (Refusal::SessionNotFound, 454, "Session Not Found"),
            (
                Refusal::NoSessionHeader,
                454,
                "Session Not Found: no Session header",
            ),
            (
                Refusal::MethodNotValidInState("PAUSE in Init".into()),
                455,
                "Method Not Valid In This State: PAUSE in Init",
            ),
            (
                Refusal::InvalidRange("npt=5-2".into()),
                457,
                "Invalid Range: npt=5-2",
            ),
            (
                Refusal::OtherPresentation,
                459,
                "Aggregate Operation Not Allowed: other media",
            ),
            (
                Refusal::AggregateSetup,
                459,
                "Aggregate Operation Not Allowed: SETUP a track URL",
            ),
            (
                Refusal::UnsupportedTransport("multicast".into()),
                461,
                "Unsupported Transport: multicast",
            ),
            (
                Refusal::MediaUnplayable,
                500,
                "Internal Server Error: media cannot be played",
            ),
            (Refusal::MethodNotImplemented, 501, "Not Implemented"),
            (
                Refusal::PublishNotAllowed("/tv".into()),
                403,
                "Forbidden: /tv takes no publisher",
            ),
            (
                Refusal::PathBusy("/live/a".into()),
                455,
                "Method Not Valid In This State: /live/a already has a publisher",
            ),
            (
                Refusal::NotAnnounced("/live/a".into()),
                455,
                "Method Not Valid In This State: ANNOUNCE /live/a first",
            ),
            (
                Refusal::InvalidAnnouncement("malformed SDP".into()),
                400,
                "Bad Request: malformed SDP",
            ),
            (
                Refusal::UnsupportedAnnouncement("no playable track".into()),
                415,
                "Unsupported Media Type: no playable track",
            ),
            (
                Refusal::TooManyConnections,
                503,
                "Service Unavailable: too many connections from this address",
            ),
            (
                Refusal::VersionNotSupported,
                505,
                "RTSP Version Not Supported",
            ),
            (Refusal::OptionNotSupported, 551, "Option not supported"),
            (Refusal::Unauthorized(Vec::new()), 401, "Unauthorized"),
            (
                Refusal::NetworkNotAllowed("/cams".into()),
                403,
                "Forbidden: /cams is not open to this address",
            ),
            (
                Refusal::AuthenticationThrottled(30),
                503,
                "Service Unavailable: too many failed authentications",
            ),
        ];
        for (refusal, status, reason) in table {
            assert_eq!(u16::from(refusal.status()), status, "{refusal:?}");
            assert_eq!(refusal.to_string(), reason, "{refusal:?}");
            let response = refusal.response(Some("3"));
            assert_eq!(u16::from(response.status()), status);
            assert_eq!(response.reason_phrase(), reason);
        }
    }

    #[test]
    fn responses_echo_cseq_only_when_given_and_drop_control_characters() {
        let response = Refusal::InvalidRange("npt=1-\r\nX-Injected: 1".into()).response(None);
        assert_eq!(response.header(&headers::CSEQ), None);
        assert_eq!(
            response.header(&headers::SERVER).map(|v| v.as_str()),
            Some(SERVER_NAME)
        );
        assert_eq!(
            response.reason_phrase(),
            "Invalid Range: npt=1-X-Injected: 1"
        );
        let response = Refusal::SessionNotFound.response(Some("12"));
        assert_eq!(
            response.header(&headers::CSEQ).map(|v| v.as_str()),
            Some("12")
        );
    }

    #[test]
    fn challenges_go_one_per_header_line_and_throttling_says_when_to_retry() {
        let challenges = vec![
            "Digest realm=\"r\", nonce=\"n\", algorithm=SHA-256".to_string(),
            "Basic realm=\"r\"\r\nX-Injected: 1".to_string(),
        ];
        let mut bytes = Vec::new();
        Refusal::Unauthorized(challenges)
            .response(Some("2"))
            .write(&mut bytes)
            .unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("RTSP/1.0 401 Unauthorized\r\n"), "{text}");
        let lines: Vec<&str> = text
            .lines()
            .filter(|line| line.starts_with("WWW-Authenticate: "))
            .collect();
        assert_eq!(
            lines,
            [
                "WWW-Authenticate: Digest realm=\"r\", nonce=\"n\", algorithm=SHA-256",
                "WWW-Authenticate: Basic realm=\"r\"X-Injected: 1"
            ],
            "{text}"
        );
        let throttled = Refusal::AuthenticationThrottled(42).response(None);
        assert_eq!(
            throttled.header(&headers::RETRY_AFTER).map(|v| v.as_str()),
            Some("42")
        );
    }

    #[test]
    fn lower_layer_errors_become_their_kinds() {
        assert_eq!(
            Refusal::from(FramingError::TooLarge),
            Refusal::RequestTooLarge
        );
        assert_eq!(Refusal::from(FramingError::Malformed), Refusal::Unparseable);
        assert_eq!(
            Refusal::from(TransportError::Unsupported("x".into())),
            Refusal::UnsupportedTransport("x".into())
        );
        assert_eq!(
            Refusal::from(TransportError::Malformed("y".into())),
            Refusal::MalformedTransport("y".into())
        );
    }
}
