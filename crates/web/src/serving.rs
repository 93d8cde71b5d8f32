//! Serving a clinic's network: staff sign-in needs HTTPS away from the server
//! itself (the session cookie is `Secure`, and browsers send the headers that prove a form
//! came from Keta only to secure origins). Two ways, documented in `docs/serving.md`:
//!
//! * `keta serve --tls-cert FILE --tls-key FILE`: Keta terminates TLS itself (rustls, PEM
//!   files, e.g. from the clinic's own CA or an ACME client).
//! * Behind a reverse proxy that terminates TLS: the proxy must pass `Host` (or
//!   `X-Forwarded-Host`) as the browser sent it and `X-Forwarded-For`; Keta trusts those
//!   headers only from the addresses listed in `trusted_proxies`.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;

use crate::AppState;

/// The reverse proxies whose forwarding headers are believed (exact addresses).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(pub Vec<IpAddr>);

impl TrustedProxies {
    /// Parses a comma-separated list of IP addresses, e.g. `127.0.0.1, ::1`.
    pub fn parse(s: &str) -> Result<Self, String> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<IpAddr>().map_err(|_| {
                    format!("trusted_proxies: '{p}' is not an IP address (list the proxy's own addresses)")
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip)
    }
}

/// For a request from a trusted proxy: the browser's address (the right-most
/// `X-Forwarded-For` entry, the one the proxy itself added) replaces the proxy's, and
/// `X-Forwarded-Host` replaces `Host`, so sign-in throttling, the audit trail and the
/// same-origin check see the browser's view. From anyone else these headers are ignored.
pub async fn forwarded_from_trusted_proxy(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    if peer.is_some_and(|p| st.trusted_proxies.trusts(p.ip())) {
        let forwarded_for = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .next_back();
        if let Some(ip) = forwarded_for {
            req.extensions_mut().insert(ConnectInfo(SocketAddr::new(ip, 0)));
        }
        if let Some(host) = req.headers().get("x-forwarded-host").and_then(|v| v.to_str().ok())
            && let Ok(v) = HeaderValue::from_str(host.split(',').next().unwrap_or("").trim())
        {
            req.headers_mut().insert(header::HOST, v);
        }
    }
    next.run(req).await
}

/// Reads a PEM certificate chain and private key into a rustls server configuration
/// (HTTP/1.1 only, as `axum::serve` speaks it). Errors name the file and what is wrong.
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("reading the TLS certificate {}: {e}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the TLS certificate {} is not valid PEM: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no certificate (expected PEM 'BEGIN CERTIFICATE')", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("reading the TLS private key {}: {e} (expected a PEM private key)", key.display()))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("the TLS certificate and key do not fit together: {e}"))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// A TCP listener whose connections are TLS: handshakes run in their own tasks (a slow or
/// failed one holds up nobody), and only finished ones are handed to the server.
pub struct TlsListener {
    rx: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

/// How long a client may take over the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl TlsListener {
    pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (stream, addr) = match tcp.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, handed) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = handed.send((tls, addr)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%addr, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
                    }
                });
                if tx.is_closed() {
                    break;
                }
            }
        });
        Ok(Self { rx, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(x) => x,
            // The accept loop ended (the server is shutting down): accept nothing more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Serves over TLS until `shutdown` resolves.
pub async fn serve_tls(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = TlsListener::new(listener, config)?.tap_io(|_| {});
    let obs = state.observe.clone();
    let server = axum::serve(listener, crate::router(state).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(crate::shutdown::begin_on(obs.clone(), shutdown));
    crate::shutdown::bounded(obs, server).await
}
