//! Plans and what they allow. The built-in catalog (trial, Starter, Pro, Business) is the
//! default; the platform's configuration may change any plan's name, price and limits and
//! names the Stripe Price that subscribes to it.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Length of the free trial every new merchant starts with.
pub const TRIAL_DAYS: i64 = 14;

/// The id of the plan every merchant starts on.
pub const TRIAL: &str = "trial";

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Features a plan may include.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Features {
    pub api: bool,
    pub webhooks: bool,
    pub sso: bool,
}

/// One feature a plan may include (what [`Features`] holds, by name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    /// The REST API with API tokens.
    Api,
    /// Outgoing webhooks.
    Webhooks,
    /// Single sign-on from the merchant's own system.
    Sso,
}

impl Feature {
    /// What the feature is called in messages ("… is not part of the Starter plan").
    pub fn name(self) -> &'static str {
        match self {
            Self::Api => "the API",
            Self::Webhooks => "webhooks",
            Self::Sso => "single sign-on",
        }
    }
}

impl Features {
    pub fn has(&self, feature: Feature) -> bool {
        match feature {
            Feature::Api => self.api,
            Feature::Webhooks => self.webhooks,
            Feature::Sso => self.sso,
        }
    }
}

/// What a plan allows. `None` means unlimited.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub id: String,
    pub name: String,
    /// Monthly price in the smallest unit of `currency` (cents); 0 for the trial.
    pub price_cents: u32,
    /// ISO 4217, lower case, as Stripe writes it.
    pub currency: String,
    pub seats: Option<u32>,
    pub conversations_per_month: Option<u32>,
    pub storage_bytes: Option<u64>,
    /// What visitors' uploads may take, apart from the team's `storage_bytes` (by default
    /// half as much again): visitors can never fill the team's storage.
    pub visitor_storage_bytes: Option<u64>,
    pub features: Features,
    /// The Stripe Price (recurring, monthly) that subscribes to this plan; without one the
    /// plan cannot be bought through Stripe (super-admins can still assign it).
    #[serde(skip)]
    pub stripe_price: Option<String>,
}

impl Plan {
    pub fn is_trial(&self) -> bool {
        self.id == TRIAL
    }
}

/// A limit in the configuration: a number, or `"unlimited"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    At(u64),
    Unlimited,
}

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Word(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(Limit::At(n)),
            Raw::Word(w) if w == "unlimited" => Ok(Limit::Unlimited),
            Raw::Word(w) => {
                Err(serde::de::Error::custom(format!("{w:?}: a number or \"unlimited\"")))
            }
        }
    }
}

impl Limit {
    fn count(self) -> Result<Option<u32>, String> {
        match self {
            Limit::Unlimited => Ok(None),
            Limit::At(n) => u32::try_from(n).map(Some).map_err(|_| format!("{n} is too large")),
        }
    }
}

/// Changes the configuration makes to one plan (`[plans.<id>]` in `kefu.toml`). Fields left
/// out keep the built-in value.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanSettings {
    pub name: Option<String>,
    pub price_cents: Option<u32>,
    pub currency: Option<String>,
    pub seats: Option<Limit>,
    pub conversations_per_month: Option<Limit>,
    /// Storage in MiB.
    pub storage_mb: Option<Limit>,
    /// Storage for visitors' uploads in MiB (default: half of `storage_mb`).
    pub visitor_storage_mb: Option<Limit>,
    pub api: Option<bool>,
    pub webhooks: Option<bool>,
    pub sso: Option<bool>,
    pub stripe_price: Option<String>,
}

/// The plans on offer, cheapest first, the trial among them.
#[derive(Clone, Debug)]
pub struct Catalog {
    plans: Vec<Plan>,
}

impl Default for Catalog {
    fn default() -> Self {
        Self::builtin()
    }
}

impl Catalog {
    /// The built-in plans.
    pub fn builtin() -> Self {
        let plan = |id: &str, name: &str, price: u32, seats, conversations, storage, f| Plan {
            id: id.into(),
            name: name.into(),
            price_cents: price,
            currency: "usd".into(),
            seats,
            conversations_per_month: conversations,
            storage_bytes: storage,
            visitor_storage_bytes: storage.map(|s: u64| s / 2),
            features: f,
            stripe_price: None,
        };
        let features = |api, webhooks, sso| Features { api, webhooks, sso };
        Self {
            plans: vec![
                plan(TRIAL, "Trial", 0, Some(3), Some(500), Some(GIB), features(true, true, false)),
                plan(
                    "starter",
                    "Starter",
                    1900,
                    Some(3),
                    Some(1_000),
                    Some(2 * GIB),
                    features(false, false, false),
                ),
                plan(
                    "pro",
                    "Pro",
                    4900,
                    Some(10),
                    Some(10_000),
                    Some(20 * GIB),
                    features(true, true, false),
                ),
                plan(
                    "business",
                    "Business",
                    14900,
                    None,
                    None,
                    Some(200 * GIB),
                    features(true, true, true),
                ),
            ],
        }
    }

    /// The built-in plans with the configuration's changes. A plan id kefu does not know, an
    /// empty name, a currency that is not three letters or a Stripe Price used twice is an
    /// error that names it.
    pub fn with_settings(settings: &BTreeMap<String, PlanSettings>) -> Result<Self, String> {
        let mut catalog = Self::builtin();
        for (id, s) in settings {
            let known = catalog.plans.iter().map(|p| p.id.clone()).collect::<Vec<_>>().join(", ");
            let plan = catalog
                .plans
                .iter_mut()
                .find(|p| &p.id == id)
                .ok_or_else(|| format!("plans.{id}: no such plan (the plans are {known})"))?;
            if let Some(name) = &s.name {
                if name.trim().is_empty() {
                    return Err(format!("plans.{id}.name is empty"));
                }
                plan.name = name.trim().to_owned();
            }
            if let Some(price) = s.price_cents {
                plan.price_cents = price;
            }
            if let Some(currency) = &s.currency {
                let c = currency.trim().to_ascii_lowercase();
                if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_lowercase()) {
                    return Err(format!(
                        "plans.{id}.currency: {currency:?} is not a currency code"
                    ));
                }
                plan.currency = c;
            }
            let limit =
                |l: Limit, key: &str| l.count().map_err(|e| format!("plans.{id}.{key}: {e}"));
            if let Some(l) = s.seats {
                plan.seats = limit(l, "seats")?;
            }
            if let Some(l) = s.conversations_per_month {
                plan.conversations_per_month = limit(l, "conversations_per_month")?;
            }
            let bytes = |l: Limit| match l {
                Limit::Unlimited => None,
                Limit::At(mb) => Some(mb.saturating_mul(MIB)),
            };
            if let Some(l) = s.storage_mb {
                plan.storage_bytes = bytes(l);
                plan.visitor_storage_bytes = plan.storage_bytes.map(|s| s / 2);
            }
            if let Some(l) = s.visitor_storage_mb {
                plan.visitor_storage_bytes = bytes(l);
            }
            if let Some(v) = s.api {
                plan.features.api = v;
            }
            if let Some(v) = s.webhooks {
                plan.features.webhooks = v;
            }
            if let Some(v) = s.sso {
                plan.features.sso = v;
            }
            if let Some(price) = &s.stripe_price {
                if plan.is_trial() {
                    return Err("plans.trial.stripe_price: the trial is not sold".into());
                }
                plan.stripe_price = Some(price.trim().to_owned()).filter(|p| !p.is_empty());
            }
        }
        let prices: Vec<&str> =
            catalog.plans.iter().filter_map(|p| p.stripe_price.as_deref()).collect();
        if let Some(twice) = prices.iter().enumerate().find(|(i, p)| prices[i + 1..].contains(p)) {
            return Err(format!("the Stripe Price {} is given to two plans", twice.1));
        }
        Ok(catalog)
    }

    /// Every plan, cheapest first.
    pub fn all(&self) -> &[Plan] {
        &self.plans
    }

    pub fn get(&self, id: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.id == id)
    }

    /// The plan a merchant starts on.
    pub fn trial(&self) -> &Plan {
        self.get(TRIAL).expect("the trial plan exists")
    }

    /// The plan a Stripe Price subscribes to.
    pub fn by_stripe_price(&self, price: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.stripe_price.as_deref() == Some(price))
    }

    pub fn ids(&self) -> Vec<&str> {
        self.plans.iter().map(|p| p.id.as_str()).collect()
    }
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
        let c = Catalog::builtin();
        for (i, a) in c.all().iter().enumerate() {
            assert!(c.all()[i + 1..].iter().all(|b| b.id != a.id));
        }
        assert_eq!(c.trial().price_cents, 0);
        assert!(c.get("nope").is_none());
    }

    #[test]
    fn trial_lasts_fourteen_days() {
        let now = Utc::now();
        assert_eq!((trial_ends_at(now) - now).num_days(), 14);
    }

    #[test]
    fn configuration_changes_plans() {
        let settings: BTreeMap<String, PlanSettings> = serde_json::from_value(serde_json::json!({
            "starter": { "price_cents": 2900, "seats": 5, "stripe_price": "price_starter" },
            "pro": { "conversations_per_month": "unlimited", "storage_mb": 512, "currency": "CNY" },
        }))
        .unwrap();
        let c = Catalog::with_settings(&settings).unwrap();
        let starter = c.get("starter").unwrap();
        assert_eq!((starter.price_cents, starter.seats), (2900, Some(5)));
        assert_eq!(c.by_stripe_price("price_starter").unwrap().id, "starter");
        let pro = c.get("pro").unwrap();
        assert_eq!(pro.conversations_per_month, None);
        assert_eq!(pro.storage_bytes, Some(512 * MIB));
        assert_eq!(pro.currency, "cny");
        assert_eq!(c.get("business").unwrap(), Catalog::builtin().get("business").unwrap());
    }

    #[test]
    fn bad_configuration_is_named() {
        let bad = |v: serde_json::Value| {
            let s: BTreeMap<String, PlanSettings> = serde_json::from_value(v).unwrap();
            Catalog::with_settings(&s).unwrap_err()
        };
        assert!(bad(serde_json::json!({ "gold": {} })).contains("plans.gold"));
        assert!(bad(serde_json::json!({ "pro": { "currency": "dollars" } })).contains("currency"));
        assert!(bad(serde_json::json!({ "trial": { "stripe_price": "p" } })).contains("not sold"));
        assert!(
            bad(serde_json::json!({ "pro": { "stripe_price": "p" }, "business": { "stripe_price": "p" } }))
                .contains("two plans")
        );
        let word: Result<BTreeMap<String, PlanSettings>, _> =
            serde_json::from_value(serde_json::json!({ "pro": { "seats": "lots" } }));
        assert!(word.is_err());
    }
}
