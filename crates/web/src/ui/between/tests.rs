use super::*;
use time::macros::datetime;

fn clock() -> SiteClock {
    SiteClock::named("America/Chicago")
}

const NOW: OffsetDateTime = datetime!(2026-11-15 18:00 UTC);

fn in_clinic() -> &'static CheckInSchedule {
    checkins::schedule_for_route(keta_domain::course::Route::IvRacemic).expect("IV courses have a schedule")
}

fn item(id: &str) -> &'static CheckInItem {
    in_clinic().items.iter().find(|i| i.id == id).expect(id)
}

/// The form as the page submits it: every item ticked at the clinic's intervals.
fn untouched(reason: &str) -> Vec<(String, String)> {
    let mut pairs = vec![("reason".to_string(), reason.to_string())];
    for i in &in_clinic().items {
        pairs.push(("send".into(), i.id.clone()));
        if let Timing::Every { days, .. } = i.timing {
            pairs.push((interval_field(&i.id), days.to_string()));
        }
    }
    pairs
}

/// The pairs with `name` set to `value` (replacing it).
fn set(mut pairs: Vec<(String, String)>, name: &str, value: &str) -> Vec<(String, String)> {
    pairs.retain(|(k, _)| k != name);
    pairs.push((name.into(), value.into()));
    pairs
}

/// The pairs with an item's "send" box unticked.
fn untick(mut pairs: Vec<(String, String)>, id: &str) -> Vec<(String, String)> {
    pairs.retain(|(k, v)| !(k == "send" && v == id));
    pairs
}

fn with(pairs: Vec<(String, String)>, name: &str, value: &str) -> FormData {
    FormData::from_pairs(set(pairs, name, value))
}

#[test]
fn schedule_timings_read_as_words() {
    assert_eq!(timing_words(item("phq9_before_session"), 9), "24 h before each session");
    assert_eq!(timing_words(item("after_session"), 9), "24 h after each session, open 24 h");
    assert_eq!(
        timing_words(item("gad7_weekly"), 9),
        "every 7 days at 09:00, open 72 h, until 56 days after the last session"
    );
    assert_eq!(
        timing_words(item("urinary_monthly"), 18),
        "every 30 days at 18:00, open 7 days, until 90 days after the last session"
    );
    let home = checkins::schedule_for_route(keta_domain::course::Route::OralRacemic).unwrap();
    let screen = home.items.iter().find(|i| i.id == "pre_dose_screen").unwrap();
    assert_eq!(timing_words(screen, 9), "from 2 h before to 4 h after each session");
    let daily = CheckInItem {
        timing: Timing::Every { days: 1, open_hours: 12 },
        follow_up_days_after_last_session: None,
        for_days: Some(1),
        ..item("gad7_weekly").clone()
    };
    assert_eq!(timing_words(&daily, 7), "every day at 07:00, open 12 h, within 1 day of the course start");
}

#[test]
fn an_untouched_form_resets_to_the_clinics_schedule() {
    let base = in_clinic();
    let o = build_override(base, base, &FormData::from_pairs(untouched("Back to the clinic's schedule"))).unwrap();
    assert_eq!(o.remove, Vec::<String>::new());
    assert_eq!(o.upsert, vec![]);
    assert_eq!(o.reason, "Back to the clinic's schedule");
    // Saved again over an earlier change (GAD-7 removed, PHQ-9 every 14 days): the same.
    let earlier = checkins::apply_override(
        base,
        &ScheduleOverride {
            remove: vec!["gad7_weekly".into()],
            upsert: vec![CheckInItem {
                timing: Timing::Every { days: 14, open_hours: 72 },
                ..item("phq9_weekly").clone()
            }],
            reason: "x".into(),
        },
    )
    .unwrap();
    assert_eq!(build_override(base, &earlier, &FormData::from_pairs(untouched("reset"))).unwrap().upsert, vec![]);
}

#[test]
fn an_unticked_item_is_removed_and_a_new_interval_keeps_the_other_fields() {
    let base = in_clinic();
    let form = FormData::from_pairs(untick(untouched("Anxiety not a concern"), "gad7_weekly"));
    let o = build_override(base, base, &form).unwrap();
    assert_eq!(o.remove, ["gad7_weekly"]);
    assert_eq!(o.upsert, vec![]);
    let applied = checkins::apply_override(base, &o).unwrap();
    assert!(!applied.items.iter().any(|i| i.id == "gad7_weekly"));

    let o = build_override(base, base, &with(untouched("Fortnightly"), &interval_field("phq9_weekly"), "14")).unwrap();
    assert_eq!(o.remove, Vec::<String>::new());
    let expected = CheckInItem { timing: Timing::Every { days: 14, open_hours: 72 }, ..item("phq9_weekly").clone() };
    assert_eq!(o.upsert, vec![expected]);
    assert_eq!(
        o.upsert[0].follow_up_days_after_last_session,
        item("phq9_weekly").follow_up_days_after_last_session,
        "the follow-up is kept"
    );
    checkins::apply_override(base, &o).expect("valid");
    // An unticked item's interval is not read.
    let form = with(untick(untouched("r"), "urinary_monthly"), &interval_field("urinary_monthly"), "0");
    assert_eq!(build_override(base, base, &form).unwrap().remove, ["urinary_monthly"]);
}

#[test]
fn a_blank_reason_or_a_bad_interval_is_refused_on_its_field() {
    let base = in_clinic();
    let e = build_override(base, base, &FormData::from_pairs(untouched("  "))).unwrap_err();
    assert!(e.has("reason"), "{e:?}");
    let field = interval_field("gad7_weekly");
    for (raw, says) in [
        ("0", "at least 1 day"),
        ("", "enter the interval"),
        ("two", "not a whole number"),
        ("-3", "not a whole number"),
        ("400", "at most 365 days"),
        ("2", "at least 3 days: each check-in stays open 72 h"),
    ] {
        let e = build_override(base, base, &with(untouched("r"), &field, raw)).unwrap_err();
        let msg = e.get(&field).unwrap_or_default();
        assert!(msg.contains(says), "{raw}: {msg}");
        assert!(!e.has("reason"));
    }
    assert!(build_override(base, base, &with(untouched("r"), &field, " 3 ")).is_ok());
}

#[test]
fn items_added_for_the_patient_are_kept_when_ticked_and_dropped_when_not() {
    let base = in_clinic();
    let extra = CheckInItem {
        id: "gad7_daily".into(),
        timing: Timing::Every { days: 1, open_hours: 24 },
        ..item("gad7_weekly").clone()
    };
    let current = checkins::apply_override(
        base,
        &ScheduleOverride { upsert: vec![extra.clone()], reason: "API".into(), ..Default::default() },
    )
    .unwrap();
    let mut pairs = untouched("keep");
    pairs.push(("send".into(), "gad7_daily".into()));
    pairs.push((interval_field("gad7_daily"), "2".into()));
    let o = build_override(base, &current, &FormData::from_pairs(pairs)).unwrap();
    assert_eq!(o.upsert, vec![CheckInItem { timing: Timing::Every { days: 2, open_hours: 24 }, ..extra }]);
    let o = build_override(base, &current, &FormData::from_pairs(untouched("drop"))).unwrap();
    assert_eq!((o.remove.len(), o.upsert.len()), (0, 0));
}

#[test]
fn the_schedule_view_shows_the_current_schedule_and_who_changed_it() {
    let c = clock();
    let base = in_clinic();
    let course = Course {
        id: CourseId(4),
        patient_id: PatientId(1),
        site_id: keta_domain::ids::SiteId(1),
        route: keta_domain::course::Route::IvRacemic,
        phase: keta_domain::course::Phase::Induction,
        indication: keta_domain::patient::Indication::Depression,
        planned_sessions: 6,
        start_date: time::macros::date!(2026 - 11 - 02),
        status: CourseStatus::Active,
        protocol: None,
    };
    let info = OverrideInfo {
        course_id: course.id,
        change: ScheduleOverride {
            remove: vec!["gad7_weekly".into()],
            upsert: vec![],
            reason: " Anxiety settled ".into(),
        },
        set_by: "prescriber.test".into(),
        set_at: datetime!(2026-11-10 15:00 UTC),
    };
    let v = schedule_view(&c, &course, base, Some(&info), None);
    assert_eq!(v.changed.as_deref(), Some("Changed by prescriber.test on Tue 10 Nov 2026: Anxiety settled"));
    assert_eq!(v.removed().iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["gad7_weekly"]);
    assert_eq!(v.current().len(), base.items.len() - 1);
    assert!(!v.rows.iter().find(|r| r.id == "gad7_weekly").unwrap().send);
    assert_eq!(v.rows.iter().find(|r| r.id == "phq9_weekly").unwrap().interval.as_deref(), Some("7"));
    assert!(!v.open() && !v.saved);

    // After an error: the user's input and the field's message.
    let form = with(untouched(""), &interval_field("phq9_weekly"), "0");
    let errors = build_override(base, base, &form).unwrap_err();
    let v = schedule_view(&c, &course, base, None, Some(Some((form, errors))));
    assert!(v.open() && v.changed.is_none());
    let phq9 = v.rows.iter().find(|r| r.id == "phq9_weekly").unwrap();
    assert_eq!((phq9.interval.as_deref(), phq9.error.as_str()), (Some("0"), "must be at least 1 day"));
    assert!(v.rows.iter().find(|r| r.id == "gad7_weekly").unwrap().send, "ticked as submitted");
    assert!(!v.reason_error().is_empty());
    assert!(v.general_errors().is_empty(), "{:?}", v.general_errors());
    assert!(schedule_view(&c, &course, base, None, Some(None)).saved);
}

#[test]
fn time_since_the_last_session_counts_calendar_days_on_the_site_clock() {
    let c = clock();
    assert_eq!(
        since_last_session(&c, Some(datetime!(2026-11-03 15:00 UTC)), NOW),
        "12 days since the last session on 3 Nov"
    );
    assert_eq!(
        since_last_session(&c, Some(datetime!(2026-11-14 15:00 UTC)), NOW),
        "1 day since the last session on 14 Nov"
    );
    assert_eq!(since_last_session(&c, Some(datetime!(2026-11-15 15:00 UTC)), NOW), "Last session today (09:00)");
    assert_eq!(since_last_session(&c, None, NOW), "No session given yet in this course");
    // 02:00 UTC on the 4th is still the 3rd in Chicago.
    assert_eq!(
        since_last_session(&c, Some(datetime!(2026-11-04 02:00 UTC)), NOW),
        "12 days since the last session on 3 Nov"
    );
    assert_eq!(
        since_last_session(&c, Some(datetime!(2025-12-20 15:00 UTC)), NOW),
        "330 days since the last session on 20 Dec 2025"
    );
}

#[test]
fn durability_of_an_ended_and_an_ongoing_response() {
    let c = clock();
    let ended = ResponseEpisode {
        responded_at: datetime!(2026-09-10 15:00 UTC),
        response_total: 8,
        lost_at: Some(datetime!(2026-10-02 14:00 UTC)),
        lost_total: Some(15),
        durability_days: Some(21.96),
    };
    assert_eq!(durability(&c, &ended, NOW), "Responded 10 Sep (score 8), lost 2 Oct (score 15): 22 days");
    let ongoing = ResponseEpisode {
        responded_at: datetime!(2026-10-16 15:00 UTC),
        response_total: 7,
        lost_at: None,
        lost_total: None,
        durability_days: None,
    };
    assert_eq!(durability(&c, &ongoing, NOW), "Responded 16 Oct (score 7): responding for 30 days so far");
}

#[test]
fn days_are_singular_and_plural() {
    assert_eq!(days(1), "1 day");
    assert_eq!(days(0), "0 days");
    assert_eq!(days(30), "30 days");
}

fn link(opens: OffsetDateTime, expires: OffsetDateTime) -> LinkRecord {
    LinkRecord {
        id: 7,
        purpose: LinkPurpose::Checkin,
        patient_id: PatientId(1),
        site_id: keta_domain::ids::SiteId(1),
        course_id: None,
        session_id: None,
        parent_link_id: None,
        item_key: "on_demand:phq9:1".into(),
        form: "phq9".into(),
        form_kind: "instrument".into(),
        opens_at: opens,
        expires_at: expires,
        created_at: opens,
        created_by: "nurse.test".into(),
        first_opened_at: None,
        progress: None,
        progress_saved_at: None,
        completed_at: None,
        expired_at: None,
        result_kind: None,
        result_id: None,
    }
}

#[test]
fn link_states_have_a_label_a_class_and_a_time() {
    let c = clock();
    let mut l = link(datetime!(2026-11-15 15:00 UTC), datetime!(2026-11-17 15:00 UTC));
    assert_eq!(link_state(&c, l.state(NOW), &l), ("Open", "st-checkin", "open until 17 Nov 2026 09:00".into()));
    let early = datetime!(2026-11-14 12:00 UTC);
    assert_eq!(
        link_state(&c, l.state(early), &l),
        ("Not yet open", "st-scheduled", "15 Nov 2026 09:00 – 17 Nov 2026 09:00".into())
    );
    let late = datetime!(2026-11-18 12:00 UTC);
    assert_eq!(link_state(&c, l.state(late), &l), ("Expired", "st-stop", "closed unanswered 17 Nov 2026 09:00".into()));
    l.completed_at = Some(datetime!(2026-11-16 16:30 UTC));
    assert_eq!(
        link_state(&c, l.state(late), &l),
        ("Completed", "st-good", "completed 16 Nov 2026 10:30".into()),
        "completion wins over expiry"
    );
}

#[test]
fn the_latest_reminder_is_shown_with_its_detail() {
    let c = clock();
    let ev = |event: &str, at: OffsetDateTime, detail: Option<&str>| LinkEvent {
        link_id: 7,
        event: event.into(),
        at,
        detail: detail.map(String::from),
    };
    assert_eq!(reminder(&c, 7, &[]), ("No reminder sent".to_string(), false));
    // Newest first, as the store returns them.
    let events = vec![
        ev("opened", datetime!(2026-11-15 16:00 UTC), None),
        ev("reminder_failed", datetime!(2026-11-15 15:01 UTC), Some("smtp: connection refused")),
        ev("reminder_sent", datetime!(2026-11-14 15:01 UTC), Some("e-mail via log")),
        LinkEvent { link_id: 8, ..ev("reminder_sent", datetime!(2026-11-15 17:00 UTC), None) },
    ];
    assert_eq!(reminder(&c, 7, &events), ("Not sent 15 Nov 2026 09:01: smtp: connection refused".to_string(), true));
    let mut with_new = vec![ev("reissued", datetime!(2026-11-15 17:00 UTC), Some("nurse.test"))];
    with_new.extend(events);
    assert_eq!(
        reminder(&c, 7, &with_new).0,
        "Not sent 15 Nov 2026 09:01: smtp: connection refused · new link 15 Nov 2026 11:00"
    );
}

#[test]
fn forms_are_named_for_staff() {
    assert_eq!(form_label("phq9"), "PHQ-9");
    assert_eq!(form_label("pre_dose_screen"), "Pre-dose screen");
    assert_eq!(form_label("nonesuch"), "nonesuch");
    let sendable = sendable_forms();
    assert_eq!(sendable[0].value, "phq9", "PHQ-9 first");
    for code in ["gad7", "after_session", "urinary_symptoms"] {
        assert!(sendable.iter().any(|c| c.value == code), "{code} can be sent");
    }
    assert!(!sendable.iter().any(|c| c.value == "madrs"), "clinician-rated instruments are not sent");
}

#[test]
fn safety_answers_name_the_item_and_the_answer() {
    assert!(safety_item("phq9", 9).starts_with("Item 9 ("), "{}", safety_item("phq9", 9));
    assert_eq!(safety_item("nonesuch", 3), "Item 3");
    assert!(safety_answer("phq9", 2).starts_with("2 ("), "{}", safety_answer("phq9", 2));
    assert_eq!(safety_answer("nonesuch", 2), "2");
}

#[test]
fn the_relapse_flag_suggests_bringing_the_next_session_forward() {
    let c = clock();
    let mut f = RelapseFlag {
        relapse_at: datetime!(2026-11-10 15:00 UTC),
        relapse_total: 16,
        baseline: 20,
        responded_at: datetime!(2026-10-01 15:00 UTC),
        bring_forward: relapse::BringForward {
            next_planned: Some(datetime!(2026-11-30 15:00 UTC)),
            suggest_by: Some(datetime!(2026-11-17 15:00 UTC)),
        },
        message: String::new(),
    };
    let v = relapse_flag(&c, "PHQ-9", &f, Some(7), NOW);
    assert_eq!(
        v.headline,
        "PHQ-9 16 on 10 Nov is past the relapse threshold after the response on 1 Oct (baseline 20)."
    );
    assert_eq!(
        v.suggestion,
        "Review the patient and consider bringing the next maintenance session forward: offer one by Tue 17 Nov 2026 (planned: Mon 30 Nov 2026 at 09:00)."
    );
    f.bring_forward.suggest_by = None;
    assert!(relapse_flag(&c, "PHQ-9", &f, None, NOW).suggestion.contains("(Mon 30 Nov 2026 at 09:00) forward"));
    assert!(relapse_flag(&c, "PHQ-9", &f, Some(30), NOW).suggestion.contains("already within"));
    f.bring_forward.next_planned = None;
    assert!(relapse_flag(&c, "PHQ-9", &f, None, NOW).suggestion.contains("none is planned"));
}

#[test]
fn missing_settings_tell_the_administrator_what_to_set() {
    assert_eq!(missing_settings(&[]), None);
    let m = missing_settings(&["alcohol.free_hours".into(), "sedatives.free_hours".into()]).unwrap();
    assert!(m.contains("alcohol_free_hours and sedative_free_hours"), "{m}");
    assert!(m.contains("PUT /api/v1/settings/home-pre-dose"), "{m}");
}

#[test]
fn units_and_milligrams_read_plainly() {
    assert_eq!(units_mg(30, 300.0), "30 units · 300 mg");
    assert_eq!(units_mg(1, 12.5), "1 unit · 12.5 mg");
    assert_eq!(units_mg(0, 0.0), "0 units · 0 mg");
}

#[test]
fn reconciliation_issues_read_as_sentences() {
    let c = clock();
    assert_eq!(
        reconciliation_issue(&c, &ReconciliationIssue::CountMismatch { expected_units: 4, counted_units: 3 }),
        "The patient counted 3 units on hand; 4 expected"
    );
    let r = Reconciliation {
        dispensed_units: 10,
        logged_units: 6,
        dispensed_mg: keta_domain::units::Milligrams(100.0),
        logged_mg: keta_domain::units::Milligrams(60.0),
        expected_on_hand_units: 4,
        counted_on_hand_units: None,
        issues: vec![],
    };
    assert_eq!(on_hand(&r), "4 expected, not counted yet");
}

#[test]
fn question_set_answers_use_their_labels_and_flags_their_severity() {
    let set = question_sets::get("urinary_symptoms").expect("shipped");
    let q = &set.questions[0];
    let mut answers = serde_json::Map::new();
    answers.insert(q.id.clone(), serde_json::json!(true));
    answers.insert("retired_question".into(), serde_json::json!("x"));
    let r = QuestionSetResponse {
        id: 1,
        set_code: set.code.clone(),
        answers: serde_json::Value::Object(answers),
        flags: serde_json::json!([{
            "question_set": set.code, "question": q.id, "code": "c", "severity": "urgent",
            "message": "Blood in the urine", "source": {"section": "§4.3", "tags": []}
        }]),
        completed_at: NOW,
    };
    let row = question_set_row(&clock(), &r);
    assert_eq!(row.name, set.name);
    assert_eq!(row.answers[0], (q.text.clone(), "Yes".to_string()));
    assert_eq!(row.answers[1], ("retired_question".to_string(), "x".to_string()));
    assert_eq!(row.flags, vec![("flag-urgent", "Blood in the urine".to_string())]);
}
