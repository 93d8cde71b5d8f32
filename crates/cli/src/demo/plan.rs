//! The plan: the whole clinic drawn up front from one seeded RNG (who, the stories placed on
//! purpose, maintenance and today's board, each patient's records, then the session events).

use std::collections::HashMap;

use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use time::{Date, Duration, OffsetDateTime};

use keta_domain::course::{CourseStatus, NewCourse, Phase, Route};
use keta_domain::eligibility::{AntidepressantTrial, MaudsleyInput, MsmSeverity, TrialOutcome};
use keta_domain::ids::{CourseId, SiteId};
use keta_domain::medications::{AllergySeverity, NewAllergy, NewMedication, NewPregnancyStatus, PregnancyStatus};
use keta_domain::patient::{Indication, NewPatient, NewWeight, Sex, WeightType};
use keta_domain::records::{CompletedBy, NewEligibilityAssessment};
use keta_domain::units::{Kilograms, Milligrams};
use keta_store::import::{AlertAcknowledgement, HistoricalResponse, HistoricalSession};

use super::SiteClock;
use super::synthesis::*;

pub(super) struct SiteDef {
    pub(super) code: &'static str,
    pub(super) name: &'static str,
    pub(super) zone: &'static str,
    pub(super) chairs: &'static [&'static str],
    pub(super) area_code: &'static str,
    pub(super) nurse: &'static str,
    pub(super) prescriber: &'static str,
}

impl SiteDef {
    /// The site's wall clock, from its zone.
    pub(super) fn clock(&self) -> SiteClock {
        SiteClock::named(self.zone)
    }
}

pub(super) const SITES: [SiteDef; 2] = [
    SiteDef {
        code: "AUS",
        name: "Austin",
        zone: "America/Chicago",
        chairs: &["Chair 1", "Chair 2", "Chair 3", "Chair 4", "Chair 5", "Chair 6"],
        area_code: "512",
        nurse: "rn.alvarez",
        prescriber: "dr.nair",
    },
    SiteDef {
        code: "DEN",
        name: "Denver",
        zone: "America/Denver",
        chairs: &["Bay A", "Bay B", "Bay C", "Bay D", "Bay E"],
        area_code: "303",
        nurse: "rn.okafor",
        prescriber: "dr.lindqvist",
    },
];

/// The induction-course outcome a patient is drawn to have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Arch {
    Remit,
    Respond,
    /// Responds during induction, loses the response in follow-up without maintenance.
    Relapse,
    Partial,
    NonResponse,
    Worsen,
}

impl Arch {
    pub(super) fn responds(self) -> bool {
        matches!(self, Arch::Remit | Arch::Respond)
    }
}

/// A group of patients sharing route(s), indication and outcome quotas.
pub(super) struct Cohort {
    pub(super) routes: &'static [Route],
    pub(super) indication: Indication,
    pub(super) n: usize,
    pub(super) response: f64,
    pub(super) remission: f64,
    pub(super) worsen: f64,
    pub(super) relapse: f64,
}

pub(super) const COHORTS: &[Cohort] = &[
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
pub(super) fn archetypes(rng: &mut ChaCha8Rng, c: &Cohort) -> Vec<Arch> {
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
pub(super) enum BoardRole {
    DischargedToday,
    Monitoring,
    CheckedIn,
    Scheduled(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Special {
    None,
    /// Hypersensitivity to an excipient of the nasal spray: esketamine blocked; treated by IV.
    EsketamineHardStop,
    /// Takes theophylline: racemic ketamine blocked; treated with esketamine.
    RacemicHardStop,
    SeriousAe,
    /// Yesterday's check-in answers PHQ-9 item 9 positively; the urgent alert stays open.
    OpenItem9,
}

pub(super) struct PlannedSession {
    pub(super) slot: usize,
    pub(super) chair: Option<usize>,
    pub(super) session: HistoricalSession,
}

pub(super) struct PlannedCheckIn {
    pub(super) slot: Option<usize>,
    pub(super) response: HistoricalResponse,
    pub(super) ack: Option<AlertAcknowledgement>,
}

pub(super) struct BoardSession {
    pub(super) role: BoardRole,
    pub(super) chair: usize,
    pub(super) scheduled_for: OffsetDateTime,
    pub(super) dose_mg: f64,
    pub(super) phq9: Vec<Option<i32>>,
    /// Full or in-progress sessions to import (discharged today, in monitoring).
    pub(super) import: Option<HistoricalSession>,
}

pub(super) struct PatientPlan {
    pub(super) site: usize,
    pub(super) new: NewPatient,
    pub(super) weights: Vec<NewWeight>,
    pub(super) trials: Vec<AntidepressantTrial>,
    pub(super) medications: Vec<NewMedication>,
    pub(super) allergies: Vec<NewAllergy>,
    pub(super) pregnancy: Option<NewPregnancyStatus>,
    pub(super) assessments: Vec<NewEligibilityAssessment>,
    pub(super) courses: Vec<NewCourse>,
    pub(super) sessions: Vec<PlannedSession>,
    pub(super) check_ins: Vec<PlannedCheckIn>,
    pub(super) board: Option<BoardSession>,
}

pub(super) struct Plan {
    pub(super) patients: Vec<PatientPlan>,
}

/// One patient before their records are drawn.
pub(super) struct Draft {
    pub(super) route: Route,
    pub(super) indication: Indication,
    pub(super) arch: Arch,
    pub(super) site: usize,
    pub(super) maintenance: bool,
    pub(super) special: Special,
    pub(super) board: Option<BoardRole>,
}

pub(super) fn induction_days(route: Route, indication: Indication, rng: &mut ChaCha8Rng) -> Vec<i64> {
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
pub(super) struct Trajectory {
    pub(super) arch: Arch,
    pub(super) indication: Indication,
    pub(super) baseline: f64,
    pub(super) target: f64,
    /// Relapse: the low point at the end of induction, and the level at the end of follow-up.
    pub(super) low: f64,
    pub(super) induction_len: f64,
    pub(super) follow_end: f64,
}

impl Trajectory {
    pub(super) fn draw(
        rng: &mut ChaCha8Rng,
        arch: Arch,
        indication: Indication,
        induction_len: f64,
        follow_end: f64,
    ) -> Self {
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

    pub(super) fn at(&self, t: f64) -> f64 {
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
pub(super) fn enforce_story(arch: Arch, indication: Indication, baseline: i32, points: &mut [(bool, i32)]) {
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

/// A clinic session before synthesis: its course slot (0 induction, 1 maintenance), its chair
/// at the site (none at home) and what to synthesise.
type SessionDraft = (usize, Option<usize>, SessionSpec);

/// Draws the whole clinic. Every draw comes from one RNG in a fixed order (who, the stories,
/// maintenance and the board, each patient in turn, the session events, the sessions), so the
/// same seed gives the same clinic: each step below draws only its own part, in that order.
pub(super) fn plan(seed: u64, now: OffsetDateTime) -> Plan {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let rng = &mut rng;
    let mut drafts = draft_patients(rng);
    place_stories(rng, &mut drafts);
    choose_maintenance(rng, &mut drafts);
    for site in 0..SITES.len() {
        fill_board(rng, &mut drafts, site);
    }
    let mut register = Register::default();
    let mut patients = Vec::with_capacity(drafts.len());
    for d in &drafts {
        let cx = PatientContext { d, site: &SITES[d.site], today: SITES[d.site].clock().today(now), now };
        patients.push(plan_patient(rng, &mut register, &cx));
    }
    place_session_events(rng, &mut patients);
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

/// Who: route, indication, outcome and site for each cohort's patients, shuffled.
fn draft_patients(rng: &mut ChaCha8Rng) -> Vec<Draft> {
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
    drafts
}

/// The stories placed on purpose, each on a patient who fits it.
fn place_stories(rng: &mut ChaCha8Rng, drafts: &mut [Draft]) {
    let pick = |drafts: &[Draft], rng: &mut ChaCha8Rng, f: &dyn Fn(&Draft) -> bool| -> Option<usize> {
        let c: Vec<usize> =
            (0..drafts.len()).filter(|&i| drafts[i].special == Special::None && f(&drafts[i])).collect();
        c.choose(rng).copied()
    };
    let dep_iv = |d: &Draft| d.route == Route::IvRacemic && d.indication == Indication::Depression;
    if let Some(i) = pick(drafts, rng, &|d| dep_iv(d) && matches!(d.arch, Arch::Partial | Arch::NonResponse)) {
        drafts[i].special = Special::SeriousAe;
    }
    if let Some(i) = pick(drafts, rng, &|d| dep_iv(d)) {
        drafts[i].special = Special::EsketamineHardStop;
    }
    if let Some(i) = pick(drafts, rng, &|d| d.route == Route::IntranasalEsketamine) {
        drafts[i].special = Special::RacemicHardStop;
    }
    if let Some(i) = pick(drafts, rng, &|d| d.indication == Indication::Depression && d.arch == Arch::Worsen) {
        drafts[i].special = Special::OpenItem9;
    }
}

/// Which patients continue into maintenance (mostly responders).
fn choose_maintenance(rng: &mut ChaCha8Rng, drafts: &mut [Draft]) {
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
}

/// Today's board at `site`: six maintenance patients on chair routes, one per role.
fn fill_board(rng: &mut ChaCha8Rng, drafts: &mut [Draft], site: usize) {
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
            if d.site == site && !d.maintenance && d.arch.responds() && chair_route(d) && d.special == Special::None {
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

/// What the patients drawn so far have taken: chair slots per site and day, MRNs, names.
#[derive(Default)]
struct Register {
    slots: HashMap<(usize, Date), usize>,
    mrn_counter: [usize; 2],
    used_names: Vec<(String, String)>,
}

/// One patient being drawn, at their site, on the site's today.
struct PatientContext<'a> {
    d: &'a Draft,
    site: &'static SiteDef,
    today: Date,
    now: OffsetDateTime,
}

impl PatientContext<'_> {
    /// `offset` days from the site's today.
    fn day(&self, offset: i64) -> Date {
        self.today + Duration::days(offset)
    }
}

/// One patient's records, in the order their parts are drawn.
fn plan_patient(
    rng: &mut ChaCha8Rng,
    register: &mut Register,
    cx: &PatientContext<'_>,
) -> (PatientPlan, Vec<SessionDraft>, Physiology) {
    let d = cx.d;
    let person = draw_person(rng, register, cx);
    let tl = Timeline::draw(rng, d);
    let points = tl.question_points(d);
    let traj =
        Trajectory::draw(rng, d.arch, d.indication, (tl.end - tl.first) as f64, (tl.follow_end - tl.first) as f64);
    let (prim, answers_at) = draw_scores(rng, d, &tl, &points, &traj);
    let intake = draw_intake(rng, cx, &person, &tl, &traj);
    let courses = plan_courses(cx, &tl);
    let dosing = Dosing::draw(rng, d, person.age, person.weight);
    let (sessions, check_ins) = place_sessions(rng, register, cx, &tl, &points, answers_at, &dosing);
    let board = d.board.map(|role| {
        let maint_level = prim.last().map_or(6, |p| p.1).min(traj.baseline as i32 / 2).max(0);
        let index = tl.session_days.len() as u32;
        plan_board(rng, cx, role, maint_level, index, &dosing, &person.phys)
    });
    let plan = PatientPlan {
        site: d.site,
        new: person.new,
        weights: intake.weights,
        trials: intake.trials,
        medications: intake.medications,
        allergies: intake.allergies,
        pregnancy: intake.pregnancy,
        assessments: intake.assessments,
        courses,
        sessions: Vec::new(),
        check_ins,
        board,
    };
    (plan, sessions, person.phys)
}

/// Who a patient is: demographics, physiology and weight.
struct Person {
    new: NewPatient,
    sex: Sex,
    age: i32,
    /// The patient's number at their site (picks the extra medications and allergies).
    seq: usize,
    phys: Physiology,
    weight: f64,
}

fn draw_person(rng: &mut ChaCha8Rng, register: &mut Register, cx: &PatientContext<'_>) -> Person {
    let (d, site, today) = (cx.d, cx.site, cx.today);
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
        if !register.used_names.contains(&(given.clone(), family.clone())) {
            register.used_names.push((given.clone(), family.clone()));
            break (given, family);
        }
    };
    let age = match d.route {
        Route::IntranasalEsketamine if rng.random_bool(0.2) => rng.random_range(65..=76),
        _ => rng.random_range(21..=64),
    };
    let dob = today - Duration::days(age as i64 * 365 + rng.random_range(10..=355) + age as i64 / 4);
    register.mrn_counter[d.site] += 1;
    // Which patients get the extra medications and allergies: by number, so the random
    // stream (and every other demo figure) stays as it was.
    let seq = register.mrn_counter[d.site];
    let mrn = format!("{}-{:04}", site.code, 1000 + seq);
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
    Person { new, sex, age, seq, phys, weight }
}

/// When a questionnaire is answered.
#[derive(Clone, Copy, PartialEq)]
enum When {
    Intake,
    Session(usize),
    CheckIn,
}

/// A patient's timeline in days relative to the site's today (history ends yesterday).
struct Timeline {
    /// The induction schedule's offsets from the first session.
    induction_offsets: Vec<i64>,
    intake: i64,
    first: i64,
    /// The last induction session.
    end: i64,
    follow_end: i64,
    /// From this day scores belong to the maintenance course.
    maint_from: i64,
    has_maintenance: bool,
    /// How many induction sessions there are (fewer than planned after a serious event).
    induction_sessions: usize,
    /// Every session's day and course slot, induction then maintenance.
    session_days: Vec<(i64, usize)>,
}

impl Timeline {
    fn draw(rng: &mut ChaCha8Rng, d: &Draft) -> Self {
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
        let maintenance = if d.maintenance { maintenance_days(rng, d, end) } else { Vec::new() };
        let follow_end = if d.maintenance || d.special == Special::OpenItem9 { -1 } else { (end + 56).min(-1) };
        let maint_from =
            maintenance.first().copied().unwrap_or(i64::MAX).min(if d.board.is_some() { 0 } else { i64::MAX }) - 2;
        let session_days = induction.iter().map(|&x| (x, 0)).chain(maintenance.iter().map(|&x| (x, 1))).collect();
        Self {
            induction_offsets: ind,
            intake,
            first,
            end,
            follow_end,
            maint_from,
            has_maintenance: d.maintenance,
            induction_sessions: induction.len(),
            session_days,
        }
    }

    /// Questionnaire time points: intake, before each session, and check-ins between.
    fn question_points(&self, d: &Draft) -> Vec<(i64, When)> {
        let mut points: Vec<(i64, When)> = vec![(self.intake, When::Intake)];
        points.extend(self.session_days.iter().enumerate().map(|(i, &(x, _))| (x, When::Session(i))));
        let mut dd = self.intake + 7;
        while dd <= self.follow_end {
            let near = self.session_days.iter().any(|&(x, _)| (x - dd).abs() <= 2);
            if !near {
                points.push((dd, When::CheckIn));
            }
            dd += if dd > self.end + 7 && d.maintenance { 14 } else { 7 };
        }
        if d.special == Special::OpenItem9 && points.last().is_some_and(|p| p.0 != -1) {
            points.push((-1, When::CheckIn));
        }
        points.sort_by_key(|p| (p.0, matches!(p.1, When::Session(_))));
        points
    }

    /// The course slot a score on day `x` belongs to (0 induction, 1 maintenance).
    fn slot_of(&self, x: i64) -> usize {
        if self.has_maintenance && x >= self.maint_from { 1 } else { 0 }
    }
}

/// Maintenance session days after an induction ending on `end`: regular up to today for a
/// patient on today's board, else by the route's interval until yesterday.
fn maintenance_days(rng: &mut ChaCha8Rng, d: &Draft, end: i64) -> Vec<i64> {
    let mut maintenance: Vec<i64> = Vec::new();
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
    maintenance
}

/// The primary score at each point (true for the induction course's points), the story
/// enforced, and every point's answers (primary, and a secondary instrument for some).
fn draw_scores(
    rng: &mut ChaCha8Rng,
    d: &Draft,
    tl: &Timeline,
    points: &[(i64, When)],
    traj: &Trajectory,
) -> (Vec<(bool, i32)>, Vec<Questionnaires>) {
    let primary = d.indication.primary_instrument();
    let mut prim: Vec<(bool, i32)> = points
        .iter()
        .map(|&(x, _)| {
            let v = traj.at((x - tl.first) as f64)
                + normal(rng, 0.0, if d.indication == Indication::Ptsd { 3.0 } else { 1.1 });
            (tl.slot_of(x) == 0, v.round().clamp(0.0, max_total(primary) as f64) as i32)
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
    (prim, answers_at)
}

/// The intake's records: weights, antidepressant history, medications, allergies,
/// pregnancy status and the eligibility assessments.
struct Intake {
    weights: Vec<NewWeight>,
    trials: Vec<AntidepressantTrial>,
    medications: Vec<NewMedication>,
    allergies: Vec<NewAllergy>,
    pregnancy: Option<NewPregnancyStatus>,
    assessments: Vec<NewEligibilityAssessment>,
}

fn draw_intake(
    rng: &mut ChaCha8Rng,
    cx: &PatientContext<'_>,
    person: &Person,
    tl: &Timeline,
    traj: &Trajectory,
) -> Intake {
    let (d, intake, end, weight, seq) = (cx.d, tl.intake, tl.end, person.weight, person.seq);
    let mut weights =
        vec![NewWeight { weight_kg: Kilograms(weight), measured_on: cx.day(intake), weight_type: WeightType::Actual }];
    if rng.random_bool(0.3) && end + 20 < -1 {
        weights.push(NewWeight {
            weight_kg: Kilograms((weight + normal(rng, 0.0, 1.5)).round()),
            measured_on: cx.day(rng.random_range(end + 1..=-1)),
            weight_type: WeightType::Actual,
        });
    }
    let trials = draw_trials(rng, d);
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
        started_on: Some(cx.day(intake - 200)),
    };
    let mut medications: Vec<NewMedication> = Vec::new();
    let mut allergies: Vec<NewAllergy> = Vec::new();
    // A negative pregnancy test at intake for some women, so the eligibility screen reads it.
    let pregnancy = (person.sex == Sex::Female && seq % 4 == 0).then(|| NewPregnancyStatus {
        status: PregnancyStatus::NotPregnant,
        recorded_on: cx.day(intake),
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
    Intake { weights, trials, medications, allergies, pregnancy, assessments }
}

/// The antidepressant trials of the current episode (esketamine patients have two failures).
fn draw_trials(rng: &mut ChaCha8Rng, d: &Draft) -> Vec<AntidepressantTrial> {
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
    trials
}

/// The induction course, and the maintenance course if the patient continues.
fn plan_courses(cx: &PatientContext<'_>, tl: &Timeline) -> Vec<NewCourse> {
    let d = cx.d;
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
        planned_sessions: tl.induction_offsets.len() as u32,
        start_date: cx.day(tl.first),
        protocol: Some(label(d.route).into()),
    }];
    let maintenance: Vec<i64> = tl.session_days.iter().filter(|s| s.1 == 1).map(|s| s.0).collect();
    if d.maintenance {
        let start = maintenance.first().copied().unwrap_or(0);
        courses.push(NewCourse {
            route: d.route,
            phase: Phase::Maintenance,
            indication: None,
            planned_sessions: (maintenance.len() as u32 + 6).clamp(6, 104),
            start_date: cx.day(start),
            protocol: Some(match d.route {
                Route::IntranasalEsketamine => {
                    "Esketamine label maintenance (weekly weeks 5-8, then every 1-2 weeks)".into()
                }
                r if r.is_home() => "At-home maintenance, weekly to fortnightly".into(),
                _ => "Maintenance infusions, every 3-5 weeks as needed".into(),
            }),
        });
    }
    courses
}

/// How a patient's doses are chosen: by route and indication, weight, age, and two draws
/// (a higher esketamine dose; titration for partial and non-responders).
struct Dosing {
    route: Route,
    indication: Indication,
    weight: f64,
    age: i32,
    high_esk: bool,
    titrate: bool,
}

impl Dosing {
    fn draw(rng: &mut ChaCha8Rng, d: &Draft, age: i32, weight: f64) -> Self {
        let high_esk = rng.random_bool(0.61);
        let titrate = rng.random_bool(0.25) && matches!(d.arch, Arch::Partial | Arch::NonResponse);
        Self { route: d.route, indication: d.indication, weight, age, high_esk, titrate }
    }

    /// The dose of the session with this index (0 = the first), mg.
    fn mg(&self, index: usize) -> f64 {
        let (age, high_esk, titrate) = (self.age, self.high_esk, self.titrate);
        let mgkg = |x: f64| (self.weight * x * 2.0).round() / 2.0;
        match (self.route, self.indication) {
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
    }
}

/// Each session's place and spec (chair slots taken in the site's day in turn) and each
/// intake or check-in response with its alert acknowledgement.
fn place_sessions(
    rng: &mut ChaCha8Rng,
    register: &mut Register,
    cx: &PatientContext<'_>,
    tl: &Timeline,
    points: &[(i64, When)],
    mut answers_at: Vec<Questionnaires>,
    dosing: &Dosing,
) -> (Vec<SessionDraft>, Vec<PlannedCheckIn>) {
    let (d, site, clock) = (cx.d, cx.site, cx.site.clock());
    let mut sessions = Vec::new();
    let mut check_ins = Vec::new();
    for (k, &(x, when)) in points.iter().enumerate() {
        let answers = std::mem::take(&mut answers_at[k]);
        match when {
            When::Session(i) => {
                let (dayx, slot) = tl.session_days[i];
                let at_home = d.route.is_home() && i > 0;
                let (chair, start) = if at_home {
                    (None, clock.at_minute_of_day(cx.day(dayx), rng.random_range(600..=1140)))
                } else {
                    let n = register.slots.entry((d.site, cx.day(dayx))).or_insert(0);
                    let chair = *n % site.chairs.len();
                    let start = clock.at_minute_of_day(
                        cx.day(dayx),
                        8 * 60 + 150 * (*n / site.chairs.len()) as i64 + 5 * rng.random_range(0..=4),
                    );
                    *n += 1;
                    (Some(chair), start)
                };
                let status = if slot == 0 && i + 1 == tl.induction_sessions {
                    Some(if d.special == Special::SeriousAe { CourseStatus::Stopped } else { CourseStatus::Completed })
                } else {
                    None
                };
                let event = if d.special == Special::SeriousAe && i + 1 == tl.induction_sessions {
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
                sessions.push((
                    slot,
                    chair,
                    SessionSpec {
                        course_id: CourseId(0),
                        route: d.route,
                        chair: None,
                        scheduled_for: start,
                        dose_mg: dosing.mg(i),
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
                    (clock.at_minute_of_day(cx.day(x), 10 * 60 + rng.random_range(0..=90)), CompletedBy::Patient)
                } else {
                    (clock.at_minute_of_day(cx.day(x), rng.random_range(18 * 60..=21 * 60 + 30)), CompletedBy::Patient)
                };
                let open = d.special == Special::OpenItem9 && x == -1 && when == When::CheckIn;
                let slot = if d.special == Special::SeriousAe && x > tl.end { Some(0) } else { Some(tl.slot_of(x)) };
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
    (sessions, check_ins)
}

/// The patient's session on today's board in `role`: discharged earlier and in monitoring
/// are imported as full or in-progress sessions; checked in and scheduled are booked.
fn plan_board(
    rng: &mut ChaCha8Rng,
    cx: &PatientContext<'_>,
    role: BoardRole,
    maint_level: i32,
    index: u32,
    dosing: &Dosing,
    phys: &Physiology,
) -> BoardSession {
    let (d, site, now) = (cx.d, cx.site, cx.now);
    let primary = d.indication.primary_instrument();
    let phq = if primary == "phq9" { maint_level } else { rng.random_range(4..=9) };
    let phq9 = phq9_answers(rng, phq, 0);
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
                dose_mg: dosing.mg(index as usize),
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
            let full = synth_session(rng, phys, spec);
            let s = if role == BoardRole::Monitoring { in_progress(full, now) } else { full };
            (start, Some(s))
        }
        BoardRole::CheckedIn => (round5(now - mins(10)), None),
        BoardRole::Scheduled(m) => (round5(now + mins(m)), None),
    };
    BoardSession { role, chair, scheduled_for, dose_mg: dosing.mg(index as usize), phq9, import }
}

/// Non-serious adverse events, pre-dose stops, an unwell patient and a desaturation (IV only),
/// on clinic sessions chosen at random among those with no story of their own.
fn place_session_events(rng: &mut ChaCha8Rng, patients: &mut [(PatientPlan, Vec<SessionDraft>, Physiology)]) {
    let mut free: Vec<(usize, usize)> = patients
        .iter()
        .enumerate()
        .flat_map(|(p, (_, specs, _))| (0..specs.len()).map(move |s| (p, s)))
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
}
