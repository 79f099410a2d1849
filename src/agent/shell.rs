//! What every page of the merchant's app shows around its content: the sidebar (who is
//! signed in, what they may open), the support-session banner and the billing banner.

use tenants::Tenant;

use super::{initial, role_label};
use crate::{
    auth::ctx::Door,
    auth::session::AgentSession,
    config::Config,
    http::{AppError, Role, csrf::CsrfToken},
    i18n::Lang,
    merchant::subscription::{self, Banner},
};

pub struct AppShell {
    pub csrf_token: String,
    pub tenant_name: String,
    pub ent_id: String,
    pub agent_id: i64,
    pub agent_name: String,
    pub agent_initial: String,
    /// The agent's photo in the sidebar (else the initial).
    pub agent_avatar: Option<String>,
    pub role_label: String,
    /// Owners and admins see admin-only entries (the server checks them anyway).
    pub is_admin: bool,
    /// The owner sees billing.
    pub is_owner: bool,
    /// The sidebar entry shown as current.
    pub nav: &'static str,
    /// The platform admin behind a support session (a banner says so).
    pub support_by: Option<String>,
    /// A line about billing (read-only, past due, conversations used up).
    pub billing_banner: Option<Banner>,
}

impl AppShell {
    pub async fn new(
        (door, config): (&Door, &Config),
        session: &AgentSession,
        lang: Lang,
        csrf: &CsrfToken,
        nav: &'static str,
    ) -> Result<Self, AppError> {
        let tenant: &Tenant = &session.tenant;
        let agent = &session.agent;
        Ok(Self {
            csrf_token: csrf.value().to_owned(),
            tenant_name: tenant.name.clone(),
            ent_id: tenant.ent_id.to_string(),
            agent_id: agent.id.0,
            agent_name: agent.display_name.clone(),
            agent_initial: initial(&agent.display_name),
            agent_avatar: agent.avatar_url.clone(),
            role_label: role_label(lang, agent.role),
            is_admin: session.is_admin(),
            is_owner: agent.role == Role::Owner,
            nav,
            support_by: session.impersonator.as_ref().map(|i| i.email.clone()),
            billing_banner: subscription::banner((door, config), session, lang).await?,
        })
    }
}
