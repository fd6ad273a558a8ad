//! The console's words in English and Simplified Chinese. A page asks `t(lang, "key")`; a key
//! missing from the table shows as itself, which the unit test below forbids for known keys.

use serde::{Deserialize, Serialize};

/// The two languages of the console (and of alert emails).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Lang {
    #[default]
    En,
    Zh,
}

impl Lang {
    /// From a stored language tag (`en`, `zh-CN`); anything else is English.
    pub fn from_tag(tag: &str) -> Lang {
        if tag.starts_with("zh") {
            Lang::Zh
        } else {
            Lang::En
        }
    }

    /// The English or the Chinese of a pair of words.
    fn pick<'a>(self, en: &'a str, zh: &'a str) -> &'a str {
        match self {
            Lang::En => en,
            Lang::Zh => zh,
        }
    }

    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh-CN",
        }
    }
}

/// (key, English, Simplified Chinese)
const WORDS: &[(&str, &str, &str)] = &[
    ("app.name", "respack console", "respack 控制台"),
    ("nav.packs", "Resource Packages", "资源包"),
    ("nav.usage", "Usage details", "用量明细"),
    ("nav.bills", "Bills", "账单"),
    ("nav.account", "Account", "账户"),
    ("nav.operator", "Operator", "运营"),
    ("nav.outbox", "Email outbox", "邮件发件箱"),
    ("nav.audit", "Audit log", "审计日志"),
    ("nav.main", "Main navigation", "主导航"),
    ("nav.skip", "Skip to content", "跳到正文"),
    ("auth.sign_in", "Sign in", "登录"),
    ("auth.sign_out", "Sign out", "退出"),
    ("auth.email", "Email", "邮箱"),
    ("auth.password", "Password", "密码"),
    ("auth.signed_in_as", "Signed in as", "当前用户"),
    ("auth.title", "Sign in to respack", "登录 respack"),
    ("lang.switch", "中文", "English"),
    ("lang.label", "Language", "语言"),
    ("common.loading", "Loading…", "加载中…"),
    ("common.empty", "Nothing to show.", "暂无数据。"),
    ("common.error", "Something went wrong", "出错了"),
    ("common.search", "Search", "查询"),
    ("common.reset", "Reset", "重置"),
    ("common.save", "Save", "保存"),
    ("common.cancel", "Cancel", "取消"),
    ("common.close", "Close", "关闭"),
    ("common.confirm", "Confirm", "确定"),
    ("common.download", "Download", "下载"),
    ("common.previous", "Previous", "上一页"),
    ("common.next", "Next", "下一页"),
    ("common.page", "Page", "第"),
    ("common.of", "of", "页，共"),
    ("common.total", "Total", "合计"),
    ("common.from", "From", "开始"),
    ("common.to", "To", "结束"),
    ("common.balance", "Balance", "余额"),
    ("common.done", "Done", "已完成"),
    ("packs.type", "Type", "类型"),
    ("packs.all_types", "All types", "全部类型"),
    ("packs.product", "Product", "产品"),
    ("packs.all_products", "All products", "全部产品"),
    ("packs.search", "Name or ID", "名称或 ID"),
    ("packs.status", "Status", "状态"),
    ("packs.all_statuses", "All statuses", "全部状态"),
    ("packs.expires_from", "Expires from", "到期时间从"),
    ("packs.expires_to", "Expires before", "到期时间至"),
    ("packs.sort", "Sort by", "排序"),
    ("packs.sort.purchased_desc", "Newest purchase", "最新购买"),
    ("packs.sort.expires_asc", "Expiring first", "最早到期"),
    ("packs.sort.expires_desc", "Expiring last", "最晚到期"),
    ("packs.sort.name_asc", "Name", "名称"),
    ("packs.settings", "Columns", "列设置"),
    ("packs.settings.hint", "Choose the columns to display", "选择要显示的列"),
    ("packs.count", "packs", "个资源包"),
    (
        "packs.three_months",
        "Packs that ended more than 3 months ago are not listed.",
        "已失效超过 3 个月的资源包不再显示。",
    ),
    ("op.renew", "Renew", "续费"),
    ("op.set_auto", "Set auto-renewal", "设置自动续费"),
    ("op.set_manual", "Set manual renewal", "设置手动续费"),
    ("op.set_not_renew", "Set not renew", "设置不续费"),
    ("op.modify_period", "Modify auto-renewal period", "修改自动续费周期"),
    ("op.refund", "Refund", "退款"),
    ("op.freeze", "Freeze", "冻结"),
    ("op.unfreeze", "Unfreeze", "解冻"),
    ("op.price", "Price", "价格"),
    ("op.balance_after", "Balance after", "操作后余额"),
    ("op.new_expiry", "New expiration time", "新到期时间"),
    ("op.periods", "Periods", "周期数"),
    ("op.current", "Current renewal method", "当前续费方式"),
    ("op.not_available", "Not available", "不可用"),
    ("op.details", "Details", "详情"),
    ("detail.capacity", "Capacity", "容量"),
    ("detail.current_cycle", "Current cycle", "当前周期"),
    ("detail.periods_left", "Periods left", "剩余周期"),
    ("detail.timeline", "Cycles", "周期时间线"),
    ("detail.deductions", "Deductions", "抵扣记录"),
    ("detail.unlimited", "unlimited", "不限量"),
    ("detail.omitted", "more cycles not shown", "个周期未显示"),
    ("usage.pack", "Pack ID", "资源包 ID"),
    ("usage.type", "Usage type", "用量类型"),
    ("usage.all_types", "All types", "全部类型"),
    ("usage.time", "Deduction time", "抵扣时间"),
    ("usage.subproduct", "Type", "类型"),
    ("usage.amount", "Deducted", "抵扣量"),
    ("usage.before", "Before", "抵扣前"),
    ("usage.after", "After", "抵扣后"),
    ("usage.daily", "Daily totals", "每日汇总"),
    ("usage.chart", "Daily usage chart", "每日用量图"),
    ("usage.day", "Day", "日期"),
    ("bills.month", "Month", "月份"),
    ("bills.period", "Months by", "统计周期"),
    ("bills.all", "All", "全部"),
    ("bills.resource_id", "Resource ID", "资源ID"),
    ("bills.tag_key", "Tag key", "标签键"),
    ("bills.tag_value", "Tag value", "标签值"),
    ("bills.by_pay_time", "Payment month", "按扣费周期"),
    ("bills.by_used_time", "Usage month", "按计费周期"),
    ("bills.resource", "Resource", "资源"),
    ("bills.subproduct", "Subproduct", "子产品"),
    ("bills.region", "Region", "地域"),
    ("bills.pay_mode", "Billing mode", "计费模式"),
    ("bills.action", "Transaction type", "交易类型"),
    ("bills.built_at", "Figures as built at", "数据生成于"),
    (
        "bills.building",
        "The summary of this month is being built; reload in a minute.",
        "本月账单汇总正在生成，请稍后刷新。",
    ),
    ("bills.total_cost", "Original cost", "原价"),
    ("bills.cash", "Cash paid", "现金支付"),
    ("account.ledger", "Balance history", "余额明细"),
    ("account.owed", "Owed for overage", "超额用量欠费"),
    (
        "account.owed_hint",
        "(usage beyond your packs on days already settled, which the balance did not cover; it is taken after your next top-up)",
        "（已结算日期中超出资源包的用量，余额不足未能扣除；下次充值后自动扣除）",
    ),
    ("account.kind", "Kind", "类型"),
    ("account.amount", "Amount", "金额"),
    ("account.reference", "Reference", "关联"),
    ("account.note", "Note", "备注"),
    ("account.time", "Time", "时间"),
    ("account.keys", "API keys", "API 密钥"),
    ("account.key_note", "Description", "描述"),
    ("account.create_key", "Create key", "新建密钥"),
    ("account.revoke", "Revoke", "禁用"),
    ("account.revoked", "revoked", "已禁用"),
    ("account.secret_once", "Copy the SecretKey now: it is shown only once.", "请立即复制 SecretKey：它只显示这一次。"),
    ("account.alerts", "Alert settings", "告警设置"),
    ("account.recipients", "Recipients (comma separated)", "收件人（逗号分隔）"),
    ("account.thresholds", "Remaining-capacity thresholds in % (comma separated)", "剩余容量阈值 %（逗号分隔）"),
    ("account.alert_language", "Email language", "邮件语言"),
    ("account.saved", "Saved.", "已保存。"),
    ("operator.accounts", "Accounts", "账户"),
    ("operator.create_account", "Create account", "新建账户"),
    ("operator.name", "Name", "名称"),
    ("operator.time_zone", "Time zone", "时区"),
    ("operator.top_up", "Top up", "充值"),
    ("operator.account", "Account", "账户"),
    ("operator.amount", "Amount", "金额"),
    ("operator.issue", "Issue a pack", "发放资源包"),
    ("operator.subproduct", "Subproduct", "子产品"),
    ("operator.mode", "Payment mode", "扣费模式"),
    ("operator.capacity", "Capacity", "容量"),
    ("operator.term", "Term", "时长"),
    ("operator.price", "Price", "价格"),
    ("operator.pack_name", "Pack name", "资源包名称"),
    ("operator.adjust", "Adjust a pack's bill", "调账"),
    ("operator.pack_id", "Resource package ID", "资源包ID"),
    (
        "operator.adjust_amount",
        "Amount (positive charges the customer, negative refunds)",
        "金额（正数为调账扣费，负数为调账退款）",
    ),
    ("operator.reason", "Reason", "原因"),
    ("operator.issued", "Issued", "已发放"),
    ("outbox.status", "Status", "状态"),
    ("outbox.retry", "Retry", "重试"),
    ("outbox.subject", "Subject", "主题"),
    ("outbox.recipients", "Recipients", "收件人"),
    ("outbox.attempts", "Attempts", "尝试次数"),
    ("outbox.next", "Next attempt", "下次尝试"),
    ("outbox.error", "Last error", "最近错误"),
    ("audit.actor", "Actor", "操作者"),
    ("audit.action", "Action", "操作"),
    ("audit.target", "Target", "对象"),
    ("audit.detail", "Detail", "详情"),
];

/// The word for `key` in `lang`.
pub fn t(lang: Lang, key: &'static str) -> &'static str {
    match WORDS.iter().find(|(k, _, _)| *k == key) {
        Some((_, en, zh)) => lang.pick(en, zh),
        None => key,
    }
}

/// Shown names of pack statuses.
pub fn status_label(lang: Lang, status: &str) -> &'static str {
    let (en, zh) = match status {
        "inactive" => ("Not effective", "未生效"),
        "valid" => ("Valid", "有效"),
        "frozen" => ("Frozen", "已冻结"),
        "expired" => ("Expired", "已过期"),
        "exhausted" => ("Used up", "已用完"),
        "refunded" => ("Refunded", "已退款"),
        _ => ("Unknown", "未知"),
    };
    lang.pick(en, zh)
}

/// Shown names of balance-ledger kinds; a kind this console does not know shows as stored.
pub fn ledger_kind_label(lang: Lang, kind: &str) -> &str {
    let (en, zh) = match kind {
        "top_up" => ("Top-up", "充值"),
        "purchase" => ("Purchase", "购买"),
        "renewal" => ("Renewal", "续费"),
        "refund" => ("Refund", "退款"),
        "adjustment" => ("Adjustment", "调账"),
        "overage_settlement" => ("Overage settlement", "超额用量结算"),
        _ => return kind,
    };
    lang.pick(en, zh)
}

/// A payment mode as the seed names it, with its cycle ("Period decrement (month)").
pub fn payment_mode_label(lang: Lang, mode: respack_domain::PaymentMode) -> String {
    use respack_domain::PaymentModeKind::*;
    let kind = mode.kind();
    let name = match lang {
        Lang::En => kind.label(),
        Lang::Zh => match kind {
            TotalDecrement => "总量递减",
            PeriodDecrement => "周期递减",
            ShardDecrement => "分片递减",
            Unlimited => "不限容量",
        },
    };
    match (mode.cycle_unit(), lang) {
        (Some(unit), Lang::En) => format!("{name} ({})", unit.as_str()),
        (Some(unit), Lang::Zh) => format!("{name}（{}）", time_unit_label(lang, unit)),
        (None, _) => name.to_owned(),
    }
}

/// A calendar unit (of cycles and renewal periods).
pub fn time_unit_label(lang: Lang, unit: respack_domain::TimeUnit) -> &'static str {
    use respack_domain::TimeUnit::*;
    match lang {
        Lang::En => unit.as_str(),
        Lang::Zh => match unit {
            Hour => "小时",
            Day => "天",
            Month => "个月",
            Year => "年",
        },
    }
}

/// A renewal method as the seed names it.
pub fn renewal_label(lang: Lang, method: respack_domain::RenewalMethod) -> &'static str {
    use respack_domain::RenewalMethod::*;
    match lang {
        Lang::En => method.label(),
        Lang::Zh => match method {
            Manual => "手动续费",
            Auto => "自动续费",
            NotRenew => "不续费",
        },
    }
}

/// A bill's transaction type (the API's English ActionTypeName) in the page's language; text
/// that is no ActionType shows as it is.
pub fn action_type_label(lang: Lang, action_type: &str) -> &str {
    use respack_domain::BillActionType::*;
    let Some(action) = respack_domain::BillActionType::parse(action_type) else {
        return action_type;
    };
    match lang {
        Lang::En => action.as_str(),
        Lang::Zh => match action {
            HourlySettlement => "按量计费小时结",
            DailySettlement => "按量计费日结",
            Subscription => "包年包月",
            Spot => "竞价结算",
            NewSubscription => "包年包月新购",
            SubscriptionRenewal => "包年包月续费",
            SubscriptionAdjustment => "包年包月配置变更",
            SubscriptionRefund => "包年包月退款",
            AdjustmentDeduction => "调账扣费",
            AdjustmentRefund => "调账退款",
            HourlyRiFee => "预留实例小时费用",
            OneOffRiFee => "预留实例一次性费用",
            HourlySavingsPlanFee => "节省计划小时费用",
            OfflineProjectDeduction => "线下项目扣费",
            OfflineProductDeduction => "线下产品扣费",
        },
    }
}

/// A region's name ("South China (Guangzhou)", "华南地区（广州）"); a region respack does not
/// name shows its code.
pub fn region_label(lang: Lang, code: &str) -> String {
    match respack_domain::region::find_region(code) {
        Some(region) => lang.pick(region.name, region.name_zh).to_owned(),
        None if code.is_empty() => "-".to_owned(),
        None => code.to_owned(),
    }
}

/// A zone's name ("Guangzhou Zone 3", "广州三区"); any other zone shows its code.
pub fn zone_label(lang: Lang, code: &str) -> String {
    use respack_domain::region::{find_zone, zone_name, zone_name_zh};
    match (find_zone(code), lang) {
        (Some((region, number)), Lang::En) => zone_name(region, number),
        (Some((region, number)), Lang::Zh) => zone_name_zh(region, number),
        (None, _) if code.is_empty() => "-".to_owned(),
        (None, _) => code.to_owned(),
    }
}

/// A bill's billing mode (the API's English PayModeName) in the page's language.
pub fn pay_mode_label(lang: Lang, pay_mode: &str) -> &str {
    use respack_domain::PayMode::*;
    match [PrePay, PostPay].into_iter().find(|mode| mode.label() == pay_mode) {
        Some(PrePay) => lang.pick("Monthly Subscription", "包年包月"),
        Some(PostPay) => lang.pick("Pay-As-You-Go resources", "按量计费"),
        None => pay_mode,
    }
}

/// Column titles of the Resource Packages table (seed: *Field Description*).
pub fn field_title(lang: Lang, field: respack_domain::PackField) -> &'static str {
    use respack_domain::PackField::*;
    match lang {
        Lang::En => field.title(),
        Lang::Zh => match field {
            NameAndId => "资源包名称/资源包 ID",
            Product => "产品名称",
            Subproduct => "子产品名称",
            Region => "地域",
            AvailabilityZone => "可用区",
            Status => "状态",
            PaymentMode => "扣费模式",
            CapacityUnit => "容量单位",
            SinglePeriodCapacity => "单周期剩余容量/总容量",
            SinglePeriodTime => "单周期开始/结束时间",
            Periods => "剩余周期数/总周期数",
            TotalCapacity => "总剩余容量/总容量",
            ComboCapacity => "组合包容量信息",
            DeductionAttribute => "动态抵扣属性",
            EffectiveExpiration => "生效/失效时间",
            PackageExpiry => "资源包失效时间",
            Renewal => "续费方式",
            AutoRenewalPeriod => "自动续费周期",
            Operation => "操作",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_unique_and_translated() {
        let mut keys: Vec<&str> = WORDS.iter().map(|(key, _, _)| *key).collect();
        keys.sort_unstable();
        let before = keys.len();
        keys.dedup();
        assert_eq!(before, keys.len(), "a key appears twice");
        for (key, en, zh) in WORDS {
            assert!(!en.is_empty() && !zh.is_empty(), "{key} lacks a translation");
        }
        assert_eq!(t(Lang::Zh, "nav.packs"), "资源包");
        assert_eq!(t(Lang::En, "nav.packs"), "Resource Packages");
    }

    #[test]
    fn ledger_kinds_have_names_and_unknown_ones_show_as_stored() {
        for (kind, en, zh) in [
            ("top_up", "Top-up", "充值"),
            ("purchase", "Purchase", "购买"),
            ("renewal", "Renewal", "续费"),
            ("refund", "Refund", "退款"),
            ("adjustment", "Adjustment", "调账"),
            ("overage_settlement", "Overage settlement", "超额用量结算"),
            ("adjustment_2031", "adjustment_2031", "adjustment_2031"),
        ] {
            assert_eq!(ledger_kind_label(Lang::En, kind), en);
            assert_eq!(ledger_kind_label(Lang::Zh, kind), zh);
        }
    }

    #[test]
    fn values_shown_in_the_table_speak_the_pages_language() {
        use respack_domain::{PaymentMode, RenewalMethod, TimeUnit};
        let monthly = PaymentMode::PeriodDecrement(TimeUnit::Month);
        assert_eq!(payment_mode_label(Lang::En, monthly), "Period decrement (month)");
        assert_eq!(payment_mode_label(Lang::Zh, monthly), "周期递减（个月）");
        assert_eq!(payment_mode_label(Lang::Zh, PaymentMode::TotalDecrement), "总量递减");
        assert_eq!(renewal_label(Lang::Zh, RenewalMethod::Auto), "自动续费");
        assert_eq!(renewal_label(Lang::En, RenewalMethod::NotRenew), "Not renew");
        assert_eq!(action_type_label(Lang::Zh, "Adjustment - refund"), "调账退款");
        assert_eq!(action_type_label(Lang::En, "Daily settlement"), "Daily settlement");
        assert_eq!(action_type_label(Lang::Zh, "Moon landing"), "Moon landing", "unknown text as it is");
        assert_eq!(pay_mode_label(Lang::Zh, "Monthly Subscription"), "包年包月");
        assert_eq!(pay_mode_label(Lang::Zh, "Pay-As-You-Go resources"), "按量计费");
        assert_eq!(pay_mode_label(Lang::En, "Pay-As-You-Go resources"), "Pay-As-You-Go resources");
        assert_eq!(region_label(Lang::Zh, "ap-guangzhou"), "华南地区（广州）");
        assert_eq!(region_label(Lang::En, "ap-guangzhou"), "South China (Guangzhou)");
        assert_eq!(region_label(Lang::En, "moon-base"), "moon-base");
        assert_eq!(zone_label(Lang::Zh, "ap-shanghai-2"), "上海二区");
        assert_eq!(zone_label(Lang::En, "ap-shanghai-2"), "Shanghai Zone 2");
        assert_eq!(zone_label(Lang::En, ""), "-");
        // Every ActionType has a Chinese name of its own.
        let names: std::collections::BTreeSet<&str> = respack_domain::BillActionType::ALL
            .iter()
            .map(|action| action_type_label(Lang::Zh, action.as_str()))
            .collect();
        assert_eq!(names.len(), respack_domain::BillActionType::ALL.len());
        assert!(names.iter().all(|name| !name.is_ascii()));
    }

    #[test]
    fn language_tags_round_trip() {
        assert_eq!(Lang::from_tag("zh-CN"), Lang::Zh);
        assert_eq!(Lang::from_tag("en"), Lang::En);
        assert_eq!(Lang::from_tag(Lang::Zh.tag()), Lang::Zh);
    }
}
