//! `/app/settings`: the merchant's settings pages (admins). The page is a shell; its
//! sections work through the JSON API (team, quick replies, blacklist), so what the page
//! can do, an API client can do too.

use std::sync::Arc;

use askama::Template;
use axum::extract::FromRef;
use axum::{
    extract::State,
    response::{IntoResponse, Redirect, Response},
};

use crate::{
    auth::ctx::Door,
    auth::ctx::{Admin, Ctx},
    config::Config,
    http::{AppError, Page, Routes, Scope, csrf::CsrfToken},
    i18n::Lang,
    merchant::settings::{MerchantSettings, Position},
};

pub fn routes<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Door>: FromRef<S>,
    Arc<Config>: FromRef<S>,
{
    Routes::new().get("/app/settings", Scope::Tenant, settings_page).admin()
}

#[derive(Template)]
#[template(path = "app/settings.html")]
struct SettingsPage {
    lang: Lang,
    shell: super::shell::AppShell,
    /// Where kefu is reached (for the integration examples).
    base_url: String,
    chat_link: String,
    kefu_snippet: String,
    gofly_snippet: String,
    /// What the merchant's plan includes (sections it does not include say so).
    features: billing::Features,
    plan_name: String,
}

impl SettingsPage {
    /// "Single sign-on is not part of the Starter plan."
    fn not_in_plan(&self, feature_key: &str) -> String {
        crate::auth::links::fill(
            self.lang.tr("settings.not_in_plan"),
            &[("feature", self.lang.tr(feature_key)), ("plan", &self.plan_name)],
        )
    }
}

/// The embed codes for this merchant, with its widget settings filled in (values are
/// JSON-encoded, so a button text cannot break out of the script).
fn snippets(base: &str, ent_id: &str, s: &MerchantSettings) -> (String, String) {
    // A JS string literal that cannot close the script element it sits in.
    let js = |v: &str| serde_json::to_string(v).unwrap_or_default().replace('<', "\\u003c");
    let mut options =
        format!("url: {}, entId: {}, color: {}", js(base), js(ent_id), js(&s.widget_color));
    if s.widget_position == Position::Left {
        options.push_str(", position: \"left\"");
    }
    if !s.widget_button_text.is_empty() {
        options.push_str(&format!(", buttonText: {}", js(&s.widget_button_text)));
    }
    let kefu = format!(
        "<script src={}></script>\n<script>\n  Kefu.init({{ {options} }});\n</script>",
        js(&format!("{base}/static/js/widget.js"))
    );
    let button = if s.widget_button_text.is_empty() {
        "在线咨询"
    } else {
        s.widget_button_text.as_str()
    };
    let gofly = format!(
        "<!--对接客服代码-->\n<script src={}></script>\n<script>\n    GOFLY.init({{\n        GOFLY_URL: {},\n        GOFLY_KEFU_ID: \"\",\n        GOFLY_ENT: {},\n        GOFLY_BTN_TEXT: {},\n        GOFLY_EXTRA: {{}}\n    }})\n</script>\n<!--//对接客服代码-->",
        js(&format!("{base}/static/js/gofly-front.js")),
        js(base),
        js(ent_id),
        js(button)
    );
    (kefu, gofly)
}

async fn settings_page(
    State(door): State<Arc<Door>>,
    State(config): State<Arc<Config>>,
    lang: Lang,
    csrf: CsrfToken,
    ctx: Result<Ctx<Admin>, AppError>,
) -> Result<Response, AppError> {
    let Ctx { session, mut tx, .. } = match ctx {
        Ok(ctx) => ctx,
        Err(AppError::Unauthorized) => {
            return Ok(Redirect::to("/login?next=/app/settings").into_response());
        }
        Err(e) => return Err(e),
    };
    let settings = MerchantSettings::load(&mut tx).await?;
    tx.commit().await?;
    let base = config.display_url(config.port);
    let ent_id = session.tenant.ent_id.to_string();
    let (kefu_snippet, gofly_snippet) = snippets(&base, &ent_id, &settings);
    let plan = door.plans.get(&session.tenant.plan).unwrap_or_else(|| door.plans.trial());
    let page = SettingsPage {
        features: plan.features,
        plan_name: plan.name.clone(),
        shell: super::shell::AppShell::new((&door, &config), &session, lang, &csrf, "settings")
            .await?,
        chat_link: format!("{base}/chatIndex?ent_id={ent_id}"),
        base_url: base.clone(),
        kefu_snippet,
        gofly_snippet,
        lang,
    };
    Ok((csrf, Page(page)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_escape_what_merchants_type() {
        let s = MerchantSettings {
            widget_button_text: "</script><script>alert(1)</script>".into(),
            widget_position: Position::Left,
            ..MerchantSettings::default()
        };
        let (kefu, gofly) = snippets("https://chat.example.com", "abc123", &s);
        assert!(kefu.contains(r#"entId: "abc123""#));
        assert!(kefu.contains(r#"position: "left""#));
        assert!(!kefu.contains("</script><script>"), "{kefu}");
        assert!(gofly.contains(r#"GOFLY_ENT: "abc123""#));
        assert!(!gofly.contains("</script><script>alert"), "{gofly}");
    }
}
