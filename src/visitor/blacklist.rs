//! The blacklist: visitors and IP addresses or ranges that cannot open chats or send. Any
//! agent blocks (an abusive visitor cannot wait for an admin); admins lift blocks. A block
//! closes the blocked visitors' live connections (close code 4003).

use std::net::IpAddr;

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::manage::{publish, visitor_id};
use crate::{
    auth::ctx::{Admin, Agent, Ctx},
    http::{AppError, Routes, Scope, extract::ApiJson, input::text},
    realtime::hub::Peer,
    startup::AppState,
};

pub fn routes() -> Routes<AppState> {
    Routes::new()
        .get("/api/v1/blacklist", Scope::Tenant, list)
        .post("/api/v1/blacklist", Scope::Tenant, add)
        .delete("/api/v1/blacklist/{id}", Scope::Tenant, remove)
        .admin()
}

/// An address or a network in CIDR form, normalized (host bits cleared). Ranges wider than
/// /8 (IPv4) or /16 (IPv6) are refused: they would shut out whole continents by mistake.
pub fn parse_range(raw: &str) -> Result<String, &'static str> {
    let (addr, prefix) = match raw.trim().split_once('/') {
        Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| "not an IP address or range")?)),
        None => (raw.trim(), None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| "not an IP address or range")?;
    match addr {
        IpAddr::V4(v4) => {
            let prefix = prefix.unwrap_or(32);
            if prefix > 32 {
                return Err("an IPv4 prefix is at most 32");
            }
            if prefix < 8 {
                return Err("an IPv4 range is at most /8");
            }
            let mask = u32::MAX << (32 - u32::from(prefix));
            Ok(format!("{}/{prefix}", std::net::Ipv4Addr::from(u32::from(v4) & mask)))
        }
        IpAddr::V6(v6) => {
            let prefix = prefix.unwrap_or(128);
            if prefix > 128 {
                return Err("an IPv6 prefix is at most 128");
            }
            if prefix < 16 {
                return Err("an IPv6 range is at most /16");
            }
            let mask = u128::MAX << (128 - u32::from(prefix));
            Ok(format!("{}/{prefix}", std::net::Ipv6Addr::from(u128::from(v6) & mask)))
        }
    }
}

#[derive(Serialize, sqlx::FromRow)]
struct Entry {
    id: i64,
    /// The visitor's public id, for visitor blocks.
    visitor_id: Option<String>,
    visitor_name: Option<String>,
    /// The blocked address or range, for IP blocks.
    ip: Option<String>,
    reason: String,
    created_by: Option<String>,
    created_at: DateTime<Utc>,
}

const ENTRY_SELECT: &str = "select b.id, v.public_id as visitor_id, v.name as visitor_name,
        b.ip_range::text as ip, b.reason, a.display_name as created_by, b.created_at
    from blacklist b left join visitors v on v.id = b.visitor_id left join agents a on a.id = b.created_by";

#[derive(Serialize)]
struct List {
    entries: Vec<Entry>,
}

async fn list(Ctx { mut tx, .. }: Ctx<Agent>) -> Result<Json<List>, AppError> {
    let entries = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{ENTRY_SELECT} order by b.id desc limit 1000"
    )))
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(List { entries }))
}

#[derive(Deserialize)]
struct NewEntry {
    /// A visitor's public id …
    #[serde(default)]
    visitor_id: Option<String>,
    /// … or an address / CIDR range.
    #[serde(default)]
    ip: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

async fn add(
    State(state): State<AppState>,
    Ctx { session, mut tx, .. }: Ctx<Agent>,
    ApiJson(req): ApiJson<NewEntry>,
) -> Result<Response, AppError> {
    let reason = text("reason", req.reason.as_deref().unwrap_or_default(), 200, false, false)?;
    let range = match (&req.visitor_id, &req.ip) {
        (Some(_), None) => None,
        (None, Some(ip)) => Some(parse_range(ip).map_err(|m| AppError::field("ip", m))?),
        _ => return Err(AppError::field("visitor_id", "give either visitor_id or ip")),
    };
    let visitor = match &req.visitor_id {
        Some(public_id) => Some(visitor_id(&mut tx, public_id).await?),
        None => None,
    };
    let exists: bool = sqlx::query_scalar(
        "select exists (select 1 from blacklist where visitor_id = $1 or ip_range = $2::cidr)",
    )
    .bind(visitor)
    .bind(&range)
    .fetch_one(&mut *tx)
    .await?;
    if exists {
        return Err(AppError::conflict(
            "already_blocked",
            None,
            "this is already on the blacklist",
        ));
    }
    let id: i64 = sqlx::query_scalar(
        "insert into blacklist (visitor_id, ip_range, reason, created_by)
         values ($1, $2::cidr, $3, $4) returning id",
    )
    .bind(visitor)
    .bind(&range)
    .bind(reason)
    .bind(session.agent.id)
    .fetch_one(&mut *tx)
    .await?;
    // Who is shut out now: the visitor, or every visitor last seen in the range.
    let blocked: Vec<i64> = match (&visitor, &range) {
        (Some(v), _) => vec![*v],
        (None, Some(r)) => {
            sqlx::query_scalar("select id from visitors where ip <<= $1::cidr")
                .bind(r)
                .fetch_all(&mut *tx)
                .await?
        }
        (None, None) => Vec::new(),
    };
    let entry: Entry =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("{ENTRY_SELECT} where b.id = $1")))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
    let what = entry.ip.clone().or_else(|| entry.visitor_id.clone()).unwrap_or_default();
    crate::merchant::audit::record(
        &mut tx,
        &session,
        "blacklist.add",
        &what,
        serde_json::json!({ "reason": entry.reason }),
    )
    .await?;
    let tenant = session.tenant.id;
    if let Some(v) = visitor {
        publish(&state, &session, tx, v).await?;
    } else {
        tx.commit().await?;
    }
    for v in blocked {
        state.chat.hub.revoke(tenant, Peer::Visitor(v));
    }
    // And whoever is connected from the range now, whatever address they started from.
    if let Some(range) = range.as_deref().and_then(|r| r.parse::<ipnet::IpNet>().ok()) {
        state.chat.hub.revoke_range(tenant, range);
    }
    tracing::info!(tenant = tenant.0, by = session.agent.id, entry = id, "blacklist entry added");
    Ok((StatusCode::CREATED, Json(entry)).into_response())
}

async fn remove(
    State(state): State<AppState>,
    Ctx { session, mut tx, .. }: Ctx<Admin>,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    let id = crate::http::input::path_id(&id)?;
    let visitor: Option<Option<i64>> =
        sqlx::query_scalar("select visitor_id from blacklist where id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    let visitor = visitor.ok_or(AppError::NotFound)?;
    let what: Option<String> = sqlx::query_scalar(
        "delete from blacklist b where id = $1
         returning coalesce(b.ip_range::text, (select public_id from visitors v where v.id = b.visitor_id), '')",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    crate::merchant::audit::record(
        &mut tx,
        &session,
        "blacklist.remove",
        &what.unwrap_or_default(),
        serde_json::json!({}),
    )
    .await?;
    match visitor {
        Some(v) => {
            publish(&state, &session, tx, v).await?;
        }
        None => tx.commit().await?,
    }
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges_are_normalized_and_bounded() {
        assert_eq!(parse_range("203.0.113.9").unwrap(), "203.0.113.9/32");
        assert_eq!(parse_range(" 203.0.113.9/24 ").unwrap(), "203.0.113.0/24");
        assert_eq!(parse_range("2001:db8::1/48").unwrap(), "2001:db8::/48");
        assert!(parse_range("10.0.0.0/4").is_err());
        assert!(parse_range("10.0.0.0/33").is_err());
        assert!(parse_range("::/0").is_err());
        assert!(parse_range("example.com").is_err());
        assert!(parse_range("1.2.3.4/x").is_err());
    }
}
