//! kefu's billing: the plans and what they allow, the subscription lifecycle, and Stripe
//! (the API calls kefu makes and the signatures of the webhooks Stripe sends). This crate
//! knows nothing about HTTP or the database layout; the application stores the state and
//! enforces the limits where they bite.

pub mod event;
pub mod lifecycle;
pub mod plans;
pub mod signature;
pub mod stripe;

pub use lifecycle::{BillingStatus, Clock, ManualClock, PAST_DUE_GRACE_DAYS, SystemClock};
pub use plans::{
    Catalog, Feature, Features, Limit, Plan, PlanSettings, TRIAL, TRIAL_DAYS, trial_ends_at,
};
