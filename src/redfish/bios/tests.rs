use std::collections::BTreeMap;

use super::*;

fn settings_with(current: &[(&str, &str)], pending: &[(&str, &str)]) -> BiosSettings {
    let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    BiosSettings {
        current: map(current),
        pending: map(pending),
    }
}

#[test]
fn attributes_are_the_defaults_overlaid_with_the_current_settings() {
    let all = effective(&settings_with(
        &[("QuietBoot", "Enabled")],
        &[("NumLock", "Off")],
    ));
    assert_eq!(all.len(), ATTRIBUTES.len());
    assert_eq!(all["QuietBoot"], "Enabled");
    assert_eq!(
        all["NumLock"], "On",
        "pending settings are not in force yet"
    );
    assert_eq!(all["ProcTurboMode"], "Enabled");
}

#[test]
fn patch_adds_to_the_pending_settings() {
    let current = settings_with(&[("QuietBoot", "Enabled")], &[("NumLock", "Off")]);
    let body = br##"{"Attributes": {"ProcTurboMode": "Disabled"},
        "@Redfish.SettingsApplyTime": {"@odata.type": "#Settings.v1_0_0.PreferredApplyTime", "ApplyTime": "OnReset"}}"##;
    let next = settings_patch(body, &current).unwrap();
    assert_eq!(next.current, current.current);
    assert_eq!(next.pending["NumLock"], "Off");
    assert_eq!(next.pending["ProcTurboMode"], "Disabled");
}

#[test]
fn patch_refuses_unknown_names_values_types_and_apply_times() {
    let none = BiosSettings::default();
    let id = |body: &[u8]| settings_patch(body, &none).unwrap_err().id;
    assert_eq!(id(br#"{"Attributes": {"Bogus": "On"}}"#), "PropertyUnknown");
    assert_eq!(
        id(br#"{"Attributes": {"NumLock": "Maybe"}}"#),
        "PropertyValueNotInList"
    );
    assert_eq!(
        id(br#"{"Attributes": {"NumLock": true}}"#),
        "PropertyValueTypeError"
    );
    assert_eq!(id(br#"{"Attributes": []}"#), "PropertyValueTypeError");
    assert_eq!(id(br#"{"Id": "x"}"#), "PropertyNotWritable");
    assert_eq!(id(br#"{"Attributes": {}}"#), "NoOperation");
    assert_eq!(
        id(br#"{"Attributes": {"NumLock": "Off"}, "@Redfish.SettingsApplyTime": {"ApplyTime": "Immediate"}}"#),
        "PropertyValueNotInList"
    );
    assert_eq!(id(b"[1]"), "MalformedJSON");
}

#[test]
fn reset_makes_every_default_pending() {
    let next = reset(&settings_with(&[("QuietBoot", "Enabled")], &[]));
    assert_eq!(next.current["QuietBoot"], "Enabled");
    assert_eq!(next.pending.len(), ATTRIBUTES.len());
    assert_eq!(next.booted().current["QuietBoot"], "Disabled");
}
