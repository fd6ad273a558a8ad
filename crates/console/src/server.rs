//! The server half of the console (feature `ssr`): who is calling (session cookie → user,
//! role, account scope), the CSRF check, error mapping, formatting in the caller's time zone,
//! and the axum routes that are not Leptos pages (sign-in/out, language, CSV downloads,
//! assets) plus the security headers and the sign-in gate in front of the pages.

mod csv;
mod http_routes;
mod stalled_pages;

use std::sync::Arc;

use leptos::prelude::*;
use respack_domain::chrono::{DateTime, Utc};
use respack_domain::chrono_tz::Tz;
use respack_store::{Role, Session, Store, StoreError};

use crate::dto::Me;
use crate::i18n::Lang;

pub use http_routes::routes;

/// The session cookie: HttpOnly, SameSite=Strict, the random token of a server-side session.
pub const SESSION_COOKIE: &str = "respack_session";
/// The language cookie: readable by the page (not a secret).
pub const LANG_COOKIE: &str = "respack_lang";

/// What the console's server code needs: the store and the app's clock.
#[derive(Clone)]
pub struct ConsoleState {
    pub store: Store,
    pub clock: Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>,
}

impl std::fmt::Debug for ConsoleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleState").field("store", &self.store).finish_non_exhaustive()
    }
}

impl ConsoleState {
    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }
}

/// The signed-in caller of a server function.
#[derive(Debug, Clone)]
pub struct Caller {
    pub state: ConsoleState,
    pub session: Session,
    /// Every account this caller may read and act on: their own; an organization admin's
    /// members too; every account for an operator.
    pub scope: Vec<i64>,
    pub time_zone: Tz,
    pub now: DateTime<Utc>,
}

impl Caller {
    pub fn store(&self) -> &Store {
        &self.state.store
    }

    pub fn is_operator(&self) -> bool {
        self.session.user.role == Role::Operator
    }

    pub fn actor(&self) -> respack_store::Actor {
        respack_store::Actor::user(self.session.user.id)
    }

    pub fn lang(&self) -> Lang {
        Lang::from_tag(&self.session.language)
    }

    /// Refuses callers who are not operators.
    pub fn require_operator(&self) -> Result<(), ServerFnError> {
        if self.is_operator() {
            Ok(())
        } else {
            Err(ServerFnError::new("only operators may do this"))
        }
    }

    /// Refuses a state-changing call whose CSRF token is not this session's.
    pub fn check_csrf(&self, token: &str) -> Result<(), ServerFnError> {
        if constant_time_eq(token.as_bytes(), self.session.csrf_token.as_bytes()) {
            Ok(())
        } else {
            Err(ServerFnError::new("the form is out of date (CSRF token mismatch); reload the page and try again"))
        }
    }

    /// Refuses an account outside the caller's scope (said as "not found", like a missing one).
    pub fn require_account(&self, account_id: i64) -> Result<(), ServerFnError> {
        if self.scope.contains(&account_id) {
            Ok(())
        } else {
            Err(ServerFnError::new(format!("account {account_id} was not found")))
        }
    }

    pub fn time(&self, at: DateTime<Utc>) -> String {
        format_time(at, self.time_zone)
    }
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn format_time(at: DateTime<Utc>, zone: Tz) -> String {
    at.with_timezone(&zone).format("%Y-%m-%d %H:%M:%S").to_string()
}

fn state() -> Result<ConsoleState, ServerFnError> {
    use_context::<ConsoleState>().ok_or_else(|| ServerFnError::new("the console is not wired to a store"))
}

fn request_parts() -> Option<http::request::Parts> {
    use_context::<http::request::Parts>()
}

/// The value of cookie `name` in these headers.
pub fn cookie(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// The language this request asked for (its `respack_lang` cookie), English by default.
pub fn request_lang() -> Lang {
    request_parts()
        .and_then(|parts| cookie(&parts.headers, LANG_COOKIE))
        .map(|tag| Lang::from_tag(&tag))
        .unwrap_or_default()
}

/// The page's security headers; the CSP allows the page's own scripts (by nonce), its WASM
/// and nothing from elsewhere.
pub fn set_page_headers(nonce: String) {
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        if let Ok(value) = http::HeaderValue::from_str(&page_csp(&nonce)) {
            response.insert_header(http::header::CONTENT_SECURITY_POLICY, value);
        }
    }
}

pub fn page_csp(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; style-src 'self'; \
         img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}

/// The caller of an operator's form post: an operator, sending this session's CSRF token.
pub async fn operator_posting(csrf: &str) -> Result<Caller, ServerFnError> {
    let caller = caller().await?;
    caller.require_operator()?;
    caller.check_csrf(csrf)?;
    Ok(caller)
}

/// The caller of this server function or page, from the session cookie; an error asking to
/// sign in when there is none or it expired.
pub async fn caller() -> Result<Caller, ServerFnError> {
    // A page request's caller, looked up once by the sign-in gate (`http_routes::gate`).
    if let Some(caller) = request_parts().and_then(|parts| parts.extensions.get::<Caller>().cloned()) {
        return Ok(caller);
    }
    let state = state()?;
    let token = request_parts()
        .and_then(|parts| cookie(&parts.headers, SESSION_COOKIE))
        .ok_or_else(|| ServerFnError::new("you are not signed in; sign in again"))?;
    caller_of_token(&state, &token).await?.ok_or_else(|| ServerFnError::new("your session has ended; sign in again"))
}

pub async fn caller_of_token(state: &ConsoleState, token: &str) -> Result<Option<Caller>, ServerFnError> {
    let now = state.now();
    let Some(session) = state.store.session(token, now).await.map_err(store_error)? else {
        return Ok(None);
    };
    let account = state.store.account(session.user.account_id).await.map_err(store_error)?;
    let scope = match session.user.role {
        Role::Customer => vec![account.id],
        Role::OrgAdmin => {
            let mut scope = vec![account.id];
            scope.extend(state.store.member_accounts(account.id).await.map_err(store_error)?.iter().map(|a| a.id));
            scope
        }
        Role::Operator => state.store.accounts().await.map_err(store_error)?.iter().map(|a| a.id).collect(),
    };
    Ok(Some(Caller { state: state.clone(), session, scope, time_zone: account.time_zone, now }))
}

/// The signed-in user as pages see it.
pub async fn me(caller: &Caller) -> Result<Me, ServerFnError> {
    let user = &caller.session.user;
    let account = caller.store().account(user.account_id).await.map_err(store_error)?;
    Ok(Me {
        user_id: user.id,
        email: user.email.clone(),
        display_name: user.display_name.clone(),
        role: user.role.as_str().to_owned(),
        account_id: account.id,
        account_name: account.name,
        uin: account.uin,
        balance: account.balance.to_string(),
        language: caller.session.language.clone(),
        csrf: caller.session.csrf_token.clone(),
    })
}

/// A store error as the user sees it: rule and input errors say what to do; database and
/// corruption errors are logged and shown as a generic failure.
pub fn store_error(error: StoreError) -> ServerFnError {
    match error {
        StoreError::Database(_) | StoreError::Corrupt(_) => {
            tracing::error!(%error, "console request failed");
            ServerFnError::new(
                "the server could not complete this request; try again, and tell an operator if it keeps failing",
            )
        }
        other => ServerFnError::new(other.to_string()),
    }
}

/// After a state-changing server function: when the browser posted a plain HTML form (no
/// WASM yet, or none at all), send it back to the page it came from with the outcome in
/// `?notice=` or `?error=`, which the layout shows; with `close_dialog` a success also drops
/// the dialog's `op`/`pack` parameters. Calls from the hydrated app get the value itself.
pub fn finish_form<T>(
    result: Result<T, ServerFnError>,
    notice: impl Fn(&T) -> String,
    close_dialog: bool,
) -> Result<T, ServerFnError> {
    let Some(parts) = request_parts() else {
        return result;
    };
    let accepts_html = parts
        .headers
        .get(http::header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.contains("text/html"));
    let referer = parts.headers.get(http::header::REFERER).and_then(|value| value.to_str().ok());
    let (true, Some(referer)) = (accepts_html, referer) else {
        return result;
    };
    // Only a path on this site: never redirect elsewhere.
    let Some(path) = referer
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|slash| rest[slash..].to_owned()))
        .filter(|path| path.starts_with('/') && !path.starts_with("//"))
    else {
        return result;
    };
    let (base, query) = path.split_once('?').unwrap_or((path.as_str(), ""));
    let mut drop: Vec<&str> = vec!["notice", "error"];
    if close_dialog && result.is_ok() {
        drop.extend(["op", "pack"]);
    }
    let mut pairs: Vec<String> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter(|pair| !drop.contains(&pair.split('=').next().unwrap_or_default()))
        .map(str::to_owned)
        .collect();
    match &result {
        Ok(value) => pairs.push(format!("notice={}", crate::pages::packs::url_encode(&notice(value)))),
        Err(error) => pairs.push(format!("error={}", crate::pages::packs::url_encode(&crate::app::error_text(error)))),
    }
    leptos_axum::redirect(&format!("{base}?{}", pairs.join("&")));
    result
}

/// Whether the hydrate bundle is there to load (without it pages are plain server-rendered
/// HTML whose forms still work).
pub fn has_bundle(options: &LeptosOptions) -> bool {
    std::path::Path::new(&*options.site_root)
        .join(&*options.site_pkg_dir)
        .join(format!("{}.js", options.output_name))
        .is_file()
}
