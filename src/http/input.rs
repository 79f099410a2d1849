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

/// Whether `value` reads as a phone number: digits (at least five) with the usual `+ - ( ) .`
/// and spaces, at most 40 characters.
pub fn phone_number(value: &str) -> bool {
    value.len() <= 40
        && value.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c))
        && value.chars().filter(char::is_ascii_digit).count() >= 5
}

/// Characters that change how the text around them is shown without showing themselves:
/// bidirectional controls (a name with U+202E reads backwards and can pose as another) and
/// zero-width characters (a name of them looks blank, or like another with one inside).
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}'   // zero-width space, non-joiner, joiner; LRM, RLM
        | '\u{202A}'..='\u{202E}' // embeddings and overrides
        | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
        | '\u{2066}'..='\u{2069}' // isolates
        | '\u{061C}'               // Arabic letter mark
        | '\u{180E}'               // Mongolian vowel separator
        | '\u{FEFF}'               // zero-width no-break space
        | '\u{00AD}'               // soft hyphen
        | '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' // Hangul fillers
    )
}

/// A name as people will see it: control and invisible characters ([`is_invisible`])
/// removed, trimmed, at most `max` characters; `None` when nothing visible is left.
pub fn shown_name(raw: &str, max: usize) -> Option<String> {
    let visible: String =
        raw.chars().filter(|c| !c.is_control() && !is_invisible(*c)).collect::<String>();
    let name: String = visible.trim().chars().take(max).collect();
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
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
pub fn path_id<T: From<i64>>(raw: &str) -> Result<T, AppError> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).map(T::from).ok_or(AppError::NotFound)
}

/// A search box's text as a `LIKE` pattern (see [`like_pattern`]): trimmed, its first 100
/// characters; `None` for an empty or absent one (no filter).
pub fn search_pattern(q: Option<&str>) -> Option<String> {
    let q = q.map(str::trim).filter(|s| !s.is_empty())?;
    Some(like_pattern(&q.chars().take(100).collect::<String>()))
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

/// A time bound: RFC 3339, or a date (`end` picks its last instant's successor, so "seen
/// before 2026-12-07" includes that day).
pub fn time_bound(
    field: &'static str,
    raw: Option<&str>,
    end: bool,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, AppError> {
    let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else { return Ok(None) };
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Ok(Some(t.with_timezone(&chrono::Utc)));
    }
    let date = chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .map_err(|_| AppError::field(field, "a time (RFC 3339) or a date (YYYY-MM-DD)"))?;
    let date = if end { date.succ_opt().unwrap_or(date) } else { date };
    Ok(date.and_hms_opt(0, 0, 0).map(|t| t.and_utc()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_keep_only_what_shows() {
        use super::shown_name;
        assert_eq!(shown_name("  张伟 ", 60).as_deref(), Some("张伟"));
        assert_eq!(shown_name("\u{202E}gnp.exe", 60).as_deref(), Some("gnp.exe"));
        assert_eq!(shown_name("Ad\u{200B}min", 60).as_deref(), Some("Admin"));
        assert_eq!(shown_name("\u{200B}\u{200D}\u{2066}", 60), None, "nothing visible");
        assert_eq!(shown_name("\u{3164}", 60), None, "a Hangul filler is blank");
        assert_eq!(shown_name("Ana\u{0301} 🙂", 60).as_deref(), Some("Ana\u{0301} 🙂"));
        assert_eq!(shown_name(&"长".repeat(100), 60).unwrap().chars().count(), 60);
    }

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
