-- The scheduled checks' interval becomes a console setting, changed on the Configuration page
-- and audited, instead of a per-process variable: every replica then runs on the same schedule,
-- and a change is seen by all of them at the next claim. 0 turns the checks off. A day at most:
-- a rarer check would no longer say whether a feature is served now.
ALTER TABLE check_schedule
    ADD COLUMN interval_minutes integer NOT NULL DEFAULT 5,
    ADD CONSTRAINT check_schedule_interval_range CHECK (interval_minutes BETWEEN 0 AND 1440);

-- "Test all" (on the models tab and on the features tab) is a kind of test of its own in the
-- history, told apart from a single "Test connection".
ALTER TABLE model_tests
    DROP CONSTRAINT model_tests_kind_known,
    ADD CONSTRAINT model_tests_kind_known
        CHECK (kind IN ('test_connection', 'chat', 'scheduled', 'test_all'));

-- The last AI Gateway reachability check (by hand on the Configuration page, or by a scheduled
-- round), so that every page and every replica shows the same answer instead of each asking
-- the gateway again. It names the URL it checked: once the gateway URL changes, it speaks of
-- another address and is not shown.
ALTER TABLE instance_settings
    ADD COLUMN ai_gateway_checked_url text,
    ADD COLUMN ai_gateway_checked_at timestamptz,
    ADD COLUMN ai_gateway_reachable boolean,
    ADD COLUMN ai_gateway_check_message text,
    ADD CONSTRAINT instance_settings_gateway_check_whole
        CHECK ((ai_gateway_checked_url IS NULL) = (ai_gateway_checked_at IS NULL)
           AND (ai_gateway_checked_url IS NULL) = (ai_gateway_reachable IS NULL)
           AND (ai_gateway_checked_url IS NULL) = (ai_gateway_check_message IS NULL));
