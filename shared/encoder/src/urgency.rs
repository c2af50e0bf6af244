//! The urgency model: the encoder's embedding of a message, then a head trained on
//! switchboard's labelled sets (`switchboard train-urgency`), giving the probability that a
//! contact-center supervisor would want the message answered first, and the topics of the
//! labelled examples nearest to it (for the reason's detail).
//!
//! The head blends two readers of the embedding. A **logistic regression** weighs every
//! direction of the embedding space; alone, it learnt the *object* a message speaks of as much
//! as the harm ("the oven caught fire" was pulled down by every calm question about ovens). A
//! **vote of the nearest labelled examples** answers for the message's own neighbourhood: a
//! described fire is nearest to the other described fires, whatever burnt. The probability is
//! `linear_share · logistic + (1 − linear_share) · vote`. The neighbours are kept as the signs
//! of their centred embeddings (48 bytes each): out of fold, the signs vote as well as the full
//! vectors (log-loss 0.182 against 0.174 for 8-bit vectors) at a twentieth of the size.
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
    neighbours: Neighbours,
}

impl Urgency {
    /// The model of `encoder` with the head in `head_json` (the text of a head file).
    pub fn new(encoder: Encoder, head_json: &str) -> Result<Self, ModelError> {
        let head: Head = serde_json::from_str(head_json)
            .map_err(|e| ModelError::Format(format!("the urgency head: {e}")))?;
        if head.weights.len() != encoder.dim()
            || head.center.len() != encoder.dim()
            || head
                .neighbours
                .iter()
                .any(|n| n.signs.len() != encoder.dim() / 4)
        {
            return Err(ModelError::Format(format!(
                "the urgency head has {} weights for an encoder of {}",
                head.weights.len(),
                encoder.dim()
            )));
        }
        let neighbours = Neighbours::of(&head)?;
        Ok(Self {
            encoder,
            head,
            neighbours,
        })
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
        let (probability, topics) = self.head.assess(&self.neighbours, &embedding, 2);
        Assessment {
            probability,
            raise: probability >= self.head.raise_at,
            lower: probability < self.head.lower_at,
            topics,
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
    /// The share of the logistic regression in the probability; the neighbours' vote has the
    /// rest.
    pub linear_share: f64,
    /// How many neighbours vote.
    pub k: usize,
    /// How sharply a nearer neighbour outweighs a farther one: a neighbour's weight is
    /// `exp(temperature · (similarity − the nearest's similarity))`.
    pub temperature: f64,
    /// The mean embedding of the training examples, subtracted before comparing.
    pub center: Vec<f64>,
    /// The training examples, each as the signs of its centred embedding.
    pub neighbours: Vec<Neighbour>,
    /// From this probability on, the model raises a message to at least P2.
    pub raise_at: f64,
    /// Below this probability, the model lowers a P2 that rests on content words alone.
    pub lower_at: f64,
}

/// A labelled example as the head keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Neighbour {
    /// Whether it is urgent.
    pub urgent: bool,
    /// Its topic.
    pub topic: String,
    /// The signs of its centred embedding, a bit per dimension (set: positive), as hex, the
    /// first dimension in the highest bit of the first byte.
    pub signs: String,
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
/// The logistic regression's shares of the probability tried.
pub const SHARES: [f64; 3] = [0.4, 0.5, 0.6];
/// The numbers of voting neighbours tried.
pub const NEIGHBOURS: [usize; 2] = [10, 20];
/// The vote's temperatures tried.
pub const TEMPERATURES: [f64; 2] = [10.0, 20.0];

/// The neighbours ready to vote: their signs unpacked from hex once, at load.
#[derive(Debug, Clone, Default)]
struct Neighbours {
    /// The signs of every neighbour, `dim / 8` bytes each.
    bits: Vec<u8>,
    urgent: Vec<bool>,
    topics: Vec<String>,
    /// The share of urgent examples among them (the vote's class balance).
    urgent_share: f64,
}

impl Neighbours {
    fn of(head: &Head) -> Result<Self, ModelError> {
        let mut bits = Vec::with_capacity(head.neighbours.len() * head.center.len() / 8);
        for n in &head.neighbours {
            bits.extend(hex::decode(&n.signs).map_err(|e| {
                ModelError::Format(format!("the urgency head: a neighbour's signs: {e}"))
            })?);
        }
        let urgent: Vec<bool> = head.neighbours.iter().map(|n| n.urgent).collect();
        let urgent_share =
            urgent.iter().filter(|u| **u).count() as f64 / urgent.len().max(1) as f64;
        Ok(Self {
            bits,
            urgent,
            topics: head.neighbours.iter().map(|n| n.topic.clone()).collect(),
            urgent_share,
        })
    }
}

/// `embedding` less `center`, to unit length: the vector neighbours are compared on (e5's
/// embeddings all point much the same way; their differences are what tells them apart).
pub fn centred(embedding: &[f32], center: &[f64]) -> Vec<f32> {
    let mut z: Vec<f32> = embedding
        .iter()
        .zip(center)
        .map(|(x, c)| (f64::from(*x) - c) as f32)
        .collect();
    let norm = z.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    z.iter_mut().for_each(|v| *v /= norm);
    z
}

/// The signs of a centred vector, a bit per dimension, the first in the highest bit.
pub fn signs(centred: &[f32]) -> Vec<u8> {
    centred
        .chunks(8)
        .map(|c| {
            c.iter().enumerate().fold(
                0u8,
                |byte, (i, v)| if *v > 0.0 { byte | 0x80 >> i } else { byte },
            )
        })
        .collect()
}

/// The similarity of a centred vector with a neighbour's signs: their cosine (each sign
/// counting `±1/√dim`).
pub fn similarity(centred: &[f32], signs: &[u8]) -> f32 {
    let dot: f32 = centred
        .iter()
        .enumerate()
        .map(|(i, v)| {
            if signs[i / 8] & (0x80 >> (i % 8)) != 0 {
                *v
            } else {
                -*v
            }
        })
        .sum();
    dot / (centred.len().max(1) as f32).sqrt()
}

/// The vote of the neighbours `nearest` (similarity and label, nearest first; at least the
/// `k` nearest): each weighs `exp(temperature · (similarity − the nearest's))`, and each class
/// is divided by its share of the training examples (`urgent_share`), so that the more
/// numerous calm examples do not outvote by number. The urgent side's share of the weight.
pub fn vote(nearest: &[(f32, bool)], k: usize, temperature: f64, urgent_share: f64) -> f64 {
    let Some(&(top, _)) = nearest.first() else {
        return urgent_share;
    };
    let (mut urgent, mut calm) = (0f64, 0f64);
    for &(sim, u) in nearest.iter().take(k) {
        let w = (temperature * f64::from(sim - top)).exp();
        if u {
            urgent += w;
        } else {
            calm += w;
        }
    }
    let urgent = urgent / urgent_share.max(1e-12);
    let calm = calm / (1.0 - urgent_share).max(1e-12);
    urgent / (urgent + calm).max(1e-300)
}

/// The indices of the `k` largest of `similarities`, largest first (ties: the earlier).
fn top_k(similarities: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..similarities.len()).collect();
    order.sort_by(|a, b| similarities[*b].total_cmp(&similarities[*a]).then(a.cmp(b)));
    order.truncate(k);
    order
}

impl Head {
    fn logit(&self, embedding: &[f32]) -> f64 {
        self.bias
            + self
                .weights
                .iter()
                .zip(embedding)
                .map(|(w, x)| w * f64::from(*x))
                .sum::<f64>()
    }

    /// The probability of `embedding` and the topics of its `n` most weighty neighbours.
    fn assess(&self, neighbours: &Neighbours, embedding: &[f32], n: usize) -> (f64, Vec<String>) {
        let linear = sigmoid(self.logit(embedding));
        let z = centred(embedding, &self.center);
        let stride = self.center.len() / 8;
        let sims: Vec<f32> = neighbours
            .bits
            .chunks(stride.max(1))
            .map(|s| similarity(&z, s))
            .collect();
        let indices = top_k(&sims, self.k);
        let nearest: Vec<(f32, bool)> = indices
            .iter()
            .map(|&i| (sims[i], neighbours.urgent[i]))
            .collect();
        let voted = vote(&nearest, self.k, self.temperature, neighbours.urgent_share);
        let probability = self.linear_share * linear + (1.0 - self.linear_share) * voted;
        // The topics, by the weight their neighbours carry.
        let mut weights: Vec<(String, f64)> = Vec::new();
        let top = nearest.first().map_or(0.0, |(s, _)| *s);
        for i in indices {
            let w = (self.temperature * f64::from(sims[i] - top)).exp();
            match weights.iter_mut().find(|(t, _)| *t == neighbours.topics[i]) {
                Some((_, total)) => *total += w,
                None => weights.push((neighbours.topics[i].clone(), w)),
            }
        }
        weights.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        (
            probability,
            weights.into_iter().take(n).map(|(t, _)| t).collect(),
        )
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
    /// Out-of-fold probabilities, in the examples' order, with the chosen regularization and
    /// blend.
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
        let loss = log_loss(&out, &urgent);
        if best.as_ref().is_none_or(|(l, _, _)| loss < *l) {
            best = Some((loss, lambda, out));
        }
    }
    let (_, lambda, linear_oof) = best.unwrap_or((0.0, LAMBDAS[0], Vec::new()));
    let (weights, bias) = fit(&embeddings, &urgent, lambda);
    let nearest = nearest_out_of_fold(examples, &embeddings, &sets);
    // (log-loss, (linear share, k, temperature), out-of-fold probabilities)
    type Blend = (f64, (f64, usize, f64), Vec<f64>);
    let mut blend: Option<Blend> = None;
    for linear_share in SHARES {
        for k in NEIGHBOURS {
            for temperature in TEMPERATURES {
                let out: Vec<f64> = linear_oof
                    .iter()
                    .zip(&nearest)
                    .map(|(p, (list, share))| {
                        linear_share * p + (1.0 - linear_share) * vote(list, k, temperature, *share)
                    })
                    .collect();
                let loss = log_loss(&out, &urgent);
                if blend.as_ref().is_none_or(|(l, _, _)| loss < *l) {
                    blend = Some((loss, (linear_share, k, temperature), out));
                }
            }
        }
    }
    let (_, (linear_share, k, temperature), out_of_fold) =
        blend.unwrap_or((0.0, (1.0, NEIGHBOURS[0], TEMPERATURES[0]), linear_oof));
    let (raise_at, lower_at) = thresholds(&out_of_fold);
    let center = mean(embeddings.iter());
    let neighbours: Vec<Neighbour> = examples
        .iter()
        .zip(&embeddings)
        .map(|(e, x)| Neighbour {
            urgent: e.urgent,
            topic: e.topic.clone(),
            signs: hex::encode(signs(&centred(x, &center))),
        })
        .collect();
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
            linear_share,
            k,
            temperature,
            center: center.into_iter().map(round).collect(),
            neighbours,
            raise_at: round(raise_at),
            lower_at: round(lower_at),
        },
        out_of_fold,
    }
}

/// The mean log-loss of probabilities `p` for labels `urgent`.
fn log_loss(p: &[f64], urgent: &[bool]) -> f64 {
    p.iter()
        .zip(urgent)
        .map(|(p, &u)| -(if u { *p } else { 1.0 - p }).max(1e-12).ln())
        .sum::<f64>()
        / p.len().max(1) as f64
}

/// The mean of `vectors`, rounded as the head file keeps it (so that training and assessing
/// centre alike).
fn mean<'a>(vectors: impl ExactSizeIterator<Item = &'a Vec<f32>>) -> Vec<f64> {
    let count = vectors.len().max(1) as f64;
    let mut sum: Vec<f64> = Vec::new();
    for x in vectors {
        sum.resize(x.len(), 0.0);
        for (m, v) in sum.iter_mut().zip(x) {
            *m += f64::from(*v);
        }
    }
    sum.into_iter().map(|m| round(m / count)).collect()
}

/// For every example, its nearest neighbours among the other sets' examples (similarity and
/// label, nearest first, as many as the most [`NEIGHBOURS`] tried) and those sets' share of
/// urgent examples: what the vote of a head trained without its set would see.
fn nearest_out_of_fold(
    examples: &[Example],
    embeddings: &[Vec<f32>],
    sets: &[&str],
) -> Vec<(Vec<(f32, bool)>, f64)> {
    let most = NEIGHBOURS.iter().copied().max().unwrap_or(1);
    let mut nearest = vec![(Vec::new(), 0.0); examples.len()];
    for held in sets {
        let training: Vec<usize> = (0..examples.len())
            .filter(|&i| examples[i].set != *held)
            .collect();
        let center = mean(training.iter().map(|&i| &embeddings[i]));
        let signs: Vec<Vec<u8>> = training
            .iter()
            .map(|&i| signs(&centred(&embeddings[i], &center)))
            .collect();
        let share = training.iter().filter(|&&i| examples[i].urgent).count() as f64
            / training.len().max(1) as f64;
        for (i, e) in examples.iter().enumerate() {
            if e.set != *held {
                continue;
            }
            let z = centred(&embeddings[i], &center);
            let sims: Vec<f32> = signs.iter().map(|s| similarity(&z, s)).collect();
            let list = top_k(&sims, most)
                .into_iter()
                .map(|j| (sims[j], examples[training[j]].urgent))
                .collect();
            nearest[i] = (list, share);
        }
    }
    nearest
}

/// Six decimal places: what the head file keeps, so that the last bits of a float sum
/// on another machine do not change the file.
fn round(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_keep_a_bit_per_dimension_first_dimension_highest() {
        let z = [0.5, -0.1, 0.2, -0.3, 0.0, 0.1, -0.2, 0.4, -0.6];
        assert_eq!(signs(&z), vec![0b1010_0101, 0b0000_0000]);
    }

    #[test]
    fn a_vector_is_nearest_its_own_signs_and_farthest_from_their_opposite() {
        let z = centred(&[0.3, -0.2, 0.9, -0.4, 0.1, 0.0, -0.7, 0.2], &[0.0; 8]);
        let own = signs(&z);
        let opposite: Vec<u8> = own.iter().map(|b| !b).collect();
        let other = signs(&centred(
            &[-0.3, -0.2, 0.9, 0.4, 0.1, 0.5, 0.7, 0.2],
            &[0.0; 8],
        ));
        let (s_own, s_opposite, s_other) = (
            similarity(&z, &own),
            similarity(&z, &opposite),
            similarity(&z, &other),
        );
        assert!(
            s_own > s_other && s_other > s_opposite,
            "{s_own} {s_other} {s_opposite}"
        );
        assert!((s_own + s_opposite).abs() < 1e-6);
    }

    #[test]
    fn the_vote_weighs_nearer_neighbours_more_and_balances_the_classes() {
        // Unanimous neighbours decide.
        assert!((vote(&[(0.9, true), (0.8, true)], 10, 20.0, 0.3) - 1.0).abs() < 1e-12);
        assert!(vote(&[(0.9, false), (0.8, false)], 10, 20.0, 0.3) < 1e-12);
        // One urgent and one calm at the same distance, classes equally common: even.
        assert!((vote(&[(0.9, true), (0.9, false)], 10, 20.0, 0.5) - 0.5).abs() < 1e-12);
        // The nearer one counts for more.
        assert!(vote(&[(0.9, true), (0.7, false)], 10, 20.0, 0.5) > 0.9);
        // A rarer class's neighbour counts for more than a common one's.
        assert!(vote(&[(0.9, true), (0.9, false)], 10, 20.0, 0.25) > 0.7);
        // Only the k nearest vote.
        assert!((vote(&[(0.9, true), (0.9, false)], 1, 20.0, 0.5) - 1.0).abs() < 1e-12);
        // No neighbours: the urgent share.
        assert!((vote(&[], 10, 20.0, 0.4) - 0.4).abs() < 1e-12);
    }

    #[test]
    fn a_head_file_whose_signs_are_not_hex_is_refused() {
        let head = Head {
            model_sha256: String::new(),
            trained_on: Vec::new(),
            lambda: 0.0,
            weights: Vec::new(),
            bias: 0.0,
            linear_share: 0.5,
            k: 1,
            temperature: 1.0,
            center: vec![0.0; 8],
            neighbours: vec![Neighbour {
                urgent: true,
                topic: "technical".into(),
                signs: "zz".into(),
            }],
            raise_at: 0.5,
            lower_at: 0.1,
        };
        let err = Neighbours::of(&head).unwrap_err();
        assert!(err.to_string().contains("signs"), "{err}");
    }
}
