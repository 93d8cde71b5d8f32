-- Columns written but never read, dropped. Keep in step with ../postgres/0032_unread_columns.sql.
--
-- pre_dose_screens.decided_at repeated what the screen already records: a screen is decided
-- when it is submitted (cleared or refused at once) or when the sitter confirms
-- (sitter_confirmed_at). home_dispenses.note was never written by any path.
-- checkin_links.progress_saved_at stays: the staff's check-in list now shows it.
ALTER TABLE pre_dose_screens DROP COLUMN decided_at;
ALTER TABLE home_dispenses DROP COLUMN note;
