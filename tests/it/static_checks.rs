//! Checks on the source tree that keep the tenancy rules honest.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs" || e == "sql") {
            out.push(path);
        }
    }
    out
}

/// `search_path` may only be set by the TenantTx door (`tenants/src/tx.rs`); comments may
/// talk about it. A tenant migration may pin a function to its own schema with
/// `set search_path from current` (it narrows the path, and only inside that function).
#[test]
fn search_path_is_only_touched_by_the_door() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let door = root.join("tenants/src/tx.rs");
    let mut offenders = Vec::new();
    for dir in ["src", "tenants/src", "tenants/migrations", "migrations", "billing/src"] {
        for file in rust_files(&root.join(dir)) {
            if file == door {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.trim_start();
                let comment = code.starts_with("//") || code.starts_with("--");
                let lower = code.to_lowercase();
                let pinned_function = file.starts_with(root.join("tenants/migrations"))
                    && lower == "set search_path from current";
                if !comment && !pinned_function && lower.contains("search_path") {
                    offenders.push(format!(
                        "{}:{}: {}",
                        file.strip_prefix(root).unwrap().display(),
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "search_path outside the TenantTx door:\n{}",
        offenders.join("\n")
    );
}

/// A person's credentials (password, second factor, credential generation) are written in one
/// place, `auth::accounts` (with the `totp` helpers it calls), which decides who may change
/// whose: a handler that wrote them itself would skip that decision.
#[test]
fn credentials_are_only_written_by_auth_accounts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let allowed = [root.join("src/auth/accounts.rs"), root.join("src/auth/totp.rs")];
    let writes = [
        "set password_hash",
        "password_hash = $",
        "totp_secret = ",
        "totp_enabled_at = ",
        "credential_gen = credential_gen",
    ];
    let mut offenders = Vec::new();
    for file in rust_files(&root.join("src")) {
        if allowed.contains(&file) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            let lower = code.to_lowercase();
            if writes.iter().any(|w| lower.contains(w)) {
                offenders.push(format!(
                    "{}:{}: {}",
                    file.strip_prefix(root).unwrap().display(),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "credentials written outside auth::accounts:\n{}",
        offenders.join("\n")
    );
}

/// The top-level modules of the `kefu` crate a source file names (`crate::chat::…`,
/// `use crate::{auth, http::AppError}`, `super::super::…` is not used in the tree). Comments
/// are skipped.
fn modules_named(source: &str) -> Vec<String> {
    let code: String =
        source.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
    let mut named = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // A group: its top-level items, up to the matching brace.
            let (mut depth, mut item, mut end) = (1, String::new(), group.len());
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 1 => {
                        end = i;
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 1 => {
                        named.push(std::mem::take(&mut item));
                        continue;
                    }
                    _ => {}
                }
                if depth == 1 {
                    item.push(c);
                }
            }
            named.push(item);
            rest = &group[end..];
        } else {
            named.push(rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect());
        }
    }
    named
        .into_iter()
        .map(|item| {
            let item = item.trim();
            item.split("::").next().unwrap_or(item).trim().to_owned()
        })
        .filter(|m| !m.is_empty() && m != "self")
        .collect()
}

/// Files under `dir` that name a module of the crate outside `allowed`, with what they name.
fn layer_breaches(dir: &str, allowed: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut breaches = Vec::new();
    for file in rust_files(&root.join(dir)) {
        let text = std::fs::read_to_string(&file).unwrap();
        for module in modules_named(&text) {
            if !allowed.contains(&module.as_str()) {
                breaches.push(format!(
                    "{} names crate::{module}",
                    file.strip_prefix(root).unwrap().display()
                ));
            }
        }
    }
    breaches
}

/// What every layer may use: configuration, the database pools, telemetry and metrics,
/// languages, address lookups and background loops. None of them is a feature.
const PLUMBING: &[&str] = &["config", "db", "telemetry", "metrics", "i18n", "geoip", "background"];

#[test]
fn the_checks_see_the_imports_they_judge() {
    let source = "use crate::{\n    chat::Chat,\n    http::{AppError, Routes},\n};\n\
                  // crate::auth in a comment\nfn f() { crate::upload::valid_id(\"x\"); }";
    assert_eq!(modules_named(source), ["chat", "http", "upload"]);
}

/// `http` is plumbing: errors, extractors, layers, the route-table type. Features plug into
/// it; it names none of them (the composition root, `startup`, does).
#[test]
fn http_imports_no_feature() {
    let allowed: Vec<&str> = PLUMBING.iter().copied().chain(["http"]).collect();
    let breaches = layer_breaches("src/http", &allowed);
    assert!(breaches.is_empty(), "http reaches into features:\n{}", breaches.join("\n"));
}

/// The realtime core (protocol, hub, writer, presence, bus, socket loops) knows no feature
/// and no HTTP framework: features drive it, and it calls out only through its hooks.
#[test]
fn the_realtime_core_imports_no_feature_and_no_axum() {
    let allowed: Vec<&str> = PLUMBING.iter().copied().chain(["realtime"]).collect();
    let mut breaches = layer_breaches("src/realtime", &allowed);
    breaches.extend(files_naming("src/realtime", &["axum"]));
    assert!(breaches.is_empty(), "the realtime core reaches out:\n{}", breaches.join("\n"));
}

/// Tenancy and billing are libraries below the application: no web framework in them.
#[test]
fn tenants_and_billing_know_no_axum() {
    let mut breaches = files_naming("tenants/src", &["axum"]);
    breaches.extend(files_naming("billing/src", &["axum"]));
    for manifest in ["tenants/Cargo.toml", "billing/Cargo.toml"] {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(root.join(manifest)).unwrap();
        if text.lines().any(|l| l.trim_start().starts_with("axum")) {
            breaches.push(format!("{manifest} depends on axum"));
        }
    }
    assert!(breaches.is_empty(), "{}", breaches.join("\n"));
}

/// Only the tenancy crate knows how tenants are laid out in the database: schema names,
/// quoting them, the search path.
#[test]
fn only_tenants_knows_the_schema_layout() {
    let breaches = files_naming("src", &["schema_name", "quote_ident", "search_path"]);
    assert!(breaches.is_empty(), "the schema layout outside tenants/:\n{}", breaches.join("\n"));
}

/// Lines of code (not comments) under `dir` that contain one of `words` as a whole word.
fn files_naming(dir: &str, words: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for file in rust_files(&root.join(dir)) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") || code.starts_with("--") {
                continue;
            }
            let named = words.iter().find(|w| {
                code.match_indices(*w).any(|(at, _)| {
                    let before = code[..at].chars().next_back();
                    let after = code[at + w.len()..].chars().next();
                    let boundary =
                        |c: Option<char>| !c.is_some_and(|c| c.is_alphanumeric() || c == '_');
                    boundary(before) && boundary(after)
                })
            });
            if let Some(word) = named {
                found.push(format!(
                    "{}:{}: {word}: {}",
                    file.strip_prefix(root).unwrap().display(),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    found
}

/// A handler file takes requests apart (an extractor in some signature); a store runs queries.
/// One file doing both hides the queries a feature runs among its HTTP code.
#[test]
fn no_query_in_a_handler_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let extractors = ["Ctx<", "State(", "Path(", "Query(", "Form(", "Multipart"];
    let mut with_sql = Vec::new();
    for file in rust_files(&root.join("src")) {
        let code: String = std::fs::read_to_string(&file)
            .unwrap()
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        if code.contains("sqlx::query") && extractors.iter().any(|e| code.contains(e)) {
            with_sql.push(file.strip_prefix(root).unwrap().display().to_string());
        }
    }
    assert!(
        with_sql.is_empty(),
        "queries in handler files; put them in the feature's store.rs:\n{}",
        with_sql.join("\n")
    );
}

/// Features receive what they need through `FromRef` (`State<PgPool>`, `State<Caches>`,
/// `Arc<Door>` for a `Ctx`, or a feature's own parts such as `State<Billing>`), never the
/// composition root's whole `AppState`: only `src/startup/` names it.
#[test]
fn features_take_only_what_they_need() {
    let mut naming: Vec<String> = files_naming("src", &["AppState"])
        .into_iter()
        .map(|hit| hit.split(':').next().unwrap().to_owned())
        .filter(|file| !file.starts_with("src/startup/"))
        .collect();
    naming.dedup();
    assert!(naming.is_empty(), "these files take the whole AppState; use FromRef: {naming:?}");
}
