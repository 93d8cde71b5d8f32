//! Typed vitals judged before they are sent, on PostgreSQL: one round trip instead of two
//! (docs/decisions/0004-concurrency.md, addendum "A reading judged from memory").
//!
//! To judge a reading, a vitals write needs the session (its state, its dose's start), its
//! baseline, its latest reading (the double-entry check) and its site's safety rules. Read in
//! the write itself ([`crate::sessions::insert_vitals`]), they cost a round trip before the
//! audit entry can go with the `COMMIT`. The store remembers, per session, what the last write
//! there read ([`Seen`]), and judges a reading against that memory first. When the memory says
//! the reading is accepted and raises nothing, the write goes in one round trip: `BEGIN`, the
//! session's row locked, then one statement that inserts the reading and its audit entry only
//! if the database still holds what the memory says (the session's state and dose start, the
//! baseline's and the latest reading's ids, the site's settings), and `COMMIT`. The condition
//! is evaluated after the lock is granted, so no write can change those facts between the check
//! and the commit. If any of them changed, the statement inserts nothing, and the write runs
//! the ordinary way, whose answers refresh the memory. A reading the memory says would be
//! refused or would raise an alert always runs the ordinary way.
//!
//! So the memory decides how many round trips a write takes, never how a reading is judged:
//! a wrong memory costs a round trip, not a wrong judgement.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use time::OffsetDateTime;

use keta_domain::alerts::SafetyRules;
use keta_domain::ids::{RecordId, SessionId};
use keta_domain::records::{VitalsRecord, VitalsSource};
use keta_domain::session::TreatmentSession;
use keta_domain::vitals::VitalSigns;

use crate::audit;
use crate::conn::{Conn, Value};
use crate::error::Result;
use crate::sessions::{
    BASELINE_OF_SESSION, Judging, LATEST_OF_SESSION, RecordedVitals, VITALS_INSERT, phase_at, reading_values,
    refuse_double_entry, require_active, vitals_entry, vitals_record,
};
use crate::time_codec::ms;
use crate::{Actor, Store};

/// What a session's last vitals write on this server read of it, that write's reading added:
/// enough to judge the next reading.
#[derive(Clone)]
pub(crate) struct Seen {
    pub session: TreatmentSession,
    /// The session's first counted reading with a blood pressure.
    pub baseline: Option<VitalsRecord>,
    /// The session's latest counted reading.
    pub latest: Option<VitalsRecord>,
    /// The site's settings, as stored (the condition compares them whole).
    pub settings: Arc<str>,
    /// The safety rules those settings give.
    pub rules: Arc<SafetyRules>,
}

impl Seen {
    /// What the session holds once reading `r` is stored in it.
    pub(crate) fn with(mut self, r: &VitalsRecord) -> Self {
        let order = |v: &VitalsRecord| (v.taken_at, v.id.0);
        if r.vitals.systolic_mmhg.is_some() && self.baseline.as_ref().is_none_or(|b| order(r) < order(b)) {
            self.baseline = Some(r.clone());
        }
        if self.latest.as_ref().is_none_or(|l| order(r) > order(l)) {
            self.latest = Some(r.clone());
        }
        self
    }
}

/// The sessions this server remembers, and how many readings were written from memory.
#[derive(Default)]
pub(crate) struct Memory {
    seen: Mutex<HashMap<SessionId, Seen>>,
    from_memory: AtomicU64,
}

/// Sessions remembered at most; past it the memory starts afresh (a clinic's day has far fewer
/// sessions in the chair at once, and a forgotten session only costs its next write a round trip).
const REMEMBERED: usize = 4096;

impl Memory {
    fn get(&self, id: SessionId) -> Option<Seen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner).get(&id).cloned()
    }

    pub(crate) fn remember(&self, id: SessionId, seen: Seen) {
        let mut all = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if all.len() >= REMEMBERED && !all.contains_key(&id) {
            all.clear();
        }
        all.insert(id, seen);
    }

    pub(crate) fn forget(&self, id: SessionId) {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
    }
}

/// A reading the memory accepts and that raises nothing, ready to send.
struct Plan {
    seen: Seen,
    reading: (VitalSigns, OffsetDateTime, VitalsSource),
    check_latest: bool,
}

/// Judges the reading against what is remembered of its session; `None` when it must take the
/// ordinary way (nothing remembered, or the memory says it would be refused or raise an alert:
/// those are decided on facts read in the write).
fn plan(
    memory: &Memory,
    actor: &Actor,
    id: SessionId,
    reading: (VitalSigns, OffsetDateTime, VitalsSource),
    judging: Judging,
) -> Option<Plan> {
    if judging.once_per_episode {
        return None;
    }
    let seen = memory.get(id)?;
    let (vitals, taken_at, _) = &reading;
    let s = &seen.session;
    if !actor.may_see(s.site_id, s.patient_id) || require_active(s).is_err() {
        return None;
    }
    if judging.refuse_double_entry && refuse_double_entry(seen.latest.as_ref(), vitals, *taken_at).is_err() {
        return None;
    }
    let baseline = seen.baseline.as_ref().map(|b| &b.vitals);
    if !seen.rules.evaluate_vitals(phase_at(s, *taken_at), vitals, baseline).is_empty() {
        return None;
    }
    Some(Plan { seen, reading, check_latest: judging.refuse_double_entry })
}

/// The reading and its audit entry, inserted only while the database holds what the plan was
/// judged on (`$1` the session, `$2` its state, `$3` its dose's start, `$4` the site's settings,
/// `$5` the baseline's id, `$6` whether the latest reading counts, `$7` its id, `$8`-`$14` the
/// reading, `$15`- the audit entry's). The baseline and the latest reading are found as the
/// ordinary write finds them (`BASELINE_OF_SESSION`, `LATEST_OF_SESSION`).
static INSERT_SQL: LazyLock<String> = LazyLock::new(|| {
    let entry =
        audit::entry_step(("inserted, judged", "inserted.id::text", "inserted.patient_id", "judged.site_id"), 15);
    format!(
        "WITH judged AS (
             SELECT s.id, s.patient_id, s.site_id FROM sessions s JOIN sites st ON st.id = s.site_id
             WHERE s.id = $1 AND s.state = $2 AND s.dose_started_at IS NOT DISTINCT FROM $3::bigint AND st.settings = $4
               AND (SELECT v.id {}) IS NOT DISTINCT FROM $5::bigint
               AND (NOT $6::boolean OR (SELECT v.id {}) IS NOT DISTINCT FROM $7::bigint)
         ), inserted AS (
             {VITALS_INSERT} SELECT id, patient_id, $8, $9, $10, $11, $12, $13, $14 FROM judged RETURNING id, patient_id
         ), entry AS ({entry})
         SELECT id FROM inserted",
        *BASELINE_OF_SESSION, *LATEST_OF_SESSION
    )
});

/// Sends the planned write, the `COMMIT` with it. `None` when the database no longer holds
/// what the plan was judged on (nothing was written), or where entries are chained as they are
/// written (nothing was sent).
fn send(c: &mut dyn Conn, actor: &Actor, now: OffsetDateTime, p: &Plan) -> Result<Option<RecordedVitals>> {
    if !audit::sealed_after_commit(&*c) {
        return Ok(None);
    }
    let s = &p.seen.session;
    let e = vitals_entry(s, None);
    let mut params: Vec<Value> = crate::params![
        s.id.0,
        s.state.as_str(),
        s.dose_started_at.map(ms),
        &*p.seen.settings,
        p.seen.baseline.as_ref().map(|b| b.id.0),
        p.check_latest,
        p.seen.latest.as_ref().map(|l| l.id.0)
    ]
    .to_vec();
    params.extend(reading_values(&p.reading));
    params.extend(audit::entry_step_params(actor, now, &e));
    let lock = crate::params![s.id.0];
    let answers = c.query_each_last(&[
        ("SELECT id FROM sessions WHERE id = $1 FOR UPDATE", lock),
        (INSERT_SQL.as_str(), &params),
    ])?;
    let Some(row) = answers.get(1).and_then(|rows| rows.first()) else {
        return Ok(None);
    };
    audit::appended(&e);
    let record = vitals_record(s, RecordId(row.i64("id")?), p.reading);
    Ok(Some(RecordedVitals { record, alerts: Vec::new() }))
}

impl Store {
    /// The memory of sessions, where readings can be judged from it: PostgreSQL with the
    /// audit chain sealed after commit (the default), unless `vitals_memory=off`.
    pub(crate) fn vitals_memory(&self) -> Option<Arc<Memory>> {
        match &*self.engine {
            crate::Engine::Postgres(b) if b.settings.vitals_memory && !b.settings.audit_inline => {
                Some(b.vitals_memory.clone())
            }
            _ => None,
        }
    }

    /// Writes a typed reading judged from memory in one round trip; `None` when it must take
    /// the ordinary way (see the module's documentation), with nothing written.
    pub(crate) async fn record_vitals_from_memory(
        &self,
        memory: &Arc<Memory>,
        actor: &Actor,
        now: OffsetDateTime,
        id: SessionId,
        reading: (VitalSigns, OffsetDateTime, VitalsSource),
        judging: Judging,
    ) -> Result<Option<RecordedVitals>> {
        let Some(p) = plan(memory, actor, id, reading, judging) else {
            return Ok(None);
        };
        let (actor, p) = (actor.clone(), Arc::new(p));
        let sent = p.clone();
        let Some(done) = self.write(move |c| send(c, &actor, now, &sent)).await? else {
            memory.forget(id);
            return Ok(None);
        };
        memory.remember(id, p.seen.clone().with(&done.record));
        memory.from_memory.fetch_add(1, Ordering::Relaxed);
        Ok(Some(done))
    }

    /// How many vitals writes this store has sent in one round trip, judged from memory
    /// (for tests and `keta bench`; always 0 on SQLite).
    pub fn vitals_written_from_memory(&self) -> u64 {
        self.vitals_memory().map_or(0, |m| m.from_memory.load(Ordering::Relaxed))
    }
}
