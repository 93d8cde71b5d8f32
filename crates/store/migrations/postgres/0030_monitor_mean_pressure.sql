-- Bedside monitors: the mean arterial pressure a monitor sends with the blood pressure, kept
-- beside the reading it came with (the chart's vitals have systolic and diastolic only, and the
-- session-safety rules use only those). Keep in step with ../sqlite/0030_monitor_mean_pressure.sql.
ALTER TABLE monitor_vitals ADD COLUMN mean_mmhg DOUBLE PRECISION;
ALTER TABLE monitor_review ADD COLUMN mean_mmhg DOUBLE PRECISION;
