//! A merchant's data as one archive (`.tar.gz`): every table of its schema as CSV (with a
//! header row, straight from `COPY … TO STDOUT`), its members' accounts (no password hashes)
//! and usage counters from `public`, its uploads, and a `manifest.json` saying what is where.
//!
//! The archive is built in a temporary file — tables are streamed to disk, compression runs
//! on the blocking pool — and then streamed to the client, so memory stays flat whatever
//! the merchant's size.

use std::io::Write as _;

use axum::{
    body::Body,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use flate2::{Compression, write::GzEncoder};
use futures::StreamExt as _;
use serde_json::json;
use sqlx::PgConnection;
use tenants::{TenantId, TenantTx};
use tokio::io::AsyncWriteExt as _;

use super::Platform;
use super::{PlatformSession, audit};
use crate::http::{AppError, extract::PathId};

type Archive = tar::Builder<GzEncoder<std::fs::File>>;

/// Appends a file from disk (runs on the blocking pool; the builder travels there and back).
async fn append_file(
    mut archive: Archive,
    name: String,
    path: std::path::PathBuf,
) -> anyhow::Result<Archive> {
    tokio::task::spawn_blocking(move || -> anyhow::Result<Archive> {
        let mut file = std::fs::File::open(&path)?;
        archive.append_file(name, &mut file)?;
        Ok(archive)
    })
    .await?
}

/// Appends bytes held in memory.
async fn append_bytes(
    mut archive: Archive,
    name: String,
    bytes: bytes::Bytes,
) -> anyhow::Result<Archive> {
    tokio::task::spawn_blocking(move || -> anyhow::Result<Archive> {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(chrono::Utc::now().timestamp().max(0) as u64);
        archive.append_data(&mut header, name, bytes.as_ref())?;
        Ok(archive)
    })
    .await?
}

/// Runs a `COPY … TO STDOUT` into a temporary file; returns its size in bytes.
async fn copy_to_file(
    conn: &mut PgConnection,
    statement: &str,
    path: &std::path::Path,
) -> anyhow::Result<u64> {
    let mut file = tokio::fs::File::create(path).await?;
    let mut stream = conn.copy_out_raw(statement).await?;
    let mut size = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        size += chunk.len() as u64;
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    Ok(size)
}

async fn build(
    state: &Platform,
    tenant: TenantId,
    ent_id: &str,
) -> anyhow::Result<tempfile::NamedTempFile> {
    let dir = tempfile::tempdir()?;
    let out = tempfile::NamedTempFile::new()?;
    let mut archive = tar::Builder::new(GzEncoder::new(out.reopen()?, Compression::default()));
    let root = format!("kefu-export-{ent_id}");
    // One snapshot for every table, so the files agree with each other.
    let mut tx = TenantTx::snapshot(&state.door.db, tenant).await?;
    let tables = tx.tables().await?;
    let mut files = Vec::new();
    let tenant_copies: Vec<_> = tables
        .iter()
        .map(|table| (format!("tables/{table}.csv"), tx.copy_table_csv(table).0))
        .collect();
    let public_copies = [
        (
            "platform/members.csv".to_owned(),
            format!(
                "copy (select u.id, u.email, u.display_name, u.created_at, u.last_login_at
                       from public.users u join public.tenant_members m on m.user_id = u.id
                       where m.tenant_id = {} order by u.id) to stdout with (format csv, header)",
                tenant.0
            ),
        ),
        (
            "platform/usage_daily.csv".to_owned(),
            format!(
                "copy (select day, messages, conversations from public.usage_daily
                       where tenant_id = {} order by day) to stdout with (format csv, header)",
                tenant.0
            ),
        ),
    ];
    for (index, (name, statement)) in tenant_copies.into_iter().chain(public_copies).enumerate() {
        let path = dir.path().join(format!("{index}.csv"));
        let size = copy_to_file(&mut tx, &statement, &path).await?;
        files.push(json!({ "path": name, "bytes": size }));
        archive = append_file(archive, format!("{root}/{name}"), path).await?;
    }
    let merchant = super::store::merchant_record(&mut tx, tenant).await?;
    tx.commit().await?;

    let objects = state.storage.tenant_objects(tenant).await?;
    for (name, _) in &objects {
        let bytes = state.storage.tenant_object(tenant, name).await?;
        files.push(json!({ "path": format!("uploads/{name}"), "bytes": bytes.len() }));
        archive = append_bytes(archive, format!("{root}/uploads/{name}"), bytes).await?;
    }
    let manifest = json!({
        "format": "kefu-export/1",
        "kefu_version": env!("CARGO_PKG_VERSION"),
        "exported_at": chrono::Utc::now(),
        "merchant": merchant,
        "tables": tables,
        "files": files,
    });
    let manifest = serde_json::to_vec_pretty(&manifest)?;
    archive = append_bytes(archive, format!("{root}/manifest.json"), manifest.into()).await?;
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut gz = archive.into_inner()?;
        gz.flush()?;
        gz.finish()?.sync_all()?;
        Ok(())
    })
    .await??;
    Ok(out)
}

pub(super) async fn export(
    State(state): State<Platform>,
    admin: PlatformSession,
    PathId(id): PathId<TenantId>,
) -> Result<Response, AppError> {
    let ent_id = super::store::ent_id(&state.door.db, id).await?.ok_or(AppError::NotFound)?;
    let tenant = id;
    let file = build(&state, tenant, &ent_id)
        .await
        .map_err(|e| AppError::Internal(e.context("exporting a merchant")))?;
    let size = file.as_file().metadata().map_err(|e| AppError::Internal(e.into()))?.len();
    audit::record(
        &state.door.db,
        &admin,
        "merchant.export",
        Some(id.0),
        &ent_id,
        json!({ "bytes": size }),
    )
    .await?;
    // The temporary file is unlinked now; the open handle keeps it readable until sent.
    let (std_file, _path) = file.into_parts();
    let body =
        Body::from_stream(tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(std_file)));
    let filename =
        format!("kefu-export-{ent_id}-{}.tar.gz", chrono::Utc::now().format("%Y%m%d-%H%M%S"));
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/gzip"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
