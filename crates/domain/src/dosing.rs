//! The dose calculator and cumulative exposure.
//!
//! The pump arithmetic is clinical-reference §2.1's, implemented exactly with unit types:
//!
//! ```text
//! dose_mg        = weight_kg × dose_mg_per_kg
//! drug_volume_mL = dose_mg ÷ vial_concentration_mg_per_mL
//! bag_conc_mg_mL = dose_mg ÷ final_bag_volume_mL          (final volume incl. drug volume)
//! rate_mL_per_h  = final_bag_volume_mL ÷ (infusion_min ÷ 60)
//! dose_rate_mg_h = dose_mg ÷ (infusion_min ÷ 60)          (= rate_mL_per_h × bag_conc)
//! ```
//!
//! `÷ (min ÷ 60)` is computed as `× 60 ÷ min`: the same number without the binary rounding
//! of 40/60, so the worked examples come out as printed (150 mL/h, not 150.00000000000003).
//!
//! Whether the final bag volume includes the drug volume is an explicit choice
//! ([`BagVolume`]): §2.1's formula makes the bag up to a final volume that includes the
//! drug; a clinic that adds the drug to a bag of diluent instead gets a final volume of
//! diluent + drug volume (35 mg from a 50 mg/mL vial adds 0.7 mL). Rounding to the pump's
//! resolution is a setting ([`PumpSettings`]); the exact values are always shown beside
//! the rounded ones.
//!
//! Limits come from the protocol (and may be tightened, never loosened, by the request).
//! A dose outside them is refused with the reason; where the reference has no consensus
//! (§2.1: no consensus maximum verified) the protocol leaves the maximum to the clinic and
//! the calculation says that none is set.

use serde::{Deserialize, Serialize};
use time::{Date, Duration, OffsetDateTime};

use crate::course::Route;
use crate::error::{DomainError, FieldError, Validator};
use crate::ids::{PatientId, SessionId};
use crate::patient::WeightType;
use crate::plausible::Quantity;
use crate::protocols::{DoseBasis, Drug, Protocol, SourcedValue};
use crate::units::{Kilograms, MgPerHour, MgPerKg, MgPerMl, Milligrams, Millilitres, Minutes, MlPerHour};

/// A weight-based dose rate (chronic-pain infusions, clinical-reference §2.5).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct MgPerKgPerHour(pub f64);

impl MgPerKgPerHour {
    pub const SYMBOL: &'static str = "mg/kg/h";
    pub fn value(self) -> f64 {
        self.0
    }
}

/// The dose asked for, in one of the ways protocols express it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DoseAmount {
    /// `{"mg_per_kg": 0.5}`
    MgPerKg(MgPerKg),
    /// `{"mg": 56}`
    Mg(Milligrams),
    /// `{"mg_per_kg_per_h": 0.35}`: for the infusion time.
    MgPerKgPerH(MgPerKgPerHour),
    /// `{"mg_per_h": 22}`: for the infusion time.
    MgPerH(MgPerHour),
}

impl DoseAmount {
    pub fn basis(self) -> DoseBasis {
        match self {
            DoseAmount::MgPerKg(_) => DoseBasis::MgPerKg,
            DoseAmount::Mg(_) => DoseBasis::Mg,
            DoseAmount::MgPerKgPerH(_) => DoseBasis::MgPerKgPerH,
            DoseAmount::MgPerH(_) => DoseBasis::MgPerH,
        }
    }
    /// What the value measures, for its plausible range.
    pub fn quantity(self) -> Quantity {
        match self {
            DoseAmount::MgPerKg(_) => Quantity::MgPerKg,
            DoseAmount::Mg(_) => Quantity::Mg,
            DoseAmount::MgPerKgPerH(_) => Quantity::MgPerKgPerH,
            DoseAmount::MgPerH(_) => Quantity::MgPerH,
        }
    }

    pub fn value(self) -> f64 {
        match self {
            DoseAmount::MgPerKg(v) => v.0,
            DoseAmount::Mg(v) => v.0,
            DoseAmount::MgPerKgPerH(v) => v.0,
            DoseAmount::MgPerH(v) => v.0,
        }
    }
}

/// How the bag is made up: the explicit choice §2.1's implementation notes ask for.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BagVolume {
    /// The bag is made up to this final volume, the drug volume included (§2.1's formula):
    /// diluent = final − drug volume.
    FinalVolumeIncludingDrugMl(Millilitres),
    /// The drug is added to this volume of diluent: final = diluent + drug volume.
    DiluentVolumeMl(Millilitres),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Rounding {
    /// To the nearest step.
    #[default]
    Nearest,
    /// Down to the step below (never more than calculated).
    Down,
}

/// The pump and syringe the clinic uses. Resolutions are clinic settings: the reference
/// gives none; without them nothing is rounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PumpSettings {
    /// The smallest step the pump's rate can be set in, e.g. 0.1 mL/h.
    #[serde(default)]
    pub rate_resolution_ml_per_h: Option<MlPerHour>,
    /// The graduation the drug volume is drawn up to, e.g. 0.1 mL.
    #[serde(default)]
    pub volume_resolution_ml: Option<Millilitres>,
    /// The pump's maximum rate; a faster programme is refused.
    #[serde(default)]
    pub max_rate_ml_per_h: Option<MlPerHour>,
    #[serde(default)]
    pub rounding: Rounding,
}

fn default_weight_type() -> WeightType {
    WeightType::Actual
}

/// Everything the calculator needs. The same shape is posted to calculate (pure) and to
/// record a checked dose for a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DoseRequest {
    /// The protocol whose limits and rules apply (id from `GET /api/v1/protocols`).
    #[serde(default)]
    pub protocol: Option<String>,
    /// The route, when no protocol is given (a protocol fixes it).
    #[serde(default)]
    pub route: Option<Route>,
    pub weight_kg: Kilograms,
    /// Which weight is used for dosing (a clinical decision, §2.1).
    #[serde(default = "default_weight_type")]
    pub weight_type: WeightType,
    pub dose: DoseAmount,
    /// The vial's concentration (e.g. 10, 50 or 100 mg/mL, §2.1).
    #[serde(default)]
    pub vial_mg_per_ml: Option<MgPerMl>,
    #[serde(default)]
    pub bag: Option<BagVolume>,
    /// The infusion time; defaults to the protocol's.
    #[serde(default)]
    pub infusion_min: Option<Minutes>,
    #[serde(default)]
    pub pump: PumpSettings,
    /// For age-dependent doses (esketamine from 65, §2.3).
    #[serde(default)]
    pub age_years: Option<u32>,
    /// The first session of the course (esketamine's day-1 dose, §2.3).
    #[serde(default)]
    pub first_session: bool,
    /// A maximum this request adds; it can only tighten the protocol's.
    #[serde(default)]
    pub max_mg_per_kg: Option<MgPerKg>,
    #[serde(default)]
    pub max_mg: Option<Milligrams>,
}

impl DoseRequest {
    /// The common case: `mg_per_kg` for a patient of `weight_kg`, nothing else set.
    pub fn per_kg(weight_kg: f64, mg_per_kg: f64) -> Self {
        Self {
            protocol: None,
            route: None,
            weight_kg: Kilograms(weight_kg),
            weight_type: WeightType::Actual,
            dose: DoseAmount::MgPerKg(MgPerKg(mg_per_kg)),
            vial_mg_per_ml: None,
            bag: None,
            infusion_min: None,
            pump: PumpSettings::default(),
            age_years: None,
            first_session: false,
            max_mg_per_kg: None,
            max_mg: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DoseRate {
    pub mg_per_h: MgPerHour,
    pub mg_per_kg_per_h: MgPerKgPerHour,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DrugVolume {
    pub vial_mg_per_ml: MgPerMl,
    /// dose ÷ vial concentration, exact.
    pub volume_ml: Millilitres,
    /// The volume to draw up, rounded to the syringe's resolution (= `volume_ml` without one).
    pub volume_ml_to_draw: Millilitres,
    pub volume_resolution_ml: Option<Millilitres>,
    /// What the drawn volume holds.
    pub mg_in_volume_drawn: Milligrams,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BagPreparation {
    /// True when the final volume includes the drug volume (§2.1's formula).
    pub final_volume_includes_drug: bool,
    pub final_volume_ml: Millilitres,
    /// Diluent in the bag, when the drug volume is known.
    pub diluent_volume_ml: Option<Millilitres>,
    /// dose ÷ final volume.
    pub concentration_mg_per_ml: MgPerMl,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PumpProgramme {
    /// final volume ÷ (infusion min ÷ 60), exact.
    pub rate_ml_per_h: MlPerHour,
    pub rate_resolution_ml_per_h: Option<MlPerHour>,
    /// The rate to set on the pump, rounded to its resolution (= `rate_ml_per_h` without one).
    pub rate_ml_per_h_to_set: MlPerHour,
    /// What the set rate delivers: set rate × bag concentration.
    pub dose_rate_mg_per_h_at_set_rate: MgPerHour,
    /// How long the bag runs at the set rate.
    pub run_min_at_set_rate: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NasalAdministration {
    pub devices: u32,
    pub mg_per_device: Milligrams,
    pub minutes_between_devices: f64,
    /// From the first device to the last.
    pub minutes_first_to_last: f64,
}

/// The calculation, with every step written out for the second-person check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DoseCalculation {
    pub protocol: Option<String>,
    pub route: Option<Route>,
    pub weight_kg: Kilograms,
    pub weight_type: WeightType,
    pub dose_mg: Milligrams,
    /// dose ÷ weight (the requested mg/kg for weight-based doses).
    pub dose_mg_per_kg: MgPerKg,
    pub infusion_min: Option<Minutes>,
    /// dose ÷ (infusion min ÷ 60), when there is an infusion time.
    pub dose_rate: Option<DoseRate>,
    pub drug_volume: Option<DrugVolume>,
    pub bag: Option<BagPreparation>,
    pub pump: Option<PumpProgramme>,
    pub nasal: Option<NasalAdministration>,
    /// The limits the dose was checked against, with their sources.
    pub limits_checked: Vec<String>,
    /// Not refusals: things the checker should see (outside the reported range, no
    /// maximum set, rounding changed the rate, ...).
    pub warnings: Vec<String>,
    /// The arithmetic, one line per formula.
    pub steps: Vec<String>,
}

/// A number for people: up to 4 decimals, no trailing zeros.
pub fn fmt_num(x: f64) -> String {
    let s = format!("{x:.4}");
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { &s };
    if s == "-0" { "0".into() } else { s.to_string() }
}

/// `x` to a multiple of `step`, with binary noise removed (0.1 × 1500 is 150, not
/// 150.00000000000003).
pub fn round_to_step(x: f64, step: f64, mode: Rounding) -> f64 {
    let n = x / step;
    if !n.is_finite() {
        // A step finer than a float can count (a resolution of 1e-320): nothing to round to.
        return x;
    }
    let n = match mode {
        Rounding::Nearest => n.round(),
        Rounding::Down => (n + 1e-9).floor(),
    };
    ((n * step) * 1e9).round() / 1e9
}

fn same(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// A positive quantity within its plausible range (`data/rules/plausible-ranges.toml`), so
/// every figure computed from it stays finite.
fn bounded(v: &mut Validator, q: Quantity, x: f64, field: &str, what: &str) {
    crate::plausible::check(v, field, crate::plausible::ranges().quantity(q, x, what));
}

/// What a calculation gathers as it goes: the arithmetic shown to the user, warnings, the
/// limits it checked and the reasons to refuse, in the order they arose.
#[derive(Default)]
struct Worksheet {
    steps: Vec<String>,
    warnings: Vec<String>,
    limits_checked: Vec<String>,
    refusals: Vec<FieldError>,
}

impl Worksheet {
    fn refuse(&mut self, field: &str, m: String) {
        self.refusals.push(FieldError::new(field, m));
    }
    fn check_max(&mut self, actual: f64, unit: &str, lim: &SourcedValue, whose: &str) {
        self.limits_checked.push(format!("maximum {} {unit} ({})", fmt_num(lim.value), lim.source));
        if actual > lim.value && !same(actual, lim.value) {
            self.refuse(
                "dose",
                format!(
                    "{} {unit} is above {whose} maximum of {} {unit} ({})",
                    fmt_num(actual),
                    fmt_num(lim.value),
                    lim.source
                ),
            );
        }
    }
    fn check_min(&mut self, actual: f64, unit: &str, lim: &SourcedValue) {
        self.limits_checked.push(format!("minimum {} {unit} ({})", fmt_num(lim.value), lim.source));
        if actual < lim.value && !same(actual, lim.value) {
            self.refuse(
                "dose",
                format!(
                    "{} {unit} is below this protocol's minimum of {} {unit} ({})",
                    fmt_num(actual),
                    fmt_num(lim.value),
                    lim.source
                ),
            );
        }
    }
}

fn hours_text(m: Minutes) -> String {
    format!("({} min ÷ 60)", m.0)
}

/// Calculates a dose per clinical-reference §2.1 and checks it against the protocol's
/// limits. A dose outside a limit is refused (422) with the reason and the limit's source.
pub fn calculate(req: &DoseRequest, protocol: Option<&Protocol>) -> Result<DoseCalculation, DomainError> {
    check_request(req, protocol)?;
    let route = protocol.map(|p| p.route).or(req.route);
    let mut ws = Worksheet::default();

    // The infusion time: the request's, else the protocol's.
    let infusion_min: Option<Minutes> =
        req.infusion_min.or_else(|| protocol.and_then(|p| p.infusion_minutes()).map(|m| Minutes(m.round() as i64)));
    if infusion_min.is_some() && route.is_some_and(|r| r != Route::IvRacemic) {
        return Err(DomainError::field("infusion_min", "an infusion time is for IV infusions"));
    }
    let dose_mg = dose_in_mg(req, infusion_min, &mut ws)?;
    let w = req.weight_kg.0;
    let dose_mg_per_kg = MgPerKg(dose_mg.0 / w);
    if req.dose.basis() != DoseBasis::MgPerKg {
        ws.steps.push(format!(
            "dose per kg = {} mg ÷ {} kg = {} mg/kg",
            fmt_num(dose_mg.0),
            fmt_num(w),
            fmt_num(dose_mg_per_kg.0)
        ));
    }
    if req.weight_type != WeightType::Actual {
        ws.warnings.push(format!(
            "dosed on the {} weight (the dosing-weight policy is a clinical decision, §2.1)",
            req.weight_type.as_str()
        ));
    }

    // dose_rate_mg_h = dose_mg ÷ (infusion_min ÷ 60)
    let dose_rate = infusion_min.map(|m| {
        let mg_h = MgPerHour(dose_mg.0 * 60.0 / m.0 as f64);
        ws.steps.push(format!("dose rate = {} mg ÷ {} = {} mg/h", fmt_num(dose_mg.0), hours_text(m), fmt_num(mg_h.0)));
        DoseRate { mg_per_h: mg_h, mg_per_kg_per_h: MgPerKgPerHour(mg_h.0 / w) }
    });
    let drug_volume = req.vial_mg_per_ml.map(|c| drug_volume(req, dose_mg, c, &mut ws));
    let bag = bag_preparation(req, dose_mg, drug_volume.as_ref(), &mut ws)?;
    let pump = pump_programme(req, route, bag.as_ref(), infusion_min, dose_rate.as_ref(), &mut ws)?;

    // The 100 mg/mL concentration must be diluted before IV use (§2.1, [S11]).
    if route == Some(Route::IvRacemic) && bag.is_none() && req.vial_mg_per_ml.is_some_and(|c| c.0 >= 100.0) {
        ws.refuse(
            "bag",
            "the 100 mg/mL concentration must be diluted before IV use (clinical-reference §2.1, anaesthetic label [S11]): give the bag".into(),
        );
    }

    // Limits and the protocol's dose rules.
    let dose = Dose { mg: dose_mg, mg_per_kg: dose_mg_per_kg, rate: dose_rate.as_ref(), infusion_min };
    let nasal = match protocol {
        Some(p) => protocol_rules(req, p, &dose, &mut ws),
        None => {
            ws.warnings.push("no protocol given: only the limits in the request are checked".into());
            None
        }
    };
    let request_limit = |v: f64| SourcedValue { value: v, source: "given with this calculation".into() };
    if let Some(m) = req.max_mg_per_kg {
        ws.check_max(dose_mg_per_kg.0, "mg/kg", &request_limit(m.0), "the requested");
    }
    if let Some(m) = req.max_mg {
        ws.check_max(dose_mg.0, "mg", &request_limit(m.0), "the requested");
    }
    if !ws.refusals.is_empty() {
        return Err(DomainError::Invalid(ws.refusals));
    }
    Ok(DoseCalculation {
        protocol: protocol.map(|p| p.id.clone()),
        route,
        weight_kg: req.weight_kg,
        weight_type: req.weight_type,
        dose_mg,
        dose_mg_per_kg,
        infusion_min,
        dose_rate,
        drug_volume,
        bag,
        pump,
        nasal,
        limits_checked: ws.limits_checked,
        warnings: ws.warnings,
        steps: ws.steps,
    })
}

/// Input plausibility first (not clinical rules): every problem at once.
fn check_request(req: &DoseRequest, protocol: Option<&Protocol>) -> Result<(), DomainError> {
    let mut v = Validator::new();
    // The same entry range as a recorded weight: catches lb-for-kg and typos.
    crate::plausible::check(&mut v, "weight_kg", crate::plausible::ranges().body_weight(req.weight_kg));
    bounded(&mut v, req.dose.quantity(), req.dose.value(), "dose", "the dose");
    if let Some(c) = req.vial_mg_per_ml {
        bounded(&mut v, Quantity::MgPerMl, c.0, "vial_mg_per_ml", "the vial concentration");
    }
    match req.bag {
        Some(BagVolume::FinalVolumeIncludingDrugMl(ml)) => {
            bounded(&mut v, Quantity::Ml, ml.0, "bag.final_volume_including_drug_ml", "the final bag volume")
        }
        Some(BagVolume::DiluentVolumeMl(ml)) => {
            bounded(&mut v, Quantity::Ml, ml.0, "bag.diluent_volume_ml", "the diluent volume")
        }
        None => {}
    }
    if let Some(m) = req.infusion_min {
        v.check(m.0 > 0, "infusion_min", "the infusion time must be at least 1 minute");
    }
    for (x, q, field) in [
        (req.pump.rate_resolution_ml_per_h.map(|r| r.0), Quantity::MlPerH, "pump.rate_resolution_ml_per_h"),
        (req.pump.volume_resolution_ml.map(|r| r.0), Quantity::Ml, "pump.volume_resolution_ml"),
        (req.pump.max_rate_ml_per_h.map(|r| r.0), Quantity::MlPerH, "pump.max_rate_ml_per_h"),
        (req.max_mg_per_kg.map(|r| r.0), Quantity::MgPerKg, "max_mg_per_kg"),
        (req.max_mg.map(|r| r.0), Quantity::Mg, "max_mg"),
    ] {
        if let Some(x) = x {
            bounded(&mut v, q, x, field, field);
        }
    }
    if let Some(a) = req.age_years {
        let max = crate::plausible::ranges().quantity_max(Quantity::AgeYears);
        v.check(f64::from(a) <= max, "age_years", format!("age must be 0-{max} years"));
    }
    match (&req.protocol, protocol) {
        (Some(id), Some(p)) if *id != p.id => {
            v.push("protocol", format!("the request names '{id}' but '{}' was applied", p.id))
        }
        (Some(id), None) => v.push("protocol", format!("unknown protocol '{id}'")),
        _ => {}
    }
    if let (Some(r), Some(p)) = (req.route, protocol)
        && r != p.route
    {
        v.push("route", format!("protocol '{}' is for {}, not {}", p.id, p.route.label(), r.label()));
    }
    v.finish()
}

/// The dose in mg, from a weight-based or fixed dose, or a rate over the infusion time.
fn dose_in_mg(req: &DoseRequest, infusion_min: Option<Minutes>, ws: &mut Worksheet) -> Result<Milligrams, DomainError> {
    let w = req.weight_kg.0;
    Ok(match req.dose {
        DoseAmount::MgPerKg(d) => {
            let mg = req.weight_kg * d;
            ws.steps.push(format!("dose = {} kg × {} mg/kg = {} mg", fmt_num(w), fmt_num(d.0), fmt_num(mg.0)));
            mg
        }
        DoseAmount::Mg(mg) => {
            ws.steps.push(format!("dose = {} mg (fixed)", fmt_num(mg.0)));
            mg
        }
        DoseAmount::MgPerKgPerH(_) | DoseAmount::MgPerH(_) if infusion_min.is_none() => {
            return Err(DomainError::field("infusion_min", "a dose given as a rate needs the infusion time"));
        }
        DoseAmount::MgPerKgPerH(r) => {
            let m = infusion_min.expect("checked above");
            let mg = Milligrams(w * r.0 * m.0 as f64 / 60.0);
            ws.steps.push(format!(
                "dose = {} kg × {} mg/kg/h × {} = {} mg",
                fmt_num(w),
                fmt_num(r.0),
                hours_text(m),
                fmt_num(mg.0)
            ));
            mg
        }
        DoseAmount::MgPerH(r) => {
            let m = infusion_min.expect("checked above");
            let mg = Milligrams(r.0 * m.0 as f64 / 60.0);
            ws.steps.push(format!("dose = {} mg/h × {} = {} mg", fmt_num(r.0), hours_text(m), fmt_num(mg.0)));
            mg
        }
    })
}

/// drug_volume_mL = dose_mg ÷ vial_concentration_mg_per_mL, and what is drawn up at the
/// syringe's resolution.
fn drug_volume(req: &DoseRequest, dose_mg: Milligrams, c: MgPerMl, ws: &mut Worksheet) -> DrugVolume {
    let ml = Millilitres(dose_mg.0 / c.0);
    ws.steps.push(format!("drug volume = {} mg ÷ {} mg/mL = {} mL", fmt_num(dose_mg.0), fmt_num(c.0), fmt_num(ml.0)));
    let to_draw = match req.pump.volume_resolution_ml {
        Some(r) => {
            let d = Millilitres(round_to_step(ml.0, r.0, req.pump.rounding));
            if !same(d.0, ml.0) {
                ws.warnings.push(format!(
                    "the drug volume {} mL is drawn up as {} mL (resolution {} mL): {} mg",
                    fmt_num(ml.0),
                    fmt_num(d.0),
                    fmt_num(r.0),
                    fmt_num(d.0 * c.0)
                ));
            }
            d
        }
        None => ml,
    };
    DrugVolume {
        vial_mg_per_ml: c,
        volume_ml: ml,
        volume_ml_to_draw: to_draw,
        volume_resolution_ml: req.pump.volume_resolution_ml,
        mg_in_volume_drawn: Milligrams(to_draw.0 * c.0),
    }
}

/// bag_conc_mg_mL = dose_mg ÷ final_bag_volume_mL, with the final volume either given
/// (drug included) or the diluent plus the drug.
fn bag_preparation(
    req: &DoseRequest,
    dose_mg: Milligrams,
    drug_volume: Option<&DrugVolume>,
    ws: &mut Worksheet,
) -> Result<Option<BagPreparation>, DomainError> {
    let (includes, final_ml, diluent) = match req.bag {
        None => return Ok(None),
        Some(BagVolume::FinalVolumeIncludingDrugMl(final_ml)) => {
            let diluent = drug_volume.map(|d| Millilitres(final_ml.0 - d.volume_ml.0));
            if let Some(dil) = diluent
                && dil.0 < 0.0
            {
                return Err(DomainError::field(
                    "bag",
                    format!(
                        "the drug volume ({} mL) is more than the final bag volume ({} mL)",
                        fmt_num(final_ml.0 - dil.0),
                        fmt_num(final_ml.0)
                    ),
                ));
            }
            ws.steps.push(match diluent {
                Some(d) => format!(
                    "bag: made up to {} mL final volume, drug included ({} mL diluent + {} mL drug)",
                    fmt_num(final_ml.0),
                    fmt_num(d.0),
                    fmt_num(final_ml.0 - d.0)
                ),
                None => format!("bag: made up to {} mL final volume, drug included", fmt_num(final_ml.0)),
            });
            (true, final_ml, diluent)
        }
        Some(BagVolume::DiluentVolumeMl(diluent)) => {
            let Some(d) = drug_volume else {
                return Err(DomainError::field(
                    "vial_mg_per_ml",
                    "when the drug is added to the diluent the final volume includes the drug volume: give the vial concentration",
                ));
            };
            let final_ml = Millilitres(diluent.0 + d.volume_ml.0);
            ws.steps.push(format!(
                "bag: {} mL diluent + {} mL drug = {} mL final volume",
                fmt_num(diluent.0),
                fmt_num(d.volume_ml.0),
                fmt_num(final_ml.0)
            ));
            (false, final_ml, Some(diluent))
        }
    };
    let conc = MgPerMl(dose_mg.0 / final_ml.0);
    ws.steps.push(format!(
        "bag concentration = {} mg ÷ {} mL = {} mg/mL",
        fmt_num(dose_mg.0),
        fmt_num(final_ml.0),
        fmt_num(conc.0)
    ));
    Ok(Some(BagPreparation {
        final_volume_includes_drug: includes,
        final_volume_ml: final_ml,
        diluent_volume_ml: diluent,
        concentration_mg_per_ml: conc,
    }))
}

/// rate_mL_per_h = final_bag_volume_mL ÷ (infusion_min ÷ 60), and the rate the pump can be
/// set to at its resolution.
fn pump_programme(
    req: &DoseRequest,
    route: Option<Route>,
    bag: Option<&BagPreparation>,
    infusion_min: Option<Minutes>,
    dose_rate: Option<&DoseRate>,
    ws: &mut Worksheet,
) -> Result<Option<PumpProgramme>, DomainError> {
    let (b, m) = match (bag, infusion_min) {
        (Some(b), Some(m)) => (b, m),
        (Some(_), None) if route == Some(Route::IvRacemic) => {
            ws.warnings.push("no infusion time: the pump rate cannot be calculated".into());
            return Ok(None);
        }
        _ => return Ok(None),
    };
    let rate = MlPerHour(b.final_volume_ml.0 * 60.0 / m.0 as f64);
    ws.steps.push(format!(
        "pump rate = {} mL ÷ {} = {} mL/h",
        fmt_num(b.final_volume_ml.0),
        hours_text(m),
        fmt_num(rate.0)
    ));
    if let Some(r) = dose_rate {
        ws.steps.push(format!(
            "check: {} mL/h × {} mg/mL = {} mg/h",
            fmt_num(rate.0),
            fmt_num(b.concentration_mg_per_ml.0),
            fmt_num(rate.0 * b.concentration_mg_per_ml.0)
        ));
        debug_assert!(same(rate.0 * b.concentration_mg_per_ml.0, r.mg_per_h.0));
    }
    let set = match req.pump.rate_resolution_ml_per_h {
        Some(res) => MlPerHour(round_to_step(rate.0, res.0, req.pump.rounding)),
        None => rate,
    };
    if set.0 <= 0.0 {
        return Err(DomainError::field(
            "pump.rate_resolution_ml_per_h",
            format!("{} mL/h rounds to 0 at a resolution of {} mL/h", fmt_num(rate.0), fmt_num(set.0)),
        ));
    }
    let run_min = b.final_volume_ml.0 * 60.0 / set.0;
    let delivered = MgPerHour(set.0 * b.concentration_mg_per_ml.0);
    if !same(set.0, rate.0) {
        ws.warnings.push(format!(
            "the pump is set to {} mL/h (resolution {} mL/h) instead of {} mL/h: {} mg/h, and the bag runs {} min instead of {}",
            fmt_num(set.0),
            fmt_num(req.pump.rate_resolution_ml_per_h.map_or(0.0, |r| r.0)),
            fmt_num(rate.0),
            fmt_num(delivered.0),
            fmt_num(run_min),
            m.0
        ));
    }
    if let Some(max) = req.pump.max_rate_ml_per_h
        && set.0 > max.0 + 1e-9
    {
        ws.refuse(
            "pump",
            format!(
                "{} mL/h is above the pump's maximum of {} mL/h: use a smaller bag or a longer infusion",
                fmt_num(set.0),
                fmt_num(max.0)
            ),
        );
    }
    Ok(Some(PumpProgramme {
        rate_ml_per_h: rate,
        rate_resolution_ml_per_h: req.pump.rate_resolution_ml_per_h,
        rate_ml_per_h_to_set: set,
        dose_rate_mg_per_h_at_set_rate: delivered,
        run_min_at_set_rate: run_min,
    }))
}

/// The dose as calculated, for the protocol's rules.
struct Dose<'a> {
    mg: Milligrams,
    mg_per_kg: MgPerKg,
    rate: Option<&'a DoseRate>,
    infusion_min: Option<Minutes>,
}

/// The protocol's rules: its limits, allowed and first-session doses, reported ranges,
/// infusion time and, for a nasal spray, the devices.
fn protocol_rules(req: &DoseRequest, p: &Protocol, dose: &Dose<'_>, ws: &mut Worksheet) -> Option<NasalAdministration> {
    protocol_limits(req, p, dose, ws);
    allowed_doses(req, p, ws);
    first_session_dose(req, p, ws);
    reported_doses(req, p, dose, ws);
    p.device.as_ref().and_then(|dev| nasal_devices(dose.mg, dev, ws))
}

fn protocol_limits(req: &DoseRequest, p: &Protocol, dose: &Dose<'_>, ws: &mut Worksheet) {
    let l = &p.limits;
    if req.dose.basis() != p.dose.basis {
        ws.refuse(
            "dose",
            format!("protocol '{}' doses in {}; give the dose as {}", p.id, p.dose.basis.unit(), p.dose.basis.unit()),
        );
    }
    if let Some(lim) = &l.max_mg_per_kg {
        ws.check_max(dose.mg_per_kg.0, "mg/kg", lim, "this protocol's");
    }
    if let Some(lim) = &l.max_mg {
        ws.check_max(dose.mg.0, "mg", lim, "this protocol's");
    }
    if let Some(lim) = &l.min_mg_per_kg {
        ws.check_min(dose.mg_per_kg.0, "mg/kg", lim);
    }
    if let Some(lim) = &l.min_mg {
        ws.check_min(dose.mg.0, "mg", lim);
    }
    if let (Some(lim), Some(r)) = (&l.max_mg_per_kg_per_h, dose.rate) {
        ws.check_max(r.mg_per_kg_per_h.0, "mg/kg/h", lim, "this protocol's");
    }
    if let (Some(lim), Some(r)) = (&l.max_mg_per_h, dose.rate) {
        ws.check_max(r.mg_per_h.0, "mg/h", lim, "this protocol's");
    }
    let rate_basis = matches!(p.dose.basis, DoseBasis::MgPerKgPerH | DoseBasis::MgPerH);
    let has_max = l.has_maximum()
        || (rate_basis && (l.max_mg_per_kg_per_h.is_some() || l.max_mg_per_h.is_some()))
        || req.max_mg_per_kg.is_some()
        || req.max_mg.is_some();
    if !has_max {
        ws.warnings.push(format!(
            "no maximum dose is set for protocol '{}': it is a clinic setting (the reference has no consensus maximum, e.g. §2.1); the medical director sets it in the clinic's copy of the protocol",
            p.id
        ));
    }
}

/// The doses the protocol allows (the label's, or the clinic's titration steps).
fn allowed_doses(req: &DoseRequest, p: &Protocol, ws: &mut Worksheet) {
    let allowed = p.allowed_doses(req.age_years);
    if allowed.is_empty() || req.dose.basis() != p.dose.basis {
        return;
    }
    let requested = req.dose.value();
    let unit = req.dose.basis().unit();
    let list = |v: &[f64]| v.iter().map(|x| fmt_num(*x)).collect::<Vec<_>>().join(", ");
    let source = match (p.is_elderly(req.age_years), &p.dose.allowed_elderly) {
        (Some(true), Some(e)) => &e.source,
        _ => &p.dose.allowed.as_ref().expect("non-empty").source,
    };
    ws.limits_checked.push(format!("allowed doses {} {unit} ({source})", list(allowed)));
    if !allowed.iter().any(|a| same(*a, requested)) {
        let elderly_only =
            p.dose.allowed_elderly.as_ref().is_some_and(|e| e.values.iter().any(|a| same(*a, requested)));
        let why = if elderly_only && req.age_years.is_none() {
            format!(
                "; {} {unit} is allowed from age {}: give the patient's age",
                fmt_num(requested),
                p.dose.elderly_from_age.as_ref().map_or(String::new(), |a| fmt_num(a.value))
            )
        } else {
            String::new()
        };
        ws.refuse(
            "dose",
            format!(
                "{} {unit} is not one of this protocol's doses ({} {unit}; {source}){why}",
                fmt_num(requested),
                list(allowed)
            ),
        );
    }
}

fn first_session_dose(req: &DoseRequest, p: &Protocol, ws: &mut Worksheet) {
    if !req.first_session {
        return;
    }
    let Some(first) = p.first_dose(req.age_years) else { return };
    let requested = req.dose.value();
    let unit = req.dose.basis().unit();
    ws.limits_checked.push(format!("first-session dose {} {unit} ({})", fmt_num(first.value), first.source));
    if !same(first.value, requested) && req.dose.basis() == p.dose.basis {
        ws.refuse(
            "dose",
            format!(
                "the first session's dose is {} {unit} ({}), not {} {unit}",
                fmt_num(first.value),
                first.source,
                fmt_num(requested)
            ),
        );
    }
    if p.dose.first_elderly.is_some() && req.age_years.is_none() {
        ws.warnings.push(format!(
            "age not given: the first-session dose from age {} is {} {unit} ({})",
            p.dose.elderly_from_age.as_ref().map_or(String::new(), |a| fmt_num(a.value)),
            p.dose.first_elderly.as_ref().map_or(String::new(), |f| fmt_num(f.value)),
            p.dose.first_elderly.as_ref().map_or("", |f| f.source.as_str()),
        ));
    }
}

/// Warnings, not refusals: a dose or infusion time outside what the literature reports, or
/// different from the protocol's standard.
fn reported_doses(req: &DoseRequest, p: &Protocol, dose: &Dose<'_>, ws: &mut Worksheet) {
    let requested = req.dose.value();
    let unit = req.dose.basis().unit();
    if let Some(r) = &p.dose.reported_range
        && req.dose.basis() == p.dose.basis
        && (requested < r.min - 1e-9 || requested > r.max + 1e-9)
    {
        ws.warnings.push(format!(
            "{} {unit} is outside the reported range of {}-{} {unit} ({})",
            fmt_num(requested),
            fmt_num(r.min),
            fmt_num(r.max),
            r.source
        ));
    }
    if let Some(s) = &p.dose.standard
        && req.dose.basis() == p.dose.basis
        && !same(s.value, requested)
    {
        ws.warnings.push(format!(
            "{} {unit} differs from the protocol's standard dose of {} {unit} ({})",
            fmt_num(requested),
            fmt_num(s.value),
            s.source
        ));
    }
    let Some(inf) = &p.infusion else { return };
    if let (Some(std), Some(m)) = (&inf.minutes, req.infusion_min)
        && !same(std.value, m.0 as f64)
    {
        ws.warnings.push(format!(
            "an infusion of {} min differs from the protocol's {} min ({})",
            m.0,
            fmt_num(std.value),
            std.source
        ));
    }
    if let (Some(r), Some(m)) = (&inf.reported_minutes_range, dose.infusion_min)
        && ((m.0 as f64) < r.min || (m.0 as f64) > r.max)
    {
        ws.warnings.push(format!(
            "{} min is outside the reported {}-{} min ({})",
            m.0,
            fmt_num(r.min),
            fmt_num(r.max),
            r.source
        ));
    }
}

/// A nasal spray dose as a whole number of devices, given a set time apart.
fn nasal_devices(
    dose_mg: Milligrams,
    dev: &crate::protocols::Device,
    ws: &mut Worksheet,
) -> Option<NasalAdministration> {
    let per = dev.mg_per_device.value;
    let n = dose_mg.0 / per;
    if (n - n.round()).abs() > 1e-9 || n.round() < 1.0 {
        ws.refuse(
            "dose",
            format!(
                "{} mg is not a whole number of {} mg devices ({})",
                fmt_num(dose_mg.0),
                fmt_num(per),
                dev.mg_per_device.source
            ),
        );
        return None;
    }
    let devices = n.round() as u32;
    let between = dev.minutes_between.value;
    ws.steps.push(format!(
        "devices = {} mg ÷ {} mg = {devices}, {} min apart ({} min from the first to the last)",
        fmt_num(dose_mg.0),
        fmt_num(per),
        fmt_num(between),
        fmt_num(between * f64::from(devices - 1))
    ));
    Some(NasalAdministration {
        devices,
        mg_per_device: Milligrams(per),
        minutes_between_devices: between,
        minutes_first_to_last: between * f64::from(devices - 1),
    })
}

/// A dose calculation recorded for a session, with its second-person check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DoseRecord {
    pub id: i64,
    pub session_id: SessionId,
    pub patient_id: PatientId,
    pub protocol: Option<String>,
    pub route: Route,
    /// The weight dosed on, from the chart, with its date and type (§2.1).
    pub weight_kg: Kilograms,
    pub weight_measured_on: Date,
    pub weight_type: WeightType,
    pub dose_mg: Milligrams,
    pub dose_mg_per_kg: MgPerKg,
    /// What was asked, as applied (age and first session filled in from the chart).
    pub request: DoseRequest,
    pub calculation: DoseCalculation,
    pub calculated_by: String,
    pub calculated_by_user_id: Option<i64>,
    #[serde(with = "time::serde::rfc3339")]
    pub calculated_at: OffsetDateTime,
    /// The second person, who verified themselves with their own password.
    pub checked_by: String,
    pub checked_by_user_id: Option<i64>,
    #[serde(with = "time::serde::rfc3339")]
    pub checked_at: OffsetDateTime,
}

// ---------------------------------------------------------------------------------
// Cumulative exposure.

/// One dose given, for exposure totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GivenDose {
    pub session_id: SessionId,
    #[serde(with = "time::serde::rfc3339")]
    pub given_at: OffsetDateTime,
    pub route: Route,
    pub dose_mg: Milligrams,
}

/// Milligrams in one calendar week (Monday to Sunday, UTC) or month.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PeriodTotal {
    /// `2026-W45` or `2026-11`.
    pub period: String,
    pub starts_on: Date,
    pub mg: Milligrams,
    pub doses: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RouteTotal {
    pub route: Route,
    pub mg: Milligrams,
    pub doses: u32,
}

/// One drug's totals. Racemic ketamine and esketamine are never added together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DrugExposure {
    pub drug: Drug,
    pub lifetime_mg: Milligrams,
    pub doses: u32,
    /// The 7 days up to `as_of`.
    pub last_7_days_mg: Milligrams,
    /// The 30 days up to `as_of`.
    pub last_30_days_mg: Milligrams,
    pub by_route: Vec<RouteTotal>,
    pub by_week: Vec<PeriodTotal>,
    pub by_month: Vec<PeriodTotal>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub first_dose_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_dose_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Exposure {
    #[serde(with = "time::serde::rfc3339")]
    pub as_of: OffsetDateTime,
    pub drugs: Vec<DrugExposure>,
    /// What the totals count, in words.
    pub basis: String,
}

fn week_start(d: Date) -> Date {
    d - Duration::days(i64::from(d.weekday().number_days_from_monday()))
}

fn add_to(totals: &mut Vec<PeriodTotal>, period: String, starts_on: Date, mg: f64) {
    match totals.iter_mut().find(|t| t.starts_on == starts_on) {
        Some(t) => {
            t.mg.0 += mg;
            t.doses += 1;
        }
        None => totals.push(PeriodTotal { period, starts_on, mg: Milligrams(mg), doses: 1 }),
    }
}

/// Totals per drug: lifetime, the last 7 and 30 days, per calendar week and month of the
/// site (`local_date` gives the site's date of an instant), and per route. Doses after
/// `as_of` are not counted. Milligrams are as given, not adjusted for bioavailability.
pub fn cumulative_exposure(
    doses: &[GivenDose],
    as_of: OffsetDateTime,
    local_date: &dyn Fn(OffsetDateTime) -> Date,
) -> Exposure {
    let mut drugs: Vec<DrugExposure> = Vec::new();
    let mut sorted: Vec<&GivenDose> = doses.iter().filter(|d| d.given_at <= as_of).collect();
    sorted.sort_by_key(|d| (d.given_at, d.session_id));
    for d in sorted {
        let drug = Drug::of(d.route);
        let e = match drugs.iter_mut().position(|e| e.drug == drug) {
            Some(i) => &mut drugs[i],
            None => {
                drugs.push(DrugExposure {
                    drug,
                    lifetime_mg: Milligrams(0.0),
                    doses: 0,
                    last_7_days_mg: Milligrams(0.0),
                    last_30_days_mg: Milligrams(0.0),
                    by_route: vec![],
                    by_week: vec![],
                    by_month: vec![],
                    first_dose_at: None,
                    last_dose_at: None,
                });
                drugs.last_mut().expect("just pushed")
            }
        };
        let mg = d.dose_mg.0;
        e.lifetime_mg.0 += mg;
        e.doses += 1;
        if d.given_at > as_of - Duration::days(7) {
            e.last_7_days_mg.0 += mg;
        }
        if d.given_at > as_of - Duration::days(30) {
            e.last_30_days_mg.0 += mg;
        }
        match e.by_route.iter_mut().find(|r| r.route == d.route) {
            Some(r) => {
                r.mg.0 += mg;
                r.doses += 1;
            }
            None => e.by_route.push(RouteTotal { route: d.route, mg: Milligrams(mg), doses: 1 }),
        }
        let day = local_date(d.given_at);
        let monday = week_start(day);
        let (iso_year, iso_week, _) = monday.to_iso_week_date();
        add_to(&mut e.by_week, format!("{iso_year}-W{iso_week:02}"), monday, mg);
        let first_of_month = day.replace_day(1).expect("day 1 exists");
        add_to(&mut e.by_month, format!("{}-{:02}", day.year(), day.month() as u8), first_of_month, mg);
        e.first_dose_at.get_or_insert(d.given_at);
        e.last_dose_at = Some(d.given_at);
    }
    drugs.sort_by_key(|e| e.drug);
    Exposure {
        as_of,
        drugs,
        basis: "checked doses of sessions whose dose was started, dated by the dose start; mg as given (not adjusted for bioavailability); weeks (Monday-Sunday) and months by the site's local date".into(),
    }
}

#[cfg(test)]
mod tests;
