//! Bad input gets a clear 4xx with the JSON error shape — never a 5xx, never a crash, never
//! a change to the data.

use reqwest::Method;
use serde_json::json;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_gets_clear_client_errors() {
    let app = spawn_with(|c| c.base_domain = Some("kefu.test".into())).await;
    let m = app.signup("Robust").await;
    let before: (i64, i64) = sqlx::query_as(
        "select (select count(*) from public.tenants), (select count(*) from public.users)",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();

    let garbage_company = "\u{0}\u{202e}\u{feff}💥".repeat(50);
    let sql = "x' or '1'='1'; drop table public.tenants; --";
    // (method, path, content-type, body, bearer?, expected status, expected code)
    type Case<'a> = (Method, String, Option<&'a str>, String, bool, u16, &'a str);
    let cases: Vec<Case> = vec![
        (Method::POST, "/api/v1/signup".into(), Some("application/json"), "{\"company\":".into(), false, 400, "malformed_json"),
        (Method::POST, "/api/v1/signup".into(), Some("application/json"), "[1,2,3]".into(), false, 422, "invalid_body"),
        (Method::POST, "/api/v1/signup".into(), Some("application/json"), json!({"company": "x"}).to_string(), false, 422, "invalid_body"),
        (Method::POST, "/api/v1/signup".into(), Some("application/json"), json!({"company": 1, "email": [], "password": null}).to_string(), false, 422, "invalid_body"),
        (Method::POST, "/api/v1/signup".into(), None, json!({"company": "x", "email": "a@b.co", "password": PASSWORD}).to_string(), false, 415, "unsupported_media_type"),
        (Method::POST, "/api/v1/signup".into(), Some("text/plain"), "hello".into(), false, 415, "unsupported_media_type"),
        (Method::POST, "/api/v1/signup".into(), Some("application/json"), json!({"company": "Ok", "email": "a@@b", "password": PASSWORD}).to_string(), false, 422, "validation_failed"),
        (Method::POST, "/api/v1/signup".into(), Some("application/json"), json!({"company": "Ok", "email": format!("{}@x.com", "a".repeat(300)), "password": PASSWORD}).to_string(), false, 422, "validation_failed"),
        (Method::POST, "/api/v1/signup".into(), Some("application/json"), json!({"company": garbage_company, "email": "ok@example.com", "password": PASSWORD}).to_string(), false, 422, "validation_failed"),
        (Method::POST, "/api/v1/signup".into(), Some("application/json"), json!({"company": sql, "email": sql, "password": sql}).to_string(), false, 422, "validation_failed"),
        (Method::POST, "/api/v1/login".into(), Some("application/json"), json!({"email": sql, "password": sql}).to_string(), false, 401, "invalid_credentials"),
        (Method::POST, "/api/v1/login".into(), Some("application/json"), json!({"email": "\u{0}", "password": "\u{0}"}).to_string(), false, 401, "invalid_credentials"),
        (Method::POST, "/api/v1/login".into(), Some("application/json"), json!({"email": "a@b.co", "password": "x".repeat(5000)}).to_string(), false, 401, "invalid_credentials"),
        (Method::POST, "/api/v1/login/select".into(), Some("application/json"), json!({"select_token": "nope", "ent_id": sql}).to_string(), false, 401, "unauthorized"),
        (Method::GET, "/api/v1/me".into(), None, String::new(), false, 401, "unauthorized"),
        (Method::GET, format!("/api/v1/me?ent_id={}", urlencode(sql)), None, String::new(), true, 404, "not_found"),
        (Method::GET, "/api/v1/agents/abc".into(), None, String::new(), true, 404, "not_found"),
        (Method::GET, "/api/v1/agents/99999999999999999999999".into(), None, String::new(), true, 404, "not_found"),
        (Method::GET, format!("/api/v1/agents/{}", urlencode(sql)), None, String::new(), true, 404, "not_found"),
        (Method::GET, "/api/v1/agents/-1".into(), None, String::new(), true, 404, "not_found"),
        (Method::GET, "/api/v1/conversations/0".into(), None, String::new(), true, 404, "not_found"),
        (Method::GET, "/api/v1/conversations/%FF%FE".into(), None, String::new(), true, 404, "not_found"),
        (Method::POST, "/api/v1/conversations/1e3/close".into(), None, String::new(), true, 404, "not_found"),
        (Method::DELETE, "/api/v1/webhooks/%20".into(), None, String::new(), true, 404, "not_found"),
        (Method::DELETE, "/api/v1/me".into(), None, String::new(), true, 405, "method_not_allowed"),
        (Method::GET, "/api/v1/does-not-exist".into(), None, String::new(), false, 404, "not_found"),
        (Method::GET, "/static/../Cargo.toml".into(), None, String::new(), false, 404, "not_found"),
    ];
    for (method, path, ctype, body, bearer, status, code) in cases {
        let mut req = client().request(method.clone(), app.url(&path)).body(body);
        if let Some(ctype) = ctype {
            req = req.header("content-type", ctype);
        }
        if bearer {
            req = req.bearer_auth(&m.token);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{method} {path}");
        assert_eq!(error_code(res).await, code, "{method} {path}");
    }

    // Broken credentials.
    for auth in [
        "Bearer",
        "Bearer ",
        "Bearer a.b.c",
        "Basic dXNlcjpwYXNz",
        "Bearer \u{7f}",
        &format!("Bearer {}", "x".repeat(10_000)),
    ] {
        let Ok(value) = reqwest::header::HeaderValue::from_str(auth) else {
            continue;
        };
        let res = client().get(app.url("/api/v1/me")).header("authorization", value).sent().await;
        assert_eq!(res.status(), 401, "{auth:?}");
    }
    let res = client()
        .get(app.url("/api/v1/me"))
        .header("cookie", "kefu_session=%%%; kefu_csrf=\u{1}")
        .send()
        .await;
    if let Ok(res) = res {
        assert_eq!(res.status(), 401);
    }

    // Hosts with SQL metacharacters and garbage never reach a query, never 5xx.
    for host in [
        "x'; drop table public.tenants;--.kefu.test",
        "%00.kefu.test",
        "a..b",
        "[::1]:99999",
        "ünïcødé.kefu.test",
        "kefu.test",
    ] {
        let Ok(value) = reqwest::header::HeaderValue::from_str(host) else {
            continue;
        };
        let res = client()
            .get(app.url("/api/v1/me"))
            .bearer_auth(&m.token)
            .header("host", value)
            .sent()
            .await;
        assert!(
            res.status().is_success() || res.status().is_client_error(),
            "Host {host:?}: {}",
            res.status()
        );
    }

    // Unknown ent_ids in pages are readable 404 pages.
    let res = client()
        .get(app.url("/app?ent_id=%27%3Bdrop"))
        .header("accept", "text/html")
        .bearer_auth(&m.token)
        .sent()
        .await;
    assert_eq!(res.status(), 404);
    assert!(res.text().await.unwrap().contains("<!doctype html>"));

    let after: (i64, i64) = sqlx::query_as(
        "select (select count(*) from public.tenants), (select count(*) from public.users)",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(before, after, "bad input changed nothing");
}

/// A 10 MB body is refused with 413 from its headers alone, before it is read; a chunked
/// one (no length announced) as soon as it passes the limit. Raw sockets, because the
/// server rightly stops reading and an HTTP client then reports a broken pipe instead of
/// the answer.
#[tokio::test]
async fn huge_bodies_are_refused_before_being_read() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let app = spawn_app().await;
    let addr = app.url.trim_start_matches("http://").to_owned();
    for path in ["/api/v1/signup", "/api/v1/login", "/signup"] {
        let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            10 * 1024 * 1024
        );
        socket.write_all(head.as_bytes()).await.unwrap();
        socket.write_all(&[b'x'; 4096]).await.unwrap();
        let started = std::time::Instant::now();
        let mut answer = vec![0u8; 4096];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), socket.read(&mut answer))
            .await
            .unwrap()
            .unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
        assert!(answer.contains("payload_too_large"), "{path}: {answer}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/v1/signup HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "x".repeat(64 * 1024));
    let mut response = Vec::new();
    for _ in 0..160 {
        if socket.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
        let mut buf = [0u8; 1024];
        if let Ok(Ok(n)) =
            tokio::time::timeout(std::time::Duration::from_millis(5), socket.read(&mut buf)).await
        {
            response.extend_from_slice(&buf[..n]);
            if n > 0 {
                break;
            }
        }
    }
    if response.is_empty() {
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), socket.read(&mut buf))
            .await
            .unwrap()
            .unwrap_or(0);
        response.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&response);
    assert!(answer.starts_with("HTTP/1.1 413"), "chunked: {answer}");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(
            |b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            },
        )
        .collect()
}
