//! One RTSP connection, plain TCP or TLS (RTSPS): read, frame, hand
//! requests to the handler, write responses and interleaved media.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::publisher_table::PacketSource;
use super::{session_task, Shared};
use crate::rtp::InterleavedPackets;
use crate::rtsp::framing::{Incoming, RtspFramer};
use crate::rtsp::handler::{self, RequestContext, RtcpSource};
use crate::rtsp::refusal::Refusal;
use crate::rtsp::session::ConnectionId;
use crate::source::{Presentation, ResolveError};

/// Frames queued for the writer: responses plus interleaved media. Video
/// beyond half of this is skipped for this viewer alone (see
/// `session_task`).
pub(super) const WRITE_QUEUE: usize = 256;

/// Unsent bytes a connection's socket may hold (`TCP_NOTSENT_LOWAT`):
/// beyond them the writer waits, its queue fills and a slow viewer's video
/// skips to the next keyframe. Unbounded, Linux grows the send buffer to
/// megabytes (a megabyte measured behind a 600 kbit/s reader): seconds of
/// video the viewer falls behind before anything is skipped. Bytes in
/// flight are not counted, so a fast path keeps its throughput.
pub(super) const UNSENT_LIMIT: u32 = 64 * 1024;

/// Bytes for a connection's writer.
#[derive(Debug)]
pub(super) enum Outgoing {
    /// A response or an interleaved RTCP frame, whole.
    Bytes(Bytes),
    /// One access unit's interleaved RTP packets (RFC 2326 §10.12): each
    /// viewer's headers in front of payloads shared with other viewers,
    /// written with vectored writes.
    Rtp(InterleavedPackets),
    /// Ends the connection after what is queued before it (FIN): a
    /// publisher whose path was taken over or whose session ended learns
    /// it is done, as ffmpeg and GStreamer stop at a closed connection.
    Close,
}

/// Writes `frame` whole, header and payload pieces gathered per call, and
/// flushes: TLS may keep encrypted bytes back until asked (a plain socket
/// keeps nothing).
async fn write_frame(
    writer: &mut (impl AsyncWrite + Unpin),
    frame: &Outgoing,
) -> std::io::Result<()> {
    match frame {
        Outgoing::Bytes(bytes) => writer.write_all(bytes).await?,
        Outgoing::Close => {}
        Outgoing::Rtp(packets) => {
            let mut slices: Vec<IoSlice<'_>> = packets.pieces().map(IoSlice::new).collect();
            let mut slices = &mut slices[..];
            while !slices.is_empty() {
                let written = writer.write_vectored(slices).await?;
                if written == 0 {
                    return Err(std::io::ErrorKind::WriteZero.into());
                }
                IoSlice::advance_slices(&mut slices, written);
            }
        }
    }
    writer.flush().await
}

/// Whether a request for `mount`, which no source feeds now, waits for a
/// publisher (`--publisher-wait`).
fn waits_for_publisher(shared: &Shared, mount: &str) -> bool {
    !shared.publisher_wait.is_zero() && shared.publishable(mount)
}

/// Sends small writes (responses, audio) at once, and bounds the unsent
/// bytes the kernel keeps (see [`UNSENT_LIMIT`]).
fn tune(socket: &TcpStream) -> std::io::Result<()> {
    socket.set_nodelay(true)?;
    socket2::SockRef::from(socket).set_tcp_notsent_lowat(UNSENT_LIMIT)
}

/// Readies a freshly accepted socket (plain or before its TLS handshake):
/// tunes it and returns the server's address on it; `None` when the
/// connection is already gone.
pub(super) fn prepare(socket: &TcpStream, peer: SocketAddr) -> Option<SocketAddr> {
    let local = match socket.local_addr() {
        Ok(local) => local,
        Err(error) => {
            tracing::debug!(%peer, %error, "connection lost before serving");
            return None;
        }
    };
    if let Err(error) = tune(socket) {
        tracing::debug!(%peer, %error, "cannot tune the connection's socket");
    }
    Some(local)
}

/// Serves one connection until the client closes it or sends something
/// unparseable: the two halves of a socket [`prepare`]d (its own split,
/// which takes no lock) or of the TLS session over one (`secure`).
pub(super) async fn serve<R, W>(
    shared: Arc<Shared>,
    (mut reader, mut writer): (R, W),
    peer: SocketAddr,
    local: SocketAddr,
    id: ConnectionId,
    secure: bool,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    tracing::debug!(%peer, connection = id, secure, "connection opened");
    let (tx, mut rx) = mpsc::channel::<Outgoing>(WRITE_QUEUE);
    super::lock(&shared.writers).insert(id, tx.downgrade());
    let writer_shared = shared.clone();
    let writer_task = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if matches!(frame, Outgoing::Close) || write_frame(&mut writer, &frame).await.is_err() {
                break;
            }
        }
        let _ = writer.shutdown().await;
        // A stopping server waits for this: everything queued is written.
        super::lock(&writer_shared.writers).remove(&id);
    });
    let ctx = RequestContext {
        connection: id,
        peer,
        local,
        received: Instant::now(),
        secure,
    };
    let mut framer = RtspFramer::new();
    let mut buf = vec![0u8; 16 * 1024];
    'read: loop {
        let len = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(len) => len,
        };
        framer.push(&buf[..len]);
        loop {
            match framer.next_message() {
                Ok(None) => break,
                Ok(Some(Incoming::Request(request))) => {
                    // A client the path's rule keeps out opens no file,
                    // starts no relay and waits for no publisher.
                    let refused = handler::media_needed(&request).and_then(|_| {
                        let ctx = RequestContext {
                            received: Instant::now(),
                            ..ctx
                        };
                        shared.with_handler(|handler, _| handler.refuse_unadmitted(&request, &ctx))
                    });
                    if let Some(refused) = refused {
                        let mut bytes = Vec::with_capacity(512);
                        if refused.response.write(&mut bytes).is_err()
                            || tx.send(Outgoing::Bytes(bytes.into())).await.is_err()
                        {
                            break 'read;
                        }
                        continue;
                    }
                    // Opening a file blocks: done on a blocking thread
                    // before the handler is asked, so no other client's
                    // request waits behind the disk.
                    let media = match handler::media_needed(&request) {
                        Some(mount) => match shared.relays.resolve(&shared.live, &mount).await {
                            Some(live) => Some(live),
                            None if waits_for_publisher(&shared, &mount) => Some(
                                shared
                                    .live
                                    .describe_within(&mount, shared.publisher_wait)
                                    .await
                                    .ok_or_else(|| ResolveError::NotFound(mount.clone())),
                            ),
                            None => {
                                let media = shared.media();
                                tokio::task::spawn_blocking(move || {
                                    media.resolve(&mount).map(Presentation::File)
                                })
                                .await
                                .ok()
                            }
                        },
                        None => None,
                    };
                    let ctx = RequestContext {
                        received: Instant::now(),
                        ..ctx
                    };
                    let handled = shared.with_handler(|handler, viewers| {
                        handler.handle_request(&request, &ctx, media, viewers)
                    });
                    shared.count_request(
                        crate::stats::method_label(request.method()),
                        u16::from(handled.response.status()),
                    );
                    let mut bytes = Vec::with_capacity(512);
                    let answered = handled.response.write(&mut bytes).is_ok()
                        && tx.send(Outgoing::Bytes(bytes.into())).await.is_ok();
                    // Even unanswered: a session the handler created needs
                    // its task, which frees its viewer when it ends.
                    session_task::run_actions(&shared, handled.actions, Some(&tx));
                    if !answered {
                        break 'read;
                    }
                }
                Ok(Some(Incoming::Interleaved { channel, payload })) => {
                    // A viewer's RTCP reaches its viewer, a publisher's
                    // media its publisher; anything else is dropped.
                    if !super::deliver_rtcp(&shared, RtcpSource::Interleaved(id, channel), &payload)
                    {
                        shared
                            .publishers
                            .receive(PacketSource::Interleaved(id, channel), payload.into());
                    }
                }
                Ok(Some(Incoming::Response)) => {}
                Err(error) => {
                    let refusal = Refusal::from(error);
                    if let Some(unlogged) = shared.noisy_logs.admit(std::time::Instant::now()) {
                        tracing::info!(
                            %peer,
                            %error,
                            status = u16::from(refusal.status()),
                            unlogged,
                            "closing connection after unparseable input"
                        );
                    }
                    shared.count_request("other", u16::from(refusal.status()));
                    let mut bytes = Vec::new();
                    if refusal.response(None).write(&mut bytes).is_ok() {
                        let _ = tx.send(Outgoing::Bytes(bytes.into())).await;
                    }
                    break 'read;
                }
            }
        }
    }
    let actions = shared
        .with_handler(|handler, viewers| handler.connection_closed(id, Instant::now(), viewers));
    session_task::run_actions(&shared, actions, None);
    drop(tx);
    let _ = writer_task.await;
    tracing::debug!(%peer, connection = id, "connection closed");
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::{TcpListener, TcpSocket};

    /// Bytes a tuned socket takes from a writer while its peer reads
    /// nothing, the peer's receive buffer small like a slow link's window.
    /// Untuned, Linux on loopback took 3.5 MB here.
    async fn bytes_taken_for_a_stalled_peer() -> usize {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpSocket::new_v4().unwrap();
        client.set_recv_buffer_size(16 * 1024).unwrap();
        let _client = client
            .connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        tune(&server).unwrap();
        let chunk = vec![0u8; 16 * 1024];
        let mut taken = 0;
        let mut idle_rounds = 0;
        // Writes until the socket stays full for a while (ACKs of what the
        // peer's window took may open room, and grow the buffer, at first).
        while idle_rounds < 20 && taken < 64 * 1024 * 1024 {
            match server.try_write(&chunk) {
                Ok(written) => {
                    taken += written;
                    idle_rounds = 0;
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                    idle_rounds += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
                Err(error) => panic!("write: {error}"),
            }
        }
        taken
    }

    #[tokio::test]
    async fn a_stalled_viewer_backs_up_into_the_writer_not_the_kernel() {
        let taken = bytes_taken_for_a_stalled_peer().await;
        // The unsent bytes allowed, plus what the peer's 32 KiB window
        // (twice the buffer asked for) and the segments in flight hold.
        assert!(
            taken <= UNSENT_LIMIT as usize + 128 * 1024,
            "{taken} bytes taken with {UNSENT_LIMIT} unsent allowed"
        );
    }
}
