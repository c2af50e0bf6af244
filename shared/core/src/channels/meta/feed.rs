//! Public conversations: Facebook page feed changes (`object: page`, `changes[]`) and Instagram
//! comments and mentions (`object: instagram`, `changes[]`).
//!
//! Every change becomes exactly one record:
//!
//! | change | record |
//! |---|---|
//! | page `feed`, item `comment`, verb `add` | public `comment` [`Message`] (id `comment_id`, thread `post_id`) |
//! | page `feed`, item `comment`, verb `edited`/`edit`, `remove`, `hide`, `unhide` | [`Event`] on `comment_id`: edit, delete, hide, unhide |
//! | page `feed`, item `post`/`status`/`photo`/`video`/`share` by a visitor | public `comment` (`share`) message on `post_id`, or its events |
//! | page `feed`, the same items by the page itself | [`Notification`] `feed.<item>`: the brand's own posts are not conversations |
//! | page `feed`, item `reaction`/`like` | reaction [`Event`] on `comment_id`, else `post_id` |
//! | page `mention` | public `mention` message (id `comment_id`, else `post_id`) |
//! | page `ratings` with a review text, or a comment on a rating | public `comment` message |
//! | Instagram `comments`, `live_comments` | public `comment` message (id `id`, thread `media.id`) |
//! | Instagram `mentions` | public `mention` message (id `comment_id`, else `media_id`) |
//! | anything else (`event`, `album`, `story_insights`, unknown fields and verbs) | [`Notification`] with the raw JSON |
//!
//! A comment keeps one id for its whole life, so its edits, removal and hiding are events on
//! that id, never new messages. The customer of an item is its author (`from`, or the older
//! `sender_id`/`sender_name`); an item written by the page or account itself is outbound and
//! keeps the page as a provisional customer, its `reply_to` naming the comment it answers.
//! Items without an author (Instagram mentions) have the customer `unknown`.
//!
//! Reactions have no id of their own: their event id is `<target>:<author>:<type>:<verb>:<time>`.
//! Edits and hides are `<id>:edited:<time>`, `<id>:hide:<time>`, `<id>:unhide:<time>` (a digest
//! of the item when it has no time), a removal is `<id>:remove`.
//!
//! [`Event`]: crate::model::Event
//! [`Message`]: crate::model::Message
//! [`Notification`]: crate::model::Notification

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::channels::json::{id_of, provider_time, text_of, unsupported};
use crate::ids::{ConversationId, CustomerId, digest_json};
use crate::model::{
    Attachment, Channel, CustomerIdentity, Direction, Event, EventKind, Message, MessageKind,
    ProviderId, Record,
};

/// Feed items that are posts: conversations when a visitor writes them.
const POST_ITEMS: [&str; 5] = ["post", "status", "photo", "video", "share"];

/// Normalizes one `changes[]` item of a page entry (`field` `feed`, `mention`, `ratings`, …):
/// its one record, keeping the change's value as its raw JSON.
pub(crate) fn page_change(
    page_id: &ProviderId,
    field: &str,
    value: Value,
    received_at: DateTime<Utc>,
) -> Record {
    let change = Change::new(Channel::FacebookFeed, page_id, &value, received_at);
    let record = match field {
        "feed" => change.feed(),
        "mention" => change.mention(),
        "ratings" => change.rating(),
        other => change.notification(other),
    };
    record.with_raw(value)
}

/// Normalizes one `changes[]` item of an Instagram entry (`comments`, `live_comments`,
/// `mentions`, `story_insights`, …): its one record, keeping the change's value as its raw
/// JSON.
pub(crate) fn instagram_change(
    account_id: &ProviderId,
    field: &str,
    value: Value,
    received_at: DateTime<Utc>,
) -> Record {
    let change = Change::new(Channel::Instagram, account_id, &value, received_at);
    let f = change.fields;
    let record = match field {
        "comments" | "live_comments" => match id_of(f.id) {
            Some(id) => change.message(Body {
                id,
                kind: MessageKind::Comment,
                provider_type: Some(field.to_owned()),
                text: text_of(f.text).map(str::to_owned),
                attachments: Vec::new(),
                reply_to: id_of(f.parent_id),
                thread_id: id_of(nested(f.media, "id")),
            }),
            None => change.notification(field),
        },
        "mentions" => match id_of(f.comment_id).or_else(|| id_of(f.media_id)) {
            Some(id) => change.message(Body {
                id,
                kind: MessageKind::Mention,
                provider_type: Some(field.to_owned()),
                text: text_of(f.text).map(str::to_owned),
                attachments: Vec::new(),
                reply_to: None,
                thread_id: id_of(f.media_id),
            }),
            None => change.notification(field),
        },
        other => change.notification(other),
    };
    record.with_raw(value)
}

/// The fields of a change value that the normalizer reads, found in one pass over its keys
/// (reading each by its pointer searched the object again for every field: a tenth of a
/// change's time). A value that is not an object has none.
#[derive(Debug, Default, Clone, Copy)]
struct Fields<'a> {
    item: Option<&'a Value>,
    verb: Option<&'a Value>,
    created_time: Option<&'a Value>,
    from: Option<&'a Value>,
    sender_id: Option<&'a Value>,
    sender_name: Option<&'a Value>,
    reviewer_id: Option<&'a Value>,
    reviewer_name: Option<&'a Value>,
    id: Option<&'a Value>,
    comment_id: Option<&'a Value>,
    post_id: Option<&'a Value>,
    parent_id: Option<&'a Value>,
    open_graph_story_id: Option<&'a Value>,
    media: Option<&'a Value>,
    media_id: Option<&'a Value>,
    message: Option<&'a Value>,
    text: Option<&'a Value>,
    review_text: Option<&'a Value>,
    reaction_type: Option<&'a Value>,
    photo: Option<&'a Value>,
    video: Option<&'a Value>,
    photos: Option<&'a Value>,
    link: Option<&'a Value>,
    photo_id: Option<&'a Value>,
    video_id: Option<&'a Value>,
}

impl<'a> Fields<'a> {
    fn of(value: &'a Value) -> Self {
        let mut fields = Fields::default();
        let Value::Object(map) = value else {
            return fields;
        };
        for (key, v) in map {
            let slot = match key.as_str() {
                "item" => &mut fields.item,
                "verb" => &mut fields.verb,
                "created_time" => &mut fields.created_time,
                "from" => &mut fields.from,
                "sender_id" => &mut fields.sender_id,
                "sender_name" => &mut fields.sender_name,
                "reviewer_id" => &mut fields.reviewer_id,
                "reviewer_name" => &mut fields.reviewer_name,
                "id" => &mut fields.id,
                "comment_id" => &mut fields.comment_id,
                "post_id" => &mut fields.post_id,
                "parent_id" => &mut fields.parent_id,
                "open_graph_story_id" => &mut fields.open_graph_story_id,
                "media" => &mut fields.media,
                "media_id" => &mut fields.media_id,
                "message" => &mut fields.message,
                "text" => &mut fields.text,
                "review_text" => &mut fields.review_text,
                "reaction_type" => &mut fields.reaction_type,
                "photo" => &mut fields.photo,
                "video" => &mut fields.video,
                "photos" => &mut fields.photos,
                "link" => &mut fields.link,
                "photo_id" => &mut fields.photo_id,
                "video_id" => &mut fields.video_id,
                _ => continue,
            };
            *slot = Some(v);
        }
        fields
    }
}

/// The field `key` of an object field (`from.id`, `media.id`).
fn nested<'a>(value: Option<&'a Value>, key: &str) -> Option<&'a Value> {
    value.and_then(|v| v.get(key))
}

/// One change value with what its record shares with any other: time, author, conversation.
/// Each change makes one record, which takes these by value.
struct Change<'a> {
    channel: Channel,
    account: &'a ProviderId,
    value: &'a Value,
    fields: Fields<'a>,
    provider_timestamp: Option<String>,
    at: DateTime<Utc>,
    estimated: bool,
    customer: CustomerIdentity,
    conversation_id: ConversationId,
    /// Written by the page or account itself.
    by_account: bool,
}

/// What a message of a change carries besides the shared fields.
struct Body {
    id: ProviderId,
    kind: MessageKind,
    provider_type: Option<String>,
    text: Option<String>,
    attachments: Vec<Attachment>,
    reply_to: Option<ProviderId>,
    thread_id: Option<ProviderId>,
}

/// The topic of a change's notification, `<field>.<item>` or `<field>`: written out only when
/// a notification is made, not for every change.
#[derive(Debug, Clone, Copy)]
struct Topic<'a> {
    field: &'static str,
    item: Option<&'a str>,
}

impl Topic<'_> {
    fn of(field: &'static str) -> Self {
        Topic { field, item: None }
    }

    fn text(&self) -> String {
        match self.item {
            Some(item) => format!("{}.{item}", self.field),
            None => self.field.to_owned(),
        }
    }
}

impl<'a> Change<'a> {
    fn new(
        channel: Channel,
        account: &'a ProviderId,
        value: &'a Value,
        received_at: DateTime<Utc>,
    ) -> Self {
        let fields = Fields::of(value);
        let (provider_timestamp, at) = provider_time(fields.created_time);
        let author = author(&fields);
        let by_account = author.as_ref().is_some_and(|(id, _)| id == account);
        let (user, display_name) = author.unwrap_or_else(|| (unknown_user(), None));
        Self {
            channel,
            account,
            value,
            fields,
            provider_timestamp,
            at: at.unwrap_or(received_at),
            estimated: at.is_none(),
            conversation_id: ConversationId::derive(channel, account, &user),
            customer: CustomerIdentity {
                customer_id: CustomerId::derive(channel, &user),
                channel,
                provider_user_id: user,
                display_name,
                identifiers: Vec::new(),
            },
            by_account,
        }
    }

    /// A page `feed` change.
    fn feed(self) -> Record {
        let f = self.fields;
        let item = text_of(f.item);
        let topic = Topic {
            field: "feed",
            item,
        };
        let verb = text_of(f.verb);
        match item {
            Some("comment") => match id_of(f.comment_id) {
                Some(id) => {
                    let body = self.comment(id, MessageKind::Comment);
                    self.versioned(verb, topic, body)
                }
                None => self.notification(&topic.text()),
            },
            Some(item) if POST_ITEMS.contains(&item) && !self.by_account => {
                match id_of(f.post_id) {
                    Some(id) => self.versioned(
                        verb,
                        topic,
                        Body {
                            kind: if item == "share" {
                                MessageKind::Share
                            } else {
                                MessageKind::Comment
                            },
                            provider_type: Some(item.to_owned()),
                            text: text_of(f.message).map(str::to_owned),
                            attachments: attachments(&f, item),
                            reply_to: None,
                            thread_id: Some(id.clone()),
                            id,
                        },
                    ),
                    None => self.notification(&topic.text()),
                }
            }
            Some("reaction" | "like") => self.reaction(verb, topic),
            _ => self.notification(&topic.text()),
        }
    }

    /// A page `mention` change: the page named in someone's post or comment.
    fn mention(self) -> Record {
        let f = self.fields;
        match id_of(f.comment_id).or_else(|| id_of(f.post_id)) {
            Some(id) => {
                let body = self.comment(id, MessageKind::Mention);
                self.versioned(text_of(f.verb), Topic::of("mention"), body)
            }
            None => self.notification("mention"),
        }
    }

    /// A page `ratings` change: a review, or a comment on one.
    fn rating(self) -> Record {
        let f = self.fields;
        let verb = text_of(f.verb);
        let on_rating = text_of(f.item) == Some("comment");
        let text = text_of(f.review_text)
            .or_else(|| text_of(f.message))
            .map(str::to_owned);
        if verb == Some("add") && text.is_none() && !on_rating {
            // A bare star rating or recommendation: nothing to answer.
            return self.notification("ratings");
        }
        let story = id_of(f.open_graph_story_id);
        let comment = id_of(f.comment_id);
        let id = if on_rating {
            comment.or_else(|| story.clone())
        } else {
            story.clone().or(comment)
        };
        let id = match (id, verb) {
            (Some(id), _) => id,
            (None, Some("add")) => ProviderId(format!("synthetic:{}", digest_json(self.value))),
            (None, _) => return self.notification("ratings"),
        };
        let body = if on_rating {
            let mut body = self.comment(id, MessageKind::Comment);
            body.thread_id = story.or(body.thread_id);
            body.text = text;
            body
        } else {
            Body {
                kind: MessageKind::Comment,
                provider_type: text_of(f.item).map(str::to_owned),
                text,
                attachments: Vec::new(),
                reply_to: None,
                thread_id: Some(id.clone()),
                id,
            }
        };
        self.versioned(verb, Topic::of("ratings"), body)
    }

    /// The message of a comment (or a mention in one): thread `post_id`, replying to
    /// `parent_id` when that is another comment.
    fn comment(&self, id: ProviderId, kind: MessageKind) -> Body {
        let f = &self.fields;
        let post = id_of(f.post_id);
        // A top-level comment names its post as its parent: that is no reply.
        let reply_to = match (f.parent_id, &post) {
            (Some(parent), Some(post)) if post.matches_json(parent) => None,
            (parent, _) => id_of(parent),
        };
        Body {
            id,
            kind,
            provider_type: text_of(f.item).map(str::to_owned),
            text: text_of(f.message).map(str::to_owned),
            attachments: attachments(f, "comment"),
            reply_to,
            thread_id: post,
        }
    }

    /// One version of an item that keeps its id for life: `add` is the message, the other verbs
    /// are events on it; an unknown verb is a notification on `topic`.
    fn versioned(self, verb: Option<&str>, topic: Topic<'_>, body: Body) -> Record {
        let id = &body.id;
        let direction = self.direction();
        match verb {
            Some("add") => self.message(body),
            Some("edited" | "edit") => {
                let event_id = format!("{id}:edited:{}", self.stamp());
                self.event(
                    event_id,
                    body.id,
                    direction,
                    EventKind::Edit { text: body.text },
                )
            }
            Some("remove") => {
                let event_id = format!("{id}:remove");
                self.event(event_id, body.id, direction, EventKind::Delete)
            }
            // Only the page hides comments: the author is still the customer, the act the brand's.
            Some(verb @ ("hide" | "unhide")) => {
                let event_id = format!("{id}:{verb}:{}", self.stamp());
                self.event(
                    event_id,
                    body.id,
                    Direction::Outbound,
                    EventKind::Hide {
                        hidden: verb == "hide",
                    },
                )
            }
            _ => self.notification(&topic.text()),
        }
    }

    /// A reaction or like on a comment or post.
    fn reaction(self, verb: Option<&str>, topic: Topic<'_>) -> Record {
        let f = self.fields;
        let target = id_of(f.comment_id).or_else(|| id_of(f.post_id));
        let reaction_type = text_of(f.reaction_type).unwrap_or("like");
        let (Some(target), Some(verb)) = (target, verb) else {
            return self.notification(&topic.text());
        };
        let emoji = match verb {
            "add" | "edit" | "edited" => Some(reaction_type.to_owned()),
            "remove" => None,
            _ => return self.notification(&topic.text()),
        };
        let event_id = format!(
            "{target}:{}:{reaction_type}:{verb}:{}",
            self.customer.provider_user_id,
            self.stamp()
        );
        let direction = self.direction();
        self.event(event_id, target, direction, EventKind::Reaction { emoji })
    }

    fn direction(&self) -> Direction {
        if self.by_account {
            Direction::Outbound
        } else {
            Direction::Inbound
        }
    }

    /// The provider time as sent, or a digest of the item when it has none.
    fn stamp(&self) -> Cow<'_, str> {
        match &self.provider_timestamp {
            Some(stamp) => Cow::Borrowed(stamp),
            None => Cow::Owned(digest_json(self.value)),
        }
    }

    fn message(self, body: Body) -> Record {
        let direction = self.direction();
        Record::Message(Message {
            channel: self.channel,
            account_id: self.account.clone(),
            provider_message_id: body.id,
            conversation_id: self.conversation_id,
            direction,
            customer: self.customer,
            kind: body.kind,
            provider_type: body.provider_type,
            text: body.text,
            attachments: body.attachments,
            sent_at: self.at,
            sent_at_estimated: self.estimated,
            provider_timestamp: self.provider_timestamp,
            reply_to: body.reply_to,
            public: true,
            thread_id: body.thread_id,
            raw: Value::Null,
            source: None,
        })
    }

    fn event(
        self,
        event_id: String,
        refers_to: ProviderId,
        direction: Direction,
        kind: EventKind,
    ) -> Record {
        Record::Event(Event {
            channel: self.channel,
            account_id: self.account.clone(),
            event_id: ProviderId(event_id),
            refers_to,
            conversation_id: self.conversation_id,
            customer: self.customer,
            direction,
            kind,
            occurred_at: self.at,
            occurred_at_estimated: self.estimated,
            provider_timestamp: self.provider_timestamp,
            refers_to_unknown: false,
            raw: Value::Null,
        })
    }

    fn notification(self, topic: &str) -> Record {
        unsupported(
            self.channel,
            Some(self.account.clone()),
            topic,
            self.value,
            self.at,
        )
    }
}

/// The author of an item and the name they show: `from` (Facebook `name`, Instagram
/// `username`), the older `sender_id`/`sender_name`, or a rating's `reviewer_id`.
fn author(f: &Fields<'_>) -> Option<(ProviderId, Option<String>)> {
    let name = |names: &[Option<&Value>]| {
        names
            .iter()
            .find_map(|name| text_of(*name))
            .map(str::to_owned)
    };
    if let Some(id) = id_of(nested(f.from, "id")) {
        let names = [
            nested(f.from, "name"),
            nested(f.from, "username"),
            f.sender_name,
        ];
        return Some((id, name(&names)));
    }
    if let Some(id) = id_of(f.sender_id) {
        return Some((id, name(&[f.sender_name])));
    }
    id_of(f.reviewer_id).map(|id| (id, name(&[f.reviewer_name])))
}

fn unknown_user() -> ProviderId {
    ProviderId("unknown".into())
}

/// Media of a feed item: a comment's `photo`/`video` URL, a post's `photos[]`, the `link` of a
/// photo, video or shared link.
fn attachments(f: &Fields<'_>, item: &str) -> Vec<Attachment> {
    let url = |kind: &str, url: &str, media_id: Option<ProviderId>| Attachment {
        kind: kind.to_owned(),
        media_id: media_id.map(|id| id.0),
        url: Some(url.to_owned()),
        ..Attachment::default()
    };
    let mut out: Vec<Attachment> = [("photo", f.photo), ("video", f.video)]
        .into_iter()
        .filter_map(|(kind, value)| Some(url(kind, value?.as_str()?, None)))
        .collect();
    if let Some(photos) = f.photos.and_then(Value::as_array) {
        out.extend(
            photos
                .iter()
                .filter_map(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(|s| url("photo", s, None)),
        );
    }
    if let Some(link) = text_of(f.link) {
        match item {
            "photo" => out.push(url(item, link, id_of(f.photo_id))),
            "video" => out.push(url(item, link, id_of(f.video_id))),
            "share" => out.push(url("link", link, None)),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Webhook;
    use serde_json::json;
    use std::collections::BTreeMap;

    const PAGE: &str = "1234567890321";

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn fixtures(dir: &str) -> BTreeMap<String, Value> {
        let dir = format!("{}/../../tests/fixtures/{dir}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_dir(&dir)
            .expect("fixtures folder")
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .map(|p| {
                let name = p.file_stem().unwrap().to_string_lossy().into_owned();
                let name = name.split("__").next().unwrap().to_owned();
                let json = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
                (name, json)
            })
            .collect()
    }

    fn feed_fixture(name: &str) -> Value {
        fixtures("facebook_feed").remove(name).expect(name)
    }

    /// The `value`s of every change of a delivery, with their `field`.
    fn changes(body: &Value) -> Vec<(String, Value)> {
        body["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|e| e["changes"].as_array().into_iter().flatten())
            .map(|c| {
                (
                    c["field"].as_str().unwrap_or("").to_owned(),
                    c["value"].clone(),
                )
            })
            .collect()
    }

    fn page_delivery(values: &[Value]) -> Value {
        let changes: Vec<Value> = values
            .iter()
            .map(|v| json!({"field": "feed", "value": v}))
            .collect();
        json!({"object": "page", "entry": [{"id": PAGE, "time": 1, "changes": changes}]})
    }

    fn facebook(body: &Value) -> Vec<Record> {
        crate::channels::normalize(Webhook::Facebook, body, now())
    }

    fn instagram(body: &Value) -> Vec<Record> {
        crate::channels::normalize(Webhook::Instagram, body, now())
    }

    fn one(records: Vec<Record>) -> Record {
        let [record] = <[Record; 1]>::try_from(records).unwrap_or_else(|r| panic!("{r:?}"));
        record
    }

    #[test]
    fn every_page_feed_fixture_maps_to_its_record_kinds() {
        let expected: BTreeMap<&str, &[&str]> = BTreeMap::from([
            ("album_add", &["feed.album"][..]),
            ("comment_add_from", &["comment"]),
            ("comment_add_photo", &["comment"]),
            ("comment_add_sender_legacy", &["comment"]),
            ("comment_add_video", &["comment"]),
            ("comment_edited", &["edit"]),
            ("comment_edited_photo", &["edit"]),
            ("comment_hide", &["hide"]),
            ("comment_remove", &["delete"]),
            ("comment_unhide", &["unhide"]),
            ("event_add", &["feed.event"]),
            ("like_add_comment", &["reaction"]),
            ("mention_comment_add", &["mention"]),
            ("mention_post_add", &["mention"]),
            (
                "multi_entry_nonfeed_fields",
                &["parking", "payment_options"],
            ),
            // Posts by the page itself are not conversations.
            ("photo_add_message", &["feed.photo"]),
            ("post_add", &["comment"]),
            ("post_edit", &["edit"]),
            ("post_remove", &["feed.post"]),
            ("ratings_comment_add", &["comment"]),
            ("ratings_rating_add", &["comment"]),
            ("reaction_add_comment", &["reaction"]),
            ("reaction_add_post", &["reaction"]),
            ("reaction_add_reply", &["reaction"]),
            ("reaction_edit", &["reaction"]),
            ("reaction_remove", &["reaction.removed"]),
            ("share_add", &["feed.share"]),
            ("status_add", &["feed.status"]),
            ("status_add_photos", &["feed.status"]),
            ("unknown_field", &["foo"]),
            ("video_add", &["feed.video"]),
        ]);
        let all = fixtures("facebook_feed");
        assert_eq!(
            all.keys().map(String::as_str).collect::<Vec<_>>(),
            expected.keys().copied().collect::<Vec<_>>(),
            "every fixture has an expected mapping"
        );
        for (name, body) in &all {
            let records = facebook(body);
            let kinds: Vec<String> = records.iter().map(Record::kind_name).collect();
            assert_eq!(kinds, expected[name.as_str()], "{name}");
            // No change is lost: one record per change, all on the page.
            assert_eq!(records.len(), changes(body).len(), "{name}");
            for (r, (_, value)) in records.iter().zip(changes(body)) {
                // A change without a `value` never reaches this module; the envelope keeps it.
                if !value.is_null() {
                    assert_eq!(r.channel(), Channel::FacebookFeed, "{name}");
                }
                assert_eq!(r.account_id().as_str(), PAGE, "{name}");
                if let Record::Message(m) = r {
                    assert!(m.public, "{name}");
                }
            }
        }
    }

    #[test]
    fn every_added_comment_is_a_public_message_with_its_comment_id() {
        for (name, body) in fixtures("facebook_feed") {
            for (field, value) in changes(&body) {
                if field != "feed" || value["item"] != "comment" || value["verb"] != "add" {
                    continue;
                }
                let id = value["comment_id"].as_str().unwrap();
                let found = facebook(&body).into_iter().any(|r| {
                    matches!(r, Record::Message(m)
                        if m.provider_message_id.as_str() == id && m.public
                            && m.kind == MessageKind::Comment)
                });
                assert!(found, "{name}");
            }
        }
    }

    #[test]
    fn a_comment_keeps_post_thread_author_text_time_and_photo() {
        let Record::Message(m) = one(facebook(&feed_fixture("comment_add_photo"))) else {
            panic!()
        };
        assert_eq!(
            m.provider_message_id.as_str(),
            "901097836652708_903438993085259"
        );
        assert_eq!(
            m.thread_id.as_ref().map(ProviderId::as_str),
            Some("1234567890321_901097836652708")
        );
        // parent_id == post_id: a top-level comment.
        assert_eq!(m.reply_to, None);
        assert_eq!(m.text.as_deref(), Some("and the next one"));
        assert_eq!(m.customer.provider_user_id.as_str(), PAGE);
        assert_eq!(m.customer.display_name.as_deref(), Some("Tester"));
        assert_eq!(m.sent_at.timestamp(), 1_449_135_003);
        assert_eq!(m.provider_timestamp.as_deref(), Some("1449135003"));
        assert!(!m.sent_at_estimated);
        assert_eq!(m.attachments.len(), 1);
        assert_eq!(m.attachments[0].kind, "photo");
        assert!(
            m.attachments[0]
                .url
                .as_deref()
                .unwrap()
                .starts_with("https://")
        );

        let Record::Message(m) = one(facebook(&feed_fixture("comment_add_video"))) else {
            panic!()
        };
        assert_eq!(m.attachments[0].kind, "video");
    }

    #[test]
    fn a_visitor_reply_to_a_comment_is_inbound_and_names_its_parent() {
        let mut value = feed_fixture("comment_add_from")["entry"][0]["changes"][0]["value"].clone();
        value["from"] = json!({"id": "777", "name": "Ana"});
        value["parent_id"] = json!("901097836652708_111");
        let Record::Message(m) = one(facebook(&page_delivery(&[value]))) else {
            panic!()
        };
        assert_eq!(m.direction, Direction::Inbound);
        assert_eq!(
            m.reply_to.as_ref().map(ProviderId::as_str),
            Some("901097836652708_111")
        );
        assert_eq!(m.customer.provider_user_id.as_str(), "777");
        assert_eq!(
            m.conversation_id,
            ConversationId::derive(Channel::FacebookFeed, &PAGE.into(), &"777".into())
        );
    }

    #[test]
    fn comment_verbs_are_events_on_the_comment() {
        for (name, expected) in [
            (
                "comment_edited",
                EventKind::Edit {
                    text: Some("Let's see the Webhooks in action :D".into()),
                },
            ),
            (
                "comment_edited_photo",
                EventKind::Edit {
                    text: Some("Let's see the Webhooks in action :D".into()),
                },
            ),
            ("comment_remove", EventKind::Delete),
            ("comment_hide", EventKind::Hide { hidden: true }),
            ("comment_unhide", EventKind::Hide { hidden: false }),
        ] {
            let body = feed_fixture(name);
            let comment_id = changes(&body)[0].1["comment_id"]
                .as_str()
                .unwrap()
                .to_owned();
            let Record::Event(e) = one(facebook(&body)) else {
                panic!("{name}")
            };
            assert_eq!(e.kind, expected, "{name}");
            assert_eq!(e.refers_to.as_str(), comment_id, "{name}");
            assert!(e.event_id.as_str().starts_with(&comment_id), "{name}");
        }
        let Record::Event(e) = one(facebook(&feed_fixture("comment_hide"))) else {
            panic!()
        };
        assert_eq!(
            e.event_id.as_str(),
            "900728623356296_900744590021366:hide:1467894562"
        );
        let Record::Event(e) = one(facebook(&feed_fixture("comment_remove"))) else {
            panic!()
        };
        assert_eq!(
            e.event_id.as_str(),
            "905578656204626_905579239537901:remove"
        );
        // No created_time: the receive time, flagged.
        assert!(e.occurred_at_estimated);
        assert_eq!(e.occurred_at, now());
    }

    #[test]
    fn a_comment_added_edited_then_removed_is_one_comment_with_three_versions() {
        let value = |name: &str| changes(&feed_fixture(name))[0].1.clone();
        let mut versions = [
            value("comment_add_from"),
            value("comment_edited"),
            value("comment_remove"),
        ];
        for v in &mut versions {
            v["comment_id"] = json!("C_1");
        }
        let records = facebook(&page_delivery(&versions));
        let messages: Vec<&Message> = records
            .iter()
            .filter_map(|r| match r {
                Record::Message(m) => Some(m),
                _ => None,
            })
            .collect();
        let events: Vec<&Event> = records
            .iter()
            .filter_map(|r| match r {
                Record::Event(e) => Some(e),
                _ => None,
            })
            .collect();
        assert_eq!((messages.len(), events.len()), (1, 2), "{records:?}");
        assert_eq!(messages[0].provider_message_id.as_str(), "C_1");
        assert!(events.iter().all(|e| e.refers_to.as_str() == "C_1"));
        assert_eq!(
            events.iter().map(|e| e.kind.name()).collect::<Vec<_>>(),
            ["edit", "delete"]
        );
        let keys: std::collections::BTreeSet<_> = records.iter().map(Record::key).collect();
        assert_eq!(keys.len(), 3);
        // A retry of the same delivery is the same records.
        assert_eq!(facebook(&page_delivery(&versions)), records);
    }

    #[test]
    fn page_authored_items_are_outbound_and_visitors_inbound() {
        for (name, direction) in [
            ("comment_add_from", Direction::Outbound),
            ("comment_add_sender_legacy", Direction::Outbound),
            ("comment_remove", Direction::Outbound),
            ("reaction_add_comment", Direction::Outbound),
            ("reaction_add_post", Direction::Outbound),
            ("like_add_comment", Direction::Inbound),
            ("post_add", Direction::Inbound),
            ("post_edit", Direction::Inbound),
            ("ratings_rating_add", Direction::Inbound),
            ("mention_comment_add", Direction::Inbound),
        ] {
            let record = one(facebook(&feed_fixture(name)));
            let got = match &record {
                Record::Message(m) => m.direction,
                Record::Event(e) => e.direction,
                Record::Notification(n) => panic!("{name}: {n:?}"),
            };
            assert_eq!(got, direction, "{name}");
        }
        // The page's own comment keeps the page as provisional customer.
        let record = one(facebook(&feed_fixture("comment_add_from")));
        assert_eq!(record.customer().unwrap().provider_user_id.as_str(), PAGE);
    }

    #[test]
    fn visitor_posts_are_public_messages_and_their_edits_events() {
        let Record::Message(m) = one(facebook(&feed_fixture("post_add"))) else {
            panic!()
        };
        assert_eq!(m.kind, MessageKind::Comment);
        assert_eq!(
            m.provider_message_id.as_str(),
            "1234567890321_7293787835232"
        );
        assert_eq!(m.thread_id, Some(m.provider_message_id.clone()));
        assert_eq!(m.text.as_deref(), Some("Let's check this"));
        assert_eq!(m.customer.display_name.as_deref(), Some("John Doe"));
        assert!(m.sent_at_estimated);
        assert_eq!(m.sent_at, now());

        let Record::Event(e) = one(facebook(&feed_fixture("post_edit"))) else {
            panic!()
        };
        assert_eq!(
            e.event_id.as_str(),
            "1234567890321_7293787835232:edited:1467890409"
        );
        // Numeric author id, same customer as the post.
        assert_eq!(e.customer.provider_user_id.as_str(), "8423678347823");
        assert_eq!(e.conversation_id, m.conversation_id);

        let mut share = changes(&feed_fixture("share_add"))[0].1.clone();
        share["from"] = json!({"id": "42", "name": "Bea"});
        let Record::Message(m) = one(facebook(&page_delivery(&[share]))) else {
            panic!()
        };
        assert_eq!(m.kind, MessageKind::Share);
        assert_eq!(m.attachments[0].kind, "link");

        let mut removed = changes(&feed_fixture("post_remove"))[0].1.clone();
        removed["from"] = json!({"id": "42"});
        let Record::Event(e) = one(facebook(&page_delivery(&[removed]))) else {
            panic!()
        };
        assert_eq!(e.kind, EventKind::Delete);
        assert_eq!(e.event_id.as_str(), "1234567890321_901097836652708:remove");
    }

    #[test]
    fn reactions_are_keyed_by_target_author_type_verb_and_time() {
        let event = |name: &str| match one(facebook(&feed_fixture(name))) {
            Record::Event(e) => e,
            other => panic!("{name}: {other:?}"),
        };
        let e = event("reaction_add_comment");
        assert_eq!(e.refers_to.as_str(), "1234567890321_1264545546974600");
        assert_eq!(
            e.kind,
            EventKind::Reaction {
                emoji: Some("love".into())
            }
        );
        assert_eq!(
            e.event_id.as_str(),
            "1234567890321_1264545546974600:1234567890321:love:add:1475578854"
        );
        assert_eq!(
            event("reaction_add_post").refers_to.as_str(),
            "1234567890321_98735342324352"
        );
        assert_eq!(
            event("reaction_remove").kind,
            EventKind::Reaction { emoji: None }
        );
        let like = event("like_add_comment");
        assert_eq!(
            like.kind,
            EventKind::Reaction {
                emoji: Some("like".into())
            }
        );
        assert_eq!(
            like.event_id.as_str(),
            "940663242694065_659751347534292:909653922461664:like:add:1450701319"
        );
        assert_ne!(
            event("reaction_edit").event_id,
            event("reaction_remove").event_id
        );
    }

    #[test]
    fn mentions_and_ratings_are_public_messages() {
        let Record::Message(m) = one(facebook(&feed_fixture("mention_comment_add"))) else {
            panic!()
        };
        assert_eq!(m.kind, MessageKind::Mention);
        assert_eq!(
            m.provider_message_id.as_str(),
            "7363534231324_3754798971271444"
        );
        assert_eq!(
            m.thread_id.as_ref().map(ProviderId::as_str),
            Some("1234567890321_7363534231324")
        );
        assert_eq!(m.customer.provider_user_id.as_str(), "unknown");
        let Record::Message(m) = one(facebook(&feed_fixture("mention_post_add"))) else {
            panic!()
        };
        assert_eq!(
            m.provider_message_id.as_str(),
            "1234567890321_98722536423179"
        );
        assert_eq!(m.text.as_deref(), Some("A test post message"));

        let Record::Message(m) = one(facebook(&feed_fixture("ratings_rating_add"))) else {
            panic!()
        };
        assert_eq!(m.provider_message_id.as_str(), "904801129604590");
        assert_eq!(m.text.as_deref(), Some("Ja ziemlich coole Sache"));
        assert_eq!(m.customer.provider_user_id.as_str(), "705955836155788");
        assert_eq!(m.customer.display_name.as_deref(), Some("Tester"));
        let Record::Message(m) = one(facebook(&feed_fixture("ratings_comment_add"))) else {
            panic!()
        };
        assert_eq!(
            m.provider_message_id.as_str(),
            "904801129604590_904802532937783"
        );
        assert_eq!(
            m.thread_id.as_ref().map(ProviderId::as_str),
            Some("6767676767")
        );

        // A bare star rating has nothing to answer.
        let mut bare = changes(&feed_fixture("ratings_rating_add"))[0].1.clone();
        bare.as_object_mut().unwrap().remove("review_text");
        let record = page_change(&PAGE.into(), "ratings", bare.clone(), now());
        assert_eq!(record.kind_name(), "ratings");
    }

    #[test]
    fn instagram_comments_and_mentions() {
        let ig = fixtures("instagram");
        let with_changes: Vec<&String> = ig
            .iter()
            .filter(|(_, b)| !changes(b).is_empty())
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            with_changes,
            [
                "comment",
                "comment_minimal",
                "live_comment",
                "mention",
                "nonmsg_story_insights"
            ]
        );
        for name in with_changes {
            let records = instagram(&ig[name]);
            assert_eq!(records.len(), changes(&ig[name]).len(), "{name}");
            assert!(
                records
                    .iter()
                    .all(|r| r.channel() == Channel::Instagram && r.account_id().as_str() == "0")
            );
        }

        let Record::Message(m) = one(instagram(&ig["comment"])) else {
            panic!()
        };
        assert_eq!(
            (m.kind, m.public, m.direction),
            (MessageKind::Comment, true, Direction::Inbound)
        );
        assert_eq!(m.provider_message_id.as_str(), "123456789");
        assert_eq!(m.text.as_deref(), Some("This is an example."));
        assert_eq!(
            m.thread_id.as_ref().map(ProviderId::as_str),
            Some("76543987")
        );
        assert_eq!(
            m.reply_to.as_ref().map(ProviderId::as_str),
            Some("987654321")
        );
        assert_eq!(m.customer.provider_user_id.as_str(), "1234536447");
        assert_eq!(m.customer.display_name.as_deref(), Some("testuser"));
        assert!(m.sent_at_estimated);

        for name in ["comment_minimal", "live_comment"] {
            let Record::Message(m) = one(instagram(&ig[name])) else {
                panic!("{name}")
            };
            assert_eq!(m.kind, MessageKind::Comment, "{name}");
            assert_eq!(m.customer.provider_user_id.as_str(), "unknown", "{name}");
        }

        let Record::Message(m) = one(instagram(&ig["mention"])) else {
            panic!()
        };
        assert_eq!((m.kind, m.public), (MessageKind::Mention, true));
        assert_eq!(m.provider_message_id.as_str(), "17887498072083520");
        assert_eq!(
            m.thread_id.as_ref().map(ProviderId::as_str),
            Some("17887498072083520")
        );
        assert_eq!(m.customer.provider_user_id.as_str(), "unknown");
        assert_eq!(m.direction, Direction::Inbound);

        let record = one(instagram(&ig["nonmsg_story_insights"]));
        assert_eq!(
            (record.record_type(), record.kind_name().as_str()),
            ("notification", "story_insights")
        );
    }

    #[test]
    fn an_instagram_reply_by_the_account_is_outbound() {
        let value = json!({"id": "R1", "text": "Thanks!", "parent_id": "C1",
                           "from": {"id": "17841400000", "username": "brand"},
                           "media": {"id": 555}});
        let Record::Message(m) =
            instagram_change(&"17841400000".into(), "comments", value.clone(), now())
        else {
            panic!()
        };
        assert_eq!(m.direction, Direction::Outbound);
        assert_eq!(m.reply_to.as_ref().map(ProviderId::as_str), Some("C1"));
        assert_eq!(m.thread_id.as_ref().map(ProviderId::as_str), Some("555"));
        assert_eq!(m.raw, value);
    }

    #[test]
    fn unknown_items_verbs_and_shapes_are_notifications_with_their_raw_json() {
        let page: ProviderId = PAGE.into();
        for (field, value, topic) in [
            (
                "feed",
                json!({"item": "comment", "verb": "pin", "comment_id": "C"}),
                "feed.comment",
            ),
            (
                "feed",
                json!({"item": "comment", "verb": "add"}),
                "feed.comment",
            ),
            (
                "feed",
                json!({"item": "hologram", "verb": "add"}),
                "feed.hologram",
            ),
            ("feed", json!({"verb": "add"}), "feed"),
            (
                "feed",
                json!({"item": "reaction", "verb": "add"}),
                "feed.reaction",
            ),
            ("feed", json!(null), "feed"),
            ("mention", json!([1, 2]), "mention"),
            ("ratings", json!("x"), "ratings"),
        ] {
            let Record::Notification(n) = page_change(&page, field, value.clone(), now()) else {
                panic!("{value}")
            };
            assert_eq!(n.topic, topic, "{value}");
            assert_eq!(n.raw, value);
        }
        let Record::Notification(n) = instagram_change(&page, "mentions", json!({}), now()) else {
            panic!()
        };
        assert_eq!(n.topic, "mentions");
    }

    proptest::proptest! {
        #[test]
        fn any_json_is_normalized_without_panicking(
            field in proptest::sample::select(vec![
                "feed", "mention", "ratings", "comments", "live_comments", "mentions",
                "story_insights", "other",
            ]),
            json in arb_json(),
        ) {
            let account: ProviderId = "P".into();
            // One record a change whatever its shape (the type says so), on its channel and
            // account, keeping the change whole.
            for (record, channel) in [
                (page_change(&account, field, json.clone(), now()), Channel::FacebookFeed),
                (instagram_change(&account, field, json.clone(), now()), Channel::Instagram),
            ] {
                proptest::prop_assert_eq!(record.channel(), channel);
                proptest::prop_assert_eq!(record.account_id(), &account);
                proptest::prop_assert_eq!(record.raw(), &json);
                if let Record::Message(m) = &record {
                    proptest::prop_assert!(m.public);
                }
            }
        }
    }

    fn arb_json() -> impl proptest::strategy::Strategy<Value = Value> {
        const WORDS: &[&str] = &[
            "P", "comment", "post", "share", "photo", "reaction", "like", "rating", "add",
            "edited", "remove", "hide", "unhide", "",
        ];
        const KEYS: &[&str] = &[
            "item",
            "verb",
            "id",
            "comment_id",
            "post_id",
            "parent_id",
            "media_id",
            "media",
            "from",
            "sender_id",
            "sender_name",
            "reviewer_id",
            "name",
            "username",
            "created_time",
            "message",
            "text",
            "review_text",
            "open_graph_story_id",
            "reaction_type",
            "photo",
            "photos",
            "video",
            "link",
        ];
        crate::channels::json::arb::json(WORDS, KEYS)
    }
}
