//! The evidence scan against independent values: oracle.py implements docs/methodology.md
//! §16.1-16.2 in Python with SciPy's negative binomial and wrote oracle.csv; every case must
//! agree to 1e-6 (relative) in the statistic, and exactly in the scan length and counts, with
//! seasonal factors and with counted exposures alike.

use vigil_scan::{Params, scan};

fn parse(list: &str) -> Vec<f64> {
    list.split(';').map(|v| if v == "nan" { f64::NAN } else { v.parse().unwrap() }).collect()
}

#[test]
fn scan_agrees_with_scipy() {
    let text = include_str!("oracle.csv");
    let mut checked = 0;
    let mut with_evidence = 0;
    let (mut counted, mut counted_with_evidence) = (0, 0);
    for line in text.lines().skip(1) {
        let c: Vec<&str> = line.split(',').collect();
        let params = Params { windows: c[1].parse().unwrap(), baseline: c[2].parse().unwrap(), counted: c[9] == "1" };
        let (x, f) = (parse(c[3]), parse(c[4]));
        let want: f64 = c[5].parse().unwrap();
        let got = scan(&x, &f, &params);
        let tol = 1e-6 * want.abs().max(1.0);
        assert!((got.stat - want).abs() <= tol, "case {}: stat {} vs SciPy {want} ({got:?})", c[0], got.stat);
        assert_eq!(got.windows as usize, c[6].parse::<usize>().unwrap(), "case {}", c[0]);
        counted += params.counted as usize;
        if want > 0.0 {
            with_evidence += 1;
            counted_with_evidence += params.counted as usize;
            assert_eq!(got.observed, c[7].parse::<f64>().unwrap(), "case {}", c[0]);
            let exp: f64 = c[8].parse().unwrap();
            assert!(
                (got.expected - exp).abs() <= 1e-9 * exp.max(1.0),
                "case {}: expected {} vs {exp}",
                c[0],
                got.expected
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 60);
    assert!(counted >= 15 && counted_with_evidence >= 5, "counted exposures too ({counted}, {counted_with_evidence})");
    assert!(with_evidence >= 20, "the oracle must exercise real excesses ({with_evidence})");
}
