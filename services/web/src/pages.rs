//! The Japanese-first HTML pages: overview (`/`), clinic (`/clinics/{code}`) and login.
//!
//! A page without a valid session answers 401 with the login form, so a person is
//! never left at a bare error.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use askama::Template;
use fleet_protocol::campaign::FACE_LIBRARY_5_1_0;
use fleet_protocol::{Area, CampaignState, ClinicCode};
use fleet_store::WorkItem;
use serde::Deserialize;

use crate::AppState;
use crate::auth::{self, Caller, SESSION_COOKIE};
use crate::error::WebError;
use crate::i18n::{LANG_COOKIE, Lang, Texts, jst_display};
use crate::view::TerminalRow;

fn html(status: StatusCode, page: &impl Template, lang: Lang) -> Result<HttpResponse, WebError> {
    let body = page.render().map_err(|e| WebError::Unexpected(e.into()))?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .cookie(
            Cookie::build(LANG_COOKIE, lang.code())
                .path("/")
                .same_site(SameSite::Lax)
                .finish(),
        )
        .body(body))
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    lang: Lang,
    t: &'a Texts,
    error: Option<String>,
    /// Where to go after logging in: the page that asked for it.
    next: String,
}

fn login_page(
    lang: Lang,
    status: StatusCode,
    error: Option<String>,
    next: &str,
) -> Result<HttpResponse, WebError> {
    let next = safe_next(next).to_owned();
    let page = LoginPage {
        lang,
        t: lang.texts(),
        error,
        next,
    };
    html(status, &page, lang)
}

/// Only a path on this site: never `//host`, `https://…` or a backslash trick, so the
/// login form cannot be used to send someone elsewhere.
fn safe_next(next: &str) -> &str {
    let ok = next.starts_with('/') && !next.starts_with("//") && !next.contains('\\');
    if ok { next } else { "/" }
}

/// The login form, for a page requested without a valid session (401).
fn login_for(req: &HttpRequest, lang: Lang) -> Result<HttpResponse, WebError> {
    login_page(lang, StatusCode::UNAUTHORIZED, None, req.path())
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

#[get("/login")]
pub async fn login_form(
    req: HttpRequest,
    query: web::Query<NextQuery>,
) -> Result<HttpResponse, WebError> {
    let next = query.next.as_deref().unwrap_or("/");
    login_page(Lang::of(&req), StatusCode::OK, None, next)
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
    #[serde(default)]
    next: Option<String>,
}

#[post("/login")]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, WebError> {
    let lang = Lang::of(&req);
    let token = form.token.trim();
    let next = safe_next(form.next.as_deref().unwrap_or("/"));
    match auth::verify(&state.secret, token) {
        Ok(_) => Ok(HttpResponse::SeeOther()
            .insert_header(("Location", next))
            .cookie(
                Cookie::build(SESSION_COOKIE, token.to_owned())
                    .path("/")
                    .http_only(true)
                    .same_site(SameSite::Lax)
                    .finish(),
            )
            .finish()),
        Err(reason) => login_page(lang, StatusCode::UNAUTHORIZED, Some(reason), next),
    }
}

#[post("/logout")]
pub async fn logout() -> HttpResponse {
    let mut gone = Cookie::build(SESSION_COOKIE, "").path("/").finish();
    gone.make_removal();
    HttpResponse::SeeOther()
        .insert_header(("Location", "/login"))
        .cookie(gone)
        .finish()
}

/// One state's count on the overview.
struct StateCount {
    label: &'static str,
    class: &'static str,
    count: u64,
}

struct WorkLine {
    clinic_code: String,
    prefecture: &'static str,
    state_label: &'static str,
    class: &'static str,
    instruction: &'static str,
    terminals: u64,
}

#[derive(Template)]
#[template(path = "index.html")]
struct OverviewPage<'a> {
    lang: Lang,
    t: &'a Texts,
    subject: String,
    campaign_title: String,
    total: u64,
    counts: Vec<StateCount>,
    work: Vec<WorkLine>,
}

fn state_class(state: CampaignState) -> &'static str {
    state.as_str()
}

#[get("/")]
pub async fn overview(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Option<Caller>,
) -> Result<HttpResponse, WebError> {
    let lang = Lang::of(&req);
    let Some(caller) = caller else {
        return login_for(&req, lang);
    };
    let campaigns = state.store.campaigns().await?;
    let campaign = campaigns
        .iter()
        .find(|c| c.id == FACE_LIBRARY_5_1_0)
        .or(campaigns.first());
    let (title, total, counts, work) = match campaign {
        None => (String::new(), 0, Vec::new(), Vec::new()),
        Some(c) => {
            let rollout = state.store.rollout(&c.id, &caller.scope, None).await?;
            let mut items: Vec<WorkItem> = state.store.worklist(&c.id, &caller.scope, 200).await?;
            items.sort_by_key(|w| (priority(w.state), w.clinic_code));
            let counts = rollout
                .as_ref()
                .map(|r| {
                    r.states
                        .iter()
                        .map(|(s, n)| StateCount {
                            label: lang.state(*s),
                            class: state_class(*s),
                            count: *n,
                        })
                        .collect()
                })
                .unwrap_or_default();
            let work = items
                .iter()
                .map(|w| WorkLine {
                    clinic_code: w.clinic_code.as_str().to_owned(),
                    prefecture: match lang {
                        Lang::Ja => w.clinic_code.prefecture().name_ja(),
                        Lang::En => w.clinic_code.prefecture().name_en(),
                    },
                    state_label: lang.state(w.state),
                    class: state_class(w.state),
                    instruction: lang.instruction(w.cause),
                    terminals: w.terminals,
                })
                .collect();
            let title = match lang {
                Lang::Ja => c.title_ja.clone(),
                Lang::En => c.title_en.clone(),
            };
            (title, rollout.map_or(0, |r| r.total), counts, work)
        }
    };
    html(
        StatusCode::OK,
        &OverviewPage {
            lang,
            t: lang.texts(),
            subject: caller.subject,
            campaign_title: title,
            total,
            counts,
            work,
        },
        lang,
    )
}

/// Reboot-required first: one restart fixes those, the cheapest call to make.
fn priority(state: CampaignState) -> u8 {
    match state {
        CampaignState::RebootRequired => 0,
        CampaignState::NotDownloaded => 1,
        CampaignState::Unknown => 2,
        CampaignState::Updated => 3,
    }
}

struct CampaignCell {
    title: String,
    state_label: &'static str,
    class: &'static str,
    instruction: &'static str,
}

struct TerminalCard {
    terminal_id: String,
    hostname: Option<String>,
    campaigns: Vec<CampaignCell>,
    running: String,
    downloaded: String,
    reboot_pending: &'static str,
    line_auth: &'static str,
    line_auth_class: &'static str,
    last_seen: String,
    last_seq: u64,
}

#[derive(Template)]
#[template(path = "clinic.html")]
struct ClinicPage<'a> {
    lang: Lang,
    t: &'a Texts,
    subject: String,
    clinic_code: String,
    prefecture: String,
    area: &'static str,
    show_hosts: bool,
    terminals: Vec<TerminalCard>,
}

#[get("/clinics/{code}")]
pub async fn clinic(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Option<Caller>,
    code: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let lang = Lang::of(&req);
    let Some(caller) = caller else {
        return login_for(&req, lang);
    };
    let code = ClinicCode::parse(&code).map_err(|_| WebError::NotFound)?;
    let view = state
        .store
        .clinic(&code, &caller.scope)
        .await?
        .ok_or(WebError::NotFound)?;
    let campaigns = state.store.campaigns().await?;
    let t = lang.texts();
    let terminals = view
        .terminals
        .iter()
        .map(|terminal| {
            let row = TerminalRow::from_store(terminal, &campaigns);
            TerminalCard {
                terminal_id: row.terminal_id.clone(),
                hostname: row.hostname.clone().filter(|_| caller.sees_hosts()),
                campaigns: row
                    .campaigns
                    .iter()
                    .map(|c| CampaignCell {
                        title: match lang {
                            Lang::Ja => c.title_ja.clone(),
                            Lang::En => c.title_en.clone(),
                        },
                        state_label: lang.state(c.state),
                        class: state_class(c.state),
                        instruction: lang.instruction(c.cause),
                    })
                    .collect(),
                running: row
                    .face_running
                    .clone()
                    .unwrap_or_else(|| t.not_observed.to_owned()),
                downloaded: row
                    .face_downloaded
                    .clone()
                    .unwrap_or_else(|| t.not_observed.to_owned()),
                reboot_pending: lang.yes_no(Some(row.reboot_pending)),
                line_auth: lang.line_auth(row.line_auth),
                line_auth_class: match row.line_auth {
                    Some("connected") => "ok",
                    Some(_) => "bad",
                    None => "unknown",
                },
                last_seen: jst_display(row.last_seen_at),
                last_seq: row.last_seq,
            }
        })
        .collect();
    let prefecture = code.prefecture();
    let page = ClinicPage {
        lang,
        t,
        subject: caller.subject.clone(),
        clinic_code: code.as_str().to_owned(),
        prefecture: match lang {
            Lang::Ja => format!("{} ({})", prefecture.name_ja(), prefecture.code()),
            Lang::En => format!("{} ({})", prefecture.name_en(), prefecture.code()),
        },
        area: match code.area() {
            Area::East => t.east,
            Area::West => t.west,
        },
        show_hosts: caller.sees_hosts(),
        terminals,
    };
    html(StatusCode::OK, &page, lang)
}

#[get("/static/style.css")]
pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(include_str!(
            "../../../dashboard-templates/static/style.css"
        ))
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next("/clinics/2712345678"), "/clinics/2712345678");
        for outside in [
            "//evil.example/",
            "https://evil.example/",
            "evil",
            "",
            "/\\evil.example",
        ] {
            assert_eq!(safe_next(outside), "/", "{outside}");
        }
    }
}
