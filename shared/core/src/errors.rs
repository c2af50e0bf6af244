//! Errors as text for logs and command lines: the chain of causes, written once; and the
//! mark of an error already logged ([`Reported`]).

use std::error::Error;

/// The causes of `e` (its sources, outermost first), joined by `": "`; empty when it has none.
pub fn causes(e: &dyn Error) -> String {
    let mut parts = Vec::new();
    let mut source = e.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.join(": ")
}

/// `e` and its causes: `"<e>: <cause>: <cause of the cause>"`.
pub fn chain(e: &dyn Error) -> String {
    let causes = causes(e);
    if causes.is_empty() {
        e.to_string()
    } else {
        format!("{e}: {causes}")
    }
}

/// An error whose condition was logged where it was detected, once, with a count of its
/// repeats (a full disk, say): whoever handles it logs it at debug level, not again at error
/// level, so that a condition lasting minutes makes a few lines rather than thousands.
///
/// It is transparent: it reads as the error it wraps, with the same causes.
#[derive(Debug)]
pub struct Reported(Box<dyn Error + Send + Sync>);

impl Reported {
    /// Marks `e` as already logged.
    pub fn new(e: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        Self(e.into())
    }
}

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Error for Reported {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}

/// Whether `e` or one of its causes is [`Reported`].
pub fn is_reported(e: &(dyn Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if e.is::<Reported>() {
            return true;
        }
        next = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner")]
    struct Inner(#[source] std::io::Error);

    #[test]
    fn a_reported_cause_is_found_anywhere_in_the_chain_and_reads_as_itself() {
        let e = Outer(Inner(std::io::Error::other("disk full")));
        assert!(!is_reported(&e));
        let marked = crate::ports::BackendError::unavailable("enqueue", Reported::new(e));
        assert!(is_reported(&marked));
        assert_eq!(chain(&marked), "enqueue failed: outer: inner: disk full");
    }

    #[test]
    fn the_chain_reads_outermost_first() {
        let e = Outer(Inner(std::io::Error::other("disk full")));
        assert_eq!(causes(&e), "inner: disk full");
        assert_eq!(chain(&e), "outer: inner: disk full");
        let alone = std::io::Error::other("alone");
        assert_eq!(
            (causes(&alone).as_str(), chain(&alone).as_str()),
            ("", "alone")
        );
    }
}
