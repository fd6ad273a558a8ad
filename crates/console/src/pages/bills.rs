//! Bills: the month's figures summed per resource (what `DescribeBillResourceSummary` reports),
//! with a CSV download.

use leptos::prelude::*;

use crate::app::{Empty, ErrorNote, Loading};
use crate::dto::BillsPage as BillsData;
use crate::i18n::{t, Lang};

#[leptos::server(endpoint = "bill_summary")]
pub async fn bill_summary(month: String) -> Result<BillsData, ServerFnError> {
    let caller = crate::server::caller().await?;
    server_side::load(&caller, Some(&month)).await
}

#[component]
pub fn BillsPage() -> impl IntoView {
    let lang = expect_context::<Lang>();
    let month = super::query_param("month");
    let data = Resource::new(move || month.get(), bill_summary);
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

#[component]
fn BillsView(data: BillsData) -> impl IntoView {
    let lang = expect_context::<Lang>();
    let csv = format!("/bills.csv?month={}", data.month);
    view! {
        <form method="get" action="/bills" class="filters">
            <label>{t(lang, "bills.month")}<input type="month" name="month" value=data.month.clone() /></label>
            <button type="submit">{t(lang, "common.search")}</button>
            <a class="button secondary" href=csv download=format!("bills-{}.csv", data.month)>{t(lang, "common.download")}</a>
        </form>
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
                            <th scope="col">{t(lang, "bills.actions")}</th>
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
                                    <td>{row.pay_mode.clone()}</td>
                                    <td>{row.action_types.clone()}</td>
                                    <td class="num">{row.total_cost.clone()}</td>
                                    <td class="num">{row.cash_paid.clone()}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                        <tfoot><tr><th scope="row" colspan="6">{t(lang, "common.total")}</th><td class="num">{data.total_cost.clone()}</td><td></td></tr></tfoot>
                    </table>
                </div>
            }
            .into_any()
        }}
    }
}

#[cfg(feature = "ssr")]
pub(crate) mod server_side {
    use leptos::prelude::ServerFnError;
    use respack_domain::Money;

    use crate::dto::{BillSummaryRow, BillsPage};
    use crate::server::{store_error, Caller};

    /// The month asked for (`yyyy-mm`), or the caller's current month.
    pub fn month(caller: &Caller, month: Option<&str>) -> Result<String, ServerFnError> {
        match month.map(str::trim).filter(|month| !month.is_empty()) {
            Some(month) => {
                let valid = month.len() == 7
                    && month.as_bytes()[4] == b'-'
                    && month[..4].parse::<u16>().is_ok()
                    && month[5..].parse::<u8>().is_ok_and(|m| (1..=12).contains(&m));
                if valid {
                    Ok(month.to_owned())
                } else {
                    Err(ServerFnError::new(format!("{month:?} is not a month; use yyyy-mm")))
                }
            }
            None => Ok(caller.now.with_timezone(&caller.time_zone).format("%Y-%m").to_string()),
        }
    }

    /// The caller's own account's month (bills belong to the paying account).
    pub async fn load(caller: &Caller, month: Option<&str>) -> Result<BillsPage, ServerFnError> {
        let month = self::month(caller, month)?;
        let summaries =
            caller.store().bill_resource_summary(caller.session.user.account_id, &month).await.map_err(store_error)?;
        let total = summaries.iter().fold(Money::default(), |sum, row| sum + row.total_cost);
        Ok(BillsPage {
            month,
            total_cost: total.to_string(),
            rows: summaries
                .into_iter()
                .map(|row| BillSummaryRow {
                    resource_id: row.resource_id,
                    resource_name: row.resource_name,
                    product: row.business_code,
                    subproduct: row.product_code,
                    region: row.region,
                    pay_mode: row.pay_mode.label().to_owned(),
                    action_types: row.action_types.iter().map(|action| action.as_str()).collect::<Vec<_>>().join(", "),
                    total_cost: row.total_cost.to_string(),
                    cash_paid: row.cash_pay_amount.to_string(),
                })
                .collect(),
        })
    }
}
