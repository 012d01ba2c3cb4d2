//! Where a model runs, and everything that follows from it: the platform is the one place the
//! form, the list, the key policy and the identifier rule ask, so a new platform is a new
//! variant here (plus its provider in `chat/client/`, a migration and a test fake).
//! `uses_region` is asked by the form and the domain rules; the region itself is
//! `domain::BedrockRegion`. `uses_google_project` likewise for a Vertex AI model's project
//! and location (`domain::GoogleProject`, `domain::VertexLocation`).

use serde::{Deserialize, Serialize};

pub const PLATFORM_UNKNOWN: &str = "Select a platform.";
pub const IDENTIFIER_NOT_BEDROCK: &str = "Model identifier must start with \"bedrock/\"";
pub const IDENTIFIER_BEDROCK_EMPTY: &str = "Model identifier must name a Bedrock model after \"bedrock/\", for example bedrock/us.anthropic.claude-3-5-sonnet-20240620-v1:0";
pub const IDENTIFIER_NOT_VERTEX: &str = "Model identifier must start with \"vertex_ai/\"";
pub const IDENTIFIER_VERTEX_MODEL: &str = "Model identifier must name a Vertex AI model after \"vertex_ai/\" (letters, digits and . _ @ -), for example vertex_ai/gemini-2.0-flash-001 or vertex_ai/claude-3-5-sonnet@20240620";
pub const IDENTIFIER_INCOMPLETE: &str = "Model identifier must be provider/model-name (for example custom_openai/Mixtral-8x7B-Instruct-v0.1 or azure/gpt-35-turbo), or the model name alone.";

pub const BEDROCK_PREFIX: &str = "bedrock/";
pub const CUSTOM_OPENAI_PREFIX: &str = "custom_openai/";
pub const VERTEX_PREFIX: &str = "vertex_ai/";

/// Where the model runs. Stored and posted by `key()`; shown by `label()`. In JSON (the API,
/// the server functions) by its key too, so what a script reads is what it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum Platform {
    /// Any OpenAI-compatible server, such as vLLM (GitLab calls the platform "API").
    #[serde(rename = "api")]
    OpenAiCompatible,
    #[serde(rename = "bedrock")]
    Bedrock,
    /// Google Vertex AI: Gemini (Google's own) and Claude (Anthropic's, on Vertex) models of a
    /// Google Cloud project, in one of its locations.
    #[serde(rename = "vertex_ai")]
    VertexAi,
}

/// A link shown under the form for platforms whose credentials live outside the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CredentialsNote {
    pub text: &'static str,
    pub link_text: &'static str,
    pub href: &'static str,
}

impl Platform {
    /// In the order the form offers them.
    pub const ALL: [Platform; 3] = [Platform::OpenAiCompatible, Platform::Bedrock, Platform::VertexAi];

    /// The stored and posted value (GitLab's `provider` values).
    pub fn key(self) -> &'static str {
        match self {
            Platform::OpenAiCompatible => "api",
            Platform::Bedrock => "bedrock",
            Platform::VertexAi => "vertex_ai",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Platform::OpenAiCompatible => "API",
            Platform::Bedrock => "Amazon Bedrock",
            Platform::VertexAi => "Google Vertex AI",
        }
    }

    pub fn parse(value: &str) -> Result<Platform, &'static str> {
        Platform::ALL.into_iter().find(|platform| platform.key() == value.trim()).ok_or(PLATFORM_UNKNOWN)
    }

    /// Whether the admin gives an endpoint URL (else the platform's SDK finds its own).
    pub fn uses_endpoint(self) -> bool {
        match self {
            Platform::OpenAiCompatible => true,
            Platform::Bedrock | Platform::VertexAi => false,
        }
    }

    /// Whether the model may hold an API key (else credentials come from the environment).
    pub fn uses_api_key(self) -> bool {
        match self {
            Platform::OpenAiCompatible => true,
            Platform::Bedrock | Platform::VertexAi => false,
        }
    }

    /// Whether the model names the cloud region it runs in (else there is none, or the
    /// endpoint says where).
    pub fn uses_region(self) -> bool {
        match self {
            Platform::OpenAiCompatible | Platform::VertexAi => false,
            Platform::Bedrock => true,
        }
    }

    /// Whether the model names the Google Cloud project and location it runs in
    /// (`domain::GoogleProject`, `domain::VertexLocation`).
    pub fn uses_google_project(self) -> bool {
        match self {
            Platform::OpenAiCompatible | Platform::Bedrock => false,
            Platform::VertexAi => true,
        }
    }

    /// Whether "Load models" can list what the platform offers (every platform can now: a
    /// server's model list, Bedrock's catalogue, Vertex AI's Model Garden).
    pub fn lists_models(self) -> bool {
        match self {
            Platform::OpenAiCompatible | Platform::Bedrock | Platform::VertexAi => true,
        }
    }

    /// The prefix every identifier of this platform must start with, if any.
    pub fn identifier_prefix(self) -> Option<&'static str> {
        match self {
            Platform::OpenAiCompatible => None,
            Platform::Bedrock => Some(BEDROCK_PREFIX),
            Platform::VertexAi => Some(VERTEX_PREFIX),
        }
    }

    /// The identifier field's placeholder, as GitLab shows it for the chosen family: on API,
    /// GPT and Claude models are usually named with their own provider (`openai/`,
    /// `anthropic/`, `azure/`), so no prefix is suggested for them.
    pub fn identifier_placeholder(self, family: &str) -> &'static str {
        match self {
            Platform::Bedrock => BEDROCK_PREFIX,
            Platform::VertexAi => VERTEX_PREFIX,
            Platform::OpenAiCompatible if names_its_provider(family) => "",
            Platform::OpenAiCompatible => CUSTOM_OPENAI_PREFIX,
        }
    }

    /// The identifier field's help text, matching the placeholder.
    pub fn identifier_help(self, family: &str) -> &'static str {
        match self {
            Platform::Bedrock => "Provide the model identifier in the form of bedrock/model-name",
            Platform::VertexAi => "Provide the model identifier in the form of vertex_ai/model-name",
            Platform::OpenAiCompatible if names_its_provider(family) => {
                "Provide the model identifier in the form of provider/model-name"
            }
            Platform::OpenAiCompatible => {
                "Provide the model identifier in the form of custom_openai/model-name"
            }
        }
    }

    pub fn credentials_note(self) -> Option<CredentialsNote> {
        match self {
            Platform::OpenAiCompatible => None,
            Platform::Bedrock => Some(CredentialsNote {
                text: "To fully set up AWS credentials for this model please refer to the ",
                link_text: "AWS Bedrock Configuration Guide",
                href: "https://docs.gitlab.com/administration/gitlab_duo_self_hosted/supported_llm_serving_platforms/#for-cloud-hosted-model-deployments",
            }),
            Platform::VertexAi => Some(CredentialsNote {
                text: "To fully set up Google Cloud credentials for this model please refer to the ",
                link_text: "Google Vertex AI Configuration Guide",
                href: "https://docs.gitlab.com/administration/gitlab_duo_self_hosted/supported_llm_serving_platforms/#for-cloud-hosted-model-deployments",
            }),
        }
    }

    /// This platform's own rule for a (present, not too long, trimmed) identifier.
    pub fn check_identifier(self, value: &str) -> Result<(), &'static str> {
        match self {
            Platform::Bedrock => match value.strip_prefix(BEDROCK_PREFIX) {
                None => Err(IDENTIFIER_NOT_BEDROCK),
                Some(model) if model.trim().is_empty() => Err(IDENTIFIER_BEDROCK_EMPTY),
                Some(_) => Ok(()),
            },
            // The model is one segment of the request's path (`.../models/MODEL:streamGenerateContent`),
            // so only the characters of Vertex's model ids pass: no slash, query or space.
            Platform::VertexAi => match value.strip_prefix(VERTEX_PREFIX) {
                None => Err(IDENTIFIER_NOT_VERTEX),
                Some(model) if is_vertex_model_id(model) => Ok(()),
                Some(_) => Err(IDENTIFIER_VERTEX_MODEL),
            },
            // Any LiteLLM `provider/model` (custom_openai/, azure/, openai/, ...); a bare name
            // is served by the endpoint as it is.
            Platform::OpenAiCompatible => match value.split_once('/') {
                None => Ok(()),
                Some((provider, model)) if !provider.trim().is_empty() && !model.trim().is_empty() => Ok(()),
                Some(_) => Err(IDENTIFIER_INCOMPLETE),
            },
        }
    }
}

/// A Vertex AI model id as its publishers name them (`gemini-2.0-flash-001`,
/// `claude-3-5-sonnet@20240620`).
pub fn is_vertex_model_id(model: &str) -> bool {
    !model.is_empty()
        && model.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'))
}

/// Families whose API models are named with their vendor's own provider.
fn names_its_provider(family: &str) -> bool {
    matches!(family, "gpt" | "claude_3")
}

/// A stored platform value this build does not know (a row written by a newer version, or by
/// hand): a typed error, never silently read as another platform.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown platform {0:?} in a stored model")]
pub struct UnknownPlatform(pub String);

impl TryFrom<String> for Platform {
    type Error = UnknownPlatform;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Platform::ALL.into_iter().find(|platform| platform.key() == value).ok_or(UnknownPlatform(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_platform_parses_from_its_own_key_and_nothing_else_does() {
        for platform in Platform::ALL {
            assert_eq!(Platform::parse(platform.key()), Ok(platform));
            assert_eq!(Platform::try_from(platform.key().to_owned()), Ok(platform));
        }
        assert_eq!(Platform::parse("vertex"), Err(PLATFORM_UNKNOWN));
        assert_eq!(Platform::parse(""), Err(PLATFORM_UNKNOWN));
        assert_eq!(Platform::try_from("API".to_owned()), Err(UnknownPlatform("API".to_owned())));
    }

    #[test]
    fn the_identifier_hints_follow_the_platform_and_the_family() {
        use Platform::*;
        assert_eq!(Bedrock.identifier_placeholder("claude_3"), "bedrock/");
        assert_eq!(OpenAiCompatible.identifier_placeholder("mistral"), "custom_openai/");
        assert_eq!(OpenAiCompatible.identifier_placeholder("gpt"), "");
        assert_eq!(OpenAiCompatible.identifier_placeholder("claude_3"), "");
        for (platform, family) in
            [(Bedrock, "claude_3"), (OpenAiCompatible, "mistral"), (OpenAiCompatible, "gpt")]
        {
            let placeholder = platform.identifier_placeholder(family);
            let help = platform.identifier_help(family);
            let expected = if placeholder.is_empty() { "provider/" } else { placeholder };
            assert!(help.ends_with(&format!("{expected}model-name")), "{help}");
        }
    }

    #[test]
    fn the_api_platform_takes_any_provider_and_model() {
        let api = |value| Platform::OpenAiCompatible.check_identifier(value);
        for good in ["azure/gpt-35-turbo", "custom_openai/Mixtral", "openai/gpt-4o", "Mixtral-8x7B"] {
            assert_eq!(api(good), Ok(()), "{good}");
        }
        for incomplete in ["custom_openai/", "/model", "azure/ "] {
            assert_eq!(api(incomplete), Err(IDENTIFIER_INCOMPLETE), "{incomplete}");
        }
    }

    #[test]
    fn a_vertex_identifier_names_one_model_id_after_its_prefix() {
        let vertex = |value| Platform::VertexAi.check_identifier(value);
        for good in ["vertex_ai/gemini-2.0-flash-001", "vertex_ai/claude-3-5-sonnet@20240620"] {
            assert_eq!(vertex(good), Ok(()), "{good}");
        }
        assert_eq!(vertex("gemini-2.0-flash-001"), Err(IDENTIFIER_NOT_VERTEX));
        for bad in
            ["vertex_ai/", "vertex_ai/a/b", "vertex_ai/x?alt=json", "vertex_ai/gem ini", "vertex_ai/x:y"]
        {
            assert_eq!(vertex(bad), Err(IDENTIFIER_VERTEX_MODEL), "{bad}");
        }
    }

    #[test]
    fn a_platform_with_an_identifier_prefix_requires_it() {
        for platform in Platform::ALL {
            if let Some(prefix) = platform.identifier_prefix() {
                assert!(platform.check_identifier(&format!("{prefix}model")).is_ok());
                assert!(platform.check_identifier("model").is_err());
            }
        }
    }
}
