//! The product catalog respack ships with: every product and subproduct in the *Viewing Range*
//! of the Resource Package Overview (seed), plus MPS general and TSC transcoding (seed: MPS
//! resource packs). Each subproduct names its capacity unit and the list price of one unit,
//! which prices overage (pay-as-you-go) and is a default for issued packs.

/// A product: what bills group by (`BusinessCode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogProduct {
    /// Product code, e.g. `p_mps` (the API's BusinessCode).
    pub code: &'static str,
    pub name: &'static str,
    pub subproducts: &'static [CatalogSubproduct],
}

/// A subproduct: what a pack is bought for and usage is reported against (`ProductCode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogSubproduct {
    /// Subproduct code, e.g. `sp_mps_general_transcoding` (the API's ProductCode).
    pub code: &'static str,
    pub name: &'static str,
    /// The capacity unit packs of this subproduct are sold in.
    pub unit: &'static str,
    /// Pay-as-you-go price of one unit, as decimal text.
    pub list_price: &'static str,
}

const fn sub(
    code: &'static str,
    name: &'static str,
    unit: &'static str,
    list_price: &'static str,
) -> CatalogSubproduct {
    CatalogSubproduct { code, name, unit, list_price }
}

/// The built-in catalog, in the seed's order.
pub const CATALOG: &[CatalogProduct] = &[
    CatalogProduct {
        code: "p_ccc",
        name: "Cloud Contact Center",
        subproducts: &[
            sub("sp_ccc_voice_agent_monthly", "Voice Agent - Monthly Subscription Package", "seat-months", "30"),
            sub("sp_ccc_voice_agent_duration", "Voice Agent - Call Duration Package", "minutes", "0.05"),
        ],
    },
    CatalogProduct {
        code: "p_clb",
        name: "CLB",
        subproducts: &[
            sub("sp_clb_resource_package", "CLB resource package", "LCU-hours", "0.03"),
            sub("sp_clb_model_routing", "CLB model routing resource package", "requests", "0.00002"),
        ],
    },
    CatalogProduct {
        code: "p_im",
        name: "Chat",
        subproducts: &[
            sub("sp_im_mau", "Monthly Active Users (MAU)", "MAU", "0.02"),
            sub("sp_im_agent_messages", "Conversation Agent - Message Volume Package", "messages", "0.001"),
        ],
    },
    CatalogProduct {
        code: "p_im_multichannel",
        name: "multi-channel aggregation enhancement",
        subproducts: &[sub("sp_im_multichannel", "multi-channel aggregation enhancement", "channel-days", "0.5")],
    },
    CatalogProduct {
        code: "p_trtc",
        name: "Tencent Real-Time Communication",
        subproducts: &[
            sub("sp_trtc_room", "Multi-person Audio-Video Room", "minutes", "0.0035"),
            sub("sp_trtc_live", "Real-Time Interactive Live Streaming", "minutes", "0.0049"),
        ],
    },
    CatalogProduct {
        code: "p_trtc_call",
        name: "TRTC - Audio-Video Call",
        subproducts: &[
            sub("sp_trtc_call_edition", "Package Edition", "minutes", "0.004"),
            sub("sp_trtc_call_package", "Audio-Video Call Package", "minutes", "0.0035"),
        ],
    },
    CatalogProduct {
        code: "p_scf",
        name: "SCF",
        subproducts: &[
            sub("sp_scf_resource_package", "SCF - Resource Package", "GBs", "0.0000167"),
            sub("sp_scf_package_plan", "SCF - Package Plan", "invocations", "0.0000002"),
        ],
    },
    CatalogProduct {
        code: "p_sms_intl",
        name: "International/Hong Kong (China), Macao (China) and Taiwan (China) SMS",
        subproducts: &[sub(
            "sp_sms_intl_prepaid",
            "International/Hong Kong (China), Macao (China) and Taiwan (China) SMS prepaid package",
            "messages",
            "0.04",
        )],
    },
    CatalogProduct {
        code: "p_adp_intl",
        name: "Tencent Cloud Agent Development Platform (ADP)",
        subproducts: &[
            sub("sp_adp_intl_package", "ADP_International_Public_Cloud_Package", "calls", "0.002"),
            sub("sp_adp_intl_credit", "ADP_International_Public_Cloud_Credit_Prepaid_Package", "credits", "0.01"),
        ],
    },
    CatalogProduct {
        code: "p_adp",
        name: "Tencent Cloud Agent Development Platform",
        subproducts: &[
            sub(
                "sp_adp_deepseek_v3_tokens",
                "Tencent Cloud Agent Development Platform_DeepSeek-V3_Token Package",
                "tokens",
                "0.000002",
            ),
            sub(
                "sp_adp_deepseek_r1_tokens",
                "Tencent Cloud Agent Development Platform_DeepSeek-R1_Token Package",
                "tokens",
                "0.000004",
            ),
            sub("sp_tcllmke_chunking", "Tencent Cloud LLM Knowledge Engine_Document Chunking", "pages", "0.001"),
            sub("sp_tcllmke_embedding", "Tencent Cloud LLM Knowledge Engine_Embedding", "tokens", "0.0000007"),
            sub(
                "sp_tcllmke_rewrite",
                "Tencent Cloud LLM Knowledge Engine_Multiple rounds of rewriting",
                "calls",
                "0.0012",
            ),
            sub("sp_tcllmke_parsing", "Tencent Cloud LLM Knowledge Engine_Document parsing", "pages", "0.003"),
            sub("sp_tcllmke_api_rerank_prepaid_packs", "sp_tcllmke_api_rerank_prepaid_packs", "calls", "0.0008"),
        ],
    },
    CatalogProduct {
        code: "p_codebuddy",
        name: "CodeBuddy",
        subproducts: &[
            sub("sp_codebuddy_ide", "Tencent Cloud CodeBuddy(IDE)", "credits", "0.01"),
            sub("sp_codebuddy_ide_bonus", "Tencent Cloud CodeBuddy(IDE)- bonus Pack", "credits", "0.01"),
            sub("sp_codebuddy_ide_traffic", "CodeBuddy (IDE) - Traffic Package", "requests", "0.02"),
            sub("sp_codebuddy_flagship", "CodeBuddy - Flagship Edition", "seat-months", "39"),
            sub("sp_codebuddy_ide_topup", "CodeBuddy (IDE) - Top-up Package", "credits", "0.01"),
        ],
    },
    CatalogProduct {
        code: "p_tokenhub",
        name: "TokenHub",
        subproducts: &[sub("sp_tokenhub_enterprise", "Token Plan - Enterprise Edition", "tokens", "0.000003")],
    },
    CatalogProduct {
        code: "p_mps",
        name: "Media Processing Service",
        subproducts: &[
            sub("sp_mps_general_transcoding", "General transcoding", "minutes", "0.0075"),
            sub("sp_mps_tsc_transcoding", "TSC transcoding", "minutes", "0.0128"),
        ],
    },
];

/// Finds a subproduct and its product by subproduct code.
pub fn find_subproduct(code: &str) -> Option<(&'static CatalogProduct, &'static CatalogSubproduct)> {
    CATALOG.iter().find_map(|product| product.subproducts.iter().find(|sub| sub.code == code).map(|sub| (product, sub)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Money;
    use std::collections::HashSet;

    #[test]
    fn catalog_holds_every_viewing_range_subproduct_and_mps() {
        let names: HashSet<&str> = CATALOG.iter().flat_map(|p| p.subproducts.iter().map(|s| s.name)).collect();
        for wanted in [
            "Voice Agent - Monthly Subscription Package",
            "Voice Agent - Call Duration Package",
            "CLB resource package",
            "CLB model routing resource package",
            "Monthly Active Users (MAU)",
            "Conversation Agent - Message Volume Package",
            "multi-channel aggregation enhancement",
            "Multi-person Audio-Video Room",
            "Real-Time Interactive Live Streaming",
            "Package Edition",
            "Audio-Video Call Package",
            "SCF - Resource Package",
            "SCF - Package Plan",
            "International/Hong Kong (China), Macao (China) and Taiwan (China) SMS prepaid package",
            "ADP_International_Public_Cloud_Package",
            "ADP_International_Public_Cloud_Credit_Prepaid_Package",
            "Tencent Cloud Agent Development Platform_DeepSeek-V3_Token Package",
            "Tencent Cloud Agent Development Platform_DeepSeek-R1_Token Package",
            "Tencent Cloud LLM Knowledge Engine_Document Chunking",
            "Tencent Cloud LLM Knowledge Engine_Embedding",
            "Tencent Cloud LLM Knowledge Engine_Multiple rounds of rewriting",
            "Tencent Cloud LLM Knowledge Engine_Document parsing",
            "sp_tcllmke_api_rerank_prepaid_packs",
            "Tencent Cloud CodeBuddy(IDE)",
            "Tencent Cloud CodeBuddy(IDE)- bonus Pack",
            "CodeBuddy (IDE) - Traffic Package",
            "CodeBuddy - Flagship Edition",
            "CodeBuddy (IDE) - Top-up Package",
            "Token Plan - Enterprise Edition",
            "General transcoding",
            "TSC transcoding",
        ] {
            assert!(names.contains(wanted), "missing {wanted}");
        }
        assert_eq!(CATALOG.len(), 13);
    }

    #[test]
    fn codes_are_unique_and_prices_are_money() {
        let mut codes = HashSet::new();
        for product in CATALOG {
            assert!(codes.insert(product.code), "{}", product.code);
            assert!(!product.subproducts.is_empty());
            for sub in product.subproducts {
                assert!(codes.insert(sub.code), "{}", sub.code);
                assert!(Money::parse(sub.list_price).is_ok(), "{}", sub.code);
                assert!(!sub.unit.is_empty());
            }
        }
        let (product, sub) = find_subproduct("sp_mps_tsc_transcoding").unwrap();
        assert_eq!((product.code, sub.unit), ("p_mps", "minutes"));
        assert!(find_subproduct("nope").is_none());
    }
}
