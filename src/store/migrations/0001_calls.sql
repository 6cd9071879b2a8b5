-- Calls, their events, turns, slots, QA findings and knowledge gaps; dashboard users and API
-- tokens. Written once for SQLite and PostgreSQL alike: integers are BIGINT, fractions
-- DOUBLE PRECISION, flags 0/1, times Unix milliseconds.

CREATE TABLE calls (
    id TEXT PRIMARY KEY,
    started_at BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    transport TEXT NOT NULL,
    caller TEXT NOT NULL,
    callee TEXT NOT NULL,
    language TEXT NOT NULL,
    flow TEXT NOT NULL,
    outcome TEXT NOT NULL,
    end_reason TEXT NOT NULL,
    turns BIGINT NOT NULL,
    barge_ins BIGINT NOT NULL,
    kb_answers BIGINT NOT NULL,
    transfer_reason TEXT NOT NULL,
    csat BIGINT,
    sentiment DOUBLE PRECISION NOT NULL,
    qa_worst BIGINT NOT NULL,
    qa_findings BIGINT NOT NULL,
    transcript TEXT NOT NULL,
    record_dir TEXT NOT NULL,
    has_recording BIGINT NOT NULL,
    stored_at BIGINT NOT NULL
);
CREATE INDEX calls_started ON calls (started_at);
CREATE INDEX calls_flow_started ON calls (flow, started_at);
CREATE INDEX calls_outcome_started ON calls (outcome, started_at);

CREATE TABLE call_events (
    call_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    t_ms BIGINT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (call_id, seq)
);

CREATE TABLE call_turns (
    call_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    turn BIGINT NOT NULL,
    t_ms BIGINT NOT NULL,
    text TEXT NOT NULL,
    intent TEXT,
    confidence DOUBLE PRECISION,
    confidence_tenth BIGINT,
    latency_ms BIGINT,
    sentiment DOUBLE PRECISION NOT NULL,
    barged_in BIGINT NOT NULL,
    PRIMARY KEY (call_id, seq)
);
CREATE INDEX call_turns_intent ON call_turns (intent);

CREATE TABLE call_slots (
    call_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (call_id, seq)
);

CREATE TABLE qa_findings (
    call_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    rule TEXT NOT NULL,
    severity TEXT NOT NULL,
    t_ms BIGINT NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (call_id, seq)
);
CREATE INDEX qa_findings_rule ON qa_findings (rule);

CREATE TABLE knowledge_gaps (
    call_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    t_ms BIGINT NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (call_id, seq)
);

CREATE TABLE users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
