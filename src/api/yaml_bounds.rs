//! Bounds on YAML read from files. The API server caps what reaches it; a standalone manifest
//! or a file given to `vinod plan` met nothing of the kind, and the YAML parser's time grows
//! with the square of how deeply flow collections (`[`, `{`) nest: 200 KB of them cost tens of
//! seconds of CPU.

use super::SpecError;

/// Largest YAML text read (several Vinos and Secrets fit many times over).
pub const MAX_YAML_BYTES: usize = 4 << 20;

/// Deepest nesting of `[` and `{` (a Vino needs three or four).
pub const MAX_FLOW_DEPTH: usize = 64;

/// Refuses `text` (decoding `what`) if it is larger or nests deeper than the bounds. Brackets
/// inside quoted or plain strings count too: a scanner that tried to skip them could be led to
/// skip real ones, and no Vino holds 64 unclosed brackets.
pub fn check_yaml_bounds(text: &str, what: &str) -> Result<(), SpecError> {
    let refuse = |reason: String| SpecError::Decode {
        what: what.into(),
        reason,
    };
    if text.len() > MAX_YAML_BYTES {
        return Err(refuse(format!(
            "{} bytes; at most {MAX_YAML_BYTES}",
            text.len()
        )));
    }
    let mut depth = 0usize;
    for (line, l) in text.lines().enumerate() {
        for c in l.bytes() {
            match c {
                b'[' | b'{' => depth += 1,
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => continue,
            }
            if depth > MAX_FLOW_DEPTH {
                return Err(refuse(format!(
                    "line {}: [ and {{ nest more than {MAX_FLOW_DEPTH} deep",
                    line + 1
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_or_large_text_is_refused_and_vinos_pass() {
        check_yaml_bounds(include_str!("../../examples/vino.yaml"), "Vino").unwrap();
        let deep = format!("a: {}{}", "[".repeat(100_000), "]".repeat(100_000));
        let e = check_yaml_bounds(&deep, "Vino").unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("64"), "{e}");
        let flat = format!("a: [{}]", "[1],".repeat(100_000));
        check_yaml_bounds(&flat, "Vino").unwrap();
        let large = "#".repeat(MAX_YAML_BYTES + 1);
        let e = check_yaml_bounds(&large, "Vino").unwrap_err().to_string();
        assert!(e.contains("at most"), "{e}");
    }
}
