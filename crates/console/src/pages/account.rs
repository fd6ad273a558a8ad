//! Account: balance and its ledger, API keys (create — the secret shown once — and revoke), and
//! the alert settings (recipients, thresholds, language).

use leptos::prelude::*;

use crate::app::{Changes, Empty, ErrorNote, Loading, MeResource};
use crate::dto::AccountPage as AccountData;
use crate::i18n::{ledger_kind_label, t, Lang};

#[leptos::server(endpoint = "account_overview")]
pub async fn account_overview() -> Result<AccountData, ServerFnError> {
    let caller = crate::server::caller().await?;
    server_side::load(&caller).await
}

/// Creates an API key for the caller's account; the answer is `SecretId` and `SecretKey`, the
/// only time the secret is shown.
#[leptos::server(endpoint = "create_api_key")]
pub async fn create_api_key(csrf: String, note: String) -> Result<(String, String), ServerFnError> {
    let result = async {
        let caller = crate::server::caller().await?;
        caller.check_csrf(&csrf)?;
        let user = &caller.session.user;
        let key = caller
            .store()
            .create_api_key(user.account_id, note.trim(), &caller.actor(), caller.now)
            .await
            .map_err(crate::server::store_error)?;
        Ok((key.info.secret_id, key.secret_key.expose().to_owned()))
    }
    .await;
    // A plain form post cannot show the secret without putting it in a URL, so it says so.
    crate::server::finish_form(
        result,
        |(secret_id, _)| {
            format!(
                "Created key {secret_id}. Its SecretKey is shown only by the live (JavaScript) page: \
                 revoke this key and create another there."
            )
        },
        false,
    )
}

#[leptos::server(endpoint = "revoke_api_key")]
pub async fn revoke_api_key(csrf: String, secret_id: String) -> Result<(), ServerFnError> {
    let result = async {
        let caller = crate::server::caller().await?;
        caller.check_csrf(&csrf)?;
        caller
            .store()
            .revoke_api_key(caller.session.user.account_id, &secret_id, &caller.actor(), caller.now)
            .await
            .map_err(crate::server::store_error)
    }
    .await;
    crate::server::finish_form(result, |()| "Key revoked.".to_owned(), false)
}

#[leptos::server(endpoint = "save_alert_settings")]
pub async fn save_alert_settings(
    csrf: String,
    recipients: String,
    thresholds: String,
    language: String,
) -> Result<(), ServerFnError> {
    let result = async {
        let caller = crate::server::caller().await?;
        caller.check_csrf(&csrf)?;
        let recipients: Vec<String> =
            recipients.split([',', ';', '\n']).map(str::trim).filter(|r| !r.is_empty()).map(str::to_owned).collect();
        let thresholds = thresholds
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| {
                t.trim_end_matches('%')
                    .parse::<u8>()
                    .map_err(|_| ServerFnError::new(format!("{t:?} is not a percentage from 1 to 99")))
            })
            .collect::<Result<Vec<u8>, _>>()?;
        caller
            .store()
            .set_alert_settings(
                caller.session.user.account_id,
                recipients,
                &language,
                thresholds,
                &caller.actor(),
                caller.now,
            )
            .await
            .map_err(crate::server::store_error)?;
        Ok(())
    }
    .await;
    crate::server::finish_form(result, |()| "Alert settings saved.".to_owned(), false)
}

#[component]
pub fn AccountPage() -> impl IntoView {
    let lang = expect_context::<Lang>();
    let changes = expect_context::<Changes>();
    let data = Resource::new(move || changes.0.get(), |_| account_overview());
    // The actions live above the Transition: a success refreshes the page's data (the new key
    // is listed, the saved settings shown), and the result, such as a secret shown only once,
    // must survive that re-render.
    let actions = AccountActions {
        create: ServerAction::<CreateApiKey>::new(),
        revoke: ServerAction::<RevokeApiKey>::new(),
        alerts: ServerAction::<SaveAlertSettings>::new(),
    };
    Effect::new(move |_| {
        if matches!(actions.create.value().get(), Some(Ok(_)))
            || matches!(actions.revoke.value().get(), Some(Ok(())))
            || matches!(actions.alerts.value().get(), Some(Ok(())))
        {
            changes.bump();
        }
    });
    view! {
        <h1>{t(lang, "nav.account")}</h1>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(data) => view! { <AccountView data actions /> }.into_any(),
                    Err(error) => view! { <ErrorNote error /> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// The account page's forms' actions.
#[derive(Clone, Copy)]
struct AccountActions {
    create: ServerAction<CreateApiKey>,
    revoke: ServerAction<RevokeApiKey>,
    alerts: ServerAction<SaveAlertSettings>,
}

#[component]
fn AccountView(data: AccountData, actions: AccountActions) -> impl IntoView {
    let lang = expect_context::<Lang>();
    let me = expect_context::<MeResource>();
    let csrf = move || me.get().and_then(Result::ok).map(|me| me.csrf).unwrap_or_default();
    let AccountActions { create, revoke, alerts } = actions;
    view! {
        <section>
            <h2>{data.name.clone()}" "<code>{data.uin.clone()}</code></h2>
            <p class="big" data-testid="account-balance">{t(lang, "common.balance")}": "{data.balance.clone()}</p>
            {(!data.owed.is_empty()).then(|| view! {
                <p class="notice" data-testid="account-owed">
                    {t(lang, "account.owed")}": "<strong>{data.owed.clone()}</strong>" "{t(lang, "account.owed_hint")}
                </p>
            })}
        </section>
        <section>
            <h2>{t(lang, "account.ledger")}</h2>
            {if data.ledger.is_empty() { view! { <Empty /> }.into_any() } else { view! {
                <div class="table-wrap"><table data-testid="ledger">
                    <thead><tr>
                        <th scope="col">{t(lang, "account.time")}</th>
                        <th scope="col">{t(lang, "account.kind")}</th>
                        <th scope="col">{t(lang, "account.amount")}</th>
                        <th scope="col">{t(lang, "common.balance")}</th>
                        <th scope="col">{t(lang, "account.reference")}</th>
                        <th scope="col">{t(lang, "account.note")}</th>
                    </tr></thead>
                    <tbody>{data.ledger.iter().map(|line| view! {
                        <tr><td>{line.time.clone()}</td><td>{ledger_kind_label(lang, &line.kind).to_owned()}</td><td class="num">{line.amount.clone()}</td>
                        <td class="num">{line.balance_after.clone()}</td><td>{line.reference.clone()}</td><td>{line.note.clone()}</td></tr>
                    }).collect_view()}</tbody>
                </table></div>
            }.into_any() }}
        </section>
        <section>
            <h2>{t(lang, "account.keys")}</h2>
            <ActionForm action=create attr:class="inline-form" attr:data-testid="key-form">
                <input type="hidden" name="csrf" value=csrf />
                <label>{t(lang, "account.key_note")}<input type="text" name="note" maxlength="200" /></label>
                <button type="submit">{t(lang, "account.create_key")}</button>
            </ActionForm>
            {move || create.value().get().map(|result| match result {
                Ok((secret_id, secret_key)) => view! {
                    <div class="secret" role="status">
                        <p><strong>{t(lang, "account.secret_once")}</strong></p>
                        <p>"SecretId: "<code data-testid="secret-id">{secret_id}</code></p>
                        <p>"SecretKey: "<code data-testid="secret-key">{secret_key}</code></p>
                    </div>
                }.into_any(),
                Err(error) => view! { <ErrorNote error /> }.into_any(),
            })}
            {if data.keys.is_empty() { view! { <Empty /> }.into_any() } else { view! {
                <div class="table-wrap"><table data-testid="api-keys">
                    <thead><tr><th scope="col">"SecretId"</th><th scope="col">{t(lang, "account.key_note")}</th>
                    <th scope="col">{t(lang, "account.time")}</th><th scope="col">{t(lang, "packs.status")}</th><th scope="col"></th></tr></thead>
                    <tbody>{data.keys.clone().into_iter().map(|key| {
                        let revoked = key.revoked_at.is_some();
                        view! {
                            <tr><td><code>{key.secret_id.clone()}</code></td><td>{key.note.clone()}</td><td>{key.created_at.clone()}</td>
                            <td>{key.revoked_at.clone().map(|at| format!("{} {at}", t(lang, "account.revoked")))}</td>
                            <td>{(!revoked).then(|| view! {
                                <ActionForm action=revoke>
                                    <input type="hidden" name="csrf" value=csrf />
                                    <input type="hidden" name="secret_id" value=key.secret_id.clone() />
                                    <button type="submit" class="secondary">{t(lang, "account.revoke")}</button>
                                </ActionForm>
                            })}</td></tr>
                        }
                    }).collect_view()}</tbody>
                </table></div>
            }.into_any() }}
        </section>
        <section>
            <h2>{t(lang, "account.alerts")}</h2>
            <ActionForm action=alerts attr:class="stack" attr:data-testid="alert-form">
                <input type="hidden" name="csrf" value=csrf />
                <label>{t(lang, "account.recipients")}<input type="text" name="recipients" value=data.alert_recipients.clone() /></label>
                <label>{t(lang, "account.thresholds")}<input type="text" name="thresholds" value=data.alert_thresholds.clone() /></label>
                <label>{t(lang, "account.alert_language")}
                    <select name="language">
                        <option value="en" selected=data.alert_language == "en">"English"</option>
                        <option value="zh-CN" selected=data.alert_language == "zh-CN">"简体中文"</option>
                    </select>
                </label>
                <button type="submit">{t(lang, "common.save")}</button>
            </ActionForm>
            {move || alerts.value().get().map(|result| match result {
                Ok(()) => view! { <p class="success" role="status" data-testid="alerts-saved">{t(lang, "account.saved")}</p> }.into_any(),
                Err(error) => view! { <ErrorNote error /> }.into_any(),
            })}
        </section>
    }
}

#[cfg(feature = "ssr")]
mod server_side {
    use leptos::prelude::ServerFnError;

    use crate::dto::{AccountPage, ApiKeyLine, LedgerLine};
    use crate::server::{store_error, Caller};

    pub async fn load(caller: &Caller) -> Result<AccountPage, ServerFnError> {
        let account_id = caller.session.user.account_id;
        let account = caller.store().account(account_id).await.map_err(store_error)?;
        let ledger = caller.store().ledger(account_id, 100).await.map_err(store_error)?;
        let keys = caller.store().api_keys(account_id).await.map_err(store_error)?;
        let owed = caller.store().owed_overage(account_id, caller.now).await.map_err(store_error)?;
        Ok(AccountPage {
            name: account.name,
            uin: account.uin,
            balance: account.balance.to_string(),
            owed: if owed > respack_domain::Money::ZERO { owed.to_string() } else { String::new() },
            allow_arrears: account.allow_arrears,
            ledger: ledger
                .into_iter()
                .map(|entry| LedgerLine {
                    time: caller.time(entry.created_at),
                    kind: entry.kind,
                    amount: entry.amount.to_string(),
                    balance_after: entry.balance_after.to_string(),
                    reference: entry.pack_id.or(entry.order_id).unwrap_or_default(),
                    note: entry.note,
                })
                .collect(),
            keys: keys
                .into_iter()
                .map(|key| ApiKeyLine {
                    secret_id: key.secret_id,
                    note: key.note,
                    created_at: caller.time(key.created_at),
                    revoked_at: key.revoked_at.map(|at| caller.time(at)),
                    last_used_at: key.last_used_at.map(|at| caller.time(at)),
                })
                .collect(),
            alert_recipients: account.alert_recipients.join(", "),
            alert_thresholds: account.alert_thresholds.iter().map(u8::to_string).collect::<Vec<_>>().join(", "),
            alert_language: account.language,
        })
    }
}
