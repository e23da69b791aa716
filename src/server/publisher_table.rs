//! Publishers being received: each one's [`Publisher`] core behind its own
//! lock, where its packets come from (the server's UDP pair by source
//! address, or interleaved channels of its connection), and one task each
//! for reorder timeouts and receiver reports. Packets are processed as they
//! arrive, on the receiving task: the unit goes to the path's viewers at
//! once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use tokio::sync::{mpsc, Notify};

use super::connection::Outgoing;
use super::live_hub::LivePath;
use super::udp::{self, UdpPair};
use crate::live::publisher::Publisher;
use crate::rtp::{interleaved_prefix, Delivery};
use crate::rtsp::session::ConnectionId;
use crate::stats::PublisherStats;

/// Where a received packet came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum PacketSource {
    /// A datagram on the server's RTP or RTCP port from this address.
    Udp(SocketAddr),
    /// An interleaved frame on a connection's channel.
    Interleaved(ConnectionId, u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rtp,
    Rtcp,
}

/// One publisher being received.
#[derive(Debug)]
pub(super) struct PublisherEntry {
    session_id: String,
    /// The publisher's address on its RTSP connection.
    client: SocketAddr,
    publisher: Mutex<Publisher>,
    path: Arc<LivePath>,
    deliveries: Vec<Delivery>,
    /// The publisher's RTSP connection, for interleaved receiver reports.
    writer: Option<mpsc::WeakSender<Outgoing>>,
    notify: Notify,
    closed: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Where packets from one source go: a publisher's track, as RTP or RTCP.
#[derive(Debug, Clone)]
struct Route {
    entry: Arc<PublisherEntry>,
    track: usize,
    kind: Kind,
}

/// Every publisher being received, by session and by packet source.
#[derive(Debug)]
pub(super) struct PublisherTable {
    /// The server's port pair, for receiver reports over UDP.
    udp: Arc<UdpPair>,
    by_session: Mutex<HashMap<String, Arc<PublisherEntry>>>,
    routes: Mutex<HashMap<PacketSource, Route>>,
    /// Datagrams on the RTP port from no publisher or viewer we know:
    /// dropped.
    strangers: AtomicU64,
}

impl PublisherTable {
    /// A table with no publisher, sending reports from `udp`.
    pub(super) fn new(udp: Arc<UdpPair>) -> Self {
        PublisherTable {
            udp,
            by_session: Mutex::default(),
            routes: Mutex::default(),
            strangers: AtomicU64::new(0),
        }
    }

    /// Starts receiving session `session_id`'s tracks (their deliveries in
    /// track order; interleaved ones on `connection`, whose `writer` takes
    /// receiver reports) into `path`; `client` is the publisher's address
    /// on that connection.
    pub(super) fn add(
        &self,
        session_id: String,
        publisher: Publisher,
        path: Arc<LivePath>,
        deliveries: Vec<Delivery>,
        (connection, client): (ConnectionId, SocketAddr),
        writer: Option<mpsc::WeakSender<Outgoing>>,
    ) {
        let entry = Arc::new(PublisherEntry {
            session_id: session_id.clone(),
            client,
            publisher: Mutex::new(publisher),
            path,
            deliveries: deliveries.clone(),
            writer,
            notify: Notify::new(),
            closed: AtomicBool::new(false),
        });
        {
            let mut routes = lock(&self.routes);
            for (track, delivery) in deliveries.iter().enumerate() {
                let (rtp, rtcp) = match *delivery {
                    Delivery::Udp { rtp, rtcp } => {
                        (PacketSource::Udp(rtp), PacketSource::Udp(rtcp))
                    }
                    Delivery::Interleaved {
                        rtp_channel,
                        rtcp_channel,
                    } => (
                        PacketSource::Interleaved(connection, rtp_channel),
                        PacketSource::Interleaved(connection, rtcp_channel),
                    ),
                };
                for (source, kind) in [(rtp, Kind::Rtp), (rtcp, Kind::Rtcp)] {
                    let route = Route {
                        entry: entry.clone(),
                        track,
                        kind,
                    };
                    routes.insert(source, route);
                }
            }
        }
        if let Some(old) = lock(&self.by_session).insert(session_id, entry.clone()) {
            old.closed.store(true, Ordering::Relaxed);
            old.notify.notify_one();
        }
        tokio::spawn(drive(entry, self.udp.clone()));
    }

    /// Stops receiving session `session_id`, closing its RTSP connection
    /// when `close_connection`; returns its path (whose viewers the caller
    /// ends).
    pub(super) fn remove(&self, session_id: &str, close_connection: bool) -> Option<Arc<LivePath>> {
        let entry = lock(&self.by_session).remove(session_id)?;
        lock(&self.routes).retain(|_, route| !Arc::ptr_eq(&route.entry, &entry));
        entry.closed.store(true, Ordering::Relaxed);
        entry.notify.notify_one();
        // A publisher taken over (or timed out) keeps sending until told:
        // its RTSP connection is closed after what is queued on it.
        let writer = entry.writer.as_ref().and_then(mpsc::WeakSender::upgrade);
        if let Some(writer) = writer.filter(|_| close_connection) {
            let _ = writer.try_send(Outgoing::Close);
        }
        Some(entry.path.clone())
    }

    /// When publisher `session_id` last sent valid RTP or RTCP.
    pub(super) fn last_heard(&self, session_id: &str) -> Option<Instant> {
        let entry = lock(&self.by_session).get(session_id).cloned()?;
        let heard = lock(&entry.publisher).last_heard();
        heard
    }

    /// Hands a packet from `source` to its publisher. Returns false when
    /// no publisher sends from there.
    pub(super) fn receive(&self, source: PacketSource, packet: Bytes) -> bool {
        let Some(Route { entry, track, kind }) = lock(&self.routes).get(&source).cloned() else {
            return false;
        };
        let now = Instant::now();
        let wall = SystemTime::now();
        let mut publisher = lock(&entry.publisher);
        match kind {
            Kind::Rtp => {
                publisher.handle_rtp(track, &packet, now);
            }
            Kind::Rtcp => {
                if let Some(mapping) = publisher.handle_rtcp(track, &packet, now, wall) {
                    entry.path.set_clock(track, mapping);
                }
            }
        }
        while let Some(unit) = publisher.poll_unit(now) {
            entry.path.publish(unit, now, wall);
        }
        drop(publisher);
        entry.notify.notify_one();
        true
    }

    /// Every publisher's counters, ordered by session id.
    pub(super) fn stats(&self) -> Vec<PublisherStats> {
        let entries: Vec<_> = lock(&self.by_session).values().cloned().collect();
        let mut stats: Vec<_> = entries
            .iter()
            .map(|entry| PublisherStats {
                session_id: entry.session_id.clone(),
                mount: entry.path.mount().to_string(),
                client: entry.client,
                tracks: lock(&entry.publisher).stats(),
            })
            .collect();
        stats.sort_by(|a, b| a.session_id.cmp(&b.session_id));
        stats
    }

    /// Datagrams on the RTP port from nobody known, so far.
    pub(super) fn strangers(&self) -> u64 {
        self.strangers.load(Ordering::Relaxed)
    }

    /// Counts a datagram nobody claimed.
    pub(super) fn count_stranger(&self) -> u64 {
        self.strangers.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// A publisher's timer task: releases packets whose reorder wait ended and
/// sends receiver reports, until the publisher is removed.
async fn drive(entry: Arc<PublisherEntry>, udp: Arc<UdpPair>) {
    loop {
        if entry.closed.load(Ordering::Relaxed) {
            tracing::debug!(session = %entry.session_id, "publisher task ended");
            return;
        }
        let now = Instant::now();
        let wall = SystemTime::now();
        let mut reports = Vec::new();
        let deadline = {
            let mut publisher = lock(&entry.publisher);
            while let Some(unit) = publisher.poll_unit(now) {
                entry.path.publish(unit, now, wall);
            }
            while let Some((track, packet)) = publisher.poll_report(now) {
                reports.push((track, packet.to_vec()));
            }
            publisher.poll_timeout()
        };
        for (track, packet) in reports {
            send_report(&entry, &udp, track, &packet);
        }
        match deadline {
            Some(due) => {
                tokio::select! {
                    _ = entry.notify.notified() => {}
                    _ = tokio::time::sleep_until(due.max(now).into()) => {}
                }
            }
            None => entry.notify.notified().await,
        }
    }
}

fn send_report(entry: &PublisherEntry, udp: &UdpPair, track: usize, packet: &[u8]) {
    match entry.deliveries.get(track) {
        Some(Delivery::Udp { rtcp, .. }) => {
            if let Err(error) = udp::send_one(&udp.rtcp, *rtcp, packet) {
                tracing::debug!(%rtcp, %error, "receiver report send failed");
            }
        }
        Some(Delivery::Interleaved { rtcp_channel, .. }) => {
            let Some(writer) = entry.writer.as_ref().and_then(mpsc::WeakSender::upgrade) else {
                return;
            };
            let prefix = interleaved_prefix(*rtcp_channel, packet.len() as u16);
            // A full writer drops the report: the next one follows.
            let _ = writer.try_send(Outgoing::Bytes([&prefix[..], packet].concat().into()));
        }
        None => {}
    }
}
