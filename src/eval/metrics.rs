//! Retrieval and answer metrics, as the benchmarks define them: nDCG@k with
//! graded relevance (BEIR, the trec_eval formula), recall@k, MRR@k, and SQuAD
//! v1.1's exact match and token F1 after its normalisation.

use std::collections::{HashMap, HashSet};

/// nDCG@k of a ranking (ids best first, duplicates already removed) against
/// graded judgements (id → gain > 0).
pub fn ndcg_at(k: usize, ranked: &[String], relevant: &HashMap<String, u32>) -> f64 {
    let dcg: f64 = ranked
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, id)| f64::from(relevant.get(id).copied().unwrap_or(0)) / (i as f64 + 2.0).log2())
        .sum();
    let mut ideal: Vec<u32> = relevant.values().copied().collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg: f64 = ideal
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, gain)| f64::from(*gain) / (i as f64 + 2.0).log2())
        .sum();
    if idcg == 0.0 { 0.0 } else { dcg / idcg }
}

/// Share of the relevant ids found in the first k.
pub fn recall_at(k: usize, ranked: &[String], relevant: &HashSet<String>) -> f64 {
    if relevant.is_empty() {
        return 0.0;
    }
    let found = ranked.iter().take(k).filter(|id| relevant.contains(*id)).count();
    found as f64 / relevant.len() as f64
}

/// 1 / rank of the first relevant id within k, else 0.
pub fn reciprocal_rank_at(k: usize, ranked: &[String], relevant: &HashSet<String>) -> f64 {
    ranked
        .iter()
        .take(k)
        .position(|id| relevant.contains(id))
        .map_or(0.0, |i| 1.0 / (i as f64 + 1.0))
}

/// Keeps the first occurrence of each id (chunks of one document count once).
pub fn dedup_ranked(ids: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut seen = HashSet::new();
    ids.into_iter().filter(|id| seen.insert(id.clone())).collect()
}

/// SQuAD's normalisation: lower case, no punctuation, no articles, single spaces.
pub fn normalize_answer(text: &str) -> String {
    let lowered: String = text.to_lowercase().chars().filter(|c| !is_punctuation(*c)).collect();
    lowered
        .split_whitespace()
        .filter(|word| !matches!(*word, "a" | "an" | "the"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Python's `string.punctuation` (what the official script strips), plus
/// the Unicode punctuation that Wikipedia text is full of.
fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation() || (!c.is_ascii() && !c.is_alphanumeric() && !c.is_whitespace())
}

pub fn exact_match(prediction: &str, gold: &str) -> bool {
    normalize_answer(prediction) == normalize_answer(gold)
}

/// Token F1 between a prediction and one gold answer.
pub fn f1(prediction: &str, gold: &str) -> f64 {
    let prediction = normalize_answer(prediction);
    let gold = normalize_answer(gold);
    let predicted: Vec<&str> = prediction.split_whitespace().collect();
    let expected: Vec<&str> = gold.split_whitespace().collect();
    if predicted.is_empty() || expected.is_empty() {
        return f64::from(u8::from(predicted == expected));
    }
    let mut counts: HashMap<&str, i32> = HashMap::new();
    for token in &expected {
        *counts.entry(token).or_default() += 1;
    }
    let mut common = 0;
    for token in &predicted {
        if let Some(count) = counts.get_mut(token)
            && *count > 0
        {
            *count -= 1;
            common += 1;
        }
    }
    if common == 0 {
        return 0.0;
    }
    let precision = f64::from(common) / predicted.len() as f64;
    let recall = f64::from(common) / expected.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

/// Whether the prediction contains a gold answer, both normalised, on word boundaries.
pub fn contains_answer(prediction: &str, gold: &str) -> bool {
    let gold = normalize_answer(gold);
    if gold.is_empty() {
        return false;
    }
    format!(" {} ", normalize_answer(prediction)).contains(&format!(" {gold} "))
}

/// The value at quantile `q` (0..=1) of the samples, nearest rank.
pub fn percentile(samples: &[f64], q: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ndcg_matches_the_formula() {
        let relevant: HashMap<String, u32> = [("a".to_string(), 1), ("b".to_string(), 1)].into();
        assert!((ndcg_at(10, &ids(&["a", "b", "c"]), &relevant) - 1.0).abs() < 1e-12);
        // One relevant at rank 2 of two: (1/log2 3) / (1 + 1/log2 3).
        let expected = (1.0 / 3f64.log2()) / (1.0 + 1.0 / 3f64.log2());
        assert!((ndcg_at(10, &ids(&["x", "a"]), &relevant) - expected).abs() < 1e-12);
        assert_eq!(ndcg_at(1, &ids(&["x", "a"]), &relevant), 0.0);
        assert_eq!(ndcg_at(10, &ids(&["x"]), &HashMap::new()), 0.0);
    }

    #[test]
    fn recall_and_reciprocal_rank() {
        let relevant: HashSet<String> = ["a".to_string(), "b".to_string()].into();
        let ranked = ids(&["x", "a", "y", "b"]);
        assert_eq!(recall_at(2, &ranked, &relevant), 0.5);
        assert_eq!(recall_at(4, &ranked, &relevant), 1.0);
        assert_eq!(reciprocal_rank_at(10, &ranked, &relevant), 0.5);
        assert_eq!(reciprocal_rank_at(1, &ranked, &relevant), 0.0);
        assert_eq!(dedup_ranked(ids(&["a", "a", "b", "a"])), ids(&["a", "b"]));
    }

    #[test]
    fn squad_scoring_follows_the_official_definition() {
        assert_eq!(normalize_answer("The  Denver Broncos!"), "denver broncos");
        assert!(exact_match("the Denver Broncos", "Denver Broncos."));
        assert!((f1("Denver Broncos won", "Denver Broncos") - 0.8).abs() < 1e-12);
        assert_eq!(f1("Carolina", "Denver Broncos"), 0.0);
        assert!(contains_answer("In 2016 the Denver Broncos won.", "Denver Broncos"));
        assert!(!contains_answer("Denverite Broncos", "Denver Broncos"));
        assert!(!contains_answer("anything", "the"));
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&samples, 0.5), 50.0);
        assert_eq!(percentile(&samples, 0.99), 99.0);
        assert_eq!(percentile(&samples, 1.0), 100.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
        assert_eq!(mean(&[1.0, 2.0]), 1.5);
    }
}
