//! Bill line vocabulary: the ActionType values of DescribeBillResourceSummary (seed 004) and
//! the two pay modes.

use serde::{Deserialize, Serialize};

/// What a bill line was for, named exactly as the Tencent API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BillActionType {
    HourlySettlement,
    DailySettlement,
    Subscription,
    Spot,
    NewSubscription,
    SubscriptionRenewal,
    SubscriptionAdjustment,
    SubscriptionRefund,
    AdjustmentDeduction,
    AdjustmentRefund,
    HourlyRiFee,
    OneOffRiFee,
    HourlySavingsPlanFee,
    OfflineProjectDeduction,
    OfflineProductDeduction,
}

impl BillActionType {
    pub const ALL: [BillActionType; 15] = [
        BillActionType::HourlySettlement,
        BillActionType::DailySettlement,
        BillActionType::Subscription,
        BillActionType::Spot,
        BillActionType::NewSubscription,
        BillActionType::SubscriptionRenewal,
        BillActionType::SubscriptionAdjustment,
        BillActionType::SubscriptionRefund,
        BillActionType::AdjustmentDeduction,
        BillActionType::AdjustmentRefund,
        BillActionType::HourlyRiFee,
        BillActionType::OneOffRiFee,
        BillActionType::HourlySavingsPlanFee,
        BillActionType::OfflineProjectDeduction,
        BillActionType::OfflineProductDeduction,
    ];

    /// The seed's ActionType text.
    pub fn as_str(self) -> &'static str {
        match self {
            BillActionType::HourlySettlement => "Hourly settlement",
            BillActionType::DailySettlement => "Daily settlement",
            BillActionType::Subscription => "Yearly/monthly subscription",
            BillActionType::Spot => "Spot",
            BillActionType::NewSubscription => "New yearly/monthly subscription",
            BillActionType::SubscriptionRenewal => "Yearly/monthly subscription renewal",
            BillActionType::SubscriptionAdjustment => "Yearly/monthly subscription specification adjustment",
            BillActionType::SubscriptionRefund => "Yearly/monthly subscription refund",
            BillActionType::AdjustmentDeduction => "Adjustment - deduction",
            BillActionType::AdjustmentRefund => "Adjustment - refund",
            BillActionType::HourlyRiFee => "Hourly RI fee",
            BillActionType::OneOffRiFee => "One-off RI Fee",
            BillActionType::HourlySavingsPlanFee => "Hourly Savings Plan fee",
            BillActionType::OfflineProjectDeduction => "Offline project deduction",
            BillActionType::OfflineProductDeduction => "Offline product deduction",
        }
    }

    pub fn parse(text: &str) -> Option<BillActionType> {
        BillActionType::ALL.into_iter().find(|action| action.as_str() == text)
    }

    /// Prepaid (subscriptions and their refunds) or pay-as-you-go.
    pub fn pay_mode(self) -> PayMode {
        match self {
            BillActionType::HourlySettlement | BillActionType::DailySettlement | BillActionType::Spot => {
                PayMode::PostPay
            }
            _ => PayMode::PrePay,
        }
    }
}

/// Billing mode of a bill line (`PayMode` filter: prePay/postPay).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PayMode {
    #[serde(rename = "prePay")]
    PrePay,
    #[serde(rename = "postPay")]
    PostPay,
}

impl PayMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PayMode::PrePay => "prePay",
            PayMode::PostPay => "postPay",
        }
    }

    pub fn parse(text: &str) -> Option<PayMode> {
        [PayMode::PrePay, PayMode::PostPay].into_iter().find(|mode| mode.as_str() == text)
    }

    /// The API's PayModeName.
    pub fn label(self) -> &'static str {
        match self {
            PayMode::PrePay => "Monthly Subscription",
            PayMode::PostPay => "Pay-As-You-Go resources",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_types_round_trip_and_pick_their_pay_mode() {
        for action in BillActionType::ALL {
            assert_eq!(BillActionType::parse(action.as_str()), Some(action));
        }
        assert_eq!(BillActionType::DailySettlement.pay_mode(), PayMode::PostPay);
        assert_eq!(BillActionType::SubscriptionRenewal.pay_mode(), PayMode::PrePay);
        assert_eq!(PayMode::parse("postPay"), Some(PayMode::PostPay));
        assert_eq!(PayMode::parse("later"), None);
    }
}
