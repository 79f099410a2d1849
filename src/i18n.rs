//! Languages and message catalogs (`locales/*.toml`, compiled into the binary).
//!
//! A page's language is, in order: `?lang=`, the `kefu_lang` cookie (set whenever `?lang=`
//! is used), the browser's `Accept-Language`, then the platform's default language (system
//! settings), then English.

use std::{collections::HashMap, sync::LazyLock};

use axum::{
    extract::{FromRequestParts, Request},
    http::{HeaderValue, header, request::Parts},
    middleware::Next,
    response::Response,
};

const COOKIE: &str = "kefu_lang";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    ZhCn,
}

type Catalog = HashMap<String, String>;

static EN: LazyLock<Catalog> = LazyLock::new(|| load(include_str!("../locales/en.toml")));
static ZH_CN: LazyLock<Catalog> = LazyLock::new(|| load(include_str!("../locales/zh-CN.toml")));

fn load(source: &str) -> Catalog {
    fn flatten(prefix: &str, table: &toml::Table, out: &mut Catalog) {
        for (key, value) in table {
            let key = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
            match value {
                toml::Value::Table(t) => flatten(&key, t, out),
                toml::Value::String(s) => {
                    out.insert(key, s.clone());
                }
                other => panic!("catalog entry {key} is not a string: {other:?}"),
            }
        }
    }
    let table: toml::Table = source.parse().expect("message catalogs are valid TOML");
    let mut out = Catalog::new();
    flatten("", &table, &mut out);
    out
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::En, Lang::ZhCn];

    /// The BCP 47 tag.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::ZhCn => "zh-CN",
        }
    }

    /// Understands `en`, `en-US`, `zh`, `zh-CN`, `zh-Hans`, `zh_cn`, … (case-insensitive).
    pub fn parse(tag: &str) -> Option<Lang> {
        let tag = tag.trim().to_ascii_lowercase();
        let primary = tag.split(['-', '_']).next().unwrap_or_default();
        match primary {
            "en" => Some(Lang::En),
            "zh" | "cn" => Some(Lang::ZhCn),
            _ => None,
        }
    }

    /// The first supported language of an `Accept-Language` header, by quality.
    pub fn from_accept_language(header: &str) -> Option<Lang> {
        let mut choices: Vec<(f32, Lang)> = header
            .split(',')
            .filter_map(|part| {
                let mut pieces = part.split(';');
                let lang = Lang::parse(pieces.next()?)?;
                let q = pieces
                    .find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.parse::<f32>().ok()))
                    .unwrap_or(1.0);
                (q > 0.0).then_some((q, lang))
            })
            .collect();
        // Stable sort keeps the header's order among equal weights.
        choices.sort_by(|a, b| b.0.total_cmp(&a.0));
        choices.first().map(|(_, l)| *l)
    }

    fn catalog(self) -> &'static Catalog {
        match self {
            Lang::En => &EN,
            Lang::ZhCn => &ZH_CN,
        }
    }

    /// The message for `key`; the English one if this catalog lacks it; the key itself if
    /// both do (visible, so a missing string is noticed, and caught by tests).
    pub fn tr<'a>(&self, key: &'a str) -> &'a str
    where
        'static: 'a,
    {
        self.catalog().get(key).or_else(|| EN.get(key)).map_or(key, String::as_str)
    }

    fn from_parts(parts: &Parts) -> Lang {
        Self::chosen(parts)
            .or_else(|| parts.extensions.get::<PlatformDefaultLang>().map(|d| d.0))
            .unwrap_or_default()
    }

    /// The language the request asks for (`?lang=`, the remembered choice, then
    /// `Accept-Language`), or `None` when it asks for none kefu speaks.
    fn chosen(parts: &Parts) -> Option<Lang> {
        let query = parts.uri.query().unwrap_or_default();
        if let Some(lang) = query_lang(query) {
            return Some(lang);
        }
        let cookie = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| c.trim().strip_prefix("kefu_lang=").and_then(Lang::parse));
        if let Some(lang) = cookie {
            return Some(lang);
        }
        parts
            .headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .and_then(Lang::from_accept_language)
    }
}

tokio::task_local! {
    /// The platform's name (system settings, `site_title`) while a request is handled: set
    /// by the same middleware as [`PlatformDefaultLang`], read by every page's template.
    static SITE_TITLE: std::sync::Arc<str>;
}

/// Runs `f` (a request's handling) with `title` as the platform's name its pages show.
pub async fn with_site_title<F: std::future::Future>(
    title: std::sync::Arc<str>,
    f: F,
) -> F::Output {
    SITE_TITLE.scope(title, f).await
}

/// `key` in `lang`, with `{site}` replaced by the platform's name (e.g. "Log in to {site}").
pub fn tr_site(lang: Lang, key: &str) -> String {
    lang.tr(key).replace("{site}", &site_title())
}

/// The platform's name as pages show it ("kefu" unless the operator named it otherwise).
pub fn site_title() -> std::sync::Arc<str> {
    SITE_TITLE.try_with(std::sync::Arc::clone).unwrap_or_else(|_| std::sync::Arc::from("kefu"))
}

/// The platform's default language (system settings), for requests that ask for none; put
/// in the request extensions by a middleware.
#[derive(Clone, Copy, Debug)]
pub struct PlatformDefaultLang(pub Lang);

/// The language a request asks for, if any: pages with a default of their own (a merchant's
/// chat page) fall back to it instead of English.
pub struct ChosenLang(pub Option<Lang>);

impl<S: Send + Sync> FromRequestParts<S> for ChosenLang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ChosenLang(Lang::chosen(parts)))
    }
}

fn query_lang(query: &str) -> Option<Lang> {
    query.split('&').find_map(|pair| pair.strip_prefix("lang=").and_then(Lang::parse))
}

impl<S: Send + Sync> FromRequestParts<S> for Lang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Lang::from_parts(parts))
    }
}

/// Middleware: remembers an explicit `?lang=` choice in a cookie for later pages.
pub async fn remember_choice(request: Request, next: Next) -> Response {
    let chosen = request.uri().query().and_then(query_lang);
    let mut response = next.run(request).await;
    if let Some(lang) = chosen {
        let cookie = format!("{COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax", lang.code());
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogs_have_the_same_keys() {
        let mut en: Vec<_> = EN.keys().collect();
        let mut zh: Vec<_> = ZH_CN.keys().collect();
        en.sort();
        zh.sort();
        assert_eq!(en, zh, "en.toml and zh-CN.toml must define the same keys");
    }

    #[test]
    fn every_key_used_in_templates_exists() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/templates");
        let mut missing = Vec::new();
        for path in walk(std::path::Path::new(dir)) {
            let text = std::fs::read_to_string(&path).unwrap();
            for piece in text.split("tr(\"").skip(1) {
                let key = piece.split('"').next().unwrap();
                if !EN.contains_key(key) {
                    missing.push(format!("{}: {key}", path.display()));
                }
            }
        }
        assert!(missing.is_empty(), "keys missing from the catalogs: {missing:#?}");
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() { out.extend(walk(&path)) } else { out.push(path) }
        }
        out
    }

    #[test]
    fn negotiation() {
        assert_eq!(Lang::from_accept_language("zh-CN,zh;q=0.9,en;q=0.8"), Some(Lang::ZhCn));
        assert_eq!(Lang::from_accept_language("fr-FR, en;q=0.5, zh;q=0.4"), Some(Lang::En));
        assert_eq!(Lang::from_accept_language("de, fr"), None);
        assert_eq!(Lang::from_accept_language("zh;q=0, en;q=0.1"), Some(Lang::En));
        assert_eq!(Lang::parse("ZH_cn"), Some(Lang::ZhCn));
        assert_eq!(Lang::ZhCn.tr("nav.login"), "登录");
        assert_eq!(Lang::En.tr("no.such.key"), "no.such.key");
    }
}
