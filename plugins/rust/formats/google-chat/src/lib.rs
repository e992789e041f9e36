//! Google Chat: a message for a space's incoming webhook, with a card.
//!
//! Follows Google's published payload documentation:
//! - an incoming webhook takes a `Message`: `text` (shown in notifications)
//!   and `cardsV2`, each `{"cardId", "card"}`
//!   (<https://developers.google.com/workspace/chat/quickstart/webhooks>,
//!   <https://developers.google.com/workspace/chat/api/reference/rest/v1/spaces.messages#Message>);
//! - a card has a `header` (`title`, `subtitle`) and `sections` of
//!   `widgets`: `decoratedText` (`topLabel`, `text`), `textParagraph` and
//!   `buttonList` with `openLink` buttons
//!   (<https://developers.google.com/workspace/chat/api/reference/rest/v1/cards>);
//! - text uses Chat's HTML subset (`<b>`, `<font color>`, `<a href>`), so
//!   `<`, `>` and `&` in run data are escaped
//!   (<https://developers.google.com/workspace/chat/format-messages#card-formatting>);
//! - a message is at most 32,000 bytes and its `text` 4,096 characters
//!   (<https://developers.google.com/workspace/chat/create-messages#create-text-message>),
//!   so at most 20 runs (and 20,000 bytes of them) are listed and long
//!   texts are cut.
//!
//! Config: `base_url`, `title` (see `format-message`).

use format_message::{Message, cut, escape};
use runhook_plugin::{Transformer, Value, json};

const TEXT_CHARS: usize = 4096;
const RUNS: usize = 20;
const WIDGET_CHARS: usize = 1000;
/// Bytes of run widgets: with the rest of the card, under the 32,000.
const RUNS_BYTES: usize = 20_000;

struct GoogleChat;

impl Transformer for GoogleChat {
    fn transform(payload: Value, config: &Value) -> Result<Value, String> {
        Ok(render(&Message::read(&payload, config)))
    }
}

fn render(m: &Message) -> Value {
    let facts: Vec<Value> = m
        .facts
        .iter()
        .map(|(k, v)| json!({"decoratedText": {"topLabel": escape(k), "text": escape(&cut(v, WIDGET_CHARS))}}))
        .collect();
    let color = format!("#{:06x}", m.severity.rgb());
    let mut sections = vec![json!({"widgets": [{"textParagraph": {"text": format!(
        "<font color=\"{color}\"><b>{}</b></font><br>{}", m.severity.label(), escape(&cut(&m.summary, WIDGET_CHARS))
    )}}]})];
    if !facts.is_empty() {
        sections.push(json!({"header": "Details", "widgets": facts}));
    }
    if !m.items.is_empty() {
        // Runs are listed while they fit the budget; the rest are counted.
        let (mut widgets, mut used) = (Vec::new(), 0);
        for item in m.items.iter().take(RUNS) {
            let title = match &item.link {
                Some(link) => format!("<a href=\"{}\">{}</a>", escape(link), escape(&cut(&item.title, 200))),
                None => escape(&cut(&item.title, 200)),
            };
            let widget = json!({"textParagraph": {"text": format!("<b>{title}</b><br>{}", escape(&cut(&item.text, WIDGET_CHARS)))}});
            used += widget.to_string().len();
            if used > RUNS_BYTES {
                break;
            }
            widgets.push(widget);
        }
        if m.items.len() > widgets.len() {
            let more = m.items.len() - widgets.len();
            widgets.push(json!({"textParagraph": {"text": format!("… and {more} more runs")}}));
        }
        sections.push(json!({"header": "Runs", "collapsible": m.items.len() > 3, "widgets": widgets}));
    }
    if let Some(link) = &m.link {
        sections.push(json!({"widgets": [{"buttonList": {"buttons": [
            {"text": "Open in runhook", "onClick": {"openLink": {"url": link}}}
        ]}}]}));
    }
    json!({
        "text": cut(&format!("{}: {}", m.title, m.summary), TEXT_CHARS),
        "cardsV2": [{"cardId": "runhook", "card": {
            "header": {"title": cut(&m.title, 200), "subtitle": format!("runhook · {}", m.severity.label())},
            "sections": sections,
        }}],
    })
}

runhook_plugin::export!(GoogleChat: transformer);
