use super::*;

fn scorer() -> Scorer {
    Scorer::default()
}

fn signals(score: &Score) -> Vec<&str> {
    score.reasons.iter().map(|r| r.signal.as_str()).collect()
}

#[test]
fn a_double_charge_called_urgent_is_above_a_thank_you() {
    let s = scorer();
    let urgent = s.score(
        "me cobraron dos veces, es urgente",
        false,
        &History::default(),
    );
    let thanks = s.score("gracias!", false, &History::default());
    assert!(urgent.priority <= Priority::P2, "{urgent:?}");
    assert_eq!(thanks.priority, Priority::P4, "{thanks:?}");
    assert!(urgent.score > thanks.score);
    assert_eq!(urgent.topic, "billing");
    assert_eq!(urgent.team, "billing");
    assert_eq!(signals(&urgent), ["money_lost", "urgency"]);
    let money = &urgent.reasons[0];
    assert_eq!(money.weight, 40);
    assert_eq!(
        money.detail.as_deref(),
        Some("me cobraron"),
        "the first phrase found"
    );
    assert!(urgent.complaint);
    assert!(!thanks.complaint);
    assert_eq!(thanks.topic, "general");
    assert_eq!(thanks.team, "customer-care");
}

#[test]
fn the_score_is_the_sum_of_the_reasons_floored_at_zero() {
    let s = scorer();
    for text in [
        "ME COBRARON DOS VECES!!! voy a ir a PROFECO",
        "thanks, love it",
        "hola?",
        "",
        "meu cartão foi clonado e ninguém responde",
    ] {
        let score = s.score(text, true, &History::default());
        let sum: i32 = score.reasons.iter().map(|r| r.weight).sum();
        assert_eq!(score.score, sum.max(0), "{text}: {score:?}");
    }
}

#[test]
fn accents_and_case_do_not_matter() {
    let s = scorer();
    let a = s.score(
        "Não consigo acessar minha conta",
        false,
        &History::default(),
    );
    let b = s.score(
        "NAO CONSIGO ACESSAR MINHA conta",
        false,
        &History::default(),
    );
    assert_eq!(a.topic, "security");
    assert_eq!(signals(&a), ["security"]);
    assert_eq!(signals(&b), ["security", "shouting"]);
}

#[test]
fn the_heaviest_topical_signal_routes() {
    let s = scorer();
    // legal (45) outweighs money lost (40)
    let score = s.score(
        "me cobraron dos veces, voy a ir con mi abogado",
        false,
        &History::default(),
    );
    assert_eq!(score.topic, "legal");
    assert_eq!(score.team, "escalations");
}

#[test]
fn public_exposure_weighs_more_than_a_dm_only_with_a_problem() {
    let s = scorer();
    let dm = s.score("the app is not working", false, &History::default());
    let public = s.score("the app is not working", true, &History::default());
    assert_eq!(public.score - dm.score, 15);
    assert!(signals(&public).contains(&"public"));
    let praise = s.score("love the new design", true, &History::default());
    assert!(!signals(&praise).contains(&"public"), "{praise:?}");
}

#[test]
fn shouting_and_repeated_punctuation_are_weak_signals() {
    let s = scorer();
    let calm = s.score("my card does not work", false, &History::default());
    let loud = s.score("MY CARD DOES NOT WORK!!!", false, &History::default());
    assert_eq!(loud.score - calm.score, 15);
    assert_eq!(
        signals(&loud),
        ["service_down", "shouting", "repeated_punctuation"]
    );
    // Short capitals are not shouting.
    assert!(!signals(&s.score("OK", false, &History::default())).contains(&"shouting"));
}

#[test]
fn thanks_and_simple_questions_lower() {
    let s = scorer();
    let question = s.score("a que hora abren?", false, &History::default());
    assert_eq!(signals(&question), ["question"]);
    assert_eq!(question.priority, Priority::P4);
    let refund_thanks = s.score("thanks for the quick refund", false, &History::default());
    assert!(refund_thanks.priority >= Priority::P3, "{refund_thanks:?}");
}

/// The same plain message, with one history signal at a time: each raises the score, and
/// enough of it raises the level.
#[test]
fn each_history_signal_raises_the_priority() {
    let s = scorer();
    let text = "hello, I am waiting for my refund";
    let base = s.score(text, false, &History::default());
    assert_eq!(base.priority, Priority::P3, "{base:?}");
    let cases: [(&str, History); 6] = [
        (
            "open_elsewhere",
            History {
                open_elsewhere: 1,
                ..History::default()
            },
        ),
        (
            "contacts_24h",
            History {
                contacts_24h: 3,
                contacts_7d: 3,
                ..History::default()
            },
        ),
        (
            "contacts_7d",
            History {
                contacts_7d: 4,
                ..History::default()
            },
        ),
        (
            "breaches",
            History {
                breaches: 2,
                ..History::default()
            },
        ),
        (
            "complaints",
            History {
                complaints: 2,
                ..History::default()
            },
        ),
        (
            "vip",
            History {
                vip: true,
                ..History::default()
            },
        ),
    ];
    for (signal, history) in cases {
        let with = s.score(text, false, &history);
        assert!(with.score > base.score, "{signal}: {with:?}");
        assert!(signals(&with).contains(&signal), "{signal}: {with:?}");
        let reason = with.reasons.iter().find(|r| r.signal == signal).unwrap();
        assert_eq!(with.score - base.score, reason.weight, "{signal}");
        if signal != "contacts_7d" {
            assert!(
                with.priority < base.priority,
                "{signal} raises the level: {with:?}"
            );
        }
    }
    // A quiet "hi" from a customer with a case open elsewhere and a breach is not P4.
    let quiet = s.score("hi", false, &History::default());
    let known = s.score(
        "hi",
        false,
        &History {
            open_elsewhere: 1,
            breaches: 1,
            ..History::default()
        },
    );
    assert_eq!(quiet.priority, Priority::P4);
    assert!(known.priority <= Priority::P2, "{known:?}");
}

#[test]
fn counted_history_is_capped() {
    let s = scorer();
    let many = s.score(
        "hi",
        false,
        &History {
            contacts_24h: 1000,
            contacts_7d: 1000,
            ..History::default()
        },
    );
    let r = |n: &str| many.reasons.iter().find(|r| r.signal == n).unwrap().weight;
    assert_eq!(r("contacts_24h"), 24);
    assert!(
        !signals(&many).contains(&"contacts_7d"),
        "the 24 h ones are not counted twice"
    );
}

#[test]
fn levels_follow_the_thresholds() {
    let config = PriorityConfig::default_config();
    let s = Scorer::new(config.clone());
    for (text, public) in [
        ("gracias", false),
        ("hola", false),
        ("quiero cancelar", false),
        ("quiero cancelar, pesimo servicio", true),
        ("HACKEARON MI CUENTA Y ME ROBARON, VOY A PROFECO!!!", true),
    ] {
        let score = s.score(text, public, &History::default());
        let l = config.levels;
        let expected = match score.score {
            x if x >= l.p1 => Priority::P1,
            x if x >= l.p2 => Priority::P2,
            x if x >= l.p3 => Priority::P3,
            _ => Priority::P4,
        };
        assert_eq!(score.priority, expected, "{text}");
    }
}

#[test]
fn priorities_parse_and_raise() {
    assert_eq!("p2".parse::<Priority>(), Ok(Priority::P2));
    assert!("P5".parse::<Priority>().is_err());
    assert_eq!(Priority::P3.raised(), Priority::P2);
    assert_eq!(Priority::P1.raised(), Priority::P1);
    assert_eq!(Priority::P4.rank(), 4);
    assert!(Priority::P1 < Priority::P4);
}

proptest::proptest! {
    #[test]
    fn any_text_scores_without_panic(text in proptest::prelude::any::<String>(), public: bool) {
        let s = scorer();
        let score = s.score(&text, public, &History::default());
        proptest::prop_assert!(score.score >= 0);
        proptest::prop_assert!(!score.team.is_empty());
    }
}

mod apply_rule {
    use super::*;
    use crate::ids::RecordKey;
    use chrono::{TimeZone, Utc};

    fn at(s: i64) -> Option<DateTime<Utc>> {
        Some(Utc.timestamp_opt(s, 0).unwrap())
    }

    fn key(n: u32) -> RecordKey {
        RecordKey::from_stored(format!("k{n}"))
    }

    #[test]
    fn first_higher_and_new_waits_set_the_level_lower_ones_in_the_same_wait_do_not() {
        let s = scorer();
        let now = Utc.timestamp_opt(1_795_000_100, 0).unwrap();
        let urgent = s.score(
            "me cobraron dos veces, es urgente",
            false,
            &History::default(),
        );
        let calm = s.score("hola?", false, &History::default());
        let mut c = None;
        let wait = at(1_795_000_000);
        assert_eq!(
            apply(&mut c, wait, &key(1), &calm, now),
            Applied::Prioritized
        );
        assert_eq!(c.as_ref().unwrap().priority, Priority::P4);
        assert_eq!(
            apply(&mut c, wait, &key(2), &urgent, now),
            Applied::Prioritized
        );
        assert_eq!(apply(&mut c, wait, &key(3), &calm, now), Applied::Kept);
        let p = c.as_ref().unwrap();
        assert_eq!(p.priority, urgent.priority);
        assert_eq!(p.record_key, key(2));
        assert!(p.complaint);
        for k in 1..=3 {
            assert_eq!(
                apply(&mut c, wait, &key(k), &urgent, now),
                Applied::AlreadySeen
            );
        }
        // A new wait starts afresh, and lower; the complaint is remembered.
        let wait = at(1_795_009_000);
        assert_eq!(
            apply(&mut c, wait, &key(4), &calm, now),
            Applied::Prioritized
        );
        let p = c.as_ref().unwrap();
        assert_eq!(p.priority, Priority::P4);
        assert!(p.complaint);
        assert_eq!(p.seen, [key(1), key(2), key(3), key(4)]);
    }

    #[test]
    fn the_memory_of_seen_messages_is_bounded() {
        let s = scorer();
        let now = Utc.timestamp_opt(1_795_000_100, 0).unwrap();
        let calm = s.score("hola", false, &History::default());
        let mut c = None;
        for k in 0..100 {
            apply(&mut c, at(1_795_000_000), &key(k), &calm, now);
        }
        let seen = &c.as_ref().unwrap().seen;
        assert_eq!(seen.len(), SEEN_KEPT);
        assert_eq!(seen.last(), Some(&key(99)));
    }
}

/// A model that answers the same for every text.
#[derive(Debug)]
struct Fixed(Assessment);

impl UrgencyModel for Fixed {
    fn assess(&self, _: &str) -> Assessment {
        self.0.clone()
    }
}

fn with_model(probability: f64, raise: bool, lower: bool) -> Scorer {
    scorer().with_model(std::sync::Arc::new(Fixed(Assessment {
        probability,
        raise,
        lower,
        topics: vec!["security".into(), "billing".into()],
    })))
}

fn model_reason(score: &Score) -> &Reason {
    score
        .reasons
        .iter()
        .find(|r| r.signal == MODEL_SIGNAL)
        .expect("the model's reason")
}

#[test]
fn a_sure_model_raises_a_described_harm_to_p2_and_explains_it() {
    let text = "the oven caught fire on the second use";
    let plain = scorer().score(text, false, &History::default());
    assert!(plain.priority > Priority::P2, "{plain:?}");
    let scored = with_model(0.93, true, false).score(text, false, &History::default());
    assert_eq!(scored.priority, Priority::P2);
    let reason = model_reason(&scored);
    assert_eq!(
        reason.detail.as_deref(),
        Some("0.93, nearest: security, billing")
    );
    // The score is still the sum of the reasons: the model adds what was missing.
    assert_eq!(scored.score, scorer().config().levels.p2);
    // No topical word: the model's nearest topic routes it.
    assert_eq!(scored.topic, "security");
}

#[test]
fn a_negative_sum_is_made_up_too() {
    // A question lowers the sum below 0; the model's weight makes up the whole way to P2.
    let text = "the heater melted its plug, is it safe to use the others??";
    let scored = with_model(0.9, true, false).score(text, false, &History::default());
    assert_eq!(scored.priority, Priority::P2, "{scored:?}");
}

#[test]
fn a_sure_model_lowers_a_p2_of_words_alone_but_never_a_p1_or_one_of_history() {
    let levels = scorer().config().levels;
    let p2_text = "your chatbot is funny, it replied with a dad joke";
    let plain = scorer().score(p2_text, false, &History::default());
    assert_eq!(plain.priority, Priority::P2, "{plain:?}");
    {
        let lowered = with_model(0.05, false, true).score(p2_text, false, &History::default());
        assert_eq!(lowered.priority, Priority::P3, "{lowered:?}");
        assert_eq!(lowered.score, levels.p2 - 1);
        assert!(model_reason(&lowered).weight < 0);
        // With a history signal in the sum, the model does not lower it.
        let history = History {
            breaches: 1,
            ..History::default()
        };
        let kept = with_model(0.05, false, true).score(p2_text, false, &history);
        assert!(kept.priority <= Priority::P2, "{kept:?}");
    }
    let p1_text = "URGENT my account was hacked and they emptied it, I'm calling my lawyer!!!";
    let plain = scorer().score(p1_text, false, &History::default());
    assert_eq!(plain.priority, Priority::P1);
    let still = with_model(0.01, false, true).score(p1_text, false, &History::default());
    assert_eq!(still.priority, Priority::P1);
    assert_eq!(model_reason(&still).weight, 0);
}

#[test]
fn calming_words_hold_back_the_models_raise_and_say_so() {
    // Withdrawn, solved, hypothetical, thanked or laughed off: the words say the trouble is
    // over or imagined, and a sure model does not raise it.
    for text in [
        "ignore my last message about the weird charge, it was my son buying a game, sorry!",
        "what happens if my card gets stolen while I'm abroad?",
        "the courier left it with the neighbour, all good, thanks",
        "the power came back after a minute, just letting you know",
    ] {
        let plain = scorer().score(text, false, &History::default());
        assert!(plain.calm, "{text}: {plain:?}");
        let scored = with_model(0.97, true, false).score(text, false, &History::default());
        assert_eq!(scored.priority, plain.priority, "{text}: {scored:?}");
        let reason = model_reason(&scored);
        assert_eq!(reason.weight, 0);
        assert!(
            reason
                .detail
                .as_deref()
                .unwrap_or_default()
                .contains(", held back by "),
            "{reason:?}"
        );
    }
    // Without a calming word the same sure model raises it.
    let text = "my card was used abroad while it is in my wallet";
    let scored = with_model(0.97, true, false).score(text, false, &History::default());
    assert!(!scored.calm);
    assert!(scored.priority <= Priority::P2, "{scored:?}");
}

#[test]
fn an_unsure_model_only_explains_and_no_text_asks_it_nothing() {
    let text = "the parcel arrived, thanks";
    let plain = scorer().score(text, false, &History::default());
    let scored = with_model(0.5, false, false).score(text, false, &History::default());
    assert_eq!(scored.priority, plain.priority);
    assert_eq!(scored.score, plain.score);
    assert_eq!(model_reason(&scored).weight, 0);
    let empty = with_model(0.99, true, false).score("", false, &History::default());
    assert!(empty.reasons.iter().all(|r| r.signal != MODEL_SIGNAL));
}
