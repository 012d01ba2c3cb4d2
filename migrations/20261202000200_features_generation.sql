-- What the AI-native features tab shows (the models, each feature's assignment, each model's
-- tests, whether beta is on) lives in four tables. Every change to them moves this one counter,
-- in the same transaction, so that each replica can keep the tab's data and learn with one tiny
-- query whether it is still current. A change made on any replica, by `duo-admin config import`
-- or by hand in psql moves it for all of them.
CREATE TABLE features_generation (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    generation bigint NOT NULL
);
INSERT INTO features_generation (generation) VALUES (0);

-- Deferred to the commit, so that the counter's row is the last lock a transaction takes: two
-- transactions each holding a row the other wants cannot also wait for each other here. Once
-- per transaction is enough (the counter need only differ once it commits), which keeps a
-- deletion of many old tests from updating it once per row.
CREATE FUNCTION bump_features_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('duo_admin.features_generation_bumped', true) IS DISTINCT FROM 'yes' THEN
        PERFORM set_config('duo_admin.features_generation_bumped', 'yes', true);
        UPDATE features_generation SET generation = generation + 1;
    END IF;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER self_hosted_models_move_features_generation
    AFTER INSERT OR UPDATE OR DELETE ON self_hosted_models
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION bump_features_generation();
CREATE CONSTRAINT TRIGGER feature_settings_move_features_generation
    AFTER INSERT OR UPDATE OR DELETE ON feature_settings
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION bump_features_generation();
CREATE CONSTRAINT TRIGGER model_tests_move_features_generation
    AFTER INSERT OR UPDATE OR DELETE ON model_tests
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION bump_features_generation();
CREATE CONSTRAINT TRIGGER testing_terms_acceptances_move_features_generation
    AFTER INSERT OR UPDATE OR DELETE ON testing_terms_acceptances
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION bump_features_generation();
