//! Host CPU lists in the kernel's `cpulist` syntax (`0-4,54-60`).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Largest CPU number accepted; far above any real host, it bounds hostile input.
pub const MAX_CPU: u32 = 65_535;

/// A set of host CPU numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuSet(BTreeSet<u32>);

impl CpuSet {
    /// The empty set.
    pub const fn new() -> Self {
        CpuSet(BTreeSet::new())
    }

    /// The CPUs in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().copied()
    }

    /// Whether `cpu` is in the set.
    pub fn contains(&self, cpu: u32) -> bool {
        self.0.contains(&cpu)
    }

    /// Number of CPUs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The CPUs in this set or in `other`.
    pub fn union(&self, other: &CpuSet) -> CpuSet {
        CpuSet(self.0.union(&other.0).copied().collect())
    }

    /// Whether every CPU of this set is in `other`.
    pub fn is_subset(&self, other: &CpuSet) -> bool {
        self.0.is_subset(&other.0)
    }
}

impl Serialize for CpuSet {
    /// As a cpulist string (`0-3,8`).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for CpuSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl FromIterator<u32> for CpuSet {
    fn from_iter<I: IntoIterator<Item = u32>>(iter: I) -> Self {
        CpuSet(iter.into_iter().collect())
    }
}

impl FromStr for CpuSet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut set = BTreeSet::new();
        if s.trim().is_empty() {
            return Ok(CpuSet(set));
        }
        for item in s.split(',') {
            let item = item.trim();
            let (lo, hi) = match item.split_once('-') {
                Some((a, b)) => (parse_cpu(a, s)?, parse_cpu(b, s)?),
                None => {
                    let c = parse_cpu(item, s)?;
                    (c, c)
                }
            };
            if lo > hi {
                return Err(format!("{s:?}: range {item:?} runs backwards"));
            }
            set.extend(lo..=hi);
        }
        Ok(CpuSet(set))
    }
}

fn parse_cpu(text: &str, whole: &str) -> Result<u32, String> {
    let t = text.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{whole:?} is not a CPU list such as 0-4,54-60"));
    }
    match t.parse::<u32>() {
        Ok(n) if n <= MAX_CPU => Ok(n),
        _ => Err(format!("{whole:?}: CPU {t} is above {MAX_CPU}")),
    }
}

impl fmt::Display for CpuSet {
    /// Compact form: consecutive CPUs as ranges.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        let mut iter = self.0.iter().copied().peekable();
        while let Some(start) = iter.next() {
            let mut end = start;
            while iter.peek() == Some(&(end + 1)) {
                end = iter.next().unwrap_or(end);
            }
            parts.push(if start == end {
                start.to_string()
            } else {
                format!("{start}-{end}")
            });
        }
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let s: CpuSet = "0-4, 54-56,7".parse().unwrap();
        assert_eq!(s.len(), 9);
        assert_eq!(s.to_string(), "0-4,7,54-56");
        assert!("".parse::<CpuSet>().unwrap().is_empty());
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "a",
            "1-",
            "-1",
            "4-2",
            "1,,2",
            "99999999999",
            "1-70000",
            "0x1",
        ] {
            assert!(bad.parse::<CpuSet>().is_err(), "{bad} accepted");
        }
    }
}
