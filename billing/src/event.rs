//! Webhook events, read for what kefu acts on. kefu never trusts an event's copy of a
//! subscription for the merchant's state (events arrive late, twice, or out of order): it
//! takes from the event only *which* merchant and subscription it is about, then asks
//! Stripe for the subscription as it is now.

use serde_json::Value;

/// The event types kefu acts on; others are acknowledged and ignored.
pub const HANDLED: &[&str] = &[
    "checkout.session.completed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.paid",
    "invoice.payment_failed",
];

/// A webhook event.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub id: String,
    /// `type` in Stripe's JSON.
    pub kind: String,
    /// When Stripe created it (Unix seconds).
    pub created: i64,
    /// `data.object`.
    pub object: Value,
}

impl Event {
    /// Reads an event payload; what is not an event is an error that says why.
    pub fn parse(payload: &[u8]) -> Result<Self, String> {
        let v: Value = serde_json::from_slice(payload).map_err(|e| format!("not JSON: {e}"))?;
        let text = |key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
        if v.get("object").and_then(Value::as_str) != Some("event") {
            return Err("not a Stripe event (object is not \"event\")".into());
        }
        let id =
            text("id").filter(|id| id.starts_with("evt_")).ok_or("the event has no evt_ id")?;
        let kind = text("type").ok_or("the event has no type")?;
        let created =
            v.get("created").and_then(Value::as_i64).ok_or("the event has no created time")?;
        let object = v
            .get("data")
            .and_then(|d| d.get("object"))
            .filter(|o| o.is_object())
            .cloned()
            .ok_or("the event has no data.object")?;
        Ok(Self { id, kind, created, object })
    }

    pub fn is_handled(&self) -> bool {
        HANDLED.contains(&self.kind.as_str())
    }

    fn text(&self, path: &[&str]) -> Option<&str> {
        let mut v = &self.object;
        for key in path {
            v = v.get(key)?;
        }
        // An expanded object names itself by its id.
        v.as_str().or_else(|| v.get("id").and_then(Value::as_str)).filter(|s| !s.is_empty())
    }

    /// The subscription the event is about.
    pub fn subscription_id(&self) -> Option<&str> {
        match self.kind.as_str() {
            k if k.starts_with("customer.subscription.") => self.text(&["id"]),
            "checkout.session.completed" => self.text(&["subscription"]),
            // Invoices name their subscription at the top (older API versions) or under
            // parent.subscription_details (newer ones).
            k if k.starts_with("invoice.") => self
                .text(&["subscription"])
                .or_else(|| self.text(&["parent", "subscription_details", "subscription"])),
            _ => None,
        }
    }

    /// The Stripe customer the event is about.
    pub fn customer_id(&self) -> Option<&str> {
        self.text(&["customer"])
    }

    /// The merchant kefu named when it created the Checkout Session or subscription.
    pub fn tenant_id(&self) -> Option<i64> {
        let from = |s: Option<&str>| s.and_then(|s| s.parse::<i64>().ok());
        from(self.text(&["client_reference_id"]))
            .or_else(|| from(self.text(&["metadata", "tenant_id"])))
            .or_else(|| from(self.text(&["subscription_details", "metadata", "tenant_id"])))
            .or_else(|| {
                from(self.text(&["parent", "subscription_details", "metadata", "tenant_id"]))
            })
    }

    /// The invoice an `invoice.*` event carries, as the billing page lists it.
    pub fn invoice(&self) -> Option<Invoice> {
        if !self.kind.starts_with("invoice.") {
            return None;
        }
        let o = &self.object;
        let int = |key: &str| o.get(key).and_then(Value::as_i64);
        let text = |key: &str| o.get(key).and_then(Value::as_str).map(str::to_owned);
        Some(Invoice {
            id: text("id").filter(|id| id.starts_with("in_"))?,
            number: text("number"),
            status: text("status").unwrap_or_default(),
            amount_due: int("amount_due").unwrap_or(0),
            amount_paid: int("amount_paid").unwrap_or(0),
            currency: text("currency").unwrap_or_default(),
            hosted_invoice_url: text("hosted_invoice_url")
                .filter(|u| u.starts_with("https://") || u.starts_with("http://")),
            created: int("created").unwrap_or(self.created),
            period_start: int("period_start"),
            period_end: int("period_end"),
        })
    }
}

/// An invoice as kefu keeps it for the billing page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invoice {
    pub id: String,
    pub number: Option<String>,
    pub status: String,
    pub amount_due: i64,
    pub amount_paid: i64,
    pub currency: String,
    pub hosted_invoice_url: Option<String>,
    pub created: i64,
    pub period_start: Option<i64>,
    pub period_end: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: &str, object: Value) -> Event {
        let payload = json!({ "id": "evt_1", "object": "event", "type": kind, "created": 1_800_000_000, "data": { "object": object } });
        Event::parse(payload.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn what_events_are_about() {
        let e = event(
            "checkout.session.completed",
            json!({ "id": "cs_1", "object": "checkout.session", "customer": "cus_1", "subscription": "sub_1", "client_reference_id": "42" }),
        );
        assert_eq!(
            (e.subscription_id(), e.customer_id(), e.tenant_id()),
            (Some("sub_1"), Some("cus_1"), Some(42))
        );
        let e = event(
            "customer.subscription.updated",
            json!({ "id": "sub_1", "object": "subscription", "customer": { "id": "cus_1" }, "metadata": { "tenant_id": "42" } }),
        );
        assert_eq!(
            (e.subscription_id(), e.customer_id(), e.tenant_id()),
            (Some("sub_1"), Some("cus_1"), Some(42))
        );
        let e = event(
            "invoice.paid",
            json!({ "id": "in_1", "object": "invoice", "customer": "cus_1", "status": "paid", "amount_paid": 4900, "currency": "usd",
                    "parent": { "subscription_details": { "subscription": "sub_1", "metadata": { "tenant_id": "42" } } } }),
        );
        assert_eq!((e.subscription_id(), e.tenant_id()), (Some("sub_1"), Some(42)));
        let invoice = e.invoice().unwrap();
        assert_eq!((invoice.amount_paid, invoice.status.as_str()), (4900, "paid"));
        assert!(e.is_handled());
        assert!(!event("charge.refunded", json!({ "id": "ch_1" })).is_handled());
    }

    #[test]
    fn what_is_not_an_event() {
        for bad in [
            "not json",
            r#"{"id":"evt_1","type":"x","created":1,"data":{"object":{}}}"#,
            r#"{"id":"x","object":"event","type":"x","created":1,"data":{"object":{}}}"#,
            r#"{"id":"evt_1","object":"event","created":1,"data":{"object":{}}}"#,
            r#"{"id":"evt_1","object":"event","type":"x","data":{"object":{}}}"#,
            r#"{"id":"evt_1","object":"event","type":"x","created":1,"data":{"object":3}}"#,
        ] {
            assert!(Event::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
