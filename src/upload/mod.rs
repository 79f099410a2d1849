//! Uploads: images and documents that visitors and agents send in chats.
//!
//! `POST /api/v1/uploads` (multipart, one part named `file`) takes a file from a visitor
//! (visitor token) or an agent (session). The type is decided from the bytes ([`sniff`]);
//! images get their dimensions checked from the header and a thumbnail ([`thumb`]). Objects
//! go to an `object_store` (a local directory by default, an S3-compatible bucket with
//! `storage_url`), rows to the tenant's `uploads` table, and the tenant's storage counter
//! (`public.tenants.storage_bytes`) grows in the same transaction.
//!
//! `GET /u/{ent_id}/{id}` serves an upload by its unguessable id (128 random bits), scoped
//! to the merchant in the path: images inline, everything else as an attachment, always
//! with `nosniff` and a CSP that runs nothing.

pub mod remote;
pub mod sniff;
mod store;
pub mod thumb;

use std::{path::PathBuf, sync::Arc};

use axum::{
    Json,
    body::Body,
    extract::{FromRef, FromRequestParts, Multipart, Path, State, multipart::MultipartError},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
    routing::post,
};
use bytes::Bytes;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload, path::Path as ObjectPath};
use serde::Serialize;
use tenants::{EntId, Tenant, TenantId, TenantStatus, TenantTx};

use crate::{
    auth::{ctx::Door, session::AgentSession, token::TokenKind},
    config::Config,
    http::{
        AppError, Routes, Scope,
        rate::{Hit, Rule},
    },
    merchant::subscription::limits,
    visitor::VisitorSession,
};
use sniff::{Kind, Refusal};

/// The largest request `POST /api/v1/uploads` reads: the largest file plus room for the
/// multipart framing. The body layer answers 413 beyond this before reading it all.
pub const MAX_REQUEST_BYTES: usize = sniff::MAX_FILE_BYTES + 64 * 1024;

/// What uploads work with: the session door (pool, registry, token keys, plans), the
/// visitors' limits, and object storage.
#[derive(Clone)]
pub struct Uploads {
    pub door: Arc<Door>,
    pub limiter: Arc<crate::http::rate::Limiter>,
    pub storage: Storage,
}

pub fn routes<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Uploads: FromRef<S>,
    Arc<Door>: FromRef<S>,
    crate::http::TrustedProxies: FromRef<S>,
{
    Routes::new()
        .add(
            axum::http::Method::POST,
            "/api/v1/uploads",
            Scope::Tenant,
            post(upload).layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BYTES)),
        )
        .get("/u/{ent_id}/{id}", Scope::Tenant, serve_original)
        .get("/u/{ent_id}/{id}/thumb", Scope::Tenant, serve_thumb)
}

/// Where upload objects live.
#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
}

impl Storage {
    /// `storage_url` (`s3://bucket/prefix`, with `storage_options` and the usual `AWS_*`
    /// variables for endpoint and credentials; `file:///dir`) or `<data_dir>/uploads`.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        match &config.storage_url {
            Some(raw) => {
                let url = url::Url::parse(raw)
                    .map_err(|e| anyhow::anyhow!("storage_url {raw:?} is not a URL: {e}"))?;
                let mut options: std::collections::BTreeMap<String, String> = std::env::vars()
                    .filter(|(k, _)| k.starts_with("AWS_"))
                    .map(|(k, v)| (k.to_ascii_lowercase(), v))
                    .collect();
                for (key, value) in &config.storage_options {
                    use secrecy::ExposeSecret as _;
                    options.insert(key.to_ascii_lowercase(), value.expose_secret().to_owned());
                }
                let (store, prefix) = object_store::parse_url_opts(&url, options)
                    .map_err(|e| anyhow::anyhow!("storage_url {raw:?}: {e}"))?;
                Ok(Self { store: Arc::from(store), prefix })
            }
            None => Self::local(config.data_dir.join("uploads")),
        }
    }

    pub fn local(dir: PathBuf) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| anyhow::anyhow!("creating the upload directory {}: {e}", dir.display()))?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(&dir)?;
        Ok(Self { store: Arc::new(store), prefix: ObjectPath::default() })
    }

    fn key(&self, tenant: TenantId, id: &str, thumb: bool) -> ObjectPath {
        let name = if thumb { format!("{id}.thumb") } else { id.to_owned() };
        self.prefix.clone().join(format!("t{}", tenant.0)).join(name)
    }

    async fn put(&self, key: &ObjectPath, bytes: Bytes) -> object_store::Result<()> {
        self.store.put(key, PutPayload::from_bytes(bytes)).await.map(|_| ())
    }

    async fn get(&self, key: &ObjectPath) -> object_store::Result<Bytes> {
        self.store.get(key).await?.bytes().await
    }

    async fn delete(&self, key: &ObjectPath) {
        if let Err(e) = self.store.delete(key).await {
            tracing::warn!(key = %key, error = %e, "removing an upload object failed");
        }
    }
}

/// Who is uploading: a visitor (visitor token) or an agent (session).
enum Uploader {
    Visitor(VisitorSession),
    Agent(AgentSession),
}

impl Uploader {
    fn tenant(&self) -> &Arc<Tenant> {
        match self {
            Self::Visitor(v) => &v.tenant,
            Self::Agent(a) => &a.tenant,
        }
    }
}

impl<S> FromRequestParts<S> for Uploader
where
    S: Send + Sync,
    Arc<Door>: FromRef<S>,
    crate::http::TrustedProxies: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let door = Arc::<Door>::from_ref(state);
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .map(|(_, t)| t.trim());
        if bearer.is_some_and(|t| door.tokens.verify(t, TokenKind::Visitor).is_ok()) {
            return Ok(Self::Visitor(VisitorSession::from_request_parts(parts, state).await?));
        }
        Ok(Self::Agent(AgentSession::from_request_parts(parts, state).await?))
    }
}

/// An upload as the API returns it (and as chat messages carry it).
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct UploadOut {
    pub id: String,
    pub kind: String,
    pub name: String,
    pub size: i64,
    pub mime: String,
    pub width: Option<i32>,
    pub height: Option<i32>,
    #[sqlx(skip)]
    pub url: String,
    #[sqlx(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumb_url: Option<String>,
    #[serde(skip)]
    pub has_thumb: bool,
    #[serde(skip)]
    pub visitor_id: Option<i64>,
}

impl UploadOut {
    fn with_urls(mut self, ent_id: &EntId) -> Self {
        self.url = format!("/u/{ent_id}/{}", self.id);
        self.thumb_url = self.has_thumb.then(|| format!("/u/{ent_id}/{}/thumb", self.id));
        self
    }
}

/// An upload of this tenant, with its URLs; `None` when there is no such upload.
pub async fn find(
    conn: &mut sqlx::PgConnection,
    ent_id: &EntId,
    id: &str,
) -> sqlx::Result<Option<UploadOut>> {
    if !valid_id(id) {
        return Ok(None);
    }
    let row = store::get(conn, id).await?;
    Ok(row.map(|r| r.with_urls(ent_id)))
}

/// Upload ids: 26 characters of lowercase base32 (128 random bits).
pub use crate::realtime::protocol::valid_upload_id as valid_id;

fn new_id() -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let bits: u128 = rand::random();
    (0..26).map(|i| ALPHABET[((bits >> (i * 5)) & 31) as usize] as char).collect()
}

/// A file name safe to store and show: no path, no control characters, at most 200 chars,
/// with the extension of what the bytes are.
fn clean_name(raw: &str, extension: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut name: String = base
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | '<' | '>' | '\u{202e}'))
        .take(200)
        .collect::<String>()
        .trim()
        .to_owned();
    let has_extension = name.rsplit_once('.').is_some_and(|(_, e)| {
        e.eq_ignore_ascii_case(extension) || (extension == "jpg" && e.eq_ignore_ascii_case("jpeg"))
    });
    if name.is_empty() {
        name = "file".into();
    }
    if !has_extension {
        name = format!("{name}.{extension}");
    }
    name
}

fn multipart_error(e: MultipartError) -> AppError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large(sniff::MAX_FILE_BYTES)
    } else {
        AppError::bad_request(
            "bad_upload",
            format!("the upload could not be read: {}", e.body_text()),
        )
    }
}

fn too_large(limit: usize) -> AppError {
    AppError::bad_request_status(
        StatusCode::PAYLOAD_TOO_LARGE,
        "file_too_large",
        format!("this file is too large (at most {} MiB)", limit / (1024 * 1024)),
    )
}

async fn upload(
    State(state): State<Uploads>,
    uploader: Uploader,
    multipart: Multipart,
) -> Result<Response, AppError> {
    let tenant = uploader.tenant().clone();
    let Received { name, sniffed, bytes, processed } =
        receive(&state, &uploader, multipart).await?;
    // The storage budget: refused before anything is written, and counted atomically below.
    let plan = state.door.plans.get(&tenant.plan).unwrap_or_else(|| state.door.plans.trial());
    let budget = uploader.budget();
    let thumb_size = processed.as_ref().map_or(0, |p| p.thumb.len() as i64);
    let size = bytes.len() as i64;
    check_room(&state, &tenant, plan, budget, size + thumb_size).await?;
    let id = new_id();
    let keys = put_objects(&state, tenant.id, &id, bytes, processed.as_ref()).await?;
    let (visitor_id, agent_id) = match &uploader {
        Uploader::Visitor(v) => (Some(v.visitor.id), None),
        Uploader::Agent(a) => (None, Some(a.agent.id.0)),
    };
    let new = store::NewUpload {
        id: &id,
        kind: sniffed.kind.as_str(),
        name: &name,
        size,
        mime: sniffed.mime,
        dimensions: processed.as_ref().map(|p| (p.width as i32, p.height as i32)),
        thumb_size,
        visitor_id,
        agent_id,
    };
    let row = match record(&state, &tenant, plan, budget, new).await {
        Ok(Some(row)) => row,
        outcome => {
            state.storage.remove_all(&keys).await;
            return Err(match outcome {
                Err(e) => e.into(),
                _ => limits::storage_full(plan, budget),
            });
        }
    };
    Ok((StatusCode::CREATED, Json(row.with_urls(&tenant.ent_id))).into_response())
}

/// A file as received and checked: its cleaned name, what it is, its bytes, and (for an
/// image) the re-encoded picture and its thumbnail.
struct Received {
    name: String,
    sniffed: sniff::Sniffed,
    bytes: Bytes,
    processed: Option<thumb::Processed>,
}

/// Reads the request's file, metered for a visitor before and after, and checks what it is.
async fn receive(
    state: &Uploads,
    uploader: &Uploader,
    multipart: Multipart,
) -> Result<Received, AppError> {
    uploader.meter(state, None).await?;
    let (raw_name, bytes) = read_file(multipart).await?;
    uploader.meter(state, Some(bytes.len())).await?;
    let sniffed = sniff::sniff(&bytes, &raw_name).map_err(refused)?;
    let name = clean_name(&raw_name, sniffed.extension);
    let bytes = Bytes::from(bytes);
    let processed = match sniffed.kind {
        Kind::Image => Some(thumb::process_within_budget(bytes.clone()).await.map_err(bad_image)?),
        _ => None,
    };
    Ok(Received { name, sniffed, bytes, processed })
}

impl Uploader {
    /// A visitor's uploads are metered: their number before the file is read (`bytes`
    /// `None`), their size once it is. The team's are not.
    async fn meter(&self, state: &Uploads, bytes: Option<usize>) -> Result<(), AppError> {
        let Uploader::Visitor(v) = self else { return Ok(()) };
        let l = &state.limiter.limits;
        match bytes {
            None => {
                let per_ip = Rule::per_hour("uploads", l.uploads_per_ip);
                let per_visitor = Rule::per_hour("uploads", l.uploads_per_visitor);
                v.limit(&state.limiter, per_ip, per_visitor, 1).await
            }
            Some(len) => {
                let kib = u32::try_from(len.div_ceil(1024)).unwrap_or(u32::MAX);
                let mib = l.upload_mb_per_visitor_per_day;
                let daily = Rule::per_day("upload_kib", mib.saturating_mul(1024));
                let hit = Hit::visitor(daily, v.visitor.id).cost(kib);
                Ok(state.limiter.check(v.tenant.id, &[hit]).await?)
            }
        }
    }

    /// Visitors' files are kept apart from the team's storage.
    fn budget(&self) -> limits::Budget {
        match self {
            Uploader::Visitor(_) => limits::Budget::Visitors,
            Uploader::Agent(_) => limits::Budget::Team,
        }
    }
}

/// Refuses an upload of `needed` bytes that would not fit the plan's budget as it stands.
async fn check_room(
    state: &Uploads,
    tenant: &Tenant,
    plan: &billing::Plan,
    budget: limits::Budget,
    needed: i64,
) -> Result<(), AppError> {
    let Some(limit) = budget.limit(plan) else { return Ok(()) };
    let used =
        limits::storage_used(&mut *state.door.db.acquire().await?, tenant.id, budget).await?;
    if used.saturating_add(needed) > i64::try_from(limit).unwrap_or(i64::MAX) {
        return Err(limits::storage_full(plan, budget));
    }
    Ok(())
}

/// Writes the file (and its thumbnail) to object storage; their keys. Nothing is left
/// behind when a write fails.
async fn put_objects(
    state: &Uploads,
    tenant: TenantId,
    id: &str,
    bytes: Bytes,
    processed: Option<&thumb::Processed>,
) -> Result<Vec<ObjectPath>, AppError> {
    let original = state.storage.key(tenant, id, false);
    let thumb_key = state.storage.key(tenant, id, true);
    state.storage.put(&original, bytes).await.map_err(|e| AppError::Internal(e.into()))?;
    if let Some(p) = processed {
        if let Err(e) = state.storage.put(&thumb_key, Bytes::from(p.thumb.clone())).await {
            state.storage.delete(&original).await;
            return Err(AppError::Internal(e.into()));
        }
    }
    Ok(vec![original, thumb_key])
}

/// Stores the upload's row and counts its bytes; `None` when a concurrent upload took the
/// room first (the counter only grows while the total fits).
async fn record(
    state: &Uploads,
    tenant: &Tenant,
    plan: &billing::Plan,
    budget: limits::Budget,
    new: store::NewUpload<'_>,
) -> sqlx::Result<Option<UploadOut>> {
    let total = new.size + new.thumb_size;
    let mut tx = TenantTx::begin(&state.door.db, tenant.id).await?;
    let row = store::create(&mut tx, new).await?;
    if !limits::add_storage(&mut tx, tenant.id, budget, total, budget.limit(plan)).await? {
        return Ok(None);
    }
    tx.commit().await?;
    Ok(Some(row))
}

/// The one file of a multipart upload (a part named `file`): its name and bytes.
async fn read_file(mut multipart: Multipart) -> Result<(String, Vec<u8>), AppError> {
    let mut file: Option<(String, Vec<u8>)> = None;
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        if field.name() != Some("file") {
            continue;
        }
        if file.is_some() {
            return Err(AppError::bad_request("bad_upload", "send one file per request"));
        }
        let name = field.file_name().unwrap_or("file").to_owned();
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
            if bytes.len() + chunk.len() > sniff::MAX_FILE_BYTES {
                return Err(too_large(sniff::MAX_FILE_BYTES));
            }
            bytes.extend_from_slice(&chunk);
        }
        file = Some((name, bytes));
    }
    let Some((name, bytes)) = file else {
        return Err(AppError::bad_request(
            "bad_upload",
            "send the file as a multipart part named \"file\"",
        ));
    };
    if bytes.is_empty() {
        return Err(AppError::bad_request("empty_file", "the file is empty"));
    }
    Ok((name, bytes))
}

/// Why a file's type is refused.
fn refused(r: Refusal) -> AppError {
    match r {
        Refusal::Active => AppError::bad_request_status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsafe_type",
            "web pages, SVG images and scripts cannot be uploaded",
        ),
        Refusal::Unsupported => AppError::bad_request_status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_type",
            "send a PNG, JPEG, GIF or WebP image, or a PDF, text, CSV, zip or office document",
        ),
        Refusal::TooLarge { limit } => too_large(limit),
    }
}

/// Why an image is refused.
fn bad_image(e: thumb::ImageError) -> AppError {
    match e {
        thumb::ImageError::TooManyPixels { .. } => AppError::bad_request_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "image_too_large",
            e.to_string(),
        ),
        thumb::ImageError::Invalid(_) => AppError::bad_request_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_image",
            "the image is damaged or not what its contents say",
        ),
    }
}

/// Deletes the uploads `ids` of the tenant `tx` is scoped to and gives their bytes back to
/// the tenant's storage usage, in `tx`. Returns the object keys to remove once `tx` has
/// committed ([`Storage::remove_all`]): an object is never removed while a row still
/// points at it.
pub async fn delete_rows(
    tx: &mut TenantTx,
    storage: &Storage,
    tenant: TenantId,
    ids: &[String],
) -> sqlx::Result<Vec<ObjectPath>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let deleted = store::delete(tx, ids).await?;
    for budget in [limits::Budget::Team, limits::Budget::Visitors] {
        let visitors = budget == limits::Budget::Visitors;
        let freed: i64 =
            deleted.iter().filter(|d| d.3 == visitors).map(|(_, bytes, _, _)| bytes).sum();
        if freed > 0 {
            limits::add_storage(tx, tenant, budget, -freed, None).await?;
        }
    }
    Ok(deleted
        .into_iter()
        .flat_map(|(id, _, has_thumb, _)| {
            let thumb = has_thumb.then(|| storage.key(tenant, &id, true));
            std::iter::once(storage.key(tenant, &id, false)).chain(thumb)
        })
        .collect())
}

impl Storage {
    fn tenant_prefix(&self, tenant: TenantId) -> ObjectPath {
        self.prefix.clone().join(format!("t{}", tenant.0))
    }

    /// Every object of `tenant` (originals and thumbnails): file name and size.
    pub async fn tenant_objects(
        &self,
        tenant: TenantId,
    ) -> object_store::Result<Vec<(String, u64)>> {
        use futures::TryStreamExt as _;
        let prefix = self.tenant_prefix(tenant);
        let metas: Vec<object_store::ObjectMeta> =
            self.store.list(Some(&prefix)).try_collect().await?;
        Ok(metas
            .into_iter()
            .filter_map(|m| Some((m.location.filename()?.to_owned(), m.size)))
            .collect())
    }

    /// The bytes of `tenant`'s object `name` (as listed by [`Storage::tenant_objects`]).
    pub async fn tenant_object(&self, tenant: TenantId, name: &str) -> object_store::Result<Bytes> {
        self.get(&self.tenant_prefix(tenant).join(name)).await
    }

    /// Removes every object of `tenant` (its schema is being dropped). Returns how many.
    pub async fn remove_tenant(&self, tenant: TenantId) -> object_store::Result<usize> {
        let names = self.tenant_objects(tenant).await?;
        let prefix = self.tenant_prefix(tenant);
        for (name, _) in &names {
            self.store.delete(&prefix.clone().join(name.as_str())).await?;
        }
        Ok(names.len())
    }

    /// Removes objects whose rows are gone (failures are logged; the bytes were already
    /// given back).
    pub async fn remove_all(&self, keys: &[ObjectPath]) {
        for key in keys {
            self.delete(key).await;
        }
    }
}

async fn serve_original(
    State(state): State<Uploads>,
    headers: HeaderMap,
    Path((ent_id, id)): Path<(String, String)>,
) -> Result<Response, AppError> {
    serve(&state, &headers, &ent_id, &id, false).await
}

async fn serve_thumb(
    State(state): State<Uploads>,
    headers: HeaderMap,
    Path((ent_id, id)): Path<(String, String)>,
) -> Result<Response, AppError> {
    serve(&state, &headers, &ent_id, &id, true).await
}

async fn serve(
    state: &Uploads,
    headers: &HeaderMap,
    ent_id: &str,
    id: &str,
    thumb: bool,
) -> Result<Response, AppError> {
    let ent_id = EntId::parse(ent_id).map_err(|_| AppError::NotFound)?;
    let tenant = state.door.tenants.by_ent_id(&ent_id).await?.ok_or(AppError::NotFound)?;
    if tenant.status == TenantStatus::Suspended {
        return Err(AppError::TenantSuspended);
    }
    // On another merchant's subdomain or custom domain, this merchant's files do not exist.
    if let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) {
        if state.door.tenants.by_host(host).await?.is_some_and(|other| other.id != tenant.id) {
            return Err(AppError::NotFound);
        }
    }
    let mut tx = TenantTx::begin(&state.door.db, tenant.id).await?;
    let upload = find(&mut tx, &tenant.ent_id, id).await?;
    tx.commit().await?;
    let upload = upload.ok_or(AppError::NotFound)?;
    if thumb && !upload.has_thumb {
        return Err(AppError::NotFound);
    }
    let key = state.storage.key(tenant.id, &upload.id, thumb);
    let bytes = match state.storage.get(&key).await {
        Ok(bytes) => bytes,
        Err(object_store::Error::NotFound { .. }) => return Err(AppError::NotFound),
        Err(e) => return Err(AppError::Internal(e.into())),
    };
    let mime = if thumb {
        if bytes.starts_with(b"\x89PNG") { "image/png" } else { "image/jpeg" }
    } else {
        upload.mime.as_str()
    };
    let mut response = Body::from(bytes).into_response();
    file_headers(response.headers_mut(), mime, &upload);
    Ok(response)
}

/// A served file's headers: its type, a sandbox (nothing served from here may run: no
/// scripts, no plugins, no frames), cached for good (ids are never reused), and its name
/// (images inline, other files as attachments).
fn file_headers(h: &mut HeaderMap, mime: &str, upload: &UploadOut) {
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(mime).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; img-src 'self'; sandbox"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    let disposition = if upload.kind == "image" { "inline" } else { "attachment" };
    let encoded: String = url::form_urlencoded::byte_serialize(upload.name.as_bytes()).collect();
    let value = format!("{disposition}; filename*=UTF-8''{}", encoded.replace('+', "%20"));
    if let Ok(v) = HeaderValue::from_str(&value) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_long_random_and_valid() {
        let a = new_id();
        assert!(valid_id(&a), "{a}");
        assert_ne!(a, new_id());
        assert!(!valid_id("../../etc/passwd"));
        assert!(!valid_id("ABCDEFGHIJKLMNOPQRSTUVWXYZ"));
    }

    #[test]
    fn names_lose_paths_and_get_the_real_extension() {
        assert_eq!(clean_name("C:\\Users\\mia\\photo.JPG", "jpg"), "photo.JPG");
        assert_eq!(clean_name("../../invoice.pdf", "pdf"), "invoice.pdf");
        assert_eq!(clean_name("cat.png", "gif"), "cat.png.gif");
        assert_eq!(clean_name("", "txt"), "file.txt");
        assert_eq!(clean_name("a\u{202e}gpj.exe", "pdf"), "agpj.exe.pdf");
        assert_eq!(clean_name("x.jpeg", "jpg"), "x.jpeg");
    }
}
