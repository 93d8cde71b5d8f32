//! `GET /metrics` in the Prometheus text format (0.0.4), through `prometheus-client`.
//!
//! What it holds: request latency by route template, method and status class; SQLite's writer
//! queue depth and group-commit sizes; pooled connections in use; live-board (SSE) clients;
//! alerts raised and check-in reminders sent. Counts and durations only: no label carries a
//! raw path, a user or anything about a patient.
//!
//! Who may read it: a client on the server itself (loopback, after `trusted_proxies` has named
//! the real client), or anyone presenting the `metrics_token` setting as a bearer token.
//! Everyone else gets a 404 problem (the route does not advertise itself).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::AppState;

/// Live-board (server-sent events) streams open in this process.
pub static SSE_CLIENTS: AtomicI64 = AtomicI64::new(0);
/// Check-in reminders sent (e-mail or text accepted by the channel) by this process.
pub static CHECKINS_SENT: AtomicU64 = AtomicU64::new(0);

/// Counts one open live-board stream while it lives.
#[derive(Debug)]
pub struct SseClient(());

impl SseClient {
    pub fn open() -> Self {
        SSE_CLIENTS.fetch_add(1, Ordering::Relaxed);
        Self(())
    }
}

impl Drop for SseClient {
    fn drop(&mut self) {
        SSE_CLIENTS.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status_class: String,
}

/// Request latency buckets, seconds: the 100 ms target sits between two of them.
const LATENCY_BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Histogram, fn() -> Histogram>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    pub fn new(store: keta_store::Store) -> Self {
        let mut registry = Registry::with_prefix("keta");
        let requests = Family::<RequestLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's arrival to its response, by route template, method and status class",
            requests.clone(),
        );
        registry.register_collector(Box::new(ServerFigures { store }));
        Self { registry, requests }
    }

    pub fn observe_request(&self, route: &str, method: &str, status: u16, latency: Duration) {
        let labels = RequestLabels {
            route: route.to_string(),
            method: method.to_string(),
            status_class: format!("{}xx", status / 100),
        };
        self.requests.get_or_create(&labels).observe(latency.as_secs_f64());
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            .expect("writing to a String does not fail");
        out
    }
}

/// Figures read at scrape time: the store's engine, live streams, alerts, reminders.
struct ServerFigures {
    store: keta_store::Store,
}

impl std::fmt::Debug for ServerFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerFigures").finish_non_exhaustive()
    }
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> Result<(), std::fmt::Error> {
    let m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(v).encode(m)
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> Result<(), std::fmt::Error> {
    let m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(v).encode(m)
}

impl Collector for ServerFigures {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.store.stats();
        gauge(
            &mut e,
            "db_pool_in_use",
            "Pooled database connections busy now (SQLite: readers)",
            s.pool_in_use as i64,
        )?;
        gauge(&mut e, "db_pool_size", "The database pool's bound", s.pool_size as i64)?;
        if let Some(depth) = s.writer_queue_depth {
            gauge(&mut e, "sqlite_writer_queue_depth", "Writes waiting for the SQLite writer", depth as i64)?;
        }
        if let Some(cap) = s.writer_queue_capacity {
            gauge(&mut e, "sqlite_writer_queue_capacity", "The SQLite writer queue's bound", cap as i64)?;
        }
        if let Some(b) = s.write_batches {
            let mut m = e.encode_descriptor(
                "sqlite_write_batch_size",
                "Writes committed together by one SQLite group commit",
                None,
                MetricType::Histogram,
            )?;
            // Per-bucket counts: the encoder makes them cumulative and adds `+Inf` (= count).
            let buckets: Vec<(f64, u64)> = b.per_bucket.iter().map(|(le, n)| (*le as f64, *n)).collect();
            m.encode_histogram::<NoLabelSet>(b.sum as f64, b.count, &buckets, None)?;
        }
        gauge(
            &mut e,
            "sse_clients",
            "Live-board streams (server-sent events) open now",
            SSE_CLIENTS.load(Ordering::Relaxed),
        )?;
        counter(
            &mut e,
            "alerts_raised",
            "Clinical alerts raised by this process",
            keta_store::stats::ALERTS_RAISED.load(Ordering::Relaxed),
        )?;
        counter(
            &mut e,
            "checkins_sent",
            "Check-in reminders handed to e-mail or text delivery by this process",
            CHECKINS_SENT.load(Ordering::Relaxed),
        )?;
        Ok(())
    }
}

/// Constant-time comparison, so the token cannot be guessed byte by byte from timings.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `GET /metrics`: the Prometheus text format, for loopback clients or the bearer token.
pub async fn get_metrics(State(st): State<AppState>, req: axum::extract::Request) -> Response {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let local = peer.is_some_and(|ip| ip.is_loopback());
    let headers: &HeaderMap = req.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let token_ok = match (&st.observe.metrics_token, bearer) {
        (Some(want), Some(got)) => same(want.as_bytes(), got.as_bytes()),
        _ => false,
    };
    if !(local || token_ok) {
        return crate::error::ApiError::for_status(StatusCode::NOT_FOUND).into_response();
    }
    ([(header::CONTENT_TYPE, prometheus_client::encoding::prometheus_text::CONTENT_TYPE)], st.observe.metrics.render())
        .into_response()
}
