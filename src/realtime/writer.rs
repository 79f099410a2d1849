//! Durable message writes with group commit.
//!
//! Messages go to one of a few shard writers (`writer_shards`), picked by tenant id, each a
//! task with a small pool of its own. A writer takes every send that is waiting (up to
//! [`MAX_BATCH`], from any of its tenants) and stores each tenant's with one call of
//! `tenant_<id>.store_messages(…)` (`tenants/functions/store_messages.sql`: the advisory lock
//! and one `INSERT … SELECT FROM unnest(…)`): a lone tenant's call is its own implicit
//! transaction, several tenants' calls share one transaction — one fsync for the whole
//! batch either way. Then it answers each sender with its stored id.
//!
//! Why shards: a PostgreSQL backend keeps, for every tenant schema it has written to, that
//! schema's compiled `store_messages`, its plans and the relations' cache entries — hundreds
//! of KiB each, kept while the connection lives. Through a shared pool every backend ends up
//! holding that for every busy tenant (gigabytes with a thousand busy merchants); pinned to
//! a shard, each tenant's schema is cached by its shard's backends only. And one transaction for many
//! tenants is what keeps the commit rate (fsyncs) low when traffic is spread thin.
//!
//! Ids are cursors (`since=<id>`), so a tenant's messages must become visible in id order.
//! Sequence values are taken at insert, not at commit; two transactions of one tenant could
//! commit out of order and a reader would skip the late one. One writer per tenant (its
//! shard's, which commits batch after batch) serializes this process's writes, and
//! `pg_advisory_xact_lock(tenant)`, taken before any id is drawn, serializes writers of other
//! processes, so a tenant's ids commit in increasing order. A shared transaction takes its
//! tenants' locks in tenant order, as every node does, so two nodes cannot deadlock.
//!
//! Resending a `client_msg_id` returns the original id (`duplicate: true`) and stores
//! nothing: the unique index `(conversation_id, sender_kind, client_msg_id)` decides. Rows
//! the function did not store (a resend, or a closed or missing conversation) are explained
//! by a second query, only when there are some.
//!
//! After the commit the writer answers the senders and pushes the new messages to live
//! connections itself, in id order: pushes then follow commit order exactly, which they
//! would not if each sender pushed its own message after its answer. Then it hands each
//! message to its [`AfterStore`] hook (the webhooks feature emits `message.created`).

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
    protocol::{ConversationStatus, MessageOut, Sender, ServerFrame},
};

/// Most messages written by one statement.
pub const MAX_BATCH: usize = 512;
/// Sends waiting per shard writer before senders wait for room.
const SHARD_CAPACITY: usize = 16 * 1024;

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
    pub woken_from: Option<ConversationStatus>,
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
    tenant: TenantId,
    message: NewMessage,
    reply: oneshot::Sender<Result<Stored, WriteError>>,
    /// When the message was handed to the writer (for the latency metrics).
    handed_in: std::time::Instant,
}

/// The shard writers of this process.
pub struct Writer {
    /// Each shard's queue (emptied at shutdown, which ends the writers).
    queues: Mutex<Vec<mpsc::Sender<Request>>>,
    /// The shards' pools (for the metrics).
    pools: Vec<PgPool>,
    tasks: tokio_util::task::TaskTracker,
}

impl Writer {
    /// Starts one writer per pool of `shards` (a tenant always goes to the same one); with
    /// none, one writer on `pool`.
    pub fn new(
        pool: PgPool,
        shards: Vec<PgPool>,
        hub: Arc<Hub>,
        after_store: Arc<dyn AfterStore>,
    ) -> Self {
        let pools = if shards.is_empty() { vec![pool] } else { shards };
        let tasks = tokio_util::task::TaskTracker::new();
        let queues = pools
            .iter()
            .cloned()
            .map(|pool| {
                let (tx, rx) = mpsc::channel(SHARD_CAPACITY);
                let shard = Shard { pool, hub: hub.clone(), after_store: after_store.clone() };
                tasks.spawn(run_shard(shard, rx));
                tx
            })
            .collect();
        Self { queues: Mutex::new(queues), pools, tasks }
    }

    /// The pools the writers use (the main pool, with `writer_shards = 0`).
    pub fn pools(&self) -> &[PgPool] {
        &self.pools
    }

    /// At shutdown, after the sockets are gone: lets every writer store and answer what it
    /// has queued, then end (up to `grace`), so nothing in flight meets a closed pool.
    pub async fn drain(&self, grace: Duration) {
        self.queues.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait()).await.is_err() {
            tracing::warn!(
                writers = self.tasks.len(),
                "message writers still busy after the shutdown grace period"
            );
        }
    }

    /// Stores `message` durably (committed) and returns its id.
    pub async fn write(&self, tenant: TenantId, message: NewMessage) -> Result<Stored, WriteError> {
        let (reply, answer) = oneshot::channel();
        let request = Request { tenant, message, reply, handed_in: std::time::Instant::now() };
        let queue = {
            let queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
            if queues.is_empty() {
                return Err(WriteError::Closed);
            }
            let shard = usize::try_from(tenant.0.unsigned_abs()).unwrap_or(0) % queues.len();
            queues[shard].clone()
        };
        if queue.send(request).await.is_err() {
            return Err(WriteError::Closed);
        }
        answer.await.unwrap_or(Err(WriteError::Closed))
    }
}

/// What happens to a message after it was stored and pushed to live connections, outside
/// the core (the webhooks feature emits `message.created`). Called on the writer's task in
/// id order: it must only queue work, never wait.
pub trait AfterStore: Send + Sync + 'static {
    fn stored(&self, tenant: TenantId, message: MessageOut);
}

/// No hook (tests of the core, tools).
impl AfterStore for () {
    fn stored(&self, _: TenantId, _: MessageOut) {}
}

/// What a shard writer works with.
struct Shard {
    pool: PgPool,
    hub: Arc<Hub>,
    after_store: Arc<dyn AfterStore>,
}

/// Takes every waiting send (up to [`MAX_BATCH`]), stores them in one transaction, answers
/// the senders and pushes the new messages; again and again. While a batch commits the next
/// one gathers, so the batch grows with the load: one fsync for many sends.
async fn run_shard(shard: Shard, mut rx: mpsc::Receiver<Request>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let oldest =
            batch.iter().map(|r| r.handed_in).min().unwrap_or_else(std::time::Instant::now);
        // By tenant, in tenant order (the order the advisory locks are taken in, the same
        // on every node), each tenant's sends in arrival order.
        let mut groups: std::collections::BTreeMap<TenantId, Vec<Request>> = Default::default();
        for request in batch {
            groups.entry(request.tenant).or_default().push(request);
        }
        let groups: Vec<(TenantId, Vec<Request>)> = groups.into_iter().collect();
        let results = commit_groups(&shard.pool, &groups).await;
        let stored: usize = results.iter().map(Vec::len).sum();
        crate::metrics::batch_committed(stored, groups.len(), oldest);
        for ((tenant, requests), results) in groups.into_iter().zip(results) {
            answer_and_push(&shard, tenant, requests, results);
        }
    }
}

/// Answers each sender of `tenant`, then pushes what was newly stored to the live
/// connections in id order (so pushes follow commit order).
fn answer_and_push(
    shard: &Shard,
    tenant: TenantId,
    requests: Vec<Request>,
    results: Vec<Result<Stored, WriteError>>,
) {
    let mut fresh: Vec<(i64, Option<u64>, MessageOut, std::time::Instant)> = Vec::new();
    for (request, result) in requests.into_iter().zip(results) {
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
        shard.hub.to_agents_except(tenant, origin, &frame);
        // Activity lines (status changes) and private notes are the team's own business:
        // not for the visitor, nor for what follows a stored message (webhooks, automation).
        if crate::realtime::protocol::team_only(message.kind) {
            crate::metrics::message_delivered(message.sender.kind, handed_in);
            continue;
        }
        shard.hub.to_visitor_except(tenant, visitor_id, origin, &frame);
        crate::metrics::message_delivered(message.sender.kind, handed_in);
        shard.after_store.stored(tenant, message);
    }
}

/// Stores each tenant's messages: one statement (its own transaction) for one tenant, one
/// transaction for several. If the shared transaction fails, each tenant is tried on its
/// own, so one tenant's trouble does not fail the others. The results are per group, in
/// the groups' message order.
#[tracing::instrument(name = "chat.store_batch", skip_all, fields(tenants = groups.len()))]
async fn commit_groups(
    pool: &PgPool,
    groups: &[(TenantId, Vec<Request>)],
) -> Vec<Vec<Result<Stored, WriteError>>> {
    let messages: Vec<Vec<&NewMessage>> =
        groups.iter().map(|(_, rs)| rs.iter().map(|r| &r.message).collect()).collect();
    if groups.len() > 1 {
        match store_together(pool, groups, &messages).await {
            Ok(results) => return results,
            Err(e) => tracing::warn!(
                tenants = groups.len(),
                error = %e,
                "storing several tenants' messages together failed; storing them one by one"
            ),
        }
    }
    let mut results = Vec::with_capacity(groups.len());
    for ((tenant, _), messages) in groups.iter().zip(&messages) {
        let unique = dedupe(messages);
        let stored = match sqlx::query_as(store_call(*tenant))
            .bind_all(&unique, *tenant)
            .fetch_all(pool)
            .await
        {
            Ok(rows) => resolve(pool, *tenant, messages, &unique, rows).await,
            Err(e) => Err(e),
        };
        results.push(stored.unwrap_or_else(|e| {
            tracing::error!(tenant = tenant.0, error = %e, batch = messages.len(), "storing messages failed");
            vec![Err(WriteError::Database(e.to_string())); messages.len()]
        }));
    }
    results
}

async fn store_together(
    pool: &PgPool,
    groups: &[(TenantId, Vec<Request>)],
    messages: &[Vec<&NewMessage>],
) -> sqlx::Result<Vec<Vec<Result<Stored, WriteError>>>> {
    let mut tx = pool.begin().await?;
    let mut stored = Vec::with_capacity(groups.len());
    for ((tenant, _), messages) in groups.iter().zip(messages) {
        let unique = dedupe(messages);
        let rows: Vec<StoredRow> = sqlx::query_as(store_call(*tenant))
            .bind_all(&unique, *tenant)
            .fetch_all(&mut *tx)
            .await?;
        stored.push((unique, rows));
    }
    tx.commit().await?;
    let mut results = Vec::with_capacity(groups.len());
    for (((tenant, _), messages), (unique, rows)) in groups.iter().zip(messages).zip(stored) {
        results.push(resolve(pool, *tenant, messages, &unique, rows).await?);
    }
    Ok(results)
}

/// Within one batch the same key may come twice (a quick resend): store it once.
fn dedupe<'a>(messages: &[&'a NewMessage]) -> Vec<&'a NewMessage> {
    let mut keys = HashSet::new();
    messages.iter().filter(|m| keys.insert(key(m))).copied().collect()
}

fn store_call(tenant: TenantId) -> sqlx::AssertSqlSafe<String> {
    tenant_function_call(
        tenant,
        "store_messages",
        "id, conversation_id, sender_kind, client_msg_id, created_at, woken_from",
        8,
    )
}

/// Binds `store_messages`' arguments.
trait BindAll<'q> {
    fn bind_all(self, unique: &[&'q NewMessage], tenant: TenantId) -> Self;
}

impl<'q> BindAll<'q>
    for sqlx::query::QueryAs<'q, sqlx::Postgres, StoredRow, sqlx::postgres::PgArguments>
{
    fn bind_all(self, unique: &[&'q NewMessage], tenant: TenantId) -> Self {
        self.bind(unique.iter().map(|m| m.conversation_id).collect::<Vec<_>>())
            .bind(unique.iter().map(|m| m.sender_kind).collect::<Vec<_>>())
            .bind(unique.iter().map(|m| m.sender_agent_id).collect::<Vec<_>>())
            .bind(unique.iter().map(|m| m.kind).collect::<Vec<_>>())
            .bind(unique.iter().map(|m| m.body.as_str()).collect::<Vec<_>>())
            .bind(
                unique.iter().map(|m| m.payload.as_ref().map(Value::to_string)).collect::<Vec<_>>(),
            )
            .bind(unique.iter().map(|m| m.client_msg_id.as_str()).collect::<Vec<_>>())
            .bind(lock_key(tenant))
    }
}

/// Each of `messages`' result from the rows stored: stored, a duplicate (of an earlier row,
/// or of another message of this batch), or refused by its conversation. Messages to a
/// missing or closed conversation get their own error; the rest of the batch is stored.
async fn resolve(
    pool: &PgPool,
    tenant: TenantId,
    messages: &[&NewMessage],
    unique: &[&NewMessage],
    inserted: Vec<StoredRow>,
) -> sqlx::Result<Vec<Result<Stored, WriteError>>> {
    // A woken conversation is reported once, with its first message of the batch (rows
    // come in id order).
    let mut woken = HashSet::new();
    let mut found: HashMap<(i64, String, String), Result<Stored, WriteError>> = inserted
        .into_iter()
        .map(|r| {
            let woken_from = match r.woken_from.as_deref() {
                Some("pending") => Some(ConversationStatus::Pending),
                Some("snoozed") => Some(ConversationStatus::Snoozed),
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
    status: Option<ConversationStatus>,
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
            let result = match (id, created_at, status) {
                (Some(id), Some(created_at), _) => {
                    Ok(Stored { id, created_at, duplicate: true, woken_from: None })
                }
                (_, _, None) => Err(WriteError::ConversationNotFound),
                (_, _, Some(ConversationStatus::Closed)) => Err(WriteError::ConversationClosed),
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
