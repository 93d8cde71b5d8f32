-- A copy of the tables Keta's vitals write touches, with their indexes and foreign keys (migrations
-- 0001, 0014, 0025, 0030), and 200 sessions in a chair with 20,000 readings: bench/pg-ceiling.sh.
CREATE TABLE patients (id BIGINT PRIMARY KEY, site_id BIGINT NOT NULL, name TEXT);
CREATE TABLE sites (id BIGINT PRIMARY KEY, settings TEXT NOT NULL);
CREATE TABLE sessions (id BIGINT PRIMARY KEY, patient_id BIGINT NOT NULL REFERENCES patients(id), site_id BIGINT NOT NULL, state TEXT NOT NULL, scheduled_for BIGINT NOT NULL, dose_started_at BIGINT, note TEXT);
CREATE INDEX ON sessions(patient_id, scheduled_for);
CREATE INDEX ON sessions(site_id, scheduled_for);
CREATE TABLE vitals (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, session_id BIGINT NOT NULL REFERENCES sessions(id), patient_id BIGINT NOT NULL REFERENCES patients(id), taken_at BIGINT NOT NULL, systolic_mmhg DOUBLE PRECISION, diastolic_mmhg DOUBLE PRECISION, heart_rate_bpm DOUBLE PRECISION, spo2_pct DOUBLE PRECISION, resp_rate_per_min DOUBLE PRECISION, source TEXT NOT NULL);
CREATE INDEX ON vitals(session_id, taken_at);
CREATE INDEX ON vitals(patient_id, taken_at);
CREATE TABLE alerts (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, session_id BIGINT, patient_id BIGINT, site_id BIGINT, rule TEXT, raised_at BIGINT, acknowledged_at BIGINT);
CREATE INDEX ON alerts(session_id);
CREATE TABLE monitor_vitals (vitals_id BIGINT PRIMARY KEY REFERENCES vitals(id), status TEXT NOT NULL);
CREATE TABLE audit_log (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, occurred_at BIGINT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, object_type TEXT NOT NULL, object_id TEXT, patient_id BIGINT, site_id BIGINT, fields TEXT NOT NULL DEFAULT '[]', outcome TEXT NOT NULL, prev_hash TEXT, row_hash TEXT, chain_seq BIGINT, request_id TEXT);
CREATE INDEX ON audit_log(patient_id, occurred_at);
CREATE INDEX ON audit_log(object_type, object_id, seq);
CREATE UNIQUE INDEX ON audit_log(chain_seq);
CREATE INDEX audit_log_unsealed ON audit_log(seq) WHERE chain_seq IS NULL;
CREATE TABLE bench (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, w BIGINT, n BIGINT);
INSERT INTO sites VALUES (1, repeat('x', 3000));
INSERT INTO patients SELECT g, 1, 'p' FROM generate_series(1,200) g;
INSERT INTO sessions SELECT g, g, 1, 'monitoring', 0, 1000, NULL FROM generate_series(1,200) g;
INSERT INTO vitals (session_id, patient_id, taken_at, systolic_mmhg, diastolic_mmhg, heart_rate_bpm, spo2_pct, resp_rate_per_min, source) SELECT (g % 200)+1, (g%200)+1, g, 120, 80, 70, 98, 14, 'manual' FROM generate_series(1,20000) g;
