//! The message formats shipped with runhook, embedded: Slack, Microsoft
//! Teams, Discord, Google Chat and PagerDuty.
//!
//! Each is a transform plugin (`plugins/rust/formats/<name>`, whose source
//! cites the service's payload documentation), built from source by this
//! crate's build script and embedded here as component bytes. A webhook
//! selects one by name (`"format": "slack"`); the plugin host loads it like
//! any other plugin. Input: an alert's notification or a rule's payload;
//! output: the body the service's webhook takes.

include!(concat!(env!("OUT_DIR"), "/formats.rs"));

/// The component of the format called `name`, if one is shipped.
pub fn component(name: &str) -> Option<&'static [u8]> {
    FORMATS.iter().find(|(n, _)| *n == name).map(|(_, bytes)| *bytes)
}

/// The names of the shipped formats.
pub fn names() -> impl Iterator<Item = &'static str> {
    FORMATS.iter().map(|(n, _)| *n)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_format_is_a_component() {
        assert_eq!(super::names().collect::<Vec<_>>(), ["slack", "teams", "discord", "google-chat", "pagerduty"]);
        for name in super::names() {
            let bytes = super::component(name).expect("listed");
            // The component-model preamble: magic, then layer 1 version 0x0d.
            assert_eq!(&bytes[..8], b"\0asm\x0d\0\x01\0", "{name}");
        }
        assert!(super::component("irc").is_none());
    }
}
