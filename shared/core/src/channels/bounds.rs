//! The bound on what one JSON delivery may make the normalizers build.
//!
//! A signed body of a few megabytes can hold millions of tiny values (`"entry": [1,1,1,…]`)
//! that, parsed into a document and normalized into one record each, would take over a
//! gigabyte. Before a body is parsed, its values are counted in one streaming pass that
//! allocates nothing; a body with more than [`MAX_VALUES`] is not parsed at all but
//! quarantined whole (its bytes kept, for a person to look at or a later replay), so that no
//! delivery costs more than a small multiple of its size. The count runs only on bodies over
//! [`COUNTED_ABOVE`] bytes: a smaller one cannot hold that many values.

use serde::de::{DeserializeSeed, Deserializer, Error, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::cell::Cell;
use std::fmt;

/// The most JSON values (objects, arrays, strings, numbers, booleans, nulls) a delivery may
/// hold to be parsed: many times a full batch of a thousand updates from Meta (about twenty
/// values each), far below what makes memory run away.
pub const MAX_VALUES: usize = 100_000;

/// Bodies up to this size are not counted: each value takes at least two bytes (`1,`), so
/// they hold fewer than [`MAX_VALUES`].
pub const COUNTED_ABOVE: usize = 2 * MAX_VALUES;

/// Whether `body` may be parsed: small enough, or valid-looking JSON with at most
/// [`MAX_VALUES`] values. (Malformed JSON answers `true`: the parser refuses it next.)
pub fn within_bounds(body: &[u8]) -> bool {
    if body.len() <= COUNTED_ABOVE {
        return true;
    }
    let seen = Cell::new(0usize);
    let mut de = serde_json::Deserializer::from_slice(body);
    // An error is malformed JSON unless the count went past the bound.
    let _ = Count(&seen).deserialize(&mut de);
    seen.get() <= MAX_VALUES
}

const TOO_MANY: &str = "more values than a delivery may hold";

/// Counts the values it visits into the cell, failing past [`MAX_VALUES`].
#[derive(Clone, Copy)]
struct Count<'c>(&'c Cell<usize>);

impl Count<'_> {
    fn bump<E: Error>(self) -> Result<(), E> {
        let n = self.0.get() + 1;
        self.0.set(n);
        if n > MAX_VALUES {
            Err(E::custom(TOO_MANY))
        } else {
            Ok(())
        }
    }
}

impl<'de> DeserializeSeed<'de> for Count<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Count<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: Error>(self, _: bool) -> Result<(), E> {
        self.bump()
    }

    fn visit_i64<E: Error>(self, _: i64) -> Result<(), E> {
        self.bump()
    }

    fn visit_u64<E: Error>(self, _: u64) -> Result<(), E> {
        self.bump()
    }

    fn visit_f64<E: Error>(self, _: f64) -> Result<(), E> {
        self.bump()
    }

    fn visit_str<E: Error>(self, _: &str) -> Result<(), E> {
        self.bump()
    }

    fn visit_unit<E: Error>(self) -> Result<(), E> {
        self.bump()
    }

    fn visit_none<E: Error>(self) -> Result<(), E> {
        self.bump()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.bump()?;
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.bump()?;
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value_seed(self)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_of_millions_of_tiny_values_is_out_of_bounds_and_a_real_batch_within() {
        let mut absurd = br#"{"object":"page","entry":["#.to_vec();
        for _ in 0..2_500_000 {
            absurd.extend_from_slice(b"1,");
        }
        absurd.extend_from_slice(b"1]}");
        assert!(!within_bounds(&absurd));
        let empties = format!(
            r#"{{"object":"page","entry":[{}{{}}]}}"#,
            "{},".repeat(200_000)
        );
        assert!(!within_bounds(empties.as_bytes()));
        // A thousand WhatsApp statuses, about twenty values each: parsed.
        let status = r#"{"id":"wamid.HBgLMTY0NjcwNDM1OTUVAgARGBI1RjQyNUE3NEYxMzAzMzQ5MkEA","status":"delivered","timestamp":"1700000000","recipient_id":"16315551234","conversation":{"id":"CONVERSATION_ID","origin":{"type":"service"}},"pricing":{"billable":true,"pricing_model":"CBP","category":"service"}}"#;
        let batch = format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"id":"WABA","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550001111","phone_number_id":"PN"}},"statuses":[{}{}]}}}}]}}]}}"#,
            format!("{status},").repeat(999),
            status
        );
        assert!(batch.len() > COUNTED_ABOVE, "the batch is counted");
        assert!(within_bounds(batch.as_bytes()));
        // Long strings are one value each, whatever their size.
        let mail = format!(r#"{{"raw":"{}"}}"#, "a".repeat(5_000_000));
        assert!(within_bounds(mail.as_bytes()));
        // Malformed JSON is left to the parser.
        assert!(within_bounds(&vec![b'['; COUNTED_ABOVE + 1]));
    }
}
