//! The Tencent Cloud regions respack's packs are sold in: each region's numeric ID and its
//! names in English and Simplified Chinese, and the names of its availability zones
//! (`ap-guangzhou-3`: Guangzhou Zone 3, 广州三区).

/// One region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// e.g. `ap-guangzhou`.
    pub code: &'static str,
    /// Tencent Cloud's numeric region ID (the API's RegionId).
    pub id: i64,
    /// e.g. "South China (Guangzhou)" (the API's RegionName).
    pub name: &'static str,
    pub name_zh: &'static str,
    /// The city its zones are named after.
    pub city: &'static str,
    pub city_zh: &'static str,
}

const fn region(
    code: &'static str,
    id: i64,
    name: &'static str,
    name_zh: &'static str,
    city: &'static str,
    city_zh: &'static str,
) -> Region {
    Region { code, id, name, name_zh, city, city_zh }
}

/// Every region respack names.
pub const REGIONS: &[Region] = &[
    region("ap-guangzhou", 1, "South China (Guangzhou)", "华南地区（广州）", "Guangzhou", "广州"),
    region("ap-shanghai", 4, "East China (Shanghai)", "华东地区（上海）", "Shanghai", "上海"),
    region(
        "ap-hongkong",
        5,
        "Hong Kong, Macau and Taiwan (China) (Hong Kong, China)",
        "港澳台地区（中国香港）",
        "Hong Kong",
        "中国香港",
    ),
    region("ap-beijing", 8, "North China (Beijing)", "华北地区（北京）", "Beijing", "北京"),
    region("ap-singapore", 9, "Southeast Asia (Singapore)", "东南亚地区（新加坡）", "Singapore", "新加坡"),
    region("na-siliconvalley", 15, "West US (Silicon Valley)", "美国西部（硅谷）", "Silicon Valley", "硅谷"),
    region("ap-chengdu", 16, "Southwest China (Chengdu)", "西南地区（成都）", "Chengdu", "成都"),
    region("eu-frankfurt", 17, "Europe (Frankfurt)", "欧洲地区（法兰克福）", "Frankfurt", "法兰克福"),
    region("ap-seoul", 18, "Northeast Asia (Seoul)", "亚太东北（首尔）", "Seoul", "首尔"),
    region("ap-chongqing", 19, "Southwest China (Chongqing)", "西南地区（重庆）", "Chongqing", "重庆"),
    region("ap-mumbai", 21, "South Asia (Mumbai)", "亚太南部（孟买）", "Mumbai", "孟买"),
    region("na-ashburn", 22, "East US (Virginia)", "美国东部（弗吉尼亚）", "Virginia", "弗吉尼亚"),
    region("ap-bangkok", 23, "Southeast Asia (Bangkok)", "亚太东南（曼谷）", "Bangkok", "曼谷"),
    region("ap-tokyo", 25, "Northeast Asia (Tokyo)", "亚太东北（东京）", "Tokyo", "东京"),
    region("ap-nanjing", 33, "East China (Nanjing)", "华东地区（南京）", "Nanjing", "南京"),
];

/// The region of `code`, if respack names it.
pub fn find_region(code: &str) -> Option<&'static Region> {
    REGIONS.iter().find(|region| region.code == code)
}

/// The region and number of a zone code `<region>-<n>` (`ap-guangzhou-3`), if its region is
/// one respack names.
pub fn find_zone(code: &str) -> Option<(&'static Region, u32)> {
    let (region, number) = code.rsplit_once('-')?;
    if number.is_empty() || !number.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    Some((find_region(region)?, number.parse().ok()?))
}

/// A zone's English name as Tencent Cloud writes it: "Guangzhou Zone 3".
pub fn zone_name(region: &Region, number: u32) -> String {
    format!("{} Zone {number}", region.city)
}

/// A zone's Chinese name as Tencent Cloud writes it: "广州三区" (numbers past nine in digits).
pub fn zone_name_zh(region: &Region, number: u32) -> String {
    const DIGITS: [&str; 9] = ["一", "二", "三", "四", "五", "六", "七", "八", "九"];
    match usize::try_from(number).ok().and_then(|n| n.checked_sub(1)).and_then(|i| DIGITS.get(i)) {
        Some(digit) => format!("{}{digit}区", region.city_zh),
        None => format!("{}{number}区", region.city_zh),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_and_zones_are_named_as_tencent_cloud_names_them() {
        let guangzhou = find_region("ap-guangzhou").unwrap();
        assert_eq!(
            (guangzhou.id, guangzhou.name, guangzhou.name_zh),
            (1, "South China (Guangzhou)", "华南地区（广州）")
        );
        assert_eq!(find_region("moon-1"), None);
        for (code, en, zh) in [
            ("ap-guangzhou-3", "Guangzhou Zone 3", "广州三区"),
            ("ap-hongkong-2", "Hong Kong Zone 2", "中国香港二区"),
            ("na-siliconvalley-1", "Silicon Valley Zone 1", "硅谷一区"),
            ("ap-beijing-12", "Beijing Zone 12", "北京12区"),
        ] {
            let (region, number) = find_zone(code).unwrap();
            assert_eq!((zone_name(region, number), zone_name_zh(region, number)), (en.to_owned(), zh.to_owned()));
        }
        for not_a_zone in ["ap-guangzhou", "ap-guangzhou-x", "ap-guangzhou-", "moon-1", ""] {
            assert_eq!(find_zone(not_a_zone), None, "{not_a_zone:?}");
        }
        let mut codes: Vec<&str> = REGIONS.iter().map(|region| region.code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), REGIONS.len(), "each region once");
    }
}
