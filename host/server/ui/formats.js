// The message format of a webhook, as the rule and alert forms pick it:
// none (runhook's JSON), or one of the formats shipped with runhook, with
// PagerDuty's integration key when PagerDuty is chosen (README, "Message
// formats"). A format of your own is set through the API.

import { field, h } from './lib.js';

const FORMATS = [['', 'runhook JSON (no format)'], ['slack', 'Slack'], ['teams', 'Microsoft Teams'],
  ['discord', 'Discord'], ['google-chat', 'Google Chat'], ['pagerduty', 'PagerDuty (Events API v2)']];

/** The format fields (ids `format`, `routing_key`) and the webhook's `format` value they make. */
export function formatPicker() {
  const format = h('select', {}, FORMATS.map(([v, label]) => h('option', { value: v }, label)));
  const key = h('input', { type: 'password', autocomplete: 'off' });
  const keyField = field('routing_key', 'PagerDuty integration key', key, 'The routing key of the service\'s Events API v2 integration; stored sealed.');
  keyField.hidden = true;
  format.addEventListener('change', () => { keyField.hidden = format.value !== 'pagerduty'; });
  const value = () => {
    if (!format.value) return undefined;
    const config = { base_url: window.location.origin };
    if (format.value === 'pagerduty') config.routing_key = key.value.trim();
    return { builtin: format.value, config };
  };
  return { fields: [field('format', 'Message format', format, 'How the body is laid out for the service the URL belongs to.'), keyField], value };
}

/** The form field an API error about a webhook's format names, if it does. */
export function formatFieldOf(detail) {
  if (/^webhooks\[\d+\]\.format\.config\.routing_key/.test(detail)) return 'routing_key';
  if (/^webhooks\[\d+\]\.format/.test(detail)) return 'format';
  return null;
}
