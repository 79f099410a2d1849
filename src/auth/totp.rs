//! Second factor: TOTP (RFC 6238: HMAC-SHA1, 6 digits, 30 s steps, one step of clock skew
//! either way) and one-time recovery codes.
//!
//! Enrolment is two steps: [`begin_enrolment`] stores a fresh secret as *pending* and returns
//! what the authenticator app needs (secret, `otpauth://` URI, QR code); [`confirm_enrolment`]
//! activates it only when the user types a valid code from it, and returns ten recovery codes
//! (shown once, stored as SHA-256 digests). A code is accepted once: the step it matched is
//! remembered and codes of that step or earlier are refused afterwards.

use qrcode::{QrCode, render::svg};
use rand::Rng as _;
use sha2::{Digest as _, Sha256};
use sqlx::{PgConnection, PgPool};
use totp_rs::{Algorithm, Secret, TOTP};

const DIGITS: usize = 6;
const STEP_SECS: u64 = 30;
const SKEW_STEPS: u64 = 1;
const ISSUER: &str = "kefu";
pub const RECOVERY_CODES: usize = 10;

/// What an authenticator app needs to add the account.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Enrolment {
    /// Base32, for typing in by hand.
    pub secret: String,
    pub otpauth_uri: String,
    /// An inline SVG of the URI as a QR code.
    #[serde(skip)]
    pub qr_svg: String,
}

fn totp(secret_base32: &str, account: &str) -> anyhow::Result<TOTP> {
    let bytes = Secret::Encoded(secret_base32.to_owned())
        .to_bytes()
        .map_err(|e| anyhow::anyhow!("stored TOTP secret is not base32: {e:?}"))?;
    // Account names may not contain ':' in an otpauth label.
    let account = account.replace(':', "_");
    Ok(TOTP::new(
        Algorithm::SHA1,
        DIGITS,
        SKEW_STEPS as u8,
        STEP_SECS,
        bytes,
        Some(ISSUER.into()),
        account,
    )?)
}

fn now_secs() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp()).unwrap_or_default()
}

/// The step `code` belongs to at `time`, if it is valid within the allowed skew.
fn matching_step(totp: &TOTP, code: &str, time: u64) -> Option<u64> {
    let code = code.trim().replace(' ', "");
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = time / STEP_SECS;
    (current.saturating_sub(SKEW_STEPS)..=current + SKEW_STEPS).find(|step| {
        let expected = totp.generate(step * STEP_SECS);
        subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), code.as_bytes()).into()
    })
}

/// The current code for a secret (tests and the CLI use it).
pub fn current_code(secret_base32: &str) -> anyhow::Result<String> {
    Ok(totp(secret_base32, "x")?.generate(now_secs()))
}

/// Whether the user has an active second factor.
pub async fn is_enabled(pool: &PgPool, user_id: i64) -> sqlx::Result<bool> {
    Ok(sqlx::query_scalar::<_, Option<chrono::DateTime<chrono::Utc>>>(
        "select totp_enabled_at from public.users where id = $1",
    )
    .bind(user_id)
    .fetch_optional(pool)
    .await?
    .flatten()
    .is_some())
}

/// Offers a new secret to `user_id` (kept pending until confirmed).
pub async fn begin_enrolment(
    pool: &PgPool,
    user_id: i64,
    account: &str,
) -> anyhow::Result<Enrolment> {
    let secret = match Secret::generate_secret().to_encoded() {
        Secret::Encoded(s) => s,
        Secret::Raw(_) => unreachable!("to_encoded returns base32"),
    };
    sqlx::query(
        "update public.users set totp_pending_secret = $2, updated_at = now() where id = $1",
    )
    .bind(user_id)
    .bind(&secret)
    .execute(pool)
    .await?;
    enrolment(&secret, account)
}

/// The enrolment details for a pending secret (to show the page again after a wrong code).
pub async fn pending_enrolment(
    pool: &PgPool,
    user_id: i64,
    account: &str,
) -> anyhow::Result<Option<Enrolment>> {
    let secret: Option<String> =
        sqlx::query_scalar("select totp_pending_secret from public.users where id = $1")
            .bind(user_id)
            .fetch_optional(pool)
            .await?
            .flatten();
    secret.map(|s| enrolment(&s, account)).transpose()
}

fn enrolment(secret: &str, account: &str) -> anyhow::Result<Enrolment> {
    let uri = totp(secret, account)?.get_url();
    let qr = QrCode::new(uri.as_bytes())?;
    let qr_svg = qr
        .render::<svg::Color>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .dark_color(svg::Color("#0f172a"))
        .light_color(svg::Color("#ffffff"))
        .build();
    Ok(Enrolment { secret: secret.to_owned(), otpauth_uri: uri, qr_svg })
}

/// Activates the pending secret if `code` comes from it; returns the recovery codes, or
/// `None` when the code is wrong or nothing is pending. Only `auth::accounts` calls it (it
/// changes how the person signs in).
pub(super) async fn activate(
    conn: &mut PgConnection,
    user_id: i64,
    code: &str,
) -> anyhow::Result<Option<Vec<String>>> {
    let pending: Option<String> =
        sqlx::query_scalar("select totp_pending_secret from public.users where id = $1 for update")
            .bind(user_id)
            .fetch_optional(&mut *conn)
            .await?
            .flatten();
    let Some(secret) = pending else { return Ok(None) };
    let Some(step) = matching_step(&totp(&secret, "x")?, code, now_secs()) else {
        return Ok(None);
    };
    sqlx::query(
        "update public.users set totp_secret = totp_pending_secret, totp_pending_secret = null,
                totp_enabled_at = now(), totp_last_step = $2, updated_at = now()
         where id = $1",
    )
    .bind(user_id)
    .bind(step as i64)
    .execute(&mut *conn)
    .await?;
    Ok(Some(replace_recovery_codes(conn, user_id).await?))
}

/// Checks a TOTP code or an unused recovery code; either works once.
pub async fn verify(pool: &PgPool, user_id: i64, code: &str) -> anyhow::Result<bool> {
    let code = code.trim();
    if code.is_empty() || code.len() > 64 {
        return Ok(false);
    }
    let mut tx = pool.begin().await?;
    let row: Option<(Option<String>, Option<i64>)> = sqlx::query_as(
        "select totp_secret, totp_last_step from public.users
         where id = $1 and totp_enabled_at is not null for update",
    )
    .bind(user_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((Some(secret), last_step)) = row else { return Ok(false) };
    if let Some(step) = matching_step(&totp(&secret, "x")?, code, now_secs()) {
        if last_step.is_some_and(|last| step as i64 <= last) {
            return Ok(false);
        }
        sqlx::query("update public.users set totp_last_step = $2 where id = $1")
            .bind(user_id)
            .bind(step as i64)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        return Ok(true);
    }
    let used = sqlx::query(
        "update public.user_recovery_codes set used_at = now()
         where user_id = $1 and code_hash = $2 and used_at is null",
    )
    .bind(user_id)
    .bind(digest(&normalize_recovery(code)))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(used == 1)
}

/// Turns the second factor off and forgets the recovery codes. Only `auth::accounts` calls
/// it (after deciding who may).
pub(super) async fn clear(conn: &mut PgConnection, user_id: i64) -> sqlx::Result<()> {
    sqlx::query(
        "update public.users set totp_secret = null, totp_pending_secret = null, totp_enabled_at = null,
                totp_last_step = null, updated_at = now()
         where id = $1",
    )
    .bind(user_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query("delete from public.user_recovery_codes where user_id = $1")
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// How many unused recovery codes the user has left.
pub async fn recovery_codes_left(pool: &PgPool, user_id: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "select count(*) from public.user_recovery_codes where user_id = $1 and used_at is null",
    )
    .bind(user_id)
    .fetch_one(pool)
    .await
}

async fn replace_recovery_codes(
    conn: &mut PgConnection,
    user_id: i64,
) -> sqlx::Result<Vec<String>> {
    sqlx::query("delete from public.user_recovery_codes where user_id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| new_recovery_code()).collect();
    sqlx::query(
        "insert into public.user_recovery_codes (user_id, code_hash)
         select $1, unnest($2::text[])",
    )
    .bind(user_id)
    .bind(codes.iter().map(|c| digest(&normalize_recovery(c))).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(codes)
}

/// `xxxxx-xxxxx` from an alphabet without look-alikes: 10 × log2(31) ≈ 50 bits.
fn new_recovery_code() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut rng = rand::rng();
    let mut code: String =
        (0..10).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
    code.insert(5, '-');
    code
}

fn normalize_recovery(code: &str) -> String {
    code.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect()
}

fn digest(code: &str) -> String {
    hex::encode(Sha256::digest(code.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_their_step_and_neighbours_only() {
        let secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
        let t = totp(secret, "a@b.c").unwrap();
        let now = 1_700_000_000;
        let code = t.generate(now);
        assert_eq!(matching_step(&t, &code, now), Some(now / 30));
        assert_eq!(matching_step(&t, &code, now + 30), Some(now / 30));
        assert_eq!(matching_step(&t, &code, now + 90), None);
        assert_eq!(matching_step(&t, "12345", now), None);
        assert_eq!(matching_step(&t, "abcdef", now), None);
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert_eq!(matching_step(&t, &spaced, now), Some(now / 30));
    }

    #[test]
    fn recovery_codes_are_normalized() {
        let code = new_recovery_code();
        assert_eq!(code.len(), 11);
        assert_eq!(normalize_recovery(&code.to_uppercase()), normalize_recovery(&code));
    }

    #[test]
    fn enrolment_has_uri_and_qr() {
        let e = enrolment("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "ops@example.com").unwrap();
        assert!(
            e.otpauth_uri.starts_with("otpauth://totp/kefu:ops%40example.com?"),
            "{}",
            e.otpauth_uri
        );
        assert!(e.qr_svg.contains("<svg"));
    }
}
