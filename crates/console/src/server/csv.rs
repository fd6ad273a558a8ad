//! CSV downloads: the Resource Packages table for the current filter and displayed columns
//! (every page of it), and the month's bill summary. Fields are quoted per RFC 4180, and a
//! leading `=`, `+`, `-` or `@` is prefixed with `'` so spreadsheets never run a cell as a formula.

use leptos::prelude::ServerFnError;
use respack_domain::PackField;

use super::{store_error, Caller};
use crate::i18n::field_title;
use crate::pages::packs::server_side::{account_uins, cell, columns, filter, names};
use crate::pages::packs::PacksQuery;

/// Most rows one download holds.
const MAX_ROWS: u64 = 100_000;

fn field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) && text != "-" { format!("'{text}") } else { text.to_owned() };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

fn line(fields: impl IntoIterator<Item = String>) -> String {
    let mut line = fields.into_iter().map(|text| field(&text)).collect::<Vec<_>>().join(",");
    line.push_str("\r\n");
    line
}

pub async fn packs(caller: &Caller, query: &PacksQuery) -> Result<String, ServerFnError> {
    let mut filter = filter(caller, query)?;
    let fields: Vec<PackField> =
        columns(caller).await?.into_iter().filter(|field| *field != PackField::Operation).collect();
    let names = names(caller).await?;
    let uins = account_uins(caller).await?;
    let mut out = line(
        std::iter::once("Account".to_owned())
            .chain(fields.iter().map(|field| field_title(caller.lang(), *field).to_owned())),
    );
    filter.offset = 0;
    filter.limit = 1000;
    loop {
        let page = caller.store().list_packs(&filter, caller.now).await.map_err(store_error)?;
        for pack in &page.items {
            let cells = fields.iter().map(|field| {
                if field.applies_to(pack) {
                    cell(caller, pack, *field, &names).unwrap_or_else(|| "-".to_owned())
                } else {
                    "-".to_owned()
                }
            });
            out.push_str(&line(std::iter::once(uins.get(&pack.account_id).cloned().unwrap_or_default()).chain(cells)));
        }
        filter.offset += filter.limit;
        if page.items.is_empty() || filter.offset >= page.total || filter.offset >= MAX_ROWS {
            break;
        }
    }
    Ok(out)
}

/// Every row of the caller's bill summary that the Bills page's query selects (up to
/// [`MAX_ROWS`]): the rows of `DescribeBillResourceSummary`, one per resource and ActionType.
/// Returns the file's name and its text.
pub async fn bills(
    caller: &Caller,
    query: &crate::pages::bills::BillsQuery,
) -> Result<(String, String), ServerFnError> {
    use crate::pages::bills::{csv_file_name, server_side};

    let filter = server_side::filter(caller, query)?;
    if server_side::built_at(caller, &filter.month).await?.is_none() {
        return Err(ServerFnError::new(format!(
            "the bill summary of {} is being built; download it again in a minute",
            filter.month
        )));
    }
    let names = crate::pages::packs::server_side::names(caller).await?;
    let mut out = line(
        [
            "ResourceId",
            "ResourceName",
            "BusinessCode",
            "ProductCode",
            "RegionName",
            "PayMode",
            "ActionType",
            "TotalCost",
            "CashPayAmount",
        ]
        .map(str::to_owned),
    );
    let mut offset = 0;
    while offset < MAX_ROWS {
        let rows = server_side::rows(caller, &filter, &names, offset, respack_store::MAX_SUMMARY_PAGE).await?;
        let last = (rows.len() as u64) < respack_store::MAX_SUMMARY_PAGE;
        offset += rows.len() as u64;
        for row in rows {
            out.push_str(&line([
                row.resource_id,
                row.resource_name,
                row.product,
                row.subproduct,
                crate::i18n::region_label(crate::i18n::Lang::En, &row.region),
                row.pay_mode,
                row.action_type,
                row.total_cost,
                row.cash_paid,
            ]));
        }
        if last {
            break;
        }
    }
    Ok((csv_file_name(&filter.month, filter.period_type.as_str()), out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_and_formulas_defused() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(field("-"), "-");
        assert_eq!(line(["a".to_owned(), "b c".to_owned()]), "a,b c\r\n");
    }
}
