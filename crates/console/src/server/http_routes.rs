//! The console's axum routes: the Leptos pages and server functions, the plain-form endpoints
//! (sign-in, sign-out, language), CSV downloads, the site's assets (compressed), and in front
//! of them the sign-in gate, the cross-site request check and the security headers.

use std::net::SocketAddr;
use std::path::Path;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use respack_store::SignIn;
use serde::Deserialize;
use tower_http::compression::CompressionLayer;
use tower_http::services::ServeDir;

use super::{caller_of_token, cookie, csv, ConsoleState, LANG_COOKIE, SESSION_COOKIE};
use crate::app::{shell, App};

/// The console's stylesheet, served at `/assets/console.css`.
const STYLESHEET: &str = include_str!("../../style/console.css");

/// Every console route over `state`, ready to merge into the app's router. `site_root` holds
/// `pkg/` with the hydrate bundle (`respack.js`, `respack_bg.wasm`).
pub fn routes<S>(state: ConsoleState, site_root: &Path) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let options = LeptosOptions::builder()
        .output_name("respack")
        .site_root(site_root.to_string_lossy().into_owned())
        .site_pkg_dir("pkg")
        .build();
    let route_list = generate_route_list(App);
    let context_state = state.clone();
    let shell_options = options.clone();
    let pages: Router<S> = Router::<LeptosOptions>::new()
        .leptos_routes_with_context(
            &options,
            route_list,
            move || provide_context(context_state.clone()),
            move || shell(shell_options.clone()),
        )
        .with_state(options)
        .layer(axum::middleware::from_fn(super::stalled_pages::render_whole_pages));

    let forms: Router<S> = Router::new()
        .route("/", get(|| async { Redirect::to("/packs") }))
        .route("/signin", post(sign_in))
        .route("/signout", post(sign_out))
        .route("/lang", post(switch_language))
        .route("/packs.csv", get(packs_csv))
        .route("/bills.csv", get(bills_csv))
        .route("/assets/console.css", get(stylesheet))
        .with_state(state.clone());

    // The bundle as xtask precompressed it (`.br`, `.gz` beside each file); compressed on the
    // fly only when those files are missing.
    let bundle = ServeDir::new(site_root.join("pkg")).precompressed_br().precompressed_gzip();
    let assets: Router<S> = Router::new().nest_service("/pkg", bundle).layer(CompressionLayer::new());

    pages.merge(forms).merge(assets).layer(axum::middleware::from_fn_with_state(state, gate))
}

async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], STYLESHEET)
        .into_response()
}

/// Paths anyone may load: the sign-in page, the bundle, the stylesheet, server functions (each
/// checks the session itself) and the form endpoints (each checks what it needs).
fn is_public(path: &str) -> bool {
    path == "/signin"
        || path == "/signout"
        || path == "/lang"
        || path.starts_with("/pkg/")
        || path.starts_with("/assets/")
        || path.starts_with("/api/")
}

/// In front of every console route: refuses cross-site state changes, sends pages to the
/// sign-in form when there is no live session, and adds the security headers.
async fn gate(State(state): State<ConsoleState>, mut request: Request, next: Next) -> Response {
    let safe = matches!(*request.method(), Method::GET | Method::HEAD);
    if !safe && is_cross_site(request.headers()) {
        return (StatusCode::FORBIDDEN, "cross-site requests cannot change anything here").into_response();
    }
    let path = request.uri().path().to_owned();
    if safe && !is_public(&path) {
        let caller = match cookie(request.headers(), SESSION_COOKIE) {
            Some(token) => caller_of_token(&state, &token).await.ok().flatten(),
            None => None,
        };
        let Some(caller) = caller else {
            return with_security_headers(Redirect::to("/signin").into_response());
        };
        // The page's server functions run in this request: they find the caller here instead
        // of looking the session up again (`server::caller`).
        request.extensions_mut().insert(caller);
    }
    with_security_headers(next.run(request).await)
}

/// A request another site made the browser send: its `Origin` is not this host, or the
/// browser says so in `Sec-Fetch-Site`.
fn is_cross_site(headers: &HeaderMap) -> bool {
    if headers.get("sec-fetch-site").is_some_and(|value| value == "cross-site" || value == "same-site") {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|value| value.to_str().ok()) else {
        return false;
    };
    let Some(host) = headers.get(header::HOST).and_then(|value| value.to_str().ok()) else {
        return true;
    };
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    origin_host != host
}

fn with_security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"),
        );
    }
    response
}

#[derive(Debug, Deserialize)]
struct SignInForm {
    email: String,
    password: String,
}

fn session_cookie(token: &str, max_age_seconds: i64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_seconds}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("respack_session=; Path=/; Max-Age=0"))
}

fn lang_cookie(tag: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("{LANG_COOKIE}={tag}; Path=/; SameSite=Lax; Max-Age=31536000"))
        .unwrap_or_else(|_| HeaderValue::from_static("respack_lang=en; Path=/"))
}

fn see_other(location: &str, cookies: Vec<HeaderValue>) -> Response {
    let mut response = Redirect::to(location).into_response();
    for value in cookies {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

async fn sign_in(State(state): State<ConsoleState>, request: Request) -> Response {
    // The client's address (when the server was started with connect info) keys the throttle.
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |ConnectInfo(address)| address.ip().to_string());
    let form = match Form::<SignInForm>::from_request(request, &state).await {
        Ok(Form(form)) => form,
        Err(rejection) => return rejection.into_response(),
    };
    match state.store.sign_in(&form.email, &form.password, &client, state.now()).await {
        Ok(SignIn::SignedIn { token, session }) => see_other(
            "/packs",
            vec![session_cookie(&token, respack_store::SESSION_LIFETIME.num_seconds()), lang_cookie(&session.language)],
        ),
        Ok(SignIn::Refused) => see_other("/signin?error=refused", Vec::new()),
        Ok(SignIn::Throttled { until }) => {
            see_other(&format!("/signin?error=throttled&until={}", until.format("%H:%M UTC")), Vec::new())
        }
        Err(error) => {
            tracing::error!(%error, "sign-in failed");
            see_other("/signin?error=unavailable", Vec::new())
        }
    }
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    csrf: String,
    #[serde(default)]
    lang: Option<String>,
}

async fn sign_out(State(state): State<ConsoleState>, headers: HeaderMap, Form(form): Form<CsrfForm>) -> Response {
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        match caller_of_token(&state, &token).await {
            Ok(Some(caller)) if caller.check_csrf(&form.csrf).is_ok() => {
                if let Err(error) = state.store.sign_out(&token).await {
                    tracing::error!(%error, "sign-out failed");
                    return (StatusCode::SERVICE_UNAVAILABLE, "cannot sign out right now; try again").into_response();
                }
            }
            Ok(Some(_)) => return (StatusCode::FORBIDDEN, "the form is out of date; reload the page").into_response(),
            _ => {}
        }
    }
    see_other("/signin", vec![session_cookie("", 0)])
}

async fn switch_language(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let tag = crate::i18n::Lang::from_tag(form.lang.as_deref().unwrap_or("en")).tag();
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        if let Ok(Some(caller)) = caller_of_token(&state, &token).await {
            if caller.check_csrf(&form.csrf).is_err() {
                return (StatusCode::FORBIDDEN, "the form is out of date; reload the page").into_response();
            }
            if let Err(error) = state.store.set_session_language(&token, tag).await {
                tracing::error!(%error, "cannot store the session's language");
            }
        }
    }
    // Back to the page the switch was on (same site only).
    let back = headers
        .get(header::REFERER)
        .and_then(|value| value.to_str().ok())
        .and_then(|referer| referer.split_once("://").map(|(_, rest)| rest))
        .and_then(|rest| rest.find('/').map(|slash| rest[slash..].to_owned()))
        .filter(|path| path.starts_with('/') && !path.starts_with("//"))
        .unwrap_or_else(|| "/packs".to_owned());
    see_other(&back, vec![lang_cookie(tag)])
}

async fn packs_csv(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Query(query): Query<crate::pages::packs::PacksQuery>,
) -> Response {
    let Some(caller) = csv_caller(&state, &headers).await else {
        return (StatusCode::UNAUTHORIZED, "sign in first").into_response();
    };
    match csv::packs(&caller, &query).await {
        Ok(text) => csv_response("resource-packages.csv", text),
        Err(error) => (StatusCode::BAD_REQUEST, crate::app::error_text(&error)).into_response(),
    }
}

async fn bills_csv(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Query(query): Query<crate::pages::bills::BillsQuery>,
) -> Response {
    let Some(caller) = csv_caller(&state, &headers).await else {
        return (StatusCode::UNAUTHORIZED, "sign in first").into_response();
    };
    match csv::bills(&caller, &query).await {
        Ok((file_name, text)) => csv_response(&file_name, text),
        Err(error) => (StatusCode::BAD_REQUEST, crate::app::error_text(&error)).into_response(),
    }
}

async fn csv_caller(state: &ConsoleState, headers: &HeaderMap) -> Option<super::Caller> {
    let token = cookie(headers, SESSION_COOKIE)?;
    caller_of_token(state, &token).await.ok().flatten()
}

fn csv_response(file_name: &str, text: String) -> Response {
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    Response::builder()
        .header(header::CONTENT_TYPE, "text/csv; charset=utf-8")
        .header(header::CONTENT_DISPOSITION, disposition)
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from(text))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
