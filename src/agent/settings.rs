//! `/app/settings`: the merchant's settings pages (admins). The page is a shell; its
//! sections work through the JSON API (team, quick replies, blacklist), so what the page
//! can do, an API client can do too.

use askama::Template;
use axum::{
    extract::State,
    response::{IntoResponse, Redirect, Response},
};

use super::{initial, role_label};
use crate::{
    auth::session::AgentSession,
    http::{AppError, AppState, Page, Routes, Scope, csrf::CsrfToken},
    i18n::Lang,
};

pub fn routes() -> Routes {
    Routes::new().get("/app/settings", Scope::Tenant, settings_page).admin()
}

#[derive(Template)]
#[template(path = "app/settings.html")]
struct SettingsPage {
    lang: Lang,
    csrf_token: String,
    tenant_name: String,
    ent_id: String,
    agent_id: i64,
    agent_name: String,
    agent_initial: String,
    role_label: String,
    is_admin: bool,
    is_owner: bool,
    nav: &'static str,
}

async fn settings_page(
    State(_state): State<AppState>,
    lang: Lang,
    csrf: CsrfToken,
    session: Result<AgentSession, AppError>,
) -> Result<Response, AppError> {
    let session = match session {
        Ok(s) => s,
        Err(AppError::Unauthorized) => {
            return Ok(Redirect::to("/login?next=/app/settings").into_response());
        }
        Err(e) => return Err(e),
    };
    session.require_admin()?;
    let page = SettingsPage {
        lang,
        csrf_token: csrf.value().to_owned(),
        tenant_name: session.tenant.name.clone(),
        ent_id: session.tenant.ent_id.to_string(),
        agent_id: session.agent.id,
        agent_initial: initial(&session.agent.display_name),
        agent_name: session.agent.display_name.clone(),
        role_label: role_label(lang, &session.agent.role),
        is_admin: true,
        is_owner: session.agent.role == "owner",
        nav: "settings",
    };
    Ok((csrf, Page(page)).into_response())
}
