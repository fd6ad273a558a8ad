//! Operator pages: accounts (create, top up), issuing a pack from the catalog, adjusting a
//! pack's bill (a charge or refund with a reason: "Adjustment - deduction/refund"), the email
//! outbox (queued / sent / dead, retry) and the audit log. Freeze and unfreeze are row
//! operations of Resource Packages, shown to operators only (refund is one too, for everyone).
//! Every server function here refuses callers who are not operators.

use leptos::prelude::*;

use crate::app::{Changes, Empty, ErrorNote, Loading, MeResource};
use crate::dto::{AuditLine, OperatorPage as OperatorData, OutboxLine};
use crate::i18n::{t, Lang};

#[leptos::server(endpoint = "operator_overview")]
pub async fn operator_overview() -> Result<OperatorData, ServerFnError> {
    let caller = crate::server::caller().await?;
    caller.require_operator()?;
    server_side::overview(&caller).await
}

#[leptos::server(endpoint = "create_account")]
pub async fn create_account(
    csrf: String,
    name: String,
    time_zone: String,
    email: String,
    password: String,
) -> Result<String, ServerFnError> {
    let result: Result<String, ServerFnError> = async {
        let caller = crate::server::operator_posting(&csrf).await?;
        server_side::create_account(&caller, &name, &time_zone, &email, &password).await
    }
    .await;
    crate::server::finish_form(result, String::clone, false)
}

#[leptos::server(endpoint = "top_up")]
pub async fn top_up(
    csrf: String,
    account_id: i64,
    amount: String,
    client_token: String,
) -> Result<String, ServerFnError> {
    let result: Result<String, ServerFnError> = async {
        let caller = crate::server::operator_posting(&csrf).await?;
        let amount =
            respack_domain::Money::parse(amount.trim()).map_err(|error| ServerFnError::new(error.to_string()))?;
        let receipt = caller
            .store()
            .top_up(
                account_id,
                amount,
                Some(&client_token).filter(|token| !token.is_empty()).map(String::as_str),
                &caller.actor(),
                caller.now,
            )
            .await
            .map_err(crate::server::store_error)?;
        Ok(format!("Topped up {}; balance now {}.", receipt.amount, receipt.balance_after))
    }
    .await;
    crate::server::finish_form(result, String::clone, false)
}

#[leptos::server(endpoint = "adjust_bill")]
pub async fn adjust_bill(
    csrf: String,
    pack_id: String,
    amount: String,
    reason: String,
    client_token: String,
) -> Result<String, ServerFnError> {
    let result: Result<String, ServerFnError> = async {
        let caller = crate::server::operator_posting(&csrf).await?;
        server_side::adjust_bill(&caller, &pack_id, &amount, &reason, &client_token).await
    }
    .await;
    crate::server::finish_form(result, String::clone, false)
}

/// The fields of the issue form.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct IssueForm {
    pub account_id: i64,
    pub subproduct: String,
    pub name: String,
    /// `total`, `period_month`, `period_day`, `shard_day`, `unlimited`.
    pub mode: String,
    pub capacity: String,
    pub term: u32,
    pub unit_price: String,
    pub region: String,
    /// `balance` (debit the account) or `settled` (paid outside respack).
    pub charge: String,
    pub client_token: String,
}

#[leptos::server(endpoint = "issue_pack")]
pub async fn issue_pack(csrf: String, form: IssueForm) -> Result<String, ServerFnError> {
    let result: Result<String, ServerFnError> = async {
        let caller = crate::server::operator_posting(&csrf).await?;
        server_side::issue(&caller, &form).await
    }
    .await;
    crate::server::finish_form(result, String::clone, false)
}

#[leptos::server(endpoint = "outbox_messages")]
pub async fn outbox_messages(status: String) -> Result<Vec<OutboxLine>, ServerFnError> {
    let caller = crate::server::caller().await?;
    caller.require_operator()?;
    server_side::outbox(&caller, &status).await
}

#[leptos::server(endpoint = "retry_outbox")]
pub async fn retry_outbox(csrf: String, id: i64) -> Result<String, ServerFnError> {
    let result: Result<String, ServerFnError> = async {
        let caller = crate::server::operator_posting(&csrf).await?;
        let requeued = caller
            .store()
            .retry_outbox_message(id, &caller.actor(), caller.now)
            .await
            .map_err(crate::server::store_error)?;
        Ok(if requeued {
            format!("Message {id} is queued again.")
        } else {
            format!("Message {id} was already requeued.")
        })
    }
    .await;
    crate::server::finish_form(result, String::clone, false)
}

#[leptos::server(endpoint = "audit_entries")]
pub async fn audit_entries() -> Result<Vec<AuditLine>, ServerFnError> {
    let caller = crate::server::caller().await?;
    caller.require_operator()?;
    server_side::audit(&caller).await
}

fn csrf_of(me: MeResource) -> impl Fn() -> String + Copy {
    move || me.get().and_then(Result::ok).map(|me| me.csrf).unwrap_or_default()
}

#[component]
pub fn OperatorPage() -> impl IntoView {
    let lang = expect_context::<Lang>();
    let changes = expect_context::<Changes>();
    let data = Resource::new(move || changes.0.get(), |_| operator_overview());
    // The actions live here, above the Transition: a success refreshes the page's data, which
    // re-renders the forms, and their results must survive that.
    let actions = OperatorActions {
        create: ServerAction::<CreateAccount>::new(),
        top_up: ServerAction::<TopUp>::new(),
        issue: ServerAction::<IssuePack>::new(),
        adjust: ServerAction::<AdjustBill>::new(),
    };
    Effect::new(move |_| {
        if matches!(actions.create.value().get(), Some(Ok(_)))
            || matches!(actions.top_up.value().get(), Some(Ok(_)))
            || matches!(actions.issue.value().get(), Some(Ok(_)))
            || matches!(actions.adjust.value().get(), Some(Ok(_)))
        {
            changes.bump();
        }
    });
    view! {
        <h1>{t(lang, "nav.operator")}</h1>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(data) => view! { <OperatorView data actions /> }.into_any(),
                    Err(error) => view! { <ErrorNote error /> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// The operator page's forms' actions.
#[derive(Clone, Copy)]
struct OperatorActions {
    create: ServerAction<CreateAccount>,
    top_up: ServerAction<TopUp>,
    issue: ServerAction<IssuePack>,
    adjust: ServerAction<AdjustBill>,
}

#[component]
fn OperatorView(data: OperatorData, actions: OperatorActions) -> impl IntoView {
    let lang = expect_context::<Lang>();
    let me = expect_context::<MeResource>();
    let csrf = csrf_of(me);
    let OperatorActions { create, top_up, issue, adjust } = actions;
    let account_options = || {
        data.accounts
            .iter()
            .map(|account| view! { <option value=account.id.to_string()>{format!("{} ({})", account.name, account.uin)}</option> })
            .collect_view()
    };
    let top_up_accounts = account_options();
    let issue_accounts = account_options();
    let result = |value: Option<Result<String, ServerFnError>>| {
        value.map(|result| match result {
            Ok(message) => view! { <p class="success" role="status" data-testid="op-result">{message}</p> }.into_any(),
            Err(error) => view! { <ErrorNote error /> }.into_any(),
        })
    };
    view! {
        <section>
            <h2>{t(lang, "operator.accounts")}</h2>
            <div class="table-wrap"><table data-testid="accounts">
                <thead><tr><th scope="col">"UIN"</th><th scope="col">{t(lang, "operator.name")}</th><th scope="col">{t(lang, "account.kind")}</th>
                <th scope="col">{t(lang, "common.balance")}</th><th scope="col">{t(lang, "operator.time_zone")}</th></tr></thead>
                <tbody>{data.accounts.iter().map(|account| view! {
                    <tr><td><code>{account.uin.clone()}</code></td><td>{account.name.clone()}</td><td>{account.kind.clone()}</td>
                    <td class="num">{account.balance.clone()}</td><td>{account.time_zone.clone()}</td></tr>
                }).collect_view()}</tbody>
            </table></div>
        </section>
        <section class="forms">
            <div>
                <h3>{t(lang, "operator.create_account")}</h3>
                <ActionForm action=create attr:class="stack" attr:data-testid="create-account-form">
                    <input type="hidden" name="csrf" value=csrf />
                    <label>{t(lang, "operator.name")}<input type="text" name="name" required=true /></label>
                    <label>{t(lang, "operator.time_zone")}<input type="text" name="time_zone" value="Asia/Shanghai" required=true /></label>
                    <label>{t(lang, "auth.email")}<input type="email" name="email" /></label>
                    <label>{t(lang, "auth.password")}<input type="password" name="password" autocomplete="new-password" /></label>
                    <button type="submit">{t(lang, "operator.create_account")}</button>
                </ActionForm>
                {move || result(create.value().get())}
            </div>
            <div>
                <h3>{t(lang, "operator.top_up")}</h3>
                <ActionForm action=top_up attr:class="stack">
                    <input type="hidden" name="csrf" value=csrf />
                    <input type="hidden" name="client_token" value=data.top_up_token.clone() />
                    <label>{t(lang, "operator.account")}<select name="account_id">{top_up_accounts}</select></label>
                    <label>{t(lang, "operator.amount")}<input type="text" name="amount" inputmode="decimal" required=true /></label>
                    <button type="submit">{t(lang, "operator.top_up")}</button>
                </ActionForm>
                {move || result(top_up.value().get())}
            </div>
            <div>
                <h3>{t(lang, "operator.issue")}</h3>
                <ActionForm action=issue attr:class="stack" attr:data-testid="issue-form">
                    <input type="hidden" name="csrf" value=csrf />
                    <input type="hidden" name="form[client_token]" value=data.issue_token.clone() />
                    <label>{t(lang, "operator.account")}<select name="form[account_id]">{issue_accounts}</select></label>
                    <label>{t(lang, "operator.subproduct")}
                        <select name="form[subproduct]">{data.subproducts.iter().map(|choice| view! {
                            <option value=choice.value.clone()>{choice.label.clone()}</option>
                        }).collect_view()}</select>
                    </label>
                    <label>{t(lang, "operator.pack_name")}<input type="text" name="form[name]" required=true /></label>
                    <label>{t(lang, "operator.mode")}
                        <select name="form[mode]">
                            <option value="period_month">"Period decrement (month)"</option>
                            <option value="period_day">"Period decrement (day)"</option>
                            <option value="total">"Total amount decremental"</option>
                            <option value="shard_day">"Sharding decrement (day)"</option>
                            <option value="unlimited">"Unlimited capacity"</option>
                        </select>
                    </label>
                    <label>{t(lang, "operator.capacity")}<input type="text" name="form[capacity]" value="1000" inputmode="decimal" /></label>
                    <label>{t(lang, "operator.term")}<input type="number" name="form[term]" value="12" min="1" /></label>
                    <label>{t(lang, "operator.price")}<input type="text" name="form[unit_price]" value="10" inputmode="decimal" /></label>
                    <label>{t(lang, "bills.region")}
                        <select name="form[region]">{respack_domain::region::REGIONS.iter().map(|region| view! {
                            <option value=region.code>{crate::i18n::region_label(lang, region.code)}</option>
                        }).collect_view()}</select>
                    </label>
                    <label>"Charge"
                        <select name="form[charge]">
                            <option value="balance">"Debit the balance"</option>
                            <option value="settled">"Paid outside respack"</option>
                        </select>
                    </label>
                    <button type="submit">{t(lang, "operator.issue")}</button>
                </ActionForm>
                {move || result(issue.value().get())}
            </div>
            <div>
                <h3>{t(lang, "operator.adjust")}</h3>
                <ActionForm action=adjust attr:class="stack" attr:data-testid="adjust-form">
                    <input type="hidden" name="csrf" value=csrf />
                    <input type="hidden" name="client_token" value=data.adjust_token.clone() />
                    <label>{t(lang, "operator.pack_id")}<input type="text" name="pack_id" placeholder="rp-…" required=true /></label>
                    <label>{t(lang, "operator.adjust_amount")}<input type="text" name="amount" inputmode="decimal" required=true /></label>
                    <label>{t(lang, "operator.reason")}<input type="text" name="reason" maxlength="200" required=true /></label>
                    <button type="submit">{t(lang, "operator.adjust")}</button>
                </ActionForm>
                {move || result(adjust.value().get())}
            </div>
        </section>
    }
}

#[component]
pub fn OutboxPage() -> impl IntoView {
    let lang = expect_context::<Lang>();
    let changes = expect_context::<Changes>();
    let me = expect_context::<MeResource>();
    let status = super::query_param("status");
    let data = Resource::new(move || (status.get(), changes.0.get()), |(status, _)| outbox_messages(status));
    let retry = ServerAction::<RetryOutbox>::new();
    Effect::new(move |_| {
        if matches!(retry.value().get(), Some(Ok(_))) {
            changes.bump();
        }
    });
    let csrf = csrf_of(me);
    view! {
        <h1>{t(lang, "nav.outbox")}</h1>
        <nav class="tabs" aria-label=t(lang, "outbox.status")>
            <a href="/operator/outbox">"all"</a><a href="/operator/outbox?status=queued">"queued"</a>
            <a href="/operator/outbox?status=sent">"sent"</a><a href="/operator/outbox?status=dead">"dead"</a>
        </nav>
        {move || retry.value().get().map(|result| match result {
            Ok(message) => view! { <p class="success" role="status" data-testid="retry-result">{message}</p> }.into_any(),
            Err(error) => view! { <ErrorNote error /> }.into_any(),
        })}
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(lines) if lines.is_empty() => view! { <Empty /> }.into_any(),
                    Ok(lines) => view! {
                        <div class="table-wrap"><table data-testid="outbox">
                            <thead><tr><th scope="col">"#"</th><th scope="col">{t(lang, "outbox.status")}</th><th scope="col">{t(lang, "outbox.subject")}</th>
                            <th scope="col">{t(lang, "outbox.recipients")}</th><th scope="col">{t(lang, "outbox.attempts")}</th>
                            <th scope="col">{t(lang, "outbox.next")}</th><th scope="col">{t(lang, "outbox.error")}</th><th scope="col"></th></tr></thead>
                            <tbody>{lines.into_iter().map(|line| {
                                let dead = line.status == "dead";
                                view! {
                                    <tr data-message=line.id.to_string()><td>{line.id}</td><td data-testid="outbox-status">{line.status.clone()}</td><td>{line.subject.clone()}</td><td>{line.recipients.clone()}</td>
                                    <td>{line.attempts}</td><td>{line.next_attempt_at.clone()}</td><td>{line.last_error.clone()}</td>
                                    <td>{dead.then(|| view! {
                                        <ActionForm action=retry>
                                            <input type="hidden" name="csrf" value=csrf />
                                            <input type="hidden" name="id" value=line.id.to_string() />
                                            <button type="submit">{t(lang, "outbox.retry")}</button>
                                        </ActionForm>
                                    })}</td></tr>
                                }
                            }).collect_view()}</tbody>
                        </table></div>
                    }.into_any(),
                    Err(error) => view! { <ErrorNote error /> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
pub fn AuditPage() -> impl IntoView {
    let lang = expect_context::<Lang>();
    let changes = expect_context::<Changes>();
    let data = Resource::new(move || changes.0.get(), |_| audit_entries());
    view! {
        <h1>{t(lang, "nav.audit")}</h1>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(lines) if lines.is_empty() => view! { <Empty /> }.into_any(),
                    Ok(lines) => view! {
                        <div class="table-wrap"><table data-testid="audit">
                            <thead><tr><th scope="col">{t(lang, "account.time")}</th><th scope="col">{t(lang, "operator.account")}</th>
                            <th scope="col">{t(lang, "audit.actor")}</th><th scope="col">{t(lang, "audit.action")}</th>
                            <th scope="col">{t(lang, "audit.target")}</th><th scope="col">{t(lang, "audit.detail")}</th></tr></thead>
                            <tbody>{lines.into_iter().map(|line| view! {
                                <tr><td>{line.time}</td><td>{line.account_id}</td><td>{line.actor}</td><td>{line.action}</td>
                                <td><code>{line.target}</code></td><td><code>{line.detail}</code></td></tr>
                            }).collect_view()}</tbody>
                        </table></div>
                    }.into_any(),
                    Err(error) => view! { <ErrorNote error /> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[cfg(feature = "ssr")]
mod server_side {
    use std::collections::BTreeMap;

    use leptos::prelude::ServerFnError;
    use respack_domain::chrono_tz::Tz;
    use respack_domain::rust_decimal::Decimal;
    use respack_domain::{CapacityItem, DeductionScope, Money, PackSpec, PaymentMode, RenewalMethod, Term, TimeUnit};
    use respack_store::{Charge, FirstUser, NewAccount, Role};

    use super::IssueForm;
    use crate::dto::{AccountLine, AuditLine, Choice, OperatorPage, OutboxLine};
    use crate::server::{store_error, Caller};

    pub async fn overview(caller: &Caller) -> Result<OperatorPage, ServerFnError> {
        let accounts = caller.store().accounts().await.map_err(store_error)?;
        let catalog = caller.store().catalog().await.map_err(store_error)?;
        Ok(OperatorPage {
            top_up_token: uuid::Uuid::new_v4().to_string(),
            issue_token: uuid::Uuid::new_v4().to_string(),
            adjust_token: uuid::Uuid::new_v4().to_string(),
            accounts: accounts
                .into_iter()
                .map(|account| AccountLine {
                    id: account.id,
                    uin: account.uin,
                    name: account.name,
                    kind: account.kind.as_str().to_owned(),
                    balance: account.balance.to_string(),
                    time_zone: account.time_zone.name().to_owned(),
                })
                .collect(),
            subproducts: catalog
                .into_iter()
                .flat_map(|product| {
                    product.subproducts.into_iter().map(move |sub| Choice {
                        value: sub.code,
                        label: format!("{} / {} ({})", product.name, sub.name, sub.unit),
                    })
                })
                .collect(),
        })
    }

    /// An operator's charge (positive amount) or refund (negative) on a pack's bill.
    pub async fn adjust_bill(
        caller: &Caller,
        pack_id: &str,
        amount: &str,
        reason: &str,
        client_token: &str,
    ) -> Result<String, ServerFnError> {
        let amount = Money::parse(amount.trim()).map_err(|error| ServerFnError::new(error.to_string()))?;
        let token = Some(client_token).filter(|token| !token.is_empty());
        let receipt = caller
            .store()
            .adjust_pack_bill(None, pack_id.trim(), amount, reason, token, &caller.actor(), caller.now)
            .await
            .map_err(store_error)?;
        let size = if receipt.amount.is_negative() { -receipt.amount } else { receipt.amount };
        Ok(format!(
            "{} of {size} on {} (order {}); balance now {}.",
            receipt.action_type.as_str(),
            receipt.pack_id,
            receipt.order_id,
            receipt.balance_after
        ))
    }

    pub async fn create_account(
        caller: &Caller,
        name: &str,
        time_zone: &str,
        email: &str,
        password: &str,
    ) -> Result<String, ServerFnError> {
        let zone: Tz = time_zone
            .trim()
            .parse()
            .map_err(|_| ServerFnError::new(format!("{time_zone:?} is not a time zone name (like Asia/Shanghai)")))?;
        if name.trim().is_empty() {
            return Err(ServerFnError::new("give the account a name"));
        }
        let new = NewAccount::customer(name.trim(), zone);
        let store = caller.store();
        // With a first user, both are created in one transaction: a taken email leaves no
        // account behind for a second attempt to duplicate.
        let account = if email.trim().is_empty() {
            store.create_account(new, &caller.actor(), caller.now).await
        } else {
            let user = FirstUser { email, display_name: name.trim(), password, role: Role::Customer };
            store.create_account_with_user(new, user, &caller.actor(), caller.now).await.map(|(account, _)| account)
        }
        .map_err(store_error)?;
        Ok(format!("Created account {} ({}).", account.name, account.uin))
    }

    pub async fn issue(caller: &Caller, form: &IssueForm) -> Result<String, ServerFnError> {
        let account = caller.store().account(form.account_id).await.map_err(store_error)?;
        let sub = caller.store().subproduct(&form.subproduct).await.map_err(store_error)?;
        let (mode, unit) = match form.mode.as_str() {
            "total" => (PaymentMode::TotalDecrement, TimeUnit::Month),
            "period_month" => (PaymentMode::PeriodDecrement(TimeUnit::Month), TimeUnit::Month),
            "period_day" => (PaymentMode::PeriodDecrement(TimeUnit::Day), TimeUnit::Day),
            "shard_day" => (PaymentMode::ShardDecrement(TimeUnit::Day), TimeUnit::Month),
            "unlimited" => (PaymentMode::Unlimited, TimeUnit::Month),
            other => return Err(ServerFnError::new(format!("unknown payment mode {other:?}"))),
        };
        let capacity = if mode == PaymentMode::Unlimited {
            None
        } else {
            let capacity: Decimal = form
                .capacity
                .trim()
                .parse()
                .map_err(|_| ServerFnError::new(format!("{:?} is not a capacity", form.capacity)))?;
            if capacity <= Decimal::ZERO {
                return Err(ServerFnError::new("the capacity must be greater than zero"));
            }
            Some(capacity)
        };
        let unit_price = Money::parse(form.unit_price.trim()).map_err(|error| ServerFnError::new(error.to_string()))?;
        let name = if form.name.trim().is_empty() { sub.name.clone() } else { form.name.trim().to_owned() };
        let spec = PackSpec {
            name,
            product: sub.product_code.clone(),
            subproduct: sub.code.clone(),
            region: form.region.trim().to_owned(),
            zone: String::new(),
            mode,
            term: Term { unit, count: form.term.max(1) },
            time_zone: account.time_zone,
            effective_at: caller.now,
            renewal: RenewalMethod::Manual,
            auto_renew_period: None,
            unit_price,
            scope: DeductionScope::default(),
            items: vec![CapacityItem::new(sub.name.clone(), sub.unit.clone(), capacity)],
            tags: BTreeMap::new(),
        };
        let charge = if form.charge == "settled" { Charge::Settled } else { Charge::Balance };
        let token = Some(form.client_token.as_str()).filter(|token| !token.is_empty());
        let issued = caller
            .store()
            .issue_pack(account.id, spec, charge, token, &caller.actor(), caller.now)
            .await
            .map_err(store_error)?;
        Ok(format!(
            "Issued {} to {} for {}{}.",
            issued.pack_id,
            account.name,
            issued.price,
            issued.balance_after.map(|balance| format!("; balance now {balance}")).unwrap_or_default()
        ))
    }

    pub async fn outbox(caller: &Caller, status: &str) -> Result<Vec<OutboxLine>, ServerFnError> {
        let status = Some(status).filter(|status| !status.is_empty());
        let messages = caller.store().outbox(status, 200).await.map_err(store_error)?;
        Ok(messages
            .into_iter()
            .map(|message| OutboxLine {
                id: message.id,
                account_id: message.account_id,
                kind: message.kind,
                recipients: message.recipients.join(", "),
                subject: message.subject,
                status: message.status,
                attempts: message.attempts,
                next_attempt_at: caller.time(message.next_attempt_at),
                last_error: message.last_error.unwrap_or_default(),
            })
            .collect())
    }

    pub async fn audit(caller: &Caller) -> Result<Vec<AuditLine>, ServerFnError> {
        let entries = caller.store().audit_log(None, 200).await.map_err(store_error)?;
        Ok(entries
            .into_iter()
            .map(|entry| AuditLine {
                time: caller.time(entry.created_at),
                account_id: entry.account_id,
                actor: entry.actor,
                action: entry.action,
                target: entry.target,
                detail: entry.detail.to_string(),
            })
            .collect())
    }
}
