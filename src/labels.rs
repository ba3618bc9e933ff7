//! Class labels, predictions and target selection.

use crate::error::{Error, Message, Result, Setting};

/// One class score.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Prediction {
    /// Class index.
    pub index: usize,
    /// Class label (`class N` when no label list is known).
    pub label: String,
    /// Pre-softmax score.
    pub logit: f32,
    /// Softmax probability.
    pub prob: f32,
}

/// Labels, one per line; blank lines are skipped.
pub fn parse_labels(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// Numerically stable softmax.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|&v| (v - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

pub(crate) fn label_of(labels: &[String], index: usize) -> String {
    labels
        .get(index)
        .cloned()
        .unwrap_or_else(|| format!("class {index}"))
}

/// All classes with scores, best first.
pub fn ranked(logits: &[f32], labels: &[String]) -> Vec<Prediction> {
    let probs = softmax(logits);
    let mut out: Vec<Prediction> = logits
        .iter()
        .enumerate()
        .map(|(index, &logit)| Prediction {
            index,
            label: label_of(labels, index),
            logit,
            prob: probs[index],
        })
        .collect();
    out.sort_by(|a, b| b.logit.total_cmp(&a.logit));
    out
}

/// Resolves a target spec to classes: `topK` (the K best classes, best first; `top1` is the
/// best one), a class index, or an exact label (case-insensitive).
pub fn resolve_targets(spec: &str, logits: &[f32], labels: &[String]) -> Result<Vec<usize>> {
    if let Some(k) = spec
        .strip_prefix("top")
        .and_then(|k| k.parse::<usize>().ok())
    {
        if k == 0 {
            return Err(Error::InvalidOption(
                Message::setting(Setting::Target).text(" top0 names no class; use top1 or more"),
            ));
        }
        return Ok(ranked(logits, labels)
            .into_iter()
            .take(k)
            .map(|p| p.index)
            .collect());
    }
    resolve_target(spec, logits, labels).map(|t| vec![t])
}

/// Resolves one target: `top1` (best class), a class index, or an exact label
/// (case-insensitive).
pub fn resolve_target(spec: &str, logits: &[f32], labels: &[String]) -> Result<usize> {
    let classes = logits.len();
    if spec == "top1" {
        return Ok(ranked(logits, labels)[0].index);
    }
    if let Ok(index) = spec.parse::<i64>() {
        return match usize::try_from(index) {
            Ok(i) if i < classes => Ok(i),
            Ok(i) => Err(Error::TargetOutOfRange { index: i, classes }),
            Err(_) => Err(Error::InvalidOption(Message::from(format!(
                "target {index} is negative; class indices run from 0 to {}",
                classes.saturating_sub(1)
            )))),
        };
    }
    labels
        .iter()
        .position(|l| l.eq_ignore_ascii_case(spec))
        .filter(|&i| i < classes)
        .ok_or_else(|| Error::UnknownLabel(spec.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_resolve_by_rank_index_and_label() {
        let labels = vec![
            "cat".to_string(),
            "dog".to_string(),
            "Tabby Cat".to_string(),
        ];
        let logits = [0.5, 2.0, 1.0];
        assert_eq!(resolve_target("top1", &logits, &labels).unwrap(), 1);
        assert_eq!(resolve_target("2", &logits, &labels).unwrap(), 2);
        assert_eq!(resolve_target("tabby cat", &logits, &labels).unwrap(), 2);
        assert_eq!(
            resolve_target("3", &logits, &labels)
                .unwrap_err()
                .to_string(),
            "target class 3 is out of range: the model has 3 classes (valid: 0 to 2)"
        );
        assert_eq!(
            resolve_target("-1", &logits, &labels)
                .unwrap_err()
                .to_string(),
            "invalid option: target -1 is negative; class indices run from 0 to 2"
        );
        assert_eq!(resolve_targets("top2", &logits, &labels).unwrap(), [1, 2]);
        assert_eq!(
            resolve_targets("top9", &logits, &labels).unwrap(),
            [1, 2, 0]
        );
        assert_eq!(resolve_targets("cat", &logits, &labels).unwrap(), [0]);
        assert!(resolve_targets("top0", &logits, &labels).is_err());
        assert!(matches!(
            resolve_target("zebra", &logits, &labels),
            Err(Error::UnknownLabel(_))
        ));
    }

    #[test]
    fn ranking_and_softmax() {
        let r = ranked(&[0.0, (2.0f32).ln()], &[]);
        assert_eq!(r[0].index, 1);
        assert_eq!(r[0].label, "class 1");
        assert!((r[0].prob - 2.0 / 3.0).abs() < 1e-6);
    }
}
