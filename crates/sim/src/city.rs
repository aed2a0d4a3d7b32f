//! The fictional prefecture-level city 清河市: its region tree (city, 8 districts and counties,
//! 60 streets and townships, a few hundred grid cells) with populations, and the CSV writer
//! that produces `rules/regions.csv` from it.
//!
//! The city is fixed: it is built from a constant internal seed, never from the user's seed,
//! so that every simulated run, rule test and archived replay refers to the same registry.

use std::io::{self, Write};

use vigil_model::RegionSpec;

use crate::rng::{Rng, stream};

/// Code of the root region.
pub const CITY_CODE: &str = "990100";
/// Name of the root region.
pub const CITY_NAME: &str = "清河市";

/// What kind of area a district is. It sets the density of its grid cells here and, in the
/// event generator, the per-capita intensity of each stream (urban cores see more calls for
/// service and much more online chatter per resident than rural counties).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AreaKind {
    /// The old city centre.
    Core,
    /// Built-up urban districts.
    Urban,
    /// New development zones with many migrant workers and construction sites.
    NewArea,
    /// Rural counties with townships.
    County,
}

impl AreaKind {
    /// Typical grid-cell population: cells are drawn smaller where housing is sparse.
    fn grid_target(self) -> f64 {
        match self {
            AreaKind::Core => 11_500.0,
            AreaKind::Urban => 9_500.0,
            AreaKind::NewArea => 7_500.0,
            AreaKind::County => 5_500.0,
        }
    }
}

pub(crate) struct DistrictDef {
    pub suffix: u32,
    pub name: &'static str,
    pub kind: AreaKind,
    /// Target population before the bottom-up sums; the registry's number is the sum of the
    /// grid cells, so it lands near but not exactly on this.
    pub population: u64,
    pub streets: &'static [&'static str],
}

/// The districts and their streets/townships. The first street of a county is its seat
/// (城关镇 or the county-town 街道) and is drawn larger than the rural townships.
pub(crate) const DISTRICTS: [DistrictDef; 8] = [
    DistrictDef {
        suffix: 1,
        name: "清河区",
        kind: AreaKind::Core,
        population: 680_000,
        streets: &[
            "东门街道",
            "西门街道",
            "南关街道",
            "北关街道",
            "府前街道",
            "鼓楼街道",
            "解放路街道",
            "中山街道",
            "文庙街道",
        ],
    },
    DistrictDef {
        suffix: 2,
        name: "东湖区",
        kind: AreaKind::Urban,
        population: 560_000,
        streets: &["湖滨街道", "东湖街道", "桃源街道", "望湖街道", "柳岸街道", "莲花街道", "湖东街道", "青石街道"],
    },
    DistrictDef {
        suffix: 3,
        name: "西城区",
        kind: AreaKind::Urban,
        population: 470_000,
        streets: &["西城街道", "河西街道", "工人村街道", "铁路街道", "纺织街道", "西苑街道", "金沙街道", "玉泉街道"],
    },
    DistrictDef {
        suffix: 4,
        name: "高新区",
        kind: AreaKind::NewArea,
        population: 330_000,
        streets: &["科技园街道", "创新街道", "软件园街道", "云谷街道", "丰泽街道", "龙湾镇"],
    },
    DistrictDef {
        suffix: 5,
        name: "滨江新区",
        kind: AreaKind::NewArea,
        population: 250_000,
        streets: &["滨江街道", "江湾街道", "临港街道", "新城街道", "白鹭洲街道", "沙洲镇"],
    },
    DistrictDef {
        suffix: 6,
        name: "临江县",
        kind: AreaKind::County,
        population: 360_000,
        streets: &["城关镇", "临江镇", "河西镇", "石桥镇", "青山镇", "柳树乡", "白沙镇", "双河镇", "黄田乡"],
    },
    DistrictDef {
        suffix: 7,
        name: "北山县",
        kind: AreaKind::County,
        population: 290_000,
        streets: &["北山街道", "松林镇", "石门镇", "龙泉镇", "高岭乡", "杨柳镇", "马坪乡"],
    },
    DistrictDef {
        suffix: 8,
        name: "南岭县",
        kind: AreaKind::County,
        population: 260_000,
        streets: &["岭南街道", "南岭镇", "竹溪镇", "茶山镇", "大坪乡", "梅花镇", "水口镇"],
    },
];

/// Smallest and largest grid-cell population: urban 网格化管理 guidelines put a grid at a few
/// hundred households, which is roughly this range of residents.
const GRID_MIN: u64 = 3_000;
const GRID_MAX: u64 = 15_000;

/// The area kind of a district code, for codes of the default city; other registries are
/// treated as urban throughout.
pub(crate) fn area_kind_of_district(code: &str) -> AreaKind {
    DISTRICTS.iter().find(|d| format!("9901{:02}", d.suffix) == code).map(|d| d.kind).unwrap_or(AreaKind::Urban)
}

/// A street with its grid cells, while the tree is built bottom-up.
type Street = (RegionSpec, Vec<RegionSpec>);

/// The default region registry: 清河市 with its districts, streets and grid cells, parents
/// before children (depth-first), every parent's population the sum of its children's.
pub fn default_city() -> Vec<RegionSpec> {
    let mut rng = Rng::new(0x5149_4e47_4845, stream::CITY);
    let mut districts: Vec<(RegionSpec, Vec<Street>)> = Vec::new();
    for d in &DISTRICTS {
        let dcode = format!("9901{:02}", d.suffix);
        // Street weights: uniform spread, with a county seat twice as populous as a township.
        let weights: Vec<f64> = (0..d.streets.len())
            .map(|i| {
                let w = 0.6 + 0.9 * rng.uniform();
                if d.kind == AreaKind::County && i == 0 { 2.2 * w } else { w }
            })
            .collect();
        let wsum: f64 = weights.iter().sum();
        let mut streets = Vec::new();
        for (i, (sname, w)) in d.streets.iter().zip(&weights).enumerate() {
            let scode = format!("{dcode}{:03}", i + 1);
            let target = d.population as f64 * w / wsum;
            let n = (target / d.kind.grid_target()).ceil().max(1.0) as usize;
            let gw: Vec<f64> = (0..n).map(|_| 0.7 + 0.6 * rng.uniform()).collect();
            let gsum: f64 = gw.iter().sum();
            let grids: Vec<RegionSpec> = gw
                .iter()
                .enumerate()
                .map(|(j, g)| {
                    let raw = (target * g / gsum / 10.0).round() as u64 * 10;
                    RegionSpec {
                        code: format!("{scode}{:03}", j + 1),
                        parent: scode.clone(),
                        level: "grid".into(),
                        name: format!("{sname}第{}网格", j + 1),
                        population: Some(raw.clamp(GRID_MIN, GRID_MAX)),
                    }
                })
                .collect();
            let street = RegionSpec {
                code: scode,
                parent: dcode.clone(),
                level: "street".into(),
                name: (*sname).into(),
                population: Some(grids.iter().filter_map(|g| g.population).sum()),
            };
            streets.push((street, grids));
        }
        let district = RegionSpec {
            code: dcode,
            parent: CITY_CODE.into(),
            level: "district".into(),
            name: d.name.into(),
            population: Some(streets.iter().filter_map(|(s, _)| s.population).sum()),
        };
        districts.push((district, streets));
    }
    let mut out = vec![RegionSpec {
        code: CITY_CODE.into(),
        parent: String::new(),
        level: "city".into(),
        name: CITY_NAME.into(),
        population: Some(districts.iter().filter_map(|(d, _)| d.population).sum()),
    }];
    for (district, streets) in districts {
        out.push(district);
        for (street, grids) in streets {
            out.push(street);
            out.extend(grids);
        }
    }
    out
}

/// Writes a region registry as `code,parent,level,name,population` with a header row.
/// Names are quoted only when they contain a comma, a quote or a line break, which the
/// default city's names never do.
pub fn write_regions_csv(regions: &[RegionSpec], mut w: impl Write) -> io::Result<()> {
    writeln!(w, "code,parent,level,name,population")?;
    for r in regions {
        writeln!(
            w,
            "{},{},{},{},{}",
            csv_field(&r.code),
            csv_field(&r.parent),
            csv_field(&r.level),
            csv_field(&r.name),
            r.population.map(|p| p.to_string()).unwrap_or_default()
        )?;
    }
    Ok(())
}

fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")).into() } else { s.into() }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn csv_text(regions: &[RegionSpec]) -> String {
        let mut buf = Vec::new();
        write_regions_csv(regions, &mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn shape_codes_and_population_sums() {
        let city = default_city();
        let count = |level: &str| city.iter().filter(|r| r.level == level).count();
        assert_eq!(count("city"), 1);
        assert_eq!(count("district"), 8);
        assert_eq!(count("street"), 60);
        let grids = count("grid");
        assert!((250..=600).contains(&grids), "{grids} grid cells");

        let by_code: BTreeMap<&str, &RegionSpec> = city.iter().map(|r| (r.code.as_str(), r)).collect();
        assert_eq!(by_code.len(), city.len(), "codes are unique");
        let mut child_sum: BTreeMap<&str, u64> = BTreeMap::new();
        for r in &city {
            let len = match r.level.as_str() {
                "city" | "district" => 6,
                "street" => 9,
                "grid" => 12,
                other => panic!("level {other}"),
            };
            assert_eq!(r.code.len(), len, "{}", r.code);
            assert!(r.code.bytes().all(|b| b.is_ascii_digit()));
            if r.level != "city" {
                assert!(by_code.contains_key(r.parent.as_str()), "parent of {}", r.code);
                *child_sum.entry(r.parent.as_str()).or_default() += r.population.unwrap_or(0);
            }
            if r.level == "street" || r.level == "grid" {
                assert!(r.code.starts_with(&r.parent), "{} under {}", r.code, r.parent);
            }
            if r.level == "grid" {
                assert!((GRID_MIN..=GRID_MAX).contains(&r.population.unwrap()));
                assert!(r.name.contains("网格"));
            }
            if r.level == "district" {
                assert!((150_000..=700_000).contains(&r.population.unwrap()), "{:?}", r.population);
            }
        }
        for (code, sum) in child_sum {
            assert_eq!(by_code[code].population, Some(sum), "population of {code}");
        }
        let total = city[0].population.unwrap();
        assert!((3_000_000..=3_400_000).contains(&total), "{total}");
    }

    #[test]
    fn deterministic() {
        assert_eq!(default_city(), default_city());
    }

    /// The committed registry must be exactly what `default_city` produces; regenerate it
    /// with `VIGIL_SIM_BLESS=1 cargo test -p vigil-sim committed_regions_csv`.
    #[test]
    fn committed_regions_csv_matches() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../rules/regions.csv");
        let want = csv_text(&default_city());
        if std::env::var_os("VIGIL_SIM_BLESS").is_some() {
            std::fs::write(path, &want).unwrap();
        }
        let have = std::fs::read_to_string(path).expect("rules/regions.csv is missing");
        assert!(have == want, "rules/regions.csv differs from default_city(); see the test doc");
    }

    #[test]
    fn csv_quotes_only_when_needed() {
        let r = RegionSpec {
            code: "1".into(),
            parent: String::new(),
            level: "city".into(),
            name: "a,\"b\"".into(),
            population: Some(5),
        };
        assert_eq!(csv_text(&[r]), "code,parent,level,name,population\n1,,city,\"a,\"\"b\"\"\",5\n");
    }
}
