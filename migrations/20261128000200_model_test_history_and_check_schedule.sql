-- Every test of a model, kept for its history: by hand (Test connection), by a chat, or by the
-- scheduled checks. `self_hosted_models.last_test` stays the quick answer for the list; this
-- table says since when a model fails. Rows older than the history period are pruned by the
-- scheduled round (TEST_HISTORY_DAYS).
CREATE TABLE model_tests (
    id              bigserial   NOT NULL,
    model_id        bigint      NOT NULL,
    ran_at          timestamptz NOT NULL DEFAULT now(),
    -- Who ran it: a user's name, or "scheduled checks".
    ran_by          text        NOT NULL,
    kind            text        NOT NULL,
    ok              boolean     NOT NULL,
    message         text        NOT NULL,
    total_ms        bigint      NOT NULL,
    first_token_ms  bigint,
    input_tokens    bigint,
    output_tokens   bigint,

    CONSTRAINT model_tests_pkey PRIMARY KEY (id),
    -- A deleted model takes its history with it.
    CONSTRAINT model_tests_model FOREIGN KEY (model_id)
        REFERENCES self_hosted_models (id) ON DELETE CASCADE,
    CONSTRAINT model_tests_kind_known CHECK (kind IN ('test_connection', 'chat', 'scheduled')),
    CONSTRAINT model_tests_ran_by_present CHECK (ran_by <> '')
);
CREATE INDEX model_tests_by_model_newest_first ON model_tests (model_id, ran_at DESC);
CREATE INDEX model_tests_by_time ON model_tests (ran_at);

-- When the next round of scheduled checks is due. One row: a replica claims a round by moving
-- `next_due` forward in one UPDATE ... WHERE next_due <= now(), so among several replicas
-- exactly one runs each round, and a replica that dies mid-round leaves nothing locked: the
-- next round is simply due at its time.
CREATE TABLE check_schedule (
    singleton            boolean     NOT NULL DEFAULT true,
    next_due             timestamptz NOT NULL DEFAULT now(),
    last_round_at        timestamptz,
    last_round_by        text,
    CONSTRAINT check_schedule_pkey PRIMARY KEY (singleton),
    CONSTRAINT check_schedule_single_row CHECK (singleton)
);
INSERT INTO check_schedule DEFAULT VALUES;
