//! CSAT: when a conversation is closed, the visitor is asked to rate it (1–5 and an optional
//! comment). One rating per conversation (the table's key decides, however many tabs
//! answer at once); agents see it on the conversation, live and in lists.

use std::sync::Arc;

use axum::{
    Json,
    extract::{FromRef, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use sqlx::PgPool;
use tenants::TenantTx;

use super::store;
use crate::realtime::{hub::encode, protocol::ServerFrame};
use crate::{
    auth::ctx::Door,
    http::{
        AppError, Routes, Scope, TrustedProxies,
        extract::ApiJson,
        rate::{Limiter, Rule},
    },
    realtime::hub::Hub,
    visitor::VisitorSession,
};

pub fn routes<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Door>: FromRef<S>,
    TrustedProxies: FromRef<S>,
    PgPool: FromRef<S>,
    Arc<Hub>: FromRef<S>,
    Arc<Limiter>: FromRef<S>,
{
    Routes::new().post("/api/v1/visitor/rating", Scope::Public, rate)
}

/// The longest comment kept.
const MAX_COMMENT: usize = 1000;

#[derive(Deserialize)]
struct Rate {
    conversation_id: i64,
    score: i16,
    #[serde(default)]
    comment: String,
}

pub use crate::realtime::protocol::RatingOut;

/// `POST /api/v1/visitor/rating {conversation_id, score, comment?}` with the visitor token
/// → 201 the rating. Only the visitor's own closed conversation, once.
async fn rate(
    State(db): State<PgPool>,
    State(hub): State<Arc<Hub>>,
    State(limiter): State<Arc<Limiter>>,
    session: VisitorSession,
    ApiJson(req): ApiJson<Rate>,
) -> Result<Response, AppError> {
    if !(1..=5).contains(&req.score) {
        return Err(AppError::field("score", "a whole number from 1 to 5"));
    }
    let l = &limiter.limits;
    let (per_ip, per_visitor) = (
        Rule::per_hour("ratings", l.ratings_per_ip),
        Rule::per_hour("ratings", l.ratings_per_visitor),
    );
    session.limit(&limiter, per_ip, per_visitor, 1).await?;
    let comment = clean_comment(&req.comment);
    let tenant = session.tenant.id;
    let mut tx = TenantTx::begin(&db, tenant).await?;
    let row = closed_conversation(&mut tx, &session, req.conversation_id).await?;
    let rating = store::rate(&mut tx, &row, req.score, &comment).await?;
    tx.commit().await?;
    let Some(created_at) = rating else {
        let why = "this conversation has been rated already";
        return Err(AppError::conflict("already_rated", None, why));
    };
    let out = RatingOut {
        conversation_id: row.id,
        score: req.score,
        comment,
        agent_id: row.agent_id,
        created_at,
    };
    let frame = encode(&ServerFrame::Rating { rating: out.clone() });
    hub.to_agents(tenant, &frame);
    tracing::info!(tenant = tenant.0, conversation = row.id, score = req.score, "rated");
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// The visitor's own conversation `id`, once it is closed (404 for anyone else's).
async fn closed_conversation(
    tx: &mut TenantTx,
    session: &VisitorSession,
    id: i64,
) -> Result<store::ConversationRow, AppError> {
    let row = store::conversation(tx, crate::ids::ConversationId(id))
        .await?
        .filter(|c| c.visitor_id == session.visitor.id)
        .ok_or(AppError::NotFound)?;
    if !row.is_closed() {
        let why = "a conversation is rated once it is closed";
        return Err(AppError::conflict("not_closed", None, why));
    }
    Ok(row)
}

/// The comment as stored: no control characters but line breaks, at most `MAX_COMMENT`
/// characters, trimmed.
fn clean_comment(raw: &str) -> String {
    let kept: String =
        raw.chars().filter(|c| !c.is_control() || *c == '\n').take(MAX_COMMENT).collect();
    kept.trim().to_owned()
}
