//! Tenant identifiers and the schema name derived from them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The internal id of a tenant (`public.tenants.id`). Never shown in URLs; the schema name
/// is derived from it and from nothing else.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type,
)]
#[sqlx(transparent)]
pub struct TenantId(pub i64);

impl From<i64> for TenantId {
    fn from(id: i64) -> Self {
        Self(id)
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The schema holding a tenant's data. Built from the numeric id only, so request data can
/// never choose (or inject into) a schema name.
pub fn schema_name(id: TenantId) -> String {
    format!("tenant_{}", id.0)
}

/// The public id of a tenant, used in chat links (`/chatIndex?ent_id=…`) and widget code.
/// 1–64 characters of `A-Z a-z 0-9 _ -` (GOFLY used small numbers; kefu generates 10
/// lowercase characters).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, sqlx::Type)]
#[sqlx(transparent)]
pub struct EntId(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EntIdError {
    #[error("ent_id is empty")]
    Empty,
    #[error("ent_id is longer than 64 characters")]
    TooLong,
    #[error("ent_id may only contain letters, digits, '_' and '-'")]
    InvalidCharacter,
}

impl EntId {
    pub const MAX_LEN: usize = 64;

    /// Validates a public id taken from a request.
    pub fn parse(raw: &str) -> Result<Self, EntIdError> {
        if raw.is_empty() {
            return Err(EntIdError::Empty);
        }
        if raw.len() > Self::MAX_LEN {
            return Err(EntIdError::TooLong);
        }
        if !raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(EntIdError::InvalidCharacter);
        }
        Ok(Self(raw.to_owned()))
    }

    /// A fresh random id: 10 characters from an alphabet without look-alikes (≈ 50 bits).
    pub fn generate() -> Self {
        use rand::Rng as _;
        const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
        let mut rng = rand::rng();
        let id = (0..10).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
        Self(id)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EntId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EntId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        EntId::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ent_id_rules() {
        assert!(EntId::parse("1").is_ok());
        assert!(EntId::parse("abc_DEF-9").is_ok());
        assert_eq!(EntId::parse(""), Err(EntIdError::Empty));
        assert_eq!(EntId::parse(&"a".repeat(65)), Err(EntIdError::TooLong));
        for bad in ["a'b", "a;drop", "tenant 1", "é", "a/b", "a\0b", "../x"] {
            assert_eq!(EntId::parse(bad), Err(EntIdError::InvalidCharacter), "{bad}");
        }
    }

    #[test]
    fn generated_ids_parse_and_differ() {
        let a = EntId::generate();
        let b = EntId::generate();
        assert_eq!(EntId::parse(a.as_str()).unwrap(), a);
        assert_eq!(a.as_str().len(), 10);
        assert_ne!(a, b);
    }

    #[test]
    fn schema_name_is_numeric() {
        assert_eq!(schema_name(TenantId(42)), "tenant_42");
    }
}
