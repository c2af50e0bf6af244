//! Text as the scorer sees it: accent- and case-insensitive words, and phrases of such words.
//!
//! A message and every phrase of the configuration go through [`words`]: Unicode
//! compatibility decomposition, combining marks dropped (`cobráron` → `cobraron`, `não` →
//! `nao`, `ñ` → `n`), lower case, and anything that is not a letter or a digit a separator. A
//! phrase matches where its words appear one after the other; a phrase word ending in `*`
//! matches any word it begins (`cancel*` matches `cancelar`, `cancelled`, `cancelamento`), and
//! a `*` alone matches any one word (`hace * dias` matches `hace 8 dias`, `hace tres dias`).

use std::collections::HashMap;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// The words of `text`, folded: no accents, lower case, split on anything not alphanumeric.
pub fn words(text: &str) -> Vec<String> {
    if text.is_ascii() {
        // The same result without the Unicode decomposition: nothing in ASCII decomposes.
        return text
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_ascii_lowercase)
            .collect();
    }
    words_unicode(text)
}

/// [`words`] for any text: compatibility decomposition, combining marks dropped.
fn words_unicode(text: &str) -> Vec<String> {
    let folded: String = text
        .nfkd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    folded.split_whitespace().map(str::to_owned).collect()
}

/// A word of a phrase folded as [`words`] folds text, its pieces joined (`e-mail` → `email`).
fn fold_word(raw: &str) -> String {
    if raw.is_ascii() {
        // One allocation of the right size (a collected iterator would grow it char by char).
        let mut folded = String::with_capacity(raw.len());
        folded.extend(
            raw.bytes()
                .filter(u8::is_ascii_alphanumeric)
                .map(|b| char::from(b.to_ascii_lowercase())),
        );
        return folded;
    }
    words(raw).join("")
}

/// One word of a phrase.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Word {
    Exact(String),
    Prefix(String),
    Any,
}

impl Word {
    fn matches(&self, word: &str) -> bool {
        match self {
            Word::Exact(w) => w == word,
            Word::Prefix(p) => word.starts_with(p.as_str()),
            Word::Any => true,
        }
    }
}

/// A phrase of the configuration, ready to match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phrase {
    /// As written in the configuration, for the reasons.
    pub text: String,
    words: Vec<Word>,
}

impl Phrase {
    /// `text` as a phrase, or `None` when it has no word (punctuation only, empty, or only
    /// `*`). A `*` at the end of a word makes it a prefix; a `*` alone matches any one word.
    pub fn new(text: &str) -> Option<Self> {
        Self::words_of(text).map(|words| Self {
            text: text.trim().to_owned(),
            words,
        })
    }

    /// [`new`](Self::new) keeping `text` itself as the phrase's text (no copy unless it has
    /// spaces to trim): how the scorer takes the phrases of its configuration.
    pub fn from_owned(text: String) -> Option<Self> {
        let words = Self::words_of(&text)?;
        let trimmed = text.trim();
        let text = if trimmed.len() == text.len() {
            text
        } else {
            trimmed.to_owned()
        };
        Some(Self { text, words })
    }

    /// The words of `text`, or `None` when it has no word but `*`.
    fn words_of(text: &str) -> Option<Vec<Word>> {
        let words: Vec<Word> = text
            .split_whitespace()
            .filter_map(|raw| {
                if raw == "*" {
                    return Some(Word::Any);
                }
                let prefix = raw.ends_with('*');
                let folded = fold_word(raw.trim_end_matches('*'));
                match (folded.is_empty(), prefix) {
                    (true, _) => None,
                    (false, true) => Some(Word::Prefix(folded)),
                    (false, false) => Some(Word::Exact(folded)),
                }
            })
            .collect();
        let has_word = words.iter().any(|w| *w != Word::Any);
        has_word.then_some(words)
    }

    fn matches_at(&self, text: &[String], start: usize) -> bool {
        text.len() >= start + self.words.len()
            && self
                .words
                .iter()
                .zip(&text[start..])
                .all(|(w, t)| w.matches(t))
    }
}

/// Many phrases, each tagged with a value `T`, matched against the words of a text.
///
/// Phrases are indexed by their first word, so matching costs about one hash lookup per word
/// of the text rather than one comparison per phrase.
#[derive(Debug, Clone)]
pub struct PhraseSet<T> {
    exact: HashMap<String, Vec<(Phrase, T)>>,
    prefix: Vec<(Phrase, T)>,
}

impl<T: Clone> PhraseSet<T> {
    /// An empty set.
    pub fn new() -> Self {
        Self {
            exact: HashMap::new(),
            prefix: Vec::new(),
        }
    }

    /// Adds a phrase.
    pub fn insert(&mut self, phrase: Phrase, tag: T) {
        match &phrase.words[0] {
            Word::Exact(first) => match self.exact.get_mut(first) {
                Some(list) => list.push((phrase, tag)),
                None => {
                    let first = first.clone();
                    self.exact.insert(first, vec![(phrase, tag)]);
                }
            },
            Word::Prefix(_) | Word::Any => self.prefix.push((phrase, tag)),
        }
    }

    /// Every phrase found in `text` (the output of [`words`]), in the order of the text, each
    /// phrase at most once.
    pub fn find<'a>(&'a self, text: &[String]) -> Vec<(&'a Phrase, &'a T)> {
        let mut found: Vec<(&Phrase, &T)> = Vec::new();
        for start in 0..text.len() {
            let candidates = self
                .exact
                .get(&text[start])
                .into_iter()
                .flatten()
                .chain(self.prefix.iter());
            for (phrase, tag) in candidates {
                if phrase.matches_at(text, start) && !found.iter().any(|(p, _)| *p == phrase) {
                    found.push((phrase, tag));
                }
            }
        }
        found
    }
}

impl<T: Clone> Default for PhraseSet<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn folds_accents_case_and_punctuation() {
        assert_eq!(
            words("¡Me COBRÁRON dos veces!! ¿Qué pasó?"),
            ["me", "cobraron", "dos", "veces", "que", "paso"]
        );
        assert_eq!(
            words("Não consigo acessar o cartão"),
            ["nao", "consigo", "acessar", "o", "cartao"]
        );
        assert_eq!(words("año, ñandú"), ["ano", "nandu"]);
        assert_eq!(words("😡😡 ..."), Vec::<String>::new());
    }

    #[test]
    fn phrases_match_whole_words_in_sequence() {
        let mut set = PhraseSet::new();
        set.insert(Phrase::new("cobraron dos veces").unwrap(), 1);
        set.insert(Phrase::new("cancel*").unwrap(), 2);
        set.insert(Phrase::new("ya").unwrap(), 3);
        set.insert(Phrase::new("hace * dias").unwrap(), 4);
        let found =
            |t: &str| -> Vec<i32> { set.find(&words(t)).iter().map(|(_, t)| **t).collect() };
        assert_eq!(found("Me cobráron DOS veces"), [1]);
        assert_eq!(found("cobraron veces dos"), Vec::<i32>::new());
        assert_eq!(found("quiero cancelar ya"), [2, 3]);
        assert_eq!(found("I cancelled, cancel it"), [2], "each phrase once");
        assert_eq!(found("yahoo"), Vec::<i32>::new(), "whole words only");
        assert_eq!(found("hace 8 días"), [4]);
        assert_eq!(
            found("hace dias"),
            Vec::<i32>::new(),
            "* is exactly one word"
        );
    }

    #[test]
    fn phrases_without_words_are_refused() {
        assert!(Phrase::new("").is_none());
        assert!(Phrase::new(" ?! * ").is_none());
        assert!(Phrase::new("* *").is_none());
        assert_eq!(Phrase::new(" doble  cargo ").unwrap().text, "doble  cargo");
    }

    proptest! {
        #[test]
        fn ascii_folds_as_the_unicode_path_does(text in "[ -~\t\n]{0,60}") {
            prop_assert_eq!(words(&text), words_unicode(&text));
            prop_assert_eq!(fold_word(&text), words_unicode(&text).join(""));
        }

        #[test]
        fn any_text_folds_and_matches_without_panic(text in any::<String>(), phrase in any::<String>()) {
            let folded = words(&text);
            prop_assert!(folded.iter().all(|w| !w.is_empty()));
            if let Some(p) = Phrase::new(&phrase) {
                let mut set = PhraseSet::new();
                set.insert(p, ());
                let _ = set.find(&folded);
            }
        }
    }
}
