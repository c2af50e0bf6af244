//! The urgency model: the encoder's embedding of a message, then a logistic-regression head
//! trained on switchboard's labelled sets (`switchboard train-urgency`), giving the probability
//! that a contact-center supervisor would want the message answered first, and the topics of
//! the labelled examples nearest to it (for the reason's detail).
//!
//! **Training** is deterministic: full-batch gradient descent from zero weights for a fixed
//! number of steps, the two classes weighted to count equally, L2 regularization; the same
//! embeddings give the same head, bit for bit. The regularization is chosen by leave-one-set-out
//! cross-validation over the training sets (each set, written at another time, stands for
//! messages the model has not seen); so are the thresholds at which the model raises or lowers
//! a keyword verdict (see [`Head::raise_at`]), on the out-of-fold probabilities.

use serde::{Deserialize, Serialize};
use switchboard_core::priority::{Assessment, UrgencyModel};

use crate::{Encoder, ModelError};

/// The head switchboard ships, trained by `switchboard train-urgency`.
pub const SHIPPED_HEAD: &str = include_str!("../../../config/urgency-head.json");

/// The encoder and its head: switchboard's [`UrgencyModel`].
#[derive(Debug)]
pub struct Urgency {
    encoder: Encoder,
    head: Head,
}

impl Urgency {
    /// The model of `encoder` with the head in `head_json` (the text of a head file).
    pub fn new(encoder: Encoder, head_json: &str) -> Result<Self, ModelError> {
        let head: Head = serde_json::from_str(head_json)
            .map_err(|e| ModelError::Format(format!("the urgency head: {e}")))?;
        if head.weights.len() != encoder.dim()
            || head.topics.iter().any(|(_, m)| m.len() != encoder.dim())
        {
            return Err(ModelError::Format(format!(
                "the urgency head has {} weights for an encoder of {}",
                head.weights.len(),
                encoder.dim()
            )));
        }
        Ok(Self { encoder, head })
    }

    /// The model file at `path` with the shipped head.
    pub fn open(path: &std::path::Path) -> Result<Self, ModelError> {
        Self::new(Encoder::open(path)?, SHIPPED_HEAD)
    }

    /// The head.
    pub fn head(&self) -> &Head {
        &self.head
    }
}

/// The pieces of a message the urgency model reads: its beginning (about 90 words), where a
/// customer says what is wrong. The bound keeps the prioritizer's time per message bounded,
/// whatever a hostile or very long e-mail holds: the encoder's cost grows faster than its
/// length (arm64: 0.95 G instructions for 30 pieces, 4.6 G for 125, 15 G for 298), and 128
/// pieces keep a batch of ten within the prioritizer's timeout (BENCHMARKS.md, section 8).
/// Every labelled example is shorter.
pub const MODEL_TOKENS: usize = 128;

/// The embedding the model reads of `text`: the first [`MODEL_TOKENS`] pieces. Training and
/// assessing both use it.
pub fn embedding(encoder: &Encoder, text: &str) -> Vec<f32> {
    encoder.embed_head(text, MODEL_TOKENS)
}

impl UrgencyModel for Urgency {
    fn assess(&self, text: &str) -> Assessment {
        let embedding = embedding(&self.encoder, text);
        let probability = self.head.probability(&embedding);
        Assessment {
            probability,
            raise: probability >= self.head.raise_at,
            lower: probability < self.head.lower_at,
            topics: self.head.nearest_topics(&embedding, 2),
        }
    }
}

/// The head of the model, as `config/urgency-head.json` keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Head {
    /// The SHA-256 of the model file the head was trained on.
    pub model_sha256: String,
    /// The sets it was trained on, with their lines.
    pub trained_on: Vec<(String, usize)>,
    /// The L2 regularization chosen.
    pub lambda: f64,
    /// The logistic regression's weights, one per embedding dimension.
    pub weights: Vec<f64>,
    /// Its bias.
    pub bias: f64,
    /// From this probability on, the model raises a message to at least P2.
    pub raise_at: f64,
    /// Below this probability, the model lowers a P2 that rests on content words alone.
    pub lower_at: f64,
    /// The mean embedding of the training examples of each topic.
    pub topics: Vec<(String, Vec<f64>)>,
}

/// One labelled example.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// The set it comes from.
    pub set: String,
    /// Its text.
    pub text: String,
    /// Whether it is urgent (P1 or P2).
    pub urgent: bool,
    /// Whether it is a public comment or mention (the word lists weigh a public complaint
    /// more).
    pub public: bool,
    /// Its topic.
    pub topic: String,
}

/// Steps of gradient descent.
const STEPS: usize = 500;
/// The step size (on standardized dimensions).
const RATE: f64 = 0.05;
/// The regularizations tried.
pub const LAMBDAS: [f64; 5] = [1e-3, 3e-3, 1e-2, 3e-2, 1e-1];

impl Head {
    /// The probability that an embedding's message is urgent.
    pub fn probability(&self, embedding: &[f32]) -> f64 {
        sigmoid(self.logit(embedding))
    }

    fn logit(&self, embedding: &[f32]) -> f64 {
        self.bias
            + self
                .weights
                .iter()
                .zip(embedding)
                .map(|(w, x)| w * f64::from(*x))
                .sum::<f64>()
    }

    /// The topics nearest to an embedding, nearest first (cosine with the topic means).
    pub fn nearest_topics(&self, embedding: &[f32], n: usize) -> Vec<String> {
        let mut scored: Vec<(f64, &str)> = self
            .topics
            .iter()
            .map(|(topic, mean)| {
                let norm = mean.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
                let dot: f64 = mean
                    .iter()
                    .zip(embedding)
                    .map(|(m, x)| m * f64::from(*x))
                    .sum();
                (dot / norm, topic.as_str())
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
        scored
            .into_iter()
            .take(n)
            .map(|(_, t)| t.to_owned())
            .collect()
    }
}

/// Fits weights and bias to `embeddings` labelled `urgent`, with regularization `lambda`, and
/// answers them for the raw embeddings. The fit runs on standardized dimensions (each centred
/// and scaled to unit variance over `embeddings`): e5's embeddings all point much the same way,
/// and gradient descent on them as they are would barely move in the few directions that
/// tell urgent from calm. The standardization is folded back into the weights and bias.
pub fn fit(embeddings: &[Vec<f32>], urgent: &[bool], lambda: f64) -> (Vec<f64>, f64) {
    let dim = embeddings.first().map_or(0, Vec::len);
    let count = embeddings.len().max(1) as f64;
    let mut center = vec![0f64; dim];
    for x in embeddings {
        for (c, v) in center.iter_mut().zip(x) {
            *c += f64::from(*v) / count;
        }
    }
    let mut scale = vec![0f64; dim];
    for x in embeddings {
        for ((s, v), c) in scale.iter_mut().zip(x).zip(&center) {
            *s += (f64::from(*v) - c).powi(2) / count;
        }
    }
    scale.iter_mut().for_each(|s| *s = s.sqrt().max(1e-6));
    let standardized: Vec<Vec<f32>> = embeddings
        .iter()
        .map(|x| {
            x.iter()
                .zip(&center)
                .zip(&scale)
                .map(|((v, c), s)| ((f64::from(*v) - c) / s) as f32)
                .collect()
        })
        .collect();
    let (w, b) = descend(&standardized, urgent, lambda);
    let weights: Vec<f64> = w.iter().zip(&scale).map(|(w, s)| w / s).collect();
    let bias = b - weights.iter().zip(&center).map(|(w, c)| w * c).sum::<f64>();
    (weights, bias)
}

/// Class-balanced, L2-regularized logistic regression by full-batch gradient descent.
fn descend(embeddings: &[Vec<f32>], urgent: &[bool], lambda: f64) -> (Vec<f64>, f64) {
    let dim = embeddings.first().map_or(0, Vec::len);
    let positives = urgent.iter().filter(|u| **u).count().max(1) as f64;
    let negatives = urgent.iter().filter(|u| !**u).count().max(1) as f64;
    let n = urgent.len().max(1) as f64;
    // Each class weighs half of the loss.
    let class_weight = |u: bool| {
        if u {
            n / (2.0 * positives)
        } else {
            n / (2.0 * negatives)
        }
    };
    let mut w = vec![0f64; dim];
    let mut b = 0f64;
    let mut grad = vec![0f64; dim];
    for _ in 0..STEPS {
        grad.iter_mut().for_each(|g| *g = 0.0);
        let mut grad_b = 0f64;
        for (x, &u) in embeddings.iter().zip(urgent) {
            let z = b + w.iter().zip(x).map(|(w, x)| w * f64::from(*x)).sum::<f64>();
            let err = (sigmoid(z) - f64::from(u8::from(u))) * class_weight(u);
            for (g, x) in grad.iter_mut().zip(x) {
                *g += err * f64::from(*x);
            }
            grad_b += err;
        }
        for (wi, g) in w.iter_mut().zip(&grad) {
            *wi -= RATE * (g / n + lambda * *wi);
        }
        b -= RATE * grad_b / n;
    }
    (w, b)
}

/// What training reports besides the head: the out-of-fold probability of every example (each
/// predicted by the head trained on the other sets), for choosing and measuring.
#[derive(Debug, Clone)]
pub struct Training {
    /// The head, trained on every example.
    pub head: Head,
    /// Out-of-fold probabilities, in the examples' order, with the chosen regularization.
    pub out_of_fold: Vec<f64>,
}

/// Trains the head on `examples` (embedded by `encoder`): the regularization by
/// leave-one-set-out log-loss, then the final fit on all; `thresholds` chooses
/// [`Head::raise_at`] and [`Head::lower_at`] from the out-of-fold probabilities.
pub fn train(
    encoder: &Encoder,
    model_sha256: &str,
    examples: &[Example],
    thresholds: impl Fn(&[f64]) -> (f64, f64),
) -> Training {
    let embeddings: Vec<Vec<f32>> = examples
        .iter()
        .map(|e| embedding(encoder, &e.text))
        .collect();
    let urgent: Vec<bool> = examples.iter().map(|e| e.urgent).collect();
    let mut sets: Vec<&str> = examples.iter().map(|e| e.set.as_str()).collect();
    sets.dedup();
    let mut best: Option<(f64, f64, Vec<f64>)> = None;
    for lambda in LAMBDAS {
        let mut out = vec![0f64; examples.len()];
        for held in &sets {
            let (train_x, train_y): (Vec<Vec<f32>>, Vec<bool>) = examples
                .iter()
                .zip(&embeddings)
                .filter(|(e, _)| e.set != *held)
                .map(|(e, x)| (x.clone(), e.urgent))
                .unzip();
            let (w, b) = fit(&train_x, &train_y, lambda);
            for (i, e) in examples.iter().enumerate() {
                if e.set == *held {
                    let z = b + w
                        .iter()
                        .zip(&embeddings[i])
                        .map(|(w, x)| w * f64::from(*x))
                        .sum::<f64>();
                    out[i] = sigmoid(z);
                }
            }
        }
        let loss = out
            .iter()
            .zip(&urgent)
            .map(|(p, &u)| -(if u { *p } else { 1.0 - p }).max(1e-12).ln())
            .sum::<f64>()
            / out.len().max(1) as f64;
        if best.as_ref().is_none_or(|(l, _, _)| loss < *l) {
            best = Some((loss, lambda, out));
        }
    }
    let (_, lambda, out_of_fold) = best.unwrap_or((0.0, LAMBDAS[0], Vec::new()));
    let (weights, bias) = fit(&embeddings, &urgent, lambda);
    let (raise_at, lower_at) = thresholds(&out_of_fold);
    let mut topics: Vec<(String, Vec<f64>)> = Vec::new();
    let mut names: Vec<&str> = examples.iter().map(|e| e.topic.as_str()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let members: Vec<&Vec<f32>> = examples
            .iter()
            .zip(&embeddings)
            .filter(|(e, _)| e.topic == name)
            .map(|(_, x)| x)
            .collect();
        let mut mean = vec![0f64; embeddings[0].len()];
        for x in &members {
            for (m, v) in mean.iter_mut().zip(x.iter()) {
                *m += f64::from(*v);
            }
        }
        mean.iter_mut().for_each(|m| *m /= members.len() as f64);
        topics.push((name.to_owned(), mean));
    }
    let mut trained_on: Vec<(String, usize)> = Vec::new();
    for e in examples {
        match trained_on.last_mut() {
            Some((set, n)) if *set == e.set => *n += 1,
            _ => trained_on.push((e.set.clone(), 1)),
        }
    }
    Training {
        head: Head {
            model_sha256: model_sha256.to_owned(),
            trained_on,
            lambda,
            weights: weights.iter().map(|w| round(*w)).collect(),
            bias: round(bias),
            raise_at: round(raise_at),
            lower_at: round(lower_at),
            topics: topics
                .into_iter()
                .map(|(t, m)| (t, m.into_iter().map(round).collect()))
                .collect(),
        },
        out_of_fold,
    }
}

/// Six decimal places: what the head file keeps, so that the last bits of a float sum
/// on another machine do not change the file.
fn round(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}
