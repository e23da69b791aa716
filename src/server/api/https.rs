//! HTTPS for the API (`api_tls`): a listener that hands axum a connection
//! once its TLS handshake is done. Handshakes run side by side in tasks of
//! their own, so a client that stalls its handshake delays no other, and
//! one that fails it is closed without ending the accept loop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::server::tls;

/// How long to wait after an accept error before accepting again (the
/// process may be out of file descriptors for a moment).
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// The API's TLS acceptor: the RTSPS certificate's configuration,
/// offering HTTP/1.1 by ALPN (the only HTTP the API speaks).
pub(in crate::server) fn acceptor(server_config: &ServerConfig) -> TlsAcceptor {
    let mut config = server_config.clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsAcceptor::from(Arc::new(config))
}

/// A TCP listener whose connections come out TLS-wrapped, with their
/// peer's address.
pub(super) struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    /// Handshakes in progress: each ends with its connection, or `None`
    /// when the client failed or stalled it.
    handshakes: JoinSet<Option<(TlsStream<TcpStream>, SocketAddr)>>,
}

impl TlsListener {
    pub(super) fn new(tcp: TcpListener, acceptor: TlsAcceptor) -> Self {
        TlsListener {
            tcp,
            acceptor,
            handshakes: JoinSet::new(),
        }
    }

    /// Starts the handshake of a new connection, or closes it when
    /// [`tls::MAX_HANDSHAKES`] are already in progress.
    fn start_handshake(&mut self, socket: TcpStream, peer: SocketAddr) {
        if self.handshakes.len() >= tls::MAX_HANDSHAKES {
            tracing::warn!(
                %peer,
                limit = tls::MAX_HANDSHAKES,
                "too many API TLS handshakes in progress; closing"
            );
            return;
        }
        self.handshakes
            .spawn(handshake(self.acceptor.clone(), socket, peer));
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    /// The next connection whose handshake succeeded. Cancel-safe: the
    /// handshakes live in tasks, and a finished one is returned at once.
    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                accepted = self.tcp.accept() => match accepted {
                    Ok((socket, peer)) => self.start_handshake(socket, peer),
                    Err(error) => {
                        tracing::warn!(%error, "API accept failed");
                        tokio::time::sleep(ACCEPT_RETRY).await;
                    }
                },
                Some(finished) = self.handshakes.join_next(), if !self.handshakes.is_empty() => {
                    if let Ok(Some(connection)) = finished {
                        return connection;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// The TLS session over `socket`, or `None` (logged at debug: a port scan
/// or a plain-HTTP client is no news) when the client fails its handshake
/// or does not finish it within [`tls::HANDSHAKE_TIMEOUT`].
async fn handshake(
    acceptor: TlsAcceptor,
    socket: TcpStream,
    peer: SocketAddr,
) -> Option<(TlsStream<TcpStream>, SocketAddr)> {
    match tokio::time::timeout(tls::HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await {
        Ok(Ok(stream)) => Some((stream, peer)),
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "API TLS handshake failed; closing");
            None
        }
        Err(_) => {
            tracing::debug!(
                %peer,
                timeout_s = tls::HANDSHAKE_TIMEOUT.as_secs(),
                "API TLS handshake not finished in time; closing"
            );
            None
        }
    }
}
