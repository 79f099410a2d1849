//! The agent REST API for conversations and visitors. Every route is tenant-scoped (the
//! session's tenant) and covered by the isolation suite.

use std::sync::Arc;

use axum::{
    Json,
    extract::{FromRef, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    Chat, server_msg_id,
    store::{
        self,
        lists::{self, ConversationItem, Statuses, View},
    },
};
use crate::realtime::{
    hub::encode,
    protocol::{MessageOut, ServerFrame},
    writer::NewMessage,
};
use crate::{
    auth::ctx::{ApiToken, Ctx, Door, Read, Write},
    http::{
        AppError, Routes, Scope,
        extract::{ApiJson, ApiQuery, PathId},
        input::time_bound,
    },
    ids::{AgentId, ConversationId},
};

/// The OpenAPI description of these routes (http::openapi gathers the modules').
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list_conversations,
    get_conversation,
    list_messages,
    post_message,
    claim,
    transfer,
    mark_read
))]
pub(crate) struct Doc;

pub fn routes<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Door>: FromRef<S>,
    Arc<Chat>: FromRef<S>,
    super::Sockets: FromRef<S>,
    Arc<billing::Catalog>: FromRef<S>,
{
    Routes::new()
        .get("/api/v1/conversations", Scope::Tenant, list_conversations)
        .api()
        .get("/api/v1/conversations/{id}", Scope::Tenant, get_conversation)
        .api()
        .get("/api/v1/conversations/{id}/messages", Scope::Tenant, list_messages)
        .api()
        .post("/api/v1/conversations/{id}/messages", Scope::Tenant, post_message)
        .api()
        .post("/api/v1/conversations/{id}/claim", Scope::Tenant, claim)
        .api()
        .post("/api/v1/conversations/{id}/transfer", Scope::Tenant, transfer)
        .api()
        .post("/api/v1/conversations/{id}/read", Scope::Tenant, mark_read)
        .api()
        .writable_when_read_only()
}

fn page_size(limit: Option<i64>) -> i64 {
    limit.unwrap_or(50).clamp(1, 200)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// `mine` (default), `unassigned`, `all`.
    #[serde(default)]
    view: Option<String>,
    /// `active` (default: anything not resolved), `open` (queued or open), `pending`,
    /// `snoozed`, `resolved` (or `closed`), `any`.
    #[serde(default)]
    status: Option<String>,
    /// Only conversations assigned to this agent (an agent id; replaces `view`).
    #[serde(default)]
    assignee: Option<i64>,
    /// Only this visitor's conversations (`v…`).
    #[serde(default)]
    visitor: Option<String>,
    /// Only conversations of visitors with this tag.
    #[serde(default)]
    tag: Option<String>,
    /// Only conversations the visitor rated with this score (1–5).
    #[serde(default)]
    rating: Option<i16>,
    /// Started at or after this time (RFC 3339, or a date: from its start, UTC).
    #[serde(default)]
    from: Option<String>,
    /// Started before this time (RFC 3339, or a date: up to its end, UTC).
    #[serde(default)]
    to: Option<String>,
    /// Only conversations no agent has written in yet.
    #[serde(default)]
    unanswered: Option<bool>,
    /// Only conversations the visitor started while nobody could answer.
    #[serde(default)]
    left_offline: Option<bool>,
    #[serde(default)]
    before: Option<i64>,
    #[serde(default)]
    limit: Option<i64>,
}

impl ListQuery {
    fn narrow(&self) -> Result<lists::Narrow, AppError> {
        let short = |s: &Option<String>, max: usize| {
            s.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| s.chars().take(max).collect::<String>())
        };
        if self.rating.is_some_and(|r| !(1..=5).contains(&r)) {
            return Err(AppError::field("rating", "a score from 1 to 5"));
        }
        Ok(lists::Narrow {
            visitor: short(&self.visitor, 64),
            tag: short(&self.tag, 32),
            rating: self.rating,
            from: time_bound("from", self.from.as_deref(), false)?,
            to: time_bound("to", self.to.as_deref(), true)?,
            unanswered: self.unanswered == Some(true),
            left_offline: self.left_offline == Some(true),
        })
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct ConversationPage {
    conversations: Vec<ConversationItem>,
    /// Pass as `before` for the next page; absent on the last page.
    next_before: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/conversations", tag = "conversations", params(ListQuery), responses((status = 200, body = ConversationPage), (status = "default", description = "An error: `{\"error\": {code, message, fields?}}` (docs/api.md)", body = crate::http::openapi::ErrorBody)))]
async fn list_conversations(
    Ctx { session, mut tx, .. }: Ctx<ApiToken<Read>>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<ConversationPage>, AppError> {
    let view = match q.view.as_deref().unwrap_or("mine") {
        _ if q.assignee.is_some() => View::Mine(q.assignee.unwrap_or_default()),
        "mine" => View::Mine(session.agent.id.0),
        "unassigned" => View::Unassigned,
        "all" => View::All,
        _ => return Err(AppError::field("view", "view is one of mine, unassigned, all")),
    };
    let statuses = match q.status.as_deref().unwrap_or("active") {
        "active" => Statuses::Active,
        "open" => Statuses::Open,
        "pending" => Statuses::Pending,
        "snoozed" => Statuses::Snoozed,
        "resolved" | "closed" => Statuses::Resolved,
        "any" => Statuses::Any,
        _ => {
            return Err(AppError::field(
                "status",
                "status is one of active, open, pending, snoozed, resolved, any",
            ));
        }
    };
    let limit = page_size(q.limit);
    let before = q.before.unwrap_or(i64::MAX);
    let narrow = q.narrow()?;
    let conversations = lists::list(&mut tx, view, statuses, &narrow, before, limit).await?;
    tx.commit().await?;
    let next_before =
        (conversations.len() as i64 == limit).then(|| conversations.last().map(|c| c.id)).flatten();
    Ok(Json(ConversationPage { conversations, next_before }))
}

#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "conversations", params(("id" = String, Path, description = "The conversation id")), responses((status = 200, body = ConversationItem), (status = "default", description = "An error: `{\"error\": {code, message, fields?}}` (docs/api.md)", body = crate::http::openapi::ErrorBody)))]
async fn get_conversation(
    Ctx { mut tx, .. }: Ctx<ApiToken<Read>>,
    PathId(id): PathId<ConversationId>,
) -> Result<Json<ConversationItem>, AppError> {
    let item = lists::item(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(item.ok_or(AppError::NotFound)?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    #[serde(default)]
    before: Option<i64>,
    #[serde(default)]
    limit: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct MessagePage {
    /// Oldest first.
    messages: Vec<MessageOut>,
    next_before: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/conversations/{id}/messages", tag = "conversations", params(("id" = String, Path, description = "The conversation id"), PageQuery), responses((status = 200, body = MessagePage), (status = "default", description = "An error: `{\"error\": {code, message, fields?}}` (docs/api.md)", body = crate::http::openapi::ErrorBody)))]
async fn list_messages(
    Ctx { mut tx, .. }: Ctx<ApiToken<Read>>,
    PathId(id): PathId<ConversationId>,
    Query(q): Query<PageQuery>,
) -> Result<Json<MessagePage>, AppError> {
    let limit = page_size(q.limit);
    store::conversation(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    let mut messages =
        store::conversation_messages(&mut tx, id, q.before.unwrap_or(i64::MAX), limit).await?;
    tx.commit().await?;
    let next_before =
        (messages.len() as i64 == limit).then(|| messages.last().map(|m| m.id)).flatten();
    messages.reverse();
    Ok(Json(MessagePage { messages, next_before }))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct PostMessage {
    /// `text` (default), `product` or `card`.
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    body: String,
    /// For `product`: `{title, price?, img?, url?}`.
    #[serde(default)]
    product: Option<Value>,
    /// For `card`: `{title, text?, image?, fields?: [{label, value}], buttons?: [{label, url}]}`
    /// (at most 10 fields and 3 buttons; links http(s)). `body`, when given, is the
    /// plain-text summary previews and emails show (else the title).
    #[serde(default)]
    #[schema(value_type = Option<crate::realtime::protocol::Card>)]
    card: Option<Value>,
    /// `agent` (default: the caller, or the token's admin) or `bot` (the merchant's system).
    #[serde(default)]
    sender: Option<String>,
    /// Makes retries safe: the same id in the same conversation stores one message.
    #[serde(default)]
    client_msg_id: Option<String>,
}

/// `POST /api/v1/conversations/{id}/messages {kind?, body, product?, card?, sender?, client_msg_id?}`
/// → 201 the stored message (200 with `duplicate` for a retry of one stored before). It
/// reaches the visitor and the team like any other; as `agent` it claims a queued
/// conversation, as in the workspace.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/messages", tag = "conversations", params(("id" = String, Path, description = "The conversation id")), request_body = PostMessage, responses((status = 201, description = "Stored", body = MessageOut), (status = 200, description = "A retry of a message stored before", body = MessageOut), (status = "default", description = "An error: `{\"error\": {code, message, fields?}}` (docs/api.md)", body = crate::http::openapi::ErrorBody)))]
async fn post_message(
    State(sockets): State<super::Sockets>,
    State(plans): State<Arc<billing::Catalog>>,
    Ctx { session, mut tx, .. }: Ctx<ApiToken<Write>>,
    PathId(id): PathId<ConversationId>,
    ApiJson(req): ApiJson<PostMessage>,
) -> Result<Response, AppError> {
    let (as_bot, mut send) = checked_post(req)?;
    sockets.images.sign_payload(&session.tenant.ent_id.to_string(), &mut send.payload);
    let tenant = session.tenant.id;
    let row = store::conversation(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    if row.is_closed() {
        return Err(AppError::conflict("conversation_closed", None, "the conversation is closed"));
    }
    // The bot answers without taking the conversation; an agent claims a queued one.
    let (row, claimed) = if as_bot {
        (row, false)
    } else {
        store::claim_if_queued(&mut tx, row, session.agent.id).await?
    };
    tx.commit().await?;
    let chat = &sockets.chat;
    if claimed {
        chat.announce(tenant, "assigned", &row);
    }
    let message = posted(&session.agent, as_bot, &row, send);
    let stored = chat.post(tenant, message.clone()).await.map_err(write_failed)?;
    if row.left_offline_at.is_some() && !as_bot && !stored.duplicate {
        let answer = super::left::Answer {
            tenant,
            conversation_id: row.id,
            visitor_id: row.visitor_id,
            message_id: stored.id,
            agent_name: session.agent.display_name.clone(),
            body: message.body.clone(),
        };
        super::left::email_if_away(&sockets, answer);
    }
    // An agent (or the merchant's bot) answered: the conversation counts against the month's
    // allowance.
    let limit = plans.get(&session.tenant.plan).and_then(|p| p.conversations_per_month);
    chat.engaged(tenant, id.0, limit).await?;
    let status = if stored.duplicate { StatusCode::OK } else { StatusCode::CREATED };
    let mut body =
        serde_json::to_value(message.out(&stored)).map_err(|e| AppError::Internal(e.into()))?;
    body["duplicate"] = serde_json::json!(stored.duplicate);
    Ok((status, Json(body)).into_response())
}

/// What the writer stores for `send` in `row`, posted by `agent` or, `as_bot`, by the
/// merchant's bot.
fn posted(
    agent: &crate::auth::store::AgentRow,
    as_bot: bool,
    row: &store::ConversationRow,
    send: crate::realtime::protocol::Send,
) -> NewMessage {
    let by_agent = !as_bot;
    NewMessage {
        conversation_id: row.id,
        sender_kind: if as_bot { "bot" } else { "agent" },
        sender_agent_id: by_agent.then_some(agent.id.0),
        kind: send.kind.as_str(),
        body: send.body,
        payload: send.payload,
        client_msg_id: send.client_msg_id,
        visitor_id: row.visitor_id,
        sender_name: by_agent.then(|| agent.display_name.clone()),
        sender_avatar: agent.avatar_url.clone().filter(|_| by_agent),
        origin: None,
    }
}

/// Who posts (`false`: the agent, `true`: the merchant's bot) and the message, held to the
/// socket's own checks (lengths, product links) so both ways in accept the same.
fn checked_post(req: PostMessage) -> Result<(bool, crate::realtime::protocol::Send), AppError> {
    let as_bot = match req.sender.as_deref().unwrap_or("agent") {
        "agent" => false,
        "bot" => true,
        _ => return Err(AppError::field("sender", "sender is agent or bot")),
    };
    let kind = req.kind.as_deref().unwrap_or("text");
    if !matches!(kind, "text" | "product" | "card") {
        return Err(AppError::field("kind", "kind is text, product or card"));
    }
    let frame = serde_json::json!({
        "type": "send",
        "client_msg_id": req.client_msg_id.unwrap_or_else(|| server_msg_id("api")),
        "kind": kind,
        "body": req.body,
        "product": req.product,
        "card": req.card,
    });
    match crate::realtime::protocol::parse(&frame.to_string()) {
        Ok(crate::realtime::protocol::ClientFrame::Send(send)) => Ok((as_bot, send)),
        Ok(_) => Err(AppError::Internal(anyhow::anyhow!("a send frame parsed as another"))),
        Err(e) => {
            Err(AppError::bad_request_status(StatusCode::UNPROCESSABLE_ENTITY, e.code, e.message))
        }
    }
}

fn write_failed(e: crate::realtime::writer::WriteError) -> AppError {
    match e {
        crate::realtime::writer::WriteError::ConversationNotFound => AppError::NotFound,
        crate::realtime::writer::WriteError::ConversationClosed => {
            AppError::conflict("conversation_closed", None, "the conversation is closed")
        }
        other => AppError::Internal(other.into()),
    }
}

/// Takes a queued conversation (or one of a colleague) for the caller.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/claim", tag = "conversations", params(("id" = String, Path, description = "The conversation id")), responses((status = 200, body = crate::realtime::protocol::ConversationOut), (status = "default", description = "An error: `{\"error\": {code, message, fields?}}` (docs/api.md)", body = crate::http::openapi::ErrorBody)))]
async fn claim(
    State(chat): State<Arc<Chat>>,
    ctx: Ctx<ApiToken<Write>>,
    PathId(id): PathId<ConversationId>,
) -> Result<Response, AppError> {
    let me = ctx.session.agent.id;
    reassign(&chat, ctx, id, me, "assigned").await
}

#[derive(Deserialize, utoipa::ToSchema)]
struct TransferRequest {
    agent_id: AgentId,
}

/// Hands a conversation to another agent; the visitor is told, every agent's list updates.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/transfer", tag = "conversations", params(("id" = String, Path, description = "The conversation id")), request_body = TransferRequest, responses((status = 200, body = crate::realtime::protocol::ConversationOut), (status = "default", description = "An error: `{\"error\": {code, message, fields?}}` (docs/api.md)", body = crate::http::openapi::ErrorBody)))]
async fn transfer(
    State(chat): State<Arc<Chat>>,
    ctx: Ctx<ApiToken<Write>>,
    PathId(id): PathId<ConversationId>,
    ApiJson(req): ApiJson<TransferRequest>,
) -> Result<Response, AppError> {
    reassign(&chat, ctx, id, req.agent_id, "transferred").await
}

async fn reassign(
    chat: &Chat,
    Ctx { session, mut tx, .. }: Ctx<ApiToken<Write>>,
    id: ConversationId,
    to: AgentId,
    event: &'static str,
) -> Result<Response, AppError> {
    let tenant = session.tenant.id;
    let row = store::conversation(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    if row.is_closed() {
        return Err(AppError::conflict("conversation_closed", None, "the conversation is closed"));
    }
    let Some(target) = crate::auth::store::active_agent(&mut tx, to).await? else {
        return Err(AppError::field("agent_id", "no active agent with this id"));
    };
    store::assign(&mut tx, id, to).await?;
    let row = store::conversation(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    tx.commit().await?;
    chat.announce(tenant, event, &row);
    if event == "transferred" {
        let notice = NewMessage {
            conversation_id: id.0,
            sender_kind: "system",
            sender_agent_id: None,
            kind: "notice",
            body: format!("{} → {}", session.agent.display_name, target.display_name),
            payload: Some(
                serde_json::json!({ "notice": "transferred", "from_agent_id": session.agent.id, "to_agent_id": to }),
            ),
            client_msg_id: server_msg_id("transfer"),
            visitor_id: row.visitor_id,
            sender_name: None,
            sender_avatar: None,
            origin: None,
        };
        chat.post(tenant, notice).await.map_err(|e| AppError::Internal(e.into()))?;
    }
    Ok(Json(row.out()).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
struct ReadRequest {
    up_to: i64,
}

#[utoipa::path(post, path = "/api/v1/conversations/{id}/read", tag = "conversations", params(("id" = String, Path, description = "The conversation id")), request_body = ReadRequest, responses((status = 204, description = "Marked read"), (status = "default", description = "An error: `{\"error\": {code, message, fields?}}` (docs/api.md)", body = crate::http::openapi::ErrorBody)))]
async fn mark_read(
    State(chat): State<Arc<Chat>>,
    Ctx { session, mut tx, .. }: Ctx<ApiToken<Write>>,
    PathId(id): PathId<ConversationId>,
    ApiJson(req): ApiJson<ReadRequest>,
) -> Result<Response, AppError> {
    let row = store::conversation(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    store::mark_read(&mut tx, id, false, req.up_to.max(0)).await?;
    tx.commit().await?;
    let frame =
        encode(&ServerFrame::Read { conversation_id: id.0, by: "agent", up_to: req.up_to.max(0) });
    chat.hub.to_agents(session.tenant.id, &frame);
    chat.hub.to_visitor(session.tenant.id, row.visitor_id, &frame);
    Ok(StatusCode::NO_CONTENT.into_response())
}
