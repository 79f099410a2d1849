//! Team management: admins add agents, change their role and capacity, disable them and
//! reset their passwords. Until email exists, a new agent's first password is generated
//! and shown once to the admin who created it.

use std::sync::Arc;

use crate::http::extract::PathId;
use crate::ids::AgentId;
use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};

use crate::{
    auth::ctx::{Admin, AdminOrSelf, Ctx},
    auth::{
        accounts::{self, Actor},
        links, password,
        session::AgentSession,
        sessions::{self, Reason, Which},
        store::{self, AgentWithEmail},
        validate::Email,
    },
    chat::store as chat_store,
    http::{AppError, Role, extract::ApiJson},
    i18n::Lang,
    merchant::{
        settings::{image_url, team_image},
        subscription::limits,
    },
    notify,
    platform::system::SystemCache,
    realtime::hub::Hub,
    realtime::{hub::Peer, protocol::AgentStatus},
};

/// Roles an admin can give through the API. Ownership is not handed out here.
const ASSIGNABLE_ROLES: &[Role] = &[Role::Admin, Role::Agent];
const MAX_CHATS: i32 = 1000;

/// The merchant's plan (an unknown id reads as the trial's limits).
fn plan_of<'a>(plans: &'a billing::Catalog, session: &AgentSession) -> &'a billing::Plan {
    plans.get(&session.tenant.plan).unwrap_or_else(|| plans.trial())
}

/// A display name: trimmed, 1–80 characters, no control characters.
pub fn display_name(raw: &str) -> Result<String, AppError> {
    // Visitors see it beside every reply: invisible and direction-changing characters go.
    let visible: String = raw.chars().filter(|c| !crate::http::input::is_invisible(*c)).collect();
    let name = visible.trim();
    if name.is_empty() {
        return Err(AppError::field("display_name", "the name is required"));
    }
    if name.chars().count() > 80 {
        return Err(AppError::field("display_name", "the name is at most 80 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(AppError::field("display_name", "the name contains invalid characters"));
    }
    Ok(name.to_owned())
}

fn role(raw: &str) -> Result<Role, AppError> {
    Role::parse(raw)
        .filter(|r| ASSIGNABLE_ROLES.contains(r))
        .ok_or_else(|| AppError::field("role", "role is one of admin, agent"))
}

fn max_chats(n: i32) -> Result<i32, AppError> {
    if (0..=MAX_CHATS).contains(&n) {
        Ok(n)
    } else {
        Err(AppError::field("max_concurrent_chats", "between 0 and 1000"))
    }
}

#[derive(Deserialize)]
pub struct NewAgent {
    email: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    max_concurrent_chats: Option<i32>,
}

#[derive(Serialize)]
struct CreatedAgent {
    agent: AgentWithEmail,
    /// The first password, shown this once — when the platform cannot send email.
    password: Option<String>,
    /// An invitation to choose a password went to the agent's email instead.
    invited: bool,
}

/// Adds an agent. With email, the new agent gets an invitation to choose a password;
/// without, the admin gets a first password to pass on.
pub async fn create_agent(
    State(plans): State<Arc<billing::Catalog>>,
    State(system): State<Arc<SystemCache>>,
    State(mail): State<notify::Mail>,
    Ctx { session, mut tx, .. }: Ctx<Admin>,
    lang: Lang,
    ApiJson(req): ApiJson<NewAgent>,
) -> Result<Response, AppError> {
    let email = Email::parse(&req.email)
        .map_err(|p| AppError::field("email", Lang::En.tr(p).to_owned()))?;
    let name = display_name(req.display_name.as_deref().unwrap_or(email.local_part()))?;
    let role = role(req.role.as_deref().unwrap_or("agent"))?;
    let max = max_chats(req.max_concurrent_chats.unwrap_or(10))?;
    let settings = system.get().await?;
    let invite = notify::enabled(&settings);
    // One more seat must be left on the plan (checked under a lock held until commit).
    limits::check_seat(&mut tx, session.tenant.id, plan_of(&plans, &session)).await?;
    let password = if invite { None } else { Some(password::generate()) };
    let (user_id, id) =
        insert_member(&mut tx, &session, &email, &name, role, password.as_deref()).await?;
    store::set_max_chats(&mut tx, id, max).await?;
    let agent = agent_with_email(&mut tx, AgentId(id)).await?.ok_or(AppError::NotFound)?;
    if invite {
        send_invitation(&mail, &mut tx, &session, lang, &settings, user_id, &email).await?;
    }
    crate::merchant::audit::commit(
        tx,
        &session,
        "agent.create",
        &agent.email,
        serde_json::json!({ "role": role, "invited": invite }),
    )
    .await?;
    if invite {
        mail.wake();
    }
    let (tenant, by) = (session.tenant.id.0, session.agent.id.0);
    tracing::info!(tenant, by, agent = id, invited = invite, "agent created");
    Ok((StatusCode::CREATED, Json(CreatedAgent { agent, password, invited: invite }))
        .into_response())
}

/// A new kefu user (with `password`, or none until they accept an invitation), a member of
/// the session's merchant and one of its agents; `(user id, agent id)`. An existing account
/// is not attached: that would give this merchant a say over a login other merchants rely
/// on (409 `email_taken`).
async fn insert_member(
    tx: &mut tenants::TenantTx,
    session: &AgentSession,
    email: &Email,
    name: &str,
    role: Role,
    password: Option<&str>,
) -> Result<(i64, i64), AppError> {
    let hash = match password {
        Some(p) => Some(password::hash(p.to_owned()).await?),
        None => None,
    };
    let user_id = match store::insert_user(tx, email, hash.as_deref(), name).await {
        Ok(id) => id,
        Err(e) if is_unique_violation(&e, "users_email_key") => {
            let why = "this email already has a kefu account";
            return Err(AppError::conflict("email_taken", Some("email"), why));
        }
        Err(e) => return Err(e.into()),
    };
    store::add_member(tx, session.tenant.id, user_id).await?;
    let id = store::insert_agent(tx, user_id, role.as_str(), name).await?;
    Ok((user_id, id))
}

/// Queues an invitation (in `tx`) for the agent `user` of the session's merchant.
async fn send_invitation(
    mail: &notify::Mail,
    tx: &mut sqlx::PgConnection,
    session: &AgentSession,
    lang: Lang,
    settings: &crate::platform::system::SystemSettings,
    user: i64,
    email: &Email,
) -> Result<(), AppError> {
    let ttl = chrono::Duration::days(links::INVITE_TTL_DAYS);
    let token = links::issue(tx, user, "invite", Some(session.tenant.id.0), ttl).await?;
    let invitation = links::invite_email(
        mail,
        lang,
        notify::site_name(settings),
        email,
        &session.tenant.name,
        &session.agent.display_name,
        &token,
    );
    notify::enqueue(
        tx,
        settings,
        lang,
        notify::Email { tenant_id: Some(session.tenant.id.0), ..invitation },
    )
    .await?;
    Ok(())
}

/// `POST /api/v1/agents/{id}/invite`: sends the invitation again (a new link; the old one
/// stops working), for an agent who has not chosen a password yet.
pub async fn resend_invitation(
    State(system): State<Arc<SystemCache>>,
    State(mail): State<notify::Mail>,
    Ctx { session, mut tx, .. }: Ctx<Admin>,
    lang: Lang,
    PathId(id): PathId<AgentId>,
) -> Result<StatusCode, AppError> {
    let target = store::agent_by_id(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    // An invitation lets whoever reads the mailbox choose the password: the same rule as
    // setting it.
    accounts::may_invite(&mut tx, &Actor::Merchant(&session), target.user_id).await?;
    let settings = system.get().await?;
    if !notify::enabled(&settings) {
        return Err(AppError::conflict(
            "email_unavailable",
            None,
            "this platform cannot send email",
        ));
    }
    let user = store::user_by_id(&mut tx, target.user_id).await?.ok_or(AppError::NotFound)?;
    if user.password_hash.is_some() {
        return Err(AppError::conflict(
            "already_joined",
            None,
            "this agent has chosen a password already",
        ));
    }
    let email = Email::parse(&user.email).map_err(|_| AppError::NotFound)?;
    send_invitation(&mail, &mut tx, &session, lang, &settings, user.id, &email).await?;
    crate::merchant::audit::commit(
        tx,
        &session,
        "agent.invite",
        &user.email,
        serde_json::json!({}),
    )
    .await?;
    mail.wake();
    Ok(StatusCode::NO_CONTENT)
}

fn is_unique_violation(e: &sqlx::Error, constraint: &str) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.constraint() == Some(constraint))
}

async fn agent_with_email(
    conn: &mut sqlx::PgConnection,
    id: AgentId,
) -> sqlx::Result<Option<AgentWithEmail>> {
    Ok(store::list_agents(conn).await?.into_iter().find(|a| a.agent.id == id))
}

#[derive(Deserialize)]
pub struct AgentChange {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    max_concurrent_chats: Option<i32>,
    #[serde(default)]
    disabled: Option<bool>,
    /// An image upload of the team's to show beside the agent's replies; empty removes it.
    #[serde(default)]
    avatar: Option<String>,
}

/// Agents rename themselves and choose their picture; everything else (and other agents)
/// is for admins. The owner
/// keeps their role and cannot be disabled; nobody disables themselves.
pub async fn update_agent(
    State(plans): State<Arc<billing::Catalog>>,
    State(chat): State<Arc<crate::chat::Chat>>,
    Ctx { session, mut tx, .. }: Ctx<AdminOrSelf>,
    PathId(id): PathId<AgentId>,
    ApiJson(req): ApiJson<AgentChange>,
) -> Result<Json<AgentWithEmail>, AppError> {
    let change = checked_change(&plans, &session, &mut tx, id, req).await?;
    let update = &change.update;
    store::update_agent(&mut tx, id, update).await?;
    // A disabled agent's open conversations go back to the queue for the rest of the team.
    let mut requeued = Vec::new();
    if update.disabled == Some(true) {
        for c in chat_store::requeue_agent(&mut tx, id).await? {
            requeued
                .extend(chat_store::conversation(&mut tx, crate::ids::ConversationId(c)).await?);
        }
    }
    let ended = end_sessions(&mut tx, &session, &change).await?;
    let agent = agent_with_email(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    if !change.only_own_profile {
        let detail = serde_json::json!({
            "role": update.role, "max_concurrent_chats": update.max_concurrent_chats,
            "disabled": update.disabled, "display_name": update.display_name,
            "avatar": update.avatar_url,
        });
        crate::merchant::audit::record(&mut tx, &session, "agent.update", &agent.email, detail)
            .await?;
    }
    tx.commit().await?;
    ended.close_sockets(&chat.hub);
    announce(&chat, session.tenant.id, &agent, update.disabled.is_some(), &requeued).await;
    Ok(Json(agent))
}

/// A change to agent `target`, checked: what to store, and whether it is only the caller's
/// own name and picture (which any agent may change).
struct Change {
    target: store::AgentRow,
    update: store::AgentUpdate,
    only_own_profile: bool,
}

/// Validates `req` and checks that the caller may make it: admins change anyone but the
/// owner's role and access; nobody disables themselves; re-enabling takes a seat.
async fn checked_change(
    plans: &billing::Catalog,
    session: &AgentSession,
    tx: &mut tenants::TenantTx,
    id: AgentId,
    req: AgentChange,
) -> Result<Change, AppError> {
    let name = req.display_name.as_deref().map(display_name).transpose()?;
    let new_role = req.role.as_deref().map(role).transpose()?;
    let max = req.max_concurrent_chats.map(max_chats).transpose()?;
    let target = store::agent_by_id(tx, id).await?.ok_or(AppError::NotFound)?;
    let only_own_profile =
        id == session.agent.id && new_role.is_none() && max.is_none() && req.disabled.is_none();
    if !only_own_profile {
        session.require(Role::Admin)?;
    }
    let avatar = match &req.avatar {
        Some(raw) => {
            let ent_id = &session.tenant.ent_id;
            let upload = team_image(tx, ent_id, "avatar", raw).await?;
            Some(image_url(ent_id, &upload).unwrap_or_default())
        }
        None => None,
    };
    if target.role == Role::Owner && (new_role.is_some() || req.disabled == Some(true)) {
        return Err(AppError::forbidden("owner_protected", "the owner's role and access stay"));
    }
    if id == session.agent.id && req.disabled == Some(true) {
        return Err(AppError::conflict("cannot_disable_self", None, "you cannot disable yourself"));
    }
    // Re-enabling takes a seat again.
    if req.disabled == Some(false) && store::is_disabled(tx, id).await? {
        limits::check_seat(tx, session.tenant.id, plan_of(plans, session)).await?;
    }
    let update = store::AgentUpdate {
        display_name: name,
        role: new_role,
        max_concurrent_chats: max,
        disabled: req.disabled,
        avatar_url: avatar,
    };
    Ok(Change { target, update, only_own_profile })
}

/// A new role or lost access ends the person's sessions here: they sign in again to the
/// workspace as it now is for them (and their sockets close once the change commits).
async fn end_sessions(
    tx: &mut tenants::TenantTx,
    session: &AgentSession,
    change: &Change,
) -> Result<sessions::Ended, AppError> {
    let disabled = change.update.disabled == Some(true);
    if !disabled && change.update.role.is_none_or(|r| r == change.target.role) {
        return Ok(sessions::Ended::default());
    }
    let reason = if disabled { Reason::Disabled } else { Reason::RoleChanged };
    let which = Which::InTenant { user_id: change.target.user_id, tenant: session.tenant.id };
    Ok(sessions::end(tx, which, reason).await?)
}

/// Tells the team what changed: the agent's status when their access did (a disabled
/// agent's sockets close), and the conversations handed back to the queue.
async fn announce(
    chat: &crate::chat::Chat,
    tenant: tenants::TenantId,
    agent: &AgentWithEmail,
    access_changed: bool,
    requeued: &[chat_store::ConversationRow],
) {
    let id = agent.agent.id;
    if access_changed {
        let status = if agent.disabled { AgentStatus::Offline } else { agent_status(agent) };
        chat.remember_status(tenant, id.0, status).await;
        if agent.disabled {
            chat.hub.revoke(tenant, Peer::Agent(id.0));
        }
        if let Err(e) = chat.publish_agent_presence(tenant, id.0).await {
            tracing::warn!(error = %e, "publishing presence after an agent change failed");
        }
    }
    for row in requeued {
        chat.announce(tenant, "transferred", row);
    }
}

fn agent_status(agent: &AgentWithEmail) -> AgentStatus {
    AgentStatus::parse(&agent.agent.status)
}

#[derive(Serialize)]
struct NewPassword {
    password: String,
}

/// The agent `id` of this merchant (404 otherwise); auth::accounts decides whether the
/// admin may change their sign-in.
async fn agent(tx: &mut tenants::TenantTx, id: AgentId) -> Result<store::AgentRow, AppError> {
    store::agent_by_id(tx, id).await?.ok_or(AppError::NotFound)
}

/// After an admin reset `target`'s sign-in (`action`, audit-logged in `tx`, which commits):
/// the sessions it ended lose their sockets.
async fn reset(
    tx: tenants::TenantTx,
    session: &AgentSession,
    target: &store::AgentRow,
    action: &'static str,
    changed: accounts::Changed,
    hub: &Hub,
) -> Result<(), AppError> {
    let detail = serde_json::json!({});
    crate::merchant::audit::commit(tx, session, action, &target.display_name, detail).await?;
    changed.ended.close_sockets(hub);
    let (tenant, by, agent) = (session.tenant.id.0, session.agent.id.0, target.id.0);
    tracing::info!(tenant, by, agent, action, "an agent's sign-in was reset");
    Ok(())
}

/// A new generated password for an agent, shown once; their sessions end.
pub async fn reset_password(
    State(hub): State<Arc<Hub>>,
    Ctx { session, mut tx, .. }: Ctx<Admin>,
    PathId(id): PathId<AgentId>,
) -> Result<Response, AppError> {
    let target = agent(&mut tx, id).await?;
    let password = password::generate();
    let hash = password::hash(password.clone()).await?;
    let changed =
        accounts::set_password(&mut tx, &Actor::Merchant(&session), target.user_id, &hash).await?;
    reset(tx, &session, &target, "agent.reset_password", changed, &hub).await?;
    Ok(Json(NewPassword { password }).into_response())
}

/// Turns off the two-step verification of an agent who lost their authenticator and their
/// recovery codes; they sign in with their password again (and set it up anew where the
/// merchant requires it). Platform admins' factors guard the console and stay.
pub async fn reset_two_factor(
    State(hub): State<Arc<Hub>>,
    Ctx { session, mut tx, .. }: Ctx<Admin>,
    PathId(id): PathId<AgentId>,
) -> Result<StatusCode, AppError> {
    let target = agent(&mut tx, id).await?;
    if target.user_id == session.user_id {
        // One's own factor goes off only with a code (the profile), so a stolen session
        // cannot remove it.
        return Err(AppError::conflict(
            "own_factor",
            None,
            "turn your own two-step verification off in your profile, with a code",
        ));
    }
    let changed =
        accounts::clear_two_factor(&mut tx, &Actor::Merchant(&session), target.user_id).await?;
    reset(tx, &session, &target, "agent.reset_2fa", changed, &hub).await?;
    Ok(StatusCode::NO_CONTENT)
}
