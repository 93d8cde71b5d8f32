//! `keta monitor-sim`: bedside monitors for the demo, the tests and the benchmark. One MLLP
//! connection per chair sends an ORU^R01 per reading and waits for its ACK (as MLLP's
//! original mode requires); chair 3 desaturates and chair 2's blood pressure climbs into the
//! severe range part-way through. Prints what the server answered and the ACK latencies.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use keta_mllp::sim::{Noise, Scenario, oru_r01, values_at};
use keta_mllp::{AckCode, FrameDecoder, FrameEvent, encode_frame, read_ack};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(clap::Args, Debug)]
pub struct MonitorSimOptions {
    /// The MLLP listener (`keta serve --mllp-bind`).
    #[arg(long)]
    to: SocketAddr,
    /// How many chairs (monitors); each sends as PV1-3 `<location>^^CHAIR-<n>`.
    #[arg(long, default_value_t = 4)]
    chairs: u32,
    /// Milliseconds between readings on each monitor.
    #[arg(long, default_value_t = 5000)]
    interval_ms: u64,
    /// Readings per monitor, then stop.
    #[arg(long, default_value_t = 60)]
    readings: u64,
    /// PV1-3 point of care before the bed.
    #[arg(long, default_value = "INFUSION")]
    location: String,
    /// Reading at which the episodes start, and how many readings they last.
    #[arg(long, default_value_t = 6)]
    episode_start: u64,
    #[arg(long, default_value_t = 12)]
    episode_len: u64,
    /// Send every message twice (the second must be acknowledged and not recorded again).
    #[arg(long)]
    duplicates: bool,
}

#[derive(Default)]
struct Tally {
    sent: u64,
    accepted: u64,
    errors: u64,
    rejected: u64,
    latencies_us: Vec<u64>,
}

fn scenario_of(chair: u32) -> Scenario {
    match chair {
        3 => Scenario::Desaturation,
        2 => Scenario::Hypertension,
        _ => Scenario::Steady,
    }
}

async fn read_one_ack(
    stream: &mut TcpStream,
    decoder: &mut FrameDecoder,
    pending: &mut Vec<FrameEvent>,
) -> anyhow::Result<(AckCode, String)> {
    let mut buf = [0u8; 4096];
    loop {
        if let Some(pos) = pending.iter().position(|e| matches!(e, FrameEvent::Frame(_))) {
            let FrameEvent::Frame(f) = pending.remove(pos) else { unreachable!() };
            return read_ack(&String::from_utf8_lossy(&f)).context("the answer is not an ACK");
        }
        let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf))
            .await
            .context("no ACK within 30 s")??;
        if n == 0 {
            bail!("the listener closed the connection");
        }
        decoder.push(&buf[..n], pending);
    }
}

async fn run_chair(o: &MonitorSimOptions, chair: u32) -> anyhow::Result<Tally> {
    let mut stream = TcpStream::connect(o.to).await.with_context(|| format!("connecting to {}", o.to))?;
    stream.set_nodelay(true)?;
    let mut decoder = FrameDecoder::new(1 << 20);
    let mut pending = Vec::new();
    let mut noise = Noise::new(u64::from(chair));
    let mut tally = Tally::default();
    let location = format!("{}^^CHAIR-{chair}", o.location);
    let start = tokio::time::Instant::now();
    // Spread the chairs over the interval, as real monitors are not in step.
    let offset = Duration::from_millis(o.interval_ms * u64::from(chair - 1) / u64::from(o.chairs.max(1)));
    let run_id = OffsetDateTime::now_utc().unix_timestamp();
    for step in 0..o.readings {
        tokio::time::sleep_until(start + offset + Duration::from_millis(o.interval_ms * step)).await;
        let v = values_at(scenario_of(chair), step, o.episode_start, o.episode_len, &mut noise);
        let control = format!("SIM{run_id}-{chair}-{step}");
        let msg = oru_r01(&control, &location, &format!("CHAIR-{chair}"), OffsetDateTime::now_utc(), &v);
        let frame = encode_frame(msg.as_bytes());
        for _ in 0..if o.duplicates { 2 } else { 1 } {
            let t = Instant::now();
            stream.write_all(&frame).await?;
            let (code, echoed) = read_one_ack(&mut stream, &mut decoder, &mut pending).await?;
            tally.latencies_us.push(t.elapsed().as_micros() as u64);
            if echoed != control {
                bail!("chair {chair}: the ACK echoed '{echoed}', not the control id '{control}'");
            }
            tally.sent += 1;
            match code {
                AckCode::Accept => tally.accepted += 1,
                AckCode::Error => tally.errors += 1,
                AckCode::Reject => tally.rejected += 1,
            }
        }
    }
    Ok(tally)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

pub async fn run(o: MonitorSimOptions) -> anyhow::Result<()> {
    if o.chairs == 0 || o.chairs > 500 {
        bail!("--chairs must be from 1 to 500");
    }
    let o = std::sync::Arc::new(o);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for chair in 1..=o.chairs {
        let o = o.clone();
        tasks.push(tokio::spawn(async move { run_chair(&o, chair).await }));
    }
    let mut all = Tally::default();
    for t in tasks {
        let c = t.await??;
        all.sent += c.sent;
        all.accepted += c.accepted;
        all.errors += c.errors;
        all.rejected += c.rejected;
        all.latencies_us.extend(c.latencies_us);
    }
    let secs = started.elapsed().as_secs_f64();
    all.latencies_us.sort_unstable();
    println!(
        "{{\"chairs\":{},\"messages\":{},\"accepted\":{},\"application_errors\":{},\"rejected\":{},\"seconds\":{:.2},\"messages_per_s\":{:.1},\"ack_ms_p50\":{:.2},\"ack_ms_p95\":{:.2},\"ack_ms_p99\":{:.2},\"ack_ms_max\":{:.2}}}",
        o.chairs,
        all.sent,
        all.accepted,
        all.errors,
        all.rejected,
        secs,
        all.sent as f64 / secs,
        percentile(&all.latencies_us, 0.5),
        percentile(&all.latencies_us, 0.95),
        percentile(&all.latencies_us, 0.99),
        percentile(&all.latencies_us, 1.0),
    );
    Ok(())
}
