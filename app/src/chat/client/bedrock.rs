//! Amazon Bedrock, through the AWS SDK's ConverseStream: credentials, region and endpoint come
//! from the standard AWS chain; every error code becomes a sentence that says what to do.

use aws_sdk_bedrockruntime::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ContentBlockDelta, ConversationRole, ConverseStreamOutput, InferenceConfiguration, Message,
    SystemContentBlock,
};

use super::{DiscoveryFailure, Exchange, ModelClients, ModelFailure, Reply};
use crate::chat::Speaker;
use crate::models::domain::{
    BEDROCK_PREFIX, BedrockRegion, DiscoveredModel, IDENTIFIER_MAX_CHARS, MODEL_PROVIDERS, guess_family,
};

/// The clients of the standard AWS chain (environment, profile, SSO, instance role): Bedrock's
/// runtime (model calls, `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` honoured) and its control plane
/// (the model catalog, `AWS_ENDPOINT_URL_BEDROCK` honoured), from one configuration.
pub(super) async fn clients_from_environment() -> (aws_sdk_bedrockruntime::Client, aws_sdk_bedrock::Client) {
    // The region from the environment or the profile, else us-east-1; not from the instance
    // metadata service, which would delay every start on a machine that has none.
    let region = aws_config::meta::region::RegionProviderChain::first_try(
        aws_config::environment::region::EnvironmentVariableRegionProvider::new(),
    )
    .or_else(aws_config::profile::ProfileFileRegionProvider::new())
    .or_else("us-east-1");
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest()).region(region).load().await;
    (aws_sdk_bedrockruntime::Client::new(&config), aws_sdk_bedrock::Client::new(&config))
}

/// Pages of inference profiles read at most (100 each): Bedrock has a few dozen per region.
const MAX_PROFILE_PAGES: usize = 10;

/// The models Bedrock offers in the catalog client's region, as identifiers to save: first
/// the active inference profiles (`bedrock/us.anthropic...`, what most models must be called
/// through), then the active text models that can be called on demand by their own id, each
/// with the family its provider suggests. Embedding and image models are left out.
pub(super) async fn list_models(
    catalog: &aws_sdk_bedrock::Client,
) -> Result<Vec<DiscoveredModel>, DiscoveryFailure> {
    use aws_sdk_bedrock::types::{
        FoundationModelLifecycleStatus, InferenceProfileStatus, InferenceType, ModelModality,
    };
    let region = catalog.config().region().map(|region| region.to_string()).unwrap_or_default();
    let failed = |detail: ModelFailure| DiscoveryFailure::at("bedrock_region", detail.to_string());
    let mut offered = Vec::new();
    let mut next_token = None;
    for _ in 0..MAX_PROFILE_PAGES {
        let page = catalog
            .list_inference_profiles()
            .max_results(100)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(|error| failed(describe_catalog_error(&error, &region)))?;
        for profile in page.inference_profile_summaries() {
            if *profile.status() != InferenceProfileStatus::Active {
                continue;
            }
            let id = profile.inference_profile_id();
            offered.push(DiscoveredModel {
                identifier: format!("{BEDROCK_PREFIX}{id}"),
                label: format!("{} ({id})", profile.inference_profile_name()),
                family: family_of(id),
            });
        }
        next_token = page.next_token().map(str::to_owned);
        if next_token.is_none() {
            break;
        }
    }
    let models = catalog
        .list_foundation_models()
        .by_output_modality(ModelModality::Text)
        .send()
        .await
        .map_err(|error| failed(describe_catalog_error(&error, &region)))?;
    for model in models.model_summaries() {
        let callable_by_id = model.inference_types_supported().contains(&InferenceType::OnDemand)
            && model.response_streaming_supported().unwrap_or(false)
            && model.output_modalities().contains(&ModelModality::Text)
            && model
                .model_lifecycle()
                .is_none_or(|lifecycle| *lifecycle.status() == FoundationModelLifecycleStatus::Active);
        if !callable_by_id {
            continue;
        }
        let id = model.model_id();
        let name =
            [model.provider_name(), model.model_name()].into_iter().flatten().collect::<Vec<_>>().join(" ");
        offered.push(DiscoveredModel {
            identifier: format!("{BEDROCK_PREFIX}{id}"),
            label: format!("{name} ({id})"),
            family: family_of(id),
        });
    }
    offered.retain(|model| model.identifier.chars().count() <= IDENTIFIER_MAX_CHARS);
    offered.truncate(super::openai::MAX_MODELS_OFFERED);
    Ok(offered)
}

/// The family of a Bedrock id, from its provider (`anthropic` in `us.anthropic.claude...`),
/// else from its name.
fn family_of(id: &str) -> Option<String> {
    let mut parts = id.split('.');
    let provider = parts.find(|part| MODEL_PROVIDERS.contains(part));
    let by_provider = match provider {
        Some("anthropic") => Some("claude_3"),
        Some("meta") => Some("llama3"),
        _ => None,
    };
    // Mistral's provider covers Mistral, Mixtral and Codestral: the name tells them apart.
    by_provider.or_else(|| guess_family(id)).map(str::to_owned)
}

/// A catalog call's failure, in the words of a model call's (credentials, access, region).
fn describe_catalog_error<E, R>(error: &SdkError<E, R>, region: &str) -> ModelFailure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error {
        SdkError::ServiceError(service) if service.err().code() == Some("AccessDeniedException") => {
            ModelFailure::Provider(format!(
                "Amazon Bedrock denied listing its models in {region}: {} These credentials need bedrock:ListFoundationModels and bedrock:ListInferenceProfiles; you can still type the model identifier.",
                service.err().message().unwrap_or_default()
            ))
        }
        SdkError::DispatchFailure(failure)
            if !failure.is_timeout() && !mentions_credentials(&DisplayErrorContext(error).to_string()) =>
        {
            ModelFailure::Provider(format!(
                "Could not reach Amazon Bedrock in {region} (connection refused or host unreachable). Check the model's region (or AWS_REGION), AWS_ENDPOINT_URL_BEDROCK if set, and this machine's network."
            ))
        }
        _ => describe_error(error, "", region),
    }
}

pub(super) async fn stream(
    clients: &ModelClients,
    client: &aws_sdk_bedrockruntime::Client,
    model_id: &str,
    exchange: &Exchange,
    reply: &mut Reply,
) -> Result<(), ModelFailure> {
    let region = client.config().region().map(|region| region.to_string()).unwrap_or_default();
    let mut request = client.converse_stream().model_id(model_id);
    if let Some(system) = &exchange.system {
        request = request.system(SystemContentBlock::Text(system.clone()));
    }
    for message in &exchange.messages {
        let role = match message.speaker {
            Speaker::User => ConversationRole::User,
            Speaker::Assistant => ConversationRole::Assistant,
        };
        let message = Message::builder()
            .role(role)
            .content(ContentBlock::Text(message.text.clone()))
            .build()
            .map_err(|error| ModelFailure::Provider(format!("Could not build the request: {error}")))?;
        request = request.messages(message);
    }
    request = request.inference_config(
        InferenceConfiguration::builder()
            .max_tokens(exchange.max_tokens)
            .set_temperature(exchange.temperature)
            .build(),
    );
    let output = tokio::time::timeout(clients.idle_limit, request.send())
        .await
        .map_err(|_| ModelFailure::NoAnswer)?
        .map_err(|error| describe_error(&error, model_id, &region))?;
    let mut stream = output.stream;
    loop {
        let next = tokio::time::timeout(clients.idle_limit, stream.recv())
            .await
            .map_err(|_| ModelFailure::StreamStalled)?;
        match next {
            Ok(Some(ConverseStreamOutput::ContentBlockDelta(event))) => {
                if let Some(ContentBlockDelta::Text(text)) = event.delta {
                    reply.forward(text).await?;
                }
            }
            Ok(Some(ConverseStreamOutput::MessageStop(event))) => {
                reply.figures.stop_reason = Some(event.stop_reason().as_str().to_owned());
            }
            Ok(Some(ConverseStreamOutput::Metadata(event))) => {
                if let Some(usage) = event.usage() {
                    reply.figures.input_tokens = Some(usage.input_tokens().into());
                    reply.figures.output_tokens = Some(usage.output_tokens().into());
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => return Ok(()),
            Err(error) => return Err(describe_stream_error(&error, &region)),
        }
    }
}

fn mentions_credentials(detail: &str) -> bool {
    detail.contains("credentials") || detail.contains("Credentials")
}

/// An admin-readable sentence for each way a Bedrock call fails.
fn describe_error<E, R>(error: &SdkError<E, R>, model_id: &str, region: &str) -> ModelFailure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            let message = service.err().message().unwrap_or_default();
            describe_code(code, message, model_id, region)
        }
        SdkError::TimeoutError(_) => ModelFailure::NoAnswer,
        SdkError::ResponseError(_) => ModelFailure::Malformed,
        SdkError::DispatchFailure(failure) => {
            if mentions_credentials(&DisplayErrorContext(error).to_string()) {
                ModelFailure::NoCredentials
            } else if failure.is_timeout() {
                ModelFailure::NoAnswer
            } else {
                ModelFailure::Provider(format!(
                    "Could not reach Amazon Bedrock in {region} (connection refused or host unreachable). Check the model's region (or AWS_REGION), AWS_ENDPOINT_URL_BEDROCK_RUNTIME if set, and this machine's network."
                ))
            }
        }
        _ => {
            let detail = DisplayErrorContext(error).to_string();
            if mentions_credentials(&detail) {
                ModelFailure::NoCredentials
            } else {
                ModelFailure::Provider(format!("Could not call Amazon Bedrock: {detail}"))
            }
        }
    }
}

fn describe_code(code: &str, message: &str, model_id: &str, region: &str) -> ModelFailure {
    let sentence = match code {
        "AccessDeniedException" => format!(
            "Amazon Bedrock denied access: {message} Request access to this model in the Bedrock console for {region}, and check the IAM permissions of these credentials."
        ),
        "ValidationException"
            if message.contains("model identifier is invalid") || message.contains("isn't supported") =>
        {
            let suggestion = BedrockRegion::parse(region)
                .ok()
                .flatten()
                .and_then(|region| region.suggest_identifier(&format!("{BEDROCK_PREFIX}{model_id}")));
            let hint = if model_id.starts_with(BEDROCK_PREFIX) {
                "The id still starts with \"bedrock/\": remove it from the Bedrock model id.".to_owned()
            } else if let Some(suggestion) = suggestion {
                format!("In {region}, call it through its cross-region inference profile: {suggestion}")
            } else {
                "Cross-region inference profiles need their region prefix, for example us.anthropic.claude-3-5-sonnet-20240620-v1:0.".to_owned()
            };
            format!("Amazon Bedrock does not accept the model id \"{model_id}\": {message} {hint}")
        }
        "ValidationException" => format!("Amazon Bedrock rejected the request: {message}"),
        "ResourceNotFoundException" => format!(
            "Amazon Bedrock has no model \"{model_id}\" in {region}: {message} Check the model identifier and the model's region."
        ),
        "ThrottlingException" | "ModelNotReadyException" | "ServiceQuotaExceededException" => format!(
            "Amazon Bedrock is throttling requests or the model is not ready, even after retries: {message} Try again in a minute, or raise the quota."
        ),
        "ModelTimeoutException" => format!("The model took too long to answer: {message}"),
        "ModelErrorException" => format!("The model failed while answering: {message}"),
        "InvalidSignatureException" | "SignatureDoesNotMatch" | "UnrecognizedClientException" => {
            return ModelFailure::SignatureRejected;
        }
        "InternalServerException" | "ServiceUnavailableException" => {
            format!("Amazon Bedrock had a problem of its own: {message} Try again shortly.")
        }
        other => format!("Amazon Bedrock refused the request ({other}): {message}"),
    };
    ModelFailure::Provider(sentence)
}

fn describe_stream_error<E, R>(error: &SdkError<E, R>, region: &str) -> ModelFailure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error {
        // Errors inside the stream carry a message but usually no code.
        SdkError::ServiceError(service) => {
            let message = service.err().message().unwrap_or_default();
            match service.err().code() {
                Some(code) => describe_code(code, message, "", region),
                None => ModelFailure::Provider(format!("The model's stream ended with an error: {message}")),
            }
        }
        SdkError::ResponseError(_) => ModelFailure::Malformed,
        _ => ModelFailure::Provider(format!("The model's stream failed: {}", DisplayErrorContext(error))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bedrock_ids_provider_names_its_family() {
        assert_eq!(family_of("us.anthropic.claude-3-5-sonnet-20240620-v1:0").as_deref(), Some("claude_3"));
        assert_eq!(family_of("meta.llama3-8b-instruct-v1:0").as_deref(), Some("llama3"));
        assert_eq!(family_of("eu.mistral.mixtral-8x7b-instruct-v0:1").as_deref(), Some("mixtral"));
        assert_eq!(family_of("mistral.mistral-large-2402-v1:0").as_deref(), Some("mistral"));
        assert_eq!(family_of("amazon.nova-pro-v1:0"), None);
    }
}
