//! Discord: a message for a channel webhook, with one embed.
//!
//! Follows Discord's published payload documentation:
//! - "Execute Webhook" takes `content` (at most 2000 characters), `embeds`
//!   (at most 10) and `allowed_mentions`
//!   (<https://discord.com/developers/docs/resources/webhook#execute-webhook>);
//! - an embed's `title` at most 256 characters, `description` 4096, at most
//!   25 `fields` whose `name` is at most 256 and `value` 1024, `footer.text`
//!   2048, and all of a message's embed texts together at most 6000
//!   (<https://discord.com/developers/docs/resources/message#embed-object-embed-limits>);
//! - `allowed_mentions: {"parse": []}` keeps text from a run (an `@everyone`
//!   in an error, say) from pinging anyone
//!   (<https://discord.com/developers/docs/resources/message#allowed-mentions-object>).
//!
//! Layout: `content` is the title; the embed has the summary and the runs as
//! its description, the facts as inline fields, the severity's colour, the
//! dashboard link when `base_url` is set, and the time. Config: `base_url`,
//! `title` (see `format-message`).

use format_message::{Message, chars, cut};
use runhook_plugin::{Transformer, Value, json};

/// Discord's limits, from the pages above.
const CONTENT_CHARS: usize = 2000;
const TITLE_CHARS: usize = 256;
const DESCRIPTION_CHARS: usize = 4096;
const FIELDS: usize = 25;
const FIELD_NAME_CHARS: usize = 256;
const FIELD_VALUE_CHARS: usize = 1024;
const FOOTER_CHARS: usize = 2048;
const EMBED_TOTAL_CHARS: usize = 6000;

struct Discord;

impl Transformer for Discord {
    fn transform(payload: Value, config: &Value) -> Result<Value, String> {
        Ok(render(&Message::read(&payload, config)))
    }
}

fn render(m: &Message) -> Value {
    let title = cut(&m.title, TITLE_CHARS);
    let footer = format!("runhook · {}", m.severity.label());
    let fields: Vec<(String, String)> = m
        .facts
        .iter()
        .take(FIELDS)
        .map(|(k, v)| (cut(k, FIELD_NAME_CHARS), cut(if v.is_empty() { "-" } else { v }, FIELD_VALUE_CHARS)))
        .collect();
    // The description gets what the 6000-character budget leaves.
    let used = chars(&title) + chars(&footer) + fields.iter().map(|(k, v)| chars(k) + chars(v)).sum::<usize>();
    let room = EMBED_TOTAL_CHARS.saturating_sub(used).min(DESCRIPTION_CHARS);
    let mut description = m.summary.clone();
    for item in &m.items {
        let name = match &item.link {
            Some(link) => format!("[{}]({link})", item.title),
            None => item.title.clone(),
        };
        description.push_str(&format!("\n{} **{name}** {}", if item.errored { "🔴" } else { "🟢" }, item.text));
    }
    let mut embed = json!({
        "title": title,
        "description": cut(&description, room),
        "color": m.severity.rgb(),
        "fields": fields.iter().map(|(k, v)| json!({"name": k, "value": v, "inline": true})).collect::<Vec<_>>(),
        "footer": {"text": cut(&footer, FOOTER_CHARS)},
    });
    if let Some(link) = &m.link {
        embed["url"] = json!(link);
    }
    if let Some(time) = &m.time {
        embed["timestamp"] = json!(time);
    }
    json!({
        "content": cut(&m.title, CONTENT_CHARS),
        "embeds": [embed],
        "allowed_mentions": {"parse": []},
    })
}

runhook_plugin::export!(Discord: transformer);
