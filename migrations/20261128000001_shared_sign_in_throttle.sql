-- Sign-in throttling moves from each process's memory into the database, so that every replica
-- counts the same failures and a restart forgets none of them (server/src/throttle.rs).

-- One row per sign-in attempt under way or failed, per thing it counts against: the login as
-- typed ('login:ada'), the client's address or IPv6 /64 ('client:2001:db8::/64'), or a known
-- device ('device:<hash>'). Rows older than the lock window no longer count and are deleted as
-- attempts come in, so the table holds at most one window of attempts.
CREATE TABLE sign_in_attempts (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key         text        NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    -- Logins are cut to 255 characters before they get here; a prefix and an address fit.
    CONSTRAINT sign_in_attempts_key_length CHECK (char_length(key) <= 320)
);
-- Counting one key's recent attempts, and forgetting old ones.
CREATE INDEX sign_in_attempts_key_started ON sign_in_attempts (key, started_at);
CREATE INDEX sign_in_attempts_started ON sign_in_attempts (started_at);

-- Browsers that have signed in successfully as a user ("known devices"). A locked login still
-- signs in from one of these, so an attacker who keeps a login locked cannot lock its owner out.
-- The cookie holds a random token; only its SHA-256 is kept, so this table cannot be replayed.
CREATE TABLE known_devices (
    token_sha256  bytea       NOT NULL,
    user_id       bigint      NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT known_devices_pkey PRIMARY KEY (token_sha256),
    CONSTRAINT known_devices_token_length CHECK (octet_length(token_sha256) = 32),
    CONSTRAINT known_devices_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);
CREATE INDEX known_devices_user_id ON known_devices (user_id, last_used_at);

-- A flood of refused sign-ins adds to one audit row per login and client per lock window (its
-- `after.count`), found through this index rather than by scanning the audit trail.
CREATE INDEX audit_events_sign_in_locked ON audit_events (created_at DESC)
    WHERE action = 'user_sign_in_locked';
