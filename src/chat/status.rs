//! Conversation statuses. A conversation is `queued` (nobody has it yet) or `open` while it
//! is worked on, `pending` while the team waits on the visitor, `snoozed` until a time (or
//! until the visitor's next message), and `closed` — shown as resolved — when it is done.
//!
//! What moves it:
//! - agents, with `POST /api/v1/conversations/{id}/status {status, snoozed_until?}`
//!   (`open`, `pending`, `snoozed`, `resolved`; `/close` is `resolved`);
//! - the visitor's next message: a pending or snoozed conversation is open again (the
//!   message store does it in the statement that stores the message, see
//!   `tenants/functions/store_messages.sql`), and one resolved less than the merchant's `reopen_hours` ago is reopened
//!   (`Chat::conversation_for_visitor`) instead of a new one starting;
//! - the worker ([`spawn_worker`]): snoozes that end, and conversations idle for the
//!   merchant's `auto_resolve_minutes`, which it resolves. It reads `public.conversation_timers`
//!   (one row per merchant with something due) rather than every tenant schema.
//!
//! Every change is pushed live (a `conversation` frame: `status`, `closed` or `reopened`) and
//! written into the conversation as an `activity` line, which agents see and visitors never.
//! Open, queued and the agent's load: only `open` conversations count towards an agent's
//! `max_concurrent_chats`; pending and snoozed ones wait without taking a place.

use std::{sync::Arc, time::Duration};

use axum::{
    Json,
    extract::{FromRef, State},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use serde::Deserialize;
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use tenants::{Registry, TenantId, TenantTx};

use super::{Chat, server_msg_id, store};
use crate::realtime::protocol::ConversationStatus::{self, Closed, Open, Pending, Queued, Snoozed};
use crate::realtime::writer::NewMessage;
use crate::{
    auth::ctx::{ApiToken, Ctx, Door, Write},
    http::{
        AppError, Routes, Scope,
        extract::{ApiJson, PathId},
    },
    ids::ConversationId,
    merchant::settings::MerchantSettings,
};

/// The OpenAPI description of these routes' API part (http::openapi).
#[derive(utoipa::OpenApi)]
#[openapi(paths(set_status, close))]
pub(crate) struct Doc;

pub fn routes<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Door>: FromRef<S>,
    Arc<Chat>: FromRef<S>,
{
    Routes::new()
        .post("/api/v1/conversations/{id}/status", Scope::Tenant, set_status)
        .api()
        .post("/api/v1/conversations/{id}/close", Scope::Tenant, close)
        .api()
}

/// The furthest a snooze may reach.
const MAX_SNOOZE_DAYS: i64 = 365;

/// Where an agent (or the system) sends a conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Open,
    Pending,
    /// Until the time given, or the visitor's next message.
    Snoozed(Option<DateTime<Utc>>),
    Resolved,
}

/// Who changed the status, as the activity line tells it.
#[derive(Clone, Debug)]
pub enum Actor {
    Agent {
        id: i64,
        name: String,
    },
    Visitor,
    /// The worker: a snooze ended, or the conversation was idle too long.
    Auto,
}

/// A status change that happened.
#[derive(Clone, Debug)]
pub struct Changed {
    pub row: store::ConversationRow,
    pub from: ConversationStatus,
}

#[derive(Deserialize, utoipa::ToSchema)]
struct StatusRequest {
    status: String,
    #[serde(default)]
    snoozed_until: Option<DateTime<Utc>>,
}

/// `POST /api/v1/conversations/{id}/status {status, snoozed_until?}` → 200 the conversation
/// (unchanged when it already had that status).
#[utoipa::path(post, path = "/api/v1/conversations/{id}/status", tag = "conversations", params(("id" = String, Path, description = "The conversation id")), request_body = StatusRequest, responses((status = 200, body = crate::realtime::protocol::ConversationOut), (status = "default", description = "An error: `{\"error\": {code, message, fields?}}` (docs/api.md)", body = crate::http::openapi::ErrorBody)))]
async fn set_status(
    State(chat): State<Arc<Chat>>,
    ctx: Ctx<ApiToken<Write>>,
    PathId(id): PathId<ConversationId>,
    ApiJson(req): ApiJson<StatusRequest>,
) -> Result<Response, AppError> {
    let target = match req.status.as_str() {
        "open" => Target::Open,
        "pending" => Target::Pending,
        "snoozed" => Target::Snoozed(req.snoozed_until),
        "resolved" | "closed" => Target::Resolved,
        _ => {
            return Err(AppError::field(
                "status",
                "status is one of open, pending, snoozed, resolved",
            ));
        }
    };
    if req.snoozed_until.is_some() && !matches!(target, Target::Snoozed(_)) {
        return Err(AppError::field(
            "snoozed_until",
            "only a snoozed conversation has a wake-up time",
        ));
    }
    if let Target::Snoozed(Some(until)) = target {
        let now = Utc::now();
        if until <= now {
            return Err(AppError::field("snoozed_until", "a time in the future"));
        }
        if until > now + chrono::Duration::days(MAX_SNOOZE_DAYS) {
            return Err(AppError::field("snoozed_until", "at most a year from now"));
        }
    }
    change_as_agent(&chat, ctx, id, target).await
}

/// `POST /api/v1/conversations/{id}/close` → 200 the conversation, resolved.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/close", tag = "conversations", params(("id" = String, Path, description = "The conversation id")), responses((status = 200, body = crate::realtime::protocol::ConversationOut), (status = "default", description = "An error: `{\"error\": {code, message, fields?}}` (docs/api.md)", body = crate::http::openapi::ErrorBody)))]
async fn close(
    State(chat): State<Arc<Chat>>,
    ctx: Ctx<ApiToken<Write>>,
    PathId(id): PathId<ConversationId>,
) -> Result<Response, AppError> {
    change_as_agent(&chat, ctx, id, Target::Resolved).await
}

async fn change_as_agent(
    chat: &Chat,
    Ctx { session, mut tx, .. }: Ctx<ApiToken<Write>>,
    id: ConversationId,
    target: Target,
) -> Result<Response, AppError> {
    let tenant = session.tenant.id;
    let changed = change(&mut tx, tenant, id.0, target, Some(session.agent.id.0)).await?;
    let row = match &changed {
        Some(c) => c.row.clone(),
        None => store::conversation(&mut tx, id).await?.ok_or(AppError::NotFound)?,
    };
    tx.commit().await?;
    if let Some(changed) = changed {
        let actor =
            Actor::Agent { id: session.agent.id.0, name: session.agent.display_name.clone() };
        chat.status_changed(tenant, &changed, &actor).await;
    }
    Ok(Json(row.out()).into_response())
}

/// Moves conversation `id` to `target` (inside the caller's transaction). `None` when it
/// already was there; 404 when there is no such conversation; 409 to make a resolved one
/// pending or snoozed (it is reopened first).
pub async fn change(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: i64,
    target: Target,
    by_agent: Option<i64>,
) -> Result<Option<Changed>, AppError> {
    let (from, snoozed_until) =
        store::status::lock(&mut *conn, id).await?.ok_or(AppError::NotFound)?;
    let closed = from == Closed;
    let to = match target {
        Target::Open if matches!(from, Queued | Open) => return Ok(None),
        Target::Open => store::status::Move::Reopen,
        Target::Pending | Target::Snoozed(_) if closed => {
            return Err(AppError::conflict(
                "conversation_closed",
                None,
                "the conversation is resolved; reopen it first",
            ));
        }
        Target::Pending if from == Pending => return Ok(None),
        Target::Pending => store::status::Move::Pending,
        Target::Snoozed(until) if from == Snoozed && snoozed_until == until => return Ok(None),
        Target::Snoozed(until) => store::status::Move::Snooze(until),
        Target::Resolved if closed => return Ok(None),
        Target::Resolved => store::status::Move::Resolve { by_agent },
    };
    store::status::set(&mut *conn, id, to).await?;
    if let Target::Snoozed(Some(until)) = target {
        schedule(conn, tenant, until).await?;
    }
    let row = store::conversation(conn, ConversationId(id)).await?.ok_or(AppError::NotFound)?;
    Ok(Some(Changed { row, from }))
}

/// Makes sure the worker looks at `tenant` by `at` (an earlier time already set stays).
pub async fn schedule(
    conn: &mut PgConnection,
    tenant: TenantId,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    store::timers::schedule(conn, tenant, at).await
}

impl Chat {
    /// Announces a status change to the team (and, for resolving and reopening, to the
    /// visitor) and writes its activity line. Failures are logged: the change is stored.
    pub async fn status_changed(&self, tenant: TenantId, changed: &Changed, actor: &Actor) {
        let row = &changed.row;
        let event = match (changed.from, row.status) {
            (_, Closed) => "closed",
            (Closed, _) => "reopened",
            _ => "status",
        };
        self.announce(tenant, event, row);
        let (by, agent_id, who) = match actor {
            Actor::Agent { id, name } => ("agent", Some(*id), name.as_str()),
            Actor::Visitor => ("visitor", None, "The visitor"),
            Actor::Auto => ("auto", None, "kefu"),
        };
        let body = match (row.status, actor) {
            (Closed, Actor::Auto) => "Resolved automatically after a quiet while".to_owned(),
            (Closed, _) => format!("{who} resolved the conversation"),
            (Pending, _) => format!("{who} marked the conversation pending"),
            (Snoozed, _) => match row.snoozed_until {
                Some(until) => {
                    format!("{who} snoozed the conversation until {}", until.to_rfc3339())
                }
                None => format!("{who} snoozed the conversation until the visitor writes"),
            },
            (_, Actor::Auto) => "The snooze ended".to_owned(),
            (_, Actor::Visitor) => "Reopened by the visitor's message".to_owned(),
            _ => format!("{who} reopened the conversation"),
        };
        let line = NewMessage {
            conversation_id: row.id,
            sender_kind: "system",
            sender_agent_id: agent_id,
            kind: "activity",
            body,
            payload: Some(json!({
                "activity": "status",
                "status": row.status,
                "from": changed.from,
                "by": by,
                "snoozed_until": row.snoozed_until,
            })),
            client_msg_id: server_msg_id("status"),
            visitor_id: row.visitor_id,
            sender_name: match actor {
                Actor::Agent { name, .. } => Some(name.clone()),
                _ => None,
            },
            sender_avatar: None,
            origin: None,
        };
        if let Err(e) = self.post(tenant, line).await {
            tracing::warn!(tenant = tenant.0, conversation = row.id, error = %e, "writing a status line failed");
        }
        tracing::info!(tenant = tenant.0, conversation = row.id, from = %changed.from, to = %row.status, by, "conversation status");
    }

    /// After a visitor's message woke its pending or snoozed conversation (the message
    /// store did it): tells the team.
    pub async fn woken_by_visitor(
        &self,
        tenant: TenantId,
        conversation_id: i64,
        from: ConversationStatus,
    ) {
        let row = match TenantTx::begin(&self.pool, tenant).await {
            Ok(mut tx) => {
                let row = store::conversation(&mut tx, ConversationId(conversation_id)).await;
                let _ = tx.commit().await;
                row
            }
            Err(e) => Err(e),
        };
        match row {
            Ok(Some(row)) => {
                let changed = Changed { row, from };
                self.status_changed(tenant, &changed, &Actor::Visitor).await;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(tenant = tenant.0, conversation = conversation_id, error = %e, "announcing a reopened conversation failed")
            }
        }
    }
}

/// Runs due conversation timers every 30 seconds.
pub fn spawn_worker(state: &impl TimerState) -> tokio::task::JoinHandle<()> {
    let timers = state.timers();
    crate::background::every(
        "conversation timers",
        Duration::from_secs(30),
        timers.chat.hub.shutdown_token(),
        None,
        move || {
            let timers = timers.clone();
            async move { run_due_with(&timers, Utc::now()).await }
        },
    )
}

/// A state the timers' worker can run from: one that gives the pool, the tenant registry
/// and the chat engine.
pub trait TimerState {
    fn timers(&self) -> Timers;
}

impl<S> TimerState for S
where
    PgPool: FromRef<S>,
    Arc<Registry>: FromRef<S>,
    Arc<Chat>: FromRef<S>,
{
    fn timers(&self) -> Timers {
        Timers {
            db: PgPool::from_ref(self),
            tenants: Arc::<Registry>::from_ref(self),
            chat: Arc::<Chat>::from_ref(self),
        }
    }
}

/// What the timers' worker works with.
#[derive(Clone)]
pub struct Timers {
    db: PgPool,
    tenants: Arc<Registry>,
    chat: Arc<Chat>,
}

/// Merchants handled at once.
const PARALLEL: usize = 4;

/// Ends the snoozes due at `now` and resolves the conversations idle for their merchant's
/// `auto_resolve_minutes`. Returns how many conversations changed.
pub async fn run_due(state: &impl TimerState, now: DateTime<Utc>) -> anyhow::Result<usize> {
    run_due_with(&state.timers(), now).await
}

async fn run_due_with(state: &Timers, now: DateTime<Utc>) -> anyhow::Result<usize> {
    let due = store::timers::due(&state.db, now).await?;
    let results: Vec<anyhow::Result<usize>> = futures::stream::iter(due)
        .map(|tenant| tenant_timers(state, tenant, now))
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    let mut changed = 0;
    for r in results {
        match r {
            Ok(n) => changed += n,
            Err(e) => {
                tracing::warn!(error = %e, "a merchant's conversation timers failed; retrying next round")
            }
        }
    }
    Ok(changed)
}

/// One merchant's due timers. The timer row is held (`for update skip locked`) throughout,
/// so nodes share merchants and one merchant is handled by one node at a time.
async fn tenant_timers(
    state: &Timers,
    tenant: TenantId,
    now: DateTime<Utc>,
) -> anyhow::Result<usize> {
    let mut claim = state.db.begin().await?;
    if !store::timers::claim(&mut claim, tenant, now).await? {
        return Ok(0);
    }
    if state.tenants.by_id(tenant).await?.is_none() {
        store::timers::set(&mut claim, tenant, None).await?;
        claim.commit().await?;
        return Ok(0);
    }
    let mut tx = TenantTx::begin(&state.db, tenant).await?;
    let minutes = i32::try_from(MerchantSettings::load(&mut tx).await?.auto_resolve_minutes)?;
    let woken = store::status::wake_snoozed(&mut tx, now).await?;
    let resolved = if minutes > 0 {
        store::status::resolve_idle(&mut tx, now, minutes).await?
    } else {
        Vec::new()
    };
    let next = store::status::next_due(&mut tx, now, minutes).await?;
    let mut changed = Vec::with_capacity(woken.len() + resolved.len());
    let woken = woken.into_iter().map(|id| (id, Snoozed));
    for (id, from) in woken.chain(resolved) {
        if let Some(row) = store::conversation(&mut tx, ConversationId(id)).await? {
            changed.push(Changed { row, from });
        }
    }
    tx.commit().await?;
    store::timers::set(&mut claim, tenant, next).await?;
    claim.commit().await?;
    for c in &changed {
        state.chat.status_changed(tenant, c, &Actor::Auto).await;
    }
    Ok(changed.len())
}
