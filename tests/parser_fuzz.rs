//! Property-based fuzzing of the parsers that read outside input from files: Vino manifests
//! (`vinod plan`, standalone mode) and the configuration file. Inputs are random text and
//! mutations of the shipped examples (bytes replaced, inserted, removed; fragments repeated).
//! Every input must end in a value or an error, never a panic. The run is bounded: 256 cases
//! per property by default; `scripts/fuzz-long.sh` runs millions and also bounds the time of
//! each input (`VINOD_FUZZ_LIMIT_MS`). The Redfish request parser has its own properties in
//! `tests/redfish_proptest.rs`; dnsmasq files and link marks have theirs in the unit tests.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use vinod::config::Config;
use vinod::reconcile::files::Manifest;

const VINO: &str = include_str!("../examples/vino.yaml");
const CONFIG: &str = include_str!("../packaging/vinod.toml");

/// Cases per property: `VINOD_FUZZ_CASES`, else 256.
fn cases() -> u32 {
    std::env::var("VINOD_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256)
}

/// Runs `f`, failing if it took longer than `VINOD_FUZZ_LIMIT_MS` when that is set (the long
/// run sets it; the bounded run in the test suite does not time anything).
fn timed<T>(f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    if let Some(limit) = std::env::var("VINOD_FUZZ_LIMIT_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map(Duration::from_millis)
    {
        let took = start.elapsed();
        assert!(took <= limit, "one input took {took:?} (limit {limit:?})");
    }
    out
}

/// One edit of a text.
#[derive(Clone, Debug)]
enum Edit {
    Replace(usize, char),
    Insert(usize, String),
    Remove(usize, usize),
    Repeat(usize, usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let tokens = prop::sample::select(vec![
        "[",
        "]",
        "{",
        "}",
        ":",
        "- ",
        "\n",
        "  ",
        "'",
        "\"",
        "&a ",
        "*a",
        "!!binary ",
        "~",
        "#",
        "0x",
        "1e999",
        "-1",
        "4294967296",
        "\u{0}",
        "é",
        "\t",
        ",",
        "? ",
        "|",
        ">",
        "%YAML 1.2\n",
        "---\n",
        "...\n",
        "<<: *a\n",
    ]);
    prop_oneof![
        (any::<usize>(), any::<char>()).prop_map(|(i, c)| Edit::Replace(i, c)),
        (any::<usize>(), prop::collection::vec(tokens, 1..8))
            .prop_map(|(i, t)| Edit::Insert(i, t.concat())),
        (any::<usize>(), 1usize..64).prop_map(|(i, n)| Edit::Remove(i, n)),
        (any::<usize>(), 1usize..32, 2usize..64).prop_map(|(i, n, k)| Edit::Repeat(i, n, k)),
    ]
}

/// `text` with `edits` applied, positions taken modulo its length at each step.
fn mutate(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for e in edits {
        let at = |i: usize| if chars.is_empty() { 0 } else { i % chars.len() };
        match e {
            Edit::Replace(i, c) => {
                let i = at(*i);
                if let Some(slot) = chars.get_mut(i) {
                    *slot = *c;
                }
            }
            Edit::Insert(i, s) => {
                let i = at(*i);
                chars.splice(i..i, s.chars());
            }
            Edit::Remove(i, n) => {
                let i = at(*i);
                let end = (i + n).min(chars.len());
                chars.drain(i..end);
            }
            Edit::Repeat(i, n, k) => {
                let i = at(*i);
                let end = (i + n).min(chars.len());
                let piece: Vec<char> = chars[i..end].to_vec();
                for _ in 0..*k {
                    chars.splice(end..end, piece.iter().copied());
                }
            }
        }
    }
    chars.into_iter().collect()
}

fn mutated(base: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::collection::vec(edit(), 1..12).prop_map(move |e| mutate(base, &e)),
        1 => ".{0,2048}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn vino_manifests_decode_or_fail_cleanly(text in mutated(VINO)) {
        let decoded = timed(|| vinod::api::parse_vino(&text));
        if let Ok(vino) = decoded {
            // What decodes is validated (and planned) without a panic too.
            let _ = timed(|| vinod::api::validate::check(&vino.spec));
        }
    }

    #[test]
    fn standalone_manifests_read_or_fail_cleanly(text in mutated(VINO)) {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &text).unwrap();
        let _ = timed(|| Manifest::read(file.path()));
    }

    #[test]
    fn configuration_files_parse_or_fail_cleanly(text in mutated(CONFIG)) {
        if let Err(e) = timed(|| Config::parse(&text, "fuzz.toml")) {
            // Errors name the file and stay short, whatever the input.
            let shown = e.to_string();
            prop_assert!(shown.starts_with("fuzz.toml"), "{shown}");
            prop_assert!(shown.len() < 2_000, "{} bytes of error", shown.len());
        }
    }
}
