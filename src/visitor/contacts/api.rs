//! The contacts API: the merchant's visitors listed with filters and a cursor, one visitor
//! in full, a CSV export, bulk actions and merging two records of one person.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State},
    response::Response,
};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::{
    auth::ctx::{Admin, ApiToken, Ctx, Read, Write},
    auth::session::AgentSession,
    http::{
        AppError,
        extract::{ApiJson, ApiQuery},
        input::time_bound,
    },
    realtime::hub::{Hub, Peer},
    upload::remote::RemoteImages,
    visitor::{
        manage::{self, visitor_id},
        store::{
            self, blacklist,
            directory::{self, After, Filter, Sort, VisitorDetail, VisitorItem},
            merge,
        },
    },
};

fn page_size(limit: Option<i64>) -> i64 {
    limit.unwrap_or(50).clamp(1, 200)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Matches the name, real name, e-mail or phone (substring, any case), or the visitor
    /// id or user id exactly.
    #[serde(default)]
    q: Option<String>,
    /// Only visitors with this tag.
    #[serde(default)]
    tag: Option<String>,
    /// Only visitors from this country (ISO code, any case).
    #[serde(default)]
    country: Option<String>,
    /// Only visitors connected now.
    #[serde(default)]
    online: Option<bool>,
    /// Only visitors with an e-mail address.
    #[serde(default)]
    has_email: Option<bool>,
    /// Only verified (`true`) or only anonymous (`false`) visitors.
    #[serde(default)]
    verified: Option<bool>,
    /// Last seen at or after this time (RFC 3339, or a date: from its start, UTC).
    #[serde(default)]
    seen_after: Option<String>,
    /// Last seen before this time (RFC 3339, or a date: up to its end, UTC).
    #[serde(default)]
    seen_before: Option<String>,
    /// `newest` (default), `last_seen`, `visits` or `name`.
    #[serde(default)]
    sort: Option<Sort>,
    /// `next_cursor` of the previous page.
    #[serde(default)]
    cursor: Option<String>,
    /// For the `newest` order: visitors below this row id (`next_before` of the previous page).
    #[serde(default)]
    before: Option<i64>,
    #[serde(default)]
    limit: Option<i64>,
}

fn short(raw: Option<&str>, max: usize) -> Option<String> {
    raw.map(str::trim).filter(|s| !s.is_empty()).map(|s| s.chars().take(max).collect())
}

impl ListQuery {
    /// The filter this query asks for; `hub` knows who is connected.
    fn filter(&self, hub: &Hub, session: &AgentSession) -> Result<Filter, AppError> {
        Ok(Filter {
            text: short(self.q.as_deref(), 100),
            tag: short(self.tag.as_deref(), 32),
            country: short(self.country.as_deref(), 8),
            has_email: self.has_email == Some(true),
            verified: self.verified,
            seen_after: time_bound("seen_after", self.seen_after.as_deref(), false)?,
            seen_before: time_bound("seen_before", self.seen_before.as_deref(), true)?,
            among: (self.online == Some(true)).then(|| hub.connected_visitors(session.tenant.id)),
            ids: None,
        })
    }

    fn after(&self, sort: Sort) -> Result<Option<After>, AppError> {
        match (&self.cursor, self.before) {
            (Some(c), _) => After::decode(sort, c)
                .map(Some)
                .ok_or_else(|| AppError::field("cursor", "not a cursor of this list")),
            (None, Some(before)) if sort == Sort::Newest => Ok(Some(After::Id(before))),
            _ => Ok(None),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct VisitorPage {
    visitors: Vec<VisitorItem>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<String>,
    /// For the `newest` order, the same as a row id for `before`.
    next_before: Option<i64>,
}

/// The merchant's visitors, filtered and sorted, a page at a time.
#[utoipa::path(get, path = "/api/v1/visitors", tag = "visitors", params(ListQuery), responses((status = 200, body = VisitorPage), (status = "default", description = "An error: `{\"error\": {code, message, fields?}}` (docs/api.md)", body = crate::http::openapi::ErrorBody)))]
pub(super) async fn list(
    State(hub): State<Arc<Hub>>,
    Ctx { session, mut tx, .. }: Ctx<ApiToken<Read>>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<VisitorPage>, AppError> {
    let (limit, sort) = (page_size(q.limit), q.sort.unwrap_or_default());
    let filter = q.filter(&hub, &session)?;
    let after = q.after(sort)?;
    let mut visitors = directory::search(&mut tx, &filter, sort, after.as_ref(), limit).await?;
    tx.commit().await?;
    mark_online(&hub, &session, &mut visitors);
    let last = visitors.last().filter(|_| visitors.len() as i64 == limit);
    Ok(Json(VisitorPage {
        next_cursor: last.map(|v| After::of(sort, v).encode()),
        next_before: last.filter(|_| sort == Sort::Newest).map(|v| v.id),
        visitors,
    }))
}

fn mark_online(hub: &Hub, session: &AgentSession, visitors: &mut [VisitorItem]) {
    for v in visitors {
        v.online = hub.connections_of(session.tenant.id, Peer::Visitor(v.id)) > 0;
    }
}

/// A visitor by public id (`v…`): profile, custom attributes, page trail, tags, notes.
#[utoipa::path(get, path = "/api/v1/visitors/{id}", tag = "visitors", params(("id" = String, Path, description = "The visitor id (v…)")), responses((status = 200, body = VisitorDetail), (status = "default", description = "An error: `{\"error\": {code, message, fields?}}` (docs/api.md)", body = crate::http::openapi::ErrorBody)))]
pub(super) async fn detail(
    State(hub): State<Arc<Hub>>,
    State(images): State<Arc<RemoteImages>>,
    Ctx { session, mut tx, .. }: Ctx<ApiToken<Read>>,
    Path(id): Path<String>,
) -> Result<Json<VisitorDetail>, AppError> {
    if id.len() > 64 {
        return Err(AppError::NotFound);
    }
    let mut detail = directory::detail(&mut tx, &id).await?.ok_or(AppError::NotFound)?;
    tx.commit().await?;
    detail.online = hub.connections_of(session.tenant.id, Peer::Visitor(detail.id)) > 0;
    detail.avatar_src = avatar_src(&images, &session, &detail);
    Ok(Json(detail))
}

/// The visitor's picture (from the page that opened the chat, e.g. GOFLY's `avatar`) as a
/// path served through kefu.
fn avatar_src(images: &RemoteImages, session: &AgentSession, v: &VisitorDetail) -> Option<String> {
    let url = v.avatar_url.as_deref()?;
    images.link(&session.tenant.ent_id.to_string(), url)
}

/// At most this many rows in one export (a filter narrows it).
const EXPORT_MAX: i64 = 50_000;

/// The visitors the list's filters (or `ids`, comma-separated) pick, as CSV (admins).
pub(super) async fn export(
    State(hub): State<Arc<Hub>>,
    Ctx { session, mut tx, .. }: Ctx<Admin>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Result<Response, AppError> {
    let sort = q.list.sort.unwrap_or_default();
    let mut filter = q.list.filter(&hub, &session)?;
    filter.ids = q.ids.as_deref().map(|ids| ids.split(',').take(1000).map(str::to_owned).collect());
    let visitors = directory::search(&mut tx, &filter, sort, None, EXPORT_MAX).await?;
    crate::merchant::audit::commit(
        tx,
        &session,
        "visitor.export",
        "",
        serde_json::json!({ "rows": visitors.len() }),
    )
    .await?;
    let header = [
        "id",
        "name",
        "real_name",
        "user_id",
        "verified",
        "email",
        "phone",
        "tags",
        "country",
        "region",
        "city",
        "ip",
        "os",
        "browser",
        "device",
        "visits",
        "conversations",
        "blocked",
        "first_seen_at",
        "last_seen_at",
    ];
    let rows = visitors.into_iter().map(|v| {
        let opt = |o: Option<String>| o.unwrap_or_default();
        vec![
            v.public_id,
            v.name,
            opt(v.real_name),
            opt(v.user_id),
            v.verified.to_string(),
            opt(v.email),
            opt(v.phone),
            v.tags.join(", "),
            opt(v.country),
            opt(v.region),
            opt(v.city),
            opt(v.ip),
            opt(v.os),
            opt(v.browser),
            opt(v.device),
            v.visit_count.to_string(),
            v.conversations.to_string(),
            v.blocked.to_string(),
            v.first_seen_at.to_rfc3339(),
            v.last_seen_at.to_rfc3339(),
        ]
    });
    let header = header.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>();
    let filename = format!("kefu-contacts-{}.csv", Utc::now().format("%Y-%m-%d"));
    crate::http::csv::attachment(&filename, std::iter::once(header).chain(rows))
}

#[derive(Deserialize)]
pub(super) struct ExportQuery {
    #[serde(flatten)]
    list: ListQuery,
    /// Only these visitors (public ids, comma-separated).
    #[serde(default)]
    ids: Option<String>,
}

/// What a bulk request does to every visitor it names.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum BulkAction {
    /// Add `tag`.
    Tag,
    /// Remove `tag`.
    Untag,
    /// Put each on the blacklist (and end their chats).
    Block,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct BulkRequest {
    /// Public visitor ids (`v…`), at most 500.
    ids: Vec<String>,
    action: BulkAction,
    #[serde(default)]
    tag: Option<String>,
    /// Why they are blocked (`block`).
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct BulkResult {
    /// How many visitors changed (those that already had it done are not counted).
    changed: u64,
}

/// Tags, untags or blocks many visitors at once. Ids of no visitor of this merchant are
/// skipped.
#[utoipa::path(post, path = "/api/v1/visitors/bulk", tag = "visitors", request_body = BulkRequest, responses((status = 200, body = BulkResult), (status = "default", description = "An error: `{\"error\": {code, message, fields?}}` (docs/api.md)", body = crate::http::openapi::ErrorBody)))]
pub(super) async fn bulk(
    State(hub): State<Arc<Hub>>,
    Ctx { session, mut tx, .. }: Ctx<ApiToken<Write>>,
    ApiJson(req): ApiJson<BulkRequest>,
) -> Result<Json<BulkResult>, AppError> {
    if req.ids.is_empty() || req.ids.len() > 500 {
        return Err(AppError::field("ids", "give 1 to 500 visitor ids"));
    }
    let ids: Vec<String> = req.ids.into_iter().filter(|id| id.len() <= 64).collect();
    let rows = store::by_public_ids(&mut tx, &ids).await?;
    let tenant = session.tenant.id;
    let changed = match req.action {
        BulkAction::Tag | BulkAction::Untag => {
            let name = manage::tag_name(req.tag.as_deref().unwrap_or_default())?;
            let tag = match req.action {
                BulkAction::Tag => Some(manage::tag_for(&mut tx, &name).await?),
                _ => None,
            };
            store::tags::bulk(&mut tx, &rows, tag, &name).await?
        }
        BulkAction::Block => {
            let reason = crate::http::input::text(
                "reason",
                req.reason.as_deref().unwrap_or_default(),
                200,
                false,
                false,
            )?;
            let blocked = blacklist::block_all(&mut tx, &rows, &reason, session.agent.id.0).await?;
            let detail = serde_json::json!({ "visitors": blocked.len(), "reason": reason });
            crate::merchant::audit::record(&mut tx, &session, "blacklist.bulk_add", "", detail)
                .await?;
            tx.commit().await?;
            for v in &blocked {
                hub.revoke(tenant, Peer::Visitor(*v));
            }
            return Ok(Json(BulkResult { changed: blocked.len() as u64 }));
        }
    };
    let mut out = Vec::with_capacity(rows.len());
    for id in &rows {
        out.push(manage::visitor_out(&mut tx, *id).await?);
    }
    tx.commit().await?;
    for visitor in out {
        let frame =
            crate::realtime::hub::encode(&crate::realtime::protocol::ServerFrame::Visitor {
                event: "updated",
                visitor,
            });
        hub.to_agents(tenant, &frame);
    }
    Ok(Json(BulkResult { changed }))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct MergeRequest {
    /// The record to merge into this one (`v…`); it is deleted.
    from: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct MergeResult {
    /// The visitor that stays, with everything of both.
    visitor: VisitorDetail,
    /// How many conversations moved to it.
    conversations_moved: u64,
}

/// Merges visitor `from` into visitor `id` (the same person on two devices; admins): its
/// conversations, notes, tags, pages and files move over, empty details are filled from
/// it, then it is deleted. Its browser continues as `id`. Two different verified users
/// cannot be merged (409 `different_people`).
pub(super) async fn merge(
    State(hub): State<Arc<Hub>>,
    State(images): State<Arc<RemoteImages>>,
    Ctx { session, mut tx, .. }: Ctx<Admin>,
    Path(public_id): Path<String>,
    ApiJson(req): ApiJson<MergeRequest>,
) -> Result<Json<MergeResult>, AppError> {
    let into = visitor_id(&mut tx, &public_id).await?;
    let from = visitor_id(&mut tx, &req.from)
        .await
        .map_err(|_| AppError::field("from", "no visitor of this merchant has this id"))?;
    if into == from {
        return Err(AppError::field("from", "a visitor cannot be merged into itself"));
    }
    let (a, b) =
        (store::external_id(&mut tx, into).await?, store::external_id(&mut tx, from).await?);
    if let (Some(Some(a)), Some(Some(b))) = (&a, &b)
        && a != b
    {
        let why = "both are verified users of your site, and not the same one";
        return Err(AppError::conflict("different_people", Some("from"), why));
    }
    let moved = merge::merge(&mut tx, into, from, session.agent.id.0).await?;
    let detail_json = serde_json::json!({ "from": req.from, "conversations": moved });
    crate::merchant::audit::record(&mut tx, &session, "visitor.merge", &public_id, detail_json)
        .await?;
    let mut visitor = directory::detail(&mut tx, &public_id).await?.ok_or(AppError::NotFound)?;
    let shown = manage::visitor_out(&mut tx, into).await?;
    tx.commit().await?;
    let tenant = session.tenant.id;
    // The merged record's open pages reconnect as the one that stays.
    hub.reconnect(tenant, Peer::Visitor(from));
    let frame = crate::realtime::hub::encode(&crate::realtime::protocol::ServerFrame::Visitor {
        event: "updated",
        visitor: shown,
    });
    hub.to_agents(tenant, &frame);
    visitor.online = hub.connections_of(tenant, Peer::Visitor(into)) > 0;
    visitor.avatar_src = avatar_src(&images, &session, &visitor);
    tracing::info!(tenant = tenant.0, by = session.agent.id.0, into, from, "visitors merged");
    Ok(Json(MergeResult { visitor, conversations_moved: moved }))
}
