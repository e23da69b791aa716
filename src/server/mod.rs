//! The tokio layer: the RTSP and RTSPS listeners, one task per connection,
//! one task per playing session, the shared UDP port pair and the session reaper.
//! It moves bytes between sockets and the sans-IO core and decides nothing.
//!
//! The one place clocks, files, sockets, locks and OS randomness are used
//! (see `clippy.toml`, which keeps them out of everything else).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod api;
pub mod camera;
pub mod catalog;
mod channel_task;
mod connection;
mod live_hub;
mod log_budget;
pub mod media_file;
mod publisher_table;
mod relay_task;
pub mod reload;
mod session_task;
pub mod tls;
pub mod udp;
#[cfg(feature = "v4l")]
pub mod v4l2;
mod viewer_table;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::config::{Config, Limit};
use crate::media::mp4::Mp4Media;
use crate::rtsp::handler::Viewers;
use crate::rtsp::handler::{HandlerSettings, RtcpSource, RtspHandler};
use crate::rtsp::refusal::Refusal;
use crate::rtsp::session::ConnectionId;
use crate::stats::{LivePathStats, PublisherStats, RequestCount, SessionStats};
use crate::viewer::Viewer;
pub use api::ReloadHook;
use catalog::{Catalog, MediaMounts};
use connection::Outgoing;
use live_hub::LiveHub;
use publisher_table::{PacketSource, PublisherTable};
use relay_task::RelaySet;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use udp::UdpPair;
use viewer_table::ViewerTable;

/// State shared by all tasks.
#[derive(Debug)]
struct Shared {
    handler: Mutex<RtspHandler>,
    viewers: ViewerTable,
    live: Arc<LiveHub>,
    /// Paths pulled from upstream servers, started by viewers' requests.
    relays: RelaySet,
    /// Files and folders served on demand; replaced whole on reload.
    media: Mutex<Arc<MediaMounts>>,
    publishers: Arc<PublisherTable>,
    udp: Arc<UdpPair>,
    /// Largest RTP packet sent, in bytes.
    mtu: usize,
    /// Publish paths with no publisher yet: how long a viewer's request
    /// waits for one.
    publisher_wait: Duration,
    /// Paths that take publishers, and those configured sources feed.
    routes: Mutex<Routes>,
    wakers: Mutex<HashMap<String, Arc<Notify>>>,
    connections_per_ip: Mutex<HashMap<std::net::IpAddr, usize>>,
    /// Connections one client address may hold at once (CVE-2021-39283),
    /// RTSP and RTSPS together.
    max_connections_per_address: Limit,
    /// Every open connection's writer, so shutdown can close them after
    /// what they have queued.
    writers: Mutex<HashMap<ConnectionId, mpsc::WeakSender<Outgoing>>>,
    /// The cameras' mounts, fixed until a restart.
    camera_mounts: Vec<String>,
    /// The task feeding each channel, relay and camera path, by mount.
    sources: Mutex<HashMap<String, JoinHandle<()>>>,
    /// The configuration being served, settings that need a restart as
    /// started.
    config: Mutex<Config>,
    /// The last connection id given, over both listeners: sessions are
    /// owned by connection id, so ids must not repeat across them.
    last_connection: AtomicU64,
    /// Log lines of events a client can provoke at will: unparseable
    /// input, refused connections, failed TLS handshakes.
    noisy_logs: log_budget::LogBudget,
    /// TLS handshakes in progress per client address.
    handshakes_per_ip: Mutex<HashMap<std::net::IpAddr, usize>>,
    /// RTSP requests answered, by method label and status.
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    /// What `POST /api/v1/reload` calls; `None` answers 501.
    reload: ReloadSlot,
}

/// The reload hook, settable after start.
#[derive(Default)]
struct ReloadSlot(Mutex<Option<ReloadHook>>);

impl std::fmt::Debug for ReloadSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = lock(&self.0).is_some();
        f.debug_struct("ReloadSlot").field("set", &set).finish()
    }
}

/// Which paths take publishers, and which configured sources feed.
#[derive(Debug, Clone, Default)]
struct Routes {
    publish_paths: Vec<String>,
    source_paths: Vec<String>,
}

impl Routes {
    /// Those of `config`, whose cameras (fixed until a restart) feed
    /// `camera_mounts`.
    fn of(config: &Config, camera_mounts: &[String]) -> Routes {
        Routes {
            publish_paths: config.publish_paths.clone(),
            source_paths: config
                .channels
                .iter()
                .map(|c| c.mount.clone())
                .chain(config.relays.iter().map(|r| r.mount.clone()))
                .chain(camera_mounts.iter().cloned())
                .collect(),
        }
    }
}

/// Poison-tolerant lock: a panic elsewhere cannot leave these maps
/// half-updated.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// Runs `f` on the RTSP handler, which reaches the viewers through
    /// the viewer table. The handler's lock is held only while the core
    /// computes: no file, socket or send happens under it.
    fn with_handler<R>(&self, f: impl FnOnce(&mut RtspHandler, &mut HandlerViewers<'_>) -> R) -> R {
        let mut handler = self.handler.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut handler, &mut HandlerViewers(self))
    }

    /// The session tasks' wake-up handles; a poisoned lock still yields
    /// the map, which a panic cannot leave half-updated.
    fn wakers(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Notify>>> {
        self.wakers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The media served on demand now.
    fn media(&self) -> Arc<MediaMounts> {
        lock(&self.media).clone()
    }

    /// Whether publishers may take `mount` now.
    fn publishable(&self, mount: &str) -> bool {
        let routes = lock(&self.routes);
        crate::rtsp::handler::publishable(mount, &routes.publish_paths, &routes.source_paths)
    }

    /// Counts one answered RTSP request for the metrics.
    fn count_request(&self, method: &'static str, status: u16) {
        let mut requests = lock(&self.requests);
        *requests.entry((method, status)).or_insert(0) += 1;
    }

    /// The RTSP requests answered so far.
    fn request_counts(&self) -> Vec<RequestCount> {
        let requests = lock(&self.requests);
        requests
            .iter()
            .map(|(&(method, status), &count)| RequestCount {
                method,
                status,
                count,
            })
            .collect()
    }

    fn reload_hook(&self) -> Option<ReloadHook> {
        lock(&self.reload.0).clone()
    }

    fn wake(&self, session_id: &str) {
        if let Some(notify) = self.wakers().get(session_id) {
            notify.notify_one();
        }
    }
}

/// The handler's access to the viewers (and, to join them, the live
/// paths) for one call.
struct HandlerViewers<'a>(&'a Shared);

impl Viewers for HandlerViewers<'_> {
    fn insert(&mut self, session_id: &str, viewer: Viewer) {
        self.0.viewers.insert(session_id, viewer);
    }

    fn with<R>(&mut self, session_id: &str, command: impl FnOnce(&mut Viewer) -> R) -> Option<R> {
        let viewer = self.0.viewers.get(session_id)?;
        let mut viewer = viewer_table::lock(&viewer);
        Some(command(&mut viewer))
    }

    fn join_live(&mut self, session_id: &str) -> bool {
        let Some(viewer) = self.0.viewers.get(session_id) else {
            return false;
        };
        let Some(mount) = viewer_table::lock(&viewer).live_path().map(str::to_string) else {
            return false;
        };
        let (Some(path), Some(notify)) = (
            self.0.live.get(&mount),
            self.0.wakers().get(session_id).cloned(),
        ) else {
            return false;
        };
        path.join(session_id, &viewer, notify)
    }

    fn last_heard(&mut self, session_id: &str) -> Option<std::time::Instant> {
        match self.0.viewers.get(session_id) {
            Some(viewer) => viewer_table::lock(&viewer).last_heard(),
            None => self.0.publishers.last_heard(session_id),
        }
    }
}

/// A server started by [`start`].
#[derive(Debug)]
pub struct RunningServer {
    /// Where RTSP is listening.
    pub rtsp_addr: SocketAddr,
    /// Where RTSPS is listening, when TLS is configured.
    pub rtsps_addr: Option<SocketAddr>,
    /// The server RTP port (RTCP is the next one).
    pub rtp_port: u16,
    /// Where the HTTP API is listening, when it is on.
    pub api_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningServer {
    /// Stops gracefully within [`SHUTDOWN_WITHIN`]: see
    /// [`shutdown_within`](Self::shutdown_within).
    pub fn shutdown(self) -> JoinHandle<bool> {
        self.shutdown_within(SHUTDOWN_WITHIN)
    }

    /// Stops gracefully within `within`. At once: no new connections;
    /// every session torn down, each viewer sending its BYE (RFC 3550
    /// §6.6) and each publisher's connection closed; sources stopped.
    /// Then, in the task returned: waits for the viewers' BYE to go out,
    /// gives clients a moment to TEARDOWN and hang up (their requests are
    /// still answered), and closes the remaining connections once what
    /// they have queued (responses, interleaved BYE) is written. The task
    /// yields whether all of that finished in time.
    pub fn shutdown_within(self, within: Duration) -> JoinHandle<bool> {
        let deadline = tokio::time::Instant::now() + within;
        for task in &self.tasks {
            task.abort();
        }
        let actions = self
            .shared
            .with_handler(|handler, viewers| handler.teardown_all(viewers));
        tracing::info!(sessions = actions.len(), "ending every session");
        session_task::run_actions(&self.shared, actions, None);
        for (_, task) in lock(&self.shared.sources).drain() {
            task.abort();
        }
        tokio::spawn(finish_shutdown(self.shared, deadline))
    }

    /// The URL paths of files served on demand, for the start-up log
    /// (folders walked, bounded).
    pub fn media_mounts(&self) -> Vec<String> {
        self.shared.media().describe_mounts()
    }

    /// Gives the HTTP API's `POST /api/v1/reload` what to call; without
    /// one it answers 501 Not Implemented.
    pub fn set_reload(&self, hook: ReloadHook) {
        *lock(&self.shared.reload.0) = Some(hook);
    }

    /// The latest stats every session task published (at most a second
    /// old), read without the RTSP handler's or any viewer's lock.
    pub fn stats(&self) -> Vec<SessionStats> {
        self.shared.viewers.stats()
    }

    /// Every live path's counters, ordered by mount.
    pub fn live_stats(&self) -> Vec<LivePathStats> {
        self.shared.live.stats()
    }

    /// Every publisher's counters (received, lost, late, foreign SSRC…),
    /// ordered by session id.
    pub fn publisher_stats(&self) -> Vec<PublisherStats> {
        self.shared.publishers.stats()
    }

    /// Datagrams that reached the RTP port from no publisher (strangers,
    /// viewers' NAT-opening packets), dropped.
    pub fn stray_datagrams(&self) -> u64 {
        self.shared.publishers.strangers()
    }
}

/// The second half of [`RunningServer::shutdown_within`]: waits for the
/// sessions' BYE and closes the connections.
async fn finish_shutdown(shared: Arc<Shared>, deadline: tokio::time::Instant) -> bool {
    let sessions_ended = wait_until(deadline, || shared.wakers().is_empty()).await;
    // Clients told BYE usually send TEARDOWN and close on their own.
    let grace = deadline.min(tokio::time::Instant::now() + SHUTDOWN_GRACE);
    wait_until(grace, || lock(&shared.writers).is_empty()).await;
    let writers: Vec<_> = lock(&shared.writers)
        .values()
        .filter_map(mpsc::WeakSender::upgrade)
        .collect();
    for writer in writers {
        let _ = tokio::time::timeout_at(deadline, writer.send(Outgoing::Close)).await;
    }
    let closed = wait_until(deadline, || lock(&shared.writers).is_empty()).await;
    sessions_ended && closed
}

/// How long [`RunningServer::shutdown`] may take: containers and systemd
/// kill a process not long after SIGTERM.
pub const SHUTDOWN_WITHIN: Duration = Duration::from_secs(5);

/// How long a stopping server waits for clients to hang up by themselves
/// before closing their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

/// Waits until `done` holds or `deadline` passes; whether it held.
async fn wait_until(deadline: tokio::time::Instant, done: impl Fn() -> bool) -> bool {
    while !done() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// Gives back a client address's connection slot when its connection task
/// ends, however it ends.
struct ConnectionSlot {
    shared: Arc<Shared>,
    ip: std::net::IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self
            .shared
            .connections_per_ip
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Binds the sockets and starts serving `catalog` in the background.
pub async fn start(config: &Config, catalog: Catalog) -> anyhow::Result<RunningServer> {
    start_with_cameras(config, catalog, Vec::new()).await
}

/// Like [`start`], also streaming `cameras`, each at its mount.
///
/// Errors: a port that cannot be bound, a channel's file that cannot be
/// opened, a TLS certificate or key that cannot be used (or the API's TLS
/// asked for without one), or a mount given twice (channels, relays and
/// cameras together). A camera that cannot be opened is no error: its
/// task keeps trying.
pub async fn start_with_cameras(
    config: &Config,
    catalog: Catalog,
    cameras: Vec<camera::Camera>,
) -> anyhow::Result<RunningServer> {
    crate::rtsp::access::check(&config.access, &config.auth).map_err(anyhow::Error::msg)?;
    let server_tls = match &config.tls {
        Some(tls) => Some(tls::load_server_config(&tls.certificate, &tls.key)?),
        None => None,
    };
    let api_tls = match (&config.api, &server_tls) {
        (Some(api), Some(server_tls)) if api.tls => Some(api::tls_acceptor(server_tls)),
        (Some(api), None) if api.tls => {
            anyhow::bail!(
                "the HTTP API's TLS needs the RTSPS certificate and key (tls_cert, tls_key)"
            )
        }
        _ => None,
    };
    // Bound first: once RTSP accepts connections, the API does too.
    let api_listener = match &config.api {
        Some(api) => Some(api::bind(api.addr).await?),
        None => None,
    };
    let api_addr = api_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()?;
    let listener = TcpListener::bind((config.bind, config.rtsp_port))
        .await
        .with_context(|| format!("binding RTSP port {}:{}", config.bind, config.rtsp_port))?;
    let rtsps = match (&config.tls, server_tls) {
        (Some(tls), Some(server_config)) => {
            let listener = TcpListener::bind((config.bind, tls.rtsps_port))
                .await
                .with_context(|| {
                    format!("binding RTSPS port {}:{}", config.bind, tls.rtsps_port)
                })?;
            Some((listener, TlsAcceptor::from(Arc::new(server_config))))
        }
        _ => None,
    };
    let udp = UdpPair::bind(config.bind, config.rtp_port)
        .await
        .with_context(|| {
            format!(
                "binding RTP/RTCP ports {}:{}-{}",
                config.bind,
                config.rtp_port,
                config.rtp_port.saturating_add(1)
            )
        })?;
    let rtp_port = udp.rtp_port()?;
    if let Some(multicast) = config.multicast {
        for socket in [&udp.rtp, &udp.rtcp] {
            socket2::SockRef::from(socket)
                .set_multicast_ttl_v4(u32::from(multicast.ttl))
                .context("setting the multicast TTL")?;
        }
    }
    let camera_mounts: Vec<String> = cameras.iter().map(|c| c.mount.clone()).collect();
    let routes = Routes::of(config, &camera_mounts);
    let settings = HandlerSettings {
        server_rtp_port: rtp_port,
        mtu: config.mtu,
        loop_playback: config.loop_playback,
        session_timeout: Duration::from_secs(config.session_timeout_secs),
        max_sessions_per_connection: config.max_sessions_per_connection,
        max_sessions_per_address: config.max_sessions_per_address,
        max_sessions: config.max_sessions,
        rng_seed: rand::random(),
        publish_paths: routes.publish_paths.clone(),
        publish_takeover: config.publish_takeover,
        source_paths: routes.source_paths.clone(),
        multicast: config.multicast,
        access: config.access.clone(),
        auth: config.auth.clone(),
    };
    let channels = open_channels(&config.channels)?;
    let mut mounts = std::collections::HashSet::new();
    for mount in config
        .channels
        .iter()
        .map(|c| &c.mount)
        .chain(config.relays.iter().map(|r| &r.mount))
        .chain(cameras.iter().map(|c| &c.mount))
    {
        anyhow::ensure!(
            mounts.insert(mount),
            "{mount} is given twice (as a channel, a relay or a camera)"
        );
    }
    let media = media_mounts(catalog, &config.media_paths)?;
    let udp = Arc::new(udp);
    let shared = Arc::new(Shared {
        handler: Mutex::new(RtspHandler::new(settings)),
        viewers: ViewerTable::default(),
        live: Arc::new(LiveHub::default()),
        relays: RelaySet::default(),
        media: Mutex::new(Arc::new(media)),
        publishers: Arc::new(PublisherTable::new(udp.clone())),
        udp,
        mtu: config.mtu,
        publisher_wait: config.publisher_wait,
        routes: Mutex::new(routes),
        wakers: Mutex::new(HashMap::new()),
        connections_per_ip: Mutex::new(HashMap::new()),
        max_connections_per_address: config.max_connections_per_address,
        writers: Mutex::new(HashMap::new()),
        sources: Mutex::new(HashMap::new()),
        camera_mounts,
        config: Mutex::new(config.clone()),
        last_connection: AtomicU64::new(0),
        noisy_logs: log_budget::LogBudget::default(),
        handshakes_per_ip: Mutex::new(HashMap::new()),
        requests: Mutex::new(BTreeMap::new()),
        reload: ReloadSlot::default(),
    });
    let rtsp_addr = listener.local_addr()?;
    let mut tasks = vec![tokio::spawn(accept_loop(listener, shared.clone(), None))];
    let mut rtsps_addr = None;
    if let Some((listener, acceptor)) = rtsps {
        rtsps_addr = Some(listener.local_addr()?);
        tasks.push(tokio::spawn(accept_loop(
            listener,
            shared.clone(),
            Some(acceptor),
        )));
    }
    tasks.extend([
        tokio::spawn(rtcp_receive_loop(shared.clone())),
        tokio::spawn(rtp_receive_loop(shared.clone())),
        tokio::spawn(reaper_loop(shared.clone())),
    ]);
    if let (Some(listener), Some(api)) = (api_listener, &config.api) {
        tasks.push(tokio::spawn(api::serve(
            listener,
            api_tls,
            shared.clone(),
            api.access.clone(),
        )));
    }
    for (mount, media) in channels {
        start_channel(&shared, mount, media);
    }
    for camera in cameras {
        let mount = camera.mount.clone();
        let task = tokio::spawn(camera::run(camera, shared.live.clone(), config.mtu));
        lock(&shared.sources).insert(mount, task);
    }
    for relay in &config.relays {
        start_relay(&shared, relay);
    }
    Ok(RunningServer {
        rtsp_addr,
        rtsps_addr,
        rtp_port,
        api_addr,
        shared,
        tasks,
    })
}

/// Opens every channel's file.
///
/// Errors: a file that cannot be opened or parsed, naming the channel.
fn open_channels(
    channels: &[crate::config::ChannelConfig],
) -> anyhow::Result<Vec<(String, Arc<Mp4Media>)>> {
    channels
        .iter()
        .map(|channel| {
            let media = media_file::open_mp4(&channel.file).with_context(|| {
                format!(
                    "opening {} for channel {}",
                    channel.file.display(),
                    channel.mount
                )
            })?;
            Ok((channel.mount.clone(), media))
        })
        .collect()
}

/// `root` at `/` and each configured file or folder at its path.
///
/// Errors: a file or folder that cannot be opened (a broken file).
fn media_mounts(
    root: Catalog,
    paths: &[crate::config::MediaPathConfig],
) -> anyhow::Result<MediaMounts> {
    let mut catalogs = Vec::new();
    for path in paths {
        let catalog = Catalog::from_path(&path.path)
            .with_context(|| format!("opening {} for {}", path.path.display(), path.mount))?;
        catalogs.push((path.mount.clone(), catalog));
    }
    Ok(MediaMounts::new(root, catalogs))
}

/// Starts playing a channel at `mount`.
fn start_channel(shared: &Arc<Shared>, mount: String, media: Arc<Mp4Media>) {
    let task = tokio::spawn(channel_task::run(
        shared.live.clone(),
        mount.clone(),
        media,
        shared.mtu,
    ));
    lock(&shared.sources).insert(mount, task);
}

/// Starts a relay's task at its mount.
fn start_relay(shared: &Arc<Shared>, config: &crate::config::RelayConfig) {
    let relay = shared.relays.insert(config);
    let task = tokio::spawn(relay_task::run(relay, shared.live.clone(), shared.mtu));
    lock(&shared.sources).insert(config.mount.clone(), task);
}

/// Stops the source at `mount` (a channel or a relay removed from the
/// configuration): its task ends and its live path with it, any viewer
/// left getting BYE.
fn stop_source(shared: &Shared, mount: &str) {
    if let Some(task) = lock(&shared.sources).remove(mount) {
        task.abort();
    }
    shared.relays.remove(mount);
    shared.live.remove_mount(mount);
}

/// Accepts connections on one listener: plain RTSP, or RTSPS when `tls`
/// is given, each served by a task of its own within the per-address
/// connection limit.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, tls: Option<TlsAcceptor>) {
    let handshakes = Arc::new(Semaphore::new(tls::MAX_HANDSHAKES));
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        {
            let mut counts = shared
                .connections_per_ip
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let count = counts.entry(peer.ip()).or_insert(0);
            if !shared.max_connections_per_address.admits_one_more(*count) {
                if let Some(unlogged) = shared.noisy_logs.admit(std::time::Instant::now()) {
                    tracing::warn!(
                        %peer,
                        limit = %shared.max_connections_per_address,
                        unlogged,
                        "too many connections from this address (--max-connections-per-address); refusing"
                    );
                }
                // A TLS client could not read a plain answer: it is just
                // closed.
                if tls.is_none() {
                    tokio::spawn(refuse_connection(socket));
                }
                continue;
            }
            *count += 1;
        }
        let slot = ConnectionSlot {
            shared: shared.clone(),
            ip: peer.ip(),
        };
        let id = shared.last_connection.fetch_add(1, Ordering::Relaxed) + 1;
        let Some(local) = connection::prepare(&socket, peer) else {
            continue;
        };
        let shared = shared.clone();
        match &tls {
            None => {
                tokio::spawn(async move {
                    connection::serve(shared, socket.into_split(), peer, local, id, false).await;
                    drop(slot);
                });
            }
            Some(acceptor) => {
                let Some(own) = HandshakeSlot::take(&shared, peer.ip()) else {
                    if let Some(unlogged) = shared.noisy_logs.admit(std::time::Instant::now()) {
                        tracing::warn!(
                            %peer,
                            limit = tls::MAX_HANDSHAKES_PER_ADDRESS,
                            unlogged,
                            "too many TLS handshakes in progress from this address; closing"
                        );
                    }
                    continue;
                };
                let Ok(permit) = handshakes.clone().try_acquire_owned() else {
                    if let Some(unlogged) = shared.noisy_logs.admit(std::time::Instant::now()) {
                        tracing::warn!(
                            %peer,
                            limit = tls::MAX_HANDSHAKES,
                            unlogged,
                            "too many TLS handshakes in progress; closing"
                        );
                    }
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let stream = handshake(&acceptor, socket, peer, &shared).await;
                    drop(permit);
                    drop(own);
                    if let Some(stream) = stream {
                        let halves = tokio::io::split(stream);
                        connection::serve(shared, halves, peer, local, id, true).await;
                    }
                    drop(slot);
                });
            }
        }
    }
}

/// The TLS session over `socket`, or `None` (logged) when the client
/// fails or stalls its handshake: it affects no other connection.
async fn handshake(
    acceptor: &TlsAcceptor,
    socket: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let outcome = tokio::time::timeout(tls::HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await;
    let failure = match outcome {
        Ok(Ok(stream)) => return Some(stream),
        Ok(Err(error)) => error.to_string(),
        Err(_) => format!("not finished within {:?}", tls::HANDSHAKE_TIMEOUT),
    };
    if let Some(unlogged) = shared.noisy_logs.admit(std::time::Instant::now()) {
        tracing::info!(%peer, error = %failure, unlogged, "TLS handshake failed; closing");
    }
    None
}

/// One of a client address's TLS handshakes in progress, counted until
/// dropped: one address cannot take every handshake slot and keep others
/// out of RTSPS.
struct HandshakeSlot {
    shared: Arc<Shared>,
    ip: std::net::IpAddr,
}

impl HandshakeSlot {
    /// A slot for `ip`, or `None` when it already has
    /// [`tls::MAX_HANDSHAKES_PER_ADDRESS`] in progress.
    fn take(shared: &Arc<Shared>, ip: std::net::IpAddr) -> Option<HandshakeSlot> {
        let mut counts = lock(&shared.handshakes_per_ip);
        let count = counts.entry(ip).or_insert(0);
        if *count >= tls::MAX_HANDSHAKES_PER_ADDRESS {
            return None;
        }
        *count += 1;
        Some(HandshakeSlot {
            shared: shared.clone(),
            ip,
        })
    }
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let mut counts = lock(&self.shared.handshakes_per_ip);
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Tells a client over its connection limit why it is turned away, so it
/// does not fail silently, then closes.
async fn refuse_connection(mut socket: tokio::net::TcpStream) {
    let mut answer = Vec::new();
    if Refusal::TooManyConnections
        .response(None)
        .write(&mut answer)
        .is_ok()
    {
        let _ = tokio::time::timeout(Duration::from_secs(1), socket.write_all(&answer)).await;
    }
}

/// Receiver reports arrive on the RTCP port and go straight to the viewer
/// routed for their source address; anything else (NAT-opening dummies,
/// strangers) is dropped.
async fn rtcp_receive_loop(shared: Arc<Shared>) {
    let mut buf = vec![0u8; 2048];
    loop {
        match shared.udp.rtcp.recv_from(&mut buf).await {
            Ok((len, from)) => {
                if !deliver_rtcp(&shared, RtcpSource::Udp(from), &buf[..len]) {
                    let packet = bytes::Bytes::copy_from_slice(&buf[..len]);
                    shared.publishers.receive(PacketSource::Udp(from), packet);
                }
            }
            Err(error) => {
                tracing::debug!(%error, "RTCP receive failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Publishers' RTP arrives on our RTP port and goes to the publisher
/// routed for its source address. Viewers send a few packets there to open
/// NATs, and strangers anything: read, counted and dropped, so they do not
/// fill the socket buffer.
async fn rtp_receive_loop(shared: Arc<Shared>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        match shared.udp.rtp.recv_from(&mut buf).await {
            Ok((len, from)) => {
                let packet = bytes::Bytes::copy_from_slice(&buf[..len]);
                if !shared.publishers.receive(PacketSource::Udp(from), packet) {
                    let count = shared.publishers.count_stranger();
                    if count.is_power_of_two() {
                        tracing::debug!(%from, count, "datagram from no publisher dropped");
                    }
                }
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// Hands an RTCP packet from `source` to the viewer it belongs to;
/// false when it belongs to none.
fn deliver_rtcp(shared: &Shared, source: RtcpSource, packet: &[u8]) -> bool {
    let Some(viewer) = shared.viewers.for_rtcp(&source) else {
        return false;
    };
    viewer_table::lock(&viewer).handle_rtcp(
        packet,
        std::time::Instant::now(),
        std::time::SystemTime::now(),
    );
    true
}

async fn reaper_loop(shared: Arc<Shared>) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    loop {
        interval.tick().await;
        let now = std::time::Instant::now();
        let actions = shared.with_handler(|handler, viewers| handler.expire_sessions(now, viewers));
        session_task::run_actions(&shared, actions, None);
    }
}
