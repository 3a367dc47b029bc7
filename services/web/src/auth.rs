//! Who is calling: JWTs (HS256 with `FLEET_JWT_SECRET`) from the `Authorization`
//! header or the session cookie the login page sets (contract §5).
//!
//! Claims: `sub`, `exp`, `role` (`admin`, `support`, `oncall`, `association`),
//! `tenant` for the vendor roles and `prefectures` for `association`. A token turns
//! into a [`Caller`] with a [`Scope`] before any handler sees it, so no handler can
//! forget to restrict what it reads.

use std::fmt;
use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, dev::Payload};
use chrono::{Duration, Utc};
use fleet_protocol::{Prefecture, TenantSlug};
use fleet_store::Scope;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::WebError;

/// The cookie that carries the session token.
pub const SESSION_COOKIE: &str = "fleet_session";

/// The signing secret; never printed.
#[derive(Clone)]
pub struct JwtSecret(Vec<u8>);

impl fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwtSecret(<redacted>)")
    }
}

impl JwtSecret {
    /// At least 32 bytes, as the contract requires.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, String> {
        let bytes = bytes.into();
        if bytes.len() < 32 {
            return Err(format!(
                "FLEET_JWT_SECRET: {} bytes is too short; at least 32 are required",
                bytes.len()
            ));
        }
        Ok(Self(bytes))
    }
}

/// What a caller may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Support,
    Oncall,
    /// A regional medical association (医師会): read-only, by prefecture.
    Association,
}

impl Role {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "admin" => Some(Self::Admin),
            "support" => Some(Self::Support),
            "oncall" => Some(Self::Oncall),
            "association" => Some(Self::Association),
            _ => None,
        }
    }
}

/// The JWT claims.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: i64,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefectures: Option<Vec<String>>,
}

/// An authenticated caller and what it may see.
#[derive(Clone, Debug)]
pub struct Caller {
    pub subject: String,
    pub role: Role,
    pub scope: Scope,
}

impl Caller {
    /// Vendor staff see hostnames; associations never do.
    pub fn sees_hosts(&self) -> bool {
        self.role != Role::Association
    }
}

/// Signs a token. Checks that the role has what it needs (a tenant, or prefectures).
pub fn issue(
    secret: &JwtSecret,
    subject: &str,
    role: Role,
    tenant: Option<&TenantSlug>,
    prefectures: &[Prefecture],
    ttl: Duration,
) -> Result<String, String> {
    let claims = Claims {
        sub: subject.to_owned(),
        exp: (Utc::now() + ttl).timestamp(),
        role,
        tenant: tenant.map(|t| t.as_str().to_owned()),
        prefectures: (!prefectures.is_empty())
            .then(|| prefectures.iter().map(|p| p.code()).collect()),
    };
    scope_of(&claims)?;
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&secret.0),
    )
    .map_err(|e| format!("signing the token: {e}"))
}

/// Verifies a token and turns it into a caller.
pub fn verify(secret: &JwtSecret, token: &str) -> Result<Caller, String> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(&["exp", "sub"]);
    validation.leeway = 30;
    let data =
        jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(&secret.0), &validation)
            .map_err(|e| format!("invalid token: {e}"))?;
    let scope = scope_of(&data.claims)?;
    Ok(Caller {
        subject: data.claims.sub,
        role: data.claims.role,
        scope,
    })
}

fn scope_of(claims: &Claims) -> Result<Scope, String> {
    match claims.role {
        Role::Association => {
            let codes = claims.prefectures.as_deref().unwrap_or_default();
            if codes.is_empty() {
                return Err("an association token needs prefectures".to_owned());
            }
            let prefectures = codes
                .iter()
                .map(|c| Prefecture::parse(c).map_err(|e| format!("prefectures: {c:?}: {e}")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Scope::Prefectures(prefectures))
        }
        _ => {
            let tenant = claims
                .tenant
                .as_deref()
                .ok_or("a vendor token needs a tenant")?;
            Ok(Scope::Tenant(
                TenantSlug::parse(tenant).map_err(|e| e.to_string())?,
            ))
        }
    }
}

/// The token of a request: `Authorization: Bearer …` first, then the session cookie.
pub fn token_of(req: &HttpRequest) -> Option<String> {
    if let Some(value) = req.headers().get(actix_web::http::header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        return value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(|t| t.trim().to_owned());
    }
    req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned())
}

impl FromRequest for Caller {
    type Error = WebError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(state) = req.app_data::<actix_web::web::Data<AppState>>() else {
            return ready(Err(WebError::Unexpected(anyhow::anyhow!(
                "application state missing"
            ))));
        };
        let result = match token_of(req) {
            None => Err(WebError::Unauthorized("no token".to_owned())),
            Some(token) => verify(&state.secret, &token).map_err(WebError::Unauthorized),
        };
        ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> JwtSecret {
        JwtSecret::new(vec![7u8; 32]).unwrap()
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(
            JwtSecret::new(vec![1u8; 31])
                .unwrap_err()
                .contains("FLEET_JWT_SECRET")
        );
    }

    #[test]
    fn tokens_round_trip_into_scopes() {
        let tenant = TenantSlug::parse("demo").unwrap();
        let t = issue(
            &secret(),
            "desk",
            Role::Support,
            Some(&tenant),
            &[],
            Duration::hours(1),
        )
        .unwrap();
        assert_eq!(verify(&secret(), &t).unwrap().scope, Scope::Tenant(tenant));
        let osaka = Prefecture::parse("27").unwrap();
        let t = issue(
            &secret(),
            "osaka",
            Role::Association,
            None,
            &[osaka],
            Duration::hours(1),
        )
        .unwrap();
        assert_eq!(
            verify(&secret(), &t).unwrap().scope,
            Scope::Prefectures(vec![osaka])
        );
    }

    #[test]
    fn bad_tokens_are_refused() {
        let tenant = TenantSlug::parse("demo").unwrap();
        let expired = issue(
            &secret(),
            "x",
            Role::Admin,
            Some(&tenant),
            &[],
            Duration::hours(-2),
        )
        .unwrap();
        assert!(verify(&secret(), &expired).is_err());
        let other = JwtSecret::new(vec![8u8; 32]).unwrap();
        let t = issue(
            &other,
            "x",
            Role::Admin,
            Some(&tenant),
            &[],
            Duration::hours(1),
        )
        .unwrap();
        assert!(verify(&secret(), &t).is_err());
        assert!(
            issue(
                &secret(),
                "x",
                Role::Association,
                None,
                &[],
                Duration::hours(1)
            )
            .is_err()
        );
        assert!(issue(&secret(), "x", Role::Oncall, None, &[], Duration::hours(1)).is_err());
    }
}
