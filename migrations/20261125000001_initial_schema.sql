-- The whole product's schema, laid down at once so later features fill it rather than fight it.
-- Every rule that the database can hold is a named constraint: the server maps each name to the
-- message the form shows for it (see app/src/error.rs, `constraint_error`), so a rule can never
-- be bypassed by calling the server directly or by two admins racing each other.

-- People who may sign in. `admin` may change everything; `auditor` may look at every page and
-- change nothing.
CREATE TABLE users (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      text        NOT NULL,
    email         text        NOT NULL,
    -- An argon2id PHC string; never a plain password.
    password_hash text        NOT NULL,
    role          text        NOT NULL,
    -- Sessions signed in before this moment are void: a password reset moves it to now().
    sessions_valid_after timestamptz NOT NULL DEFAULT now(),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_role_known CHECK (role IN ('admin', 'auditor')),
    CONSTRAINT users_username_format CHECK (username ~ '^[A-Za-z0-9_.-]{1,255}$'),
    CONSTRAINT users_email_format CHECK (char_length(email) <= 255 AND email LIKE '_%@_%')
);
-- Sign-in accepts either the username or the e-mail, in any letter case: both must be unique
-- regardless of case, or one login could match two people.
CREATE UNIQUE INDEX users_username_unique ON users (lower(username));
CREATE UNIQUE INDEX users_email_unique ON users (lower(email));

-- A self-hosted LLM deployment (GitLab's ai_self_hosted_models).
CREATE TABLE self_hosted_models (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text        NOT NULL,
    -- 'api': any OpenAI-compatible server such as vLLM; 'bedrock': Amazon Bedrock.
    platform        text        NOT NULL,
    -- A key of the families in app/features.toml; the file, not the database, knows the list.
    model_family    text        NOT NULL,
    endpoint        text,
    identifier      text        NOT NULL,
    -- The API key is write-only: AES-256-GCM ciphertext, its nonce, the id of the master key
    -- that sealed it (so keys can be rotated) and a short fingerprint to show instead of it.
    api_key_ciphertext  bytea,
    api_key_nonce       bytea,
    api_key_key_id      text,
    api_key_fingerprint text,
    -- The outcome and figures of the last "Test connection" or chat test, shown in the list.
    last_test       jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT self_hosted_models_name_unique UNIQUE (name),
    CONSTRAINT self_hosted_models_name_length CHECK (char_length(btrim(name)) BETWEEN 1 AND 255),
    CONSTRAINT self_hosted_models_platform_known CHECK (platform IN ('api', 'bedrock')),
    CONSTRAINT self_hosted_models_family_present CHECK (model_family <> ''),
    -- An endpoint belongs to API models only, and every API model has one.
    CONSTRAINT self_hosted_models_endpoint_for_api
        CHECK ((platform = 'api') = (endpoint IS NOT NULL)),
    CONSTRAINT self_hosted_models_endpoint_url
        CHECK (endpoint IS NULL OR (char_length(endpoint) <= 2048 AND endpoint ~ '^https?://.+')),
    CONSTRAINT self_hosted_models_identifier_length
        CHECK (char_length(identifier) BETWEEN 1 AND 255),
    CONSTRAINT self_hosted_models_bedrock_identifier
        CHECK (platform <> 'bedrock' OR identifier ~ '^bedrock/.+'),
    -- A key is all four parts or none, and only API models have one.
    CONSTRAINT self_hosted_models_api_key_complete CHECK (
        (api_key_ciphertext IS NULL AND api_key_nonce IS NULL
            AND api_key_key_id IS NULL AND api_key_fingerprint IS NULL)
        OR (api_key_ciphertext IS NOT NULL AND api_key_nonce IS NOT NULL
            AND api_key_key_id IS NOT NULL AND api_key_fingerprint IS NOT NULL)),
    CONSTRAINT self_hosted_models_api_key_for_api
        CHECK (platform = 'api' OR api_key_ciphertext IS NULL)
);

-- Which model serves each AI-native feature (GitLab's ai_feature_settings).
CREATE TABLE feature_settings (
    -- A key of the features in app/features.toml. One row per feature.
    feature               text        NOT NULL,
    provider              text        NOT NULL DEFAULT 'unassigned',
    self_hosted_model_id  bigint,
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT feature_settings_pkey PRIMARY KEY (feature),
    CONSTRAINT feature_settings_provider_known
        CHECK (provider IN ('disabled', 'vendored', 'self_hosted', 'unassigned')),
    -- A feature set to "Self-hosted model" names its model, and only then.
    CONSTRAINT feature_settings_model_when_self_hosted
        CHECK ((provider = 'self_hosted') = (self_hosted_model_id IS NOT NULL)),
    -- RESTRICT: a model in use cannot be deleted, whoever asks (GitLab only guards in the browser).
    CONSTRAINT feature_settings_model_in_use
        FOREIGN KEY (self_hosted_model_id) REFERENCES self_hosted_models (id) ON DELETE RESTRICT
);
CREATE INDEX feature_settings_self_hosted_model_id ON feature_settings (self_hosted_model_id);

-- Instance-wide settings: exactly one row, whose key can only be `true`.
CREATE TABLE instance_settings (
    singleton                       boolean     NOT NULL DEFAULT true,
    ai_gateway_url                  text,
    ai_gateway_timeout_seconds      integer     NOT NULL DEFAULT 60,
    duo_agent_platform_service_url  text,
    updated_at                      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT instance_settings_pkey PRIMARY KEY (singleton),
    CONSTRAINT instance_settings_single_row CHECK (singleton),
    CONSTRAINT instance_settings_ai_gateway_url
        CHECK (ai_gateway_url IS NULL OR (char_length(ai_gateway_url) <= 2048
            AND ai_gateway_url ~ '^https?://.+' AND ai_gateway_url !~ '/$')),
    CONSTRAINT instance_settings_timeout_range
        CHECK (ai_gateway_timeout_seconds BETWEEN 60 AND 600),
    -- host:port, no protocol.
    CONSTRAINT instance_settings_agent_platform_url
        CHECK (duo_agent_platform_service_url IS NULL
            OR duo_agent_platform_service_url ~ '^[^/:\s]+:[0-9]{1,5}$')
);
INSERT INTO instance_settings (singleton) VALUES (true);

-- Beta models and features are on while any admin's acceptance of the GitLab Testing Agreement
-- exists (as GitLab stores it). The e-mail is copied so the record outlives a renamed user.
CREATE TABLE testing_terms_acceptances (
    user_id      bigint      NOT NULL,
    user_email   text        NOT NULL,
    accepted_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT testing_terms_acceptances_pkey PRIMARY KEY (user_id),
    CONSTRAINT testing_terms_acceptances_user
        FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);

-- Every change and every sign-in attempt. Secrets appear here only as fingerprints. The actor's
-- name is copied so the trail stays readable after a user is deleted.
CREATE TABLE audit_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at   timestamptz NOT NULL DEFAULT now(),
    actor_id     bigint,
    actor_name   text        NOT NULL,
    action       text        NOT NULL,
    target_type  text        NOT NULL,
    target_id    text,
    target_name  text,
    message      text        NOT NULL,
    before       jsonb,
    after        jsonb,
    ip_address   text,
    CONSTRAINT audit_events_actor
        FOREIGN KEY (actor_id) REFERENCES users (id) ON DELETE SET NULL
);
-- The audit page lists newest first and pages by (created_at, id).
CREATE INDEX audit_events_newest_first ON audit_events (created_at DESC, id DESC);

-- Sessions, in the layout tower-sessions-sqlx-store expects (its own `migrate()` is not called,
-- so that this file stays the one description of the schema).
CREATE SCHEMA tower_sessions;
CREATE TABLE tower_sessions.session (
    id          text        PRIMARY KEY NOT NULL,
    data        bytea       NOT NULL,
    expiry_date timestamptz NOT NULL
);
CREATE INDEX session_expiry_date ON tower_sessions.session (expiry_date);
