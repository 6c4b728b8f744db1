//! The pinned version matrix, and the comparison of measured versions.
//!
//! Every entry pins exact Python packages. Java and Python come from Debian
//! bookworm, whose mirror serves only the newest patch release, so those two
//! are pinned to their major (Java) and minor (Python) version; the image
//! records the full measured value and the check compares at a dot boundary.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One supported Spark release and everything pinned with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionEntry {
    /// Spark release (equal to the pyspark version, whose wheel carries Spark).
    pub spark: &'static str,
    /// Hadoop client shipped in the pyspark wheel.
    pub hadoop: &'static str,
    /// Scala library shipped in the pyspark wheel.
    pub scala: &'static str,
    /// py4j, the Python package (and the jar in the wheel).
    pub py4j: &'static str,
    /// pyspark, the Python package.
    pub pyspark: &'static str,
    /// Python minor version (Debian bookworm's python3).
    pub python: &'static str,
    /// Java major version.
    pub java: &'static str,
    /// The Debian package that provides that Java.
    pub java_package: &'static str,
    /// JupyterLab.
    pub jupyterlab: &'static str,
    /// numpy (needed by pyspark.ml).
    pub numpy: &'static str,
    /// pandas (toPandas, pandas UDFs).
    pub pandas: &'static str,
    /// pyarrow (Arrow transfer for pandas UDFs).
    pub pyarrow: &'static str,
}

/// The keys every versions record has, in display order.
pub const VERSION_KEYS: [&str; 11] = [
    "spark",
    "hadoop",
    "scala",
    "py4j",
    "pyspark",
    "python",
    "java",
    "jupyterlab",
    "numpy",
    "pandas",
    "pyarrow",
];

/// The supported releases, newest first; the first is the default.
pub const MATRIX: &[VersionEntry] = &[
    VersionEntry {
        spark: "4.3.0",
        hadoop: "3.5.0",
        scala: "2.13.18",
        py4j: "0.10.9.9",
        pyspark: "4.3.0",
        python: "3.11",
        java: "17",
        java_package: "openjdk-17-jre-headless",
        jupyterlab: "4.6.6",
        numpy: "2.3.5",
        pandas: "2.3.3",
        pyarrow: "23.0.1",
    },
    VersionEntry {
        spark: "3.5.9",
        hadoop: "3.3.4",
        scala: "2.12.18",
        py4j: "0.10.9.7",
        pyspark: "3.5.9",
        python: "3.11",
        java: "17",
        java_package: "openjdk-17-jre-headless",
        jupyterlab: "4.6.6",
        numpy: "1.26.4",
        pandas: "2.1.4",
        pyarrow: "15.0.2",
    },
];

/// The default Spark release.
pub fn default_entry() -> &'static VersionEntry {
    &MATRIX[0]
}

/// The supported releases as one comma-separated line.
pub fn supported_list() -> String {
    MATRIX
        .iter()
        .map(|e| e.spark)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Finds a matrix entry: an exact release ("3.5.7") or a prefix at a dot
/// boundary ("3.5", "4") meaning the newest supported release of that line.
pub fn lookup(requested: &str) -> Result<&'static VersionEntry> {
    let requested = requested.trim();
    let found = MATRIX
        .iter()
        .find(|e| e.spark == requested)
        .or_else(|| MATRIX.iter().find(|e| matches_prefix(requested, e.spark)));
    found.ok_or_else(|| Error::UnknownSparkVersion {
        given: requested.to_string(),
        supported: supported_list(),
    })
}

impl VersionEntry {
    /// What the image must measure, as the same key → value record.
    pub fn expected(&self) -> Versions {
        let pairs = [
            ("spark", self.spark),
            ("hadoop", self.hadoop),
            ("scala", self.scala),
            ("py4j", self.py4j),
            ("pyspark", self.pyspark),
            ("python", self.python),
            ("java", self.java),
            ("jupyterlab", self.jupyterlab),
            ("numpy", self.numpy),
            ("pandas", self.pandas),
            ("pyarrow", self.pyarrow),
        ];
        Versions {
            values: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            extra: BTreeMap::new(),
        }
    }
}

/// A record of versions: the fixed keys plus any extra Python packages.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Versions {
    /// spark, hadoop, scala, py4j, pyspark, python, java, jupyterlab, numpy, pandas, pyarrow.
    #[serde(flatten)]
    pub values: BTreeMap<String, String>,
    /// Extra Python packages by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
}

impl Versions {
    /// Parses the JSON that `measure-versions` prints (non-string values are refused).
    pub fn from_json(text: &str) -> Result<Versions> {
        let raw: serde_json::Value = serde_json::from_str(text.trim())
            .map_err(|e| Error::Io(format!("unreadable versions record ({e}): {text}")))?;
        let obj = raw
            .as_object()
            .ok_or_else(|| Error::Io(format!("versions record is not an object: {text}")))?;
        let mut out = Versions::default();
        for (key, value) in obj {
            match (key.as_str(), value) {
                ("extra", serde_json::Value::Object(extra)) => {
                    for (name, v) in extra {
                        out.extra.insert(name.clone(), value_text(v));
                    }
                }
                ("error", v) if !v.is_null() => {
                    out.values.insert("error".into(), value_text(v));
                }
                ("error", _) => {}
                (k, v) => {
                    out.values.insert(k.to_string(), value_text(v));
                }
            }
        }
        Ok(out)
    }

    /// The value for `key`, looking in the fixed keys then the extras.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .or_else(|| self.extra.get(key))
            .map(String::as_str)
    }
}

fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One key whose expected and measured values disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The version key, e.g. "py4j".
    pub key: String,
    /// What the matrix pins.
    pub expected: String,
    /// What was measured ("missing" when absent).
    pub measured: String,
}

/// `expected` is "17" and `measured` "17.0.16": equal at a dot boundary.
pub fn matches_prefix(expected: &str, measured: &str) -> bool {
    measured == expected
        || (measured.starts_with(expected)
            && measured[expected.len()..].starts_with('.')
            && !expected.is_empty())
}

/// Compares a measurement with the matrix: java and python by prefix, every
/// other key (and every extra package) exactly.
pub fn compare_with_matrix(expected: &Versions, measured: &Versions) -> Vec<Difference> {
    let mut diffs = Vec::new();
    let wanted = expected.values.iter().chain(expected.extra.iter());
    for (key, want) in wanted {
        let got = measured.get(key);
        let ok = match (key.as_str(), got) {
            (_, None) => false,
            ("java" | "python", Some(got)) => matches_prefix(want, got),
            (_, Some(got)) => got == want,
        };
        if !ok {
            diffs.push(Difference {
                key: key.clone(),
                expected: want.clone(),
                measured: got.unwrap_or("missing").to_string(),
            });
        }
    }
    if let Some(err) = measured.values.get("error") {
        diffs.push(Difference {
            key: "error".into(),
            expected: "none".into(),
            measured: err.clone(),
        });
    }
    diffs
}

/// Renders differences one per line, for error messages.
pub fn render_differences(diffs: &[Difference]) -> String {
    diffs
        .iter()
        .map(|d| {
            format!(
                "  {}: expected {}, measured {}",
                d.key, d.expected, d.measured
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_exact_prefix_and_unknown() {
        assert_eq!(
            lookup(MATRIX[0].spark).map(|e| e.spark).ok(),
            Some(MATRIX[0].spark)
        );
        let e35 = lookup("3.5").map(|e| e.spark).unwrap_or("none");
        assert!(e35.starts_with("3.5."), "3.5 resolved to {e35}");
        let err = lookup("9.9.9")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("9.9.9") && err.contains(MATRIX[0].spark),
            "{err}"
        );
        // "3.5" must not match "3.50.x" style releases, nor "4" match "40".
        assert!(!matches_prefix("3.5", "3.50.1"));
        assert!(!matches_prefix("4", "40.1"));
    }

    #[test]
    fn every_entry_pins_every_key() {
        for entry in MATRIX {
            let exp = entry.expected();
            for key in VERSION_KEYS {
                let value = exp.get(key).unwrap_or("");
                assert!(!value.is_empty(), "{} lacks {key}", entry.spark);
            }
            assert_eq!(entry.spark, entry.pyspark);
        }
    }

    #[test]
    fn java_and_python_compare_by_prefix_others_exactly() {
        let expected = MATRIX[0].expected();
        let mut measured = expected.clone();
        measured.values.insert("java".into(), "17.0.16".into());
        measured.values.insert("python".into(), "3.11.2".into());
        assert!(compare_with_matrix(&expected, &measured).is_empty());
        measured.values.insert("py4j".into(), "0.10.9.5".into());
        measured.values.insert("java".into(), "21.0.1".into());
        let diffs = compare_with_matrix(&expected, &measured);
        let keys: Vec<_> = diffs.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(keys, vec!["java", "py4j"]);
        assert!(render_differences(&diffs).contains("py4j: expected 0.10.9.9, measured 0.10.9.5"));
    }

    #[test]
    fn parses_measure_output_with_extras_and_errors() {
        let text = r#"{"spark":"4.0.1","java":"17.0.16","extra":{"polars":"1.0.0"},"error":null}"#;
        let v = Versions::from_json(text).expect("parses");
        assert_eq!(v.get("spark"), Some("4.0.1"));
        assert_eq!(v.get("polars"), Some("1.0.0"));
        assert!(!v.values.contains_key("error"));
        assert!(Versions::from_json("not json").is_err());
    }
}
