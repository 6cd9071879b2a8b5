-- Dashboard logins (a session per signed-in browser, kept as the hash of its cookie) and the
-- knowledge gaps a supervisor answered.

CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    role TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE gap_answers (
    id TEXT PRIMARY KEY,
    flow TEXT NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    answered_by TEXT NOT NULL,
    answered_at BIGINT NOT NULL
);
