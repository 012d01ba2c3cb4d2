//! Amazon Bedrock, through the AWS SDK's ConverseStream: credentials, region and endpoint come
//! from the standard AWS chain; every error code becomes a sentence that says what to do.

use aws_sdk_bedrockruntime::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ContentBlockDelta, ConversationRole, ConverseStreamOutput, InferenceConfiguration, Message,
    SystemContentBlock,
};

use super::{Exchange, ModelClients, ModelFailure, Reply};
use crate::chat::Speaker;

/// The client of the standard AWS chain (environment, profile, SSO, instance role), with
/// `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` honoured.
pub(super) async fn client_from_environment() -> aws_sdk_bedrockruntime::Client {
    // The region from the environment or the profile, else us-east-1; not from the instance
    // metadata service, which would delay every start on a machine that has none.
    let region = aws_config::meta::region::RegionProviderChain::first_try(
        aws_config::environment::region::EnvironmentVariableRegionProvider::new(),
    )
    .or_else(aws_config::profile::ProfileFileRegionProvider::new())
    .or_else("us-east-1");
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest()).region(region).load().await;
    aws_sdk_bedrockruntime::Client::new(&config)
}

pub(super) async fn stream(
    clients: &ModelClients,
    model_id: &str,
    exchange: &Exchange,
    reply: &mut Reply,
) -> Result<(), ModelFailure> {
    let mut request = clients.bedrock.converse_stream().model_id(model_id);
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
        .map_err(|error| describe_error(&error, model_id))?;
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
            Err(error) => return Err(describe_stream_error(&error)),
        }
    }
}

fn mentions_credentials(detail: &str) -> bool {
    detail.contains("credentials") || detail.contains("Credentials")
}

/// An admin-readable sentence for each way a Bedrock call fails.
fn describe_error<E, R>(error: &SdkError<E, R>, model_id: &str) -> ModelFailure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            let message = service.err().message().unwrap_or_default();
            describe_code(code, message, model_id)
        }
        SdkError::TimeoutError(_) => ModelFailure::NoAnswer,
        SdkError::ResponseError(_) => ModelFailure::Malformed,
        SdkError::DispatchFailure(failure) => {
            if mentions_credentials(&DisplayErrorContext(error).to_string()) {
                ModelFailure::NoCredentials
            } else if failure.is_timeout() {
                ModelFailure::NoAnswer
            } else {
                ModelFailure::Provider("Could not reach Amazon Bedrock (connection refused or host unreachable). Check AWS_REGION, AWS_ENDPOINT_URL_BEDROCK_RUNTIME if set, and this machine's network.".to_owned())
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

fn describe_code(code: &str, message: &str, model_id: &str) -> ModelFailure {
    let sentence = match code {
        "AccessDeniedException" => format!(
            "Amazon Bedrock denied access: {message} Request access to this model in the Bedrock console for this region, and check the IAM permissions of these credentials."
        ),
        "ValidationException"
            if message.contains("model identifier is invalid") || message.contains("isn't supported") =>
        {
            let hint = if model_id.starts_with("bedrock/") {
                "The id still starts with \"bedrock/\": remove it from the Bedrock model id."
            } else {
                "Cross-region inference profiles need their region prefix, for example us.anthropic.claude-3-5-sonnet-20240620-v1:0."
            };
            format!("Amazon Bedrock does not accept the model id \"{model_id}\": {message} {hint}")
        }
        "ValidationException" => format!("Amazon Bedrock rejected the request: {message}"),
        "ResourceNotFoundException" => format!(
            "Amazon Bedrock has no model \"{model_id}\" in this region: {message} Check the model identifier and AWS_REGION."
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

fn describe_stream_error<E, R>(error: &SdkError<E, R>) -> ModelFailure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error {
        // Errors inside the stream carry a message but usually no code.
        SdkError::ServiceError(service) => {
            let message = service.err().message().unwrap_or_default();
            match service.err().code() {
                Some(code) => describe_code(code, message, ""),
                None => ModelFailure::Provider(format!("The model's stream ended with an error: {message}")),
            }
        }
        SdkError::ResponseError(_) => ModelFailure::Malformed,
        _ => ModelFailure::Provider(format!("The model's stream failed: {}", DisplayErrorContext(error))),
    }
}
