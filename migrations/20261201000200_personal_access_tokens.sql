-- Personal access tokens: a user's own bearer tokens for the JSON API (/api/v1), owned by
-- app/src/tokens/store.rs. The token itself is shown once, when it is created; only its SHA-256
-- is kept. A plain hash (not argon2) is right here: the token is 32 random bytes, so nothing can
-- be guessed from its digest, and a slow hash would make every API call an argon2 run that any
-- client could set off with a made-up token.
CREATE TABLE personal_access_tokens (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       bigint      NOT NULL,
    name          text        NOT NULL,
    -- 'read': GET only; 'admin': what the user's role allows; 'gateway': read, plus the API key
    -- of a feature's model on GET /api/v1/features/{key}/model. Never more than the user's role:
    -- the role is read again on every request, so a demoted admin's admin token reads only.
    scope         text        NOT NULL,
    token_sha256  bytea       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    -- Written at most once a minute per token, so a busy token does not write on every request.
    last_used_at  timestamptz,
    -- Revoked tokens are kept (revoked, not deleted) so the list and the audit trail agree.
    revoked_at    timestamptz,
    CONSTRAINT personal_access_tokens_user
        FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT personal_access_tokens_token_unique UNIQUE (token_sha256),
    CONSTRAINT personal_access_tokens_token_length CHECK (octet_length(token_sha256) = 32),
    CONSTRAINT personal_access_tokens_name_length CHECK (char_length(btrim(name)) BETWEEN 1 AND 255),
    CONSTRAINT personal_access_tokens_scope_known CHECK (scope IN ('read', 'admin', 'gateway')),
    -- At most a year: a token that never expires is a password that never changes.
    CONSTRAINT personal_access_tokens_expiry_range
        CHECK (expires_at > created_at AND expires_at <= created_at + interval '366 days')
);
-- A user's tokens, newest first (the page, the CLI, the per-user cap on active tokens).
CREATE INDEX personal_access_tokens_by_user ON personal_access_tokens (user_id, created_at DESC);
