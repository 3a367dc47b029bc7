//! One terminal for the support desk and on-call (contract §7
//! `GET /api/v1/terminals/{id}`): its state, its recent reader errors and the last
//! reports of its history, within the caller's tenant.

use anyhow::Context;
use chrono::{DateTime, FixedOffset, TimeDelta};
use fleet_protocol::{JST, ReaderError, TerminalState};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use uuid::Uuid;

use crate::schema::Terminals;
use crate::{Scope, Store};

/// A terminal as the API shows it.
#[derive(Clone, Debug)]
pub struct TerminalDetail {
    pub tenant: String,
    pub state: TerminalState,
    pub last_received_at: DateTime<FixedOffset>,
    /// Reader errors of the last day, newest first, at most 200.
    pub reader_errors: Vec<ReaderError>,
    /// The newest reports of its history, newest first: (seq, observed_at, received_at).
    pub history: Vec<(u64, DateTime<FixedOffset>, DateTime<FixedOffset>)>,
}

/// How far back the reader errors go, and how many reports of the history are shown.
const ERRORS_SINCE: TimeDelta = TimeDelta::days(1);
const HISTORY_ROWS: i64 = 20;

impl Store {
    /// A terminal within `scope`, or `None` (absent or another tenant's: the same).
    pub async fn terminal_detail(
        &self,
        scope: &Scope,
        id: Uuid,
        now: DateTime<FixedOffset>,
    ) -> anyhow::Result<Option<TerminalDetail>> {
        let Scope::Tenant(tenant) = scope else {
            // Associations never see a single machine.
            return Ok(None);
        };
        let id = id.to_string();
        let select = Query::select()
            .columns([
                Terminals::Tenant,
                Terminals::State,
                Terminals::LastReceivedAt,
            ])
            .from(Terminals::Table)
            .and_where(Expr::col(Terminals::TerminalId).eq(id.as_str()))
            .and_where(Expr::col(Terminals::Tenant).eq(tenant.as_str()))
            .to_owned();
        let Some(row) = self
            .db
            .query_one(&select)
            .await
            .context("reading a terminal")?
        else {
            return Ok(None);
        };
        let state: String = row.try_get("", "state")?;
        let state: TerminalState = serde_json::from_str(&state)
            .with_context(|| format!("stored state of terminal {id} does not parse"))?;
        let backend = self.db.get_database_backend();
        let since = (now - ERRORS_SINCE).with_timezone(&JST);
        let errors = self
            .db
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                match backend {
                    DbBackend::Postgres => {
                        "SELECT code, message, at, count FROM reader_errors \
                         WHERE terminal_id = $1 AND at >= $2 ORDER BY at DESC LIMIT 200"
                    }
                    _ => {
                        "SELECT code, message, at, count FROM reader_errors \
                         WHERE terminal_id = ? AND at >= ? ORDER BY at DESC LIMIT 200"
                    }
                },
                [id.as_str().into(), since.into()],
            ))
            .await
            .context("reading a terminal's reader errors")?;
        let reader_errors = errors
            .iter()
            .map(|r| {
                let count: i64 = r.try_get("", "count")?;
                Ok(ReaderError {
                    code: r.try_get("", "code")?,
                    message: r.try_get("", "message")?,
                    at: r.try_get("", "at")?,
                    count: u32::try_from(count).unwrap_or(u32::MAX),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let history_sql = match backend {
            DbBackend::Postgres => {
                "SELECT seq, observed_at, received_at FROM reports \
                 WHERE terminal_id = $1 ORDER BY seq DESC LIMIT $2"
            }
            // SQLite files the history by the terminal's history key.
            _ => {
                "SELECT seq, observed_at, received_at FROM reports WHERE terminal_key = \
                 (SELECT history_key FROM terminals WHERE terminal_id = ?) \
                 ORDER BY seq DESC LIMIT ?"
            }
        };
        let rows = self
            .db
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                history_sql,
                [id.as_str().into(), HISTORY_ROWS.into()],
            ))
            .await
            .context("reading a terminal's history")?;
        let history = rows
            .iter()
            .map(|r| {
                let seq: i64 = r.try_get("", "seq")?;
                Ok((
                    u64::try_from(seq).unwrap_or(0),
                    r.try_get("", "observed_at")?,
                    r.try_get("", "received_at")?,
                ))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Some(TerminalDetail {
            tenant: row.try_get("", "tenant")?,
            state,
            last_received_at: row.try_get("", "last_received_at")?,
            reader_errors,
            history,
        }))
    }
}
