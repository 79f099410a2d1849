//! Uploads stored in S3 (`storage_url = "s3://…"`), against a local server that speaks the
//! S3 protocol: moto's standalone server from PyPI, installed into `target/test-tools/moto`
//! from `tests/s3/requirements.txt` when missing. Without Python the test says so and
//! passes, unless `KEFU_REQUIRE_S3=1` (`.ci/run` sets it).

use crate::helpers::Fetch;
use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use object_store::ObjectStoreExt as _;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::{
    helpers::*,
    ws_client::{Ws, visitor_session},
};

const BUCKET: &str = "kefu-uploads";

/// `moto_server` from a virtualenv under `target/`, created on first use.
fn moto_server() -> Option<PathBuf> {
    python_tool("moto", "tests/s3/requirements.txt", "moto_server")
}

/// The server process; killed when the test ends.
struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_live_in_s3_and_leave_it_when_history_is_cleared() {
    let Some(bin) = tokio::task::spawn_blocking(moto_server).await.unwrap() else {
        assert!(
            std::env::var("KEFU_REQUIRE_S3").as_deref() != Ok("1"),
            "KEFU_REQUIRE_S3=1 but moto's S3 server could not be installed (python3, python3-venv, PyPI)"
        );
        eprintln!("SKIPPED: no local S3 server (needs python3 with venv and PyPI)");
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _moto = Moto(
        Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let s3 = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..100 {
        if http.get(&s3).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "moto_server did not start on {s3}");
    let res = http.put(format!("{s3}/{BUCKET}")).send().await.unwrap();
    assert!(res.status().is_success(), "creating the bucket: {}", res.status());

    let endpoint = s3.clone();
    let app = spawn_with(move |c| {
        c.storage_url = Some(format!("s3://{BUCKET}/kefu"));
        for (k, v) in [
            ("aws_endpoint", endpoint.as_str()),
            ("aws_region", "us-east-1"),
            ("aws_access_key_id", "test"),
            ("aws_secret_access_key", "test"),
            ("aws_allow_http", "true"),
        ] {
            c.storage_options.insert(k.into(), SecretString::from(v.to_owned()));
        }
    })
    .await;
    let m = app.signup("S3 Shop").await;
    let tenant = tenant_id(app.pool(), &m.ent_id).await.0;
    let v = visitor_session(&app, &m.ent_id).await;
    let image = png(300, 200);
    let upload: Value = client()
        .post(app.url("/api/v1/uploads"))
        .bearer_auth(&v.token)
        .multipart(
            reqwest::multipart::Form::new()
                .part("file", reqwest::multipart::Part::bytes(image.clone()).file_name("s3.png")),
        )
        .sent()
        .await
        .json()
        .await
        .unwrap();
    let id = upload["id"].as_str().expect("uploaded").to_owned();

    // The objects are in the bucket, under the prefix and the tenant (read with a client of
    // our own, signing like any S3 client).
    let bucket = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&s3)
        .with_region("us-east-1")
        .with_bucket_name(BUCKET)
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .with_allow_http(true)
        .build()
        .unwrap();
    let object = object_store::path::Path::from(format!("kefu/t{tenant}/{id}"));
    let thumb_object = object_store::path::Path::from(format!("kefu/t{tenant}/{id}.thumb"));
    let stored = bucket.get(&object).await.unwrap().bytes().await.unwrap();
    assert_eq!(stored.as_ref(), image.as_slice());
    assert!(bucket.head(&thumb_object).await.is_ok());
    // … and kefu serves them back from there.
    let served = client().get(app.url(upload["url"].as_str().unwrap())).send().await.unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.bytes().await.unwrap().as_ref(), image.as_slice());
    let thumb = client().get(app.url(upload["thumb_url"].as_str().unwrap())).send().await.unwrap();
    assert_eq!(thumb.status(), 200);

    // Clearing the visitor's history removes both objects.
    let mut ws = Ws::visitor(&app, &v.token, "").await;
    ws.send(json!({ "type": "send", "client_msg_id": "i1", "kind": "image", "attachment": { "id": id } }))
        .await;
    ws.expect("ack").await;
    let res = client()
        .delete(app.url(&format!("/api/v1/visitors/{}/messages", v.id)))
        .bearer_auth(&m.token)
        .sent()
        .await;
    assert_eq!(res.status(), 200);
    for gone in [&object, &thumb_object] {
        assert!(
            matches!(bucket.head(gone).await, Err(object_store::Error::NotFound { .. })),
            "{gone} is still in the bucket"
        );
    }
}
