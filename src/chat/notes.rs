//! Private notes and @mentions. An agent writes a note in a conversation (a `send` of kind
//! `note`); the team sees it, the visitor never does. `@Name` in it mentions a colleague by
//! their display name: the note carries their ids (`payload.mentions`), their workspace
//! alerts them, an e-mail follows if they are not connected, and `GET /api/v1/mentions`
//! lists what mentioned them (the workspace's Mentions view).

use std::sync::Arc;

use axum::{Json, extract::FromRef};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenants::{TenantId, TenantTx};

use crate::{
    auth::ctx::{Agent, Ctx, Door},
    auth::store::AgentWithEmail,
    http::{AppError, Routes, Scope, extract::ApiQuery},
    realtime::hub::{Hub, Peer},
};

pub fn routes<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Door>: FromRef<S>,
{
    Routes::new().get("/api/v1/mentions", Scope::Tenant, list)
}

/// The ids of the agents `body` mentions (`@Display Name`, any case, not followed by a
/// letter or digit), the author and disabled agents left out. Longer names are matched
/// first, so "@Ann Lee" is Ann Lee and not Ann.
pub fn mentioned(body: &str, agents: &[AgentWithEmail], author: i64) -> Vec<i64> {
    let mut text = body.to_lowercase();
    let mut candidates: Vec<&AgentWithEmail> =
        agents.iter().filter(|a| !a.disabled && a.agent.id.0 != author).collect();
    candidates.sort_by_key(|a| std::cmp::Reverse(a.agent.display_name.chars().count()));
    let mut found = Vec::new();
    for a in candidates {
        let needle = format!("@{}", a.agent.display_name.to_lowercase());
        let mut hit = false;
        let mut from = 0;
        while let Some(at) = text[from..].find(&needle).map(|i| i + from) {
            let end = at + needle.len();
            let bounded = text[end..].chars().next().is_none_or(|c| !c.is_alphanumeric());
            if bounded {
                hit = true;
                // Blank it out so a shorter name inside it is not matched again.
                text.replace_range(at..end, &" ".repeat(needle.len()));
            }
            from = end.min(text.len());
        }
        if hit {
            found.push(a.agent.id.0);
        }
    }
    found
}

/// What a note mentioned, for the e-mails to those not connected.
pub struct Mention {
    pub tenant: TenantId,
    pub conversation_id: i64,
    pub message_id: i64,
    pub by: String,
    pub body: String,
    pub agents: Vec<AgentWithEmail>,
}

/// E-mails each mentioned agent with no live connection (in the background; the outbox
/// drops it if they came online before it went out).
pub fn email_the_away(state: &super::ws::Sockets, hub: &Hub, mention: Mention) {
    let away: Vec<AgentWithEmail> = mention
        .agents
        .into_iter()
        .filter(|a| hub.connections_of(mention.tenant, Peer::Agent(a.agent.id.0)) == 0)
        .collect();
    if away.is_empty() {
        return;
    }
    let state = state.clone();
    let mention = Mention { agents: away, ..mention };
    tokio::spawn(async move {
        let tenant = mention.tenant.0;
        if let Err(e) = email(&state, mention).await {
            tracing::warn!(tenant, error = %e, "emailing a mention failed");
        }
    });
}

async fn email(state: &super::ws::Sockets, m: Mention) -> anyhow::Result<()> {
    let settings = state.system.get().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    if !crate::notify::enabled(&settings) {
        return Ok(());
    }
    let Some(tenant) = state.door.tenants.by_id(m.tenant).await? else { return Ok(()) };
    let mut tx = TenantTx::begin(&state.door.db, m.tenant).await?;
    let lang = crate::merchant::settings::MerchantSettings::load(&mut tx).await?.lang();
    let fill = crate::auth::links::fill;
    let link = state.mail.link(&format!("/app?ent_id={}#c={}", tenant.ent_id, m.conversation_id));
    for agent in &m.agents {
        let v = [
            ("agent", m.by.as_str()),
            ("merchant", tenant.name.as_str()),
            ("site", crate::notify::site_name(&settings)),
        ];
        let mail = crate::notify::Email {
            kind: "mention",
            tenant_id: Some(m.tenant.0),
            to: agent.email.clone(),
            content: crate::notify::Content {
                subject: fill(lang.tr("email.mention_subject"), &v),
                heading: fill(lang.tr("email.mention_heading"), &v),
                paragraphs: vec![fill(lang.tr("email.mention_body"), &v)],
                quote: Some(m.body.clone()),
                action: Some((lang.tr("email.mention_action").to_owned(), link.clone())),
                reason: fill(lang.tr("email.mention_reason"), &v),
                ..Default::default()
            },
            // A minute to see it in the workspace first.
            delay_secs: 60,
            about: serde_json::json!({
                "conversation_id": m.conversation_id,
                "message_id": m.message_id,
                "agent_id": agent.agent.id.0,
            }),
            dedupe_key: Some(format!(
                "mention:{}:{}:{}",
                m.tenant.0, m.message_id, agent.agent.id.0
            )),
        };
        crate::notify::enqueue(&mut tx, &settings, lang, mail).await?;
    }
    tx.commit().await?;
    state.mail.wake();
    Ok(())
}

#[derive(Deserialize)]
struct MentionQuery {
    #[serde(default)]
    before: Option<i64>,
    #[serde(default)]
    limit: Option<i64>,
}

#[derive(Serialize, sqlx::FromRow)]
pub struct MentionItem {
    pub message_id: i64,
    pub conversation_id: i64,
    pub body: String,
    pub by_agent_id: Option<i64>,
    pub by_name: Option<String>,
    pub visitor_id: String,
    pub visitor_name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Serialize)]
struct MentionPage {
    mentions: Vec<MentionItem>,
    next_before: Option<i64>,
}

/// The notes that mentioned the caller, newest first.
async fn list(
    Ctx { session, mut tx, .. }: Ctx<Agent>,
    ApiQuery(q): ApiQuery<MentionQuery>,
) -> Result<Json<MentionPage>, AppError> {
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let before = q.before.unwrap_or(i64::MAX);
    let mentions =
        super::store::notes::mentions_of(&mut tx, session.agent.id.0, before, limit).await?;
    tx.commit().await?;
    let next_before =
        mentions.last().filter(|_| mentions.len() as i64 == limit).map(|m| m.message_id);
    Ok(Json(MentionPage { mentions, next_before }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(id: i64, name: &str, disabled: bool) -> AgentWithEmail {
        AgentWithEmail {
            agent: crate::auth::store::AgentRow {
                id: crate::ids::AgentId(id),
                user_id: id,
                role: crate::http::Role::Agent,
                display_name: name.into(),
                avatar_url: None,
                status: "online".into(),
                max_concurrent_chats: 5,
                created_at: Utc::now(),
            },
            email: format!("{id}@example.com"),
            disabled,
            invitation_pending: false,
            two_factor: false,
        }
    }

    #[test]
    fn names_are_found_whole_longest_first() {
        let team = [
            agent(1, "Ann", false),
            agent(2, "Ann Lee", false),
            agent(3, "李娜", false),
            agent(4, "Bob", true),
            agent(5, "Max", false),
        ];
        assert_eq!(mentioned("@Ann Lee can you check?", &team, 9), vec![2]);
        assert_eq!(mentioned("@ann and @ANN LEE", &team, 9), vec![2, 1]);
        assert_eq!(mentioned("请 @李娜 看一下", &team, 9), vec![3]);
        assert_eq!(mentioned("@Annabel is not Ann", &team, 9), Vec::<i64>::new());
        assert_eq!(mentioned("@Bob is disabled, @Max writes", &team, 5), Vec::<i64>::new());
        assert_eq!(mentioned("mail ann@example.com", &team, 9), Vec::<i64>::new());
    }
}
