//! Slack: a message for an incoming webhook, in Block Kit blocks.
//!
//! Follows Slack's published payload documentation:
//! - incoming webhooks take `{"text", "blocks"}`, and `text` is the
//!   notification's fallback when `blocks` are given
//!   (<https://api.slack.com/messaging/webhooks>,
//!   <https://api.slack.com/reference/messaging/payload>);
//! - a message holds at most 50 blocks; a `header` block's `plain_text` at
//!   most 150 characters; a `section` block's text at most 3000 characters
//!   and its `fields` at most 10, each at most 2000 characters; a `context`
//!   block at most 10 elements (<https://api.slack.com/reference/block-kit/blocks>);
//! - `mrkdwn` escapes `&`, `<` and `>` as `&amp;`, `&lt;` and `&gt;`
//!   (<https://api.slack.com/reference/surfaces/formatting#escaping>).
//!
//! Layout: a header (the title), a section (the summary), a section of
//! fields (the facts), one section per run (at most 40, then a line saying
//! how many more), a button to the dashboard when `base_url` is set, and a
//! context line. Config: `base_url`, `title` (see `format-message`).

use format_message::{Message, cut, escape};
use runhook_plugin::{Transformer, Value, json};

/// Slack's limits, from the block reference above.
const MAX_BLOCKS: usize = 50;
const HEADER_CHARS: usize = 150;
const SECTION_CHARS: usize = 3000;
const FIELDS: usize = 10;
const FIELD_CHARS: usize = 2000;
/// Runs shown as their own section; leaves room for the other blocks.
const RUN_BLOCKS: usize = 40;

struct Slack;

impl Transformer for Slack {
    fn transform(payload: Value, config: &Value) -> Result<Value, String> {
        Ok(render(&Message::read(&payload, config)))
    }
}

fn render(m: &Message) -> Value {
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": cut(&m.title, HEADER_CHARS), "emoji": true}}),
        section(&escape(&m.summary)),
    ];
    if !m.facts.is_empty() {
        let fields: Vec<Value> = m
            .facts
            .iter()
            .take(FIELDS)
            .map(|(k, v)| {
                json!({"type": "mrkdwn", "text": cut(&format!("*{}*\n{}", escape(k), escape(v)), FIELD_CHARS)})
            })
            .collect();
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    for item in m.items.iter().take(RUN_BLOCKS) {
        let title = match &item.link {
            Some(link) => format!("<{link}|{}>", escape(&item.title)),
            None => escape(&item.title),
        };
        let mark = if item.errored { ":red_circle:" } else { ":large_green_circle:" };
        blocks.push(section(&format!("{mark} *{title}*\n{}", escape(&item.text))));
    }
    if m.items.len() > RUN_BLOCKS {
        blocks.push(section(&format!("… and {} more runs", m.items.len() - RUN_BLOCKS)));
    }
    if let Some(link) = &m.link {
        blocks.push(json!({"type": "actions", "elements": [{
            "type": "button", "text": {"type": "plain_text", "text": "Open in runhook"}, "url": link,
        }]}));
    }
    let context = match &m.time {
        Some(t) => format!("runhook · {} · {t}", m.severity.label()),
        None => format!("runhook · {}", m.severity.label()),
    };
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": escape(&context)}]}));
    blocks.truncate(MAX_BLOCKS);
    json!({"text": cut(&format!("{}: {}", m.title, m.summary), SECTION_CHARS), "blocks": blocks})
}

fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": cut(text, SECTION_CHARS)}})
}

runhook_plugin::export!(Slack: transformer);
