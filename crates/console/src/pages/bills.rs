//! Bills: the month's bill summary per resource and ActionType — the rows
//! `DescribeBillResourceSummary` serves, read by the same store query from the same built
//! summary (`Store::bill_summaries`) — by payment month or by usage month (the API's
//! `PeriodType`), with the month's totals and a CSV download.

use leptos::prelude::*;

use crate::app::{Empty, ErrorNote, Loading};
use crate::dto::BillsPage as BillsData;
use crate::i18n::{action_type_label, pay_mode_label, t, Lang};

#[leptos::server(endpoint = "bill_summary")]
pub async fn bill_summary(month: String, period: String, page: u64) -> Result<BillsData, ServerFnError> {
    let caller = crate::server::caller().await?;
    server_side::load(&caller, Some(&month), Some(&period), page).await
}

#[component]
pub fn BillsPage() -> impl IntoView {
    let lang = expect_context::<Lang>();
    let month = super::query_param("month");
    let period = super::query_param("period");
    let page = super::query_param("page");
    let data = Resource::new(
        move || (month.get(), period.get(), page.get().parse::<u64>().unwrap_or(1)),
        |(month, period, page)| bill_summary(month, period, page),
    );
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
    let csv = format!("/bills.csv?month={}&period={}", data.month, data.period);
    let pages = data.total.div_ceil(data.page_size.max(1)).max(1);
    let page_href = |page: u64| format!("/bills?month={}&period={}&page={page}", data.month, data.period);
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
            <button type="submit">{t(lang, "common.search")}</button>
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
                                    <td>{row.product.clone()}</td>
                                    <td>{row.subproduct.clone()}</td>
                                    <td>{row.region.clone()}</td>
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
    use respack_store::{BillSummaryFilter, PeriodType, SummaryState, MAX_SUMMARY_PAGE};

    use crate::dto::{BillSummaryRow, BillsPage};
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

    /// The caller's own account's month (bills belong to the paying account) under a period
    /// type, page `page` (from 1) of the summary `DescribeBillResourceSummary` serves. A month
    /// never built is built first, as the API would.
    pub async fn load(
        caller: &Caller,
        month: Option<&str>,
        period: Option<&str>,
        page: u64,
    ) -> Result<BillsPage, ServerFnError> {
        let month = self::month(caller, month)?;
        let period_type = self::period(period)?;
        let page = page.max(1);
        let account_id = caller.session.user.account_id;
        let store = caller.store();
        let built_at = match store.readable_bill_summary(&month, caller.now).await.map_err(store_error)? {
            SummaryState::Ready { built_at, .. } => Some(caller.time(built_at)),
            SummaryState::Building | SummaryState::NotBuilt => None,
        };
        let totals = store.bill_summary_totals(account_id, &month, period_type).await.map_err(store_error)?;
        let rows = if built_at.is_some() {
            rows(caller, &month, period_type, (page - 1).saturating_mul(PAGE_SIZE), PAGE_SIZE).await?
        } else {
            Vec::new()
        };
        Ok(BillsPage {
            month,
            period: period_type.as_str().to_owned(),
            rows,
            total: totals.rows,
            total_cost: totals.total_cost.to_string(),
            cash_paid: totals.cash_pay_amount.to_string(),
            page,
            page_size: PAGE_SIZE,
            built_at,
        })
    }

    /// Up to `limit` rows of the caller's summary of `month` under `period_type` from `offset`,
    /// through the API's own query.
    pub async fn rows(
        caller: &Caller,
        month: &str,
        period_type: PeriodType,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<BillSummaryRow>, ServerFnError> {
        let filter = BillSummaryFilter {
            account_id: caller.session.user.account_id,
            month: month.to_owned(),
            period_type,
            offset,
            limit: limit.min(MAX_SUMMARY_PAGE),
            ..Default::default()
        };
        let page = caller.store().bill_summaries(&filter).await.map_err(store_error)?;
        Ok(page
            .rows
            .into_iter()
            .map(|row| BillSummaryRow {
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
