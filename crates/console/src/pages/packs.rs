//! Resource Packages (seed: resource-package-overview): product selector, filters, the table of
//! every field shown only for the payment modes it applies to, column settings saved per user,
//! sorting, paging, CSV download, and the row operations as dialogs with price and balance
//! after, each disabled with its reason where a rule forbids it.

use std::collections::HashMap;

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;
use respack_domain::PackField;
use serde::{Deserialize, Serialize};

use super::ChoiceFilter;
use crate::app::{error_text, Changes, Empty, ErrorNote, Loading, MeResource};
use crate::dto::{OperationQuote, PackRow, PacksPage as PacksData};
use crate::i18n::{field_title, status_label, t, Lang};

/// Rows per page.
#[cfg(feature = "ssr")]
pub const PAGE_SIZE: u64 = 20;

/// The page's filters, sort and page, as they appear in its URL (and the CSV link's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PacksQuery {
    pub product: String,
    /// Subproduct code: the pack's type (e.g. general or TSC transcoding).
    pub subproduct: String,
    pub search: String,
    pub status: String,
    /// `yyyy-mm-dd`, inclusive.
    pub expires_from: String,
    /// `yyyy-mm-dd`, exclusive.
    pub expires_to: String,
    pub sort: String,
    pub page: u64,
}

impl PacksQuery {
    fn from_url() -> Memo<PacksQuery> {
        let query = use_query_map();
        Memo::new(move |_| {
            query.with(|map| PacksQuery {
                product: map.get("product").unwrap_or_default(),
                subproduct: map.get("subproduct").unwrap_or_default(),
                search: map.get("search").unwrap_or_default(),
                status: map.get("status").unwrap_or_default(),
                expires_from: map.get("expires_from").unwrap_or_default(),
                expires_to: map.get("expires_to").unwrap_or_default(),
                sort: map.get("sort").unwrap_or_default(),
                page: map.get("page").and_then(|page| page.parse().ok()).unwrap_or(1).max(1),
            })
        })
    }

    /// The URL query of these filters with `page` (and extra `key=value` pairs) — no `?`.
    pub fn to_query_string(&self, page: u64, extra: &[(&str, &str)]) -> String {
        let mut pairs: Vec<(String, String)> = vec![
            ("product".into(), self.product.clone()),
            ("subproduct".into(), self.subproduct.clone()),
            ("search".into(), self.search.clone()),
            ("status".into(), self.status.clone()),
            ("expires_from".into(), self.expires_from.clone()),
            ("expires_to".into(), self.expires_to.clone()),
            ("sort".into(), self.sort.clone()),
        ];
        if page > 1 {
            pairs.push(("page".into(), page.to_string()));
        }
        pairs.extend(extra.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())));
        pairs
            .into_iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(key, value)| format!("{key}={}", url_encode(&value)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// Percent-encodes a query value.
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(byte as char),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// The operations of a row, with the dialog's i18n key.
const OPERATIONS: [(&str, &str); 5] = [
    ("renew", "op.renew"),
    ("set_auto", "op.set_auto"),
    ("set_manual", "op.set_manual"),
    ("set_not_renew", "op.set_not_renew"),
    ("modify_period", "op.modify_period"),
];

/// One page of the caller's packs with the displayed columns.
#[leptos::server(endpoint = "list_packs")]
pub async fn list_packs(query: PacksQuery) -> Result<PacksData, ServerFnError> {
    let caller = crate::server::caller().await?;
    server_side::load(&caller, &query, false).await
}

/// Saves the columns this user wants to see (`cols[<field>]=on` for each checked one).
#[leptos::server(endpoint = "save_columns")]
pub async fn save_columns(csrf: String, cols: HashMap<String, String>) -> Result<(), ServerFnError> {
    let result = async {
        let caller = crate::server::caller().await?;
        caller.check_csrf(&csrf)?;
        server_side::save_columns(&caller, cols).await
    }
    .await;
    crate::server::finish_form(result, |()| "Column settings saved.".to_owned(), false)
}

/// What an operation on a pack would cost and leave (`periods` for renewals and auto-renewal).
#[leptos::server(endpoint = "quote_operation")]
pub async fn quote_operation(
    operation: String,
    pack_id: String,
    periods: u32,
) -> Result<OperationQuote, ServerFnError> {
    let caller = crate::server::caller().await?;
    server_side::quote(&caller, &operation, &pack_id, periods).await
}

/// Carries out an operation on a pack; the answer says what happened.
#[leptos::server(endpoint = "apply_operation")]
pub async fn apply_operation(
    csrf: String,
    operation: String,
    pack_id: String,
    periods: u32,
    client_token: String,
) -> Result<String, ServerFnError> {
    let result = async {
        let caller = crate::server::caller().await?;
        caller.check_csrf(&csrf)?;
        server_side::apply(&caller, &operation, &pack_id, periods, &client_token).await
    }
    .await;
    crate::server::finish_form(result, String::clone, true)
}

#[component]
pub fn PacksPage() -> impl IntoView {
    let lang = expect_context::<Lang>();
    let changes = expect_context::<Changes>();
    let query = PacksQuery::from_url();
    let data = Resource::new(move || (query.get(), changes.0.get()), |(query, _)| list_packs(query));
    let op = super::query_param("op");
    let pack = super::query_param("pack");
    view! {
        <h1>{t(lang, "nav.packs")}</h1>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(data) => view! { <PacksView data query=query.get_untracked() /> }.into_any(),
                    Err(error) => view! { <ErrorNote error /> }.into_any(),
                }
            })}
        </Transition>
        {move || {
            let (op, pack) = (op.get(), pack.get());
            (!op.is_empty() && !pack.is_empty())
                .then(|| view! { <OperationDialog operation=op pack_id=pack query=query.get_untracked() /> })
        }}
    }
}

#[component]
fn PacksView(data: PacksData, query: PacksQuery) -> impl IntoView {
    let lang = expect_context::<Lang>();
    let columns: Vec<PackField> = data.columns.iter().filter_map(|name| parse_field(name)).collect();
    let pages = data.total.div_ceil(data.page_size).max(1);
    let csv_href = format!("/packs.csv?{}", query.to_query_string(1, &[]));
    let statuses = ["inactive", "valid", "frozen", "expired", "exhausted", "refunded"];
    let sorts = [
        ("", "packs.sort.purchased_desc"),
        ("expires_asc", "packs.sort.expires_asc"),
        ("expires_desc", "packs.sort.expires_desc"),
        ("name_asc", "packs.sort.name_asc"),
    ];
    let header_cells =
        columns.iter().map(|field| view! { <th scope="col">{field_title(lang, *field)}</th> }).collect_view();
    let rows = data
        .rows
        .iter()
        .cloned()
        .map(|row| view! { <PackTableRow row columns=columns.clone() query=query.clone() /> })
        .collect_view();
    let prev = (data.page > 1).then(|| format!("/packs?{}", query.to_query_string(data.page - 1, &[])));
    let next = (data.page < pages).then(|| format!("/packs?{}", query.to_query_string(data.page + 1, &[])));
    view! {
        <form method="get" action="/packs" class="filters" role="search">
            <ChoiceFilter label="packs.product" name="product" all="packs.all_products"
                choices=data.products.clone() selected=query.product.clone() />
            <ChoiceFilter label="packs.type" name="subproduct" all="packs.all_types"
                choices=data.subproducts.clone() selected=query.subproduct.clone() />
            <label>
                {t(lang, "packs.search")}
                <input type="search" name="search" value=query.search.clone() />
            </label>
            <label>
                {t(lang, "packs.status")}
                <select name="status">
                    <option value="" selected=query.status.is_empty()>{t(lang, "packs.all_statuses")}</option>
                    {statuses.iter().map(|status| view! {
                        <option value=*status selected=*status == query.status>{status_label(lang, status)}</option>
                    }).collect_view()}
                </select>
            </label>
            <label>
                {t(lang, "packs.expires_from")}
                <input type="date" name="expires_from" value=query.expires_from.clone() />
            </label>
            <label>
                {t(lang, "packs.expires_to")}
                <input type="date" name="expires_to" value=query.expires_to.clone() />
            </label>
            <label>
                {t(lang, "packs.sort")}
                <select name="sort">
                    {sorts.iter().map(|(value, key)| view! {
                        <option value=*value selected=*value == query.sort>{t(lang, key)}</option>
                    }).collect_view()}
                </select>
            </label>
            <button type="submit">{t(lang, "common.search")}</button>
            <a href="/packs" class="button secondary">{t(lang, "common.reset")}</a>
        </form>
        <div class="toolbar">
            <span data-testid="pack-count">{data.total}" "{t(lang, "packs.count")}</span>
            <a class="button secondary" href=csv_href download="resource-packages.csv">{t(lang, "common.download")}</a>
            <ColumnSettings selected=data.columns.clone() />
        </div>
        <p class="muted">{t(lang, "packs.three_months")}</p>
        {if data.rows.is_empty() {
            view! { <Empty /> }.into_any()
        } else {
            view! {
                <div class="table-wrap">
                    <table class="packs">
                        <thead><tr>{header_cells}</tr></thead>
                        <tbody>{rows}</tbody>
                    </table>
                </div>
            }
            .into_any()
        }}
        <nav class="pager" aria-label="pages">
            {prev.map(|href| view! { <a href=href rel="prev">{t(lang, "common.previous")}</a> })}
            <span>{t(lang, "common.page")}" "{data.page}" "{t(lang, "common.of")}" "{pages}</span>
            {next.map(|href| view! { <a href=href rel="next">{t(lang, "common.next")}</a> })}
        </nav>
    }
}

fn parse_field(name: &str) -> Option<PackField> {
    PackField::ALL.into_iter().find(|field| field_name(*field) == name)
}

/// The stored name of a column (its serde name).
pub fn field_name(field: PackField) -> &'static str {
    use PackField::*;
    match field {
        NameAndId => "name_and_id",
        Product => "product",
        Subproduct => "subproduct",
        Region => "region",
        AvailabilityZone => "availability_zone",
        Status => "status",
        PaymentMode => "payment_mode",
        CapacityUnit => "capacity_unit",
        SinglePeriodCapacity => "single_period_capacity",
        SinglePeriodTime => "single_period_time",
        Periods => "periods",
        TotalCapacity => "total_capacity",
        ComboCapacity => "combo_capacity",
        DeductionAttribute => "deduction_attribute",
        EffectiveExpiration => "effective_expiration",
        PackageExpiry => "package_expiry",
        Renewal => "renewal",
        AutoRenewalPeriod => "auto_renewal_period",
        Operation => "operation",
    }
}

#[component]
fn PackTableRow(row: PackRow, columns: Vec<PackField>, query: PacksQuery) -> impl IntoView {
    let lang = expect_context::<Lang>();
    let me = expect_context::<MeResource>();
    let operator = move || me.get().and_then(Result::ok).is_some_and(|me| me.is_operator());
    let cells = columns
        .iter()
        .zip(row.cells.iter().cloned())
        .map(|(field, cell)| {
            let row = row.clone();
            let query = query.clone();
            match field {
                PackField::NameAndId => view! {
                    <td>
                        <a href=format!("/packs/{}", row.id)>{row.name.clone()}</a>
                        <br />
                        <code>{row.id.clone()}</code>
                    </td>
                }
                .into_any(),
                PackField::Status => {
                    let status = cell.unwrap_or_default();
                    view! { <td><span class=format!("status status-{status}")>{status_label(lang, &status)}</span></td> }
                        .into_any()
                }
                PackField::Operation => {
                    let refusals = [
                        row.renew.clone(),
                        row.set_auto.clone(),
                        row.set_manual.clone(),
                        row.set_not_renew.clone(),
                        row.modify_period.clone(),
                    ];
                    let ops = OPERATIONS
                        .iter()
                        .zip(refusals)
                        .map(|((op, key), refusal)| operation_control(lang, &query, &row.id, op, key, refusal))
                        .collect_view();
                    // Customers refund their own packs within five days (seed: MPS resource packs).
                    let refund = operation_control(lang, &query, &row.id, "refund", "op.refund", row.refund.clone());
                    let operator_ops = {
                        let query = query.clone();
                        let row = row.clone();
                        move || {
                            operator().then(|| {
                                let freeze = if row.frozen { ("unfreeze", "op.unfreeze") } else { ("freeze", "op.freeze") };
                                operation_control(lang, &query, &row.id, freeze.0, freeze.1, (!row.live).then(|| "the pack has ended".to_owned()))
                            })
                        }
                    };
                    view! { <td class="ops">{ops}{refund}{operator_ops}</td> }.into_any()
                }
                _ => view! { <td>{cell.unwrap_or_else(|| "-".to_owned())}</td> }.into_any(),
            }
        })
        .collect_view();
    view! { <tr data-pack=row.id.clone()>{cells}</tr> }
}

/// A row operation: a link opening its dialog, or a disabled button whose reason is shown
/// on hover and focus and read by screen readers.
fn operation_control(
    lang: Lang,
    query: &PacksQuery,
    pack_id: &str,
    op: &'static str,
    key: &'static str,
    refusal: Option<String>,
) -> AnyView {
    match refusal {
        None => {
            let href = format!("/packs?{}", query.to_query_string(query.page, &[("op", op), ("pack", pack_id)]));
            view! { <a class="op" href=href data-op=op>{t(lang, key)}</a> }.into_any()
        }
        Some(reason) => view! {
            <button type="button" class="op" disabled=true data-op=op title=reason.clone() aria-label=format!("{}: {reason}", t(lang, key))>
                {t(lang, key)}
            </button>
        }
        .into_any(),
    }
}

#[component]
fn ColumnSettings(selected: Vec<String>) -> impl IntoView {
    let lang = expect_context::<Lang>();
    let me = expect_context::<MeResource>();
    let changes = expect_context::<Changes>();
    let save = ServerAction::<SaveColumns>::new();
    Effect::new(move |_| {
        if let Some(Ok(())) = save.value().get() {
            changes.bump();
        }
    });
    let csrf = move || me.get().and_then(Result::ok).map(|me| me.csrf).unwrap_or_default();
    view! {
        <details class="settings">
            <summary>{t(lang, "packs.settings")}</summary>
            <ActionForm action=save>
                <fieldset>
                    <legend>{t(lang, "packs.settings.hint")}</legend>
                    <input type="hidden" name="csrf" value=csrf />
                    {PackField::ALL.iter().map(|field| {
                        let name = field_name(*field);
                        view! {
                            <label class="check">
                                <input type="checkbox" name=format!("cols[{name}]") value="on" checked=selected.iter().any(|s| s == name) />
                                {field_title(lang, *field)}
                            </label>
                        }
                    }).collect_view()}
                </fieldset>
                <button type="submit">{t(lang, "common.save")}</button>
                {move || save.value().get().and_then(Result::err).map(|error| view! { <ErrorNote error /> })}
            </ActionForm>
        </details>
    }
}

#[component]
fn OperationDialog(operation: String, pack_id: String, query: PacksQuery) -> impl IntoView {
    let lang = expect_context::<Lang>();
    let me = expect_context::<MeResource>();
    let changes = expect_context::<Changes>();
    let periods = RwSignal::new(1u32);
    let quote = {
        let (operation, pack_id) = (operation.clone(), pack_id.clone());
        Resource::new(
            move || periods.get(),
            move |periods| quote_operation(operation.clone(), pack_id.clone(), periods),
        )
    };
    let apply = ServerAction::<ApplyOperation>::new();
    Effect::new(move |_| {
        if let Some(Ok(_)) = apply.value().get() {
            changes.bump();
        }
    });
    let close_href = format!("/packs?{}", query.to_query_string(query.page, &[]));
    let title_key = match operation.as_str() {
        "renew" => "op.renew",
        "set_auto" => "op.set_auto",
        "set_manual" => "op.set_manual",
        "set_not_renew" => "op.set_not_renew",
        "modify_period" => "op.modify_period",
        "refund" => "op.refund",
        "freeze" => "op.freeze",
        "unfreeze" => "op.unfreeze",
        _ => "op.details",
    };
    let takes_periods = matches!(operation.as_str(), "renew" | "set_auto" | "modify_period");
    view! {
        <div class="backdrop">
            <section class="dialog" role="dialog" aria-modal="true" aria-labelledby="dialog-title">
                <h2 id="dialog-title">{t(lang, title_key)}" · "<code>{pack_id.clone()}</code></h2>
                {takes_periods.then(|| view! {
                    <label>
                        {t(lang, "op.periods")}
                        <input type="number" name="periods-input" min="1" max="120" value="1" autofocus=true
                            on:input=move |event| {
                                if let Ok(value) = event_target_value(&event).parse::<u32>() {
                                    periods.set(value.max(1));
                                }
                            } />
                    </label>
                })}
                <Transition fallback=Loading>
                    {move || {
                        let operation = operation.clone();
                        let pack_id = pack_id.clone();
                        Suspend::new(async move {
                            let me = me.await;
                            match (quote.await, me) {
                                (Ok(quote), Ok(me)) => view! {
                                    <QuoteView quote operation pack_id csrf=me.csrf periods=periods.get_untracked() apply />
                                }
                                .into_any(),
                                (Err(error), _) | (_, Err(error)) => view! { <ErrorNote error /> }.into_any(),
                            }
                        })
                    }}
                </Transition>
                {move || apply.value().get().map(|result| match result {
                    Ok(message) => view! { <p class="success" role="status" data-testid="op-result">{message}</p> }.into_any(),
                    Err(error) => view! { <p class="error" role="alert" data-testid="op-error">{error_text(&error)}</p> }.into_any(),
                })}
                <p><a href=close_href class="button secondary">{t(lang, "common.close")}</a></p>
            </section>
        </div>
    }
}

#[component]
fn QuoteView(
    quote: OperationQuote,
    operation: String,
    pack_id: String,
    csrf: String,
    periods: u32,
    apply: ServerAction<ApplyOperation>,
) -> impl IntoView {
    let lang = expect_context::<Lang>();
    let refused = quote.refusal.is_some();
    view! {
        <p>{quote.pack_name.clone()}</p>
        <dl class="quote">
            <dt>{t(lang, "op.current")}</dt><dd>{quote.current_renewal.clone()}</dd>
            <dt>{t(lang, "op.price")}</dt><dd data-testid="quote-price">{quote.price.clone()}</dd>
            <dt>{t(lang, "common.balance")}</dt><dd>{quote.balance.clone()}</dd>
            <dt>{t(lang, "op.balance_after")}</dt><dd data-testid="quote-balance-after">{quote.balance_after.clone()}</dd>
            <dt>{t(lang, "op.new_expiry")}</dt><dd>{quote.new_expires_at.clone()}</dd>
        </dl>
        {quote.refusal.clone().map(|reason| view! {
            <p class="refusal" role="alert" data-testid="refusal"><strong>{t(lang, "op.not_available")}": "</strong>{reason}</p>
        })}
        {quote.warning.clone().map(|warning| view! {
            <p class="notice" role="status" data-testid="quote-warning">{warning}</p>
        })}
        <ActionForm action=apply>
            <input type="hidden" name="csrf" value=csrf />
            <input type="hidden" name="operation" value=operation />
            <input type="hidden" name="pack_id" value=pack_id />
            <input type="hidden" name="periods" value=periods.to_string() />
            <input type="hidden" name="client_token" value=quote.client_token.clone() />
            <button type="submit" disabled=refused>{t(lang, "common.confirm")}</button>
        </ActionForm>
    }
}

/// The server's half: turning packs into rows and carrying out operations.
#[cfg(feature = "ssr")]
pub(crate) mod server_side {
    use std::collections::HashMap;

    use leptos::prelude::ServerFnError;
    use respack_domain::chrono::{NaiveDate, TimeZone};
    use respack_domain::rules;
    use respack_domain::rust_decimal::Decimal;
    use respack_domain::{Pack, PackField, PackStatus, RenewalMethod};
    use respack_store::{PackFilter, PackSort};

    use super::{field_name, parse_field, PacksQuery, PAGE_SIZE};
    use crate::dto::{Choice, OperationQuote, PackRow, PacksPage};
    use crate::i18n;
    use crate::server::{store_error, Caller};

    pub const COLUMNS_PAGE: &str = "packs";

    pub fn decimal(value: Decimal) -> String {
        value.normalize().to_string()
    }

    fn date(
        text: &str,
        caller: &Caller,
    ) -> Result<Option<respack_domain::chrono::DateTime<respack_domain::chrono::Utc>>, ServerFnError> {
        if text.trim().is_empty() {
            return Ok(None);
        }
        let day = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
            .map_err(|_| ServerFnError::new(format!("{text:?} is not a date; use yyyy-mm-dd")))?;
        let local = day.and_hms_opt(0, 0, 0).unwrap_or_default();
        Ok(caller
            .time_zone
            .from_local_datetime(&local)
            .earliest()
            .map(|at| at.with_timezone(&respack_domain::chrono::Utc)))
    }

    pub fn filter(caller: &Caller, query: &PacksQuery) -> Result<PackFilter, ServerFnError> {
        let statuses = if query.status.is_empty() {
            Vec::new()
        } else {
            vec![PackStatus::parse(&query.status)
                .ok_or_else(|| ServerFnError::new(format!("unknown status {:?}", query.status)))?]
        };
        Ok(PackFilter {
            account_ids: caller.scope.clone(),
            product: Some(query.product.clone()).filter(|product| !product.is_empty()),
            subproduct: Some(query.subproduct.clone()).filter(|subproduct| !subproduct.is_empty()),
            search: Some(query.search.trim().to_owned()).filter(|search| !search.is_empty()),
            statuses,
            expires_from: date(&query.expires_from, caller)?,
            expires_to: date(&query.expires_to, caller)?,
            sort: match query.sort.as_str() {
                "expires_asc" => PackSort::ExpiresAsc,
                "expires_desc" => PackSort::ExpiresDesc,
                "name_asc" => PackSort::NameAsc,
                _ => PackSort::PurchasedDesc,
            },
            offset: (query.page.max(1) - 1) * PAGE_SIZE,
            limit: PAGE_SIZE,
            ..PackFilter::default()
        })
    }

    pub async fn columns(caller: &Caller) -> Result<Vec<PackField>, ServerFnError> {
        let saved = caller.store().columns(caller.session.user.id, COLUMNS_PAGE).await.map_err(store_error)?;
        Ok(match saved {
            Some(names) => {
                let fields: Vec<PackField> = names.iter().filter_map(|name| parse_field(name)).collect();
                if fields.is_empty() {
                    PackField::ALL.to_vec()
                } else {
                    fields
                }
            }
            None => PackField::ALL.to_vec(),
        })
    }

    pub struct Names {
        products: HashMap<String, String>,
        subproducts: HashMap<String, String>,
        pub choices: Vec<Choice>,
        /// Every subproduct as (its product's code, the choice "Product / Subproduct").
        pub subproduct_choices: Vec<(String, Choice)>,
    }

    impl Names {
        /// A product's name, or its code when the catalog does not know it.
        pub fn product(&self, code: &str) -> String {
            self.products.get(code).cloned().unwrap_or_else(|| code.to_owned())
        }

        /// A subproduct's name, or its code when the catalog does not know it.
        pub fn subproduct(&self, code: &str) -> String {
            self.subproducts.get(code).cloned().unwrap_or_else(|| code.to_owned())
        }

        /// The types to choose from: the chosen product's subproducts, or all of them.
        pub fn types_of(&self, product: &str) -> Vec<Choice> {
            self.subproduct_choices
                .iter()
                .filter(|(of, _)| product.is_empty() || of == product)
                .map(|(_, choice)| choice.clone())
                .collect()
        }
    }

    pub async fn names(caller: &Caller) -> Result<Names, ServerFnError> {
        let catalog = caller.store().catalog().await.map_err(store_error)?;
        let mut names = Names {
            products: HashMap::new(),
            subproducts: HashMap::new(),
            choices: Vec::new(),
            subproduct_choices: Vec::new(),
        };
        for product in catalog {
            names.choices.push(Choice { value: product.code.clone(), label: product.name.clone() });
            for sub in product.subproducts {
                let label = format!("{} / {}", product.name, sub.name);
                names.subproduct_choices.push((product.code.clone(), Choice { value: sub.code.clone(), label }));
                names.subproducts.insert(sub.code, sub.name);
            }
            names.products.insert(product.code, product.name);
        }
        Ok(names)
    }

    pub async fn load(caller: &Caller, query: &PacksQuery, _all: bool) -> Result<PacksPage, ServerFnError> {
        let filter = filter(caller, query)?;
        let fields = columns(caller).await?;
        let names = names(caller).await?;
        let page = caller.store().list_packs(&filter, caller.now).await.map_err(store_error)?;
        let uins = account_uins(caller).await?;
        let rows = page.items.iter().map(|pack| row(caller, pack, &fields, &names, &uins)).collect();
        Ok(PacksPage {
            columns: fields.iter().map(|field| field_name(*field).to_owned()).collect(),
            rows,
            total: page.total,
            page: query.page.max(1),
            page_size: PAGE_SIZE,
            subproducts: names.types_of(&query.product),
            products: names.choices,
        })
    }

    pub async fn account_uins(caller: &Caller) -> Result<HashMap<i64, String>, ServerFnError> {
        if caller.scope.len() == 1 {
            let account = caller.store().account(caller.scope[0]).await.map_err(store_error)?;
            return Ok(HashMap::from([(account.id, account.uin)]));
        }
        Ok(caller
            .store()
            .accounts()
            .await
            .map_err(store_error)?
            .into_iter()
            .filter(|account| caller.scope.contains(&account.id))
            .map(|account| (account.id, account.uin))
            .collect())
    }

    fn refusal<T>(result: Result<T, rules::RuleViolation>) -> Option<String> {
        result.err().map(|violation| violation.to_string())
    }

    pub fn row(
        caller: &Caller,
        pack: &Pack,
        fields: &[PackField],
        names: &Names,
        uins: &HashMap<i64, String>,
    ) -> PackRow {
        let now = caller.now;
        let cells = fields
            .iter()
            .map(|field| if field.applies_to(pack) { cell(caller, pack, *field, names) } else { None })
            .collect();
        let modify_period = if pack.renewal == RenewalMethod::Auto {
            refusal(rules::check_renewal_setting(pack, now, RenewalMethod::Auto, pack.auto_renew_period))
        } else {
            Some("the pack is not set to renew automatically; choose Set auto-renewal".to_owned())
        };
        let status = pack.status_at(now);
        PackRow {
            id: pack.id.to_string(),
            name: pack.name.clone(),
            account_uin: uins.get(&pack.account_id).cloned().unwrap_or_default(),
            cells,
            renew: refusal(rules::quote_renewal(pack, now, 1)),
            set_auto: refusal(rules::check_renewal_setting(pack, now, RenewalMethod::Auto, None)),
            set_manual: refusal(rules::check_renewal_setting(pack, now, RenewalMethod::Manual, None)),
            set_not_renew: refusal(rules::check_renewal_setting(pack, now, RenewalMethod::NotRenew, None)),
            modify_period,
            refund: refusal(rules::check_refund(pack, now)),
            frozen: pack.frozen,
            live: !matches!(status, PackStatus::Expired | PackStatus::Exhausted | PackStatus::Refunded),
        }
    }

    /// The text of one cell (the field applies to the pack).
    pub fn cell(caller: &Caller, pack: &Pack, field: PackField, names: &Names) -> Option<String> {
        let now = caller.now;
        let items = &pack.items;
        let join = |parts: Vec<String>| Some(parts.join("; "));
        match field {
            PackField::NameAndId => Some(format!("{} / {}", pack.name, pack.id)),
            PackField::Product => Some(names.product(&pack.product)),
            PackField::Subproduct => Some(names.subproduct(&pack.subproduct)),
            PackField::Region => Some(i18n::region_label(caller.lang(), &pack.region)),
            PackField::AvailabilityZone => Some(i18n::zone_label(caller.lang(), &pack.zone)),
            PackField::Status => Some(pack.status_at(now).as_str().to_owned()),
            PackField::PaymentMode => Some(i18n::payment_mode_label(caller.lang(), pack.mode)),
            PackField::CapacityUnit => {
                let mut units: Vec<String> = items.iter().map(|item| item.unit.clone()).collect();
                units.dedup();
                join(units)
            }
            PackField::SinglePeriodCapacity => join(
                items
                    .iter()
                    .map(|item| match (pack.remaining_at(item, now), item.capacity) {
                        (Some(remaining), Some(capacity)) => {
                            format!("{}/{} {}", decimal(remaining), decimal(capacity), item.unit)
                        }
                        _ => "-".to_owned(),
                    })
                    .collect(),
            ),
            PackField::SinglePeriodTime => pack
                .cycle_at(now)
                .map(|cycle| format!("{} ~ {}", caller.time(cycle.start), caller.time(cycle.end)))
                .or(Some("-".to_owned())),
            PackField::Periods => pack.periods_at(now).map(|(remaining, total)| format!("{remaining}/{total}")),
            PackField::TotalCapacity => join(
                items
                    .iter()
                    .map(|item| match pack.total_remaining_at(item, now) {
                        Some((remaining, total)) => format!("{}/{} {}", decimal(remaining), decimal(total), item.unit),
                        None => "-".to_owned(),
                    })
                    .collect(),
            ),
            PackField::ComboCapacity => join(
                items
                    .iter()
                    .map(|item| match (pack.remaining_at(item, now), item.capacity) {
                        (Some(remaining), Some(capacity)) => {
                            format!("{}: {}/{} {}", item.name, decimal(remaining), decimal(capacity), item.unit)
                        }
                        _ => format!("{}: unlimited", item.name),
                    })
                    .collect(),
            ),
            PackField::DeductionAttribute => Some(pack.scope.to_string()),
            PackField::EffectiveExpiration => {
                Some(format!("{} ~ {}", caller.time(pack.effective_at), caller.time(pack.expires_at)))
            }
            PackField::PackageExpiry => {
                Some(pack.package_expired_at.map_or_else(|| "-".to_owned(), |at| caller.time(at)))
            }
            PackField::Renewal => Some(i18n::renewal_label(caller.lang(), pack.renewal).to_owned()),
            PackField::AutoRenewalPeriod => pack
                .auto_renew_period
                .map(|period| format!("{period} {}", i18n::time_unit_label(caller.lang(), pack.term.unit))),
            PackField::Operation => None,
        }
    }

    pub async fn save_columns(caller: &Caller, cols: HashMap<String, String>) -> Result<(), ServerFnError> {
        let chosen: Vec<String> = PackField::ALL
            .iter()
            .map(|field| field_name(*field))
            .filter(|name| cols.get(*name).is_some_and(|value| value == "on"))
            .map(str::to_owned)
            .collect();
        if chosen.is_empty() {
            return Err(ServerFnError::new("choose at least one column to display"));
        }
        let user = &caller.session.user;
        caller
            .store()
            .set_columns(user.account_id, user.id, COLUMNS_PAGE, &chosen, caller.now)
            .await
            .map_err(store_error)
    }

    fn scope(caller: &Caller) -> Option<&[i64]> {
        Some(caller.scope.as_slice())
    }

    pub async fn quote(
        caller: &Caller,
        operation: &str,
        pack_id: &str,
        periods: u32,
    ) -> Result<OperationQuote, ServerFnError> {
        let pack = caller.store().pack(scope(caller), pack_id).await.map_err(store_error)?;
        let account = caller.store().account(pack.account_id).await.map_err(store_error)?;
        let now = caller.now;
        let balance = account.balance;
        let zero = respack_domain::Money::default();
        let mut quote = OperationQuote {
            pack_id: pack.id.to_string(),
            pack_name: pack.name.clone(),
            operation: operation.to_owned(),
            refusal: None,
            warning: None,
            price: zero.to_string(),
            balance: balance.to_string(),
            balance_after: balance.to_string(),
            new_expires_at: caller.time(pack.expires_at),
            current_renewal: match pack.auto_renew_period {
                Some(period) if pack.renewal == RenewalMethod::Auto => format!(
                    "{} ({period} {})",
                    i18n::renewal_label(caller.lang(), pack.renewal),
                    i18n::time_unit_label(caller.lang(), pack.term.unit)
                ),
                _ => i18n::renewal_label(caller.lang(), pack.renewal).to_owned(),
            },
            current_period: pack.auto_renew_period,
            period_unit: i18n::time_unit_label(caller.lang(), pack.term.unit).to_owned(),
            max_periods: respack_domain::pack::max_term_count(pack.term.unit),
            client_token: uuid::Uuid::new_v4().to_string(),
        };
        let price_and_after = |quote: &mut OperationQuote, price: respack_domain::Money| {
            quote.price = price.to_string();
            match rules::charge(balance, price, account.allow_arrears) {
                Ok(after) => quote.balance_after = after.to_string(),
                Err(violation) => {
                    quote.balance_after = (balance - price).to_string();
                    quote.refusal = Some(violation.to_string());
                }
            }
        };
        match operation {
            "renew" => match rules::quote_renewal(&pack, now, periods) {
                Ok(renewal) => {
                    quote.new_expires_at = caller.time(renewal.new_expires_at);
                    price_and_after(&mut quote, renewal.price);
                }
                Err(violation) => quote.refusal = Some(violation.to_string()),
            },
            "set_auto" | "modify_period" => {
                if operation == "modify_period" && pack.renewal != RenewalMethod::Auto {
                    quote.refusal = Some("the pack is not set to renew automatically; choose Set auto-renewal".into());
                } else {
                    match rules::check_renewal_setting(&pack, now, RenewalMethod::Auto, Some(periods)) {
                        // Nothing is charged now; the price is that of each automatic renewal,
                        // paid from the balance at expiration — today's balance only informs.
                        Ok(_) => {
                            let price = pack.unit_price * periods;
                            quote.price = price.to_string();
                            quote.balance_after = (balance - price).to_string();
                            if rules::charge(balance, price, account.allow_arrears).is_err() {
                                quote.warning = Some(format!(
                                    "Nothing is charged now. Each automatic renewal costs {price}, more than \
                                     today's balance of {balance}: top up before the pack expires, or it will \
                                     expire instead of renewing."
                                ));
                            }
                        }
                        Err(violation) => quote.refusal = Some(violation.to_string()),
                    }
                }
            }
            "set_manual" | "set_not_renew" => {
                let method = if operation == "set_manual" { RenewalMethod::Manual } else { RenewalMethod::NotRenew };
                quote.refusal = refusal(rules::check_renewal_setting(&pack, now, method, None));
            }
            "refund" => match rules::check_refund(&pack, now) {
                Ok(amount) => {
                    quote.price = (zero - amount).to_string();
                    quote.balance_after = (balance + amount).to_string();
                }
                Err(violation) => quote.refusal = Some(violation.to_string()),
            },
            "freeze" | "unfreeze" => {
                caller.require_operator()?;
                quote.refusal = refusal(rules::check_freeze(&pack, now, operation == "freeze"));
            }
            other => return Err(ServerFnError::new(format!("unknown operation {other:?}"))),
        }
        Ok(quote)
    }

    pub async fn apply(
        caller: &Caller,
        operation: &str,
        pack_id: &str,
        periods: u32,
        client_token: &str,
    ) -> Result<String, ServerFnError> {
        let store = caller.store();
        let actor = caller.actor();
        let now = caller.now;
        let scope = scope(caller);
        let token = Some(client_token).filter(|token| !token.is_empty());
        let message = match operation {
            "renew" => {
                let receipt = store.renew(scope, pack_id, periods, token, &actor, now).await.map_err(store_error)?;
                format!(
                    "Renewed {} for {} {}: paid {}, balance now {}, valid until {}.",
                    receipt.pack_id,
                    receipt.periods,
                    "period(s)",
                    receipt.price,
                    receipt.balance_after,
                    caller.time(receipt.expires_at)
                )
            }
            "set_auto" | "modify_period" => {
                if operation == "modify_period" {
                    let pack = store.pack(scope, pack_id).await.map_err(store_error)?;
                    if pack.renewal != RenewalMethod::Auto {
                        return Err(ServerFnError::new(
                            "the pack is not set to renew automatically; choose Set auto-renewal",
                        ));
                    }
                }
                let pack = store
                    .set_renewal(scope, pack_id, RenewalMethod::Auto, Some(periods), &actor, now)
                    .await
                    .map_err(store_error)?;
                format!("{} now renews automatically every {periods} {}.", pack.id, pack.term.unit.as_str())
            }
            "set_manual" | "set_not_renew" => {
                let method = if operation == "set_manual" { RenewalMethod::Manual } else { RenewalMethod::NotRenew };
                let pack = store.set_renewal(scope, pack_id, method, None, &actor, now).await.map_err(store_error)?;
                format!("{}: {}.", pack.id, pack.renewal.label())
            }
            "refund" => {
                let receipt = store.refund(scope, pack_id, token, &actor, now).await.map_err(store_error)?;
                format!("Refunded {}: {} back, balance now {}.", receipt.pack_id, receipt.amount, receipt.balance_after)
            }
            "freeze" | "unfreeze" => {
                caller.require_operator()?;
                let pack =
                    store.set_frozen(scope, pack_id, operation == "freeze", &actor, now).await.map_err(store_error)?;
                format!("{} is {}.", pack.id, if pack.frozen { "frozen" } else { "no longer frozen" })
            }
            other => return Err(ServerFnError::new(format!("unknown operation {other:?}"))),
        };
        Ok(message)
    }
}
