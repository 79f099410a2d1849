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
