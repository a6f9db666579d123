//! The little XML reading the adapter needs: attributes of the metadata element and the target
//! path of a pool. Both come from libvirt, which writes well-formed, canonical XML.

use std::collections::BTreeMap;

/// The attributes of the first start tag in `xml`, unescaped. `None` if there is no complete
/// start tag or an attribute is malformed.
pub(super) fn attributes(xml: &str) -> Option<BTreeMap<String, String>> {
    let start = xml.find('<')?;
    let mut rest = &xml[start + 1..];
    let name_end = rest.find(|c: char| c.is_whitespace() || c == '/' || c == '>')?;
    rest = &rest[name_end..];
    let mut attrs = BTreeMap::new();
    loop {
        rest = rest.trim_start();
        if rest.starts_with('/') || rest.starts_with('>') {
            return Some(attrs);
        }
        let (name, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let quote = after.chars().next().filter(|c| *c == '"' || *c == '\'')?;
        let (value, after) = after[1..].split_once(quote)?;
        attrs.insert(name.trim().to_string(), unescape(value));
        rest = after;
    }
}

/// The text of the first `<child>` inside the first `<parent>` of `xml`, unescaped.
pub(super) fn child_text(xml: &str, parent: &str, child: &str) -> Option<String> {
    let open = format!("<{parent}>");
    let inner = &xml[xml.find(&open)? + open.len()..];
    let inner = &inner[..inner.find(&format!("</{parent}>"))?];
    let open = format!("<{child}>");
    let text = &inner[inner.find(&open)? + open.len()..];
    Some(unescape(&text[..text.find(&format!("</{child}>"))?]))
}

/// Replaces the predefined entities and character references.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest.find(';').and_then(|semi| {
            let c = match &rest[1..semi] {
                "lt" => '<',
                "gt" => '>',
                "amp" => '&',
                "quot" => '"',
                "apos" => '\'',
                r => {
                    let code = match r.strip_prefix("#x").or_else(|| r.strip_prefix("#X")) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => r.strip_prefix('#')?.parse().ok()?,
                    };
                    char::from_u32(code)?
                }
            };
            Some((c, semi + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_attributes_in_either_quoting() {
        let a = attributes(
            "<vm vino-namespace=\"ns\" vino-name='a&apos;b&lt;c' spec-hash = \"h&#x41;&#66;\"/>",
        )
        .unwrap();
        assert_eq!(a["vino-namespace"], "ns");
        assert_eq!(a["vino-name"], "a'b<c");
        assert_eq!(a["spec-hash"], "hAB");
        assert_eq!(attributes("<vm>").unwrap().len(), 0);
        assert_eq!(attributes("<vm a=\"1\""), None);
        assert_eq!(attributes("<vm a=1/>"), None);
    }

    #[test]
    fn reads_child_text() {
        let pool = "<pool type='dir'><source>\n</source><target>\n<path>/var/lib/a&amp;b</path>\n<permissions><mode>0711</mode></permissions></target></pool>";
        assert_eq!(
            child_text(pool, "target", "path").as_deref(),
            Some("/var/lib/a&b")
        );
        assert_eq!(child_text(pool, "source", "path"), None);
        assert_eq!(unescape("a&b;&unknown;"), "a&b;&unknown;");
    }
}
