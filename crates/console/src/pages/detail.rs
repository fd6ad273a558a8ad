//! Pack detail: capacity bars per item (several for a combo package), the current cycle with
//! its start and end, periods left, a timeline of the pack's cycles, and its deductions.

use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

use crate::app::{Changes, Empty, ErrorNote, Loading};
use crate::dto::PackDetail;
use crate::i18n::{t, Lang};
use crate::pages::usage::DeductionTable;

/// Cycles listed around the current one.
#[cfg(feature = "ssr")]
const TIMELINE_CYCLES: i64 = 24;

#[leptos::server(endpoint = "load_pack_detail")]
pub async fn load_pack_detail(pack_id: String) -> Result<PackDetail, ServerFnError> {
    let caller = crate::server::caller().await?;
    server_side::load(&caller, &pack_id).await
}

#[component]
pub fn PackDetailPage() -> impl IntoView {
    let lang = expect_context::<Lang>();
    let changes = expect_context::<Changes>();
    let params = use_params_map();
    let id = Memo::new(move |_| params.with(|params| params.get("id").unwrap_or_default()));
    let detail = Resource::new(move || (id.get(), changes.0.get()), |(id, _)| load_pack_detail(id));
    view! {
        <p><a href="/packs">"← "{t(lang, "nav.packs")}</a></p>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match detail.await {
                    Ok(detail) => view! { <DetailView detail /> }.into_any(),
                    Err(error) => view! { <ErrorNote error /> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn DetailView(detail: PackDetail) -> impl IntoView {
    let lang = expect_context::<Lang>();
    view! {
        <h1>{detail.name.clone()}" "<code>{detail.id.clone()}</code></h1>
        <dl class="fields">
            {detail.fields.iter().map(|(name, value)| view! { <dt>{name.clone()}</dt><dd>{value.clone()}</dd> }).collect_view()}
        </dl>
        <h2>{t(lang, "detail.capacity")}</h2>
        <ul class="bars">
            {detail.items.iter().map(|item| {
                let label = format!("{}: {} / {} {}", item.name, item.remaining, item.capacity, item.unit);
                view! {
                    <li>
                        <span>{label.clone()}</span>
                        {match item.percent_left {
                            Some(percent) => view! { <meter min="0" max="100" value=percent.to_string() aria-label=label>{percent}"%"</meter> }.into_any(),
                            None => view! { <span class="muted">{t(lang, "detail.unlimited")}</span> }.into_any(),
                        }}
                    </li>
                }
            }).collect_view()}
        </ul>
        <dl class="fields">
            <dt>{t(lang, "detail.current_cycle")}</dt>
            <dd>{detail.current_cycle.clone().map_or_else(|| "-".to_owned(), |(start, end)| format!("{start} ~ {end}"))}</dd>
            <dt>{t(lang, "detail.periods_left")}</dt>
            <dd>{detail.periods_left.clone().unwrap_or_else(|| "-".to_owned())}</dd>
        </dl>
        <h2>{t(lang, "detail.timeline")}</h2>
        {if detail.cycles.is_empty() {
            view! { <Empty /> }.into_any()
        } else {
            view! {
                <ol class="timeline">
                    {detail.cycles.iter().map(|cycle| view! {
                        <li class=format!("cycle {}", cycle.state) aria-current=(cycle.state == "current").then_some("step")>
                            "#"{cycle.index + 1}" "{cycle.start.clone()}" ~ "{cycle.end.clone()}
                        </li>
                    }).collect_view()}
                </ol>
            }
            .into_any()
        }}
        {(detail.cycles_omitted > 0).then(|| view! { <p class="muted">{detail.cycles_omitted}" "{t(lang, "detail.omitted")}</p> })}
        <h2>{t(lang, "detail.deductions")}</h2>
        <DeductionTable rows=detail.deductions.clone() />
    }
}

#[cfg(feature = "ssr")]
mod server_side {
    use leptos::prelude::ServerFnError;
    use respack_domain::rust_decimal::Decimal;
    use respack_domain::PackField;
    use respack_store::DeductionFilter;

    use super::TIMELINE_CYCLES;
    use crate::dto::{CycleRow, ItemBar, PackDetail};
    use crate::i18n::field_title;
    use crate::pages::packs::server_side::{cell, decimal, names};
    use crate::server::{store_error, Caller};

    pub async fn load(caller: &Caller, pack_id: &str) -> Result<PackDetail, ServerFnError> {
        let pack = caller.store().pack(Some(&caller.scope), pack_id).await.map_err(store_error)?;
        let names = names(caller).await?;
        let now = caller.now;
        let fields = PackField::ALL
            .iter()
            .filter(|field| **field != PackField::Operation && field.applies_to(&pack))
            .filter_map(|field| {
                cell(caller, &pack, *field, &names).map(|value| (field_title(caller.lang(), *field).to_owned(), value))
            })
            .collect();
        let items = pack
            .items
            .iter()
            .map(|item| {
                let remaining = pack.remaining_at(item, now);
                let percent_left = match (remaining, item.capacity) {
                    (Some(remaining), Some(capacity)) if capacity > Decimal::ZERO => {
                        let percent = (remaining * Decimal::from(100) / capacity).round();
                        Some(u8::try_from(percent.mantissa().clamp(0, 100)).unwrap_or(0))
                    }
                    _ => None,
                };
                ItemBar {
                    name: item.name.clone(),
                    unit: item.unit.clone(),
                    remaining: remaining.map_or_else(|| "∞".to_owned(), decimal),
                    capacity: item.capacity.map_or_else(|| "∞".to_owned(), decimal),
                    percent_left,
                }
            })
            .collect();
        let current = pack.cycle_at(now);
        let (cycles, cycles_omitted) = match pack.mode.cycle_unit() {
            Some(unit) => {
                let count = pack.cycle_count();
                let current_index =
                    current.map_or(if now < pack.effective_at { 0 } else { count - 1 }, |cycle| cycle.index);
                let first = (current_index - TIMELINE_CYCLES / 2).clamp(0, (count - TIMELINE_CYCLES).max(0));
                let last = (first + TIMELINE_CYCLES).min(count);
                let rows = (first..last)
                    .map(|index| {
                        let cycle = pack.anchor().cycle(unit, index);
                        let state = if cycle.end <= now {
                            "past"
                        } else if cycle.start <= now {
                            "current"
                        } else {
                            "future"
                        };
                        CycleRow {
                            index,
                            start: caller.time(cycle.start),
                            end: caller.time(cycle.end.min(pack.expires_at)),
                            state: state.to_owned(),
                        }
                    })
                    .collect();
                (rows, u64::try_from(count - (last - first)).unwrap_or(0))
            }
            None => (
                vec![CycleRow {
                    index: 0,
                    start: caller.time(pack.effective_at),
                    end: caller.time(pack.expires_at),
                    state: if pack.expires_at <= now {
                        "past"
                    } else if pack.effective_at <= now {
                        "current"
                    } else {
                        "future"
                    }
                    .to_owned(),
                }],
                0,
            ),
        };
        let deductions = caller
            .store()
            .list_deductions(&DeductionFilter {
                account_ids: vec![pack.account_id],
                pack_id: Some(pack.id.to_string()),
                limit: 50,
                ..DeductionFilter::default()
            })
            .await
            .map_err(store_error)?;
        let subproduct_name = cell(caller, &pack, PackField::Subproduct, &names).unwrap_or_default();
        Ok(PackDetail {
            id: pack.id.to_string(),
            name: pack.name.clone(),
            fields,
            items,
            current_cycle: current.map(|cycle| (caller.time(cycle.start), caller.time(cycle.end))),
            periods_left: pack.periods_at(now).map(|(left, total)| format!("{left}/{total}")),
            cycles,
            cycles_omitted,
            deductions: deductions
                .items
                .iter()
                .map(|row| {
                    crate::pages::usage::server_side::line(caller, row, &pack.name, &subproduct_name, &pack.items)
                })
                .collect(),
        })
    }
}
