//! What server functions send to pages: plain, already formatted values (money and instants as
//! text in the caller's time zone), so the browser needs no time zone data or rounding rules.

use serde::{Deserialize, Serialize};

/// The signed-in user, as every page needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    pub user_id: i64,
    pub email: String,
    pub display_name: String,
    /// `customer`, `org_admin` or `operator`.
    pub role: String,
    pub account_id: i64,
    pub account_name: String,
    pub uin: String,
    pub balance: String,
    /// `en` or `zh-CN`.
    pub language: String,
    /// Echoed by every state-changing call.
    pub csrf: String,
}

impl Me {
    pub fn is_operator(&self) -> bool {
        self.role == "operator"
    }
}

/// One option of a select.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    pub value: String,
    pub label: String,
}

/// One cell of the Resource Packages table: `None` when the field does not apply to the pack's
/// payment mode (shown as "-").
pub type Cell = Option<String>;

/// Why an operation is unavailable, or `None` when it is allowed.
pub type Refusal = Option<String>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackRow {
    pub id: String,
    pub name: String,
    pub account_uin: String,
    /// In the order of `PacksPage::columns`.
    pub cells: Vec<Cell>,
    pub renew: Refusal,
    pub set_auto: Refusal,
    pub set_manual: Refusal,
    pub set_not_renew: Refusal,
    pub modify_period: Refusal,
    pub refund: Refusal,
    pub frozen: bool,
    pub live: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacksPage {
    /// The displayed columns (`PackField` names), in table order.
    pub columns: Vec<String>,
    pub rows: Vec<PackRow>,
    pub total: u64,
    pub page: u64,
    pub page_size: u64,
    pub products: Vec<Choice>,
    /// The types (subproducts) to filter by: the chosen product's, or every product's.
    pub subproducts: Vec<Choice>,
}

/// A row operation's dialog: what it costs and leaves, or why it is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationQuote {
    pub pack_id: String,
    pub pack_name: String,
    pub operation: String,
    pub refusal: Refusal,
    /// Worth knowing before confirming, but no reason to refuse (auto-renewal set while the
    /// balance would not cover a renewal today: the balance counts at expiration).
    pub warning: Option<String>,
    pub price: String,
    pub balance: String,
    pub balance_after: String,
    pub new_expires_at: String,
    pub current_renewal: String,
    pub current_period: Option<u32>,
    pub period_unit: String,
    pub max_periods: u32,
    /// Sent back with the request so a retried submission never charges twice.
    pub client_token: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemBar {
    pub name: String,
    pub unit: String,
    pub remaining: String,
    pub capacity: String,
    /// 0..=100, `None` for unlimited items.
    pub percent_left: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CycleRow {
    pub index: i64,
    pub start: String,
    pub end: String,
    /// `past`, `current` or `future`.
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeductionLine {
    pub time: String,
    pub pack_id: String,
    pub pack_name: String,
    pub subproduct: String,
    pub usage_type: String,
    pub amount: String,
    pub before: String,
    pub after: String,
    pub unit: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackDetail {
    pub id: String,
    pub name: String,
    pub fields: Vec<(String, String)>,
    pub items: Vec<ItemBar>,
    pub current_cycle: Option<(String, String)>,
    pub periods_left: Option<String>,
    pub cycles: Vec<CycleRow>,
    pub cycles_omitted: u64,
    pub deductions: Vec<DeductionLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyTotal {
    pub day: String,
    pub usage_type: String,
    pub unit: String,
    pub total: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsagePage {
    pub deductions: Vec<DeductionLine>,
    pub total: u64,
    pub page: u64,
    pub page_size: u64,
    pub daily: Vec<DailyTotal>,
    /// The daily totals as an SVG bar chart, drawn on the server.
    pub chart_svg: String,
    pub usage_types: Vec<String>,
    /// The pack types (subproducts) to filter by.
    pub types: Vec<Choice>,
}

/// One row of the month's bill summary: one resource and ActionType, as
/// `DescribeBillResourceSummary` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillSummaryRow {
    pub resource_id: String,
    pub resource_name: String,
    /// Product code (BusinessCode) and its name.
    pub product: String,
    pub product_name: String,
    /// Subproduct code (ProductCode) and its name.
    pub subproduct: String,
    pub subproduct_name: String,
    pub region: String,
    pub pay_mode: String,
    pub action_type: String,
    pub total_cost: String,
    pub cash_paid: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillsPage {
    pub month: String,
    /// `byPayTime` or `byUsedTime` (the API's `PeriodType`).
    pub period: String,
    /// The filters asked for.
    pub query: crate::pages::bills::BillsQuery,
    /// Products to filter by.
    pub products: Vec<Choice>,
    /// This page of the summary's rows.
    pub rows: Vec<BillSummaryRow>,
    /// Rows in the whole month, and their sums.
    pub total: u64,
    pub total_cost: String,
    pub cash_paid: String,
    pub page: u64,
    pub page_size: u64,
    /// When the summary was built, in the caller's time zone; `None` while a first build of
    /// the month is under way (nothing to show yet).
    pub built_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerLine {
    pub time: String,
    pub kind: String,
    pub amount: String,
    pub balance_after: String,
    pub reference: String,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyLine {
    pub secret_id: String,
    pub note: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountPage {
    pub name: String,
    pub uin: String,
    pub balance: String,
    /// Overage of ended days the balance could not pay (empty when nothing is owed).
    pub owed: String,
    pub allow_arrears: bool,
    pub ledger: Vec<LedgerLine>,
    pub keys: Vec<ApiKeyLine>,
    pub alert_recipients: String,
    pub alert_thresholds: String,
    pub alert_language: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountLine {
    pub id: i64,
    pub uin: String,
    pub name: String,
    pub kind: String,
    pub balance: String,
    pub time_zone: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorPage {
    pub accounts: Vec<AccountLine>,
    pub subproducts: Vec<Choice>,
    /// ClientTokens of this rendering's forms: a double submit is one operation.
    pub top_up_token: String,
    pub issue_token: String,
    pub adjust_token: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxLine {
    pub id: i64,
    pub account_id: i64,
    pub kind: String,
    pub recipients: String,
    pub subject: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: String,
    pub last_error: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditLine {
    pub time: String,
    pub account_id: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}
