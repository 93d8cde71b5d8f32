//! Synthesis: one session's vitals, observations, side effects and questionnaires drawn from a
//! patient's physiology (shared with `keta bench`), and the name lists.

use rand::Rng;
use time::{Duration, OffsetDateTime};

use keta_domain::alerts::SafetyRules;
use keta_domain::course::{CourseStatus, Route};
use keta_domain::ids::{ChairId, CourseId};
use keta_domain::records::{CompletedBy, VitalsSource};
use keta_domain::session::{AeSeverity, NewAdverseEvent, ObservationBody, SessionAction};
use keta_domain::units::{BeatsPerMinute, BreathsPerMinute, Milligrams, Mmhg, Percent};
use keta_domain::vitals::VitalSigns;
use keta_store::import::{
    AlertAcknowledgement, HistoricalObservation, HistoricalResponse, HistoricalSession, HistoricalVitals, SessionStep,
};

/// A normal draw (Box-Muller); rand's distributions crate is not a dependency.
pub(crate) fn normal<R: Rng + ?Sized>(rng: &mut R, mean: f64, sd: f64) -> f64 {
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random();
    mean + sd * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

pub(super) fn mins(m: i64) -> Duration {
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
pub(super) fn bp_shape(route: Route, t: f64, dose_minutes: f64) -> f64 {
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

pub(super) fn mean_bp_rise(route: Route, dose_minutes: f64) -> f64 {
    match route {
        Route::IvRacemic if dose_minutes > 60.0 => 8.0,
        Route::IvRacemic => 14.0,
        Route::ImRacemic => 12.0,
        Route::IntranasalEsketamine => 16.0,
        Route::OralRacemic | Route::SublingualRacemic => 6.0,
    }
}

pub(super) struct Reading {
    pub(super) sys: f64,
    pub(super) dia: f64,
    pub(super) hr: f64,
    pub(super) spo2: f64,
    pub(super) rr: f64,
}

impl Reading {
    pub(super) fn vitals(&self) -> VitalSigns {
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
pub(super) fn side_effect_rates(route: Route) -> &'static [(&'static str, f64)] {
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
/// One session told in time order: check-in, pre-dose, dose, readings, sedation and
/// dissociation, side effects, discharge. Each step draws from the RNG after the one before
/// (the demo's figures rest on that order), reading the times and baseline the earlier steps set.
pub(crate) fn synth_session<R: Rng + ?Sized>(rng: &mut R, phys: &Physiology, spec: SessionSpec) -> HistoricalSession {
    let mut s = HistoricalSession::new(spec.course_id, spec.scheduled_for);
    s.chair_id = spec.chair;
    s.planned_dose_mg = Some(Milligrams(spec.dose_mg));
    s.course_status_after = spec.course_status_after;
    s.acknowledge_alerts = spec.acknowledged_by.map(|by| AlertAcknowledgement {
        by,
        after: mins(rng.random_range(2..=9)),
        note: Some("Re-checked and reviewed with the treating clinician; managed per protocol.".into()),
    });
    let check_in = spec.scheduled_for + mins(rng.random_range(-10..=8));
    let pre = check_in + mins(rng.random_range(4..=9));
    let dose_start = pre + mins(rng.random_range(8..=14));
    let dose_minutes = dose_minutes(spec.route, spec.dose_mg, spec.dose_minutes);
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
        _ => (mean_bp_rise(spec.route, dose_minutes as f64) * phys.reactivity * rng.random_range(0.6..1.4)).max(0.0),
    };
    let d = Drawn {
        route: spec.route,
        event: spec.event,
        index: spec.index,
        phys,
        source: if spec.at_home { VitalsSource::Manual } else { VitalsSource::Monitor },
        decay: 0.5 + 0.5 * 0.8f64.powi(spec.index as i32),
        check_in,
        pre,
        dose_start,
        dose_minutes,
        base_sys,
        base_dia,
        base_hr,
        amp,
    };
    match spec.event {
        SessionEvent::Unwell => return d.stopped_unwell(rng, s),
        SessionEvent::PreDoseBpStop => return d.stopped_before_the_dose(rng, s),
        _ => {}
    }
    s.steps.push(SessionStep::new(SessionAction::StartPreDoseChecks, pre));
    d.push_vitals(&mut s, dose_start - mins(6), &d.reading(rng, 0.0), VitalsSource::Manual);
    s.steps.push(SessionStep::new(SessionAction::StartDose, dose_start));
    if spec.event == SessionEvent::SeriousHypertensiveEvent {
        return d.stopped_for_severe_hypertension(s);
    }
    s.steps.push(SessionStep::new(SessionAction::EndDose, dose_start + mins(dose_minutes)));
    let last = d.post_dose_readings(rng, &mut s);
    let min_monitoring = SafetyRules::builtin().minimum_monitoring(spec.route).0;
    let mut discharge = dose_start + mins(last.max(min_monitoring) + rng.random_range(3..=10));
    if spec.event == SessionEvent::Ae(AeKind::ProlongedDissociation) {
        discharge += mins(35);
    }
    d.sedation_and_dissociation(rng, &mut s);
    d.side_effects(rng, &mut s, discharge);
    d.settled_for_discharge(&mut s, discharge);
    s
}

/// How long the dose takes on `route`, in minutes (an IV infusion's own length when given).
fn dose_minutes(route: Route, dose_mg: f64, infusion_minutes: i64) -> i64 {
    match route {
        Route::IvRacemic => {
            if infusion_minutes > 0 {
                infusion_minutes
            } else {
                40
            }
        }
        Route::ImRacemic => 1,
        Route::IntranasalEsketamine if dose_mg <= 28.0 => 1,
        // One device per 28 mg, 5 minutes apart (§2.3).
        Route::IntranasalEsketamine if dose_mg <= 56.0 => 6,
        Route::IntranasalEsketamine => 11,
        Route::SublingualRacemic => 10,
        Route::OralRacemic => 2,
    }
}

/// What one session's synthesis has drawn so far: its times and the patient's baseline that
/// day, read by every later step.
struct Drawn<'a> {
    route: Route,
    event: SessionEvent,
    index: u32,
    phys: &'a Physiology,
    source: VitalsSource,
    /// Side effects fade with repeated doses.
    decay: f64,
    check_in: OffsetDateTime,
    pre: OffsetDateTime,
    dose_start: OffsetDateTime,
    dose_minutes: i64,
    base_sys: f64,
    base_dia: f64,
    base_hr: f64,
    /// The BP rise at the peak of the response.
    amp: f64,
}

impl Drawn<'_> {
    /// A reading `t` minutes after the dose started.
    fn reading<R: Rng + ?Sized>(&self, rng: &mut R, t: f64) -> Reading {
        let f = bp_shape(self.route, t, self.dose_minutes as f64);
        Reading {
            sys: self.base_sys + self.amp * f + normal(rng, 0.0, 3.0),
            dia: self.base_dia + 0.55 * self.amp * f + normal(rng, 0.0, 2.0),
            hr: self.base_hr + 0.3 * self.amp * f + normal(rng, 0.0, 2.5),
            spo2: (self.phys.spo2 + normal(rng, 0.0, 0.6)).clamp(94.0, 100.0),
            rr: self.phys.rr + normal(rng, 0.0, 1.0),
        }
    }

    fn push_vitals(&self, s: &mut HistoricalSession, at: OffsetDateTime, r: &Reading, src: VitalsSource) {
        s.vitals.push(HistoricalVitals { taken_at: at, vitals: r.vitals(), source: src });
    }

    /// The patient arrived unwell: one reading, then the session is stopped undosed.
    fn stopped_unwell<R: Rng + ?Sized>(&self, rng: &mut R, mut s: HistoricalSession) -> HistoricalSession {
        let r = self.reading(rng, 0.0);
        self.push_vitals(&mut s, self.check_in + mins(4), &r, VitalsSource::Manual);
        s.steps.push(SessionStep::new(
            SessionAction::Stop {
                reason: "Patient arrived unwell (fever and cough); not dosed, session rescheduled.".into(),
            },
            self.check_in + mins(12),
        ));
        s
    }

    /// The pre-dose BP stays high on re-check: the dose is deferred.
    fn stopped_before_the_dose<R: Rng + ?Sized>(&self, rng: &mut R, mut s: HistoricalSession) -> HistoricalSession {
        let (pre, phys) = (self.pre, self.phys);
        s.steps.push(SessionStep::new(SessionAction::StartPreDoseChecks, pre));
        let high = Reading {
            sys: rng.random_range(160.0..170.0),
            dia: rng.random_range(98.0..104.0),
            hr: self.base_hr + 6.0,
            spo2: phys.spo2,
            rr: phys.rr,
        };
        self.push_vitals(&mut s, pre + mins(2), &high, VitalsSource::Manual);
        let again = Reading { sys: high.sys - 3.0, dia: high.dia - 2.0, ..high };
        self.push_vitals(&mut s, pre + mins(12), &again, VitalsSource::Manual);
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
        s
    }

    /// Severe hypertension with a sudden severe headache: the infusion is stopped and the
    /// patient transferred (a serious adverse event).
    fn stopped_for_severe_hypertension(&self, mut s: HistoricalSession) -> HistoricalSession {
        let (dose_start, phys) = (self.dose_start, self.phys);
        let baseline = s.vitals[0].vitals;
        let b = baseline.systolic_mmhg.map_or(140.0, |m| m.0);
        let d = baseline.diastolic_mmhg.map_or(88.0, |m| m.0);
        for (t, ds, dd) in [(5, 10.0, 6.0), (10, 20.0, 12.0), (15, 31.0, 18.0), (20, 44.0, 27.0)] {
            let r = Reading {
                sys: (b + ds).max(150.0 + ds),
                dia: (d + dd).max(92.0 + dd),
                hr: self.base_hr + 14.0,
                spo2: phys.spo2,
                rr: phys.rr + 2.0,
            };
            self.push_vitals(&mut s, dose_start + mins(t), &r, self.source);
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
        s
    }

    /// The post-dose readings the route's schedule asks for; returns the last one's minute.
    fn post_dose_readings<R: Rng + ?Sized>(&self, rng: &mut R, s: &mut HistoricalSession) -> i64 {
        let dose_minutes = self.dose_minutes;
        // Minutes after the dose started.
        let mut offsets: Vec<i64> = match self.route {
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
            let mut r = self.reading(rng, t as f64);
            if self.event == SessionEvent::Desaturation && t == 20 {
                r.spo2 = 90.0;
                r.rr = 9.0;
            }
            self.push_vitals(s, self.dose_start + mins(t), &r, self.source);
        }
        *offsets.last().unwrap_or(&0)
    }

    /// Sedation (MOAA/S) and dissociation (CADSS-6), clinician-rated.
    fn sedation_and_dissociation<R: Rng + ?Sized>(&self, rng: &mut R, s: &mut HistoricalSession) {
        let (route, dose_start, dose_minutes) = (self.route, self.dose_start, self.dose_minutes);
        let moaas_at: &[i64] = match route {
            Route::IvRacemic => &[15, 40, 60],
            Route::IntranasalEsketamine => &[20, 40, 90],
            Route::ImRacemic => &[10, 25],
            Route::OralRacemic | Route::SublingualRacemic => &[],
        };
        for &t in moaas_at {
            let p: f64 = rng.random();
            let score = if (self.event == SessionEvent::Desaturation && t <= 20) || p < 0.05 * self.decay {
                3
            } else if p < 0.3 * self.decay {
                4
            } else {
                5
            };
            s.observations.push(HistoricalObservation {
                observed_at: dose_start + mins(t),
                body: ObservationBody::Moaas { score },
            });
        }
        if self.event == SessionEvent::Desaturation {
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
                Route::IntranasalEsketamine => 2.0 + 9.0 * 0.85f64.powi(self.index as i32),
                Route::IvRacemic if dose_minutes > 60 => 3.0,
                Route::IvRacemic => 2.0 + 8.0 * 0.88f64.powi(self.index as i32),
                _ => 1.5 + 6.0 * 0.88f64.powi(self.index as i32),
            };
            let total = normal(rng, mean, 2.0).round().clamp(0.0, 24.0) as i32;
            s.responses.push(HistoricalResponse {
                instrument: "cadss6".into(),
                answers: answers_for(rng, "cadss6", total),
                completed_at: dose_start + mins(t),
                completed_by: CompletedBy::Staff,
            });
        }
    }

    /// Side effects before discharge (with an antiemetic after some nausea) and the session's
    /// adverse event, if it has one.
    fn side_effects<R: Rng + ?Sized>(&self, rng: &mut R, s: &mut HistoricalSession, discharge: OffsetDateTime) {
        let (route, dose_start) = (self.route, self.dose_start);
        let mut effects: Vec<&'static str> =
            side_effect_rates(route).iter().filter(|(_, p)| rng.random_bool(p * self.decay)).map(|(c, _)| *c).collect();
        let ae = match self.event {
            SessionEvent::Ae(kind) => {
                let (symptom, e) = adverse_event(kind, dose_start);
                if !effects.contains(&symptom) {
                    effects.push(symptom);
                }
                Some((symptom, e))
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
        if self.event == SessionEvent::BpSpike {
            s.note = Some(
                "BP rise around 40 min; re-checked, asymptomatic, settling by 90 min. No treatment needed.".into(),
            );
        }
    }

    /// Before leaving: the record shows what discharge is judged on: a full set of vitals back
    /// near the pre-dose baseline within the demo's vitals window, sedation resolved (MOAA/S 5)
    /// and dissociation resolved on CADSS-6 at or below the demo cut-off. Drawn without the
    /// random stream, so the rest of the demo clinic stays as it was.
    fn settled_for_discharge(&self, s: &mut HistoricalSession, discharge: OffsetDateTime) {
        let before = discharge - mins(2);
        let phys = self.phys;
        let settle = Reading {
            sys: self.base_sys.min(170.0),
            dia: self.base_dia.min(105.0),
            hr: self.base_hr,
            spo2: phys.spo2.clamp(95.0, 100.0),
            rr: phys.rr,
        };
        self.push_vitals(s, before, &settle, self.source);
        s.observations.push(HistoricalObservation { observed_at: before, body: ObservationBody::Moaas { score: 5 } });
        let settled = (self.index as i32) % (DEMO_DISSOCIATION_RESOLVED_AT_OR_BELOW + 1);
        s.responses.push(HistoricalResponse {
            instrument: "cadss6".into(),
            answers: (0..6).map(|i| Some(i32::from(i < settled))).collect(),
            completed_at: discharge - mins(1),
            completed_by: CompletedBy::Staff,
        });
        s.steps.push(SessionStep::new(SessionAction::Discharge, discharge));
    }
}

/// The side effect an adverse event of `kind` shows as, and its record (onset at the dose
/// start until the side effect is timed).
fn adverse_event(kind: AeKind, dose_start: OffsetDateTime) -> (&'static str, NewAdverseEvent) {
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
    let e = NewAdverseEvent {
        description: description.into(),
        severity,
        serious: false,
        action_taken: action.into(),
        outcome: outcome.into(),
        onset_at: dose_start,
    };
    (symptom, e)
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

pub(super) const GIVEN_F: &[&str] = &[
    "Ava", "Maya", "Grace", "Chloe", "Isabel", "Nora", "Leah", "Hannah", "Sofia", "Priya", "Mei", "Amara", "Lucia",
    "Rosa", "Elena", "Fatima", "Keiko", "Ingrid", "Naomi", "Tessa", "Yara", "Clara", "Joanna", "Ruth",
];
pub(super) const GIVEN_M: &[&str] = &[
    "Liam", "Noah", "Ethan", "Mateo", "Daniel", "Samuel", "Omar", "Kenji", "Arjun", "Lucas", "Elijah", "Caleb",
    "Marcus", "Tomas", "Jonah", "Felix", "Rafael", "Andre", "Theo", "Isaac", "Victor", "Wesley", "Hugo", "Dmitri",
];
pub(super) const FAMILY: &[&str] = &[
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
