//! RTSPS: RTSP over TLS (the `rtsps` scheme, RFC 7826 §19.2, port 322 by
//! default), with rustls and its ring provider only. The certificate
//! loader is public so that other listeners (the HTTP API) serve the same
//! certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// How long a client has to finish its TLS handshake; a client that
/// stalls is dropped so that it holds neither a task nor its address's
/// connection slot for long.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS handshakes in progress at once, over all clients; connections
/// beyond are closed at once. Handshakes cost CPU (signatures), and a
/// flood of them must not starve the playing viewers.
pub const MAX_HANDSHAKES: usize = 256;

/// TLS handshakes in progress at once from one client address: one
/// address cannot hold every slot of [`MAX_HANDSHAKES`] and keep everybody
/// else out of RTSPS.
pub const MAX_HANDSHAKES_PER_ADDRESS: usize = 16;

/// Why a certificate and key cannot serve TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The certificate file cannot be read or holds a malformed PEM
    /// section.
    #[error("reading the TLS certificate {}: {reason}", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What went wrong (in the message, not an error source, so a
        /// report of the chain says it once).
        reason: rustls::pki_types::pem::Error,
    },
    /// The certificate file holds no `CERTIFICATE` section.
    #[error("the TLS certificate file {} holds no PEM CERTIFICATE", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file cannot be read or holds no private key (PKCS#8,
    /// PKCS#1 or SEC1 PEM).
    #[error("reading the TLS private key {}: {reason}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// What went wrong (in the message, not an error source, so a
        /// report of the chain says it once).
        reason: rustls::pki_types::pem::Error,
    },
    /// rustls refused the pair: a key it cannot use, or one that does not
    /// belong to the certificate.
    #[error("the TLS certificate {} and key {} cannot be used together: {reason}", certificate.display(), key.display())]
    Rejected {
        /// The certificate file.
        certificate: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason (in the message, not an error source).
        reason: rustls::Error,
    },
}

/// A rustls server configuration (ring provider, TLS 1.2 and 1.3, no
/// client certificates, no ALPN) serving the certificate chain in the PEM
/// file `certificate` (leaf first) with the private key in the PEM file
/// `key`. Callers set `alpn_protocols` for their own protocol if they need
/// to (the HTTP API: `http/1.1`); RTSP uses none.
///
/// # Errors
///
/// [`TlsSetupError`]: a file that cannot be read, holds no certificate or
/// key, or a key that does not match the certificate.
pub fn load_server_config(
    certificate: &Path,
    key: &Path,
) -> Result<rustls::ServerConfig, TlsSetupError> {
    let chain = CertificateDer::pem_file_iter(certificate)
        .and_then(|sections| sections.collect::<Result<Vec<_>, _>>())
        .map_err(|reason| TlsSetupError::Certificate {
            path: certificate.to_path_buf(),
            reason,
        })?;
    if chain.is_empty() {
        return Err(TlsSetupError::NoCertificate {
            path: certificate.to_path_buf(),
        });
    }
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|reason| TlsSetupError::Key {
        path: key.to_path_buf(),
        reason,
    })?;
    let rejected = |reason| TlsSetupError::Rejected {
        certificate: certificate.to_path_buf(),
        key: key.to_path_buf(),
        reason,
    };
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(rejected)?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(rejected)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate and its key, as PEM files in `dir`.
    fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let certificate = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&certificate, pair.cert.pem()).unwrap();
        std::fs::write(&key, pair.key_pair.serialize_pem()).unwrap();
        (certificate, key)
    }

    #[test]
    fn a_matching_pair_loads() {
        let dir = tempfile::tempdir().unwrap();
        let (certificate, key) = write_pair(dir.path(), "server");
        let config = load_server_config(&certificate, &key).unwrap();
        assert!(config.alpn_protocols.is_empty());
    }

    #[test]
    fn bad_files_say_which_file_and_why() {
        let dir = tempfile::tempdir().unwrap();
        let (certificate, key) = write_pair(dir.path(), "one");
        let (_, other_key) = write_pair(dir.path(), "two");
        let missing = dir.path().join("missing.pem");
        let not_pem = dir.path().join("not.pem");
        std::fs::write(&not_pem, "just text\n").unwrap();

        let error = load_server_config(&missing, &key).unwrap_err();
        assert!(
            matches!(error, TlsSetupError::Certificate { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("missing.pem"), "{error}");

        let error = load_server_config(&not_pem, &key).unwrap_err();
        assert!(
            matches!(error, TlsSetupError::NoCertificate { .. }),
            "{error}"
        );

        // The certificate where the key belongs: no key section in it.
        let error = load_server_config(&certificate, &certificate).unwrap_err();
        assert!(matches!(error, TlsSetupError::Key { .. }), "{error}");

        let error = load_server_config(&certificate, &other_key).unwrap_err();
        assert!(matches!(error, TlsSetupError::Rejected { .. }), "{error}");
        assert!(error.to_string().contains("two.key"), "{error}");
    }
}
