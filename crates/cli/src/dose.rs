//! `keta dose`: the dose calculator (clinical-reference §2.1), the protocol library and a
//! course schedule, from the command line, as JSON. Pure: no database.
//!
//! ```text
//! keta dose calculate --weight-kg 70 --mg-per-kg 0.5 --infusion-min 40 --final-volume-ml 100
//! keta dose calculate --protocol esketamine-trd --weight-kg 70 --mg 56 --first-session --age 40
//! keta dose protocols
//! keta dose schedule --protocol esketamine-trd --start 2026-11-02 --missed 3:2026-11-10
//! ```
//!
//! A refused dose prints `{"refused": true, "errors": [...]}` and exits 2.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use keta_domain::DomainError;
use keta_domain::course::Route;
use keta_domain::dosing::{self, BagVolume, DoseAmount, DoseRequest, MgPerKgPerHour, PumpSettings, Rounding};
use keta_domain::patient::WeightType;
use keta_domain::protocols::{self, ProtocolLibrary, ScheduleRequest};
use keta_domain::units::{Kilograms, MgPerHour, MgPerKg, MgPerMl, Milligrams, Millilitres, Minutes, MlPerHour};
use time::Date;

#[derive(clap::Subcommand, Debug)]
pub enum DoseCommand {
    /// Calculate a dose: mg, drug volume, bag concentration, pump rate, mg/h, with the
    /// protocol's limits. Give exactly one of --mg-per-kg, --mg, --mg-per-kg-per-h, --mg-per-h.
    Calculate(CalculateArgs),
    /// List the protocol library (built-in plus the clinic's files).
    Protocols {
        #[arg(long, env = "KETA_PROTOCOLS_DIR")]
        protocols_dir: Option<PathBuf>,
    },
    /// Lay a course out from a protocol and a start date.
    Schedule(ScheduleArgs),
}

#[derive(clap::Args, Debug)]
pub struct CalculateArgs {
    /// A protocol id (`keta dose protocols`); its limits and rules apply.
    #[arg(long)]
    protocol: Option<String>,
    /// iv_racemic, im_racemic, intranasal_esketamine, oral_racemic, sublingual_racemic (when no protocol).
    #[arg(long)]
    route: Option<String>,
    #[arg(long)]
    weight_kg: f64,
    /// actual, ideal or adjusted.
    #[arg(long, default_value = "actual")]
    weight_type: String,
    #[arg(long, group = "amount")]
    mg_per_kg: Option<f64>,
    #[arg(long, group = "amount")]
    mg: Option<f64>,
    #[arg(long, group = "amount")]
    mg_per_kg_per_h: Option<f64>,
    #[arg(long, group = "amount")]
    mg_per_h: Option<f64>,
    /// Vial concentration, mg/mL (e.g. 10, 50, 100).
    #[arg(long)]
    vial_mg_per_ml: Option<f64>,
    /// Bag made up to this final volume, the drug volume included (§2.1's formula).
    #[arg(long, conflicts_with = "diluent_volume_ml")]
    final_volume_ml: Option<f64>,
    /// Drug added to this volume of diluent: final = diluent + drug volume.
    #[arg(long)]
    diluent_volume_ml: Option<f64>,
    /// Infusion time in minutes (default: the protocol's).
    #[arg(long)]
    infusion_min: Option<i64>,
    /// The pump's rate resolution, mL/h (a clinic setting; default: no rounding).
    #[arg(long)]
    pump_resolution_ml_h: Option<f64>,
    /// The syringe's graduation for the drug volume, mL (default: no rounding).
    #[arg(long)]
    volume_resolution_ml: Option<f64>,
    /// The pump's maximum rate, mL/h.
    #[arg(long)]
    pump_max_ml_h: Option<f64>,
    /// Round down to the resolution instead of to the nearest step.
    #[arg(long)]
    round_down: bool,
    /// Age in years (esketamine's dose from 65, §2.3).
    #[arg(long)]
    age: Option<u32>,
    /// The course's first session (esketamine's day-1 dose).
    #[arg(long)]
    first_session: bool,
    /// An extra maximum in mg/kg (can only tighten the protocol's).
    #[arg(long)]
    max_mg_per_kg: Option<f64>,
    /// An extra maximum in mg.
    #[arg(long)]
    max_mg: Option<f64>,
    #[arg(long, env = "KETA_PROTOCOLS_DIR")]
    protocols_dir: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct ScheduleArgs {
    #[arg(long)]
    protocol: String,
    /// The first session's date, YYYY-MM-DD.
    #[arg(long)]
    start: String,
    #[arg(long)]
    age: Option<u32>,
    /// Lay open-ended blocks out to this date, YYYY-MM-DD.
    #[arg(long)]
    until: Option<String>,
    /// The interval chosen where the protocol leaves it to the clinician.
    #[arg(long)]
    every_days: Option<u32>,
    /// A missed session: SEQUENCE or SEQUENCE:MAKE-UP-DATE; repeat, applied in order.
    #[arg(long)]
    missed: Vec<String>,
    #[arg(long, env = "KETA_PROTOCOLS_DIR")]
    protocols_dir: Option<PathBuf>,
}

fn print_json<T: serde::Serialize>(v: &T) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", serde_json::to_string_pretty(v).expect("serialises"));
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

/// A refusal or invalid input: JSON on stdout for scripts, words on stderr.
fn refused(e: DomainError) -> ExitCode {
    let errors = match &e {
        DomainError::Invalid(errs) => errs.clone(),
        DomainError::Conflict(m) => vec![keta_domain::FieldError::new("request", m.clone())],
    };
    print_json(&serde_json::json!({ "refused": true, "errors": errors }));
    fail(e)
}

fn library(dir: Option<&std::path::Path>) -> Result<ProtocolLibrary, String> {
    crate::config::protocol_library(dir).map_err(|e| format!("{e:#}"))
}

fn parse_date(field: &str, s: &str) -> Result<Date, String> {
    Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|_| format!("--{field} '{s}' is not a date like 2026-11-02"))
}

pub fn run(cmd: DoseCommand) -> ExitCode {
    match cmd {
        DoseCommand::Protocols { protocols_dir } => match library(protocols_dir.as_deref()) {
            Ok(l) => {
                print_json(&l.all());
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        DoseCommand::Calculate(a) => calculate(a),
        DoseCommand::Schedule(a) => schedule(a),
    }
}

fn calculate(a: CalculateArgs) -> ExitCode {
    let lib = match library(a.protocols_dir.as_deref()) {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let dose = match (a.mg_per_kg, a.mg, a.mg_per_kg_per_h, a.mg_per_h) {
        (Some(v), None, None, None) => DoseAmount::MgPerKg(MgPerKg(v)),
        (None, Some(v), None, None) => DoseAmount::Mg(Milligrams(v)),
        (None, None, Some(v), None) => DoseAmount::MgPerKgPerH(MgPerKgPerHour(v)),
        (None, None, None, Some(v)) => DoseAmount::MgPerH(MgPerHour(v)),
        _ => return fail("give the dose as exactly one of --mg-per-kg, --mg, --mg-per-kg-per-h, --mg-per-h"),
    };
    let Some(weight_type) = WeightType::parse(&a.weight_type) else {
        return fail(format!("--weight-type '{}': use actual, ideal or adjusted", a.weight_type));
    };
    let route = match a.route.as_deref().map(|r| Route::parse(r).ok_or(r)) {
        None => None,
        Some(Ok(r)) => Some(r),
        Some(Err(r)) => {
            let known: Vec<&str> = Route::ALL.iter().map(|r| r.as_str()).collect();
            return fail(format!("--route '{r}': use one of {}", known.join(", ")));
        }
    };
    let bag = match (a.final_volume_ml, a.diluent_volume_ml) {
        (Some(v), _) => Some(BagVolume::FinalVolumeIncludingDrugMl(Millilitres(v))),
        (None, Some(v)) => Some(BagVolume::DiluentVolumeMl(Millilitres(v))),
        (None, None) => None,
    };
    let req = DoseRequest {
        protocol: a.protocol.clone(),
        route,
        weight_kg: Kilograms(a.weight_kg),
        weight_type,
        dose,
        vial_mg_per_ml: a.vial_mg_per_ml.map(MgPerMl),
        bag,
        infusion_min: a.infusion_min.map(Minutes),
        pump: PumpSettings {
            rate_resolution_ml_per_h: a.pump_resolution_ml_h.map(MlPerHour),
            volume_resolution_ml: a.volume_resolution_ml.map(Millilitres),
            max_rate_ml_per_h: a.pump_max_ml_h.map(MlPerHour),
            rounding: if a.round_down { Rounding::Down } else { Rounding::Nearest },
        },
        age_years: a.age,
        first_session: a.first_session,
        max_mg_per_kg: a.max_mg_per_kg.map(MgPerKg),
        max_mg: a.max_mg.map(Milligrams),
    };
    let protocol = match a.protocol.as_deref().map(|id| lib.require(id)) {
        None => None,
        Some(Ok(p)) => Some(p),
        Some(Err(e)) => return refused(e),
    };
    match dosing::calculate(&req, protocol) {
        Ok(c) => {
            print_json(&c);
            ExitCode::SUCCESS
        }
        Err(e) => refused(e),
    }
}

fn schedule(a: ScheduleArgs) -> ExitCode {
    let run = || -> Result<Result<protocols::CourseSchedule, DomainError>, String> {
        let lib = library(a.protocols_dir.as_deref())?;
        let p = match lib.require(&a.protocol) {
            Ok(p) => p.clone(),
            Err(e) => return Ok(Err(e)),
        };
        let req = ScheduleRequest {
            start: parse_date("start", &a.start)?,
            age_years: a.age,
            until: a.until.as_deref().map(|u| parse_date("until", u)).transpose()?,
            every_days: a.every_days,
        };
        let mut s = match protocols::generate_schedule(&p, &req) {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        for m in &a.missed {
            let (seq, on) = match m.split_once(':') {
                Some((s, d)) => (s, Some(parse_date("missed", d)?)),
                None => (m.as_str(), None),
            };
            let seq: u32 =
                seq.trim().parse().map_err(|_| format!("--missed '{m}': use SEQUENCE or SEQUENCE:YYYY-MM-DD"))?;
            s = match protocols::mark_missed(&p, &s, seq, on) {
                Ok(s) => s,
                Err(e) => return Ok(Err(e)),
            };
        }
        Ok(Ok(s))
    };
    match run() {
        Err(e) => fail(e),
        Ok(Err(e)) => refused(e),
        Ok(Ok(s)) => {
            print_json(&s);
            ExitCode::SUCCESS
        }
    }
}
