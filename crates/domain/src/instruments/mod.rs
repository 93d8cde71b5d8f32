//! Questionnaires as data, and scoring.
//!
//! # Why data files
//!
//! Every clinical number that drives scoring (item ranges, severity bands, safety items,
//! interpretive cut-offs) must be traceable to `clinical-reference.md` and signed off by the
//! clinic's medical director. Keeping them in `data/instruments/*.toml` — one file per
//! instrument, each number next to its section and source tag — makes that review a matter of
//! reading one short file, and keeps Rust code free of magic numbers. The files are embedded
//! with `include_str!` so a build is self-contained and the crate stays pure (no I/O).
//!
//! The embedded files are parsed and cross-checked on first use ([`catalog`]). A broken file is
//! a programming error, so it panics with a message naming the file; the unit test
//! `catalog_loads_every_embedded_instrument` makes sure that never reaches a clinic.
//!
//! # What is checked at load
//!
//! Items are numbered 1..n; totals derived from the items equal the ranges declared from the
//! reference; severity bands are contiguous and cover the whole range; every reference (item,
//! subscale, category) resolves; item wording, instructions and anchor labels appear only for
//! instruments whose licence allows reproducing them (`wording_permitted`: PHQ-9, GAD-7,
//! PCL-5, WHO-5 — §1 "No copyrighted item wording is reproduced here").
//!
//! # Settings without defaults
//!
//! Where the reference gives no single value, the data leaves the setting unset (`None`) and
//! says so in a comment, e.g. the PCL-5 total cut-off (`total_at_least` without a value never
//! fires) and the urgency threshold of the QIDS-SR16 item 12 / MADRS item 10 safety items
//! (`urgent_at` unset: a non-zero answer is still surfaced, as a non-urgent flag).

mod scoring;
#[cfg(test)]
mod tests;

pub use scoring::{SafetyFlag, Score, SubscaleScore, parse_answer_token, partial_safety_flags, score};

use std::collections::HashSet;
use std::fmt;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a clinical fact came from: a section of `clinical-reference.md` and its `[Sx]` tags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceRef {
    /// Section of `clinical-reference.md`, e.g. `§1.2`.
    pub section: String,
    /// Source tags from §8 of the reference, e.g. `["S24", "S25"]`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Caveat worth keeping next to the citation (e.g. "UNVERIFIED", "product default").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl fmt::Display for SourceRef {
    /// `clinical-reference.md §1.2 [S24][S25]`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "clinical-reference.md {}", self.section)?;
        if !self.tags.is_empty() {
            write!(f, " ")?;
            for t in &self.tags {
                write!(f, "[{t}]")?;
            }
        }
        Ok(())
    }
}

/// Who fills the instrument in. Named apart in the OpenAPI document from the response's
/// `CompletedBy` (patient or staff), which would otherwise take its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = InstrumentCompletedBy)]
pub enum CompletedBy {
    Patient,
    Clinician,
}

/// How the answers become a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScoringMethod {
    /// Total = sum of the scored items (PHQ-9, GAD-7, MADRS, PCL-5, WHO-5, CADSS, MOAA/S, NRS).
    SumOfItems,
    /// Total = sum of the subscale (domain) scores (QIDS-SR16's 9 domains, §1.4).
    SumOfSubscales,
    /// No total; a risk category from the triage rules (C-SSRS Screener, §1.8).
    RiskCategory,
}

/// What kind of answer an item takes; drives `parse_answer_token` and error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AnswerKind {
    /// An integer rating between the item's `min` and `max`.
    #[default]
    Scale,
    /// 0 = no, 1 = yes.
    YesNo,
}

/// The label of one answer value (only for instruments whose wording may be reproduced).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerLabel {
    pub value: i32,
    pub label: String,
}

/// Branching: the item is asked only if an earlier item's answer is at least `at_least`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AskIf {
    /// Number (1-based) of the earlier item that decides.
    pub item: u32,
    pub at_least: i32,
}

/// One question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// 1-based position in the answers.
    pub number: u32,
    /// Question wording — only for free instruments (`Instrument::wording_permitted`).
    #[serde(default)]
    pub text: Option<String>,
    /// Short structural description taken from the reference (e.g. "suicidal thoughts"),
    /// used where wording may not be reproduced. Not the item's wording.
    #[serde(default)]
    pub label: Option<String>,
    pub min: i32,
    pub max: i32,
    /// Counts towards the total. PHQ-9 item 10 and the C-SSRS items are not scored.
    #[serde(default = "yes")]
    pub scored: bool,
    /// Must be answered (when asked). `false` only for trailing optional items (PHQ-9 item 10),
    /// which may also be omitted from the answer list.
    #[serde(default = "yes")]
    pub required: bool,
    #[serde(default)]
    pub kind: AnswerKind,
    /// Asked only when this condition holds; otherwise the answer must be `None`.
    #[serde(default)]
    pub ask_if: Option<AskIf>,
    /// For short forms: the item's number in the parent instrument (CADSS-6 → CADSS).
    #[serde(default)]
    pub source_item: Option<u32>,
    /// Keta's own coding of the values when it is not obvious (C-SSRS Q6).
    #[serde(default)]
    pub coding: Option<String>,
    /// Item-specific anchor labels overriding the instrument's (PHQ-9 item 10).
    #[serde(default)]
    pub answer_labels: Vec<AnswerLabel>,
}

fn yes() -> bool {
    true
}

impl Item {
    /// "0-3", "0 (no) or 1 (yes)", or the range plus Keta's coding.
    pub fn allowed_values(&self) -> String {
        match (self.kind, &self.coding) {
            (AnswerKind::YesNo, _) => "0 (no) or 1 (yes)".to_string(),
            (AnswerKind::Scale, Some(c)) => format!("{}-{} ({c})", self.min, self.max),
            (AnswerKind::Scale, None) => format!("{}-{}", self.min, self.max),
        }
    }

    pub(crate) fn accepts(&self, v: i32) -> bool {
        (self.min..=self.max).contains(&v)
    }
}

/// A severity band: `min..=max` of the total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Band {
    pub code: String,
    pub label: String,
    pub min: i32,
    pub max: i32,
}

impl Band {
    pub fn contains(&self, total: i32) -> bool {
        (self.min..=self.max).contains(&total)
    }
}

/// How a subscale combines its items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscaleRule {
    Sum,
    /// Highest item of the group (QIDS-SR16 sleep, appetite/weight, psychomotor; §1.4).
    Max,
}

/// A subscale / domain / symptom cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Subscale {
    pub code: String,
    pub label: String,
    /// Item numbers (1-based).
    pub items: Vec<u32>,
    pub rule: SubscaleRule,
    /// Highest possible score; derived from the items at load (a file's own value is
    /// overwritten; not `skip_deserializing`, which would drop it from the OpenAPI schema).
    #[serde(default)]
    pub max: i32,
}

/// An item whose answer must be surfaced to clinicians independently of the total
/// (§1.2: "Implement as a separate rule, not as part of the total").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SafetyItem {
    pub item: u32,
    pub code: String,
    /// Shown to staff; `{value}` is replaced by the answer.
    pub message: String,
    /// Answers at or above this are urgent. Any answer above the item's minimum raises a flag;
    /// `None` (no threshold in the reference) means the flag is never marked urgent.
    #[serde(default)]
    pub urgent_at: Option<i32>,
    pub source: SourceRef,
}

/// One DSM-5 cluster requirement of [`FlagRule::ClusterRule`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterMinimum {
    /// Subscale code.
    pub subscale: String,
    /// How many of its items must be endorsed.
    pub min_endorsed: u32,
}

/// The condition of an interpretive flag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FlagRule {
    /// Total < value (WHO-5 poor well-being).
    TotalBelow { value: i32 },
    /// Total ≥ value. `None` = cut-off not configured: the rule never fires.
    TotalAtLeast {
        #[serde(default)]
        value: Option<i32>,
    },
    /// Any scored item ≤ value (WHO-5 item 0-1).
    AnyItemAtMost { value: i32 },
    /// One item's answer equals value.
    ItemEquals { item: u32, value: i32 },
    /// Items ≥ `endorsed_at` count as endorsed; each cluster needs its minimum (PCL-5).
    ClusterRule { endorsed_at: i32, clusters: Vec<ClusterMinimum> },
}

/// An interpretive flag (not a safety flag): code, meaning and where the rule comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlagDef {
    /// What `Score::flags` contains when the rule fires.
    pub code: String,
    pub message: String,
    pub rule: FlagRule,
    pub source: SourceRef,
}

/// A risk category of a triage-scored instrument (C-SSRS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RiskCategoryDef {
    pub code: String,
    pub label: String,
    /// Whether reaching this category raises a [`SafetyFlag`].
    pub raises_flag: bool,
    pub urgent: bool,
    /// Safety flag message; required when `raises_flag`.
    #[serde(default)]
    pub message: Option<String>,
}

/// "If item ≥ at_least, the risk is at least `category`".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriageRule {
    pub item: u32,
    pub at_least: i32,
    pub category: String,
}

/// Triage: the result is the most severe category any rule reaches; the first (least severe)
/// category when none does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Triage {
    pub source: SourceRef,
    /// Least to most severe.
    pub categories: Vec<RiskCategoryDef>,
    pub rules: Vec<TriageRule>,
}

/// LOINC codes — recorded only where §1.12 marks them verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Loinc {
    #[serde(default)]
    pub panel: Option<String>,
    #[serde(default)]
    pub total: Option<String>,
    pub source: SourceRef,
}

/// An outcome or session instrument, as defined in `data/instruments/<code>.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Instrument {
    /// Stable identifier, e.g. `phq9`.
    pub code: String,
    pub name: String,
    /// Display name, e.g. `PHQ-9`; used in messages.
    pub short_name: String,
    pub completed_by: CompletedBy,
    /// Nuance of who administers it (e.g. CADSS "clinician + patient").
    #[serde(default)]
    pub administration_note: Option<String>,
    pub recall_window: String,
    /// Form instructions — only for free instruments.
    #[serde(default)]
    pub instructions: Option<String>,
    pub scoring: ScoringMethod,
    /// Lowest possible total (declared from the reference, checked against the items).
    #[serde(default)]
    pub min_total: Option<i32>,
    /// Highest possible total (declared from the reference, checked against the items).
    /// `None` for the C-SSRS, which has no total.
    #[serde(default)]
    pub max_total: Option<i32>,
    /// Percentage score = total × this (WHO-5: 4, §1.7).
    #[serde(default)]
    pub percentage_multiplier: Option<i32>,
    /// Whether item wording / anchor labels may be stored (free instruments only).
    pub wording_permitted: bool,
    pub licence: String,
    /// Copyright line that must accompany the form (PHQ-9: Pfizer).
    #[serde(default)]
    pub copyright: Option<String>,
    pub source: SourceRef,
    #[serde(default)]
    pub notes: Vec<String>,
    #[serde(default)]
    pub loinc: Option<Loinc>,
    /// Anchor labels shared by the items — only for free instruments.
    #[serde(default)]
    pub answer_labels: Vec<AnswerLabel>,
    pub items: Vec<Item>,
    /// Severity bands; empty where the reference defines none (WHO-5, PCL-5, CADSS, NRS).
    #[serde(default)]
    pub bands: Vec<Band>,
    #[serde(default)]
    pub bands_source: Option<SourceRef>,
    #[serde(default)]
    pub subscales: Vec<Subscale>,
    #[serde(default)]
    pub subscales_source: Option<SourceRef>,
    #[serde(default)]
    pub safety_items: Vec<SafetyItem>,
    /// Interpretive flag rules (PCL-5 provisional PTSD, WHO-5 poor well-being, ...).
    #[serde(default)]
    pub flag_rules: Vec<FlagDef>,
    #[serde(default)]
    pub triage: Option<Triage>,
}

impl Instrument {
    /// Item by 1-based number.
    pub fn item(&self, number: u32) -> Option<&Item> {
        let idx = usize::try_from(number).ok()?.checked_sub(1)?;
        self.items.get(idx)
    }

    /// Fewest answers accepted: everything up to the last required item (trailing optional
    /// items such as PHQ-9 item 10 may be left off).
    pub fn min_answers(&self) -> usize {
        self.items.iter().rposition(|i| i.required).map_or(0, |p| p + 1)
    }

    /// The severity band containing `total`, if the instrument has bands.
    pub fn band_for(&self, total: i32) -> Option<&Band> {
        self.bands.iter().find(|b| b.contains(total))
    }

    /// The definition behind a code found in `Score::flags`.
    pub fn flag_rule(&self, code: &str) -> Option<&FlagDef> {
        self.flag_rules.iter().find(|f| f.code == code)
    }

    /// Anchor labels that apply to an item (its own, else the instrument's).
    pub fn labels_for<'a>(&'a self, item: &'a Item) -> &'a [AnswerLabel] {
        if item.answer_labels.is_empty() { &self.answer_labels } else { &item.answer_labels }
    }

    /// "item 4 of PHQ-9", or "item 3 (original item 6) of CADSS-6" for short forms.
    pub(crate) fn item_name(&self, item: &Item) -> String {
        match item.source_item {
            Some(orig) => format!("item {} (original item {orig}) of {}", item.number, self.short_name),
            None => format!("item {} of {}", item.number, self.short_name),
        }
    }
}

/// All instruments Keta knows, parsed from the embedded data files.
#[derive(Debug)]
pub struct Catalog {
    instruments: Vec<Instrument>,
}

impl Catalog {
    /// Instrument by code (`phq9`, `gad7`, `qids_sr16`, `pcl5`, `who5`, `cssrs_screen`, `madrs`,
    /// `cadss`, `cadss6`, `moaas`, `pain_nrs`).
    pub fn get(&self, code: &str) -> Option<&Instrument> {
        self.instruments.iter().find(|i| i.code == code)
    }

    /// All instruments, in a stable order.
    pub fn all(&self) -> &[Instrument] {
        &self.instruments
    }

    fn from_sources(sources: &[(&str, &str)]) -> Result<Self, String> {
        let mut instruments = Vec::with_capacity(sources.len());
        let mut codes = HashSet::new();
        for (path, text) in sources {
            let inst =
                parse_instrument(text).map_err(|e| format!("embedded instrument data {path} is invalid: {e}"))?;
            if !codes.insert(inst.code.clone()) {
                return Err(format!("embedded instrument data {path}: duplicate code `{}`", inst.code));
            }
            instruments.push(inst);
        }
        Ok(Self { instruments })
    }
}

macro_rules! embedded {
    ($($file:literal),* $(,)?) => {
        &[$((
            concat!("data/instruments/", $file),
            include_str!(concat!("../../../../data/instruments/", $file)),
        )),*]
    };
}

/// The data files, embedded at compile time (path for messages, contents).
const EMBEDDED: &[(&str, &str)] = embedded![
    "phq9.toml",
    "gad7.toml",
    "qids_sr16.toml",
    "madrs.toml",
    "pcl5.toml",
    "who5.toml",
    "cssrs_screen.toml",
    "cadss.toml",
    "cadss6.toml",
    "moaas.toml",
    "pain_nrs.toml",
];

/// The instrument catalog, parsed on first use.
///
/// # Panics
/// If an embedded data file is invalid — a build defect, caught by this module's tests.
pub fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| Catalog::from_sources(EMBEDDED).unwrap_or_else(|e| panic!("{e}")))
}

/// Parses and cross-checks one instrument definition.
pub(crate) fn parse_instrument(text: &str) -> Result<Instrument, String> {
    let mut inst: Instrument = toml::from_str(text).map_err(|e| e.to_string())?;
    validate(&mut inst).map_err(|e| format!("{}: {e}", inst.code))?;
    Ok(inst)
}

/// Structural checks, and derivation of subscale maxima. Errors are for data authors.
// Long on purpose: a flat list of independent structural checks on the instrument data, each with its own message.
#[allow(clippy::too_many_lines)]
fn validate(inst: &mut Instrument) -> Result<(), String> {
    if inst.code.is_empty() || inst.items.is_empty() {
        return Err("code and at least one item are required".into());
    }
    // Items numbered 1..n, sane ranges, wording only where the licence allows it.
    for (idx, item) in inst.items.iter().enumerate() {
        let n = item.number;
        if usize::try_from(n).ok() != Some(idx + 1) {
            return Err(format!("items must be numbered 1..n in order; position {} has number {n}", idx + 1));
        }
        if item.min > item.max {
            return Err(format!("item {n}: min > max"));
        }
        if item.kind == AnswerKind::YesNo && (item.min, item.max) != (0, 1) {
            return Err(format!("item {n}: yes/no items are coded 0-1"));
        }
        if !inst.wording_permitted && (item.text.is_some() || !item.answer_labels.is_empty()) {
            return Err(format!("item {n}: wording/anchors stored but the licence does not permit it"));
        }
        for l in &item.answer_labels {
            if !item.accepts(l.value) {
                return Err(format!("item {n}: answer label {} outside {}-{}", l.value, item.min, item.max));
            }
        }
        if let Some(c) = item.ask_if {
            let ok = c.item < n && inst.item(c.item).is_some_and(|d| d.accepts(c.at_least));
            if !ok {
                return Err(format!("item {n}: ask_if must name an earlier item and a value it accepts"));
            }
        }
    }
    if let Some(first_optional) = inst.items.iter().position(|i| !i.required)
        && inst.items[first_optional..].iter().any(|i| i.required)
    {
        return Err("optional (required = false) items must come last".into());
    }
    if !inst.wording_permitted && (inst.instructions.is_some() || !inst.answer_labels.is_empty()) {
        return Err("instructions/anchor labels stored but the licence does not permit it".into());
    }
    for l in &inst.answer_labels {
        let fits = inst.items.iter().filter(|i| i.answer_labels.is_empty()).all(|i| i.accepts(l.value));
        if !fits {
            return Err(format!("answer label {} is outside an item's range", l.value));
        }
    }

    // Subscales: derive maxima; every item must exist and be scored.
    let mut codes = HashSet::new();
    for s in &mut inst.subscales {
        if !codes.insert(s.code.clone()) || s.items.is_empty() {
            return Err(format!("subscale `{}`: duplicate code or no items", s.code));
        }
        let mut maxima = Vec::new();
        for &n in &s.items {
            let idx = usize::try_from(n).ok().and_then(|n| n.checked_sub(1));
            match idx.and_then(|i| inst.items.get(i)) {
                Some(item) if item.scored => maxima.push(item.max),
                _ => return Err(format!("subscale `{}`: item {n} missing or not scored", s.code)),
            }
        }
        s.max = match s.rule {
            SubscaleRule::Sum => maxima.iter().sum(),
            SubscaleRule::Max => maxima.into_iter().max().unwrap_or(0),
        };
    }
    if !inst.subscales.is_empty() && inst.subscales_source.is_none() {
        return Err("subscales need `subscales_source`".into());
    }

    // Totals: what the items imply must equal what the reference says.
    let scored = inst.items.iter().filter(|i| i.scored);
    let derived = match inst.scoring {
        ScoringMethod::SumOfItems => Some(scored.fold((0, 0), |(lo, hi), i| (lo + i.min, hi + i.max))),
        ScoringMethod::SumOfSubscales => {
            let mut covered: Vec<u32> = inst.subscales.iter().flat_map(|s| s.items.clone()).collect();
            covered.sort_unstable();
            let expected: Vec<u32> = scored.map(|i| i.number).collect();
            if covered != expected {
                return Err("sum_of_subscales: every scored item must be in exactly one subscale".into());
            }
            let lo = inst
                .subscales
                .iter()
                .map(|s| {
                    let mins = s.items.iter().filter_map(|&n| inst.item(n)).map(|i| i.min);
                    match s.rule {
                        SubscaleRule::Sum => mins.sum(),
                        SubscaleRule::Max => mins.max().unwrap_or(0),
                    }
                })
                .sum();
            Some((lo, inst.subscales.iter().map(|s| s.max).sum()))
        }
        ScoringMethod::RiskCategory => None,
    };
    match derived {
        Some((lo, hi)) => {
            if inst.min_total != Some(lo) || inst.max_total != Some(hi) {
                return Err(format!(
                    "declared total range {:?}-{:?} does not match the items ({lo}-{hi})",
                    inst.min_total, inst.max_total
                ));
            }
            if inst.triage.is_some() {
                return Err("triage is only for risk_category scoring".into());
            }
        }
        None => {
            if inst.min_total.is_some() || inst.max_total.is_some() || !inst.bands.is_empty() {
                return Err("risk_category instruments have no total or bands".into());
            }
            if inst.percentage_multiplier.is_some() {
                return Err("risk_category instruments have no percentage".into());
            }
            if inst.triage.is_none() {
                return Err("risk_category scoring needs [triage]".into());
            }
        }
    }
    if inst.percentage_multiplier.is_some_and(|m| m <= 0) {
        return Err("percentage_multiplier must be positive".into());
    }

    // Bands: contiguous, ascending, covering exactly min_total..=max_total.
    if !inst.bands.is_empty() {
        if inst.bands_source.is_none() {
            return Err("bands need `bands_source`".into());
        }
        let mut expect = inst.min_total.unwrap_or_default();
        let mut codes = HashSet::new();
        for b in &inst.bands {
            if b.min != expect || b.max < b.min || !codes.insert(b.code.as_str()) {
                return Err(format!("band `{}` must start at {expect}, be non-empty and have a unique code", b.code));
            }
            expect = b.max + 1;
        }
        if Some(expect - 1) != inst.max_total {
            return Err(format!("bands end at {} but the total goes to {:?}", expect - 1, inst.max_total));
        }
    }

    // Safety items.
    let mut codes = HashSet::new();
    for s in &inst.safety_items {
        let item = inst.item(s.item).ok_or_else(|| format!("safety item {} does not exist", s.item))?;
        if !codes.insert(s.code.as_str()) {
            return Err(format!("duplicate safety code `{}`", s.code));
        }
        if s.urgent_at.is_some_and(|u| u <= item.min || u > item.max) {
            return Err(format!("safety item {}: urgent_at must be within {}-{}", s.item, item.min + 1, item.max));
        }
    }

    // Interpretive flags.
    let mut codes = HashSet::new();
    for f in &inst.flag_rules {
        if !codes.insert(f.code.as_str()) {
            return Err(format!("duplicate flag code `{}`", f.code));
        }
        let ok = match &f.rule {
            FlagRule::TotalBelow { .. } | FlagRule::TotalAtLeast { .. } | FlagRule::AnyItemAtMost { .. } => {
                inst.scoring != ScoringMethod::RiskCategory
            }
            FlagRule::ItemEquals { item, value } => inst.item(*item).is_some_and(|i| i.accepts(*value)),
            FlagRule::ClusterRule { clusters, .. } => {
                !clusters.is_empty() && clusters.iter().all(|c| inst.subscales.iter().any(|s| s.code == c.subscale))
            }
        };
        if !ok {
            return Err(format!("flag `{}`: rule refers to a missing item/subscale or needs a total", f.code));
        }
    }

    // Triage.
    if let Some(t) = &inst.triage {
        let mut codes = HashSet::new();
        for c in &t.categories {
            if !codes.insert(c.code.as_str()) || (c.raises_flag && c.message.is_none()) {
                return Err(format!("risk category `{}`: duplicate, or raises a flag without a message", c.code));
            }
        }
        if t.categories.first().is_none_or(|c| c.raises_flag) {
            return Err("the first (no-risk) category must exist and raise no flag".into());
        }
        for r in &t.rules {
            let item_ok = inst.item(r.item).is_some_and(|i| i.accepts(r.at_least));
            if !item_ok || !codes.contains(r.category.as_str()) {
                return Err(format!("triage rule on item {}: unknown item/value or category", r.item));
            }
        }
    }

    if let Some(l) = &inst.loinc
        && l.panel.is_none()
        && l.total.is_none()
    {
        return Err("[loinc] without any code: omit the table instead".into());
    }
    Ok(())
}
