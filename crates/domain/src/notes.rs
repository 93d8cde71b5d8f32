//! Signed session notes (security-reference SIG-1, SIG-2, IN-1).
//!
//! A signature records who signed (user id, user name and printed name), when, and
//! what the signature means (author, co-sign, review), and is bound to the SHA-256 of
//! the exact text signed, so it cannot be moved to other text (21 CFR 11.50, 11.70 as
//! a model). Once the author has signed, the note is locked; later changes are
//! amendments: new records linked to the original and to the amendment before them,
//! each with its author, time, reason, text, its own hash and its author's signature.
//! The original stays readable. Verification recomputes every hash, so text changed
//! behind Keta's back (in the database shell) is detected.
//!
//! Pure: the canonical bytes are built here and the store hashes them; verification
//! takes the hash function as an argument.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{DomainError, Validator};
use crate::ids::{PatientId, SessionId};

crate::ids::id_type! {
    /// One signature on a note or an amendment.
    NoteSignatureId,
    /// One amendment to a signed note.
    AmendmentId,
}

/// What a signature means (21 CFR 11.50(a)(3)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignatureMeaning {
    /// "I wrote this." The first signature; it locks the note.
    Author,
    /// "I share responsibility for this" (e.g. a supervising prescriber).
    CoSign,
    /// "I have reviewed this."
    Review,
}

impl SignatureMeaning {
    pub const ALL: [SignatureMeaning; 3] = [Self::Author, Self::CoSign, Self::Review];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Author => "author",
            Self::CoSign => "co_sign",
            Self::Review => "review",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
    pub fn label(self) -> &'static str {
        match self {
            Self::Author => "Author",
            Self::CoSign => "Co-signed",
            Self::Review => "Reviewed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NoteSignature {
    pub id: NoteSignatureId,
    pub session_id: SessionId,
    /// The amendment signed; absent when the original note was signed.
    pub amendment_id: Option<AmendmentId>,
    /// SHA-256 of the canonical content signed.
    pub content_sha256: String,
    pub signer_user_id: Option<i64>,
    /// The signer's user name.
    pub signer: String,
    pub printed_name: String,
    pub meaning: SignatureMeaning,
    #[serde(with = "time::serde::rfc3339")]
    pub signed_at: OffsetDateTime,
    /// When the signer re-entered their password for this signature.
    #[serde(with = "time::serde::rfc3339")]
    pub reauthenticated_at: OffsetDateTime,
    /// SHA-256 over the signature's own fields, binding them to the content hash.
    pub signature_sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NoteAmendment {
    pub id: AmendmentId,
    pub session_id: SessionId,
    /// The amendment this one follows; absent for the first, which follows the original note.
    pub previous_amendment_id: Option<AmendmentId>,
    /// The content hash of what this amendment follows (the signed original or the previous amendment).
    pub previous_sha256: String,
    pub author_user_id: Option<i64>,
    pub author: String,
    pub printed_name: String,
    pub reason: String,
    pub text: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub content_sha256: String,
    pub signatures: Vec<NoteSignature>,
}

/// The result of recomputing a note's hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NoteVerification {
    /// True when every signature and amendment matches what it was bound to.
    pub intact: bool,
    /// What does not match, in words; empty when intact.
    pub problems: Vec<String>,
}

/// A session note with its signatures and amendment chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SignedNote {
    pub session_id: SessionId,
    pub patient_id: PatientId,
    /// The original note's text as it is now stored.
    pub text: Option<String>,
    /// SHA-256 of the current text's canonical content.
    pub content_sha256: Option<String>,
    /// True once the author has signed.
    pub signed: bool,
    /// True once signed: the original can no longer be edited, only amended.
    pub locked: bool,
    /// Signatures on the original note.
    pub signatures: Vec<NoteSignature>,
    /// Amendments, oldest first, each with its signatures.
    pub amendments: Vec<NoteAmendment>,
    pub verification: NoteVerification,
}

/// A request to sign the note, or one of its amendments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignNote {
    pub meaning: SignatureMeaning,
    /// Sign this amendment instead of the original note.
    #[serde(default)]
    pub amendment_id: Option<AmendmentId>,
}

/// A correction or addition to a signed note.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAmendment {
    /// Why the note is being amended.
    pub reason: String,
    /// The amendment's text.
    pub text: String,
}

/// The one home of note limits, counted in characters (not bytes), for every path that takes
/// a note: the longest note text (an amendment, an imported session's note).
pub const MAX_NOTE_CHARS: usize = 20_000;
/// The longest short note: an observation's or an alert acknowledgement's note, an
/// amendment's reason.
pub const MAX_SHORT_NOTE_CHARS: usize = 2_000;

/// Whether `text` has at most `max` characters.
pub fn within_chars(text: &str, max: usize) -> bool {
    text.chars().count() <= max
}

impl NewAmendment {
    pub fn validate(&self) -> Result<(), DomainError> {
        let mut v = Validator::new();
        v.check(
            !self.reason.trim().is_empty() && within_chars(&self.reason, MAX_SHORT_NOTE_CHARS),
            "reason",
            "say why the note is being amended (1-2000 characters)",
        );
        v.check(
            !self.text.trim().is_empty() && within_chars(&self.text, MAX_NOTE_CHARS),
            "text",
            "write the amendment (1-20,000 characters)",
        );
        v.finish()
    }
}

/// Length-prefixed parts: no two different inputs frame to the same bytes.
fn frame(parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(&(p.len() as u64).to_le_bytes());
        out.extend_from_slice(p.as_bytes());
    }
    out
}

fn opt(v: Option<i64>) -> String {
    v.map_or_else(|| "\u{0}".to_string(), |v| v.to_string())
}

/// The canonical content of a session's original note.
pub fn canonical_note(session: SessionId, text: &str) -> Vec<u8> {
    frame(&["keta/session-note/v1", &session.0.to_string(), text])
}

/// The canonical content of an amendment: bound to the session, to what it follows, and
/// to its author, time, reason and text.
#[allow(clippy::too_many_arguments)]
pub fn canonical_amendment(
    session: SessionId,
    previous_amendment: Option<AmendmentId>,
    previous_sha256: &str,
    author_user_id: Option<i64>,
    author: &str,
    printed_name: &str,
    created_at_ms: i64,
    reason: &str,
    text: &str,
) -> Vec<u8> {
    frame(&[
        "keta/note-amendment/v1",
        &session.0.to_string(),
        &opt(previous_amendment.map(|a| a.0)),
        previous_sha256,
        &opt(author_user_id),
        author,
        printed_name,
        &created_at_ms.to_string(),
        reason,
        text,
    ])
}

/// The canonical content of a signature: every field the signature shows, plus the
/// hash of what was signed and where it sits (session, amendment).
#[allow(clippy::too_many_arguments)]
pub fn canonical_signature(
    session: SessionId,
    amendment: Option<AmendmentId>,
    content_sha256: &str,
    signer_user_id: Option<i64>,
    signer: &str,
    printed_name: &str,
    meaning: SignatureMeaning,
    signed_at_ms: i64,
    reauthenticated_at_ms: i64,
) -> Vec<u8> {
    frame(&[
        "keta/note-signature/v1",
        &session.0.to_string(),
        &opt(amendment.map(|a| a.0)),
        content_sha256,
        &opt(signer_user_id),
        signer,
        printed_name,
        meaning.as_str(),
        &signed_at_ms.to_string(),
        &reauthenticated_at_ms.to_string(),
    ])
}

fn same_signer(s: &NoteSignature, user_id: Option<i64>, name: &str) -> bool {
    matches!((s.signer_user_id, user_id), (Some(a), Some(b)) if a == b) || s.signer.eq_ignore_ascii_case(name)
}

/// Who wrote the text being signed, as recorded when it was saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrittenBy<'a> {
    pub user_id: Option<i64>,
    pub username: &'a str,
}

/// May this person sign this (note or amendment) with this meaning, given the
/// signatures it already has and who wrote it? A signature's meaning must match what
/// the signer did (21 CFR 11.50): only the person who wrote the text signs it as its
/// author, first and once; anyone else co-signs or reviews. A co-signer is someone
/// other than the author; nobody signs the same thing twice with the same meaning.
pub fn check_signing(
    existing: &[NoteSignature],
    meaning: SignatureMeaning,
    signer_user_id: Option<i64>,
    signer: &str,
    written_by: Option<WrittenBy<'_>>,
) -> Result<(), DomainError> {
    let author = existing.iter().find(|s| s.meaning == SignatureMeaning::Author);
    if meaning == SignatureMeaning::Author && author.is_none() {
        let wrote_it = written_by.is_some_and(|w| {
            matches!((w.user_id, signer_user_id), (Some(a), Some(b)) if a == b)
                || w.username.eq_ignore_ascii_case(signer)
        });
        if !wrote_it {
            let detail = match written_by {
                Some(w) => format!(
                    "only {} wrote this text and may sign it as author; sign it as co_sign or review",
                    w.username
                ),
                None => "nobody is recorded as having written this text: its writer saves it again, then signs it as author; others sign as co_sign or review".into(),
            };
            return Err(DomainError::field("meaning", detail));
        }
    }
    match (meaning, author) {
        (SignatureMeaning::Author, Some(a)) => {
            return Err(DomainError::Conflict(format!(
                "already signed by {} as author at {}; it is locked. Co-sign or review it, or add an amendment",
                a.printed_name, a.signed_at
            )));
        }
        (SignatureMeaning::CoSign | SignatureMeaning::Review, None) => {
            return Err(DomainError::Conflict("the author signs first; it has no author signature yet".into()));
        }
        (SignatureMeaning::CoSign, Some(a)) if same_signer(a, signer_user_id, signer) => {
            return Err(DomainError::Conflict("a co-signature is by someone other than the author".into()));
        }
        _ => {}
    }
    if existing.iter().any(|s| s.meaning == meaning && same_signer(s, signer_user_id, signer)) {
        return Err(DomainError::Conflict(format!("you have already signed this as {}", meaning.as_str())));
    }
    Ok(())
}

/// Recomputes every hash of a note and compares. `sha256` hashes canonical bytes to
/// lowercase hex. `text` is the original note's text as stored now.
pub fn verify(
    session: SessionId,
    text: Option<&str>,
    signatures: &[NoteSignature],
    amendments: &[NoteAmendment],
    sha256: impl Fn(&[u8]) -> String,
) -> NoteVerification {
    let mut problems = Vec::new();
    let current = text.map(|t| sha256(&canonical_note(session, t)));
    let check_sig = |s: &NoteSignature, bound_to: Option<&str>, what: &str, problems: &mut Vec<String>| {
        let expect = sha256(&canonical_signature(
            s.session_id,
            s.amendment_id,
            &s.content_sha256,
            s.signer_user_id,
            &s.signer,
            &s.printed_name,
            s.meaning,
            ms(s.signed_at),
            ms(s.reauthenticated_at),
        ));
        if s.session_id != session || expect != s.signature_sha256 {
            problems.push(format!(
                "signature {} ({} by {}) was altered after it was made",
                s.id,
                s.meaning.as_str(),
                s.printed_name
            ));
        }
        if bound_to != Some(s.content_sha256.as_str()) {
            problems.push(format!(
                "{what} no longer matches what {} signed ({}) at {}: it was changed after signing",
                s.printed_name,
                s.meaning.as_str(),
                s.signed_at
            ));
        }
    };
    for s in signatures {
        check_sig(s, current.as_deref(), "the note's text", &mut problems);
    }
    // The chain starts at the hash the author signed.
    let mut previous: Option<(Option<AmendmentId>, String)> =
        signatures.iter().find(|s| s.meaning == SignatureMeaning::Author).map(|s| (None, s.content_sha256.clone()));
    for a in amendments {
        let expect = sha256(&canonical_amendment(
            a.session_id,
            a.previous_amendment_id,
            &a.previous_sha256,
            a.author_user_id,
            &a.author,
            &a.printed_name,
            ms(a.created_at),
            &a.reason,
            &a.text,
        ));
        if a.session_id != session || expect != a.content_sha256 {
            problems.push(format!("amendment {} (by {}) was altered after it was written", a.id, a.printed_name));
        }
        match &previous {
            Some((prev_id, prev_hash)) if *prev_id == a.previous_amendment_id && *prev_hash == a.previous_sha256 => {}
            _ => problems.push(format!(
                "amendment {} does not follow the record before it (the amendment chain is broken)",
                a.id
            )),
        }
        for s in &a.signatures {
            check_sig(s, Some(&expect), &format!("amendment {}", a.id), &mut problems);
        }
        previous = Some((Some(a.id), a.content_sha256.clone()));
    }
    NoteVerification { intact: problems.is_empty(), problems }
}

fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    /// A stand-in hash for the pure tests: hex of a simple FNV-1a, enough to see changes.
    fn fake_sha(b: &[u8]) -> String {
        let mut h: u64 = 0xcbf29ce484222325;
        for x in b {
            h ^= u64::from(*x);
            h = h.wrapping_mul(0x100000001b3);
        }
        format!("{h:016x}")
    }

    const S: SessionId = SessionId(7);

    fn signature(
        id: i64,
        amendment: Option<AmendmentId>,
        content: &str,
        who: &str,
        uid: i64,
        meaning: SignatureMeaning,
    ) -> NoteSignature {
        let at = datetime!(2026-11-02 15:00 UTC);
        let sha = fake_sha(&canonical_signature(S, amendment, content, Some(uid), who, who, meaning, ms(at), ms(at)));
        NoteSignature {
            id: NoteSignatureId(id),
            session_id: S,
            amendment_id: amendment,
            content_sha256: content.into(),
            signer_user_id: Some(uid),
            signer: who.into(),
            printed_name: who.into(),
            meaning,
            signed_at: at,
            reauthenticated_at: at,
            signature_sha256: sha,
        }
    }

    fn amendment(id: i64, prev: Option<AmendmentId>, prev_sha: &str, text: &str) -> NoteAmendment {
        let at = datetime!(2026-11-03 09:00 UTC);
        let sha = fake_sha(&canonical_amendment(S, prev, prev_sha, Some(1), "dr.a", "Dr A", ms(at), "typo", text));
        NoteAmendment {
            id: AmendmentId(id),
            session_id: S,
            previous_amendment_id: prev,
            previous_sha256: prev_sha.into(),
            author_user_id: Some(1),
            author: "dr.a".into(),
            printed_name: "Dr A".into(),
            reason: "typo".into(),
            text: text.into(),
            created_at: at,
            signatures: vec![signature(100 + id, Some(AmendmentId(id)), &sha, "dr.a", 1, SignatureMeaning::Author)],
            content_sha256: sha,
        }
    }

    #[test]
    fn an_untouched_signed_note_with_amendments_verifies() {
        let text = "Tolerated 0.5 mg/kg well.";
        let h = fake_sha(&canonical_note(S, text));
        let sigs = vec![
            signature(1, None, &h, "dr.a", 1, SignatureMeaning::Author),
            signature(2, None, &h, "dr.b", 2, SignatureMeaning::CoSign),
        ];
        let a1 = amendment(1, None, &h, "Dose was 0.5 mg/kg IV over 40 min.");
        let a2 = amendment(2, Some(AmendmentId(1)), &a1.content_sha256, "Added: BP peak 150/90.");
        let v = verify(S, Some(text), &sigs, &[a1, a2], fake_sha);
        assert!(v.intact, "{:?}", v.problems);
    }

    #[test]
    fn a_changed_body_breaks_every_signature_on_it() {
        let h = fake_sha(&canonical_note(S, "original"));
        let sigs = vec![
            signature(1, None, &h, "dr.a", 1, SignatureMeaning::Author),
            signature(2, None, &h, "rn.c", 3, SignatureMeaning::Review),
        ];
        let v = verify(S, Some("edited in the shell"), &sigs, &[], fake_sha);
        assert!(!v.intact);
        assert_eq!(v.problems.len(), 2, "{:?}", v.problems);
        assert!(v.problems[0].contains("changed after signing"));
    }

    #[test]
    fn a_signature_moved_to_another_session_or_edited_is_detected() {
        let h = fake_sha(&canonical_note(S, "x"));
        let mut s = signature(1, None, &h, "dr.a", 1, SignatureMeaning::Author);
        s.printed_name = "Someone Else".into();
        assert!(!verify(S, Some("x"), &[s], &[], fake_sha).intact);
        // The same text in another session hashes differently, so a copied signature fails.
        let s = signature(1, None, &h, "dr.a", 1, SignatureMeaning::Author);
        assert!(!verify(SessionId(8), Some("x"), &[s], &[], fake_sha).intact);
    }

    #[test]
    fn an_edited_amendment_or_a_broken_chain_is_detected() {
        let h = fake_sha(&canonical_note(S, "x"));
        let sigs = vec![signature(1, None, &h, "dr.a", 1, SignatureMeaning::Author)];
        let mut a1 = amendment(1, None, &h, "first");
        a1.text = "first, edited".into();
        assert!(!verify(S, Some("x"), &sigs, &[a1], fake_sha).intact);
        let a1 = amendment(1, None, &h, "first");
        let a2 = amendment(2, None, &h, "claims to follow the original too");
        let v = verify(S, Some("x"), &sigs, &[a1, a2], fake_sha);
        assert!(v.problems.iter().any(|p| p.contains("chain is broken")), "{:?}", v.problems);
    }

    #[test]
    fn signing_rules() {
        let h = "h";
        let by_a = Some(WrittenBy { user_id: Some(1), username: "dr.a" });
        assert!(check_signing(&[], SignatureMeaning::Author, Some(1), "dr.a", by_a).is_ok());
        assert!(check_signing(&[], SignatureMeaning::CoSign, Some(2), "dr.b", by_a).is_err(), "author first");
        let a = vec![signature(1, None, h, "dr.a", 1, SignatureMeaning::Author)];
        assert!(check_signing(&a, SignatureMeaning::Author, Some(2), "dr.b", by_a).is_err(), "one author");
        assert!(check_signing(&a, SignatureMeaning::CoSign, Some(1), "dr.a", by_a).is_err(), "author cannot co-sign");
        assert!(check_signing(&a, SignatureMeaning::CoSign, Some(2), "dr.b", by_a).is_ok());
        assert!(
            check_signing(&a, SignatureMeaning::Review, Some(1), "DR.A", by_a).is_ok(),
            "the author may record a review"
        );
        let mut b = a.clone();
        b.push(signature(2, None, h, "dr.b", 2, SignatureMeaning::Review));
        assert!(check_signing(&b, SignatureMeaning::Review, Some(2), "dr.b", by_a).is_err(), "no double review");
    }

    /// Regression: a nurse could sign a prescriber's note with the meaning
    /// "author". The meaning must match what the signer did (21 CFR 11.50).
    #[test]
    fn only_the_writer_signs_as_author() {
        let by_dr = Some(WrittenBy { user_id: Some(1), username: "dr.a" });
        let e = check_signing(&[], SignatureMeaning::Author, Some(7), "rn.b", by_dr).unwrap_err();
        let DomainError::Invalid(errs) = &e else { panic!("{e:?}") };
        assert_eq!(errs[0].field, "meaning");
        assert!(errs[0].message.contains("only dr.a wrote this text"), "{e}");
        // Matched by account, whatever the case of the user name.
        assert!(check_signing(&[], SignatureMeaning::Author, Some(1), "DR.A", by_dr).is_ok());
        // With nobody recorded as the writer, nobody signs as author.
        assert!(check_signing(&[], SignatureMeaning::Author, Some(1), "dr.a", None).is_err());
        // Once the writer has signed, others review or co-sign.
        let a = vec![signature(1, None, "h", "dr.a", 1, SignatureMeaning::Author)];
        assert!(check_signing(&a, SignatureMeaning::Review, Some(7), "rn.b", by_dr).is_ok());
    }

    #[test]
    fn canonical_content_is_unambiguous() {
        assert_ne!(canonical_note(SessionId(1), "2x"), canonical_note(SessionId(12), "x"));
        assert_ne!(canonical_note(S, "a"), canonical_note(S, "a "));
    }

    #[test]
    fn amendments_need_a_reason_and_text() {
        assert!(NewAmendment { reason: " ".into(), text: "x".into() }.validate().is_err());
        assert!(NewAmendment { reason: "typo".into(), text: "".into() }.validate().is_err());
        assert!(NewAmendment { reason: "typo".into(), text: "x".into() }.validate().is_ok());
    }
}
