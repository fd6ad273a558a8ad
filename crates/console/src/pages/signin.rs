//! The sign-in form. It posts to `/signin` (an axum handler, see `server::routes`), which sets
//! the session cookie and sends the browser to Resource Packages, or back here with the reason.

use leptos::prelude::*;

use crate::i18n::{t, Lang};

#[component]
pub fn SignInPage() -> impl IntoView {
    let lang = expect_context::<Lang>();
    let error = super::query_param("error");
    let until = super::query_param("until");
    let message = move || match error.get().as_str() {
        "refused" => Some(match lang {
            Lang::En => "Wrong email or password.".to_owned(),
            Lang::Zh => "邮箱或密码错误。".to_owned(),
        }),
        "throttled" => Some(match lang {
            Lang::En => format!("Too many failed attempts; try again after {}.", until.get()),
            Lang::Zh => format!("失败次数过多，请在 {} 之后再试。", until.get()),
        }),
        "unavailable" => Some(match lang {
            Lang::En => "Signing in is not possible right now; try again shortly.".to_owned(),
            Lang::Zh => "暂时无法登录，请稍后再试。".to_owned(),
        }),
        _ => None,
    };
    view! {
        <main id="main" class="signin">
            <h1>{t(lang, "auth.title")}</h1>
            {move || message().map(|text| view! { <p class="error" role="alert">{text}</p> })}
            <form method="post" action="/signin" class="stack">
                <label>
                    {t(lang, "auth.email")}
                    <input type="email" name="email" autocomplete="username" required=true autofocus=true />
                </label>
                <label>
                    {t(lang, "auth.password")}
                    <input type="password" name="password" autocomplete="current-password" required=true />
                </label>
                <button type="submit">{t(lang, "auth.sign_in")}</button>
            </form>
        </main>
    }
}
