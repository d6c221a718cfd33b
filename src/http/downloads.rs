//! Report files by signed link (`reports::links`). A link that is malformed, tampered with,
//! expired, or names a run its tenant does not have gets 403 and nothing else: the answer
//! never tells which.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use scoped_futures::ScopedFutureExt;
use serde::Deserialize;
use uuid::Uuid;

use super::HttpState;
use crate::db::reports::{ReportRow, RunRow};
use crate::reports::links;
use crate::reports::{ReportFormat, Stored};

#[derive(Deserialize)]
pub struct LinkQuery {
    tenant: Option<String>,
    expires: Option<String>,
    sig: Option<String>,
}

fn refused() -> Response {
    (StatusCode::FORBIDDEN, "forbidden").into_response()
}

pub async fn report_file(
    State(state): State<HttpState>,
    Path(id): Path<String>,
    Query(q): Query<LinkQuery>,
) -> Response {
    let services = &state.app.reports;
    let (Ok(run_id), Some(tenant), Some(expires), Some(sig)) =
        (id.parse::<Uuid>(), q.tenant, q.expires, q.sig)
    else {
        return refused();
    };
    let now = chrono::Utc::now();
    let Ok(tenant) = links::verify(&services.links.key, run_id, &tenant, &expires, &sig, now)
    else {
        return refused();
    };
    let found = services
        .db
        .tenant(tenant, |conn| {
            async move {
                let run = match RunRow::find(conn, run_id).await {
                    Ok(run) => run,
                    Err(crate::error::AppError::NotFound(_)) => return Ok(None),
                    Err(e) => return Err(e),
                };
                let report = ReportRow::find_many(conn, &[run.report_id]).await?;
                Ok(Some((run, report.into_iter().next())))
            }
            .scope_boxed()
        })
        .await;
    let (run, report) = match found {
        Ok(Some((run, Some(report)))) => (run, report),
        Ok(_) => return refused(),
        Err(e) => {
            e.report("downloading a report file");
            return (StatusCode::SERVICE_UNAVAILABLE, "try again later").into_response();
        }
    };
    let Some(key) = run.file_key.as_deref() else {
        return (
            StatusCode::GONE,
            "this file was deleted after its retention period",
        )
            .into_response();
    };
    let file = match services.storage.open(key).await {
        Ok(Some(file)) => file,
        Ok(None) => {
            return (
                StatusCode::GONE,
                "this file was deleted after its retention period",
            )
                .into_response();
        }
        Err(e) => {
            e.report("opening a report file");
            return (StatusCode::SERVICE_UNAVAILABLE, "try again later").into_response();
        }
    };
    let format = ReportFormat::from_stored(&run.format).unwrap_or(ReportFormat::Csv);
    let name = format!(
        "{}-{}.{}",
        crate::reports::worker::file_name(&report.name),
        run.finished_at.unwrap_or(now).format("%Y-%m-%d"),
        format.extension()
    );
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file.body));
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(file.size));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    response
}
