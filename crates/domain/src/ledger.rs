//! The controlled-substance ledger for ketamine vials and esketamine nasal-spray
//! devices (security-reference §2.4 CS-1..CS-7 and §3): what each kind of entry must
//! contain, how amounts are counted, who must witness what, the perpetual-inventory
//! arithmetic, and the reconciliation of the book against physical counts. Pure: the
//! store persists entries and hashes them; this module decides what may be written.
//!
//! # Units
//! Every lot is counted in one unit, fixed by its presentation:
//! * **vials** (racemic ketamine injection) are counted in **mL**, as DEA expects for
//!   liquids (21 CFR 1304.11). A dose is recorded in mg *and* mL, and the two must agree
//!   with the vial's concentration (mg = mL × mg/mL).
//! * **nasal-spray devices** (esketamine) are counted in **mg**. Receipts, counts and
//!   disposals may be entered as whole devices and are converted with the device's
//!   strength (e.g. 28 mg); an administration deducts the mg given, and whatever was
//!   left in an opened device is recorded as waste, exactly like the rest of a vial.
//!
//! Internally every amount is a [`Quantity`]: a whole number of thousandths of the
//! lot's unit (µL or µg), so the arithmetic is exact and `on_hand == Σin − Σout`
//! holds to the last digit.
//!
//! # Append-only
//! Entries are never changed or removed. A mistake is fixed by a *reversal* (an entry
//! that cancels the original's effect and points at it) plus, usually, a *replacement*
//! that points at the original too; both are written together. An entry that would
//! leave a lot with less than nothing on hand is refused and nothing is written.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use time::{Date, Duration, OffsetDateTime};

use crate::error::{DomainError, Validator};
use crate::ids::{PatientId, SessionId, SiteId};
use crate::units::{MgPerMl, Milligrams, Millilitres};

macro_rules! ledger_id {
    ($($(#[$m:meta])* $name:ident),* $(,)?) => {$(
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(transparent)]
        pub struct $name(pub i64);
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { self.0.fmt(f) }
        }
    )*};
}

ledger_id! {
    /// A stock lot: one receipt (invoice line) of one product lot at one site.
    LotId,
    /// One ledger entry.
    EntryId,
    /// A ledger alert (a count that did not match the book).
    LedgerAlertId,
}

// ---------------------------------------------------------------------------
// Re-authentication (AC-11)
// ---------------------------------------------------------------------------

/// How recently a user must have re-entered their password before a ledger entry or
/// a signature, unless the site configures otherwise (a security setting).
pub const DEFAULT_REAUTHENTICATION_WINDOW: Duration = Duration::minutes(5);
/// The longest window a site may configure.
pub const MAX_REAUTHENTICATION_WINDOW: Duration = Duration::minutes(15);
/// The shortest window a site may configure.
pub const MIN_REAUTHENTICATION_WINDOW: Duration = Duration::minutes(1);
/// Tolerated difference between the re-authentication time and `now` (the two clocks
/// are the same server's, so this only absorbs rounding).
const REAUTH_SKEW: Duration = Duration::seconds(60);

/// Refuses unless the password was re-entered within `window` before `now`. The error
/// is the message to show (the store turns it into a 403).
pub fn check_reauthentication(
    what: &str,
    reauthenticated_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
    window: Duration,
) -> Result<(), String> {
    let minutes = window.whole_minutes().max(1);
    let ask = format!("re-enter your password to {what} (it must have been entered within the last {minutes} min)");
    match reauthenticated_at {
        None => Err(ask),
        Some(at) if at > now + REAUTH_SKEW || now - at > window => Err(ask),
        Some(_) => Ok(()),
    }
}

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
const MAX_UNITS: f64 = 10_000_000.0;

/// Converts a non-negative number in a unit to exact thousandths.
fn thousandths(field: &str, v: f64) -> Result<i64, DomainError> {
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

fn round3(v: f64) -> f64 {
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

fn text_ok(s: &str, max: usize) -> bool {
    !s.trim().is_empty() && s.len() <= max
}

fn opt_text_ok(s: &Option<String>, max: usize) -> bool {
    s.as_ref().is_none_or(|s| text_ok(s, max))
}

/// How far ahead of the server clock an entered time may be (device clocks drift).
const FUTURE_SLACK: Duration = Duration::minutes(5);

fn not_future(v: &mut Validator, field: &str, t: Option<OffsetDateTime>, now: OffsetDateTime) {
    if let Some(t) = t {
        v.check(t <= now + FUTURE_SLACK, field, "this time is in the future; check the clock");
    }
}

// ---------------------------------------------------------------------------
// Entry kinds and what each must contain
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Receipt,
    Administration,
    Waste,
    Disposal,
    Count,
    Adjustment,
    Loss,
    /// Cancels another entry's effect (the first half of a correction, or a void).
    Reversal,
}

impl EntryKind {
    pub const ALL: [EntryKind; 8] = [
        Self::Receipt,
        Self::Administration,
        Self::Waste,
        Self::Disposal,
        Self::Count,
        Self::Adjustment,
        Self::Loss,
        Self::Reversal,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Receipt => "receipt",
            Self::Administration => "administration",
            Self::Waste => "waste",
            Self::Disposal => "disposal",
            Self::Count => "count",
            Self::Adjustment => "adjustment",
            Self::Loss => "loss",
            Self::Reversal => "reversal",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// How many witnesses (second people, each re-authenticated) the kind needs: (min, max).
    /// Receipts are checked by a second person; waste, adjustments and voids are
    /// witnessed; disposal of inventory has two witnesses (DEA Form 41); a count may
    /// have a second counter.
    pub fn witnesses(self) -> (usize, usize) {
        match self {
            Self::Receipt | Self::Waste | Self::Adjustment | Self::Reversal => (1, 1),
            Self::Disposal => (2, 2),
            Self::Count => (0, 1),
            Self::Administration | Self::Loss => (0, 0),
        }
    }
}

/// Points a replacement entry at the entry it corrects. The original is reversed and
/// stays in the ledger; both new entries are written together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Correction {
    pub entry_id: EntryId,
    /// Why the original was wrong.
    pub reason: String,
}

fn check_correction(v: &mut Validator, c: &Option<Correction>) {
    if let Some(c) = c {
        v.check(
            text_ok(&c.reason, 1000),
            "corrects.reason",
            "say why the original entry was wrong (1-1000 characters)",
        );
    }
}

/// A receipt from a supplier (one invoice line), which creates a stock lot (§3 A).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReceipt {
    pub site_id: SiteId,
    /// When the stock arrived; defaults to now.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub received_at: Option<OffsetDateTime>,
    pub supplier_name: String,
    pub supplier_address: String,
    /// The supplier's DEA registration number (checked for its check digit).
    pub supplier_dea_number: String,
    #[serde(default)]
    pub invoice_number: Option<String>,
    pub substance: Substance,
    pub presentation: Presentation,
    /// Number of commercial containers (vials, or packages of devices) received.
    pub containers: u32,
    pub lot_number: String,
    pub ndc: String,
    pub expires_on: Date,
    #[serde(default)]
    pub corrects: Option<Correction>,
}

impl NewReceipt {
    pub fn product(&self) -> Product {
        Product { substance: self.substance, presentation: self.presentation }
    }

    /// Validates the receipt and returns the amount received. `local_date` gives the site's
    /// date of an instant: stock is expired on arrival by the receiving site's calendar.
    pub fn validate(
        &self,
        now: OffsetDateTime,
        local_date: &dyn Fn(OffsetDateTime) -> Date,
    ) -> Result<Quantity, DomainError> {
        let mut v = Validator::new();
        v.check(text_ok(&self.supplier_name, 200), "supplier_name", "give the supplier's name (1-200 characters)");
        v.check(
            text_ok(&self.supplier_address, 500),
            "supplier_address",
            "give the supplier's address (1-500 characters)",
        );
        v.check(
            valid_dea_number(&self.supplier_dea_number),
            "supplier_dea_number",
            "give the supplier's DEA number: 2 letters and 7 digits with a valid check digit, e.g. 'PS1234563'",
        );
        v.check(
            opt_text_ok(&self.invoice_number, 100),
            "invoice_number",
            "keep the invoice number to 1-100 characters",
        );
        v.check(
            (1..=10_000).contains(&self.containers),
            "containers",
            "give the number of containers received (1-10000)",
        );
        v.check(text_ok(&self.lot_number, 40), "lot_number", "give the manufacturer's lot number (1-40 characters)");
        v.check(
            valid_ndc(&self.ndc),
            "ndc",
            "give the NDC as printed, e.g. '0409-2051-05' (4-4-2, 5-3-2, 5-4-1 or 5-4-2 digits)",
        );
        let received = self.received_at.unwrap_or(now);
        not_future(&mut v, "received_at", Some(received), now);
        v.check(
            self.expires_on > local_date(received),
            "expires_on",
            "this stock had already expired when it arrived; return it to the supplier instead",
        );
        check_correction(&mut v, &self.corrects);
        if let Err(DomainError::Invalid(errs)) = self.product().validate() {
            for e in errs {
                v.push(&e.field, e.message);
            }
        }
        v.finish()?;
        Ok(Quantity(self.product().per_container().0 * i64::from(self.containers)))
    }
}

/// One dose given in a treatment session (§3 B). The patient comes from the session;
/// the administering clinician is the user recording it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAdministration {
    pub lot_id: LotId,
    pub session_id: SessionId,
    pub dose_mg: Milligrams,
    /// Volume drawn and given, for vials; must equal dose / concentration (to 0.01 mL).
    #[serde(default)]
    pub volume_ml: Option<Millilitres>,
    /// Devices opened, for nasal spray; the dose must be within what they hold.
    #[serde(default)]
    pub devices_used: Option<u32>,
    /// When the dose started; defaults to now.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub administered_at: Option<OffsetDateTime>,
    /// When an infusion ended.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
    /// The prescriber who ordered the dose, if not the administering clinician.
    #[serde(default)]
    pub ordering_prescriber: Option<String>,
    #[serde(default)]
    pub corrects: Option<Correction>,
}

impl NewAdministration {
    /// Validates the dose against the lot and returns the amount taken from stock.
    pub fn validate(&self, product: &Product, now: OffsetDateTime) -> Result<Quantity, DomainError> {
        let mut v = Validator::new();
        let dose = self.dose_mg.0;
        v.check(
            dose.is_finite() && dose > 0.0 && dose <= 1000.0,
            "dose_mg",
            "give the dose in mg (more than 0, at most 1000)",
        );
        not_future(&mut v, "administered_at", self.administered_at, now);
        if let (Some(a), Some(e)) = (self.administered_at.or(Some(now)), self.ended_at) {
            v.check(e >= a, "ended_at", "the infusion cannot end before it started");
            not_future(&mut v, "ended_at", Some(e), now);
        }
        v.check(
            opt_text_ok(&self.ordering_prescriber, 200),
            "ordering_prescriber",
            "keep the prescriber's name to 1-200 characters",
        );
        check_correction(&mut v, &self.corrects);
        let mut taken = Quantity::ZERO;
        match product.presentation {
            Presentation::Vial { concentration_mg_per_ml: c, .. } => {
                v.check(
                    self.devices_used.is_none(),
                    "devices_used",
                    "this lot is vials: give volume_ml, not devices_used",
                );
                match self.volume_ml {
                    None => v.push("volume_ml", "give the volume given in mL (vials are counted in mL)"),
                    Some(ml) => match thousandths("volume_ml", ml.0) {
                        Err(DomainError::Invalid(e)) => v.push("volume_ml", e[0].message.clone()),
                        Err(_) => {}
                        Ok(0) => v.push("volume_ml", "the volume given must be more than 0 mL"),
                        Ok(t) => {
                            taken = Quantity(t);
                            let expected = ml.0 * c.0;
                            // Syringes are read to 0.01 mL: allow that much disagreement.
                            if dose.is_finite() && (dose - expected).abs() > 0.01 * c.0 + 1e-9 {
                                v.push(
                                    "dose_mg",
                                    format!("{dose} mg does not match {} mL × {} mg/mL = {} mg; check the dose or the volume", ml.0, c.0, round3(expected)),
                                );
                            }
                        }
                    },
                }
            }
            Presentation::NasalSprayDevice { mg_per_device, .. } => {
                v.check(
                    self.volume_ml.is_none(),
                    "volume_ml",
                    "this lot is nasal spray devices: give devices_used, not volume_ml",
                );
                match self.devices_used {
                    None | Some(0) => v.push("devices_used", "give the number of devices opened for this dose"),
                    Some(n) if n > 12 => v.push("devices_used", "at most 12 devices in one administration"),
                    Some(n) => {
                        let most = f64::from(n) * mg_per_device.0;
                        let least = f64::from(n - 1) * mg_per_device.0;
                        if dose.is_finite() && !(dose > least && dose <= most + 1e-9) {
                            v.push("dose_mg", format!("{n} device(s) of {} mg hold more than {least} and at most {most} mg; check the dose or the devices", mg_per_device.0));
                        }
                        match thousandths("dose_mg", dose) {
                            Ok(t) => taken = Quantity(t),
                            Err(DomainError::Invalid(e)) => v.push("dose_mg", e[0].message.clone()),
                            Err(_) => {}
                        }
                    }
                }
            }
        }
        v.finish()?;
        Ok(taken)
    }
}

/// The remainder of a vial or device after a dose, destroyed in front of a witness (§3 C).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWaste {
    pub lot_id: LotId,
    /// The administration this is the remainder of.
    #[serde(default)]
    pub administration_id: Option<EntryId>,
    pub amount: Amount,
    /// When it was wasted; defaults to now.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub wasted_at: Option<OffsetDateTime>,
    /// How it was made non-retrievable, e.g. "drug-waste container (Rx Destroyer)".
    pub method: String,
    /// Why, e.g. "remainder of vial after dose".
    pub reason: String,
    #[serde(default)]
    pub corrects: Option<Correction>,
}

impl NewWaste {
    pub fn validate(&self, product: &Product, now: OffsetDateTime) -> Result<Quantity, DomainError> {
        let mut v = Validator::new();
        let q = positive(&mut v, product, "amount", self.amount);
        not_future(&mut v, "wasted_at", self.wasted_at, now);
        v.check(text_ok(&self.method, 300), "method", "say how it was made non-retrievable (1-300 characters)");
        v.check(text_ok(&self.reason, 500), "reason", "say why it was wasted (1-500 characters)");
        check_correction(&mut v, &self.corrects);
        v.finish()?;
        Ok(q)
    }
}

fn positive(v: &mut Validator, product: &Product, field: &str, a: Amount) -> Quantity {
    match product.quantity_of(field, a) {
        Ok(q) if q.0 > 0 => q,
        Ok(_) => {
            v.push(field, "the amount must be more than zero");
            Quantity::ZERO
        }
        Err(DomainError::Invalid(e)) => {
            for e in e {
                v.push(&e.field, e.message);
            }
            Quantity::ZERO
        }
        Err(DomainError::Conflict(m)) => {
            v.push(field, m);
            Quantity::ZERO
        }
    }
}

/// Destruction of inventory (expired, damaged, unwanted), with the DEA Form 41 fields
/// and two witnesses (§3 D).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDisposal {
    pub lot_id: LotId,
    pub registrant_name: String,
    pub registrant_address: String,
    pub registrant_dea_number: String,
    /// Number of full, unopened commercial containers destroyed.
    pub full_containers: u32,
    /// What was left in opened containers, if any.
    #[serde(default)]
    pub partial_amount: Option<Amount>,
    /// When it was destroyed; defaults to now.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub destroyed_at: Option<OffsetDateTime>,
    /// Method of destruction, e.g. "chemical digestion (Rx Destroyer), non-retrievable".
    pub method: String,
    /// Where it was destroyed.
    pub location: String,
    /// Why, e.g. "expired".
    pub reason: String,
    #[serde(default)]
    pub corrects: Option<Correction>,
}

impl NewDisposal {
    pub fn validate(&self, product: &Product, now: OffsetDateTime) -> Result<Quantity, DomainError> {
        let mut v = Validator::new();
        v.check(
            text_ok(&self.registrant_name, 200),
            "registrant_name",
            "give the registrant's name (1-200 characters)",
        );
        v.check(
            text_ok(&self.registrant_address, 500),
            "registrant_address",
            "give the registrant's address (1-500 characters)",
        );
        v.check(
            valid_dea_number(&self.registrant_dea_number),
            "registrant_dea_number",
            "give the registrant's DEA number: 2 letters and 7 digits with a valid check digit",
        );
        v.check(self.full_containers <= 10_000, "full_containers", "at most 10000 containers");
        let partial = match self.partial_amount {
            None => Quantity::ZERO,
            Some(a) => match product.quantity_of("partial_amount", a) {
                Ok(q) => q,
                Err(DomainError::Invalid(e)) => {
                    for e in e {
                        v.push(&e.field, e.message);
                    }
                    Quantity::ZERO
                }
                Err(DomainError::Conflict(m)) => {
                    v.push("partial_amount", m);
                    Quantity::ZERO
                }
            },
        };
        if self.partial_amount.is_some() {
            v.check(
                partial < product.per_container(),
                "partial_amount",
                "a partial container holds less than a full one; count full ones in full_containers",
            );
        }
        let total = Quantity(product.per_container().0 * i64::from(self.full_containers)) + partial;
        v.check(total.0 > 0, "full_containers", "nothing to destroy: give full_containers or partial_amount");
        not_future(&mut v, "destroyed_at", self.destroyed_at, now);
        v.check(text_ok(&self.method, 300), "method", "give the method of destruction (1-300 characters)");
        v.check(text_ok(&self.location, 300), "location", "give where it was destroyed (1-300 characters)");
        v.check(text_ok(&self.reason, 500), "reason", "say why it is being destroyed (1-500 characters)");
        check_correction(&mut v, &self.corrects);
        v.finish()?;
        Ok(total)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CountType {
    /// A shift-end or daily count.
    #[default]
    Routine,
    /// The inventory taken when the registration starts handling the substance.
    Initial,
    /// The inventory required at least every two years.
    Biennial,
}

/// When an initial or biennial inventory was taken (21 CFR 1304.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BusinessTime {
    OpeningOfBusiness,
    CloseOfBusiness,
}

/// A physical count of a lot (§3 E). The expected amount is the book's on-hand at the
/// moment of the count; a discrepancy needs a reason and raises an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCount {
    pub lot_id: LotId,
    /// What is physically there: mL for vials; devices (or mg) for nasal spray.
    pub physical: Amount,
    #[serde(default)]
    pub count_type: CountType,
    /// Required for initial and biennial inventories.
    #[serde(default)]
    pub business_time: Option<BusinessTime>,
    /// When counted; defaults to now.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub counted_at: Option<OffsetDateTime>,
    /// True when an opened container's content was estimated (allowed for Schedule III).
    #[serde(default)]
    pub estimated: bool,
    /// Required when the count differs from the ledger.
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub corrects: Option<Correction>,
}

/// A count's outcome: physical against the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CountResult {
    pub physical: Quantity,
    /// The ledger's on-hand when the count was recorded.
    pub expected: Quantity,
    /// physical − expected: negative when stock is missing.
    pub discrepancy: Quantity,
}

impl NewCount {
    /// Validates against the book's on-hand (`expected`) and returns the outcome.
    pub fn validate(
        &self,
        product: &Product,
        expected: Quantity,
        now: OffsetDateTime,
    ) -> Result<CountResult, DomainError> {
        let mut v = Validator::new();
        let mut clean = true;
        let physical = match product.quantity_of("physical", self.physical) {
            Ok(q) => q,
            Err(DomainError::Invalid(e)) => {
                clean = false;
                for e in e {
                    v.push(&e.field, e.message);
                }
                Quantity::ZERO
            }
            Err(DomainError::Conflict(m)) => {
                clean = false;
                v.push("physical", m);
                Quantity::ZERO
            }
        };
        if matches!(self.count_type, CountType::Initial | CountType::Biennial) {
            v.check(
                self.business_time.is_some(),
                "business_time",
                "an initial or biennial inventory records whether it was taken at the opening or close of business",
            );
        }
        not_future(&mut v, "counted_at", self.counted_at, now);
        v.check(opt_text_ok(&self.reason, 1000), "reason", "keep the reason to 1-1000 characters");
        check_correction(&mut v, &self.corrects);
        let discrepancy = physical - expected;
        if clean && !discrepancy.is_zero() && self.reason.as_ref().is_none_or(|r| r.trim().is_empty()) {
            v.push(
                "reason",
                format!(
                    "the count ({}) differs from the ledger ({}) by {}: say why (the discrepancy raises an alert)",
                    physical.show(product.unit()),
                    expected.show(product.unit()),
                    discrepancy.show(product.unit())
                ),
            );
        }
        v.finish()?;
        Ok(CountResult { physical, expected, discrepancy })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AdjustmentDirection {
    Increase,
    Decrease,
}

/// A witnessed change to the book that no movement explains (e.g. vial overfill found
/// at a count). Usually linked to the count whose discrepancy it explains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAdjustment {
    pub lot_id: LotId,
    pub direction: AdjustmentDirection,
    pub amount: Amount,
    pub reason: String,
    /// The count whose discrepancy this explains.
    #[serde(default)]
    pub count_id: Option<EntryId>,
    #[serde(default)]
    pub corrects: Option<Correction>,
}

impl NewAdjustment {
    /// Returns the signed change.
    pub fn validate(&self, product: &Product) -> Result<Quantity, DomainError> {
        let mut v = Validator::new();
        let q = positive(&mut v, product, "amount", self.amount);
        v.check(text_ok(&self.reason, 1000), "reason", "say why the book is being adjusted (1-1000 characters)");
        check_correction(&mut v, &self.corrects);
        v.finish()?;
        Ok(match self.direction {
            AdjustmentDirection::Increase => q,
            AdjustmentDirection::Decrease => -q,
        })
    }
}

/// The kinds of theft or loss on DEA Form 106.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LossType {
    NightBreakIn,
    ArmedRobbery,
    EmployeePilferage,
    CustomerTheft,
    LostInTransit,
    Other,
}

impl LossType {
    pub fn label(self) -> &'static str {
        match self {
            Self::NightBreakIn => "Night break-in",
            Self::ArmedRobbery => "Armed robbery",
            Self::EmployeePilferage => "Employee pilferage",
            Self::CustomerTheft => "Customer theft",
            Self::LostInTransit => "Lost in transit",
            Self::Other => "Other",
        }
    }
}

/// Theft or significant loss, with the DEA Form 106 worksheet fields (§3 F).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLoss {
    pub lot_id: LotId,
    pub loss_type: LossType,
    pub amount: Amount,
    #[serde(with = "time::serde::rfc3339")]
    pub discovered_at: OffsetDateTime,
    pub circumstances: String,
    /// Police report number or station, if reported.
    #[serde(default)]
    pub police_report: Option<String>,
    /// When DEA was notified in writing (due within one business day of discovery).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub dea_notified_at: Option<OffsetDateTime>,
    /// When DEA Form 106 was filed.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub form_106_filed_at: Option<OffsetDateTime>,
    /// The count whose discrepancy revealed the loss.
    #[serde(default)]
    pub count_id: Option<EntryId>,
    #[serde(default)]
    pub investigation_notes: Option<String>,
    #[serde(default)]
    pub corrects: Option<Correction>,
}

impl NewLoss {
    pub fn validate(&self, product: &Product, now: OffsetDateTime) -> Result<Quantity, DomainError> {
        let mut v = Validator::new();
        let q = positive(&mut v, product, "amount", self.amount);
        not_future(&mut v, "discovered_at", Some(self.discovered_at), now);
        v.check(text_ok(&self.circumstances, 4000), "circumstances", "describe what happened (1-4000 characters)");
        v.check(
            opt_text_ok(&self.police_report, 200),
            "police_report",
            "keep the police report reference to 1-200 characters",
        );
        v.check(
            opt_text_ok(&self.investigation_notes, 4000),
            "investigation_notes",
            "keep the notes to 1-4000 characters",
        );
        for (field, t) in [("dea_notified_at", self.dea_notified_at), ("form_106_filed_at", self.form_106_filed_at)] {
            if let Some(t) = t {
                v.check(t >= self.discovered_at, field, "cannot be before the loss was discovered");
                not_future(&mut v, field, Some(t), now);
            }
        }
        check_correction(&mut v, &self.corrects);
        v.finish()?;
        Ok(-q)
    }

    /// What the registrant still has to do, in words (for the Form 106 worksheet).
    pub fn outstanding(&self, now: OffsetDateTime) -> Vec<String> {
        let mut out = Vec::new();
        if self.dea_notified_at.is_none() {
            let overdue = now - self.discovered_at > Duration::days(1);
            out.push(format!(
                "notify the DEA Field Division Office in writing within one business day of discovery (21 CFR 1301.76(b)){}",
                if overdue { " - this is now overdue" } else { "" }
            ));
        }
        if self.form_106_filed_at.is_none() {
            out.push("file DEA Form 106 (online) with the final figures".into());
        }
        if self.police_report.is_none() && self.loss_type != LossType::LostInTransit {
            out.push("report the theft to local police and record the report number, if applicable".into());
        }
        out
    }
}

/// A void: cancels an entry without replacing it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reversal {
    pub reason: String,
}

impl Reversal {
    pub fn validate(&self) -> Result<(), DomainError> {
        let mut v = Validator::new();
        v.check(text_ok(&self.reason, 1000), "reason", "say why the entry is being reversed (1-1000 characters)");
        v.finish()
    }
}

/// The kind-specific content of an entry, as recorded (defaults filled in).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryDetail {
    Receipt(NewReceipt),
    Administration(NewAdministration),
    Waste(NewWaste),
    Disposal(NewDisposal),
    Count(NewCount),
    Adjustment(NewAdjustment),
    Loss(NewLoss),
    Reversal(Reversal),
}

impl EntryDetail {
    pub fn kind(&self) -> EntryKind {
        match self {
            Self::Receipt(_) => EntryKind::Receipt,
            Self::Administration(_) => EntryKind::Administration,
            Self::Waste(_) => EntryKind::Waste,
            Self::Disposal(_) => EntryKind::Disposal,
            Self::Count(_) => EntryKind::Count,
            Self::Adjustment(_) => EntryKind::Adjustment,
            Self::Loss(_) => EntryKind::Loss,
            Self::Reversal(_) => EntryKind::Reversal,
        }
    }
    pub fn corrects(&self) -> Option<&Correction> {
        match self {
            Self::Receipt(x) => x.corrects.as_ref(),
            Self::Administration(x) => x.corrects.as_ref(),
            Self::Waste(x) => x.corrects.as_ref(),
            Self::Disposal(x) => x.corrects.as_ref(),
            Self::Count(x) => x.corrects.as_ref(),
            Self::Adjustment(x) => x.corrects.as_ref(),
            Self::Loss(x) => x.corrects.as_ref(),
            Self::Reversal(_) => None,
        }
    }
}

// ---------------------------------------------------------------------------
// Who signs: the recorder and witnesses
// ---------------------------------------------------------------------------

/// A person on an entry: the recorder or a witness, with when they re-authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Signatory {
    pub user_id: Option<i64>,
    /// The user name, as in the audit trail.
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub reauthenticated_at: OffsetDateTime,
}

impl Signatory {
    pub fn same_person(&self, other: &Signatory) -> bool {
        matches!((self.user_id, other.user_id), (Some(a), Some(b)) if a == b)
            || self.name.trim().eq_ignore_ascii_case(other.name.trim())
    }
}

/// The witness field a position in the witness list is entered in.
pub fn witness_field(i: usize) -> &'static str {
    if i == 0 { "witness_username" } else { "second_witness_username" }
}

/// The second-person rules: the right number of witnesses; a witness is never the
/// person recording (for a disposal, the recorder may be one of its two witnesses, who
/// must be two different people); the witness to waste is not the clinician who gave
/// the dose. Violations are 422s naming the witness field.
pub fn check_witnesses(
    kind: EntryKind,
    recorder: &Signatory,
    witnesses: &[Signatory],
    administrator: Option<&Signatory>,
) -> Result<(), DomainError> {
    let (min, max) = kind.witnesses();
    let mut v = Validator::new();
    if witnesses.len() < min || witnesses.len() > max {
        let what = match (min, max) {
            (0, 0) => format!("a {} entry takes no witness", kind.as_str()),
            (0, n) => format!("a {} entry takes at most {n} witness", kind.as_str()),
            (a, b) if a == b && a == 1 => format!(
                "a {} entry needs a witness: a second person who enters their own user name and password",
                kind.as_str()
            ),
            (a, _) => format!(
                "a {} entry needs {a} different witnesses, each entering their own user name and password",
                kind.as_str()
            ),
        };
        v.push(witness_field(witnesses.len().min(1)), what);
        return v.finish();
    }
    for (i, w) in witnesses.iter().enumerate() {
        if kind != EntryKind::Disposal && w.same_person(recorder) {
            v.push(witness_field(i), "the witness must be a different person from the one recording the entry");
        }
        if let Some(a) = administrator
            && w.same_person(a)
        {
            v.push(witness_field(i), "the witness must be a different person from the clinician who gave the dose");
        }
        if witnesses[..i].iter().any(|o| o.same_person(w)) {
            v.push(witness_field(i), "the two witnesses must be two different people");
        }
    }
    v.finish()
}

// ---------------------------------------------------------------------------
// The book: perpetual inventory of one lot
// ---------------------------------------------------------------------------

/// What the arithmetic needs to know about a stored entry.
#[derive(Debug, Clone, PartialEq)]
pub struct BookEntry {
    pub id: EntryId,
    pub kind: EntryKind,
    /// Signed change to on-hand (0 for counts).
    pub change: Quantity,
    pub occurred_at: OffsetDateTime,
    pub reverses: Option<EntryId>,
    pub corrects: Option<EntryId>,
    /// For waste: the administration it is the remainder of.
    pub administration: Option<EntryId>,
    /// For losses and adjustments: the count whose discrepancy they explain.
    pub resolves_count: Option<EntryId>,
    pub count: Option<CountResult>,
}

/// A request to append one entry (the store supplies ids and times).
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    pub kind: EntryKind,
    /// Signed change (0 for a count).
    pub change: Quantity,
    pub corrects: Option<EntryId>,
    pub administration: Option<EntryId>,
    pub resolves_count: Option<EntryId>,
    /// For counts: the outcome, computed against [`LotBook::on_hand`].
    pub count: Option<CountResult>,
}

impl Proposal {
    pub fn movement(kind: EntryKind, change: Quantity) -> Self {
        Self { kind, change, corrects: None, administration: None, resolves_count: None, count: None }
    }
}

/// One entry to write, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub kind: EntryKind,
    pub change: Quantity,
    pub reverses: Option<EntryId>,
    pub corrects: Option<EntryId>,
    pub administration: Option<EntryId>,
    pub resolves_count: Option<EntryId>,
    pub count: Option<CountResult>,
    /// On-hand once this entry is written.
    pub on_hand_after: Quantity,
}

/// Totals by kind, each net of reversals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, utoipa::ToSchema)]
pub struct InventoryTotals {
    pub received: Quantity,
    pub administered: Quantity,
    pub wasted: Quantity,
    pub disposed: Quantity,
    pub lost: Quantity,
    /// Net of increases and decreases.
    pub adjusted: Quantity,
    /// received − administered − wasted − disposed − lost + adjusted.
    pub on_hand: Quantity,
}

/// One count checked against the book, and how much of its discrepancy later losses or
/// adjustments linked to it explain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CountCheck {
    pub entry_id: EntryId,
    #[serde(with = "time::serde::rfc3339")]
    pub counted_at: OffsetDateTime,
    pub physical: Quantity,
    pub expected: Quantity,
    pub discrepancy: Quantity,
    /// The part of the discrepancy explained by linked losses and adjustments.
    pub explained: Quantity,
    pub unexplained: Quantity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FlagKind {
    /// The last count did not match the book and the difference is not explained.
    Discrepancy,
    /// Stock past its expiry date is still on hand (destroy it with a disposal).
    ExpiredStock,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Flag {
    pub kind: FlagKind,
    pub message: String,
}

/// The book of one lot against its counts.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
// Named apart in the OpenAPI document: another `Reconciliation` would take its place.
#[schema(as = LedgerReconciliation)]
pub struct Reconciliation {
    pub totals: InventoryTotals,
    /// The most recent count still standing (not reversed).
    pub last_count: Option<CountCheck>,
    /// What should be on the shelf now: the book, plus whatever the last count found
    /// that is still unexplained.
    pub expected_on_shelf: Quantity,
    /// Every standing count that did not match the book, oldest first.
    pub discrepancies: Vec<CountCheck>,
    pub flags: Vec<Flag>,
    /// True when the last count (if any) matches the book, or its difference is explained.
    pub balanced: bool,
}

/// The entries of one lot, in the order they were written.
#[derive(Debug, Clone, PartialEq)]
pub struct LotBook {
    unit: CountingUnit,
    entries: Vec<BookEntry>,
    index: HashMap<EntryId, usize>,
    reversed: HashSet<EntryId>,
    on_hand: Quantity,
}

impl LotBook {
    pub fn new(unit: CountingUnit, entries: Vec<BookEntry>) -> Self {
        let mut b = Self {
            unit,
            entries: Vec::with_capacity(entries.len()),
            index: HashMap::new(),
            reversed: HashSet::new(),
            on_hand: Quantity::ZERO,
        };
        for e in entries {
            b.push(e);
        }
        b
    }

    fn push(&mut self, e: BookEntry) {
        if let Some(r) = e.reverses {
            self.reversed.insert(r);
        }
        self.on_hand += e.change;
        self.index.insert(e.id, self.entries.len());
        self.entries.push(e);
    }

    pub fn unit(&self) -> CountingUnit {
        self.unit
    }
    pub fn on_hand(&self) -> Quantity {
        self.on_hand
    }
    pub fn entries(&self) -> &[BookEntry] {
        &self.entries
    }
    pub fn get(&self, id: EntryId) -> Option<&BookEntry> {
        self.index.get(&id).map(|&i| &self.entries[i])
    }
    pub fn is_reversed(&self, id: EntryId) -> bool {
        self.reversed.contains(&id)
    }

    /// The kind an entry counts as: its own, or for a reversal the kind it reverses.
    fn effective_kind(&self, e: &BookEntry) -> EntryKind {
        match (e.kind, e.reverses.and_then(|r| self.get(r))) {
            (EntryKind::Reversal, Some(t)) => t.kind,
            (k, _) => k,
        }
    }

    fn standing(&self, field: &str, id: EntryId, want: EntryKind, what: &str) -> Result<&BookEntry, DomainError> {
        let e =
            self.get(id).ok_or_else(|| DomainError::field(field, format!("entry {id} is not an entry of this lot")))?;
        if e.kind != want {
            return Err(DomainError::field(field, format!("entry {id} is a {}, not {what}", e.kind.as_str())));
        }
        if self.is_reversed(id) {
            return Err(DomainError::field(field, format!("entry {id} has been reversed")));
        }
        Ok(e)
    }

    /// Plans a reversal of `target`: checks it may be reversed and returns the entry.
    pub fn plan_reversal(&self, target: EntryId) -> Result<Planned, DomainError> {
        let t = self
            .get(target)
            .ok_or_else(|| DomainError::field("entry_id", format!("entry {target} is not an entry of this lot")))?;
        if t.kind == EntryKind::Reversal {
            return Err(DomainError::Conflict(format!(
                "entry {target} is itself a reversal; record the entry again instead of reversing a reversal"
            )));
        }
        if self.is_reversed(target) {
            return Err(DomainError::Conflict(format!("entry {target} has already been reversed")));
        }
        let p = Planned {
            kind: EntryKind::Reversal,
            change: -t.change,
            reverses: Some(target),
            corrects: None,
            administration: None,
            resolves_count: None,
            count: None,
            on_hand_after: self.on_hand - t.change,
        };
        self.check_never_negative(std::slice::from_ref(&p))?;
        Ok(p)
    }

    /// Plans the entries for a proposal: the entry itself, or for a correction a reversal
    /// of the original plus the replacement (larger change first, so on-hand never dips
    /// below zero between the two). Refuses anything that would leave less than nothing.
    pub fn plan(&self, p: &Proposal) -> Result<Vec<Planned>, DomainError> {
        let sign_ok = match p.kind {
            EntryKind::Receipt => p.change.0 > 0,
            EntryKind::Administration | EntryKind::Waste | EntryKind::Disposal | EntryKind::Loss => p.change.0 < 0,
            EntryKind::Count => p.change.0 == 0 && p.count.is_some(),
            EntryKind::Adjustment => p.change.0 != 0,
            EntryKind::Reversal => false,
        };
        if !sign_ok {
            return Err(DomainError::field(
                "amount",
                format!("a {} entry cannot change stock by {}", p.kind.as_str(), p.change.show(self.unit)),
            ));
        }
        if let Some(a) = p.administration {
            if p.kind != EntryKind::Waste {
                return Err(DomainError::field("administration_id", "only waste links to an administration"));
            }
            self.standing("administration_id", a, EntryKind::Administration, "an administration")?;
        }
        if let Some(c) = p.resolves_count {
            if !matches!(p.kind, EntryKind::Loss | EntryKind::Adjustment) {
                return Err(DomainError::field("count_id", "only losses and adjustments explain a count"));
            }
            self.standing("count_id", c, EntryKind::Count, "a count")?;
        }
        let mut out = Vec::with_capacity(2);
        let entry = |on_hand_after| Planned {
            kind: p.kind,
            change: p.change,
            reverses: None,
            corrects: p.corrects,
            administration: p.administration,
            resolves_count: p.resolves_count,
            count: p.count,
            on_hand_after,
        };
        match p.corrects {
            None => out.push(entry(self.on_hand + p.change)),
            Some(orig) => {
                let what = format!("a {}", p.kind.as_str());
                let o = self.standing("corrects.entry_id", orig, p.kind, &what)?;
                if p.resolves_count == Some(orig) || p.administration == Some(orig) {
                    return Err(DomainError::field(
                        "corrects.entry_id",
                        "a replacement cannot link to the entry it replaces",
                    ));
                }
                let reversal_change = -o.change;
                let mut rev = Planned {
                    kind: EntryKind::Reversal,
                    change: reversal_change,
                    reverses: Some(orig),
                    corrects: None,
                    administration: None,
                    resolves_count: None,
                    count: None,
                    on_hand_after: Quantity::ZERO,
                };
                let mut new = entry(Quantity::ZERO);
                if reversal_change >= p.change {
                    rev.on_hand_after = self.on_hand + reversal_change;
                    new.on_hand_after = rev.on_hand_after + p.change;
                    out.push(rev);
                    out.push(new);
                } else {
                    new.on_hand_after = self.on_hand + p.change;
                    rev.on_hand_after = new.on_hand_after + reversal_change;
                    out.push(new);
                    out.push(rev);
                }
            }
        }
        self.check_never_negative(&out)?;
        Ok(out)
    }

    fn check_never_negative(&self, planned: &[Planned]) -> Result<(), DomainError> {
        if let Some(bad) = planned.iter().find(|p| p.on_hand_after.0 < 0) {
            return Err(DomainError::Conflict(format!(
                "refused: this would leave {} of this lot on hand, and stock cannot go below zero (the ledger shows {}). Nothing was recorded; check the amount and the lot, or record the missing receipt first",
                bad.on_hand_after.show(self.unit),
                self.on_hand.show(self.unit)
            )));
        }
        Ok(())
    }

    /// Adds planned entries once the store has written them.
    pub fn commit(&mut self, planned: Planned, id: EntryId, occurred_at: OffsetDateTime) {
        self.push(BookEntry {
            id,
            kind: planned.kind,
            change: planned.change,
            occurred_at,
            reverses: planned.reverses,
            corrects: planned.corrects,
            administration: planned.administration,
            resolves_count: planned.resolves_count,
            count: planned.count,
        });
    }

    pub fn totals(&self) -> InventoryTotals {
        let mut t = InventoryTotals::default();
        for e in &self.entries {
            match self.effective_kind(e) {
                EntryKind::Receipt => t.received += e.change,
                EntryKind::Administration => t.administered -= e.change,
                EntryKind::Waste => t.wasted -= e.change,
                EntryKind::Disposal => t.disposed -= e.change,
                EntryKind::Loss => t.lost -= e.change,
                EntryKind::Adjustment => t.adjusted += e.change,
                EntryKind::Count | EntryKind::Reversal => {}
            }
        }
        t.on_hand = self.on_hand;
        t
    }

    /// The count a loss or adjustment (or a reversal of one) explains.
    fn resolves(&self, e: &BookEntry) -> Option<EntryId> {
        e.resolves_count.or_else(|| e.reverses.and_then(|r| self.get(r)).and_then(|t| t.resolves_count))
    }

    fn check_count(&self, e: &BookEntry) -> Option<CountCheck> {
        let c = e.count?;
        let explained: Quantity =
            self.entries.iter().filter(|x| self.resolves(x) == Some(e.id)).map(|x| x.change).sum();
        Some(CountCheck {
            entry_id: e.id,
            counted_at: e.occurred_at,
            physical: c.physical,
            expected: c.expected,
            discrepancy: c.discrepancy,
            explained,
            unexplained: c.discrepancy - explained,
        })
    }

    /// The book against its counts. `expires_on` and `today` (the site's date) flag expired
    /// stock; `local_date` dates counts in messages by the site's calendar.
    pub fn reconcile(
        &self,
        expires_on: Option<Date>,
        today: Date,
        local_date: &dyn Fn(OffsetDateTime) -> Date,
    ) -> Reconciliation {
        let totals = self.totals();
        let standing_counts: Vec<CountCheck> = self
            .entries
            .iter()
            .filter(|e| e.kind == EntryKind::Count && !self.is_reversed(e.id))
            .filter_map(|e| self.check_count(e))
            .collect();
        let last_count = standing_counts.last().copied();
        let discrepancies: Vec<CountCheck> =
            standing_counts.iter().filter(|c| !c.discrepancy.is_zero()).copied().collect();
        let mut flags = Vec::new();
        if let Some(c) = last_count
            && !c.unexplained.is_zero()
        {
            flags.push(Flag {
                kind: FlagKind::Discrepancy,
                message: format!(
                    "the count on {} found {} against {} in the ledger ({} {}); {} is unexplained: record a loss, an adjustment or a recount",
                    local_date(c.counted_at),
                    c.physical.show(self.unit),
                    c.expected.show(self.unit),
                    c.discrepancy.show(self.unit),
                    if c.discrepancy.0 < 0 { "missing" } else { "over" },
                    c.unexplained.show(self.unit),
                ),
            });
        }
        if let Some(exp) = expires_on
            && exp <= today
            && totals.on_hand.0 > 0
        {
            flags.push(Flag {
                kind: FlagKind::ExpiredStock,
                message: format!(
                    "expired on {exp} with {} still on hand: destroy it with a witnessed disposal",
                    totals.on_hand.show(self.unit)
                ),
            });
        }
        Reconciliation {
            totals,
            last_count,
            expected_on_shelf: totals.on_hand + last_count.map_or(Quantity::ZERO, |c| c.unexplained),
            discrepancies,
            balanced: last_count.is_none_or(|c| c.unexplained.is_zero()),
            flags,
        }
    }
}

// ---------------------------------------------------------------------------
// What the store returns
// ---------------------------------------------------------------------------

/// A stock lot with its book on-hand.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Lot {
    pub id: LotId,
    pub site_id: SiteId,
    pub product: Product,
    pub unit: CountingUnit,
    pub form: String,
    pub strength: String,
    pub container: String,
    pub lot_number: String,
    pub ndc: String,
    pub expires_on: Date,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// The receipt entry that created the lot.
    pub receipt_entry_id: EntryId,
    pub on_hand: Quantity,
    pub on_hand_mg: Milligrams,
    pub on_hand_ml: Option<Millilitres>,
    pub on_hand_devices: Option<f64>,
}

/// A ledger entry as stored: append-only, hashed (IN-1) and chained.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LedgerEntry {
    pub id: EntryId,
    pub lot_id: LotId,
    pub site_id: SiteId,
    pub kind: EntryKind,
    /// Signed change to on-hand, in the lot's unit.
    pub change: Quantity,
    pub unit: CountingUnit,
    /// The lot's on-hand once this entry was written.
    pub on_hand_after: Quantity,
    /// The amount of drug moved (absolute), in mg.
    pub amount_mg: Milligrams,
    /// The volume moved (absolute), for vials.
    pub amount_ml: Option<Millilitres>,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
    pub recorded_by: Signatory,
    pub witnesses: Vec<Signatory>,
    pub session_id: Option<SessionId>,
    pub patient_id: Option<PatientId>,
    pub administration_id: Option<EntryId>,
    pub count_id: Option<EntryId>,
    /// For a replacement: the entry it corrects.
    pub corrects_id: Option<EntryId>,
    /// For a reversal: the entry it cancels.
    pub reverses_id: Option<EntryId>,
    /// The reversal that cancelled this entry, if any.
    pub reversed_by: Option<EntryId>,
    pub reason: Option<String>,
    pub count: Option<CountResult>,
    pub detail: EntryDetail,
    /// SHA-256 of the entry's canonical content.
    pub content_sha256: String,
    pub prev_hash: String,
    /// SHA-256 over the previous entry's hash and this entry's content hash.
    pub row_hash: String,
}

/// A count that did not match the book.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LedgerAlert {
    pub id: LedgerAlertId,
    pub site_id: SiteId,
    pub lot_id: LotId,
    /// The count that raised it.
    pub entry_id: EntryId,
    pub message: String,
    #[serde(with = "time::serde::rfc3339")]
    pub raised_at: OffsetDateTime,
    /// True while its count is the lot's last and its discrepancy is unexplained.
    pub open: bool,
}

/// What recording an entry wrote: the entry, the reversal when it corrected another,
/// the lot as it now stands, and any alert a count raised.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RecordedEntry {
    pub entry: LedgerEntry,
    /// The reversal of the corrected entry, when this was a correction.
    pub reversal: Option<LedgerEntry>,
    pub lot: Lot,
    pub alerts: Vec<LedgerAlert>,
}

/// One lot in the reconciliation report.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LotReconciliation {
    pub lot: Lot,
    #[serde(flatten)]
    pub reconciliation: Reconciliation,
}

/// On-hand against expected for every lot (CS-3): the book, the last count, and every
/// discrepancy, flagged until explained.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ReconciliationReport {
    pub site_id: Option<SiteId>,
    /// The ledger as it stood at this time (entries recorded up to it).
    #[serde(with = "time::serde::rfc3339")]
    pub as_of: OffsetDateTime,
    pub lots: Vec<LotReconciliation>,
    /// True when no lot is flagged with a discrepancy.
    pub balanced: bool,
    /// Lots with an unexplained discrepancy.
    pub discrepancy_lots: Vec<LotId>,
}

/// A theft or loss as a DEA Form 106 worksheet: the fields the form asks for, and what
/// is still to be done.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LossWorksheet {
    pub entry_id: EntryId,
    pub site_id: SiteId,
    pub loss_type: LossType,
    pub loss_type_label: String,
    #[serde(with = "time::serde::rfc3339")]
    pub discovered_at: OffsetDateTime,
    pub substance: String,
    pub dea_drug_code: String,
    pub strength: String,
    pub form: String,
    pub ndc: String,
    pub lot_number: String,
    pub quantity_lost: Quantity,
    pub unit: CountingUnit,
    pub quantity_lost_mg: Milligrams,
    pub quantity_lost_ml: Option<Millilitres>,
    pub quantity_lost_devices: Option<f64>,
    pub circumstances: String,
    pub police_report: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub dea_notified_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub form_106_filed_at: Option<OffsetDateTime>,
    /// The count that revealed it.
    pub count_id: Option<EntryId>,
    pub investigation_notes: Option<String>,
    pub recorded_by: Signatory,
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
    /// The entry that reversed this report (when it was corrected or voided).
    pub reversed_by: Option<EntryId>,
    /// What the registrant still has to do.
    pub outstanding: Vec<String>,
}

/// The first problem found when re-checking the ledger's hashes and arithmetic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LedgerBreak {
    pub entry_id: EntryId,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LedgerVerification {
    /// Entries that verified before the first problem (all of them when intact).
    pub entries_checked: u64,
    pub intact: bool,
    pub first_break: Option<LedgerBreak>,
}

#[cfg(test)]
mod tests;
