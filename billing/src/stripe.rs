//! The Stripe API calls kefu makes, through async-stripe: its typed request parameters
//! (form-encoded as Stripe expects), its client (authentication, API version header, retries
//! with idempotency keys, Stripe's error shape) — and, for responses, the few fields kefu
//! reads, decoded into small types of its own. (async-stripe's full response types require
//! every field its API version has; reading only what is used keeps kefu working when
//! Stripe adds or moves fields, and keeps the local Stripe stand-in in tests honest about
//! what kefu depends on.)

use std::{collections::HashMap, time::Duration};

use stripe::{Client, ClientBuilder, RequestStrategy, StripeError, StripeRequest as _};
use stripe_billing::{
    billing_portal_session::{
        CreateBillingPortalSession, CreateBillingPortalSessionFlowData,
        CreateBillingPortalSessionFlowDataSubscriptionCancel,
        CreateBillingPortalSessionFlowDataType,
    },
    subscription::{
        RetrieveSubscription, UpdateSubscription, UpdateSubscriptionItems,
        UpdateSubscriptionProrationBehavior,
    },
};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionSubscriptionData,
};
use stripe_core::customer::CreateCustomer;

/// Where Stripe's API is, unless configured otherwise.
pub const API_BASE: &str = "https://api.stripe.com/";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Stripe answered with an error (or could not be reached, or sent something else).
    #[error("Stripe: {0}")]
    Stripe(#[from] StripeError),
}

/// A connection to Stripe's API with the platform's secret key. Cloning it is cheap: the
/// client (several hundred bytes) is shared, not copied into every holder of the app state.
#[derive(Clone)]
pub struct StripeApi {
    client: std::sync::Arc<Client>,
}

impl std::fmt::Debug for StripeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StripeApi")
    }
}

/// A subscription as kefu reads it.
#[derive(Clone, Debug, PartialEq, Eq, miniserde::Deserialize)]
pub struct Subscription {
    pub id: String,
    pub customer: String,
    /// Stripe's status: `incomplete`, `incomplete_expired`, `trialing`, `active`,
    /// `past_due`, `canceled`, `unpaid`, `paused`.
    pub status: String,
    pub cancel_at_period_end: bool,
    pub items: List<SubscriptionItem>,
    pub metadata: Option<HashMap<String, String>>,
}

impl Subscription {
    /// The Price of the (first) item: which plan this is.
    pub fn price(&self) -> Option<&str> {
        self.items.data.first().map(|i| i.price.id.as_str())
    }

    /// When the current period ends (Stripe keeps it on the items).
    pub fn current_period_end(&self) -> Option<i64> {
        self.items.data.iter().filter_map(|i| i.current_period_end).max()
    }

    /// The merchant kefu put in the subscription's metadata.
    pub fn tenant_id(&self) -> Option<i64> {
        self.metadata.as_ref()?.get("tenant_id")?.parse().ok()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, miniserde::Deserialize)]
pub struct List<T> {
    pub data: Vec<T>,
}

#[derive(Clone, Debug, PartialEq, Eq, miniserde::Deserialize)]
pub struct SubscriptionItem {
    pub id: String,
    pub price: Price,
    pub current_period_end: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, miniserde::Deserialize)]
pub struct Price {
    pub id: String,
}

#[derive(miniserde::Deserialize)]
struct Created {
    id: String,
}

#[derive(miniserde::Deserialize)]
struct Hosted {
    id: String,
    url: Option<String>,
}

/// A page of Stripe's to send the merchant to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirect {
    pub id: String,
    pub url: String,
}

impl StripeApi {
    /// A client for `api_base` (Stripe's, or a stand-in in tests) with `secret_key`.
    pub fn new(secret_key: &str, api_base: &str) -> Result<Self, ApiError> {
        let base =
            if api_base.ends_with('/') { api_base.to_owned() } else { format!("{api_base}/") };
        let client = ClientBuilder::new(secret_key)
            .url(base)
            .app_info("kefu", Some(env!("CARGO_PKG_VERSION").into()), None)
            // Failures Stripe calls retryable are retried (with backoff) under one idempotency
            // key per request, so a lost answer never makes a second customer or session.
            .request_strategy(RequestStrategy::ExponentialBackoff(3))
            .timeout(Duration::from_secs(20))
            .build()?;
        Ok(Self { client: std::sync::Arc::new(client) })
    }

    /// Creates the customer a merchant pays as.
    pub async fn create_customer(
        &self,
        email: &str,
        name: &str,
        tenant_id: i64,
    ) -> Result<String, ApiError> {
        let request = CreateCustomer::new()
            .email(email)
            .name(name)
            .metadata(HashMap::from([("tenant_id".to_owned(), tenant_id.to_string())]));
        let created: Created = request.build().customize().send(&*self.client).await?;
        Ok(created.id)
    }

    /// A Checkout Session subscribing `customer` to `price`; Stripe's hosted page returns to
    /// `success_url` or `cancel_url`.
    pub async fn checkout(
        &self,
        customer: &str,
        price: &str,
        tenant_id: i64,
        success_url: &str,
        cancel_url: &str,
    ) -> Result<Redirect, ApiError> {
        let metadata = HashMap::from([("tenant_id".to_owned(), tenant_id.to_string())]);
        let mut item = CreateCheckoutSessionLineItems::new();
        item.price = Some(price.to_owned());
        item.quantity = Some(1);
        let mut subscription = CreateCheckoutSessionSubscriptionData::new();
        subscription.metadata = Some(metadata.clone());
        let request = CreateCheckoutSession::new()
            .mode(stripe_checkout::CheckoutSessionMode::Subscription)
            .customer(customer)
            .client_reference_id(tenant_id.to_string())
            .line_items(vec![item])
            .subscription_data(subscription)
            .metadata(metadata)
            .success_url(success_url)
            .cancel_url(cancel_url);
        hosted(request.build().customize().send(&*self.client).await?)
    }

    /// A customer-portal session (payment methods, invoices, cancelling); with
    /// `cancel_subscription` it opens straight on cancelling that subscription.
    pub async fn portal(
        &self,
        customer: &str,
        return_url: &str,
        cancel_subscription: Option<&str>,
    ) -> Result<Redirect, ApiError> {
        let mut request =
            CreateBillingPortalSession::new().customer(customer).return_url(return_url);
        if let Some(subscription) = cancel_subscription {
            let mut flow = CreateBillingPortalSessionFlowData::new(
                CreateBillingPortalSessionFlowDataType::SubscriptionCancel,
            );
            flow.subscription_cancel =
                Some(CreateBillingPortalSessionFlowDataSubscriptionCancel::new(subscription));
            request = request.flow_data(flow);
        }
        hosted(request.build().customize().send(&*self.client).await?)
    }

    /// The subscription as Stripe has it now.
    pub async fn subscription(&self, id: &str) -> Result<Subscription, ApiError> {
        Ok(RetrieveSubscription::new(id).build().customize().send(&*self.client).await?)
    }

    /// Moves a subscription to another Price at once (prorated).
    pub async fn change_price(
        &self,
        subscription: &Subscription,
        price: &str,
    ) -> Result<Subscription, ApiError> {
        let mut item = UpdateSubscriptionItems::new();
        item.id = subscription.items.data.first().map(|i| i.id.clone());
        item.price = Some(price.to_owned());
        let request = UpdateSubscription::new(subscription.id.as_str())
            .items(vec![item])
            .proration_behavior(UpdateSubscriptionProrationBehavior::CreateProrations);
        Ok(request.build().customize().send(&*self.client).await?)
    }
}

fn hosted(h: Hosted) -> Result<Redirect, ApiError> {
    let url = h.url.ok_or_else(|| {
        ApiError::Stripe(StripeError::JSONDeserialize(format!("{} has no url", h.id)))
    })?;
    Ok(Redirect { id: h.id, url })
}
