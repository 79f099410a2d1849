//! Embeds every `migrations/NNNN_name.sql` file as a `Migration`, in version order, so adding a
//! tenant migration is adding a file: nothing else to register; and every `functions/name.sql`
//! file as a `Function`, by name.

use std::{env, fs, path::Path};

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<(i32, String, String)> = Vec::new();
    for entry in fs::read_dir(&dir).expect("tenants/migrations exists") {
        let path = entry.expect("readable migrations dir").path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(stem) = file.strip_suffix(".sql") else {
            continue;
        };
        let (version, name) = stem
            .split_once('_')
            .unwrap_or_else(|| panic!("tenant migration {file} must be named NNNN_name.sql"));
        let version: i32 = version
            .parse()
            .unwrap_or_else(|_| panic!("tenant migration {file}: version is not a number"));
        println!("cargo:rerun-if-changed={}", path.display());
        files.push((version, name.to_owned(), path.display().to_string()));
    }
    files.sort();
    for pair in files.windows(2) {
        assert!(pair[0].0 != pair[1].0, "two tenant migrations share version {}", pair[0].0);
    }
    let mut out = String::from("&[\n");
    for (version, name, path) in &files {
        out.push_str(&format!(
            "    Migration {{ version: {version}, name: {name:?}, sql: include_str!({path:?}) }},\n"
        ));
    }
    out.push_str("]\n");
    let dest = Path::new(&env::var("OUT_DIR").unwrap()).join("tenant_migrations.rs");
    fs::write(dest, out).unwrap();
    embed_functions();
}

fn embed_functions() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("functions");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<(String, String)> = Vec::new();
    for entry in fs::read_dir(&dir).expect("tenants/functions exists") {
        let path = entry.expect("readable functions dir").path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(name) = file.strip_suffix(".sql") else {
            continue;
        };
        println!("cargo:rerun-if-changed={}", path.display());
        files.push((name.to_owned(), path.display().to_string()));
    }
    files.sort();
    let mut out = String::from("&[\n");
    for (name, path) in &files {
        out.push_str(&format!("    Function {{ name: {name:?}, sql: include_str!({path:?}) }},\n"));
    }
    out.push_str("]\n");
    let dest = Path::new(&env::var("OUT_DIR").unwrap()).join("tenant_functions.rs");
    fs::write(dest, out).unwrap();
}
