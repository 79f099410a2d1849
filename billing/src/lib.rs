//! Plans and their limits. This crate knows nothing about HTTP or the database layout; the
//! application asks it what a plan allows and enforces the answer where it bites.
//! (Stripe subscriptions arrive in their own change.)

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

/// Length of the free trial every new merchant starts with.
pub const TRIAL_DAYS: i64 = 14;

/// Features a plan may include.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Features {
    pub api: bool,
    pub webhooks: bool,
    pub sso: bool,
}

/// What a plan allows. `None` means unlimited.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub id: &'static str,
    pub name: &'static str,
    /// Monthly price in the smallest currency unit (cents); 0 for the trial.
    pub price_cents: u32,
    pub seats: Option<u32>,
    pub conversations_per_month: Option<u32>,
    pub storage_bytes: Option<u64>,
    pub features: Features,
}

const GIB: u64 = 1 << 30;

/// The built-in plans, cheapest first. Prices and limits become configurable with billing.
pub static PLANS: &[Plan] = &[
    Plan {
        id: "trial",
        name: "Trial",
        price_cents: 0,
        seats: Some(3),
        conversations_per_month: Some(500),
        storage_bytes: Some(GIB),
        features: Features { api: true, webhooks: true, sso: false },
    },
    Plan {
        id: "starter",
        name: "Starter",
        price_cents: 1900,
        seats: Some(3),
        conversations_per_month: Some(1_000),
        storage_bytes: Some(2 * GIB),
        features: Features { api: false, webhooks: false, sso: false },
    },
    Plan {
        id: "pro",
        name: "Pro",
        price_cents: 4900,
        seats: Some(10),
        conversations_per_month: Some(10_000),
        storage_bytes: Some(20 * GIB),
        features: Features { api: true, webhooks: true, sso: false },
    },
    Plan {
        id: "business",
        name: "Business",
        price_cents: 14900,
        seats: None,
        conversations_per_month: None,
        storage_bytes: Some(200 * GIB),
        features: Features { api: true, webhooks: true, sso: true },
    },
];

/// The plan with this id.
pub fn plan(id: &str) -> Option<&'static Plan> {
    PLANS.iter().find(|p| p.id == id)
}

/// The plan a merchant starts on at sign-up.
pub fn trial() -> &'static Plan {
    plan("trial").expect("the trial plan exists")
}

/// When a trial that starts at `now` ends.
pub fn trial_ends_at(now: DateTime<Utc>) -> DateTime<Utc> {
    now + Duration::days(TRIAL_DAYS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_ids_are_unique_and_trial_exists() {
        for (i, a) in PLANS.iter().enumerate() {
            assert!(PLANS[i + 1..].iter().all(|b| b.id != a.id));
        }
        assert_eq!(trial().price_cents, 0);
        assert!(plan("nope").is_none());
    }

    #[test]
    fn trial_lasts_fourteen_days() {
        let now = Utc::now();
        assert_eq!((trial_ends_at(now) - now).num_days(), 14);
    }
}
