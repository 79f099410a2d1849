//! CSV downloads: UTF-8 with a byte-order mark (so spreadsheet programs read Chinese names
//! right), cells that a spreadsheet would run as formulas defused, never cached.

use axum::{
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};

use super::AppError;

/// `rows` (header first) as a CSV attachment named `filename`.
pub fn attachment<R, C>(filename: &str, rows: R) -> Result<Response, AppError>
where
    R: IntoIterator<Item = C>,
    C: IntoIterator,
    C::Item: AsRef<str>,
{
    let mut out = csv::Writer::from_writer("\u{feff}".as_bytes().to_vec());
    for row in rows {
        out.write_record(row.into_iter().map(|cell| spreadsheet_safe(cell.as_ref())))
            .map_err(|e| AppError::Internal(e.into()))?;
    }
    let body = out.into_inner().map_err(|e| AppError::Internal(anyhow::anyhow!("{e}")))?;
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// A cell a spreadsheet will not run as a formula: text starting with `=`, `+`, `-`, `@`
/// (or a tab or carriage return) gets a leading apostrophe. Numbers are left alone.
fn spreadsheet_safe(cell: &str) -> String {
    let risky = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if risky && cell.parse::<f64>().is_err() { format!("'{cell}") } else { cell.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_that_look_like_formulas_are_defused() {
        assert_eq!(spreadsheet_safe("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(spreadsheet_safe("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(spreadsheet_safe("-12.5"), "-12.5");
        assert_eq!(spreadsheet_safe("Ann"), "Ann");
    }
}
