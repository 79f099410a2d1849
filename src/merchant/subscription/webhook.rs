//! `POST /webhooks/stripe`: Stripe's events about payments.
//!
//! The signature is checked first (billing::signature: any `v1` under any configured
//! secret, 300 s tolerance both ways). Each event is handled once: its id is recorded in
//! the transaction that acts on it, so a repeated delivery changes nothing, and a failure
//! rolls back both (Stripe retries on any non-2xx answer). Order does not matter: an event
//! only says which merchant and subscription it concerns; kefu then asks Stripe for the
//! subscription as it is now and applies that, under the merchant's billing lock.

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use secrecy::ExposeSecret as _;

use billing::{
    event::Event,
    signature::{self, SignatureError},
};

use super::Billing;
use super::{apply_subscription, changed, store};
use crate::http::AppError;

pub async fn receive(
    State(state): State<Billing>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let secrets = &state.config.stripe_webhook_secrets;
    if secrets.is_empty() {
        // Billing is manual here: there is no such endpoint.
        return Err(AppError::NotFound);
    }
    let keys: Vec<&[u8]> = secrets.iter().map(|s| s.expose_secret().as_bytes()).collect();
    let header = headers.get("stripe-signature").and_then(|v| v.to_str().ok());
    // Real time, not the billing clock: this is about the delivery, not the merchant.
    let now = chrono::Utc::now();
    signature::verify(&body, header, &keys, now, signature::TOLERANCE_SECS).map_err(|e| {
        let code = match e {
            SignatureError::Missing => "signature_missing",
            SignatureError::Expired | SignatureError::FromTheFuture => "signature_expired",
            SignatureError::Malformed | SignatureError::Mismatch => "signature_invalid",
        };
        tracing::warn!(error = %e, "a Stripe webhook was refused");
        AppError::bad_request(code, e.to_string())
    })?;
    let event = Event::parse(&body).map_err(|e| AppError::bad_request("invalid_event", e))?;
    if !event.is_handled() {
        return Ok(answer("ignored"));
    }
    handle(&state, &event).await.map(answer)
}

fn answer(outcome: &'static str) -> Response {
    (StatusCode::OK, axum::Json(serde_json::json!({ "received": true, "outcome": outcome })))
        .into_response()
}

#[tracing::instrument(name = "billing.webhook", skip_all, fields(event = %event.id, kind = %event.kind), err(Display))]
async fn handle(state: &Billing, event: &Event) -> Result<&'static str, AppError> {
    let mut tx = state.door.db.begin().await?;
    let tenant = match event.tenant_id() {
        Some(id) if store::tenant_exists(&mut tx, id).await? => Some(id),
        _ => store::tenant_of(&mut tx, event.customer_id(), event.subscription_id()).await?,
    };
    if !store::record_event(&mut tx, event, tenant).await? {
        return Ok("duplicate");
    }
    let Some(tenant) = tenant else {
        // Not a merchant of this platform (the Stripe account may sell other things too).
        tracing::info!("a Stripe event for no known merchant");
        tx.commit().await?;
        return Ok("unknown_customer");
    };
    let Some(locked) = store::lock_tenant(&mut tx, tenant).await? else {
        tx.commit().await?;
        return Ok("unknown_customer");
    };
    if let Some(customer) = event.customer_id() {
        store::save_customer(&mut tx, tenant, customer).await?;
    }
    if let Some(invoice) = event.invoice() {
        store::upsert_invoice(&mut tx, tenant, &invoice).await?;
    }
    let mut change = None;
    if let Some(subscription_id) = event.subscription_id() {
        let stripe = state.stripe.as_ref().ok_or_else(|| {
            AppError::Internal(anyhow::anyhow!(
                "a Stripe webhook arrived but no stripe_secret_key is configured"
            ))
        })?;
        let subscription =
            stripe.subscription(subscription_id).await.map_err(super::stripe_failed)?;
        change = apply_subscription(state, &mut tx, tenant, &locked, &subscription).await?;
    }
    tx.commit().await?;
    if let Some((before, after)) = change {
        changed(state, tenants::TenantId(tenant), before, after).await;
    }
    Ok("applied")
}
