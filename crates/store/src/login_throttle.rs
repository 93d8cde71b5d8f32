//! Counters behind sign-in throttling (security-reference AC-9), kept in the database so that
//! several `keta serve` instances behind a load balancer count the same failures: an attacker
//! spreading guesses over N instances gets no more than one instance allows
//! (docs/decisions/0007-several-instances.md). The limits themselves (free failures, the
//! doubling delay, the per-address budget) are the web layer's (`keta_web::auth`); this module
//! only counts, each count one atomic statement, so concurrent attempts on different
//! instances (different PostgreSQL connections) never lose an increment.
//!
//! These rows are bookkeeping about sign-in attempts, not clinical records: they are not
//! audited themselves; every failed sign-in already writes its `login_fail` audit entry.
//! Rows untouched for a day are purged as new attempts come in.

use time::{Duration, OffsetDateTime};

use crate::error::{Result, StoreError};
use crate::time_codec::{from_ms, ms};
use crate::{Store, params};

/// Rows older than this are forgotten (the longest delay is minutes; the address window a minute).
const KEEP: Duration = Duration::days(1);

/// A counter: how many, and since when (the window's start for an address, the last failure
/// for an account).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub attempts: u32,
    pub since: OffsetDateTime,
}

fn count(r: &crate::conn::Row) -> Result<Count> {
    Ok(Count {
        attempts: u32::try_from(r.i64("attempts")?.max(0)).unwrap_or(u32::MAX),
        since: from_ms(r.i64("since")?)?,
    })
}

impl Store {
    /// Counts one sign-in attempt from `address` in its current window of `window`, starting a
    /// new window when the last one is over; returns the count including this attempt.
    pub async fn count_sign_in_attempt(&self, address: &str, window: Duration) -> Result<Count> {
        let now = self.now();
        let address = address.to_string();
        self.write(move |c| {
            c.execute("DELETE FROM login_throttle WHERE since < $1", params![ms(now - KEEP)])?;
            let r = c
                .query_opt(
                    "INSERT INTO login_throttle (scope, subject, attempts, since) VALUES ('address', $1, 1, $2)
                 ON CONFLICT (scope, subject) DO UPDATE SET
                     attempts = CASE WHEN login_throttle.since < $3 THEN 1 ELSE login_throttle.attempts + 1 END,
                     since = CASE WHEN login_throttle.since < $3 THEN $2 ELSE login_throttle.since END
                 RETURNING attempts, since",
                    params![address.as_str(), ms(now), ms(now - window)],
                )?
                .ok_or_else(|| StoreError::Backend("the sign-in counter returned no row".into()))?;
            count(&r)
        })
        .await
    }

    /// Failures in a row for `account` (compared without case) and the time of the last one.
    pub async fn sign_in_failures(&self, account: &str) -> Result<Option<Count>> {
        let account = account.to_lowercase();
        self.read(move |c| {
            c.query_opt(
                "SELECT attempts, since FROM login_throttle WHERE scope = 'account' AND subject = $1",
                params![account.as_str()],
            )?
            .map(|r| count(&r))
            .transpose()
        })
        .await
    }

    /// One more failure for `account`, now.
    pub async fn record_sign_in_failure(&self, account: &str) -> Result<Count> {
        let now = self.now();
        let account = account.to_lowercase();
        self.write(move |c| {
            let r = c
                .query_opt(
                    "INSERT INTO login_throttle (scope, subject, attempts, since) VALUES ('account', $1, 1, $2)
                 ON CONFLICT (scope, subject) DO UPDATE SET attempts = login_throttle.attempts + 1, since = $2
                 RETURNING attempts, since",
                    params![account.as_str(), ms(now)],
                )?
                .ok_or_else(|| StoreError::Backend("the sign-in counter returned no row".into()))?;
            count(&r)
        })
        .await
    }

    /// A successful sign-in: `account` starts again with its free failures.
    pub async fn clear_sign_in_failures(&self, account: &str) -> Result<()> {
        let account = account.to_lowercase();
        self.write(move |c| {
            c.execute(
                "DELETE FROM login_throttle WHERE scope = 'account' AND subject = $1",
                params![account.as_str()],
            )?;
            Ok(())
        })
        .await
    }
}
