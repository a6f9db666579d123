//! Whether a secret shows in text: in the clear or base64-encoded, as it would be inside an
//! HTTP Basic `Authorization` header (`user:password`) or a Secret's `data`.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

/// Shortest secret the check accepts: the base64 forms of shorter ones could match by chance.
const MIN_LEN: usize = 24;

/// The strings that show `secret`: itself, and, in the standard and the URL-safe alphabet, the
/// base64 of its bytes at each of the three offsets a longer encoded text can put it at.
///
/// Inside any base64 text that encodes `secret` (alone or as `user:secret`, padded or not),
/// the 3-byte groups lying wholly inside `secret` encode the same whatever surrounds them, so
/// one of these strings is part of that text.
pub fn secret_forms(secret: &str) -> Vec<String> {
    let bytes = secret.as_bytes();
    let mut forms = vec![secret.to_string()];
    for start in 0..3 {
        let whole = &bytes[start..start + (bytes.len() - start) / 3 * 3];
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            forms.push(engine.encode(whole));
        }
    }
    forms.dedup();
    forms
}

/// Panics when `text` (described by `what`) shows `secret` in any of its [`secret_forms`].
pub fn assert_no_secret(text: &str, secret: &str, what: &str) {
    assert!(
        secret.len() >= MIN_LEN,
        "a secret of {} bytes is too short to look for",
        secret.len()
    );
    for form in secret_forms(secret) {
        if let Some(at) = text.find(&form) {
            let from = text[..at]
                .char_indices()
                .rev()
                .nth(80)
                .map_or(0, |(i, _)| i);
            panic!(
                "{what} shows the secret as {form:?}: …{}…",
                &text[from..(at + form.len()).min(text.len())]
            );
        }
    }
}
