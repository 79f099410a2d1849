//! The console's front page: how many merchants (by status), who is online right now, and
//! messages and conversations per day — all from `public` (the usage counters), never by
//! scanning tenant schemas.

use axum::{Json, extract::State};
use serde::Serialize;

use super::Platform;
use super::PlatformSession;
use crate::http::AppError;

pub use super::store::{Day, MerchantCounts};

#[derive(Serialize)]
pub struct Dashboard {
    pub merchants: MerchantCounts,
    pub agents_online: usize,
    pub visitors_online: usize,
    pub messages_today: i64,
    pub messages_7d: i64,
    pub conversations_today: i64,
    pub conversations_7d: i64,
    /// The last 14 UTC days, oldest first, zero-filled.
    pub days: Vec<Day>,
    pub revenue: Revenue,
}

/// What the platform earns: monthly recurring revenue from merchants on paid plans whose
/// subscription is active or in its grace period, per currency.
#[derive(Serialize)]
pub struct Revenue {
    /// (currency, cents per month), largest first.
    pub mrr: Vec<(String, i64)>,
    pub paying: i64,
    pub past_due: i64,
    /// Read-only for billing reasons (suspended or canceled).
    pub inactive: i64,
}

impl Revenue {
    /// `$147.00 + ¥99.00`, or `$0.00`.
    pub fn mrr_text(&self) -> String {
        if self.mrr.is_empty() {
            return crate::merchant::subscription::money(0, "usd");
        }
        let parts: Vec<String> = self
            .mrr
            .iter()
            .map(|(currency, cents)| crate::merchant::subscription::money(*cents, currency))
            .collect();
        parts.join(" + ")
    }
}

async fn revenue(state: &Platform) -> Result<Revenue, AppError> {
    let rows = super::store::by_plan_and_billing(&state.door.db).await?;
    let mut mrr: std::collections::BTreeMap<String, i64> = Default::default();
    let (mut paying, mut past_due, mut inactive) = (0, 0, 0);
    for (plan, status, n) in rows {
        let Some(plan) = state.door.plans.get(&plan).filter(|p| !p.is_trial()) else { continue };
        match status.as_str() {
            "active" | "past_due" => {
                *mrr.entry(plan.currency.clone()).or_default() += i64::from(plan.price_cents) * n;
                paying += n;
                if status == "past_due" {
                    past_due += n;
                }
            }
            _ => inactive += n,
        }
    }
    let mut mrr: Vec<(String, i64)> = mrr.into_iter().collect();
    mrr.sort_by_key(|(_, cents)| std::cmp::Reverse(*cents));
    Ok(Revenue { mrr, paying, past_due, inactive })
}

pub async fn load(state: &Platform) -> Result<Dashboard, AppError> {
    let merchants = super::store::merchant_counts(&state.door.db).await?;
    let days = super::store::last_14_days(&state.door.db).await?;
    let last = |n: usize, f: fn(&Day) -> i64| days.iter().rev().take(n).map(f).sum::<i64>();
    let (agents_online, visitors_online) = state.hub.online();
    Ok(Dashboard {
        agents_online,
        visitors_online,
        messages_today: last(1, |d| d.messages),
        messages_7d: last(7, |d| d.messages),
        conversations_today: last(1, |d| d.conversations),
        conversations_7d: last(7, |d| d.conversations),
        merchants,
        days,
        revenue: revenue(state).await?,
    })
}

pub(super) async fn dashboard_api(
    State(state): State<Platform>,
    _admin: PlatformSession,
) -> Result<Json<Dashboard>, AppError> {
    Ok(Json(load(&state).await?))
}
