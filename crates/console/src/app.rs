//! The document shell, the router and the signed-in layout (navigation, language switch,
//! sign-out). Sign-in, sign-out and the language switch are plain HTML forms handled by axum
//! (`server::routes`), so they work before the WASM has loaded and always reload the page.

use leptos::prelude::*;
use leptos_router::components::{Outlet, ParentRoute, Route, Router, Routes, A};
use leptos_router::path;

use crate::dto::Me;
use crate::i18n::{t, Lang};
use crate::pages::{account, bills, detail, operator, packs, signin, usage};

/// The signed-in user, loaded once per page view and again after every change.
pub type MeResource = Resource<Result<Me, ServerFnError>>;

/// Bumped after every successful change, so loaded data is fetched again.
#[derive(Debug, Clone, Copy)]
pub struct Changes(pub RwSignal<u64>);

impl Changes {
    pub fn bump(self) {
        self.0.update(|count| *count += 1);
    }
}

/// The whole HTML document: rendered on the server for every page request.
#[cfg(feature = "ssr")]
pub fn shell(options: LeptosOptions) -> impl IntoView {
    let lang = crate::server::request_lang();
    let nonce = leptos::nonce::use_nonce();
    crate::server::set_page_headers(nonce.as_ref().map(ToString::to_string).unwrap_or_default());
    let bundle = crate::server::has_bundle(&options);
    view! {
        <!DOCTYPE html>
        <html lang=lang.tag()>
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <title>{t(lang, "app.name")}</title>
                <link rel="stylesheet" href="/assets/console.css" />
                <link rel="icon" href="data:," />
                {bundle.then(|| view! { <HydrationScripts options /> })}
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// The console's language: from the `respack_lang` cookie on the server, from the document's
/// `lang` attribute (which the server wrote) in the browser.
fn current_lang() -> Lang {
    #[cfg(feature = "ssr")]
    {
        crate::server::request_lang()
    }
    #[cfg(not(feature = "ssr"))]
    {
        document()
            .document_element()
            .and_then(|root| root.get_attribute("lang"))
            .map(|tag| Lang::from_tag(&tag))
            .unwrap_or_default()
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_context(current_lang());
    let changes = Changes(RwSignal::new(0));
    provide_context(changes);
    // Effects run only in the browser, after hydration: the mark tells tests (and styles)
    // that the page is live.
    Effect::new(move |_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
    view! {
        <Router>
            <Routes fallback=NotFound>
                <Route path=path!("/signin") view=signin::SignInPage />
                <ParentRoute path=path!("") view=Layout>
                    <Route path=path!("/packs") view=packs::PacksPage />
                    <Route path=path!("/packs/:id") view=detail::PackDetailPage />
                    <Route path=path!("/usage") view=usage::UsagePage />
                    <Route path=path!("/bills") view=bills::BillsPage />
                    <Route path=path!("/account") view=account::AccountPage />
                    <Route path=path!("/operator") view=operator::OperatorPage />
                    <Route path=path!("/operator/outbox") view=operator::OutboxPage />
                    <Route path=path!("/operator/audit") view=operator::AuditPage />
                </ParentRoute>
            </Routes>
        </Router>
    }
}

#[component]
fn NotFound() -> impl IntoView {
    view! {
        <main id="main" class="page">
            <h1>"404"</h1>
            <p>
                <a href="/packs">{t(current_lang(), "nav.packs")}</a>
            </p>
        </main>
    }
}

/// The signed-in user (for the header, the role checks of the pages and the CSRF token).
#[leptos::server(endpoint = "current_user")]
pub async fn current_user() -> Result<Me, ServerFnError> {
    let caller = crate::server::caller().await?;
    crate::server::me(&caller).await
}

#[component]
fn Layout() -> impl IntoView {
    let lang = expect_context::<Lang>();
    let changes = expect_context::<Changes>();
    let me: MeResource = Resource::new(move || changes.0.get(), |_| current_user());
    provide_context(me);
    view! {
        <a class="skip-link" href="#main">{t(lang, "nav.skip")}</a>
        <header class="top">
            <a class="brand" href="/packs">{t(lang, "app.name")}</a>
            <Transition fallback=move || view! { <span class="muted">{t(lang, "common.loading")}</span> }>
                {move || Suspend::new(async move {
                    match me.await {
                        Ok(me) => view! { <UserBar me lang /> }.into_any(),
                        Err(error) => view! { <ErrorNote error /> }.into_any(),
                    }
                })}
            </Transition>
        </header>
        <main id="main" class="page" tabindex="-1">
            <Flash />
            <Outlet />
        </main>
    }
}

#[component]
fn UserBar(me: Me, lang: Lang) -> impl IntoView {
    let operator = me.is_operator();
    let other = match lang {
        Lang::En => "zh-CN",
        Lang::Zh => "en",
    };
    view! {
        <nav aria-label=t(lang, "nav.main") class="nav">
            <A href="/packs">{t(lang, "nav.packs")}</A>
            <A href="/usage">{t(lang, "nav.usage")}</A>
            <A href="/bills">{t(lang, "nav.bills")}</A>
            <A href="/account">{t(lang, "nav.account")}</A>
            {operator.then(|| view! {
                <A href="/operator">{t(lang, "nav.operator")}</A>
                <A href="/operator/outbox">{t(lang, "nav.outbox")}</A>
                <A href="/operator/audit">{t(lang, "nav.audit")}</A>
            })}
        </nav>
        <div class="who">
            <span class="balance" data-testid="balance">
                {t(lang, "common.balance")}": "{me.balance.clone()}
            </span>
            <span class="muted">{me.display_name.clone()}" ("{me.account_name.clone()}")"</span>
            <form method="post" action="/lang" class="inline">
                <input type="hidden" name="csrf" value=me.csrf.clone() />
                <input type="hidden" name="lang" value=other />
                <button type="submit" class="link" lang=other>{t(lang, "lang.switch")}</button>
            </form>
            <form method="post" action="/signout" class="inline">
                <input type="hidden" name="csrf" value=me.csrf.clone() />
                <button type="submit" class="link">{t(lang, "auth.sign_out")}</button>
            </form>
        </div>
    }
}

/// The outcome of a form posted without the WASM (see `server::finish_form`).
#[component]
fn Flash() -> impl IntoView {
    let notice = crate::pages::query_param("notice");
    let error = crate::pages::query_param("error");
    view! {
        {move || (!notice.get().is_empty()).then(|| view! { <p class="success" role="status" data-testid="op-result">{notice.get()}</p> })}
        {move || (!error.get().is_empty()).then(|| view! { <p class="error" role="alert" data-testid="op-error">{error.get()}</p> })}
    }
}

/// A failed load or change, said plainly.
#[component]
pub fn ErrorNote(error: ServerFnError) -> impl IntoView {
    let lang = use_context::<Lang>().unwrap_or_default();
    view! {
        <p class="error" role="alert">
            <strong>{t(lang, "common.error")}": "</strong>
            {error_text(&error)}
        </p>
    }
}

/// The message of a server function's error, without the framework's prefix.
pub fn error_text(error: &ServerFnError) -> String {
    match error {
        ServerFnError::ServerError(message) => message.clone(),
        other => other.to_string(),
    }
}

/// The "nothing to show" state of a table or list.
#[component]
pub fn Empty() -> impl IntoView {
    let lang = use_context::<Lang>().unwrap_or_default();
    view! { <p class="empty">{t(lang, "common.empty")}</p> }
}

/// The loading state.
#[component]
pub fn Loading() -> impl IntoView {
    let lang = use_context::<Lang>().unwrap_or_default();
    view! { <p class="loading" aria-live="polite">{t(lang, "common.loading")}</p> }
}
