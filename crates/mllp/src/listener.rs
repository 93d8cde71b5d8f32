//! The MLLP listener: accepts connections from monitor gateways, splits their byte streams
//! into frames, hands each frame to a [`MessageHandler`] and writes back the ACK the handler
//! decides, only after the handler returns (the handler returns after its transaction has
//! committed). One task per connection, so a slow, stuck or hostile sender never delays
//! another; a connection idle too long, or a frame unfinished too long, is closed.
//!
//! Nothing here logs message content: counts, peers and reasons only.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::ack::{AckCode, build_ack};
use crate::frame::{FrameDecoder, FrameEvent, encode_frame};
use crate::message::parse_header;

/// One frame received.
#[derive(Debug, Clone)]
pub struct Received {
    pub peer: SocketAddr,
    /// The frame as text (invalid UTF-8 replaced), or the head of an oversized frame.
    pub text: String,
    /// The frame was larger than the limit; `text` is its head only.
    pub oversized: bool,
}

/// What to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: AckCode,
    /// Reason for AE/AR; no patient data.
    pub text: String,
}

/// Decides what a received frame means and stores it. `handle` returns only once what it
/// stored is durable: the ACK goes out after it.
pub trait MessageHandler: Send + Sync + 'static {
    fn handle(&self, received: Received) -> impl std::future::Future<Output = Reply> + Send;
}

/// Listener settings (`keta serve --mllp-*`).
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// Largest frame accepted, bytes.
    pub max_frame_bytes: usize,
    /// A connection silent this long is closed.
    pub idle_timeout: Duration,
    /// A frame started and not finished within this is abandoned and the connection closed.
    pub frame_timeout: Duration,
    /// Connections served at once; more are closed on accept.
    pub max_connections: usize,
    /// Peers allowed to connect; empty allows any peer that can reach the bind address.
    pub allowed_peers: Vec<IpAddr>,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            max_frame_bytes: 1024 * 1024,
            idle_timeout: Duration::from_secs(300),
            frame_timeout: Duration::from_secs(30),
            max_connections: 256,
            allowed_peers: Vec::new(),
        }
    }
}

/// Counters for the operator (no content).
#[derive(Debug, Default)]
pub struct ListenerStats {
    pub connections: AtomicU64,
    pub refused_peers: AtomicU64,
    pub frames: AtomicU64,
    pub oversized: AtomicU64,
    pub abandoned: AtomicU64,
}

static ACK_SEQUENCE: AtomicU64 = AtomicU64::new(0);

fn ack_control_id() -> String {
    format!("KETA{}-{}", OffsetDateTime::now_utc().unix_timestamp(), ACK_SEQUENCE.fetch_add(1, Ordering::Relaxed))
}

/// Serves connections until the task is dropped.
pub async fn serve<H: MessageHandler>(
    listener: TcpListener,
    config: ListenerConfig,
    handler: Arc<H>,
    stats: Arc<ListenerStats>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let config = Arc::new(config);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: wait and keep serving.
                tracing::warn!(error = %e, "mllp accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if !config.allowed_peers.is_empty() && !config.allowed_peers.contains(&peer.ip()) {
            stats.refused_peers.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(peer = %peer.ip(), "mllp connection from a peer not in the allowed list closed");
            drop(stream);
            continue;
        }
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!("mllp connection limit reached; connection closed");
            drop(stream);
            continue;
        };
        stats.connections.fetch_add(1, Ordering::Relaxed);
        let (config, handler, stats) = (config.clone(), handler.clone(), stats.clone());
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = serve_connection(stream, peer, &config, &*handler, &stats).await {
                tracing::debug!(peer = %peer.ip(), error = %e, "mllp connection ended");
            }
        });
    }
}

async fn serve_connection<H: MessageHandler>(
    mut stream: TcpStream,
    peer: SocketAddr,
    config: &ListenerConfig,
    handler: &H,
    stats: &ListenerStats,
) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut decoder = FrameDecoder::new(config.max_frame_bytes);
    let mut buf = vec![0u8; 16 * 1024];
    let mut events = Vec::new();
    let mut frame_started: Option<tokio::time::Instant> = None;
    loop {
        let wait = match frame_started {
            Some(t) => config.frame_timeout.saturating_sub(t.elapsed()).min(config.idle_timeout),
            None => config.idle_timeout,
        };
        let n = match tokio::time::timeout(wait, stream.read(&mut buf)).await {
            Ok(r) => r?,
            Err(_) => {
                if decoder.in_frame() {
                    stats.abandoned.fetch_add(1, Ordering::Relaxed);
                }
                return Ok(()); // idle, or a frame too slow: close.
            }
        };
        if n == 0 {
            if decoder.in_frame() {
                stats.abandoned.fetch_add(1, Ordering::Relaxed);
            }
            return Ok(());
        }
        decoder.push(&buf[..n], &mut events);
        for event in events.drain(..) {
            let received = match event {
                FrameEvent::Frame(bytes) => {
                    Received { peer, text: String::from_utf8_lossy(&bytes).into_owned(), oversized: false }
                }
                FrameEvent::Oversized { head } => {
                    stats.oversized.fetch_add(1, Ordering::Relaxed);
                    Received { peer, text: String::from_utf8_lossy(&head).into_owned(), oversized: true }
                }
                FrameEvent::Abandoned { .. } => {
                    stats.abandoned.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            stats.frames.fetch_add(1, Ordering::Relaxed);
            let header = parse_header(&received.text).ok();
            let reply = handler.handle(received).await;
            let ack = build_ack(header.as_ref(), reply.code, &reply.text, &ack_control_id(), OffsetDateTime::now_utc());
            stream.write_all(&encode_frame(ack.as_bytes())).await?;
        }
        frame_started = match (decoder.in_frame(), frame_started) {
            (true, Some(t)) => Some(t),
            (true, None) => Some(tokio::time::Instant::now()),
            (false, _) => None,
        };
    }
}
