//! Microsoft Teams: an Adaptive Card for a Workflows webhook ("When a
//! Teams webhook request is received", which replaced the retired Office
//! 365 connectors).
//!
//! Follows Microsoft's published payload documentation:
//! - the request is a message with one attachment,
//!   `{"type": "message", "attachments": [{"contentType":
//!   "application/vnd.microsoft.card.adaptive", "contentUrl": null,
//!   "content": <card>}]}`
//!   (<https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/add-incoming-webhook>,
//!   <https://learn.microsoft.com/en-us/connectors/teams/#microsoft-teams-webhook>);
//! - the card declares `"type": "AdaptiveCard"`, `"$schema"` and a schema
//!   `version`; Teams renders cards up to 1.5 on desktop and web, and
//!   Workflows' "Post card in a chat or channel" up to 1.4, so the card is
//!   1.4 (<https://learn.microsoft.com/en-us/microsoftteams/platform/task-modules-and-cards/cards/cards-reference#support-for-adaptive-cards>);
//! - a Teams message is at most about 28 KB
//!   (<https://learn.microsoft.com/en-us/microsoftteams/limits-specifications-teams#chat>),
//!   so at most 20 runs are listed and long texts are cut.
//!
//! Layout: the title (coloured by severity), the summary, a FactSet of the
//! facts, one line per run, and an "Open in runhook" action when
//! `base_url` is set. Config: `base_url`, `title` (see `format-message`).

use format_message::{Message, Severity, cut};
use runhook_plugin::{Transformer, Value, json};

/// The Adaptive Card schema version the card declares.
pub const CARD_VERSION: &str = "1.4";
/// Runs listed on the card.
const RUNS: usize = 20;
/// Characters of one text on the card.
const TEXT_CHARS: usize = 1000;

struct Teams;

impl Transformer for Teams {
    fn transform(payload: Value, config: &Value) -> Result<Value, String> {
        Ok(render(&Message::read(&payload, config)))
    }
}

fn render(m: &Message) -> Value {
    let color = match m.severity {
        Severity::Critical => "attention",
        Severity::Warning => "warning",
        Severity::Resolved => "good",
        Severity::Info => "accent",
    };
    let mut body = vec![
        json!({"type": "TextBlock", "text": cut(&m.title, TEXT_CHARS), "weight": "bolder", "size": "medium",
               "color": color, "wrap": true, "style": "heading"}),
        json!({"type": "TextBlock", "text": cut(&m.summary, TEXT_CHARS), "wrap": true}),
    ];
    if !m.facts.is_empty() {
        let facts: Vec<Value> =
            m.facts.iter().map(|(k, v)| json!({"title": cut(k, 100), "value": cut(v, TEXT_CHARS)})).collect();
        body.push(json!({"type": "FactSet", "facts": facts}));
    }
    for item in m.items.iter().take(RUNS) {
        let title = match &item.link {
            Some(link) => format!("[{}]({link})", item.title),
            None => item.title.clone(),
        };
        body.push(json!({"type": "TextBlock", "wrap": true, "spacing": "small",
            "color": if item.errored { "attention" } else { "default" },
            "text": cut(&format!("**{title}** {}", item.text), TEXT_CHARS)}));
    }
    if m.items.len() > RUNS {
        body.push(json!({"type": "TextBlock", "text": format!("… and {} more runs", m.items.len() - RUNS),
                         "isSubtle": true, "wrap": true}));
    }
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "msteams": {"width": "Full"},
        "body": body,
    });
    if let Some(link) = &m.link {
        card["actions"] = json!([{"type": "Action.OpenUrl", "title": "Open in runhook", "url": link}]);
    }
    json!({
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": null, "content": card}],
    })
}

runhook_plugin::export!(Teams: transformer);
