//! What each client frame does: a visitor's or agent's message (through the writer), typing,
//! read marks and an agent's status. Errors become error frames for the sender.

use crate::ids::{AgentId, ConversationId};
use std::sync::Arc;

use tenants::TenantTx;

use super::{Sockets, connection::Connection, store};
use crate::{
    chat::{Opened, automation, left, notes},
    http::AppError,
    realtime::{
        hub::{Peer, encode},
        protocol::{self, ClientFrame, FrameError, MessageKind, ServerFrame},
        socket::Handler,
        writer::{NewMessage, WriteError},
    },
};

/// The connection's state while it reads.
pub(super) struct Ctx<'a> {
    pub(super) state: &'a Sockets,
    pub(super) conn: &'a Connection,
    /// Visitor: the conversation their messages go to.
    /// Boxed: it is held for the socket's whole life, and most sockets are idle.
    pub(super) current: Option<Box<store::ConversationRow>>,
    /// This connection in the hub (its own messages are acked, not echoed to it).
    pub(super) connection_id: u64,
}

impl Handler for Ctx<'_> {
    fn handle(&mut self, text: &str) -> impl Future<Output = Vec<ServerFrame>> + Send {
        handle(self, text)
    }
}

/// Acts on one client frame; returns the frames for the sender.
async fn handle(ctx: &mut Ctx<'_>, text: &str) -> Vec<ServerFrame> {
    let frame = match protocol::parse(text) {
        Ok(frame) => frame,
        Err(e) => return vec![e.into()],
    };
    // What an agent does in a tab ends an automatic away (pings are the client's, not theirs).
    if let Peer::Agent(agent_id) = ctx.conn.peer
        && frame != ClientFrame::Ping
        && let Err(e) = ctx.state.chat.agent_active(ctx.conn.tenant.id, agent_id).await
    {
        tracing::warn!(error = %e, "recording an agent's activity failed");
    }
    let result = match (frame, ctx.conn.peer) {
        (ClientFrame::Ping, _) => Ok(vec![ServerFrame::Pong]),
        (ClientFrame::Active, Peer::Agent(_)) => Ok(vec![]),
        (ClientFrame::Active, Peer::Visitor(_)) => Err(FrameError {
            code: "forbidden",
            message: "visitors have no status".into(),
            client_msg_id: None,
            retry_after: None,
        }),
        (ClientFrame::Send(send), Peer::Visitor(visitor_id)) => {
            visitor_send(ctx, visitor_id, send).await
        }
        (ClientFrame::Send(send), Peer::Agent(agent_id)) => agent_send(ctx, agent_id, send).await,
        (ClientFrame::Typing { conversation_id, preview }, peer) => {
            typing(ctx, peer, conversation_id, preview).await
        }
        (ClientFrame::Read { conversation_id, up_to }, peer) => {
            read(ctx, peer, conversation_id, up_to).await
        }
        (ClientFrame::Status(status), Peer::Agent(agent_id)) => {
            set_status(ctx, agent_id, status).await
        }
        (ClientFrame::Status(_), Peer::Visitor(_)) => Err(FrameError {
            code: "forbidden",
            message: "visitors have no status".into(),
            client_msg_id: None,
            retry_after: None,
        }),
    };
    result.unwrap_or_else(|e| vec![e.into()])
}

fn db_error(e: impl std::fmt::Display, client_msg_id: Option<String>) -> FrameError {
    tracing::error!(error = %e, "chat database operation failed");
    FrameError {
        code: "unavailable",
        message: "the message could not be stored; retry".into(),
        client_msg_id,
        retry_after: None,
    }
}

fn write_error(e: WriteError, client_msg_id: String) -> FrameError {
    let (code, message) = match &e {
        WriteError::ConversationNotFound => {
            ("conversation_not_found", "no such conversation".to_owned())
        }
        WriteError::ConversationClosed => {
            ("conversation_closed", "the conversation is closed".to_owned())
        }
        WriteError::Database(_) | WriteError::Closed => return db_error(e, Some(client_msg_id)),
    };
    FrameError { code, message, client_msg_id: Some(client_msg_id), retry_after: None }
}

impl Ctx<'_> {
    /// A conversation of this connection's tenant, in its own short transaction. Database
    /// failures become `unavailable` error frames naming `client_msg_id`.
    async fn conversation(
        &self,
        id: i64,
        client_msg_id: Option<&str>,
    ) -> Result<Option<store::ConversationRow>, FrameError> {
        let failed = |e: sqlx::Error| db_error(e, client_msg_id.map(str::to_owned));
        let mut tx =
            TenantTx::begin(&self.state.door.db, self.conn.tenant.id).await.map_err(failed)?;
        let row = store::conversation(&mut tx, ConversationId(id)).await.map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        Ok(row)
    }
}

/// Turns the upload id of an image or file message into its payload (name, size, type,
/// URLs) from the tenant's own record. A visitor may only send their own uploads; an image
/// message needs an image.
async fn attach(
    ctx: &Ctx<'_>,
    send: &mut protocol::Send,
    visitor: Option<i64>,
) -> Result<(), FrameError> {
    let Some(id) = send.attachment.take() else { return Ok(()) };
    let tenant = &ctx.conn.tenant;
    let failed = |e: sqlx::Error| db_error(e, Some(send.client_msg_id.clone()));
    let mut tx = TenantTx::begin(&ctx.state.door.db, tenant.id).await.map_err(failed)?;
    let upload = crate::upload::find(&mut tx, &tenant.ent_id, &id).await.map_err(failed)?;
    tx.commit().await.map_err(failed)?;
    let refuse = |message: &str| FrameError {
        code: "bad_attachment",
        message: message.to_owned(),
        client_msg_id: Some(send.client_msg_id.clone()),
        retry_after: None,
    };
    let upload = upload
        .filter(|u| visitor.is_none() || u.visitor_id == visitor)
        .ok_or_else(|| refuse("no such upload"))?;
    if send.kind == MessageKind::Image && upload.kind != "image" {
        return Err(refuse("an image message needs an image upload"));
    }
    send.payload = Some(serde_json::json!({ "attachment": upload }));
    Ok(())
}

async fn visitor_send(
    ctx: &mut Ctx<'_>,
    visitor_id: i64,
    mut send: protocol::Send,
) -> Result<Vec<ServerFrame>, FrameError> {
    // Cards come from the merchant (its agents and its system), never from visitors; notes
    // are the team's.
    if matches!(send.kind, MessageKind::Card | MessageKind::Note) {
        let why = format!("visitors cannot send {}s", send.kind.as_str());
        return Err(refused("bad_kind", why, &send, None));
    }
    attach(ctx, &mut send, Some(visitor_id)).await?;
    ctx.state.images.sign_payload(&ctx.conn.tenant.ent_id.to_string(), &mut send.payload);
    let tenant = ctx.conn.tenant.id;
    let explicit = send.conversation_id;
    let named = named_conversation(ctx, visitor_id, &send).await?;
    // A closed conversation is replaced by a new one once; an explicit one is not.
    for attempt in 0..2 {
        // The cached conversation is used as is: the writer refuses it if it was closed
        // meanwhile, and then a new one is opened (no lookup per message).
        let (conversation, created) = match (&named, ctx.current.as_deref()) {
            (Some(row), _) | (None, Some(row)) => (row.clone(), false),
            (None, None) => open_conversation(ctx, visitor_id, &send).await?,
        };
        let message = stored_as(ctx, conversation.id, visitor_id, send.clone());
        match ctx.state.chat.post(tenant, message).await {
            Ok(stored) => {
                after_visitor_stored(ctx, &conversation, created, &send, &stored).await;
                ctx.current = Some(Box::new(conversation.clone()));
                return Ok(vec![ServerFrame::Ack {
                    client_msg_id: send.client_msg_id,
                    id: stored.id,
                    conversation_id: conversation.id,
                    duplicate: stored.duplicate,
                }]);
            }
            Err(WriteError::ConversationClosed) if explicit.is_none() && attempt == 0 => {
                ctx.current = None;
            }
            Err(e) => return Err(write_error(e, send.client_msg_id)),
        }
    }
    Err(write_error(WriteError::ConversationClosed, send.client_msg_id))
}

/// What the writer stores for this connection's `send` in `conversation_id` (the visitor's
/// conversation with `visitor_id`): sent by the agent or the visitor on the socket. Takes
/// the frame: an agent's text is moved, not copied (a visitor's send may be retried, so it
/// passes a copy).
fn stored_as(
    ctx: &Ctx<'_>,
    conversation_id: i64,
    visitor_id: i64,
    send: protocol::Send,
) -> NewMessage {
    let (sender_kind, sender_agent_id, sender_avatar) = match ctx.conn.peer {
        Peer::Agent(agent_id) => ("agent", Some(agent_id), ctx.conn.avatar.clone()),
        Peer::Visitor(_) => ("visitor", None, None),
    };
    NewMessage {
        conversation_id,
        sender_kind,
        sender_agent_id,
        kind: send.kind.as_str(),
        body: send.body,
        payload: send.payload,
        client_msg_id: send.client_msg_id,
        visitor_id,
        sender_name: Some(ctx.conn.name.clone()),
        sender_avatar,
        origin: Some(ctx.connection_id),
    }
}

/// An error frame answering `send`.
fn refused(
    code: &'static str,
    message: String,
    send: &protocol::Send,
    retry_after: Option<u64>,
) -> FrameError {
    FrameError { code, message, client_msg_id: Some(send.client_msg_id.clone()), retry_after }
}

/// The conversation a visitor's message names, if it names one other than the one this
/// connection already writes to: it must be the visitor's own (looked up once).
async fn named_conversation(
    ctx: &Ctx<'_>,
    visitor_id: i64,
    send: &protocol::Send,
) -> Result<Option<store::ConversationRow>, FrameError> {
    let Some(id) = send.conversation_id else { return Ok(None) };
    if ctx.current.as_ref().is_some_and(|c| c.id == id) {
        return Ok(None);
    }
    let row = ctx.conversation(id, Some(&send.client_msg_id)).await?;
    match row.filter(|r| r.visitor_id == visitor_id) {
        Some(row) => Ok(Some(row)),
        None => Err(write_error(WriteError::ConversationNotFound, send.client_msg_id.clone())),
    }
}

/// The visitor's open conversation, or a new one (`true`) if the month's allowance and the
/// per-address limit leave room.
async fn open_conversation(
    ctx: &Ctx<'_>,
    visitor_id: i64,
    send: &protocol::Send,
) -> Result<(store::ConversationRow, bool), FrameError> {
    let tenant = ctx.conn.tenant.id;
    let limit = allowance(ctx.state, tenant).await;
    let visitor = (visitor_id, ctx.conn.ip);
    let opened = ctx.state.chat.conversation_for_visitor(tenant, visitor, ctx.conn.kefu_id, limit);
    match opened.await {
        Ok(Opened::Existing(row)) => Ok((row, false)),
        Ok(Opened::Created(row)) => Ok((row, true)),
        Ok(Opened::LimitReached) => Err(refused(
            "conversation_limit",
            "no new conversation can start now; leave a message instead".into(),
            send,
            None,
        )),
        Err(AppError::RateLimited { retry_after }) => Err(refused(
            "rate_limited",
            format!("too many new conversations from here; try again in {retry_after} s"),
            send,
            Some(retry_after),
        )),
        Err(e) => Err(db_error(e, Some(send.client_msg_id.clone()))),
    }
}

/// What follows a visitor's stored message: the conversation counts as engaged, a snoozed
/// one wakes, and automation (auto-replies, the unanswered reminder) runs — not for a
/// duplicate.
async fn after_visitor_stored(
    ctx: &Ctx<'_>,
    conversation: &store::ConversationRow,
    created: bool,
    send: &protocol::Send,
    stored: &crate::realtime::writer::Stored,
) {
    let tenant = ctx.conn.tenant.id;
    let chat = &ctx.state.chat;
    if let Some(from) = stored.woken_from {
        let chat = Arc::clone(chat);
        let id = conversation.id;
        tokio::spawn(async move { chat.woken_by_visitor(tenant, id, from).await });
    }
    if !stored.duplicate {
        let monthly_limit = allowance(ctx.state, tenant).await;
        // Writing again is engaging: the conversation now counts against the month's
        // allowance (once; the first message alone does not).
        if !created {
            if let Err(e) = chat.engaged(tenant, conversation.id, monthly_limit).await {
                tracing::warn!(error = %e, "counting an engaged conversation failed");
            }
        }
        let text = (send.kind == MessageKind::Text).then(|| send.body.clone());
        tokio::spawn(automation::after_visitor_message(
            ctx.state.clone(),
            automation::VisitorMessage {
                tenant,
                conversation: conversation.clone(),
                created,
                text,
                id: stored.id,
                lang: ctx.conn.lang,
                monthly_limit,
            },
        ));
    }
}

async fn agent_send(
    ctx: &mut Ctx<'_>,
    agent_id: i64,
    mut send: protocol::Send,
) -> Result<Vec<ServerFrame>, FrameError> {
    // A merchant whose subscription is inactive is read-only (as now, not as at connect).
    let current = ctx.state.door.tenants.by_id(ctx.conn.tenant.id).await.ok().flatten();
    if current.is_some_and(|t| crate::merchant::subscription::read_only(&t)) {
        let why = "this workspace is read-only until its subscription is active again";
        return Err(refused("subscription_inactive", why.into(), &send, None));
    }
    attach(ctx, &mut send, None).await?;
    ctx.state.images.sign_payload(&ctx.conn.tenant.ent_id.to_string(), &mut send.payload);
    let tenant = ctx.conn.tenant.id;
    let chat = &ctx.state.chat;
    let Some(conversation_id) = send.conversation_id else {
        let why = "agents name the conversation they write to";
        return Err(refused("conversation_required", why.into(), &send, None));
    };
    if send.kind == MessageKind::Note {
        return note_send(ctx, agent_id, conversation_id, send).await;
    }
    let row = claimed_for(ctx, agent_id, conversation_id, &send).await?;
    let client_msg_id = send.client_msg_id.clone();
    let message = stored_as(ctx, conversation_id, row.visitor_id, send);
    let body = row.left_offline_at.is_some().then(|| message.body.clone());
    match chat.post(tenant, message).await {
        Ok(stored) => {
            // A lead left while offline: the answer follows the visitor by email.
            if let Some(body) = body.filter(|_| !stored.duplicate) {
                let answer = left::Answer {
                    tenant,
                    conversation_id,
                    visitor_id: row.visitor_id,
                    message_id: stored.id,
                    agent_name: ctx.conn.name.clone(),
                    body,
                };
                left::email_if_away(ctx.state, answer);
            }
            // An agent answered: the conversation counts against the month's allowance.
            let limit = allowance(ctx.state, tenant).await;
            if let Err(e) = chat.engaged(tenant, conversation_id, limit).await {
                tracing::warn!(error = %e, "counting an engaged conversation failed");
            }
            Ok(vec![ServerFrame::Ack {
                client_msg_id,
                id: stored.id,
                conversation_id,
                duplicate: stored.duplicate,
            }])
        }
        Err(e) => Err(write_error(e, client_msg_id)),
    }
}

/// An agent's private note: stored for the team (not an answer: nothing is claimed,
/// counted or e-mailed to the visitor); the colleagues it @mentions are named in it and
/// e-mailed if they are away.
async fn note_send(
    ctx: &mut Ctx<'_>,
    agent_id: i64,
    conversation_id: i64,
    mut send: protocol::Send,
) -> Result<Vec<ServerFrame>, FrameError> {
    let failed = |e: sqlx::Error| db_error(e, Some(send.client_msg_id.clone()));
    let tenant = ctx.conn.tenant.id;
    let mut tx = TenantTx::begin(&ctx.state.door.db, tenant).await.map_err(failed)?;
    let row =
        store::conversation(&mut tx, ConversationId(conversation_id)).await.map_err(failed)?;
    let team = crate::auth::store::list_agents(&mut tx).await.map_err(failed)?;
    tx.commit().await.map_err(failed)?;
    let Some(row) = row else {
        return Err(write_error(WriteError::ConversationNotFound, send.client_msg_id.clone()));
    };
    let mentions = notes::mentioned(&send.body, &team, agent_id);
    if !mentions.is_empty() {
        send.payload = Some(serde_json::json!({ "mentions": mentions }));
    }
    let (client_msg_id, body) = (send.client_msg_id.clone(), send.body.clone());
    let message = stored_as(ctx, conversation_id, row.visitor_id, send);
    let stored = match ctx.state.chat.post(tenant, message).await {
        Ok(stored) => stored,
        Err(e) => return Err(write_error(e, client_msg_id)),
    };
    if !stored.duplicate && !mentions.is_empty() {
        let agents = team.into_iter().filter(|a| mentions.contains(&a.agent.id.0)).collect();
        let mention = notes::Mention {
            tenant,
            conversation_id,
            message_id: stored.id,
            by: ctx.conn.name.clone(),
            body,
            agents,
        };
        notes::email_the_away(ctx.state, &ctx.state.chat.hub, mention);
    }
    Ok(vec![ServerFrame::Ack {
        client_msg_id,
        id: stored.id,
        conversation_id,
        duplicate: stored.duplicate,
    }])
}

/// The conversation an agent writes to; answering a queued one claims it (and every agent
/// is told).
async fn claimed_for(
    ctx: &Ctx<'_>,
    agent_id: i64,
    conversation_id: i64,
    send: &protocol::Send,
) -> Result<store::ConversationRow, FrameError> {
    let failed = |e: sqlx::Error| db_error(e, Some(send.client_msg_id.clone()));
    let tenant = ctx.conn.tenant.id;
    let mut tx = TenantTx::begin(&ctx.state.door.db, tenant).await.map_err(failed)?;
    let conversation = ConversationId(conversation_id);
    let row = store::conversation(&mut tx, conversation).await.map_err(failed)?;
    let Some(row) = row else {
        return Err(write_error(WriteError::ConversationNotFound, send.client_msg_id.clone()));
    };
    let (row, claimed) =
        store::claim_if_queued(&mut tx, row, AgentId(agent_id)).await.map_err(failed)?;
    tx.commit().await.map_err(failed)?;
    if claimed {
        ctx.state.chat.announce(tenant, "assigned", &row);
    }
    Ok(row)
}

/// The merchant's monthly allowance of conversations (its plan's; none: unlimited).
async fn allowance(state: &Sockets, tenant: tenants::TenantId) -> Option<u32> {
    let current = state.door.tenants.by_id(tenant).await.ok().flatten()?;
    state.door.plans.get(&current.plan).and_then(|p| p.conversations_per_month)
}

/// The conversation a typing/read frame refers to, checked against the sender.
async fn target(
    ctx: &mut Ctx<'_>,
    peer: Peer,
    conversation_id: Option<i64>,
) -> Result<Option<store::ConversationRow>, FrameError> {
    let id = match (conversation_id, peer) {
        (Some(id), _) => id,
        (None, Peer::Visitor(_)) => match &ctx.current {
            Some(row) => row.id,
            None => return Ok(None),
        },
        (None, Peer::Agent(_)) => return Ok(None),
    };
    match (ctx.conversation(id, None).await?, peer) {
        (Some(row), Peer::Visitor(v)) if row.visitor_id == v => Ok(Some(row)),
        (Some(row), Peer::Agent(_)) => Ok(Some(row)),
        _ => Err(FrameError {
            code: "conversation_not_found",
            message: "no such conversation".into(),
            client_msg_id: None,
            retry_after: None,
        }),
    }
}

async fn typing(
    ctx: &mut Ctx<'_>,
    peer: Peer,
    conversation_id: Option<i64>,
    preview: Option<String>,
) -> Result<Vec<ServerFrame>, FrameError> {
    let Some(row) = target(ctx, peer, conversation_id).await? else { return Ok(vec![]) };
    let tenant = ctx.conn.tenant.id;
    match peer {
        Peer::Visitor(_) => {
            // What a visitor is typing is shown to agents only where the merchant enabled it.
            let enabled = automation::settings(&ctx.state.chat, &ctx.state.door.db, tenant)
                .await
                .map(|a| a.typing_preview)
                .unwrap_or(false);
            let frame = ServerFrame::Typing {
                conversation_id: row.id,
                from: "visitor",
                agent_id: None,
                preview: preview.filter(|_| enabled),
            };
            ctx.state.chat.hub.to_agents(tenant, &encode(&frame));
        }
        Peer::Agent(agent_id) => {
            let frame = ServerFrame::Typing {
                conversation_id: row.id,
                from: "agent",
                agent_id: Some(agent_id),
                preview: None,
            };
            let frame = encode(&frame);
            ctx.state.chat.hub.to_visitor(tenant, row.visitor_id, &frame);
            ctx.state.chat.hub.to_other_agents(tenant, agent_id, &frame);
        }
    }
    Ok(vec![])
}

async fn read(
    ctx: &mut Ctx<'_>,
    peer: Peer,
    conversation_id: Option<i64>,
    up_to: i64,
) -> Result<Vec<ServerFrame>, FrameError> {
    let Some(row) = target(ctx, peer, conversation_id).await? else { return Ok(vec![]) };
    let tenant = ctx.conn.tenant.id;
    let by_visitor = matches!(peer, Peer::Visitor(_));
    let mut tx =
        TenantTx::begin(&ctx.state.door.db, tenant).await.map_err(|e| db_error(e, None))?;
    store::mark_read(&mut tx, ConversationId(row.id), by_visitor, up_to)
        .await
        .map_err(|e| db_error(e, None))?;
    tx.commit().await.map_err(|e| db_error(e, None))?;
    let frame = encode(&ServerFrame::Read {
        conversation_id: row.id,
        by: if by_visitor { "visitor" } else { "agent" },
        up_to,
    });
    if by_visitor {
        ctx.state.chat.hub.to_agents(tenant, &frame);
    } else {
        ctx.state.chat.hub.to_visitor(tenant, row.visitor_id, &frame);
        ctx.state.chat.hub.to_agents(tenant, &frame);
    }
    Ok(vec![])
}

async fn set_status(
    ctx: &mut Ctx<'_>,
    agent_id: i64,
    status: protocol::AgentStatus,
) -> Result<Vec<ServerFrame>, FrameError> {
    let tenant = ctx.conn.tenant.id;
    let mut tx =
        TenantTx::begin(&ctx.state.door.db, tenant).await.map_err(|e| db_error(e, None))?;
    store::set_agent_status(&mut tx, agent_id, status.as_str())
        .await
        .map_err(|e| db_error(e, None))?;
    tx.commit().await.map_err(|e| db_error(e, None))?;
    ctx.state.chat.remember_status(tenant, agent_id, status).await;
    ctx.state.chat.publish_agent_presence(tenant, agent_id).await.map_err(|e| db_error(e, None))?;
    Ok(vec![])
}
