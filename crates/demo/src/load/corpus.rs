//! The request bodies the load generator sends: generated up front from a
//! seed, so the clients spend their time sending, not formatting JSON.

use axum::body::Bytes;
use serde::{Deserialize, Serialize};

use super::Endpoint;
use crate::workloads::{SplitMix64, INFER_INPUT};

const WORDS: &[&str] = &[
    "the",
    "runtime",
    "schedules",
    "tasks",
    "across",
    "worker",
    "threads",
    "while",
    "compute",
    "pool",
    "handles",
    "batches",
    "of",
    "tokens",
    "embedding",
    "vectors",
    "and",
    "matrix",
    "products",
    "a",
    "request",
    "arrives",
    "over",
    "network",
    "is",
    "parsed",
    "queued",
    "answered",
    "latency",
    "throughput",
    "stays",
    "low",
    "when",
    "blocking",
    "work",
    "moves",
    "off",
    "async",
    "executor",
    "rayon",
    "steals",
    "jobs",
    "from",
    "busy",
    "neighbours",
    "tokio",
    "polls",
    "futures",
    "wakes",
    "sleeping",
    "threads",
    "only",
    "needed",
    "model",
    "inference",
    "layer",
    "weights",
    "bias",
    "activation",
    "softmax",
    "gradient",
    "numbers",
    "like",
    "42",
    "3.14159",
    "2026",
    "and",
    "unicode",
    "café",
    "naïve",
    "Zürich",
    "東京",
    "données",
    "ñandú",
    "emoji",
    "🚀",
    "—",
    "HTTP/1.1",
    "JSON",
    "{\"key\":",
    "[1,2,3]",
    "user@example.com",
    "https://example.invalid/path?q=1",
    "snake_case_identifier",
    "CamelCaseName",
    "fn",
    "main()",
    "let",
    "mut",
    "x",
    "=",
    "vec![0;",
    "64];",
    "println!",
    "error:",
    "warning:",
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "lorem",
    "ipsum",
    "dolor",
    "sit",
];

fn sentence(rng: &mut SplitMix64, words: usize) -> String {
    let mut text = String::new();
    for i in 0..words {
        if i > 0 {
            text.push(' ');
        }
        text.push_str(WORDS[rng.below(WORDS.len())]);
        if rng.below(11) == 0 {
            text.push_str([",", ".", ";", "!", "?"][rng.below(5)]);
        }
    }
    text
}

/// How big the generated requests are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestSize {
    /// The default run: 64 texts per `/tokenize`, a 200-500 word context
    /// per `/embed`, 32 rows per `/infer` (a few milliseconds of compute
    /// each in a release build).
    #[default]
    Full,
    /// `--quick`: 8 texts, a 50-100 word context, 4 rows (so that even an
    /// unoptimised build answers every endpoint within seconds).
    Light,
}

impl RequestSize {
    /// Texts per `/tokenize` request.
    pub fn tokenize_batch(self) -> usize {
        match self {
            RequestSize::Full => 64,
            RequestSize::Light => 8,
        }
    }

    /// Rows per `/infer` request.
    pub fn infer_batch(self) -> usize {
        match self {
            RequestSize::Full => 32,
            RequestSize::Light => 4,
        }
    }

    /// Range of words in an `/embed` context.
    fn context_words(self) -> (usize, usize) {
        match self {
            RequestSize::Full => (200, 300),
            RequestSize::Light => (50, 50),
        }
    }
}

/// Pre-built request bodies, so the load generator spends its time sending,
/// not formatting JSON.
#[derive(Debug, Clone)]
pub struct Corpus {
    bodies: [Vec<Bytes>; 3],
}

impl Corpus {
    /// Distinct bodies per endpoint.
    const VARIANTS: usize = 32;

    /// A corpus from a seed (the same seed and size give the same bodies).
    pub fn generate(seed: u64, size: RequestSize) -> Corpus {
        let mut rng = SplitMix64::new(seed);
        let mut tokenize = Vec::with_capacity(Self::VARIANTS);
        let mut embed = Vec::with_capacity(Self::VARIANTS);
        let mut infer = Vec::with_capacity(Self::VARIANTS);
        let (context_min, context_spread) = size.context_words();
        for _ in 0..Self::VARIANTS {
            let texts: Vec<String> = (0..size.tokenize_batch())
                .map(|_| {
                    let words = 40 + rng.below(80);
                    sentence(&mut rng, words)
                })
                .collect();
            tokenize.push(json_bytes(
                &serde_json::json!({ "texts": texts, "return_ids": true }),
            ));
            let text_words = 30 + rng.below(50);
            let context_words = context_min + rng.below(context_spread);
            let text = sentence(&mut rng, text_words);
            let context = sentence(&mut rng, context_words);
            embed.push(json_bytes(
                &serde_json::json!({ "text": text, "context": context }),
            ));
            let inputs: Vec<Vec<f32>> = (0..size.infer_batch())
                .map(|_| (0..INFER_INPUT).map(|_| rng.next_signed_unit()).collect())
                .collect();
            infer.push(json_bytes(&serde_json::json!({ "inputs": inputs })));
        }
        Corpus {
            bodies: [tokenize, embed, infer],
        }
    }

    /// The `n`-th body for a compute endpoint (cycles), `None` for `/ping`.
    pub fn body(&self, endpoint: Endpoint, n: usize) -> Option<Bytes> {
        let bodies = self.bodies.get(endpoint.index())?;
        Some(bodies[n % bodies.len()].clone())
    }
}

fn json_bytes(value: &serde_json::Value) -> Bytes {
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_is_deterministic_and_valid_json() {
        let a = Corpus::generate(1, RequestSize::Light);
        let b = Corpus::generate(1, RequestSize::Light);
        for endpoint in Endpoint::COMPUTE {
            let body = a.body(endpoint, 5).unwrap();
            assert_eq!(body, b.body(endpoint, 5).unwrap());
            let _: serde_json::Value = serde_json::from_slice(&body).unwrap();
        }
        assert!(a.body(Endpoint::Ping, 0).is_none());
    }
}
