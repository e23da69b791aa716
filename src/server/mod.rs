//! The tokio layer: the RTSP listener, one task per connection, one task
//! per playing session, the shared UDP port pair and the session reaper.
//! It moves bytes between sockets and the sans-IO core and decides nothing.
//!
//! The one place clocks, files, sockets, locks and OS randomness are used
//! (see `clippy.toml`, which keeps them out of everything else).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

pub mod camera;
pub mod catalog;
mod channel_task;
mod connection;
mod live_hub;
pub mod media_file;
mod publisher_table;
mod relay_task;
mod session_task;
pub mod udp;
#[cfg(feature = "v4l")]
pub mod v4l2;
mod viewer_table;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::config::{Config, Limit};
use crate::rtsp::handler::Viewers;
use crate::rtsp::handler::{HandlerSettings, RtcpSource, RtspHandler};
use crate::rtsp::refusal::Refusal;
use crate::stats::{LivePathStats, PublisherStats, SessionStats};
use crate::viewer::Viewer;
use catalog::Catalog;
use live_hub::LiveHub;
use publisher_table::{PacketSource, PublisherTable};
use relay_task::RelaySet;
use tokio::io::AsyncWriteExt;
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
    catalog: Arc<Catalog>,
    publishers: Arc<PublisherTable>,
    udp: Arc<UdpPair>,
    /// Largest RTP packet sent, in bytes.
    mtu: usize,
    /// Publish paths with no publisher yet: how long a viewer's request
    /// waits for one.
    publisher_wait: Duration,
    /// Paths that take publishers, and those configured sources feed.
    publish_paths: Vec<String>,
    source_paths: Vec<String>,
    wakers: Mutex<HashMap<String, Arc<Notify>>>,
    connections_per_ip: Mutex<HashMap<std::net::IpAddr, usize>>,
    /// Connections one client address may hold at once (CVE-2021-39283).
    max_connections_per_address: Limit,
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
    /// The server RTP port (RTCP is the next one).
    pub rtp_port: u16,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningServer {
    /// Stops accepting and receiving, and tears down every session: each
    /// sends its BYE (RFC 3550 §6.6) and its task ends.
    pub fn shutdown(self) {
        for task in self.tasks {
            task.abort();
        }
        let actions = self
            .shared
            .with_handler(|handler, viewers| handler.teardown_all(viewers));
        session_task::run_actions(&self.shared, actions, None);
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
/// opened, or a mount given twice (channels, relays and cameras
/// together). A camera that cannot be opened is no error: its task keeps
/// trying.
pub async fn start_with_cameras(
    config: &Config,
    catalog: Catalog,
    cameras: Vec<camera::Camera>,
) -> anyhow::Result<RunningServer> {
    crate::rtsp::access::check(&config.access, &config.auth).map_err(anyhow::Error::msg)?;
    let listener = TcpListener::bind((config.bind, config.rtsp_port))
        .await
        .with_context(|| format!("binding RTSP port {}:{}", config.bind, config.rtsp_port))?;
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
    let source_paths: Vec<String> = config
        .channels
        .iter()
        .map(|c| c.mount.clone())
        .chain(config.relays.iter().map(|r| r.mount.clone()))
        .chain(cameras.iter().map(|c| c.mount.clone()))
        .collect();
    let settings = HandlerSettings {
        server_rtp_port: rtp_port,
        mtu: config.mtu,
        loop_playback: config.loop_playback,
        session_timeout: Duration::from_secs(config.session_timeout_secs),
        max_sessions_per_connection: config.max_sessions_per_connection,
        max_sessions_per_address: config.max_sessions_per_address,
        max_sessions: config.max_sessions,
        rng_seed: rand::random(),
        publish_paths: config.publish_paths.clone(),
        publish_takeover: config.publish_takeover,
        source_paths: source_paths.clone(),
        multicast: config.multicast,
        access: config.access.clone(),
        auth: config.auth.clone(),
    };
    let catalog = Arc::new(catalog);
    let mut channels = Vec::new();
    for channel in &config.channels {
        let media = media_file::open_mp4(&channel.file).with_context(|| {
            format!(
                "opening {} for channel {}",
                channel.file.display(),
                channel.mount
            )
        })?;
        channels.push((channel.mount.clone(), media));
    }
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
    let (relays, relay_tasks) = RelaySet::new(&config.relays);
    let live = Arc::new(LiveHub::default());
    let udp = Arc::new(udp);
    let shared = Arc::new(Shared {
        handler: Mutex::new(RtspHandler::new(settings)),
        viewers: ViewerTable::default(),
        live: live.clone(),
        relays,
        catalog,
        publishers: Arc::new(PublisherTable::new(udp.clone())),
        udp,
        mtu: config.mtu,
        publisher_wait: config.publisher_wait,
        publish_paths: config.publish_paths.clone(),
        source_paths,
        wakers: Mutex::new(HashMap::new()),
        connections_per_ip: Mutex::new(HashMap::new()),
        max_connections_per_address: config.max_connections_per_address,
    });
    let rtsp_addr = listener.local_addr()?;
    let shared_for_handle = shared.clone();
    let mut tasks = vec![
        tokio::spawn(accept_loop(listener, shared.clone())),
        tokio::spawn(rtcp_receive_loop(shared.clone())),
        tokio::spawn(rtp_receive_loop(shared.clone())),
        tokio::spawn(reaper_loop(shared)),
    ];
    for (mount, media) in channels {
        tasks.push(tokio::spawn(channel_task::run(
            live.clone(),
            mount,
            media,
            config.mtu,
        )));
    }
    for camera in cameras {
        tasks.push(tokio::spawn(camera::run(camera, live.clone(), config.mtu)));
    }
    for relay in relay_tasks {
        tasks.push(tokio::spawn(relay_task::run(
            relay,
            live.clone(),
            config.mtu,
        )));
    }
    Ok(RunningServer {
        rtsp_addr,
        rtp_port,
        shared: shared_for_handle,
        tasks,
    })
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut next_id = 0u64;
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
                tracing::warn!(
                    %peer,
                    limit = %shared.max_connections_per_address,
                    "too many connections from this address (--max-connections-per-address); refusing"
                );
                tokio::spawn(refuse_connection(socket));
                continue;
            }
            *count += 1;
        }
        next_id += 1;
        let slot = ConnectionSlot {
            shared: shared.clone(),
            ip: peer.ip(),
        };
        let shared = shared.clone();
        let id = next_id;
        tokio::spawn(async move {
            connection::serve(shared, socket, peer, id).await;
            drop(slot);
        });
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
