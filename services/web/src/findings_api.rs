//! The findings routes of contract §7: findings and their acknowledgement, maintenance
//! windows, clinic hours and one terminal.
//!
//! Scope is applied in the store's queries, never after; an association is given no
//! `terminal_id` (nor anything else naming a machine), and a route it may not use
//! answers 403. A value the caller got wrong is a 400 that names the parameter.

use actix_web::{HttpResponse, delete, get, post, put, web};
use fleet_protocol::findings::{
    ClinicHours, FindingKind, FindingStatus, MaintenanceWindow, Severity, WindowScope, classify,
    days_left,
};
use fleet_protocol::{ClinicCode, Prefecture, TenantSlug};
use fleet_store::{FindingFilter, Scope, StoredFinding};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::error::WebError;
use crate::i18n::jst_rfc3339;

#[derive(Deserialize)]
pub struct FindingsQuery {
    status: Option<String>,
    kind: Option<String>,
    severity: Option<String>,
    prefecture: Option<String>,
    clinic: Option<String>,
    terminal: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

fn bad(name: &str, value: &str, expected: &str) -> WebError {
    WebError::BadRequest(format!("{name}: {value:?} is not {expected}"))
}

impl FindingsQuery {
    fn filter(&self, caller: &Caller) -> Result<FindingFilter, WebError> {
        let mut filter = FindingFilter::default();
        if let Some(text) = self.status.as_deref().filter(|t| !t.is_empty()) {
            for s in text.split(',') {
                filter.statuses.push(
                    FindingStatus::parse(s).ok_or_else(|| {
                        bad("status", s, "active, suppressed, folded or resolved")
                    })?,
                );
            }
        }
        if let Some(k) = self.kind.as_deref().filter(|t| !t.is_empty()) {
            filter.kind =
                Some(FindingKind::parse(k).ok_or_else(|| bad("kind", k, "a finding kind"))?);
        }
        if let Some(s) = self.severity.as_deref().filter(|t| !t.is_empty()) {
            filter.severity = Some(
                Severity::parse(s).ok_or_else(|| bad("severity", s, "page, urgent or ticket"))?,
            );
        }
        if let Some(p) = self.prefecture.as_deref().filter(|t| !t.is_empty()) {
            filter.prefecture = Some(
                Prefecture::parse(p)
                    .map_err(|e| WebError::BadRequest(format!("prefecture: {e}")))?,
            );
        }
        if let Some(c) = self.clinic.as_deref().filter(|t| !t.is_empty()) {
            filter.clinic = Some(
                ClinicCode::parse(c).map_err(|e| WebError::BadRequest(format!("clinic: {e}")))?,
            );
        }
        if let Some(t) = self.terminal.as_deref().filter(|t| !t.is_empty()) {
            if !caller.sees_hosts() {
                return Err(WebError::BadRequest(
                    "terminal: not available to associations".to_owned(),
                ));
            }
            filter.terminal =
                Some(Uuid::parse_str(t).map_err(|_| bad("terminal", t, "a terminal id (UUID)"))?);
        }
        Ok(filter)
    }

    fn limit(&self) -> Result<u64, WebError> {
        match self.limit.as_deref().filter(|t| !t.is_empty()) {
            None => Ok(100),
            Some(l) => l
                .parse::<u64>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| bad("limit", l, "a number from 1 to 1000")),
        }
    }
}

/// One finding as a §7 list item; without `terminal_id` for an association.
pub fn finding_json(stored: &StoredFinding, caller: &Caller) -> Value {
    let f = &stored.finding;
    let mut item = json!({
        "id": stored.id.to_string(),
        "kind": f.kind.as_str(),
        "severity": f.severity.as_str(),
        "status": f.status.as_str(),
        "since": jst_rfc3339(f.since),
        "resolved_at": stored.resolved_at.map(jst_rfc3339),
        "clinic_code": f.clinic_code.map(|c| c.as_str().to_owned()),
        "prefecture": f.prefecture.map(|p| p.code().to_owned()),
        "area": f.area.map(|a| a.as_str()),
        "campaign": f.campaign,
        "state": f.state.map(|s| s.as_str()),
        "cause": f.cause,
        "days_left": f.days_left,
        "detail": f.detail,
        "instruction_ja": f.instruction_ja,
        "instruction_en": f.instruction_en,
        "window_id": f.window_id,
        "incident_id": f.incident_id,
        "acked_by": stored.acked_by,
        "acked_at": stored.acked_at.map(jst_rfc3339),
    });
    if caller.sees_hosts()
        && let Some(t) = f.terminal_id
    {
        item["terminal_id"] = Value::String(t.to_string());
    }
    item
}

#[get("/api/v1/findings")]
pub async fn list_findings(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<FindingsQuery>,
) -> Result<HttpResponse, WebError> {
    let filter = query.filter(&caller)?;
    let page = state
        .store
        .findings(
            &caller.scope,
            &filter,
            query.limit()?,
            query.cursor.as_deref(),
        )
        .await
        .map_err(|e| {
            if e.to_string().contains("cursor") {
                WebError::BadRequest(format!("{e}"))
            } else {
                WebError::Unexpected(e)
            }
        })?;
    let items: Vec<Value> = page
        .findings
        .iter()
        .map(|f| finding_json(f, &caller))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "findings": items, "next_cursor": page.next_cursor })))
}

#[get("/api/v1/incidents")]
pub async fn list_incidents(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, WebError> {
    let incidents = state.store.incidents(&caller.scope, 200).await?;
    let items: Vec<Value> = incidents.iter().map(|f| finding_json(f, &caller)).collect();
    Ok(HttpResponse::Ok().json(json!({ "incidents": items })))
}

/// The caller's tenant, for routes only vendor staff of these roles may use.
fn staff_tenant<'a>(caller: &'a Caller, roles: &[Role]) -> Result<&'a TenantSlug, WebError> {
    match &caller.scope {
        Scope::Tenant(t) if roles.contains(&caller.role) => Ok(t),
        _ => Err(WebError::Forbidden),
    }
}

#[post("/api/v1/findings/{id}/ack")]
pub async fn ack(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let tenant = staff_tenant(&caller, &[Role::Support, Role::Oncall, Role::Admin])?;
    let id = Uuid::parse_str(&id).map_err(|_| WebError::NotFound)?;
    if state
        .store
        .ack_finding(tenant, id, &caller.subject, state.clock.now())
        .await?
    {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(WebError::NotFound)
    }
}

fn window_json(w: &MaintenanceWindow) -> Value {
    json!({
        "id": w.id,
        "scope": String::from(w.scope.clone()),
        "area": w.area,
        "kind": w.kind,
        "starts_at": jst_rfc3339(w.starts_at),
        "ends_at": jst_rfc3339(w.ends_at),
        "title": w.title,
    })
}

#[get("/api/v1/maintenance-windows")]
pub async fn list_windows(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, WebError> {
    let mut list = match &caller.scope {
        Scope::Tenant(t) => state.store.windows(Some(t)).await?,
        // An association sees the operator's windows, not a vendor's own.
        Scope::Prefectures(_) => state.store.windows(None).await?,
    };
    if matches!(caller.scope, Scope::Prefectures(_)) {
        list.retain(|w| w.scope == WindowScope::All);
    }
    let items: Vec<Value> = list.iter().map(window_json).collect();
    Ok(HttpResponse::Ok().json(json!({ "windows": items })))
}

#[post("/api/v1/maintenance-windows")]
pub async fn add_window(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Bytes,
) -> Result<HttpResponse, WebError> {
    let tenant = staff_tenant(&caller, &[Role::Admin])?;
    let window: MaintenanceWindow =
        serde_json::from_slice(&body).map_err(|e| WebError::BadRequest(format!("window: {e}")))?;
    if window.scope != WindowScope::Tenant(tenant.clone()) {
        return Err(WebError::BadRequest(format!(
            "scope: must be your tenant {:?}",
            tenant.as_str()
        )));
    }
    window
        .validate()
        .map_err(|e| WebError::BadRequest(format!("window: {e}")))?;
    if !state.store.add_window(&window, state.clock.now()).await? {
        return Err(WebError::Conflict(format!(
            "id: {:?} exists already",
            window.id
        )));
    }
    Ok(HttpResponse::Created().json(window_json(&window)))
}

#[delete("/api/v1/maintenance-windows/{id}")]
pub async fn remove_window(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let tenant = staff_tenant(&caller, &[Role::Admin])?;
    if state.store.remove_window(&id, Some(tenant)).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(WebError::NotFound)
    }
}

/// A clinic code for the hours routes: any valid one (hours may be set before a
/// clinic's first report).
fn hours_code(code: &str) -> Result<ClinicCode, WebError> {
    ClinicCode::parse(code).map_err(|_| WebError::NotFound)
}

#[get("/api/v1/clinics/{code}/hours")]
pub async fn get_hours(
    state: web::Data<AppState>,
    caller: Caller,
    code: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let tenant = staff_tenant(&caller, &[Role::Support, Role::Oncall, Role::Admin])?;
    let code = hours_code(&code)?;
    let hours = state.store.clinic_hours(tenant, code).await?;
    Ok(HttpResponse::Ok().json(hours))
}

#[put("/api/v1/clinics/{code}/hours")]
pub async fn put_hours(
    state: web::Data<AppState>,
    caller: Caller,
    code: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, WebError> {
    let tenant = staff_tenant(&caller, &[Role::Support, Role::Admin])?;
    let code = hours_code(&code)?;
    let hours: ClinicHours =
        serde_json::from_slice(&body).map_err(|e| WebError::BadRequest(format!("hours: {e}")))?;
    state
        .store
        .set_clinic_hours(tenant, code, &hours, state.clock.now())
        .await?;
    Ok(HttpResponse::Ok().json(hours))
}

#[get("/api/v1/terminals/{id}")]
pub async fn get_terminal(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    staff_tenant(&caller, &[Role::Support, Role::Oncall, Role::Admin])?;
    let id = Uuid::parse_str(&id).map_err(|_| WebError::NotFound)?;
    let now = state.clock.now();
    let detail = state
        .store
        .terminal_detail(&caller.scope, id, now)
        .await?
        .ok_or(WebError::NotFound)?;
    let filter = FindingFilter {
        terminal: Some(id),
        ..FindingFilter::default()
    };
    let findings = state
        .store
        .findings(&caller.scope, &filter, 100, None)
        .await?;
    let s = &detail.state;
    let maker = s.reader_maker.as_ref().map(|o| o.value);
    let errors: Vec<Value> = detail
        .reader_errors
        .iter()
        .map(|e| {
            let c = classify(maker, &e.code, e.message.as_deref());
            json!({
                "code": e.code,
                "message": e.message,
                "at": jst_rfc3339(e.at),
                "count": e.count,
                "side": c.side,
                "meaning_ja": c.meaning_ja,
                "remedy_ja": c.remedy_ja,
                "remedy_en": c.remedy_en,
            })
        })
        .collect();
    let history: Vec<Value> = detail
        .history
        .iter()
        .map(|(seq, observed, received)| {
            json!({ "seq": seq, "observed_at": jst_rfc3339(*observed), "received_at": jst_rfc3339(*received) })
        })
        .collect();
    let certificate = s.certificate_not_after.as_ref().map(|o| {
        json!({
            "not_after": jst_rfc3339(o.value),
            "days_left": days_left(o.value, now),
            "issuer": s.certificate_issuer.as_ref().map(|i| &i.value),
        })
    });
    Ok(HttpResponse::Ok().json(json!({
        "terminal_id": id.to_string(),
        "clinic_code": s.clinic_code.as_str(),
        "prefecture": s.clinic_code.prefecture().code(),
        "area": s.clinic_code.area().as_str(),
        "hostname": s.hostname.as_ref().map(|o| &o.value),
        "last_seq": s.last_seq,
        "last_seen_at": jst_rfc3339(s.last_observed_at),
        "last_received_at": jst_rfc3339(detail.last_received_at),
        "line_auth": s.line_auth.as_ref().map(|o| o.value.as_str()),
        "reader": {
            "maker": maker,
            "model": s.reader_model.as_ref().map(|o| &o.value),
            "connected": s.reader_connected.as_ref().map(|o| o.value),
            "via_usb_hub": s.reader_via_usb_hub.as_ref().map(|o| o.value),
        },
        "nfc_reader": s.nfc_model.as_ref().map(|o| &o.value),
        "certificate": certificate,
        "findings": findings.findings.iter().map(|f| finding_json(f, &caller)).collect::<Vec<_>>(),
        "reader_errors": errors,
        "history": history,
    })))
}
