//! `userbridge export`: every user of a backend as one dialect's request bodies, one per line
//! (with the route's path parameters when it has any), in the backend's order. Secrets are
//! never exported: the store does not hand them out and the rendering leaves them out.

use tokio::io::AsyncWriteExt;

use super::line_of;
use crate::backend::{BackendError, Store};
use crate::mapping::Mapping;

/// Users read per page.
const PAGE: usize = 500;

/// What an export did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// Users in the backend.
    pub users: u64,
    /// Lines written.
    pub written: u64,
    /// Users left out, each named on standard error (a path parameter the user has no
    /// value for).
    pub skipped: u64,
}

/// Writes every user of `store` to `out` as `mapping`'s bodies for `route`; `skipped` is told
/// of each user left out and why.
pub async fn export<W: tokio::io::AsyncWrite + Unpin>(
    store: &dyn Store,
    mapping: &Mapping,
    route: usize,
    out: &mut W,
    mut skipped: impl FnMut(&str, &str),
) -> Result<Summary, BackendError> {
    let mut summary = Summary::default();
    let mut start = 0;
    loop {
        let (users, total) = store.list(None, start, PAGE).await?;
        let n = users.len();
        let mut chunk = String::new();
        for user in users {
            summary.users += 1;
            let params = match mapping.render_params(route, &user) {
                Ok(p) => p,
                Err(why) => {
                    let name = user
                        .exposed()
                        .get("userName")
                        .and_then(|v| v.as_str())
                        .unwrap_or("?");
                    skipped(name, &why);
                    summary.skipped += 1;
                    continue;
                }
            };
            let body = mapping.render_request(route, &user, false);
            chunk.push_str(&line_of(&params, body).to_string());
            chunk.push('\n');
            summary.written += 1;
        }
        out.write_all(chunk.as_bytes())
            .await
            .map_err(|e| BackendError::Failed(format!("writing the export: {e}")))?;
        start += n;
        if n == 0 || start >= total {
            break;
        }
    }
    out.flush()
        .await
        .map_err(|e| BackendError::Failed(format!("writing the export: {e}")))?;
    Ok(summary)
}
