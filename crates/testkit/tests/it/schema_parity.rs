//! The SQLite and PostgreSQL migrations define the same schema: the same tables, the same
//! columns with the same nullability, the same unique keys and the same foreign keys. Each
//! migration is written twice (one per dialect); this catches a column, constraint or index
//! added to one and forgotten in the other. (CHECK constraints differ in dialect and are
//! compared by the stories, which run on both backends.)

use std::collections::{BTreeMap, BTreeSet};

use keta_store::Result;
use keta_store::testing::Conn;
use keta_testkit::{ManualClock, TestDb};

use crate::fixtures::T0;

/// Per table: columns (name, NOT NULL), unique keys (sorted column lists), foreign keys
/// (column → referenced table).
#[derive(Debug, Default, PartialEq, Eq)]
struct Table {
    columns: BTreeSet<(String, bool)>,
    unique: BTreeSet<Vec<String>>,
    foreign: BTreeSet<(String, String)>,
}

fn sqlite_schema(c: &mut dyn Conn) -> Result<BTreeMap<String, Table>> {
    let mut out = BTreeMap::new();
    let tables =
        c.query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name", &[])?;
    for t in tables {
        let name = t.text("name")?;
        let mut table = Table::default();
        let mut pk = Vec::new();
        for col in c.query("SELECT name, \"notnull\", pk FROM pragma_table_info($1)", &[name.clone().into()])? {
            let (col_name, pk_pos) = (col.text("name")?, col.i64("pk")?);
            // A primary key column is NOT NULL in PostgreSQL whatever it says in SQLite.
            table.columns.insert((col_name.clone(), col.i64("notnull")? == 1 || pk_pos > 0));
            if pk_pos > 0 {
                pk.push((pk_pos, col_name));
            }
        }
        if !pk.is_empty() {
            pk.sort();
            let mut cols: Vec<String> = pk.into_iter().map(|(_, n)| n).collect();
            cols.sort();
            table.unique.insert(cols);
        }
        for idx in c.query("SELECT name FROM pragma_index_list($1) WHERE \"unique\" = 1", &[name.clone().into()])? {
            let mut cols: Vec<String> = c
                .query("SELECT name FROM pragma_index_info($1)", &[idx.text("name")?.into()])?
                .iter()
                .map(|r| r.text("name"))
                .collect::<Result<_>>()?;
            cols.sort();
            table.unique.insert(cols);
        }
        for fk in c.query("SELECT \"from\", \"table\" FROM pragma_foreign_key_list($1)", &[name.clone().into()])? {
            table.foreign.insert((fk.text("from")?, fk.text("table")?));
        }
        out.insert(name, table);
    }
    Ok(out)
}

fn postgres_schema(c: &mut dyn Conn) -> Result<BTreeMap<String, Table>> {
    let mut out: BTreeMap<String, Table> = BTreeMap::new();
    for col in c.query(
        "SELECT table_name::text AS table_name, column_name::text AS column_name, is_nullable = 'NO' AS not_null FROM information_schema.columns
         WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position",
        &[],
    )? {
        out.entry(col.text("table_name")?).or_default().columns.insert((col.text("column_name")?, col.bool("not_null")?));
    }
    for idx in c.query(
        "SELECT t.relname::text AS table_name, array_to_string(ARRAY(
             SELECT a.attname FROM unnest(i.indkey) k JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k
             ORDER BY a.attname), ',') AS columns
         FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
         WHERE i.indisunique AND n.nspname = current_schema()",
        &[],
    )? {
        let cols = idx.text("columns")?.split(',').map(String::from).collect();
        out.entry(idx.text("table_name")?).or_default().unique.insert(cols);
    }
    for fk in c.query(
        "SELECT t.relname::text AS table_name, a.attname::text AS column_name, r.relname::text AS foreign_table
         FROM pg_constraint k JOIN pg_class t ON t.oid = k.conrelid JOIN pg_class r ON r.oid = k.confrelid
         JOIN pg_namespace n ON n.oid = t.relnamespace
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY(k.conkey)
         WHERE k.contype = 'f' AND n.nspname = current_schema()",
        &[],
    )? {
        out.entry(fk.text("table_name")?)
            .or_default()
            .foreign
            .insert((fk.text("column_name")?, fk.text("foreign_table")?));
    }
    Ok(out)
}

/// Differences made on purpose, each with its reason: (table, column whose nullability differs).
const NULLABILITY_BY_DESIGN: &[(&str, &str, &str)] = &[
    ("audit_log", "prev_hash", "PostgreSQL entries wait unsealed for the sealer (docs/decisions/0005-audit-chain.md)"),
    ("audit_log", "row_hash", "PostgreSQL entries wait unsealed for the sealer (docs/decisions/0005-audit-chain.md)"),
];

/// Compares nullability everywhere except where it differs by design.
fn without_designed_differences(mut schema: BTreeMap<String, Table>) -> BTreeMap<String, Table> {
    for (table, column, _why) in NULLABILITY_BY_DESIGN {
        if let Some(t) = schema.get_mut(*table) {
            let had = t.columns.iter().find(|(c, _)| c == column).cloned();
            if let Some(entry) = had {
                t.columns.remove(&entry);
                t.columns.insert((entry.0, false));
            }
        }
    }
    schema
}

#[tokio::test]
async fn sqlite_and_postgresql_migrations_define_the_same_tables_columns_and_keys() {
    let clock = ManualClock::at(T0);
    let Some(pg) = TestDb::postgres(clock.as_clock()).await else {
        eprintln!("note: schema parity skipped (KETA_TEST_POSTGRES_URL is not set)");
        return;
    };
    let lite = TestDb::sqlite(clock.as_clock()).await;
    let a = without_designed_differences(
        keta_store::testing::read(&lite.store, |c| sqlite_schema(c)).await.expect("read the SQLite schema"),
    );
    let b = without_designed_differences(
        keta_store::testing::read(&pg.store, |c| postgres_schema(c)).await.expect("read the PostgreSQL schema"),
    );
    assert!(a.len() > 10, "the SQLite schema was read: {:?}", a.keys());

    let names = |m: &BTreeMap<String, Table>| m.keys().cloned().collect::<BTreeSet<_>>();
    let (only_lite, only_pg): (Vec<_>, Vec<_>) =
        (names(&a).difference(&names(&b)).cloned().collect(), names(&b).difference(&names(&a)).cloned().collect());
    assert!(
        only_lite.is_empty() && only_pg.is_empty(),
        "tables only in SQLite: {only_lite:?}; only in PostgreSQL: {only_pg:?}"
    );
    let mut differences = Vec::new();
    for (name, lt) in &a {
        let pt = &b[name];
        for (what, l, p) in [
            ("columns (name, not null)", format!("{:?}", lt.columns), format!("{:?}", pt.columns)),
            ("unique keys", format!("{:?}", lt.unique), format!("{:?}", pt.unique)),
            ("foreign keys", format!("{:?}", lt.foreign), format!("{:?}", pt.foreign)),
        ] {
            if l != p {
                differences.push(format!("{name}: {what}\n  SQLite:     {l}\n  PostgreSQL: {p}"));
            }
        }
    }
    assert!(differences.is_empty(), "the migrations differ:\n{}", differences.join("\n"));
}
