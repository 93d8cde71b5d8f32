//! The one seam between Keta's SQL and a database engine.
//!
//! All queries are written once, with `$1` placeholders and portable SQL, against
//! [`Conn`]; each backend implements it for a connection inside a transaction.
//! Differences between SQLite and PostgreSQL live only in the migrations, and in one
//! dialect rule: a query that ends in `FOR UPDATE` locks the rows it reads on PostgreSQL
//! until the transaction ends, and SQLite (whose one writer already runs writes one at a
//! time) runs it without the clause (docs/decisions/0004-concurrency.md).

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

/// Which column of a [`Row`] to read: its name (`"id"`), or, during the move to names, its
/// position.
pub trait Column: Copy + std::fmt::Display {
    fn position(self, names: &[String]) -> Option<usize>;
}
impl Column for &str {
    fn position(self, names: &[String]) -> Option<usize> {
        names.iter().position(|n| n == self)
    }
}
impl Column for usize {
    fn position(self, names: &[String]) -> Option<usize> {
        (self < names.len()).then_some(self)
    }
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
    fn at<C: Column>(&self, col: C) -> Result<&Value> {
        col.position(&self.names)
            .and_then(|i| self.values.get(i))
            .ok_or_else(|| StoreError::Corrupt(format!("column {col} missing from the query's result")))
    }
    pub fn i64<C: Column>(&self, col: C) -> Result<i64> {
        match self.at(col)? {
            Value::Int(v) => Ok(*v),
            Value::Bool(b) => Ok(i64::from(*b)),
            other => Err(StoreError::Corrupt(format!("column {col}: expected integer, got {other:?}"))),
        }
    }
    pub fn opt_i64<C: Column>(&self, col: C) -> Result<Option<i64>> {
        match self.at(col)? {
            Value::Null => Ok(None),
            _ => self.i64(col).map(Some),
        }
    }
    pub fn f64<C: Column>(&self, col: C) -> Result<f64> {
        match self.at(col)? {
            Value::Real(v) => Ok(*v),
            Value::Int(v) => Ok(*v as f64),
            other => Err(StoreError::Corrupt(format!("column {col}: expected number, got {other:?}"))),
        }
    }
    pub fn opt_f64<C: Column>(&self, col: C) -> Result<Option<f64>> {
        match self.at(col)? {
            Value::Null => Ok(None),
            _ => self.f64(col).map(Some),
        }
    }
    pub fn bool<C: Column>(&self, col: C) -> Result<bool> {
        match self.at(col)? {
            Value::Bool(b) => Ok(*b),
            Value::Int(v) => Ok(*v != 0),
            other => Err(StoreError::Corrupt(format!("column {col}: expected boolean, got {other:?}"))),
        }
    }
    pub fn text<C: Column>(&self, col: C) -> Result<String> {
        match self.at(col)? {
            Value::Text(s) => Ok(s.clone()),
            other => Err(StoreError::Corrupt(format!("column {col}: expected text, got {other:?}"))),
        }
    }
    pub fn opt_text<C: Column>(&self, col: C) -> Result<Option<String>> {
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

    /// Runs a query expected to return at most one row.
    fn query_opt(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }
    /// Runs an `INSERT ... RETURNING id` and returns the id.
    fn insert(&mut self, sql: &str, params: &[Value]) -> Result<i64> {
        let row = self.query_opt(sql, params)?.ok_or_else(|| StoreError::Backend("insert returned no id".into()))?;
        row.i64(0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Builds a parameter slice: `params![a, b, c]`.
#[macro_export]
macro_rules! params {
    ($($v:expr),* $(,)?) => { &[$($crate::conn::Value::from($v)),*] };
}
