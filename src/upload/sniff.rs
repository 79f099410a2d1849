//! What an uploaded file is, decided from its bytes (never from its name or the type the
//! client claims), and whether kefu takes it.

/// Largest image accepted.
pub const MAX_IMAGE_BYTES: usize = 10 * 1024 * 1024;
/// Largest other file accepted.
pub const MAX_FILE_BYTES: usize = 25 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Image,
    File,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::File => "file",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sniffed {
    pub kind: Kind,
    pub mime: &'static str,
    /// The extension stored names get when theirs does not fit the content.
    pub extension: &'static str,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// SVG, HTML, scripts and anything else that a browser might run.
    Active,
    /// Not on the list (executables, archives other than zip, media, …).
    Unsupported,
    TooLarge {
        limit: usize,
    },
}

const IMAGES: &[(&str, &str)] =
    &[("image/png", "png"), ("image/jpeg", "jpg"), ("image/gif", "gif"), ("image/webp", "webp")];

const FILES: &[(&str, &str)] = &[
    ("application/pdf", "pdf"),
    ("application/zip", "zip"),
    ("application/msword", "doc"),
    ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx"),
    ("application/vnd.ms-excel", "xls"),
    ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
    ("application/vnd.ms-powerpoint", "ppt"),
    ("application/vnd.openxmlformats-officedocument.presentationml.presentation", "pptx"),
    ("application/vnd.oasis.opendocument.text", "odt"),
    ("application/vnd.oasis.opendocument.spreadsheet", "ods"),
    ("application/vnd.oasis.opendocument.presentation", "odp"),
];

/// Names a browser or an operating system would treat as active content, whatever is inside.
const ACTIVE_EXTENSIONS: &[&str] = &[
    "html", "htm", "xhtml", "shtml", "svg", "svgz", "xml", "xsl", "js", "mjs", "css", "php", "exe",
    "bat", "cmd", "com", "msi", "sh", "ps1", "vbs", "jar", "scr", "hta", "swf",
];

pub fn sniff(bytes: &[u8], name: &str) -> Result<Sniffed, Refusal> {
    let extension = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    if ACTIVE_EXTENSIONS.contains(&extension.as_str()) || looks_like_markup(bytes) {
        return Err(Refusal::Active);
    }
    let found = if let Some(t) = infer::get(bytes) {
        let mime = t.mime_type();
        if let Some(&(mime, ext)) = IMAGES.iter().find(|(m, _)| *m == mime) {
            Sniffed { kind: Kind::Image, mime, extension: ext }
        } else if let Some(&(mime, ext)) = FILES.iter().find(|(m, _)| *m == mime) {
            Sniffed { kind: Kind::File, mime, extension: ext }
        } else {
            return Err(Refusal::Unsupported);
        }
    } else if is_plain_text(bytes) {
        if extension == "csv" {
            Sniffed { kind: Kind::File, mime: "text/csv", extension: "csv" }
        } else {
            Sniffed { kind: Kind::File, mime: "text/plain", extension: "txt" }
        }
    } else {
        return Err(Refusal::Unsupported);
    };
    let limit = match found.kind {
        Kind::Image => MAX_IMAGE_BYTES,
        Kind::File => MAX_FILE_BYTES,
    };
    if bytes.len() > limit {
        return Err(Refusal::TooLarge { limit });
    }
    Ok(found)
}

/// UTF-8 without NUL or other control bytes (tabs and line breaks aside).
fn is_plain_text(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else { return false };
    !text.is_empty() && !text.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
}

/// Text that opens like HTML, XML or SVG (browsers sniff these even from other types).
fn looks_like_markup(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(512)];
    let text = String::from_utf8_lossy(head)
        .trim_start_matches('\u{feff}')
        .trim_start()
        .to_ascii_lowercase();
    ["<!doctype", "<html", "<svg", "<?xml", "<script", "<head", "<body", "<iframe", "<!--"]
        .iter()
        .any(|tag| text.starts_with(tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";

    #[test]
    fn type_comes_from_the_bytes_not_the_name() {
        assert_eq!(sniff(PNG, "notes.txt").unwrap().mime, "image/png");
        assert_eq!(sniff(b"%PDF-1.7\n...", "x.png").unwrap().mime, "application/pdf");
        assert_eq!(sniff(b"a,b\n1,2\n", "table.csv").unwrap().mime, "text/csv");
        assert_eq!(sniff("你好\n".as_bytes(), "hello").unwrap().mime, "text/plain");
    }

    #[test]
    fn active_content_is_refused_whatever_it_claims() {
        assert_eq!(
            sniff(b"<svg xmlns='http://www.w3.org/2000/svg'/>", "a.png"),
            Err(Refusal::Active)
        );
        assert_eq!(sniff(b"  <!DOCTYPE html><p>hi", "a.txt"), Err(Refusal::Active));
        assert_eq!(sniff(b"alert(1)", "a.js"), Err(Refusal::Active));
        assert_eq!(sniff(PNG, "a.svg"), Err(Refusal::Active));
        assert_eq!(
            sniff(b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff", "setup.pdf"),
            Err(Refusal::Unsupported)
        );
        assert_eq!(sniff(b"\0\x01\x02binary", "a.txt"), Err(Refusal::Unsupported));
    }

    #[test]
    fn size_limits_depend_on_the_kind() {
        let mut big = PNG.to_vec();
        big.resize(MAX_IMAGE_BYTES + 1, 0);
        assert_eq!(sniff(&big, "a.png"), Err(Refusal::TooLarge { limit: MAX_IMAGE_BYTES }));
        let mut text = vec![b'a'; MAX_IMAGE_BYTES + 1];
        text.push(b'\n');
        assert!(sniff(&text, "big.txt").is_ok(), "files may be larger than images");
    }
}
