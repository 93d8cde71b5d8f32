//! Crash trials: a real `keta serve` is killed (SIGKILL) at a random moment while concurrent
//! writers record vitals, questionnaire responses and ledger counts over HTTP; after each
//! kill the database is opened again (crash recovery, as a restart does) and every write the
//! server acknowledged must be there exactly once, nothing unacknowledged twice, the SQLite
//! file must pass `PRAGMA integrity_check` and `keta audit verify` must pass. Then the server
//! is restarted and the next trial begins. See docs/reliability.md.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use keta_domain::ids::{PatientId, SessionId};
use keta_domain::ledger::LotId;
use keta_store::Store;
use rand::Rng;
use serde_json::{Value, json};

use crate::demo_accounts;

#[derive(clap::Args)]
pub struct CrashTrialOptions {
    /// A fresh database: sqlite://PATH or postgres://USER@HOST/DB. The demo clinic is built in it.
    #[arg(long)]
    database_url: String,
    /// How many kill -9 trials to run.
    #[arg(long, default_value_t = 100)]
    trials: u32,
    /// Concurrent writers over HTTP (8 to 16 is the brief; 1 to 64 accepted).
    #[arg(long, default_value_t = 12)]
    writers: usize,
    /// Earliest kill, in milliseconds after the writers start.
    #[arg(long, default_value_t = 200)]
    min_kill_ms: u64,
    /// Latest kill, in milliseconds after the writers start.
    #[arg(long, default_value_t = 1500)]
    max_kill_ms: u64,
    /// The keta binary to serve with (default: this one).
    #[arg(long)]
    keta_bin: Option<PathBuf>,
    /// Where the server's log goes (appended; default: a file in the temporary folder).
    #[arg(long)]
    server_log: Option<PathBuf>,
}

/// What a trial writes; each write carries a unique marker so it can be found afterwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Vitals,
    Response,
    LedgerCount,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Vitals, Kind::Response, Kind::LedgerCount];
    fn label(self) -> &'static str {
        match self {
            Kind::Vitals => "vitals",
            Kind::Response => "responses",
            Kind::LedgerCount => "ledger counts",
        }
    }
}

/// How a ledger count written by the trial names its marker.
const MARKER_PREFIX: &str = "crash trial marker ";

/// The chair the writers record into, found in the demo clinic.
struct Target {
    session_id: i64,
    session_state: String,
    patient_id: i64,
    lot_id: i64,
}

/// One signed-in API session shared by every writer (the TOTP code is single use, so one sign-in).
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
    cookie: String,
    csrf: String,
}

/// A write's outcome as the client saw it.
enum Outcome {
    Acknowledged,
    /// No 2xx: refused, failed, or cut off by the kill. It may or may not have been stored.
    NotAcknowledged {
        status: Option<u16>,
    },
}

struct Write {
    kind: Kind,
    marker: i64,
    outcome: Outcome,
}

// Long on purpose: the trial loop (start the server, write, kill -9, restart, check every acknowledged write) shares
// the server process and the record of what was acknowledged.
#[allow(clippy::too_many_lines)]
pub async fn run(o: CrashTrialOptions) -> anyhow::Result<()> {
    if !(1..=64).contains(&o.writers) {
        bail!("--writers must be between 1 and 64 (the trials are meant for 8 to 16)");
    }
    if o.min_kill_ms > o.max_kill_ms {
        bail!("--min-kill-ms must not be above --max-kill-ms");
    }
    let backend = if o.database_url.starts_with("sqlite:") { "sqlite" } else { "postgres" };
    let bin = match &o.keta_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe().context("finding the keta binary")?,
    };
    let log = o.server_log.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("keta-crash-{backend}.log")));

    let target = prepare(&o.database_url).await?;
    let port = free_port()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    println!(
        "crash trials on {backend}: {} trials, {} writers, kill between {} and {} ms; session {} ({}), patient {}, lot {}; server log {}",
        o.trials,
        o.writers,
        o.min_kill_ms,
        o.max_kill_ms,
        target.session_id,
        target.session_state,
        target.patient_id,
        target.lot_id,
        log.display()
    );

    // Markers are times in ms (vitals taken, questionnaire completed) or a reason text (counts);
    // all start two days back, at an odd millisecond, so no demo record shares one.
    let base_ms = (time::OffsetDateTime::now_utc().unix_timestamp() - 2 * 86_400) * 1000 + 417;
    let next_marker = Arc::new(AtomicI64::new(0));
    let mut acknowledged: BTreeMap<Kind, Vec<i64>> = BTreeMap::new();
    let mut unacknowledged: BTreeMap<Kind, Vec<i64>> = BTreeMap::new();
    let mut failures: Vec<String> = Vec::new();
    let mut present_unacked_total = 0usize;
    let started = Instant::now();

    let mut server = start_server(&bin, &o.database_url, addr, &log)?;
    wait_ready(addr).await?;
    let mut api = sign_in(addr).await?;
    if target.session_state == "scheduled" {
        api.post(
            &format!("/api/v1/sessions/{}/actions", target.session_id),
            &json!({"action": "check_in", "confirm_other_day": true, "reason": "crash trials record into this session"}),
        )
        .await
        .and_then(|(s, b)| if (200..300).contains(&s) { Ok(()) } else { bail!("checking in: {s} {b}") })?;
    }

    for trial in 1..=o.trials {
        api.reauthenticate().await.with_context(|| format!("trial {trial}: re-entering the password"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for w in 0..o.writers {
            let (api, stop, next) = (api.clone(), stop.clone(), next_marker.clone());
            let t = (target.session_id, target.patient_id, target.lot_id);
            tasks.push(tokio::spawn(async move { writer(w, api, stop, next, base_ms, t).await }));
        }
        let delay = rand::rng().random_range(o.min_kill_ms..=o.max_kill_ms);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        // kill -9: no shutdown hook runs.
        server.kill().context("killing the server")?;
        let _ = server.wait();
        stop.store(true, Ordering::SeqCst);
        let mut writes = Vec::new();
        for t in tasks {
            writes.extend(t.await.context("a writer panicked")?);
        }

        let mut trial_acked: BTreeMap<Kind, usize> = BTreeMap::new();
        let mut refused: BTreeMap<u16, usize> = BTreeMap::new();
        let mut trial_unacked = 0usize;
        for w in &writes {
            match w.outcome {
                Outcome::Acknowledged => {
                    *trial_acked.entry(w.kind).or_default() += 1;
                    acknowledged.entry(w.kind).or_default().push(w.marker);
                }
                Outcome::NotAcknowledged { status } => {
                    trial_unacked += 1;
                    if let Some(s) = status {
                        *refused.entry(s).or_default() += 1;
                    }
                    unacknowledged.entry(w.kind).or_default().push(w.marker);
                }
            }
        }

        let check = check(&o.database_url, &bin, &target, base_ms, &acknowledged, &unacknowledged).await;
        let (verdict, ok) = match check {
            Ok(c) => {
                present_unacked_total = c.unacknowledged_present;
                let ok = c.problems.is_empty();
                for p in &c.problems {
                    failures.push(format!("trial {trial}: {p}"));
                }
                let v = if ok {
                    format!(
                        "all {} acknowledged present once; {} unacknowledged stored once; integrity {}; audit verify ok",
                        c.acknowledged_checked, c.unacknowledged_present, c.integrity
                    )
                } else {
                    format!("FAILED: {}", c.problems.join("; "))
                };
                (v, ok)
            }
            Err(e) => {
                failures.push(format!("trial {trial}: the check could not run: {e:#}"));
                (format!("FAILED: the check could not run: {e:#}"), false)
            }
        };
        let per_kind: Vec<String> =
            Kind::ALL.iter().map(|k| format!("{} {}", trial_acked.get(k).copied().unwrap_or(0), k.label())).collect();
        let refused_text = if refused.is_empty() {
            String::new()
        } else {
            format!(" (HTTP {})", refused.iter().map(|(s, n)| format!("{s}×{n}")).collect::<Vec<_>>().join(", "))
        };
        println!(
            "trial {trial:>3}/{} {backend}: killed at {delay:>4} ms; acknowledged {}; not acknowledged {trial_unacked}{refused_text}; {verdict}",
            o.trials,
            per_kind.join(", ")
        );
        if !ok && failures.len() > 50 {
            break;
        }
        server = start_server(&bin, &o.database_url, addr, &log)?;
        wait_ready(addr).await.with_context(|| format!("trial {trial}: restarting the server"))?;
    }
    let _ = server.kill();
    let _ = server.wait();

    let total_acked: usize = acknowledged.values().map(Vec::len).sum();
    let total_unacked: usize = unacknowledged.values().map(Vec::len).sum();
    println!(
        "summary {backend}: {} trials in {:.0} s, {} writers; {total_acked} writes acknowledged ({}), {total_unacked} not acknowledged ({present_unacked_total} of them stored, once); {}",
        o.trials,
        started.elapsed().as_secs_f64(),
        o.writers,
        Kind::ALL
            .iter()
            .map(|k| format!("{} {}", acknowledged.get(k).map_or(0, Vec::len), k.label()))
            .collect::<Vec<_>>()
            .join(", "),
        if failures.is_empty() {
            "no loss, no duplicate, integrity and audit chain intact after every kill".to_string()
        } else {
            format!("{} FAILURES", failures.len())
        }
    );
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("{f}");
        }
        bail!("crash trials found {} problem(s) on {backend}", failures.len());
    }
    Ok(())
}

/// Builds the demo clinic in the fresh database and finds a session to record into.
async fn prepare(url: &str) -> anyhow::Result<Target> {
    let store = Store::open(url).await.with_context(|| format!("opening {url}"))?;
    crate::demo::ensure(&store, crate::demo::DEFAULT_SEED).await.context("building the demo clinic")?;
    demo_accounts::ensure(&store).await.context("creating the demo accounts")?;
    crate::demo_ledger::ensure(&store).await.context("building the demo ledger")?;
    let t = store.crash_trial_target().await?;
    Ok(Target { session_id: t.session.0, session_state: t.session_state, patient_id: t.patient.0, lot_id: t.lot.0 })
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn start_server(bin: &PathBuf, url: &str, addr: SocketAddr, log: &PathBuf) -> anyhow::Result<Child> {
    let out = std::fs::OpenOptions::new().create(true).append(true).open(log).context("opening the server log")?;
    let err = out.try_clone()?;
    Command::new(bin)
        .args(["serve", "--bind", &addr.to_string(), "--database-url", url])
        .env_remove("KETA_CONFIG")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))
}

async fn wait_ready(addr: SocketAddr) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Ok(r) = http.get(format!("http://{addr}/healthz")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the server on {addr} was not ready within 120 s")
}

fn session_cookie(r: &reqwest::Response) -> Option<String> {
    r.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
        let pair = v.split(';').next()?.trim();
        pair.starts_with("__Host-keta=").then(|| pair.to_string())
    })
}

/// Signs in as the demo nurse (who may record vitals, questionnaires and ledger counts).
async fn sign_in(addr: SocketAddr) -> anyhow::Result<Api> {
    let key = demo_accounts::demo_totp_key(keta_domain::access::Role::Nurse);
    let step = time::OffsetDateTime::now_utc().unix_timestamp().div_euclid(keta_store::credentials::TOTP_STEP_SECONDS);
    let code = keta_store::credentials::totp_at_step(&key, step).context("computing the TOTP code")?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let base = format!("http://{addr}");
    let r = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": "rn.demo", "password": demo_accounts::DEMO_PASSWORD, "code": code}))
        .send()
        .await?;
    let cookie = session_cookie(&r).context("signing in: no session cookie")?;
    let status = r.status();
    let body: Value = r.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!("signing in as rn.demo: {status} {body}");
    }
    let csrf = body["csrf_token"].as_str().context("signing in: no csrf_token")?.to_string();
    Ok(Api { http, base, cookie, csrf })
}

impl Api {
    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf)
            .json(body)
            .send()
            .await?;
        let s = r.status().as_u16();
        Ok((s, r.json().await.unwrap_or_default()))
    }

    /// Ledger entries need a password entered in the last minutes; this also rotates the cookie.
    async fn reauthenticate(&mut self) -> anyhow::Result<()> {
        let r = self
            .http
            .post(format!("{}/api/v1/auth/reauth", self.base))
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf)
            .json(&json!({"password": demo_accounts::DEMO_PASSWORD}))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("{} {}", r.status(), r.text().await.unwrap_or_default());
        }
        self.cookie = session_cookie(&r).context("no new session cookie")?;
        Ok(())
    }
}

fn rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).expect("a time in range");
    t.format(&time::format_description::well_known::Rfc3339).expect("formats")
}

/// One writer: writes until the server dies, rotating through the three kinds of record.
async fn writer(
    w: usize,
    api: Api,
    stop: Arc<AtomicBool>,
    next: Arc<AtomicI64>,
    base_ms: i64,
    (session, patient, lot): (i64, i64, i64),
) -> Vec<Write> {
    let mut out = Vec::new();
    let mut i = w;
    while !stop.load(Ordering::SeqCst) {
        let kind = Kind::ALL[i % 3];
        i += 1;
        let n = next.fetch_add(1, Ordering::SeqCst);
        let marker = base_ms + n;
        let (path, body) = match kind {
            // Plausible readings that vary, so none looks like a double entry.
            Kind::Vitals => (
                format!("/api/v1/sessions/{session}/vitals"),
                json!({"systolic_mmhg": 110 + n % 30, "diastolic_mmhg": 70 + n % 15, "heart_rate_bpm": 60 + n % 40,
                       "spo2_pct": 97, "resp_rate_per_min": 14, "taken_at": rfc3339(marker), "confirm_duplicate": true}),
            ),
            // A PHQ-9 with item 9 at zero: no safety alert.
            Kind::Response => (
                format!("/api/v1/patients/{patient}/responses"),
                json!({"instrument": "phq9", "answers": [1, 1, 1, 0, 1, 0, 1, 0, 0],
                       "completed_at": rfc3339(marker), "completed_by": "staff"}),
            ),
            Kind::LedgerCount => (
                "/api/v1/ledger/counts".to_string(),
                json!({"entry": {"lot_id": lot, "physical": {"ml": 0.0}, "reason": count_reason(marker)}}),
            ),
        };
        let outcome = match api.post(&path, &body).await {
            Ok((s, _)) if (200..300).contains(&s) => Outcome::Acknowledged,
            Ok((s, b)) => {
                if !stop.load(Ordering::SeqCst) && out.len() < 3 {
                    eprintln!("writer {w}: {} refused with {s}: {b}", kind.label());
                }
                Outcome::NotAcknowledged { status: Some(s) }
            }
            Err(_) => Outcome::NotAcknowledged { status: None },
        };
        let cut_off = matches!(outcome, Outcome::NotAcknowledged { status: None });
        out.push(Write { kind, marker, outcome });
        if cut_off {
            // The server is gone (or going); wait for the kill to be confirmed rather than spin.
            while !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    out
}

fn count_reason(marker: i64) -> String {
    format!("{MARKER_PREFIX}{marker}")
}

struct Checked {
    acknowledged_checked: usize,
    unacknowledged_present: usize,
    integrity: String,
    problems: Vec<String>,
}

/// Opens the database as a restart would (SQLite recovers its WAL here) and looks for every marker.
async fn check(
    url: &str,
    bin: &PathBuf,
    t: &Target,
    base_ms: i64,
    acked: &BTreeMap<Kind, Vec<i64>>,
    unacked: &BTreeMap<Kind, Vec<i64>>,
) -> anyhow::Result<Checked> {
    let store = Store::open(url).await.context("opening the database after the kill")?;
    let target = (SessionId(t.session_id), PatientId(t.patient_id), LotId(t.lot_id));
    let m = store.crash_trial_markers(target, base_ms, MARKER_PREFIX).await?;
    let mut found: HashMap<(Kind, i64), usize> = HashMap::new();
    for at in m.vitals_taken_at_ms {
        *found.entry((Kind::Vitals, at)).or_default() += 1;
    }
    for at in m.responses_completed_at_ms {
        *found.entry((Kind::Response, at)).or_default() += 1;
    }
    for reason in m.ledger_count_reasons {
        if let Some(n) = reason.strip_prefix(MARKER_PREFIX).and_then(|n| n.parse::<i64>().ok()) {
            *found.entry((Kind::LedgerCount, n)).or_default() += 1;
        }
    }
    let integrity = match m.sqlite_integrity {
        Some(lines) => lines.join(", "),
        None => "n/a (PostgreSQL)".to_string(),
    };
    drop(store);

    let mut problems = Vec::new();
    if integrity != "ok" && integrity != "n/a (PostgreSQL)" {
        problems.push(format!("PRAGMA integrity_check: {integrity}"));
    }
    let judged = judge(&found, acked, unacked);
    problems.extend(judged.problems);
    let (acknowledged_checked, unacknowledged_present) = (judged.acknowledged_checked, judged.unacknowledged_present);

    let verify = Command::new(bin)
        .args(["audit", "verify", "--database-url", url])
        .stdin(Stdio::null())
        .output()
        .context("running keta audit verify")?;
    if !verify.status.success() {
        problems.push(format!(
            "keta audit verify failed: {}{}",
            String::from_utf8_lossy(&verify.stdout).trim(),
            String::from_utf8_lossy(&verify.stderr).trim()
        ));
    }
    Ok(Checked { acknowledged_checked, unacknowledged_present, integrity, problems })
}

struct Judged {
    acknowledged_checked: usize,
    unacknowledged_present: usize,
    problems: Vec<String>,
}

/// The verdict on what was found: each acknowledged marker exactly once, none twice.
fn judge(
    found: &HashMap<(Kind, i64), usize>,
    acked: &BTreeMap<Kind, Vec<i64>>,
    unacked: &BTreeMap<Kind, Vec<i64>>,
) -> Judged {
    let mut problems = Vec::new();
    let mut acknowledged_checked = 0;
    for (kind, markers) in acked {
        for m in markers {
            acknowledged_checked += 1;
            match found.get(&(*kind, *m)).copied().unwrap_or(0) {
                1 => {}
                0 => problems.push(format!("LOST: acknowledged {} marker {m} is missing", kind.label())),
                n => problems.push(format!("DUPLICATE: acknowledged {} marker {m} is stored {n} times", kind.label())),
            }
        }
    }
    let mut unacknowledged_present = 0;
    for (kind, markers) in unacked {
        for m in markers {
            match found.get(&(*kind, *m)).copied().unwrap_or(0) {
                0 => {}
                1 => unacknowledged_present += 1,
                n => {
                    problems.push(format!("DUPLICATE: unacknowledged {} marker {m} is stored {n} times", kind.label()))
                }
            }
        }
    }
    Judged { acknowledged_checked, unacknowledged_present, problems }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn markers(v: &[(Kind, &[i64])]) -> BTreeMap<Kind, Vec<i64>> {
        v.iter().map(|(k, m)| (*k, m.to_vec())).collect()
    }

    #[test]
    fn a_lost_or_doubled_acknowledged_write_fails_the_trial() {
        let acked = markers(&[(Kind::Vitals, &[1, 2]), (Kind::LedgerCount, &[3])]);
        let unacked = markers(&[(Kind::Response, &[4, 5])]);
        let found: HashMap<_, _> =
            [((Kind::Vitals, 1), 1), ((Kind::Vitals, 2), 1), ((Kind::LedgerCount, 3), 1), ((Kind::Response, 4), 1)]
                .into();
        let j = judge(&found, &acked, &unacked);
        assert!(j.problems.is_empty(), "{:?}", j.problems);
        assert_eq!((j.acknowledged_checked, j.unacknowledged_present), (3, 1));

        // The same marker of another kind does not count: a ledger count is not a vitals reading.
        let mut lost = found.clone();
        lost.remove(&(Kind::Vitals, 2));
        lost.insert((Kind::Response, 2), 1);
        assert_eq!(judge(&lost, &acked, &unacked).problems, ["LOST: acknowledged vitals marker 2 is missing"]);

        let mut doubled = found.clone();
        doubled.insert((Kind::LedgerCount, 3), 2);
        doubled.insert((Kind::Response, 5), 2);
        assert_eq!(
            judge(&doubled, &acked, &unacked).problems,
            [
                "DUPLICATE: acknowledged ledger counts marker 3 is stored 2 times",
                "DUPLICATE: unacknowledged responses marker 5 is stored 2 times"
            ]
        );
    }
}
