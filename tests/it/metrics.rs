//! `GET /metrics`: Prometheus text with bounded labels, readable from private networks or
//! with the configured token only.

use secrecy::SecretString;

use crate::{
    helpers::*,
    ws_client::{Ws, visitor_session},
};

async fn scrape(app: &TestApp, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = client().get(app.url("/metrics"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// The value of the first sample line starting with `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_connections_and_messages() {
    let app = spawn_app().await;
    let m = app.signup("Metrics Shop").await;
    let v = visitor_session(&app, &m.ent_id).await;
    let mut ws = Ws::visitor(&app, &v.token, "").await;
    ws.send_text("m1", "Hello", None).await;
    let conversation = ws.expect("ack").await["conversation_id"].as_i64().unwrap();
    app.get_as(&m, &format!("/api/v1/conversations/{conversation}")).await;
    client().get(app.url("/no/such/page/4242")).send().await.unwrap();

    let res = scrape(&app, &[]).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = res.text().await.unwrap();
    assert!(text.contains("kefu_build_info{version=\""), "{text}");
    assert!(sample(&text, "kefu_tenants{status=\"active\"}").unwrap() >= 1.0);
    assert!(sample(&text, "kefu_ws_connections{kind=\"visitor\"}").unwrap() >= 1.0);
    assert!(sample(&text, "kefu_messages_stored_total{sender=\"visitor\"}").unwrap() >= 1.0);
    assert!(sample(&text, "kefu_message_deliver_seconds_count").unwrap() >= 1.0);
    assert!(sample(&text, "kefu_message_batch_size_count").unwrap() >= 1.0);
    assert!(sample(&text, "kefu_db_pool_max").unwrap() >= 1.0);
    // Two connections per shard writer (the recorder is shared by every app in this test
    // process, and some run one writer, so only the floor is certain).
    assert!(sample(&text, "kefu_db_writer_max ").unwrap() >= 2.0);
    assert!(
        text.contains(
            "kefu_http_requests_total{method=\"POST\",route=\"/api/v1/signup\",status=\"2xx\"}"
        ),
        "{text}"
    );
    // Routes by template, never by raw path (no label per id or per typo).
    assert!(text.contains("route=\"/api/v1/conversations/{id}\""));
    assert!(text.contains("route=\"unmatched\""));
    assert!(!text.contains(&format!("/api/v1/conversations/{conversation}\"")));
    // In no series' name or labels (a sample's value, e.g. a latency sum, may hold the digits).
    assert!(
        !text
            .lines()
            .any(|l| l.rsplit_once(' ').is_some_and(|(series, _)| series.contains("4242"))),
        "{text}"
    );
    assert!(!text.contains(&m.ent_id), "nothing per tenant");

    // The socket closing takes it off the gauge.
    let before = sample(&text, "kefu_ws_connections{kind=\"visitor\"}").unwrap();
    drop(ws);
    let mut now = before;
    for _ in 0..50 {
        let text = scrape(&app, &[]).await.text().await.unwrap();
        now = sample(&text, "kefu_ws_connections{kind=\"visitor\"}").unwrap();
        if now < before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(now, before - 1.0);
}

#[tokio::test]
async fn metrics_are_private_or_need_the_token() {
    // Behind a proxy on this machine, a client on the internet is refused.
    let app = spawn_with(|c| c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]).await;
    assert_eq!(scrape(&app, &[("x-forwarded-for", "8.8.8.8")]).await.status(), 404);
    assert_eq!(scrape(&app, &[("x-forwarded-for", "10.0.0.7")]).await.status(), 200);

    let app = spawn_with(|c| c.metrics_token = Some(SecretString::from("scrape-me"))).await;
    assert_eq!(scrape(&app, &[]).await.status(), 404, "a token is configured: none given");
    assert_eq!(scrape(&app, &[("authorization", "Bearer wrong")]).await.status(), 404);
    let res = scrape(&app, &[("authorization", "Bearer scrape-me")]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(error_code(scrape(&app, &[]).await).await, "not_found");
}
