//! The rules of a personal access token, as parsing types used by the page (early feedback) and
//! by the server and the command line (the truth).

use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::auth::Role;
use crate::error::FieldErrors;

/// The tokens page, GitLab's address for it (linked from the user menu).
pub const PAGE_PATH: &str = "/-/user_settings/personal_access_tokens";
/// Days a token lasts when no expiry date is given.
pub const DEFAULT_DAYS: u64 = 30;
/// The latest expiry date, in days from today.
pub const MAX_DAYS: u64 = 365;
/// Active tokens one user may hold: a script gone wrong cannot fill the table.
pub const MAX_ACTIVE_PER_USER: i64 = 100;
/// What every token starts with, so a leaked one is recognisable (secret scanners, logs).
pub const TOKEN_PREFIX: &str = "duopat-";

pub const NAME_BLANK: &str = "Token name can't be blank.";
pub const NAME_TOO_LONG: &str = "Token name is too long (maximum is 255 characters).";
pub const EXPIRY_INVALID: &str = "Expiration date must be a date such as 2027-01-31.";
pub const EXPIRY_PAST: &str = "Expiration date must be after today.";
pub const TOO_MANY: &str = "You have 100 active personal access tokens, the most allowed. Revoke one first.";

pub fn expiry_too_late(latest: NaiveDate) -> String {
    format!("Expiration date cannot be later than {latest} (one year from today).")
}

pub fn scope_above_role(scope: TokenScope) -> String {
    format!("Only administrators can create tokens with the {} scope.", scope.key())
}

/// What a token may do. (The default, the least, stands for a row the browser does not read.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TokenScope {
    /// Read everything the user may read; change nothing.
    #[default]
    Read,
    /// Everything the user's role allows.
    Admin,
    /// Read, plus the API key of a feature's model on the gateway endpoint.
    Gateway,
}

impl TokenScope {
    pub const ALL: [TokenScope; 3] = [TokenScope::Read, TokenScope::Admin, TokenScope::Gateway];

    pub fn key(self) -> &'static str {
        match self {
            TokenScope::Read => "read",
            TokenScope::Admin => "admin",
            TokenScope::Gateway => "gateway",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.key() == value)
    }

    /// GitLab's form shows each scope with a line saying what it grants.
    pub fn description(self) -> &'static str {
        match self {
            TokenScope::Read => "Grants read access to the API: models, features, settings and audit events.",
            TokenScope::Admin => "Grants complete read and write access to the API, as your role allows.",
            TokenScope::Gateway => {
                "Grants read access, and the API key of each feature's model, for an AI gateway to route by."
            }
        }
    }

    /// The role needed to hold a token of this scope: only admins may change things, and the
    /// gateway scope reveals API keys, which auditors never see.
    pub fn required_role(self) -> Role {
        match self {
            TokenScope::Read => Role::Auditor,
            TokenScope::Admin | TokenScope::Gateway => Role::Admin,
        }
    }

    pub fn allowed_for(self, role: Role) -> bool {
        self.required_role() == Role::Auditor || role == Role::Admin
    }

    /// What a request made with this token may do, given the owner's role now: an admin token
    /// acts as its owner, every other scope (or a demoted owner) reads only.
    pub fn effective_role(self, owner: Role) -> Role {
        if self == TokenScope::Admin && owner == Role::Admin { Role::Admin } else { Role::Auditor }
    }
}

/// The token form's fields, as typed (page, command line, API).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenForm {
    pub name: String,
    pub scope: String,
    /// `YYYY-MM-DD`; empty for the default of 30 days.
    #[serde(default)]
    pub expires_at: String,
}

/// A token form that passed every rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidToken {
    pub name: String,
    pub scope: TokenScope,
    /// Midnight UTC at the start of the expiry date, as GitLab expires tokens.
    pub expires_at: DateTime<Utc>,
}

impl TokenForm {
    /// Checks every field against `role` (the creator's) and `today`, collecting each field's
    /// message.
    pub fn parse(&self, role: Role, today: NaiveDate) -> Result<ValidToken, FieldErrors> {
        let mut errors = FieldErrors::new();
        let name = self.name.trim();
        if name.is_empty() {
            errors.insert("name".to_owned(), NAME_BLANK.to_owned());
        } else if name.chars().count() > 255 {
            errors.insert("name".to_owned(), NAME_TOO_LONG.to_owned());
        }
        let scope = match TokenScope::parse(self.scope.trim()) {
            None => {
                errors.insert("scope".to_owned(), "Select a scope: read, admin or gateway.".to_owned());
                None
            }
            Some(scope) if !scope.allowed_for(role) => {
                errors.insert("scope".to_owned(), scope_above_role(scope));
                None
            }
            Some(scope) => Some(scope),
        };
        let expires_on = match parse_expiry(&self.expires_at, today) {
            Ok(date) => Some(date),
            Err(message) => {
                errors.insert("expires_at".to_owned(), message);
                None
            }
        };
        match (scope, expires_on) {
            (Some(scope), Some(date)) if errors.is_empty() => Ok(ValidToken {
                name: name.to_owned(),
                scope,
                expires_at: date.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc(),
            }),
            _ => Err(errors),
        }
    }
}

/// The expiry date: empty for today + 30 days; otherwise after today and at most a year away.
pub fn parse_expiry(typed: &str, today: NaiveDate) -> Result<NaiveDate, String> {
    let typed = typed.trim();
    let latest = today.checked_add_days(Days::new(MAX_DAYS)).unwrap_or(today);
    if typed.is_empty() {
        return Ok(default_expiry(today));
    }
    let date = NaiveDate::parse_from_str(typed, "%Y-%m-%d").map_err(|_| EXPIRY_INVALID.to_owned())?;
    if date <= today {
        Err(EXPIRY_PAST.to_owned())
    } else if date > latest {
        Err(expiry_too_late(latest))
    } else {
        Ok(date)
    }
}

pub fn default_expiry(today: NaiveDate) -> NaiveDate {
    today.checked_add_days(Days::new(DEFAULT_DAYS)).unwrap_or(today)
}

/// One token as its owner's list shows it: never the token, never its digest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub scope: TokenScope,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl TokenRow {
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

/// What creating a token returns, once: the token itself travels only in this answer.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedToken {
    pub token: String,
    /// Not read in the browser, which shows the new token and then the list drawn again by the
    /// server: reading it would bring the date parser into the bundle.
    #[cfg_attr(not(feature = "ssr"), serde(skip_deserializing))]
    pub row: TokenRow,
}

/// Never prints the token (a log line or a panic message would keep it).
impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedToken").field("token", &"[hidden]").field("row", &self.row).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()
    }

    fn form(name: &str, scope: &str, expires_at: &str) -> TokenForm {
        TokenForm { name: name.to_owned(), scope: scope.to_owned(), expires_at: expires_at.to_owned() }
    }

    #[test]
    fn a_token_without_a_date_expires_in_thirty_days() {
        let valid = form(" ci ", "read", "").parse(Role::Admin, today()).unwrap();
        assert_eq!(valid.name, "ci");
        assert_eq!(valid.expires_at.date_naive(), NaiveDate::from_ymd_opt(2026, 12, 31).unwrap());
    }

    #[test]
    fn the_expiry_is_after_today_and_at_most_a_year_away() {
        let parse = |date: &str| parse_expiry(date, today());
        assert_eq!(parse("2026-12-01"), Err(EXPIRY_PAST.to_owned()));
        assert_eq!(parse("2027-12-01"), Ok(NaiveDate::from_ymd_opt(2027, 12, 1).unwrap()));
        assert_eq!(parse("2027-12-02"), Err(expiry_too_late(NaiveDate::from_ymd_opt(2027, 12, 1).unwrap())));
        assert_eq!(parse("tomorrow"), Err(EXPIRY_INVALID.to_owned()));
    }

    #[test]
    fn an_auditor_cannot_mint_admin_or_gateway_tokens() {
        for scope in ["admin", "gateway"] {
            let errors = form("x", scope, "").parse(Role::Auditor, today()).unwrap_err();
            assert_eq!(errors["scope"], scope_above_role(TokenScope::parse(scope).unwrap()));
        }
        assert!(form("x", "read", "").parse(Role::Auditor, today()).is_ok());
    }

    #[test]
    fn every_field_gets_its_own_message() {
        let errors = form("  ", "root", "2020-01-01").parse(Role::Admin, today()).unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert_eq!(errors["name"], NAME_BLANK);
        assert_eq!(errors["expires_at"], EXPIRY_PAST);
    }

    #[test]
    fn only_an_admin_token_of_an_admin_may_change_things() {
        assert_eq!(TokenScope::Admin.effective_role(Role::Admin), Role::Admin);
        assert_eq!(TokenScope::Admin.effective_role(Role::Auditor), Role::Auditor);
        assert_eq!(TokenScope::Read.effective_role(Role::Admin), Role::Auditor);
        assert_eq!(TokenScope::Gateway.effective_role(Role::Admin), Role::Auditor);
    }

    #[test]
    fn a_created_token_never_debug_prints_its_secret() {
        let row = TokenRow {
            id: 1,
            name: "ci".into(),
            scope: TokenScope::Read,
            created_at: Utc::now(),
            expires_at: Utc::now(),
            last_used_at: None,
            revoked_at: None,
        };
        let created = CreatedToken { token: "duopat-secret".into(), row };
        assert!(!format!("{created:?}").contains("secret"));
    }
}
