//! Drives one session's [`Viewer`]: reads the samples it asks for, sends
//! what it yields, sleeps until it is due, and exits after teardown. The
//! viewer's lock is held only while the pure core computes: never across a
//! file read or a send, so RTSP requests never wait behind either.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, Notify};

use super::connection::{Outgoing, WRITE_QUEUE};
use super::udp::{self, UdpPair};
use super::viewer_table::{lock, SharedViewer};
use super::Shared;
use crate::live::gop_cache::DEFAULT_GOP_CACHE_BYTES;
use crate::live::publisher::Publisher;
use crate::live::stream::LiveStream;
use crate::media::mp4::Mp4Media;
use crate::media::SampleRef;
use crate::rtp::{interleaved_prefix, Delivery, PacketBatch};
use crate::rtsp::handler::{Action, PublishedTrack};
use crate::rtsp::session::ConnectionId;
use crate::stats::{SessionEnd, SessionStats, SessionTotals, TrackStats, TransportKind};
use crate::viewer::{Transmit, Viewer};

/// Free writer slots below which an interleaved viewer's video is skipped
/// (to its next keyframe): the rest stays for audio, RTCP and responses.
const VIDEO_RESERVE: usize = WRITE_QUEUE / 2;

/// How often a session task publishes its stats.
const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// How long a BYE may wait for room on a congested connection.
const BYE_WAIT: Duration = Duration::from_secs(10);

/// Carries out the handler's actions. `connection` is the writer of the
/// connection the request came on, for interleaved delivery.
pub(super) fn run_actions(
    shared: &Arc<Shared>,
    actions: Vec<Action>,
    connection: Option<&mpsc::Sender<Outgoing>>,
) {
    for action in actions {
        match action {
            Action::Spawn {
                session_id,
                client,
                mount,
                transport,
            } => {
                let Some(viewer) = shared.viewers.get(&session_id) else {
                    continue;
                };
                tracing::info!(
                    session = %session_id,
                    %client,
                    path = %mount,
                    %transport,
                    "session started"
                );
                let started = Instant::now();
                let notify = Arc::new(Notify::new());
                shared.wakers().insert(session_id.clone(), notify.clone());
                let shared = shared.clone();
                // Weak: a UDP session outlives its RTSP connection, and must
                // not keep that connection's writer (and socket) open.
                let connection = connection.map(mpsc::Sender::downgrade);
                let live_path = lock(&viewer).live_path().map(str::to_string);
                let about = SessionAbout {
                    session_id,
                    path: mount,
                    client,
                };
                tokio::spawn(async move {
                    drive(&shared, &about, &viewer, &notify, connection).await;
                    let (last, reason) = {
                        let viewer = lock(&viewer);
                        (about.stats(&viewer), viewer.end_reason())
                    };
                    log_end(
                        &about.session_id,
                        about.client,
                        &about.path,
                        reason,
                        started.elapsed(),
                        &last.tracks,
                    );
                    // Its last counters, counted into the ended sessions'
                    // totals as it goes.
                    shared.viewers.publish(last);
                    let session_id = about.session_id;
                    if let Some(path) = live_path.and_then(|mount| shared.live.get(&mount)) {
                        path.leave(&session_id);
                    }
                    shared.wakers().remove(&session_id);
                    shared.viewers.remove(&session_id);
                    tracing::debug!(session = %session_id, "session task ended");
                });
            }
            Action::Wake { session_id } => shared.wake(&session_id),
            Action::Publish {
                session_id,
                mount,
                connection: connection_id,
                client,
                tracks,
            } => start_publisher(
                shared,
                session_id,
                mount,
                (connection_id, client),
                tracks,
                connection,
            ),
            Action::Unpublish {
                session_id,
                mount,
                close_connection,
            } => {
                if let Some(path) = shared.publishers.remove(&session_id, close_connection) {
                    tracing::info!(session = %session_id, %mount, "live path ended: its publisher left");
                    shared.live.remove(&path);
                }
            }
            Action::RouteRtcp {
                session_id,
                sources,
            } => shared.viewers.route(&session_id, sources),
        }
    }
}

/// The one line a viewer's session ends with: why, after how long, and
/// what it sent and lost, in total and per track.
fn log_end(
    session_id: &str,
    client: SocketAddr,
    mount: &str,
    reason: Option<SessionEnd>,
    duration: Duration,
    tracks: &[(usize, TrackStats)],
) {
    let totals = SessionTotals::of(tracks);
    tracing::info!(
        session = %session_id,
        %client,
        path = %mount,
        reason = reason.map(tracing::field::display),
        duration_s = (duration.as_secs_f64() * 1000.0).round() / 1000.0,
        packets_sent = totals.packets_sent,
        bytes_sent = totals.bytes_sent,
        units_skipped = totals.units_skipped,
        packets_lost = totals.packets_lost,
        receiver_reports = totals.reports,
        tracks = %describe_tracks(tracks),
        "session ended"
    );
}

/// Per-track counters for a log line: `track 0: 1200 packets, 1500000
/// bytes, 0 skipped, 3 lost (4 reports); track 1: …`.
fn describe_tracks(tracks: &[(usize, TrackStats)]) -> String {
    tracks
        .iter()
        .map(|(index, t)| {
            format!(
                "track {index}: {} packets, {} bytes, {} skipped, {} lost ({} reports)",
                t.packets_sent, t.bytes_sent, t.units_skipped, t.cumulative_lost, t.reports
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Makes `mount` a live path fed by the publisher of `session_id`, and
/// routes its packets there.
fn start_publisher(
    shared: &Arc<Shared>,
    session_id: String,
    mount: String,
    (connection_id, client): (ConnectionId, SocketAddr),
    tracks: Vec<PublishedTrack>,
    connection: Option<&mpsc::Sender<Outgoing>>,
) {
    let announced: Vec<_> = tracks.iter().map(|t| t.track.clone()).collect();
    let publisher = match Publisher::new(&announced, rand::random(), "rtpcast".to_string()) {
        Ok(publisher) => publisher,
        Err(error) => {
            tracing::warn!(session = %session_id, %mount, %error, "cannot receive the announced tracks");
            return;
        }
    };
    let infos = announced.iter().map(|t| t.info.clone()).collect();
    let stream = LiveStream::new(infos, shared.mtu, DEFAULT_GOP_CACHE_BYTES);
    let path = shared.live.insert(mount, stream);
    shared.publishers.add(
        session_id,
        publisher,
        path,
        tracks.iter().map(|t| t.delivery).collect(),
        (connection_id, client),
        connection.map(mpsc::Sender::downgrade),
    );
}

/// What a session task knows of its session besides its viewer.
struct SessionAbout {
    session_id: String,
    path: String,
    client: SocketAddr,
}

impl SessionAbout {
    /// The session's snapshot, from its viewer's counters.
    fn stats(&self, viewer: &Viewer) -> SessionStats {
        SessionStats {
            session_id: self.session_id.clone(),
            path: self.path.clone(),
            client: self.client,
            // Its task starts at its first SETUP: a track is always set
            // up by then.
            transport: viewer.transport().unwrap_or(TransportKind::Udp),
            state: viewer.play_state(),
            tracks: viewer.stats(),
            codecs: viewer.codecs(),
        }
    }
}

/// What one pass over the viewer produced, to act on without its lock.
#[derive(Default)]
struct Pass {
    sends: Vec<Send>,
    reads: Vec<(u64, SampleRef)>,
    /// The media to read `reads` from, when there are any.
    media: Option<Arc<Mp4Media>>,
    deadline: Option<Instant>,
    finished: bool,
}

/// One transmit, copied out of the viewer: headers by value, payloads
/// shared, so the send happens after the lock is released.
enum Send {
    Rtp {
        delivery: Delivery,
        track: usize,
        batch: PacketBatch,
    },
    Rtcp {
        delivery: Delivery,
        packet: Vec<u8>,
        bye: bool,
    },
}

async fn drive(
    shared: &Shared,
    about: &SessionAbout,
    viewer: &SharedViewer,
    notify: &Notify,
    connection: Option<mpsc::WeakSender<Outgoing>>,
) {
    // Batches come back here after sending, and the pass's lists are
    // reused, so steady state allocates nothing per packet or per wake.
    let mut spare: Vec<PacketBatch> = Vec::new();
    let mut pass = Pass::default();
    let mut next_stats = Instant::now();
    loop {
        if Instant::now() >= next_stats {
            next_stats = Instant::now() + STATS_INTERVAL;
            // The viewer's lock is released before the table's is taken.
            let stats = about.stats(&lock(viewer));
            shared.viewers.publish(stats);
        }
        let writer = connection.as_ref().and_then(mpsc::WeakSender::upgrade);
        poll(viewer, writer.as_ref(), &mut spare, &mut pass);
        let mut dropped = Vec::new();
        for send in pass.sends.drain(..) {
            if let Some(mut sent) = deliver(&shared.udp, send, writer.as_ref(), &mut dropped) {
                // Emptied now, not at reuse: a spare batch must not keep
                // old payloads (and their whole access units) alive.
                sent.clear();
                spare.push(sent);
            }
        }
        if !dropped.is_empty() {
            let mut viewer = lock(viewer);
            for track in dropped {
                viewer.unit_dropped(track);
            }
        }
        if pass.finished {
            return;
        }
        if let Some(media) = pass.media.take() {
            // Positional reads of the page cache take microseconds; they
            // happen here, with no lock held, never inside the core.
            let read: Vec<_> = pass
                .reads
                .iter()
                .map(|(id, sample)| (*id, media.read_sample(sample).map(|au| au.data)))
                .collect();
            let mut viewer = lock(viewer);
            for (id, result) in read {
                viewer.deliver(id, result);
            }
            // Polled again at once only when a unit already due waited for
            // these bytes (the first PLAY, a seek); otherwise they were read
            // ahead of time and the next wake sends them.
            if pass.deadline.is_some_and(|due| due <= Instant::now()) {
                continue;
            }
        }
        drop(writer);
        // Idle sessions still wake to publish their stats (receiver
        // reports arrive while paused too).
        let wake_at = pass.deadline.map_or(next_stats, |due| due.min(next_stats));
        tokio::select! {
            _ = notify.notified() => {}
            _ = tokio::time::sleep_until(wake_at.into()) => {}
        }
    }
}

/// Runs the viewer's core for `now` under its lock and copies out into
/// `pass` what to do.
fn poll(
    viewer: &Mutex<Viewer>,
    writer: Option<&mpsc::Sender<Outgoing>>,
    spare: &mut Vec<PacketBatch>,
    pass: &mut Pass,
) {
    let mut viewer = lock(viewer);
    viewer.set_congested(writer.is_some_and(|w| w.capacity() < VIDEO_RESERVE));
    let now = Instant::now();
    let wall = SystemTime::now();
    while let Some(transmit) = viewer.poll_transmit(now, wall) {
        pass.sends.push(match transmit {
            Transmit::Rtp {
                delivery,
                track,
                batch,
                packets,
            } => {
                let mut copy = spare.pop().unwrap_or_default();
                copy.extend_from(batch, packets);
                Send::Rtp {
                    delivery,
                    track,
                    batch: copy,
                }
            }
            Transmit::Rtcp {
                delivery,
                packet,
                bye,
            } => Send::Rtcp {
                delivery,
                packet: packet.to_vec(),
                bye,
            },
        });
    }
    pass.reads.clear();
    pass.reads.extend(viewer.missing_reads());
    pass.media = viewer.media().filter(|_| !pass.reads.is_empty()).cloned();
    pass.finished = viewer.is_finished();
    pass.deadline = viewer.poll_timeout();
}

/// Hands one send to its socket or connection without waiting: a viewer
/// that cannot keep up loses its own units; nobody else waits for it.
/// Returns the batch for reuse; pushes to `dropped` the track of a unit
/// the connection could not take, so the viewer counts it (and, for
/// video, skips to the next keyframe).
fn deliver(
    udp: &UdpPair,
    send: Send,
    writer: Option<&mpsc::Sender<Outgoing>>,
    dropped: &mut Vec<usize>,
) -> Option<PacketBatch> {
    match send {
        Send::Rtp {
            delivery: Delivery::Udp { rtp, .. },
            track,
            batch,
        } => {
            // A unit not all sent is broken for the viewer: it skips to the
            // next keyframe (video), like a viewer whose TCP writer is full.
            match udp::send_batch(&udp.rtp, rtp, batch.packets_in(0..batch.len())) {
                Ok(sent) if sent == batch.len() => {}
                Ok(sent) => {
                    tracing::debug!(%rtp, sent, of = batch.len(), "UDP send buffer full; unit cut short");
                    dropped.push(track);
                }
                Err(error) => {
                    tracing::debug!(%rtp, %error, "RTP send failed");
                    dropped.push(track);
                }
            }
            Some(batch)
        }
        Send::Rtp {
            delivery: Delivery::Interleaved { rtp_channel, .. },
            track,
            mut batch,
        } => {
            let writer = writer?;
            let frames = batch.take_interleaved(rtp_channel);
            if writer.try_send(Outgoing::Rtp(frames)).is_err() {
                tracing::debug!(
                    track,
                    "interleaved writer full or closed; access unit dropped"
                );
                dropped.push(track);
            }
            Some(batch)
        }
        Send::Rtcp {
            delivery: Delivery::Udp { rtcp, .. },
            packet,
            ..
        } => {
            if let Err(error) = udp::send_one(&udp.rtcp, rtcp, &packet) {
                tracing::debug!(%rtcp, %error, "RTCP send failed");
            }
            None
        }
        Send::Rtcp {
            delivery: Delivery::Interleaved { rtcp_channel, .. },
            packet,
            bye,
        } => {
            let writer = writer?;
            let prefix = interleaved_prefix(rtcp_channel, packet.len() as u16);
            let frame = Outgoing::Bytes([&prefix[..], &packet].concat().into());
            match writer.try_send(frame) {
                Ok(()) => {}
                // The end of the stream must reach a slow viewer too: BYE
                // waits for room (bounded), a sender report need not.
                Err(mpsc::error::TrySendError::Full(frame)) if bye => {
                    let writer = writer.clone();
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(BYE_WAIT, writer.send(frame)).await;
                    });
                }
                Err(_) => {}
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::RtpStreamState;
    use bytes::Bytes;

    /// One access unit of `track` for interleaved channels from `channel`.
    fn interleaved_unit(track: usize, channel: u8) -> Send {
        let mut batch = PacketBatch::new();
        let mut stream = RtpStreamState::new(96, 0x1234, 1);
        batch.push(&mut stream, 0, true, Bytes::from_static(b"unit"));
        Send::Rtp {
            delivery: Delivery::Interleaved {
                rtp_channel: channel,
                rtcp_channel: channel + 1,
            },
            track,
            batch,
        }
    }

    #[test]
    fn track_counters_are_described_per_track() {
        let video = TrackStats {
            packets_sent: 1200,
            bytes_sent: 1_500_000,
            cumulative_lost: 3,
            reports: 4,
            ..TrackStats::default()
        };
        let audio = TrackStats {
            packets_sent: 10,
            units_skipped: 2,
            ..TrackStats::default()
        };
        assert_eq!(
            describe_tracks(&[(0, video), (1, audio)]),
            "track 0: 1200 packets, 1500000 bytes, 0 skipped, 3 lost (4 reports); \
             track 1: 10 packets, 0 bytes, 2 skipped, 0 lost (0 reports)"
        );
    }

    #[tokio::test]
    async fn every_unit_a_full_writer_refuses_is_reported_audio_too() {
        let udp = UdpPair::bind("127.0.0.1".parse().unwrap(), 0)
            .await
            .unwrap();
        let (writer, mut queue) = mpsc::channel(1);
        let mut dropped = Vec::new();
        deliver(&udp, interleaved_unit(0, 0), Some(&writer), &mut dropped);
        assert!(dropped.is_empty(), "the first unit fits");
        deliver(&udp, interleaved_unit(1, 2), Some(&writer), &mut dropped);
        deliver(&udp, interleaved_unit(0, 0), Some(&writer), &mut dropped);
        assert_eq!(dropped, [1, 0], "audio and video refused, in order");
        assert!(matches!(queue.try_recv(), Ok(Outgoing::Rtp(_))));
        assert!(queue.try_recv().is_err(), "nothing else was queued");
    }
}
