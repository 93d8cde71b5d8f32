//! The one seam between Keta's SQL and a database engine.
//!
//! All queries are written once, with `$1` placeholders and portable SQL, against
//! [`Conn`]; each backend implements it for a connection inside a transaction.
//! Differences between SQLite and PostgreSQL live only in the migrations, and in one
//! dialect rule: a query that ends in `FOR UPDATE` locks the rows it reads on PostgreSQL
//! until the transaction ends, and SQLite (whose one writer already runs writes one at a
//! time) runs it without the clause (docs/decisions/0004-concurrency.md).
//!
//! A [`Row`] is read by column name only (`row.text("mrn")`, `row.opt_i64("chair_id")`). Give
//! every expression column an alias (`count(*) AS n`, `COALESCE(x, '') AS x`, a sub-select
//! `AS latest_weight_kg`): the two engines name an unaliased expression differently. Alias
//! join columns that share a name (`s.id AS session_id, c.id AS course_id`): a name the
//! result holds twice is an error, as is a name it lacks. [`Row::values`] gives the whole
//! row in query order, for hashing a row (backups, the ledger chain), not for reading one
//! column.

use std::sync::Arc;

use crate::error::{Result, StoreError};

/// A value crossing the boundary. Times are epoch milliseconds (`Int`), dates are
/// ISO `YYYY-MM-DD` text, booleans are `Bool`, structured data is JSON text.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Bool(bool),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(v.into())
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Int(v.into())
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Real(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// One result row. Columns are read by the name the query gives them (`SELECT a.id AS
/// alert_id ...` is read as `"alert_id"`), so a query whose columns are reordered or renamed
/// fails loudly with [`StoreError::Corrupt`] naming the column instead of reading a neighbour's
/// value.
#[derive(Debug, Clone)]
pub struct Row {
    names: Arc<[String]>,
    values: Vec<Value>,
}

impl Row {
    /// A row as a backend read it: the column names shared by every row of one result.
    pub(crate) fn new(names: Arc<[String]>, values: Vec<Value>) -> Self {
        debug_assert_eq!(names.len(), values.len());
        Row { names, values }
    }
    /// Every value in query order (for hashing a whole row, as backups and the ledger chain do).
    pub fn values(&self) -> &[Value] {
        &self.values
    }
    /// The value of the one column called `col`: a name the result lacks, or names twice
    /// (`SELECT s.id, c.id ...`), is an error rather than a guess.
    fn at(&self, col: &str) -> Result<&Value> {
        let mut at = self.names.iter().enumerate().filter(|(_, n)| n.as_str() == col).map(|(i, _)| i);
        match (at.next(), at.next()) {
            (Some(i), None) => {
                self.values.get(i).ok_or_else(|| StoreError::Corrupt(format!("column {col} has no value in the row")))
            }
            (None, _) => Err(StoreError::Corrupt(format!("column {col} missing from the query's result"))),
            (Some(_), Some(_)) => Err(StoreError::Corrupt(format!(
                "column {col} is ambiguous: the query's result names it more than once (give each an alias with AS)"
            ))),
        }
    }
    pub fn i64(&self, col: &str) -> Result<i64> {
        match self.at(col)? {
            Value::Int(v) => Ok(*v),
            Value::Bool(b) => Ok(i64::from(*b)),
            other => Err(StoreError::Corrupt(format!("column {col}: expected integer, got {other:?}"))),
        }
    }
    pub fn opt_i64(&self, col: &str) -> Result<Option<i64>> {
        match self.at(col)? {
            Value::Null => Ok(None),
            _ => self.i64(col).map(Some),
        }
    }
    pub fn f64(&self, col: &str) -> Result<f64> {
        match self.at(col)? {
            Value::Real(v) => Ok(*v),
            Value::Int(v) => Ok(*v as f64),
            other => Err(StoreError::Corrupt(format!("column {col}: expected number, got {other:?}"))),
        }
    }
    pub fn opt_f64(&self, col: &str) -> Result<Option<f64>> {
        match self.at(col)? {
            Value::Null => Ok(None),
            _ => self.f64(col).map(Some),
        }
    }
    pub fn bool(&self, col: &str) -> Result<bool> {
        match self.at(col)? {
            Value::Bool(b) => Ok(*b),
            Value::Int(v) => Ok(*v != 0),
            other => Err(StoreError::Corrupt(format!("column {col}: expected boolean, got {other:?}"))),
        }
    }
    pub fn text(&self, col: &str) -> Result<String> {
        match self.at(col)? {
            Value::Text(s) => Ok(s.clone()),
            other => Err(StoreError::Corrupt(format!("column {col}: expected text, got {other:?}"))),
        }
    }
    pub fn opt_text(&self, col: &str) -> Result<Option<String>> {
        match self.at(col)? {
            Value::Null => Ok(None),
            _ => self.text(col).map(Some),
        }
    }
}

/// A connection inside an open transaction.
pub trait Conn {
    /// Runs a statement, returning the number of rows changed.
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64>;
    /// Runs a query, returning all rows.
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>>;
    /// Which engine this is, for the rare query that must differ.
    fn backend(&self) -> Backend;

    /// Runs a statement whose result the caller never reads (an audit entry). A backend may
    /// send it together with the next statement or the commit, saving a round trip
    /// (PostgreSQL does); an error in it still fails the whole write, reported by that next
    /// statement or the commit, and nothing of the write is kept.
    fn execute_later(&mut self, sql: &str, params: &[Value]) -> Result<()> {
        self.execute(sql, params).map(|_| ())
    }

    /// Runs queries one after another, each seeing what the ones before it did, and returns
    /// each one's rows. A backend may send them together, in one round trip (PostgreSQL does):
    /// use it for statements that need nothing from an earlier one's answer.
    fn query_each(&mut self, stmts: &[(&str, &[Value])]) -> Result<Vec<Vec<Row>>> {
        stmts.iter().map(|(sql, params)| self.query(sql, params)).collect()
    }

    /// Runs the transaction's last queries as [`Conn::query_each`] does. A backend may send
    /// the commit with them, in the same round trip (PostgreSQL does): the write's closure then
    /// returns their answers as committed. Nothing may run on the connection after them; an
    /// error in any of them, or in the commit, fails the write and keeps nothing of it. Other
    /// backends commit when the closure returns, as for any write.
    fn query_each_last(&mut self, stmts: &[(&str, &[Value])]) -> Result<Vec<Vec<Row>>> {
        self.query_each(stmts)
    }

    /// Runs a query expected to return at most one row.
    fn query_opt(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }
    /// Runs an `INSERT ... RETURNING id` and returns the id.
    fn insert(&mut self, sql: &str, params: &[Value]) -> Result<i64> {
        let row = self.query_opt(sql, params)?.ok_or_else(|| StoreError::Backend("insert returned no id".into()))?;
        row.i64("id")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Builds a parameter slice: `params![a, b, c]`. Exported (hidden) for the tests' raw SQL.
#[doc(hidden)]
#[macro_export]
macro_rules! params {
    ($($v:expr),* $(,)?) => { &[$($crate::testing::Value::from($v)),*] };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cols: &[(&str, Value)]) -> Row {
        let names: Arc<[String]> = cols.iter().map(|(n, _)| n.to_string()).collect();
        Row::new(names, cols.iter().map(|(_, v)| v.clone()).collect())
    }

    fn corrupt(r: Result<impl std::fmt::Debug>) -> String {
        match r {
            Err(StoreError::Corrupt(m)) => m,
            other => panic!("expected a corrupt-row error, got {other:?}"),
        }
    }

    #[test]
    fn columns_are_read_by_name_whatever_their_order() {
        let r = row(&[
            ("note", Value::Null),
            ("weight_kg", Value::Real(71.5)),
            ("id", Value::Int(7)),
            ("mrn", Value::Text("A-1".into())),
            ("serious", Value::Int(1)),
        ]);
        assert_eq!(r.i64("id").unwrap(), 7);
        assert_eq!(r.text("mrn").unwrap(), "A-1");
        assert_eq!(r.f64("weight_kg").unwrap(), 71.5);
        assert_eq!(r.opt_text("note").unwrap(), None);
        assert_eq!(r.opt_i64("id").unwrap(), Some(7));
        assert!(r.bool("serious").unwrap());
        // The same row with its columns in another order reads the same.
        let reordered = row(&[("mrn", Value::Text("A-1".into())), ("id", Value::Int(7))]);
        assert_eq!(reordered.i64("id").unwrap(), 7);
        assert_eq!(reordered.text("mrn").unwrap(), "A-1");
    }

    #[test]
    fn a_missing_column_is_named_in_the_error() {
        let r = row(&[("id", Value::Int(7))]);
        let m = corrupt(r.text("mrn"));
        assert!(m.contains("column mrn missing"), "{m}");
        // A near miss is not a match: names are compared whole.
        assert!(corrupt(r.opt_i64("i")).contains("column i missing"));
        assert!(corrupt(r.opt_i64("ID")).contains("column ID missing"));
    }

    #[test]
    fn a_name_the_result_holds_twice_is_ambiguous_not_the_first() {
        // As `SELECT s.id, c.id FROM sessions s JOIN courses c ...` returns.
        let r = row(&[("id", Value::Int(1)), ("course_id", Value::Int(3)), ("id", Value::Int(2))]);
        let m = corrupt(r.i64("id"));
        assert!(m.contains("column id is ambiguous"), "{m}");
        assert!(corrupt(r.opt_i64("id")).contains("ambiguous"));
        // The other columns of the row still read.
        assert_eq!(r.i64("course_id").unwrap(), 3);
    }

    #[test]
    fn a_value_of_the_wrong_type_names_the_column() {
        let r = row(&[("mrn", Value::Text("A-1".into()))]);
        let m = corrupt(r.i64("mrn"));
        assert!(m.contains("column mrn: expected integer"), "{m}");
    }
}
