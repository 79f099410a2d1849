//! Uploads: what is accepted and refused, how files are served, and images in chats.

use crate::helpers::Fetch;
use std::time::{Duration, Instant};

use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::{
    helpers::*,
    ws_client::{Ws, visitor_session},
};

fn form(bytes: Vec<u8>, name: &str) -> Form {
    Form::new().part("file", Part::bytes(bytes).file_name(name.to_owned()))
}

async fn upload(app: &TestApp, token: &str, bytes: Vec<u8>, name: &str) -> reqwest::Response {
    client()
        .post(app.url("/api/v1/uploads"))
        .bearer_auth(token)
        .multipart(form(bytes, name))
        .sent()
        .await
}

/// The merchant's storage counters: the team's, and its visitors'.
async fn storage_bytes(app: &TestApp, ent_id: &str) -> (i64, i64) {
    sqlx::query_as(
        "select storage_bytes, visitor_storage_bytes from public.tenants where ent_id = $1",
    )
    .bind(ent_id)
    .fetch_one(app.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn images_and_documents_are_stored_and_served_safely() {
    let app = spawn_app().await;
    let m = app.signup("Upload Store").await;
    let visitor = visitor_session(&app, &m.ent_id).await;

    // A visitor's photo: an image with its size and a thumbnail.
    let res = upload(&app, &visitor.token, png(1200, 800), "../../lamp photo.png").await;
    assert_eq!(res.status(), 201);
    let image: Value = res.json().await.unwrap();
    assert_eq!(image["kind"], "image");
    assert_eq!(image["mime"], "image/png");
    assert_eq!(image["name"], "lamp photo.png", "no path survives");
    assert_eq!((image["width"].as_i64(), image["height"].as_i64()), (Some(1200), Some(800)));
    let id = image["id"].as_str().unwrap();
    assert_eq!(image["url"], format!("/u/{}/{id}", m.ent_id));
    let served = client().get(app.url(image["url"].as_str().unwrap())).send().await.unwrap();
    assert_eq!(served.status(), 200);
    let h = served.headers().clone();
    assert_eq!(h["content-type"], "image/png");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h["content-security-policy"].to_str().unwrap().contains("sandbox"));
    assert!(h["content-disposition"].to_str().unwrap().starts_with("inline"));
    assert_eq!(served.bytes().await.unwrap().len() as i64, image["size"].as_i64().unwrap());
    let thumb = client().get(app.url(image["thumb_url"].as_str().unwrap())).send().await.unwrap();
    assert_eq!(thumb.headers()["content-type"], "image/jpeg");
    let thumb = image::load_from_memory(&thumb.bytes().await.unwrap()).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (320, 213));

    // An agent's PDF: served as a download under its own name, no thumbnail.
    let pdf = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF\n".to_vec();
    let res = upload(&app, &m.token, pdf, "Angebot März.pdf").await;
    assert_eq!(res.status(), 201);
    let doc: Value = res.json().await.unwrap();
    assert_eq!(
        (doc["kind"].as_str(), doc["mime"].as_str()),
        (Some("file"), Some("application/pdf"))
    );
    assert!(doc.get("thumb_url").is_none());
    let served = client().get(app.url(doc["url"].as_str().unwrap())).send().await.unwrap();
    assert_eq!(
        served.headers()["content-disposition"],
        "attachment; filename*=UTF-8''Angebot%20M%C3%A4rz.pdf"
    );
    let no_thumb = client().get(app.url(&format!("{}/thumb", doc["url"].as_str().unwrap())));
    assert_eq!(no_thumb.send().await.unwrap().status(), 404);

    // The storage counters saw both: the visitor's photo (and its thumbnail) in the visitors'
    // budget, the agent's PDF in the team's.
    let (team, visitors) = storage_bytes(&app, &m.ent_id).await;
    assert_eq!(team, doc["size"].as_i64().unwrap());
    assert!(visitors > image["size"].as_i64().unwrap(), "with its thumbnail");

    // Guessing: unknown ids and malformed ones are simply not there.
    for path in [
        format!("/u/{}/aaaaaaaaaaaaaaaaaaaaaaaaaa", m.ent_id),
        format!("/u/{}/..%2F..%2Fjwt_secret", m.ent_id),
        format!("/u/nosuchmerchant/{id}"),
    ] {
        assert_eq!(client().get(app.url(&path)).send().await.unwrap().status(), 404, "{path}");
    }
}

#[tokio::test]
async fn bad_uploads_get_clear_errors() {
    let app = spawn_app().await;
    let m = app.signup("Careful Store").await;
    let before = storage_bytes(&app, &m.ent_id).await;
    let cases: Vec<(Vec<u8>, &str, u16, &str)> = vec![
        (
            b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>".to_vec(),
            "cute.png",
            415,
            "unsafe_type",
        ),
        (b"<!doctype html><script>alert(1)</script>".to_vec(), "notes.txt", 415, "unsafe_type"),
        (b"console.log(1)".to_vec(), "app.js", 415, "unsafe_type"),
        (
            b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00".to_vec(),
            "invoice.pdf",
            415,
            "unsupported_type",
        ),
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03".to_vec(), "logs.gz", 415, "unsupported_type"),
        (Vec::new(), "empty.txt", 400, "empty_file"),
        (
            {
                let mut p = png(10, 10);
                p.truncate(60);
                p
            },
            "broken.png",
            422,
            "invalid_image",
        ),
    ];
    for (bytes, name, status, code) in cases {
        let res = upload(&app, &m.token, bytes, name).await;
        assert_eq!(res.status(), status, "{name}");
        assert_eq!(error_code(res).await, code, "{name}");
    }

    // No part named "file"; no credentials; not multipart at all.
    let res = client()
        .post(app.url("/api/v1/uploads"))
        .bearer_auth(&m.token)
        .multipart(Form::new().text("note", "hello"))
        .sent()
        .await;
    assert_eq!(error_code(res).await, "bad_upload");
    let res =
        client().post(app.url("/api/v1/uploads")).multipart(form(png(2, 2), "a.png")).sent().await;
    assert_eq!(res.status(), 401);
    let res = client()
        .post(app.url("/api/v1/uploads"))
        .bearer_auth(&m.token)
        .json(&json!({"file": "x"}))
        .sent()
        .await;
    assert_eq!(res.status(), 400);

    // A decompression bomb: a small PNG declaring 30,000 × 30,000 pixels, refused at once.
    let bomb = png_declaring(30_000, 30_000);
    let started = Instant::now();
    let res = upload(&app, &m.token, bomb, "bomb.png").await;
    assert_eq!(res.status(), 422);
    assert_eq!(error_code(res).await, "image_too_large");
    assert!(started.elapsed() < Duration::from_secs(1), "refused in {:?}", started.elapsed());

    // Too large: an image over 10 MiB, and a body over 25 MiB that is refused by its
    // declared length before it is read.
    let mut big_image = png(8, 8);
    big_image.resize(10 * 1024 * 1024 + 10, 0);
    let res = upload(&app, &m.token, big_image, "huge.png").await;
    assert_eq!(res.status(), 413);
    assert_eq!(error_code(res).await, "file_too_large");
    let res = client()
        .post(app.url("/api/v1/uploads"))
        .bearer_auth(&m.token)
        .header("content-type", "multipart/form-data; boundary=x")
        .header("content-length", (40 * 1024 * 1024).to_string())
        .body(vec![b'a'; 1024])
        .send()
        .await;
    // The server answers 413 at once (it may close before taking the short body).
    if let Ok(res) = res {
        assert_eq!(res.status(), 413);
    }
    let res = upload(&app, &m.token, vec![b'a'; 26 * 1024 * 1024], "big.txt").await;
    assert_eq!(res.status(), 413);

    assert_eq!(storage_bytes(&app, &m.ent_id).await, before, "nothing refused was counted");
    let stored: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "select count(*) from tenant_{}.uploads",
        tenant_id(app.pool(), &m.ent_id).await.0
    )))
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(stored, 0);
}

#[tokio::test]
async fn images_travel_in_chats_by_upload_id() {
    let app = spawn_app().await;
    let m = app.signup("Photo Store").await;
    let other = app.signup("Other Store").await;
    let visitor = visitor_session(&app, &m.ent_id).await;
    let mut agent = Ws::agent(&app, &m.token, "").await;
    let mut ws = Ws::visitor(&app, &visitor.token, "").await;

    let image: Value =
        upload(&app, &visitor.token, png(64, 48), "desk.png").await.json().await.unwrap();
    ws.send(json!({"type": "send", "client_msg_id": "img-1", "kind": "image",
                   "attachment": {"id": image["id"], "url": "javascript:alert(1)", "name": "<b>x</b>"}}))
        .await;
    ws.expect("ack").await;
    let got = agent
        .expect_where("the image message", |f| f["type"] == "message" && f["kind"] == "image")
        .await;
    let a = &got["payload"]["attachment"];
    assert_eq!(a["url"], image["url"], "the server's URL, not the client's");
    assert_eq!(a["name"], "desk.png");
    assert_eq!((a["width"].as_i64(), a["height"].as_i64()), (Some(64), Some(48)));
    assert!(a["thumb_url"].as_str().unwrap().ends_with("/thumb"));

    // Someone else's upload (another visitor's, another merchant's), an unknown id, and a
    // document sent as an image are all refused.
    let other_visitor = visitor_session(&app, &m.ent_id).await;
    let theirs: Value =
        upload(&app, &other_visitor.token, png(8, 8), "t.png").await.json().await.unwrap();
    let foreign: Value = upload(&app, &other.token, png(8, 8), "f.png").await.json().await.unwrap();
    let doc: Value =
        upload(&app, &visitor.token, b"hello\n".to_vec(), "a.txt").await.json().await.unwrap();
    for (n, (kind, id)) in [
        ("image", theirs["id"].clone()),
        ("image", foreign["id"].clone()),
        ("image", json!("abcdefghijklmnopqrstuvwxyz")),
        ("image", doc["id"].clone()),
    ]
    .into_iter()
    .enumerate()
    {
        ws.send(json!({"type": "send", "client_msg_id": format!("bad-{n}"), "kind": kind, "attachment": {"id": id}}))
            .await;
        let e = ws.expect("error").await;
        assert_eq!(
            (e["code"].as_str(), e["client_msg_id"].as_str()),
            (Some("bad_attachment"), Some(format!("bad-{n}").as_str()))
        );
    }
    // A file message with the document works, and an agent may send any upload of theirs.
    ws.send(json!({"type": "send", "client_msg_id": "doc-1", "kind": "file", "attachment": {"id": doc["id"]}})).await;
    ws.expect("ack").await;
    let conversation = got["conversation_id"].as_i64().unwrap();
    agent
        .send(json!({"type": "send", "client_msg_id": "a-1", "conversation_id": conversation,
                     "kind": "image", "attachment": {"id": theirs["id"]}}))
        .await;
    agent.expect("ack").await;
    let seen = ws
        .expect_where("the agent's image", |f| f["type"] == "message" && f["kind"] == "image")
        .await;
    assert_eq!(seen["payload"]["attachment"]["id"], theirs["id"]);
}
