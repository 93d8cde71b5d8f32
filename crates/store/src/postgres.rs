//! PostgreSQL backend: a small pool of synchronous connections used from tokio's
//! blocking threads, one transaction per operation. PostgreSQL handles concurrent
//! writers itself; `synchronous_commit` stays on so an acknowledged write is durable.
//! Writes run at READ COMMITTED and make each read-check-write safe with a row lock
//! (`... FOR UPDATE`) or a guarded update; reads run at REPEATABLE READ, read only
//! (docs/decisions/0004-concurrency.md).

use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use postgres::{Client, NoTls};
use tokio::sync::Semaphore;

use crate::conn::{Backend, Conn, Row, Value};
use crate::error::{Result, StoreError};

pub struct PostgresBackend {
    pub(crate) url: String,
    pool: Arc<Mutex<Vec<Client>>>,
    permits: Arc<Semaphore>,
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(v) => match *ty {
                Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
                Type::FLOAT8 => (*v as f64).to_sql(ty, out),
                Type::BOOL => (*v != 0).to_sql(ty, out),
                _ => v.to_sql(ty, out),
            },
            Value::Real(v) => match *ty {
                Type::FLOAT4 => (*v as f32).to_sql(ty, out),
                _ => v.to_sql(ty, out),
            },
            Value::Text(s) => s.as_str().to_sql(ty, out),
            Value::Bool(b) => match *ty {
                Type::INT2 | Type::INT4 | Type::INT8 => i64::from(*b).to_sql(&Type::INT8, out),
                _ => b.to_sql(ty, out),
            },
        }
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    to_sql_checked!();
}

pub(crate) struct PgConn<'a, 'b> {
    pub(crate) tx: &'a mut postgres::Transaction<'b>,
}

fn to_params(params: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

impl Conn for PgConn<'_, '_> {
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        let stmt = self.tx.prepare(sql)?;
        Ok(self.tx.execute(&stmt, &to_params(params))?)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        let stmt = self.tx.prepare(sql)?;
        let rows = self.tx.query(&stmt, &to_params(params))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let mut vals = Vec::with_capacity(r.len());
            for (i, col) in r.columns().iter().enumerate() {
                let v = match *col.type_() {
                    Type::INT8 => r.try_get::<_, Option<i64>>(i)?.map(Value::Int),
                    Type::INT4 => r.try_get::<_, Option<i32>>(i)?.map(|v| Value::Int(v.into())),
                    Type::INT2 => r.try_get::<_, Option<i16>>(i)?.map(|v| Value::Int(v.into())),
                    Type::FLOAT8 => r.try_get::<_, Option<f64>>(i)?.map(Value::Real),
                    Type::FLOAT4 => r.try_get::<_, Option<f32>>(i)?.map(|v| Value::Real(v.into())),
                    Type::NUMERIC => return Err(StoreError::Corrupt("NUMERIC columns are not used".into())),
                    Type::BOOL => r.try_get::<_, Option<bool>>(i)?.map(Value::Bool),
                    _ => r.try_get::<_, Option<String>>(i)?.map(Value::Text),
                };
                vals.push(v.unwrap_or(Value::Null));
            }
            out.push(Row(vals));
        }
        Ok(out)
    }

    fn backend(&self) -> Backend {
        Backend::Postgres
    }
}

impl PostgresBackend {
    /// Connects, runs migrations and keeps up to `max_connections` connections.
    pub fn open(url: &str, max_connections: usize) -> Result<Self> {
        let mut client = Client::connect(url, NoTls)?;
        crate::migrate::run_postgres(&mut client)?;
        Ok(Self {
            url: url.to_string(),
            pool: Arc::new(Mutex::new(vec![client])),
            permits: Arc::new(Semaphore::new(max_connections.max(1))),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        read_only: bool,
        op: impl FnOnce(&mut dyn Conn) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let permit = self.permits.clone().acquire_owned().await.map_err(|_| StoreError::Closed)?;
        let pool = self.pool.clone();
        let url = self.url.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = pool.lock().expect("pool poisoned").pop();
            let mut client = match pooled {
                Some(c) if !c.is_closed() => c,
                _ => Client::connect(&url, NoTls)?,
            };
            let result = (|| {
                let mut tx = if read_only {
                    // One snapshot for every query of the read (the chart, the board, outcomes),
                    // as SQLite's read transaction gives; READ COMMITTED would take one per query.
                    client
                        .build_transaction()
                        .isolation_level(postgres::IsolationLevel::RepeatableRead)
                        .read_only(true)
                        .start()?
                } else {
                    client.transaction()?
                };
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| op(&mut PgConn { tx: &mut tx })))
                    .unwrap_or_else(|p| Err(crate::error::panicked(p)));
                match r {
                    Ok(v) => {
                        tx.commit()?;
                        Ok(v)
                    }
                    Err(e) => {
                        let _ = tx.rollback();
                        Err(e)
                    }
                }
            })();
            if !client.is_closed() {
                pool.lock().expect("pool poisoned").push(client);
            }
            drop(permit);
            result
        })
        .await
        .map_err(|e| StoreError::Backend(format!("database task failed: {e}")))?
    }

    pub(crate) async fn write<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut dyn Conn) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.run(false, op).await
    }

    pub(crate) async fn read<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut dyn Conn) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.run(true, op).await
    }
}

impl Drop for PostgresBackend {
    /// The sync client blocks on its own runtime when closed, which must not happen on
    /// an async worker thread; close the pooled connections on a plain thread instead.
    fn drop(&mut self) {
        let clients: Vec<Client> = std::mem::take(&mut *self.pool.lock().unwrap_or_else(|e| e.into_inner()));
        if !clients.is_empty() {
            let _ = std::thread::spawn(move || drop(clients)).join();
        }
    }
}
