//! The agent side: the workspace page and the agent's own API (who am I, my team), team
//! management, quick replies and announcements.

pub mod announcements;
mod quick_replies;
mod settings;
pub mod shell;
pub mod team;

use std::sync::Arc;

use crate::http::extract::PathId;
use crate::ids::AgentId;
use crate::realtime::bus::Caches;
use askama::Template;
use axum::extract::FromRef;
use axum::{
    Json,
    extract::State,
    response::{IntoResponse, Redirect, Response},
};
use serde::Serialize;
use tenants::EntId;

use crate::{
    auth::ctx::Door,
    auth::ctx::{Agent, ApiToken, Ctx, Read},
    auth::store::{self, AgentRow, AgentWithEmail, Membership},
    config::Config,
    http::{AppError, Page, Routes, Scope, csrf::CsrfToken},
    i18n::Lang,
};

/// The OpenAPI description of these routes' API part (http::openapi).
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_agents, get_agent))]
pub(crate) struct Doc;

pub fn routes<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Door>: FromRef<S>,
    Arc<Config>: FromRef<S>,
    Arc<crate::chat::Chat>: FromRef<S>,
    Arc<crate::platform::system::SystemCache>: FromRef<S>,
    crate::notify::Mail: FromRef<S>,
    Caches: FromRef<S>,
    Arc<billing::Catalog>: FromRef<S>,
    Arc<crate::realtime::hub::Hub>: FromRef<S>,
    sqlx::PgPool: FromRef<S>,
{
    Routes::new()
        .get("/app", Scope::Tenant, workspace::<false>)
        .get("/app/m", Scope::Tenant, workspace::<true>)
        .get("/main", Scope::Public, |q: axum::extract::RawQuery| async move {
            // GOFLY's agent home. Keep the query (e.g. an ent_id) so the app can check it.
            Redirect::to(&q.0.map_or_else(|| "/app".to_owned(), |q| format!("/app?{q}")))
        })
        .get("/api/v1/me", Scope::Tenant, me)
        .get("/api/v1/agents", Scope::Tenant, list_agents)
        .api()
        .post("/api/v1/agents", Scope::Tenant, team::create_agent)
        .admin()
        .get("/api/v1/agents/{id}", Scope::Tenant, get_agent)
        .api()
        .patch("/api/v1/agents/{id}", Scope::Tenant, team::update_agent)
        .admin()
        .post("/api/v1/agents/{id}/reset_password", Scope::Tenant, team::reset_password)
        .admin()
        .post("/api/v1/agents/{id}/reset_2fa", Scope::Tenant, team::reset_two_factor)
        .admin()
        .post("/api/v1/agents/{id}/invite", Scope::Tenant, team::resend_invitation)
        .admin()
        .merge(quick_replies::routes())
        .merge(settings::routes())
        .merge(announcements::routes())
}

#[derive(Template)]
#[template(path = "app/workspace.html")]
struct Workspace {
    lang: Lang,
    shell: shell::AppShell,
    /// The phone layout (`/app/m`).
    phone: bool,
    trial_days_left: Option<i64>,
    chat_link: String,
    widget_code: String,
    agents: Vec<TeamMember>,
    /// Published platform announcements, newest first (a banner on the home page).
    announcements: Vec<announcements::Announcement>,
}

struct TeamMember {
    display_name: String,
    email: String,
    initial: String,
    role_label: String,
}

pub(crate) fn initial(name: &str) -> String {
    name.chars().next().map(|c| c.to_uppercase().to_string()).unwrap_or_else(|| "?".into())
}

pub(crate) fn role_label(lang: Lang, role: crate::http::Role) -> String {
    lang.tr(&format!("app.role_{role}")).to_owned()
}

/// The agent workspace: `/app`, and `/app/m` (`PHONE`) the same for phones, conversations
/// first (list, then one chat) and without the onboarding cards.
async fn workspace<const PHONE: bool>(
    State(door): State<Arc<Door>>,
    State(config): State<Arc<Config>>,
    lang: Lang,
    csrf: CsrfToken,
    ctx: Result<Ctx<Agent>, AppError>,
) -> Result<Response, AppError> {
    render_workspace((&door, &config), lang, csrf, ctx, PHONE).await
}

impl TeamMember {
    fn new(lang: Lang, a: AgentWithEmail) -> Self {
        Self {
            initial: initial(&a.agent.display_name),
            role_label: role_label(lang, a.agent.role),
            display_name: a.agent.display_name,
            email: a.email,
        }
    }
}

/// Whole days (rounded up) until a merchant on the trial plan must choose one.
fn trial_days_left(tenant: &tenants::Tenant) -> Option<i64> {
    let left = |end: chrono::DateTime<chrono::Utc>| (end - chrono::Utc::now()).num_seconds();
    tenant
        .trial_ends_at
        .map(|end| (left(end).max(0) + 86_399) / 86_400)
        .filter(|_| tenant.plan == "trial")
}

async fn render_workspace(
    (door, config): (&Door, &Config),
    lang: Lang,
    csrf: CsrfToken,
    ctx: Result<Ctx<Agent>, AppError>,
    phone: bool,
) -> Result<Response, AppError> {
    let home = if phone { "/app/m" } else { "/app" };
    let Ctx { session, mut tx, .. } = match ctx {
        Ok(ctx) => ctx,
        Err(AppError::Unauthorized) => {
            return Ok(Redirect::to(&format!("/login?next={home}")).into_response());
        }
        Err(e) => return Err(e),
    };
    let team = store::list_agents(&mut tx).await?;
    tx.commit().await?;
    let announcements =
        announcements::for_agent(&door.db, session.user_id, &session.tenant.plan, 3).await?;
    let base = config.display_url(config.port);
    let ent_id = session.tenant.ent_id.to_string();
    let page = Workspace {
        lang,
        shell: shell::AppShell::new((door, config), &session, lang, &csrf, "home").await?,
        phone,
        chat_link: format!("{base}/chatIndex?ent_id={ent_id}"),
        widget_code: format!(
            "<script src=\"{base}/static/js/widget.js\"></script>\n<script>\n  Kefu.init({{ url: \"{base}\", entId: \"{ent_id}\" }});\n</script>"
        ),
        trial_days_left: trial_days_left(&session.tenant),
        agents: team
            .into_iter()
            .filter(|a| !a.disabled)
            .map(|a| TeamMember::new(lang, a))
            .collect(),
        announcements,
    };
    Ok((csrf, Page(page)).into_response())
}

#[derive(Serialize)]
struct Me {
    user: MeUser,
    agent: AgentRow,
    tenant: MeTenant,
    /// Every workspace this user can switch to.
    tenants: Vec<Membership>,
}

#[derive(Serialize)]
struct MeUser {
    id: i64,
    email: String,
    display_name: String,
}

#[derive(Serialize)]
struct MeTenant {
    ent_id: EntId,
    name: String,
    plan: String,
    status: tenants::TenantStatus,
    trial_ends_at: Option<chrono::DateTime<chrono::Utc>>,
}

async fn me(
    State(door): State<Arc<Door>>,
    Ctx { session, mut tx, .. }: Ctx<Agent>,
) -> Result<Json<Me>, AppError> {
    let user = store::user_by_id(&mut tx, session.user_id).await?.ok_or(AppError::Unauthorized)?;
    tx.commit().await?;
    let tenants = store::memberships(&door.db, session.user_id).await?;
    let t = &session.tenant;
    Ok(Json(Me {
        user: MeUser { id: user.id, email: user.email, display_name: user.display_name },
        agent: session.agent.clone(),
        tenant: MeTenant {
            ent_id: t.ent_id.clone(),
            name: t.name.clone(),
            plan: t.plan.clone(),
            status: t.status,
            trial_ends_at: t.trial_ends_at,
        },
        tenants,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
struct AgentList {
    agents: Vec<AgentWithEmail>,
}

#[utoipa::path(get, path = "/api/v1/agents", tag = "agents", responses((status = 200, body = AgentList), (status = "default", description = "An error: `{\"error\": {code, message, fields?}}` (docs/api.md)", body = crate::http::openapi::ErrorBody)))]
async fn list_agents(Ctx { mut tx, .. }: Ctx<ApiToken<Read>>) -> Result<Json<AgentList>, AppError> {
    let agents = store::list_agents(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(AgentList { agents }))
}

#[utoipa::path(get, path = "/api/v1/agents/{id}", tag = "agents", params(("id" = String, Path, description = "The agent id")), responses((status = 200, body = crate::auth::store::AgentRow), (status = "default", description = "An error: `{\"error\": {code, message, fields?}}` (docs/api.md)", body = crate::http::openapi::ErrorBody)))]
async fn get_agent(
    Ctx { mut tx, .. }: Ctx<ApiToken<Read>>,
    PathId(id): PathId<AgentId>,
) -> Result<Json<AgentRow>, AppError> {
    // A malformed id cannot name anything: 404, like an id of another tenant.
    let agent = store::agent_by_id(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(Json(agent))
}
