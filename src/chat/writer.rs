//! Durable message writes with group commit.
//!
//! Each tenant has a lane: a task fed by a channel. A lane takes every send that is waiting
//! (up to [`MAX_BATCH`]) and stores them with one statement, `tenant_<id>.store_messages(…)`
//! (a function from the tenant migrations): the advisory lock and one `INSERT … SELECT FROM
//! unnest(…)` in an implicit transaction, so one round trip and one fsync per batch instead
//! of one each. Then it answers each sender with its stored id.
//!
//! Ids are cursors (`since=<id>`), so a tenant's messages must become visible in id order.
//! Sequence values are taken at insert, not at commit; two transactions of one tenant could
//! commit out of order and a reader would skip the late one. One lane per tenant serializes
//! this process's writes, and `pg_advisory_xact_lock(tenant)`, taken before any id is drawn,
//! serializes writers of other processes, so a tenant's ids commit in increasing order.
//! Lanes of different tenants commit in parallel.
//!
//! Resending a `client_msg_id` returns the original id (`duplicate: true`) and stores
//! nothing: the unique index `(conversation_id, sender_kind, client_msg_id)` decides. Rows
//! the function did not store (a resend, or a closed or missing conversation) are explained
//! by a second query, only when there are some.
//!
//! After the commit the lane answers the senders and pushes the new messages to live
//! connections itself, in id order: pushes then follow commit order exactly, which they
//! would not if each sender pushed its own message after its answer.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;
use tenants::{TenantId, TenantTx, tenant_function_call};
use tokio::sync::{mpsc, oneshot};

use super::{
    hub::{Hub, encode},
    protocol::{MessageOut, Sender, ServerFrame},
};

/// Most messages written by one statement.
pub const MAX_BATCH: usize = 512;
/// Sends waiting per lane before senders wait for room.
const LANE_CAPACITY: usize = 4096;
/// A lane with nothing to do for this long ends (and is recreated on demand).
const LANE_IDLE: Duration = Duration::from_secs(60);

/// A message to store.
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub conversation_id: i64,
    pub sender_kind: &'static str,
    pub sender_agent_id: Option<i64>,
    pub kind: &'static str,
    pub body: String,
    pub payload: Option<Value>,
    /// Every message has one; server-made messages get a generated one.
    pub client_msg_id: String,
    /// The visitor of the conversation (whose connections get the message).
    pub visitor_id: i64,
    /// Shown with the message (the visitor's or agent's display name).
    pub sender_name: Option<String>,
    /// The agent's picture, for agents who have one.
    pub sender_avatar: Option<String>,
    /// The hub connection it came from: that one gets the ack instead of an echo.
    pub origin: Option<u64>,
}

impl NewMessage {
    /// The message as clients see it once stored.
    pub fn out(&self, stored: &Stored) -> MessageOut {
        MessageOut {
            id: stored.id,
            conversation_id: self.conversation_id,
            sender: Sender {
                kind: self.sender_kind,
                agent_id: self.sender_agent_id,
                name: self.sender_name.clone(),
                avatar: self.sender_avatar.clone(),
            },
            kind: self.kind,
            body: self.body.clone(),
            payload: self.payload.clone(),
            client_msg_id: Some(self.client_msg_id.clone()),
            created_at: stored.created_at,
        }
    }
}

/// Where a message ended up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stored {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    /// The `client_msg_id` had been stored before; nothing new was written.
    pub duplicate: bool,
    /// This visitor's message moved its conversation back to open from this status
    /// (`pending` or `snoozed`); the caller announces it.
    pub woken_from: Option<&'static str>,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum WriteError {
    #[error("no such conversation")]
    ConversationNotFound,
    #[error("the conversation is closed")]
    ConversationClosed,
    #[error("the message could not be stored: {0}")]
    Database(String),
    #[error("the message store is shutting down")]
    Closed,
}

struct Request {
    message: NewMessage,
    reply: oneshot::Sender<Result<Stored, WriteError>>,
    /// When the message was handed to the writer (for the latency metrics).
    handed_in: std::time::Instant,
}

/// The lanes of this process.
pub struct Writer {
    pool: PgPool,
    hub: Arc<Hub>,
    webhooks: Arc<crate::webhooks::Webhooks>,
    lanes: Mutex<HashMap<TenantId, mpsc::Sender<Request>>>,
    tasks: tokio_util::task::TaskTracker,
}

impl Writer {
    pub fn new(pool: PgPool, hub: Arc<Hub>, webhooks: Arc<crate::webhooks::Webhooks>) -> Self {
        Self {
            pool,
            hub,
            webhooks,
            lanes: Mutex::default(),
            tasks: tokio_util::task::TaskTracker::new(),
        }
    }

    /// At shutdown, after the sockets are gone: lets every lane store and answer what it
    /// has queued, then end (up to `grace`), so nothing in flight meets a closed pool.
    pub async fn drain(&self, grace: Duration) {
        self.lanes.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait()).await.is_err() {
            tracing::warn!(
                lanes = self.tasks.len(),
                "message lanes still busy after the shutdown grace period"
            );
        }
    }

    /// Stores `message` durably (committed) and returns its id.
    pub async fn write(&self, tenant: TenantId, message: NewMessage) -> Result<Stored, WriteError> {
        let (reply, answer) = oneshot::channel();
        let mut request = Request { message, reply, handed_in: std::time::Instant::now() };
        // A lane may have just ended for idleness; then make a new one and retry once.
        for _ in 0..2 {
            let lane = self.lane(tenant);
            match lane.send(request).await {
                Ok(()) => return answer.await.unwrap_or(Err(WriteError::Closed)),
                Err(mpsc::error::SendError(back)) => {
                    request = back;
                    self.lanes.lock().unwrap_or_else(|p| p.into_inner()).remove(&tenant);
                }
            }
        }
        Err(WriteError::Closed)
    }

    fn lane(&self, tenant: TenantId) -> mpsc::Sender<Request> {
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(lane) = lanes.get(&tenant).filter(|l| !l.is_closed()) {
            return lane.clone();
        }
        let (tx, rx) = mpsc::channel(LANE_CAPACITY);
        let lane = Lane {
            pool: self.pool.clone(),
            hub: self.hub.clone(),
            webhooks: self.webhooks.clone(),
            tenant,
        };
        self.tasks.spawn(run_lane(lane, rx));
        lanes.insert(tenant, tx.clone());
        tx
    }
}

/// What a lane works with.
struct Lane {
    pool: PgPool,
    hub: Arc<Hub>,
    webhooks: Arc<crate::webhooks::Webhooks>,
    tenant: TenantId,
}

async fn run_lane(lane: Lane, mut rx: mpsc::Receiver<Request>) {
    let Lane { pool, hub, webhooks, tenant } = lane;
    loop {
        let first = match tokio::time::timeout(LANE_IDLE, rx.recv()).await {
            Ok(Some(request)) => request,
            Ok(None) | Err(_) => break,
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let messages: Vec<&NewMessage> = batch.iter().map(|r| &r.message).collect();
        let oldest =
            batch.iter().map(|r| r.handed_in).min().unwrap_or_else(std::time::Instant::now);
        let results = match commit_batch(&pool, tenant, &messages).await {
            Ok(results) => {
                crate::metrics::batch_committed(results.len(), oldest);
                results
            }
            Err(e) => {
                tracing::error!(tenant = tenant.0, error = %e, batch = batch.len(), "storing messages failed");
                vec![Err(WriteError::Database(e.to_string())); batch.len()]
            }
        };
        let mut fresh: Vec<(i64, Option<u64>, MessageOut, std::time::Instant)> = Vec::new();
        for (request, result) in batch.into_iter().zip(results) {
            if let Ok(stored) = &result {
                if !stored.duplicate {
                    fresh.push((
                        request.message.visitor_id,
                        request.message.origin,
                        request.message.out(stored),
                        request.handed_in,
                    ));
                }
            }
            let _ = request.reply.send(result);
        }
        fresh.sort_by_key(|(_, _, m, _)| m.id);
        for (visitor_id, origin, message, handed_in) in fresh {
            let frame = encode(&ServerFrame::Message(message.clone()));
            hub.to_agents_except(tenant, origin, &frame);
            // Activity lines (status changes) are the team's own business.
            if message.kind == "activity" {
                crate::metrics::message_delivered(message.sender.kind, handed_in);
                continue;
            }
            hub.to_visitor_except(tenant, visitor_id, origin, &frame);
            crate::metrics::message_delivered(message.sender.kind, handed_in);
            // Only built (and cloned) when the merchant has webhooks.
            webhooks.emit(
                tenant,
                "message.created",
                move || serde_json::json!({ "message": message }),
            );
        }
    }
}

/// Writes `messages` with one statement (its own transaction); the results are in the same
/// order. Messages to a missing or closed conversation get their own error; the rest of
/// the batch is stored.
#[tracing::instrument(name = "chat.store_batch", skip_all, fields(tenant = tenant.0, n = messages.len()))]
async fn commit_batch(
    pool: &PgPool,
    tenant: TenantId,
    messages: &[&NewMessage],
) -> sqlx::Result<Vec<Result<Stored, WriteError>>> {
    // Within one batch the same key may come twice (a quick resend): store it once.
    let mut unique: Vec<&NewMessage> = Vec::with_capacity(messages.len());
    let mut keys = HashSet::new();
    for m in messages {
        if keys.insert(key(m)) {
            unique.push(m);
        }
    }
    let inserted: Vec<StoredRow> = sqlx::query_as(tenant_function_call(
        tenant,
        "store_messages",
        "id, conversation_id, sender_kind, client_msg_id, created_at, woken_from",
        8,
    ))
    .bind(unique.iter().map(|m| m.conversation_id).collect::<Vec<_>>())
    .bind(unique.iter().map(|m| m.sender_kind).collect::<Vec<_>>())
    .bind(unique.iter().map(|m| m.sender_agent_id).collect::<Vec<_>>())
    .bind(unique.iter().map(|m| m.kind).collect::<Vec<_>>())
    .bind(unique.iter().map(|m| m.body.as_str()).collect::<Vec<_>>())
    .bind(unique.iter().map(|m| m.payload.as_ref().map(Value::to_string)).collect::<Vec<_>>())
    .bind(unique.iter().map(|m| m.client_msg_id.as_str()).collect::<Vec<_>>())
    .bind(lock_key(tenant))
    .fetch_all(pool)
    .await?;

    // A woken conversation is reported once, with its first message of the batch (rows
    // come in id order).
    let mut woken = HashSet::new();
    let mut found: HashMap<(i64, String, String), Result<Stored, WriteError>> = inserted
        .into_iter()
        .map(|r| {
            let woken_from = match r.woken_from.as_deref() {
                Some("pending") => Some("pending"),
                Some("snoozed") => Some("snoozed"),
                _ => None,
            }
            .filter(|_| woken.insert(r.conversation_id));
            let stored =
                Stored { id: r.id, created_at: r.created_at, duplicate: false, woken_from };
            ((r.conversation_id, r.sender_kind, r.client_msg_id), Ok(stored))
        })
        .collect();
    // Not stored: a resend of a key stored before, or the conversation is closed or missing.
    // Rare, so a second look only then (after the commit; these rows no longer change).
    let missing: Vec<&NewMessage> =
        unique.iter().filter(|m| !found.contains_key(&owned_key(m))).copied().collect();
    if !missing.is_empty() {
        found.extend(explain_missing(pool, tenant, &missing).await?);
    }

    let mut seen = HashSet::new();
    Ok(messages
        .iter()
        .map(|m| {
            let mut result = found.get(&owned_key(m)).cloned().unwrap_or_else(|| {
                Err(WriteError::Database(format!(
                    "message {} was neither stored nor refused",
                    m.client_msg_id
                )))
            });
            // The second occurrence of a key within this batch is a duplicate of the first.
            if !seen.insert(key(m)) {
                if let Ok(stored) = &mut result {
                    stored.duplicate = true;
                    stored.woken_from = None;
                }
            }
            result
        })
        .collect())
}

/// A row `store_messages` stored.
#[derive(sqlx::FromRow)]
struct StoredRow {
    id: i64,
    conversation_id: i64,
    sender_kind: String,
    client_msg_id: String,
    created_at: DateTime<Utc>,
    /// The status its conversation was woken from, for a visitor's message.
    woken_from: Option<String>,
}

/// A message the store did not take: the row stored before under its key, if any, and its
/// conversation's status (none when there is no such conversation).
#[derive(sqlx::FromRow)]
struct Unstored {
    c: i64,
    s: String,
    m: String,
    id: Option<i64>,
    created_at: Option<DateTime<Utc>>,
    status: Option<String>,
}

/// Why messages were not stored: stored before (a resend), or refused by their
/// conversation's state.
async fn explain_missing(
    pool: &PgPool,
    tenant: TenantId,
    missing: &[&NewMessage],
) -> sqlx::Result<Vec<((i64, String, String), Result<Stored, WriteError>)>> {
    let mut tx = TenantTx::begin(pool, tenant).await?;
    let rows: Vec<Unstored> =
        sqlx::query_as(
            "select k.c, k.s, k.m, old.id, old.created_at, conv.status
             from unnest($1::bigint[], $2::text[], $3::text[]) as k(c, s, m)
             left join messages old
                    on old.conversation_id = k.c and old.sender_kind = k.s and old.client_msg_id = k.m
             left join conversations conv on conv.id = k.c",
        )
        .bind(missing.iter().map(|m| m.conversation_id).collect::<Vec<_>>())
        .bind(missing.iter().map(|m| m.sender_kind).collect::<Vec<_>>())
        .bind(missing.iter().map(|m| m.client_msg_id.as_str()).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(|Unstored { c, s, m, id, created_at, status }| {
            let result = match (id, created_at, status.as_deref()) {
                (Some(id), Some(created_at), _) => {
                    Ok(Stored { id, created_at, duplicate: true, woken_from: None })
                }
                (_, _, None) => Err(WriteError::ConversationNotFound),
                (_, _, Some("closed")) => Err(WriteError::ConversationClosed),
                (_, _, Some(_)) => {
                    Err(WriteError::Database(format!("message {m} was neither stored nor refused")))
                }
            };
            ((c, s, m), result)
        })
        .collect())
}

/// The idempotency key of a message.
fn key(m: &NewMessage) -> (i64, &'static str, &str) {
    (m.conversation_id, m.sender_kind, m.client_msg_id.as_str())
}

fn owned_key(m: &NewMessage) -> (i64, String, String) {
    (m.conversation_id, m.sender_kind.to_owned(), m.client_msg_id.clone())
}

/// The advisory lock that serializes one tenant's message writes across processes.
fn lock_key(tenant: TenantId) -> i64 {
    // Keep clear of small keys other tools might use: a fixed high bit plus the id.
    (1_i64 << 62) | (tenant.0 & ((1_i64 << 62) - 1))
}
