//! The parts of an absolute URL that the forms' rules check (its scheme, host and credentials),
//! read by the same standard on both halves: the WHATWG URL standard, which the `url` crate
//! implements on the server and the browser implements itself. The bundle asks the browser's own
//! parser rather than carrying the `url` crate: its international domain name tables alone were
//! 48 KB of the gzipped bundle. The server checks every value again before it is saved.

/// What the rules need of a parsed URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParts {
    /// Without the colon: "http", "https".
    pub scheme: String,
    /// Empty when the URL has none.
    pub host: String,
    /// A user name or a password in the URL.
    pub has_credentials: bool,
}

/// `None` when the value is not an absolute URL.
#[cfg(not(target_arch = "wasm32"))]
pub fn parse(value: &str) -> Option<UrlParts> {
    let url = url::Url::parse(value).ok()?;
    Some(UrlParts {
        scheme: url.scheme().to_owned(),
        host: url.host_str().unwrap_or_default().to_owned(),
        has_credentials: !url.username().is_empty() || url.password().is_some(),
    })
}

/// `None` when the value is not an absolute URL.
#[cfg(target_arch = "wasm32")]
pub fn parse(value: &str) -> Option<UrlParts> {
    let url = leptos::web_sys::Url::new(value).ok()?;
    Some(UrlParts {
        scheme: url.protocol().trim_end_matches(':').to_owned(),
        host: url.hostname(),
        has_credentials: !url.username().is_empty() || !url.password().is_empty(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_scheme_host_and_credentials_of_an_absolute_url() {
        let parts = parse("https://user:secret@models.example.com:8443/v1?x=1").unwrap();
        assert_eq!(parts.scheme, "https");
        assert_eq!(parts.host, "models.example.com");
        assert!(parts.has_credentials);
        let plain = parse("http://127.0.0.1:8000").unwrap();
        assert_eq!(
            (plain.scheme.as_str(), plain.host.as_str(), plain.has_credentials),
            ("http", "127.0.0.1", false)
        );
        assert_eq!(parse("mailto:root@example.com").unwrap().host, "");
        assert_eq!(parse("models.example.com/v1"), None);
        assert_eq!(parse("http://exa mple.com"), None);
        assert_eq!(parse("http://vllm:99999/v1"), None, "a port out of range");
        // International host names are read as their ASCII form, as the browser reads them.
        assert_eq!(parse("http://bücher.example/v1").unwrap().host, "xn--bcher-kva.example");
    }
}
