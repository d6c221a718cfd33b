//! Operator commands around secrets and providers (`fahwa reconcile`, `fahwa rotate-key`) and
//! the allow-list of operations (`fahwa trust-documents`).

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use scoped_futures::ScopedFutureExt;

use crate::App;
use crate::connectors::{manage, reconcile};
use crate::db::integrations::IntegrationRow;

/// Compares every standing Stripe integration of the tenant (or the one named) with what the
/// provider's subscriptions imply at the end of `day` (or now); returns whether all agree.
pub async fn reconcile(
    app: &App,
    slug: &str,
    integration: Option<&str>,
    day: Option<NaiveDate>,
) -> anyhow::Result<bool> {
    let tenant = app
        .db
        .scoped(crate::db::Scope::Anonymous, |conn| {
            let slug = slug.to_string();
            async move { crate::db::tenants::TenantRow::id_by_slug(conn, &slug).await }
                .scope_boxed()
        })
        .await?
        .with_context(|| format!("no tenant has the slug {slug}"))?;
    let rows = app
        .db
        .tenant(tenant, |conn| {
            async move { IntegrationRow::list(conn).await }.scope_boxed()
        })
        .await?;
    let rows: Vec<IntegrationRow> = rows
        .into_iter()
        .filter(|r| r.status != "DISCONNECTED")
        .filter(|r| integration.is_none_or(|id| r.id.to_string() == id))
        .collect();
    anyhow::ensure!(!rows.is_empty(), "{slug} has no such standing integration");
    let now = Utc::now();
    let at: DateTime<Utc> = match day {
        Some(d) => d
            .succ_opt()
            .and_then(|next| next.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc() - chrono::Duration::seconds(1))
            .context("a day in range")?
            .min(now),
        None => now,
    };
    let mut agree = true;
    for row in &rows {
        let r = reconcile::with_provider(&app.connectors, row, at).await?;
        println!(
            "{} {}: {} customers at {}, {} differ",
            row.provider,
            row.id,
            r.customers,
            r.at.format("%Y-%m-%d %H:%M:%S UTC"),
            r.differences.len()
        );
        for d in &r.differences {
            println!("  {d}");
        }
        agree &= r.differences.is_empty();
    }
    Ok(agree)
}

pub async fn rotate_key(app: &App) -> anyhow::Result<()> {
    let (seen, resealed) = manage::rotate_keys(&app.connectors).await?;
    println!(
        "{resealed} of {seen} integrations sealed again under key {}; keys no longer in use may \
         now be removed from FAHWA_SECRET_KEYS",
        app.vault.current_key()
    );
    Ok(())
}

/// `fahwa trust-documents`: every operation of the folder's `.graphql` files, registered.
pub async fn trust_documents(
    app: &App,
    dir: &std::path::Path,
    manifest_file: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "graphql"))
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for file in &files {
        let source = std::fs::read_to_string(file)?;
        docs.extend(
            crate::graphql::trusted::documents_of(&source)
                .with_context(|| format!("{}", file.display()))?,
        );
    }
    let added = crate::graphql::trusted::register(&app.config.database_url, &docs).await?;
    let manifest: serde_json::Map<String, serde_json::Value> = docs
        .iter()
        .map(|d| {
            (
                d.name.clone(),
                crate::graphql::trusted::hash(&d.body).into(),
            )
        })
        .collect();
    if let Some(path) = manifest_file {
        std::fs::write(path, serde_json::to_string_pretty(&manifest)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!(
        "{} operations from {} files, {added} of them new",
        docs.len(),
        files.len()
    );
    Ok(())
}
