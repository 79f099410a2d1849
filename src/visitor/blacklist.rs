//! The blacklist: visitors and IP addresses or ranges that cannot open chats or send. Any
//! agent blocks (an abusive visitor cannot wait for an admin); admins lift blocks. A block
//! closes the blocked visitors' live connections (close code 4003).

use crate::auth::ctx::Door;
use crate::http::extract::PathId;
use crate::ids::BlockId;
use crate::realtime::hub::Hub;
use axum::extract::FromRef;
use std::net::IpAddr;
use std::sync::Arc;

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};

use super::{
    manage::{publish, visitor_id},
    store::blacklist::{self as store, Entry},
};
use crate::{
    auth::ctx::{Admin, Agent, Ctx},
    http::{AppError, Routes, Scope, extract::ApiJson, input::text},
    realtime::hub::Peer,
};

pub fn routes<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Door>: FromRef<S>,
    Arc<Hub>: FromRef<S>,
{
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

#[derive(Serialize)]
struct List {
    entries: Vec<Entry>,
}

async fn list(Ctx { mut tx, .. }: Ctx<Agent>) -> Result<Json<List>, AppError> {
    let entries = store::list(&mut tx).await?;
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
    State(hub): State<Arc<Hub>>,
    Ctx { session, mut tx, .. }: Ctx<Agent>,
    ApiJson(req): ApiJson<NewEntry>,
) -> Result<Response, AppError> {
    let reason = text("reason", req.reason.as_deref().unwrap_or_default(), 200, false, false)?;
    let (visitor, range) = target(&mut tx, &req).await?;
    if store::exists(&mut tx, visitor, range.as_deref()).await? {
        let why = "this is already on the blacklist";
        return Err(AppError::conflict("already_blocked", None, why));
    }
    let id = store::create(&mut tx, visitor, range.as_deref(), &reason, session.agent.id.0).await?;
    // Who is shut out now: the visitor, or every visitor last seen in the range.
    let blocked: Vec<i64> = match (&visitor, &range) {
        (Some(v), _) => vec![*v],
        (None, Some(r)) => store::visitors_in(&mut tx, r).await?,
        (None, None) => Vec::new(),
    };
    let entry = store::get(&mut tx, id).await?;
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
        publish(&hub, &session, tx, v).await?;
    } else {
        tx.commit().await?;
    }
    for v in blocked {
        hub.revoke(tenant, Peer::Visitor(v));
    }
    // And whoever is connected from the range now, whatever address they started from.
    if let Some(range) = range.as_deref().and_then(|r| r.parse::<ipnet::IpNet>().ok()) {
        hub.revoke_range(tenant, range);
    }
    let (by, entry_id) = (session.agent.id.0, id.0);
    tracing::info!(tenant = tenant.0, by, entry = entry_id, "blacklist entry added");
    Ok((StatusCode::CREATED, Json(entry)).into_response())
}

/// What an entry blocks: one visitor (by public id, this merchant's) or an address range.
async fn target(
    tx: &mut tenants::TenantTx,
    req: &NewEntry,
) -> Result<(Option<i64>, Option<String>), AppError> {
    match (&req.visitor_id, &req.ip) {
        (Some(public_id), None) => Ok((Some(visitor_id(tx, public_id).await?), None)),
        (None, Some(ip)) => {
            Ok((None, Some(parse_range(ip).map_err(|m| AppError::field("ip", m))?)))
        }
        _ => Err(AppError::field("visitor_id", "give either visitor_id or ip")),
    }
}

async fn remove(
    State(hub): State<Arc<Hub>>,
    Ctx { session, mut tx, .. }: Ctx<Admin>,
    PathId(id): PathId<BlockId>,
) -> Result<StatusCode, AppError> {
    let (visitor, what) = store::delete(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    crate::merchant::audit::record(
        &mut tx,
        &session,
        "blacklist.remove",
        &what,
        serde_json::json!({}),
    )
    .await?;
    match visitor {
        Some(v) => {
            publish(&hub, &session, tx, v).await?;
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
