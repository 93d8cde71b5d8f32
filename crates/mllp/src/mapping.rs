//! From OBX results to Keta's vital signs: which codes mean which vital, which units are
//! accepted and how they convert (`data/devices/observation-codes.toml`), grouping by
//! observation time, and the checks before anything is attached to a chart. Pure: the
//! current time and the clinic's offset are passed in.
//!
//! A message either maps whole to readings or is refused whole with a reason the nurse can
//! act on: a message is never half attached.

use std::sync::OnceLock;

use serde::Deserialize;
use time::{Duration, OffsetDateTime, UtcOffset};

use keta_domain::DomainError;
use keta_domain::units::{BeatsPerMinute, BreathsPerMinute, Mmhg, Percent};
use keta_domain::vitals::VitalSigns;

use crate::message::{ObxResult, OruMessage, parse_hl7_time};

const TABLE_TOML: &str = include_str!("../../../data/devices/observation-codes.toml");

/// A vital sign a monitor sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Vital {
    Systolic,
    Diastolic,
    Mean,
    HeartRate,
    Spo2,
    RespRate,
}

impl Vital {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Systolic => "systolic",
            Self::Diastolic => "diastolic",
            Self::Mean => "mean",
            Self::HeartRate => "heart_rate",
            Self::Spo2 => "spo2",
            Self::RespRate => "resp_rate",
        }
    }

    fn quantity(self) -> Quantity {
        match self {
            Self::Systolic | Self::Diastolic | Self::Mean => Quantity::Pressure,
            Self::HeartRate | Self::RespRate => Quantity::Rate,
            Self::Spo2 => Quantity::Percent,
        }
    }
}

/// What a unit measures, and so which vitals it may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantity {
    /// Stored in mmHg.
    Pressure,
    /// Per minute.
    Rate,
    /// Percent.
    Percent,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservationCode {
    pub vital: Vital,
    /// In order of preference: when one message carries two codes for the same vital at the
    /// same time (ECG heart rate and the oximeter's pulse rate), the earlier one is kept.
    pub codes: Vec<String>,
    pub source: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitCode {
    pub quantity: Quantity,
    pub codes: Vec<String>,
    pub factor: f64,
    pub source: String,
}

/// The table of `data/devices/observation-codes.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservationTable {
    pub observation: Vec<ObservationCode>,
    pub unit: Vec<UnitCode>,
}

impl ObservationTable {
    /// The shipped table (checked by the tests: every code once, every factor positive).
    pub fn builtin() -> &'static ObservationTable {
        static T: OnceLock<ObservationTable> = OnceLock::new();
        T.get_or_init(|| Self::parse(TABLE_TOML).expect("data/devices/observation-codes.toml is valid"))
    }

    /// Parses and checks a table.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t: ObservationTable = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut seen = std::collections::HashSet::new();
        for code in t.observation.iter().flat_map(|o| o.codes.iter()) {
            if !seen.insert(code.as_str()) {
                return Err(format!("observation code {code} is listed twice"));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for u in &t.unit {
            if !(u.factor.is_finite() && u.factor > 0.0) {
                return Err(format!("unit {:?}: factor must be a positive number", u.codes));
            }
            for code in &u.codes {
                if !seen.insert(code.as_str()) {
                    return Err(format!("unit code {code} is listed twice"));
                }
            }
        }
        Ok(t)
    }

    /// The vital an OBX-3 identifier names, with its preference rank (lower is preferred).
    fn vital_of(&self, r: &ObxResult) -> Option<(Vital, usize)> {
        for name in r.identifier.names() {
            for o in &self.observation {
                if let Some(rank) = o.codes.iter().position(|c| c == name) {
                    return Some((o.vital, rank));
                }
            }
        }
        None
    }

    fn unit_of(&self, r: &ObxResult) -> Option<&UnitCode> {
        r.units.names().find_map(|name| self.unit.iter().find(|u| u.codes.iter().any(|c| c == name)))
    }
}

/// How far an observation time may be from now (clinic settings; the references give no
/// figure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    /// Readings older than this are refused (a gateway replaying a backlog, a wrong clock).
    pub max_age: Duration,
    /// Readings further ahead than this are refused (a monitor clock running fast).
    pub max_ahead: Duration,
}

impl Default for TimeWindow {
    fn default() -> Self {
        Self { max_age: Duration::minutes(30), max_ahead: Duration::minutes(2) }
    }
}

/// One set of readings taken at one time, in Keta's units.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceReading {
    pub observed_at: OffsetDateTime,
    pub vitals: VitalSigns,
    /// Mean arterial pressure: stored beside the reading (`monitor_vitals.mean_mmhg`) and
    /// shown with the device readings; no safety rule uses it (the references give none: the
    /// rules read systolic and diastolic only).
    pub mean_mmhg: Option<Mmhg>,
}

/// Why a message's readings are not attached to a chart. The text names codes and fields,
/// never values or patient identifiers, so it may go into the ACK and the logs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("no vital sign Keta reads (blood pressure, heart rate, SpO2, respiratory rate) in the message")]
    NoVitals,
    #[error("observation {code}: unit '{unit}' is not accepted for {vital}")]
    UnknownUnit { code: String, unit: String, vital: &'static str },
    #[error("observation {code}: the value is not a number")]
    NotANumber { code: String },
    #[error("observation {code}: no readable observation time (OBX-14, OBR-7 or MSH-7)")]
    NoTime { code: String },
    #[error("two different {vital} values at the same time")]
    Conflicting { vital: &'static str },
    #[error("implausible reading: {fields}")]
    Implausible { fields: String },
    #[error("observation time is {minutes} min from now, outside the accepted window")]
    TimeOutOfWindow { minutes: i64 },
}

/// Maps a message's results to readings, one per observation time. Results whose code is not
/// in the table, and results a monitor marks as not obtained or deleted (OBX-11 X, D, W),
/// are left out; every other problem refuses the whole message.
pub fn map_readings(
    msg: &OruMessage,
    table: &ObservationTable,
    local_offset: UtcOffset,
    now: OffsetDateTime,
    window: TimeWindow,
) -> Result<Vec<DeviceReading>, Refusal> {
    // (time, vital) -> (rank, value)
    let mut found: Vec<(OffsetDateTime, Vital, usize, f64)> = Vec::new();
    for r in &msg.results {
        let Some((vital, rank)) = table.vital_of(r) else { continue };
        if matches!(r.status.as_str(), "X" | "D" | "W") {
            continue;
        }
        let code = r.identifier.names().next().unwrap_or("").to_string();
        let value: f64 = match r.value.parse::<f64>() {
            Ok(v) if v.is_finite() && (r.value_type.is_empty() || r.value_type == "NM") => v,
            _ => return Err(Refusal::NotANumber { code }),
        };
        let unit = table.unit_of(r).filter(|u| u.quantity == vital.quantity()).ok_or_else(|| Refusal::UnknownUnit {
            code: code.clone(),
            unit: r.units.names().next().unwrap_or("").chars().take(40).collect(),
            vital: vital.as_str(),
        })?;
        let at = parse_hl7_time(&r.observed_at, local_offset).ok_or(Refusal::NoTime { code })?;
        let value = value * unit.factor;
        match found.iter_mut().find(|(t, v, _, _)| *t == at && *v == vital) {
            Some(slot) if rank < slot.2 => *slot = (at, vital, rank, value),
            Some(slot) if rank == slot.2 && (slot.3 - value).abs() > f64::EPSILON => {
                return Err(Refusal::Conflicting { vital: vital.as_str() });
            }
            Some(_) => {}
            None => found.push((at, vital, rank, value)),
        }
    }
    let mut times: Vec<OffsetDateTime> = found.iter().map(|f| f.0).collect();
    times.sort();
    times.dedup();
    let mut out = Vec::with_capacity(times.len());
    for at in times {
        let offset = at - now;
        if offset > window.max_ahead || -offset > window.max_age {
            return Err(Refusal::TimeOutOfWindow { minutes: offset.whole_minutes() });
        }
        let get = |v: Vital| found.iter().find(|f| f.0 == at && f.1 == v).map(|f| round1(f.3));
        let vitals = VitalSigns {
            systolic_mmhg: get(Vital::Systolic).map(Mmhg),
            diastolic_mmhg: get(Vital::Diastolic).map(Mmhg),
            heart_rate_bpm: get(Vital::HeartRate).map(BeatsPerMinute),
            spo2_pct: get(Vital::Spo2).map(Percent),
            resp_rate_per_min: get(Vital::RespRate).map(BreathsPerMinute),
        };
        let mean_mmhg = get(Vital::Mean).map(Mmhg);
        if vitals == VitalSigns::default() {
            // Only a mean pressure at this time: nothing Keta stores.
            continue;
        }
        if let Err(e) = vitals.validate() {
            return Err(Refusal::Implausible { fields: invalid_fields(&e) });
        }
        if let Some(mean) = mean_mmhg
            && let Err(e) = keta_domain::device_readings::check_mean_pressure(&vitals, mean)
        {
            return Err(Refusal::Implausible { fields: invalid_fields(&e) });
        }
        out.push(DeviceReading { observed_at: at, vitals, mean_mmhg });
    }
    if out.is_empty() {
        return Err(Refusal::NoVitals);
    }
    Ok(out)
}

/// Converted values keep one decimal, as a monitor displays them (kPa to mmHg gives long fractions).
fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn invalid_fields(e: &DomainError) -> String {
    match e {
        DomainError::Invalid(errs) => errs.iter().map(|f| f.field.as_str()).collect::<Vec<_>>().join(", "),
        other => other.to_string().chars().take(80).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::parse_oru;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-12-07 10:15:30 UTC);

    fn map(text: &str) -> Result<Vec<DeviceReading>, Refusal> {
        let m = parse_oru(text).expect("parses");
        map_readings(&m, ObservationTable::builtin(), UtcOffset::UTC, NOW, TimeWindow::default())
    }

    /// A multiparameter monitor behind a gateway, MDC codes and MDC units, one OBR per
    /// observation time (as IHE PCD DEC profiles send it).
    const MDC_MONITOR: &str = "MSH|^~\\&|PCD_GATEWAY^0123456789ABCDEF^EUI-64|INFUSION|KETA|CLINIC|20261207101500+0000||ORU^R01^ORU_R01|GW-000171|P|2.6|||NE|AL||UNICODE UTF-8|||IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO\r\
PID|||MRN-DEMO-3^^^KETA^MR||DEMO^PATIENT^^^^^L\r\
PV1||O|INFUSION^^CHAIR-3\r\
OBR|1|GW-000171^PCD_GATEWAY|GW-000171^PCD_GATEWAY|182777000^monitoring of patient^SNOMED-CT|||20261207101455+0000\r\
OBX|1||69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|1.0.0.0|||||||X\r\
OBX|2|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC|1.0.1.1|132|266016^MDC_DIM_MMHG^MDC|||||R|||20261207101455+0000\r\
OBX|3|NM|150022^MDC_PRESS_BLD_NONINV_DIA^MDC|1.0.1.2|84|266016^MDC_DIM_MMHG^MDC|||||R|||20261207101455+0000\r\
OBX|4|NM|150023^MDC_PRESS_BLD_NONINV_MEAN^MDC|1.0.1.3|100|266016^MDC_DIM_MMHG^MDC|||||R|||20261207101455+0000\r\
OBX|5|NM|147842^MDC_ECG_HEART_RATE^MDC|1.0.2.1|72|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R|||20261207101455+0000\r\
OBX|6|NM|149530^MDC_PULS_OXIM_PULS_RATE^MDC|1.0.3.2|74|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R|||20261207101455+0000\r\
OBX|7|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.0.3.1|96|262688^MDC_DIM_PERCENT^MDC|||||R|||20261207101455+0000\r\
OBX|8|NM|151562^MDC_RESP_RATE^MDC|1.0.4.1|14|264928^MDC_DIM_RESP_PER_MIN^MDC|||||R|||20261207101455+0000\r\
OBX|9|NM|150344^MDC_TEMP^MDC|1.0.5.1|36.8|268192^MDC_DIM_DEGC^MDC|||||R|||20261207101455+0000\r";

    #[test]
    fn an_mdc_monitor_message_maps_to_one_reading_in_keta_units() {
        let r = map(MDC_MONITOR).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].observed_at, datetime!(2026-12-07 10:14:55 UTC));
        let v = r[0].vitals;
        assert_eq!(v.systolic_mmhg, Some(Mmhg(132.0)));
        assert_eq!(v.diastolic_mmhg, Some(Mmhg(84.0)));
        assert_eq!(v.heart_rate_bpm, Some(BeatsPerMinute(72.0)), "the ECG heart rate is preferred to the pulse rate");
        assert_eq!(v.spo2_pct, Some(Percent(96.0)));
        assert_eq!(v.resp_rate_per_min, Some(BreathsPerMinute(14.0)));
        assert_eq!(r[0].mean_mmhg, Some(Mmhg(100.0)));
    }

    /// A LOINC-coded gateway sending UCUM units, blood pressure in kPa.
    const LOINC_KPA: &str = "MSH|^~\\&|VITALSGW|CHAIR7|KETA|CLINIC|202612071015+0100||ORU^R01|V-77|P|2.5.1\r\
PV1||O|INFUSION^^CHAIR-7\r\
OBR|1||V-77|85353-1^Vital signs panel^LN|||202612071114+0100\r\
OBX|1|NM|8480-6^Systolic blood pressure^LN||17.6|kPa^kilopascal^UCUM|||||F\r\
OBX|2|NM|8462-4^Diastolic blood pressure^LN||10.9|kPa^kilopascal^UCUM|||||F\r\
OBX|3|NM|59408-5^SpO2^LN||88|%^percent^UCUM|||||F\r\
OBX|4|NM|8867-4^Heart rate^LN||101|/min^per minute^UCUM|||||F\r";

    #[test]
    fn loinc_codes_and_kpa_convert_to_mmhg() {
        let r = map(LOINC_KPA).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].observed_at, datetime!(2026-12-07 10:14 UTC), "OBR-7 in the sender's offset");
        // 17.6 kPa = 132.0 mmHg, 10.9 kPa = 81.8 mmHg (x 7.500617, one decimal).
        assert_eq!(r[0].vitals.systolic_mmhg, Some(Mmhg(132.0)));
        assert_eq!(r[0].vitals.diastolic_mmhg, Some(Mmhg(81.8)));
        assert_eq!(r[0].vitals.spo2_pct, Some(Percent(88.0)));
        assert_eq!(r[0].vitals.heart_rate_bpm, Some(BeatsPerMinute(101.0)));
    }

    #[test]
    fn two_observation_times_make_two_readings() {
        let m = "MSH|^~\\&|MON|GW|||20261207101500+0000||ORU^R01|T2|P|2.6\r\
OBR|1|||x|||20261207101400+0000\r\
OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||97|262688^MDC_DIM_PERCENT^MDC\r\
OBR|2|||x|||20261207101500+0000\r\
OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||91|262688^MDC_DIM_PERCENT^MDC\r";
        let r = map(m).unwrap();
        assert_eq!(r.iter().map(|x| x.vitals.spo2_pct.unwrap().0).collect::<Vec<_>>(), vec![97.0, 91.0]);
    }

    #[test]
    fn a_pressure_in_a_rate_unit_is_refused_naming_the_code() {
        let bad = MDC_MONITOR.replace("132|266016^MDC_DIM_MMHG^MDC", "132|264864^MDC_DIM_BEAT_PER_MIN^MDC");
        assert!(matches!(map(&bad), Err(Refusal::UnknownUnit { vital: "systolic", .. })));
        let none = MDC_MONITOR.replace("96|262688^MDC_DIM_PERCENT^MDC", "96|");
        assert!(matches!(map(&none), Err(Refusal::UnknownUnit { vital: "spo2", .. })));
    }

    #[test]
    fn implausible_values_refuse_the_whole_message() {
        // A typo-like SpO2 of 960 and systolic below diastolic.
        let bad = MDC_MONITOR.replace("|96|", "|960|");
        assert_eq!(map(&bad), Err(Refusal::Implausible { fields: "spo2_pct".into() }));
        let swapped = MDC_MONITOR.replace("|132|", "|80|");
        assert_eq!(map(&swapped), Err(Refusal::Implausible { fields: "systolic_mmhg".into() }));
        // A mean pressure outside the systolic/diastolic it came with (mis-coded, garbled).
        let mean = MDC_MONITOR.replace("|100|266016", "|150|266016");
        assert_eq!(map(&mean), Err(Refusal::Implausible { fields: "mean_mmhg".into() }));
        let text = MDC_MONITOR.replace("|72|", "|seventy|");
        assert!(matches!(map(&text), Err(Refusal::NotANumber { .. })));
    }

    #[test]
    fn readings_far_from_now_are_refused() {
        let old = MDC_MONITOR.replace("20261207101455", "20261207091455");
        assert_eq!(map(&old), Err(Refusal::TimeOutOfWindow { minutes: -60 }));
        let ahead = MDC_MONITOR.replace("20261207101455", "20261207102455");
        assert_eq!(map(&ahead), Err(Refusal::TimeOutOfWindow { minutes: 9 }));
    }

    #[test]
    fn only_unknown_or_unobtained_results_mean_no_vitals() {
        let m = "MSH|^~\\&|MON|GW|||20261207101500+0000||ORU^R01|T3|P|2.6\r\
OBX|1|NM|150344^MDC_TEMP^MDC||36.8|268192^MDC_DIM_DEGC^MDC\r\
OBX|2|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||0|262688^MDC_DIM_PERCENT^MDC|||||X\r";
        assert_eq!(map(m), Err(Refusal::NoVitals));
    }

    #[test]
    fn the_shipped_table_is_valid_and_every_vital_has_a_loinc_and_an_mdc_code() {
        let t = ObservationTable::builtin();
        for v in [Vital::Systolic, Vital::Diastolic, Vital::Mean, Vital::HeartRate, Vital::Spo2, Vital::RespRate] {
            let o = t.observation.iter().find(|o| o.vital == v).expect("listed");
            assert!(o.codes.iter().any(|c| c.starts_with("MDC_")), "{v:?}");
            assert!(o.codes.iter().any(|c| c.contains('-') && c.chars().next().unwrap().is_ascii_digit()), "{v:?}");
            assert!(!o.source.is_empty());
        }
        assert!(
            ObservationTable::parse("[[observation]]\nvital='spo2'\ncodes=['a','a']\nsource='x'\nunit=[]").is_err()
        );
    }
}
