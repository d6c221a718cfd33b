//! Rebuilds the crate when a migration is added (`embed_migrations!` tracks the files it read,
//! not new directories beside them), and lists the replaceable layer's SQL files for
//! `db::replaceable`, so that a new file is applied without being named anywhere else.

use std::fmt::Write;

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=src/db/functions");
    let mut files: Vec<String> = std::fs::read_dir("src/db/functions")
        .expect("src/db/functions")
        .map(|e| {
            e.expect("a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".sql"))
        .collect();
    files.sort();
    let mut list = String::from("&[\n");
    for file in files {
        let name = file.trim_end_matches(".sql");
        writeln!(
            list,
            "    ({name:?}, include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/src/db/functions/{file}\"))),"
        )
        .expect("writing to a string");
    }
    list.push(']');
    let out = std::env::var("OUT_DIR").expect("OUT_DIR");
    std::fs::write(format!("{out}/functions.rs"), list).expect("writing the function list");
}
