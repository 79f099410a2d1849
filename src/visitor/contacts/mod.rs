//! Contacts: the merchant's visitors as a directory. `/app/contacts` lists them (filters,
//! sort, paging, bulk tag/block/export), `/app/contacts/{id}` shows one in full (profile,
//! custom attributes, page trail, conversations with transcripts, notes) and lets an admin
//! merge two records of one person. Both pages are shells over the JSON API here, so an
//! API client can do what the pages do.

mod api;

use std::sync::Arc;

use askama::Template;
use axum::{
    extract::{FromRef, Path, State},
    response::{IntoResponse, Redirect, Response},
};

use crate::{
    agent::shell::AppShell,
    auth::ctx::{Agent, Ctx, Door},
    config::Config,
    http::{AppError, Page, Routes, Scope, csrf::CsrfToken},
    i18n::Lang,
    realtime::hub::Hub,
};

/// The OpenAPI description of these routes' API part (http::openapi).
#[derive(utoipa::OpenApi)]
#[openapi(paths(api::list, api::detail, api::bulk))]
pub(crate) struct Doc;

pub fn routes<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Door>: FromRef<S>,
    Arc<Config>: FromRef<S>,
    Arc<Hub>: FromRef<S>,
    Arc<crate::upload::remote::RemoteImages>: FromRef<S>,
{
    Routes::new()
        .get("/app/contacts", Scope::Tenant, list_page)
        .get("/app/contacts/{id}", Scope::Tenant, detail_page)
        .get("/api/v1/visitors", Scope::Tenant, api::list)
        .api()
        .get("/api/v1/visitors/export", Scope::Tenant, api::export)
        .admin()
        .post("/api/v1/visitors/bulk", Scope::Tenant, api::bulk)
        .api()
        .get("/api/v1/visitors/{id}", Scope::Tenant, api::detail)
        .api()
        .post("/api/v1/visitors/{id}/merge", Scope::Tenant, api::merge)
        .admin()
}

#[derive(Template)]
#[template(path = "app/contacts.html")]
struct ContactsPage {
    lang: Lang,
    shell: AppShell,
    /// Countries visitors came from, most first (the filter's choices).
    countries: Vec<String>,
    /// The visitor shown (`/app/contacts/{id}`), else the list.
    visitor: Option<String>,
}

async fn list_page(
    State(door): State<Arc<Door>>,
    State(config): State<Arc<Config>>,
    lang: Lang,
    csrf: CsrfToken,
    ctx: Result<Ctx<Agent>, AppError>,
) -> Result<Response, AppError> {
    render((&door, &config), lang, csrf, ctx, None).await
}

async fn detail_page(
    State(door): State<Arc<Door>>,
    State(config): State<Arc<Config>>,
    lang: Lang,
    csrf: CsrfToken,
    Path(id): Path<String>,
    ctx: Result<Ctx<Agent>, AppError>,
) -> Result<Response, AppError> {
    render((&door, &config), lang, csrf, ctx, Some(id)).await
}

async fn render(
    (door, config): (&Door, &Config),
    lang: Lang,
    csrf: CsrfToken,
    ctx: Result<Ctx<Agent>, AppError>,
    visitor: Option<String>,
) -> Result<Response, AppError> {
    let Ctx { session, mut tx, .. } = match ctx {
        Ok(ctx) => ctx,
        Err(AppError::Unauthorized) => {
            return Ok(Redirect::to("/login?next=/app/contacts").into_response());
        }
        Err(e) => return Err(e),
    };
    // A visitor of no one (or of another merchant) is a 404 page, not an empty shell.
    if let Some(id) = &visitor {
        super::manage::visitor_id(&mut tx, id).await?;
    }
    let countries = super::store::directory::countries(&mut tx).await?;
    tx.commit().await?;
    let shell = AppShell::new((door, config), &session, lang, &csrf, "contacts").await?;
    let page = ContactsPage { lang, shell, countries, visitor };
    Ok((csrf, Page(page)).into_response())
}
