//! Entry kinds, what each must contain, and who signs: the recorder and witnesses.

use super::*;

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

pub(super) fn check_correction(v: &mut Validator, c: &Option<Correction>) {
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

pub(super) fn positive(v: &mut Validator, product: &Product, field: &str, a: Amount) -> Quantity {
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
