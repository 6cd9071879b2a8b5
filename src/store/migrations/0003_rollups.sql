-- Daily rollups for analytics: what the dashboard's figures count, per UTC day (Unix ms /
-- 86 400 000), flow and language, kept as each call is stored, so that analytics over months
-- read a row per day and not every call. Filled here from the calls already stored.

CREATE TABLE daily_calls (
    day BIGINT NOT NULL,
    flow TEXT NOT NULL,
    language TEXT NOT NULL,
    outcome TEXT NOT NULL,
    transfer_reason TEXT NOT NULL,
    calls BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    turns BIGINT NOT NULL,
    kb_answers BIGINT NOT NULL,
    barge_ins BIGINT NOT NULL,
    csat_sum BIGINT NOT NULL,
    csat_answers BIGINT NOT NULL,
    PRIMARY KEY (day, flow, language, outcome, transfer_reason)
);

-- measure: `intent` (label: its name), `confidence` (value: tenths) or `latency` (value: the
-- 50 ms bucket's number).
CREATE TABLE daily_turns (
    day BIGINT NOT NULL,
    flow TEXT NOT NULL,
    language TEXT NOT NULL,
    measure TEXT NOT NULL,
    label TEXT NOT NULL,
    value BIGINT NOT NULL,
    turns BIGINT NOT NULL,
    PRIMARY KEY (day, flow, language, measure, label, value)
);

INSERT INTO daily_calls
SELECT started_at / 86400000, flow, language, outcome, transfer_reason, COUNT(*),
       SUM(duration_ms), SUM(turns), SUM(kb_answers), SUM(barge_ins), COALESCE(SUM(csat), 0),
       COUNT(csat)
FROM calls
GROUP BY started_at / 86400000, flow, language, outcome, transfer_reason;

INSERT INTO daily_turns
SELECT c.started_at / 86400000, c.flow, c.language, 'intent', t.intent, 0, COUNT(*)
FROM calls c JOIN call_turns t ON t.call_id = c.id
WHERE t.intent IS NOT NULL
GROUP BY c.started_at / 86400000, c.flow, c.language, t.intent;

INSERT INTO daily_turns
SELECT c.started_at / 86400000, c.flow, c.language, 'confidence', '', t.confidence_tenth, COUNT(*)
FROM calls c JOIN call_turns t ON t.call_id = c.id
WHERE t.confidence_tenth IS NOT NULL
GROUP BY c.started_at / 86400000, c.flow, c.language, t.confidence_tenth;

INSERT INTO daily_turns
SELECT c.started_at / 86400000, c.flow, c.language, 'latency', '', t.latency_ms / 50, COUNT(*)
FROM calls c JOIN call_turns t ON t.call_id = c.id
WHERE t.latency_ms IS NOT NULL
GROUP BY c.started_at / 86400000, c.flow, c.language, t.latency_ms / 50;
