-- The sealer of a design not built yet: the chain's position and hashes inserted into a side table
-- keyed by the entry's seq (audit_chain), so audit_log is never rewritten and needs neither the
-- chain_seq index nor the unsealed one. Unsealed entries are found past the side table's newest,
-- less a margin for entries that commit out of order.
WITH low AS (SELECT coalesce(max(seq), 0) AS s FROM audit_chain),
     batch AS (SELECT a.seq, a.actor, a.fields, a.object_type, row_number() OVER (ORDER BY a.seq) AS k
               FROM audit_log a, low WHERE a.seq > low.s - 1000
                 AND NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.seq = a.seq) ORDER BY a.seq LIMIT 5000),
     head AS (SELECT coalesce(max(chain_seq), 0) AS h FROM audit_chain)
INSERT INTO audit_chain (seq, chain_seq, prev_hash, row_hash)
SELECT b.seq, head.h + b.k, md5(b.seq::text) || md5(b.actor), md5(b.seq::text || b.fields) || md5(b.object_type) FROM batch b, head;
