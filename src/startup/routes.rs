//! The route table, merged here from every feature's, and the application router: the
//! table with its state, the platform's default language and the cross-cutting layers
//! (`http::wrap`).

use axum::{Router, middleware};

use super::AppState;
use crate::{
    config::Config,
    http::{self, Routes},
};

/// Every route of the application, with its scope (the isolation test walks this).
pub fn routes(config: &Config) -> Routes<AppState> {
    Routes::new()
        .merge(crate::site::routes())
        .merge(http::openapi::routes(openapi()))
        .merge(crate::metrics::routes())
        .merge(crate::auth::routes(config))
        .merge(crate::agent::routes())
        .merge(crate::chat::routes())
        .merge(crate::visitor::routes())
        .merge(crate::upload::routes())
        .merge(crate::upload::remote::routes())
        .merge(crate::merchant::settings::routes())
        .merge(crate::merchant::auto_replies::routes())
        .merge(crate::merchant::stats::routes())
        .merge(crate::merchant::audit::routes())
        .merge(crate::merchant::subscription::routes())
        .merge(crate::webhooks::routes())
        .merge(crate::platform::routes(config))
}

/// The REST API's OpenAPI document: the parts the features describe.
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi as _;
    http::openapi::document([
        crate::chat::api_doc(),
        crate::chat::status::Doc::openapi(),
        crate::chat::search::Doc::openapi(),
        crate::visitor::manage::Doc::openapi(),
        crate::visitor::contacts::Doc::openapi(),
        crate::agent::Doc::openapi(),
    ])
}

/// The application router with all middleware.
pub fn router(state: AppState) -> Router {
    let routes = routes(&state.config);
    let options = http::Options {
        https: state.config.is_https(),
        larger_bodies: &[("/api/v1/uploads", crate::upload::MAX_REQUEST_BYTES)],
        proxies: state.proxies.clone(),
    };
    let router = routes
        .into_router()
        .layer(middleware::from_fn_with_state(state.clone(), crate::platform::system::default_lang))
        .with_state(state);
    http::wrap(router, options)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// The document describes exactly the routes API tokens may call.
    #[test]
    fn the_document_covers_the_api_routes() {
        let doc = super::openapi();
        let documented: BTreeSet<(String, String)> = doc
            .paths
            .paths
            .iter()
            .flat_map(|(path, item)| {
                crate::http::openapi::operations_of(item)
                    .into_iter()
                    .map(|m| (m.to_owned(), path.clone()))
            })
            .collect();
        let config = crate::config::Config::default();
        let api: BTreeSet<(String, String)> = super::routes(&config)
            .table()
            .iter()
            .filter(|r| r.api)
            .map(|r| (r.method.to_string(), r.path.to_owned()))
            .collect();
        assert_eq!(documented, api);
    }
}
