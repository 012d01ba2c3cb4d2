//! The rules of a self-hosted model, as types that parse. The form calls them as the admin
//! leaves each field (early feedback) and the server calls them again before saving (the
//! truth); both return GitLab's exact message for the field concerned.

use serde::{Deserialize, Serialize};

use crate::error::FieldErrors;

pub const NAME_MAX_CHARS: usize = 255;
pub const ENDPOINT_MAX_CHARS: usize = 2048;
pub const IDENTIFIER_MAX_CHARS: usize = 255;

pub const NAME_REQUIRED: &str = "Please enter a deployment name.";
pub const NAME_TAKEN: &str = "Please enter a unique deployment name.";
pub const NAME_TOO_LONG: &str = "Deployment name must be less than 255 characters.";
pub const FAMILY_REQUIRED: &str = "Please select a model.";
pub const ENDPOINT_REQUIRED: &str = "Please enter an endpoint.";
pub const ENDPOINT_INVALID: &str = "Please add a valid endpoint.";
/// A stored key goes only to the endpoint it was stored for.
pub const KEY_NEEDED_FOR_NEW_ENDPOINT: &str =
    "The endpoint changed: enter the API key again to send it to the new endpoint.";
pub const ENDPOINT_WITH_CREDENTIALS: &str = "Remove the user name and password from the endpoint: an API key goes in \"API Key\", where it stays secret.";
pub const IDENTIFIER_REQUIRED: &str = "Please enter a model identifier.";
pub const IDENTIFIER_TOO_LONG: &str = "Model identifier must be less than 255 characters.";
pub const REGION_INVALID: &str =
    "Please enter an AWS region such as us-east-1, or leave it blank to use the console's region.";
pub const PROJECT_REQUIRED: &str = "Please enter the Google Cloud project ID.";
pub const PROJECT_INVALID: &str = "Please enter a Google Cloud project ID such as my-project-123: 6 to 30 lowercase letters, digits or hyphens, starting with a letter.";
pub const LOCATION_REQUIRED: &str = "Please enter a Vertex AI location such as us-central1, or global.";
pub const LOCATION_INVALID: &str =
    "Please enter a Vertex AI location such as us-central1, europe-west4 or global.";
pub use super::platform::{
    BEDROCK_PREFIX, CUSTOM_OPENAI_PREFIX, IDENTIFIER_BEDROCK_EMPTY, IDENTIFIER_INCOMPLETE,
    IDENTIFIER_NOT_BEDROCK, IDENTIFIER_NOT_VERTEX, IDENTIFIER_VERTEX_MODEL, Platform, VERTEX_PREFIX,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ModelId(pub i64);

/// What to do with a stored API key when the edit form is saved. Posted as `key()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyAction {
    /// Leave the stored key as it is.
    Keep,
    /// Store the typed key (a blank one keeps a stored key rather than silently dropping it).
    Replace,
    Remove,
}

impl KeyAction {
    pub fn key(self) -> &'static str {
        match self {
            KeyAction::Keep => "keep",
            KeyAction::Replace => "replace",
            KeyAction::Remove => "remove",
        }
    }

    /// The posted value; anything else (or nothing) means `Replace`, the form's default.
    pub fn parse(value: Option<&str>) -> KeyAction {
        match value.map(str::trim) {
            Some("keep") => KeyAction::Keep,
            Some("remove") => KeyAction::Remove,
            _ => KeyAction::Replace,
        }
    }
}

/// What an exchange measured.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Figures {
    /// From sending the request to the first piece of the reply.
    pub first_token_ms: Option<u64>,
    pub total_ms: u64,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub stop_reason: Option<String>,
}

/// A stored model as the edit form shows it: the key only as its fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct StoredModel {
    pub id: ModelId,
    pub name: String,
    pub platform: Platform,
    pub model_family: String,
    pub endpoint: Option<String>,
    pub identifier: String,
    /// The AWS region of a Bedrock model; `None`: the console's own region.
    pub bedrock_region: Option<String>,
    /// The Google Cloud project of a Vertex AI model.
    pub vertex_project: Option<String>,
    /// The Vertex AI location of a Vertex AI model (`us-central1`, `global`).
    pub vertex_location: Option<String>,
    pub api_key_fingerprint: Option<String>,
}

/// A model's last test (by hand or a chat), as the list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct LastTest {
    pub ok: bool,
    pub message: String,
    pub figures: Figures,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// Whether a model serves, read from its stored tests (by hand, chats, Test all, scheduled
/// checks). The one status the models list, the features tab, the Configuration page, the
/// overview and `/metrics` all show, so no two of them can disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum Serving {
    NotTested,
    /// Its last test answered.
    Ready {
        tested_at: chrono::DateTime<chrono::Utc>,
    },
    /// Its last test failed; `since` is the first failure after its last answer.
    Failing {
        since: chrono::DateTime<chrono::Utc>,
        message: String,
    },
}

impl Serving {
    /// From a model's last test and, when it failed, the first failure since its last answer
    /// (absent once the history is pruned: then the last test's own time is the best known).
    pub fn from_last_test(
        last: Option<&LastTest>,
        failing_since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Serving {
        match last {
            None => Serving::NotTested,
            Some(last) if last.ok => Serving::Ready { tested_at: last.at },
            Some(last) => Serving::Failing {
                since: failing_since.filter(|since| *since <= last.at).unwrap_or(last.at),
                message: last.message.clone(),
            },
        }
    }

    pub fn is_ready(&self) -> bool {
        matches!(self, Serving::Ready { .. })
    }
}

/// A time as every status shows it: absolute and in UTC, so the server's page and the
/// browser's agree whatever their clocks' zones (a relative "3 min ago" would be stale on
/// arrival and differ between the two renders).
pub fn status_time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// "Deployment name": required, at most 255 characters, surrounding spaces dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentName(String);

impl DeploymentName {
    pub fn parse(value: &str) -> Result<Self, &'static str> {
        let value = value.trim();
        if value.is_empty() {
            Err(NAME_REQUIRED)
        } else if value.chars().count() > NAME_MAX_CHARS {
            Err(NAME_TOO_LONG)
        } else {
            Ok(DeploymentName(value.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// "Endpoint": an absolute http(s) URL of at most 2048 characters. API models only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint(String);

impl Endpoint {
    pub fn parse(value: &str) -> Result<Self, &'static str> {
        let value = value.trim();
        if value.is_empty() {
            return Err(ENDPOINT_REQUIRED);
        }
        if value.chars().count() > ENDPOINT_MAX_CHARS {
            return Err(ENDPOINT_INVALID);
        }
        // The URL parser forgives "http:///host"; an admin's endpoint should not need forgiving.
        if value.split_once("://").is_none_or(|(_, rest)| rest.starts_with('/')) {
            return Err(ENDPOINT_INVALID);
        }
        let url = crate::url_parts::parse(value).ok_or(ENDPOINT_INVALID)?;
        if !matches!(url.scheme.as_str(), "http" | "https") || url.host.is_empty() {
            return Err(ENDPOINT_INVALID);
        }
        // Credentials in a URL are shown wherever the endpoint is (the list, the audit trail).
        if url.has_credentials {
            return Err(ENDPOINT_WITH_CREDENTIALS);
        }
        // Kept as typed (not as the parser reformats it): the admin recognises their own URL.
        Ok(Endpoint(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Scheme, host and port: what a stored API key is bound to.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn origin(&self) -> String {
        origin_of(&self.0).unwrap_or_default()
    }
}

/// The origin (scheme, host and port) of a stored endpoint, if it is a URL.
// The server's alone (the bundle never needs an origin), so the bundle carries no `url` crate.
#[cfg(not(target_arch = "wasm32"))]
pub fn origin_of(endpoint: &str) -> Option<String> {
    url::Url::parse(endpoint.trim()).ok().map(|url| url.origin().ascii_serialization())
}

/// "Model identifier", LiteLLM's `provider/model` form, split at the first `/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelIdentifier(String);

impl ModelIdentifier {
    pub fn parse(platform: Platform, value: &str) -> Result<Self, &'static str> {
        let value = value.trim();
        if value.is_empty() {
            return Err(IDENTIFIER_REQUIRED);
        }
        if value.chars().count() > IDENTIFIER_MAX_CHARS {
            return Err(IDENTIFIER_TOO_LONG);
        }
        platform.check_identifier(value)?;
        Ok(ModelIdentifier(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The LiteLLM provider (`bedrock`, `custom_openai`, `azure`, ...), if the identifier names one.
    pub fn provider(&self) -> Option<&str> {
        self.0.split_once('/').map(|(provider, _)| provider)
    }

    /// The model name the provider itself expects: without its LiteLLM provider (`bedrock/`,
    /// `custom_openai/`, ...). A model name that holds a slash keeps it after the provider.
    pub fn provider_model(&self) -> &str {
        self.0.split_once('/').map(|(_, model)| model).unwrap_or(&self.0)
    }
}

/// "AWS region" of a Bedrock model: the shape of a real AWS region name (`us-east-1`,
/// `us-gov-west-1`, `ap-southeast-2`): a partition-and-geography code of two letters, one to
/// three words, and a number. It names a host (`bedrock-runtime.REGION.amazonaws.com`) and the
/// signature's scope, so nothing else may pass: no dots, slashes, spaces or availability zones.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BedrockRegion(String);

impl BedrockRegion {
    /// A blank value is no region (`Ok(None)`): the model uses the console's own region.
    pub fn parse(value: &str) -> Result<Option<Self>, &'static str> {
        let value = value.trim().to_ascii_lowercase();
        if value.is_empty() {
            return Ok(None);
        }
        let parts: Vec<&str> = value.split('-').collect();
        let well_formed = value.len() <= 32
            && (3..=5).contains(&parts.len())
            && parts[0].len() == 2
            && parts[..parts.len() - 1]
                .iter()
                .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase()))
            && parts.last().is_some_and(|number| {
                (1..=2).contains(&number.len()) && number.bytes().all(|b| b.is_ascii_digit())
            });
        if well_formed { Ok(Some(BedrockRegion(value))) } else { Err(REGION_INVALID) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The prefix of the cross-region inference profiles that serve this region's geography
    /// (`us.anthropic...` from us-east-1), if Bedrock has one for it.
    pub fn inference_profile_prefix(&self) -> Option<&'static str> {
        let region = self.0.as_str();
        if region.starts_with("us-gov-") {
            Some("us-gov")
        } else if region.starts_with("us-") {
            Some("us")
        } else if region.starts_with("eu-") {
            Some("eu")
        } else if region.starts_with("ap-") {
            Some("apac")
        } else {
            None
        }
    }

    /// The identifier the admin probably means in this region: a Bedrock model id typed
    /// without its geography prefix (`bedrock/anthropic.claude...`, which Bedrock refuses with
    /// "on-demand throughput isn't supported"), or with another geography's, gets this region's.
    /// `None` when the identifier is fine as it is, or names an ARN or a global profile.
    pub fn suggest_identifier(&self, identifier: &str) -> Option<String> {
        let prefix = self.inference_profile_prefix()?;
        let model = identifier.trim().strip_prefix(BEDROCK_PREFIX)?;
        let (first, rest) = model.split_once('.')?;
        let bare = if GEOGRAPHY_PREFIXES.contains(&first) {
            if first == prefix {
                return None;
            }
            rest
        } else if MODEL_PROVIDERS.contains(&first) {
            model
        } else {
            return None;
        };
        let (provider, _) = bare.split_once('.')?;
        MODEL_PROVIDERS.contains(&provider).then(|| format!("{BEDROCK_PREFIX}{prefix}.{bare}"))
    }
}

/// "Google Cloud project" of a Vertex AI model: a project ID as Google allows them (6 to 30
/// lowercase letters, digits and hyphens, starting with a letter, not ending with a hyphen).
/// It becomes a segment of the request's path, so nothing else may pass.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GoogleProject(String);

impl GoogleProject {
    pub fn parse(value: &str) -> Result<Self, &'static str> {
        let value = value.trim().to_ascii_lowercase();
        if value.is_empty() {
            return Err(PROJECT_REQUIRED);
        }
        let well_formed = (6..=30).contains(&value.len())
            && value.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
            && !value.ends_with('-')
            && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if well_formed { Ok(GoogleProject(value)) } else { Err(PROJECT_INVALID) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// "Location" of a Vertex AI model: `global`, or the shape of a Google Cloud region
/// (`us-central1`, `europe-west4`, `northamerica-northeast1`). It names the host
/// (`LOCATION-aiplatform.googleapis.com`) and a path segment, so nothing else may pass.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VertexLocation(String);

impl VertexLocation {
    pub const GLOBAL: &'static str = "global";

    pub fn parse(value: &str) -> Result<Self, &'static str> {
        let value = value.trim().to_ascii_lowercase();
        if value.is_empty() {
            return Err(LOCATION_REQUIRED);
        }
        if value == Self::GLOBAL {
            return Ok(VertexLocation(value));
        }
        let parts: Vec<&str> = value.split('-').collect();
        let (last, words) = parts.split_last().unwrap_or((&"", &[]));
        let digits = last.bytes().rev().take_while(u8::is_ascii_digit).count();
        let letters = &last[..last.len() - digits];
        let well_formed = value.len() <= 32
            && !words.is_empty()
            && words.iter().all(|word| !word.is_empty() && word.bytes().all(|b| b.is_ascii_lowercase()))
            && (1..=2).contains(&digits)
            && !letters.is_empty()
            && letters.bytes().all(|b| b.is_ascii_lowercase());
        if well_formed { Ok(VertexLocation(value)) } else { Err(LOCATION_INVALID) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The geography prefixes of Bedrock's cross-region inference profiles (not `global`, which
/// serves every region).
const GEOGRAPHY_PREFIXES: [&str; 4] = ["us", "us-gov", "eu", "apac"];
/// The model providers whose Bedrock ids are `provider.model`.
pub const MODEL_PROVIDERS: [&str; 9] =
    ["anthropic", "meta", "mistral", "amazon", "cohere", "ai21", "deepseek", "writer", "qwen"];

/// The region of the console's own AWS configuration (AWS_REGION, the profile's, else
/// us-east-1): where a Bedrock model without a region of its own runs. A request context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleRegion(pub String);

/// Regions the form offers to pick from (any other well-formed region may be typed).
pub const KNOWN_BEDROCK_REGIONS: [&str; 16] = [
    "us-east-1",
    "us-east-2",
    "us-west-2",
    "us-gov-west-1",
    "ca-central-1",
    "sa-east-1",
    "eu-central-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-north-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-south-1",
    "ap-southeast-1",
    "ap-southeast-2",
];

/// A model an endpoint or a cloud offers, as the form's "Load models" lists it: the
/// identifier to save, a label to pick it by, and the family its name suggests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoveredModel {
    pub identifier: String,
    pub label: String,
    pub family: Option<String>,
}

/// The model family a model's id or provider suggests (`anthropic.claude-3-5-sonnet` is
/// Claude, `Mixtral-8x7B-Instruct` Mixtral), or `None` when it suggests none: a guess the admin
/// sees selected and may change. The more specific names are tried first (Codestral before
/// Mistral, Code Llama before Llama).
pub fn guess_family(model: &str) -> Option<&'static str> {
    let name = model.to_ascii_lowercase();
    const GUESSES: [(&str, &str); 12] = [
        ("codestral", "codestral"),
        ("mixtral", "mixtral"),
        ("mistral", "mistral"),
        ("codellama", "codellama"),
        ("code-llama", "codellama"),
        ("llama", "llama3"),
        ("codegemma", "codegemma"),
        ("deepseek-coder", "deepseekcoder"),
        ("claude", "claude_3"),
        ("anthropic", "claude_3"),
        ("gpt", "gpt"),
        ("gemini", "gemini"),
    ];
    GUESSES.iter().find(|(part, _)| name.contains(part)).map(|(_, family)| *family)
}

/// What the admin typed into the model form, as the browser posts it: the one list of the
/// form's fields, flattened into the `save_model` and `test_connection` server functions so a
/// plain HTML post (JavaScript off) maps onto it by field name. A field the form does not show
/// (the endpoint of a Bedrock model) arrives blank.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct ModelForm {
    pub name: String,
    pub platform: String,
    pub model_family: String,
    pub endpoint: String,
    pub identifier: String,
    /// The AWS region of a Bedrock model; blank: the console's own.
    pub bedrock_region: String,
    /// The Google Cloud project of a Vertex AI model.
    pub vertex_project: String,
    /// The Vertex AI location of a Vertex AI model.
    pub vertex_location: String,
    /// `KeyAction::key()`.
    pub api_key_action: String,
    /// A newly typed API key. Never kept in a draft, never printed by `Debug`.
    pub api_key: String,
}

impl ModelForm {
    pub fn key_action(&self) -> KeyAction {
        KeyAction::parse(Some(&self.api_key_action))
    }

    /// The typed key, if any (surrounding spaces are a paste accident, not part of a key).
    pub fn typed_key(&self) -> Option<&str> {
        Some(self.api_key.trim()).filter(|key| !key.is_empty())
    }

    /// The form without its secret, fit to keep for the form's next rendering.
    pub fn without_key(mut self) -> ModelForm {
        self.api_key = String::new();
        self
    }
}

impl std::fmt::Debug for ModelForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelForm")
            .field("name", &self.name)
            .field("platform", &self.platform)
            .field("model_family", &self.model_family)
            .field("endpoint", &self.endpoint)
            .field("identifier", &self.identifier)
            .field("bedrock_region", &self.bedrock_region)
            .field("vertex_project", &self.vertex_project)
            .field("vertex_location", &self.vertex_location)
            .field("api_key_action", &self.api_key_action)
            .field("api_key", &if self.api_key.is_empty() { "" } else { "[typed]" })
            .finish()
    }
}

/// A model whose every field passed its rule. Fields that do not apply to the platform are
/// dropped here, so switching platform can never leave a stale endpoint behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidModel {
    pub name: DeploymentName,
    pub platform: Platform,
    pub model_family: String,
    pub endpoint: Option<Endpoint>,
    pub identifier: ModelIdentifier,
    /// Bedrock models only; `None`: the console's own region.
    pub bedrock_region: Option<BedrockRegion>,
    /// Vertex AI models only: where the model is called.
    pub google: Option<(GoogleProject, VertexLocation)>,
}

impl ModelForm {
    /// Every field's rule at once; `is_known_family` says which family keys exist.
    pub fn parse(&self, is_known_family: impl Fn(&str) -> bool) -> Result<ValidModel, FieldErrors> {
        let mut errors = FieldErrors::new();
        let mut check = |field: &str, result: Result<(), &'static str>| {
            if let Err(message) = result {
                errors.insert(field.to_owned(), message.to_owned());
            }
        };
        let name = DeploymentName::parse(&self.name);
        check("name", name.as_ref().map(|_| ()).map_err(|e| *e));
        let platform = Platform::parse(&self.platform);
        check("platform", platform.map(|_| ()));
        let family = self.model_family.trim();
        check("model_family", if is_known_family(family) { Ok(()) } else { Err(FAMILY_REQUIRED) });
        // An unknown platform has no rules of its own to check the rest by.
        let Ok(platform) = platform else { return Err(errors) };
        let endpoint = platform.uses_endpoint().then(|| Endpoint::parse(&self.endpoint));
        if let Some(result) = &endpoint {
            check("endpoint", result.as_ref().map(|_| ()).map_err(|e| *e));
        }
        let identifier = ModelIdentifier::parse(platform, &self.identifier);
        check("identifier", identifier.as_ref().map(|_| ()).map_err(|e| *e));
        let region =
            if platform.uses_region() { BedrockRegion::parse(&self.bedrock_region) } else { Ok(None) };
        check("bedrock_region", region.as_ref().map(|_| ()).map_err(|e| *e));
        let google = platform.uses_google_project().then(|| {
            let project = GoogleProject::parse(&self.vertex_project);
            let location = VertexLocation::parse(&self.vertex_location);
            check("vertex_project", project.as_ref().map(|_| ()).map_err(|e| *e));
            check("vertex_location", location.as_ref().map(|_| ()).map_err(|e| *e));
            project.and_then(|project| location.map(|location| (project, location)))
        });

        match (name, endpoint.transpose(), identifier, region, google.transpose()) {
            (Ok(name), Ok(endpoint), Ok(identifier), Ok(bedrock_region), Ok(google)) if errors.is_empty() => {
                Ok(ValidModel {
                    name,
                    platform,
                    model_family: family.to_owned(),
                    endpoint,
                    identifier,
                    bedrock_region,
                    google,
                })
            }
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_deployment_name_is_required_and_trimmed() {
        assert_eq!(DeploymentName::parse(""), Err(NAME_REQUIRED));
        assert_eq!(DeploymentName::parse(" \t\n"), Err(NAME_REQUIRED));
        assert_eq!(DeploymentName::parse("  Mixtral on vLLM ").unwrap().as_str(), "Mixtral on vLLM");
    }

    #[test]
    fn a_deployment_name_may_hold_255_characters_counted_as_characters_not_bytes() {
        assert!(DeploymentName::parse(&"é".repeat(255)).is_ok());
        assert_eq!(DeploymentName::parse(&"é".repeat(256)), Err(NAME_TOO_LONG));
        assert!(DeploymentName::parse(&"a".repeat(255)).is_ok());
        assert_eq!(DeploymentName::parse(&"a".repeat(256)), Err(NAME_TOO_LONG));
        assert!(DeploymentName::parse("Claude 3.5 — 東京").is_ok());
    }

    #[test]
    fn an_endpoint_is_an_absolute_http_url() {
        assert_eq!(Endpoint::parse(""), Err(ENDPOINT_REQUIRED));
        assert_eq!(Endpoint::parse("   "), Err(ENDPOINT_REQUIRED));
        for bad in [
            "vllm:8000/v1",
            "ftp://host/v1",
            "http://",
            "/v1",
            "http:///v1",
            "not a url",
            "javascript:alert(1)",
        ] {
            assert_eq!(Endpoint::parse(bad), Err(ENDPOINT_INVALID), "{bad}");
        }
        for good in
            ["http://localhost:8000/v1", "https://vllm.internal/v1", "http://10.0.0.5:4000", " http://h/v1 "]
        {
            assert!(Endpoint::parse(good).is_ok(), "{good}");
        }
        assert_eq!(Endpoint::parse(" http://h/v1 ").unwrap().as_str(), "http://h/v1");
    }

    #[test]
    fn an_endpoint_may_not_carry_a_user_name_or_password() {
        for bad in ["https://user:pass@vllm/v1", "http://user@vllm:8000/v1", "http://:pw@vllm/v1"] {
            assert_eq!(Endpoint::parse(bad), Err(ENDPOINT_WITH_CREDENTIALS), "{bad}");
        }
        assert!(
            Endpoint::parse("http://vllm/v1?user=a@b").is_ok(),
            "an @ after the host is not a credential"
        );
    }

    #[test]
    fn the_origin_is_scheme_host_and_port() {
        let origin = |value: &str| Endpoint::parse(value).unwrap().origin();
        assert_eq!(origin("http://vllm:8000/v1"), "http://vllm:8000");
        assert_eq!(origin("https://VLLM.internal/v1/"), "https://vllm.internal");
        assert_ne!(origin("http://vllm:8000/v1"), origin("http://vllm:8001/v1"));
        assert_eq!(origin("http://vllm:8000/v1"), origin("http://vllm:8000/other"));
    }

    #[test]
    fn an_endpoint_may_hold_2048_characters() {
        let at_limit = format!("http://h/{}", "a".repeat(2048 - "http://h/".len()));
        assert!(Endpoint::parse(&at_limit).is_ok());
        assert_eq!(Endpoint::parse(&format!("{at_limit}a")), Err(ENDPOINT_INVALID));
    }

    #[test]
    fn a_bedrock_identifier_starts_with_bedrock_and_names_a_model() {
        let bedrock = |value| ModelIdentifier::parse(Platform::Bedrock, value);
        assert_eq!(bedrock(""), Err(IDENTIFIER_REQUIRED));
        assert_eq!(bedrock("us.anthropic.claude-3-5-sonnet-20240620-v1:0"), Err(IDENTIFIER_NOT_BEDROCK));
        assert_eq!(bedrock("custom_openai/x"), Err(IDENTIFIER_NOT_BEDROCK));
        assert_eq!(bedrock("bedrock/"), Err(IDENTIFIER_BEDROCK_EMPTY));
        assert_eq!(bedrock("bedrock/  "), Err(IDENTIFIER_BEDROCK_EMPTY));
        let model = bedrock("bedrock/us.anthropic.claude-3-5-sonnet-20240620-v1:0").unwrap();
        assert_eq!(model.provider_model(), "us.anthropic.claude-3-5-sonnet-20240620-v1:0");
        let arn = "bedrock/arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-7-sonnet-20250219-v1:0";
        assert_eq!(
            bedrock(arn).unwrap().provider_model(),
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-7-sonnet-20250219-v1:0"
        );
    }

    #[test]
    fn an_api_identifier_is_provider_and_model_or_a_bare_name() {
        let api = |value| ModelIdentifier::parse(Platform::OpenAiCompatible, value);
        assert_eq!(
            api("custom_openai/Mixtral-8x7B-Instruct-v0.1").unwrap().provider_model(),
            "Mixtral-8x7B-Instruct-v0.1"
        );
        assert_eq!(api("Mixtral-8x7B").unwrap().provider_model(), "Mixtral-8x7B");
        assert_eq!(
            api("custom_openai/mistralai/Mixtral-8x7B").unwrap().provider_model(),
            "mistralai/Mixtral-8x7B",
            "split at the first slash only"
        );
        assert_eq!(api("openai/gpt-4").unwrap().provider_model(), "gpt-4", "any LiteLLM provider");
        assert_eq!(api("custom_openai/"), Err(IDENTIFIER_INCOMPLETE));
    }

    #[test]
    fn an_identifier_may_hold_255_characters() {
        let at_limit = format!("bedrock/{}", "m".repeat(255 - 8));
        assert!(ModelIdentifier::parse(Platform::Bedrock, &at_limit).is_ok());
        assert_eq!(
            ModelIdentifier::parse(Platform::Bedrock, &format!("{at_limit}m")),
            Err(IDENTIFIER_TOO_LONG)
        );
    }

    fn form(platform: &str) -> ModelForm {
        ModelForm {
            name: "Claude".into(),
            platform: platform.into(),
            model_family: "claude_3".into(),
            endpoint: "http://left-over:8000/v1".into(),
            identifier: "bedrock/us.anthropic.claude-3-5-sonnet-20240620-v1:0".into(),
            ..ModelForm::default()
        }
    }

    #[test]
    fn a_bedrock_model_drops_the_endpoint_it_does_not_use() {
        let model = form("bedrock").parse(|family| family == "claude_3").unwrap();
        assert_eq!(model.platform, Platform::Bedrock);
        assert_eq!(model.endpoint, None);
    }

    #[test]
    fn every_invalid_field_is_reported_at_once() {
        let empty = ModelForm { platform: "api".into(), ..ModelForm::default() };
        let errors = empty.parse(|_| false).unwrap_err();
        assert_eq!(errors.get("name").map(String::as_str), Some(NAME_REQUIRED));
        assert_eq!(errors.get("model_family").map(String::as_str), Some(FAMILY_REQUIRED));
        assert_eq!(errors.get("endpoint").map(String::as_str), Some(ENDPOINT_REQUIRED));
        assert_eq!(errors.get("identifier").map(String::as_str), Some(IDENTIFIER_REQUIRED));
        let unknown_family = form("bedrock").parse(|family| family == "mistral").unwrap_err();
        assert_eq!(unknown_family.keys().collect::<Vec<_>>(), ["model_family"]);
    }

    #[test]
    fn an_unknown_platform_is_refused_at_its_field_not_read_as_api() {
        let errors = form("vertex").parse(|family| family == "claude_3").unwrap_err();
        assert_eq!(
            errors.get("platform").map(String::as_str),
            Some(super::super::platform::PLATFORM_UNKNOWN)
        );
    }

    #[test]
    fn a_region_has_the_shape_of_an_aws_region() {
        for good in
            ["us-east-1", "us-gov-west-1", "ap-southeast-2", "eu-central-2", "il-central-1", " EU-WEST-3 "]
        {
            assert!(matches!(BedrockRegion::parse(good), Ok(Some(_))), "{good}");
        }
        assert_eq!(BedrockRegion::parse(" EU-WEST-3 ").unwrap().unwrap().as_str(), "eu-west-3");
        assert_eq!(BedrockRegion::parse("  "), Ok(None), "blank: the console's region");
        for bad in [
            "us-east",
            "useast1",
            "us-east-1a",
            "us-east-123",
            "us_east_1",
            "u-east-1",
            "us-east-1.evil.com",
            "us-east-1/x",
            "us--1",
            "https://us-east-1",
            "us-ea st-1",
            "a-b-c-d-e-f-1",
        ] {
            assert_eq!(BedrockRegion::parse(bad), Err(REGION_INVALID), "{bad}");
        }
    }

    #[test]
    fn a_region_suggests_its_geographys_inference_profile() {
        let region = |name: &str| BedrockRegion::parse(name).unwrap().unwrap();
        let bare = "bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0";
        assert_eq!(
            region("us-east-1").suggest_identifier(bare).as_deref(),
            Some("bedrock/us.anthropic.claude-3-5-sonnet-20240620-v1:0")
        );
        assert_eq!(
            region("eu-west-3")
                .suggest_identifier("bedrock/us.anthropic.claude-3-5-sonnet-20240620-v1:0")
                .as_deref(),
            Some("bedrock/eu.anthropic.claude-3-5-sonnet-20240620-v1:0"),
            "another geography's profile"
        );
        assert_eq!(
            region("ap-northeast-1").suggest_identifier("bedrock/meta.llama3-70b-instruct-v1:0").as_deref(),
            Some("bedrock/apac.meta.llama3-70b-instruct-v1:0")
        );
        assert_eq!(
            region("us-gov-west-1").suggest_identifier(bare).as_deref(),
            Some("bedrock/us-gov.anthropic.claude-3-5-sonnet-20240620-v1:0")
        );
        for fine in [
            "bedrock/us.anthropic.claude-3-5-sonnet-20240620-v1:0",
            "bedrock/global.anthropic.claude-sonnet-4-20250514-v1:0",
            "bedrock/arn:aws:bedrock:us-east-1:123456789012:inference-profile/x",
            "bedrock/",
            "custom_openai/anthropic.x",
        ] {
            assert_eq!(region("us-east-1").suggest_identifier(fine), None, "{fine}");
        }
        assert_eq!(region("ca-central-1").suggest_identifier(bare), None, "no profile known for it");
    }

    #[test]
    fn only_a_bedrock_model_keeps_a_region_and_a_bad_one_is_named_at_its_field() {
        let with_region =
            |platform: &str, region: &str| ModelForm { bedrock_region: region.into(), ..form(platform) };
        let model = with_region("bedrock", "eu-west-3").parse(|family| family == "claude_3").unwrap();
        assert_eq!(model.bedrock_region.as_ref().map(BedrockRegion::as_str), Some("eu-west-3"));
        let errors =
            with_region("bedrock", "eu-west-3; drop").parse(|family| family == "claude_3").unwrap_err();
        assert_eq!(errors.get("bedrock_region").map(String::as_str), Some(REGION_INVALID));
        let api = ModelForm { identifier: "custom_openai/m".into(), ..with_region("api", "eu-west-3") };
        assert_eq!(api.parse(|family| family == "claude_3").unwrap().bedrock_region, None);
    }

    #[test]
    fn a_google_project_has_the_shape_of_a_project_id() {
        for good in ["my-project-123", "abcdef", " Duo-Prod-1 ", &format!("a{}", "b".repeat(29))] {
            assert!(GoogleProject::parse(good).is_ok(), "{good}");
        }
        assert_eq!(GoogleProject::parse(" Duo-Prod-1 ").unwrap().as_str(), "duo-prod-1");
        assert_eq!(GoogleProject::parse("  "), Err(PROJECT_REQUIRED));
        for bad in ["abcde", "1project", "my_project", "project-", "my.project", "a/b/cdefg", &"a".repeat(31)]
        {
            assert_eq!(GoogleProject::parse(bad), Err(PROJECT_INVALID), "{bad}");
        }
    }

    #[test]
    fn a_vertex_location_is_a_region_or_global() {
        for good in
            ["us-central1", "europe-west4", "northamerica-northeast1", "me-central2", "global", " US-EAST5 "]
        {
            assert!(VertexLocation::parse(good).is_ok(), "{good}");
        }
        assert_eq!(VertexLocation::parse(" US-EAST5 ").unwrap().as_str(), "us-east5");
        assert_eq!(VertexLocation::parse(""), Err(LOCATION_REQUIRED));
        for bad in [
            "us",
            "us-central",
            "uscentral1",
            "us-central-1",
            "us-central123",
            "us-central1.evil.com",
            "us-central1/x",
            "-central1",
            "us-1",
        ] {
            assert_eq!(VertexLocation::parse(bad), Err(LOCATION_INVALID), "{bad}");
        }
    }

    #[test]
    fn only_a_vertex_model_keeps_a_project_and_location_each_named_at_its_field() {
        let vertex = |project: &str, location: &str| ModelForm {
            platform: "vertex_ai".into(),
            model_family: "gemini".into(),
            identifier: "vertex_ai/gemini-2.0-flash-001".into(),
            vertex_project: project.into(),
            vertex_location: location.into(),
            ..form("vertex_ai")
        };
        let model = vertex("duo-prod-1", "us-central1").parse(|family| family == "gemini").unwrap();
        let (project, location) = model.google.unwrap();
        assert_eq!((project.as_str(), location.as_str()), ("duo-prod-1", "us-central1"));
        assert_eq!(model.endpoint, None, "Vertex AI models have no endpoint");
        let errors = vertex("", "moon-base").parse(|family| family == "gemini").unwrap_err();
        assert_eq!(errors.get("vertex_project").map(String::as_str), Some(PROJECT_REQUIRED));
        assert_eq!(errors.get("vertex_location").map(String::as_str), Some(LOCATION_INVALID));
        let api = ModelForm {
            identifier: "custom_openai/m".into(),
            vertex_project: "duo-prod-1".into(),
            ..form("api")
        };
        assert_eq!(api.parse(|family| family == "claude_3").unwrap().google, None);
    }

    #[test]
    fn a_models_name_suggests_its_family() {
        assert_eq!(guess_family("us.anthropic.claude-3-5-sonnet-20240620-v1:0"), Some("claude_3"));
        assert_eq!(guess_family("mistralai/Mixtral-8x7B-Instruct-v0.1"), Some("mixtral"));
        assert_eq!(guess_family("mistral.mistral-large-2402-v1:0"), Some("mistral"));
        assert_eq!(guess_family("codestral-22b"), Some("codestral"));
        assert_eq!(guess_family("meta.llama3-70b-instruct-v1:0"), Some("llama3"));
        assert_eq!(guess_family("codellama/CodeLlama-7b"), Some("codellama"));
        assert_eq!(guess_family("amazon.nova-pro-v1:0"), None);
    }

    #[test]
    fn the_debug_form_never_shows_a_typed_key() {
        let typed = ModelForm { api_key: "sk-secret-1234".into(), ..form("api") };
        assert!(!format!("{typed:?}").contains("sk-secret"));
        assert_eq!(typed.clone().without_key().api_key, "");
        assert_eq!(ModelForm { api_key: "  ".into(), ..form("api") }.typed_key(), None);
    }

    proptest! {
        #[test]
        fn any_name_of_1_to_255_visible_characters_parses_to_itself(name in "[^\\s]([^\\n]{0,253}[^\\s])?") {
            prop_assume!(name.chars().count() <= 255);
            let parsed = DeploymentName::parse(&name).unwrap();
            prop_assert_eq!(parsed.as_str(), name.as_str());
        }

        #[test]
        fn no_name_parses_to_something_blank_or_too_long(name in "\\PC{0,300}") {
            if let Ok(parsed) = DeploymentName::parse(&name) {
                prop_assert!(!parsed.as_str().trim().is_empty());
                prop_assert!(parsed.as_str().chars().count() <= 255);
            }
        }

        #[test]
        fn every_accepted_bedrock_identifier_keeps_a_model_after_the_prefix(value in "\\PC{0,300}") {
            if let Ok(identifier) = ModelIdentifier::parse(Platform::Bedrock, &value) {
                prop_assert!(identifier.as_str().starts_with(BEDROCK_PREFIX));
                prop_assert!(!identifier.provider_model().trim().is_empty());
                prop_assert!(identifier.as_str().chars().count() <= 255);
            }
        }

        #[test]
        fn every_accepted_endpoint_is_http_or_https(value in "\\PC{0,100}") {
            if let Ok(endpoint) = Endpoint::parse(&value) {
                prop_assert!(endpoint.as_str().starts_with("http://") || endpoint.as_str().starts_with("https://"));
            }
        }

        #[test]
        fn parsing_never_panics_on_any_form(name in "\\PC{0,20}", platform in "\\PC{0,8}", endpoint in "\\PC{0,40}", identifier in "\\PC{0,40}") {
            let form = ModelForm { name, platform, model_family: "mistral".into(), endpoint, identifier, ..ModelForm::default() };
            let _ = form.parse(|family| family == "mistral");
        }
    }
}
