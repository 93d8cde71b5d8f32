\set s1 (:client_id % 25) * 8 + 1
\set s2 (:client_id % 25) * 8 + 2
\set s3 (:client_id % 25) * 8 + 3
\set s4 (:client_id % 25) * 8 + 4
\set s5 (:client_id % 25) * 8 + 5
\set s6 (:client_id % 25) * 8 + 6
\set s7 (:client_id % 25) * 8 + 7
\set s8 (:client_id % 25) * 8 + 8
\startpipeline
BEGIN;
SELECT id, patient_id, site_id, state, dose_started_at FROM sessions WHERE id = :s1 FOR UPDATE;
SELECT (SELECT settings FROM sites WHERE id = 1) AS st, b.* FROM (SELECT 1) h LEFT JOIN (SELECT * FROM vitals v WHERE v.session_id = :s1 AND v.systolic_mmhg IS NOT NULL AND NOT EXISTS (SELECT 1 FROM monitor_vitals mv WHERE mv.vitals_id = v.id AND mv.status = 'struck') ORDER BY taken_at, id LIMIT 1) b ON true;
INSERT INTO vitals (session_id, patient_id, taken_at, systolic_mmhg, diastolic_mmhg, heart_rate_bpm, spo2_pct, resp_rate_per_min, source) VALUES (:s1, :s1, 99999, 120, 80, 70, 98, 14, 'monitor') RETURNING id;
SELECT rule FROM alerts WHERE session_id = :s1 AND acknowledged_at IS NULL;
INSERT INTO audit_log (occurred_at, actor, action, object_type, object_id, patient_id, site_id, fields, outcome, request_id) VALUES (1, 'bench.nurse', 'create', 'vitals', '123', :s1, 1, '["systolic_mmhg","diastolic_mmhg","heart_rate_bpm","spo2_pct","resp_rate_per_min"]', 'allowed', NULL);
SELECT id, patient_id, site_id, state, dose_started_at FROM sessions WHERE id = :s2 FOR UPDATE;
SELECT (SELECT settings FROM sites WHERE id = 1) AS st, b.* FROM (SELECT 1) h LEFT JOIN (SELECT * FROM vitals v WHERE v.session_id = :s2 AND v.systolic_mmhg IS NOT NULL AND NOT EXISTS (SELECT 1 FROM monitor_vitals mv WHERE mv.vitals_id = v.id AND mv.status = 'struck') ORDER BY taken_at, id LIMIT 1) b ON true;
INSERT INTO vitals (session_id, patient_id, taken_at, systolic_mmhg, diastolic_mmhg, heart_rate_bpm, spo2_pct, resp_rate_per_min, source) VALUES (:s2, :s2, 99999, 120, 80, 70, 98, 14, 'monitor') RETURNING id;
SELECT rule FROM alerts WHERE session_id = :s2 AND acknowledged_at IS NULL;
INSERT INTO audit_log (occurred_at, actor, action, object_type, object_id, patient_id, site_id, fields, outcome, request_id) VALUES (1, 'bench.nurse', 'create', 'vitals', '123', :s2, 1, '["systolic_mmhg","diastolic_mmhg","heart_rate_bpm","spo2_pct","resp_rate_per_min"]', 'allowed', NULL);
SELECT id, patient_id, site_id, state, dose_started_at FROM sessions WHERE id = :s3 FOR UPDATE;
SELECT (SELECT settings FROM sites WHERE id = 1) AS st, b.* FROM (SELECT 1) h LEFT JOIN (SELECT * FROM vitals v WHERE v.session_id = :s3 AND v.systolic_mmhg IS NOT NULL AND NOT EXISTS (SELECT 1 FROM monitor_vitals mv WHERE mv.vitals_id = v.id AND mv.status = 'struck') ORDER BY taken_at, id LIMIT 1) b ON true;
INSERT INTO vitals (session_id, patient_id, taken_at, systolic_mmhg, diastolic_mmhg, heart_rate_bpm, spo2_pct, resp_rate_per_min, source) VALUES (:s3, :s3, 99999, 120, 80, 70, 98, 14, 'monitor') RETURNING id;
SELECT rule FROM alerts WHERE session_id = :s3 AND acknowledged_at IS NULL;
INSERT INTO audit_log (occurred_at, actor, action, object_type, object_id, patient_id, site_id, fields, outcome, request_id) VALUES (1, 'bench.nurse', 'create', 'vitals', '123', :s3, 1, '["systolic_mmhg","diastolic_mmhg","heart_rate_bpm","spo2_pct","resp_rate_per_min"]', 'allowed', NULL);
SELECT id, patient_id, site_id, state, dose_started_at FROM sessions WHERE id = :s4 FOR UPDATE;
SELECT (SELECT settings FROM sites WHERE id = 1) AS st, b.* FROM (SELECT 1) h LEFT JOIN (SELECT * FROM vitals v WHERE v.session_id = :s4 AND v.systolic_mmhg IS NOT NULL AND NOT EXISTS (SELECT 1 FROM monitor_vitals mv WHERE mv.vitals_id = v.id AND mv.status = 'struck') ORDER BY taken_at, id LIMIT 1) b ON true;
INSERT INTO vitals (session_id, patient_id, taken_at, systolic_mmhg, diastolic_mmhg, heart_rate_bpm, spo2_pct, resp_rate_per_min, source) VALUES (:s4, :s4, 99999, 120, 80, 70, 98, 14, 'monitor') RETURNING id;
SELECT rule FROM alerts WHERE session_id = :s4 AND acknowledged_at IS NULL;
INSERT INTO audit_log (occurred_at, actor, action, object_type, object_id, patient_id, site_id, fields, outcome, request_id) VALUES (1, 'bench.nurse', 'create', 'vitals', '123', :s4, 1, '["systolic_mmhg","diastolic_mmhg","heart_rate_bpm","spo2_pct","resp_rate_per_min"]', 'allowed', NULL);
SELECT id, patient_id, site_id, state, dose_started_at FROM sessions WHERE id = :s5 FOR UPDATE;
SELECT (SELECT settings FROM sites WHERE id = 1) AS st, b.* FROM (SELECT 1) h LEFT JOIN (SELECT * FROM vitals v WHERE v.session_id = :s5 AND v.systolic_mmhg IS NOT NULL AND NOT EXISTS (SELECT 1 FROM monitor_vitals mv WHERE mv.vitals_id = v.id AND mv.status = 'struck') ORDER BY taken_at, id LIMIT 1) b ON true;
INSERT INTO vitals (session_id, patient_id, taken_at, systolic_mmhg, diastolic_mmhg, heart_rate_bpm, spo2_pct, resp_rate_per_min, source) VALUES (:s5, :s5, 99999, 120, 80, 70, 98, 14, 'monitor') RETURNING id;
SELECT rule FROM alerts WHERE session_id = :s5 AND acknowledged_at IS NULL;
INSERT INTO audit_log (occurred_at, actor, action, object_type, object_id, patient_id, site_id, fields, outcome, request_id) VALUES (1, 'bench.nurse', 'create', 'vitals', '123', :s5, 1, '["systolic_mmhg","diastolic_mmhg","heart_rate_bpm","spo2_pct","resp_rate_per_min"]', 'allowed', NULL);
SELECT id, patient_id, site_id, state, dose_started_at FROM sessions WHERE id = :s6 FOR UPDATE;
SELECT (SELECT settings FROM sites WHERE id = 1) AS st, b.* FROM (SELECT 1) h LEFT JOIN (SELECT * FROM vitals v WHERE v.session_id = :s6 AND v.systolic_mmhg IS NOT NULL AND NOT EXISTS (SELECT 1 FROM monitor_vitals mv WHERE mv.vitals_id = v.id AND mv.status = 'struck') ORDER BY taken_at, id LIMIT 1) b ON true;
INSERT INTO vitals (session_id, patient_id, taken_at, systolic_mmhg, diastolic_mmhg, heart_rate_bpm, spo2_pct, resp_rate_per_min, source) VALUES (:s6, :s6, 99999, 120, 80, 70, 98, 14, 'monitor') RETURNING id;
SELECT rule FROM alerts WHERE session_id = :s6 AND acknowledged_at IS NULL;
INSERT INTO audit_log (occurred_at, actor, action, object_type, object_id, patient_id, site_id, fields, outcome, request_id) VALUES (1, 'bench.nurse', 'create', 'vitals', '123', :s6, 1, '["systolic_mmhg","diastolic_mmhg","heart_rate_bpm","spo2_pct","resp_rate_per_min"]', 'allowed', NULL);
SELECT id, patient_id, site_id, state, dose_started_at FROM sessions WHERE id = :s7 FOR UPDATE;
SELECT (SELECT settings FROM sites WHERE id = 1) AS st, b.* FROM (SELECT 1) h LEFT JOIN (SELECT * FROM vitals v WHERE v.session_id = :s7 AND v.systolic_mmhg IS NOT NULL AND NOT EXISTS (SELECT 1 FROM monitor_vitals mv WHERE mv.vitals_id = v.id AND mv.status = 'struck') ORDER BY taken_at, id LIMIT 1) b ON true;
INSERT INTO vitals (session_id, patient_id, taken_at, systolic_mmhg, diastolic_mmhg, heart_rate_bpm, spo2_pct, resp_rate_per_min, source) VALUES (:s7, :s7, 99999, 120, 80, 70, 98, 14, 'monitor') RETURNING id;
SELECT rule FROM alerts WHERE session_id = :s7 AND acknowledged_at IS NULL;
INSERT INTO audit_log (occurred_at, actor, action, object_type, object_id, patient_id, site_id, fields, outcome, request_id) VALUES (1, 'bench.nurse', 'create', 'vitals', '123', :s7, 1, '["systolic_mmhg","diastolic_mmhg","heart_rate_bpm","spo2_pct","resp_rate_per_min"]', 'allowed', NULL);
SELECT id, patient_id, site_id, state, dose_started_at FROM sessions WHERE id = :s8 FOR UPDATE;
SELECT (SELECT settings FROM sites WHERE id = 1) AS st, b.* FROM (SELECT 1) h LEFT JOIN (SELECT * FROM vitals v WHERE v.session_id = :s8 AND v.systolic_mmhg IS NOT NULL AND NOT EXISTS (SELECT 1 FROM monitor_vitals mv WHERE mv.vitals_id = v.id AND mv.status = 'struck') ORDER BY taken_at, id LIMIT 1) b ON true;
INSERT INTO vitals (session_id, patient_id, taken_at, systolic_mmhg, diastolic_mmhg, heart_rate_bpm, spo2_pct, resp_rate_per_min, source) VALUES (:s8, :s8, 99999, 120, 80, 70, 98, 14, 'monitor') RETURNING id;
SELECT rule FROM alerts WHERE session_id = :s8 AND acknowledged_at IS NULL;
INSERT INTO audit_log (occurred_at, actor, action, object_type, object_id, patient_id, site_id, fields, outcome, request_id) VALUES (1, 'bench.nurse', 'create', 'vitals', '123', :s8, 1, '["systolic_mmhg","diastolic_mmhg","heart_rate_bpm","spo2_pct","resp_rate_per_min"]', 'allowed', NULL);
END;
\endpipeline
