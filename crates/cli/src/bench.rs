//! `keta bench`: builds a large synthetic clinic (thousands of patients, years of sessions,
//! vitals and scores, through the batch import) on SQLite in a temporary folder and, when a
//! PostgreSQL server is given, in a fresh `keta_bench_<random>` database that is dropped
//! afterwards; then measures, on each backend:
//!
//! * patient-chart reads (`Store::patient_chart` on random patients, one at a time):
//!   median and p99, beside a trivial read (`SELECT 1` through the same pool) as baseline;
//! * sustained durable vitals writes per second through `Store::record_vitals` (the real
//!   audited path, alerts evaluated) with 1 and 16 concurrent writers, each on its own
//!   checked-in session, beside a baseline of bare durable one-row commits through the
//!   same writer.
//!
//! The result is printed as markdown (and written to `--out`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use anyhow::Context;
use futures::StreamExt;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use time::{Duration, OffsetDateTime};

use keta_domain::access::Role;
use keta_domain::course::{NewCourse, Phase, Route};
use keta_domain::eligibility::{AntidepressantTrial, TrialOutcome};
use keta_domain::ids::{ChairId, CourseId, PatientId, SessionId, SiteId};
use keta_domain::patient::{Indication, NewPatient, NewWeight, Sex, WeightType};
use keta_domain::records::{CompletedBy, NewEligibilityAssessment, VitalsSource};
use keta_domain::session::{NewSession, SessionAction};
use keta_domain::site::NewSite;
use keta_domain::units::{BeatsPerMinute, BreathsPerMinute, Kilograms, Mmhg, Percent};
use keta_domain::vitals::VitalSigns;
use keta_store::import::{HistoricalCheckIn, HistoricalResponse, HistoricalSession};
use keta_store::{Actor, SiteScope, Store};

use crate::demo::{Physiology, SessionEvent, SessionSpec, SiteClock, answers_for, normal, phq9_answers, synth_session};

#[derive(clap::Args, Debug)]
pub struct BenchOptions {
    /// Patients in the synthetic clinic.
    #[arg(long, default_value_t = 5000)]
    patients: usize,
    /// Years of history.
    #[arg(long, default_value_t = 3)]
    years: u32,
    /// A PostgreSQL server to benchmark too (a fresh database is created on it and dropped).
    #[arg(long, env = "KETA_TEST_POSTGRES_URL")]
    postgres_url: Option<String>,
    /// Benchmark SQLite only, even if a PostgreSQL URL is configured.
    #[arg(long)]
    sqlite_only: bool,
    /// Also write the markdown report here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Patient-chart reads to time.
    #[arg(long, default_value_t = 2000)]
    reads: usize,
    /// Seconds each write measurement runs.
    #[arg(long, default_value_t = 4.0)]
    seconds: f64,
    /// Rounds of write measurements (interleaved with their baselines); the median is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seed for the synthetic clinic.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Folder for the SQLite database (default: the system temp folder).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Past check-in links added per patient before the "many links" sweep is timed.
    #[arg(long, default_value_t = 60)]
    links_per_patient: usize,
}

struct Dataset {
    patients: usize,
    sessions: i64,
    vitals: i64,
    responses: i64,
    alerts: i64,
    audit: i64,
    build: StdDuration,
}

struct Latency {
    p50: StdDuration,
    p99: StdDuration,
    max: StdDuration,
}

/// Operations per second over the rounds.
#[derive(Default)]
struct Rate(Vec<f64>);

impl Rate {
    fn median(&self) -> f64 {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        if v.is_empty() { 0.0 } else { v[v.len() / 2] }
    }
    fn range(&self) -> String {
        let min = self.0.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.0.iter().copied().fold(0.0, f64::max);
        format!("{min:.0}-{max:.0}")
    }
}

struct Results {
    backend: &'static str,
    data: Dataset,
    chart: Latency,
    audit_append: Latency,
    ping: Latency,
    vitals_1: Rate,
    vitals_16: Rate,
    /// PostgreSQL only: 16 writers through earlier designs ([`Variant`]), on the same database
    /// in the same rounds.
    vitals_16_variants: Vec<(&'static Variant, Rate)>,
    /// Vitals writes sent in one round trip, judged from memory (PostgreSQL).
    vitals_from_memory: u64,
    commit_1: Rate,
    commit_16: Rate,
    /// Session vitals reads through the audited path, and the same read with no audit entry.
    vitals_read_audited: Latency,
    vitals_read_bare: Latency,
    /// A check-in sweep with nothing to do: on the clinic as built, then with many past links.
    sweep_fresh: StdDuration,
    sweep_many: StdDuration,
    links_fresh: i64,
    links_many: i64,
}

pub async fn run(opts: BenchOptions) -> anyhow::Result<()> {
    anyhow::ensure!(opts.patients >= 20, "use at least 20 patients");
    let mut results = Vec::new();

    let dir = match &opts.dir {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    eprintln!("== SQLite ({})", dir.path().display());
    let store = Store::open(&url).await?;
    results.push(bench_backend("SQLite", &store, Vec::new(), &opts).await?);
    drop(store);
    drop(dir);

    if let Some(server) = opts.postgres_url.clone().filter(|s| !s.trim().is_empty() && !opts.sqlite_only) {
        let name = format!("keta_bench_{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff);
        eprintln!("== PostgreSQL (database {name})");
        keta_store::harness::create_postgres_database(&server, &name)
            .await
            .context("creating the benchmark database")?;
        let outcome = async {
            let url = with_database(&server, &name);
            let store = Store::open(&url).await?;
            let mut variants = Vec::new();
            for v in &VARIANTS {
                variants.push((
                    v,
                    Store::open(&format!("{url}{}{}", if url.contains('?') { '&' } else { '?' }, v.setting)).await?,
                ));
            }
            let r = bench_backend("PostgreSQL", &store, variants, &opts).await;
            drop(store);
            r
        }
        .await;
        keta_store::harness::drop_postgres_database(&server, &name).await.context("dropping the benchmark database")?;
        results.push(outcome?);
    }

    let report = report(&opts, &results);
    println!("{report}");
    if let Some(path) = &opts.out {
        std::fs::write(path, &report).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// An earlier design of the PostgreSQL vitals write, kept behind a URL setting so that a run
/// measures it beside the current one.
struct Variant {
    setting: &'static str,
    what: &'static str,
}

const VARIANTS: [Variant; 2] = [
    Variant {
        setting: "vitals_memory=off",
        what: "every reading reads its session's facts in its own write, two round trips (before the memory of docs/decisions/0004's last addendum)",
    },
    Variant {
        setting: "audit_chain=inline",
        what: "two round trips, and each writer chains its audit entry under one lock (before docs/decisions/0005)",
    },
];

/// Replaces the database name in a postgres URL.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

// Long on purpose: one benchmark run, stage after stage (reads, audited reads, writes, the sweep, the chain check) on
// the same data, each measured beside its baseline.
#[allow(clippy::too_many_lines)]
async fn bench_backend(
    backend: &'static str,
    store: &Store,
    variants: Vec<(&'static Variant, Store)>,
    opts: &BenchOptions,
) -> anyhow::Result<Results> {
    let started = Instant::now();
    let (patients, courses) = build(store, opts).await?;
    let build = started.elapsed();
    let data = count(store, patients.len(), build).await?;
    store.bench_analyze().await?;
    eprintln!(
        "   built {} patients, {} sessions, {} vitals, {} questionnaires in {:.1} s",
        data.patients,
        data.sessions,
        data.vitals,
        data.responses,
        build.as_secs_f64()
    );

    // Reads.
    let reader = Actor::staff("bench.prescriber", Role::Prescriber, SiteScope::All);
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0x5eed);
    let mut sample =
        |n: usize| -> Vec<PatientId> { (0..n).map(|_| *patients.choose(&mut rng).expect("patients")).collect() };
    for id in sample(200) {
        store.patient_chart(&reader, id).await?;
    }
    let mut times = Vec::with_capacity(opts.reads);
    for id in sample(opts.reads) {
        let t = Instant::now();
        let chart = store.patient_chart(&reader, id).await?;
        times.push(t.elapsed());
        std::hint::black_box(chart);
    }
    let chart = latency(times);
    let mut times = Vec::with_capacity(opts.reads);
    for _ in 0..opts.reads {
        let t = Instant::now();
        store.ping().await?;
        times.push(t.elapsed());
    }
    let ping = latency(times);
    // Every chart read appends a read entry to the audit trail, durably: timed alone here.
    let mut times = Vec::with_capacity(opts.reads / 4);
    for id in sample(opts.reads / 4) {
        let t = Instant::now();
        store.audit_read(&reader, "bench", None, Some(id)).await?;
        times.push(t.elapsed());
    }
    let audit_append = latency(times);
    eprintln!(
        "   chart p50 {:.2} ms, p99 {:.2} ms (of which the read's audit append p50 {:.2} ms)",
        ms(chart.p50),
        ms(chart.p99),
        ms(audit_append.p50)
    );

    // Session vitals: the audited read (one entry per request) beside the same read unaudited,
    // interleaved so a slow spell hits both alike.
    let (vitals_read_audited, vitals_read_bare) = vitals_reads(store, &reader, opts.reads).await?;
    eprintln!(
        "   vitals read p50 {:.3} ms audited, {:.3} ms unaudited ({:.2}x)",
        ms(vitals_read_audited.p50),
        ms(vitals_read_bare.p50),
        ms(vitals_read_audited.p50) / ms(vitals_read_bare.p50).max(1e-9)
    );

    // Writes: bare durable commits, then record_vitals, with 1 and 16 writers.
    store.bench_create_baseline_table().await?;
    let sessions = Arc::new(active_sessions(store, &courses, 17).await?);
    let secs = StdDuration::from_secs_f64(opts.seconds);
    let st = store.clone();
    let commit = move |w: usize, n: u64| {
        let store = st.clone();
        async move { store.bench_baseline_commit(w as i64, n as i64).await }
    };
    let nurse = Actor::staff("bench.nurse", Role::Nurse, SiteScope::All);
    let vitals_on = move |st: Store| {
        let nurse = nurse.clone();
        let sessions = sessions.clone();
        move |w: usize, n: u64| {
            let store = st.clone();
            let nurse = nurse.clone();
            let session = sessions[w];
            async move {
                let v = VitalSigns {
                    systolic_mmhg: Some(Mmhg(118.0 + (n % 7) as f64)),
                    diastolic_mmhg: Some(Mmhg(76.0 + (n % 5) as f64)),
                    heart_rate_bpm: Some(BeatsPerMinute(70.0 + (n % 9) as f64)),
                    spo2_pct: Some(Percent(98.0)),
                    resp_rate_per_min: Some(BreathsPerMinute(14.0)),
                };
                store.record_vitals(&nurse, session, v, None, VitalsSource::Monitor).await.map(|_| ())
            }
        }
    };
    let vitals = vitals_on(store.clone());
    let variants: Vec<_> = variants.into_iter().map(|(v, st)| (v, vitals_on(st))).collect();
    let mut vitals_16_variants: Vec<(&'static Variant, Rate)> =
        variants.iter().map(|(v, _)| (*v, Rate::default())).collect();
    let one = vitals.clone();
    let single = move |_: usize, n: u64| one(16, n);
    // Interleaved rounds, so a slow spell of the disk hits baseline and measurement alike.
    let (mut commit_1, mut commit_16, mut vitals_1, mut vitals_16) =
        (Rate::default(), Rate::default(), Rate::default(), Rate::default());
    for round in 0..opts.rounds.max(1) {
        commit_1.0.push(throughput(1, secs, commit.clone()).await?);
        vitals_1.0.push(throughput(1, secs, single.clone()).await?);
        commit_16.0.push(throughput(16, secs, commit.clone()).await?);
        vitals_16.0.push(throughput(16, secs, vitals.clone()).await?);
        for ((variant, write), (_, rate)) in variants.iter().zip(vitals_16_variants.iter_mut()) {
            rate.0.push(throughput(16, secs, write.clone()).await?);
            eprintln!("   round {}: vitals/s with {}, 16 writers: {:.0}", round + 1, variant.setting, rate.0[round]);
        }
        eprintln!(
            "   round {}: vitals/s {:.0} (1 writer), {:.0} (16 writers); bare commits/s {:.0}, {:.0}",
            round + 1,
            vitals_1.0[round],
            vitals_16.0[round],
            commit_1.0[round],
            commit_16.0[round]
        );
    }

    // The check-in sweep with nothing to do, before and after past links accumulate.
    let (sweep_fresh, links_fresh) = noop_sweep(store).await?;
    add_past_links(store, opts.links_per_patient).await?;
    let (sweep_many, links_many) = noop_sweep(store).await?;
    eprintln!(
        "   no-op sweep {:.3} s with {links_fresh} links, {:.3} s with {links_many} links ({:.2}x)",
        sweep_fresh.as_secs_f64(),
        sweep_many.as_secs_f64(),
        sweep_many.as_secs_f64() / sweep_fresh.as_secs_f64().max(1e-9)
    );

    // The audit chain must still verify after all of that.
    let (_, broken) = store.verify_audit_chain().await?;
    anyhow::ensure!(broken.is_none(), "audit chain broken after the benchmark: {broken:?}");

    Ok(Results {
        backend,
        data,
        chart,
        audit_append,
        ping,
        vitals_1,
        vitals_16,
        vitals_16_variants,
        vitals_from_memory: store.vitals_written_from_memory(),
        commit_1,
        commit_16,
        vitals_read_audited,
        vitals_read_bare,
        sweep_fresh,
        sweep_many,
        links_fresh,
        links_many,
    })
}

/// Reads random sessions' vitals through `Store::list_vitals` (permission, site scope, one
/// audit entry) and through the same query with no audit entry, alternately.
async fn vitals_reads(store: &Store, reader: &Actor, n: usize) -> anyhow::Result<(Latency, Latency)> {
    let ids = store.bench_sessions_with_vitals(500).await?;
    anyhow::ensure!(!ids.is_empty(), "no sessions with vitals to read");
    let (mut audited, mut bare) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        let id = ids[i % ids.len()];
        let t = Instant::now();
        std::hint::black_box(store.list_vitals(reader, id).await?);
        audited.push(t.elapsed());
        let t = Instant::now();
        let v = store.bench_vitals_unaudited(reader, id).await?;
        bare.push(t.elapsed());
        std::hint::black_box(v);
    }
    Ok((latency(audited), latency(bare)))
}

/// Runs the sweep until it has nothing to do, then times one more run: the no-op sweep a
/// server repeats every few minutes. Returns that time and the number of links stored.
async fn noop_sweep(store: &Store) -> anyhow::Result<(StdDuration, i64)> {
    for _ in 0..3 {
        if store.sweep_checkins().await?.issued.is_empty() {
            break;
        }
    }
    let t = Instant::now();
    let r = store.sweep_checkins().await?;
    let took = t.elapsed();
    anyhow::ensure!(r.issued.is_empty() && r.expired == 0, "the timed sweep was not a no-op");
    let links = store.record_counts().await?.checkin_links;
    Ok((took, links))
}

/// Adds `per_patient` past check-ins to every patient with a course, as a clinic has after
/// months of weekly links: most completed, some expired, each with its events.
async fn add_past_links(store: &Store, per_patient: usize) -> anyhow::Result<()> {
    Ok(store.bench_add_past_links(per_patient).await?)
}

/// Runs `writers` loops of `op` for `secs` and returns completed operations per second.
async fn throughput<F, Fut>(writers: usize, secs: StdDuration, op: F) -> anyhow::Result<f64>
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = keta_store::Result<()>> + Send + 'static,
{
    let start = Instant::now();
    let deadline = start + secs;
    let mut tasks = Vec::with_capacity(writers);
    for w in 0..writers {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                op(w, n).await?;
                n += 1;
            }
            keta_store::Result::<u64>::Ok(n)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

fn latency(mut v: Vec<StdDuration>) -> Latency {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
    Latency { p50: at(0.5), p99: at(0.99), max: *v.last().expect("samples") }
}

fn ms(d: StdDuration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn count(store: &Store, patients: usize, build: StdDuration) -> anyhow::Result<Dataset> {
    let n = store.record_counts().await?;
    let (sessions, vitals, responses, alerts, audit) =
        (n.sessions, n.vitals, n.questionnaire_responses, n.alerts, n.audit_entries);
    Ok(Dataset { patients, sessions, vitals, responses, alerts, audit, build })
}

/// Checked-in sessions for the write benchmark, on different patients.
async fn active_sessions(store: &Store, courses: &[CourseId], n: usize) -> anyhow::Result<Vec<SessionId>> {
    let actor = Actor::system();
    let mut out = Vec::with_capacity(n);
    for &course in courses.iter().step_by((courses.len() / n).max(1)).take(n) {
        let s = store
            .create_session(
                &actor,
                course,
                NewSession { scheduled_for: store.now(), chair_id: None, planned_dose_mg: None },
            )
            .await?;
        store.act_on_session(&actor, s.id, SessionAction::CheckIn).await?;
        out.push(s.id);
    }
    anyhow::ensure!(out.len() == n, "not enough courses for {n} sessions");
    Ok(out)
}

// =======================================================================================
// The synthetic clinic
// =======================================================================================

const SITES: [(&str, &str, &str); 2] =
    [("BAUS", "Austin (bench)", "America/Chicago"), ("BDEN", "Denver (bench)", "America/Denver")];
const CHAIRS: usize = 12;

/// One patient's records, drawn from its own RNG so patients can be built in parallel.
struct PatientRecords {
    new: NewPatient,
    weight: NewWeight,
    trials: Vec<AntidepressantTrial>,
    assessment: NewEligibilityAssessment,
    courses: Vec<NewCourse>,
    /// (course slot, chair index, session with placeholder ids)
    sessions: Vec<(usize, Option<usize>, HistoricalSession)>,
    check_ins: Vec<(usize, HistoricalResponse)>,
}

// Long on purpose: one patient's records drawn from its own RNG in a fixed order, which the benchmark's data rest on.
#[allow(clippy::too_many_lines)]
fn draw_patient(seed: u64, i: usize, site: usize, years: u32, now: OffsetDateTime) -> PatientRecords {
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i as u64);
    let rng = &mut rng;
    let clock = SiteClock::named(SITES[site].2);
    let today = clock.today(now);
    let day = |d: i64| today + Duration::days(d);
    let route = match rng.random_range(0..100) {
        0..=44 => Route::IvRacemic,
        45..=74 => Route::IntranasalEsketamine,
        75..=84 => Route::ImRacemic,
        85..=94 => Route::SublingualRacemic,
        _ => Route::OralRacemic,
    };
    let sex = if rng.random_bool(0.6) { Sex::Female } else { Sex::Male };
    let age = rng.random_range(21..=70);
    let phys = Physiology::sample(rng, age);
    let weight = normal(rng, if sex == Sex::Male { 86.0 } else { 71.0 }, 12.0).clamp(48.0, 135.0).round();
    let new = NewPatient {
        site_id: SiteId(0),
        mrn: format!("B{site}-{i:06}"),
        given_name: format!("Bench{i}"),
        family_name: ["Alvarez", "Chen", "Garcia", "Nakamura", "Okafor", "Patel", "Schmidt", "Tanaka"]
            .choose(rng)
            .expect("names")
            .to_string(),
        date_of_birth: today - Duration::days(age as i64 * 365 + rng.random_range(0..365)),
        sex,
        phone: None,
        email: None,
        indication: Indication::Depression,
        diagnoses: vec!["F33.2".into()],
        referring_clinician: None,
    };
    let span = i64::from(years) * 365;
    let intake = -rng.random_range(30..=span.max(31));
    let first = intake + rng.random_range(3..=6);
    let induction: Vec<i64> = match route {
        Route::IntranasalEsketamine => vec![0, 3, 7, 10, 14, 17, 21, 24],
        Route::IvRacemic | Route::ImRacemic => vec![0, 2, 4, 7, 9, 11],
        _ => vec![0, 4, 7, 11, 14, 18, 21, 25],
    }
    .into_iter()
    .map(|o| first + o)
    .filter(|&d| d <= -1)
    .collect();
    let end = *induction.last().unwrap_or(&first);
    let mut maintenance = Vec::new();
    if rng.random_bool(0.65) {
        let stop = (end + rng.random_range(60..=span.max(61))).min(-1);
        let mut k = end + rng.random_range(7..=21);
        while k <= stop {
            maintenance.push(k);
            k += match route {
                Route::IvRacemic | Route::ImRacemic => rng.random_range(21..=35),
                _ => rng.random_range(7..=14),
            };
        }
    }
    let mut courses = vec![NewCourse {
        route,
        phase: Phase::Induction,
        indication: None,
        planned_sessions: 8,
        start_date: day(first),
        protocol: None,
    }];
    if !maintenance.is_empty() {
        courses.push(NewCourse {
            route,
            phase: Phase::Maintenance,
            indication: None,
            planned_sessions: (maintenance.len() as u32 + 4).min(104),
            start_date: day(maintenance[0]),
            protocol: None,
        });
    }

    // PHQ-9: a fall towards a personal floor, then a slow wander in maintenance.
    let baseline = rng.random_range(12..=24) as f64;
    let floor = baseline * rng.random_range(0.15..1.0);
    let gad = rng.random_bool(0.3);
    let score_at = |rng: &mut ChaCha8Rng, d: i64| -> i32 {
        let t = (d - first).max(0) as f64;
        (floor + (baseline - floor) * (-t / 7.0).exp() + normal(rng, 0.0, 1.5)).round().clamp(0.0, 27.0) as i32
    };
    let questionnaires = |rng: &mut ChaCha8Rng, d: i64| -> crate::demo::Questionnaires {
        let phq = score_at(rng, d);
        let item9 = i32::from(phq >= 15 && rng.random_bool(0.05));
        let mut v = vec![("phq9", phq9_answers(rng, phq, item9))];
        if gad {
            let g = (f64::from(phq) * 0.7 + normal(rng, 0.0, 1.0)).round().clamp(0.0, 21.0) as i32;
            v.push(("gad7", answers_for(rng, "gad7", g)));
        }
        v
    };

    let dose = |index: usize| match route {
        Route::IvRacemic | Route::ImRacemic => (weight * 0.5 * 2.0).round() / 2.0,
        Route::IntranasalEsketamine => {
            if index == 0 {
                56.0
            } else {
                84.0
            }
        }
        Route::SublingualRacemic => 200.0,
        Route::OralRacemic => 150.0,
    };
    let mut sessions = Vec::new();
    let days: Vec<(usize, i64)> =
        induction.iter().map(|&d| (0, d)).chain(maintenance.iter().map(|&d| (1, d))).collect();
    for (index, &(slot, d)) in days.iter().enumerate() {
        let at_home = route.is_home() && index > 0;
        let chair = (!at_home).then(|| rng.random_range(0..CHAIRS));
        let qs = questionnaires(rng, d);
        let spec = SessionSpec {
            course_id: CourseId(0),
            route,
            chair: None,
            scheduled_for: clock.at_minute_of_day(day(d), rng.random_range(8 * 60..=15 * 60)),
            dose_mg: dose(index),
            dose_minutes: 0,
            index: index as u32,
            at_home,
            event: if rng.random_bool(0.01) { SessionEvent::BpSpike } else { SessionEvent::None },
            questionnaires: qs,
            acknowledged_by: Some("bench.nurse".into()),
            course_status_after: None,
        };
        sessions.push((slot, chair, synth_session(rng, &phys, spec)));
    }
    // Check-ins: weekly during induction, fortnightly after.
    let mut check_ins = Vec::new();
    let last = days.last().map_or(first, |x| x.1);
    let mut d = intake + 7;
    while d <= last.min(-1) {
        if !days.iter().any(|x| (x.1 - d).abs() <= 2) {
            let slot = usize::from(maintenance.first().is_some_and(|&m| d >= m - 2));
            let at = clock.at_minute_of_day(day(d), rng.random_range(18 * 60..=21 * 60));
            for (code, answers) in questionnaires(rng, d) {
                check_ins.push((
                    slot,
                    HistoricalResponse {
                        instrument: code.into(),
                        answers,
                        completed_at: at,
                        completed_by: CompletedBy::Patient,
                    },
                ));
            }
        }
        d += if d > end { 14 } else { 7 };
    }
    let trials = ["sertraline", "venlafaxine XR"]
        .iter()
        .map(|drug| AntidepressantTrial {
            drug: (*drug).into(),
            daily_dose_mg: None,
            weeks: 8,
            adequate: true,
            outcome: TrialOutcome::NoResponse,
            current_episode: true,
        })
        .collect();
    PatientRecords {
        new,
        weight: NewWeight { weight_kg: Kilograms(weight), measured_on: day(intake), weight_type: WeightType::Actual },
        trials,
        assessment: NewEligibilityAssessment { route, maudsley: None, contraindications_present: vec![] },
        courses,
        sessions,
        check_ins,
    }
}

/// Builds the clinic; returns the patients and each patient's latest course.
async fn build(store: &Store, opts: &BenchOptions) -> anyhow::Result<(Vec<PatientId>, Vec<CourseId>)> {
    let actor = Actor::system();
    let now = store.now();
    let mut sites = Vec::new();
    for (code, name, zone) in SITES {
        let site = store
            .create_site(
                &actor,
                NewSite { code: code.into(), name: name.into(), time_zone: zone.into(), crisis_line: "988".into() },
                (1..=CHAIRS).map(|i| format!("Chair {i}")).collect(),
            )
            .await?;
        let mut chairs = store.list_chairs(&actor, site.id).await?;
        chairs.sort_by_key(|c| c.name[6..].parse::<usize>().unwrap_or(0));
        sites.push((site.id, chairs.into_iter().map(|c| c.id).collect::<Vec<ChairId>>()));
    }
    let sites = Arc::new(sites);
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let total = opts.patients;
    let (seed, years) = (opts.seed, opts.years);
    // Each patient: draw its records on a worker thread, then its writes in order. Many
    // patients in flight keep the SQLite writer's batches full (and the PostgreSQL pool busy).
    let results: Vec<anyhow::Result<(PatientId, CourseId)>> = futures::stream::iter(0..total)
        .map(|i| {
            let store = store.clone();
            let sites = sites.clone();
            let done = done.clone();
            let actor = actor.clone();
            tokio::spawn(async move {
                let site = i % SITES.len();
                let rec = tokio::task::spawn_blocking(move || draw_patient(seed, i, site, years, now)).await?;
                let (site_id, chairs) = &sites[site];
                let mut new = rec.new;
                new.site_id = *site_id;
                let p = store.create_patient(&actor, new).await?;
                store.add_weight(&actor, p.id, rec.weight).await?;
                for t in rec.trials {
                    store.add_antidepressant_trial(&actor, p.id, t).await?;
                }
                store.assess_eligibility(&actor, p.id, rec.assessment).await?;
                let mut courses = Vec::new();
                for c in rec.courses {
                    courses.push(store.create_course(&actor, p.id, c).await?.id);
                }
                let sessions: Vec<HistoricalSession> = rec
                    .sessions
                    .into_iter()
                    .map(|(slot, chair, mut s)| {
                        s.course_id = courses[slot];
                        s.chair_id = chair.map(|c| chairs[c]);
                        s
                    })
                    .collect();
                let check_ins: Vec<HistoricalCheckIn> = rec
                    .check_ins
                    .into_iter()
                    .map(|(slot, response)| HistoricalCheckIn {
                        patient_id: p.id,
                        course_id: Some(courses[slot]),
                        response,
                        acknowledge_alerts: None,
                    })
                    .collect();
                store.import_history(&actor, sessions).await.with_context(|| format!("importing patient {i}"))?;
                store.import_responses(&actor, check_ins).await?;
                let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                if n.is_multiple_of(1000) {
                    eprintln!("   {n}/{total} patients ({:.0} s)", started.elapsed().as_secs_f64());
                }
                Ok((p.id, *courses.last().expect("a course")))
            })
        })
        .buffer_unordered(48)
        .map(|r| r.map_err(anyhow::Error::from).and_then(|x| x))
        .collect()
        .await;
    let mut patients = Vec::with_capacity(total);
    let mut courses = Vec::with_capacity(total);
    for r in results {
        let (p, c) = r?;
        patients.push(p);
        courses.push(c);
    }
    patients.sort_unstable();
    courses.sort_unstable();
    Ok((patients, courses))
}

// =======================================================================================
// The report
// =======================================================================================

fn report(opts: &BenchOptions, results: &[Results]) -> String {
    let mut s = String::new();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    s.push_str(&format!(
        "### keta bench: {} patients, {} years ({} CPU cores, {} chart reads, {} rounds of {:.0} s per write measurement)\n\n",
        opts.patients, opts.years, cpus, opts.reads, opts.rounds.max(1), opts.seconds
    ));
    s.push_str("| backend | patients | sessions | vitals | questionnaires | alerts | audit entries | build |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in results {
        let d = &r.data;
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.1} s |\n",
            r.backend,
            d.patients,
            d.sessions,
            d.vitals,
            d.responses,
            d.alerts,
            d.audit,
            d.build.as_secs_f64()
        ));
    }
    s.push_str(
        "\n| backend | chart read p50 | chart read p99 (target < 20 ms) | chart max | of which: the read's durable audit append, p50 / p99 | baseline read (`SELECT 1`) p50 / p99 |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for r in results {
        s.push_str(&format!(
            "| {} | {:.2} ms | {:.2} ms {} | {:.1} ms | {:.2} / {:.2} ms | {:.3} / {:.3} ms |\n",
            r.backend,
            ms(r.chart.p50),
            ms(r.chart.p99),
            if ms(r.chart.p99) < 20.0 { "✓" } else { "✗" },
            ms(r.chart.max),
            ms(r.audit_append.p50),
            ms(r.audit_append.p99),
            ms(r.ping.p50),
            ms(r.ping.p99),
        ));
    }
    s.push_str(&format!(
        "\nDurable writes per second, median of {} rounds (range in brackets); the baseline is a bare one-row durable commit through the same writer.\n\n",
        opts.rounds.max(1)
    ));
    s.push_str(
        "| backend | vitals writes/s, 1 writer | vitals writes/s, 16 writers (target ≥ 5,000 on SQLite) | bare commits/s, 1 writer | bare commits/s, 16 writers | vitals ÷ bare, 1 / 16 |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for r in results {
        s.push_str(&format!(
            "| {} | {:.0} ({}) | {:.0} ({}) {} | {:.0} ({}) | {:.0} ({}) | {:.2} / {:.2} |\n",
            r.backend,
            r.vitals_1.median(),
            r.vitals_1.range(),
            r.vitals_16.median(),
            r.vitals_16.range(),
            if r.backend != "SQLite" {
                ""
            } else if r.vitals_16.median() >= 5000.0 {
                "✓"
            } else {
                "✗"
            },
            r.commit_1.median(),
            r.commit_1.range(),
            r.commit_16.median(),
            r.commit_16.range(),
            r.vitals_1.median() / r.commit_1.median(),
            r.vitals_16.median() / r.commit_16.median(),
        ));
    }
    for r in results.iter().filter(|r| !r.vitals_16_variants.is_empty()) {
        s.push_str(&format!(
            "\n{}: vitals writes/s with 16 writers {:.0} ({}), target ≥ 5,000 {}; {} of this run's vitals writes went in one round trip, judged from memory. Against earlier designs, same database, same rounds:\n\n",
            r.backend,
            r.vitals_16.median(),
            r.vitals_16.range(),
            if r.vitals_16.median() >= 5000.0 { "✓" } else { "✗" },
            r.vitals_from_memory
        ));
        for (variant, rate) in &r.vitals_16_variants {
            s.push_str(&format!(
                "* `{}`: {}: {:.0} ({}); now **{:.1}×**\n",
                variant.setting,
                variant.what,
                rate.median(),
                rate.range(),
                r.vitals_16.median() / rate.median().max(1e-9)
            ));
        }
    }
    s.push_str(
        "\nReading a session's vitals (`GET /sessions/{id}/vitals`): the audited read writes one durable audit entry per request; the baseline is the same read with none.\n\n| backend | audited read p50 / p99 | unaudited read p50 / p99 | audited ÷ unaudited (p50) |\n|---|---:|---:|---:|\n",
    );
    for r in results {
        s.push_str(&format!(
            "| {} | {:.3} / {:.3} ms | {:.3} / {:.3} ms | {:.2} |\n",
            r.backend,
            ms(r.vitals_read_audited.p50),
            ms(r.vitals_read_audited.p99),
            ms(r.vitals_read_bare.p50),
            ms(r.vitals_read_bare.p99),
            ms(r.vitals_read_audited.p50) / ms(r.vitals_read_bare.p50).max(1e-9),
        ));
    }
    s.push_str(&format!(
        "\nA check-in sweep with nothing to do (the server repeats it every few minutes), on the clinic as built and after {} past links per course.\n\n| backend | links | no-op sweep | links (many) | no-op sweep (many) | many ÷ fresh |\n|---|---:|---:|---:|---:|---:|\n",
        opts.links_per_patient
    ));
    for r in results {
        s.push_str(&format!(
            "| {} | {} | {:.3} s | {} | {:.3} s | {:.2} |\n",
            r.backend,
            r.links_fresh,
            r.sweep_fresh.as_secs_f64(),
            r.links_many,
            r.sweep_many.as_secs_f64(),
            r.sweep_many.as_secs_f64() / r.sweep_fresh.as_secs_f64().max(1e-9),
        ));
    }
    s
}
