//! `keta export research --to DIR`: the de-identified research data set as CSV files and a data
//! dictionary (`keta_store::research` builds and audits it; this writes the files).
//!
//! Parquet is not written: the Parquet writer (the `parquet` crate of arrow-rs) brings the
//! Arrow crates and compression codecs with it, too heavy a build for a few small tables
//! that every statistics package reads as CSV.

use std::path::Path;

use anyhow::Context;
use keta_store::research::{ResearchExport, dictionary_csv, to_csv};
use keta_store::{Actor, SiteScope, Store};

/// Who the command line acts as: Keta itself (the database's owner runs it), named in the
/// audit trail as the research export command.
pub fn command_line_actor() -> Actor {
    Actor {
        name: "keta export research (command line)".into(),
        scope: SiteScope::All,
        role: None,
        user_id: None,
        break_glass: vec![],
    }
}

/// Builds the export and writes it into `dir`, which must be new or empty.
pub async fn run(store: &Store, actor: &Actor, dir: &Path) -> anyhow::Result<ResearchExport> {
    if dir.exists() && std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?.next().is_some() {
        anyhow::bail!("{} is not empty: choose a new folder for the export", dir.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let export =
        store.export_research(actor, &dir.display().to_string()).await.context("building the research export")?;
    write(&export, dir)?;
    Ok(export)
}

/// Writes every table as `<name>.csv` and the dictionary as `data_dictionary.csv`.
pub fn write(export: &ResearchExport, dir: &Path) -> anyhow::Result<()> {
    for t in &export.tables {
        let path = dir.join(format!("{}.csv", t.name));
        std::fs::write(&path, to_csv(t)).with_context(|| format!("writing {}", path.display()))?;
    }
    let path = dir.join("data_dictionary.csv");
    std::fs::write(&path, dictionary_csv(export.k_threshold)).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use time::macros::datetime;
    use time::{Date, OffsetDateTime};

    use super::*;

    /// The demo clinic's identifiers of one patient, and its dated records.
    struct Known {
        mrn: String,
        given: String,
        family: String,
        dob: String,
        phone: Option<String>,
        email: Option<String>,
        /// Exact session times (searched for as RFC 3339 and as "YYYY-MM-DD HH:MM").
        session_times: Vec<OffsetDateTime>,
    }

    async fn demo() -> (tempfile::TempDir, Store) {
        let now = datetime!(2026-11-27 16:20 UTC);
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("demo.db").display());
        let store = Store::open_with_clock(&url, Arc::new(move || now)).await.unwrap();
        crate::demo::ensure(&store, crate::demo::DEFAULT_SEED).await.unwrap();
        (dir, store)
    }

    fn read_all(dir: &Path) -> HashMap<String, String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                (p.file_name().unwrap().to_string_lossy().to_string(), std::fs::read_to_string(&p).unwrap())
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_demo_clinic_exports_without_a_single_identifier() {
        let (dir, store) = demo().await;
        let known: Vec<Known> = keta_store::testing::read(&store, |c| {
            let mut out = Vec::new();
            for r in c.query(
                "SELECT id, mrn, given_name, family_name, date_of_birth, phone, email FROM patients ORDER BY id",
                &[],
            )? {
                let id = r.i64("id")?;
                let times: Vec<OffsetDateTime> = c
                    .query("SELECT scheduled_for FROM sessions WHERE patient_id = $1", keta_store::params![id])?
                    .iter()
                    .map(|s| {
                        Ok(OffsetDateTime::from_unix_timestamp_nanos(i128::from(s.i64("scheduled_for")?) * 1_000_000)
                            .unwrap())
                    })
                    .collect::<keta_store::Result<_>>()?;
                out.push(Known {
                    mrn: r.text("mrn")?,
                    given: r.text("given_name")?,
                    family: r.text("family_name")?,
                    dob: r.text("date_of_birth")?,
                    phone: r.opt_text("phone")?,
                    email: r.opt_text("email")?,
                    session_times: times,
                });
            }
            Ok(out)
        })
        .await
        .unwrap();
        assert_eq!(known.len(), 60);

        let out = dir.path().join("export");
        let export = run(&store, &command_line_actor(), &out).await.unwrap();
        assert!(export.patients >= 40, "three in four demo patients consented: {}", export.patients);
        let files = read_all(&out);
        for name in [
            "patients.csv",
            "courses.csv",
            "sessions.csv",
            "doses.csv",
            "scores.csv",
            "adverse_events.csv",
            "outcomes.csv",
            "data_dictionary.csv",
        ] {
            assert!(files.contains_key(name), "{name} written");
        }
        assert!(files["sessions.csv"].lines().count() > 300, "the data set is there");

        let everything: String = files.values().cloned().collect::<Vec<_>>().join("\n");
        let lower = everything.to_lowercase();
        for k in &known {
            let mut ids = vec![k.mrn.clone(), k.dob.clone()];
            ids.extend(k.phone.clone());
            ids.extend(k.email.clone());
            for id in &ids {
                assert!(!everything.contains(id.as_str()), "identifier {id} found in the export");
            }
            // Names as words (a family name like "Lee" could be part of another word).
            for name in [&k.given, &k.family] {
                let n = name.to_lowercase();
                assert!(
                    !lower.split(|c: char| !c.is_alphanumeric()).any(|w| w == n),
                    "name {name} found in the export"
                );
            }
            for t in &k.session_times {
                let fmt = time::format_description::well_known::Rfc3339;
                assert!(!everything.contains(&t.format(&fmt).unwrap()), "session time {t} found");
                let minute = format!("{} {:02}:{:02}", t.date(), t.hour(), t.minute());
                assert!(!everything.contains(&minute), "session time {minute} found");
            }
        }

        // Per patient: every session date moved by one and the same non-zero shift, so no row
        // carries its real date and intervals stay true.
        let real = keta_store::testing::read(&store, |c| {
                c.query(
                    "SELECT r.research_id AS rid, s.scheduled_for AS at FROM sessions s JOIN research_subjects r ON r.patient_id = s.patient_id",
                    &[],
                )?
                .iter()
                .map(|r| Ok((r.text("rid")?, r.i64("at")?)))
                .collect::<keta_store::Result<Vec<_>>>()
            })
            .await
            .unwrap();
        let mut real_by: HashMap<String, Vec<Date>> = HashMap::new();
        for (rid, at) in real {
            real_by
                .entry(rid)
                .or_default()
                .push(OffsetDateTime::from_unix_timestamp_nanos(i128::from(at) * 1_000_000).unwrap().date());
        }
        let mut shifted_by: HashMap<String, Vec<Date>> = HashMap::new();
        for row in &export.table("sessions").unwrap().rows {
            let d = Date::parse(&row[3], time::macros::format_description!("[year]-[month]-[day]")).unwrap();
            shifted_by.entry(row[0].clone()).or_default().push(d);
        }
        assert!(shifted_by.len() > 30);
        for (rid, mut shifted) in shifted_by {
            let mut real = real_by.remove(&rid).unwrap();
            real.sort();
            shifted.sort();
            let shifts: std::collections::BTreeSet<i64> =
                real.iter().zip(&shifted).map(|(r, s)| (*s - *r).whole_days()).collect();
            assert_eq!(shifts.len(), 1, "{rid}: one shift per patient, got {shifts:?}");
            let shift = *shifts.first().unwrap();
            assert!(shift != 0 && shift.abs() <= keta_store::research::MAX_SHIFT_DAYS, "{rid}: {shift}");
        }
    }
}
