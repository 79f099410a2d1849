//! What happens after a visitor's message is stored, off the hot path (the sender already
//! has its ack): the welcome message on a new conversation, keyword auto-replies, and — once
//! per conversation, not once per message — the offline notice when nobody can answer.

use std::sync::Arc;

use tenants::{TenantId, TenantTx};

use super::{
    Chat,
    hub::encode,
    protocol::ServerFrame,
    server_msg_id,
    store::{self, ConversationRow},
    writer::NewMessage,
};
use crate::i18n::Lang;

/// Runs the automation for one visitor message; errors are logged, never surfaced.
pub async fn after_visitor_message(
    chat: Arc<Chat>,
    pool: sqlx::PgPool,
    tenant: TenantId,
    conversation: ConversationRow,
    created: bool,
    text: Option<String>,
    lang: Lang,
) {
    if let Err(e) = run(&chat, &pool, tenant, &conversation, created, text, lang).await {
        tracing::warn!(tenant = tenant.0, conversation = conversation.id, error = %e, "chat automation failed");
    }
}

async fn run(
    chat: &Chat,
    pool: &sqlx::PgPool,
    tenant: TenantId,
    conversation: &ConversationRow,
    created: bool,
    text: Option<String>,
    lang: Lang,
) -> anyhow::Result<()> {
    let mut tx = TenantTx::begin(pool, tenant).await?;
    let welcome = if created { setting_text(&mut tx, "welcome_message").await? } else { None };
    let reply = match &text {
        Some(text) => auto_reply(&mut tx, text).await?,
        None => None,
    };
    tx.commit().await?;

    if let Some(body) = welcome {
        bot(chat, tenant, conversation, "welcome", body).await?;
    }
    if let Some(body) = reply {
        bot(chat, tenant, conversation, "auto", body).await?;
    }
    if conversation.agent_id.is_none() && !chat.team_online(tenant).await? {
        let mut tx = TenantTx::begin(pool, tenant).await?;
        let first = store::claim_offline_notice(&mut tx, conversation.id).await?;
        let custom = if first { setting_text(&mut tx, "offline_message").await? } else { None };
        tx.commit().await?;
        if first {
            let body = custom.unwrap_or_else(|| lang.tr("chat.offline_default").to_owned());
            let message = NewMessage {
                conversation_id: conversation.id,
                sender_kind: "system",
                sender_agent_id: None,
                kind: "notice",
                body: body.clone(),
                payload: Some(serde_json::json!({ "notice": "offline" })),
                client_msg_id: server_msg_id("offline"),
                visitor_id: conversation.visitor_id,
                sender_name: None,
            };
            chat.post(tenant, message).await?;
            let notice = ServerFrame::Notice { code: "offline", message: body };
            chat.hub.to_visitor(tenant, conversation.visitor_id, &encode(&notice));
        }
    }
    Ok(())
}

async fn bot(
    chat: &Chat,
    tenant: TenantId,
    conversation: &ConversationRow,
    what: &str,
    body: String,
) -> anyhow::Result<()> {
    let message = NewMessage {
        conversation_id: conversation.id,
        sender_kind: "bot",
        sender_agent_id: None,
        kind: "text",
        body,
        payload: None,
        client_msg_id: server_msg_id(what),
        visitor_id: conversation.visitor_id,
        sender_name: None,
    };
    chat.post(tenant, message).await?;
    Ok(())
}

/// A non-empty text setting.
async fn setting_text(conn: &mut sqlx::PgConnection, key: &str) -> sqlx::Result<Option<String>> {
    Ok(store::setting(conn, key)
        .await?
        .and_then(|v| v.as_str().map(str::to_owned))
        .filter(|s| !s.trim().is_empty()))
}

/// The reply of the first enabled rule that matches: `exact` (whole message, ignoring case
/// and surrounding space) or `contains` (ignoring case).
async fn auto_reply(conn: &mut sqlx::PgConnection, text: &str) -> sqlx::Result<Option<String>> {
    let rules: Vec<(String, String, String)> = sqlx::query_as(
        "select keyword, match_kind, reply from auto_replies where enabled order by position, id",
    )
    .fetch_all(conn)
    .await?;
    let text = text.trim().to_lowercase();
    Ok(rules.into_iter().find_map(|(keyword, kind, reply)| {
        let keyword = keyword.trim().to_lowercase();
        let hit = !keyword.is_empty()
            && if kind == "exact" { text == keyword } else { text.contains(&keyword) };
        hit.then_some(reply)
    }))
}
