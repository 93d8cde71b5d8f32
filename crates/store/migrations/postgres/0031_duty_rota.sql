-- Staff on duty: who works at a site on a day (nurses and prescribers), shown on the calendar
-- and set there by the administrator or the front desk. Keep in step with
-- ../sqlite/0031_duty_rota.sql: the same table, columns and constraint names.
--
-- One row per person on duty on a local date (`day`, YYYY-MM-DD on the site's clock). Setting a
-- day's rota replaces that day's rows; each change is in the audit trail.
CREATE TABLE duty_rota (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id BIGINT NOT NULL REFERENCES sites(id),
    day TEXT NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users(id),
    set_by TEXT NOT NULL,
    set_at BIGINT NOT NULL,
    CONSTRAINT duty_rota_once_a_day UNIQUE (site_id, day, user_id)
);
CREATE INDEX duty_rota_site_day ON duty_rota(site_id, day);
