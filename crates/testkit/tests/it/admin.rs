//! Running the clinic from the browser: staff accounts and sites changed after
//! creation, resets behind re-authentication, who changed a setting, and the administration
//! screens over HTTP. Stories run on both backends.

use keta_domain::access::Role;
use keta_domain::ids::SiteId;
use keta_store::admin::{SiteChange, UserChange};
use keta_store::{Actor, SiteScope, StoreError};
use keta_testkit::{ManualClock, TestDb, seed_staff, spawn_app};
use time::Duration;

use crate::checkins::sign_in;
use crate::fixtures::*;

fn admin(sites: &[SiteId], user_id: i64) -> Actor {
    let mut a = Actor::staff("administrator.test", Role::Administrator, SiteScope::Sites(sites.to_vec()));
    a.user_id = Some(user_id);
    a
}

fn field_errors(e: StoreError) -> Vec<String> {
    match e {
        StoreError::Domain(keta_domain::DomainError::Invalid(list)) => list.into_iter().map(|f| f.field).collect(),
        other => panic!("expected field errors, got {other:?}"),
    }
}

async fn audit_count(s: &keta_store::Store, object_type: &'static str) -> i64 {
    keta_store::testing::read(s, move |c| {
        c.query_opt("SELECT count(*) AS n FROM audit_log WHERE object_type = $1", keta_store::params![object_type])?
            .unwrap()
            .i64("n")
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn an_administrator_changes_accounts_and_resets_credentials_only_after_reentering_their_password() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let s = &db.store;
        let a = site(s, "ADM-A").await;
        let b = site(s, "ADM-B").await;
        let staff = seed_staff(s, &[a]).await;
        let users = s.list_users(&Actor::staff("x", Role::Administrator, SiteScope::All)).await.unwrap();
        let admin_id = users.iter().find(|u| u.role == Role::Administrator).unwrap().id;
        let nurse = users.iter().find(|u| u.role == Role::Nurse).unwrap().clone();
        let me = admin(&[a, b], admin_id);

        // Role and sites change together, audited; a bad name changes nothing.
        let before = audit_count(s, "user").await;
        let e = s
            .update_user(
                &me,
                nurse.id,
                UserChange {
                    display_name: " ".into(),
                    role: Role::Prescriber,
                    site_ids: vec![b],
                    can_break_glass: false,
                },
            )
            .await
            .unwrap_err();
        assert_eq!(field_errors(e), vec!["display_name"], "{:?}", db.kind);
        assert_eq!(audit_count(s, "user").await, before, "a refused change writes nothing");
        let u = s
            .update_user(
                &me,
                nurse.id,
                UserChange {
                    display_name: "Nurse Moved".into(),
                    role: Role::Prescriber,
                    site_ids: vec![a, b],
                    can_break_glass: true,
                },
            )
            .await
            .unwrap();
        assert_eq!(
            (u.role, u.site_ids.clone(), u.display_name.as_str()),
            (Role::Prescriber, vec![a, b], "Nurse Moved")
        );
        assert_eq!(audit_count(s, "user").await, before + 1);

        // An administrator cannot demote themself (nobody might be left to undo it).
        let e = s
            .update_user(
                &me,
                admin_id,
                UserChange {
                    display_name: "Admin".into(),
                    role: Role::Nurse,
                    site_ids: vec![a],
                    can_break_glass: false,
                },
            )
            .await
            .unwrap_err();
        assert_eq!(field_errors(e), vec!["role"]);

        // Resets need a fresh re-authentication; without one nothing changes.
        let e = s.reset_user_password(&me, None, nurse.id, "a brand new passphrase 7".into()).await.unwrap_err();
        assert!(matches!(e, StoreError::Forbidden(ref m) if m.contains("password")), "{e:?}");
        let e = s.reset_user_totp(&me, Some(clock.now() - Duration::hours(1)), nurse.id).await.unwrap_err();
        assert!(matches!(e, StoreError::Forbidden(_)), "{e:?}");
        let e = s.reset_user_password(&me, Some(clock.now()), nurse.id, "short".into()).await.unwrap_err();
        assert_eq!(field_errors(e), vec!["new_password"], "the policy's error names the form's field");
        let old = staff.iter().find(|l| l.role == Role::Nurse).unwrap();
        assert!(s.begin_sign_in(&old.username, &old.password).await.unwrap().is_some(), "old password works before");
        s.reset_user_password(&me, Some(clock.now()), nurse.id, "a brand new passphrase 7".into()).await.unwrap();
        assert!(s.begin_sign_in(&old.username, &old.password).await.unwrap().is_none(), "old password refused");
        assert!(s.begin_sign_in(&old.username, "a brand new passphrase 7").await.unwrap().is_some());
        let secret = s.reset_user_totp(&me, Some(clock.now()), nurse.id).await.unwrap();
        assert_ne!(secret, old.totp_secret);
        assert!(keta_store::credentials::base32_decode(&secret).is_some_and(|b| b.len() >= 10));

        // Last sign-in: only a finished sign-in (password and code) counts.
        let app = spawn_app(s.clone()).await;
        sign_in(&app, &clock, staff.iter().find(|l| l.role == Role::FrontDesk).unwrap()).await;
        let last = s.last_sign_ins(&me).await.unwrap();
        let desk_id = users.iter().find(|u| u.role == Role::FrontDesk).unwrap().id;
        assert_eq!(last.get(&desk_id).copied(), Some(clock.now()));
        assert!(!last.contains_key(&nurse.id), "a password without the code is not a sign-in");
        assert!(matches!(s.last_sign_ins(&nurse_actor(&[a])).await.unwrap_err(), StoreError::Forbidden(_)));
    }
}

fn nurse_actor(sites: &[SiteId]) -> Actor {
    nurse(sites)
}

#[tokio::test]
async fn a_site_gets_an_address_and_chairs_with_errors_that_name_the_field_and_a_visible_last_change() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let s = &db.store;
        let a = site(s, "ADS-A").await;
        let me = admin(&[a], 1);
        assert_eq!(s.site_address(&me, a).await.unwrap(), "", "an existing site starts without an address");

        let bad = SiteChange {
            name: "Clinic A".into(),
            address: "x".repeat(400),
            time_zone: "Mars/Olympus Mons Base".into(),
            crisis_line: "".into(),
        };
        let mut fields = field_errors(s.update_site(&me, a, bad).await.unwrap_err());
        fields.sort();
        fields.dedup();
        assert_eq!(fields, vec!["address", "crisis_line", "time_zone"], "{:?}", db.kind);
        assert_eq!(s.site_address(&me, a).await.unwrap(), "", "nothing changed");

        let good = SiteChange {
            name: "Clinic A North".into(),
            address: "12 Elm Street\nAustin TX 78701".into(),
            time_zone: "America/Denver".into(),
            crisis_line: "988".into(),
        };
        s.update_site(&me, a, good).await.unwrap();
        assert_eq!(s.site_address(&me, a).await.unwrap(), "12 Elm Street\nAustin TX 78701");
        let site_now = s.list_sites(&me).await.unwrap().into_iter().find(|x| x.id == a).unwrap();
        assert_eq!((site_now.name.as_str(), site_now.time_zone.as_str()), ("Clinic A North", "America/Denver"));

        let chair = s.add_chair(&me, a, "Chair 3".into()).await.unwrap();
        assert_eq!(chair.name, "Chair 3");
        assert_eq!(field_errors(s.add_chair(&me, a, "Chair 1".into()).await.unwrap_err()), vec!["chair_name"]);
        assert_eq!(s.list_chairs(&me, a).await.unwrap().len(), 3);
        // Another site's administrator cannot touch it.
        let other = admin(&[SiteId(a.0 + 100)], 2);
        assert!(matches!(s.add_chair(&other, a, "Chair 9".into()).await.unwrap_err(), StoreError::NotFound(_)));

        // Who changed it, when: from the audit trail, per setting key.
        clock.advance(Duration::minutes(5));
        s.set_site_pk_threshold(&prescriber(&[a]), a, Some(1.5)).await.unwrap();
        let changes = s
            .last_changes(
                &me,
                vec![
                    ("site".into(), a.to_string(), None),
                    ("site_settings".into(), a.to_string(), Some(keta_store::rules::PK_THRESHOLD_KEY.into())),
                    ("site_settings".into(), a.to_string(), Some(keta_store::sessions::DISCHARGE_SETTINGS_KEY.into())),
                ],
            )
            .await
            .unwrap();
        assert_eq!(changes[0].as_ref().map(|c| c.by.as_str()), Some("administrator.test"));
        assert_eq!(changes[1].as_ref().map(|c| (c.by.as_str(), c.at)), Some(("dr.test", clock.now())));
        assert_eq!(changes[2], None, "the discharge settings were never set");
    }
}

/// The screens over HTTP: an administrator creates a site and an account from forms; a
/// refused form says what to fix and keeps what was typed; other roles are refused.
// Long on purpose: one story over HTTP, read top to bottom.
#[allow(clippy::too_many_lines)]
#[tokio::test]
async fn the_administration_screens_create_sites_and_accounts_and_refuse_other_roles() {
    let clock = ManualClock::at(T0);
    let db = TestDb::sqlite(clock.as_clock()).await;
    let s = &db.store;
    let a = site(s, "WEB-A").await;
    let staff = seed_staff(s, &[a]).await;
    let app = spawn_app(s.clone()).await;
    let by = |r: Role| staff.iter().find(|l| l.role == r).unwrap();

    sign_in(&app, &clock, by(Role::Nurse)).await;
    assert_eq!(app.get("/admin/staff").await.status(), 403);
    let r = app.request(reqwest::Method::POST, "/admin/sites").form(&[("code", "X-1")]).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let page = app.get("/admin/settings").await.text().await.unwrap();
    assert!(page.contains("A prescriber (the medical director) changes these."), "a nurse sees, cannot change");
    assert!(!page.contains("Save the safety rules"));

    sign_in(&app, &clock, by(Role::Administrator)).await;
    let today = app.get("/today").await.text().await.unwrap();
    assert!(today.contains("href=\"/admin\""), "the menu leads to administration");
    // A refused site: 422, the typed values kept, each field's problem beside it.
    let r = app
        .request(reqwest::Method::POST, "/admin/sites")
        .form(&[
            ("code", "NEW-1"),
            ("name", "North clinic"),
            ("time_zone", "Nowhere"),
            ("crisis_line", "988"),
            ("chairs", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body = r.text().await.unwrap();
    assert!(body.contains("name at least one chair"), "{body}");
    assert!(body.contains("value=\"North clinic\""), "what was typed is kept");
    let r = app
        .request(reqwest::Method::POST, "/admin/sites")
        .form(&[
            ("code", "NEW-1"),
            ("name", "North clinic"),
            ("time_zone", "Nowhere"),
            ("crisis_line", "988"),
            ("chairs", "Chair A\nChair B"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("IANA time zone"));
    assert_eq!(s.list_sites(&Actor::system()).await.unwrap().len(), 1, "nothing was created");
    let r = app
        .request(reqwest::Method::POST, "/admin/sites")
        .form(&[
            ("code", "NEW-1"),
            ("name", "North clinic"),
            ("time_zone", "America/Chicago"),
            ("crisis_line", "988"),
            ("chairs", "Chair A\nChair B\n"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let to = r.headers()["location"].to_str().unwrap().to_string();
    let page = app.get(&to).await.text().await.unwrap();
    assert!(page.contains("Chair B") && page.contains("Saved."), "{page}");
    assert!(page.contains("by administrator.test"), "who created it is shown");

    // A new account, its authenticator key shown once.
    let new_site = s.list_sites(&Actor::system()).await.unwrap().into_iter().find(|x| x.code == "NEW-1").unwrap().id;
    let r = app
        .request(reqwest::Method::POST, "/admin/staff")
        .form(&[
            ("username", "rn.north"),
            ("display_name", "Robin North"),
            ("role", "nurse"),
            ("password", "a long enough passphrase 9"),
            ("site_ids", &new_site.0.to_string()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.contains("Account rn.north created"), "{body}");
    let users = app.get("/admin/staff").await.text().await.unwrap();
    assert!(users.contains("rn.north") && users.contains("NEW-1") && users.contains("Never"));
    // Resetting a password without re-entering one's own recently is refused with the way
    // forward (signing in counts as entering it; the longest window is 15 minutes).
    for _ in 0..4 {
        clock.advance(Duration::minutes(4) + Duration::seconds(1));
        assert_eq!(app.get("/admin/staff").await.status(), 200, "still signed in (idle limit 15 min)");
    }
    let id = s.list_users(&Actor::staff("x", Role::Administrator, SiteScope::All)).await.unwrap();
    let id = id.iter().find(|u| u.username == "rn.north").unwrap().id;
    let page = app.get(&format!("/admin/staff/{id}")).await.text().await.unwrap();
    assert!(page.contains("/reauth?next=/admin/staff/"), "the page links to re-authentication");
    let r = app
        .request(reqwest::Method::POST, &format!("/admin/staff/{id}/password"))
        .form(&[("new_password", "another passphrase 1234"), ("confirm_password", "another passphrase 1234")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body = r.text().await.unwrap();
    assert!(body.contains("Nothing was saved") && !body.contains("another passphrase 1234"), "never echoes a password");

    // Clinic-wide settings: an out-of-range value names the field; a good one is saved and shown.
    let r = app
        .request(reqwest::Method::POST, "/admin/settings/home-pre-dose")
        .form(&[("alcohol_free_hours", "500"), ("sedative_free_hours", "12")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("must be 1 to 168 hours"));
    assert_eq!(s.home_pre_dose_settings().await.unwrap(), None, "nothing was stored");
    let r = app
        .request(reqwest::Method::POST, "/admin/settings/home-pre-dose")
        .form(&[("alcohol_free_hours", "24"), ("sedative_free_hours", "12")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let page = app.get("/admin/settings").await.text().await.unwrap();
    assert!(page.contains("value=\"24\"") && page.contains("by administrator.test"));
    // The administrator cannot change clinical rules: those are the prescriber's.
    let r = app
        .request(reqwest::Method::POST, &format!("/admin/settings/sites/{}/pk-threshold", a.0))
        .form(&[("ng_ml", "1.2")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // The prescriber changes a safety rule; a broken file is refused naming the key.
    sign_in(&app, &clock, by(Role::Prescriber)).await;
    let broken = keta_domain::alerts::BUILTIN_TOML.replace("below_pct = 92", "below_pct = \"low\"");
    let r = app
        .request(reqwest::Method::POST, &format!("/admin/settings/sites/{}/safety-rules", a.0))
        .form(&[("rules_toml", broken.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("below_pct"));
    let changed = keta_domain::alerts::BUILTIN_TOML.replace("below_pct = 92", "below_pct = 91");
    let r = app
        .request(reqwest::Method::POST, &format!("/admin/settings/sites/{}/safety-rules", a.0))
        .form(&[("rules_toml", changed.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let (_, replaced) = s.site_safety_rules(&prescriber(&[a]), a).await.unwrap();
    assert!(replaced);
    let page = app.get("/admin/settings").await.text().await.unwrap();
    assert!(
        page.contains("replaced for this site") && page.contains("by prescriber.test"),
        "source and who changed it"
    );
}

/// The product defect: the Maudsley score saved with an assessment was shown nowhere (only the API
/// had it); the eligibility page now says the last saved score and when.
#[tokio::test]
async fn the_saved_maudsley_score_is_shown_on_the_eligibility_page() {
    let clock = ManualClock::at(T0);
    let db = TestDb::sqlite(clock.as_clock()).await;
    let s = &db.store;
    let a = site(s, "MSM-1").await;
    let p = patient(s, a, "MSM-0001").await;
    let staff = seed_staff(s, &[a]).await;
    let app = spawn_app(s.clone()).await;
    sign_in(&app, &clock, staff.iter().find(|l| l.role == Role::Prescriber).unwrap()).await;
    let path = format!("/patients/{}/eligibility", p.0);
    let page = app.get(&path).await.text().await.unwrap();
    assert!(page.contains("No Maudsley score saved yet."), "{page}");
    let r = app
        .request(reqwest::Method::POST, &path)
        .form(&[("msm_duration_months", "18"), ("msm_severity", "moderate"), ("msm_failures", "3")])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection() || r.status().is_success(), "{}", r.status());
    let page = app.get(&path).await.text().await.unwrap();
    let saved = page.split("Last saved score: <strong>").nth(1).expect("the saved score is shown");
    let total: u32 = saved.split(" of 15").next().unwrap().parse().expect("a total");
    assert!((3..=15).contains(&total), "{saved}");
}

/// The DEA registration printed on a site's controlled-substance books: a number whose check
/// digit does not match is refused naming the field and changes nothing; a good one is stored
/// upper-cased and audited; only an administrator may set it.
#[tokio::test]
async fn a_sites_dea_registration_is_checked_audited_and_set_only_by_an_administrator() {
    use keta_store::admin::DeaRegistration;
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let s = &db.store;
        let a = site(s, "DEA-A").await;
        let me = admin(&[a], 1);
        assert_eq!(s.site_dea_registration(&me, a).await.unwrap(), DeaRegistration::default(), "empty until set");

        let bad = DeaRegistration { number: "AB1234560".into(), address: "1 Registered Way".into() };
        let fields = field_errors(s.set_site_dea_registration(&me, a, bad).await.unwrap_err());
        assert_eq!(fields, vec!["dea_registration_number"], "{:?}", db.kind);
        assert_eq!(s.site_dea_registration(&me, a).await.unwrap(), DeaRegistration::default(), "nothing changed");
        assert_eq!(audit_count(s, "site_dea_registration").await, 0);
        // The address has the site address's limit, named by its own field.
        let long = DeaRegistration { number: "AB1234563".into(), address: "x".repeat(400) };
        let fields = field_errors(s.set_site_dea_registration(&me, a, long).await.unwrap_err());
        assert_eq!(fields, vec!["dea_registered_address"], "{:?}", db.kind);
        assert_eq!(audit_count(s, "site_dea_registration").await, 0);

        let good = DeaRegistration { number: " ab1234563 ".into(), address: "1 Registered Way, Austin TX".into() };
        s.set_site_dea_registration(&me, a, good).await.unwrap();
        let stored = s.site_dea_registration(&me, a).await.unwrap();
        assert_eq!((stored.number.as_str(), stored.address.as_str()), ("AB1234563", "1 Registered Way, Austin TX"));
        assert_eq!(audit_count(s, "site_dea_registration").await, 1, "{:?}", db.kind);

        let nurse = Actor::staff("nurse.test", Role::Nurse, SiteScope::Sites(vec![a]));
        let refused = DeaRegistration { number: String::new(), address: String::new() };
        assert!(matches!(s.set_site_dea_registration(&nurse, a, refused).await, Err(StoreError::Forbidden(_))));
        assert_eq!(s.site_dea_registration(&me, a).await.unwrap().number, "AB1234563", "the refusal changed nothing");
    }
}
