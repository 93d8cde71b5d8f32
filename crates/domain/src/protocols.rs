//! The protocol library and the course schedule generator.
//!
//! A protocol is data (`data/protocols/*.toml`, embedded at compile time): the route, the
//! dose and how it is expressed, the limits a dose must stay within, the session schedule,
//! the end-of-induction reassessment and what to do when a session is missed. Every number
//! carries its source: a section of `clinical-reference.md`, or "clinic setting" where the
//! reference gives none. Clinics add or replace protocols with files of the same shape
//! ([`ProtocolLibrary::with_clinic_files`]; the caller reads the files, this module stays pure).
//!
//! The schedule generator ([`generate_schedule`]) lays a course's sessions out from a
//! protocol and a start date; [`mark_missed`] applies the protocol's missed-session rule.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use time::{Date, Duration};

use crate::course::{Phase, Route};
use crate::error::{DomainError, FieldError};
use crate::patient::Indication;

const BUILTIN: &[(&str, &str)] = &[
    ("iv-racemic.toml", include_str!("../../../data/protocols/iv-racemic.toml")),
    ("im-racemic.toml", include_str!("../../../data/protocols/im-racemic.toml")),
    ("esketamine-intranasal.toml", include_str!("../../../data/protocols/esketamine-intranasal.toml")),
    ("oral-sublingual.toml", include_str!("../../../data/protocols/oral-sublingual.toml")),
    ("chronic-pain-iv.toml", include_str!("../../../data/protocols/chronic-pain-iv.toml")),
];

/// Which drug a route gives: racemic ketamine, or esketamine (nasal spray only, §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Drug {
    RacemicKetamine,
    Esketamine,
}

impl Drug {
    pub fn of(route: Route) -> Self {
        match route {
            Route::IntranasalEsketamine => Drug::Esketamine,
            _ => Drug::RacemicKetamine,
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Drug::RacemicKetamine => "racemic ketamine",
            Drug::Esketamine => "esketamine",
        }
    }
}

/// A number and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourcedValue {
    pub value: f64,
    pub source: String,
}

/// A list of numbers (e.g. the doses a protocol allows) and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourcedValues {
    pub values: Vec<f64>,
    pub source: String,
}

/// A reported range: outside it a dose draws a warning, not a refusal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourcedRange {
    pub min: f64,
    pub max: f64,
    pub source: String,
}

/// A titration ladder: start, then up by `increment` each session as tolerated and needed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Titration {
    pub start: f64,
    pub increment: f64,
    pub source: String,
}

/// How a protocol expresses its dose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DoseBasis {
    /// mg per kg of body weight per session (IV, IM, weight-based oral).
    MgPerKg,
    /// A fixed dose in mg (esketamine, oral and sublingual).
    Mg,
    /// A weight-based rate, mg/kg/h, for the infusion time (chronic pain, §2.5).
    MgPerKgPerH,
    /// A fixed rate, mg/h, for the infusion time (chronic pain, §2.5).
    MgPerH,
}

impl DoseBasis {
    pub fn unit(self) -> &'static str {
        match self {
            DoseBasis::MgPerKg => "mg/kg",
            DoseBasis::Mg => "mg",
            DoseBasis::MgPerKgPerH => "mg/kg/h",
            DoseBasis::MgPerH => "mg/h",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProtocolDose {
    pub basis: DoseBasis,
    /// The usual dose, in the basis's unit.
    #[serde(default)]
    pub standard: Option<SourcedValue>,
    /// The first session's dose (esketamine day 1).
    #[serde(default)]
    pub first: Option<SourcedValue>,
    /// The first session's dose from `elderly_from_age`.
    #[serde(default)]
    pub first_elderly: Option<SourcedValue>,
    #[serde(default)]
    pub elderly_from_age: Option<SourcedValue>,
    /// The only doses allowed (the label's, or the clinic's titration steps); empty: any
    /// dose within the limits.
    #[serde(default)]
    pub allowed: Option<SourcedValues>,
    /// The doses allowed from `elderly_from_age`.
    #[serde(default)]
    pub allowed_elderly: Option<SourcedValues>,
    /// Doses reported in the literature; outside: a warning.
    #[serde(default)]
    pub reported_range: Option<SourcedRange>,
    #[serde(default)]
    pub titration: Option<Titration>,
}

/// IV protocols: how long the infusion runs.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Infusion {
    #[serde(default)]
    pub minutes: Option<SourcedValue>,
    #[serde(default)]
    pub reported_minutes_range: Option<SourcedRange>,
}

/// Nasal spray devices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Device {
    pub mg_per_device: SourcedValue,
    pub minutes_between: SourcedValue,
}

/// Limits a dose must stay within; a dose outside is refused with the reason. Where the
/// reference has no consensus (e.g. §2.1's maximum) these are clinic settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DoseLimits {
    #[serde(default)]
    pub max_mg_per_kg: Option<SourcedValue>,
    #[serde(default)]
    pub max_mg: Option<SourcedValue>,
    #[serde(default)]
    pub min_mg_per_kg: Option<SourcedValue>,
    #[serde(default)]
    pub min_mg: Option<SourcedValue>,
    #[serde(default)]
    pub max_mg_per_kg_per_h: Option<SourcedValue>,
    #[serde(default)]
    pub max_mg_per_h: Option<SourcedValue>,
}

impl DoseLimits {
    pub fn has_maximum(&self) -> bool {
        self.max_mg_per_kg.is_some() || self.max_mg.is_some()
    }
}

/// How the sessions of a block follow each other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Cadence {
    /// On these day offsets (0-6) of each 7-day week counted from the block's first day.
    WeekDays(Vec<u32>),
    /// One session every N days.
    EveryDays(u32),
    /// Every N days, N one of these; the clinician chooses.
    EveryDaysOptions(Vec<u32>),
    /// Given when needed: not laid out.
    AsNeeded,
}

/// A run of sessions with one cadence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleBlock {
    pub phase: Phase,
    pub label: String,
    /// Days after the course start that the block begins.
    pub starts_on_day: u32,
    /// How many sessions; absent: open-ended (laid out up to a given date).
    #[serde(default)]
    pub sessions: Option<u32>,
    pub cadence: Cadence,
    pub source: String,
}

/// A prompt to reassess at the last session of a phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reassessment {
    pub after_phase: Phase,
    pub text: String,
    pub source: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MissedRule {
    /// Give the missed session on the make-up date and move every later session by the
    /// same number of days, so the intervals stay as planned.
    ShiftFollowing,
    /// Make it up within `within_days`, before the next session, moving nothing else;
    /// otherwise it is skipped.
    MakeUpWithin,
    /// Skip it; the rest of the schedule stands.
    Skip,
}

impl MissedRule {
    pub fn as_str(self) -> &'static str {
        match self {
            MissedRule::ShiftFollowing => "shift_following",
            MissedRule::MakeUpWithin => "make_up_within",
            MissedRule::Skip => "skip",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MissedSessionPolicy {
    pub rule: MissedRule,
    #[serde(default)]
    pub within_days: Option<u32>,
    pub source: String,
}

/// One dosing protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Protocol {
    pub id: String,
    pub name: String,
    pub route: Route,
    pub indication: Indication,
    pub source: String,
    #[serde(default)]
    pub notes: Vec<String>,
    pub dose: ProtocolDose,
    #[serde(default)]
    pub infusion: Option<Infusion>,
    #[serde(default)]
    pub device: Option<Device>,
    #[serde(default)]
    pub limits: DoseLimits,
    #[serde(default)]
    pub schedule: Vec<ScheduleBlock>,
    #[serde(default)]
    pub reassessment: Option<Reassessment>,
    pub missed_session: MissedSessionPolicy,
    /// Whom the protocol is for (age range) and whether it needs treatment resistance.
    #[serde(default)]
    pub population: Option<Population>,
    /// Where the protocol was loaded from: `built-in: FILE` or `clinic: FILE`. Always set by
    /// the loader (a file's own value is overwritten); not `skip_deserializing`, which would
    /// also drop it from the OpenAPI schema although every response carries it.
    #[serde(default)]
    pub origin: String,
}

/// The patients a protocol is for: the label population (esketamine: adults, §3.2 [S6]) or
/// the clinic's setting where the reference is silent (racemic ketamine).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Population {
    /// How staff read it, e.g. `Adults (18 and over)`.
    pub label: String,
    #[serde(default)]
    pub min_age_years: Option<SourcedValue>,
    #[serde(default)]
    pub max_age_years: Option<SourcedValue>,
    /// What an age outside the range means on this protocol.
    pub outside: crate::eligibility::ContraindicationLevel,
    pub outside_source: String,
    /// Present when the protocol is for treatment-resistant depression: the source of that
    /// requirement (the TRD rule itself is in data/rules/maudsley.toml).
    #[serde(default)]
    pub requires_treatment_resistance: Option<String>,
}

impl Population {
    /// Whether a patient of `age_years` is in the range.
    pub fn admits(&self, age_years: i32) -> bool {
        let age = f64::from(age_years);
        self.min_age_years.as_ref().is_none_or(|m| age >= m.value)
            && self.max_age_years.as_ref().is_none_or(|m| age <= m.value)
    }
}

impl Protocol {
    pub fn drug(&self) -> Drug {
        Drug::of(self.route)
    }

    /// Whether `age_years` makes the patient "elderly" under this protocol's dose rules.
    pub fn is_elderly(&self, age_years: Option<u32>) -> Option<bool> {
        let from = self.dose.elderly_from_age.as_ref()?;
        age_years.map(|a| f64::from(a) >= from.value)
    }

    /// The doses this protocol allows for a patient of this age (empty: any within limits).
    pub fn allowed_doses(&self, age_years: Option<u32>) -> &[f64] {
        let adult = self.dose.allowed.as_ref().map_or(&[][..], |a| &a.values[..]);
        match (self.is_elderly(age_years), &self.dose.allowed_elderly) {
            (Some(true), Some(e)) => &e.values,
            _ => adult,
        }
    }

    /// The first session's dose for a patient of this age, if the protocol fixes one.
    pub fn first_dose(&self, age_years: Option<u32>) -> Option<&SourcedValue> {
        match (self.is_elderly(age_years), &self.dose.first_elderly) {
            (Some(true), Some(e)) => Some(e),
            _ => self.dose.first.as_ref(),
        }
    }

    /// The protocol's infusion time, if it fixes one.
    pub fn infusion_minutes(&self) -> Option<f64> {
        self.infusion.as_ref().and_then(|i| i.minutes.as_ref()).map(|m| m.value)
    }

    /// Checks the protocol's own consistency; each problem names where it is.
    // Long on purpose: a flat list of independent consistency checks, each naming the field it is about.
    #[allow(clippy::too_many_lines)]
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut e = Vec::new();
        let mut err = |m: String| e.push(format!("protocol '{}': {m}", self.id));
        if self.id.is_empty()
            || !self.id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        {
            err("the id must be lower-case letters, digits, '-' and '.'".into());
        }
        if self.name.trim().is_empty() || self.source.trim().is_empty() {
            err("name and source are required".into());
        }
        let mut sourced: Vec<(&str, &str, Vec<f64>)> = Vec::new();
        let d = &self.dose;
        for (what, v) in [
            ("dose.standard", &d.standard),
            ("dose.first", &d.first),
            ("dose.first_elderly", &d.first_elderly),
            ("dose.elderly_from_age", &d.elderly_from_age),
            ("limits.max_mg_per_kg", &self.limits.max_mg_per_kg),
            ("limits.max_mg", &self.limits.max_mg),
            ("limits.min_mg_per_kg", &self.limits.min_mg_per_kg),
            ("limits.min_mg", &self.limits.min_mg),
            ("limits.max_mg_per_kg_per_h", &self.limits.max_mg_per_kg_per_h),
            ("limits.max_mg_per_h", &self.limits.max_mg_per_h),
        ] {
            if let Some(v) = v {
                sourced.push((what, &v.source, vec![v.value]));
            }
        }
        for (what, v) in [("dose.allowed", &d.allowed), ("dose.allowed_elderly", &d.allowed_elderly)] {
            if let Some(v) = v {
                sourced.push((what, &v.source, v.values.clone()));
            }
        }
        if let Some(r) = &d.reported_range {
            sourced.push(("dose.reported_range", &r.source, vec![r.min, r.max]));
            if r.min > r.max {
                err("dose.reported_range: min is above max".into());
            }
        }
        if let Some(t) = &d.titration {
            sourced.push(("dose.titration", &t.source, vec![t.start, t.increment]));
        }
        if let Some(i) = &self.infusion {
            if let Some(m) = &i.minutes {
                sourced.push(("infusion.minutes", &m.source, vec![m.value]));
            }
            if let Some(r) = &i.reported_minutes_range {
                sourced.push(("infusion.reported_minutes_range", &r.source, vec![r.min, r.max]));
            }
        }
        if let Some(pop) = &self.population {
            for (what, v) in
                [("population.min_age_years", &pop.min_age_years), ("population.max_age_years", &pop.max_age_years)]
            {
                if let Some(v) = v {
                    sourced.push((what, &v.source, vec![v.value]));
                }
            }
            if let (Some(lo), Some(hi)) = (&pop.min_age_years, &pop.max_age_years)
                && lo.value > hi.value
            {
                err("population: min_age_years is above max_age_years".into());
            }
            if pop.label.trim().is_empty() || pop.outside_source.trim().is_empty() {
                err("population: label and outside_source are required".into());
            }
            if pop.requires_treatment_resistance.as_ref().is_some_and(|s| s.trim().is_empty()) {
                err("population.requires_treatment_resistance: give the source".into());
            }
        }
        if let Some(dev) = &self.device {
            sourced.push(("device.mg_per_device", &dev.mg_per_device.source, vec![dev.mg_per_device.value]));
            sourced.push(("device.minutes_between", &dev.minutes_between.source, vec![dev.minutes_between.value]));
        }
        for (what, source, values) in &sourced {
            if source.trim().is_empty() {
                err(format!("{what} needs a source (a section of clinical-reference.md, or 'clinic setting')"));
            }
            if values.iter().any(|v| !(v.is_finite() && *v >= 0.0))
                || (*what != "device.minutes_between" && values.contains(&0.0))
            {
                err(format!("{what} must be positive"));
            }
        }
        if (d.first_elderly.is_some() || d.allowed_elderly.is_some()) != d.elderly_from_age.is_some() {
            err("dose.elderly_from_age goes with dose.first_elderly or dose.allowed_elderly".into());
        }
        match self.route {
            Route::IntranasalEsketamine => {
                if d.basis != DoseBasis::Mg {
                    err("esketamine is dosed in fixed mg (basis = \"mg\")".into());
                }
                match &self.device {
                    None => err("a nasal spray protocol needs [protocols.device]".into()),
                    Some(dev) => {
                        let per = dev.mg_per_device.value;
                        let all = self.allowed_doses(None).iter().chain(self.allowed_doses(Some(200)));
                        for v in
                            all.chain(d.first.iter().map(|f| &f.value)).chain(d.first_elderly.iter().map(|f| &f.value))
                        {
                            if per > 0.0 && ((v / per) - (v / per).round()).abs() > 1e-9 {
                                err(format!("{v} mg is not a whole number of {per} mg devices"));
                            }
                        }
                    }
                }
            }
            _ if self.device.is_some() => err("[protocols.device] is for the nasal spray only".into()),
            _ => {}
        }
        if self.infusion.is_some() && self.route != Route::IvRacemic {
            err("[protocols.infusion] is for IV protocols only".into());
        }
        if matches!(d.basis, DoseBasis::MgPerKgPerH | DoseBasis::MgPerH) && self.route != Route::IvRacemic {
            err("rate-based doses are for IV infusions".into());
        }
        for (first, allowed) in
            [(&d.first, self.allowed_doses(None)), (&d.first_elderly, self.allowed_doses(Some(200)))]
        {
            if let Some(f) = first
                && !allowed.is_empty()
                && !allowed.iter().any(|a| (a - f.value).abs() < 1e-9)
            {
                err(format!("the first dose {} is not among the allowed doses", f.value));
            }
        }
        if let Some(r) = &self.reassessment
            && !self.schedule.iter().any(|b| b.phase == r.after_phase)
        {
            err(format!("the reassessment follows the {} phase, which has no schedule block", r.after_phase.as_str()));
        }
        match (self.missed_session.rule, self.missed_session.within_days) {
            (MissedRule::MakeUpWithin, None | Some(0)) => {
                err("missed_session: make_up_within needs within_days".into())
            }
            (MissedRule::MakeUpWithin, _) => {}
            (_, Some(_)) => err("missed_session: within_days is only for make_up_within".into()),
            _ => {}
        }
        if self.missed_session.source.trim().is_empty() {
            err("missed_session needs a source".into());
        }
        let mut prev_start = 0;
        for (i, b) in self.schedule.iter().enumerate() {
            if b.source.trim().is_empty() {
                err(format!("schedule block {} needs a source", i + 1));
            }
            if b.starts_on_day < prev_start {
                err(format!("schedule block {} starts before the block before it", i + 1));
            }
            prev_start = b.starts_on_day;
            let open = b.sessions.is_none() || b.cadence == Cadence::AsNeeded;
            if open && i + 1 != self.schedule.len() {
                err(format!("schedule block {}: only the last block may be open-ended or as needed", i + 1));
            }
            if b.sessions == Some(0) {
                err(format!("schedule block {}: sessions must be at least 1", i + 1));
            }
            match &b.cadence {
                Cadence::WeekDays(days)
                    if days.is_empty() || days.iter().any(|d| *d > 6) || days.windows(2).any(|w| w[1] <= w[0]) =>
                {
                    err(format!("schedule block {}: week_days must be increasing offsets 0-6", i + 1))
                }
                Cadence::EveryDays(0) => err(format!("schedule block {}: every_days must be at least 1", i + 1)),
                Cadence::EveryDaysOptions(o) if o.is_empty() || o.contains(&0) => {
                    err(format!("schedule block {}: every_days_options must list intervals of 1 day or more", i + 1))
                }
                _ => {}
            }
        }
        if e.is_empty() { Ok(()) } else { Err(e) }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProtocolFile {
    protocols: Vec<Protocol>,
}

/// Every protocol Keta knows: the built-in library, plus any the clinic adds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProtocolLibrary {
    protocols: Vec<Protocol>,
}

fn parse_file(file: &str, text: &str, origin: &str) -> Result<Vec<Protocol>, Vec<String>> {
    let parsed: ProtocolFile = toml::from_str(text).map_err(|e| vec![format!("{file}: {e}")])?;
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for mut p in parsed.protocols {
        p.origin = format!("{origin}: {file}");
        if let Err(e) = p.validate() {
            errors.extend(e.into_iter().map(|m| format!("{file}: {m}")));
        }
        out.push(p);
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

fn duplicate_ids(protocols: &[Protocol]) -> Vec<String> {
    let mut ids: Vec<&str> = protocols.iter().map(|p| p.id.as_str()).collect();
    ids.sort_unstable();
    ids.windows(2).filter(|w| w[0] == w[1]).map(|w| format!("protocol id '{}' is defined twice", w[0])).collect()
}

impl ProtocolLibrary {
    /// The protocols shipped in `data/protocols/`. The tests load every file, so a broken
    /// one is a build defect.
    pub fn builtin() -> &'static ProtocolLibrary {
        static LIB: OnceLock<ProtocolLibrary> = OnceLock::new();
        LIB.get_or_init(|| {
            let mut protocols = Vec::new();
            for (file, text) in BUILTIN {
                protocols.extend(parse_file(file, text, "built-in").unwrap_or_else(|e| panic!("{}", e.join("; "))));
            }
            let dups = duplicate_ids(&protocols);
            assert!(dups.is_empty(), "{}", dups.join("; "));
            ProtocolLibrary { protocols }
        })
    }

    /// This library with the clinic's files (`(file name, text)`) added; a clinic protocol
    /// with a built-in's id replaces it. Every problem in every file is reported at once.
    pub fn with_clinic_files(&self, files: &[(String, String)]) -> Result<ProtocolLibrary, DomainError> {
        let mut errors = Vec::new();
        let mut clinic = Vec::new();
        for (name, text) in files {
            match parse_file(name, text, "clinic") {
                Ok(ps) => clinic.extend(ps),
                Err(e) => errors.extend(e),
            }
        }
        errors.extend(duplicate_ids(&clinic));
        if !errors.is_empty() {
            return Err(DomainError::Invalid(errors.into_iter().map(|m| FieldError::new("protocols", m)).collect()));
        }
        let mut protocols: Vec<Protocol> =
            self.protocols.iter().filter(|p| !clinic.iter().any(|c| c.id == p.id)).cloned().collect();
        protocols.extend(clinic);
        Ok(ProtocolLibrary { protocols })
    }

    pub fn all(&self) -> &[Protocol] {
        &self.protocols
    }

    pub fn get(&self, id: &str) -> Option<&Protocol> {
        self.protocols.iter().find(|p| p.id == id)
    }

    /// The protocol or a 422 naming the known ids.
    pub fn require(&self, id: &str) -> Result<&Protocol, DomainError> {
        self.get(id).ok_or_else(|| {
            DomainError::field(
                "protocol",
                format!(
                    "unknown protocol '{id}'; known: {}",
                    self.protocols.iter().map(|p| p.id.as_str()).collect::<Vec<_>>().join(", ")
                ),
            )
        })
    }
}

// ---------------------------------------------------------------------------------
// The course schedule generator.

/// What the schedule generator needs besides the protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRequest {
    /// The first session's date.
    pub start: Date,
    /// The patient's age at the start, for age-dependent first doses (esketamine, §2.3).
    #[serde(default)]
    pub age_years: Option<u32>,
    /// Lay open-ended blocks out up to and including this date.
    #[serde(default)]
    pub until: Option<Date>,
    /// The interval chosen for a block whose source leaves it to the clinician
    /// (e.g. esketamine from week 9: 14 or 7 days).
    #[serde(default)]
    pub every_days: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlannedStatus {
    Planned,
    /// Missed, and made up on `date` (was `original_date`).
    Rescheduled,
    /// Moved by the missed-session rule because an earlier session was missed.
    Moved,
    /// Missed and not made up.
    Skipped,
}

/// The dose a planned session calls for, in the protocol's basis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlannedDose {
    pub basis: DoseBasis,
    /// The dose when the protocol fixes one for this session.
    pub value: Option<f64>,
    /// The doses to choose from when it does not.
    pub choices: Vec<f64>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlannedSession {
    /// 1, 2, ... in the order laid out; kept when sessions move.
    pub sequence: u32,
    pub date: Date,
    pub phase: Phase,
    /// Index of the protocol's schedule block.
    pub block: usize,
    pub label: String,
    pub dose: Option<PlannedDose>,
    pub status: PlannedStatus,
    /// The date first planned, when the session has moved.
    pub original_date: Option<Date>,
}

/// A prompt to reassess at a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReassessmentPrompt {
    pub at_sequence: u32,
    pub due_on: Date,
    pub text: String,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CourseSchedule {
    pub protocol_id: String,
    pub start: Date,
    pub sessions: Vec<PlannedSession>,
    pub reassessments: Vec<ReassessmentPrompt>,
    /// What follows the sessions laid out (an open-ended or as-needed block).
    pub continues: Option<String>,
    /// Choices made, warnings, and the history of missed sessions.
    pub notes: Vec<String>,
}

/// The most sessions one open-ended block is laid out to (bounds a far `until`).
pub const MAX_OPEN_ENDED_SESSIONS: u32 = 400;

fn fmt_value(v: f64) -> String {
    crate::dosing::fmt_num(v)
}

fn planned_dose(p: &Protocol, index_in_course: u32, age_years: Option<u32>) -> Option<PlannedDose> {
    let d = &p.dose;
    let unit = d.basis.unit();
    if index_in_course == 0
        && let Some(first) = p.first_dose(age_years)
    {
        return Some(PlannedDose {
            basis: d.basis,
            value: Some(first.value),
            choices: vec![],
            text: format!("{} {unit} (first session; {})", fmt_value(first.value), first.source),
        });
    }
    if let Some(t) = &d.titration {
        let ceiling = t.start + t.increment * f64::from(index_in_course);
        return Some(PlannedDose {
            basis: d.basis,
            value: None,
            choices: vec![],
            text: format!(
                "up to {} {unit}: +{} {unit} a step from {} {unit}, by response and tolerability ({})",
                fmt_value(ceiling),
                fmt_value(t.increment),
                fmt_value(t.start),
                t.source
            ),
        });
    }
    let allowed = p.allowed_doses(age_years);
    if !allowed.is_empty() {
        let list: Vec<String> = allowed.iter().map(|v| fmt_value(*v)).collect();
        return Some(PlannedDose {
            basis: d.basis,
            value: (allowed.len() == 1).then(|| allowed[0]),
            choices: allowed.to_vec(),
            text: format!("{} {unit}", list.join(" or ")),
        });
    }
    d.standard.as_ref().map(|s| PlannedDose {
        basis: d.basis,
        value: Some(s.value),
        choices: vec![],
        text: format!("{} {unit} ({})", fmt_value(s.value), s.source),
    })
}

fn reassessments(p: &Protocol, sessions: &[PlannedSession]) -> Vec<ReassessmentPrompt> {
    let Some(r) = &p.reassessment else { return vec![] };
    let in_phase = || sessions.iter().filter(|s| s.phase == r.after_phase);
    let last = in_phase()
        .filter(|s| s.status != PlannedStatus::Skipped)
        .max_by_key(|s| (s.date, s.sequence))
        .or_else(|| in_phase().next_back());
    last.map(|s| ReassessmentPrompt {
        at_sequence: s.sequence,
        due_on: s.date,
        text: r.text.clone(),
        source: r.source.clone(),
    })
    .into_iter()
    .collect()
}

/// Lays a course out from a protocol and a start date: every session of the fixed
/// blocks, open-ended blocks up to `until`, the planned dose of each session, and the
/// end-of-induction reassessment prompt.
pub fn generate_schedule(p: &Protocol, req: &ScheduleRequest) -> Result<CourseSchedule, DomainError> {
    let mut sessions: Vec<PlannedSession> = Vec::new();
    let mut notes = Vec::new();
    let mut continues = None;
    if p.dose.first_elderly.is_some() && req.age_years.is_none() {
        notes.push(format!(
            "Age not given: the first dose shown is for patients under {}; from that age it is {} {} ({}).",
            p.dose.elderly_from_age.as_ref().map_or(String::new(), |a| fmt_value(a.value)),
            p.dose.first_elderly.as_ref().map_or(String::new(), |f| fmt_value(f.value)),
            p.dose.basis.unit(),
            p.dose.first_elderly.as_ref().map_or("", |f| f.source.as_str()),
        ));
    }
    if let Some(until) = req.until
        && until < req.start
    {
        return Err(DomainError::field("until", "the date to plan until must be on or after the start"));
    }
    for (i, b) in p.schedule.iter().enumerate() {
        let block_start = req.start + Duration::days(i64::from(b.starts_on_day));
        let interval = match &b.cadence {
            Cadence::AsNeeded => {
                continues = Some(format!("{} (not laid out: {})", b.label, b.source));
                continue;
            }
            Cadence::EveryDaysOptions(options) => match req.every_days {
                Some(d) if options.contains(&d) => {
                    notes.push(format!("{}: every {d} days, as chosen ({}).", b.label, b.source));
                    Some(d)
                }
                _ if b.sessions.is_none() && req.until.is_none() => None,
                other => {
                    return Err(DomainError::field(
                        "every_days",
                        format!(
                            "{}: choose the interval, one of {} days ({}){}",
                            b.label,
                            options.iter().map(u32::to_string).collect::<Vec<_>>().join(" or "),
                            b.source,
                            other.map_or(String::new(), |d| format!("; {d} is not one of them"))
                        ),
                    ));
                }
            },
            Cadence::EveryDays(d) => Some(*d),
            Cadence::WeekDays(_) => None,
        };
        let date_of = |k: u32| -> Date {
            match (&b.cadence, interval) {
                (Cadence::WeekDays(days), _) => {
                    let n = days.len() as u32;
                    block_start + Duration::days(i64::from(7 * (k / n) + days[(k % n) as usize]))
                }
                (_, Some(d)) => block_start + Duration::days(i64::from(d * k)),
                _ => unreachable!("as-needed blocks are not laid out"),
            }
        };
        let count = match (b.sessions, req.until) {
            (Some(n), _) => n,
            (None, None) => {
                let how = match (&b.cadence, interval) {
                    (Cadence::EveryDaysOptions(o), None) => {
                        format!("every {} days", o.iter().map(u32::to_string).collect::<Vec<_>>().join(" or "))
                    }
                    (_, Some(d)) => format!("every {d} days"),
                    _ => "on the same weekly pattern".to_string(),
                };
                continues = Some(format!(
                    "{}: {how} from {}, open-ended (give a date to plan until to lay these out; {})",
                    b.label, block_start, b.source
                ));
                continue;
            }
            (None, Some(until)) => {
                if interval.is_none() && !matches!(b.cadence, Cadence::WeekDays(_)) {
                    continue;
                }
                let mut k = 0;
                while k < MAX_OPEN_ENDED_SESSIONS && date_of(k) <= until {
                    k += 1;
                }
                continues = Some(format!("{}: continues after {until} ({})", b.label, b.source));
                k
            }
        };
        for k in 0..count {
            let date = date_of(k);
            if let Some(prev) = sessions.last()
                && date <= prev.date
            {
                return Err(DomainError::Conflict(format!(
                    "protocol '{}': schedule block {} would put a session on {date}, not after the session before it",
                    p.id,
                    i + 1
                )));
            }
            let n = sessions.len() as u32;
            sessions.push(PlannedSession {
                sequence: n + 1,
                date,
                phase: b.phase,
                block: i,
                label: b.label.clone(),
                dose: planned_dose(p, n, req.age_years),
                status: PlannedStatus::Planned,
                original_date: None,
            });
        }
    }
    let reassessments = reassessments(p, &sessions);
    Ok(CourseSchedule { protocol_id: p.id.clone(), start: req.start, sessions, reassessments, continues, notes })
}

/// Applies the protocol's missed-session rule to session `sequence` of `schedule`.
/// `make_up_on` is the date the session will be given instead, where the rule makes it up.
pub fn mark_missed(
    p: &Protocol,
    schedule: &CourseSchedule,
    sequence: u32,
    make_up_on: Option<Date>,
) -> Result<CourseSchedule, DomainError> {
    if schedule.protocol_id != p.id {
        return Err(DomainError::field(
            "protocol",
            format!("this schedule follows '{}', not '{}'", schedule.protocol_id, p.id),
        ));
    }
    let mut out = schedule.clone();
    let idx =
        out.sessions.iter().position(|s| s.sequence == sequence && s.status != PlannedStatus::Skipped).ok_or_else(
            || DomainError::field("sequence", format!("there is no planned session {sequence} to mark missed")),
        )?;
    let missed_on = out.sessions[idx].date;
    let rule = &p.missed_session;
    let why = format!("rule: {} ({})", rule.rule.as_str(), rule.source);
    let next_date = out.sessions[idx + 1..].iter().find(|s| s.status != PlannedStatus::Skipped).map(|s| s.date);
    match rule.rule {
        MissedRule::ShiftFollowing => {
            let Some(on) = make_up_on.filter(|d| *d > missed_on) else {
                return Err(DomainError::field(
                    "make_up_on",
                    format!(
                        "this protocol gives a missed session later and moves the rest: give a make-up date after {missed_on} ({why})"
                    ),
                ));
            };
            let delta = on - missed_on;
            let mut moved = 0;
            for (j, s) in out.sessions.iter_mut().enumerate().skip(idx) {
                if s.status == PlannedStatus::Skipped {
                    continue;
                }
                s.original_date.get_or_insert(s.date);
                s.date += delta;
                if j == idx {
                    s.status = PlannedStatus::Rescheduled;
                } else {
                    if s.status == PlannedStatus::Planned {
                        s.status = PlannedStatus::Moved;
                    }
                    moved += 1;
                }
            }
            out.notes.push(format!(
                "Session {sequence} missed on {missed_on}: given on {on}, and the {moved} session(s) after it moved {} day(s) later ({why}).",
                delta.whole_days()
            ));
        }
        MissedRule::MakeUpWithin => {
            let within = i64::from(rule.within_days.unwrap_or(0));
            match make_up_on {
                Some(on) => {
                    let late = (on - missed_on).whole_days();
                    if on <= missed_on || late > within {
                        return Err(DomainError::field(
                            "make_up_on",
                            format!(
                                "this protocol makes a missed session up within {within} day(s) of {missed_on}; {on} is not: leave the date out to skip it ({why})"
                            ),
                        ));
                    }
                    if let Some(next) = next_date
                        && on >= next
                    {
                        return Err(DomainError::field(
                            "make_up_on",
                            format!(
                                "{on} is not before the next session on {next}: leave the date out to skip it ({why})"
                            ),
                        ));
                    }
                    let s = &mut out.sessions[idx];
                    s.original_date.get_or_insert(s.date);
                    s.date = on;
                    s.status = PlannedStatus::Rescheduled;
                    out.notes.push(format!(
                        "Session {sequence} missed on {missed_on}: made up on {on}; the others stand ({why})."
                    ));
                }
                None => {
                    out.sessions[idx].status = PlannedStatus::Skipped;
                    out.notes.push(format!("Session {sequence} missed on {missed_on}: skipped, not made up ({why})."));
                }
            }
        }
        MissedRule::Skip => {
            if make_up_on.is_some() {
                return Err(DomainError::field(
                    "make_up_on",
                    format!("this protocol skips missed sessions; leave the make-up date out ({why})"),
                ));
            }
            out.sessions[idx].status = PlannedStatus::Skipped;
            out.notes.push(format!("Session {sequence} missed on {missed_on}: skipped ({why})."));
        }
    }
    out.reassessments = reassessments(p, &out.sessions);
    Ok(out)
}

#[cfg(test)]
mod tests;
