//! The documents behind FHIR `DocumentReference`: a session note once its author has signed
//! it, and an esketamine session's REMS Patient Monitoring Form once it was submitted to the
//! REMS. Each is one branch of the search's `UNION ALL` (shared leading columns as every FHIR
//! source); the PDF itself is typeset on demand by the web layer (`Binary/<id>`).

use keta_domain::access::Permission;
use keta_domain::ids::{PatientId, SessionId, SiteId};

use super::{Filters, Page, Search, distinct_patients, pid, search_page};
use crate::error::{Result, StoreError};
use crate::{Actor, Store};

/// Which printable document a reference points at; the prefix of its id (`note-12`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocumentKind {
    /// The session note with its signatures and amendments.
    SessionNote,
    /// The SPRAVATO REMS Patient Monitoring Form, as submitted.
    RemsForm,
}

impl DocumentKind {
    pub const ALL: [Self; 2] = [Self::SessionNote, Self::RemsForm];

    pub fn key(self) -> &'static str {
        match self {
            Self::SessionNote => "note",
            Self::RemsForm => "rems",
        }
    }

    pub fn parse(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.key() == key)
    }

    /// `note-12` -> (SessionNote, session 12).
    pub fn parse_id(id: &str) -> Option<(Self, SessionId)> {
        let (k, n) = id.split_once('-')?;
        let n = n.parse::<i64>().ok().filter(|n| *n > 0)?;
        Some((Self::parse(k)?, SessionId(n)))
    }

    /// The branch: `at` is when it became a document (the author's signature, the
    /// submission), `updated` its last change (a later signature or an amendment).
    fn sql(self) -> &'static str {
        match self {
            Self::SessionNote => {
                "SELECT x.src, x.rid, x.patient_id, x.site_id, x.at, \
                 CASE WHEN x.amended_at IS NOT NULL AND x.amended_at > x.signed_last THEN x.amended_at ELSE x.signed_last END AS updated, \
                 x.amended_at, x.author_name, x.author_id, x.reference FROM (\
                 SELECT 'note' AS src, s.id AS rid, s.patient_id AS patient_id, s.site_id AS site_id, \
                 (SELECT MIN(g.signed_at) FROM note_signatures g WHERE g.session_id = s.id AND g.amendment_id IS NULL) AS at, \
                 (SELECT MAX(g.signed_at) FROM note_signatures g WHERE g.session_id = s.id) AS signed_last, \
                 (SELECT MAX(a.created_at) FROM note_amendments a WHERE a.session_id = s.id) AS amended_at, \
                 (SELECT g.printed_name FROM note_signatures g WHERE g.session_id = s.id AND g.amendment_id IS NULL AND g.meaning = 'author' ORDER BY g.id LIMIT 1) AS author_name, \
                 (SELECT g.signer_user_id FROM note_signatures g WHERE g.session_id = s.id AND g.amendment_id IS NULL AND g.meaning = 'author' ORDER BY g.id LIMIT 1) AS author_id, \
                 CAST(NULL AS TEXT) AS reference FROM sessions s \
                 WHERE EXISTS (SELECT 1 FROM note_signatures g WHERE g.session_id = s.id AND g.amendment_id IS NULL)) x"
            }
            Self::RemsForm => {
                "SELECT 'rems' AS src, f.session_id AS rid, f.patient_id AS patient_id, f.site_id AS site_id, \
                 f.submitted_at AS at, f.submitted_at AS updated, CAST(NULL AS BIGINT) AS amended_at, \
                 f.submitted_by AS author_name, (SELECT u.id FROM users u WHERE u.username = f.submitted_by) AS author_id, \
                 f.confirmation_number AS reference FROM rems_forms f WHERE f.submitted_at IS NOT NULL"
            }
        }
    }
}

/// A signed or submitted document of a session.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentRow {
    pub kind: DocumentKind,
    pub session_id: SessionId,
    pub patient_id: PatientId,
    pub site_id: SiteId,
    /// When it became a document: the author's signature, or the submission to the REMS.
    pub created_ms: i64,
    /// Its last change: a later signature, or an amendment.
    pub updated_ms: i64,
    /// A note with amendments (the original stays as signed).
    pub amended: bool,
    /// Who signed it as author (the printed name), or who submitted the form (username).
    pub author_name: Option<String>,
    pub author_user_id: Option<i64>,
    /// The REMS confirmation number of a submitted form.
    pub reference: Option<String>,
}

impl DocumentRow {
    /// The resource id: `<kind>-<session id>`.
    pub fn id(&self) -> String {
        format!("{}-{}", self.kind.key(), self.session_id.0)
    }
}

impl Store {
    /// Signed session notes and submitted REMS forms, of the kinds asked for (`Search::id` is
    /// the session); `date` is when each became a document. Audited as a read per patient.
    pub async fn fhir_documents(
        &self,
        actor: &Actor,
        q: Search,
        kinds: Vec<DocumentKind>,
    ) -> Result<Page<DocumentRow>> {
        actor.require(Permission::ViewClinical)?;
        if kinds.is_empty() {
            return Ok(Page { items: vec![], total: 0 });
        }
        let act = actor.clone();
        let page = self
            .read(move |c| {
                let source = kinds.iter().map(|k| k.sql()).collect::<Vec<_>>().join(" UNION ALL ");
                let (rows, total) = search_page(c, &act, &source, &q, Filters::new(), "u.src,")?;
                let items = rows
                    .iter()
                    .map(|r| {
                        Ok(DocumentRow {
                            kind: DocumentKind::parse(&r.text("src")?)
                                .ok_or_else(|| StoreError::Corrupt("document kind".into()))?,
                            session_id: SessionId(r.i64("rid")?),
                            patient_id: pid(r)?,
                            site_id: SiteId(r.i64("site_id")?),
                            created_ms: r.i64("at")?,
                            updated_ms: r.i64("updated")?,
                            amended: r.opt_i64("amended_at")?.is_some(),
                            author_name: r.opt_text("author_name")?,
                            author_user_id: r.opt_i64("author_id")?,
                            reference: r.opt_text("reference")?,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(Page { items, total })
            })
            .await?;
        self.audit_reads(actor, "fhir_document_reference", distinct_patients(page.items.iter().map(|d| d.patient_id)))
            .await?;
        Ok(page)
    }
}
