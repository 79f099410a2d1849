//! The OpenAPI 3.1 document of the REST API (`GET /api/openapi.json`), generated from the
//! handlers' `#[utoipa::path]` annotations and the types they exchange. It covers the routes
//! API tokens may call (`Routes::api`); a test holds the two lists equal, and schemathesis
//! (tests/it/openapi.rs) checks the server against the document.

use std::{collections::BTreeMap, sync::Arc};

use axum::{
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use utoipa::{
    Modify, OpenApi, ToSchema,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use super::{Routes, Scope};

/// `GET /api/openapi.json` and `GET /api/docs` for `doc` (see [`document`]).
pub fn routes<S: Clone + Send + Sync + 'static>(doc: utoipa::openapi::OpenApi) -> Routes<S> {
    let json: Arc<str> = doc.to_pretty_json().unwrap_or_default().into();
    let doc = Arc::new(doc);
    Routes::new()
        .get("/api/openapi.json", Scope::Public, move || {
            let json = Arc::clone(&json);
            async move { serve_json(&json) }
        })
        .get("/api/docs", Scope::Public, move |lang: crate::i18n::Lang| {
            let doc = Arc::clone(&doc);
            async move { super::Page(Reference { lang, sections: sections(&doc) }) }
        })
}

/// A path's operations with their methods.
fn operations(
    item: &utoipa::openapi::PathItem,
) -> impl Iterator<Item = (&'static str, &utoipa::openapi::path::Operation)> {
    [
        ("GET", &item.get),
        ("POST", &item.post),
        ("PATCH", &item.patch),
        ("PUT", &item.put),
        ("DELETE", &item.delete),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.as_ref().map(|op| (method, op)))
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

/// The whole document: its frame (title, security, tags) with the features' parts, which
/// the composition root gathers.
pub fn document(
    parts: impl IntoIterator<Item = utoipa::openapi::OpenApi>,
) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    for part in parts {
        doc.merge(part);
    }
    doc
}

/// A path's operations with their methods (the route-table test compares them).
pub fn operations_of(item: &utoipa::openapi::PathItem) -> Vec<&'static str> {
    operations(item).map(|(method, _)| method).collect()
}

fn serve_json(body: &str) -> Response {
    let mut response = body.to_owned().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The readable reference (`GET /api/docs`): the same document as a page, an operation per
/// card, grouped by tag.
#[derive(askama::Template)]
#[template(path = "site/api_reference.html")]
struct Reference {
    lang: crate::i18n::Lang,
    sections: Vec<Section>,
}

struct Section {
    name: String,
    description: String,
    operations: Vec<Operation>,
}

struct Operation {
    method: &'static str,
    path: String,
    anchor: String,
    summary: String,
    params: Vec<Param>,
    body: Option<String>,
    responses: Vec<(String, String)>,
}

struct Param {
    name: String,
    location: &'static str,
    required: bool,
    description: String,
}

/// The name of a schema reference (`#/components/schemas/PostMessage` → `PostMessage`).
fn schema_ref_name(schema: &utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>) -> String {
    match schema {
        utoipa::openapi::RefOr::Ref(r) => {
            r.ref_location.rsplit('/').next().unwrap_or_default().to_owned()
        }
        utoipa::openapi::RefOr::T(_) => "object".to_owned(),
    }
}

fn sections(doc: &utoipa::openapi::OpenApi) -> Vec<Section> {
    use utoipa::openapi::{Required, path::ParameterIn};
    let mut sections: Vec<Section> = doc
        .tags
        .iter()
        .flatten()
        .map(|t| Section {
            name: t.name.clone(),
            description: t.description.clone().unwrap_or_default(),
            operations: Vec::new(),
        })
        .collect();
    for (path, item) in &doc.paths.paths {
        for (method, op) in operations(item) {
            let params = op
                .parameters
                .iter()
                .flatten()
                .map(|p| Param {
                    name: p.name.clone(),
                    location: match p.parameter_in {
                        ParameterIn::Path => "path",
                        ParameterIn::Query => "query",
                        ParameterIn::Header => "header",
                        ParameterIn::Cookie => "cookie",
                    },
                    required: matches!(p.required, Required::True),
                    description: p.description.clone().unwrap_or_default(),
                })
                .collect();
            let body = op.request_body.as_ref().and_then(|b| {
                b.content.values().next().and_then(|c| c.schema.as_ref()).map(schema_ref_name)
            });
            let responses = op
                .responses
                .responses
                .iter()
                .map(|(status, r)| {
                    let text = match r {
                        utoipa::openapi::RefOr::T(r) => r.description.clone(),
                        utoipa::openapi::RefOr::Ref(r) => r.ref_location.clone(),
                    };
                    (status.clone(), text)
                })
                .collect();
            let summary = op.summary.clone().or_else(|| op.description.clone()).unwrap_or_default();
            let tag = op.tags.iter().flatten().next().cloned().unwrap_or_default();
            let operation = Operation {
                method,
                anchor: format!(
                    "{}-{}",
                    method.to_lowercase(),
                    path.trim_matches('/').replace(['/', '{', '}'], "-")
                ),
                path: path.clone(),
                summary,
                params,
                body,
                responses,
            };
            match sections.iter_mut().find(|s| s.name == tag) {
                Some(section) => section.operations.push(operation),
                None => sections.push(Section {
                    name: tag,
                    description: String::new(),
                    operations: vec![operation],
                }),
            }
        }
    }
    sections
}
