//! Signed session notes in storage (SIG-1, SIG-2, IN-1).
//!
//! The original note is the session's `note`; signatures and amendments are rows of
//! their own, append-only (triggers refuse UPDATE and DELETE). Signing needs a fresh
//! re-authentication (AC-11) and binds the signature to the SHA-256 of the text signed;
//! once the author has signed, [`is_note_signed`] is true and the note is locked (the
//! session-note editor refuses), and changes are amendments, each signed by its author.
//! Reading a note recomputes every hash, so text changed outside Keta is reported.

use time::OffsetDateTime;

use keta_domain::DomainError;
use keta_domain::access::Permission;
use keta_domain::ids::{PatientId, SessionId, SiteId};
use keta_domain::notes::{
    self as dn, AmendmentId, NewAmendment, NoteAmendment, NoteSignature, NoteSignatureId, NoteVerification, SignNote,
    SignatureMeaning, SignedNote,
};

use crate::audit::{self, Action, Entry};
use crate::conn::{Backend, Conn, Row};
use crate::error::{Result, StoreError};
use crate::ledger::{require_reauthentication, sha256_hex};
use crate::time_codec::{from_ms, ms};
use crate::{Actor, Store, params};

/// True once the author has signed the session's original note: it is then locked and
/// may only be amended.
pub(crate) fn is_note_signed(c: &mut dyn Conn, session: SessionId) -> Result<bool> {
    let n = c
        .query_opt(
            "SELECT count(*) AS n FROM note_signatures WHERE session_id = $1 AND amendment_id IS NULL AND meaning = 'author'",
            params![session.0],
        )?
        .map(|r| r.i64("n"))
        .transpose()?
        .unwrap_or(0);
    Ok(n > 0)
}

/// Who last saved the session note's text (recorded by the note editor), if anyone is.
fn note_writer(c: &mut dyn Conn, session: SessionId) -> Result<Option<(Option<i64>, String)>> {
    let Some(r) =
        c.query_opt("SELECT note_author_user_id, note_author FROM sessions WHERE id = $1", params![session.0])?
    else {
        return Ok(None);
    };
    let user_id = r.opt_i64("note_author_user_id")?;
    Ok(r.opt_text("note_author")?.map(|name| (user_id, name)))
}

const SIG_COLS: &str = "id, session_id, amendment_id, content_sha256, signer_user_id, signer, printed_name, meaning, signed_at, reauthenticated_at, signature_sha256";
const AMENDMENT_COLS: &str = "id, session_id, previous_amendment_id, previous_sha256, author_user_id, author, printed_name, reason, body, created_at, content_sha256";

fn signature_from(r: &Row) -> Result<NoteSignature> {
    Ok(NoteSignature {
        id: NoteSignatureId(r.i64("id")?),
        session_id: SessionId(r.i64("session_id")?),
        amendment_id: r.opt_i64("amendment_id")?.map(AmendmentId),
        content_sha256: r.text("content_sha256")?,
        signer_user_id: r.opt_i64("signer_user_id")?,
        signer: r.text("signer")?,
        printed_name: r.text("printed_name")?,
        meaning: SignatureMeaning::parse(&r.text("meaning")?)
            .ok_or_else(|| StoreError::Corrupt("signature meaning".into()))?,
        signed_at: from_ms(r.i64("signed_at")?)?,
        reauthenticated_at: from_ms(r.i64("reauthenticated_at")?)?,
        signature_sha256: r.text("signature_sha256")?,
    })
}

fn amendment_from(r: &Row) -> Result<NoteAmendment> {
    Ok(NoteAmendment {
        id: AmendmentId(r.i64("id")?),
        session_id: SessionId(r.i64("session_id")?),
        previous_amendment_id: r.opt_i64("previous_amendment_id")?.map(AmendmentId),
        previous_sha256: r.text("previous_sha256")?,
        author_user_id: r.opt_i64("author_user_id")?,
        author: r.text("author")?,
        printed_name: r.text("printed_name")?,
        reason: r.text("reason")?,
        text: r.text("body")?,
        created_at: from_ms(r.i64("created_at")?)?,
        content_sha256: r.text("content_sha256")?,
        signatures: Vec::new(),
    })
}

fn note_hash(session: SessionId, text: &str) -> String {
    sha256_hex(&dn::canonical_note(session, text))
}

/// The note with its signatures and amendments, verified.
fn assemble(c: &mut dyn Conn, session: SessionId, patient: PatientId, text: Option<String>) -> Result<SignedNote> {
    let sigs: Vec<NoteSignature> = c
        .query(
            &format!("SELECT {SIG_COLS} FROM note_signatures WHERE session_id = $1 ORDER BY id"),
            params![session.0],
        )?
        .iter()
        .map(signature_from)
        .collect::<Result<_>>()?;
    let mut amendments: Vec<NoteAmendment> = c
        .query(
            &format!("SELECT {AMENDMENT_COLS} FROM note_amendments WHERE session_id = $1 ORDER BY id"),
            params![session.0],
        )?
        .iter()
        .map(amendment_from)
        .collect::<Result<_>>()?;
    let mut original = Vec::new();
    for s in sigs {
        match s.amendment_id.and_then(|a| amendments.iter_mut().find(|x| x.id == a)) {
            Some(a) => a.signatures.push(s),
            None if s.amendment_id.is_none() => original.push(s),
            None => return Err(StoreError::Corrupt(format!("signature {} names a missing amendment", s.id))),
        }
    }
    let verification = dn::verify(session, text.as_deref(), &original, &amendments, sha256_hex);
    let signed = original.iter().any(|s| s.meaning == SignatureMeaning::Author);
    Ok(SignedNote {
        session_id: session,
        patient_id: patient,
        content_sha256: text.as_deref().map(|t| note_hash(session, t)),
        text,
        signed,
        locked: signed,
        signatures: original,
        amendments,
        verification,
    })
}

fn load(c: &mut dyn Conn, actor: &Actor, session: SessionId) -> Result<(SignedNote, SiteId)> {
    let s = crate::sessions::get_session(c, actor, session)?;
    Ok((assemble(c, session, s.patient_id, s.note.clone())?, s.site_id))
}

/// Every signed note whose hashes no longer match, for integrity checks across the
/// database (e.g. `keta audit verify`).
pub(crate) fn verify_notes(c: &mut dyn Conn) -> Result<Vec<(SessionId, NoteVerification)>> {
    let rows = c.query(
        "SELECT s.id, s.patient_id, s.note FROM sessions s WHERE EXISTS (SELECT 1 FROM note_signatures n WHERE n.session_id = s.id) ORDER BY s.id",
        &[],
    )?;
    let mut out = Vec::new();
    for r in rows {
        let (session, patient) = (SessionId(r.i64("id")?), PatientId(r.i64("patient_id")?));
        let note = assemble(c, session, patient, r.opt_text("note")?)?;
        if !note.verification.intact {
            out.push((session, note.verification));
        }
    }
    Ok(out)
}

fn take_notes_lock(c: &mut dyn Conn) -> Result<()> {
    if c.backend() == Backend::Postgres {
        // One signer or amender at a time, so "the author signs once" and the amendment
        // chain hold under concurrency.
        c.execute("SELECT pg_advisory_xact_lock(4242004)", &[])?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn insert_signature(
    c: &mut dyn Conn,
    actor: &Actor,
    session: SessionId,
    amendment: Option<AmendmentId>,
    content_sha256: &str,
    printed_name: &str,
    meaning: SignatureMeaning,
    reauthenticated_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<i64> {
    let sig = sha256_hex(&dn::canonical_signature(
        session,
        amendment,
        content_sha256,
        actor.user_id,
        &actor.name,
        printed_name,
        meaning,
        ms(now),
        ms(reauthenticated_at),
    ));
    c.insert(
        &format!(
            "INSERT INTO note_signatures ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
            &SIG_COLS[4..]
        ),
        params![
            session.0,
            amendment.map(|a| a.0),
            content_sha256,
            actor.user_id,
            actor.name.as_str(),
            printed_name,
            meaning.as_str(),
            ms(now),
            ms(reauthenticated_at),
            sig
        ],
    )
}

fn check_printed_name(printed_name: &str) -> Result<()> {
    if printed_name.trim().is_empty() || printed_name.len() > 200 || printed_name.chars().any(char::is_control) {
        return Err(
            DomainError::field("printed_name", "the signer's printed name must be 1-200 printable characters").into()
        );
    }
    Ok(())
}

impl Store {
    /// Every signed note whose hashes no longer match the text (`keta audit verify`).
    pub async fn verify_signed_notes(&self, actor: &Actor) -> Result<Vec<(SessionId, NoteVerification)>> {
        actor.require(Permission::ViewAudit)?;
        self.read(verify_notes).await
    }

    /// Signs the session's note (or, with `amendment_id`, one of its amendments) as
    /// author, co-signer or reviewer. Needs a fresh re-authentication. The author's
    /// signature locks the note.
    pub async fn sign_session_note(
        &self,
        actor: &Actor,
        reauthenticated_at: Option<OffsetDateTime>,
        session: SessionId,
        printed_name: String,
        req: SignNote,
    ) -> Result<SignedNote> {
        actor.require(Permission::SignNotes)?;
        check_printed_name(&printed_name)?;
        let now = self.now();
        require_reauthentication("sign", reauthenticated_at, now, self.reauthentication_window())?;
        let reauth = reauthenticated_at.expect("checked above");
        let actor = actor.clone();
        self.write(move |c| {
            take_notes_lock(c)?;
            // Held to the end: the note's text cannot change between hashing and signing.
            let sess = crate::sessions::get_session_for_update(c, &actor, session)?;
            let (note, site) = load(c, &actor, session)?;
            let (content, existing, object_type, object_id) = match req.amendment_id {
                None => {
                    let Some(text) = note.text.as_deref().filter(|t| !t.trim().is_empty()) else {
                        return Err(StoreError::Conflict("write the note before signing it".into()));
                    };
                    // An esketamine session's note is signed only with its REMS form complete.
                    if note.signatures.is_empty() {
                        crate::rems::note_sign_gate(c, &actor, &sess, now)?;
                    }
                    let content = note_hash(session, text);
                    if note.signatures.iter().any(|s| s.content_sha256 != content) {
                        return Err(StoreError::Conflict(
                            "the note's text no longer matches what was signed (it was changed outside Keta); it cannot be signed until this is investigated".into(),
                        ));
                    }
                    (content, note.signatures.clone(), "session_note", session.to_string())
                }
                Some(a) => {
                    let am = note.amendments.iter().find(|x| x.id == a).ok_or_else(|| StoreError::NotFound(format!("amendment {a} of session {session}")))?;
                    let now_hash = sha256_hex(&dn::canonical_amendment(
                        session, am.previous_amendment_id, &am.previous_sha256, am.author_user_id, &am.author, &am.printed_name, ms(am.created_at), &am.reason, &am.text,
                    ));
                    if now_hash != am.content_sha256 {
                        return Err(StoreError::Conflict(format!("amendment {a} no longer matches its hash; it cannot be signed until this is investigated")));
                    }
                    (am.content_sha256.clone(), am.signatures.clone(), "note_amendment", a.to_string())
                }
            };
            // Who wrote what is being signed: the note's last writer, or the amendment's author.
            let written_by: Option<(Option<i64>, String)> = match req.amendment_id {
                None => note_writer(c, session)?,
                Some(a) => note.amendments.iter().find(|x| x.id == a).map(|am| (am.author_user_id, am.author.clone())),
            };
            let written_by = written_by.as_ref().map(|(id, name)| dn::WrittenBy { user_id: *id, username: name });
            dn::check_signing(&existing, req.meaning, actor.user_id, &actor.name, written_by)?;
            insert_signature(c, &actor, session, req.amendment_id, &content, printed_name.trim(), req.meaning, reauth, now)?;
            audit::record(c, &actor, now, Entry {
                action: Action::Sign,
                object_type,
                object_id: Some(object_id),
                patient_id: Some(note.patient_id),
                site_id: Some(site),
                fields: &["meaning", "content_sha256"],
            })?;
            Ok(load(c, &actor, session)?.0)
        })
        .await
    }

    /// Amends a signed note: a new record linked to the original (and to the amendment
    /// before it), with its own hash, signed by its author. The original stays as it was.
    pub async fn amend_session_note(
        &self,
        actor: &Actor,
        reauthenticated_at: Option<OffsetDateTime>,
        session: SessionId,
        printed_name: String,
        new: NewAmendment,
    ) -> Result<SignedNote> {
        actor.require(Permission::SignNotes)?;
        new.validate()?;
        check_printed_name(&printed_name)?;
        let now = self.now();
        require_reauthentication("amend a signed note", reauthenticated_at, now, self.reauthentication_window())?;
        let reauth = reauthenticated_at.expect("checked above");
        let actor = actor.clone();
        self.write(move |c| {
            take_notes_lock(c)?;
            // Held to the end: the note's text cannot change between hashing and signing.
            crate::sessions::get_session_for_update(c, &actor, session)?;
            let (note, site) = load(c, &actor, session)?;
            let Some(author) = note.signatures.iter().find(|s| s.meaning == SignatureMeaning::Author) else {
                return Err(StoreError::Conflict("the note is not signed yet: edit it directly, then sign it".into()));
            };
            let (previous_id, previous_sha) = match note.amendments.last() {
                Some(a) => (Some(a.id), a.content_sha256.clone()),
                None => (None, author.content_sha256.clone()),
            };
            let printed = printed_name.trim();
            let (reason, text) = (new.reason.trim(), new.text.as_str());
            let content = sha256_hex(&dn::canonical_amendment(
                session,
                previous_id,
                &previous_sha,
                actor.user_id,
                &actor.name,
                printed,
                ms(now),
                reason,
                text,
            ));
            let id = c.insert(
                &format!(
                    "INSERT INTO note_amendments ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
                    &AMENDMENT_COLS[4..]
                ),
                params![
                    session.0,
                    previous_id.map(|a| a.0),
                    previous_sha,
                    actor.user_id,
                    actor.name.as_str(),
                    printed,
                    reason,
                    text,
                    ms(now),
                    content.as_str()
                ],
            )?;
            audit::record(
                c,
                &actor,
                now,
                Entry {
                    action: Action::Amend,
                    object_type: "note_amendment",
                    object_id: Some(id.to_string()),
                    patient_id: Some(note.patient_id),
                    site_id: Some(site),
                    fields: &["reason", "text"],
                },
            )?;
            insert_signature(
                c,
                &actor,
                session,
                Some(AmendmentId(id)),
                &content,
                printed,
                SignatureMeaning::Author,
                reauth,
                now,
            )?;
            audit::record(
                c,
                &actor,
                now,
                Entry {
                    action: Action::Sign,
                    object_type: "note_amendment",
                    object_id: Some(id.to_string()),
                    patient_id: Some(note.patient_id),
                    site_id: Some(site),
                    fields: &["meaning", "content_sha256"],
                },
            )?;
            Ok(load(c, &actor, session)?.0)
        })
        .await
    }

    /// The note with its signatures, its amendment chain and the result of re-checking
    /// every hash.
    pub async fn get_signed_note(&self, actor: &Actor, session: SessionId) -> Result<SignedNote> {
        actor.require(Permission::ViewClinical)?;
        let act = actor.clone();
        let note = self.read(move |c| Ok(load(c, &act, session)?.0)).await?;
        self.audit_read(actor, "session_note", Some(session.to_string()), Some(note.patient_id)).await?;
        Ok(note)
    }
}
