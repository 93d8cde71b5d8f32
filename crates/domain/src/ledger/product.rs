//! Products, their units and amounts (exact thousandths), and the identifiers on the paperwork.

use super::*;

// ---------------------------------------------------------------------------
// Products, units and amounts
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Substance {
    /// Racemic ketamine hydrochloride.
    Ketamine,
    /// Esketamine hydrochloride (the S-enantiomer).
    Esketamine,
}

impl Substance {
    pub const ALL: [Substance; 2] = [Self::Ketamine, Self::Esketamine];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ketamine => "ketamine",
            Self::Esketamine => "esketamine",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
    pub fn label(self) -> &'static str {
        match self {
            Self::Ketamine => "Ketamine hydrochloride",
            Self::Esketamine => "Esketamine hydrochloride",
        }
    }
    /// The DEA controlled-substance code number (ketamine, its salts and isomers).
    pub fn dea_drug_code(self) -> &'static str {
        "7285"
    }
}

/// The finished form, with its strength and its commercial container.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "form", rename_all = "snake_case", deny_unknown_fields)]
pub enum Presentation {
    /// Injectable solution in vials; counted in mL.
    Vial { concentration_mg_per_ml: MgPerMl, ml_per_vial: Millilitres },
    /// Single-use nasal spray devices; counted in mg, received and counted by device.
    NasalSprayDevice { mg_per_device: Milligrams, devices_per_package: u32 },
}

/// The unit a lot is counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum CountingUnit {
    #[serde(rename = "mL")]
    Millilitres,
    #[serde(rename = "mg")]
    Milligrams,
}

impl CountingUnit {
    pub fn symbol(self) -> &'static str {
        match self {
            Self::Millilitres => "mL",
            Self::Milligrams => "mg",
        }
    }
}

/// An exact amount of a lot: thousandths of its counting unit (µL for vials, µg for
/// devices). Serialised as a number in the counting unit (e.g. `2.5` for 2.5 mL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Quantity(pub i64);

impl Quantity {
    pub const ZERO: Quantity = Quantity(0);
    pub fn thousandths(self) -> i64 {
        self.0
    }
    /// The amount in the counting unit.
    pub fn value(self) -> f64 {
        self.0 as f64 / 1000.0
    }
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
    /// "2.5 mL", "-2 mL", "56 mg": up to three decimals, trailing zeros dropped.
    pub fn show(self, unit: CountingUnit) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let a = self.0.unsigned_abs();
        let (whole, frac) = (a / 1000, a % 1000);
        let frac = if frac == 0 { String::new() } else { format!(".{frac:03}").trim_end_matches('0').to_string() };
        format!("{sign}{whole}{frac} {}", unit.symbol())
    }
}

impl std::ops::Add for Quantity {
    type Output = Quantity;
    fn add(self, o: Quantity) -> Quantity {
        Quantity(self.0 + o.0)
    }
}
impl std::ops::Sub for Quantity {
    type Output = Quantity;
    fn sub(self, o: Quantity) -> Quantity {
        Quantity(self.0 - o.0)
    }
}
impl std::ops::Neg for Quantity {
    type Output = Quantity;
    fn neg(self) -> Quantity {
        Quantity(-self.0)
    }
}
impl std::ops::AddAssign for Quantity {
    fn add_assign(&mut self, o: Quantity) {
        self.0 += o.0;
    }
}
impl std::ops::SubAssign for Quantity {
    fn sub_assign(&mut self, o: Quantity) {
        self.0 -= o.0;
    }
}
impl std::iter::Sum for Quantity {
    fn sum<I: Iterator<Item = Quantity>>(iter: I) -> Quantity {
        Quantity(iter.map(|q| q.0).sum())
    }
}

impl Serialize for Quantity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.value())
    }
}

impl utoipa::PartialSchema for Quantity {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Number)
            .description(Some(
                "An amount in the lot's counting unit (mL for vials, mg for nasal spray devices), exact to 0.001.",
            ))
            .into()
    }
}
impl utoipa::ToSchema for Quantity {}

/// An amount as entered, in a typed unit: `{"ml": 2.5}`, `{"mg": 14}` or `{"devices": 2}`.
/// Vials take mL (or mg, converted with the concentration and rounded to 0.001 mL);
/// nasal spray devices take mg or whole devices.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Amount {
    Ml(f64),
    Mg(f64),
    Devices(u32),
}

/// Largest amount accepted in any one entry, in the counting unit (guards the integer arithmetic).
pub(super) const MAX_UNITS: f64 = 10_000_000.0;

/// Converts a non-negative number in a unit to exact thousandths.
pub(super) fn thousandths(field: &str, v: f64) -> Result<i64, DomainError> {
    if !v.is_finite() || v < 0.0 {
        return Err(DomainError::field(field, "give a number that is zero or more"));
    }
    if v > MAX_UNITS {
        return Err(DomainError::field(field, "this amount is implausibly large; check the unit"));
    }
    let t = v * 1000.0;
    let r = t.round();
    if (t - r).abs() > 1e-6 {
        return Err(DomainError::field(field, "give the amount to at most 3 decimal places"));
    }
    Ok(r as i64)
}

/// What was received: substance and presentation together.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Product {
    pub substance: Substance,
    pub presentation: Presentation,
}

impl Product {
    pub fn validate(&self) -> Result<(), DomainError> {
        let mut v = Validator::new();
        match (self.substance, self.presentation) {
            (Substance::Ketamine, Presentation::Vial { concentration_mg_per_ml: c, ml_per_vial: ml }) => {
                let max = crate::plausible::ranges().quantity_max(crate::plausible::Quantity::MgPerMl);
                v.check(
                    c.0.is_finite() && c.0 > 0.0 && c.0 <= max,
                    "presentation.concentration_mg_per_ml",
                    format!("give the concentration in mg/mL (e.g. 50), at most {max}"),
                );
                let ok = ml.0 > 0.0 && ml.0 <= 100.0 && thousandths("presentation.ml_per_vial", ml.0).is_ok();
                v.check(ok, "presentation.ml_per_vial", "give the vial size in mL (e.g. 10), to at most 3 decimals");
            }
            (Substance::Esketamine, Presentation::NasalSprayDevice { mg_per_device: mg, devices_per_package: n }) => {
                let ok = mg.0 > 0.0 && mg.0 <= 200.0 && thousandths("presentation.mg_per_device", mg.0).is_ok();
                v.check(ok, "presentation.mg_per_device", "give the mg each device delivers (e.g. 28)");
                v.check(
                    (1..=12).contains(&n),
                    "presentation.devices_per_package",
                    "give the number of devices per package (1-12)",
                );
            }
            (Substance::Ketamine, _) => v.push("presentation", "ketamine is stocked as vials ('form': 'vial')"),
            (Substance::Esketamine, _) => {
                v.push("presentation", "esketamine is stocked as nasal spray devices ('form': 'nasal_spray_device')")
            }
        }
        v.finish()
    }

    pub fn unit(&self) -> CountingUnit {
        match self.presentation {
            Presentation::Vial { .. } => CountingUnit::Millilitres,
            Presentation::NasalSprayDevice { .. } => CountingUnit::Milligrams,
        }
    }

    pub fn form_label(&self) -> &'static str {
        match self.presentation {
            Presentation::Vial { .. } => "injectable solution (vial)",
            Presentation::NasalSprayDevice { .. } => "nasal spray device",
        }
    }

    pub fn strength_label(&self) -> String {
        match self.presentation {
            Presentation::Vial { concentration_mg_per_ml: c, .. } => format!("{} mg/mL", c.0),
            Presentation::NasalSprayDevice { mg_per_device: mg, .. } => format!("{} mg per device", mg.0),
        }
    }

    pub fn container_label(&self) -> String {
        match self.presentation {
            Presentation::Vial { ml_per_vial: ml, .. } => format!("{} mL vial", ml.0),
            Presentation::NasalSprayDevice { devices_per_package: n, .. } => {
                format!("package of {n} device{}", if n == 1 { "" } else { "s" })
            }
        }
    }

    fn device_quantity(mg_per_device: Milligrams) -> Quantity {
        Quantity((mg_per_device.0 * 1000.0).round() as i64)
    }

    /// One full commercial container (a vial, or a package of devices).
    pub fn per_container(&self) -> Quantity {
        match self.presentation {
            Presentation::Vial { ml_per_vial: ml, .. } => Quantity((ml.0 * 1000.0).round() as i64),
            Presentation::NasalSprayDevice { mg_per_device, devices_per_package: n } => {
                Quantity(Self::device_quantity(mg_per_device).0 * i64::from(n))
            }
        }
    }

    /// Converts an entered amount into this lot's counting unit, exactly.
    pub fn quantity_of(&self, field: &str, a: Amount) -> Result<Quantity, DomainError> {
        match (self.presentation, a) {
            (Presentation::Vial { .. }, Amount::Ml(v)) => thousandths(field, v).map(Quantity),
            (Presentation::Vial { concentration_mg_per_ml: c, .. }, Amount::Mg(v)) => {
                thousandths(field, v)?;
                Ok(Quantity((v / c.0 * 1000.0).round() as i64))
            }
            (Presentation::Vial { .. }, Amount::Devices(_)) => {
                Err(DomainError::field(field, "this lot is vials: give the amount as {\"ml\": ...} (or mg)"))
            }
            (Presentation::NasalSprayDevice { .. }, Amount::Mg(v)) => thousandths(field, v).map(Quantity),
            (Presentation::NasalSprayDevice { mg_per_device, .. }, Amount::Devices(n)) => {
                if n > 100_000 {
                    return Err(DomainError::field(field, "this amount is implausibly large"));
                }
                Ok(Quantity(Self::device_quantity(mg_per_device).0 * i64::from(n)))
            }
            (Presentation::NasalSprayDevice { .. }, Amount::Ml(_)) => Err(DomainError::field(
                field,
                "this lot is nasal spray devices: give the amount as {\"mg\": ...} or {\"devices\": ...}",
            )),
        }
    }

    /// The mg of drug in `q` of this lot.
    pub fn mg_in(&self, q: Quantity) -> Milligrams {
        match self.presentation {
            Presentation::Vial { concentration_mg_per_ml: c, .. } => Milligrams(round3(q.value() * c.0)),
            Presentation::NasalSprayDevice { .. } => Milligrams(q.value()),
        }
    }

    /// The volume of `q`, for vials.
    pub fn ml_in(&self, q: Quantity) -> Option<Millilitres> {
        match self.presentation {
            Presentation::Vial { .. } => Some(Millilitres(q.value())),
            Presentation::NasalSprayDevice { .. } => None,
        }
    }

    /// The number of devices `q` amounts to, for devices (fractional for a partly used one).
    pub fn devices_in(&self, q: Quantity) -> Option<f64> {
        match self.presentation {
            Presentation::Vial { .. } => None,
            Presentation::NasalSprayDevice { mg_per_device, .. } => Some(round3(q.value() / mg_per_device.0)),
        }
    }
}

pub(super) fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

// ---------------------------------------------------------------------------
// Identifiers on the paperwork
// ---------------------------------------------------------------------------

/// A DEA registration number: two letters (registrant type, then the first letter of
/// the registrant's surname or business, or '9') and seven digits whose last is the
/// check digit: (d1 + d3 + d5) + 2 × (d2 + d4 + d6), last digit.
pub fn valid_dea_number(s: &str) -> bool {
    let b = s.trim().as_bytes();
    if b.len() != 9 || !b"ABCDEFGHJKLMPRSTUX".contains(&b[0].to_ascii_uppercase()) {
        return false;
    }
    if !(b[1].is_ascii_alphabetic() || b[1] == b'9') || !b[2..].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let d: Vec<u32> = b[2..].iter().map(|c| u32::from(c - b'0')).collect();
    (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10 == d[6]
}

/// A National Drug Code in one of the labeled 10-digit forms (4-4-2, 5-3-2, 5-4-1), the
/// 11-digit billing form (5-4-2), or the same digits without hyphens.
pub fn valid_ndc(s: &str) -> bool {
    let s = s.trim();
    let parts: Vec<&str> = s.split('-').collect();
    match parts.len() {
        1 => (10..=11).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_digit()),
        3 => {
            parts.iter().all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
                && matches!(
                    (parts[0].len(), parts[1].len(), parts[2].len()),
                    (4, 4, 2) | (5, 3, 2) | (5, 4, 1) | (5, 4, 2)
                )
        }
        _ => false,
    }
}

pub(super) fn text_ok(s: &str, max: usize) -> bool {
    !s.trim().is_empty() && s.len() <= max
}

pub(super) fn opt_text_ok(s: &Option<String>, max: usize) -> bool {
    s.as_ref().is_none_or(|s| text_ok(s, max))
}

/// How far ahead of the server clock an entered time may be (device clocks drift).
pub(super) const FUTURE_SLACK: Duration = Duration::minutes(5);

pub(super) fn not_future(v: &mut Validator, field: &str, t: Option<OffsetDateTime>, now: OffsetDateTime) {
    if let Some(t) = t {
        v.check(t <= now + FUTURE_SLACK, field, "this time is in the future; check the clock");
    }
}
