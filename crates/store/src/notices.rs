//! The emails respackd sends about a pack, rendered as plain text and HTML in the account's
//! language (English, or Simplified Chinese for `zh-CN`), with times in the account's zone.
//! They are rendered when the state change is stored, in its transaction, so the outbox row
//! says exactly what happened then.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use respack_domain::rust_decimal::Decimal;
use respack_domain::{Money, Pack, TimeUnit};

/// What a notice tells.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Notice {
    /// A manual/not-renew pack expires in `days` days.
    ExpiringSoon {
        days: i64,
    },
    /// An auto-renewing pack expires in `days` days and the balance would not cover it.
    RenewalBalanceLow {
        days: i64,
        balance: Money,
        price: Money,
    },
    /// The daemon renewed the pack.
    Renewed {
        order_id: String,
        periods: u32,
        unit: TimeUnit,
        price: Money,
        balance_after: Money,
    },
    /// Automatic renewal was not possible; the pack expired.
    RenewalFailed {
        balance: Money,
        price: Money,
        frozen: bool,
    },
    Expired,
    Exhausted,
    /// An item's remaining capacity fell below `threshold` percent.
    CapacityLow {
        item: String,
        unit: String,
        threshold: u8,
        remaining: Decimal,
        capacity: Decimal,
    },
}

impl Notice {
    /// The outbox `kind` column.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Notice::ExpiringSoon { .. } => "expiring_soon",
            Notice::RenewalBalanceLow { .. } => "renewal_warning",
            Notice::Renewed { .. } => "renewal_receipt",
            Notice::RenewalFailed { .. } => "renewal_failed",
            Notice::Expired => "expired",
            Notice::Exhausted => "exhausted",
            Notice::CapacityLow { .. } => "capacity_low",
        }
    }
}

/// A rendered email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn local(at: DateTime<Utc>, zone: Tz) -> String {
    at.with_timezone(&zone).format("%Y-%m-%d %H:%M %Z").to_string()
}

fn unit_name(unit: TimeUnit, chinese: bool, count: u32) -> String {
    match (chinese, unit) {
        (true, TimeUnit::Hour) => "小时".into(),
        (true, TimeUnit::Day) => "天".into(),
        (true, TimeUnit::Month) => "个月".into(),
        (true, TimeUnit::Year) => "年".into(),
        (false, unit) if count == 1 => unit.as_str().into(),
        (false, unit) => format!("{}s", unit.as_str()),
    }
}

/// Renders `notice` about `pack` for an account with `language` in `zone`.
pub(crate) fn render(notice: &Notice, pack: &Pack, language: &str, zone: Tz) -> Rendered {
    let chinese = language == "zh-CN";
    let name = &pack.name;
    let id = pack.id.as_str();
    let expires = local(pack.expires_at, zone);
    let (subject, lines): (String, Vec<String>) = match (notice, chinese) {
        (Notice::ExpiringSoon { days }, false) => (
            format!("Resource pack {name} ({id}) expires in {days} day{}", if *days == 1 { "" } else { "s" }),
            vec![
                format!("Your resource pack {name} ({id}) expires at {expires}."),
                "Renew it before then to keep its capacity; after expiration unused capacity is forfeited.".into(),
            ],
        ),
        (Notice::ExpiringSoon { days }, true) => (
            format!("资源包 {name}（{id}）将在 {days} 天后到期"),
            vec![
                format!("您的资源包 {name}（{id}）将于 {expires} 到期。"),
                "请在到期前续费以保留容量；到期后未使用的容量将作废。".into(),
            ],
        ),
        (Notice::RenewalBalanceLow { days, balance, price }, false) => (
            format!(
                "Top up: automatic renewal of {name} ({id}) in {days} day{} is not covered",
                if *days == 1 { "" } else { "s" }
            ),
            vec![
                format!("Your resource pack {name} ({id}) renews automatically at {expires} for {price}."),
                format!("The account balance is {balance}, which does not cover the renewal."),
                "Top up the account before then, or the pack will expire.".into(),
            ],
        ),
        (Notice::RenewalBalanceLow { days, balance, price }, true) => (
            format!("请充值：资源包 {name}（{id}）{days} 天后的自动续费余额不足"),
            vec![
                format!("您的资源包 {name}（{id}）将于 {expires} 自动续费，费用 {price}。"),
                format!("账户余额为 {balance}，不足以支付续费。"),
                "请在此之前充值，否则资源包将到期。".into(),
            ],
        ),
        (Notice::Renewed { order_id, periods, unit, price, balance_after }, false) => (
            format!("Receipt: resource pack {name} ({id}) renewed"),
            vec![
                format!(
                    "Your resource pack {name} ({id}) was renewed automatically for {periods} {}.",
                    unit_name(*unit, false, *periods)
                ),
                format!(
                    "Order {order_id}: {price} was charged to the account balance; the balance is now {balance_after}."
                ),
                format!("The pack is now valid until {expires}."),
            ],
        ),
        (Notice::Renewed { order_id, periods, unit, price, balance_after }, true) => (
            format!("收据：资源包 {name}（{id}）已续费"),
            vec![
                format!("您的资源包 {name}（{id}）已自动续费 {periods} {}。", unit_name(*unit, true, *periods)),
                format!("订单 {order_id}：已从账户余额扣除 {price}，当前余额 {balance_after}。"),
                format!("资源包有效期至 {expires}。"),
            ],
        ),
        (Notice::RenewalFailed { balance, price, frozen }, false) => (
            if *frozen {
                format!("Automatic renewal of {name} ({id}) failed: the pack is frozen")
            } else {
                format!("Automatic renewal of {name} ({id}) failed: insufficient balance")
            },
            vec![
                format!("Your resource pack {name} ({id}) reached its expiration time {expires} and was not renewed."),
                if *frozen {
                    "The pack is frozen; an operator must unfreeze it before it can renew.".into()
                } else {
                    format!("The renewal costs {price}; the account balance was {balance}.")
                },
                "The pack has expired. Buy a new pack to continue.".into(),
            ],
        ),
        (Notice::RenewalFailed { balance, price, frozen }, true) => (
            if *frozen {
                format!("资源包 {name}（{id}）自动续费失败：资源包已冻结")
            } else {
                format!("资源包 {name}（{id}）自动续费失败：余额不足")
            },
            vec![
                format!("您的资源包 {name}（{id}）已于 {expires} 到期，未能续费。"),
                if *frozen {
                    "资源包已被冻结，需由运营人员解冻后才能续费。".into()
                } else {
                    format!("续费需 {price}，账户余额为 {balance}。")
                },
                "资源包已过期，如需继续使用请购买新的资源包。".into(),
            ],
        ),
        (Notice::Expired, false) => (
            format!("Resource pack {name} ({id}) has expired"),
            vec![
                format!("Your resource pack {name} ({id}) expired at {expires}."),
                "Unused capacity is forfeited. Buy a new pack to continue.".into(),
            ],
        ),
        (Notice::Expired, true) => (
            format!("资源包 {name}（{id}）已到期"),
            vec![
                format!("您的资源包 {name}（{id}）已于 {expires} 到期。"),
                "未使用的容量已作废，如需继续使用请购买新的资源包。".into(),
            ],
        ),
        (Notice::Exhausted, false) => (
            format!("Resource pack {name} ({id}) is used up"),
            vec![
                format!("Your resource pack {name} ({id}) has no capacity left and none will come."),
                "Further usage is billed pay-as-you-go at list price. Buy a new pack to cover it.".into(),
            ],
        ),
        (Notice::Exhausted, true) => (
            format!("资源包 {name}（{id}）已用尽"),
            vec![
                format!("您的资源包 {name}（{id}）容量已用尽。"),
                "后续用量将按刊例价后付费结算，如需抵扣请购买新的资源包。".into(),
            ],
        ),
        (Notice::CapacityLow { item, unit, threshold, remaining, capacity }, false) => (
            format!("Resource pack {name} ({id}): less than {threshold}% left"),
            vec![
                format!(
                    "{item} of your resource pack {name} ({id}) has {} of {} {unit} left (below {threshold}%).",
                    remaining.normalize(),
                    capacity.normalize()
                ),
                format!("The pack is valid until {expires}."),
            ],
        ),
        (Notice::CapacityLow { item, unit, threshold, remaining, capacity }, true) => (
            format!("资源包 {name}（{id}）剩余容量低于 {threshold}%"),
            vec![
                format!(
                    "您的资源包 {name}（{id}）的 {item} 剩余 {} / {} {unit}（低于 {threshold}%）。",
                    remaining.normalize(),
                    capacity.normalize()
                ),
                format!("资源包有效期至 {expires}。"),
            ],
        ),
    };
    let footer = if chinese {
        "此邮件由 respack 自动发送。您可以在控制台的告警设置中修改收件人。"
    } else {
        "This email was sent by respack. Change who receives it in the console's alert settings."
    };
    let mut text = lines.join("\n\n");
    text.push_str("\n\n-- \n");
    text.push_str(footer);
    text.push('\n');
    let paragraphs: String = lines.iter().map(|line| format!("<p>{}</p>\n", escape(line))).collect();
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\n<body>\n{paragraphs}<hr>\n<p style=\"color:#666;font-size:smaller\">{footer}</p>\n</body></html>\n",
        lang = if chinese { "zh-CN" } else { "en" },
        title = escape(&subject),
        footer = escape(footer),
    );
    Rendered { subject, text, html }
}

#[cfg(test)]
mod tests {
    use super::*;
    use respack_domain::PackId;

    fn pack() -> Pack {
        let effective = "2026-05-01T00:00:00Z".parse().unwrap();
        let spec = crate::test_support::monthly_mps_spec("Video <HD> & more", 1, "10", effective);
        Pack::issue(PackId::from_random(7), 1, spec, effective).unwrap()
    }

    #[test]
    fn english_and_chinese_with_local_times_and_escaped_html() {
        let shanghai: Tz = "Asia/Shanghai".parse().unwrap();
        let mail = render(&Notice::ExpiringSoon { days: 7 }, &pack(), "en", shanghai);
        assert_eq!(mail.subject, "Resource pack Video <HD> & more (rp-0000000000000007) expires in 7 days");
        assert!(mail.text.contains("expires at 2026-06-01 08:00 CST"), "{}", mail.text);
        assert!(mail.html.contains("Video &lt;HD&gt; &amp; more") && !mail.html.contains("<HD>"), "{}", mail.html);
        let mail = render(&Notice::Expired, &pack(), "zh-CN", Tz::UTC);
        assert!(mail.subject.contains("已到期"), "{}", mail.subject);
        assert!(mail.html.contains("lang=\"zh-CN\""));
        let mail = render(
            &Notice::RenewalFailed {
                balance: Money::parse("3").unwrap(),
                price: Money::parse("10").unwrap(),
                frozen: false,
            },
            &pack(),
            "en",
            Tz::UTC,
        );
        assert!(mail.subject.ends_with("insufficient balance"), "{}", mail.subject);
    }
}
