-- The sealer of another design not built yet: one row per batch (a block: its first and last seq,
-- how many entries, the hash over the entries in seq order), audit_log never rewritten and
-- without its two chain indexes. Here the hash is md5 in SQL; Keta would hash in Rust.
INSERT INTO audit_blocks (first_seq, last_seq, entries, block_hash)
SELECT min(seq), max(seq), count(*), md5(string_agg(seq::text || actor || fields || object_type || coalesce(object_id, ''), '|' ORDER BY seq))
FROM (SELECT a.seq, a.actor, a.fields, a.object_type, a.object_id FROM audit_log a
      WHERE a.seq > (SELECT coalesce(max(last_seq), 0) FROM audit_blocks) ORDER BY a.seq LIMIT 5000) AS batch
HAVING count(*) > 0;
