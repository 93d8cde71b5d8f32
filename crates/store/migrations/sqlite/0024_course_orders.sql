-- A course is a prescription (issue 15). Keep in step with ../postgres/0024_course_orders.sql:
-- the same tables, columns and constraint names.
--
-- The prescriber's order for a course, append-only: a changed order is a new row and the
-- latest one is in force. `body` is the order as JSON (keta_domain::prescription::NewCourseOrder).
CREATE TABLE course_orders (
    id INTEGER PRIMARY KEY,
    course_id INTEGER NOT NULL REFERENCES courses(id),
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    site_id INTEGER NOT NULL REFERENCES sites(id),
    protocol_id TEXT NOT NULL,
    body TEXT NOT NULL,
    ordered_by TEXT NOT NULL,
    ordered_by_user_id INTEGER,
    ordered_at INTEGER NOT NULL
);
CREATE INDEX course_orders_course ON course_orders(course_id, id);

-- A prescriber's documented decision that one session may be given a dose outside the order.
CREATE TABLE order_overrides (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    order_id INTEGER NOT NULL REFERENCES course_orders(id),
    dose TEXT NOT NULL,
    reason TEXT NOT NULL CONSTRAINT order_overrides_reason CHECK (length(reason) > 0),
    decided_by TEXT NOT NULL,
    decided_by_user_id INTEGER,
    decided_at INTEGER NOT NULL
);
CREATE INDEX order_overrides_session ON order_overrides(session_id, id);

CREATE TRIGGER course_orders_no_update BEFORE UPDATE ON course_orders BEGIN SELECT RAISE(ABORT, 'orders are append-only'); END;
CREATE TRIGGER course_orders_no_delete BEFORE DELETE ON course_orders BEGIN SELECT RAISE(ABORT, 'orders are append-only'); END;
CREATE TRIGGER order_overrides_no_update BEFORE UPDATE ON order_overrides BEGIN SELECT RAISE(ABORT, 'overrides are append-only'); END;
CREATE TRIGGER order_overrides_no_delete BEFORE DELETE ON order_overrides BEGIN SELECT RAISE(ABORT, 'overrides are append-only'); END;
