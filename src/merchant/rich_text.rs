//! Rich text that merchants write for their visitors (the welcome, offline and
//! out-of-hours messages): a small subset of HTML — paragraphs, line breaks, bold, italic,
//! underline, strike-through, links and lists — sanitized with ammonia before it is stored,
//! and read back as plain text wherever text is shown (message bodies, inbox previews,
//! notifications, the API's `body`).
//!
//! A value without any markup is taken as plain text, so API clients may keep sending
//! plain strings: it is escaped and its line breaks become `<br>`.

use std::collections::{HashMap, HashSet};

use crate::http::{AppError, input::text};

/// The elements that survive sanitizing.
const TAGS: [&str; 12] = ["p", "br", "strong", "b", "em", "i", "u", "s", "a", "ul", "ol", "li"];
/// Link schemes that survive; anything else (`javascript:`, `data:`, relative) loses its
/// `href`.
const SCHEMES: [&str; 4] = ["http", "https", "mailto", "tel"];

/// Longest text a message may show, and longest markup that may carry it.
const MAX_TEXT_CHARS: usize = 1000;
const MAX_HTML_CHARS: usize = 8000;

/// A rich-text field of a settings change: checked, sanitized, within its limits (422 with
/// the field named otherwise).
pub fn field(name: &'static str, raw: &str) -> Result<String, AppError> {
    let raw = text(name, raw, MAX_HTML_CHARS * 2, false, true)?;
    let html = sanitize(&raw);
    if to_text(&html).chars().count() > MAX_TEXT_CHARS {
        return Err(AppError::field(name, format!("at most {MAX_TEXT_CHARS} characters of text")));
    }
    if html.chars().count() > MAX_HTML_CHARS {
        return Err(AppError::field(name, "too much formatting for a message this long"));
    }
    Ok(html)
}

/// The stored form of a merchant's rich text: sanitized HTML, safe to render.
pub fn sanitize(raw: &str) -> String {
    let input = if has_markup(raw) { raw.to_owned() } else { plain_to_html(raw) };
    let html = ammonia::Builder::default()
        .tags(HashSet::from(TAGS))
        .generic_attributes(HashSet::new())
        .tag_attributes(HashMap::from([("a", HashSet::from(["href"]))]))
        .url_schemes(HashSet::from(SCHEMES))
        .url_relative(ammonia::UrlRelative::Deny)
        .link_rel(Some("noopener noreferrer nofollow"))
        .clean(&input)
        .to_string();
    // An editor that was emptied leaves `<p><br></p>` behind: that is no message at all.
    if to_text(&html).trim().is_empty() { String::new() } else { html }
}

/// Whether `raw` contains something that looks like a tag (`<a`, `</`, `<!`); text such
/// as "a < b" does not.
fn has_markup(raw: &str) -> bool {
    raw.as_bytes()
        .windows(2)
        .any(|w| w[0] == b'<' && (w[1].is_ascii_alphabetic() || matches!(w[1], b'/' | b'!')))
}

fn plain_to_html(text: &str) -> String {
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' => out.push_str("<br>"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// The plain-text reading of sanitized HTML (as [`sanitize`] produces it): tags dropped,
/// paragraphs, line breaks and list items on lines of their own, entities decoded.
pub fn to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        decode_into(&rest[..start], &mut out);
        let Some(end) = rest[start..].find('>') else {
            rest = "";
            break;
        };
        let tag = rest[start + 1..start + end].trim_start_matches('/');
        let name: String =
            tag.chars().take_while(|c| c.is_ascii_alphanumeric()).collect::<String>();
        match name.to_ascii_lowercase().as_str() {
            "br" | "p" | "ul" | "ol" => newline(&mut out),
            "li" if !rest[start + 1..].starts_with('/') => {
                newline(&mut out);
                out.push_str("• ");
            }
            _ => {}
        }
        rest = &rest[start + end + 1..];
    }
    decode_into(rest, &mut out);
    let lines: Vec<&str> = out.lines().map(str::trim_end).collect();
    lines.join("\n").trim().to_owned()
}

fn newline(out: &mut String) {
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
}

/// Appends `text` with the entities html5ever's serializer writes decoded.
fn decode_into(text: &str, out: &mut String) {
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp..];
        let entity = after.find(';').filter(|&i| i <= 10).map(|i| &after[..=i]);
        let decoded = entity.and_then(|e| match e {
            "&amp;" => Some('&'),
            "&lt;" => Some('<'),
            "&gt;" => Some('>'),
            "&quot;" => Some('"'),
            "&nbsp;" => Some(' '),
            _ => e
                .strip_prefix("&#")
                .and_then(|n| n.strip_suffix(';'))
                .and_then(|n| match n.strip_prefix(['x', 'X']) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok(),
                    None => n.parse().ok(),
                })
                .and_then(char::from_u32),
        });
        match (entity, decoded) {
            (Some(e), Some(c)) => {
                out.push(c);
                rest = &after[e.len()..];
            }
            _ => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_handlers_and_foreign_tags_are_removed() {
        let html = sanitize(
            r#"<p onclick="x()">Hi <b>there</b><script>alert(1)</script><img src=x onerror=alert(1)><svg><a href="javascript:alert(1)">x</a></svg><style>p{}</style></p>"#,
        );
        assert_eq!(html, "<p>Hi <b>there</b></p>");
        let html = sanitize(r#"<a href="javascript:alert(1)">a</a> <a href="/relative">b</a>"#);
        assert_eq!(
            html,
            "<a rel=\"noopener noreferrer nofollow\">a</a> <a rel=\"noopener noreferrer nofollow\">b</a>"
        );
        assert!(!sanitize("<math><mi>x</mi></math><iframe src=x></iframe>").contains('<'));
    }

    #[test]
    fn allowed_markup_and_links_stay() {
        let html = sanitize(
            r#"<p>Welcome to <strong>Shop</strong>!</p><ul><li><a href="https://shop.example/faq" target="_top" class="x">FAQ</a></li><li>mail <a href="mailto:help@shop.example">us</a></li></ul>"#,
        );
        assert_eq!(
            html,
            "<p>Welcome to <strong>Shop</strong>!</p><ul><li><a href=\"https://shop.example/faq\" rel=\"noopener noreferrer nofollow\">FAQ</a></li><li>mail <a href=\"mailto:help@shop.example\" rel=\"noopener noreferrer nofollow\">us</a></li></ul>"
        );
        assert_eq!(to_text(&html), "Welcome to Shop!\n• FAQ\n• mail us");
    }

    #[test]
    fn plain_text_keeps_its_lines_and_characters() {
        let html = sanitize("Hello & welcome\nWe answer in 5 min <3");
        assert_eq!(html, "Hello &amp; welcome<br>We answer in 5 min &lt;3");
        assert_eq!(to_text(&html), "Hello & welcome\nWe answer in 5 min <3");
        assert_eq!(sanitize("  "), "");
        assert_eq!(sanitize("<p><br></p>"), "");
        assert_eq!(sanitize("a < b"), "a &lt; b");
    }

    #[test]
    fn text_reading_decodes_entities() {
        assert_eq!(to_text("<p>a&nbsp;&amp;&#39;b&#x4e2d;</p><p>c</p>"), "a &'b中\nc");
        assert_eq!(to_text("x &unknown; y & z"), "x &unknown; y & z");
        assert_eq!(to_text("broken <b"), "broken");
    }
}
