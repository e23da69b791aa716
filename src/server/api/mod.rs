//! The HTTP server of the operations API, the Prometheus metrics and the
//! status page, on its own port (`--api-addr`), over HTTPS with the RTSPS
//! certificate when asked (`--api-tls`).
//!
//! Reading (paths, sessions, metrics, the page) copies the snapshots the
//! session tasks, live paths and publishers keep: it never takes the RTSP
//! handler's lock nor a viewer's, so polling it costs the send path
//! nothing but those copies. Kicking a session is control and goes through
//! the handler like a TEARDOWN.

mod https;
mod rates;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::serve::IncomingStream;
use axum::{Json, Router};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::{lock, session_task, Shared};
use crate::config::AccessRule;
use crate::metrics::{self, MetricsInput};
use crate::rtsp::auth::{Attempt, Authenticator, Denial};
use crate::stats::{SessionStats, TrackStats};
pub(super) use https::acceptor as tls_acceptor;
use https::TlsListener;
use rates::Rates;

/// What reloading the configuration does, given to the API by whoever
/// owns the configuration: `Ok` with a sentence saying what changed, or
/// `Err` with why the file was refused (the running configuration stays).
pub type ReloadHook = Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

/// The status page: HTML, CSS and its script in one file, no build step.
const STATUS_PAGE: &str = include_str!("status.html");

/// The API's OpenAPI 3 description.
const OPENAPI: &str = include_str!("openapi.json");

/// How often bitrates are sampled.
const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// How often a folder's files are listed again for `/api/v1/paths`.
const FILE_LIST_INTERVAL: Duration = Duration::from_secs(10);

/// What a source at a path is, as the API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum SourceKind {
    File,
    Folder,
    Channel,
    Publisher,
    Relay,
    Camera,
}

/// The API server's state.
struct Api {
    shared: Arc<Shared>,
    /// Checks the credentials of a rule with users (Basic and Digest, as
    /// on RTSP), with its own nonces and failure counts.
    authenticator: Mutex<Authenticator>,
    rates: Mutex<Rates>,
    /// The on-demand paths and what serves each, listed again every
    /// [`FILE_LIST_INTERVAL`].
    files: Mutex<Vec<(String, SourceKind)>>,
}

/// Binds the API's port: done before the server is reported started, so a
/// port in use is an error at start-up.
pub(super) async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    use anyhow::Context;
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the HTTP API to {addr}"))
}

/// The address of an API client, for its access rule. axum knows the
/// peer's `SocketAddr` of its own listeners only, so the API names it
/// with a type of its own for both of its listeners.
#[derive(Debug, Clone, Copy)]
struct Peer(SocketAddr);

impl Connected<IncomingStream<'_, TcpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

/// Serves the API on `listener` until aborted, with its bitrate sampler:
/// HTTPS when `tls` is given, else plain HTTP.
pub(super) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    access: AccessRule,
) {
    let local = listener.local_addr().ok();
    if access.is_open() && local.is_some_and(|addr| !addr.ip().is_loopback()) {
        tracing::warn!(
            addr = ?local,
            "the HTTP API is open to every address that reaches it, and can end sessions"
        );
    }
    let auth = lock(&shared.config).auth.clone();
    let api = Arc::new(Api {
        authenticator: Mutex::new(Authenticator::new(auth, &rand::random())),
        shared,
        rates: Mutex::new(Rates::default()),
        files: Mutex::new(Vec::new()),
    });
    tokio::spawn(sample_loop(Arc::downgrade(&api)));
    let guarded = Router::new()
        .route("/", get(status_page))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi))
        .route("/api/v1/paths", get(paths))
        .route("/api/v1/sessions", get(sessions))
        .route("/api/v1/sessions/{id}", delete(kick))
        .route("/api/v1/reload", post(reload))
        .layer(middleware::from_fn_with_state(api.clone(), admit));
    // The container's health check needs no credentials and learns
    // nothing but that the server answers.
    let router = guarded
        .route("/health", get(|| async { "ok\n" }))
        .with_state(api);
    let service = router.into_make_service_with_connect_info::<Peer>();
    let served = match tls {
        None => axum::serve(listener, service).await,
        Some(acceptor) => axum::serve(TlsListener::new(listener, acceptor), service).await,
    };
    if let Err(error) = served {
        tracing::error!(%error, "the HTTP API stopped");
    }
}

/// Samples bitrates every second while the API runs, and lists the
/// catalogue's files now and then (a folder walk, on a blocking thread).
async fn sample_loop(api: std::sync::Weak<Api>) {
    let mut interval = tokio::time::interval(SAMPLE_INTERVAL);
    let mut next_file_list = Instant::now();
    loop {
        interval.tick().await;
        let Some(api) = api.upgrade() else { return };
        let now = Instant::now();
        if now >= next_file_list {
            next_file_list = now + FILE_LIST_INTERVAL;
            let media = api.shared.media();
            if let Ok(files) = tokio::task::spawn_blocking(move || media.describe_sources()).await {
                *lock(&api.files) = files
                    .into_iter()
                    .map(|(path, folder)| {
                        let kind = if folder {
                            SourceKind::Folder
                        } else {
                            SourceKind::File
                        };
                        // As clients request it, so a file's viewers
                        // count on its own entry.
                        let url_path = percent_encoding::utf8_percent_encode(
                            &path,
                            crate::rtsp::url::PATH_ESCAPES,
                        );
                        (url_path.to_string(), kind)
                    })
                    .collect();
            }
        }
        let sessions = api.shared.viewers.stats();
        let live = api.shared.live.stats();
        lock(&api.rates).sample(now, &sessions, &live);
    }
}

/// Admits a request by the API's access rule, as the last reload left
/// it: a client outside its networks gets 403, and where it lists users,
/// a client must authenticate as one of them (401 with challenges).
async fn admit(
    State(api): State<Arc<Api>>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    request: Request,
    next: Next,
) -> Response {
    // The rule as the last reload left it.
    let access = {
        let config = lock(&api.shared.config);
        config.api.as_ref().map(|api| api.access.clone())
    }
    .unwrap_or_default();
    if !access.admits_network(peer.ip()) {
        tracing::info!(%peer, path = %request.uri().path(), "API request from a network not allowed; refused");
        return (
            StatusCode::FORBIDDEN,
            format!(
                "{} is not in the networks allowed to use this API\n",
                peer.ip()
            ),
        )
            .into_response();
    }
    if !access.users.is_empty() {
        if let Some(refusal) = authentication_refusal(&api, &access, peer, &request) {
            return refusal;
        }
    }
    next.run(request).await
}

/// Checks the request's credentials against `access`'s users with the
/// server's realm and schemes (RFC 7617 Basic, RFC 7616 Digest): `None`
/// when one of them authenticated, else the answer to send: 401 with the
/// challenges, or 503 with `Retry-After` for an address past its failures.
fn authentication_refusal(
    api: &Api,
    access: &AccessRule,
    peer: SocketAddr,
    request: &Request,
) -> Option<Response> {
    let auth = lock(&api.shared.config).auth.clone();
    // Digest's `uri` is the request target; the host part is only there
    // to make a URL of it.
    let Ok(url) = url::Url::parse("http://api.invalid/")
        .and_then(|base| base.join(&request.uri().to_string()))
    else {
        return Some(StatusCode::BAD_REQUEST.into_response());
    };
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let attempt = Attempt {
        method: request.method().as_str(),
        url: &url,
        authorization,
        path: request.uri().path(),
        client: peer.ip(),
        now: Instant::now(),
    };
    let outcome = {
        let mut authenticator = lock(&api.authenticator);
        authenticator.set_config(auth);
        authenticator.authenticate(&attempt, &access.users)
    };
    match outcome {
        Ok(_) => None,
        Err(Denial::Challenge(challenges)) => {
            let mut answer = (
                StatusCode::UNAUTHORIZED,
                "this API needs a user of its access rule\n",
            )
                .into_response();
            for challenge in challenges {
                if let Ok(value) = HeaderValue::from_str(&challenge) {
                    answer.headers_mut().append(header::WWW_AUTHENTICATE, value);
                }
            }
            Some(answer)
        }
        Err(Denial::Throttled(wait)) => {
            let mut answer = (
                StatusCode::SERVICE_UNAVAILABLE,
                "too many failed attempts from this address\n",
            )
                .into_response();
            answer.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(wait.as_secs().max(1)),
            );
            Some(answer)
        }
    }
}

async fn status_page() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        STATUS_PAGE,
    )
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

async fn metrics_text(State(api): State<Arc<Api>>) -> impl IntoResponse {
    let sessions = api.shared.viewers.snapshot();
    let requests = api.shared.request_counts();
    let live = api.shared.live.stats();
    let publishers = api.shared.publishers.stats();
    let text = metrics::render(&MetricsInput {
        sessions: &sessions,
        requests: &requests,
        live: &live,
        publishers: &publishers,
    });
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
}

/// One path in `GET /api/v1/paths`.
#[derive(Debug, Serialize)]
struct PathView {
    path: String,
    source: SourceKind,
    /// Codec of each track: a live path's; a file's once someone plays it.
    codecs: Vec<&'static str>,
    /// A live path's incoming bitrate; a file's mean bitrate sent to each
    /// of its playing viewers. Over the last seconds; `null` when unknown.
    bitrate_bps: Option<f64>,
    /// The last minutes of `bitrate_bps`, one value a second, oldest
    /// first (`null` where it was unknown).
    bitrate_history_bps: Vec<Option<f64>>,
    /// The publisher's address, for a path fed by an RTSP publisher.
    publisher: Option<String>,
    /// The publisher's session id (to end it with DELETE).
    publisher_session: Option<String>,
    /// Sessions playing it (a multicast group's sender counts once).
    viewers: usize,
}

async fn paths(State(api): State<Arc<Api>>) -> Json<Vec<PathView>> {
    let sessions = api.shared.viewers.stats();
    let live = api.shared.live.stats();
    let publishers = api.shared.publishers.stats();
    let files = lock(&api.files).clone();
    let sources = configured_sources(&api.shared);
    let mut views: std::collections::BTreeMap<String, PathView> = Default::default();
    for (path, kind) in &files {
        views
            .entry(path.clone())
            .or_insert_with(|| new_view(path, *kind));
    }
    for (path, kind) in &sources {
        views
            .entry(path.clone())
            .or_insert_with(|| new_view(path, *kind));
    }
    for path in &live {
        let kind = sources
            .get(&path.mount)
            .copied()
            .unwrap_or(SourceKind::Publisher);
        let entry = views
            .entry(path.mount.clone())
            .or_insert_with(|| new_view(&path.mount, kind));
        entry.source = kind;
        entry.codecs = path.codecs.clone();
    }
    for publisher in &publishers {
        if let Some(entry) = views.get_mut(&publisher.mount) {
            entry.publisher = Some(publisher.client.to_string());
            entry.publisher_session = Some(publisher.session_id.clone());
        }
    }
    for session in &sessions {
        let entry = views
            .entry(session.path.clone())
            .or_insert_with(|| new_view(&session.path, SourceKind::File));
        entry.viewers += 1;
        if entry.codecs.is_empty() {
            entry.codecs = session.codecs.clone();
        }
    }
    let rates = lock(&api.rates);
    for entry in views.values_mut() {
        entry.bitrate_bps = rates.path_bps(&entry.path);
        entry.bitrate_history_bps = rates.path_history(&entry.path);
    }
    drop(rates);
    Json(views.into_values().collect())
}

/// The live sources configured now (channels and relays, as the last
/// reload left them; cameras), by path: any other live path is a
/// publisher's.
fn configured_sources(shared: &Shared) -> HashMap<String, SourceKind> {
    let config = lock(&shared.config);
    config
        .channels
        .iter()
        .map(|c| (c.mount.clone(), SourceKind::Channel))
        .chain(
            config
                .relays
                .iter()
                .map(|r| (r.mount.clone(), SourceKind::Relay)),
        )
        .chain(
            shared
                .camera_mounts
                .iter()
                .map(|mount| (mount.clone(), SourceKind::Camera)),
        )
        .collect()
}

fn new_view(path: &str, source: SourceKind) -> PathView {
    PathView {
        path: path.to_string(),
        source,
        codecs: Vec::new(),
        bitrate_bps: None,
        bitrate_history_bps: Vec::new(),
        publisher: None,
        publisher_session: None,
        viewers: 0,
    }
}

/// One track of a session in `GET /api/v1/sessions`.
#[derive(Debug, Serialize)]
struct TrackView {
    /// Its index in the media (the SDP's track order).
    track: usize,
    codec: &'static str,
    packets_sent: u64,
    /// RTP payload bytes.
    bytes_sent: u64,
    /// The latest receiver report's fraction lost, 0–1.
    fraction_lost: f32,
    cumulative_lost: i32,
    jitter_ms: f64,
    rtt_ms: Option<f64>,
    units_skipped: u64,
    /// Receiver reports received.
    reports: u64,
}

/// One session in `GET /api/v1/sessions`.
#[derive(Debug, Serialize)]
struct SessionView {
    id: String,
    client: String,
    transport: &'static str,
    path: String,
    state: &'static str,
    /// Bitrate sent over the last seconds; `null` until known.
    bitrate_bps: Option<f64>,
    tracks: Vec<TrackView>,
}

fn track_view((index, stats): &(usize, TrackStats), codec: &'static str) -> TrackView {
    TrackView {
        track: *index,
        codec,
        packets_sent: stats.packets_sent,
        bytes_sent: stats.bytes_sent,
        fraction_lost: stats.fraction_lost,
        cumulative_lost: stats.cumulative_lost,
        jitter_ms: stats.jitter_ms,
        rtt_ms: stats.round_trip.map(|rtt| rtt.as_secs_f64() * 1000.0),
        units_skipped: stats.units_skipped,
        reports: stats.reports,
    }
}

fn session_view(session: &SessionStats, rates: &Rates) -> SessionView {
    SessionView {
        id: session.session_id.clone(),
        client: session.client.to_string(),
        transport: session.transport.as_str(),
        path: session.path.clone(),
        state: session.state.as_str(),
        bitrate_bps: rates.session_bps(&session.session_id),
        tracks: session
            .tracks
            .iter()
            .zip(&session.codecs)
            .map(|(track, codec)| track_view(track, codec))
            .collect(),
    }
}

async fn sessions(State(api): State<Arc<Api>>) -> Json<Vec<SessionView>> {
    let sessions = api.shared.viewers.stats();
    let rates = lock(&api.rates);
    Json(sessions.iter().map(|s| session_view(s, &rates)).collect())
}

/// Ends a session: a viewer gets RTCP BYE and its task ends; a publisher's
/// path ends and its connection closes.
async fn kick(State(api): State<Arc<Api>>, Path(id): Path<String>) -> Response {
    let shared = &api.shared;
    let actions = shared.with_handler(|handler, viewers| handler.end_session(&id, viewers));
    match actions {
        Some(actions) => {
            session_task::run_actions(shared, actions, None);
            StatusCode::NO_CONTENT.into_response()
        }
        None => (StatusCode::NOT_FOUND, format!("no session {id}\n")).into_response(),
    }
}

/// The answer of `POST /api/v1/reload`.
#[derive(Debug, Serialize)]
struct ReloadAnswer {
    ok: bool,
    message: String,
}

async fn reload(State(api): State<Arc<Api>>) -> Response {
    let hook = api.shared.reload_hook();
    let Some(hook) = hook else {
        return (
            StatusCode::NOT_IMPLEMENTED,
            Json(ReloadAnswer {
                ok: false,
                message: "this server has no configuration file to reload".into(),
            }),
        )
            .into_response();
    };
    // Reading and checking a file: off the runtime's threads.
    match tokio::task::spawn_blocking(move || hook()).await {
        Ok(Ok(message)) => Json(ReloadAnswer { ok: true, message }).into_response(),
        Ok(Err(message)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(ReloadAnswer { ok: false, message }),
        )
            .into_response(),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(ReloadAnswer {
                ok: false,
                message: format!("the reload failed: {error}"),
            }),
        )
            .into_response(),
    }
}
