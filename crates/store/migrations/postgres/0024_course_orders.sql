-- A course is a prescription (issue 15). Keep in step with ../sqlite/0024_course_orders.sql:
-- the same tables, columns and constraint names.
--
-- The prescriber's order for a course, append-only: a changed order is a new row and the
-- latest one is in force. `body` is the order as JSON (keta_domain::prescription::NewCourseOrder).
CREATE TABLE course_orders (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    course_id BIGINT NOT NULL REFERENCES courses(id),
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    site_id BIGINT NOT NULL REFERENCES sites(id),
    protocol_id TEXT NOT NULL,
    body TEXT NOT NULL,
    ordered_by TEXT NOT NULL,
    ordered_by_user_id BIGINT,
    ordered_at BIGINT NOT NULL
);
CREATE INDEX course_orders_course ON course_orders(course_id, id);

-- A prescriber's documented decision that one session may be given a dose outside the order.
CREATE TABLE order_overrides (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id BIGINT NOT NULL REFERENCES sessions(id),
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    order_id BIGINT NOT NULL REFERENCES course_orders(id),
    dose TEXT NOT NULL,
    reason TEXT NOT NULL CONSTRAINT order_overrides_reason CHECK (length(reason) > 0),
    decided_by TEXT NOT NULL,
    decided_by_user_id BIGINT,
    decided_at BIGINT NOT NULL
);
CREATE INDEX order_overrides_session ON order_overrides(session_id, id);

CREATE FUNCTION course_orders_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'orders and overrides are append-only'; END; $$;
CREATE TRIGGER course_orders_no_update BEFORE UPDATE OR DELETE ON course_orders
    FOR EACH ROW EXECUTE FUNCTION course_orders_append_only();
CREATE TRIGGER order_overrides_no_update BEFORE UPDATE OR DELETE ON order_overrides
    FOR EACH ROW EXECUTE FUNCTION course_orders_append_only();
