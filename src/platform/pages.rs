//! The console's pages. Reading is server-rendered (lists, filters and paging work without
//! JavaScript); actions call the JSON API through `static/js/platform.js`, so whatever the
//! pages do, an API client can do too.

use super::Platform;
use crate::http::extract::PathId;
use askama::Template;
use axum::{
    extract::{FromRequestParts, Query, State},
    http::request::Parts,
    response::{IntoResponse, Redirect, Response},
};
use tenants::TenantId;

use super::{
    PlatformSession,
    announcements::{self, Row as AnnouncementRow},
    audit::{self, AuditQuery, Entry as AuditEntry},
    dashboard::{self, Dashboard},
    merchants::{self, ListQuery, MerchantDetail, MerchantList},
    system::{SmtpSecurity, SystemSettings},
};
use crate::{
    http::{AppError, Page, csrf::CsrfToken},
    i18n::Lang,
};

/// The signed-in admin of a console page; without a session, a redirect to the console
/// login that comes back to this page afterwards.
pub(super) struct Console(PlatformSession);

impl<S> FromRequestParts<S> for Console
where
    S: Send + Sync,
    std::sync::Arc<crate::auth::ctx::Door>: axum::extract::FromRef<S>,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match PlatformSession::from_request_parts(parts, state).await {
            Ok(s) => Ok(Self(s)),
            Err(AppError::Unauthorized) => {
                let here = parts.uri.path_and_query().map_or("/platform", |p| p.as_str());
                let next = serde_urlencoded::to_string([("next", here)]).unwrap_or_default();
                Err(Redirect::to(&format!("/platform/login?{next}")).into_response())
            }
            Err(e) => Err(e.into_response()),
        }
    }
}

/// What every console page shows around its content.
struct Shell {
    csrf_token: String,
    admin_email: String,
    nav: &'static str,
}

impl Shell {
    fn new(csrf: &CsrfToken, admin: &PlatformSession, nav: &'static str) -> Self {
        Self { csrf_token: csrf.value().to_owned(), admin_email: admin.email.clone(), nav }
    }
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

// ---------------------------------------------------------------------------------------
// Dashboard

/// One bar of a server-drawn chart.
struct Bar {
    x: u32,
    y: u32,
    height: u32,
    label: String,
    value: i64,
}

const CHART_HEIGHT: u32 = 140;
const BAR_STEP: u32 = 40;

fn bars(days: &[dashboard::Day], value: fn(&dashboard::Day) -> i64) -> Vec<Bar> {
    let max = days.iter().map(value).max().unwrap_or(0).max(1);
    days.iter()
        .enumerate()
        .map(|(i, d)| {
            let v = value(d);
            let height = ((v as f64 / max as f64) * f64::from(CHART_HEIGHT - 10)).round() as u32;
            Bar {
                x: i as u32 * BAR_STEP + 8,
                y: CHART_HEIGHT - height,
                height,
                label: d.day.format("%m-%d").to_string(),
                value: v,
            }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "platform/dashboard.html")]
struct DashboardPage {
    lang: Lang,
    shell: Shell,
    data: Dashboard,
    message_bars: Vec<Bar>,
    conversation_bars: Vec<Bar>,
    chart_width: u32,
    chart_height: u32,
    recent: Vec<AuditEntry>,
}

pub(super) async fn dashboard_page(
    State(state): State<Platform>,
    lang: Lang,
    csrf: CsrfToken,
    Console(admin): Console,
) -> Result<Response, AppError> {
    let data = dashboard::load(&state).await?;
    let recent =
        audit::search(&state.door.db, &AuditQuery { limit: Some(8), ..Default::default() })
            .await?
            .entries;
    let page = DashboardPage {
        lang,
        shell: Shell::new(&csrf, &admin, "dashboard"),
        message_bars: bars(&data.days, |d| d.messages),
        conversation_bars: bars(&data.days, |d| d.conversations),
        chart_width: data.days.len() as u32 * BAR_STEP + 16,
        chart_height: CHART_HEIGHT + 24,
        data,
        recent,
    };
    Ok((csrf, Page(page)).into_response())
}

// ---------------------------------------------------------------------------------------
// Merchants

#[derive(Template)]
#[template(path = "platform/merchants.html")]
struct MerchantsPage {
    lang: Lang,
    shell: Shell,
    list: MerchantList,
    q: String,
    plan: String,
    status: String,
    plans: Vec<String>,
    error: Option<String>,
    /// The query string for page links (without `page`).
    filter_query: String,
}

pub(super) async fn merchants_page(
    State(state): State<Platform>,
    lang: Lang,
    csrf: CsrfToken,
    Console(admin): Console,
    Query(q): Query<ListQuery>,
) -> Result<Response, AppError> {
    let (list, error) = match merchants::search(&state, &q).await {
        Ok(list) => (list, None),
        // A hand-edited filter: show everything and say so.
        Err(AppError::Validation(_)) => (
            merchants::search(&state, &ListQuery::default()).await?,
            Some(lang.tr("platform.merchants.bad_filter").to_owned()),
        ),
        Err(e) => return Err(e),
    };
    let filter_query = serde_urlencoded::to_string([
        ("q", q.q.clone().unwrap_or_default()),
        ("plan", q.plan.clone().unwrap_or_default()),
        ("status", q.status.clone().unwrap_or_default()),
    ])
    .unwrap_or_default();
    let page = MerchantsPage {
        lang,
        shell: Shell::new(&csrf, &admin, "merchants"),
        list,
        q: q.q.unwrap_or_default(),
        plan: q.plan.unwrap_or_default(),
        status: q.status.unwrap_or_default(),
        plans: merchants::plan_ids(&state.door.plans),
        error,
        filter_query,
    };
    Ok((csrf, Page(page)).into_response())
}

#[derive(Template)]
#[template(path = "platform/merchant.html")]
struct MerchantPage {
    lang: Lang,
    shell: Shell,
    m: MerchantDetail,
    plans: Vec<String>,
    storage_human: String,
    storage_limit_human: String,
    seats_pct: u32,
    conversations_pct: u32,
    storage_pct: u32,
    grace_days: u32,
}

fn percent(used: i64, limit: Option<u64>) -> u32 {
    match limit {
        Some(l) if l > 0 => ((used.max(0) as f64 / l as f64) * 100.0).round().min(100.0) as u32,
        _ => 0,
    }
}

pub(super) async fn merchant_page(
    State(state): State<Platform>,
    lang: Lang,
    csrf: CsrfToken,
    Console(admin): Console,
    PathId(id): PathId<TenantId>,
) -> Result<Response, AppError> {
    let m = merchants::detail(&state, id).await?;
    let u = &m.usage;
    let page = MerchantPage {
        lang,
        shell: Shell::new(&csrf, &admin, "merchants"),
        plans: merchants::plan_ids(&state.door.plans),
        storage_human: human_bytes(u.storage_bytes.max(0) as u64),
        storage_limit_human: u.storage_limit.map(human_bytes).unwrap_or_default(),
        seats_pct: percent(u.seats_used, u.seats.map(u64::from)),
        conversations_pct: percent(u.conversations_month, u.conversations_limit.map(u64::from)),
        storage_pct: percent(u.storage_bytes, u.storage_limit),
        grace_days: state.config.deleted_grace_days,
        m,
    };
    Ok((csrf, Page(page)).into_response())
}

// ---------------------------------------------------------------------------------------
// Announcements, settings, audit

#[derive(Template)]
#[template(path = "platform/announcements.html")]
struct AnnouncementsPage {
    lang: Lang,
    shell: Shell,
    announcements: Vec<AnnouncementRow>,
    plans: Vec<String>,
}

pub(super) async fn announcements_page(
    State(state): State<Platform>,
    lang: Lang,
    csrf: CsrfToken,
    Console(admin): Console,
) -> Result<Response, AppError> {
    let page = AnnouncementsPage {
        lang,
        shell: Shell::new(&csrf, &admin, "announcements"),
        announcements: announcements::all(&state.door.db).await?,
        plans: merchants::plan_ids(&state.door.plans),
    };
    Ok((csrf, Page(page)).into_response())
}

#[derive(Template)]
#[template(path = "platform/settings.html")]
struct SettingsPage {
    lang: Lang,
    shell: Shell,
    s: SystemSettings,
    providers: Vec<super::identity_providers::ProviderView>,
    /// Where the callback of a provider with this slug will be (shown while adding one).
    callback_base: String,
}

pub(super) async fn settings_page(
    State(state): State<Platform>,
    lang: Lang,
    csrf: CsrfToken,
    Console(admin): Console,
) -> Result<Response, AppError> {
    let page = SettingsPage {
        lang,
        shell: Shell::new(&csrf, &admin, "settings"),
        s: SystemSettings::load(&state.door.db).await?,
        providers: super::identity_providers::all(&state).await?,
        callback_base: state.mail.link("/auth/oauth/"),
    };
    Ok((csrf, Page(page)).into_response())
}

#[derive(Template)]
#[template(path = "platform/audit.html")]
struct AuditPageT {
    lang: Lang,
    shell: Shell,
    entries: Vec<AuditEntry>,
    q: String,
    next_link: Option<String>,
}

pub(super) async fn audit_page(
    State(state): State<Platform>,
    lang: Lang,
    csrf: CsrfToken,
    Console(admin): Console,
    Query(q): Query<AuditQuery>,
) -> Result<Response, AppError> {
    let page_data = audit::search(&state.door.db, &q).await?;
    let text = q.q.clone().unwrap_or_default();
    let next_link = page_data.next_before.map(|before| {
        let query =
            serde_urlencoded::to_string([("q", text.clone()), ("before", before.to_string())])
                .unwrap_or_default();
        format!("/platform/audit?{query}")
    });
    let page = AuditPageT {
        lang,
        shell: Shell::new(&csrf, &admin, "audit"),
        entries: page_data.entries,
        q: text,
        next_link,
    };
    Ok((csrf, Page(page)).into_response())
}
