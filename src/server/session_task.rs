//! Drives one session's [`SessionStream`]: sleeps until it is due, sends
//! what it yields, and exits after teardown.

use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use tokio::sync::{mpsc, Notify};

use super::{udp, Shared};
use crate::rtp::interleaved_prefix;
use crate::rtsp::handler::{lock, Action};
use crate::rtsp::transport::Delivery;
use crate::stream::{SessionStream, Transmit};

/// Carries out the handler's actions. `connection` is the writer of the
/// connection the request came on, for interleaved delivery.
pub(super) fn run_actions(
    shared: &Arc<Shared>,
    actions: Vec<Action>,
    connection: Option<&mpsc::Sender<Bytes>>,
) {
    for action in actions {
        match action {
            Action::Spawn { session_id, stream } => {
                let notify = Arc::new(Notify::new());
                shared.wakers().insert(session_id.clone(), notify.clone());
                let shared = shared.clone();
                // Weak: a UDP session outlives its RTSP connection, and must
                // not keep that connection's writer (and socket) open.
                let connection = connection.map(mpsc::Sender::downgrade);
                tokio::spawn(async move {
                    drive(&shared, &stream, &notify, connection).await;
                    shared.wakers().remove(&session_id);
                    tracing::debug!(session = %session_id, "session task ended");
                });
            }
            Action::Wake { session_id } => shared.wake(&session_id),
        }
    }
}

async fn drive(
    shared: &Shared,
    stream: &Mutex<SessionStream>,
    notify: &Notify,
    connection: Option<mpsc::WeakSender<Bytes>>,
) {
    loop {
        let deadline = {
            let mut stream = lock(stream);
            let now = Instant::now();
            let wall = SystemTime::now();
            while let Some(transmit) = stream.poll_transmit(now, wall) {
                send(shared, transmit, connection.as_ref());
            }
            if stream.is_finished() {
                return;
            }
            stream.poll_timeout()
        };
        match deadline {
            Some(deadline) => {
                tokio::select! {
                    _ = notify.notified() => {}
                    _ = tokio::time::sleep_until(deadline.into()) => {}
                }
            }
            None => notify.notified().await,
        }
    }
}

/// Hands one batch to the socket without waiting: a viewer that cannot
/// keep up loses packets; nobody else waits for it.
fn send(shared: &Shared, transmit: Transmit<'_>, connection: Option<&mpsc::WeakSender<Bytes>>) {
    let connection = || connection.and_then(mpsc::WeakSender::upgrade);
    match transmit {
        Transmit::Rtp {
            delivery: Delivery::Udp { rtp, .. },
            batch,
            packets,
        } => {
            if let Err(error) = udp::send_batch(&shared.udp.rtp, rtp, batch.packets_in(packets)) {
                tracing::debug!(%rtp, %error, "RTP send failed");
            }
        }
        Transmit::Rtcp {
            delivery: Delivery::Udp { rtcp, .. },
            packet,
        } => {
            if let Err(error) = udp::send_one(&shared.udp.rtcp, rtcp, packet) {
                tracing::debug!(%rtcp, %error, "RTCP send failed");
            }
        }
        Transmit::Rtp {
            delivery: Delivery::Interleaved { rtp_channel, .. },
            batch,
            ..
        } => {
            if let Some(connection) = connection() {
                let frame = Bytes::copy_from_slice(batch.interleaved(rtp_channel));
                if connection.try_send(frame).is_err() {
                    tracing::debug!("interleaved writer full or closed; access unit dropped");
                }
            }
        }
        Transmit::Rtcp {
            delivery: Delivery::Interleaved { rtcp_channel, .. },
            packet,
        } => {
            if let Some(connection) = connection() {
                let prefix = interleaved_prefix(rtcp_channel, packet.len() as u16);
                let _ = connection.try_send([&prefix[..], packet].concat().into());
            }
        }
    }
}
