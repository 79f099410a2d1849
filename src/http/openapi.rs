//! The OpenAPI 3.1 document of the REST API (`GET /api/openapi.json`), generated from the
//! handlers' `#[utoipa::path]` annotations and the types they exchange. It covers the routes
//! API tokens may call (`Routes::api`); a test holds the two lists equal, and schemathesis
//! (tests/it/openapi.rs) checks the server against the document.

use std::{collections::BTreeMap, sync::OnceLock};

use axum::{
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use utoipa::{
    Modify, OpenApi, ToSchema,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use super::{Routes, Scope};

pub fn routes() -> Routes {
    Routes::new().get("/api/openapi.json", Scope::Public, document)
}

/// Every error answer.
#[derive(ToSchema)]
#[allow(dead_code)] // a description of the JSON errors carry, not a value the code builds
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct ErrorDetail {
    /// Stable, for programs (docs/api.md lists them).
    code: String,
    /// For people.
    message: String,
    /// Per field, what is wrong (422).
    fields: Option<BTreeMap<String, String>>,
    /// Where to upgrade (402 plan limits).
    upgrade_url: Option<String>,
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token (`kefu_<ent_id>_…`, Settings → Integrations) or a session token",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "kefu REST API",
        version = "1",
        description = "Conversations, messages, visitors, tags and agents of one merchant. docs/api.md explains each route with examples."
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "conversations", description = "Conversations and their messages"),
        (name = "visitors", description = "Visitors, their records and tags"),
        (name = "agents", description = "The team")
    )
)]
struct ApiDoc;

/// The whole document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(crate::chat::api_doc());
    doc.merge(crate::chat::status::Doc::openapi());
    doc.merge(crate::visitor::manage::Doc::openapi());
    doc.merge(crate::agent::Doc::openapi());
    doc
}

/// `GET /api/openapi.json`.
async fn document() -> Response {
    static JSON: OnceLock<String> = OnceLock::new();
    let body = JSON.get_or_init(|| openapi().to_pretty_json().unwrap_or_default());
    let mut response = body.clone().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
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
                let methods = [
                    ("GET", item.get.is_some()),
                    ("POST", item.post.is_some()),
                    ("PATCH", item.patch.is_some()),
                    ("PUT", item.put.is_some()),
                    ("DELETE", item.delete.is_some()),
                ];
                methods
                    .into_iter()
                    .filter(|(_, on)| *on)
                    .map(|(m, _)| (m.to_owned(), path.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let config = crate::config::Config::default();
        let api: BTreeSet<(String, String)> = crate::http::routes(&config)
            .table()
            .iter()
            .filter(|r| r.api)
            .map(|r| (r.method.to_string(), r.path.to_owned()))
            .collect();
        assert_eq!(documented, api);
    }
}
