//! A retried request never records twice (the IETF draft "The Idempotency-Key HTTP Header
//! Field"): one row per (account, key) holds the request's fingerprint and, once it is done,
//! its response for replay.
//!
//! How one request goes:
//! 1. [`Store::reserve_idempotency_key`] inserts the row in its own small transaction. The
//!    unique constraint on (account, key) means two concurrent duplicates (on PostgreSQL,
//!    on different connections) cannot both reserve: the second waits for the first insert
//!    to commit and then finds the key in flight.
//! 2. The request runs under [`under_claim`]. Every [`Store::write`] it makes sets the
//!    row's `written_at` IN THE SAME TRANSACTION as the write, guarded by the attempt's
//!    `owner`; if the key was taken over (below), the write fails and rolls back, so a
//!    stale attempt cannot record after its retry did.
//! 3. [`Store::complete_idempotency_key`] stores the response; [`Store::release_idempotency_key`]
//!    instead removes a row whose request recorded nothing (refused input, a timeout before
//!    the write), so the client may correct it and try again with the same key.
//!
//! In flight: a reservation holds a lease. While it lasts, a duplicate is told the first is
//! still running. When it has run out and nothing was written (the server stopped, the
//! request was dropped), a retry takes the key over. When something was written but no
//! response was stored (a crash between the commit and step 3), the duplicate is told that
//! the first attempt was recorded at `written_at`, so the write can be found, never
//! repeated. Rows expire after the retention (a product setting, 24 h by default) and are
//! purged at the next reservation.
//!
//! These rows are bookkeeping about requests, not clinical records: they are not audited
//! themselves; the write each one guards writes its own audit entry.

use std::future::Future;

use base64::Engine;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::conn::Conn;
use crate::error::{Result, StoreError};
use crate::time_codec::{from_ms, ms};
use crate::{Store, params};

/// The attempt that holds a key: its row and a random owner token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub row_id: i64,
    pub owner: String,
}

/// A response kept for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What a reservation found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// This attempt holds the key: run the request, then complete or release it.
    Reserved(Claim),
    /// The first attempt finished; answer with its response.
    Replay(StoredResponse),
    /// The key was used for a different request (method, path or body).
    Mismatch,
    /// The first attempt is still running.
    InFlight,
    /// The first attempt recorded its write, but its response was not kept (the server
    /// stopped in between): the write exists and must be looked up, not repeated.
    RecordedWithoutResponse { written_at: OffsetDateTime },
}

/// How long keys are kept and how long an attempt holds one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPolicy {
    /// How long a key and its response are kept (product setting; the draft suggests 24 h).
    pub retention: Duration,
    /// How long a reservation stays "in flight" before a retry may take over a key whose
    /// request recorded nothing; longer than the request timeout.
    pub lease: Duration,
}

impl Default for KeyPolicy {
    fn default() -> Self {
        Self { retention: Duration::hours(24), lease: Duration::seconds(60) }
    }
}

/// SHA-256 over the method, the path (with its query) and the body, hex.
pub fn fingerprint(method: &str, path: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update([0]);
    h.update(path.as_bytes());
    h.update([0]);
    h.update(body);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

tokio::task_local! {
    static CLAIM: Claim;
}

/// Runs a request's work so that each store write it makes marks `claim` in the same
/// transaction.
pub async fn under_claim<F: Future>(claim: Claim, work: F) -> F::Output {
    CLAIM.scope(claim, work).await
}

/// The claim of the request running on this task, if any.
pub(crate) fn current_claim() -> Option<Claim> {
    CLAIM.try_with(Clone::clone).ok()
}

/// Marks the claim's row as written, inside the write's own transaction. Fails (so the
/// write rolls back) when the attempt no longer holds the key.
pub(crate) fn mark_written(c: &mut dyn Conn, claim: &Claim, now: OffsetDateTime) -> Result<()> {
    let n = c.execute(
        "UPDATE idempotency_keys SET written_at = COALESCE(written_at, $1) WHERE id = $2 AND owner = $3",
        params![ms(now), claim.row_id, claim.owner.as_str()],
    )?;
    if n == 0 {
        return Err(StoreError::Conflict(
            "this request's Idempotency-Key was taken over by a retry; this attempt recorded nothing".into(),
        ));
    }
    Ok(())
}

fn new_owner() -> String {
    crate::credentials::new_token()[..32].to_string()
}

impl Store {
    /// Reserves `key` for `user_id`'s request with `fingerprint`, or says what became of
    /// an earlier request with the same key. Purges expired keys on the way.
    pub async fn reserve_idempotency_key(
        &self,
        user_id: i64,
        key: &str,
        fingerprint: &str,
        policy: KeyPolicy,
    ) -> Result<Reservation> {
        if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(keta_domain::DomainError::field(
                "Idempotency-Key",
                "must be 1 to 255 visible ASCII characters, e.g. a UUID",
            )
            .into());
        }
        let now = self.now();
        let (key, fingerprint) = (key.to_string(), fingerprint.to_string());
        self.write(move |c| {
            c.execute("DELETE FROM idempotency_keys WHERE expires_at < $1", params![ms(now)])?;
            let owner = new_owner();
            let lease_until = ms(now + policy.lease);
            let inserted = c.query_opt(
                "INSERT INTO idempotency_keys (user_id, idem_key, fingerprint, owner, created_at, lease_until, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (user_id, idem_key) DO NOTHING RETURNING id",
                params![user_id, key.as_str(), fingerprint.as_str(), owner.as_str(), ms(now), lease_until, ms(now + policy.retention)],
            )?;
            if let Some(r) = inserted {
                return Ok(Reservation::Reserved(Claim { row_id: r.i64("id")?, owner }));
            }
            let r = c
                .query_opt(
                    "SELECT id, fingerprint, owner, lease_until, written_at, status, response_headers, response_body
                     FROM idempotency_keys WHERE user_id = $1 AND idem_key = $2",
                    params![user_id, key.as_str()],
                )?
                .ok_or_else(|| StoreError::Conflict("the Idempotency-Key is being released; try again".into()))?;
            if r.text("fingerprint")? != fingerprint {
                return Ok(Reservation::Mismatch);
            }
            if let Some(status) = r.opt_i64("status")? {
                let headers: Vec<(String, String)> = serde_json::from_str(&r.opt_text("response_headers")?.unwrap_or_default())
                    .map_err(|e| StoreError::Corrupt(format!("idempotency response headers: {e}")))?;
                let body = base64::engine::general_purpose::STANDARD
                    .decode(r.opt_text("response_body")?.unwrap_or_default())
                    .map_err(|e| StoreError::Corrupt(format!("idempotency response body: {e}")))?;
                let status = u16::try_from(status).map_err(|_| StoreError::Corrupt("idempotency status".into()))?;
                return Ok(Reservation::Replay(StoredResponse { status, headers, body }));
            }
            let lease_running = r.i64("lease_until")? >= ms(now);
            match r.opt_i64("written_at")? {
                _ if lease_running => Ok(Reservation::InFlight),
                Some(written) => Ok(Reservation::RecordedWithoutResponse { written_at: from_ms(written)? }),
                None => {
                    // The earlier attempt recorded nothing and its lease ran out: take the key over.
                    let (id, old_owner) = (r.i64("id")?, r.text("owner")?);
                    let n = c.execute(
                        "UPDATE idempotency_keys SET owner = $1, lease_until = $2 WHERE id = $3 AND owner = $4 AND written_at IS NULL",
                        params![owner.as_str(), lease_until, id, old_owner.as_str()],
                    )?;
                    if n == 1 { Ok(Reservation::Reserved(Claim { row_id: id, owner })) } else { Ok(Reservation::InFlight) }
                }
            }
        })
        .await
    }

    /// Keeps the response of the attempt that holds the key, for replay.
    pub async fn complete_idempotency_key(&self, claim: &Claim, response: &StoredResponse) -> Result<()> {
        let claim = claim.clone();
        let headers = serde_json::to_string(&response.headers).map_err(|e| StoreError::Backend(e.to_string()))?;
        let body = base64::engine::general_purpose::STANDARD.encode(&response.body);
        let status = i64::from(response.status);
        self.write(move |c| {
            c.execute(
                "UPDATE idempotency_keys SET status = $1, response_headers = $2, response_body = $3 WHERE id = $4 AND owner = $5",
                params![status, headers, body, claim.row_id, claim.owner.as_str()],
            )?;
            Ok(())
        })
        .await
    }

    /// Gives the key up when its request recorded nothing, so the client may retry it.
    /// Returns false (and keeps the row) when the request did record something.
    pub async fn release_idempotency_key(&self, claim: &Claim) -> Result<bool> {
        let claim = claim.clone();
        self.write(move |c| {
            Ok(c.execute(
                "DELETE FROM idempotency_keys WHERE id = $1 AND owner = $2 AND written_at IS NULL",
                params![claim.row_id, claim.owner.as_str()],
            )? == 1)
        })
        .await
    }

    /// Removes expired keys and their responses; returns how many.
    pub async fn purge_expired_idempotency_keys(&self) -> Result<u64> {
        let now = self.now();
        self.write(move |c| c.execute("DELETE FROM idempotency_keys WHERE expires_at < $1", params![ms(now)])).await
    }
}

#[cfg(test)]
mod tests {
    use super::fingerprint;

    #[test]
    fn fingerprint_covers_method_path_and_body() {
        let a = fingerprint("POST", "/api/v1/x", b"{}");
        assert_eq!(a, fingerprint("POST", "/api/v1/x", b"{}"));
        assert_ne!(a, fingerprint("PUT", "/api/v1/x", b"{}"));
        assert_ne!(a, fingerprint("POST", "/api/v1/y", b"{}"));
        assert_ne!(a, fingerprint("POST", "/api/v1/x", b"{ }"));
        // The separators keep "path + body" from being read another way.
        assert_ne!(fingerprint("POST", "/a", b"b"), fingerprint("POST", "/ab", b""));
    }
}
