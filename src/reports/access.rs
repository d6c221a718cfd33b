//! Who may change a report: ANALYSTs their own, ADMIN and OWNER any, with the role the
//! database knows inside the change's own transaction.

use uuid::Uuid;

use crate::auth::{MemberClaims, Role, acting};
use crate::db::Conn;
use crate::db::reports::ReportRow;
use crate::error::{AppError, AppResult};

/// The report, locked, if the member (with the role the database knows now) may change it.
pub async fn editable(conn: &mut Conn, actor: &MemberClaims, id: Uuid) -> AppResult<ReportRow> {
    let role = acting::member_at_least(conn, actor, Role::Analyst).await?;
    let report = ReportRow::lock(conn, id).await?;
    if report.owner_id != actor.member_id && !role.at_least(Role::Admin) {
        return Err(AppError::forbidden(
            "ANALYSTs change only their own reports; this needs the ADMIN role or higher",
        ));
    }
    Ok(report)
}
