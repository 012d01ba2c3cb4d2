//! Times as people read them: "5 minutes ago" beside the exact time. The relative time is
//! computed against a `now` that comes with the page's data, so the server's HTML and the
//! hydrated page say the same.

use chrono::{DateTime, Utc};

/// "just now", "1 minute ago", "3 hours ago", "2 days ago" (a time in the future, from
/// clocks that disagree, reads "just now").
pub fn ago(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (now - at).num_seconds();
    let (count, unit) = match seconds {
        ..60 => return "just now".to_owned(),
        60..3600 => (seconds / 60, "minute"),
        3600..86400 => (seconds / 3600, "hour"),
        _ => (seconds / 86400, "day"),
    };
    let plural = if count == 1 { "" } else { "s" };
    format!("{count} {unit}{plural} ago")
}

/// The exact time, in UTC: "2026-12-01 17:50:00 UTC".
pub fn absolute(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_as_people_say_them() {
        let now = DateTime::parse_from_rfc3339("2026-12-01T18:00:00Z").unwrap().with_timezone(&Utc);
        let before = |seconds: i64| now - chrono::TimeDelta::seconds(seconds);
        assert_eq!(ago(before(5), now), "just now");
        assert_eq!(ago(before(-30), now), "just now");
        assert_eq!(ago(before(60), now), "1 minute ago");
        assert_eq!(ago(before(150), now), "2 minutes ago");
        assert_eq!(ago(before(3600), now), "1 hour ago");
        assert_eq!(ago(before(3 * 86400 + 5), now), "3 days ago");
        assert_eq!(absolute(now), "2026-12-01 18:00:00 UTC");
    }
}
