//! dnsmasq's log output read as lines, whatever it holds. DHCP clients name things dnsmasq logs
//! (vendor classes, host names), so a VM chooses some of these bytes: a line longer than
//! [`MAX_LINE`] is cut, bytes that are not UTF-8 are replaced, and reading goes on until the
//! pipe closes. Stopping early would leave the pipe full and dnsmasq blocked writing its log.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Longest line forwarded, in bytes; the rest of a longer line is dropped.
pub const MAX_LINE: usize = 2048;

/// Marks a line that was cut.
const CUT: &str = " [cut]";

/// Lines of a byte stream, bounded and lossily decoded.
pub struct LogLines<R> {
    reader: R,
    line: Vec<u8>,
}

impl<R: AsyncBufRead + Unpin> LogLines<R> {
    /// Lines of `reader`.
    pub fn new(reader: R) -> Self {
        Self {
            reader,
            line: Vec::with_capacity(256),
        }
    }

    /// The next line without its newline; `None` once the stream ends or fails.
    pub async fn next_line(&mut self) -> Option<String> {
        self.line.clear();
        let mut cut = false;
        loop {
            let (consumed, ended) = match self.reader.fill_buf().await {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return None,
                Ok([]) => {
                    return (!self.line.is_empty() || cut).then(|| self.finish(cut));
                }
                Ok(available) => {
                    let newline = available.iter().position(|&b| b == b'\n');
                    let end = newline.unwrap_or(available.len());
                    let room = MAX_LINE - self.line.len();
                    let taken = end.min(room);
                    cut |= end > room;
                    self.line.extend_from_slice(&available[..taken]);
                    (newline.map_or(end, |n| n + 1), newline.is_some())
                }
            };
            self.reader.consume(consumed);
            if ended {
                return Some(self.finish(cut));
            }
        }
    }

    fn finish(&self, cut: bool) -> String {
        let mut text = String::from_utf8_lossy(&self.line).into_owned();
        if cut {
            text.push_str(CUT);
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn lines_of(bytes: &[u8]) -> Vec<String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            // A small buffer makes lines span several reads.
            let mut lines = LogLines::new(tokio::io::BufReader::with_capacity(7, bytes));
            let mut out = Vec::new();
            while let Some(l) = lines.next_line().await {
                out.push(l);
            }
            out
        })
    }

    #[test]
    fn long_and_broken_lines_do_not_stop_the_forwarding() {
        let mut input = b"DHCPDISCOVER(vm0) 52:54:00:00:00:01\nvendor class: \xff\xfe\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_LINE * 3));
        input.extend_from_slice(b"\nDHCPACK(vm0) 192.168.1.2\nno newline at the end");
        let lines = lines_of(&input);
        assert_eq!(lines.len(), 5, "{lines:?}");
        assert_eq!(lines[1], "vendor class: \u{fffd}\u{fffd}");
        assert_eq!(lines[2].len(), MAX_LINE + CUT.len());
        assert!(lines[2].ends_with(CUT));
        assert_eq!(lines[3], "DHCPACK(vm0) 192.168.1.2");
        assert_eq!(lines[4], "no newline at the end");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        /// Any output: every line is bounded, and every newline-terminated line is seen.
        #[test]
        fn any_output_becomes_bounded_lines(bytes in prop::collection::vec(any::<u8>(), 0..8192)) {
            let lines = lines_of(&bytes);
            for l in &lines {
                prop_assert!(l.len() <= MAX_LINE * 3 + CUT.len());
                prop_assert!(!l.contains('\n'));
            }
            let newlines = bytes.iter().filter(|&&b| b == b'\n').count();
            let tail = usize::from(bytes.last().is_some_and(|&b| b != b'\n'));
            prop_assert_eq!(lines.len(), newlines + tail);
        }
    }
}
