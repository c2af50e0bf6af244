//! The scorer against a labelled set of customer messages (`fixtures/priority/labelled.jsonl`,
//! written for these tests in Spanish, English and Portuguese): precision and recall of P1+P2,
//! and of the topic, with the configuration switchboard ships.

use serde_json::Value;
use switchboard_core::priority::{History, Priority, Scorer};

const LABELLED: &str = include_str!("fixtures/priority/labelled.jsonl");
const HOLDOUT: &str = include_str!("fixtures/priority/holdout.jsonl");
const FRESH: &str = include_str!("fixtures/priority/fresh.jsonl");
const UNSEEN: &str = include_str!("fixtures/priority/unseen.jsonl");
const BLIND: &str = include_str!("fixtures/priority/blind.jsonl");
const VARIED: &str = include_str!("fixtures/priority/varied.jsonl");
const CONTRAST: &str = include_str!("fixtures/priority/contrast.jsonl");
const SEALED: &str = include_str!("fixtures/priority/sealed.jsonl");
const SEALED2: &str = include_str!("fixtures/priority/sealed2.jsonl");
const FIGURES: &str = include_str!("fixtures/priority/figures.jsonl");
const SEALED3: &str = include_str!("fixtures/priority/sealed3.jsonl");

struct Example {
    lang: String,
    public: bool,
    urgent: bool,
    topic: String,
    text: String,
}

fn examples(set: &str) -> Vec<Example> {
    set.lines()
        .enumerate()
        .map(|(i, line)| {
            let v: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
            let s = |k: &str| {
                v[k].as_str()
                    .unwrap_or_else(|| panic!("line {}: {k}", i + 1))
                    .to_owned()
            };
            let b = |k: &str| {
                v[k].as_bool()
                    .unwrap_or_else(|| panic!("line {}: {k}", i + 1))
            };
            Example {
                lang: s("lang"),
                public: b("public"),
                urgent: b("urgent"),
                topic: s("topic"),
                text: s("text"),
            }
        })
        .collect()
}

#[derive(Default, Debug)]
struct Counts {
    tp: u32,
    fp: u32,
    fn_: u32,
    tn: u32,
}

impl Counts {
    fn add(&mut self, predicted: bool, actual: bool) {
        match (predicted, actual) {
            (true, true) => self.tp += 1,
            (true, false) => self.fp += 1,
            (false, true) => self.fn_ += 1,
            (false, false) => self.tn += 1,
        }
    }
    fn precision(&self) -> f64 {
        f64::from(self.tp) / f64::from(self.tp + self.fp).max(1.0)
    }
    fn recall(&self) -> f64 {
        f64::from(self.tp) / f64::from(self.tp + self.fn_).max(1.0)
    }
}

#[test]
fn the_labelled_sets_are_large_enough_and_cover_three_languages() {
    for (set, min) in [(LABELLED, 150), (HOLDOUT, 150), (FRESH, 150), (UNSEEN, 150)] {
        let examples = examples(set);
        assert!(examples.len() >= min, "{} examples", examples.len());
        for lang in ["es", "en", "pt"] {
            let of_lang: Vec<&Example> = examples.iter().filter(|e| e.lang == lang).collect();
            assert!(of_lang.len() >= 50, "{lang}: {}", of_lang.len());
            assert!(of_lang.iter().any(|e| e.urgent) && of_lang.iter().any(|e| !e.urgent));
            assert!(of_lang.iter().any(|e| e.public) && of_lang.iter().any(|e| !e.public));
        }
    }
}

/// The set the shipped word lists were first written against.
#[test]
fn precision_and_recall_of_p1_p2_are_at_least_0_85_on_the_labelled_set() {
    let c = evaluate("labelled", LABELLED);
    assert!(c.precision() >= 0.85, "precision {:.3}", c.precision());
    assert!(c.recall() >= 0.85, "recall {:.3}", c.recall());
}

/// A second set, written separately. Its first measure (precision 0.868, recall 0.597) showed
/// how far the lists fitted the first set; the lists were then broadened against it, so it
/// is a tuning set too now.
#[test]
fn precision_and_recall_of_p1_p2_are_at_least_0_85_on_the_holdout_set() {
    let c = evaluate("holdout", HOLDOUT);
    assert!(c.precision() >= 0.85, "precision {:.3}", c.precision());
    assert!(c.recall() >= 0.85, "recall {:.3}", c.recall());
}

/// A third set, written after the lists were tuned on the other two. Its first measure
/// (precision 0.844, recall 0.587) was the honest figure for unseen messages; the lists were
/// then broadened by category against it (unrecognised transactions, stranded customers,
/// health and safety, decided departures, laughter), so it is a tuning set too now.
#[test]
fn precision_and_recall_of_p1_p2_are_at_least_0_85_on_the_fresh_set() {
    let c = evaluate("fresh", FRESH);
    assert!(c.precision() >= 0.85, "precision {:.3}", c.precision());
    assert!(c.recall() >= 0.85, "recall {:.3}", c.recall());
}

/// A fourth set, written after that broadening and never used to add a phrase: what to
/// expect on messages the lists have not seen. First measured at precision 0.836, recall
/// 0.586: the broadening fitted the third set and did not carry over. Its false alarms then
/// showed nine phrases that fire on harmless words in another language or sense (`legal` is
/// "cool" in Portuguese, `a month`, `congelar`, `me cobran`, …); removing them gave precision
/// 0.944, recall unchanged. The bounds only guard against a change that makes it worse.
/// Tune its misses and it stops measuring anything: add a new unseen set instead.
#[test]
fn the_unseen_set_does_not_get_worse() {
    let c = evaluate("unseen", UNSEEN);
    assert!(c.precision() >= 0.90, "precision {:.3}", c.precision());
    assert!(c.recall() >= 0.55, "recall {:.3}", c.recall());
}

/// Written before the urgency model was trained and apart from its data (issue 18): described
/// harms beside named problems, varied styles, hard negatives; 100 messages a language. It
/// measured the first round (keywords alone: precision 0.883, recall 0.615; with the model
/// 0.867 / 0.963), then joined the training data, and its kinds of hard negatives (withdrawn,
/// solved, hypothetical) the word lists by category: a tuning set now. The bounds only guard
/// against worse.
#[test]
fn the_blind_set_measures_the_keyword_scorer() {
    let c = evaluate("blind", BLIND);
    assert_eq!(c.tp + c.fp + c.fn_ + c.tn, 300);
    assert!(c.precision() >= 0.86, "precision {:.3}", c.precision());
    assert!(c.recall() >= 0.59, "recall {:.3}", c.recall());
}

/// Written after the blind set was spent and before the second round of the urgency model
/// (issue 18). The keyword scorer alone, first measured at precision 0.847, recall 0.615;
/// 0.865 / 0.615 after the lists' calming signals were broadened by category from the
/// training sets. It measured the second round once (with the model: 0.890 / 0.956), then its
/// misses broadened the word lists by category (withdrawn, solved, understated, "worst
/// company") and it joined the training data: a tuning set now, at 0.916 / 0.644. The bounds
/// only guard against worse.
#[test]
fn the_sealed_set_measures_the_keyword_scorer() {
    let c = evaluate("sealed", SEALED);
    assert_eq!(c.tp + c.fp + c.fn_ + c.tn, 312);
    assert!(c.precision() >= 0.90, "precision {:.3}", c.precision());
    assert!(c.recall() >= 0.62, "recall {:.3}", c.recall());
}

/// Written after the sealed set was measured and before the urgency model's third round
/// (issue 18), of situations none of the other sets has; nobody tunes anything on it. The
/// keyword scorer alone, measured once with the third round's lists: precision 0.792, recall
/// 0.422 (es 0.815 / 0.489, en 0.714 / 0.333, pt 0.833 / 0.444); the second round's lists
/// gave 0.770 / 0.422. New situations, described rather than named: the lists find two in five.
/// Then its misses broadened the lists by category (withdrawn by naming who it was or what the
/// charge was, hypothetical payments, figurative theft, bereavement) and it joined the urgency
/// model's training data: a tuning set now, at 0.894 / 0.437. The bounds only guard against
/// worse.
#[test]
fn the_second_sealed_set_measures_the_keyword_scorer() {
    let c = evaluate("sealed2", SEALED2);
    assert_eq!(c.tp + c.fp + c.fn_ + c.tn, 312);
    assert!(c.precision() >= 0.78, "precision {:.3}", c.precision());
    assert!(c.recall() >= 0.41, "recall {:.3}", c.recall());
}

/// Written after the second sealed set was measured and before the urgency model's fourth
/// round (issue 18); nobody tunes anything on it. The keyword scorer alone, measured once with
/// the fourth round's lists: precision 0.784, recall 0.511 (es 0.760 / 0.422, en 0.800 /
/// 0.533, pt 0.788 / 0.578). The bounds are the regression floor.
#[test]
fn the_third_sealed_set_measures_the_keyword_scorer() {
    let c = evaluate("sealed3", SEALED3);
    assert_eq!(c.tp + c.fp + c.fn_ + c.tn, 312);
    assert!(c.precision() >= 0.77, "precision {:.3}", c.precision());
    assert!(c.recall() >= 0.50, "recall {:.3}", c.recall());
}

/// The combined scorer on the set nobody tunes on, measured once with the fourth round's head
/// (`config/urgency-head.json`: the second sealed set and `figures.jsonl` in the training
/// data; thresholds chosen for an out-of-fold precision of 0.95): precision 0.928, recall 0.956
/// (es 0.956 / 0.956, en 0.955 / 0.933, pt 0.880 / 0.978). Ten false alarms in 177 calm
/// messages: seven raised by the lists, which the model does not lower from P1 nor when its
/// probability is not low (a withdrawn hacked-account alarm in each language, "forget my
/// message ... my son had changed the password"; a lawyer father in each; a pt double charge
/// that was the shipping), three pt messages of praise raised by the model. The bounds are the
/// regression floor, at the 0.9 / 0.9 and above.
#[test]
fn the_third_sealed_set_with_the_model() {
    let c = evaluate_with("sealed3, keywords and model", SEALED3, &with_model());
    assert_eq!(c.tp + c.fp + c.fn_ + c.tn, 312);
    assert!(c.precision() >= 0.92, "precision {:.3}", c.precision());
    assert!(c.recall() >= 0.95, "recall {:.3}", c.recall());
}

fn evaluate(name: &str, set: &str) -> Counts {
    evaluate_with(name, set, &Scorer::default())
}

/// The scorer with switchboard's urgency model (the model file of `infra/model.sh`).
fn with_model() -> Scorer {
    let path = switchboard_encoder::default_model_path();
    let model = switchboard_encoder::urgency::Urgency::open(&path).unwrap_or_else(|e| {
        panic!("{e} (run infra/model.sh, or set SWITCHBOARD_MODEL to the model file)")
    });
    Scorer::default().with_model(std::sync::Arc::new(model))
}

/// Every set with the model, for the record: the training sets' figures are in-sample (the
/// head learned from them), the third sealed set's above are not.
#[test]
fn every_set_with_the_model_is_printed() {
    let scorer = with_model();
    for (name, set) in [
        ("labelled (trained on)", LABELLED),
        ("holdout (trained on)", HOLDOUT),
        ("fresh (trained on)", FRESH),
        ("unseen (trained on)", UNSEEN),
        ("varied (trained on)", VARIED),
        ("blind (trained on)", BLIND),
        ("contrast (trained on)", CONTRAST),
        ("sealed (trained on)", SEALED),
        ("sealed2 (trained on)", SEALED2),
        ("figures (trained on)", FIGURES),
    ] {
        let c = evaluate_with(name, set, &scorer);
        assert!(c.recall() >= 0.9, "{name}: recall {:.3}", c.recall());
    }
}

/// A harm described without any word of the lists lands in P2 or above, with the model's
/// reason, and the keywords alone leave it below.
#[test]
fn a_described_harm_lands_in_p1_or_p2_with_the_models_reason() {
    let text = "se me incendió el horno al segundo uso";
    let alone = Scorer::default().score(text, false, &History::default());
    assert!(alone.priority > Priority::P2, "{alone:?}");
    let scored = with_model().score(text, false, &History::default());
    assert!(scored.priority <= Priority::P2, "{scored:?}");
    let reason = scored
        .reasons
        .iter()
        .find(|r| r.signal == "model")
        .expect("the model's reason");
    assert!(reason.weight > 0);
    let detail = reason.detail.as_deref().unwrap_or_default();
    assert!(detail.contains("nearest: "), "{detail}");
    let p: f64 = detail.split(',').next().unwrap().parse().unwrap();
    assert!(p >= 0.5, "{detail}");
}

/// `switchboard train-urgency` reproduces the committed head byte for byte from the sets and
/// the model file.
#[test]
fn training_reproduces_the_committed_head() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = tempfile::NamedTempFile::new().unwrap();
    switchboard::train::train_urgency(
        &root.join("tests/fixtures/priority"),
        &switchboard::train::default_model_path(),
        out.path(),
    )
    .expect("training");
    let committed = std::fs::read_to_string(root.join("config/urgency-head.json")).unwrap();
    let trained = std::fs::read_to_string(out.path()).unwrap();
    assert!(
        trained == committed,
        "config/urgency-head.json is not what training gives: run `switchboard train-urgency`"
    );
}

fn evaluate_with(name: &str, set: &str, scorer: &Scorer) -> Counts {
    let mut all = Counts::default();
    let mut by_lang: std::collections::BTreeMap<String, Counts> = Default::default();
    let mut misses = Vec::new();
    let mut topic_right = 0u32;
    let mut urgent_total = 0u32;
    for e in examples(set) {
        let score = scorer.score(&e.text, e.public, &History::default());
        let predicted = score.priority <= Priority::P2;
        all.add(predicted, e.urgent);
        by_lang
            .entry(e.lang.clone())
            .or_default()
            .add(predicted, e.urgent);
        if predicted != e.urgent {
            misses.push(format!(
                "  {} {} (score {}: {}): {}",
                if e.urgent { "missed" } else { "false alarm" },
                score.priority,
                score.score,
                score
                    .reasons
                    .iter()
                    .map(|r| format!("{} {:+}", r.signal, r.weight))
                    .collect::<Vec<_>>()
                    .join(", "),
                e.text
            ));
        }
        if e.urgent {
            urgent_total += 1;
            topic_right += u32::from(score.topic == e.topic);
        }
    }
    println!(
        "{name}: P1+P2 on {} messages: precision {:.3}, recall {:.3} ({:?})",
        all.tp + all.fp + all.fn_ + all.tn,
        all.precision(),
        all.recall(),
        all
    );
    for (lang, c) in &by_lang {
        println!(
            "  {lang}: precision {:.3}, recall {:.3}",
            c.precision(),
            c.recall()
        );
    }
    println!(
        "topic of the urgent ones right: {topic_right}/{urgent_total} ({:.3})",
        f64::from(topic_right) / f64::from(urgent_total.max(1))
    );
    println!("misclassified:\n{}", misses.join("\n"));
    all
}
