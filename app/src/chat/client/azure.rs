//! Azure OpenAI: the chat completions of `openai.rs` on Azure's own wire. The deployment is
//! in the path (`{endpoint}/openai/deployments/DEPLOYMENT/chat/completions`), the REST API
//! version in the query, and the key in an `api-key` header. Azure's errors carry a code
//! (`DeploymentNotFound`, `401`, `429`, `content_filter`, ...), each named here.

use serde_json::Value;

use super::openai::{Unsent, chat_body, error_message, fetch_list, list_entries, read_reply};
use super::{DiscoveryFailure, Exchange, ModelClients, ModelFailure, Reply};
use crate::models::domain::{DiscoveredModel, guess_family};
use crate::models::secrets::ApiKey;

pub const AZURE_PREFIX: &str = "azure/";

/// The `api-version` of the deployments list: the data plane lists a resource's deployments
/// only in this (long-stable) preview, which Azure's own SDKs use for it; later versions
/// dropped the route.
pub const DEPLOYMENTS_API_VERSION: &str = "2023-03-15-preview";

/// Whether an endpoint is an Azure OpenAI resource's address (`https://NAME.openai.azure.com`,
/// or the newer `NAME.cognitiveservices.azure.com`).
pub fn is_azure_resource(endpoint: &str) -> bool {
    url::Url::parse(endpoint).ok().and_then(|url| url.host_str().map(str::to_owned)).is_some_and(|host| {
        host.ends_with(".openai.azure.com") || host.ends_with(".cognitiveservices.azure.com")
    })
}

/// The resource's deployments (`GET {endpoint}/openai/deployments`), as `azure/DEPLOYMENT`
/// identifiers: the deployment's name is what the identifier needs, the model behind it names
/// the family.
pub(super) async fn list_deployments(
    clients: &ModelClients,
    endpoint: &str,
    api_key: Option<&ApiKey>,
) -> Result<Vec<DiscoveredModel>, DiscoveryFailure> {
    let resource = endpoint.trim_end_matches('/');
    let mut url = url::Url::parse(&format!("{resource}/openai/deployments"))
        .map_err(|_| DiscoveryFailure::at("endpoint", format!("The endpoint {endpoint} is not a URL.")))?;
    url.query_pairs_mut().append_pair("api-version", DEPLOYMENTS_API_VERSION);
    let mut request = clients.http.get(url);
    if let Some(key) = api_key {
        request = request.header("api-key", key.expose());
    }
    let sent_key = api_key.is_some();
    let unreachable = |_: &reqwest::Error| {
        ModelFailure::Provider(format!(
            "Could not connect to the Azure OpenAI resource at {endpoint} (connection refused or host unreachable). Check the endpoint, for example https://NAME.openai.azure.com."
        ))
    };
    let text = fetch_list(clients, request, unreachable, |status, body| {
        let field = if matches!(status, 401 | 403) { "api_key" } else { "endpoint" };
        DiscoveryFailure::at(field, describe_status(status, body, endpoint, "", sent_key).to_string())
    })
    .await?;
    let entries = list_entries(&text, AZURE_PREFIX.len()).ok_or_else(|| {
        DiscoveryFailure::at(
            "endpoint",
            format!("{resource}/openai/deployments did not answer with Azure's list of deployments. Check that the endpoint is the resource's address."),
        )
    })?;
    Ok(entries
        .into_iter()
        .filter_map(|(deployment, entry)| {
            let model = entry["model"].as_str().unwrap_or_default().to_owned();
            // Deployments of models that do not chat cannot serve a feature.
            let chats = !["embedding", "whisper", "dall-e", "tts"].iter().any(|kind| model.contains(kind));
            chats.then_some((deployment, model))
        })
        .map(|(deployment, model)| DiscoveredModel {
            identifier: format!("{AZURE_PREFIX}{deployment}"),
            family: guess_family(&model).or_else(|| guess_family(&deployment)).map(str::to_owned),
            label: if model.is_empty() { deployment } else { format!("{deployment} ({model})") },
        })
        .collect())
}

pub(super) async fn stream(
    clients: &ModelClients,
    endpoint: &str,
    deployment: &str,
    api_key: Option<&ApiKey>,
    exchange: &Exchange,
    reply: &mut Reply,
) -> Result<(), ModelFailure> {
    let resource = endpoint.trim_end_matches('/');
    let deployment_segment: String = url::form_urlencoded::byte_serialize(deployment.as_bytes()).collect();
    let mut url =
        url::Url::parse(&format!("{resource}/openai/deployments/{deployment_segment}/chat/completions"))
            .map_err(|_| ModelFailure::Provider(format!("The endpoint {endpoint} is not a URL.")))?;
    url.query_pairs_mut().append_pair("api-version", &clients.azure_api_version);
    let mut request = clients.http.post(url).json(&chat_body(None, exchange));
    if let Some(key) = api_key {
        request = request.header("api-key", key.expose());
    }
    let sent_key = api_key.is_some();
    read_reply(clients, request, reply, |status, body| describe_status(status, body, endpoint, deployment, sent_key))
        .await
        .map_err(|unsent| match unsent {
            Unsent::Failed(failure) => failure,
            Unsent::Unreachable(_) => ModelFailure::Provider(format!(
                "Could not connect to the Azure OpenAI resource at {endpoint} (connection refused or host unreachable). Check the endpoint, for example https://NAME.openai.azure.com."
            )),
        })
}

/// Azure's error code (`{"error":{"code":..,"message":..}}`) and message.
fn azure_error(body: &str) -> (String, String) {
    let parsed = serde_json::from_str::<Value>(body).ok();
    let code =
        parsed.as_ref().and_then(|b| b["error"]["code"].as_str().map(str::to_owned)).unwrap_or_default();
    let message = parsed.as_ref().and_then(error_message).unwrap_or_default();
    (code, message)
}

fn describe_status(
    status: u16,
    body: &str,
    endpoint: &str,
    deployment: &str,
    sent_key: bool,
) -> ModelFailure {
    let (code, message) = azure_error(body);
    let detail = if message.is_empty() { String::new() } else { format!(": {message}") };
    ModelFailure::Provider(match (status, code.as_str()) {
        (401 | 403, _) if sent_key => format!(
            "Azure OpenAI refused the API key (code {status}){detail} Replace it on the model's form with a key of this resource."
        ),
        (401 | 403, _) => format!(
            "Azure OpenAI needs the resource's API key (code {status}){detail} Add it on the model's form."
        ),
        (404, "DeploymentNotFound") => format!(
            "Azure OpenAI has no deployment \"{deployment}\" at {endpoint}{detail} The identifier is azure/ followed by the deployment's name (not the model's)."
        ),
        (404, _) => format!(
            "Azure OpenAI returned code 404{detail} The endpoint is the resource's address, for example https://NAME.openai.azure.com, without /openai."
        ),
        (400, "content_filter") | (_, "content_filter") => {
            format!("Azure OpenAI's content filter refused the request{detail}")
        }
        (429, _) => format!(
            "Azure OpenAI is rate-limiting this deployment (code 429){detail} Try again in a minute, or raise the deployment's tokens-per-minute quota."
        ),
        (300..=399, _) => format!(
            "Azure OpenAI returned code {status}, a redirect. The console does not follow redirects (a key goes only to the endpoint it was stored for): enter the resource's own address."
        ),
        _ => format!("Azure OpenAI returned code {status}{detail}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_azure_resource_is_known_by_its_host() {
        assert!(is_azure_resource("https://contoso.openai.azure.com"));
        assert!(is_azure_resource("https://contoso.cognitiveservices.azure.com/"));
        assert!(!is_azure_resource("https://openai.azure.com.attacker.example"));
        assert!(!is_azure_resource("http://vllm:8000/v1"));
    }

    #[test]
    fn each_azure_error_is_named_with_what_to_do() {
        let describe = |status, body: &str, sent_key| {
            describe_status(status, body, "https://r.openai.azure.com", "gpt4o-prod", sent_key).to_string()
        };
        let missing = r#"{"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist."}}"#;
        assert!(describe(404, missing, false).contains("no deployment \"gpt4o-prod\""));
        let denied = r#"{"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint."}}"#;
        assert!(describe(401, denied, true).contains("refused the API key"));
        assert!(describe(401, denied, false).contains("needs the resource's API key"));
        assert!(
            describe(429, r#"{"error":{"code":"429","message":"Rate limit"}}"#, true)
                .contains("rate-limiting")
        );
        assert!(
            describe(400, r#"{"error":{"code":"content_filter","message":"filtered"}}"#, true)
                .contains("content filter")
        );
    }
}
