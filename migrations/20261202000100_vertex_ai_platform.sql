-- Google Vertex AI ("vertex_ai", GitLab's provider key) as a third platform. Its models run in
-- a Google Cloud project and one of its locations, which each model names; credentials are the
-- console's own (Google's standard chain), so a Vertex AI model has neither an endpoint nor an
-- API key (the existing rules self_hosted_models_endpoint_for_api and
-- self_hosted_models_api_key_for_api already say so for every platform but 'api').
ALTER TABLE self_hosted_models
    DROP CONSTRAINT self_hosted_models_platform_known,
    ADD CONSTRAINT self_hosted_models_platform_known CHECK (platform IN ('api', 'bedrock', 'vertex_ai'));

ALTER TABLE self_hosted_models
    ADD COLUMN vertex_project text,
    ADD COLUMN vertex_location text;

-- Every Vertex AI model has a project and a location, and no other model has either.
ALTER TABLE self_hosted_models
    ADD CONSTRAINT self_hosted_models_vertex_project_for_vertex
    CHECK ((platform = 'vertex_ai') = (vertex_project IS NOT NULL));
ALTER TABLE self_hosted_models
    ADD CONSTRAINT self_hosted_models_vertex_location_for_vertex
    CHECK ((platform = 'vertex_ai') = (vertex_location IS NOT NULL));

-- A Google Cloud project ID (the rule of models::domain::GoogleProject): it is a segment of
-- every request's path, so nothing else may be stored.
ALTER TABLE self_hosted_models
    ADD CONSTRAINT self_hosted_models_vertex_project_shape
    CHECK (vertex_project IS NULL OR vertex_project ~ '^[a-z][a-z0-9-]{4,28}[a-z0-9]$');

-- A Vertex AI location (models::domain::VertexLocation): 'global' or a Google Cloud region
-- (us-central1, europe-west4). It names the request's host.
ALTER TABLE self_hosted_models
    ADD CONSTRAINT self_hosted_models_vertex_location_shape
    CHECK (vertex_location IS NULL
           OR vertex_location = 'global'
           OR (char_length(vertex_location) <= 32
               AND vertex_location ~ '^[a-z]+(-[a-z]+)*-[a-z]+[0-9]{1,2}$'));

-- A Vertex AI identifier is vertex_ai/ and one model id (gemini-2.0-flash-001,
-- claude-3-5-sonnet@20240620): the model id is a segment of the request's path.
ALTER TABLE self_hosted_models
    ADD CONSTRAINT self_hosted_models_vertex_identifier
    CHECK (platform <> 'vertex_ai' OR identifier ~ '^vertex_ai/[A-Za-z0-9._@-]+$');
