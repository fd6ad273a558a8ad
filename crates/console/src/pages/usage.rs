//! Usage details (seed: MPS resource packs): deductions filtered by pack ID, usage type and time
//! range with the remaining before and after, and the daily totals per usage type as a table
//! and as an SVG bar chart drawn on the server.

use leptos::prelude::*;

use crate::app::{Empty, ErrorNote, Loading};
use crate::dto::{DeductionLine, UsagePage as UsageData};
use crate::i18n::{t, Lang};
use crate::pages::packs::url_encode;

#[cfg(feature = "ssr")]
pub const PAGE_SIZE: u64 = 50;

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct UsageQuery {
    pub pack: String,
    /// Subproduct code: the packs of one type (e.g. TSC transcoding).
    pub subproduct: String,
    pub usage_type: String,
    /// `yyyy-mm-dd`, inclusive; default 30 days ago.
    pub from: String,
    /// `yyyy-mm-dd`, inclusive; default today.
    pub to: String,
    pub page: u64,
}

#[leptos::server(endpoint = "usage_details")]
pub async fn usage_details(query: UsageQuery) -> Result<UsageData, ServerFnError> {
    let caller = crate::server::caller().await?;
    server_side::load(&caller, &query).await
}

#[component]
pub fn UsagePage() -> impl IntoView {
    let lang = expect_context::<Lang>();
    let pack = super::query_param("pack");
    let subproduct = super::query_param("subproduct");
    let usage_type = super::query_param("usage_type");
    let from = super::query_param("from");
    let to = super::query_param("to");
    let page = super::query_param("page");
    let query = Memo::new(move |_| UsageQuery {
        pack: pack.get(),
        subproduct: subproduct.get(),
        usage_type: usage_type.get(),
        from: from.get(),
        to: to.get(),
        page: page.get().parse().unwrap_or(1).max(1),
    });
    let data = Resource::new(move || query.get(), usage_details);
    view! {
        <h1>{t(lang, "nav.usage")}</h1>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(data) => view! { <UsageView data query=query.get_untracked() /> }.into_any(),
                    Err(error) => view! { <ErrorNote error /> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn UsageView(data: UsageData, query: UsageQuery) -> impl IntoView {
    let lang = expect_context::<Lang>();
    let pages = data.total.div_ceil(data.page_size).max(1);
    let link = |page: u64| {
        format!(
            "/usage?pack={}&subproduct={}&usage_type={}&from={}&to={}&page={page}",
            url_encode(&query.pack),
            url_encode(&query.subproduct),
            url_encode(&query.usage_type),
            url_encode(&query.from),
            url_encode(&query.to)
        )
    };
    let prev = (data.page > 1).then(|| link(data.page - 1));
    let next = (data.page < pages).then(|| link(data.page + 1));
    view! {
        <form method="get" action="/usage" class="filters" role="search">
            <label>{t(lang, "usage.pack")}<input type="search" name="pack" value=query.pack.clone() /></label>
            <super::ChoiceFilter label="usage.subproduct" name="subproduct" all="packs.all_types"
                choices=data.types.clone() selected=query.subproduct.clone() />
            <label>
                {t(lang, "usage.type")}
                <select name="usage_type">
                    <option value="" selected=query.usage_type.is_empty()>{t(lang, "usage.all_types")}</option>
                    {data.usage_types.iter().map(|kind| view! {
                        <option value=kind.clone() selected=*kind == query.usage_type>{kind.clone()}</option>
                    }).collect_view()}
                </select>
            </label>
            <label>{t(lang, "common.from")}<input type="date" name="from" value=query.from.clone() /></label>
            <label>{t(lang, "common.to")}<input type="date" name="to" value=query.to.clone() /></label>
            <button type="submit">{t(lang, "common.search")}</button>
        </form>
        <h2>{t(lang, "usage.daily")}</h2>
        <figure class="chart" data-testid="usage-chart">
            <div inner_html=data.chart_svg.clone()></div>
            <figcaption>{t(lang, "usage.chart")}</figcaption>
        </figure>
        {if data.daily.is_empty() {
            view! { <Empty /> }.into_any()
        } else {
            view! {
                <div class="table-wrap">
                    <table data-testid="daily-totals">
                        <thead><tr>
                            <th scope="col">{t(lang, "usage.day")}</th>
                            <th scope="col">{t(lang, "usage.type")}</th>
                            <th scope="col">{t(lang, "common.total")}</th>
                        </tr></thead>
                        <tbody>
                            {data.daily.iter().map(|row| view! {
                                <tr><td>{row.day.clone()}</td><td>{row.usage_type.clone()}</td><td>{row.total.clone()}" "{row.unit.clone()}</td></tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                </div>
            }
            .into_any()
        }}
        <h2>{t(lang, "detail.deductions")}" ("{data.total}")"</h2>
        <DeductionTable rows=data.deductions.clone() />
        <nav class="pager" aria-label="pages">
            {prev.map(|href| view! { <a href=href rel="prev">{t(lang, "common.previous")}</a> })}
            <span>{t(lang, "common.page")}" "{data.page}" "{t(lang, "common.of")}" "{pages}</span>
            {next.map(|href| view! { <a href=href rel="next">{t(lang, "common.next")}</a> })}
        </nav>
    }
}

/// Deductions with their before and after (shared with the pack detail page).
#[component]
pub fn DeductionTable(rows: Vec<DeductionLine>) -> impl IntoView {
    let lang = expect_context::<Lang>();
    if rows.is_empty() {
        return view! { <Empty /> }.into_any();
    }
    view! {
        <div class="table-wrap">
            <table data-testid="deductions">
                <thead><tr>
                    <th scope="col">{t(lang, "usage.time")}</th>
                    <th scope="col">{t(lang, "usage.pack")}</th>
                    <th scope="col">{t(lang, "usage.subproduct")}</th>
                    <th scope="col">{t(lang, "usage.type")}</th>
                    <th scope="col">{t(lang, "usage.amount")}</th>
                    <th scope="col">{t(lang, "usage.before")}</th>
                    <th scope="col">{t(lang, "usage.after")}</th>
                </tr></thead>
                <tbody>
                    {rows.into_iter().map(|row| view! {
                        <tr>
                            <td>{row.time}</td>
                            <td><a href=format!("/packs/{}", row.pack_id)>{row.pack_id.clone()}</a><br /><span class="muted">{row.pack_name}</span></td>
                            <td>{row.subproduct}</td>
                            <td>{row.usage_type}</td>
                            <td>{row.amount}" "{row.unit}</td>
                            <td>{row.before}</td>
                            <td>{row.after}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}

#[cfg(feature = "ssr")]
pub(crate) mod server_side {
    use std::collections::{BTreeMap, BTreeSet, HashMap};

    use leptos::prelude::ServerFnError;
    use respack_domain::chrono::{Duration, NaiveDate, TimeZone, Utc};
    use respack_domain::rust_decimal::Decimal;
    use respack_domain::{CapacityItem, Pack};
    use respack_store::{DeductionFilter, DeductionRow};

    use super::{UsageQuery, PAGE_SIZE};
    use crate::dto::{DailyTotal, DeductionLine, UsagePage};
    use crate::pages::packs::server_side::decimal;
    use crate::server::{store_error, Caller};

    pub fn line(
        caller: &Caller,
        row: &DeductionRow,
        pack_name: &str,
        subproduct: &str,
        items: &[CapacityItem],
    ) -> DeductionLine {
        let item = usize::try_from(row.item_position).ok().and_then(|position| items.get(position));
        DeductionLine {
            time: caller.time(row.deducted_at),
            pack_id: row.pack_id.clone(),
            pack_name: pack_name.to_owned(),
            subproduct: subproduct.to_owned(),
            usage_type: row.usage_type.clone().unwrap_or_else(|| "-".to_owned()),
            amount: decimal(row.amount),
            before: row.before.map_or_else(|| "-".to_owned(), decimal),
            after: row.after.map_or_else(|| "-".to_owned(), decimal),
            unit: item.map(|item| item.unit.clone()).unwrap_or_default(),
        }
    }

    fn day(text: &str) -> Result<Option<NaiveDate>, ServerFnError> {
        if text.trim().is_empty() {
            return Ok(None);
        }
        NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
            .map(Some)
            .map_err(|_| ServerFnError::new(format!("{text:?} is not a date; use yyyy-mm-dd")))
    }

    pub async fn load(caller: &Caller, query: &UsageQuery) -> Result<UsagePage, ServerFnError> {
        let today = caller.now.with_timezone(&caller.time_zone).date_naive();
        let to = day(&query.to)?.unwrap_or(today);
        let from = day(&query.from)?.unwrap_or(to - Duration::days(29));
        if from > to {
            return Err(ServerFnError::new("the start day is after the end day"));
        }
        let start = |day: NaiveDate| {
            caller
                .time_zone
                .from_local_datetime(&day.and_hms_opt(0, 0, 0).unwrap_or_default())
                .earliest()
                .map(|at| at.with_timezone(&Utc))
        };
        let page = query.page.max(1);
        let filter = DeductionFilter {
            account_ids: caller.scope.clone(),
            pack_id: Some(query.pack.trim().to_owned()).filter(|pack| !pack.is_empty()),
            subproduct: Some(query.subproduct.clone()).filter(|subproduct| !subproduct.is_empty()),
            usage_type: Some(query.usage_type.clone()).filter(|kind| !kind.is_empty()),
            from: start(from),
            to: start(to + Duration::days(1)),
            offset: (page - 1) * PAGE_SIZE,
            limit: PAGE_SIZE,
        };
        let deductions = caller.store().list_deductions(&filter).await.map_err(store_error)?;
        let daily = caller
            .store()
            .daily_usage(&caller.scope, filter.pack_id.as_deref(), filter.subproduct.as_deref(), from, to)
            .await
            .map_err(store_error)?;

        // The packs named on this page and in the totals, for names and units.
        let mut pack_ids: BTreeSet<String> = deductions.items.iter().map(|row| row.pack_id.clone()).collect();
        pack_ids.extend(daily.iter().map(|row| row.pack_id.clone()));
        let mut packs: HashMap<String, Pack> = HashMap::new();
        for id in pack_ids {
            if let Ok(pack) = caller.store().pack(Some(&caller.scope), &id).await {
                packs.insert(id, pack);
            }
        }
        let names = crate::pages::packs::server_side::names(caller).await?;
        let lines = deductions
            .items
            .iter()
            .map(|row| match packs.get(&row.pack_id) {
                Some(pack) => {
                    let sub = crate::pages::packs::server_side::cell(
                        caller,
                        pack,
                        respack_domain::PackField::Subproduct,
                        &names,
                    )
                    .unwrap_or_default();
                    line(caller, row, &pack.name, &sub, &pack.items)
                }
                None => line(caller, row, "", "", &[]),
            })
            .collect();

        let mut usage_types: BTreeSet<String> = BTreeSet::new();
        let mut totals: BTreeMap<(NaiveDate, String, String), Decimal> = BTreeMap::new();
        for row in &daily {
            let kind = if row.usage_type.is_empty() { "-".to_owned() } else { row.usage_type.clone() };
            usage_types.insert(kind.clone());
            if !query.usage_type.is_empty() && kind != query.usage_type {
                continue;
            }
            let unit = packs
                .get(&row.pack_id)
                .and_then(|pack| {
                    pack.items
                        .iter()
                        .find(|item| item.usage_type.as_deref() == Some(&row.usage_type))
                        .or(pack.items.first())
                })
                .map(|item| item.unit.clone())
                .unwrap_or_default();
            *totals.entry((row.day, kind, unit)).or_default() += row.amount;
        }
        let daily_totals: Vec<DailyTotal> = totals
            .iter()
            .map(|((day, kind, unit), total)| DailyTotal {
                day: day.to_string(),
                usage_type: kind.clone(),
                unit: unit.clone(),
                total: decimal(*total),
            })
            .collect();
        Ok(UsagePage {
            chart_svg: chart(&totals, from, to),
            deductions: lines,
            total: deductions.total,
            page,
            page_size: PAGE_SIZE,
            daily: daily_totals,
            usage_types: usage_types.into_iter().collect(),
            types: names.types_of(""),
        })
    }

    fn escape(text: &str) -> String {
        text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
    }

    /// Daily totals as grouped bars: one group per day, one bar per usage type (and unit),
    /// each with a `<title>` for screen readers and hover.
    pub fn chart(totals: &BTreeMap<(NaiveDate, String, String), Decimal>, from: NaiveDate, to: NaiveDate) -> String {
        const WIDTH: f64 = 720.0;
        const HEIGHT: f64 = 220.0;
        const LEFT: f64 = 48.0;
        const BOTTOM: f64 = 24.0;
        let days = (to - from).num_days().max(0) + 1;
        let series: Vec<(String, String)> = {
            let set: BTreeSet<(String, String)> =
                totals.keys().map(|(_, kind, unit)| (kind.clone(), unit.clone())).collect();
            set.into_iter().collect()
        };
        let max = totals.values().copied().max().unwrap_or(Decimal::ZERO);
        let max_f = max.to_string().parse::<f64>().unwrap_or(0.0).max(1e-9);
        let group = (WIDTH - LEFT) / days as f64;
        let bar = (group * 0.8 / series.len().max(1) as f64).max(1.0);
        let plot = HEIGHT - BOTTOM - 8.0;
        let mut svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"Daily usage from {from} to {to}\" class=\"bar-chart\">"
        );
        svg.push_str(&format!(
            "<line x1=\"{LEFT}\" y1=\"{y}\" x2=\"{WIDTH}\" y2=\"{y}\" class=\"axis\"/><text x=\"{x}\" y=\"14\" class=\"label\" text-anchor=\"end\">{max}</text><text x=\"{x}\" y=\"{y}\" class=\"label\" text-anchor=\"end\">0</text>",
            y = HEIGHT - BOTTOM,
            x = LEFT - 4.0,
            max = escape(&max.normalize().to_string()),
        ));
        for ((day, kind, unit), total) in totals {
            let day_index = (*day - from).num_days() as f64;
            let series_index = series.iter().position(|(k, u)| k == kind && u == unit).unwrap_or(0);
            let value = total.to_string().parse::<f64>().unwrap_or(0.0);
            let height = (value / max_f * plot).max(if value > 0.0 { 1.0 } else { 0.0 });
            let x = LEFT + day_index * group + group * 0.1 + series_index as f64 * bar;
            let y = HEIGHT - BOTTOM - height;
            svg.push_str(&format!(
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{height:.1}\" class=\"series-{}\"><title>{} {}: {} {}</title></rect>",
                series_index % 6,
                day,
                escape(kind),
                escape(&total.normalize().to_string()),
                escape(unit)
            ));
        }
        let step = (days / 6).max(1);
        let mut index = 0;
        while index < days {
            let day = from + Duration::days(index);
            let x = LEFT + index as f64 * group + group / 2.0;
            svg.push_str(&format!(
                "<text x=\"{x:.1}\" y=\"{}\" class=\"label\" text-anchor=\"middle\">{}</text>",
                HEIGHT - 6.0,
                day.format("%m-%d")
            ));
            index += step;
        }
        for (position, (kind, unit)) in series.iter().enumerate() {
            let y = 14.0 + position as f64 * 14.0;
            svg.push_str(&format!(
                "<rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" class=\"series-{}\"/><text x=\"{}\" y=\"{}\" class=\"label\">{} ({})</text>",
                WIDTH - 170.0,
                y - 9.0,
                position % 6,
                WIDTH - 155.0,
                y,
                escape(kind),
                escape(unit)
            ));
        }
        svg.push_str("</svg>");
        svg
    }
}
