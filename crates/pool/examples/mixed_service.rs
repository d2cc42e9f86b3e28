//! Pattern 3 of `docs/guide.md`, written so that it compiles and runs: an
//! LLM-style service whose three loops share one compute pool.
//!
//! - tokenization: parallel iterators over a batch of texts (`install`);
//! - embeddings: two stages computed in parallel inside one `rayon::scope`,
//!   each task writing its own local (`let (a, b) = (&mut x, &mut y)`), read
//!   after the scope;
//! - batch inference: nested parallelism: a scope task per request, each
//!   preprocessing its data with `par_chunks` and running its stages in a
//!   nested scope.
//!
//! Each loop receives its work from an async channel (standing in for the
//! network), runs the CPU part on the pool, and sends results on.
//!
//! Run with `cargo run -p compute-pool --example mixed_service`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use compute_pool::{ComputeConfig, ComputePool};
use rayon::prelude::*;
use tokio::sync::mpsc;

/// A tiny word-piece tokenizer: known words map to ids; unknown words are
/// split into 3-byte pieces hashed into the id space.
struct Tokenizer {
    vocab: HashMap<String, u32>,
}

impl Tokenizer {
    fn new() -> Tokenizer {
        let words = "the a of and to in is for on with as by at from that this be are was it";
        let vocab = words
            .split(' ')
            .enumerate()
            .map(|(i, w)| (w.to_owned(), i as u32))
            .collect();
        Tokenizer { vocab }
    }

    fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::new();
        for word in text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            let lower = word.to_lowercase();
            match self.vocab.get(&lower) {
                Some(&id) => ids.push(id),
                None => ids.extend(lower.as_bytes().chunks(3).map(|piece| {
                    let h = piece.iter().fold(0x811C_9DC5u32, |h, &b| {
                        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
                    });
                    1000 + h % 30_000
                })),
            }
        }
        ids
    }
}

const DIM: usize = 64;

/// A deterministic "embedding": token ids scattered into a vector, mixed by
/// a few rounds of a dense layer.
fn embed(tokens: &[u32], salt: u32) -> Vec<f32> {
    let mut v = vec![0f32; DIM];
    for (i, t) in tokens.iter().enumerate() {
        v[(*t as usize + i) % DIM] += ((t ^ salt) % 97) as f32 / 97.0;
    }
    for round in 0..100 {
        let prev = v.clone();
        for (j, out) in v.iter_mut().enumerate() {
            let mut acc = 0f32;
            for (k, x) in prev.iter().enumerate() {
                acc += x * (((j * 31 + k * 17 + round) % 13) as f32 - 6.0) / 12.0;
            }
            *out = acc.tanh();
        }
    }
    v
}

fn combine_embeddings(a: Vec<f32>, b: Vec<f32>) -> Vec<f32> {
    a.iter().zip(&b).map(|(x, y)| 0.7 * x + 0.3 * y).collect()
}

/// One inference request: raw features.
struct InferenceItem {
    data: Vec<f32>,
}

fn preprocess(chunk: &[f32]) -> Vec<f32> {
    let max = chunk.iter().cloned().fold(f32::MIN, f32::max).max(1e-6);
    chunk.iter().map(|x| x / max).collect()
}

fn run_inference(features: &[f32]) -> f32 {
    let mut acc = 0f32;
    for _ in 0..200 {
        for (i, x) in features.iter().enumerate() {
            acc = (acc + x * (i as f32 + 1.0)).sin();
        }
    }
    acc
}

fn merge_stages(stages: &[f32]) -> f32 {
    stages.iter().sum::<f32>() / stages.len().max(1) as f32
}

struct EmbeddingRequest {
    text: String,
    context: String,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let pool = Arc::new(ComputePool::new(ComputeConfig {
        num_threads: Some(2),
        thread_name_prefix: "service".into(),
        ..Default::default()
    })?);
    let tokenizer = Arc::new(Tokenizer::new());
    let started = Instant::now();
    const ROUNDS: usize = 8;

    // Tokenization service: parallel iterators.
    let (texts_tx, mut texts_rx) = mpsc::channel::<Vec<String>>(4);
    let tokenization = tokio::spawn({
        let (pool, tokenizer) = (pool.clone(), tokenizer.clone());
        async move {
            let mut tokens_out = 0usize;
            while let Some(texts) = texts_rx.recv().await {
                let tokenizer = tokenizer.clone();
                let tokens = pool
                    .install(move || {
                        texts
                            .par_iter()
                            .map(|text| tokenizer.encode(text))
                            .collect::<Vec<_>>()
                    })
                    .await?;
                tokens_out += tokens.iter().map(Vec::len).sum::<usize>();
            }
            Ok::<_, compute_pool::ComputeError>(tokens_out)
        }
    });

    // Embedding service: two stages in one scope, writing disjoint locals.
    let (emb_tx, mut emb_rx) = mpsc::channel::<EmbeddingRequest>(4);
    let embeddings = tokio::spawn({
        let (pool, tokenizer) = (pool.clone(), tokenizer.clone());
        async move {
            let mut norms = Vec::new();
            while let Some(request) = emb_rx.recv().await {
                let tokenizer = tokenizer.clone();
                let embedding = pool
                    .install(move || {
                        let mut text_emb = None;
                        let mut context_emb = None;
                        rayon::scope(|scope| {
                            let (text_slot, context_slot) = (&mut text_emb, &mut context_emb);
                            let (tok, req) = (&tokenizer, &request);
                            scope.spawn(move |_| {
                                *text_slot = Some(embed(&tok.encode(&req.text), 1));
                            });
                            scope.spawn(move |_| {
                                *context_slot = Some(embed(&tok.encode(&req.context), 2));
                            });
                        });
                        // The scope waited for both tasks.
                        combine_embeddings(text_emb.unwrap(), context_emb.unwrap())
                    })
                    .await?;
                norms.push(embedding.iter().map(|x| x * x).sum::<f32>().sqrt());
            }
            Ok::<_, compute_pool::ComputeError>(norms)
        }
    });

    // Batch inference service: nested parallelism.
    let (batch_tx, mut batch_rx) = mpsc::channel::<Vec<InferenceItem>>(4);
    let inference = tokio::spawn({
        let pool = pool.clone();
        async move {
            let mut scores = Vec::new();
            while let Some(batch) = batch_rx.recv().await {
                let results = pool
                    .install(move || {
                        let mut results = vec![0f32; batch.len()];
                        rayon::scope(|scope| {
                            // One task per request, each owning its result slot.
                            for (slot, item) in results.iter_mut().zip(&batch) {
                                scope.spawn(move |_| {
                                    // Within each task, parallel iterators...
                                    let preprocessed: Vec<Vec<f32>> =
                                        item.data.par_chunks(10).map(preprocess).collect();
                                    // ...and a nested scope for the stages.
                                    let mut stages = vec![0f32; preprocessed.len()];
                                    rayon::scope(|s2| {
                                        for (stage, p) in stages.iter_mut().zip(&preprocessed) {
                                            s2.spawn(move |_| *stage = run_inference(p));
                                        }
                                    });
                                    *slot = merge_stages(&stages);
                                });
                            }
                        });
                        results
                    })
                    .await?;
                scores.extend(results);
            }
            Ok::<_, compute_pool::ComputeError>(scores)
        }
    });

    // The "network": feed every service, concurrently.
    let feeder = async {
        for round in 0..ROUNDS {
            let texts = (0..200)
                .map(|i| {
                    format!(
                        "Request {round}-{i}: the tokenizer splits unfamiliar words into pieces"
                    )
                })
                .collect();
            texts_tx.send(texts).await.expect("tokenizer running");
            emb_tx
                .send(EmbeddingRequest {
                    text: format!("query number {round} about compute pools"),
                    context: "tokio handles io while rayon crunches numbers".repeat(4),
                })
                .await
                .expect("embedder running");
            let batch = (0..6)
                .map(|i| InferenceItem {
                    data: (0..120)
                        .map(|k| ((k * 13 + i * 7 + round) % 50) as f32)
                        .collect(),
                })
                .collect();
            batch_tx.send(batch).await.expect("inference running");
        }
        drop((texts_tx, emb_tx, batch_tx));
    };
    feeder.await;

    let (tokens, norms, scores) = tokio::join!(tokenization, embeddings, inference);
    let (tokens, norms, scores) = (tokens??, norms??, scores??);
    println!("tokenization: {tokens} tokens from {} texts", ROUNDS * 200);
    println!(
        "embeddings:   {} vectors of {DIM}, mean norm {:.3}",
        norms.len(),
        norms.iter().sum::<f32>() / norms.len() as f32
    );
    println!(
        "inference:    {} scores, first {:.4}",
        scores.len(),
        scores[0]
    );
    println!("elapsed:      {:?}", started.elapsed());
    println!("metrics:      {}", pool.metrics());
    assert_eq!((norms.len(), scores.len()), (ROUNDS, ROUNDS * 6));
    assert_eq!(pool.metrics().tasks_active(), 0);
    Ok(())
}
