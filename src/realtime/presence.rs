//! What this process knows of agents' presence besides their live connections: who left
//! within the grace (a reload reconnects well within it), who did something when, and whom
//! auto-away made away. The chat feature (`chat::presence`) decides what follows from it.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use tenants::TenantId;

/// What this process knows of agents' presence besides their connections.
#[derive(Default)]
pub struct Presence {
    /// When an agent's last connection closed (while within the grace).
    left: Mutex<HashMap<(TenantId, i64), Instant>>,
    /// When each connected agent last did something.
    active: Mutex<HashMap<(TenantId, i64), DateTime<Utc>>>,
    /// Agents this process made away for inactivity.
    auto_away: Mutex<HashSet<(TenantId, i64)>>,
    /// The grace, in milliseconds (set once at start).
    grace_ms: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Presence {
    pub fn set_grace(&self, grace: Duration) {
        let ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
        self.grace_ms.store(ms, Ordering::Relaxed);
    }

    pub fn grace(&self) -> Duration {
        Duration::from_millis(self.grace_ms.load(Ordering::Relaxed))
    }

    pub fn left(&self, tenant: TenantId, agent: i64) {
        lock(&self.left).insert((tenant, agent), Instant::now());
    }

    pub fn came_back(&self, tenant: TenantId, agent: i64) {
        lock(&self.left).remove(&(tenant, agent));
    }

    /// Agents of `tenant` whose last tab closed less than the grace ago.
    pub fn leaving(&self, tenant: TenantId) -> Vec<i64> {
        let grace = self.grace();
        let mut left = lock(&self.left);
        left.retain(|_, at| at.elapsed() < grace);
        left.keys().filter(|(t, _)| *t == tenant).map(|(_, a)| *a).collect()
    }

    pub fn is_leaving(&self, tenant: TenantId, agent: i64) -> bool {
        lock(&self.left).get(&(tenant, agent)).is_some_and(|at| at.elapsed() < self.grace())
    }

    /// Records activity; true when the agent was away for inactivity (and is back now).
    pub fn touch(&self, tenant: TenantId, agent: i64, now: DateTime<Utc>) -> bool {
        lock(&self.active).insert((tenant, agent), now);
        lock(&self.auto_away).remove(&(tenant, agent))
    }

    pub fn forget(&self, tenant: TenantId, agent: i64) {
        lock(&self.active).remove(&(tenant, agent));
    }

    /// Every connected agent's last activity.
    pub fn activity(&self) -> Vec<((TenantId, i64), DateTime<Utc>)> {
        lock(&self.active).iter().map(|(k, v)| (*k, *v)).collect()
    }

    /// Records that auto-away made the agent away.
    pub fn made_away(&self, tenant: TenantId, agent: i64) {
        lock(&self.auto_away).insert((tenant, agent));
    }
}
