//! HTTPS for the master API: a master with `tls` serves only HTTPS; dm's own clients (ctl,
//! followers forwarding to the leader, workers asking for etcd) trust the CA they are given.

pub use crate::config::ApiTls;
use crate::error::{Error, Result};
use axum::Router;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// A PEM file named by `field` of a config.
pub fn read_pem(path: &Path, field: &str) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| {
        Error::Invalid(format!(
            "{field}: cannot read {}: {e}; give a PEM file",
            path.display()
        ))
    })
}

/// The common name of the certificate a client presented (mutual TLS), for the API guard.
#[derive(Debug, Clone)]
pub struct PeerCn(pub Option<String>);

/// The subject common name of a DER certificate.
fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    Some(cn)
}

fn tls_err(what: &Path, e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!(
        "TLS: {}: {e}; give PEM files (tls.cert, tls.key, tls.ca)",
        what.display()
    ))
}

fn server_config(tls: &ApiTls) -> Result<Arc<rustls::ServerConfig>> {
    let certs = CertificateDer::pem_file_iter(&tls.cert)
        .and_then(|i| i.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| tls_err(&tls.cert, e))?;
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| tls_err(&tls.key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(&tls.cert, e))?;
    let builder = if tls.cert_allowed_cn.is_empty() {
        builder.with_no_client_auth()
    } else {
        let ca = tls.client_ca.as_ref().or(tls.ca.as_ref()).ok_or_else(|| {
            Error::Invalid(
                "TLS: cert-allowed-cn needs the CA of the client certificates: tls.client-ca (or tls.ca)"
                    .into(),
            )
        })?;
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(ca).map_err(|e| tls_err(ca, e))? {
            roots
                .add(c.map_err(|e| tls_err(ca, e))?)
                .map_err(|e| tls_err(ca, e))?;
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| tls_err(ca, e))?;
        builder.with_client_cert_verifier(verifier)
    };
    let cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| tls_err(&tls.cert, e))?;
    Ok(Arc::new(cfg))
}

/// Connections served at once; more wait in the listener's backlog until one ends, so a
/// flood of idle connections cannot exhaust the process.
const MAX_CONNECTIONS: usize = 512;
/// How long a client has for its TLS handshake and for the headers of each request: a client
/// that opens connections and sends nothing does not keep them.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on `listener`: HTTPS only when `tls` is given (with the client's certificate
/// name for the API guard under mutual TLS), plain HTTP otherwise.
pub async fn serve(listener: TcpListener, app: Router, tls: Option<&ApiTls>) -> Result<()> {
    let acceptor = match tls {
        Some(tls) => Some(tokio_rustls::TlsAcceptor::from(server_config(tls)?)),
        None => None,
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let slot = slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "API: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let Some(acceptor) = acceptor else {
                return serve_connection(tcp, app, peer).await;
            };
            let stream = match tokio::time::timeout(CLIENT_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "API: TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "API: TLS handshake timed out");
                    return;
                }
            };
            // Who the client is (mutual TLS), for the API guard.
            let cn = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| common_name(c));
            serve_connection(stream, app.layer(axum::Extension(PeerCn(cn))), peer).await
        });
    }
}

/// HTTP/1 or HTTP/2 on one connection, with a deadline for each request's headers.
async fn serve_connection<S>(stream: S, app: Router, peer: std::net::SocketAddr)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper_util::service::TowerToHyperService::new(app);
    let mut builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(CLIENT_TIMEOUT);
    if let Err(e) = builder
        .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(%peer, error = %e, "API: connection ended with an error");
    }
}

/// An HTTP client for the API of dm masters: HTTPS trusting `ca` when given.
#[derive(Clone)]
pub struct ApiClient {
    pub http: reqwest::Client,
    https: bool,
}

impl ApiClient {
    /// A client trusting `ca`, presenting `token` (a bearer token) on every request and
    /// `identity` (PEM certificate and key files) to masters that ask for client certificates.
    pub fn new(
        ca: Option<&Path>,
        timeout: Duration,
        token: Option<&str>,
        identity: Option<(&Path, &Path)>,
    ) -> Result<ApiClient> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(timeout);
        if let Some((cert, key)) = identity {
            let mut pem = std::fs::read(cert).map_err(|e| tls_err(cert, e))?;
            pem.extend(std::fs::read(key).map_err(|e| tls_err(key, e))?);
            let id = reqwest::Identity::from_pem(&pem).map_err(|e| tls_err(cert, e))?;
            b = b.use_rustls_tls().identity(id);
        }
        if let Some(token) = token {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| {
                    Error::Invalid("the token has characters a header cannot carry".into())
                })?;
            value.set_sensitive(true);
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(reqwest::header::AUTHORIZATION, value);
            b = b.default_headers(headers);
        }
        if let Some(ca) = ca {
            let pem = std::fs::read(ca).map_err(|e| tls_err(ca, e))?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| tls_err(ca, e))?;
            b = b
                .use_rustls_tls()
                .tls_built_in_root_certs(false)
                .add_root_certificate(cert);
        }
        Ok(ApiClient {
            http: b.build().map_err(|e| Error::Invalid(e.to_string()))?,
            https: ca.is_some(),
        })
    }

    /// `http(s)://addr` (an address that names its scheme is kept).
    pub fn base(&self, addr: &str) -> String {
        if addr.starts_with("http://") || addr.starts_with("https://") {
            addr.to_string()
        } else if self.https {
            format!("https://{addr}")
        } else {
            format!("http://{addr}")
        }
    }
}

/// Makes ring the process's TLS crypto provider, which every rustls client and server without
/// one of its own (mysql_async's TLS to sources and targets) uses. A build that also links
/// another provider (aws-lc-rs, through a dependency's features) has no default otherwise, and
/// rustls would panic at the first TLS connection.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
