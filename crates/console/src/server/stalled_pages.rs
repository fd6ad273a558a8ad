//! A guard around the Leptos page renderer: a page is rendered whole before it is sent, and a
//! render that stalls is done again.
//!
//! Leptos 0.8's server rendering waits for a `<Suspense>`/`<Transition>` boundary's resources
//! through a reactive effect; rarely (about one render in a thousand on a loaded 2-core machine,
//! seen in this repository's tests) that wait misses its wake-up and the response
//! never finishes — the known races of leptos-rs/leptos#4578, #4647 and #4851, not all fixed
//! upstream. A console page is small and its data reads take milliseconds, so a render that has
//! not finished in [`RENDER_TIMEOUT`] has stalled: it is dropped and rendered afresh, up to
//! [`RENDER_ATTEMPTS`] times, and then the browser gets a 503 asking it to reload rather than a
//! page that never ends.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Longest a page render may take before it counts as stalled.
const RENDER_TIMEOUT: Duration = Duration::from_secs(10);
/// Renders of one request before giving up.
const RENDER_ATTEMPTS: u32 = 3;
/// Largest page body collected (a console page is tens of KiB).
const MAX_PAGE_BYTES: usize = 16 * 1024 * 1024;

/// Middleware for the page routes: renders a `GET`/`HEAD` page completely (with a deadline, see
/// the module's note) and sends it in one piece; other requests pass through.
pub(crate) async fn render_whole_pages(request: Request, next: Next) -> Response {
    render_whole_pages_within(RENDER_TIMEOUT, request, next).await
}

/// [`render_whole_pages`] with a render deadline of `timeout`.
async fn render_whole_pages_within(timeout: Duration, request: Request, next: Next) -> Response {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    // A page request has no body: its head is all it takes to render it again.
    let (head, _) = request.into_parts();
    for attempt in 1..=RENDER_ATTEMPTS {
        let request = Request::from_parts(head.clone(), Body::empty());
        match render_within(timeout, next.clone(), request).await {
            Some(response) => return response,
            None => tracing::warn!(
                path = %head.uri.path(),
                attempt,
                timeout_ms = timeout.as_millis(),
                "a page render stalled; rendering it again"
            ),
        }
    }
    (StatusCode::SERVICE_UNAVAILABLE, "This page could not be rendered just now. Reload it.").into_response()
}

/// The response to `request` with its whole body, or `None` when it is not complete within
/// `timeout`.
async fn render_within(timeout: Duration, next: Next, request: Request) -> Option<Response> {
    tokio::time::timeout(timeout, async move {
        let (head, body) = next.run(request).await.into_parts();
        match axum::body::to_bytes(body, MAX_PAGE_BYTES).await {
            Ok(bytes) => Response::from_parts(head, Body::from(bytes)),
            Err(error) => {
                tracing::error!(%error, "a page render failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "This page could not be rendered. Reload it.").into_response()
            }
        }
    })
    .await
    .ok()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    use axum::routing::{get, post};
    use axum::Router;
    use tower::ServiceExt;

    use super::*;

    /// A router whose `/page` stalls for ever on its first `stalls` renders, then answers, and
    /// whose `/form` answers a POST; `renders` counts the calls.
    fn app(stalls: u32, renders: Arc<AtomicU32>) -> Router {
        let page = move || {
            let renders = renders.clone();
            async move {
                if renders.fetch_add(1, Ordering::SeqCst) < stalls {
                    std::future::pending::<()>().await;
                }
                "<html>the whole page</html>"
            }
        };
        Router::new().route("/page", get(page)).route("/form", post(|| async { "posted" })).layer(
            axum::middleware::from_fn(|request, next| {
                render_whole_pages_within(Duration::from_millis(100), request, next)
            }),
        )
    }

    async fn send(app: Router, method: Method, path: &str) -> (StatusCode, String) {
        let request = Request::builder().method(method).uri(path).body(Body::empty()).unwrap();
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn a_stalled_render_is_done_again() {
        let renders = Arc::new(AtomicU32::new(0));
        let (status, body) = send(app(1, renders.clone()), Method::GET, "/page").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "<html>the whole page</html>"));
        assert_eq!(renders.load(Ordering::SeqCst), 2, "the stalled render and the one that finished");
    }

    #[tokio::test]
    async fn a_page_that_keeps_stalling_gets_a_503_asking_for_a_reload() {
        let renders = Arc::new(AtomicU32::new(0));
        let (status, body) = send(app(u32::MAX, renders.clone()), Method::GET, "/page").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("Reload"), "{body}");
        assert_eq!(renders.load(Ordering::SeqCst), RENDER_ATTEMPTS);
    }

    #[tokio::test]
    async fn a_page_that_renders_is_sent_once_and_other_requests_pass_through() {
        let renders = Arc::new(AtomicU32::new(0));
        let (status, body) = send(app(0, renders.clone()), Method::GET, "/page").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "<html>the whole page</html>"));
        assert_eq!(renders.load(Ordering::SeqCst), 1);
        assert_eq!(send(app(0, renders), Method::POST, "/form").await, (StatusCode::OK, "posted".to_owned()));
    }
}
