//! Small checks for text fields of JSON bodies; each failure names its field (422).

use super::AppError;

/// Trims `raw` and checks it: non-empty when `required`, at most `max` characters, no
/// control characters except newlines and tabs when `multiline`.
pub fn text(
    field: &'static str,
    raw: &str,
    max: usize,
    required: bool,
    multiline: bool,
) -> Result<String, AppError> {
    let value = raw.trim();
    if required && value.is_empty() {
        return Err(AppError::field(field, "this field is required"));
    }
    if value.chars().count() > max {
        return Err(AppError::field(field, format!("at most {max} characters")));
    }
    if value.chars().any(|c| c.is_control() && !(multiline && matches!(c, '\n' | '\t' | '\r'))) {
        return Err(AppError::field(field, "contains invalid characters"));
    }
    Ok(value.to_owned())
}

/// An optional text field: `None` stays `None`, blank becomes `None`.
pub fn optional_text(
    field: &'static str,
    raw: Option<&str>,
    max: usize,
) -> Result<Option<String>, AppError> {
    Ok(raw.map(|r| text(field, r, max, false, false)).transpose()?.filter(|v| !v.is_empty()))
}

/// A list position (ordering of quick replies, auto-reply rules…): 0–100,000.
pub fn position(p: Option<i32>) -> Result<Option<i32>, AppError> {
    p.map(|p| {
        (0..=100_000)
            .contains(&p)
            .then_some(p)
            .ok_or_else(|| AppError::field("position", "between 0 and 100000"))
    })
    .transpose()
}

/// An object id from a URL path. One that cannot name anything is a 404, exactly like an id
/// of another merchant's object.
pub fn path_id(raw: &str) -> Result<i64, AppError> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or(AppError::NotFound)
}

/// A `LIKE` pattern matching `q` anywhere, with `%`, `_` and `\` taken literally.
pub fn like_pattern(q: &str) -> String {
    let mut escaped = String::with_capacity(q.len() + 2);
    escaped.push('%');
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped.push('%');
    escaped
}

/// `raw` as an absolute http(s) URL with a host, at most 2,048 characters (normalized);
/// `None` for anything else — `javascript:`, `data:`, relative paths, garbage. Every URL a
/// visitor supplies that a page will show as a link or an image goes through here.
pub fn web_url(raw: &str) -> Option<String> {
    let url = url::Url::parse(raw.trim()).ok()?;
    let ok = matches!(url.scheme(), "http" | "https") && url.host().is_some();
    let text = url.to_string();
    (ok && text.len() <= 2048).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_rules() {
        assert_eq!(text("f", "  hi  ", 10, true, false).unwrap(), "hi");
        assert!(text("f", "   ", 10, true, false).is_err());
        assert!(text("f", "abcdefghijk", 10, true, false).is_err());
        assert!(text("f", "a\nb", 10, true, false).is_err());
        assert_eq!(text("f", "a\nb", 10, true, true).unwrap(), "a\nb");
        assert!(text("f", "a\u{7}b", 10, true, true).is_err());
        assert_eq!(optional_text("f", Some("  "), 10).unwrap(), None);
    }

    #[test]
    fn like_escapes() {
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }
}
