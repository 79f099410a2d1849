//! What happens after a visitor's message is stored, off the hot path (the sender already
//! has its ack): the welcome message on a new conversation, keyword auto-replies, and — once
//! per conversation, not once per message — the offline notice when nobody can answer.

use std::{sync::Arc, time::Duration};

use moka::future::Cache;
use tenants::{TenantId, TenantTx};

use super::{
    Chat, server_msg_id,
    store::{self, ConversationRow},
};
use crate::realtime::{hub::encode, protocol::ServerFrame, writer::NewMessage};
use crate::{i18n::Lang, merchant::rich_text};

/// A tenant's automation settings, read once and cached (they change rarely; the settings
/// pages invalidate them). Without this every visitor message cost a transaction.
#[derive(Debug, Default)]
pub struct Automation {
    /// Sanitized HTML (merchant::rich_text), like `offline` and the out-of-hours message.
    pub welcome: Option<String>,
    pub offline: Option<String>,
    /// Whether agents see what a visitor is typing before it is sent.
    pub typing_preview: bool,
    /// Outside these the team counts as away.
    pub hours: crate::merchant::hours::BusinessHours,
    /// Idle minutes before an online agent becomes away (0: never).
    pub auto_away_minutes: u32,
    /// Hours after resolution during which the visitor's message reopens (0: never).
    pub reopen_hours: u32,
    /// (keyword lowercased, exact?, reply), in order.
    rules: Vec<(String, bool, String)>,
}

impl Automation {
    /// The reply of the first rule that matches: `exact` (whole message, ignoring case and
    /// surrounding space) or `contains` (ignoring case).
    pub fn auto_reply(&self, text: &str) -> Option<&str> {
        let text = text.trim().to_lowercase();
        self.rules.iter().find_map(|(keyword, exact, reply)| {
            let hit = !keyword.is_empty()
                && if *exact { text == *keyword } else { text.contains(keyword.as_str()) };
            hit.then_some(reply.as_str())
        })
    }
}

pub type AutomationCache = Cache<TenantId, Arc<Automation>>;

pub fn cache() -> AutomationCache {
    Cache::builder().max_capacity(50_000).time_to_live(Duration::from_secs(30)).build()
}

/// The tenant's automation settings, from the cache or the database.
pub async fn settings(
    chat: &Chat,
    pool: &sqlx::PgPool,
    tenant: TenantId,
) -> Result<Arc<Automation>, Arc<sqlx::Error>> {
    chat.automation
        .try_get_with(tenant, async {
            let mut tx = TenantTx::begin(pool, tenant).await?;
            // The settings document, read and checked in one place (merchant::settings).
            let s = crate::merchant::settings::MerchantSettings::load(&mut tx).await?;
            let non_empty = |t: String| Some(t).filter(|t| !t.trim().is_empty());
            let rules: Vec<(String, String, String)> = sqlx::query_as(
                "select keyword, match_kind, reply from auto_replies where enabled order by position, id",
            )
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            let rules = rules.into_iter().map(|(k, kind, r)| (k.trim().to_lowercase(), kind == "exact", r)).collect();
            Ok(Arc::new(Automation {
                welcome: non_empty(s.welcome_message),
                offline: non_empty(s.offline_message),
                typing_preview: s.typing_preview,
                hours: s.business_hours,
                auto_away_minutes: s.auto_away_minutes,
                reopen_hours: s.reopen_hours,
                rules,
            }))
        })
        .await
}

/// A visitor's message, as the automation sees it.
pub struct VisitorMessage {
    pub tenant: TenantId,
    pub conversation: ConversationRow,
    /// It opened the conversation.
    pub created: bool,
    /// Its text (text messages only).
    pub text: Option<String>,
    pub id: i64,
    pub lang: Lang,
    /// The merchant's monthly allowance of conversations (a bot's answer engages).
    pub monthly_limit: Option<u32>,
}

/// Runs the automation for one visitor message; errors are logged, never surfaced.
pub async fn after_visitor_message(state: super::ws::Sockets, m: VisitorMessage) {
    let (chat, pool) = (&state.chat, &state.door.db);
    let (tenant, conversation) = (m.tenant, &m.conversation);
    let said = Said { created: m.created, text: m.text.clone(), lang: m.lang };
    if let Err(e) = run(chat, pool, tenant, conversation, said, m.monthly_limit).await {
        tracing::warn!(tenant = tenant.0, conversation = conversation.id, error = %e, "chat automation failed");
    }
    if let Err(e) = remind_if_unanswered(&state, &m).await {
        tracing::warn!(tenant = tenant.0, conversation = conversation.id, error = %e, "queueing a reminder failed");
    }
}

/// A visitor's message that stays unanswered for the merchant's `unanswered_email_minutes`
/// while its agent is away is emailed about: to the conversation's agent when theirs is
/// offline (whoever else is online), else, for a conversation nobody has yet, to the
/// notification email when no one is online. One reminder is pending per conversation at a
/// time, and it is dropped if an agent answers first (notify::outbox checks before sending).
async fn remind_if_unanswered(
    state: &super::ws::Sockets,
    m: &VisitorMessage,
) -> anyhow::Result<()> {
    let someone_sees_it = match m.conversation.agent_id {
        Some(agent) => state.chat.agent_online(m.tenant, agent).await?,
        None => state.chat.team_online(m.tenant).await?,
    };
    if someone_sees_it {
        return Ok(());
    }
    let settings = state.system.get().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    if !crate::notify::enabled(&settings) {
        return Ok(());
    }
    let mut tx = TenantTx::begin(&state.door.db, m.tenant).await?;
    let merchant = crate::merchant::settings::MerchantSettings::load(&mut tx).await?;
    let minutes = merchant.unanswered_email_minutes;
    let agent_email: Option<String> = match m.conversation.agent_id {
        Some(agent) => {
            sqlx::query_scalar(
                "select u.email from agents a join public.users u on u.id = a.user_id
             where a.id = $1 and a.disabled_at is null",
            )
            .bind(agent)
            .fetch_optional(&mut *tx)
            .await?
        }
        None => None,
    };
    let to =
        agent_email.or_else(|| Some(merchant.notification_email.clone()).filter(|e| !e.is_empty()));
    let (Some(to), true) = (to, minutes > 0) else {
        tx.commit().await?;
        return Ok(());
    };
    let lang = merchant.lang();
    let site = crate::notify::site_name(&settings);
    let tenant = state
        .door
        .tenants
        .by_id(m.tenant)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no such merchant"))?;
    let shown = if merchant.service_name.is_empty() {
        tenant.name.clone()
    } else {
        merchant.service_name.clone()
    };
    let visitor = if m.conversation.visitor_name.is_empty() {
        lang.tr("app.visitor").to_owned()
    } else {
        m.conversation.visitor_name.clone()
    };
    let minutes_text = minutes.to_string();
    let v = [
        ("merchant", shown.as_str()),
        ("visitor", visitor.as_str()),
        ("site", site),
        ("minutes", minutes_text.as_str()),
    ];
    let fill = crate::auth::links::fill;
    let mail = crate::notify::Email {
        kind: "unanswered",
        tenant_id: Some(m.tenant.0),
        to,
        content: crate::notify::Content {
            subject: fill(lang.tr("email.unanswered_subject"), &v),
            heading: fill(lang.tr("email.unanswered_heading"), &v),
            paragraphs: vec![fill(lang.tr("email.unanswered_body"), &v)],
            quote: m.text.clone().filter(|t| !t.trim().is_empty()),
            action: Some((
                lang.tr("email.unanswered_action").to_owned(),
                state.mail.link(&format!("/app#c={}", m.conversation.id)),
            )),
            reason: fill(lang.tr("email.unanswered_reason"), &v),
            ..Default::default()
        },
        delay_secs: i64::from(minutes) * 60,
        about: serde_json::json!({ "conversation_id": m.conversation.id, "after_message_id": m.id }),
        dedupe_key: Some(format!("unanswered:{}:{}", m.tenant.0, m.conversation.id)),
    };
    crate::notify::enqueue(&mut tx, &settings, lang, mail).await?;
    tx.commit().await?;
    Ok(())
}

/// What the visitor's message was, for the automation.
struct Said {
    /// It opened the conversation.
    created: bool,
    text: Option<String>,
    lang: Lang,
}

async fn run(
    chat: &Chat,
    pool: &sqlx::PgPool,
    tenant: TenantId,
    conversation: &ConversationRow,
    said: Said,
    monthly_limit: Option<u32>,
) -> anyhow::Result<()> {
    let Said { created, text, lang } = said;
    let automation = settings(chat, pool, tenant)
        .await
        .map_err(|e| anyhow::anyhow!("automation settings: {e}"))?;
    let welcome = automation.welcome.clone().filter(|_| created);
    let reply = text.as_deref().and_then(|t| automation.auto_reply(t)).map(str::to_owned);
    if let Some(html) = welcome {
        let payload = serde_json::json!({ "html": html });
        bot(chat, tenant, conversation, "welcome", rich_text::to_text(&html), Some(payload))
            .await?;
    }
    if let Some(body) = reply {
        bot(chat, tenant, conversation, "auto", body, None).await?;
        // The bot answered the visitor: the conversation counts against the allowance.
        chat.engaged(tenant, conversation.id, monthly_limit).await?;
    }
    let unanswered = conversation.agent_id.is_none()
        && !chat.offline_noticed.contains_key(&(tenant, conversation.id));
    if unanswered && !chat.team_online(tenant).await? {
        let mut tx = TenantTx::begin(pool, tenant).await?;
        let first = store::claim_offline_notice(&mut tx, conversation.id).await?;
        tx.commit().await?;
        chat.offline_noticed.insert((tenant, conversation.id), ());
        if first {
            let out_of_hours = Some(&automation.hours.out_of_hours_message)
                .filter(|m| !m.trim().is_empty() && !automation.hours.is_open(chrono::Utc::now()));
            // The merchant's own words are rich text; the built-in notice is plain.
            let (body, payload) = match out_of_hours.or(automation.offline.as_ref()) {
                Some(html) => (
                    rich_text::to_text(html),
                    serde_json::json!({ "notice": "offline", "html": html }),
                ),
                None => (
                    lang.tr("chat.offline_default").to_owned(),
                    serde_json::json!({ "notice": "offline" }),
                ),
            };
            let message = NewMessage {
                conversation_id: conversation.id,
                sender_kind: "system",
                sender_agent_id: None,
                kind: "notice",
                body: body.clone(),
                payload: Some(payload),
                client_msg_id: server_msg_id("offline"),
                visitor_id: conversation.visitor_id,
                sender_name: None,
                sender_avatar: None,
                origin: None,
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
    payload: Option<serde_json::Value>,
) -> anyhow::Result<()> {
    let message = NewMessage {
        conversation_id: conversation.id,
        sender_kind: "bot",
        sender_agent_id: None,
        kind: "text",
        body,
        payload,
        client_msg_id: server_msg_id(what),
        visitor_id: conversation.visitor_id,
        sender_name: None,
        sender_avatar: None,
        origin: None,
    };
    chat.post(tenant, message).await?;
    Ok(())
}
