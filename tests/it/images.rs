//! Product and card pictures served through kefu (`/img/{ent_id}?u=&s=`): only links kefu
//! signed, only images, only from public addresses unless the deployment allows private
//! ones, never more than 2 MB.

use axum::{Router, http::header, routing::get};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::ws_client::{Ws, visitor_session};

/// A shop serving a picture, a page and an oversized "picture"; its base URL.
async fn shop() -> String {
    let lamp = png(40, 30);
    let router = Router::new()
        .route(
            "/lamp.png",
            get(move || async move { ([(header::CONTENT_TYPE, "image/png")], lamp) }),
        )
        .route(
            "/page.png",
            get(|| async {
                ([(header::CONTENT_TYPE, "image/png")], "<html><script>alert(1)</script></html>")
            }),
        )
        .route(
            "/huge.png",
            get(|| async { ([(header::CONTENT_TYPE, "image/png")], vec![0u8; 3 * 1024 * 1024]) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

/// What a visitor's product message with picture `img` was stored with: its signed path.
async fn signed_path(app: &TestApp, m: &Merchant, img: &str) -> String {
    let v = visitor_session(app, &m.ent_id).await;
    let mut ws = Ws::visitor(app, &v.token, "").await;
    ws.send(json!({ "type": "send", "client_msg_id": "p1", "kind": "product",
                    "product": { "title": "Walnut lamp", "price": "¥199", "img": img, "url": "https://shop.example/lamp" } }))
        .await;
    let conversation = ws.expect("ack").await["conversation_id"].as_i64().unwrap();
    let page =
        app.get_json(&m.token, &format!("/api/v1/conversations/{conversation}/messages")).await;
    let product = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["kind"] == "product")
        .map(|x| x["payload"]["product"].clone())
        .unwrap();
    assert_eq!(product["img"], img);
    product["img_src"].as_str().expect("a signed path").to_owned()
}

#[tokio::test]
async fn product_pictures_come_through_kefu_and_only_images() {
    let app = spawn_with(|c| c.webhooks_allow_private = true).await;
    let m = app.signup("Picture Shop").await;
    let other = app.signup("Other Picture Shop").await;
    let base = shop().await;

    let path = signed_path(&app, &m, &format!("{base}/lamp.png")).await;
    assert!(path.starts_with(&format!("/img/{}?u=", m.ent_id)), "{path}");
    let res = client().get(app.url(&path)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert_eq!(res.bytes().await.unwrap().to_vec(), png(40, 30));

    // A link kefu did not sign, or signed for another merchant, names nothing.
    let tampered = path.replace("lamp.png", "page.png");
    assert_eq!(client().get(app.url(&tampered)).send().await.unwrap().status(), 404);
    let elsewhere = path.replace(&m.ent_id, &other.ent_id);
    assert_eq!(client().get(app.url(&elsewhere)).send().await.unwrap().status(), 404);
    let unsigned = format!("/img/{}?u={base}/lamp.png", m.ent_id);
    assert_eq!(client().get(app.url(&unsigned)).send().await.unwrap().status(), 400);

    // Not an image, or too big: refused with a clear error.
    for name in ["page.png", "huge.png"] {
        let path = signed_path(&app, &m, &format!("{base}/{name}")).await;
        let res = client().get(app.url(&path)).send().await.unwrap();
        assert_eq!(res.status(), 502, "{name}");
        assert_eq!(error_code(res).await, "image_unavailable", "{name}");
    }

    // A card's picture too (the merchant's system, through the API).
    let v = visitor_session(&app, &m.ent_id).await;
    let mut ws = Ws::visitor(&app, &v.token, "").await;
    ws.send_text("c0", "hello", None).await;
    let conversation = ws.expect("ack").await["conversation_id"].as_i64().unwrap();
    let res = client()
        .post(app.url(&format!("/api/v1/conversations/{conversation}/messages")))
        .bearer_auth(&m.token)
        .json(&json!({ "sender": "bot", "kind": "card", "card": { "title": "Order shipped", "image": format!("{base}/lamp.png") } }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let stored: Value = res.json().await.unwrap();
    let src = stored["payload"]["card"]["image_src"].as_str().unwrap().to_owned();
    assert_eq!(client().get(app.url(&src)).send().await.unwrap().status(), 200);

    // The picture a GOFLY link gives the visitor (`avatar`) shows for agents the same way.
    let res = client()
        .post(app.url("/api/v1/visitor/session"))
        .json(&json!({ "ent_id": m.ent_id, "avatar": format!("{base}/lamp.png") }))
        .send()
        .await
        .unwrap();
    let session: Value = res.json().await.unwrap();
    let visitor = app
        .get_json(
            &m.token,
            &format!("/api/v1/visitors/{}", session["visitor_id"].as_str().unwrap()),
        )
        .await;
    let src = visitor["avatar_src"].as_str().expect("a signed path").to_owned();
    let res = client().get(app.url(&src)).send().await.unwrap();
    assert_eq!(res.headers()["content-type"], "image/png");
}

#[tokio::test]
async fn pictures_from_private_addresses_are_refused() {
    let app = spawn_with(|c| c.webhooks_allow_private = false).await;
    let m = app.signup("Guarded Shop").await;
    let base = shop().await;
    let path = signed_path(&app, &m, &format!("{base}/lamp.png")).await;
    let res = client().get(app.url(&path)).send().await.unwrap();
    assert_eq!(res.status(), 502, "a loopback address is not fetched");
    assert_eq!(error_code(res).await, "image_unavailable");
}
