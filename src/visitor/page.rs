//! The visitor chat page, GOFLY-compatible: `/chatIndex?ent_id=&kefu_id=&visitor_name=&avatar=&lang=&refer=&extra=`
//! (and `visitor_id=`, which is kept as a hint for agents and never grants access).
//! Unknown `ent_id` → a 404 page; a suspended merchant → the "service paused" page.

use askama::Template;
use axum::{
    Json,
    extract::{Query, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use tenants::TenantTx;

use super::VisitorSession;
use crate::{
    chat::{hub::encode, protocol::ServerFrame},
    http::{AppError, AppState, Page, ResolvedTenant, Routes, Scope, extract::ApiJson},
    i18n::Lang,
};

pub fn routes() -> Routes {
    Routes::new().get("/chatIndex", Scope::Public, chat_index).post(
        "/api/v1/visitor/leave_message",
        Scope::Public,
        leave_message,
    )
}

#[derive(Deserialize, Default)]
struct ChatQuery {
    #[serde(default)]
    kefu_id: Option<String>,
    #[serde(default)]
    visitor_name: Option<String>,
    #[serde(default)]
    avatar: Option<String>,
    #[serde(default)]
    refer: Option<String>,
    #[serde(default)]
    extra: Option<String>,
}

#[derive(Template)]
#[template(path = "chat/index.html")]
struct ChatPage {
    lang: Lang,
    tenant_name: String,
    initial: String,
    ent_id: String,
    kefu_id: String,
    visitor_name: String,
    avatar: String,
    refer: String,
    extra: String,
}

async fn chat_index(
    State(state): State<AppState>,
    lang: Lang,
    ResolvedTenant(tenant): ResolvedTenant,
    Query(q): Query<ChatQuery>,
) -> Result<Response, AppError> {
    let clip = |s: Option<String>, n: usize| {
        s.unwrap_or_default().chars().filter(|c| !c.is_control()).take(n).collect::<String>()
    };
    let page = ChatPage {
        lang,
        tenant_name: tenant.name.clone(),
        initial: tenant
            .name
            .chars()
            .next()
            .map(|c| c.to_uppercase().to_string())
            .unwrap_or_default(),
        ent_id: tenant.ent_id.to_string(),
        kefu_id: q.kefu_id.filter(|k| k.parse::<i64>().is_ok()).unwrap_or_default(),
        visitor_name: clip(q.visitor_name, 60),
        avatar: clip(q.avatar, 2048),
        refer: clip(q.refer, 2048),
        extra: clip(q.extra, 12 * 1024),
    };
    let mut tx = TenantTx::begin(&state.db, tenant.id).await?;
    let domains = crate::chat::store::setting(&mut tx, "allowed_widget_domains").await?;
    tx.commit().await?;
    let mut response = Page(page).into_response();
    // The page is meant to be framed by the merchant's site (the widget); where the merchant
    // listed its domains, only those may frame it.
    let ancestors = domains
        .as_ref()
        .and_then(|v| v.as_array())
        .map(|list| {
            list.iter()
                .filter_map(|d| d.as_str())
                .filter(|d| d.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'))
                .flat_map(|d| {
                    [format!("https://{d}"), format!("https://*.{d}"), format!("http://{d}")]
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "*".to_owned());
    let csp = format!(
        "default-src 'self'; img-src 'self' data: blob: https:; style-src 'self'; script-src 'self'; \
         connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'self' {ancestors}"
    );
    if let Ok(value) = HeaderValue::from_str(&csp) {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, value);
    }
    Ok(response)
}

#[derive(Deserialize)]
struct LeaveMessage {
    #[serde(default)]
    name: String,
    #[serde(default)]
    contact: String,
    body: String,
}

/// The leave-a-message form (when nobody is online): stored for the merchant and pushed to
/// any agent who is connected.
async fn leave_message(
    State(state): State<AppState>,
    session: VisitorSession,
    ApiJson(req): ApiJson<LeaveMessage>,
) -> Result<Response, AppError> {
    let clean = |s: &str, n: usize| {
        s.chars()
            .filter(|c| !c.is_control() || *c == '\n')
            .take(n)
            .collect::<String>()
            .trim()
            .to_owned()
    };
    let body = clean(&req.body, 5_000);
    if body.is_empty() {
        return Err(AppError::field("body", "write a message"));
    }
    let (name, contact) = (clean(&req.name, 100), clean(&req.contact, 200));
    let mut tx = TenantTx::begin(&state.db, session.tenant.id).await?;
    let id: i64 = sqlx::query_scalar(
        "insert into leave_messages (visitor_id, name, contact, body) values ($1, $2, $3, $4) returning id",
    )
    .bind(session.visitor.id)
    .bind(&name)
    .bind(&contact)
    .bind(&body)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let summary = format!(
        "{}{}: {}",
        if name.is_empty() { &session.visitor.name } else { &name },
        if contact.is_empty() { String::new() } else { format!(" ({contact})") },
        body.chars().take(200).collect::<String>()
    );
    state.chat.hub.to_agents(
        session.tenant.id,
        &encode(&ServerFrame::Notice { code: "leave_message", message: summary }),
    );
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "id": id }))).into_response())
}
