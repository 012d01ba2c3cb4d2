//! The rules of GitLab Duo's instance settings, as functions that parse: used by the page as the
//! admin types and by the server before saving, with GitLab's messages.

pub const SAVED: &str = "Application settings saved successfully.";
pub const SAVE_FAILED: &str = "An error occurred while updating your settings. Reload the page to try again.";

pub const TIMEOUT_RANGE: &str = "The AI Gateway request timeout must be a whole number from 60 to 600.";
pub const GATEWAY_URL_INVALID: &str =
    "The URL must be a complete URL, including either the \"http://\" or \"https://\" protocol.";
pub const AGENT_URL_INVALID: &str =
    "Enter a host and port without a protocol, for example example.com:50052.";

/// "AI Gateway request timeout": whole seconds, 60 to 600.
pub fn parse_timeout(value: &str) -> Result<i32, &'static str> {
    value.trim().parse::<i32>().ok().filter(|seconds| (60..=600).contains(seconds)).ok_or(TIMEOUT_RANGE)
}

/// "Local AI Gateway URL": blank clears it; otherwise an absolute http(s) URL of at most 2048
/// characters, stored without its trailing slash.
pub fn parse_gateway_url(value: &str) -> Result<Option<String>, &'static str> {
    let value = value.trim().trim_end_matches('/');
    if value.is_empty() {
        return Ok(None);
    }
    let url = crate::url_parts::parse(value).ok_or(GATEWAY_URL_INVALID)?;
    let absolute =
        value.split_once("://").is_some_and(|(_, rest)| !rest.is_empty() && !rest.starts_with('/'));
    if !matches!(url.scheme.as_str(), "http" | "https") || !absolute || value.chars().count() > 2048 {
        return Err(GATEWAY_URL_INVALID);
    }
    Ok(Some(value.to_owned()))
}

/// "Local URL for the GitLab Duo Agent Platform service": `host:port`, no protocol.
pub fn parse_agent_platform_url(value: &str) -> Result<Option<String>, &'static str> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    let (host, port) = value.rsplit_once(':').ok_or(AGENT_URL_INVALID)?;
    let host_ok = !host.is_empty()
        && !host.contains('/')
        && !host.contains(':')
        && !host.chars().any(char::is_whitespace);
    let port_ok = port.parse::<u16>().is_ok_and(|port| port > 0);
    if host_ok && port_ok { Ok(Some(value.to_owned())) } else { Err(AGENT_URL_INVALID) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeout_is_60_to_600_whole_seconds() {
        assert_eq!(parse_timeout("60"), Ok(60));
        assert_eq!(parse_timeout(" 600 "), Ok(600));
        for bad in ["59", "601", "", "sixty", "60.5", "-60"] {
            assert_eq!(parse_timeout(bad), Err(TIMEOUT_RANGE), "{bad}");
        }
    }

    #[test]
    fn the_gateway_url_is_absolute_http_without_trailing_slash_and_blank_clears_it() {
        assert_eq!(parse_gateway_url("  "), Ok(None));
        assert_eq!(parse_gateway_url("http://localhost:5052/"), Ok(Some("http://localhost:5052".into())));
        assert_eq!(
            parse_gateway_url("https://gw.example.com/ai//"),
            Ok(Some("https://gw.example.com/ai".into()))
        );
        for bad in ["localhost:5052", "ftp://gw", "http://", "http:///x", "gw.example.com"] {
            assert_eq!(parse_gateway_url(bad), Err(GATEWAY_URL_INVALID), "{bad}");
        }
        assert_eq!(parse_gateway_url(&format!("http://h/{}", "a".repeat(2045))), Err(GATEWAY_URL_INVALID));
    }

    #[test]
    fn the_agent_platform_url_is_host_and_port_without_protocol() {
        assert_eq!(parse_agent_platform_url("example.com:50052"), Ok(Some("example.com:50052".into())));
        assert_eq!(parse_agent_platform_url(""), Ok(None));
        for bad in [
            "http://example.com:50052",
            "example.com",
            "example.com:0",
            "example.com:99999",
            ":50052",
            "a b:1",
        ] {
            assert_eq!(parse_agent_platform_url(bad), Err(AGENT_URL_INVALID), "{bad}");
        }
    }
}
