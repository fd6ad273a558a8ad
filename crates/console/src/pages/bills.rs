//! Bills: the month's bill summary per resource and ActionType — the rows
//! `DescribeBillResourceSummary` serves, read by the same store query from the same built
//! summary (`Store::bill_summaries`) — by payment month or by usage month (the API's
//! `PeriodType`), filtered by transaction type, billing mode, product, resource and tag as the
//! API is, with the selected rows' totals and a CSV download.

use leptos::prelude::*;

use crate::app::{Empty, ErrorNote, Loading};
use respack_domain::{BillActionType, PayMode};

use super::ChoiceFilter;
use crate::dto::{BillsPage as BillsData, Choice};
use crate::i18n::{action_type_label, pay_mode_label, region_label, t, Lang};

/// The page's month, period type, filters and page, as they appear in its URL (and the CSV
/// link's); empty texts mean "the default" (the current month, by payment month) or "any".
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct BillsQuery {
    /// `yyyy-mm`.
    pub month: String,
    /// `byPayTime` or `byUsedTime`.
    pub period: String,
    /// The API's ActionType text, e.g. `Daily settlement`.
    pub action: String,
    /// `prePay` or `postPay`.
    pub pay_mode: String,
    /// Product code (the API's BusinessCode).
    pub product: String,
    /// A resource (pack) ID.
    pub resource: String,
    pub tag_key: String,
    pub tag_value: String,
    pub page: u64,
}

impl BillsQuery {
    fn from_url() -> Memo<BillsQuery> {
        let query = leptos_router::hooks::use_query_map();
        Memo::new(move |_| {
            query.with(|map| {
                let text = |key: &str| map.get(key).unwrap_or_default();
                BillsQuery {
                    month: text("month"),
                    period: text("period"),
                    action: text("action"),
                    pay_mode: text("pay_mode"),
                    product: text("product"),
                    resource: text("resource"),
                    tag_key: text("tag_key"),
                    tag_value: text("tag_value"),
                    page: text("page").parse().unwrap_or(1),
                }
            })
        })
    }

    /// The URL query of this month, period type and these filters with `page` (none when 0) —
    /// no `?`.
    pub fn to_query_string(&self, page: u64) -> String {
        let page = if page > 1 { page.to_string() } else { String::new() };
        [
            ("month", &self.month),
            ("period", &self.period),
            ("action", &self.action),
            ("pay_mode", &self.pay_mode),
            ("product", &self.product),
            ("resource", &self.resource),
            ("tag_key", &self.tag_key),
            ("tag_value", &self.tag_value),
            ("page", &page),
        ]
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(key, value)| format!("{key}={}", super::packs::url_encode(value)))
        .collect::<Vec<_>>()
        .join("&")
    }
}

#[leptos::server(endpoint = "bill_summary")]
pub async fn bill_summary(query: BillsQuery) -> Result<BillsData, ServerFnError> {
    let caller = crate::server::caller().await?;
    server_side::load(&caller, &query).await
}

#[component]
pub fn BillsPage() -> impl IntoView {
    let lang = expect_context::<Lang>();
    let query = BillsQuery::from_url();
    let data = Resource::new(move || query.get(), bill_summary);
    view! {
        <h1>{t(lang, "nav.bills")}</h1>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(data) => view! { <BillsView data /> }.into_any(),
                    Err(error) => view! { <ErrorNote error /> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// The API's `PeriodType` values, each with its label's text key; the first is the default.
const PERIODS: [(&str, &str); 2] = [("byPayTime", "bills.by_pay_time"), ("byUsedTime", "bills.by_used_time")];

/// `bills-2026-11.csv` by payment month, `bills-2026-11-byUsedTime.csv` by usage month.
pub fn csv_file_name(month: &str, period: &str) -> String {
    if period == PERIODS[0].0 {
        format!("bills-{month}.csv")
    } else {
        format!("bills-{month}-{period}.csv")
    }
}

#[component]
fn BillsView(data: BillsData) -> impl IntoView {
    let lang = expect_context::<Lang>();
    // The month and period type as the server settled them, with the filters asked for.
    let query = BillsQuery { month: data.month.clone(), period: data.period.clone(), ..data.query.clone() };
    let csv = format!("/bills.csv?{}", query.to_query_string(0));
    let pages = data.total.div_ceil(data.page_size.max(1)).max(1);
    let page_href = |page: u64| format!("/bills?{}", query.to_query_string(page));
    let action_choices = BillActionType::ALL
        .iter()
        .map(|action| Choice { value: action.as_str().into(), label: action_type_label(lang, action.as_str()).into() })
        .collect();
    let pay_mode_choices = [PayMode::PrePay, PayMode::PostPay]
        .iter()
        .map(|mode| Choice { value: mode.as_str().into(), label: pay_mode_label(lang, mode.label()).into() })
        .collect();
    let prev = (data.page > 1).then(|| page_href(data.page - 1));
    let next = (data.page < pages).then(|| page_href(data.page + 1));
    let status = match &data.built_at {
        Some(at) => {
            view! { <p class="muted" data-testid="bill-built-at">{t(lang, "bills.built_at")}" "{at.clone()}</p> }
                .into_any()
        }
        None => view! { <p class="notice" role="status">{t(lang, "bills.building")}</p> }.into_any(),
    };
    view! {
        <form method="get" action="/bills" class="filters">
            <label>{t(lang, "bills.month")}<input type="month" name="month" value=data.month.clone() /></label>
            <label>
                {t(lang, "bills.period")}
                <select name="period">
                    {PERIODS.iter().map(|&(value, label)| view! {
                        <option value=value selected=value == data.period>{t(lang, label)}</option>
                    }).collect_view()}
                </select>
            </label>
            <ChoiceFilter label="bills.action" name="action" all="bills.all"
                choices=action_choices selected=query.action.clone() />
            <ChoiceFilter label="bills.pay_mode" name="pay_mode" all="bills.all"
                choices=pay_mode_choices selected=query.pay_mode.clone() />
            <ChoiceFilter label="packs.product" name="product" all="packs.all_products"
                choices=data.products.clone() selected=query.product.clone() />
            <label>{t(lang, "bills.resource_id")}<input type="search" name="resource" value=query.resource.clone() /></label>
            <label>{t(lang, "bills.tag_key")}<input type="text" name="tag_key" value=query.tag_key.clone() /></label>
            <label>{t(lang, "bills.tag_value")}<input type="text" name="tag_value" value=query.tag_value.clone() /></label>
            <button type="submit">{t(lang, "common.search")}</button>
            <a href="/bills" class="button secondary">{t(lang, "common.reset")}</a>
            <a class="button secondary" href=csv download=csv_file_name(&data.month, &data.period)>{t(lang, "common.download")}</a>
        </form>
        {status}
        {if data.rows.is_empty() {
            view! { <Empty /> }.into_any()
        } else {
            view! {
                <div class="table-wrap">
                    <table data-testid="bill-summary">
                        <thead><tr>
                            <th scope="col">{t(lang, "bills.resource")}</th>
                            <th scope="col">{t(lang, "packs.product")}</th>
                            <th scope="col">{t(lang, "bills.subproduct")}</th>
                            <th scope="col">{t(lang, "bills.region")}</th>
                            <th scope="col">{t(lang, "bills.pay_mode")}</th>
                            <th scope="col">{t(lang, "bills.action")}</th>
                            <th scope="col">{t(lang, "bills.total_cost")}</th>
                            <th scope="col">{t(lang, "bills.cash")}</th>
                        </tr></thead>
                        <tbody>
                            {data.rows.iter().map(|row| view! {
                                <tr>
                                    <td>{row.resource_name.clone()}<br /><code>{row.resource_id.clone()}</code></td>
                                    <td title=row.product.clone()>{row.product_name.clone()}</td>
                                    <td title=row.subproduct.clone()>{row.subproduct_name.clone()}</td>
                                    <td>{region_label(lang, &row.region)}</td>
                                    <td>{pay_mode_label(lang, &row.pay_mode).to_owned()}</td>
                                    <td>{action_type_label(lang, &row.action_type).to_owned()}</td>
                                    <td class="num">{row.total_cost.clone()}</td>
                                    <td class="num">{row.cash_paid.clone()}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                        <tfoot><tr>
                            <th scope="row" colspan="6">{t(lang, "common.total")}" ("{data.total}")"</th>
                            <td class="num" data-testid="bill-total-cost">{data.total_cost.clone()}</td>
                            <td class="num">{data.cash_paid.clone()}</td>
                        </tr></tfoot>
                    </table>
                </div>
                <nav class="pager" aria-label="pages">
                    {prev.map(|href| view! { <a href=href rel="prev">{t(lang, "common.previous")}</a> })}
                    <span>{data.page}" / "{pages}</span>
                    {next.map(|href| view! { <a href=href rel="next">{t(lang, "common.next")}</a> })}
                </nav>
            }
            .into_any()
        }}
    }
}

#[cfg(feature = "ssr")]
pub(crate) mod server_side {
    use leptos::prelude::ServerFnError;
    use respack_domain::{BillActionType, PayMode};
    use respack_store::{BillSummaryFilter, PeriodType, SummaryState, MAX_SUMMARY_PAGE};

    use super::BillsQuery;

    use crate::dto::{BillSummaryRow, BillsPage};
    use crate::pages::packs::server_side::{names, Names};
    use crate::server::{store_error, Caller};

    /// Rows on one page of the Bills table.
    pub const PAGE_SIZE: u64 = 100;

    /// The month asked for (`yyyy-mm`), or the caller's current month.
    pub fn month(caller: &Caller, month: Option<&str>) -> Result<String, ServerFnError> {
        match month.map(str::trim).filter(|month| !month.is_empty()) {
            Some(month) => {
                respack_store::check_month(month).map_err(store_error)?;
                Ok(month.to_owned())
            }
            None => Ok(caller.now.with_timezone(&caller.time_zone).format("%Y-%m").to_string()),
        }
    }

    /// The period type asked for (the API's `PeriodType` spelling), by payment month when
    /// none is given.
    pub fn period(period: Option<&str>) -> Result<PeriodType, ServerFnError> {
        match period.map(str::trim).filter(|period| !period.is_empty()) {
            None => Ok(PeriodType::default()),
            Some(text) => PeriodType::parse(text).ok_or_else(|| {
                ServerFnError::new(format!(
                    "unknown period type {text:?}: use byPayTime (by payment month) or byUsedTime (by usage month)"
                ))
            }),
        }
    }

    /// The summary query of `query` for the caller's own account (bills belong to the paying
    /// account): its month (default: the caller's current one), period type and filters, each
    /// refused with what to use instead when it is no valid value; no page.
    pub fn filter(caller: &Caller, query: &BillsQuery) -> Result<BillSummaryFilter, ServerFnError> {
        let text = |value: &str| Some(value.trim().to_owned()).filter(|value| !value.is_empty());
        let action_type = text(&query.action)
            .map(|action| {
                BillActionType::parse(&action).ok_or_else(|| {
                    ServerFnError::new(format!(
                        "unknown transaction type {action:?}; choose one of the list, e.g. \"Daily settlement\""
                    ))
                })
            })
            .transpose()?;
        let pay_mode = text(&query.pay_mode)
            .map(|mode| {
                PayMode::parse(&mode)
                    .ok_or_else(|| ServerFnError::new(format!("unknown billing mode {mode:?}: use prePay or postPay")))
            })
            .transpose()?;
        let tag_key = text(&query.tag_key);
        let tag_value = text(&query.tag_value);
        if tag_value.is_some() && tag_key.is_none() {
            return Err(ServerFnError::new("a tag value needs its tag key"));
        }
        Ok(BillSummaryFilter {
            account_id: caller.session.user.account_id,
            month: month(caller, Some(&query.month))?,
            period_type: period(Some(&query.period))?,
            action_type,
            resource_id: text(&query.resource),
            pay_mode,
            business_code: text(&query.product),
            tag_key,
            tag_value,
            ..Default::default()
        })
    }

    /// When the month's summary was built, in the caller's time zone; `None` while its first
    /// build is under way. A month never built is built now, as the API would.
    pub async fn built_at(caller: &Caller, month: &str) -> Result<Option<String>, ServerFnError> {
        Ok(match caller.store().readable_bill_summary(month, caller.now).await.map_err(store_error)? {
            SummaryState::Ready { built_at, .. } => Some(caller.time(built_at)),
            SummaryState::Building | SummaryState::NotBuilt => None,
        })
    }

    /// Page `query.page` (from 1) of the caller's summary that `query` selects, the rows
    /// `DescribeBillResourceSummary` serves, and their totals.
    pub async fn load(caller: &Caller, query: &BillsQuery) -> Result<BillsPage, ServerFnError> {
        let filter = filter(caller, query)?;
        let page = query.page.max(1);
        let built_at = built_at(caller, &filter.month).await?;
        let totals = caller.store().bill_summary_totals(&filter).await.map_err(store_error)?;
        let names = names(caller).await?;
        let rows = if built_at.is_some() {
            rows(caller, &filter, &names, (page - 1).saturating_mul(PAGE_SIZE), PAGE_SIZE).await?
        } else {
            Vec::new()
        };
        Ok(BillsPage {
            month: filter.month.clone(),
            period: filter.period_type.as_str().to_owned(),
            query: query.clone(),
            products: names.choices,
            rows,
            total: totals.rows,
            total_cost: totals.total_cost.to_string(),
            cash_paid: totals.cash_pay_amount.to_string(),
            page,
            page_size: PAGE_SIZE,
            built_at,
        })
    }

    /// Up to `limit` rows of the summary `filter` selects from `offset`, through the API's own
    /// query, with the catalog's names.
    pub async fn rows(
        caller: &Caller,
        filter: &BillSummaryFilter,
        names: &Names,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<BillSummaryRow>, ServerFnError> {
        let filter = BillSummaryFilter { offset, limit: limit.min(MAX_SUMMARY_PAGE), ..filter.clone() };
        let page = caller.store().bill_summaries(&filter).await.map_err(store_error)?;
        Ok(page
            .rows
            .into_iter()
            .map(|row| BillSummaryRow {
                product_name: names.product(&row.business_code),
                subproduct_name: names.subproduct(&row.product_code),
                resource_id: row.resource_id,
                resource_name: row.resource_name,
                product: row.business_code,
                subproduct: row.product_code,
                region: row.region,
                pay_mode: row.pay_mode.label().to_owned(),
                action_type: row.action_type.as_str().to_owned(),
                total_cost: row.total_cost.to_string(),
                cash_paid: row.cash_pay_amount.to_string(),
            })
            .collect())
    }
}
