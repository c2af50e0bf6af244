//! Sample deliveries in the shape Meta sends them: one text message from a customer (or the
//! brand's echo), a status, a comment. What `switchboard demo` posts and the tests build on;
//! the real payloads they follow are in `tests/fixtures/`.

use serde_json::json;

/// A WhatsApp text from `from` (profile name `name`) to the number `pn`, sent at `ts`.
pub fn whatsapp_text_named(
    pn: &str,
    from: &str,
    name: &str,
    id: &str,
    ts: i64,
    text: &str,
) -> Vec<u8> {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [{"field": "messages",
      "value": {"metadata": {"display_phone_number": "15550001111", "phone_number_id": pn},
                "contacts": [{"profile": {"name": name}, "wa_id": from}],
                "messages": [{"from": from, "id": id, "timestamp": ts.to_string(),
                              "type": "text", "text": {"body": text}}]}}]}]})
    .to_string()
    .into_bytes()
}

/// A WhatsApp text from `from` (named `Cliente`) to the number `pn`, sent at `ts`.
pub fn whatsapp_text(pn: &str, from: &str, id: &str, ts: i64, text: &str) -> Vec<u8> {
    whatsapp_text_named(pn, from, "Cliente", id, ts, text)
}

/// One WhatsApp delivery of texts from `from` to the number `pn`, one at each of `times`,
/// with ids `<tag>.<i>`: a customer's history in one go.
pub fn whatsapp_texts(pn: &str, from: &str, tag: &str, times: &[i64], text: &str) -> Vec<u8> {
    let messages: Vec<_> = times
        .iter()
        .enumerate()
        .map(|(i, ts)| {
            json!({"from": from, "id": format!("{tag}.{i}"), "timestamp": ts.to_string(),
                   "type": "text", "text": {"body": text}})
        })
        .collect();
    json!({"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [{"field": "messages",
      "value": {"metadata": {"display_phone_number": "15550001111", "phone_number_id": pn},
                "messages": messages}}]}]})
    .to_string()
    .into_bytes()
}

/// A Messenger text between `customer` and the page `PAGE` at `ms` (milliseconds): from the
/// customer, or the page's echo of its own reply when `echo`.
pub fn messenger_text(customer: &str, mid: &str, ms: i64, text: &str, echo: bool) -> Vec<u8> {
    let (from, to) = if echo {
        ("PAGE", customer)
    } else {
        (customer, "PAGE")
    };
    let mut message = json!({"mid": mid, "text": text});
    if echo {
        message["is_echo"] = json!(true);
        message["app_id"] = json!(1);
    }
    json!({"object": "page", "entry": [{"id": "PAGE", "time": ms, "messaging": [
        {"sender": {"id": from}, "recipient": {"id": to}, "timestamp": ms, "message": message}]}]})
    .to_string()
    .into_bytes()
}

/// An Instagram direct message from `sender` to the account `account` at `ms`.
pub fn instagram_text(sender: &str, account: &str, mid: &str, ms: i64, text: &str) -> Vec<u8> {
    json!({"object": "instagram", "entry": [{"id": account, "time": ms, "messaging": [
        {"sender": {"id": sender}, "recipient": {"id": account}, "timestamp": ms,
         "message": {"mid": mid, "text": text}}]}]})
    .to_string()
    .into_bytes()
}

/// A WhatsApp status `status` (`sent`, `delivered`, `read`, `failed`) of the message `id` the
/// number `pn` sent to `recipient`, at `ts`.
pub fn whatsapp_status(pn: &str, recipient: &str, id: &str, status: &str, ts: i64) -> Vec<u8> {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [{"field": "messages",
      "value": {"messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550001111", "phone_number_id": pn},
                "statuses": [{"id": id, "status": status, "timestamp": ts.to_string(),
                              "recipient_id": recipient,
                              "conversation": {"id": "c1", "origin": {"type": "service"}},
                              "pricing": {"billable": true, "pricing_model": "CBP",
                                          "category": "service"}}]}}]}]})
    .to_string()
    .into_bytes()
}

/// A comment `comment_id` by `author` (the page itself when `author` is `PAGE`) on the post
/// `PAGE_<post>` of the page `PAGE`, at `ts` (seconds), under `parent` when given.
pub fn page_comment(
    author: &str,
    comment_id: &str,
    post: &str,
    parent: Option<&str>,
    ts: i64,
    text: &str,
) -> Vec<u8> {
    let post_id = format!("PAGE_{post}");
    json!({"object": "page", "entry": [{"id": "PAGE", "time": ts, "changes": [{"field": "feed",
      "value": {"from": {"id": author, "name": "Cliente"}, "item": "comment", "verb": "add",
                "comment_id": comment_id, "post_id": post_id,
                "parent_id": parent.map_or(post_id.clone(), str::to_owned),
                "created_time": ts, "message": text}}]}]})
    .to_string()
    .into_bytes()
}

/// An Instagram comment `id` by `author` (the account itself when `author` is `account`) on
/// the media `media`, under `parent` when given.
pub fn instagram_comment(
    author: &str,
    account: &str,
    id: &str,
    media: &str,
    parent: Option<&str>,
    text: &str,
) -> Vec<u8> {
    let mut value = json!({"from": {"id": author, "username": "cliente"},
        "media": {"id": media, "media_product_type": "FEED"}, "id": id, "text": text});
    if let Some(parent) = parent {
        value["parent_id"] = json!(parent);
    }
    json!({"object": "instagram", "entry": [{"id": account, "time": 0, "changes": [
        {"field": "comments", "value": value}]}]})
    .to_string()
    .into_bytes()
}
