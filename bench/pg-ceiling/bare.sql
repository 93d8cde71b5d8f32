\set w random(1, 16)
BEGIN;
INSERT INTO bench (w, n) VALUES (:w, 1);
END;
