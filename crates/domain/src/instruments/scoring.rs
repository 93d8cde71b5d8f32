//! Scoring: answers → total, severity band, subscales, safety and interpretive flags.
//!
//! The rules themselves live in the instrument data (see the parent module); this file only
//! interprets them. Validation happens first and reports *every* bad answer at once, naming
//! the item and the allowed values, so a form can show all problems together.
//!
//! Answers are `Option<i32>`, one per item in order. `None` means "not asked": allowed only
//! where the instrument's branching skips the item (C-SSRS Q3-Q5 when Q2 = no) or the item is
//! optional (PHQ-9 item 10, which may also be left off the end of the list).
//!
//! Safety flags are computed separately from the total (§1.2: "Implement as a separate rule,
//! not as part of the total"): a designated safety item answered above its minimum always
//! raises a [`SafetyFlag`]; it is `urgent` only when the reference supplies a threshold
//! (`urgent_at`) and the answer reaches it. For the C-SSRS the flag comes from the risk
//! category instead.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AnswerKind, AskIf, Band, FlagRule, Instrument, ScoringMethod, SubscaleRule};
use crate::error::{DomainError, Validator};

/// The result of scoring one completed instrument.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Score {
    /// Instrument code, e.g. `phq9`.
    pub instrument: String,
    /// Total score; `None` only for the C-SSRS Screener (a category, not a sum).
    pub total: Option<i32>,
    /// Highest possible total; `None` for the C-SSRS Screener.
    pub max_total: Option<i32>,
    /// Severity band containing the total, where the reference defines bands.
    pub severity: Option<Band>,
    /// Subscale / domain / cluster scores (QIDS-SR16 domains, PCL-5 clusters).
    pub subscales: Vec<SubscaleScore>,
    /// Percentage score (WHO-5: raw × 4).
    pub percentage: Option<i32>,
    /// C-SSRS Screener triage category: `none`, `low`, `moderate` or `high`.
    pub risk_category: Option<String>,
    /// Answers that need clinician attention regardless of the total.
    pub safety_flags: Vec<SafetyFlag>,
    /// Codes of interpretive flags that fired (see `Instrument::flag_rule` for their meaning),
    /// e.g. `pcl5_provisional_ptsd_dsm5`, `who5_poor_wellbeing`.
    pub flags: Vec<String>,
    /// Where the scoring rules come from, e.g. `clinical-reference.md §1.1, §1.2 [S24][S25]`.
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SubscaleScore {
    pub code: String,
    pub label: String,
    pub score: i32,
    pub max: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SafetyFlag {
    /// Item that triggered it (for the C-SSRS: the item that set the risk category).
    pub item: u32,
    /// The answer that raised it (0 in responses stored before this field existed).
    #[serde(default)]
    pub value: i32,
    pub code: String,
    pub message: String,
    /// Needs same-day / immediate clinical attention.
    pub urgent: bool,
}

/// The safety items answered positively so far, on answers that may be incomplete (a patient
/// saving a check-in to finish later). Invalid or missing answers are skipped: this never
/// errors, so a safety answer is acted on even when the rest of the form is not yet valid.
/// The triage categories of a risk-category instrument (C-SSRS) need the whole form and are
/// evaluated by [`score`].
pub fn partial_safety_flags(instrument: &Instrument, answers: &[Option<i32>]) -> Vec<SafetyFlag> {
    instrument
        .safety_items
        .iter()
        .filter_map(|s| {
            let item = instrument.item(s.item)?;
            let v = answers.get((s.item - 1) as usize).copied().flatten().filter(|&v| item.accepts(v))?;
            (v > item.min).then(|| SafetyFlag {
                item: s.item,
                value: v,
                code: s.code.clone(),
                message: s.message.replace("{value}", &v.to_string()),
                urgent: s.urgent_at.is_some_and(|u| v >= u),
            })
        })
        .collect()
}

/// Scores one completed instrument. See the module docs for the meaning of `None` answers.
///
/// Errors (all collected): wrong number of answers (field `answers`), out-of-range values,
/// missing answers to asked items, and answers to items the branching skips
/// (field `answers[i]`, 0-based).
pub fn score(instrument: &Instrument, answers: &[Option<i32>]) -> Result<Score, DomainError> {
    let answers = validate_answers(instrument, answers)?;
    let value = |n: u32| answers[(n - 1) as usize];

    let subscales: Vec<SubscaleScore> = instrument
        .subscales
        .iter()
        .map(|s| {
            let vals = s.items.iter().map(|&n| value(n).unwrap_or(0));
            let score = match s.rule {
                SubscaleRule::Sum => vals.sum(),
                SubscaleRule::Max => vals.max().unwrap_or(0),
            };
            SubscaleScore { code: s.code.clone(), label: s.label.clone(), score, max: s.max }
        })
        .collect();

    let total = match instrument.scoring {
        ScoringMethod::SumOfItems => {
            Some(instrument.items.iter().filter(|i| i.scored).filter_map(|i| value(i.number)).sum())
        }
        ScoringMethod::SumOfSubscales => Some(subscales.iter().map(|s| s.score).sum()),
        ScoringMethod::RiskCategory => None,
    };

    // The answers are valid here, so the partial evaluation is the whole one.
    let mut safety_flags: Vec<SafetyFlag> = partial_safety_flags(instrument, &answers);

    let mut risk_category = None;
    if let Some(triage) = &instrument.triage {
        // Most severe category reached; ties go to the higher item (the more specific answer).
        let mut best: (usize, Option<u32>) = (0, None);
        for rule in &triage.rules {
            if value(rule.item).is_some_and(|v| v >= rule.at_least) {
                let rank = triage.categories.iter().position(|c| c.code == rule.category).unwrap_or(0);
                if (rank, Some(rule.item)) > best {
                    best = (rank, Some(rule.item));
                }
            }
        }
        let category = &triage.categories[best.0];
        if let (true, Some(item)) = (category.raises_flag, best.1) {
            safety_flags.push(SafetyFlag {
                item,
                value: value(item).unwrap_or(0),
                code: format!("{}_{}", instrument.code, category.code),
                message: category.message.clone().unwrap_or_default(),
                urgent: category.urgent,
            });
        }
        risk_category = Some(category.code.clone());
    }

    let flags = instrument
        .flag_rules
        .iter()
        .filter(|f| flag_fires(&f.rule, instrument, &answers, total))
        .map(|f| f.code.clone())
        .collect();

    Ok(Score {
        instrument: instrument.code.clone(),
        total,
        max_total: instrument.max_total,
        severity: total.and_then(|t| instrument.band_for(t)).cloned(),
        subscales,
        percentage: total.zip(instrument.percentage_multiplier).map(|(t, m)| t * m),
        risk_category,
        safety_flags,
        flags,
        source: instrument.source.to_string(),
    })
}

fn flag_fires(rule: &FlagRule, inst: &Instrument, answers: &[Option<i32>], total: Option<i32>) -> bool {
    let value = |n: u32| answers.get((n as usize).wrapping_sub(1)).copied().flatten();
    match rule {
        FlagRule::TotalBelow { value } => total.is_some_and(|t| t < *value),
        FlagRule::TotalAtLeast { value: Some(v) } => total.is_some_and(|t| t >= *v),
        FlagRule::TotalAtLeast { value: None } => false,
        FlagRule::AnyItemAtMost { value: v } => {
            inst.items.iter().filter(|i| i.scored).any(|i| value(i.number).is_some_and(|a| a <= *v))
        }
        FlagRule::ItemEquals { item, value: v } => value(*item) == Some(*v),
        FlagRule::ClusterRule { endorsed_at, clusters } => clusters.iter().all(|c| {
            let Some(sub) = inst.subscales.iter().find(|s| s.code == c.subscale) else { return false };
            let endorsed = sub.items.iter().filter(|&&n| value(n).is_some_and(|a| a >= *endorsed_at)).count();
            endorsed >= c.min_endorsed as usize
        }),
    }
}

/// Checks count, ranges and branching; returns one entry per item (missing trailing optional
/// items padded with `None`).
fn validate_answers(inst: &Instrument, answers: &[Option<i32>]) -> Result<Vec<Option<i32>>, DomainError> {
    let n = inst.items.len();
    let min = inst.min_answers();
    if answers.len() < min || answers.len() > n {
        return Err(DomainError::field("answers", count_message(inst, answers.len())));
    }
    let padded: Vec<Option<i32>> = (0..n).map(|i| answers.get(i).copied().flatten()).collect();

    let mut v = Validator::new();
    for (idx, item) in inst.items.iter().enumerate() {
        let field = format!("answers[{idx}]");
        let name = inst.item_name(item);
        // Is the item asked? `None` when the deciding answer is itself missing or invalid
        // (that error is reported on its own field).
        let asked = match item.ask_if {
            None => Some(true),
            Some(c) => inst
                .item(c.item)
                .and_then(|d| padded[(c.item - 1) as usize].filter(|&a| d.accepts(a)))
                .map(|a| a >= c.at_least),
        };
        match (padded[idx], asked) {
            (Some(a), _) if !item.accepts(a) => {
                v.push(&field, format!("{name} must be {}, got {a}", item.allowed_values()));
            }
            (Some(_), Some(false)) => {
                let cond = describe_condition(inst, item.ask_if, false);
                v.push(&field, format!("{name} must be left unanswered (not asked): it is asked only when {cond}"));
            }
            (None, Some(true)) if item.required => {
                let msg = match item.ask_if {
                    Some(_) => format!(
                        "{name} must be answered ({}) because {}",
                        item.allowed_values(),
                        describe_condition(inst, item.ask_if, true)
                    ),
                    None => format!("{name} is always asked; answer {}", item.allowed_values()),
                };
                v.push(&field, msg);
            }
            _ => {}
        }
    }
    v.finish()?;
    Ok(padded)
}

/// "item 2 is yes" / "item 2 is yes (item 2 was no)" / "item 2 is at least 2".
fn describe_condition(inst: &Instrument, cond: Option<AskIf>, met: bool) -> String {
    let Some(c) = cond else { return String::new() };
    let yes_no = inst.item(c.item).is_some_and(|d| d.kind == AnswerKind::YesNo) && c.at_least == 1;
    match (yes_no, met) {
        (true, true) => format!("item {} is yes", c.item),
        (true, false) => format!("item {} is yes (item {} was no)", c.item, c.item),
        (false, true) => format!("item {} is at least {}", c.item, c.at_least),
        (false, false) => format!("item {} is at least {} (it was lower)", c.item, c.at_least),
    }
}

/// "PHQ-9 needs 9 answers (items 1-9; item 10 optional), got 7".
fn count_message(inst: &Instrument, got: usize) -> String {
    let (min, n) = (inst.min_answers(), inst.items.len());
    let optional = match n - min {
        0 => String::new(),
        1 => format!("; item {n} optional"),
        _ => format!("; items {}-{n} optional", min + 1),
    };
    let branching =
        if inst.items.iter().any(|i| i.ask_if.is_some()) { "; use null/'-' for items not asked" } else { "" };
    let noun = if min == 1 { "answer" } else { "answers" };
    let items = if min == 1 { "item 1".to_string() } else { format!("items 1-{min}") };
    format!("{} needs {min} {noun} ({items}{optional}{branching}), got {got}", inst.short_name)
}

/// Reads one answer typed at the CLI: an integer, `yes`/`no`/`y`/`n` for yes/no items, or `-`
/// for "not asked". Range is checked here; branching is checked by [`score`].
pub fn parse_answer_token(instrument: &Instrument, item_index: usize, token: &str) -> Result<Option<i32>, DomainError> {
    let Some(item) = instrument.items.get(item_index) else {
        return Err(DomainError::field(
            "answers",
            format!(
                "{} has {} items; there is no item {}",
                instrument.short_name,
                instrument.items.len(),
                item_index + 1
            ),
        ));
    };
    let field = format!("answers[{item_index}]");
    let name = instrument.item_name(item);
    let t = token.trim().to_ascii_lowercase();
    let err = |msg: String| Err(DomainError::field(&field, msg));
    let value = match t.as_str() {
        "-" => {
            return if item.required && item.ask_if.is_none() {
                err(format!("{name} is always asked; '-' (not asked) is not allowed"))
            } else {
                Ok(None)
            };
        }
        "yes" | "y" | "no" | "n" if item.kind != AnswerKind::YesNo => {
            return err(format!("{name} is not a yes/no question; enter {}", item.allowed_values()));
        }
        "yes" | "y" => 1,
        "no" | "n" => 0,
        other => match other.parse::<i32>() {
            Ok(v) => v,
            Err(_) => {
                let hint = if item.kind == AnswerKind::YesNo { ", yes or no" } else { "" };
                return err(format!("{name}: cannot read '{}'; enter {}{hint}", token.trim(), item.allowed_values()));
            }
        },
    };
    if item.accepts(value) {
        Ok(Some(value))
    } else {
        err(format!("{name} must be {}, got {value}", item.allowed_values()))
    }
}
