//! One row of an `eval` run: the metrics of one explained (image, class, method), as
//! `rows.jsonl` holds it.

use std::collections::BTreeMap;

/// One explained (image, class, method).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Row {
    /// Image id.
    pub image: String,
    /// Annotation class name.
    pub class: String,
    /// Explained model output.
    pub target: usize,
    /// Method label.
    pub method: String,
    /// Energy-based pointing game, in [0, 1].
    #[serde(deserialize_with = "nan_if_null")]
    pub ebpg: f64,
    /// Bbox accuracy, in [0, 1] (`None` when the class box vanished in the crop).
    pub bbox: Option<f64>,
    /// Drop for this explanation, in [0, 1].
    #[serde(deserialize_with = "nan_if_null")]
    pub drop: f64,
    /// Whether confidence increased.
    pub increase: bool,
    /// Deletion AUC.
    #[serde(deserialize_with = "nan_if_null")]
    pub deletion: f64,
    /// Insertion AUC.
    #[serde(deserialize_with = "nan_if_null")]
    pub insertion: f64,
    /// Pointing-game hit (`None` when the class box vanished in the crop).
    pub pointing: Option<bool>,
    /// Time for the explanation, milliseconds.
    #[serde(deserialize_with = "nan_if_null")]
    pub ms: f64,
    /// The metrics beyond the paper's set, by name (`null`: not computable, e.g. no mask).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Option<f64>>,
    /// Curves by name (`deletion`, `insertion`: the confidence at each step), for the report.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub curves: BTreeMap<String, Vec<f64>>,
}

impl Row {
    /// The value of metric `name` (a row of [`super::table::METRICS`]) on the scale of its
    /// summary column (percent for the paper's shares); NaN when the row has none.
    pub fn value(&self, name: &str) -> f64 {
        let share = |v: f64| 100.0 * v;
        let hit = |b: bool| share(f64::from(u8::from(b)));
        match name {
            "ebpg" => share(self.ebpg),
            "bbox" => self.bbox.map_or(f64::NAN, share),
            "pointing" => self.pointing.map_or(f64::NAN, hit),
            "drop" => share(self.drop),
            "increase" => hit(self.increase),
            "deletion" => self.deletion,
            "insertion" => self.insertion,
            other => self.extra.get(other).copied().flatten().unwrap_or(f64::NAN),
        }
    }
}

/// Reads a metric written as `null` (serde_json writes NaN so) back as NaN.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    use serde::Deserialize;
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// The names of the metrics beyond the paper's set that any row holds, in table order.
pub fn extra_names(rows: &[Row]) -> Vec<String> {
    super::table::METRICS
        .iter()
        .filter(|m| !m.paper && rows.iter().any(|r| r.extra.contains_key(m.name)))
        .map(|m| m.name.to_string())
        .collect()
}

/// The rows sorted by (image, class, method): the order every summary figure is computed in,
/// so merged shards give the figures of one run.
pub fn sorted(rows: &[Row]) -> Vec<&Row> {
    let mut s: Vec<&Row> = rows.iter().collect();
    s.sort_by(|a, b| (&a.image, &a.class, &a.method).cmp(&(&b.image, &b.class, &b.method)));
    s
}

/// The methods of `rows`, each once, in the order they first appear.
pub fn method_order(rows: &[Row]) -> Vec<&str> {
    let mut order: Vec<&str> = Vec::new();
    for r in rows {
        if !order.contains(&r.method.as_str()) {
            order.push(&r.method);
        }
    }
    order
}
