//! The compute behind the three CPU endpoints: tokenization, embedding and a
//! small dense network.
//!
//! Everything here is plain, synchronous Rust written with rayon's parallel
//! primitives (`par_iter`, `par_chunks`, `scope`). *Where* it runs is decided
//! by the caller through a [`Dispatcher`](crate::dispatch::Dispatcher), so
//! every dispatch mode runs exactly the same arithmetic.
//!
//! - [`Tokenizer`]: the `cl100k_base` BPE vocabulary that ships inside the
//!   `tiktoken-rs` crate (no network), loaded once and shared.
//! - [`EmbedModel`]: hashed n-gram features of the token ids, two dense layers
//!   with `tanh`, L2 normalisation; a third layer combines a text embedding
//!   with a context embedding.
//! - [`InferModel`]: a multi-layer perceptron run over a batch with nested
//!   `par_chunks` (rows of the batch, then blocks of output neurons).
//!
//! Weights are pseudo-random but deterministic (a fixed seed), so results are
//! reproducible across runs and modes.

use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// A token id of the BPE vocabulary.
pub type TokenId = u32;

/// The `cl100k_base` byte-pair encoder, loaded once and cheap to clone.
#[derive(Clone)]
pub struct Tokenizer {
    bpe: Arc<tiktoken_rs::CoreBPE>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocabulary", &"cl100k_base")
            .finish()
    }
}

impl Tokenizer {
    /// Loads `cl100k_base` from the vocabulary compiled into `tiktoken-rs`.
    ///
    /// This parses about 100 000 ranks and compiles the split regex, so do it
    /// once at start-up and clone the result.
    pub fn cl100k_base() -> Result<Tokenizer, WorkloadError> {
        let bpe = tiktoken_rs::cl100k_base()
            .map_err(|e| WorkloadError::Tokenizer(format!("loading cl100k_base: {e}")))?;
        Ok(Tokenizer { bpe: Arc::new(bpe) })
    }

    /// Encodes one text (special tokens are treated as ordinary text).
    pub fn encode(&self, text: &str) -> Vec<TokenId> {
        self.bpe.encode_ordinary(text)
    }

    /// Decodes token ids back to text (lossy for ids that split a UTF-8
    /// character).
    pub fn decode(&self, tokens: &[TokenId]) -> Result<String, WorkloadError> {
        let bytes = self
            .bpe
            .decode_bytes(tokens)
            .map_err(|e| WorkloadError::Tokenizer(format!("decoding: {e:?}")))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Encodes a batch in parallel (`par_iter`), keeping the order.
    ///
    /// Runs on whichever rayon pool the calling thread belongs to.
    pub fn encode_batch(&self, texts: &[String]) -> Vec<Vec<TokenId>> {
        texts.par_iter().map(|text| self.encode(text)).collect()
    }
}

/// Errors from building the models.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// The BPE vocabulary could not be loaded or used.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
}

/// A deterministic pseudo-random generator (SplitMix64): fast, seedable, and
/// good enough for weights and synthetic load.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.0)
    }

    /// A float uniform in `[-1, 1)`.
    pub fn next_signed_unit(&mut self) -> f32 {
        // 24 random bits give every representable step of an f32 mantissa.
        let bits = (self.next_u64() >> 40) as u32;
        (bits as f32 / (1u32 << 23) as f32) - 1.0
    }

    /// An integer uniform in `0..n` (`n > 0`; tiny modulo bias is fine here).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// The SplitMix64 finaliser: a strong 64-bit mixing function.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The non-linearity applied after a dense layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `max(0, x)`.
    Relu,
    /// `tanh(x)`.
    Tanh,
    /// No activation (logits).
    Identity,
}

impl Activation {
    fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Relu => x.max(0.0),
            Activation::Tanh => x.tanh(),
            Activation::Identity => x,
        }
    }
}

/// A fully connected layer: `y = act(W x + b)`, `W` stored row-major
/// (`outputs × inputs`).
#[derive(Clone)]
pub struct Dense {
    inputs: usize,
    outputs: usize,
    weights: Vec<f32>,
    bias: Vec<f32>,
    activation: Activation,
}

impl std::fmt::Debug for Dense {
    // The shape, not the millions of weights.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dense")
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .field("activation", &self.activation)
            .finish_non_exhaustive()
    }
}

impl Dense {
    /// A layer with weights drawn uniformly from `±1/sqrt(inputs)` (so
    /// activations keep a sensible scale through the stack).
    pub fn random(
        inputs: usize,
        outputs: usize,
        activation: Activation,
        rng: &mut SplitMix64,
    ) -> Dense {
        let scale = 1.0 / (inputs.max(1) as f32).sqrt();
        let weights = (0..inputs * outputs)
            .map(|_| rng.next_signed_unit() * scale)
            .collect();
        let bias = (0..outputs).map(|_| rng.next_signed_unit() * 0.1).collect();
        Dense {
            inputs,
            outputs,
            weights,
            bias,
            activation,
        }
    }

    /// Number of inputs.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Number of outputs.
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// Computes outputs `first .. first + out.len()` of this layer for one
    /// input vector `x` (`x.len() == inputs`).
    fn forward_rows(&self, x: &[f32], first: usize, out: &mut [f32]) {
        debug_assert_eq!(x.len(), self.inputs);
        for (k, y) in out.iter_mut().enumerate() {
            let row = first + k;
            let w = &self.weights[row * self.inputs..(row + 1) * self.inputs];
            *y = self.activation.apply(self.bias[row] + dot(w, x));
        }
    }

    /// The layer applied to one vector, sequentially.
    pub fn forward(&self, x: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0; self.outputs];
        self.forward_rows(x, 0, &mut out);
        out
    }
}

/// Dot product with four independent accumulators (lets the compiler
/// vectorise without `-ffast-math` style reassociation).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 4];
    let chunks_a = a.chunks_exact(4);
    let chunks_b = b.chunks_exact(4);
    let tail: f32 = chunks_a
        .remainder()
        .iter()
        .zip(chunks_b.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (ca, cb) in chunks_a.zip(chunks_b) {
        for i in 0..4 {
            acc[i] += ca[i] * cb[i];
        }
    }
    acc[0] + acc[1] + acc[2] + acc[3] + tail
}

/// Scales `v` to unit length (leaves an all-zero vector alone).
pub fn l2_normalize(v: &mut [f32]) {
    let norm = dot(v, v).sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Cosine similarity of two unit vectors (their dot product).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    dot(a, b)
}

/// Sizes of the embedding model.
pub const FEATURE_DIM: usize = 4096;
/// Width of the embedding model's hidden layer.
pub const EMBED_HIDDEN: usize = 512;
/// Length of an embedding vector.
pub const EMBED_DIM: usize = 128;

/// Turns token ids into text embeddings: signed feature hashing of uni-, bi-
/// and trigrams into [`FEATURE_DIM`] buckets, then two `tanh` layers down to
/// [`EMBED_DIM`], then L2 normalisation. Separate towers embed the text and
/// its context; [`EmbedModel::combine`] merges the two.
#[derive(Debug, Clone)]
pub struct EmbedModel {
    text_tower: [Dense; 2],
    context_tower: [Dense; 2],
    combine: Dense,
}

/// Which tower of the [`EmbedModel`] to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tower {
    /// The tower for the main text.
    Text,
    /// The tower for the surrounding context.
    Context,
}

impl EmbedModel {
    /// The model with weights from a fixed seed.
    pub fn new(seed: u64) -> EmbedModel {
        let mut rng = SplitMix64::new(seed);
        let tower = |rng: &mut SplitMix64| {
            [
                Dense::random(FEATURE_DIM, EMBED_HIDDEN, Activation::Tanh, rng),
                Dense::random(EMBED_HIDDEN, EMBED_DIM, Activation::Tanh, rng),
            ]
        };
        let text_tower = tower(&mut rng);
        let context_tower = tower(&mut rng);
        let combine = Dense::random(2 * EMBED_DIM, EMBED_DIM, Activation::Tanh, &mut rng);
        EmbedModel {
            text_tower,
            context_tower,
            combine,
        }
    }

    /// Hashed n-gram features of a token sequence, L2-normalised.
    pub fn features(tokens: &[TokenId]) -> Vec<f32> {
        let mut features = vec![0.0f32; FEATURE_DIM];
        let mut add = |key: u64, weight: f32| {
            let h = mix64(key);
            let bucket = (h % FEATURE_DIM as u64) as usize;
            let sign = if h >> 63 == 0 { 1.0 } else { -1.0 };
            features[bucket] += sign * weight;
        };
        for (i, &t) in tokens.iter().enumerate() {
            add(u64::from(t) | 1 << 40, 1.0);
            if i >= 1 {
                add(u64::from(tokens[i - 1]) << 20 ^ u64::from(t) | 2 << 40, 0.5);
            }
            if i >= 2 {
                let key = (u64::from(tokens[i - 2]) << 40)
                    ^ (u64::from(tokens[i - 1]) << 20)
                    ^ u64::from(t);
                add(key.rotate_left(7) | 3 << 60, 0.25);
            }
        }
        l2_normalize(&mut features);
        features
    }

    /// The unit-length embedding of `tokens` through one tower.
    pub fn embed(&self, tower: Tower, tokens: &[TokenId]) -> Vec<f32> {
        let layers = match tower {
            Tower::Text => &self.text_tower,
            Tower::Context => &self.context_tower,
        };
        let features = Self::features(tokens);
        let hidden = layers[0].forward(&features);
        let mut out = layers[1].forward(&hidden);
        l2_normalize(&mut out);
        out
    }

    /// Merges a text and a context embedding into one unit vector.
    pub fn combine(&self, text: &[f32], context: &[f32]) -> Vec<f32> {
        let mut joined = Vec::with_capacity(text.len() + context.len());
        joined.extend_from_slice(text);
        joined.extend_from_slice(context);
        let mut out = self.combine.forward(&joined);
        l2_normalize(&mut out);
        out
    }
}

/// Input width of the inference network.
pub const INFER_INPUT: usize = 64;
/// Hidden width of the inference network.
pub const INFER_HIDDEN: usize = 768;
/// Number of classes the inference network scores.
pub const INFER_CLASSES: usize = 16;
/// Output neurons computed by one task inside a layer.
const NEURON_BLOCK: usize = 64;

/// A multi-layer perceptron `64 → 768 → 768 → 16` with ReLU and a softmax.
#[derive(Debug, Clone)]
pub struct InferModel {
    layers: Vec<Dense>,
}

/// The scores of one input row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The most likely class.
    pub class: usize,
    /// Softmax probabilities, one per class.
    pub probabilities: Vec<f32>,
}

impl InferModel {
    /// The network with weights from a fixed seed.
    pub fn new(seed: u64) -> InferModel {
        let mut rng = SplitMix64::new(seed);
        let layers = vec![
            Dense::random(INFER_INPUT, INFER_HIDDEN, Activation::Relu, &mut rng),
            Dense::random(INFER_HIDDEN, INFER_HIDDEN, Activation::Relu, &mut rng),
            Dense::random(INFER_HIDDEN, INFER_CLASSES, Activation::Identity, &mut rng),
        ];
        InferModel { layers }
    }

    /// Width of an input row.
    pub fn input_width(&self) -> usize {
        self.layers[0].inputs()
    }

    /// Runs a batch (`rows.len()` rows, each [`INFER_INPUT`] wide) through
    /// the network. Nested parallelism: the batch is split into chunks of
    /// rows, and inside each layer the output neurons are split into blocks,
    /// both with `par_chunks`, so rayon balances small and large batches.
    pub fn predict(&self, rows: &[Vec<f32>]) -> Vec<Prediction> {
        let width = self.input_width();
        let mut activations: Vec<f32> = Vec::with_capacity(rows.len() * width);
        for row in rows {
            activations.extend_from_slice(row);
        }
        for layer in &self.layers {
            let mut next = vec![0.0f32; rows.len() * layer.outputs()];
            next.par_chunks_mut(layer.outputs())
                .zip(activations.par_chunks(layer.inputs()))
                .for_each(|(out_row, in_row)| {
                    out_row
                        .par_chunks_mut(NEURON_BLOCK)
                        .enumerate()
                        .for_each(|(block, out)| {
                            layer.forward_rows(in_row, block * NEURON_BLOCK, out)
                        });
                });
            activations = next;
        }
        activations
            .chunks(INFER_CLASSES)
            .map(|logits| {
                let probabilities = softmax(logits);
                let class = probabilities
                    .iter()
                    .enumerate()
                    .fold(
                        (0, f32::MIN),
                        |best, (i, &p)| if p > best.1 { (i, p) } else { best },
                    )
                    .0;
                Prediction {
                    class,
                    probabilities,
                }
            })
            .collect()
    }
}

/// Numerically stable softmax.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::MIN, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&x| (x - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// Everything the endpoints compute with, built once and shared by `Arc`.
#[derive(Debug)]
pub struct Models {
    /// The BPE tokenizer.
    pub tokenizer: Tokenizer,
    /// The embedding towers.
    pub embed: EmbedModel,
    /// The classifier network.
    pub infer: InferModel,
}

impl Models {
    /// Loads the tokenizer and builds the networks (fixed seeds).
    pub fn load() -> Result<Arc<Models>, WorkloadError> {
        Ok(Arc::new(Models {
            tokenizer: Tokenizer::cl100k_base()?,
            embed: EmbedModel::new(0x5EED_E3BE_D000_0001),
            infer: InferModel::new(0x5EED_1AFE_0000_0002),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sequential_predict(model: &InferModel, row: &[f32]) -> Vec<f32> {
        let mut x = row.to_vec();
        for layer in &model.layers {
            x = layer.forward(&x);
        }
        softmax(&x)
    }

    #[test]
    fn dot_matches_naive_sum() {
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..37).map(|i| 1.0 - i as f32 * 0.1).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-3);
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let p = softmax(&[1.0, 3.0, 2.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[1] > p[2] && p[2] > p[0]);
    }

    #[test]
    fn parallel_predict_matches_sequential() {
        let model = InferModel::new(7);
        let mut rng = SplitMix64::new(1);
        let rows: Vec<Vec<f32>> = (0..5)
            .map(|_| (0..INFER_INPUT).map(|_| rng.next_signed_unit()).collect())
            .collect();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let predictions = pool.install(|| model.predict(&rows));
        assert_eq!(predictions.len(), rows.len());
        for (p, row) in predictions.iter().zip(&rows) {
            let expected = sequential_predict(&model, row);
            for (a, b) in p.probabilities.iter().zip(&expected) {
                assert!((a - b).abs() < 1e-5, "{a} vs {b}");
            }
            assert!(p.class < INFER_CLASSES);
        }
    }

    #[test]
    fn embeddings_are_unit_length_and_deterministic() {
        let model = EmbedModel::new(3);
        let tokens: Vec<TokenId> = (0..200).map(|i| (i * 7919) % 100_000).collect();
        let a = model.embed(Tower::Text, &tokens);
        let b = model.embed(Tower::Text, &tokens);
        assert_eq!(a, b);
        assert_eq!(a.len(), EMBED_DIM);
        assert!((dot(&a, &a) - 1.0).abs() < 1e-4);
        let c = model.embed(Tower::Context, &tokens);
        assert_ne!(a, c, "the two towers have different weights");
        let joined = model.combine(&a, &c);
        assert!((dot(&joined, &joined) - 1.0).abs() < 1e-4);
    }

    #[test]
    fn debug_output_shows_shapes_not_weights() {
        let text = format!("{:?}", InferModel::new(1));
        assert!(text.contains("inputs: 64") && text.len() < 1000, "{text}");
    }

    #[test]
    fn empty_text_embeds_without_nan() {
        let model = EmbedModel::new(3);
        let e = model.embed(Tower::Text, &[]);
        assert!(e.iter().all(|x| x.is_finite()));
    }

    #[test]
    fn tokenizer_round_trips() {
        let tok = Tokenizer::cl100k_base().unwrap();
        let text = "Tokio runs I/O; Rayon runs compute. ☕ 12345";
        let ids = tok.encode(text);
        assert!(!ids.is_empty());
        assert_eq!(tok.decode(&ids).unwrap(), text);
        // A well-known cl100k_base id: "hello" is 15339.
        assert_eq!(tok.encode("hello"), vec![15339]);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let texts = vec!["a b c".to_string(), text.to_string(), String::new()];
        let batch = pool.install(|| tok.encode_batch(&texts));
        assert_eq!(batch[1], ids);
        assert!(batch[2].is_empty());
    }
}
