//! The subscription lifecycle of a merchant:
//!
//! ```text
//! trialing ──pays──▶ active ──payment fails──▶ past_due ──grace over──▶ suspended
//!    │                 ▲  ▲                        │                        │
//!    └─trial over─▶ suspended ◀──unpaid/paused──── │ ◀──────── pays again ──┘
//!                      active ◀──── pays ──────────┘        canceled ◀── subscription ends
//! ```
//!
//! Suspended and canceled merchants are read-only: agents can sign in and read history, no
//! new conversation starts, visitors see the "service paused" page. Paying again (a new
//! Checkout, or Stripe reporting the subscription active) reactivates.
//!
//! Everything here is a pure function of what Stripe says and of the time, so the same
//! inputs always give the same state, whatever order webhook events arrive in; time comes
//! from a [`Clock`], so tests drive it.

use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

/// How long a merchant whose payment failed keeps full service.
pub const PAST_DUE_GRACE_DAYS: i64 = 7;

/// Where a merchant stands with its subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BillingStatus {
    /// The free trial (no subscription yet).
    Trialing,
    /// Paid up (through Stripe, or a plan a super-admin assigned).
    Active,
    /// A payment failed; full service until the grace period ends.
    PastDue,
    /// Read-only: the trial or the grace period ended, or Stripe gave up collecting.
    Suspended,
    /// Read-only: the subscription ended.
    Canceled,
}

impl BillingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trialing => "trialing",
            Self::Active => "active",
            Self::PastDue => "past_due",
            Self::Suspended => "suspended",
            Self::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "trialing" => Self::Trialing,
            "active" => Self::Active,
            "past_due" => Self::PastDue,
            "suspended" => Self::Suspended,
            "canceled" => Self::Canceled,
            _ => return None,
        })
    }

    /// Agents may only read; no conversation starts; visitors see the paused page.
    pub fn is_read_only(self) -> bool {
        matches!(self, Self::Suspended | Self::Canceled)
    }
}

/// A merchant's state as Stripe's subscription `status` makes it at `now`, with the time the
/// subscription became past due (kept across events so the grace period is counted from the
/// first failure). `None`: the status says nothing about the merchant (a Checkout not paid
/// yet, an attempt that expired), so the state stays as it is.
pub fn from_subscription(
    stripe_status: &str,
    past_due_since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    grace: Duration,
) -> Option<(BillingStatus, Option<DateTime<Utc>>)> {
    Some(match stripe_status {
        // A Stripe trial on a paid subscription is a merchant who has subscribed.
        "active" | "trialing" => (BillingStatus::Active, None),
        "past_due" => {
            let since = past_due_since.unwrap_or(now);
            let status = if now >= since + grace {
                BillingStatus::Suspended
            } else {
                BillingStatus::PastDue
            };
            (status, Some(since))
        }
        "unpaid" | "paused" => (BillingStatus::Suspended, past_due_since),
        "canceled" => (BillingStatus::Canceled, None),
        _ => return None,
    })
}

/// What the background job does to a merchant at `now`: a trial that is over, or a grace
/// period that is over, suspends it. `None`: nothing is due.
pub fn due(
    status: BillingStatus,
    trial_ends_at: Option<DateTime<Utc>>,
    past_due_since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    grace: Duration,
) -> Option<BillingStatus> {
    match status {
        BillingStatus::Trialing if trial_ends_at.is_some_and(|end| now >= end) => {
            Some(BillingStatus::Suspended)
        }
        BillingStatus::PastDue if past_due_since.is_some_and(|since| now >= since + grace) => {
            Some(BillingStatus::Suspended)
        }
        _ => None,
    }
}

/// Where the time comes from.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
}

/// The real time.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until moved (tests).
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Mutex::new(at))
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }

    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *t += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grace() -> Duration {
        Duration::days(PAST_DUE_GRACE_DAYS)
    }

    #[test]
    fn stripe_statuses() {
        let now = Utc::now();
        let s = |status, since| from_subscription(status, since, now, grace());
        assert_eq!(s("active", None), Some((BillingStatus::Active, None)));
        assert_eq!(s("trialing", None), Some((BillingStatus::Active, None)));
        assert_eq!(
            s("active", Some(now)),
            Some((BillingStatus::Active, None)),
            "paid: grace cleared"
        );
        assert_eq!(s("past_due", None), Some((BillingStatus::PastDue, Some(now))));
        let old = now - Duration::days(8);
        assert_eq!(s("past_due", Some(old)), Some((BillingStatus::Suspended, Some(old))));
        let recent = now - Duration::days(6);
        assert_eq!(s("past_due", Some(recent)), Some((BillingStatus::PastDue, Some(recent))));
        assert_eq!(s("unpaid", None).unwrap().0, BillingStatus::Suspended);
        assert_eq!(s("paused", None).unwrap().0, BillingStatus::Suspended);
        assert_eq!(s("canceled", Some(old)), Some((BillingStatus::Canceled, None)));
        assert_eq!(s("incomplete", None), None);
        assert_eq!(s("incomplete_expired", None), None);
        assert_eq!(s("something_new", None), None);
    }

    #[test]
    fn the_job_ends_trials_and_grace_periods() {
        let now = Utc::now();
        let d = |status, trial, since| due(status, trial, since, now, grace());
        assert_eq!(
            d(BillingStatus::Trialing, Some(now - Duration::seconds(1)), None),
            Some(BillingStatus::Suspended)
        );
        assert_eq!(d(BillingStatus::Trialing, Some(now + Duration::days(1)), None), None);
        assert_eq!(d(BillingStatus::Trialing, None, None), None);
        assert_eq!(
            d(BillingStatus::PastDue, None, Some(now - Duration::days(7))),
            Some(BillingStatus::Suspended)
        );
        assert_eq!(d(BillingStatus::PastDue, None, Some(now - Duration::days(6))), None);
        assert_eq!(
            d(BillingStatus::Active, Some(now - Duration::days(30)), None),
            None,
            "paid merchants keep going"
        );
        assert_eq!(d(BillingStatus::Suspended, Some(now - Duration::days(30)), None), None);
    }

    #[test]
    fn statuses_round_trip() {
        for s in [
            BillingStatus::Trialing,
            BillingStatus::Active,
            BillingStatus::PastDue,
            BillingStatus::Suspended,
            BillingStatus::Canceled,
        ] {
            assert_eq!(BillingStatus::parse(s.as_str()), Some(s));
        }
        assert!(BillingStatus::Suspended.is_read_only() && BillingStatus::Canceled.is_read_only());
        assert!(!BillingStatus::PastDue.is_read_only());
    }

    #[test]
    fn the_manual_clock_moves_only_when_told() {
        let start = Utc::now();
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::days(15));
        assert_eq!(clock.now(), start + Duration::days(15));
    }
}
