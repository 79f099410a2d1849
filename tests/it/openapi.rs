//! The REST API against its OpenAPI document (`/api/openapi.json`): schemathesis from PyPI
//! (installed into `target/test-tools/schemathesis` from `tests/schemathesis/requirements.txt`
//! when missing) generates valid and invalid requests for every operation, with a write API
//! token on a merchant that has a conversation, and checks that nothing answers 5xx, every
//! answer is documented and matches its schema, and invalid input is refused. Without Python
//! the test says so and passes, unless `KEFU_REQUIRE_SCHEMATHESIS=1` (`.ci/run` sets it).

use crate::helpers::Fetch;
use serde_json::{Value, json};

use crate::{
    helpers::*,
    ws_client::{Ws, visitor_session},
};

#[tokio::test]
async fn the_document_is_served_and_describes_the_api() {
    let app = spawn_app().await;
    let res = client().get(app.url("/api/openapi.json")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let doc: Value = res.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let post = &doc["paths"]["/api/v1/conversations/{id}/messages"]["post"];
    assert!(post["requestBody"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());

    // The same, readable: every operation on one page, in the reader's language.
    let page = client().get(app.url("/api/docs")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let operations = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum::<usize>();
    assert_eq!(html.matches("class=\"api-op card\"").count(), operations);
    assert!(html.contains("<code>/api/v1/conversations/{id}/messages</code>"));
    let zh =
        client().get(app.url("/api/docs")).header("accept-language", "zh-CN").send().await.unwrap();
    assert!(zh.text().await.unwrap().contains("API 参考"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_the_api_true_to_its_document() {
    let tool =
        || python_tool("schemathesis", "tests/schemathesis/requirements.txt", "schemathesis");
    let Some(bin) = tokio::task::spawn_blocking(tool).await.unwrap() else {
        assert!(
            std::env::var("KEFU_REQUIRE_SCHEMATHESIS").as_deref() != Ok("1"),
            "KEFU_REQUIRE_SCHEMATHESIS=1 but schemathesis could not be installed (python3, python3-venv, PyPI)"
        );
        eprintln!("SKIPPED: no schemathesis (needs python3 with venv and PyPI)");
        return;
    };
    let app = spawn_app().await;
    let m = app.signup("Schema Shop").await;
    let res = client()
        .post(app.url("/api/v1/api_tokens"))
        .bearer_auth(&m.token)
        .json(&json!({ "name": "schemathesis", "scope": "write" }))
        .sent()
        .await;
    let token = res.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    // Something to find: a visitor with a conversation.
    let v = visitor_session(&app, &m.ent_id).await;
    let mut ws = Ws::visitor(&app, &v.token, "").await;
    ws.send_text("s1", "hello", None).await;
    let conversation = ws.expect("ack").await["conversation_id"].as_i64().unwrap();
    let agents = app.get_json(&m.token, "/api/v1/agents").await;
    let agent = agents["agents"][0]["id"].as_i64().unwrap();

    let report = std::env::temp_dir().join(format!("kefu-schemathesis-{}", std::process::id()));
    std::fs::create_dir_all(&report).unwrap();
    // Real ids too, so requests get past "not found" into the handlers (half of the cases
    // still use generated ones).
    let config = report.join("schemathesis.toml");
    std::fs::write(
        &config,
        format!(
            r#"[[operations]]
include-path-regex = "^/api/v1/conversations/\\{{id\\}}"
parameters = {{ id = "{conversation}" }}

[[operations]]
include-path-regex = "^/api/v1/visitors/\\{{id\\}}"
parameters = {{ id = "{visitor}" }}

[[operations]]
include-path-regex = "^/api/v1/agents/\\{{id\\}}"
parameters = {{ id = "{agent}" }}
"#,
            visitor = v.id
        ),
    )
    .unwrap();
    let run = tokio::process::Command::new(bin)
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(app.url("/api/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection",
        ])
        .args(["--max-examples", "30", "--workers", "2", "--seed", "1", "--no-color"])
        .args(["--generation-database", "none"])
        .arg("--report-dir")
        .arg(&report)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(600), run)
        .await
        .expect("schemathesis finishes within 10 minutes")
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "schemathesis found problems:\n{stdout}\n{stderr}");
}
