//! `GET /api/v1/search?q=`: what agents look for across the merchant's history — words said
//! in any conversation (Chinese without spaces too: "白色" finds "我想要白色的台灯"; English by
//! word prefix), and visitors by name, email, phone, tag or note. The workspace's search box
//! shows the results with the words highlighted and jumps to the message in its thread.

use axum::{Json, extract::Query};
use serde::{Deserialize, Serialize};

use super::store::search::{self, MessageHit, Terms, VisitorHit};
use crate::{
    auth::ctx::{ApiToken, Ctx, Read},
    http::{AppError, Routes, Scope},
};

#[derive(utoipa::OpenApi)]
#[openapi(paths(search), components(schemas(SearchResults, MessageHit, VisitorHit)))]
pub(crate) struct Doc;

pub fn routes<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    std::sync::Arc<crate::auth::ctx::Door>: axum::extract::FromRef<S>,
{
    Routes::new().get("/api/v1/search", Scope::Tenant, search).api()
}

#[derive(Deserialize, utoipa::IntoParams)]
struct SearchQuery {
    /// What to look for: words (prefixes match) and Chinese, Japanese or Korean text.
    q: String,
    /// Messages to return, 1–50 (default 20).
    #[serde(default)]
    limit: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct SearchResults {
    /// The words looked for, to highlight in what is shown.
    words: Vec<String>,
    /// Matching messages: the best of the newest first.
    messages: Vec<MessageHit>,
    /// Matching visitors (at most 10), recently seen first.
    visitors: Vec<VisitorHit>,
}

/// `GET /api/v1/search?q=&limit=` → 200 `{words, messages, visitors}`; 422 when `q` holds
/// nothing to search for.
#[utoipa::path(get, path = "/api/v1/search", tag = "conversations", params(SearchQuery), responses((status = 200, body = SearchResults), (status = "default", description = "An error: `{\"error\": {code, message, fields?}}` (docs/api.md)", body = crate::http::openapi::ErrorBody)))]
async fn search(
    Ctx { mut tx, .. }: Ctx<ApiToken<Read>>,
    Query(q): Query<SearchQuery>,
) -> Result<Json<SearchResults>, AppError> {
    let terms = Terms::parse(&q.q).ok_or_else(|| AppError::field("q", "write what to look for"))?;
    let limit = q.limit.unwrap_or(20).clamp(1, 50);
    let messages = search::messages(&mut tx, &terms, limit).await?;
    let visitors = search::visitors(&mut tx, &terms, 10).await?;
    tx.commit().await?;
    Ok(Json(SearchResults { words: terms.words(), messages, visitors }))
}
