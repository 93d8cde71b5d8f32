//! Signed session notes (security-reference SIG-1, SIG-2): stories on every backend,
//! then the JSON API over HTTP.

use keta_domain::access::Role;
use keta_domain::course::Route;
use keta_domain::ids::{SessionId, SiteId};
use keta_domain::notes::{NewAmendment, SignNote, SignatureMeaning};
use keta_domain::session::NewSession;
use keta_store::{Actor, SiteScope, Store, StoreError, params};
use keta_testkit::{Kind, ManualClock, TestDb, seed_staff, spawn_app};
use serde_json::{Value, json};

use crate::fixtures::*;

async fn session_with_note(s: &Store, site: SiteId, mrn: &str, note: &str) -> SessionId {
    let p = patient(s, site, mrn).await;
    let c = s.create_course(&prescriber(&[site]), p, course(Route::IvRacemic)).await.unwrap();
    let sess = s
        .create_session(
            &prescriber(&[site]),
            c.id,
            NewSession { scheduled_for: T0, chair_id: None, planned_dose_mg: None },
        )
        .await
        .unwrap();
    if !note.is_empty() {
        // The prescriber writes the note, so the prescriber may sign it as its author.
        s.set_session_note(&prescriber(&[site]), sess.id, note.into()).await.unwrap();
    }
    sess.id
}

fn sign(meaning: SignatureMeaning) -> SignNote {
    SignNote { meaning, amendment_id: None }
}

fn amendment(text: &str) -> NewAmendment {
    NewAmendment { reason: "late entry: vitals at 60 min omitted".into(), text: text.into() }
}

/// The audit trail's actions, without the fixture's consent signatures.
async fn audit_actions(db: &TestDb) -> Vec<String> {
    keta_store::testing::read(&db.store, |c| {
        c.query("SELECT action FROM audit_log WHERE object_type <> 'consent' ORDER BY seq", &[])?
            .iter()
            .map(|r| r.text("action"))
            .collect()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_signed_note_is_locked_and_changes_are_signed_amendments_linked_to_it() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let (s, k) = (&db.store, db.kind);
        let a = site(s, "A").await;
        let text = "IV ketamine 0.5 mg/kg over 40 min. Tolerated well; mild dissociation resolved by 30 min.";
        let sess = session_with_note(s, a, "A-0001", text).await;
        let (dr, rn) = (prescriber(&[a]), nurse(&[a]));
        let now = clock.now();

        // AC-11: no re-entered password, or one too old, is refused with 403.
        let e =
            s.sign_session_note(&dr, None, sess, "Dr Test".into(), sign(SignatureMeaning::Author)).await.unwrap_err();
        assert!(matches!(&e, StoreError::Forbidden(m) if m.contains("re-enter your password")), "{k:?}: {e:?}");
        let stale = Some(now - time::Duration::minutes(6));
        assert!(matches!(
            s.sign_session_note(&dr, stale, sess, "Dr Test".into(), sign(SignatureMeaning::Author)).await,
            Err(StoreError::Forbidden(_))
        ));
        // The author signs first.
        assert!(
            s.sign_session_note(&rn, Some(now), sess, "RN Test".into(), sign(SignatureMeaning::CoSign)).await.is_err()
        );
        assert!(!keta_store::testing::is_note_signed(s, sess).await.unwrap());

        let signed =
            s.sign_session_note(&dr, Some(now), sess, "Dr Test".into(), sign(SignatureMeaning::Author)).await.unwrap();
        assert!(signed.signed && signed.locked, "{k:?}");
        let sig = &signed.signatures[0];
        assert_eq!(
            (sig.signer.as_str(), sig.printed_name.as_str(), sig.meaning, sig.signed_at),
            ("dr.test", "Dr Test", SignatureMeaning::Author, now)
        );
        assert_eq!(Some(&sig.content_sha256), signed.content_sha256.as_ref(), "bound to the hash of the text signed");
        assert_eq!(sig.content_sha256.len(), 64);
        assert!(keta_store::testing::is_note_signed(s, sess).await.unwrap(), "{k:?}");
        // One author; the author cannot co-sign; someone else can.
        assert!(matches!(
            s.sign_session_note(&rn, Some(now), sess, "RN Test".into(), sign(SignatureMeaning::Author)).await,
            Err(StoreError::Domain(_))
        ));
        assert!(
            s.sign_session_note(&dr, Some(now), sess, "Dr Test".into(), sign(SignatureMeaning::CoSign)).await.is_err()
        );
        let cosigned =
            s.sign_session_note(&rn, Some(now), sess, "RN Test".into(), sign(SignatureMeaning::CoSign)).await.unwrap();
        assert_eq!(cosigned.signatures.len(), 2);

        // Amendments: re-authenticated, linked in a chain, each signed by its author.
        assert!(matches!(
            s.amend_session_note(&dr, None, sess, "Dr Test".into(), amendment("BP 150/90 at 60 min.")).await,
            Err(StoreError::Forbidden(_))
        ));
        clock.advance(time::Duration::hours(2));
        let later = clock.now();
        let one = s
            .amend_session_note(
                &dr,
                Some(later),
                sess,
                "Dr Test".into(),
                amendment("BP 150/90 at 60 min, settled by 75 min."),
            )
            .await
            .unwrap();
        let two = s
            .amend_session_note(
                &rn,
                Some(later),
                sess,
                "RN Test".into(),
                NewAmendment { reason: "typo".into(), text: "Dissociation resolved by 35 min, not 30.".into() },
            )
            .await
            .unwrap();
        assert_eq!(two.amendments.len(), 2, "{k:?}");
        let (a1, a2) = (&two.amendments[0], &two.amendments[1]);
        assert_eq!(
            (a1.previous_amendment_id, a1.previous_sha256.as_str()),
            (None, sig.content_sha256.as_str()),
            "the first follows the signed original"
        );
        assert_eq!((a2.previous_amendment_id, a2.previous_sha256.as_str()), (Some(a1.id), a1.content_sha256.as_str()));
        assert_eq!((a2.author.as_str(), a2.reason.as_str(), a2.created_at), ("nurse.test", "typo", later));
        assert_eq!(
            a1.signatures.iter().map(|s| (s.meaning, s.signer.as_str())).collect::<Vec<_>>(),
            [(SignatureMeaning::Author, "dr.test")]
        );
        assert_eq!(a1.signatures[0].content_sha256, a1.content_sha256);
        assert_eq!(one.amendments[0], *a1, "an amendment does not change once written");
        // The original stays readable and its hash unchanged.
        assert_eq!((two.text.as_deref(), two.content_sha256.as_ref()), (Some(text), signed.content_sha256.as_ref()));
        // A review of an amendment.
        let reviewed = s
            .sign_session_note(
                &rn,
                Some(later),
                sess,
                "RN Test".into(),
                SignNote { meaning: SignatureMeaning::Review, amendment_id: Some(a1.id) },
            )
            .await
            .unwrap();
        assert_eq!(reviewed.amendments[0].signatures.len(), 2);
        assert!(reviewed.verification.intact, "{k:?}: {:?}", reviewed.verification.problems);
        let got = s.get_signed_note(&rn, sess).await.unwrap();
        assert_eq!(got, reviewed);

        let actions = audit_actions(&db).await;
        assert_eq!(actions.iter().filter(|x| *x == "sign").count(), 5, "{k:?}: {actions:?}");
        assert_eq!(actions.iter().filter(|x| *x == "amend").count(), 2);
        // Signatures and amendments cannot be changed or removed, even by Keta.
        assert!(
            keta_store::testing::write(s, |c| c.execute("UPDATE note_signatures SET printed_name = 'x'", &[]))
                .await
                .is_err(),
            "{k:?}"
        );
        assert!(
            keta_store::testing::write(s, |c| c.execute("DELETE FROM note_amendments", &[])).await.is_err(),
            "{k:?}"
        );
        // Reading needs the clinical chart permission.
        assert!(matches!(s.get_signed_note(&front_desk(&[a]), sess).await, Err(StoreError::Forbidden(_))));
        let other_site = Actor::staff("dr.b", Role::Prescriber, SiteScope::Sites(vec![SiteId(999)]));
        assert!(matches!(s.get_signed_note(&other_site, sess).await, Err(StoreError::NotFound(_))));
    }
}

#[tokio::test]
async fn a_signed_note_edited_outside_keta_fails_verification() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let (s, k) = (&db.store, db.kind);
        let a = site(s, "A").await;
        let sess = session_with_note(s, a, "A-0001", "Dose 35 mg IV. No adverse events.").await;
        let untouched = session_with_note(s, a, "A-0002", "Dose 40 mg IV.").await;
        let dr = prescriber(&[a]);
        for id in [sess, untouched] {
            s.sign_session_note(&dr, Some(clock.now()), id, "Dr Test".into(), sign(SignatureMeaning::Author))
                .await
                .unwrap();
        }
        s.amend_session_note(&dr, Some(clock.now()), sess, "Dr Test".into(), amendment("Pre-dose BP 128/82."))
            .await
            .unwrap();
        assert!(keta_store::testing::verify_notes(s).await.unwrap().is_empty(), "{k:?}");

        // Someone with the database shell rewrites the signed body.
        keta_store::testing::write(s, move |c| {
            c.execute(
                "UPDATE sessions SET note = $1 WHERE id = $2",
                params!["Dose 35 mg IV. Adverse event: none worth noting.", sess.0],
            )
        })
        .await
        .unwrap();
        let got = s.get_signed_note(&dr, sess).await.unwrap();
        assert!(!got.verification.intact, "{k:?}");
        assert!(got.verification.problems[0].contains("changed after signing"), "{:?}", got.verification.problems);
        let broken = keta_store::testing::verify_notes(s).await.unwrap();
        assert_eq!(broken.iter().map(|b| b.0).collect::<Vec<_>>(), [sess], "{k:?}");
        // Nobody can co-sign the altered text.
        let e = s
            .sign_session_note(&nurse(&[a]), Some(clock.now()), sess, "RN Test".into(), sign(SignatureMeaning::CoSign))
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Conflict(_)), "{k:?}: {e:?}");

        // ...and an amendment's text, past its append-only guard.
        let kind = db.kind;
        keta_store::testing::write(s, move |c| {
            match kind {
                Kind::Sqlite => c.execute("DROP TRIGGER note_amendments_no_update", &[])?,
                Kind::Postgres => {
                    c.execute("ALTER TABLE note_amendments DISABLE TRIGGER note_amendments_no_update", &[])?
                }
            };
            c.execute("UPDATE note_amendments SET body = 'Pre-dose BP 118/76.'", &[])
        })
        .await
        .unwrap();
        let got = s.get_signed_note(&dr, sess).await.unwrap();
        assert!(
            got.verification.problems.iter().any(|p| p.contains("amendment") && p.contains("altered")),
            "{k:?}: {:?}",
            got.verification.problems
        );
    }
}

#[tokio::test]
async fn only_a_written_note_is_signed_and_only_a_signed_note_is_amended() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let s = &db.store;
        let a = site(s, "A").await;
        let empty = session_with_note(s, a, "A-0001", "").await;
        let dr = prescriber(&[a]);
        let e = s
            .sign_session_note(&dr, Some(clock.now()), empty, "Dr Test".into(), sign(SignatureMeaning::Author))
            .await
            .unwrap_err();
        assert!(matches!(&e, StoreError::Conflict(m) if m.contains("write the note")), "{e:?}");
        let draft = session_with_note(s, a, "A-0002", "draft").await;
        let e =
            s.amend_session_note(&dr, Some(clock.now()), draft, "Dr Test".into(), amendment("more")).await.unwrap_err();
        assert!(matches!(&e, StoreError::Conflict(m) if m.contains("not signed yet")), "{e:?}");
        assert!(matches!(
            s.amend_session_note(
                &dr,
                Some(clock.now()),
                draft,
                "Dr Test".into(),
                NewAmendment { reason: "".into(), text: "x".into() }
            )
            .await,
            Err(StoreError::Domain(_))
        ));
        assert!(
            matches!(
                s.sign_session_note(&dr, Some(clock.now()), draft, " ".into(), sign(SignatureMeaning::Author)).await,
                Err(StoreError::Domain(_))
            ),
            "a signature shows a printed name"
        );
        // The front desk does not sign notes.
        assert!(matches!(
            s.sign_session_note(
                &front_desk(&[a]),
                Some(clock.now()),
                draft,
                "Desk".into(),
                sign(SignatureMeaning::Author)
            )
            .await,
            Err(StoreError::Forbidden(_))
        ));
    }
}

#[tokio::test]
async fn notes_are_signed_and_amended_over_http_after_reauthentication() {
    let clock = ManualClock::at(T0);
    let db = TestDb::sqlite(clock.as_clock()).await;
    let a = site(&db.store, "A").await;
    let staff = seed_staff(&db.store, &[a]).await;
    let sess = session_with_note(&db.store, a, "A-0001", "Session went to plan.").await;
    let dr = staff.iter().find(|s| s.role == Role::Prescriber).unwrap();
    // Saved again by the signed-in prescriber, who then signs as its author.
    let writer = Actor::staff(&dr.username, Role::Prescriber, SiteScope::Sites(vec![a]));
    db.store.set_session_note(&writer, sess, "Session went to plan.".into()).await.unwrap();
    let app = spawn_app(db.store.clone()).await;
    assert_eq!(app.get(&format!("/api/v1/sessions/{}/note", sess.0)).await.status(), 401, "anonymous");
    assert_eq!(app.login(dr, T0).await.status(), 200);
    clock.advance(time::Duration::minutes(6));

    let path = format!("/api/v1/sessions/{}/note", sess.0);
    let r = app.post_json(&format!("{path}/sign"), &json!({"meaning": "author"})).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("re-enter your password"));

    let r = app.post_json("/api/v1/auth/reauth", &json!({"password": dr.password})).await;
    assert_eq!(r.status(), 200);
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("__Host-keta=").map(|rest| rest.split(';').next().unwrap_or("").to_string()))
        .expect("rotated cookie");
    let with = |m: reqwest::Method, p: &str| {
        app.client.request(m, app.url(p)).header("cookie", format!("__Host-keta={cookie}"))
    };
    let csrf = with(reqwest::Method::GET, "/api/v1/auth/me").send().await.unwrap().json::<Value>().await.unwrap()["csrf_token"].as_str().unwrap().to_string();
    let post = |p: String, body: Value| {
        with(reqwest::Method::POST, &p).header("x-csrf-token", csrf.clone()).json(&body).send()
    };

    let r = post(format!("{path}/sign"), json!({"meaning": "author"})).await.unwrap();
    assert_eq!(r.status(), 201);
    let note: Value = r.json().await.unwrap();
    assert_eq!(note["locked"], true);
    assert_eq!(note["signatures"][0]["printed_name"], "Test Prescriber");
    assert_eq!(note["signatures"][0]["meaning"], "author");
    let r = post(format!("{path}/sign"), json!({"meaning": "author"})).await.unwrap();
    assert_eq!(r.status(), 409, "signed once as author");
    let r = post(format!("{path}/sign"), json!({"meaning": "approve"})).await.unwrap();
    assert_eq!(r.status(), 422);

    let r = post(
        format!("{path}/amendments"),
        json!({"reason": "late entry", "text": "Nausea at 50 min, ondansetron 4 mg."}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let got: Value = with(reqwest::Method::GET, &path).send().await.unwrap().json().await.unwrap();
    assert_eq!(got["text"], "Session went to plan.", "the original stays readable");
    assert_eq!(got["amendments"][0]["text"], "Nausea at 50 min, ondansetron 4 mg.");
    assert_eq!(got["amendments"][0]["signatures"][0]["printed_name"], "Test Prescriber");
    assert_eq!(got["verification"]["intact"], true);
}

/// Regression: a nurse could sign a prescriber's note with the meaning
/// "author". Only the note's writer signs as author (21 CFR 11.50); others review or
/// co-sign, and a note nobody is recorded as writing has no author to sign it.
#[tokio::test]
async fn only_the_person_who_wrote_the_note_signs_it_as_author() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let (s, k) = (&db.store, db.kind);
        let a = site(s, "A").await;
        let sess = session_with_note(s, a, "A-0001", "Written by the prescriber.").await;
        let (dr, rn) = (prescriber(&[a]), nurse(&[a]));
        let now = clock.now();
        let e = s
            .sign_session_note(&rn, Some(now), sess, "RN Test".into(), sign(SignatureMeaning::Author))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, StoreError::Domain(keta_domain::DomainError::Invalid(f)) if f[0].field == "meaning" && f[0].message.contains("dr.test")),
            "{k:?}: {e:?}"
        );
        assert!(!keta_store::testing::is_note_signed(s, sess).await.unwrap(), "{k:?}: nothing was signed");
        s.sign_session_note(&dr, Some(now), sess, "Dr Test".into(), sign(SignatureMeaning::Author)).await.unwrap();
        let reviewed =
            s.sign_session_note(&rn, Some(now), sess, "RN Test".into(), sign(SignatureMeaning::Review)).await.unwrap();
        let meanings: Vec<_> = reviewed.signatures.iter().map(|x| (x.signer.as_str(), x.meaning)).collect();
        assert_eq!(
            meanings,
            [("dr.test", SignatureMeaning::Author), ("nurse.test", SignatureMeaning::Review)],
            "{k:?}"
        );

        // Whoever saves the text last is its writer: the nurse edits a draft, so the
        // prescriber may no longer sign it as author.
        let draft = session_with_note(s, a, "A-0002", "Draft by the prescriber.").await;
        s.set_session_note(&rn, draft, "Completed by the nurse.".into()).await.unwrap();
        assert!(
            s.sign_session_note(&dr, Some(now), draft, "Dr Test".into(), sign(SignatureMeaning::Author)).await.is_err(),
            "{k:?}"
        );
        s.sign_session_note(&rn, Some(now), draft, "RN Test".into(), sign(SignatureMeaning::Author)).await.unwrap();
    }
}
