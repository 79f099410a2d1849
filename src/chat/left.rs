//! Messages left while nobody is online are leads: the leave-a-message form puts the message
//! into the visitor's conversation (opened for it when they have none), marked as left while
//! offline, queued for the team and listed, searched and answered like any other. An agent's
//! answer reaches a visitor who is no longer connected by email, when they gave an address,
//! with a link back into the same conversation.

use std::net::IpAddr;

use tenants::{TenantId, TenantTx};

use super::{Chat, Opened, Sockets, server_msg_id, store};
use crate::{
    http::AppError,
    ids::ConversationId,
    realtime::{
        hub::Peer,
        writer::{NewMessage, Stored},
    },
};

/// What the visitor wrote in the leave-a-message form.
pub struct LeftMessage {
    pub visitor_id: i64,
    pub ip: IpAddr,
    /// As the visitor's messages show it.
    pub name: String,
    pub body: String,
}

impl Chat {
    /// Stores `left` in the visitor's conversation, opened for it when they have none (the
    /// month's allowance does not turn a lead away; the form's own limits hold), marks it as
    /// left while offline and tells the team.
    pub async fn take_left_message(
        &self,
        tenant: TenantId,
        left: LeftMessage,
    ) -> Result<(store::ConversationRow, Stored), AppError> {
        let opened =
            self.conversation_for_visitor(tenant, (left.visitor_id, Some(left.ip)), None, None);
        let row = match opened.await? {
            Opened::Existing(row) | Opened::Created(row) => row,
            Opened::LimitReached => {
                return Err(AppError::Internal(anyhow::anyhow!("no limit was given")));
            }
        };
        let mut tx = TenantTx::begin(&self.pool, tenant).await?;
        let row = store::mark_left_offline(&mut tx, ConversationId(row.id))
            .await?
            .ok_or(AppError::NotFound)?;
        tx.commit().await?;
        // Its offline notice is this form: no other one follows.
        self.offline_noticed.insert((tenant, row.id), ());
        self.announce(tenant, "left_message", &row);
        let message = NewMessage {
            conversation_id: row.id,
            sender_kind: "visitor",
            sender_agent_id: None,
            kind: "text",
            body: left.body,
            payload: None,
            client_msg_id: server_msg_id("left"),
            visitor_id: row.visitor_id,
            sender_name: Some(left.name),
            sender_avatar: None,
            origin: None,
        };
        let stored = self.post(tenant, message).await.map_err(|e| AppError::Internal(e.into()))?;
        Ok((row, stored))
    }
}

/// An agent's answer, stored.
pub struct Answer {
    pub tenant: TenantId,
    pub conversation_id: i64,
    pub visitor_id: i64,
    pub message_id: i64,
    pub agent_name: String,
    pub body: String,
}

/// Emails `answer` to its visitor when they left a message while offline, gave an email
/// address and are not connected now; runs after the agent has their ack. Errors are logged.
pub fn email_if_away(state: &Sockets, answer: Answer) {
    if state.chat.hub.connections_of(answer.tenant, Peer::Visitor(answer.visitor_id)) > 0 {
        return;
    }
    let state = state.clone();
    tokio::spawn(async move {
        let (tenant, conversation) = (answer.tenant, answer.conversation_id);
        if let Err(e) = email_answer(&state, answer).await {
            tracing::warn!(tenant = tenant.0, conversation, error = %e, "emailing an answer failed");
        }
    });
}

async fn email_answer(state: &Sockets, answer: Answer) -> anyhow::Result<()> {
    let settings = state.system.get().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    if !crate::notify::enabled(&settings) {
        return Ok(());
    }
    let Some(tenant) = state.door.tenants.by_id(answer.tenant).await? else {
        return Ok(());
    };
    let mut tx = TenantTx::begin(&state.door.db, answer.tenant).await?;
    let conversation = ConversationId(answer.conversation_id);
    let Some(visitor) = store::away_visitor(&mut tx, conversation).await? else {
        return Ok(());
    };
    let merchant = crate::merchant::settings::MerchantSettings::load(&mut tx).await?;
    let lang = merchant.lang();
    let shown =
        if merchant.service_name.is_empty() { &tenant.name } else { &merchant.service_name };
    let v = [
        ("merchant", shown.as_str()),
        ("agent", answer.agent_name.as_str()),
        ("site", crate::notify::site_name(&settings)),
    ];
    let fill = crate::auth::links::fill;
    // The link resumes the visitor's own session (a verified user signs in on the merchant's
    // site instead: their chat follows their login there).
    let mut link = format!("/chatIndex?ent_id={}", tenant.ent_id);
    if !visitor.verified {
        let issued = state.door.tokens.issue_visitor(answer.visitor_id, &tenant, false)?;
        link.push_str(&format!("#resume={}", issued.token));
    }
    let mail = crate::notify::Email {
        kind: "answer",
        tenant_id: Some(answer.tenant.0),
        to: visitor.email,
        content: crate::notify::Content {
            subject: fill(lang.tr("email.answer_subject"), &v),
            heading: fill(lang.tr("email.answer_heading"), &v),
            paragraphs: vec![fill(lang.tr("email.answer_body"), &v)],
            quote: Some(answer.body),
            action: Some((lang.tr("email.answer_action").to_owned(), state.mail.link(&link))),
            reason: fill(lang.tr("email.answer_reason"), &v),
            ..Default::default()
        },
        delay_secs: 0,
        about: serde_json::json!({
            "conversation_id": answer.conversation_id,
            "message_id": answer.message_id,
        }),
        dedupe_key: Some(format!("answer:{}:{}", answer.tenant.0, answer.message_id)),
    };
    crate::notify::enqueue(&mut tx, &settings, lang, mail).await?;
    tx.commit().await?;
    state.mail.wake();
    Ok(())
}
