-- The sessions under way at a site (in a chair: checked in to monitoring), which every render
-- of the live board reads beside the day's sessions. Without it the board reads all of the
-- site's sessions ever held (docs/benchmarks.md, "A clinic day under load"); the partial index
-- holds only the few sessions under way. Keep in step with ../postgres/0037_board_sessions.sql.
CREATE INDEX sessions_in_chair ON sessions(site_id) WHERE state IN ('checked_in', 'pre_dose_checks', 'dosing', 'monitoring');
