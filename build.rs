//! Rebuilds the crate when a migration is added: `embed_migrations!` tracks the files it read,
//! not new directories beside them.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
