//! Password hashing with argon2id (OWASP baseline parameters: 19 MiB, t=2, p=1), on the
//! blocking pool so it never stalls the async workers.

use std::sync::LazyLock;

use anyhow::anyhow;
use argon2::{
    Argon2,
    password_hash::{PasswordHasher as _, PasswordVerifier as _, phc::PasswordHash},
};

/// Verified against when an email is unknown, so a login for a missing account costs the
/// same as one with a wrong password and timing does not reveal which emails exist.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let random: [u8; 16] = rand::random();
    Argon2::default().hash_password(&random[..]).expect("hashing random bytes").to_string()
});

/// Hashes a new password.
pub async fn hash(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| anyhow!("hashing a password: {e}"))
    })
    .await?
}

/// Whether `password` matches `stored`. With no stored hash (unknown user, or an account
/// without a password) it still does the full amount of work, then says no.
pub async fn verify(password: String, stored: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| DUMMY_HASH.clone());
        let Ok(parsed) = PasswordHash::new(&phc) else {
            return false;
        };
        Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok() && known
    })
    .await
    .unwrap_or(false)
}

/// Warms the dummy hash so the first unknown-email login is not slower than the rest.
pub fn warm_up() {
    LazyLock::force(&DUMMY_HASH);
}

/// A random password for accounts created by an operator (printed once).
pub fn generate() -> String {
    use base64::Engine as _;
    let bytes: [u8; 15] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip() {
        let h = hash("correct horse battery".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse battery".into(), Some(h.clone())).await);
        assert!(!verify("wrong".into(), Some(h)).await);
        assert!(!verify("anything".into(), None).await);
        assert!(!verify("x".into(), Some("not a phc string".into())).await);
    }
}
