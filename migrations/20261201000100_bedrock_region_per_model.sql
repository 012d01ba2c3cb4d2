-- The AWS region a Bedrock model runs in. Admins run models in several regions (a model is
-- offered only in some, quotas are per region), so each Bedrock model may name its own; NULL
-- means the console's own region (AWS_REGION, the profile's region, else us-east-1), as before.
ALTER TABLE self_hosted_models ADD COLUMN bedrock_region text;

-- Only Bedrock models have a region: an API model's endpoint says where it runs.
ALTER TABLE self_hosted_models
    ADD CONSTRAINT self_hosted_models_region_for_bedrock
    CHECK (platform = 'bedrock' OR bedrock_region IS NULL);

-- The shape of an AWS region name (us-east-1, us-gov-west-1, ap-southeast-2), the same rule as
-- models::domain::BedrockRegion: the region becomes part of a host name and of the request's
-- signature scope, so nothing else may be stored.
ALTER TABLE self_hosted_models
    ADD CONSTRAINT self_hosted_models_bedrock_region_shape
    CHECK (bedrock_region IS NULL
           OR (char_length(bedrock_region) <= 32
               AND bedrock_region ~ '^[a-z]{2}(-[a-z]+){1,3}-[0-9]{1,2}$'));
