-- A stored API key is bound to its model and to its endpoint's origin (scheme, host, port):
-- both are the AES-GCM additional data it is sealed with, so a key copied to another row, or
-- left behind when the endpoint changes, no longer opens (app/src/models/secrets.rs).
-- Keys sealed before this migration have no binding; the console seals each of them again,
-- bound, at its next start (models::store::bind_unbound_keys). Until then they are marked so.
ALTER TABLE self_hosted_models ADD COLUMN api_key_bound boolean NOT NULL DEFAULT false;

-- A user name or password in an endpoint URL would be shown wherever the endpoint is (the
-- models list, the audit trail) to anyone who may read them, auditors included: keys belong in
-- the write-only API key. NOT VALID: enforced for every row written from now on, without
-- refusing to start on a database that already holds such an endpoint.
ALTER TABLE self_hosted_models
    ADD CONSTRAINT self_hosted_models_endpoint_without_credentials
    CHECK (endpoint IS NULL OR endpoint !~ '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*@') NOT VALID;
