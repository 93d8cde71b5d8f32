-- The statements of Keta's vitals write for session :s (crates/store/src/sessions.rs insert_vitals and
-- audit::record): the session row locked, the baseline with the site's settings, the reading, the
-- open alerts, the audit entry. bench/pg-ceiling.sh sends them in the ways it compares.
-- The audit entry stays last: the two-trips script sends it apart, with the COMMIT.
SELECT id, patient_id, site_id, state, dose_started_at FROM sessions WHERE id = :s FOR UPDATE;
SELECT (SELECT settings FROM sites WHERE id = 1) AS st, b.* FROM (SELECT 1) h LEFT JOIN (SELECT * FROM vitals v WHERE v.session_id = :s AND v.systolic_mmhg IS NOT NULL AND NOT EXISTS (SELECT 1 FROM monitor_vitals mv WHERE mv.vitals_id = v.id AND mv.status = 'struck') ORDER BY taken_at, id LIMIT 1) b ON true;
INSERT INTO vitals (session_id, patient_id, taken_at, systolic_mmhg, diastolic_mmhg, heart_rate_bpm, spo2_pct, resp_rate_per_min, source) VALUES (:s, :s, 99999, 120, 80, 70, 98, 14, 'monitor') RETURNING id;
SELECT rule FROM alerts WHERE session_id = :s AND acknowledged_at IS NULL;
INSERT INTO audit_log (occurred_at, actor, action, object_type, object_id, patient_id, site_id, fields, outcome, request_id) VALUES (1, 'bench.nurse', 'create', 'vitals', '123', :s, 1, '["systolic_mmhg","diastolic_mmhg","heart_rate_bpm","spo2_pct","resp_rate_per_min"]', 'allowed', NULL);
