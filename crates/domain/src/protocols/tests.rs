use time::macros::date;

use super::*;

fn lib() -> &'static ProtocolLibrary {
    ProtocolLibrary::builtin()
}

fn get(id: &str) -> &'static Protocol {
    lib().get(id).unwrap_or_else(|| panic!("no protocol {id}"))
}

fn req(start: Date) -> ScheduleRequest {
    ScheduleRequest { start, age_years: Some(45), until: None, every_days: None }
}

fn dates(s: &CourseSchedule) -> Vec<Date> {
    s.sessions.iter().map(|x| x.date).collect()
}

#[test]
fn the_built_in_library_loads_and_every_number_has_a_source() {
    let all = lib().all();
    let ids: Vec<&str> = all.iter().map(|p| p.id.as_str()).collect();
    for id in [
        "iv-racemic-0.5",
        "im-racemic",
        "esketamine-trd",
        "esketamine-mdsi",
        "oral-racemic-titration",
        "sublingual-racemic-very-low-dose",
        "crps-22-mg-per-h-4-days",
        "crps-0.35-mg-per-kg-per-h-10-days",
        "sci-pain-0.4-mg-per-kg-per-h",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    for p in all {
        p.validate().unwrap();
        assert!(p.origin.starts_with("built-in: "), "{}", p.origin);
        assert!(p.source.contains("clinical-reference §2."), "{}: {}", p.id, p.source);
        assert!(
            p.missed_session.source.contains("clinic setting"),
            "{}: the reference states no missed-session rule",
            p.id
        );
        for b in &p.schedule {
            assert!(b.source.contains('§') || b.source.contains("clinic setting"), "{}: {}", p.id, b.source);
        }
        // Every protocol lays out without a choice or a date, or says what it needs.
        match generate_schedule(p, &req(date!(2026 - 11 - 02))) {
            Ok(s) => assert!(!s.sessions.is_empty() || s.continues.is_some(), "{}", p.id),
            Err(e) => panic!("{}: {e}", p.id),
        }
    }
    // The §2.1 standard, the §2.3 label facts.
    assert_eq!(get("iv-racemic-0.5").dose.standard.as_ref().unwrap().value, 0.5);
    assert_eq!(get("iv-racemic-0.5").infusion_minutes(), Some(40.0));
    assert!(get("iv-racemic-0.5").limits.max_mg_per_kg.is_none(), "§2.1: no consensus maximum verified");
    let esk = get("esketamine-trd");
    assert_eq!(esk.device.as_ref().unwrap().mg_per_device.value, 28.0);
    assert_eq!(esk.device.as_ref().unwrap().minutes_between.value, 5.0);
    assert_eq!(esk.first_dose(Some(40)).unwrap().value, 56.0);
    assert_eq!(esk.first_dose(Some(65)).unwrap().value, 28.0);
    assert_eq!(esk.allowed_doses(Some(64)), [56.0, 84.0]);
    assert_eq!(esk.allowed_doses(Some(65)), [28.0, 56.0, 84.0]);
    assert_eq!(get("esketamine-mdsi").first_dose(None).unwrap().value, 84.0);
}

#[test]
fn esketamine_label_schedule_dates() {
    // Monday 2 November 2026. Weeks 1-4 twice weekly (days 1 and 4 of each week),
    // weeks 5-8 weekly, week 9 on every 2 weeks or weekly [S3][S4][S5].
    let p = get("esketamine-trd");
    let s = generate_schedule(p, &req(date!(2026 - 11 - 02))).unwrap();
    assert_eq!(
        dates(&s),
        [
            date!(2026 - 11 - 02),
            date!(2026 - 11 - 05),
            date!(2026 - 11 - 09),
            date!(2026 - 11 - 12),
            date!(2026 - 11 - 16),
            date!(2026 - 11 - 19),
            date!(2026 - 11 - 23),
            date!(2026 - 11 - 26),
            date!(2026 - 11 - 30),
            date!(2026 - 12 - 07),
            date!(2026 - 12 - 14),
            date!(2026 - 12 - 21),
        ]
    );
    let phases: Vec<Phase> = s.sessions.iter().map(|x| x.phase).collect();
    assert_eq!(phases.iter().filter(|p| **p == Phase::Induction).count(), 8);
    assert_eq!(phases.iter().filter(|p| **p == Phase::Maintenance).count(), 4);
    // Day 1 56 mg; thereafter 56 or 84 mg.
    assert_eq!(s.sessions[0].dose.as_ref().unwrap().value, Some(56.0));
    assert_eq!(s.sessions[1].dose.as_ref().unwrap().choices, [56.0, 84.0]);
    assert_eq!(s.sessions[1].dose.as_ref().unwrap().text, "56 or 84 mg");
    // The end-of-induction reassessment at session 8.
    assert_eq!(s.reassessments.len(), 1);
    assert_eq!((s.reassessments[0].at_sequence, s.reassessments[0].due_on), (8, date!(2026 - 11 - 26)));
    assert!(s.reassessments[0].source.contains("[S3]"));
    // Week 9 is open-ended and left to the clinician.
    let c = s.continues.as_deref().unwrap();
    assert!(c.contains("every 14 or 7 days from 2026-12-28"), "{c}");

    // Laid out to a date with the clinician's interval.
    let mut r = req(date!(2026 - 11 - 02));
    r.until = Some(date!(2027 - 02 - 28));
    let err = generate_schedule(p, &r).unwrap_err().to_string();
    assert!(err.contains("choose the interval, one of 14 or 7 days"), "{err}");
    r.every_days = Some(10);
    assert!(generate_schedule(p, &r).unwrap_err().to_string().contains("10 is not one of them"));
    r.every_days = Some(14);
    let s = generate_schedule(p, &r).unwrap();
    let tail: Vec<Date> = dates(&s)[12..].to_vec();
    assert_eq!(
        tail,
        [
            date!(2026 - 12 - 28),
            date!(2027 - 01 - 11),
            date!(2027 - 01 - 25),
            date!(2027 - 02 - 08),
            date!(2027 - 02 - 22)
        ]
    );
    r.every_days = Some(7);
    assert_eq!(generate_schedule(p, &r).unwrap().sessions.len(), 12 + 9);
}

#[test]
fn elderly_day_1_dose_and_the_age_note() {
    let p = get("esketamine-trd");
    let mut r = req(date!(2026 - 11 - 02));
    r.age_years = Some(72);
    let s = generate_schedule(p, &r).unwrap();
    assert_eq!(s.sessions[0].dose.as_ref().unwrap().value, Some(28.0));
    assert_eq!(s.sessions[1].dose.as_ref().unwrap().choices, [28.0, 56.0, 84.0]);
    r.age_years = None;
    let s = generate_schedule(p, &r).unwrap();
    assert_eq!(s.sessions[0].dose.as_ref().unwrap().value, Some(56.0));
    assert!(s.notes.iter().any(|n| n.contains("Age not given") && n.contains("28 mg")), "{:?}", s.notes);
}

#[test]
fn mdsi_is_eight_sessions_at_84_mg_then_reassess() {
    let s = generate_schedule(get("esketamine-mdsi"), &req(date!(2026 - 11 - 02))).unwrap();
    assert_eq!(s.sessions.len(), 8);
    assert_eq!(s.sessions[0].dose.as_ref().unwrap().value, Some(84.0));
    assert_eq!(s.sessions.last().unwrap().date, date!(2026 - 11 - 26));
    assert!(s.continues.is_none());
    assert!(s.reassessments[0].text.contains("beyond 4 weeks"));
}

#[test]
fn iv_induction_is_three_a_week_for_twelve_days() {
    let s = generate_schedule(get("iv-racemic-0.5"), &req(date!(2026 - 11 - 02))).unwrap();
    let offsets: Vec<i64> = s.sessions.iter().map(|x| (x.date - date!(2026 - 11 - 02)).whole_days()).collect();
    assert_eq!(offsets, [0, 2, 4, 7, 9, 11]);
    assert_eq!(s.sessions[0].dose.as_ref().unwrap().text.split(" (").next(), Some("0.5 mg/kg"));
    assert_eq!(s.reassessments[0].at_sequence, 6);
    assert!(s.continues.as_deref().unwrap().contains("individualised"));
}

#[test]
fn oral_titration_shows_the_ceiling_each_session() {
    let mut r = req(date!(2026 - 11 - 02));
    r.until = Some(date!(2026 - 11 - 11));
    let s = generate_schedule(get("oral-racemic-titration"), &r).unwrap();
    assert_eq!(dates(&s), [date!(2026 - 11 - 02), date!(2026 - 11 - 05), date!(2026 - 11 - 08), date!(2026 - 11 - 11)]);
    assert_eq!(s.sessions[0].dose.as_ref().unwrap().value, Some(50.0));
    assert!(
        s.sessions[2].dose.as_ref().unwrap().text.starts_with("up to 100 mg"),
        "{}",
        s.sessions[2].dose.as_ref().unwrap().text
    );
}

#[test]
fn a_missed_session_moves_the_rest_under_shift_following() {
    let p = get("esketamine-trd");
    let s = generate_schedule(p, &req(date!(2026 - 11 - 02))).unwrap();
    // Session 3 (Monday 9 Nov) missed, given on Tuesday 10 Nov.
    let m = mark_missed(p, &s, 3, Some(date!(2026 - 11 - 10))).unwrap();
    assert_eq!(m.sessions[1].date, date!(2026 - 11 - 05), "earlier sessions stay");
    assert_eq!(m.sessions[1].status, PlannedStatus::Planned);
    assert_eq!((m.sessions[2].date, m.sessions[2].status), (date!(2026 - 11 - 10), PlannedStatus::Rescheduled));
    assert_eq!(m.sessions[2].original_date, Some(date!(2026 - 11 - 09)));
    assert_eq!((m.sessions[3].date, m.sessions[3].status), (date!(2026 - 11 - 13), PlannedStatus::Moved));
    assert_eq!(m.sessions.last().unwrap().date, date!(2026 - 12 - 22));
    // The intervals are kept and the reassessment follows the last induction session.
    assert_eq!(m.reassessments[0].due_on, date!(2026 - 11 - 27));
    assert!(m.notes.last().unwrap().contains("the 9 session(s) after it moved 1 day(s) later"), "{:?}", m.notes);
    assert!(m.notes.last().unwrap().contains("clinic setting"));

    // The make-up date is required and must be later.
    assert!(mark_missed(p, &s, 3, None).unwrap_err().to_string().contains("give a make-up date after 2026-11-09"));
    assert!(mark_missed(p, &s, 3, Some(date!(2026 - 11 - 09))).is_err());
    assert!(mark_missed(p, &s, 99, Some(date!(2026 - 12 - 09))).is_err());
    // A second miss of the moved session keeps its first original date.
    let m2 = mark_missed(p, &m, 3, Some(date!(2026 - 11 - 11))).unwrap();
    assert_eq!(m2.sessions[2].original_date, Some(date!(2026 - 11 - 09)));
    assert_eq!(m2.sessions[3].date, date!(2026 - 11 - 14));
}

fn with_rule(id: &str, rule: MissedRule, within_days: Option<u32>) -> Protocol {
    let mut p = get(id).clone();
    p.missed_session = MissedSessionPolicy { rule, within_days, source: "clinic setting (test)".into() };
    p.validate().unwrap();
    p
}

#[test]
fn make_up_within_moves_only_the_missed_session_or_skips_it() {
    let p = with_rule("esketamine-trd", MissedRule::MakeUpWithin, Some(2));
    let s = generate_schedule(&p, &req(date!(2026 - 11 - 02))).unwrap();
    let m = mark_missed(&p, &s, 3, Some(date!(2026 - 11 - 11))).unwrap();
    assert_eq!((m.sessions[2].date, m.sessions[2].status), (date!(2026 - 11 - 11), PlannedStatus::Rescheduled));
    assert_eq!(
        (m.sessions[3].date, m.sessions[3].status),
        (date!(2026 - 11 - 12), PlannedStatus::Planned),
        "the rest stand"
    );
    // Too late, or on the next session's day: refused with the reason.
    let e = mark_missed(&p, &s, 3, Some(date!(2026 - 11 - 12))).unwrap_err().to_string();
    assert!(e.contains("within 2 day(s)"), "{e}");
    let p3 = with_rule("esketamine-trd", MissedRule::MakeUpWithin, Some(5));
    let e = mark_missed(&p3, &s, 3, Some(date!(2026 - 11 - 12))).unwrap_err().to_string();
    assert!(e.contains("not before the next session"), "{e}");
    // No date: skipped. Skipping the last induction session moves the reassessment back.
    let m = mark_missed(&p, &s, 8, None).unwrap();
    assert_eq!(m.sessions[7].status, PlannedStatus::Skipped);
    assert_eq!((m.reassessments[0].at_sequence, m.reassessments[0].due_on), (7, date!(2026 - 11 - 23)));
    assert!(mark_missed(&p, &m, 8, None).is_err(), "a skipped session cannot be missed again");
}

#[test]
fn skip_rule_skips_and_refuses_a_make_up_date() {
    let p = with_rule("iv-racemic-0.5", MissedRule::Skip, None);
    let s = generate_schedule(&p, &req(date!(2026 - 11 - 02))).unwrap();
    assert!(
        mark_missed(&p, &s, 2, Some(date!(2026 - 11 - 05))).unwrap_err().to_string().contains("skips missed sessions")
    );
    let m = mark_missed(&p, &s, 2, None).unwrap();
    assert_eq!(m.sessions[1].status, PlannedStatus::Skipped);
    assert_eq!(dates(&m), dates(&s));
    // A schedule of another protocol is refused.
    assert!(mark_missed(get("esketamine-trd"), &s, 2, None).is_err());
}

const CLINIC: &str = r#"
[[protocols]]
id = "iv-racemic-0.5"
name = "IV racemic ketamine 0.5 mg/kg over 40 min (Clinic A)"
route = "iv_racemic"
indication = "depression"
source = "clinical-reference §2.1 [S12][S38][S39]"

[protocols.dose]
basis = "mg_per_kg"
standard = { value = 0.5, source = "clinical-reference §2.1" }
allowed = { values = [0.5, 0.75], source = "clinic setting: Clinic A titration steps" }

[protocols.infusion]
minutes = { value = 40, source = "clinical-reference §2.1" }

[protocols.limits]
max_mg_per_kg = { value = 0.75, source = "clinic setting: Clinic A medical director" }
max_mg = { value = 90, source = "clinic setting: Clinic A medical director" }

[[protocols.schedule]]
phase = "induction"
label = "Induction"
starts_on_day = 0
sessions = 6
cadence = { week_days = [0, 2, 4] }
source = "clinical-reference §2.1 [S39]"

[protocols.missed_session]
rule = "make_up_within"
within_days = 2
source = "clinic setting: Clinic A"
"#;

#[test]
fn clinics_add_and_replace_protocols() {
    let l = lib().with_clinic_files(&[("clinic-a.toml".into(), CLINIC.into())]).unwrap();
    assert_eq!(l.all().len(), lib().all().len(), "replaced, not added");
    let p = l.get("iv-racemic-0.5").unwrap();
    assert_eq!(p.origin, "clinic: clinic-a.toml");
    assert_eq!(p.limits.max_mg_per_kg.as_ref().unwrap().value, 0.75);
    assert_eq!(p.missed_session.rule, MissedRule::MakeUpWithin);
    let added = CLINIC.replace("id = \"iv-racemic-0.5\"", "id = \"clinic-a-iv\"");
    assert_eq!(lib().with_clinic_files(&[("a.toml".into(), added)]).unwrap().all().len(), lib().all().len() + 1);

    // Problems are reported, all of them, with the file.
    let bad = CLINIC
        .replace("rule = \"make_up_within\"\nwithin_days = 2", "rule = \"make_up_within\"")
        .replace("source = \"clinic setting: Clinic A titration steps\"", "source = \"\"");
    let e = lib().with_clinic_files(&[("bad.toml".into(), bad)]).unwrap_err().to_string();
    assert!(e.contains("bad.toml") && e.contains("within_days") && e.contains("dose.allowed needs a source"), "{e}");
    let e = lib().with_clinic_files(&[("x.toml".into(), "[[protocols]]\nid = 3".into())]).unwrap_err().to_string();
    assert!(e.contains("x.toml"), "{e}");
    let twice = [("a.toml".to_string(), CLINIC.to_string()), ("b.toml".to_string(), CLINIC.to_string())];
    assert!(lib().with_clinic_files(&twice).unwrap_err().to_string().contains("defined twice"));
    // An esketamine dose that is not whole devices is a data error.
    let mut p = get("esketamine-trd").clone();
    p.dose.allowed.as_mut().unwrap().values.push(70.0);
    assert!(p.validate().unwrap_err().join(" ").contains("not a whole number of 28 mg devices"));
}
