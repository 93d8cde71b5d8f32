//! Pre-treatment confirmations and caution decisions as records, on every backend: the
//! prescriber confirms every check of the route and decides every caution the latest
//! assessment found (benefit, risk, why), once per course, with who and when; anything
//! missing is a field error that writes nothing; the record is audited and read back.

use keta_domain::DomainError;
use keta_domain::course::Route;
use keta_domain::eligibility::pretreatment_checks;
use keta_domain::pretreatment::{NewCautionDecision, NewPretreatment};
use keta_domain::records::NewEligibilityAssessment;
use keta_store::StoreError;
use keta_testkit::{ManualClock, TestDb};

use crate::fixtures::*;

fn checks(route: Route) -> Vec<String> {
    pretreatment_checks(route).iter().map(|c| c.code.clone()).collect()
}

fn decision() -> NewCautionDecision {
    NewCautionDecision {
        code: "substance_use_disorder".into(),
        benefit: "Severe treatment-resistant depression after four failed trials".into(),
        risk: "Misuse; in remission two years, doses given only in clinic".into(),
        reason: "Expected benefit outweighs a risk managed by in-clinic dosing".into(),
    }
}

async fn count(db: &TestDb, table: &'static str) -> i64 {
    let sql = format!("SELECT count(*) AS n FROM {table}");
    keta_store::testing::read(&db.store, move |c| c.query_opt(&sql, &[])?.unwrap().i64("n")).await.unwrap()
}

#[tokio::test]
async fn a_course_keeps_its_pre_treatment_checks_and_caution_decisions_as_records() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let s = &db.store;
        let a = site(s, "A").await;
        let dr = prescriber(&[a]);
        let p = patient(s, a, "A-2901").await;
        s.assess_eligibility(
            &dr,
            p,
            NewEligibilityAssessment {
                route: Route::IvRacemic,
                maudsley: None,
                contraindications_present: vec!["substance_use_disorder".into()],
            },
        )
        .await
        .unwrap();
        let c = s.create_course(&dr, p, course(Route::IvRacemic)).await.unwrap();
        let before = (count(&db, "pretreatment_confirmations").await, count(&db, "audit_log").await);

        // The caution has no decision and a check is missing: both named, nothing written.
        let mut partial = checks(Route::IvRacemic);
        partial.pop();
        let refused = s
            .record_pretreatment(&dr, c.id, NewPretreatment { confirmed_checks: partial, caution_decisions: vec![] })
            .await;
        let Err(StoreError::Domain(DomainError::Invalid(errs))) = refused else {
            panic!("{:?}: expected field errors, got {refused:?}", db.kind)
        };
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"confirmed_checks"), "{fields:?}");
        assert!(fields.contains(&"caution.substance_use_disorder.reason"), "{fields:?}");
        assert_eq!(
            (count(&db, "pretreatment_confirmations").await, count(&db, "audit_log").await),
            before,
            "{:?}",
            db.kind
        );

        // A nurse does not plan treatment.
        let full = NewPretreatment { confirmed_checks: checks(Route::IvRacemic), caution_decisions: vec![decision()] };
        assert!(matches!(s.record_pretreatment(&nurse(&[a]), c.id, full.clone()).await, Err(StoreError::Forbidden(_))));

        let rec = s.record_pretreatment(&dr, c.id, full.clone()).await.unwrap();
        assert_eq!(rec.confirmations.len(), pretreatment_checks(Route::IvRacemic).len());
        assert!(rec.confirmations.iter().all(|x| x.confirmed_by == "dr.test" && x.confirmed_at == T0));
        let d = &rec.caution_decisions[0];
        assert_eq!((d.label.as_str(), d.decided_by.as_str()), ("Substance use disorder", "dr.test"));
        assert_eq!(d.risk, decision().risk);
        assert_eq!(count(&db, "audit_log").await, before.1 + 1, "written with its audit entry, {:?}", db.kind);

        // Once per course: a second record is refused and the first stays as it was.
        assert!(matches!(
            s.record_pretreatment(&dr, c.id, full).await,
            Err(StoreError::Domain(DomainError::Conflict(_)))
        ));
        let listed = s.list_pretreatment(&nurse(&[a]), p).await.unwrap();
        assert_eq!(listed, vec![rec.clone()]);
        assert_eq!(s.course_pretreatment(&nurse(&[a]), c.id).await.unwrap(), rec);

        // The rows cannot be changed behind the store's back.
        let tampered = keta_store::testing::write(&db.store, |c| {
            c.execute("UPDATE caution_decisions SET reason = 'changed'", &[])
        })
        .await;
        assert!(tampered.is_err(), "{:?}: a caution decision was changed", db.kind);

        // Another site's prescriber does not see the course.
        let b = site(s, "B").await;
        assert!(matches!(s.list_pretreatment(&prescriber(&[b]), p).await, Err(StoreError::NotFound(_))));
    }
}
