//! A local stand-in for Stripe's API, speaking its wire format: form-encoded requests with a
//! bearer secret key, JSON objects shaped as in Stripe's API reference (customers, Checkout
//! Sessions, billing-portal sessions, subscriptions, invoices, events), Stripe's error
//! shape — and webhooks signed the way Stripe signs them (`Stripe-Signature: t=…,v1=…`).
//!
//! It keeps what kefu created and records every request, so tests can check what kefu
//! sent; tests drive what "happens at Stripe" (a Checkout paid, a payment failing, a
//! subscription ending) and deliver the events kefu would receive. Its hosted pages
//! (`/c/pay/…`, `/p/session/…`) let a browser test go through "Checkout" for real.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use axum::{
    Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use serde_json::{Value, json};

pub const SECRET_KEY: &str = "sk_test_kefu_fake";
pub const WEBHOOK_SECRET: &str = "whsec_kefu_fake";

/// The Prices the fake sells, and which kefu plan each is configured as.
pub const PRICES: &[(&str, &str, i64)] = &[
    ("starter", "price_starter", 1900),
    ("pro", "price_pro", 4900),
    ("business", "price_business", 14900),
];

/// A request kefu made.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub form: Vec<(String, String)>,
    pub idempotency_key: Option<String>,
    pub stripe_version: Option<String>,
}

impl Recorded {
    pub fn param(&self, key: &str) -> Option<&str> {
        self.form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Inner {
    customers: HashMap<String, Value>,
    sessions: HashMap<String, Value>,
    subscriptions: HashMap<String, Value>,
    portal_sessions: HashMap<String, Value>,
    requests: Vec<Recorded>,
    /// Where (kefu's) webhooks go.
    webhook_url: Option<String>,
    /// Answer every API call with this status and Stripe error (an outage).
    failing: Option<u16>,
}

#[derive(Clone)]
pub struct FakeStripe {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    ids: Arc<AtomicU64>,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl FakeStripe {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let fake = FakeStripe { url, inner: Arc::default(), ids: Arc::new(AtomicU64::new(1)) };
        let app = Router::new()
            .route("/v1/customers", post(create_customer))
            .route("/v1/checkout/sessions", post(create_session))
            .route("/v1/billing_portal/sessions", post(create_portal))
            .route("/v1/subscriptions/{id}", get(get_subscription).post(update_subscription))
            .route("/c/pay/{id}", get(checkout_page).post(pay))
            .route("/p/session/{id}", get(portal_page))
            .route("/p/session/{id}/cancel", post(portal_cancel))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        fake
    }

    /// The kefu configuration that talks to this fake.
    pub fn configure(&self, config: &mut kefu::config::Config) {
        config.stripe_secret_key = Some(secrecy::SecretString::from(SECRET_KEY));
        config.stripe_webhook_secrets = vec![secrecy::SecretString::from(WEBHOOK_SECRET)];
        config.stripe_api_base = self.url.clone();
        for (plan, price, _) in PRICES {
            let settings: billing::PlanSettings =
                serde_json::from_value(json!({ "stripe_price": price })).unwrap();
            config.plans.insert((*plan).to_owned(), settings);
        }
    }

    pub fn set_webhook_url(&self, url: String) {
        self.lock().webhook_url = Some(url);
    }

    /// Makes every API call fail with `status` (`None`: back to normal).
    pub fn set_failing(&self, status: Option<u16>) {
        self.lock().failing = status;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }

    fn id(&self, prefix: &str) -> String {
        format!("{prefix}_{:06}{}", self.ids.fetch_add(1, Ordering::Relaxed), rand_suffix())
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    pub fn subscription(&self, id: &str) -> Value {
        self.lock().subscriptions.get(id).cloned().expect("a subscription of the fake")
    }

    /// The newest Checkout Session kefu created.
    pub fn last_session(&self) -> Value {
        let inner = self.lock();
        let mut all: Vec<&Value> = inner.sessions.values().collect();
        // Sessions of one second are told apart by their ids' counter (zero-padded).
        all.sort_by_key(|s| {
            (s["created"].as_i64().unwrap_or(0), s["id"].as_str().map(str::to_owned))
        });
        all.last().cloned().cloned().expect("a Checkout Session")
    }

    /// Stripe's side of paying a Checkout Session: the subscription starts (active), its
    /// first invoice is paid, the session completes. Returns the subscription id and the
    /// events Stripe would send, in Stripe's order (not yet delivered).
    pub fn complete_checkout(&self, session_id: &str) -> (String, Vec<Value>) {
        let sub_id = self.id("sub");
        let mut inner = self.lock();
        let session = inner.sessions.get_mut(session_id).expect("the Checkout Session exists");
        session["status"] = json!("complete");
        session["payment_status"] = json!("paid");
        session["subscription"] = json!(sub_id);
        let session = session.clone();
        let price = session["line_items_price"].as_str().unwrap().to_owned();
        let customer = session["customer"].as_str().unwrap().to_owned();
        let metadata = session["metadata"].clone();
        let subscription = subscription_object(&sub_id, &customer, &price, "active", metadata);
        inner.subscriptions.insert(sub_id.clone(), subscription.clone());
        drop(inner);
        let invoice = self.invoice_object(&subscription, "paid");
        let mut public_session = session.clone();
        if let Some(o) = public_session.as_object_mut() {
            o.remove("line_items_price");
        }
        let events = vec![
            self.event("customer.subscription.created", subscription),
            self.event("invoice.paid", invoice),
            self.event("checkout.session.completed", public_session),
        ];
        (sub_id, events)
    }

    /// Changes a subscription at Stripe (e.g. `past_due` after a failed renewal).
    pub fn set_subscription(&self, id: &str, change: impl FnOnce(&mut Value)) -> Value {
        let mut inner = self.lock();
        let sub = inner.subscriptions.get_mut(id).expect("a subscription of the fake");
        change(sub);
        sub.clone()
    }

    /// An invoice of `subscription` in `status` (`paid`, `open`).
    pub fn invoice_object(&self, subscription: &Value, status: &str) -> Value {
        let amount = subscription["items"]["data"][0]["price"]["unit_amount"].as_i64().unwrap_or(0);
        let id = self.id("in");
        json!({
            "id": id, "object": "invoice", "customer": subscription["customer"], "status": status,
            "number": format!("KEFU-{}", &id[3..9]), "currency": "usd",
            "amount_due": amount, "amount_paid": if status == "paid" { amount } else { 0 },
            "amount_remaining": if status == "paid" { 0 } else { amount },
            "hosted_invoice_url": format!("https://invoice.stripe.test/i/{id}"),
            "created": now(), "period_start": now(), "period_end": now() + 30 * 86_400,
            "livemode": false, "billing_reason": "subscription_cycle",
            "parent": { "type": "subscription_details",
                        "subscription_details": { "subscription": subscription["id"], "metadata": subscription["metadata"] } },
        })
    }

    /// An event as Stripe sends it.
    pub fn event(&self, kind: &str, object: Value) -> Value {
        json!({
            "id": self.id("evt"), "object": "event", "api_version": "2025-09-30.clover",
            "created": now(), "livemode": false, "pending_webhooks": 1, "type": kind,
            "request": { "id": null, "idempotency_key": null },
            "data": { "object": object },
        })
    }

    /// Delivers `event` to kefu, signed as Stripe signs it (now, with the endpoint secret).
    pub async fn deliver(&self, event: &Value) -> reqwest::Response {
        let payload = serde_json::to_vec(event).unwrap();
        let header = billing::signature::header(&payload, WEBHOOK_SECRET.as_bytes(), now());
        self.deliver_raw(payload, Some(header)).await
    }

    /// Delivers a payload with whatever signature header a test wants.
    pub async fn deliver_raw(
        &self,
        payload: Vec<u8>,
        signature: Option<String>,
    ) -> reqwest::Response {
        let url = self.lock().webhook_url.clone().expect("set_webhook_url first");
        let mut req = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json; charset=utf-8")
            .header("user-agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)")
            .body(payload);
        if let Some(h) = signature {
            req = req.header("stripe-signature", h);
        }
        req.send().await.unwrap()
    }

    /// Delivers each event and checks kefu took it.
    pub async fn deliver_all(&self, events: &[Value]) {
        for e in events {
            let res = self.deliver(e).await;
            let status = res.status();
            assert_eq!(status, 200, "{} → {}", e["type"], res.text().await.unwrap());
        }
    }
}

fn rand_suffix() -> String {
    format!("{:08x}", rand::random::<u32>())
}

fn subscription_object(
    id: &str,
    customer: &str,
    price: &str,
    status: &str,
    metadata: Value,
) -> Value {
    let amount = PRICES.iter().find(|(_, p, _)| *p == price).map_or(0, |(_, _, a)| *a);
    let start = now();
    let price = json!({
        "id": price, "object": "price", "active": true, "currency": "usd", "unit_amount": amount,
        "type": "recurring", "recurring": { "interval": "month", "interval_count": 1 },
        "product": format!("prod_{price}"), "livemode": false,
    });
    let item = json!({
        "id": format!("si_{}", &id[4..]), "object": "subscription_item", "quantity": 1,
        "subscription": id, "created": start, "price": price,
        "current_period_start": start, "current_period_end": start + 30 * 86_400,
    });
    let mut sub = json!({
        "id": id, "object": "subscription", "customer": customer, "status": status,
        "cancel_at_period_end": false, "cancel_at": null, "canceled_at": null, "ended_at": null,
        "collection_method": "charge_automatically", "created": start, "start_date": start,
        "billing_cycle_anchor": start, "currency": "usd", "livemode": false,
        "latest_invoice": null, "discounts": [], "trial_end": null, "trial_start": null,
    });
    sub["metadata"] = metadata;
    sub["items"] = json!({
        "object": "list", "has_more": false, "data": [item],
        "url": format!("/v1/subscription_items?subscription={id}"),
    });
    sub
}

fn error(status: StatusCode, kind: &str, message: &str, param: Option<&str>) -> Response {
    (status, axum::Json(json!({ "error": { "type": kind, "message": message, "param": param } })))
        .into_response()
}

/// Records the request and checks the secret key, as Stripe does first. (The error is the
/// answer to give, as handlers return it.)
#[allow(clippy::result_large_err)]
fn admit(
    fake: &FakeStripe,
    method: &str,
    path: &str,
    headers: &HeaderMap,
    body: &str,
) -> Result<Vec<(String, String)>, Response> {
    let form: Vec<(String, String)> = serde_urlencoded::from_str(body).unwrap_or_default();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut inner = fake.lock();
    inner.requests.push(Recorded {
        method: method.into(),
        path: path.into(),
        form: form.clone(),
        idempotency_key: header("idempotency-key"),
        stripe_version: header("stripe-version"),
    });
    if let Some(status) = inner.failing {
        let status = StatusCode::from_u16(status).unwrap();
        return Err(error(status, "api_error", "Something went wrong on Stripe's end.", None));
    }
    if header("authorization").as_deref() != Some(&format!("Bearer {SECRET_KEY}")) {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "Invalid API Key provided.",
            None,
        ));
    }
    Ok(form)
}

fn param<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// `metadata[key]=value` pairs under `prefix` as an object.
fn metadata(form: &[(String, String)], prefix: &str) -> Value {
    let map: BTreeMap<String, String> = form
        .iter()
        .filter_map(|(k, v)| {
            Some((k.strip_prefix(prefix)?.strip_suffix(']')?.to_owned(), v.clone()))
        })
        .collect();
    json!(map)
}

async fn create_customer(
    State(fake): State<FakeStripe>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let form = match admit(&fake, "POST", "/v1/customers", &headers, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let id = fake.id("cus");
    let customer = json!({
        "id": id, "object": "customer", "email": param(&form, "email"), "name": param(&form, "name"),
        "metadata": metadata(&form, "metadata["), "created": now(), "livemode": false,
        "balance": 0, "currency": null, "delinquent": false, "invoice_prefix": "KEFU",
    });
    fake.lock().customers.insert(id, customer.clone());
    axum::Json(customer).into_response()
}

async fn create_session(
    State(fake): State<FakeStripe>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let form = match admit(&fake, "POST", "/v1/checkout/sessions", &headers, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if param(&form, "mode") != Some("subscription") {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "mode must be subscription here",
            Some("mode"),
        );
    }
    let Some(customer) =
        param(&form, "customer").filter(|c| fake.lock().customers.contains_key(*c))
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "No such customer",
            Some("customer"),
        );
    };
    let Some(price) =
        param(&form, "line_items[0][price]").filter(|p| PRICES.iter().any(|(_, q, _)| q == p))
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "No such price",
            Some("line_items[0][price]"),
        );
    };
    let (Some(success), Some(cancel)) = (param(&form, "success_url"), param(&form, "cancel_url"))
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "Missing required param: success_url.",
            Some("success_url"),
        );
    };
    let id = fake.id("cs_test");
    let session = json!({
        "id": id, "object": "checkout.session", "mode": "subscription", "status": "open",
        "payment_status": "unpaid", "customer": customer, "subscription": null,
        "client_reference_id": param(&form, "client_reference_id"),
        "metadata": metadata(&form, "metadata["), "success_url": success, "cancel_url": cancel,
        "url": format!("{}/c/pay/{id}", fake.url), "created": now(), "livemode": false,
        "currency": "usd", "amount_total": PRICES.iter().find(|(_, q, _)| *q == price).map(|p| p.2),
        "line_items_price": price,
    });
    fake.lock().sessions.insert(id, session.clone());
    let mut public = session;
    if let Some(o) = public.as_object_mut() {
        o.remove("line_items_price");
    }
    axum::Json(public).into_response()
}

async fn create_portal(
    State(fake): State<FakeStripe>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let form = match admit(&fake, "POST", "/v1/billing_portal/sessions", &headers, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let Some(customer) =
        param(&form, "customer").filter(|c| fake.lock().customers.contains_key(*c))
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "No such customer",
            Some("customer"),
        );
    };
    let id = fake.id("bps");
    let session = json!({
        "id": id, "object": "billing_portal.session", "customer": customer, "livemode": false,
        "return_url": param(&form, "return_url"), "created": now(),
        "flow": param(&form, "flow_data[type]").map(|t| json!({ "type": t,
            "subscription_cancel": { "subscription": param(&form, "flow_data[subscription_cancel][subscription]") } })),
        "url": format!("{}/p/session/{id}", fake.url),
    });
    fake.lock().portal_sessions.insert(id, session.clone());
    axum::Json(session).into_response()
}

async fn get_subscription(
    State(fake): State<FakeStripe>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = admit(&fake, "GET", &format!("/v1/subscriptions/{id}"), &headers, "") {
        return r;
    }
    match fake.lock().subscriptions.get(&id) {
        Some(s) => axum::Json(s.clone()).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            &format!("No such subscription: '{id}'"),
            Some("id"),
        ),
    }
}

async fn update_subscription(
    State(fake): State<FakeStripe>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: String,
) -> Response {
    let form = match admit(&fake, "POST", &format!("/v1/subscriptions/{id}"), &headers, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let mut inner = fake.lock();
    let Some(sub) = inner.subscriptions.get_mut(&id) else {
        return error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            &format!("No such subscription: '{id}'"),
            Some("id"),
        );
    };
    if let Some(price) = param(&form, "items[0][price]") {
        let Some(amount) = PRICES.iter().find(|(_, p, _)| *p == price).map(|p| p.2) else {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "No such price",
                Some("items[0][price]"),
            );
        };
        if param(&form, "items[0][id]") != sub["items"]["data"][0]["id"].as_str() {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "No such subscription item",
                Some("items[0][id]"),
            );
        }
        sub["items"]["data"][0]["price"]["id"] = json!(price);
        sub["items"]["data"][0]["price"]["unit_amount"] = json!(amount);
    }
    if let Some(v) = param(&form, "cancel_at_period_end") {
        sub["cancel_at_period_end"] = json!(v == "true");
    }
    axum::Json(sub.clone()).into_response()
}

async fn checkout_page(State(fake): State<FakeStripe>, Path(id): Path<String>) -> Response {
    let Some(session) = fake.lock().sessions.get(&id).cloned() else {
        return (StatusCode::NOT_FOUND, "no such session").into_response();
    };
    Html(format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><link rel=icon href=\"data:,\"><title>Stripe Checkout (test)</title></head>\
         <body><main><h1>Pay kefu</h1><p>Amount: {}</p><form method=post><button id=pay type=submit>Pay</button></form>\
         <a id=back href=\"{}\">Back</a></main></body></html>",
        session["amount_total"], session["cancel_url"].as_str().unwrap_or("/")
    ))
    .into_response()
}

/// The browser "pays": the subscription starts and Stripe's events are delivered, then the
/// browser returns to kefu's success URL.
async fn pay(State(fake): State<FakeStripe>, Path(id): Path<String>) -> Response {
    let success =
        fake.lock().sessions.get(&id).and_then(|s| s["success_url"].as_str().map(str::to_owned));
    let Some(success) = success else {
        return (StatusCode::NOT_FOUND, "no such session").into_response();
    };
    let (_, events) = fake.complete_checkout(&id);
    fake.deliver_all(&events).await;
    Redirect::to(&success).into_response()
}

async fn portal_page(State(fake): State<FakeStripe>, Path(id): Path<String>) -> Response {
    let Some(session) = fake.lock().portal_sessions.get(&id).cloned() else {
        return (StatusCode::NOT_FOUND, "no such session").into_response();
    };
    let cancel = session["flow"]["type"] == "subscription_cancel";
    Html(format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><link rel=icon href=\"data:,\"><title>Billing portal (test)</title></head>\
         <body><main><h1>Manage billing</h1>{}<a id=return href=\"{}\">Return to kefu</a></main></body></html>",
        if cancel { format!("<form method=post action=\"/p/session/{id}/cancel\"><button id=confirm-cancel type=submit>Cancel plan</button></form>") } else { String::new() },
        session["return_url"].as_str().unwrap_or("/")
    ))
    .into_response()
}

/// Cancelling in the portal: the subscription ends at the period's end; Stripe says so.
async fn portal_cancel(State(fake): State<FakeStripe>, Path(id): Path<String>) -> Response {
    let session = fake.lock().portal_sessions.get(&id).cloned();
    let Some(session) = session else {
        return (StatusCode::NOT_FOUND, "no such session").into_response();
    };
    let sub_id = session["flow"]["subscription_cancel"]["subscription"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let sub = fake.set_subscription(&sub_id, |s| s["cancel_at_period_end"] = json!(true));
    let event = fake.event("customer.subscription.updated", sub);
    fake.deliver_all(&[event]).await;
    Redirect::to(session["return_url"].as_str().unwrap_or("/")).into_response()
}
