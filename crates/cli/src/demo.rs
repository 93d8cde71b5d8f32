//! The synthetic demo clinic (all data invented).
//!
//! Two sites (Austin and Denver) and 60 patients across the four ways Keta's clinics give
//! ketamine: IV racemic infusions, IM injections, esketamine nasal spray and oral or
//! sublingual doses at home. Each patient has an intake (weight, antidepressant history,
//! Maudsley staging, a contraindication check for the chosen route), an induction course
//! and, for many responders, a maintenance course; complete sessions with vitals every few
//! minutes, MOAA/S, CADSS-6, side effects, BP alerts that were acknowledged, adverse events;
//! and questionnaires before each session and between sessions.
//!
//! Outcomes are drawn by quota so the clinic resembles the real-world cohorts of
//! clinical-reference §5: IV induction PHQ-9 response ≈54 % and remission ≈29 % (McInnes
//! 2022, with ≈8 % worsening and responders relapsing in follow-up), at-home sublingual
//! ≈63 %/33 % (Hull 2022), IM ≈50 %/20 % (Oliver 2022), esketamine ≈59 %/36 % (pooled
//! TRANSFORM). Outcomes are what [`keta_domain::records::course_outcomes`] computes from the
//! responses linked to each induction course (baseline = first, outcome = latest score).
//! A few stories are placed on purpose: exactly one serious adverse event, one patient
//! with a hard stop for esketamine treated by IV (and one with a hard stop for racemic
//! ketamine treated with esketamine), and one positive PHQ-9 item 9 from yesterday's
//! check-in whose urgent alert is still open.
//!
//! Determinism: everything is drawn up front from a ChaCha RNG seeded with `seed`, placed
//! relative to today's date at each site, so the same seed on the same day gives the same
//! clinic. Only today's board (a session discharged earlier, one in monitoring, one checked
//! in, three scheduled, at each site) is placed relative to the current time.
//!
//! Speed: the writes run in stages (sites, patients, intake, courses, history, today),
//! each stage's writes concurrently so the SQLite writer commits them in groups, and the
//! history goes through the batch import (one transaction per patient).

use std::collections::HashMap;

use anyhow::Context;
use futures::future::try_join_all;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use time::{Date, Duration, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use keta_domain::alerts::SafetyRules;
use keta_domain::course::{CourseStatus, NewCourse, Phase, Route};
use keta_domain::eligibility::{AntidepressantTrial, MaudsleyInput, MsmSeverity, TrialOutcome};
use keta_domain::ids::{ChairId, CourseId, SiteId};
use keta_domain::medications::{AllergySeverity, NewAllergy, NewMedication, NewPregnancyStatus, PregnancyStatus};
use keta_domain::patient::{Indication, NewPatient, NewWeight, Sex, WeightType};
use keta_domain::records::{CompletedBy, NewEligibilityAssessment, NewQuestionnaireResponse, VitalsSource};
use keta_domain::session::{AeSeverity, NewAdverseEvent, NewSession, ObservationBody, SessionAction};
use keta_domain::site::NewSite;
use keta_domain::units::{BeatsPerMinute, BreathsPerMinute, Kilograms, Milligrams, Mmhg, Percent};
use keta_domain::vitals::VitalSigns;
use keta_store::import::{
    AlertAcknowledgement, HistoricalCheckIn, HistoricalObservation, HistoricalResponse, HistoricalSession,
    HistoricalVitals, SessionStep,
};
use keta_store::{Actor, Store};

pub const DEFAULT_SEED: u64 = 20261127;

/// Builds the demo clinic unless the database already has sites, then describes it in one line.
pub async fn ensure(store: &Store, seed: u64) -> anyhow::Result<String> {
    let actor = Actor::system();
    if store.list_sites(&actor).await?.is_empty() {
        build(store, seed).await?;
    }
    summary(store).await
}

/// "60 patients at 2 sites (Austin, Denver), 812 sessions".
pub async fn summary(store: &Store) -> anyhow::Result<String> {
    let sites = store.list_sites(&Actor::system()).await?;
    let counts = store.record_counts().await?;
    let (patients, sessions) = (counts.patients, counts.sessions);
    let names: Vec<&str> = sites.iter().map(|s| s.name.as_str()).collect();
    Ok(format!(
        "{patients} patients at {} site{} ({}), {sessions} sessions",
        sites.len(),
        if sites.len() == 1 { "" } else { "s" },
        names.join(", ")
    ))
}

// =======================================================================================
// Site clocks
// =======================================================================================

/// A site's clock, roughly: its standard UTC offset plus US daylight saving time (second
/// Sunday in March to first Sunday in November, switched at midnight). Keta has no time-zone
/// database yet; this is enough to put demo sessions in clinic hours.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SiteClock {
    pub std_hours: i8,
}

fn nth_sunday(year: i32, month: Month, n: u8) -> Date {
    let first = Date::from_calendar_date(year, month, 1).expect("valid date");
    let to_sunday = (7 - first.weekday().number_days_from_sunday()) % 7;
    first + Duration::days(i64::from(to_sunday) + 7 * i64::from(n - 1))
}

impl SiteClock {
    fn offset_on(self, d: Date) -> UtcOffset {
        let dst = d >= nth_sunday(d.year(), Month::March, 2) && d < nth_sunday(d.year(), Month::November, 1);
        UtcOffset::from_hms(self.std_hours + i8::from(dst), 0, 0).expect("valid offset")
    }
    /// The site's date at `now`.
    pub fn today(self, now: OffsetDateTime) -> Date {
        now.to_offset(self.offset_on(now.date())).date()
    }
    /// `minutes` after local midnight on `d`, in UTC.
    pub fn at(self, d: Date, minutes: i64) -> OffsetDateTime {
        PrimitiveDateTime::new(d, Time::MIDNIGHT).assume_offset(self.offset_on(d)).to_offset(UtcOffset::UTC)
            + Duration::minutes(minutes)
    }
}

// =======================================================================================
// Synthesis helpers (shared with `keta bench`)
// =======================================================================================

/// A normal draw (Box-Muller); rand's distributions crate is not a dependency.
pub(crate) fn normal<R: Rng + ?Sized>(rng: &mut R, mean: f64, sd: f64) -> f64 {
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random();
    mean + sd * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn mins(m: i64) -> Duration {
    Duration::minutes(m)
}

/// Spreads `total` over `items` answers of at most `max` each.
pub(crate) fn spread<R: Rng + ?Sized>(rng: &mut R, total: i32, items: usize, max: i32) -> Vec<i32> {
    let total = total.clamp(0, items as i32 * max);
    let mut v = vec![0; items];
    let mut left = total;
    while left > 0 {
        let i = rng.random_range(0..items);
        if v[i] < max {
            v[i] += 1;
            left -= 1;
        }
    }
    v
}

/// PHQ-9 answers with the given total and item 9 (thoughts of self-harm), plus item 10.
pub(crate) fn phq9_answers<R: Rng + ?Sized>(rng: &mut R, total: i32, item9: i32) -> Vec<Option<i32>> {
    let total = total.clamp(0, 27);
    let rest = (total - item9.clamp(0, 3).min(total)).min(24);
    let item9 = total - rest;
    let mut a: Vec<Option<i32>> = spread(rng, rest, 8, 3).into_iter().map(Some).collect();
    a.push(Some(item9));
    a.push(Some(match total {
        0..=4 => 0,
        5..=9 => 1,
        10..=19 => 2,
        _ => 3,
    }));
    a
}

/// Answers for a summed instrument with the given total.
pub(crate) fn answers_for<R: Rng + ?Sized>(rng: &mut R, instrument: &str, total: i32) -> Vec<Option<i32>> {
    let (items, max) = match instrument {
        "phq9" => return phq9_answers(rng, total, 0),
        "gad7" => (7, 3),
        "pcl5" => (20, 4),
        "cadss6" => (6, 4),
        "pain_nrs" => (1, 10),
        other => unreachable!("no synthetic answers for {other}"),
    };
    spread(rng, total, items, max).into_iter().map(Some).collect()
}

pub(crate) fn max_total(instrument: &str) -> i32 {
    match instrument {
        "phq9" => 27,
        "gad7" => 21,
        "pcl5" => 80,
        "pain_nrs" => 10,
        "cadss6" => 24,
        _ => 0,
    }
}

/// A patient's resting vital signs and how strongly their BP answers ketamine.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Physiology {
    pub sys: f64,
    pub dia: f64,
    pub hr: f64,
    pub spo2: f64,
    pub rr: f64,
    pub reactivity: f64,
}

impl Physiology {
    pub fn sample<R: Rng + ?Sized>(rng: &mut R, age: i32) -> Self {
        let age_rise = f64::from((age - 40).max(0)) * 0.3;
        Self {
            sys: normal(rng, 119.0 + age_rise, 9.0).clamp(98.0, 150.0),
            dia: normal(rng, 76.0, 6.5).clamp(58.0, 95.0),
            hr: normal(rng, 73.0, 8.0).clamp(52.0, 100.0),
            spo2: rng.random_range(96.0..99.5),
            rr: rng.random_range(12.0..17.0),
            reactivity: rng.random_range(0.6..1.4),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AeKind {
    Vomiting,
    ProlongedDissociation,
    Panic,
    NearFall,
    Headache,
}

/// Something out of the ordinary in a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionEvent {
    None,
    /// BP rises ≥40 mmHg systolic from baseline around 40 min: a warning, re-checked and settled.
    BpSpike,
    /// Pre-dose BP stays high on re-check; the dose is deferred.
    PreDoseBpStop,
    /// The patient arrives unwell; the session is stopped before dosing.
    Unwell,
    /// SpO2 below the floor with deeper sedation, briefly.
    Desaturation,
    /// Severe hypertension with a sudden severe headache: infusion stopped, ED transfer, admitted.
    SeriousHypertensiveEvent,
    Ae(AeKind),
}

/// Completed questionnaires: (instrument code, answers).
pub(crate) type Questionnaires = Vec<(&'static str, Vec<Option<i32>>)>;

/// What to synthesise for one session.
pub(crate) struct SessionSpec {
    pub course_id: CourseId,
    pub route: Route,
    pub chair: Option<ChairId>,
    pub scheduled_for: OffsetDateTime,
    pub dose_mg: f64,
    /// Minutes the dose takes (the IV infusion length); 0 means the route's usual.
    pub dose_minutes: i64,
    /// 0-based position in the patient's treatment: side effects fade with repeated doses.
    pub index: u32,
    pub at_home: bool,
    pub event: SessionEvent,
    /// Questionnaires the patient completes before check-in: (instrument, answers).
    pub questionnaires: Questionnaires,
    /// Who acknowledged the session's alerts; `None` leaves them open.
    pub acknowledged_by: Option<String>,
    pub course_status_after: Option<CourseStatus>,
}

/// Post-dose BP response shape, 0 at dose start rising to 1 at the peak. IV and IM peak
/// around the end of the dose and settle within ~1.5 h (§4.2 [S20]); esketamine peaks
/// ~40 min and lasts hours (§4.1 [S6]).
fn bp_shape(route: Route, t: f64, dose_minutes: f64) -> f64 {
    if t <= 0.0 {
        return 0.0;
    }
    let gamma = |tp: f64, k: f64| (t / tp).powf(k) * (k * (1.0 - t / tp)).exp();
    match route {
        Route::IvRacemic if dose_minutes > 60.0 => {
            // Long low-rate infusions (chronic pain): a plateau, then back down.
            if t <= dose_minutes { 1.0 - (-t / 30.0).exp() } else { (-(t - dose_minutes) / 30.0).exp() }
        }
        Route::IvRacemic => gamma((dose_minutes - 5.0).max(10.0), 2.0),
        Route::ImRacemic => gamma(15.0, 2.0),
        Route::IntranasalEsketamine => gamma(40.0, 1.0),
        Route::OralRacemic | Route::SublingualRacemic => gamma(45.0, 1.0),
    }
}

fn mean_bp_rise(route: Route, dose_minutes: f64) -> f64 {
    match route {
        Route::IvRacemic if dose_minutes > 60.0 => 8.0,
        Route::IvRacemic => 14.0,
        Route::ImRacemic => 12.0,
        Route::IntranasalEsketamine => 16.0,
        Route::OralRacemic | Route::SublingualRacemic => 6.0,
    }
}

struct Reading {
    sys: f64,
    dia: f64,
    hr: f64,
    spo2: f64,
    rr: f64,
}

impl Reading {
    fn vitals(&self) -> VitalSigns {
        let sys = self.sys.round();
        let dia = self.dia.round().min(sys - 15.0);
        VitalSigns {
            systolic_mmhg: Some(Mmhg(sys)),
            diastolic_mmhg: Some(Mmhg(dia)),
            heart_rate_bpm: Some(BeatsPerMinute(self.hr.round())),
            spo2_pct: Some(Percent(self.spo2.round().clamp(50.0, 100.0))),
            resp_rate_per_min: Some(BreathsPerMinute(self.rr.round())),
        }
    }
}

/// Side effects per route with a per-session probability in the first sessions
/// (§4.1 [S63] esketamine week 1; §4.2 [S40] IV ≥20 %), fading with repeated doses.
fn side_effect_rates(route: Route) -> &'static [(&'static str, f64)] {
    match route {
        Route::IntranasalEsketamine => {
            &[("dizziness", 0.21), ("dissociation", 0.17), ("nausea", 0.14), ("vertigo", 0.12), ("sedation", 0.04)]
        }
        Route::IvRacemic => {
            &[("dissociation", 0.22), ("headache", 0.12), ("nausea", 0.12), ("dizziness", 0.12), ("anxiety", 0.08)]
        }
        Route::ImRacemic => &[("dissociation", 0.18), ("nausea", 0.10), ("dizziness", 0.10), ("headache", 0.06)],
        Route::OralRacemic | Route::SublingualRacemic => {
            &[("dizziness", 0.10), ("nausea", 0.08), ("sedation", 0.08), ("dissociation", 0.06)]
        }
    }
}

/// One complete session: lifecycle, vitals, MOAA/S, CADSS-6, side effects, alerts'
/// acknowledgement, and events.
pub(crate) fn synth_session<R: Rng + ?Sized>(rng: &mut R, phys: &Physiology, spec: SessionSpec) -> HistoricalSession {
    let route = spec.route;
    let mut s = HistoricalSession::new(spec.course_id, spec.scheduled_for);
    s.chair_id = spec.chair;
    s.planned_dose_mg = Some(Milligrams(spec.dose_mg));
    s.course_status_after = spec.course_status_after;
    s.acknowledge_alerts = spec.acknowledged_by.map(|by| AlertAcknowledgement {
        by,
        after: mins(rng.random_range(2..=9)),
        note: Some("Re-checked and reviewed with the treating clinician; managed per protocol.".into()),
    });
    let source = if spec.at_home { VitalsSource::Manual } else { VitalsSource::Monitor };
    let decay = 0.5 + 0.5 * 0.8f64.powi(spec.index as i32);

    let check_in = spec.scheduled_for + mins(rng.random_range(-10..=8));
    let pre = check_in + mins(rng.random_range(4..=9));
    let dose_start = pre + mins(rng.random_range(8..=14));
    let dose_minutes = match route {
        Route::IvRacemic => {
            if spec.dose_minutes > 0 {
                spec.dose_minutes
            } else {
                40
            }
        }
        Route::ImRacemic => 1,
        Route::IntranasalEsketamine if spec.dose_mg <= 28.0 => 1,
        // One device per 28 mg, 5 minutes apart (§2.3).
        Route::IntranasalEsketamine if spec.dose_mg <= 56.0 => 6,
        Route::IntranasalEsketamine => 11,
        Route::SublingualRacemic => 10,
        Route::OralRacemic => 2,
    };

    for (code, answers) in spec.questionnaires {
        s.responses.push(HistoricalResponse {
            instrument: code.into(),
            answers,
            completed_at: check_in - mins(rng.random_range(5..=15)),
            completed_by: CompletedBy::Patient,
        });
    }
    s.steps.push(SessionStep::new(SessionAction::CheckIn, check_in));

    let base_sys = phys.sys + normal(rng, 0.0, 5.0);
    let base_dia = phys.dia + normal(rng, 0.0, 4.0);
    let base_hr = phys.hr + normal(rng, 0.0, 4.0);
    let amp = match spec.event {
        SessionEvent::BpSpike => rng.random_range(45.0..50.0),
        _ => (mean_bp_rise(route, dose_minutes as f64) * phys.reactivity * rng.random_range(0.6..1.4)).max(0.0),
    };
    let reading = |rng: &mut R, t: f64| {
        let f = bp_shape(route, t, dose_minutes as f64);
        Reading {
            sys: base_sys + amp * f + normal(rng, 0.0, 3.0),
            dia: base_dia + 0.55 * amp * f + normal(rng, 0.0, 2.0),
            hr: base_hr + 0.3 * amp * f + normal(rng, 0.0, 2.5),
            spo2: (phys.spo2 + normal(rng, 0.0, 0.6)).clamp(94.0, 100.0),
            rr: phys.rr + normal(rng, 0.0, 1.0),
        }
    };
    let push_vitals = |s: &mut HistoricalSession, at: OffsetDateTime, r: &Reading, src: VitalsSource| {
        s.vitals.push(HistoricalVitals { taken_at: at, vitals: r.vitals(), source: src });
    };

    match spec.event {
        SessionEvent::Unwell => {
            let r = reading(rng, 0.0);
            push_vitals(&mut s, check_in + mins(4), &r, VitalsSource::Manual);
            s.steps.push(SessionStep::new(
                SessionAction::Stop {
                    reason: "Patient arrived unwell (fever and cough); not dosed, session rescheduled.".into(),
                },
                check_in + mins(12),
            ));
            return s;
        }
        SessionEvent::PreDoseBpStop => {
            s.steps.push(SessionStep::new(SessionAction::StartPreDoseChecks, pre));
            let high = Reading {
                sys: rng.random_range(160.0..170.0),
                dia: rng.random_range(98.0..104.0),
                hr: base_hr + 6.0,
                spo2: phys.spo2,
                rr: phys.rr,
            };
            push_vitals(&mut s, pre + mins(2), &high, VitalsSource::Manual);
            let again = Reading { sys: high.sys - 3.0, dia: high.dia - 2.0, ..high };
            push_vitals(&mut s, pre + mins(12), &again, VitalsSource::Manual);
            s.steps.push(SessionStep::new(
                SessionAction::Stop {
                    reason: format!(
                        "Pre-dose BP {}/{} mmHg on re-check; benefit and risk weighed, dose deferred and rescheduled.",
                        again.sys.round(),
                        again.dia.round()
                    ),
                },
                pre + mins(16),
            ));
            s.note = Some("Pre-dose BP above the label guide on two readings; patient asymptomatic. Dose deferred; GP letter about BP.".into());
            return s;
        }
        _ => {}
    }

    s.steps.push(SessionStep::new(SessionAction::StartPreDoseChecks, pre));
    push_vitals(&mut s, dose_start - mins(6), &reading(rng, 0.0), VitalsSource::Manual);
    s.steps.push(SessionStep::new(SessionAction::StartDose, dose_start));

    if spec.event == SessionEvent::SeriousHypertensiveEvent {
        let baseline = s.vitals[0].vitals;
        let b = baseline.systolic_mmhg.map_or(140.0, |m| m.0);
        let d = baseline.diastolic_mmhg.map_or(88.0, |m| m.0);
        for (t, ds, dd) in [(5, 10.0, 6.0), (10, 20.0, 12.0), (15, 31.0, 18.0), (20, 44.0, 27.0)] {
            let r = Reading {
                sys: (b + ds).max(150.0 + ds),
                dia: (d + dd).max(92.0 + dd),
                hr: base_hr + 14.0,
                spo2: phys.spo2,
                rr: phys.rr + 2.0,
            };
            push_vitals(&mut s, dose_start + mins(t), &r, source);
        }
        let at = dose_start + mins(21);
        s.observations.push(HistoricalObservation {
            observed_at: at,
            body: ObservationBody::SideEffect {
                symptom: "sudden_severe_headache".into(),
                note: Some("Sudden occipital headache, nausea".into()),
            },
        });
        s.steps.push(SessionStep::new(
            SessionAction::Stop { reason: "Infusion stopped at 25 min: severe hypertension with sudden severe headache; emergency services called.".into() },
            dose_start + mins(25),
        ));
        s.adverse_events.push(NewAdverseEvent {
            description: "Hypertensive urgency with sudden severe headache during IV ketamine infusion.".into(),
            severity: AeSeverity::Severe,
            serious: true,
            action_taken: "Infusion stopped; emergency services called; transferred to the emergency department and admitted overnight for observation.".into(),
            outcome: "Recovered; discharged from hospital the next day. Ketamine treatment discontinued.".into(),
            onset_at: at - mins(1),
        });
        s.note = Some("Serious adverse event: see the adverse-event record. Course stopped.".into());
        return s;
    }

    let dose_end = dose_start + mins(dose_minutes);
    s.steps.push(SessionStep::new(SessionAction::EndDose, dose_end));

    // Post-dose readings, minutes after the dose started.
    let mut offsets: Vec<i64> = match route {
        Route::IvRacemic if dose_minutes > 60 => {
            (1..=dose_minutes / 15).map(|k| k * 15).chain([dose_minutes + 15, dose_minutes + 30]).collect()
        }
        Route::IvRacemic => {
            (1..=dose_minutes / 5).map(|k| k * 5).chain((1..=5).map(|k| dose_minutes + 15 * k)).collect()
        }
        Route::ImRacemic => vec![5, 10, 15, 20, 25, 30, 40],
        Route::IntranasalEsketamine => vec![dose_minutes + 1, 20, 40, 60, 90, 120],
        Route::OralRacemic | Route::SublingualRacemic => vec![40, 90, 120],
    };
    offsets.sort_unstable();
    offsets.dedup();
    for &t in &offsets {
        let mut r = reading(rng, t as f64);
        if spec.event == SessionEvent::Desaturation && t == 20 {
            r.spo2 = 90.0;
            r.rr = 9.0;
        }
        push_vitals(&mut s, dose_start + mins(t), &r, source);
    }
    let last = *offsets.last().unwrap_or(&0);
    let min_monitoring = SafetyRules::builtin().minimum_monitoring(route).0;
    let mut discharge = dose_start + mins(last.max(min_monitoring) + rng.random_range(3..=10));
    if spec.event == SessionEvent::Ae(AeKind::ProlongedDissociation) {
        discharge += mins(35);
    }

    // Sedation (MOAA/S) and dissociation (CADSS-6), clinician-rated.
    let moaas_at: &[i64] = match route {
        Route::IvRacemic => &[15, 40, 60],
        Route::IntranasalEsketamine => &[20, 40, 90],
        Route::ImRacemic => &[10, 25],
        Route::OralRacemic | Route::SublingualRacemic => &[],
    };
    for &t in moaas_at {
        let p: f64 = rng.random();
        let score = if (spec.event == SessionEvent::Desaturation && t <= 20) || p < 0.05 * decay {
            3
        } else if p < 0.3 * decay {
            4
        } else {
            5
        };
        s.observations
            .push(HistoricalObservation { observed_at: dose_start + mins(t), body: ObservationBody::Moaas { score } });
    }
    if spec.event == SessionEvent::Desaturation {
        s.observations.push(HistoricalObservation {
            observed_at: dose_start + mins(20),
            body: ObservationBody::SideEffect {
                symptom: "sedation".into(),
                note: Some("Deeper sedation with desaturation; roused to voice".into()),
            },
        });
        s.note = Some("Brief desaturation to 90 % with deeper sedation at 20 min; repositioned and roused to voice; SpO2 back to 94 % within 5 min. Next infusion rate to be reviewed.".into());
    }
    let cadss_at = match route {
        Route::IvRacemic => Some(dose_minutes.min(40)),
        Route::IntranasalEsketamine => Some(40),
        Route::ImRacemic => Some(20),
        Route::OralRacemic | Route::SublingualRacemic => None,
    };
    if let Some(t) = cadss_at {
        let mean = match route {
            Route::IntranasalEsketamine => 2.0 + 9.0 * 0.85f64.powi(spec.index as i32),
            Route::IvRacemic if dose_minutes > 60 => 3.0,
            Route::IvRacemic => 2.0 + 8.0 * 0.88f64.powi(spec.index as i32),
            _ => 1.5 + 6.0 * 0.88f64.powi(spec.index as i32),
        };
        let total = normal(rng, mean, 2.0).round().clamp(0.0, 24.0) as i32;
        s.responses.push(HistoricalResponse {
            instrument: "cadss6".into(),
            answers: answers_for(rng, "cadss6", total),
            completed_at: dose_start + mins(t),
            completed_by: CompletedBy::Staff,
        });
    }

    // Side effects.
    let mut effects: Vec<&'static str> =
        side_effect_rates(route).iter().filter(|(_, p)| rng.random_bool(p * decay)).map(|(c, _)| *c).collect();
    let ae = match spec.event {
        SessionEvent::Ae(kind) => {
            let (symptom, description, severity, action, outcome) = match kind {
                AeKind::Vomiting => (
                    "nausea",
                    "Nausea with vomiting after the dose.",
                    AeSeverity::Moderate,
                    "Ondansetron 4 mg given; observed until settled.",
                    "Resolved before discharge.",
                ),
                AeKind::ProlongedDissociation => (
                    "dissociation",
                    "Dissociation lasting beyond the usual observation period.",
                    AeSeverity::Mild,
                    "Observation extended by 35 minutes; reassurance.",
                    "Resolved the same day.",
                ),
                AeKind::Panic => (
                    "anxiety",
                    "Acute anxiety (panic) during the dose.",
                    AeSeverity::Moderate,
                    "Dose paused 5 minutes; reassurance and grounding.",
                    "Resolved; session completed.",
                ),
                AeKind::NearFall => (
                    "dizziness",
                    "Dizziness with a near-fall when standing after the session.",
                    AeSeverity::Mild,
                    "Assisted back to the chair; fall precautions; discharged with escort.",
                    "Resolved.",
                ),
                AeKind::Headache => (
                    "headache",
                    "Headache after the session.",
                    AeSeverity::Mild,
                    "Paracetamol 1 g by mouth.",
                    "Resolved by the next morning.",
                ),
            };
            if !effects.contains(&symptom) {
                effects.push(symptom);
            }
            Some((
                symptom,
                NewAdverseEvent {
                    description: description.into(),
                    severity,
                    serious: false,
                    action_taken: action.into(),
                    outcome: outcome.into(),
                    onset_at: dose_start,
                },
            ))
        }
        _ => None,
    };
    // Before discharge, leaving room for an antiemetic after nausea.
    let latest = ((discharge - dose_start).whole_minutes() - 5).min(55);
    for symptom in effects {
        let at = dose_start + mins(rng.random_range(8..=latest));
        s.observations.push(HistoricalObservation {
            observed_at: at,
            body: ObservationBody::SideEffect { symptom: symptom.into(), note: None },
        });
        let vomited = matches!(ae, Some((_, ref e)) if e.description.starts_with("Nausea with vomiting"));
        if symptom == "nausea" && (vomited || rng.random_bool(0.3)) {
            s.observations.push(HistoricalObservation {
                observed_at: at + mins(3),
                body: ObservationBody::Intervention {
                    drug: "ondansetron".into(),
                    dose_mg: Milligrams(4.0),
                    route: if route == Route::IvRacemic { "IV".into() } else { "ODT".into() },
                },
            });
        }
        if let Some((sym, e)) = &ae
            && *sym == symptom
        {
            let mut e = e.clone();
            e.onset_at = at;
            s.adverse_events.push(e);
        }
    }
    if spec.event == SessionEvent::BpSpike {
        s.note =
            Some("BP rise around 40 min; re-checked, asymptomatic, settling by 90 min. No treatment needed.".into());
    }
    // Before leaving (issue 18): the record shows what discharge is judged on: a full set of
    // vitals back near the pre-dose baseline within the demo's vitals window, sedation resolved
    // (MOAA/S 5) and dissociation resolved on CADSS-6 at or below the demo cut-off. Drawn
    // without the random stream, so the rest of the demo clinic stays as it was.
    let before = discharge - mins(2);
    let settle = Reading {
        sys: base_sys.min(170.0),
        dia: base_dia.min(105.0),
        hr: base_hr,
        spo2: phys.spo2.clamp(95.0, 100.0),
        rr: phys.rr,
    };
    push_vitals(&mut s, before, &settle, source);
    s.observations.push(HistoricalObservation { observed_at: before, body: ObservationBody::Moaas { score: 5 } });
    let settled = (spec.index as i32) % (DEMO_DISSOCIATION_RESOLVED_AT_OR_BELOW + 1);
    s.responses.push(HistoricalResponse {
        instrument: "cadss6".into(),
        answers: (0..6).map(|i| Some(i32::from(i < settled))).collect(),
        completed_at: discharge - mins(1),
        completed_by: CompletedBy::Staff,
    });
    s.steps.push(SessionStep::new(SessionAction::Discharge, discharge));
    s
}

/// DEMO VALUES, not clinical advice: the discharge settings the references leave to the
/// medical director (how recent the last full set of vitals must be; the CADSS-6 total that
/// counts as resolved). A real clinic starts with none and discharge says so until they are set.
pub(crate) const DEMO_VITALS_WITHIN_MINUTES: i64 = 15;
pub(crate) const DEMO_DISSOCIATION_RESOLVED_AT_OR_BELOW: i32 = 2;

pub(crate) fn demo_discharge_settings() -> keta_domain::discharge::DischargeSettings {
    keta_domain::discharge::DischargeSettings {
        vitals_within_minutes: Some(keta_domain::units::Minutes(DEMO_VITALS_WITHIN_MINUTES)),
        dissociation: Some(keta_domain::discharge::DissociationSetting {
            instrument: "cadss6".into(),
            resolved_at_or_below: DEMO_DISSOCIATION_RESOLVED_AT_OR_BELOW,
        }),
    }
}

/// Cuts a synthesised session at `now`, as if it were still running (for today's board).
pub(crate) fn in_progress(mut s: HistoricalSession, now: OffsetDateTime) -> HistoricalSession {
    s.steps.retain(|st| st.at <= now && !matches!(st.action, SessionAction::Discharge | SessionAction::Stop { .. }));
    s.vitals.retain(|v| v.taken_at <= now);
    s.observations.retain(|o| o.observed_at <= now);
    s.responses.retain(|r| r.completed_at <= now);
    s.adverse_events.clear();
    s.acknowledge_alerts = None;
    s.course_status_after = None;
    s
}

const GIVEN_F: &[&str] = &[
    "Ava", "Maya", "Grace", "Chloe", "Isabel", "Nora", "Leah", "Hannah", "Sofia", "Priya", "Mei", "Amara", "Lucia",
    "Rosa", "Elena", "Fatima", "Keiko", "Ingrid", "Naomi", "Tessa", "Yara", "Clara", "Joanna", "Ruth",
];
const GIVEN_M: &[&str] = &[
    "Liam", "Noah", "Ethan", "Mateo", "Daniel", "Samuel", "Omar", "Kenji", "Arjun", "Lucas", "Elijah", "Caleb",
    "Marcus", "Tomas", "Jonah", "Felix", "Rafael", "Andre", "Theo", "Isaac", "Victor", "Wesley", "Hugo", "Dmitri",
];
const FAMILY: &[&str] = &[
    "Alvarez",
    "Bennett",
    "Chen",
    "Delgado",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Hughes",
    "Ibrahim",
    "Jensen",
    "Kowalski",
    "Larsen",
    "Morales",
    "Nakamura",
    "Okafor",
    "Patel",
    "Quinn",
    "Reyes",
    "Schmidt",
    "Tanaka",
    "Underwood",
    "Vasquez",
    "Whitaker",
    "Xu",
    "Yilmaz",
    "Zimmerman",
    "Brooks",
    "Coleman",
    "Dubois",
    "Ferreira",
    "Haddad",
    "Lindqvist",
    "Moreau",
    "Novak",
    "Ortiz",
    "Park",
];

// =======================================================================================
// The plan: the whole clinic, drawn up front
// =======================================================================================

struct SiteDef {
    code: &'static str,
    name: &'static str,
    zone: &'static str,
    clock: SiteClock,
    chairs: &'static [&'static str],
    area_code: &'static str,
    nurse: &'static str,
    prescriber: &'static str,
}

const SITES: [SiteDef; 2] = [
    SiteDef {
        code: "AUS",
        name: "Austin",
        zone: "America/Chicago",
        clock: SiteClock { std_hours: -6 },
        chairs: &["Chair 1", "Chair 2", "Chair 3", "Chair 4", "Chair 5", "Chair 6"],
        area_code: "512",
        nurse: "rn.alvarez",
        prescriber: "dr.nair",
    },
    SiteDef {
        code: "DEN",
        name: "Denver",
        zone: "America/Denver",
        clock: SiteClock { std_hours: -7 },
        chairs: &["Bay A", "Bay B", "Bay C", "Bay D", "Bay E"],
        area_code: "303",
        nurse: "rn.okafor",
        prescriber: "dr.lindqvist",
    },
];

/// The induction-course outcome a patient is drawn to have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arch {
    Remit,
    Respond,
    /// Responds during induction, loses the response in follow-up without maintenance.
    Relapse,
    Partial,
    NonResponse,
    Worsen,
}

impl Arch {
    fn responds(self) -> bool {
        matches!(self, Arch::Remit | Arch::Respond)
    }
}

/// A group of patients sharing route(s), indication and outcome quotas.
struct Cohort {
    routes: &'static [Route],
    indication: Indication,
    n: usize,
    response: f64,
    remission: f64,
    worsen: f64,
    relapse: f64,
}

const COHORTS: &[Cohort] = &[
    // McInnes 2022 (IV induction, PHQ-9): response 53.6 %, remission 28.9 %, worsened 8.4 %.
    Cohort {
        routes: &[Route::IvRacemic],
        indication: Indication::Depression,
        n: 18,
        response: 0.536,
        remission: 0.289,
        worsen: 0.084,
        relapse: 0.12,
    },
    // Pooled TRANSFORM day 28 response 58.7 %; remission ≈36 % (TRANSFORM-1).
    Cohort {
        routes: &[Route::IntranasalEsketamine],
        indication: Indication::Depression,
        n: 14,
        response: 0.587,
        remission: 0.36,
        worsen: 0.07,
        relapse: 0.12,
    },
    // Oliver 2022 (within 6 weeks): 50 % / 20 %.
    Cohort {
        routes: &[Route::ImRacemic],
        indication: Indication::Depression,
        n: 6,
        response: 0.50,
        remission: 0.20,
        worsen: 0.0,
        relapse: 0.12,
    },
    // Hull 2022 (at-home SL, 4 weeks): 62.8 % / 32.6 %.
    Cohort {
        routes: &[Route::SublingualRacemic, Route::SublingualRacemic, Route::SublingualRacemic, Route::OralRacemic],
        indication: Indication::Depression,
        n: 8,
        response: 0.628,
        remission: 0.326,
        worsen: 0.0,
        relapse: 0.12,
    },
    // Hull 2022 GAD-7: 62.9 % / 31.3 %.
    Cohort {
        routes: &[
            Route::SublingualRacemic,
            Route::SublingualRacemic,
            Route::OralRacemic,
            Route::IvRacemic,
            Route::SublingualRacemic,
        ],
        indication: Indication::Anxiety,
        n: 5,
        response: 0.629,
        remission: 0.313,
        worsen: 0.0,
        relapse: 0.0,
    },
    // Feder 2021: ≥30 % improvement in 67 % (no response definition for PCL-5 in the reference).
    Cohort {
        routes: &[Route::IvRacemic, Route::IvRacemic, Route::ImRacemic, Route::IvRacemic, Route::IvRacemic],
        indication: Indication::Ptsd,
        n: 5,
        response: 0.6,
        remission: 0.0,
        worsen: 0.0,
        relapse: 0.0,
    },
    Cohort {
        routes: &[Route::IvRacemic],
        indication: Indication::ChronicPain,
        n: 4,
        response: 0.75,
        remission: 0.0,
        worsen: 0.0,
        relapse: 0.0,
    },
];

/// Exactly the quota's counts, shuffled.
fn archetypes(rng: &mut ChaCha8Rng, c: &Cohort) -> Vec<Arch> {
    let n = c.n as f64;
    let rem = (n * c.remission).round() as usize;
    let resp = ((n * c.response).round() as usize).saturating_sub(rem);
    let worse = (n * c.worsen).round() as usize;
    let relapse = (n * c.relapse).round() as usize;
    let mut v = Vec::with_capacity(c.n);
    v.extend(std::iter::repeat_n(Arch::Remit, rem));
    v.extend(std::iter::repeat_n(Arch::Respond, resp));
    v.extend(std::iter::repeat_n(Arch::Worsen, worse));
    v.extend(std::iter::repeat_n(Arch::Relapse, relapse));
    let mut partial = true;
    while v.len() < c.n {
        v.push(if partial { Arch::Partial } else { Arch::NonResponse });
        partial = !partial;
    }
    v.truncate(c.n);
    v.shuffle(rng);
    v
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BoardRole {
    DischargedToday,
    Monitoring,
    CheckedIn,
    Scheduled(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Special {
    None,
    /// Hypersensitivity to an excipient of the nasal spray: esketamine blocked; treated by IV.
    EsketamineHardStop,
    /// Takes theophylline: racemic ketamine blocked; treated with esketamine.
    RacemicHardStop,
    SeriousAe,
    /// Yesterday's check-in answers PHQ-9 item 9 positively; the urgent alert stays open.
    OpenItem9,
}

struct PlannedSession {
    slot: usize,
    chair: Option<usize>,
    session: HistoricalSession,
}

struct PlannedCheckIn {
    slot: Option<usize>,
    response: HistoricalResponse,
    ack: Option<AlertAcknowledgement>,
}

struct BoardSession {
    role: BoardRole,
    chair: usize,
    scheduled_for: OffsetDateTime,
    dose_mg: f64,
    phq9: Vec<Option<i32>>,
    /// Full or in-progress sessions to import (discharged today, in monitoring).
    import: Option<HistoricalSession>,
}

struct PatientPlan {
    site: usize,
    new: NewPatient,
    weights: Vec<NewWeight>,
    trials: Vec<AntidepressantTrial>,
    medications: Vec<NewMedication>,
    allergies: Vec<NewAllergy>,
    pregnancy: Option<NewPregnancyStatus>,
    assessments: Vec<NewEligibilityAssessment>,
    courses: Vec<NewCourse>,
    sessions: Vec<PlannedSession>,
    check_ins: Vec<PlannedCheckIn>,
    board: Option<BoardSession>,
}

struct Plan {
    patients: Vec<PatientPlan>,
}

/// One patient before their records are drawn.
struct Draft {
    route: Route,
    indication: Indication,
    arch: Arch,
    site: usize,
    maintenance: bool,
    special: Special,
    board: Option<BoardRole>,
}

fn induction_days(route: Route, indication: Indication, rng: &mut ChaCha8Rng) -> Vec<i64> {
    match (route, indication) {
        // ASRA 2018 (§2.5): daily infusions; five weekdays here.
        (Route::IvRacemic, Indication::ChronicPain) => vec![0, 1, 2, 3, 4],
        // Feder 2021: six infusions over two weeks.
        (Route::IvRacemic, Indication::Ptsd) => vec![0, 2, 4, 7, 9, 11],
        // Murrough 2013 (3×/week for 12 days) or Oliver 2022 (6 within 21 days).
        (Route::IvRacemic, _) if rng.random_bool(0.5) => vec![0, 2, 4, 7, 9, 11],
        (Route::IvRacemic, _) => vec![0, 3, 7, 10, 14, 17],
        (Route::ImRacemic, _) => vec![0, 3, 7, 10, 14, 17],
        // Label: twice weekly, weeks 1-4.
        (Route::IntranasalEsketamine, _) => vec![0, 3, 7, 10, 14, 17, 21, 24],
        // At-home SL/oral over four weeks (Hull 2022), first dose supervised in clinic.
        (Route::OralRacemic | Route::SublingualRacemic, _) => vec![0, 4, 7, 11, 14, 18, 21, 25],
    }
}

/// The primary score's planned course: baseline and value at `t` days after the first session.
struct Trajectory {
    arch: Arch,
    indication: Indication,
    baseline: f64,
    target: f64,
    /// Relapse: the low point at the end of induction, and the level at the end of follow-up.
    low: f64,
    induction_len: f64,
    follow_end: f64,
}

impl Trajectory {
    fn draw(rng: &mut ChaCha8Rng, arch: Arch, indication: Indication, induction_len: f64, follow_end: f64) -> Self {
        let b: f64 = match indication {
            Indication::Depression => rng.random_range(13..=24) as f64,
            Indication::Anxiety => rng.random_range(11..=18) as f64,
            Indication::Ptsd => rng.random_range(38..=62) as f64,
            Indication::ChronicPain => rng.random_range(6..=8) as f64,
        };
        let improving = arch.responds() || arch == Arch::Relapse;
        let target = match indication {
            Indication::Ptsd => b * if improving { rng.random_range(0.45..0.65) } else { rng.random_range(0.85..1.0) },
            Indication::ChronicPain => {
                b - if improving { rng.random_range(2.0..3.5) } else { rng.random_range(0.0..1.0) }
            }
            _ => match arch {
                Arch::Remit => rng.random_range(1.0..4.0),
                Arch::Respond => rng.random_range(5.0..(b / 2.0).floor().max(5.5)),
                Arch::Relapse => rng.random_range(0.6..0.8) * b,
                Arch::Partial => rng.random_range(0.55..0.72) * b,
                Arch::NonResponse => rng.random_range(0.8..0.98) * b,
                Arch::Worsen => b + rng.random_range(2.0..5.0),
            },
        };
        let low = rng.random_range(0.25..0.42) * b;
        Self { arch, indication, baseline: b, target, low, induction_len, follow_end }
    }

    fn at(&self, t: f64) -> f64 {
        let (b, f, e) = (self.baseline, self.target, self.induction_len.max(1.0));
        if t <= 0.0 {
            return b;
        }
        let fast = |end: f64, k: f64| end + (b - end) * (-k * t.min(e) / e).exp();
        match (self.indication, self.arch) {
            (Indication::Ptsd | Indication::ChronicPain, _) => fast(f, 3.0),
            (_, Arch::Remit | Arch::Respond) => fast(f, 4.0),
            (_, Arch::Relapse) => {
                if t <= e {
                    fast(self.low, 4.0)
                } else {
                    let span = (self.follow_end - e).max(1.0);
                    self.low + (f - self.low) * ((t - e) / span).min(1.0)
                }
            }
            (_, Arch::Partial | Arch::NonResponse) => fast(f, 2.0),
            (_, Arch::Worsen) => b + (f - b) * (t / e).min(1.0),
        }
    }
}

/// Makes the induction course's primary scores tell the drawn story exactly (the quotas
/// are on the latest score): `points` are (is_induction_course, value) in time order.
fn enforce_story(arch: Arch, indication: Indication, baseline: i32, points: &mut [(bool, i32)]) {
    if !matches!(indication, Indication::Depression | Indication::Anxiety) {
        return;
    }
    let half = baseline / 2; // a score ≤ half is a ≥50 % reduction
    let idx: Vec<usize> = (0..points.len()).filter(|&i| points[i].0).collect();
    let Some((&first, rest)) = idx.split_first() else { return };
    points[first].1 = baseline;
    let Some(&last) = rest.last() else { return };
    match arch {
        Arch::Remit | Arch::Respond => {
            let mut responding = false;
            for &i in rest {
                if points[i].1 <= half {
                    responding = true;
                }
                if responding {
                    points[i].1 = points[i].1.min(half);
                }
            }
            points[last].1 = if arch == Arch::Remit { points[last].1.min(4) } else { points[last].1.clamp(5, half) };
        }
        Arch::Relapse => {
            // Responding at the end of induction (the last point before follow-up), lost later.
            let pivot = rest.len() / 2;
            points[rest[pivot]].1 = points[rest[pivot]].1.min(half);
            points[last].1 = points[last].1.max(half + 2).min(baseline);
        }
        Arch::Partial | Arch::NonResponse | Arch::Worsen => {
            for &i in rest {
                points[i].1 = points[i].1.max(half + 1);
            }
            points[last].1 = match arch {
                Arch::Partial => points[last].1.clamp(half + 1, (baseline * 3 / 4).max(half + 1)),
                Arch::NonResponse => points[last].1.max((baseline * 3 + 3) / 4),
                _ => points[last].1.max(baseline + 2),
            };
        }
    }
}

fn plan(seed: u64, now: OffsetDateTime) -> Plan {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let rng = &mut rng;

    // --- Who: route, indication, outcome, site ---------------------------------------------
    let mut drafts: Vec<Draft> = Vec::new();
    for c in COHORTS {
        let archs = archetypes(rng, c);
        let mut routes: Vec<Route> = (0..c.n).map(|i| c.routes[i % c.routes.len()]).collect();
        routes.shuffle(rng);
        let site_start = rng.random_range(0..2);
        for (i, (arch, route)) in archs.into_iter().zip(routes).enumerate() {
            drafts.push(Draft {
                route,
                indication: c.indication,
                arch,
                site: (i + site_start) % 2,
                maintenance: false,
                special: Special::None,
                board: None,
            });
        }
    }
    drafts.shuffle(rng);

    // --- Stories placed on purpose ---------------------------------------------------------
    let pick = |drafts: &[Draft], rng: &mut ChaCha8Rng, f: &dyn Fn(&Draft) -> bool| -> Option<usize> {
        let c: Vec<usize> =
            (0..drafts.len()).filter(|&i| drafts[i].special == Special::None && f(&drafts[i])).collect();
        c.choose(rng).copied()
    };
    let dep_iv = |d: &Draft| d.route == Route::IvRacemic && d.indication == Indication::Depression;
    if let Some(i) = pick(&drafts, rng, &|d| dep_iv(d) && matches!(d.arch, Arch::Partial | Arch::NonResponse)) {
        drafts[i].special = Special::SeriousAe;
    }
    if let Some(i) = pick(&drafts, rng, &|d| dep_iv(d)) {
        drafts[i].special = Special::EsketamineHardStop;
    }
    if let Some(i) = pick(&drafts, rng, &|d| d.route == Route::IntranasalEsketamine) {
        drafts[i].special = Special::RacemicHardStop;
    }
    if let Some(i) = pick(&drafts, rng, &|d| d.indication == Indication::Depression && d.arch == Arch::Worsen) {
        drafts[i].special = Special::OpenItem9;
    }

    // --- Maintenance, and today's board ----------------------------------------------------
    for d in drafts.iter_mut() {
        let p = match d.route {
            _ if d.special == Special::SeriousAe || d.arch == Arch::Relapse => 0.0,
            Route::IntranasalEsketamine if d.arch.responds() => 1.0,
            Route::IvRacemic if d.arch.responds() && d.indication == Indication::Depression => 0.75,
            _ if matches!(d.indication, Indication::Ptsd | Indication::ChronicPain) && d.arch.responds() => 0.4,
            _ if d.arch.responds() => 0.5,
            _ => 0.0,
        };
        d.maintenance = rng.random_bool(p);
    }
    for site in 0..SITES.len() {
        let chair_route = |d: &Draft| !d.route.is_home() && d.indication != Indication::ChronicPain;
        let mut cands: Vec<usize> = (0..drafts.len())
            .filter(|&i| {
                drafts[i].site == site
                    && drafts[i].maintenance
                    && chair_route(&drafts[i])
                    && drafts[i].special == Special::None
            })
            .collect();
        // Top up from responders on chair routes if maintenance left too few for a full board.
        if cands.len() < 6 {
            for (i, d) in drafts.iter_mut().enumerate() {
                if cands.len() >= 6 {
                    break;
                }
                if d.site == site && !d.maintenance && d.arch.responds() && chair_route(d) && d.special == Special::None
                {
                    d.maintenance = true;
                    cands.push(i);
                }
            }
        }
        cands.shuffle(rng);
        // The patient in monitoring: esketamine in Austin, IV in Denver, if there is one.
        let want = if site == 0 { Route::IntranasalEsketamine } else { Route::IvRacemic };
        if let Some(pos) = cands.iter().position(|&i| drafts[i].route == want) {
            cands.swap(0, pos);
        }
        let roles = [
            BoardRole::Monitoring,
            BoardRole::CheckedIn,
            BoardRole::Scheduled(35),
            BoardRole::Scheduled(110),
            BoardRole::Scheduled(185),
            BoardRole::DischargedToday,
        ];
        for (&i, role) in cands.iter().zip(roles) {
            drafts[i].board = Some(role);
        }
    }

    // --- Records ---------------------------------------------------------------------------
    let mut slots: HashMap<(usize, Date), usize> = HashMap::new();
    let mut mrn_counter = [0usize; 2];
    let mut used_names: Vec<(String, String)> = Vec::new();
    let mut patients = Vec::with_capacity(drafts.len());
    let mut all_sessions: Vec<(usize, usize)> = Vec::new(); // (patient, session index) for events
    for (pi, d) in drafts.iter().enumerate() {
        let site = &SITES[d.site];
        let clock = site.clock;
        let today = clock.today(now);
        let day = |offset: i64| today + Duration::days(offset);

        // Identity.
        let sex = match rng.random_range(0..100) {
            0..=59 => Sex::Female,
            60..=97 => Sex::Male,
            _ => Sex::Other,
        };
        let (given, family) = loop {
            let given = match sex {
                Sex::Female => GIVEN_F.choose(rng),
                Sex::Male => GIVEN_M.choose(rng),
                _ => {
                    if rng.random_bool(0.5) {
                        GIVEN_F.choose(rng)
                    } else {
                        GIVEN_M.choose(rng)
                    }
                }
            }
            .expect("names")
            .to_string();
            let family = FAMILY.choose(rng).expect("names").to_string();
            if !used_names.contains(&(given.clone(), family.clone())) {
                used_names.push((given.clone(), family.clone()));
                break (given, family);
            }
        };
        let age = match d.route {
            Route::IntranasalEsketamine if rng.random_bool(0.2) => rng.random_range(65..=76),
            _ => rng.random_range(21..=64),
        };
        let dob = today - Duration::days(age as i64 * 365 + rng.random_range(10..=355) + age as i64 / 4);
        mrn_counter[d.site] += 1;
        // Which patients get the extra medications and allergies below: by number, so the
        // random stream (and every other demo figure) stays as it was.
        let seq = mrn_counter[d.site];
        let mrn = format!("{}-{:04}", site.code, 1000 + mrn_counter[d.site]);
        let diagnoses = match d.indication {
            Indication::Depression => vec![["F33.2", "F33.1", "F32.2"].choose(rng).expect("codes").to_string()],
            Indication::Anxiety => vec!["F41.1".into()],
            Indication::Ptsd => vec!["F43.10".into(), "F33.1".into()],
            Indication::ChronicPain => vec![["G90.50", "M79.7", "G89.4"].choose(rng).expect("codes").to_string()],
        };
        let new = NewPatient {
            site_id: SiteId(0),
            mrn,
            given_name: given.clone(),
            family_name: family.clone(),
            date_of_birth: dob,
            sex,
            phone: Some(format!("({}) 555-{:04}", site.area_code, rng.random_range(100..=199))),
            email: Some(format!(
                "{}.{}{}@example.org",
                given.to_lowercase(),
                family.to_lowercase(),
                rng.random_range(1..=99)
            )),
            indication: d.indication,
            diagnoses,
            referring_clinician: Some(
                ["Dr. Hannah Weiss", "Dr. Marcus Bell", "Dr. Aiko Mori", "Dr. Samuel Osei"]
                    .choose(rng)
                    .expect("names")
                    .to_string(),
            ),
        };
        let phys = Physiology::sample(rng, age);
        let weight = match sex {
            Sex::Male => normal(rng, 86.0, 13.0),
            _ => normal(rng, 71.0, 12.0),
        }
        .clamp(48.0, 135.0)
        .round();

        // Timeline (days relative to the site's today; history ends yesterday).
        let ind = induction_days(d.route, d.indication, rng);
        let ind_len = *ind.last().expect("non-empty");
        let intake_ago = match (d.special, d.maintenance) {
            (Special::OpenItem9, _) => rng.random_range(ind_len + 25..=ind_len + 50),
            (_, true) => rng.random_range(ind_len + 60..=180),
            _ => rng.random_range(ind_len + 14..=180),
        };
        let intake = -intake_ago;
        let first = intake + rng.random_range(3..=6);
        let mut induction: Vec<i64> = ind.iter().map(|o| first + o).collect();
        if d.special == Special::SeriousAe {
            induction.truncate(4);
        }
        let end = *induction.last().expect("non-empty");
        let mut maintenance: Vec<i64> = Vec::new();
        if d.maintenance {
            if d.board.is_some() {
                let every = match d.route {
                    Route::IntranasalEsketamine => 14,
                    Route::IvRacemic => rng.random_range(21..=28),
                    _ => 21,
                };
                let mut k = -every;
                while k > end + 7 {
                    maintenance.push(k);
                    k -= every;
                }
                maintenance.reverse();
            } else {
                type Interval = Box<dyn Fn(&mut ChaCha8Rng, usize) -> i64>;
                let (gap, every): (i64, Interval) = match d.route {
                    Route::IntranasalEsketamine => (4, Box::new(|_, n| if n < 4 { 7 } else { 14 })),
                    Route::IvRacemic | Route::ImRacemic => {
                        (rng.random_range(14..=28), Box::new(|r, _| r.random_range(21..=35)))
                    }
                    _ => (rng.random_range(5..=9), Box::new(|r, _| r.random_range(7..=14))),
                };
                let mut k = end + gap;
                while k <= -1 {
                    maintenance.push(k);
                    k += every(rng, maintenance.len());
                }
            }
        }
        let follow_end = if d.maintenance || d.special == Special::OpenItem9 { -1 } else { (end + 56).min(-1) };
        let maint_from =
            maintenance.first().copied().unwrap_or(i64::MAX).min(if d.board.is_some() { 0 } else { i64::MAX }) - 2;

        // Questionnaire time points: intake, before each session, and check-ins between.
        #[derive(Clone, Copy, PartialEq)]
        enum When {
            Intake,
            Session(usize),
            CheckIn,
        }
        let session_days: Vec<(i64, usize)> =
            induction.iter().map(|&x| (x, 0)).chain(maintenance.iter().map(|&x| (x, 1))).collect();
        let mut points: Vec<(i64, When)> = vec![(intake, When::Intake)];
        points.extend(session_days.iter().enumerate().map(|(i, &(x, _))| (x, When::Session(i))));
        let mut dd = intake + 7;
        while dd <= follow_end {
            let near = session_days.iter().any(|&(x, _)| (x - dd).abs() <= 2);
            if !near {
                points.push((dd, When::CheckIn));
            }
            dd += if dd > end + 7 && d.maintenance { 14 } else { 7 };
        }
        if d.special == Special::OpenItem9 && points.last().is_some_and(|p| p.0 != -1) {
            points.push((-1, When::CheckIn));
        }
        points.sort_by_key(|p| (p.0, matches!(p.1, When::Session(_))));
        let slot_of = |x: i64| if d.maintenance && x >= maint_from { 1usize } else { 0 };

        // Scores.
        let traj = Trajectory::draw(rng, d.arch, d.indication, (end - first) as f64, (follow_end - first) as f64);
        let primary = d.indication.primary_instrument();
        let mut prim: Vec<(bool, i32)> = points
            .iter()
            .map(|&(x, _)| {
                let v = traj.at((x - first) as f64)
                    + normal(rng, 0.0, if d.indication == Indication::Ptsd { 3.0 } else { 1.1 });
                (slot_of(x) == 0, v.round().clamp(0.0, max_total(primary) as f64) as i32)
            })
            .collect();
        prim[0].1 = traj.baseline as i32;
        enforce_story(d.arch, d.indication, traj.baseline as i32, &mut prim);
        let secondary: Option<(&'static str, f64)> = match d.indication {
            Indication::Depression if rng.random_bool(0.35) => Some(("gad7", rng.random_range(10..=16) as f64)),
            Indication::Depression => None,
            _ => Some(("phq9", rng.random_range(9..=17) as f64)),
        };
        let mut answers_at: Vec<Questionnaires> = Vec::with_capacity(points.len());
        for (k, &(x, when)) in points.iter().enumerate() {
            let p = prim[k].1;
            let mut set = Vec::new();
            let phq_item9 = |rng: &mut ChaCha8Rng, total: i32| -> i32 {
                if d.special == Special::OpenItem9 && x == -1 && when == When::CheckIn {
                    2
                } else if total >= 14 && rng.random_bool(if when == When::Intake { 0.3 } else { 0.12 }) {
                    1
                } else {
                    0
                }
            };
            if primary == "phq9" {
                let i9 = phq_item9(rng, p);
                set.push(("phq9", phq9_answers(rng, p, i9)));
            } else {
                set.push((primary, answers_for(rng, primary, p)));
            }
            if let Some((code, b2)) = secondary {
                let ratio = f64::from(p) / traj.baseline.max(1.0);
                let v = (b2 * ratio + normal(rng, 0.0, 1.2)).round().clamp(0.0, max_total(code) as f64) as i32;
                if code == "phq9" {
                    let i9 = phq_item9(rng, v);
                    set.push(("phq9", phq9_answers(rng, v, i9)));
                } else {
                    set.push((code, answers_for(rng, code, v)));
                }
            }
            answers_at.push(set);
        }

        // Intake: weight, antidepressant history, eligibility.
        let mut weights =
            vec![NewWeight { weight_kg: Kilograms(weight), measured_on: day(intake), weight_type: WeightType::Actual }];
        if rng.random_bool(0.3) && end + 20 < -1 {
            weights.push(NewWeight {
                weight_kg: Kilograms((weight + normal(rng, 0.0, 1.5)).round()),
                measured_on: day(rng.random_range(end + 1..=-1)),
                weight_type: WeightType::Actual,
            });
        }
        let mut trials = Vec::new();
        let drugs: &[(&str, f64)] = &[
            ("sertraline", 150.0),
            ("escitalopram", 20.0),
            ("venlafaxine XR", 225.0),
            ("bupropion XL", 300.0),
            ("duloxetine", 60.0),
            ("mirtazapine", 30.0),
            ("vortioxetine", 20.0),
            ("fluoxetine", 40.0),
        ];
        let n_trials = match (d.indication, d.route) {
            (Indication::Depression, Route::IntranasalEsketamine) => rng.random_range(2..=4),
            (Indication::Depression, _) => rng.random_range(1..=4),
            _ => rng.random_range(0..=2),
        };
        let mut order: Vec<usize> = (0..drugs.len()).collect();
        order.shuffle(rng);
        for (k, &di) in order.iter().take(n_trials).enumerate() {
            let (drug, dose) = drugs[di];
            let must_fail = d.route == Route::IntranasalEsketamine && k < 2;
            let outcome = if must_fail || rng.random_bool(0.8) {
                if rng.random_bool(0.6) { TrialOutcome::NoResponse } else { TrialOutcome::PartialResponse }
            } else {
                TrialOutcome::Intolerance
            };
            let weeks =
                if outcome == TrialOutcome::Intolerance { rng.random_range(1..=3) } else { rng.random_range(6..=16) };
            trials.push(AntidepressantTrial {
                drug: drug.into(),
                daily_dose_mg: Some(Milligrams(dose)),
                weeks,
                adequate: outcome != TrialOutcome::Intolerance,
                outcome,
                current_episode: true,
            });
        }
        let failures = trials.iter().filter(|t| t.counts_as_failure()).count() as u32;
        let maudsley = (d.indication == Indication::Depression && failures >= 1).then(|| MaudsleyInput {
            episode_duration_months: rng.random_range(6..=60),
            severity: if traj.baseline >= 20.0 { MsmSeverity::SevereWithoutPsychosis } else { MsmSeverity::Moderate },
            antidepressant_failures: failures,
            augmentation_used: rng.random_bool(0.4),
            ect_used: rng.random_bool(0.05),
        });
        let mut cautions: Vec<String> = Vec::new();
        // Medications and allergies as records: the interaction cautions come from the list.
        let med = |drug: &str, dose: &str| NewMedication {
            drug: drug.into(),
            dose: Some(dose.into()),
            daily_dose_mg: None,
            started_on: Some(day(intake - 200)),
        };
        let mut medications: Vec<NewMedication> = Vec::new();
        let mut allergies: Vec<NewAllergy> = Vec::new();
        // A negative pregnancy test at intake for some women, so the eligibility screen reads it.
        let pregnancy = (sex == Sex::Female && seq % 4 == 0).then(|| NewPregnancyStatus {
            status: PregnancyStatus::NotPregnant,
            recorded_on: day(intake),
            note: Some("urine test negative".into()),
        });
        if rng.random_bool(0.2) {
            medications.push(med("lorazepam", "0.5 mg at night as needed"));
        }
        if seq % 3 == 0 && d.indication != Indication::ChronicPain {
            medications.push(med("escitalopram", "10 mg daily"));
        }
        if seq % 11 == 0 {
            medications.push(med("methylphenidate", "10 mg twice daily"));
        }
        if seq % 7 == 0 {
            allergies.push(NewAllergy {
                substance: "penicillin".into(),
                reaction: Some("rash".into()),
                severity: AllergySeverity::Mild,
            });
        }
        if rng.random_bool(0.06) {
            cautions.push("substance_use_disorder".into());
        }
        let mut assessments = Vec::new();
        match d.special {
            Special::EsketamineHardStop => assessments.push(NewEligibilityAssessment {
                route: Route::IntranasalEsketamine,
                maudsley,
                contraindications_present: vec!["hypersensitivity".into()],
            }),
            Special::RacemicHardStop => {
                assessments.push(NewEligibilityAssessment {
                    route: Route::IvRacemic,
                    maudsley,
                    contraindications_present: vec![],
                });
                medications.retain(|m| m.drug != "lorazepam");
                medications.push(med("theophylline", "300 mg twice daily"));
            }
            _ => {}
        }
        assessments.push(NewEligibilityAssessment { route: d.route, maudsley, contraindications_present: cautions });

        // Courses and sessions.
        let label = |r: Route| match (r, d.indication) {
            (Route::IvRacemic, Indication::ChronicPain) => "IV ketamine 0.35 mg/kg/h over 4 h, daily x5",
            (Route::IvRacemic, _) => "IV ketamine 0.5 mg/kg over 40 min, 6 infusions",
            (Route::ImRacemic, _) => "IM ketamine 0.5 mg/kg, 6 sessions",
            (Route::IntranasalEsketamine, _) => "Esketamine label induction (twice weekly, weeks 1-4)",
            (Route::SublingualRacemic, _) => "Sublingual ketamine at home, twice weekly for 4 weeks",
            (Route::OralRacemic, _) => "Oral ketamine at home, twice weekly for 4 weeks",
        };
        let mut courses = vec![NewCourse {
            route: d.route,
            phase: Phase::Induction,
            indication: None,
            planned_sessions: ind.len() as u32,
            start_date: day(first),
            protocol: Some(label(d.route).into()),
        }];
        if d.maintenance {
            let start = maintenance.first().copied().unwrap_or(0);
            courses.push(NewCourse {
                route: d.route,
                phase: Phase::Maintenance,
                indication: None,
                planned_sessions: (maintenance.len() as u32 + 6).clamp(6, 104),
                start_date: day(start),
                protocol: Some(match d.route {
                    Route::IntranasalEsketamine => {
                        "Esketamine label maintenance (weekly weeks 5-8, then every 1-2 weeks)".into()
                    }
                    r if r.is_home() => "At-home maintenance, weekly to fortnightly".into(),
                    _ => "Maintenance infusions, every 3-5 weeks as needed".into(),
                }),
            });
        }
        let high_esk = rng.random_bool(0.61);
        let titrate = rng.random_bool(0.25) && matches!(d.arch, Arch::Partial | Arch::NonResponse);
        let dose_for = |index: usize| -> f64 {
            let mgkg = |x: f64| (weight * x * 2.0).round() / 2.0;
            match (d.route, d.indication) {
                (Route::IvRacemic, Indication::ChronicPain) => mgkg(0.35 * 4.0),
                (Route::IvRacemic, _) => mgkg(if titrate && index >= 3 { 0.75 } else { 0.5 }),
                (Route::ImRacemic, _) => mgkg(if titrate && index >= 3 { 0.75 } else { 0.5 }),
                (Route::IntranasalEsketamine, _) if index == 0 => {
                    if age >= 65 {
                        28.0
                    } else {
                        56.0
                    }
                }
                (Route::IntranasalEsketamine, _) => {
                    if age >= 65 {
                        56.0
                    } else if high_esk {
                        84.0
                    } else {
                        56.0
                    }
                }
                (Route::SublingualRacemic, _) => {
                    if index == 0 {
                        150.0
                    } else {
                        200.0
                    }
                }
                (Route::OralRacemic, _) => {
                    if index == 0 {
                        100.0
                    } else {
                        150.0
                    }
                }
            }
        };
        let mut sessions = Vec::new();
        let mut check_ins = Vec::new();
        let n_induction = induction.len();
        for (k, &(x, when)) in points.iter().enumerate() {
            let answers = std::mem::take(&mut answers_at[k]);
            match when {
                When::Session(i) => {
                    let (dayx, slot) = session_days[i];
                    let at_home = d.route.is_home() && i > 0;
                    let (chair, start) = if at_home {
                        (None, clock.at(day(dayx), rng.random_range(600..=1140)))
                    } else {
                        let n = slots.entry((d.site, day(dayx))).or_insert(0);
                        let chair = *n % site.chairs.len();
                        let start = clock.at(
                            day(dayx),
                            8 * 60 + 150 * (*n / site.chairs.len()) as i64 + 5 * rng.random_range(0..=4),
                        );
                        *n += 1;
                        (Some(chair), start)
                    };
                    let status = if slot == 0 && i + 1 == n_induction {
                        Some(if d.special == Special::SeriousAe {
                            CourseStatus::Stopped
                        } else {
                            CourseStatus::Completed
                        })
                    } else {
                        None
                    };
                    let event = if d.special == Special::SeriousAe && i + 1 == n_induction {
                        SessionEvent::SeriousHypertensiveEvent
                    } else {
                        // §4.1 [S6]: 8-19 % of esketamine patients had a ≥40/25 mmHg rise in weeks 1-4.
                        let spike = match d.route {
                            Route::IntranasalEsketamine if i < 8 => 0.02,
                            Route::IntranasalEsketamine | Route::IvRacemic | Route::ImRacemic => 0.01,
                            _ => 0.005,
                        };
                        if rng.random_bool(spike) { SessionEvent::BpSpike } else { SessionEvent::None }
                    };
                    all_sessions.push((pi, sessions.len()));
                    sessions.push((
                        slot,
                        chair,
                        SessionSpec {
                            course_id: CourseId(0),
                            route: d.route,
                            chair: None,
                            scheduled_for: start,
                            dose_mg: dose_for(i),
                            dose_minutes: if d.indication == Indication::ChronicPain { 240 } else { 0 },
                            index: i as u32,
                            at_home,
                            event,
                            questionnaires: answers,
                            acknowledged_by: Some(if at_home {
                                site.prescriber.to_string()
                            } else {
                                site.nurse.to_string()
                            }),
                            course_status_after: status,
                        },
                    ));
                }
                When::Intake | When::CheckIn => {
                    let (time, by) = if when == When::Intake {
                        (clock.at(day(x), 10 * 60 + rng.random_range(0..=90)), CompletedBy::Patient)
                    } else {
                        (clock.at(day(x), rng.random_range(18 * 60..=21 * 60 + 30)), CompletedBy::Patient)
                    };
                    let open = d.special == Special::OpenItem9 && x == -1 && when == When::CheckIn;
                    let slot = if d.special == Special::SeriousAe && x > end { Some(0) } else { Some(slot_of(x)) };
                    for (code, a) in answers {
                        check_ins.push(PlannedCheckIn {
                            slot,
                            response: HistoricalResponse { instrument: code.into(), answers: a, completed_at: time, completed_by: by },
                            ack: (!open).then(|| AlertAcknowledgement {
                                by: site.prescriber.into(),
                                after: mins(rng.random_range(90..=300)),
                                note: Some(
                                    "Same-day phone review: passive thoughts, no plan or intent; safety plan reviewed; crisis line 988 reminded.".into(),
                                ),
                            }),
                        });
                    }
                }
            }
        }

        // Today's board.
        let board = d.board.map(|role| {
            let maint_level = prim.last().map_or(6, |p| p.1).min(traj.baseline as i32 / 2).max(0);
            let phq = if primary == "phq9" { maint_level } else { rng.random_range(4..=9) };
            let phq9 = phq9_answers(rng, phq, 0);
            let index = session_days.len() as u32;
            let chair = match role {
                BoardRole::DischargedToday => 0,
                BoardRole::Monitoring => 1,
                BoardRole::CheckedIn => 2,
                BoardRole::Scheduled(m) if m < 60 => 3,
                BoardRole::Scheduled(m) if m < 150 => 4 % site.chairs.len(),
                BoardRole::Scheduled(_) => 0,
            };
            let round5 = |t: OffsetDateTime| {
                t - Duration::seconds(t.unix_timestamp() % 300) - Duration::nanoseconds(t.nanosecond() as i64)
            };
            let (scheduled_for, import) = match role {
                BoardRole::DischargedToday | BoardRole::Monitoring => {
                    let ago = if role == BoardRole::DischargedToday { 300 } else { 80 };
                    let start = round5(now - mins(ago));
                    let spec = SessionSpec {
                        course_id: CourseId(0),
                        route: d.route,
                        chair: None,
                        scheduled_for: start,
                        dose_mg: dose_for(index as usize),
                        dose_minutes: 0,
                        index,
                        at_home: false,
                        event: if role == BoardRole::Monitoring && d.site == 0 {
                            SessionEvent::BpSpike
                        } else {
                            SessionEvent::None
                        },
                        questionnaires: vec![("phq9", phq9.clone())],
                        acknowledged_by: Some(site.nurse.to_string()),
                        course_status_after: None,
                    };
                    let full = synth_session(rng, &phys, spec);
                    let s = if role == BoardRole::Monitoring { in_progress(full, now) } else { full };
                    (start, Some(s))
                }
                BoardRole::CheckedIn => (round5(now - mins(10)), None),
                BoardRole::Scheduled(m) => (round5(now + mins(m)), None),
            };
            BoardSession { role, chair, scheduled_for, dose_mg: dose_for(index as usize), phq9, import }
        });

        patients.push((
            PatientPlan {
                site: d.site,
                new,
                weights,
                trials,
                medications,
                allergies,
                pregnancy,
                assessments,
                courses,
                sessions: Vec::new(),
                check_ins,
                board,
            },
            sessions,
            phys,
        ));
    }

    // --- Events on chosen sessions (non-serious AEs, stops, a desaturation) -------------------
    let mut free: Vec<(usize, usize)> = all_sessions
        .iter()
        .copied()
        .filter(|&(p, s)| {
            let spec = &patients[p].1[s].2;
            !spec.at_home && spec.event == SessionEvent::None && spec.index > 0 && spec.course_status_after.is_none()
        })
        .collect();
    free.shuffle(rng);
    let events = [
        SessionEvent::Ae(AeKind::Vomiting),
        SessionEvent::Ae(AeKind::ProlongedDissociation),
        SessionEvent::Ae(AeKind::Panic),
        SessionEvent::Ae(AeKind::NearFall),
        SessionEvent::Ae(AeKind::Headache),
        SessionEvent::Ae(AeKind::Vomiting),
        SessionEvent::PreDoseBpStop,
        SessionEvent::PreDoseBpStop,
        SessionEvent::Unwell,
        SessionEvent::Desaturation,
    ];
    let mut ev = events.iter();
    for &(p, s) in &free {
        let route = patients[p].1[s].2.route;
        let Some(&e) = ev.clone().next() else { break };
        if e == SessionEvent::Desaturation && route != Route::IvRacemic {
            continue;
        }
        ev.next();
        patients[p].1[s].2.event = e;
    }

    // --- Synthesise the sessions -----------------------------------------------------------
    let mut out = Vec::with_capacity(patients.len());
    for (mut pp, specs, phys) in patients {
        for (slot, chair, spec) in specs {
            let session = synth_session(rng, &phys, spec);
            pp.sessions.push(PlannedSession { slot, chair, session });
        }
        out.push(pp);
    }
    Plan { patients: out }
}

// =======================================================================================
// Writing the plan
// =======================================================================================

async fn build(store: &Store, seed: u64) -> anyhow::Result<()> {
    let actor = Actor::system();
    let now = store.now();
    let plan = plan(seed, now);

    // Sites and chairs.
    let mut site_ids = Vec::new();
    let mut chairs: Vec<Vec<ChairId>> = Vec::new();
    for def in &SITES {
        let site = store
            .create_site(
                &actor,
                NewSite {
                    code: def.code.into(),
                    name: def.name.into(),
                    time_zone: def.zone.into(),
                    crisis_line: "988".into(),
                },
                def.chairs.iter().map(|c| c.to_string()).collect(),
            )
            .await
            .with_context(|| format!("creating site {}", def.name))?;
        // Demo values (see DEMO_VITALS_WITHIN_MINUTES): a real site starts without them.
        store
            .set_site_discharge_settings(&actor, site.id, demo_discharge_settings())
            .await
            .with_context(|| format!("setting the demo discharge settings of {}", def.name))?;
        let mut cs = store.list_chairs(&actor, site.id).await?;
        cs.sort_by_key(|c| def.chairs.iter().position(|n| *n == c.name));
        chairs.push(cs.into_iter().map(|c| c.id).collect());
        site_ids.push(site.id);
    }

    // Patients, then their intake, then courses: each stage's writes run together.
    let patients = try_join_all(plan.patients.iter().map(|p| {
        let mut new = p.new.clone();
        new.site_id = site_ids[p.site];
        store.create_patient(&actor, new)
    }))
    .await
    .context("creating patients")?;
    try_join_all(plan.patients.iter().zip(&patients).map(|(p, pat)| {
        let actor = &actor;
        async move {
            for w in &p.weights {
                store.add_weight(actor, pat.id, w.clone()).await?;
            }
            for t in &p.trials {
                store.add_antidepressant_trial(actor, pat.id, t.clone()).await?;
            }
            for m in &p.medications {
                store.add_medication(actor, pat.id, m.clone()).await?;
            }
            for a in &p.allergies {
                store.add_allergy(actor, pat.id, a.clone()).await?;
            }
            if let Some(s) = &p.pregnancy {
                store.record_pregnancy_status(actor, pat.id, s.clone()).await?;
            }
            for a in &p.assessments {
                store.assess_eligibility(actor, pat.id, a.clone()).await?;
            }
            Ok::<(), keta_store::StoreError>(())
        }
    }))
    .await
    .context("recording intake")?;
    let courses: Vec<Vec<CourseId>> = try_join_all(plan.patients.iter().zip(&patients).map(|(p, pat)| {
        let actor = &actor;
        async move {
            let mut ids = Vec::new();
            for c in &p.courses {
                ids.push(store.create_course(actor, pat.id, c.clone()).await?.id);
            }
            Ok::<_, keta_store::StoreError>(ids)
        }
    }))
    .await
    .context("creating courses")?;

    // Consent (and REMS enrolment for esketamine) for every route a patient is treated by,
    // signed on the tablet and countersigned, so today's sessions can start (issue 12).
    try_join_all(plan.patients.iter().zip(&patients).map(|(p, pat)| {
        let routes: Vec<(Route, Date)> = p.courses.iter().map(|c| (c.route, c.start_date)).collect();
        consent_demo_patient(store, pat, routes, now)
    }))
    .await
    .context("recording consents")?;

    // History: one import transaction per patient for sessions, one for check-ins.
    let mut history = Vec::new();
    let mut check_ins = Vec::new();
    for ((p, pat), ids) in plan.patients.iter().zip(&patients).zip(&courses) {
        let mut batch: Vec<HistoricalSession> = p
            .sessions
            .iter()
            .map(|ps| {
                let mut s = ps.session.clone();
                s.course_id = ids[ps.slot];
                s.chair_id = ps.chair.map(|c| chairs[p.site][c]);
                s
            })
            .collect();
        batch.sort_by_key(|s| s.scheduled_for);
        history.push(batch);
        check_ins.push(
            p.check_ins
                .iter()
                .map(|c| HistoricalCheckIn {
                    patient_id: pat.id,
                    course_id: c.slot.map(|s| ids[s]),
                    response: c.response.clone(),
                    acknowledge_alerts: c.ack.clone(),
                })
                .collect::<Vec<_>>(),
        );
    }
    let imports = history.into_iter().map(|b| store.import_history(&actor, b));
    let responses = check_ins.into_iter().map(|b| store.import_responses(&actor, b));
    let (a, b) = futures::join!(try_join_all(imports), try_join_all(responses));
    a.context("importing session history")?;
    b.context("importing check-ins")?;

    // Today's board.
    try_join_all(plan.patients.iter().zip(&patients).zip(&courses).filter_map(|((p, pat), ids)| {
        let b = p.board.as_ref()?;
        let course = *ids.last().expect("a course");
        let chair = chairs[p.site][b.chair % chairs[p.site].len()];
        let actor = &actor;
        Some(async move {
            if let Some(s) = &b.import {
                let mut s = s.clone();
                s.course_id = course;
                s.chair_id = Some(chair);
                store.import_history(actor, vec![s]).await?;
                return Ok::<(), keta_store::StoreError>(());
            }
            let session = store
                .create_session(
                    actor,
                    course,
                    NewSession {
                        scheduled_for: b.scheduled_for,
                        chair_id: Some(chair),
                        planned_dose_mg: Some(Milligrams(b.dose_mg)),
                    },
                )
                .await?;
            if b.role == BoardRole::CheckedIn {
                store
                    .submit_response(
                        actor,
                        pat.id,
                        NewQuestionnaireResponse {
                            instrument: "phq9".into(),
                            answers: b.phq9.clone(),
                            course_id: Some(course),
                            session_id: Some(session.id),
                            completed_at: Some(now - mins(14)),
                            completed_by: CompletedBy::Patient,
                        },
                    )
                    .await?;
                // Scheduled ten minutes ago, which just after local midnight is yesterday: the
                // reason is recorded only then.
                let why = "Demo: scheduled just before local midnight";
                store.act_on_session_confirmed(actor, session.id, SessionAction::CheckIn, Some(why.into())).await?;
            }
            Ok(())
        })
    }))
    .await
    .context("scheduling today's sessions")?;
    Ok(())
}

/// Signs every consent a demo patient's courses need: the treatment consent per route and,
/// for esketamine, the REMS enrolment (dated the course start or yesterday, whichever is
/// earlier; the REMS id is synthetic), recorded by the demo nurse and countersigned by the
/// demo prescriber. Three patients in four also consent to research use of their
/// de-identified data (the research export's population).
async fn consent_demo_patient(
    store: &Store,
    pat: &keta_domain::patient::Patient,
    mut routes: Vec<(Route, Date)>,
    now: OffsetDateTime,
) -> Result<(), keta_store::StoreError> {
    use keta_domain::access::Role;
    use keta_domain::consent::{NewConsent, rems_form, treatment_form};
    use keta_store::SiteScope;
    let nurse = Actor::staff("rn.demo", Role::Nurse, SiteScope::All);
    let prescriber = Actor::staff("dr.demo", Role::Prescriber, SiteScope::All);
    routes.sort_by_key(|(r, d)| (r.as_str(), *d));
    routes.dedup_by_key(|(r, _)| *r);
    let name = format!("{} {}", pat.given_name, pat.family_name);
    // A synthetic signature: two strokes that differ by patient.
    let k = pat.id.0 % 97;
    let signature = format!(
        "M 400 {} L 1800 900 L 3200 {} L 4600 700 M 5200 1500 L {} 1300",
        1800 + k * 4,
        2200 - k * 3,
        7000 + k * 20
    );
    let yesterday = (now - Duration::days(1)).date();
    let mut all_forms = Vec::new();
    for (route, start) in routes {
        all_forms.push((treatment_form(route), None));
        if route == Route::IntranasalEsketamine {
            all_forms.push((rems_form(), Some(start.min(yesterday))));
        }
    }
    if pat.id.0 % 4 != 0 {
        all_forms.push((
            keta_domain::consent::current_form("research_data_sharing").expect("the research consent form ships"),
            None,
        ));
    }
    for (form, enrolled) in all_forms {
        let new = NewConsent {
            form_key: form.key.clone(),
            form_version: form.version,
            patient_typed_name: name.clone(),
            patient_signature_svg: signature.clone(),
            rems_patient_id: enrolled.map(|_| format!("DEMO-{:06}", pat.id.0)),
            rems_enrolled_on: enrolled,
        };
        let rec = store.record_consent(&nurse, pat.id, new).await?;
        store.countersign_consent(&prescriber, rec.id).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use keta_domain::records::AlertLevel;
    use keta_domain::session::SessionState;
    use keta_store::alerts::AlertQuery;
    use keta_store::params;
    use time::macros::datetime;

    use super::*;

    async fn fresh(dir: &tempfile::TempDir, name: &str, now: OffsetDateTime) -> Store {
        let url = format!("sqlite://{}", dir.path().join(name).display());
        Store::open_with_clock(&url, Arc::new(move || now)).await.expect("open")
    }

    /// Everything clinically meaningful, without database ids.
    async fn fingerprint(store: &Store) -> (Vec<String>, Vec<String>, String) {
        keta_store::testing::read(&store, |c| {
                let patients = c
                    .query("SELECT s.code, p.mrn, p.given_name, p.family_name, p.date_of_birth, p.indication FROM patients p JOIN sites s ON s.id = p.site_id ORDER BY p.mrn", &[])?
                    .iter()
                    .map(|r| Ok(format!("{} {} {} {} {} {}", r.text("code")?, r.text("mrn")?, r.text("given_name")?, r.text("family_name")?, r.text("date_of_birth")?, r.text("indication")?)))
                    .collect::<keta_store::Result<Vec<_>>>()?;
                let scores = c
                    .query(
                        "SELECT p.mrn, q.instrument, q.completed_at, q.total FROM questionnaire_responses q JOIN patients p ON p.id = q.patient_id
                         ORDER BY p.mrn, q.completed_at, q.instrument, q.total",
                        &[],
                    )?
                    .iter()
                    .map(|r| Ok(format!("{} {} {} {:?}", r.text("mrn")?, r.text("instrument")?, r.i64("completed_at")?, r.opt_i64("total")?)))
                    .collect::<keta_store::Result<Vec<_>>>()?;
                let v = c.query_opt("SELECT count(*) AS n, sum(systolic_mmhg) AS sum_systolic_mmhg, sum(heart_rate_bpm) AS sum_heart_rate_bpm, count(DISTINCT session_id) AS count_session_id FROM vitals", &[])?.expect("row");
                Ok((patients, scores, format!("{} {:?} {:?} {}", v.i64("n")?, v.opt_f64("sum_systolic_mmhg")?, v.opt_f64("sum_heart_rate_bpm")?, v.i64("count_session_id")?)))
            })
            .await
            .expect("read")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn same_seed_same_clinic_with_every_feature() {
        let now = datetime!(2026-11-27 16:20 UTC);
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (fresh(&dir, "a.db", now).await, fresh(&dir, "b.db", now).await);
        let started = std::time::Instant::now();
        let summary = ensure(&a, DEFAULT_SEED).await.unwrap();
        eprintln!("demo built in {:?}: {summary}", started.elapsed());
        ensure(&b, DEFAULT_SEED).await.unwrap();
        let (fa, fb) = (fingerprint(&a).await, fingerprint(&b).await);
        assert_eq!(fa.0.len(), 60);
        assert!(fa.1.len() > 1000, "{} responses", fa.1.len());
        assert_eq!(fa, fb, "the same seed must give the same clinic");
        // Reusing the database leaves it as it is.
        assert_eq!(ensure(&a, 1).await.unwrap(), summary);
        assert!(summary.starts_with("60 patients at 2 sites (Austin, Denver), "), "{summary}");

        let all = Actor::system();
        let sites = a.list_sites(&all).await.unwrap();
        assert_eq!(sites.len(), 2);
        let (routes, serious) = keta_store::testing::read(&a, |c| {
                let routes = c
                    .query("SELECT DISTINCT route FROM courses ORDER BY route", &[])?
                    .iter()
                    .map(|r| r.text("route"))
                    .collect::<keta_store::Result<Vec<_>>>()?;
                let serious = c
                    .query_opt("SELECT count(*) AS n FROM adverse_events WHERE serious = $1", params![true])?
                    .expect("row")
                    .i64("n")?;
                Ok((routes, serious))
            })
            .await
            .unwrap();
        for r in ["im_racemic", "intranasal_esketamine", "iv_racemic", "sublingual_racemic"] {
            assert!(routes.iter().any(|x| x == r), "{r} missing from {routes:?}");
        }
        assert_eq!(serious, 1, "exactly one serious adverse event");
        let open =
            a.list_alerts(&all, AlertQuery { open_only: true, limit: 1000, ..Default::default() }).await.unwrap();
        assert!(
            open.iter().any(|x| x.rule == "phq9_phq9_item9" && x.level == AlertLevel::Urgent && x.session_id.is_none()),
            "{open:?}"
        );
        let acked = a.list_alerts(&all, AlertQuery { limit: 1000, ..Default::default() }).await.unwrap();
        assert!(
            acked.iter().any(|x| x.acknowledged_at.is_some()
                && (x.rule.starts_with("pre_dose_bp") || x.rule == "bp_rise_from_baseline"))
        );

        // Issue 18: every discharged session's record satisfies the discharge rules, judged at
        // the time it was discharged with the site's (demo) settings.
        let mut judged = 0;
        for site in &sites {
            let settings = a.site_discharge_settings(&all, site.id).await.unwrap();
            assert_eq!(settings, demo_discharge_settings());
            let sessions =
                a.sessions_at_site(&all, site.id, now - Duration::days(400), now + Duration::days(60)).await.unwrap();
            for x in sessions.iter().filter(|x| x.state == SessionState::Discharged) {
                let vitals = a.list_vitals(&all, x.id).await.unwrap();
                let obs = a.list_observations(&all, x.id).await.unwrap();
                let responses: Vec<_> = a
                    .list_responses(&all, x.patient_id, None)
                    .await
                    .unwrap()
                    .into_iter()
                    .filter(|r| r.session_id == Some(x.id))
                    .collect();
                let record = keta_domain::discharge::DischargeRecord {
                    rules: keta_domain::discharge::DischargeRules::builtin(),
                    safety: keta_domain::alerts::SafetyRules::builtin(),
                    settings: &settings,
                    vitals: &vitals,
                    observations: &obs,
                    responses: &responses,
                    bp_decisions: &[],
                };
                let blockers = record.blockers(x.dose_started_at.unwrap(), x.discharged_at.unwrap());
                assert!(blockers.is_empty(), "session {}: {blockers:?}", x.id);
                judged += 1;
            }
        }
        assert!(judged > 500, "{judged} discharged sessions judged");

        // Today's board at each site.
        for s in &sites {
            let today =
                a.sessions_at_site(&all, s.id, now - Duration::hours(8), now + Duration::hours(8)).await.unwrap();
            let states: Vec<SessionState> = today.iter().map(|x| x.state).collect();
            for want in
                [SessionState::Scheduled, SessionState::CheckedIn, SessionState::Monitoring, SessionState::Discharged]
            {
                assert!(states.contains(&want), "{}: {want:?} missing from {states:?}", s.name);
            }
        }

        // Outcomes: responders and non-responders, at rates like the §5 cohorts.
        let ids: Vec<i64> = keta_store::testing::read(&a, |c| c.query("SELECT id FROM patients ORDER BY id", &[])?.iter().map(|r| r.i64("id")).collect())
            .await
            .unwrap();
        let (mut n, mut responded, mut remitted, mut relapsed, mut worse) = (0, 0, 0, 0, 0);
        for id in ids {
            let chart = a.patient_chart(&all, keta_domain::ids::PatientId(id)).await.unwrap();
            let Some(induction) = chart.courses.iter().find(|c| c.phase == Phase::Induction) else { continue };
            for o in chart.outcomes.iter().filter(|o| o.course_id == induction.id && o.outcome.instrument == "phq9") {
                if chart.patient.indication != Indication::Depression {
                    continue;
                }
                n += 1;
                responded += usize::from(o.outcome.responded == Some(true));
                remitted += usize::from(o.outcome.remitted == Some(true));
                relapsed += usize::from(o.outcome.relapsed == Some(true));
                worse += usize::from(o.outcome.change > 0);
            }
        }
        let rate = |k: usize| k as f64 / n as f64;
        eprintln!(
            "depression induction: n={n} response {:.2} remission {:.2} relapsed {relapsed} worse {worse}",
            rate(responded),
            rate(remitted)
        );
        assert_eq!(n, 46);
        assert!((0.5..0.65).contains(&rate(responded)), "response {}", rate(responded));
        assert!((0.25..0.4).contains(&rate(remitted)), "remission {}", rate(remitted));
        assert!(relapsed >= 3 && worse >= 2 && responded < n);
    }
}
