//! Input validation at the edge. Each check returns a message key from the catalogs
//! (`validation.*`), so the API can answer in English and pages in the reader's language.

use email_address::{EmailAddress, Options};

/// A message key such as `validation.email_invalid`.
pub type Problem = &'static str;

/// A syntactically valid email address (trimmed; case kept, compared case-insensitively).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub const MAX_LEN: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, Problem> {
        let email = raw.trim();
        if email.is_empty() {
            return Err("validation.required");
        }
        if email.len() > Self::MAX_LEN {
            return Err("validation.email_too_long");
        }
        if email.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("validation.email_invalid");
        }
        let options = Options {
            minimum_sub_domains: 2,
            allow_domain_literal: false,
            allow_display_text: false,
        };
        EmailAddress::parse_with_options(email, options).map_err(|_| "validation.email_invalid")?;
        Ok(Self(email.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before `@`, used as a first display name.
    pub fn local_part(&self) -> &str {
        self.0.split('@').next().unwrap_or_default()
    }
}

/// A company (merchant) name: trimmed, 1–100 characters, no control characters.
pub fn company(raw: &str) -> Result<String, Problem> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("validation.required");
    }
    if name.chars().count() > 100 {
        return Err("validation.company_too_long");
    }
    if name.chars().any(char::is_control) {
        return Err("validation.text_invalid_characters");
    }
    Ok(name.to_owned())
}

/// Password rules for new passwords: 10–128 characters, not a well-known password, not
/// built from the email address.
pub fn new_password(password: &str, email: Option<&Email>) -> Result<(), Problem> {
    let len = password.chars().count();
    if len == 0 {
        return Err("validation.required");
    }
    if len < 10 {
        return Err("validation.password_too_short");
    }
    if len > 128 {
        return Err("validation.password_too_long");
    }
    let lower = password.to_lowercase();
    let distinct = {
        let mut chars: Vec<char> = lower.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        chars.len()
    };
    if distinct < 4 || COMMON.contains(&lower.as_str()) {
        return Err("validation.password_too_common");
    }
    if let Some(email) = email {
        let local = email.local_part().to_lowercase();
        if local.len() >= 4 && lower.contains(&local)
            || lower.contains(&email.as_str().to_lowercase())
        {
            return Err("validation.password_contains_email");
        }
    }
    Ok(())
}

/// Passwords of 10+ characters that top every breach list.
const COMMON: &[&str] = &[
    "1234567890",
    "12345678910",
    "123456789a",
    "a123456789",
    "0123456789",
    "1111111111",
    "qwertyuiop",
    "1q2w3e4r5t",
    "1qaz2wsx3edc",
    "password12",
    "password123",
    "password1234",
    "passw0rd123",
    "iloveyou12",
    "abc1234567",
    "abcd123456",
    "qwerty1234",
    "qwerty12345",
    "qwerty123456",
    "asdfghjkl1",
    "zxcvbnm123",
    "welcome123",
    "admin12345",
    "administrator",
    "letmein123",
    "football123",
    "baseball123",
    "sunshine123",
    "princess123",
    "1234567890a",
    "changeme123",
    "woaini1314",
    "5201314520",
    "aa12345678",
    "a1234567890",
    "qweasdzxc123",
    "1234qwerasdf",
    "p@ssw0rd123",
    "superman123",
    "dragon1234",
    "monkey12345",
    "trustno1234",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert!(Email::parse(" Ann@Example.com ").is_ok());
        assert_eq!(Email::parse(" Ann@Example.com ").unwrap().as_str(), "Ann@Example.com");
        for bad in [
            "",
            "plain",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a@b.com\u{0}",
            "<a@b.com>",
            "\"x\" <a@b.com>",
            "a@[1.2.3.4]",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Email::parse(&format!("{}@x.com", "a".repeat(300))),
            Err("validation.email_too_long")
        );
    }

    #[test]
    fn passwords() {
        let email = Email::parse("walter@example.com").unwrap();
        assert_eq!(new_password("short", None), Err("validation.password_too_short"));
        assert_eq!(new_password(&"ab1".repeat(50), None), Err("validation.password_too_long"));
        assert_eq!(new_password("Password123", None), Err("validation.password_too_common"));
        assert_eq!(new_password("aaaaaaaaaaaa", None), Err("validation.password_too_common"));
        assert_eq!(
            new_password("walter-rocks-2024", Some(&email)),
            Err("validation.password_contains_email")
        );
        assert_eq!(new_password("correct horse battery", Some(&email)), Ok(()));
        assert_eq!(
            new_password("密码是很长的一句话呢", None),
            Ok(()),
            "counts characters, not bytes"
        );
    }

    #[test]
    fn companies() {
        assert_eq!(company("  Acme  ").unwrap(), "Acme");
        assert_eq!(company("   "), Err("validation.required"));
        assert_eq!(company(&"x".repeat(101)), Err("validation.company_too_long"));
        assert_eq!(company("a\u{7}b"), Err("validation.text_invalid_characters"));
        assert_eq!(company("光影家居 🛋️").unwrap(), "光影家居 🛋️");
    }
}
