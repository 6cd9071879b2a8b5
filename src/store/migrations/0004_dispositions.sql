-- What a human agent recorded after a call they took: a disposition (a short code of their
-- choosing, such as "resolved" or "callback") and free notes.

CREATE TABLE dispositions (
    call_id TEXT NOT NULL,
    agent TEXT NOT NULL,
    disposition TEXT NOT NULL,
    notes TEXT NOT NULL,
    saved_at BIGINT NOT NULL
);
CREATE INDEX dispositions_call ON dispositions (call_id);
