//! The outbox worker: every `email_interval_secs`, or at once when something was queued, it
//! claims due emails (`for update skip locked`, so several nodes share the work), checks
//! that each is still wanted, and sends it. A temporary failure is retried with backoff
//! (1 min, 5 min, 15 min, 1 h, 6 h …, at most `MAX_ATTEMPTS`); a permanent one (a refused
//! address) drops the email with its reason. Delivery is at least once: a node dying
//! between sending and recording sends that email again.

use std::{sync::Arc, time::Duration};

use axum::extract::FromRef;

use serde_json::Value;
use tenants::{TenantId, TenantTx};

use super::smtp::{self, SendError};

/// What the email worker works with: the pool and registry (a reminder checks its
/// conversation), the system settings (SMTP), the configuration (its interval), its bell,
/// and the hub (it stops on shutdown).
#[derive(Clone)]
pub struct Outbox {
    pub db: sqlx::PgPool,
    pub tenants: Arc<tenants::Registry>,
    pub system: Arc<crate::platform::system::SystemCache>,
    pub config: Arc<crate::config::Config>,
    pub mail: super::Mail,
    pub hub: Arc<crate::realtime::hub::Hub>,
}

/// Emails claimed per round.
const BATCH: i64 = 20;
/// Tries before an email is given up.
pub const MAX_ATTEMPTS: i32 = 8;

pub fn spawn_worker(state: Outbox) -> tokio::task::JoinHandle<()> {
    let interval = Duration::from_secs(state.config.email_interval_secs);
    let wake = state.mail.bell();
    crate::background::every("email", interval, state.hub.shutdown_token(), Some(wake), move || {
        let state = state.clone();
        async move { run_due(&state).await }
    })
}

#[derive(sqlx::FromRow)]
struct Due {
    id: i64,
    kind: String,
    tenant_id: Option<i64>,
    to_addr: String,
    subject: String,
    body_text: String,
    body_html: String,
    about: Value,
    attempts: i32,
}

/// Wait before the next try after `attempts` failures.
fn backoff(attempts: i32) -> i64 {
    match attempts {
        ..=1 => 60,
        2 => 300,
        3 => 900,
        4 => 3_600,
        _ => 6 * 3_600,
    }
}

/// Sends what is due. Returns how many emails were sent.
pub async fn run_due<S>(state: &S) -> anyhow::Result<usize>
where
    Outbox: axum::extract::FromRef<S>,
{
    let state = &Outbox::from_ref(state);
    let settings = state.system.get().await.map_err(|e| anyhow::anyhow!("system settings: {e}"))?;
    if !super::enabled(&settings) {
        return Ok(0);
    }
    let mailer = smtp::mailer(&state.config, &settings)?;
    let mut tx = state.db.begin().await?;
    let due: Vec<Due> = sqlx::query_as(
        "select id, kind, tenant_id, to_addr, subject, body_text, body_html, about, attempts
         from public.email_outbox
         where sent_at is null and dropped_at is null and next_attempt_at <= now()
         order by next_attempt_at, id limit $1
         for update skip locked",
    )
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    let mut sent = 0;
    for email in due {
        if !still_wanted(state, &email).await? {
            sqlx::query("update public.email_outbox set dropped_at = now(), last_error = 'no longer needed' where id = $1")
                .bind(email.id)
                .execute(&mut *tx)
                .await?;
            continue;
        }
        let attempts = email.attempts + 1;
        match mailer.send(&email.to_addr, &email.subject, &email.body_text, &email.body_html).await
        {
            Ok(()) => {
                sqlx::query("update public.email_outbox set sent_at = now(), attempts = $2, last_error = null where id = $1")
                    .bind(email.id)
                    .bind(attempts)
                    .execute(&mut *tx)
                    .await?;
                sent += 1;
            }
            Err(e) => {
                let give_up = matches!(e, SendError::Permanent(_)) || attempts >= MAX_ATTEMPTS;
                tracing::warn!(email = email.id, kind = %email.kind, attempts, give_up, error = %e, "sending an email failed");
                sqlx::query(
                    "update public.email_outbox set attempts = $2, last_error = $3,
                        next_attempt_at = now() + make_interval(secs => $4),
                        dropped_at = case when $5 then now() end
                     where id = $1",
                )
                .bind(email.id)
                .bind(attempts)
                .bind(e.to_string().chars().take(1000).collect::<String>())
                .bind(backoff(attempts) as f64)
                .bind(give_up)
                .execute(&mut *tx)
                .await?;
            }
        }
    }
    tx.commit().await?;
    Ok(sent)
}

/// Whether an email still makes sense: a reminder about an unanswered conversation is
/// dropped once an agent answered after the visitor's message, or the conversation closed;
/// an agent's answer emailed to a visitor, once the visitor read it in the chat; a mention,
/// once the colleague mentioned is connected.
async fn still_wanted(state: &Outbox, email: &Due) -> anyhow::Result<bool> {
    match email.kind.as_str() {
        "unanswered" => still_unanswered(state, email).await,
        "answer" => still_unread(state, email).await,
        "mention" => Ok(still_away(state, email)),
        _ => Ok(true),
    }
}

/// A colleague mentioned is still not connected (in their workspace they saw it).
fn still_away(state: &Outbox, email: &Due) -> bool {
    let (Some(tenant), Some(agent)) =
        (email.tenant_id, email.about.get("agent_id").and_then(Value::as_i64))
    else {
        return false;
    };
    let peer = crate::realtime::hub::Peer::Agent(agent);
    state.hub.connections_of(TenantId(tenant), peer) == 0
}

/// An answer emailed to a visitor is still unread (and its conversation still there).
async fn still_unread(state: &Outbox, email: &Due) -> anyhow::Result<bool> {
    let Some((mut tx, conversation, message)) = about(state, email, "message_id").await? else {
        return Ok(false);
    };
    let unread: Option<bool> = sqlx::query_scalar(
        "select c.visitor_last_read_id < $2 from conversations c where c.id = $1",
    )
    .bind(conversation)
    .bind(message)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(unread.unwrap_or(false))
}

/// What a conversation email is about: its merchant's transaction (none when the merchant
/// is gone), the conversation and the message named `message` in `about`.
async fn about(
    state: &Outbox,
    email: &Due,
    message: &str,
) -> anyhow::Result<Option<(TenantTx, i64, i64)>> {
    let (Some(tenant), Some(conversation), Some(id)) = (
        email.tenant_id,
        email.about.get("conversation_id").and_then(Value::as_i64),
        email.about.get(message).and_then(Value::as_i64),
    ) else {
        return Ok(None);
    };
    if state.tenants.by_id(TenantId(tenant)).await?.is_none() {
        return Ok(None);
    }
    let tx = TenantTx::begin(&state.db, TenantId(tenant)).await?;
    Ok(Some((tx, conversation, id)))
}

/// A reminder about an unanswered conversation: no agent has answered since.
async fn still_unanswered(state: &Outbox, email: &Due) -> anyhow::Result<bool> {
    let Some((mut tx, conversation, after)) = about(state, email, "after_message_id").await? else {
        return Ok(false);
    };
    let waiting: Option<bool> = sqlx::query_scalar(
        "select c.status <> 'closed' and not exists (
                select 1 from messages m
                where m.conversation_id = c.id and m.id > $2 and m.sender_kind = 'agent'
                  and m.kind <> 'note')
         from conversations c where c.id = $1",
    )
    .bind(conversation)
    .bind(after)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(waiting.unwrap_or(false))
}
