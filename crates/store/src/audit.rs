//! The audit trail: one append-only, hash-chained entry per access or change,
//! written by the same transaction as the change it records (security-reference §4).
//!
//! Each entry's `row_hash` is SHA-256 over the previous entry's hash and this entry's
//! fields, so an entry edited, deleted or reordered outside Keta breaks the chain. The
//! chain's order is `chain_seq`, its position in the chain.
//!
//! On SQLite the one writer thread chains each entry as it is written. On PostgreSQL,
//! where writers run concurrently, an entry is written unsealed (no position, no hashes)
//! and one sealer per server chains committed entries in batches, off the writers' path,
//! normally within tens of milliseconds and at most about a second later
//! (docs/decisions/0005-audit-chain.md). Verification, backups and anchors seal first.

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use keta_domain::ids::{PatientId, SiteId};

use crate::conn::{Backend, Conn};
use crate::error::Result;
use crate::time_codec::{from_ms, ms};
use crate::{Actor, params};

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened, in the vocabulary of security-reference §4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Read,
    Update,
    Delete,
    Print,
    Export,
    Sign,
    Amend,
    LoginOk,
    LoginFail,
    Logout,
    Timeout,
    BreakGlass,
    PrivilegeChange,
    CsAdminister,
    CsWaste,
    CsCount,
    CsReceive,
    CsDispose,
    CsLoss,
    CsCorrect,
}

impl Action {
    pub const ALL: [Action; 21] = [
        Action::Create,
        Action::Read,
        Action::Update,
        Action::Delete,
        Action::Print,
        Action::Export,
        Action::Sign,
        Action::Amend,
        Action::LoginOk,
        Action::LoginFail,
        Action::Logout,
        Action::Timeout,
        Action::BreakGlass,
        Action::PrivilegeChange,
        Action::CsAdminister,
        Action::CsWaste,
        Action::CsCount,
        Action::CsReceive,
        Action::CsDispose,
        Action::CsLoss,
        Action::CsCorrect,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Read => "read",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Print => "print",
            Action::Export => "export",
            Action::Sign => "sign",
            Action::Amend => "amend",
            Action::LoginOk => "login_ok",
            Action::LoginFail => "login_fail",
            Action::Logout => "logout",
            Action::Timeout => "timeout",
            Action::BreakGlass => "break_glass",
            Action::PrivilegeChange => "privilege_change",
            Action::CsAdminister => "cs_administer",
            Action::CsWaste => "cs_waste",
            Action::CsCount => "cs_count",
            Action::CsReceive => "cs_receive",
            Action::CsDispose => "cs_dispose",
            Action::CsLoss => "cs_loss",
            Action::CsCorrect => "cs_correct",
        }
    }
}

/// One entry to append.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub action: Action,
    pub object_type: &'a str,
    pub object_id: Option<String>,
    pub patient_id: Option<PatientId>,
    pub site_id: Option<SiteId>,
    /// Names of the fields touched, never their values.
    pub fields: &'a [&'a str],
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditRecord {
    pub seq: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    pub actor: String,
    pub action: String,
    pub object_type: String,
    pub object_id: Option<String>,
    pub patient_id: Option<i64>,
    pub site_id: Option<i64>,
    pub fields: String,
    pub outcome: String,
    pub prev_hash: String,
    pub row_hash: String,
    /// The request that made the entry (`X-Request-Id`), when a request did.
    pub request_id: Option<String>,
}

#[allow(clippy::too_many_arguments)]
fn hash(
    prev: &str,
    occurred_at: i64,
    actor: &str,
    action: &str,
    object_type: &str,
    object_id: Option<&str>,
    patient_id: Option<i64>,
    site_id: Option<i64>,
    fields: &str,
    outcome: &str,
    request_id: Option<&str>,
) -> String {
    let mut h = Sha256::new();
    // Length-prefixed fields: no two different entries serialise the same way.
    for part in [
        prev,
        &occurred_at.to_string(),
        actor,
        action,
        object_type,
        object_id.unwrap_or("\u{0}"),
        &patient_id.map_or("\u{0}".into(), |v| v.to_string()),
        &site_id.map_or("\u{0}".into(), |v| v.to_string()),
        fields,
        outcome,
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    // The request id is hashed only when there is one, so entries without it (all those
    // written before it existed) keep the hash they were chained with.
    if let Some(id) = request_id {
        h.update((id.len() as u64).to_le_bytes());
        h.update(id.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

thread_local! {
    /// Set when a PostgreSQL transaction on this thread appended an unsealed entry, so the
    /// backend wakes the sealer after the commit.
    static APPENDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

thread_local! {
    /// `audit_chain=inline` on PostgreSQL: chain each entry in its writer's transaction.
    static INLINE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Set by the PostgreSQL backend before it runs an operation on this thread.
pub(crate) fn set_inline(inline: bool) {
    INLINE.with(|i| i.set(inline));
}

/// A patient's record just created, as its audit entry names it.
pub(crate) struct Created<'a> {
    pub object_type: &'static str,
    pub patient: PatientId,
    pub site: SiteId,
    /// Names of the fields stored, never their values.
    pub fields: &'a [&'a str],
}

/// The audited insert: runs `sql` (an `INSERT ... RETURNING id`) and appends its creation
/// entry in the same transaction; returns the new row's id.
pub(crate) fn insert_audited(
    c: &mut dyn Conn,
    actor: &Actor,
    now: OffsetDateTime,
    sql: &str,
    params: &[crate::Value],
    created: Created<'_>,
) -> Result<i64> {
    let id = c.insert(sql, params)?;
    record(
        c,
        actor,
        now,
        Entry {
            action: Action::Create,
            object_type: created.object_type,
            object_id: Some(id.to_string()),
            patient_id: Some(created.patient),
            site_id: Some(created.site),
            fields: created.fields,
        },
    )?;
    Ok(id)
}

impl crate::Store {
    /// The audited patient read: checks `permission`, loads the patient in the actor's scope
    /// (another site's patient is not found), runs `op` on the same snapshot, then writes one
    /// read entry of `object_type` for the patient.
    pub(crate) async fn read_patient_audited<T: Send + 'static>(
        &self,
        actor: &Actor,
        permission: keta_domain::access::Permission,
        patient: PatientId,
        object_type: &'static str,
        op: impl FnOnce(&mut dyn Conn, &keta_domain::patient::Patient) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.read_record_audited(actor, permission, object_type, None, move |c, act| {
            let p = crate::patients::get_patient(c, act, patient)?;
            Ok((patient, op(c, &p)?))
        })
        .await
    }

    /// The audited read of a patient's record found by its own id (a session, a course):
    /// checks `permission`, runs `op` on one snapshot (it loads the record in the actor's
    /// scope and returns the patient it belongs to with what it read), then writes one read
    /// entry of `object_type` (`object_id`) for that patient.
    pub(crate) async fn read_record_audited<T: Send + 'static>(
        &self,
        actor: &Actor,
        permission: keta_domain::access::Permission,
        object_type: &'static str,
        object_id: Option<String>,
        op: impl FnOnce(&mut dyn Conn, &Actor) -> Result<(PatientId, T)> + Send + 'static,
    ) -> Result<T> {
        actor.require(permission)?;
        let act = actor.clone();
        let (patient, out) = self.read(move |c| op(c, &act)).await?;
        self.audit_read(actor, object_type, object_id, Some(patient)).await?;
        Ok(out)
    }
}

/// Whether the transaction just run on this thread appended entries (and clears it).
pub(crate) fn take_appended() -> bool {
    APPENDED.with(|a| a.replace(false))
}

/// The session-level lock sealers take (one sealer at a time, across servers).
const CHAIN_LOCK: i64 = 4242002;
/// Entries chained per sealing transaction.
pub(crate) const SEAL_BATCH: i64 = 5000;

/// Appends an entry inside the caller's transaction.
pub(crate) fn record(conn: &mut dyn Conn, actor: &Actor, at: OffsetDateTime, e: Entry<'_>) -> Result<()> {
    let fields = serde_json::to_string(e.fields).expect("strings serialise");
    let at_ms = ms(at);
    let patient = e.patient_id.map(|p| p.0);
    let site = e.site_id.map(|s| s.0);
    let request = crate::request_id::of_thread().map(|r| r.to_string());
    let postgres = conn.backend() == Backend::Postgres;
    // Other instances' live views learn of the change when it commits (docs/decisions/0007-several-instances.md).
    let notify = postgres && crate::cluster::notifies_boards(e.action);
    if sealed_after_commit(conn) {
        // No lock and no read of the chain's tail: concurrent writers append side by side
        // and the sealer chains their entries once they have committed. Nothing reads the
        // insert's result, so it travels with the write's next statement or its commit.
        conn.execute_later(
            "INSERT INTO audit_log (occurred_at, actor, action, object_type, object_id, patient_id, site_id, fields, outcome, request_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            params![at_ms, actor.name.as_str(), e.action.as_str(), e.object_type, e.object_id.as_deref(), patient, site, fields, "allowed", request],
        )?;
        appended(&e);
        return Ok(());
    }
    if notify {
        crate::cluster::queue_notice(e.site_id);
    }
    // SQLite: its one writer runs writes one at a time, so the entry is chained at once.
    // PostgreSQL with `audit_chain=inline` (the earlier design): the chain lock, held to the
    // end of the transaction, keeps two writers from extending the chain from the same tail.
    if postgres {
        conn.execute("SELECT pg_advisory_xact_lock($1)", params![CHAIN_LOCK])?;
    }
    let (last, prev) = match conn.query_opt(
        "SELECT chain_seq, row_hash FROM audit_log WHERE chain_seq IS NOT NULL ORDER BY chain_seq DESC LIMIT 1",
        &[],
    )? {
        Some(r) => (r.i64("chain_seq")?, r.text("row_hash")?),
        None => (0, GENESIS.to_string()),
    };
    let row_hash = hash(
        &prev,
        at_ms,
        &actor.name,
        e.action.as_str(),
        e.object_type,
        e.object_id.as_deref(),
        patient,
        site,
        &fields,
        "allowed",
        request.as_deref(),
    );
    conn.execute(
        "INSERT INTO audit_log (occurred_at, actor, action, object_type, object_id, patient_id, site_id, fields, outcome, prev_hash, row_hash, chain_seq, request_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        params![at_ms, actor.name.as_str(), e.action.as_str(), e.object_type, e.object_id, patient, site, fields, "allowed", prev, row_hash, last + 1, request],
    )?;
    Ok(())
}

/// Whether entries written on `conn` are chained after they commit (PostgreSQL with the
/// sealer), so that an entry can travel with its write's other statements ([`entry_step`]).
/// Otherwise (SQLite, the inline chain) [`record`] chains each entry as it is written.
pub(crate) fn sealed_after_commit(conn: &dyn Conn) -> bool {
    conn.backend() == Backend::Postgres && !INLINE.with(|i| i.get())
}

/// The audit entry of a row that a step of a data-modifying `WITH` inserts (only where
/// [`sealed_after_commit`]): an `INSERT INTO audit_log ... SELECT ... FROM {from}` step whose
/// object id, patient and site are the SQL expressions `id`, `patient` and `site` over
/// `from`, and whose other values are the parameters [`entry_step_params`] gives, numbered
/// from `first`. So the row and its entry are one statement, and there is an entry exactly
/// when there is a row. Call [`appended`] once the row is known to be written.
pub(crate) fn entry_step((from, id, patient, site): (&str, &str, &str, &str), first: usize) -> String {
    let p = |k: usize| format!("${}", first + k);
    format!(
        "INSERT INTO audit_log (occurred_at, actor, action, object_type, object_id, patient_id, site_id, fields, outcome, request_id)
         SELECT {}, {}, {}, {}, {id}, {patient}, {site}, {}, {}, {} FROM {from}",
        p(0),
        p(1),
        p(2),
        p(3),
        p(4),
        p(5),
        p(6)
    )
}

/// The parameters of an [`entry_step`], in its order.
pub(crate) fn entry_step_params(actor: &Actor, at: OffsetDateTime, e: &Entry<'_>) -> Vec<crate::conn::Value> {
    let fields = serde_json::to_string(e.fields).expect("strings serialise");
    let request = crate::request_id::of_thread().map(|r| r.to_string());
    params![ms(at), actor.name.as_str(), e.action.as_str(), e.object_type, fields, "allowed", request].to_vec()
}

/// Marks an entry written by an [`entry_step`] as appended: the sealer is woken after the
/// commit, and other instances' live views are told of the change.
pub(crate) fn appended(e: &Entry<'_>) {
    if crate::cluster::notifies_boards(e.action) {
        crate::cluster::queue_notice(e.site_id);
    }
    APPENDED.with(|a| a.set(true));
}

/// A read entry to append with others (see [`record_reads`]).
pub(crate) struct ReadEntry<'a> {
    pub actor: &'a Actor,
    pub object_type: &'static str,
    pub object_id: Option<String>,
    pub patient: Option<PatientId>,
    /// What was read, for an entry that stands for several reads of the patient.
    pub fields: &'a [&'static str],
}

/// Appends read entries inside the caller's transaction, each with its patient's site, in
/// order. On PostgreSQL with the sealer (the default) they go in one statement, whatever
/// their number: a board or a bulk page reads many patients, and a statement per entry
/// (and another for its site) was a round trip each. SQLite, and PostgreSQL with
/// `audit_chain=inline`, chain each entry as [`record`] does.
pub(crate) fn record_reads(conn: &mut dyn Conn, at: OffsetDateTime, entries: &[ReadEntry<'_>]) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    if conn.backend() == Backend::Postgres && !INLINE.with(|i| i.get()) {
        let rows: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| {
                serde_json::json!({
                    "actor": e.actor.name.as_str(),
                    "object_type": e.object_type,
                    "object_id": e.object_id,
                    "patient_id": e.patient.map(|p| p.0),
                    "fields": serde_json::to_string(e.fields).expect("strings serialise"),
                })
            })
            .collect();
        let request = crate::request_id::of_thread().map(|r| r.to_string());
        // Reads never notify boards (`cluster::notifies_boards`), so no pg_notify rides here.
        conn.execute(
            "INSERT INTO audit_log (occurred_at, actor, action, object_type, object_id, patient_id, site_id, fields, outcome, request_id)
             SELECT $1, e.j->>'actor', $2, e.j->>'object_type', e.j->>'object_id', (e.j->>'patient_id')::bigint, p.site_id,
                    e.j->>'fields', $3, $4
             FROM json_array_elements($5::json) WITH ORDINALITY AS e(j, n)
             LEFT JOIN patients p ON p.id = (e.j->>'patient_id')::bigint
             ORDER BY e.n",
            params![ms(at), Action::Read.as_str(), "allowed", request, serde_json::Value::Array(rows).to_string()],
        )?;
        APPENDED.with(|a| a.set(true));
        return Ok(());
    }
    for e in entries {
        let site = match e.patient {
            Some(p) => conn
                .query_opt("SELECT site_id FROM patients WHERE id = $1", params![p.0])?
                .map(|r| r.i64("site_id"))
                .transpose()?
                .map(SiteId),
            None => None,
        };
        record(
            conn,
            e.actor,
            at,
            Entry {
                action: Action::Read,
                object_type: e.object_type,
                object_id: e.object_id.clone(),
                patient_id: e.patient,
                site_id: site,
                fields: e.fields,
            },
        )?;
    }
    Ok(())
}

/// Chains committed unsealed entries (PostgreSQL), oldest first, up to [`SEAL_BATCH`] in one
/// statement, after the chain's current head. Returns how many, or `None` when another
/// sealer holds the chain and `wait` is false. Runs in its own transaction: the chain lock
/// is held only while sealing, never by a writer.
pub(crate) fn seal_postgres(tx: &mut postgres::Transaction<'_>, wait: bool) -> Result<Option<usize>> {
    if wait {
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CHAIN_LOCK])?;
    } else if !tx.query_one("SELECT pg_try_advisory_xact_lock($1)", &[&CHAIN_LOCK])?.get::<_, bool>(0) {
        return Ok(None);
    }
    // READ COMMITTED: read after the lock, so the head a previous sealer committed is seen.
    let (mut pos, mut prev) = match tx.query_opt(
        "SELECT chain_seq, row_hash FROM audit_log WHERE chain_seq IS NOT NULL ORDER BY chain_seq DESC LIMIT 1",
        &[],
    )? {
        Some(r) => (r.try_get::<_, i64>(0)?, r.try_get::<_, String>(1)?),
        None => (0, GENESIS.to_string()),
    };
    let rows = tx.query(
        "SELECT seq, occurred_at, actor, action, object_type, object_id, patient_id, site_id, fields, outcome, request_id
         FROM audit_log WHERE chain_seq IS NULL ORDER BY seq LIMIT $1",
        &[&SEAL_BATCH],
    )?;
    if rows.is_empty() {
        return Ok(Some(0));
    }
    let (mut seqs, mut positions, mut prevs, mut hashes) =
        (Vec::with_capacity(rows.len()), Vec::with_capacity(rows.len()), Vec::new(), Vec::new());
    for r in &rows {
        let h = hash(
            &prev,
            r.try_get(1)?,
            r.try_get(2)?,
            r.try_get(3)?,
            r.try_get(4)?,
            r.try_get::<_, Option<&str>>(5)?,
            r.try_get(6)?,
            r.try_get(7)?,
            r.try_get(8)?,
            r.try_get(9)?,
            r.try_get::<_, Option<&str>>(10)?,
        );
        pos += 1;
        seqs.push(r.try_get::<_, i64>(0)?);
        positions.push(pos);
        prevs.push(std::mem::replace(&mut prev, h.clone()));
        hashes.push(h);
    }
    tx.execute(
        "UPDATE audit_log AS a SET chain_seq = u.cs, prev_hash = u.ph, row_hash = u.rh
         FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[]) AS u(seq, cs, ph, rh)
         WHERE a.seq = u.seq AND a.chain_seq IS NULL",
        &[&seqs, &positions, &prevs, &hashes],
    )?;
    Ok(Some(rows.len()))
}

/// The first entry whose chain does not verify, if any.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ChainBreak {
    pub seq: i64,
    pub reason: String,
}

/// Walks the whole sealed chain from the start, in chain order. A break names the entry's
/// chain position (`chain_seq`, what anchors record; equal to `seq` on SQLite). Entries not
/// yet sealed (PostgreSQL, under a second old) are not covered: seal first
/// ([`crate::Store::verify_audit_chain`] does).
pub(crate) fn verify(conn: &mut dyn Conn) -> Result<(u64, Option<ChainBreak>)> {
    let rows = conn.query(
        "SELECT chain_seq, occurred_at, actor, action, object_type, object_id, patient_id, site_id, fields, outcome, prev_hash, row_hash, request_id FROM audit_log WHERE chain_seq IS NOT NULL ORDER BY chain_seq",
        &[],
    )?;
    let mut prev = GENESIS.to_string();
    let mut n = 0;
    for r in rows {
        let seq = r.i64("chain_seq")?;
        let stored_prev = r.text("prev_hash")?;
        if stored_prev != prev {
            return Ok((
                n,
                Some(ChainBreak {
                    seq,
                    reason: "does not follow the previous entry (an entry before it was deleted, edited or reordered)"
                        .into(),
                }),
            ));
        }
        let expect = hash(
            &prev,
            r.i64("occurred_at")?,
            &r.text("actor")?,
            &r.text("action")?,
            &r.text("object_type")?,
            r.opt_text("object_id")?.as_deref(),
            r.opt_i64("patient_id")?,
            r.opt_i64("site_id")?,
            &r.text("fields")?,
            &r.text("outcome")?,
            r.opt_text("request_id")?.as_deref(),
        );
        let stored = r.text("row_hash")?;
        if stored != expect {
            return Ok((
                n,
                Some(ChainBreak { seq, reason: "its content does not match its hash (edited outside Keta)".into() }),
            ));
        }
        prev = stored;
        n += 1;
    }
    Ok((n, None))
}

/// A read waiting for its request to finish (see [`crate::Store::batch_reads`]).
struct PendingRead {
    actor: Actor,
    object_type: &'static str,
    object_id: Option<String>,
    patient: Option<PatientId>,
}

tokio::task_local! {
    static PENDING_READS: std::cell::RefCell<Vec<PendingRead>>;
}

/// Keeps the read for the request's batch, if the caller runs inside one.
fn defer_read(
    actor: &Actor,
    object_type: &'static str,
    object_id: &Option<String>,
    patient: Option<PatientId>,
) -> bool {
    PENDING_READS
        .try_with(|p| {
            p.borrow_mut().push(PendingRead {
                actor: actor.clone(),
                object_type,
                object_id: object_id.clone(),
                patient,
            })
        })
        .is_ok()
}

impl crate::Store {
    /// Runs one request's work and then writes its reads' audit entries together: one
    /// entry per actor and patient read (naming everything read in `fields`), all in one
    /// transaction, instead of a transaction per store call. A page that reads a patient's
    /// chart, doses and check-ins leaves one entry, not six. Reads made outside a batch are
    /// written at once, as before.
    pub async fn batch_reads<F: std::future::Future>(&self, work: F) -> Result<F::Output> {
        let (out, pending) = PENDING_READS
            .scope(std::cell::RefCell::new(Vec::new()), async move {
                let out = work.await;
                (out, PENDING_READS.with(|p| p.take()))
            })
            .await;
        if pending.is_empty() {
            return Ok(out);
        }
        // One entry per (actor, patient), in the order first read.
        let mut entries: Vec<(PendingRead, Vec<&'static str>)> = Vec::new();
        for r in pending {
            match entries.iter_mut().find(|(e, _)| e.actor.name == r.actor.name && e.patient == r.patient) {
                Some((_, kinds)) => {
                    if !kinds.contains(&r.object_type) {
                        kinds.push(r.object_type);
                    }
                }
                None => {
                    let kind = r.object_type;
                    entries.push((r, vec![kind]));
                }
            }
        }
        let now = self.now();
        self.write(move |c| {
            let reads: Vec<ReadEntry<'_>> = entries
                .iter()
                .map(|(r, kinds)| ReadEntry {
                    actor: &r.actor,
                    object_type: r.object_type,
                    object_id: r.object_id.clone(),
                    patient: r.patient,
                    fields: kinds,
                })
                .collect();
            record_reads(c, now, &reads)
        })
        .await?;
        Ok(out)
    }

    /// Records that `actor` read a patient's data (AU-1: reads are audited too). Written
    /// after the read succeeded: with the request's other reads when inside
    /// [`Self::batch_reads`], otherwise in its own transaction.
    pub async fn audit_read(
        &self,
        actor: &Actor,
        object_type: &'static str,
        object_id: Option<String>,
        patient: Option<PatientId>,
    ) -> Result<()> {
        if defer_read(actor, object_type, &object_id, patient) {
            return Ok(());
        }
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let site = match patient {
                Some(p) => c
                    .query_opt("SELECT site_id FROM patients WHERE id = $1", params![p.0])?
                    .map(|r| r.i64("site_id"))
                    .transpose()?
                    .map(SiteId),
                None => None,
            };
            record(
                c,
                &actor,
                now,
                Entry { action: Action::Read, object_type, object_id, patient_id: patient, site_id: site, fields: &[] },
            )
        })
        .await
    }
}

/// Filters and sort for the audit report (AU-3). Sort fields come from an allow-list;
/// anything else is refused rather than pasted into SQL.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub patient_id: Option<PatientId>,
    pub action: Option<String>,
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    pub sort: Option<String>,
    pub descending: bool,
    pub limit: i64,
}

pub const SORTABLE: &[&str] = &["occurred_at", "actor", "action", "object_type", "patient_id", "seq"];

pub(crate) fn search(conn: &mut dyn Conn, q: &AuditQuery) -> Result<Vec<AuditRecord>> {
    let sort = match q.sort.as_deref() {
        None => "seq",
        Some(s) => SORTABLE.iter().find(|x| **x == s).copied().ok_or_else(|| {
            keta_domain::DomainError::field("sort", format!("sort by one of: {}", SORTABLE.join(", ")))
        })?,
    };
    let mut sql = String::from(
        "SELECT seq, occurred_at, actor, action, object_type, object_id, patient_id, site_id, fields, outcome, COALESCE(prev_hash, '') AS prev_hash, COALESCE(row_hash, '') AS row_hash, request_id FROM audit_log WHERE 1 = 1",
    );
    let mut p: Vec<crate::Value> = Vec::new();
    if let Some(a) = &q.actor {
        p.push(a.clone().into());
        sql.push_str(&format!(" AND actor = ${}", p.len()));
    }
    if let Some(id) = q.patient_id {
        p.push(id.0.into());
        sql.push_str(&format!(" AND patient_id = ${}", p.len()));
    }
    if let Some(a) = &q.action {
        p.push(a.clone().into());
        sql.push_str(&format!(" AND action = ${}", p.len()));
    }
    if let Some(t) = q.from {
        p.push(ms(t).into());
        sql.push_str(&format!(" AND occurred_at >= ${}", p.len()));
    }
    if let Some(t) = q.to {
        p.push(ms(t).into());
        sql.push_str(&format!(" AND occurred_at < ${}", p.len()));
    }
    p.push(q.limit.clamp(1, 10_000).into());
    sql.push_str(&format!(
        " ORDER BY {sort} {}, seq {} LIMIT ${}",
        if q.descending { "DESC" } else { "ASC" },
        if q.descending { "DESC" } else { "ASC" },
        p.len()
    ));
    conn.query(&sql, &p)?.iter().map(record_from).collect()
}

fn record_from(r: &crate::Row) -> Result<AuditRecord> {
    Ok(AuditRecord {
        seq: r.i64("seq")?,
        occurred_at: from_ms(r.i64("occurred_at")?)?,
        actor: r.text("actor")?,
        action: r.text("action")?,
        object_type: r.text("object_type")?,
        object_id: r.opt_text("object_id")?,
        patient_id: r.opt_i64("patient_id")?,
        site_id: r.opt_i64("site_id")?,
        fields: r.text("fields")?,
        outcome: r.text("outcome")?,
        prev_hash: r.text("prev_hash")?,
        row_hash: r.text("row_hash")?,
        request_id: r.opt_text("request_id")?,
    })
}

impl crate::Store {
    /// The audit report for auditors. The report itself is an audited export.
    pub async fn audit_report(&self, actor: &Actor, q: AuditQuery) -> Result<Vec<AuditRecord>> {
        actor.require(keta_domain::access::Permission::ViewAudit)?;
        let patient = q.patient_id;
        // The report shows each entry's hashes: chain what has committed first.
        self.seal_audit_chain().await?;
        let out = self.read(move |c| search(c, &q)).await?;
        let now = self.now();
        let a = actor.clone();
        self.write(move |c| {
            record(
                c,
                &a,
                now,
                Entry {
                    action: Action::Export,
                    object_type: "audit_report",
                    object_id: None,
                    patient_id: patient,
                    site_id: None,
                    fields: &[],
                },
            )
        })
        .await?;
        Ok(out)
    }

    /// Verifies the whole chain (for `keta audit verify`), after sealing every entry
    /// committed so far.
    ///
    /// On a full disk (PostgreSQL) sealing cannot write: the chain sealed so far is verified
    /// all the same, and [`Self::unsealed_audit_entries`] counts the committed entries still
    /// waiting, which the sealer chains once space is freed.
    pub async fn verify_audit_chain(&self) -> Result<(u64, Option<ChainBreak>)> {
        match self.seal_audit_chain().await {
            Ok(_) => {}
            Err(crate::StoreError::DiskFull) => {
                tracing::warn!("the database disk is full: verifying the chain sealed so far");
            }
            Err(e) => return Err(e),
        }
        self.read(|c| verify(c)).await
    }

    /// Committed audit entries not yet chained (PostgreSQL's sealer chains them within about
    /// a second; they wait longer only while the disk is full). Always 0 on SQLite.
    pub async fn unsealed_audit_entries(&self) -> Result<u64> {
        self.read(|c| {
            let n = c
                .query_opt("SELECT COUNT(*) AS n FROM audit_log WHERE chain_seq IS NULL", &[])?
                .map_or(Ok(0), |r| r.i64("n"))?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    /// Chains every audit entry committed so far (PostgreSQL; SQLite chains as it writes)
    /// and returns how many were sealed now.
    pub async fn seal_audit_chain(&self) -> Result<u64> {
        match &*self.engine {
            crate::Engine::Sqlite(_) => Ok(0),
            crate::Engine::Postgres(b) => b.seal_now().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Action;

    #[test]
    fn the_log_inventory_lists_every_action() {
        let doc = include_str!("../../../docs/logging.md");
        for a in Action::ALL {
            assert!(
                doc.contains(&format!("| `{}` |", a.as_str())),
                "docs/logging.md does not describe `{}`",
                a.as_str()
            );
        }
    }
}

impl crate::Store {
    /// One read entry per patient, written in a single transaction (list screens).
    pub async fn audit_reads(&self, actor: &Actor, object_type: &'static str, patients: Vec<PatientId>) -> Result<()> {
        if patients.is_empty() {
            return Ok(());
        }
        if PENDING_READS.try_with(|_| ()).is_ok() {
            for p in patients {
                defer_read(actor, object_type, &None, Some(p));
            }
            return Ok(());
        }
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let reads: Vec<ReadEntry<'_>> = patients
                .iter()
                .map(|p| ReadEntry { actor: &actor, object_type, object_id: None, patient: Some(*p), fields: &[] })
                .collect();
            record_reads(c, now, &reads)
        })
        .await
    }
}

/// The newest entry of the chain: what a backup manifest and an anchor file record, so that
/// a chain whose tail was cut off (a copy taken without its WAL) no longer matches.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChainHead {
    /// The entry's chain position (`chain_seq`).
    pub seq: i64,
    pub row_hash: String,
}

pub(crate) fn head(conn: &mut dyn Conn) -> Result<Option<ChainHead>> {
    conn.query_opt(
        "SELECT chain_seq, row_hash FROM audit_log WHERE chain_seq IS NOT NULL ORDER BY chain_seq DESC LIMIT 1",
        &[],
    )?
    .map(|r| Ok(ChainHead { seq: r.i64("chain_seq")?, row_hash: r.text("row_hash")? }))
    .transpose()
}

/// Why an anchored head is no longer in the chain, or `None` when it is. With [`verify`]
/// passing, every anchor found means the chain still holds everything up to it.
pub(crate) fn check_anchor(conn: &mut dyn Conn, anchor: &ChainHead) -> Result<Option<ChainBreak>> {
    let stored = conn
        .query_opt("SELECT row_hash FROM audit_log WHERE chain_seq = $1", params![anchor.seq])?
        .map(|r| r.text("row_hash"))
        .transpose()?;
    Ok(match stored {
        Some(h) if h == anchor.row_hash => None,
        Some(_) => Some(ChainBreak {
            seq: anchor.seq,
            reason: "does not match the head anchored for it (the chain was rewritten after it was anchored)".into(),
        }),
        None => {
            let last = head(conn)?.map_or(0, |h| h.seq);
            Some(ChainBreak {
                seq: anchor.seq,
                reason: if last < anchor.seq {
                    format!(
                        "was anchored but the chain now ends at entry {last}: its tail was cut off (entries {} to {} are missing)",
                        last + 1,
                        anchor.seq
                    )
                } else {
                    "was anchored but is missing from the chain".into()
                },
            })
        }
    })
}

impl crate::Store {
    /// The chain's newest entry, if any (for anchoring).
    pub async fn audit_head(&self) -> Result<Option<ChainHead>> {
        self.seal_audit_chain().await?;
        self.read(|c| head(c)).await
    }

    /// The first anchor (in sequence order) the chain no longer contains, if any.
    pub async fn check_audit_anchors(&self, mut anchors: Vec<ChainHead>) -> Result<Option<ChainBreak>> {
        anchors.sort_by_key(|a| a.seq);
        self.read(move |c| {
            for a in &anchors {
                if let Some(b) = check_anchor(c, a)? {
                    return Ok(Some(b));
                }
            }
            Ok(None)
        })
        .await
    }
}

impl crate::Store {
    /// Records that `actor` produced a printable document (a PDF) of a record: one `print`
    /// entry naming the document (`object_type`), its record, the patient and the site, in its
    /// own transaction after the data was read through the usual permission-checked, audited
    /// reads (as an export is, `rems_form_csv`).
    pub async fn audit_print(
        &self,
        actor: &Actor,
        document: &'static str,
        object_id: Option<String>,
        patient: Option<PatientId>,
        site: Option<SiteId>,
    ) -> Result<()> {
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let site = match (site, patient) {
                (Some(s), _) => Some(s),
                (None, Some(p)) => c
                    .query_opt("SELECT site_id FROM patients WHERE id = $1", params![p.0])?
                    .map(|r| r.i64("site_id"))
                    .transpose()?
                    .map(SiteId),
                (None, None) => None,
            };
            record(
                c,
                &actor,
                now,
                Entry {
                    action: Action::Print,
                    object_type: document,
                    object_id,
                    patient_id: patient,
                    site_id: site,
                    fields: &[],
                },
            )
        })
        .await
    }
}
