//! The public pages: landing in both languages, error pages, static assets, headers.

use crate::helpers::*;

#[tokio::test]
async fn landing_page_in_english_and_chinese() {
    let app = spawn_app().await;
    let en = client().get(app.url("/")).header("accept-language", "en-US,en;q=0.9").sent().await;
    assert_eq!(en.status(), 200);
    let csp = en.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"));
    assert_eq!(en.headers()["x-content-type-options"], "nosniff");
    assert!(en.headers().contains_key("referrer-policy"));
    let html = en.text().await.unwrap();
    assert!(html.contains("<html lang=\"en\">") && html.contains("Start your 14-day free trial"));

    let zh =
        client().get(app.url("/")).header("accept-language", "zh-CN,zh;q=0.9").text_body().await;
    assert!(zh.contains("<html lang=\"zh-CN\">") && zh.contains("免费试用 14 天"));

    // ?lang= wins over the browser and is remembered.
    let browser = client();
    let res =
        browser.get(app.url("/?lang=zh-CN")).header("accept-language", "en").send().await.unwrap();
    assert!(res.headers()["set-cookie"].to_str().unwrap().starts_with("kefu_lang=zh-CN"));
    assert!(res.text().await.unwrap().contains("免费试用"));
    let later = browser.get(app.url("/login")).header("accept-language", "en").text_body().await;
    assert!(later.contains("登录 kefu"));
}

#[tokio::test]
async fn errors_are_pages_for_browsers_and_json_for_the_api() {
    let app = spawn_app().await;
    let page =
        client().get(app.url("/no/such/page")).header("accept", "text/html").send().await.unwrap();
    assert_eq!(page.status(), 404);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(page.text().await.unwrap().contains("Page not found"));
    let api = client().get(app.url("/api/v1/no-such")).header("accept", "text/html").sent().await;
    assert_eq!(error_code(api).await, "not_found");
    let res = client().get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = client().get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn static_assets_are_served_from_the_binary() {
    let app = spawn_app().await;
    let css = client().get(app.url("/static/css/kefu.css")).send().await.unwrap();
    assert_eq!(css.status(), 200);
    assert!(css.headers()["content-type"].to_str().unwrap().starts_with("text/css"));
    let etag = css.headers()["etag"].to_str().unwrap().to_owned();
    let again =
        client().get(app.url("/static/css/kefu.css")).header("if-none-match", etag).sent().await;
    assert_eq!(again.status(), 304);
    assert_eq!(client().get(app.url("/static/nope.js")).send().await.unwrap().status(), 404);
}

/// The widget loader is served under its own name and GOFLY's, gzipped for clients that
/// accept it, and stays small (the budget is 10 KB gzipped).
#[tokio::test]
async fn the_widget_loader_is_served_small_and_under_the_gofly_name() {
    let app = spawn_app().await;
    // reqwest here has no gzip feature: it sends no Accept-Encoding and gets plain bytes.
    let plain = client().get(app.url("/static/js/widget.js")).send().await.unwrap();
    assert_eq!(plain.status(), 200);
    assert!(plain.headers()["content-type"].to_str().unwrap().contains("javascript"));
    let plain = plain.bytes().await.unwrap();
    let gofly = client().get(app.url("/static/js/gofly-front.js")).send().await.unwrap();
    assert_eq!(gofly.status(), 200);
    assert_eq!(gofly.bytes().await.unwrap(), plain, "GOFLY's path serves the same loader");

    let gzipped = client()
        .get(app.url("/static/js/widget.js"))
        .header("accept-encoding", "gzip")
        .sent()
        .await;
    assert_eq!(gzipped.headers()["content-encoding"], "gzip");
    let size = gzipped.bytes().await.unwrap().len();
    assert!(size < 10 * 1024, "widget.js is {size} bytes gzipped");
    assert!(size < plain.len() / 2, "gzip actually compressed it ({size} of {})", plain.len());
}
