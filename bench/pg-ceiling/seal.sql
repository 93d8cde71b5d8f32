WITH batch AS (SELECT seq, row_number() OVER (ORDER BY seq) AS k FROM audit_log WHERE chain_seq IS NULL ORDER BY seq LIMIT 5000),
     head AS (SELECT coalesce(max(chain_seq), 0) AS h FROM audit_log)
UPDATE audit_log a SET chain_seq = head.h + batch.k, prev_hash = md5(a.seq::text) || md5(a.actor), row_hash = md5(a.seq::text || a.fields) || md5(a.object_type)
FROM batch, head WHERE a.seq = batch.seq AND a.chain_seq IS NULL;
