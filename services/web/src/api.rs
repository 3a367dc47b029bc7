//! The JSON API of contract §5: `/api/v1/clinics/{code}` and `/api/v1/rollout`.
//!
//! Shapes are exactly the contract's; `actions` per terminal is an additive field that
//! says why a terminal is in its state and what to do, as the pages do.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, get, web};
use fleet_protocol::{ClinicCode, Prefecture};
use fleet_store::Scope;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Caller;
use crate::error::WebError;
use crate::i18n::jst_rfc3339;
use crate::view::TerminalRow;

#[get("/api/v1/clinics/{code}")]
pub async fn clinic(
    state: web::Data<AppState>,
    caller: Caller,
    code: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    // A malformed code cannot name a clinic the caller may see: 404, not 400.
    let code = ClinicCode::parse(&code).map_err(|_| WebError::NotFound)?;
    let view = state
        .store
        .clinic(&code, &caller.scope)
        .await?
        .ok_or(WebError::NotFound)?;
    let campaigns = state.store.campaigns().await?;
    let terminals: Vec<Value> = view
        .terminals
        .iter()
        .map(|t| {
            let row = TerminalRow::from_store(t, &campaigns);
            let states: BTreeMap<&str, &str> =
                row.campaigns.iter().map(|c| (c.id.as_str(), c.state.as_str())).collect();
            let actions: BTreeMap<&str, Value> = row
                .campaigns
                .iter()
                .map(|c| {
                    (c.id.as_str(), json!({ "cause": c.cause.as_str(), "instruction": c.cause.instruction_ja() }))
                })
                .collect();
            json!({
                "terminal_id": row.terminal_id,
                "campaigns": states,
                "face_library": { "running": row.face_running, "downloaded": row.face_downloaded },
                "reboot_pending": row.reboot_pending,
                "line_auth": row.line_auth,
                "last_seen_at": jst_rfc3339(row.last_seen_at),
                "last_seq": row.last_seq,
                "actions": actions,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "clinic_code": view.clinic_code.as_str(),
        "prefecture": view.clinic_code.prefecture().code(),
        "area": view.clinic_code.area().as_str(),
        "terminals": terminals,
    })))
}

#[derive(Deserialize)]
pub struct RolloutQuery {
    campaign: Option<String>,
    prefecture: Option<String>,
}

#[get("/api/v1/rollout")]
pub async fn rollout(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<RolloutQuery>,
) -> Result<HttpResponse, WebError> {
    let campaign = query.campaign.as_deref().ok_or_else(|| {
        WebError::BadRequest("campaign: required, e.g. campaign=face-library-5.1.0".to_owned())
    })?;
    let prefecture = match query.prefecture.as_deref() {
        None => None,
        Some(p) => Some(
            Prefecture::parse(p).map_err(|e| WebError::BadRequest(format!("prefecture: {e}")))?,
        ),
    };
    if let (Scope::Prefectures(allowed), Some(p)) = (&caller.scope, prefecture)
        && !allowed.contains(&p)
    {
        return Err(WebError::NotFound);
    }
    let rollout = state
        .store
        .rollout(campaign, &caller.scope, prefecture)
        .await?
        .ok_or(WebError::NotFound)?;
    let states: BTreeMap<&str, u64> = rollout
        .states
        .iter()
        .map(|(s, n)| (s.as_str(), *n))
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "campaign": rollout.campaign,
        "total": rollout.total,
        "states": states,
    })))
}
