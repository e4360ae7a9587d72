//! A large mail read without holding it in memory: its large base64 bodies are decoded
//! straight into files while the mail streams past, and the rest is parsed as usual.
//!
//! mail-parser needs the whole mail in memory and decodes every part before returning, so a
//! mail carrying one 50 MB photo zip once held the 68.5 MB mail *and* the decoded 50 MB zip at
//! the same time (issue 16 asks for ≤ 100 MB in all). [`slim`] reads the stored mail as a
//! stream and looks for long runs of base64 lines (at least `min_run` bytes of them: nothing
//! else in a mail looks like that for a megabyte). Each run is decoded, as it is read, into a
//! writer the caller opens (a blob file in the daemon), and is replaced in the copy kept in
//! memory by one short base64 line that decodes to [`marker`] of the decoded bytes' sha256.
//! The copy keeps every header, boundary and small part exactly as they were, so mail-parser
//! finds the same structure in it; [`super::understand_slimmed`] then takes each attachment
//! whose decoded bytes are exactly a marker back from its file.
//!
//! Only the result is trusted, not the guess: a run that was not one whole base64 body (a
//! text body that happens to look like base64, a run that stops mid-body) leaves a marker
//! that is not exactly one attachment's bytes, and the caller then reads the mail the
//! ordinary way. A run whose characters do not end on a whole base64 group is reported as
//! `doubtful` for the same reason, because mail-parser's leniency there is its own.
//!
//! The decoder is a table of 64 letters written here rather than a crate: it has to decode
//! exactly the lines [`slim`] already checked, across line ends and in pieces, which is a
//! dozen lines, and a general base64 crate would be one more dependency for them.
//!
//! Pure: bytes in from any reader, decoded bytes out to the caller's writer.

use std::io::{BufRead, Write};

/// What an attachment decodes to in the slimmed copy: this prefix, then the sha256 (lowercase
/// hex) of the bytes stored in its place. 78 bytes, so its base64 line needs no padding.
pub const MARKER_PREFIX: &[u8] = b"\0shenbao-part:";

/// The marker for bytes whose sha256 is `sha`.
pub fn marker(sha: &str) -> Vec<u8> {
    let mut m = MARKER_PREFIX.to_vec();
    m.extend_from_slice(sha.as_bytes());
    m
}

/// The sha256 a marker names, when `bytes` are exactly a marker.
pub fn marked(bytes: &[u8]) -> Option<&str> {
    let sha = bytes.strip_prefix(MARKER_PREFIX)?;
    (sha.len() == 64 && sha.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then(|| std::str::from_utf8(sha).ok())
        .flatten()
}

/// How every marker line begins: the base64 of the prefix's first 12 bytes (whole groups, so
/// the same whatever sha follows). A text body whose raw lines contain it was read as a marker.
pub fn marker_line_start() -> Vec<u8> {
    encode(&MARKER_PREFIX[..12])
}

/// A mail with its large base64 bodies taken out.
#[derive(Debug, Default)]
pub struct Slimmed {
    /// The mail, each large body replaced by its marker line.
    pub mail: Vec<u8>,
    /// The sha256 of each body taken out, in the order they appear (twice if sent twice).
    pub parts: Vec<String>,
    /// Where in `mail` each of `parts`' marker lines begins: a marker line the mail itself
    /// carries (anyone can write one) is not one of them.
    pub places: Vec<usize>,
    /// A run ended in the middle of a base64 group: read the mail the ordinary way.
    pub doubtful: bool,
}

/// Copies `raw` into memory with every run of at least `min_run` bytes of base64 lines decoded
/// into a writer from `open` instead, closed by `close`, which returns the sha256 of what was
/// written. Errors are the reader's and the writers'.
pub fn slim<R: BufRead, W: Write>(
    mut raw: R,
    min_run: usize,
    mut open: impl FnMut() -> std::io::Result<W>,
    mut close: impl FnMut(W) -> std::io::Result<String>,
) -> std::io::Result<Slimmed> {
    let mut out = Slimmed::default();
    // Lines of a run still short of `min_run`, kept as they are.
    let mut pending: Vec<u8> = Vec::new();
    // The run being decoded into its writer, and how its last line ended.
    let mut run: Option<(W, Decoder)> = None;
    let mut ending: &'static [u8] = b"";
    let mut line = Vec::new();
    loop {
        line.clear();
        if raw.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let (text, this_ending) = split_ending(&line);
        match kind(text) {
            Line::Other => {
                end_run(&mut run, &mut pending, ending, &mut out, &mut close)?;
                out.mail.extend_from_slice(&line);
            }
            Line::Base64 { last } => {
                ending = this_ending;
                if let Some((w, dec)) = run.as_mut() {
                    dec.feed(text, w)?;
                } else {
                    pending.extend_from_slice(&line);
                    if pending.len() >= min_run {
                        let mut w = open()?;
                        let mut dec = Decoder::default();
                        for l in pending.split(|b| *b == b'\n') {
                            dec.feed(split_ending(l).0, &mut w)?;
                        }
                        pending.clear();
                        run = Some((w, dec));
                    }
                }
                if last {
                    end_run(&mut run, &mut pending, ending, &mut out, &mut close)?;
                }
            }
        }
    }
    end_run(&mut run, &mut pending, ending, &mut out, &mut close)?;
    Ok(out)
}

/// Ends the current run: a decoded one becomes its marker line, a short one is copied as it was.
fn end_run<W: Write>(
    run: &mut Option<(W, Decoder)>,
    pending: &mut Vec<u8>,
    ending: &[u8],
    out: &mut Slimmed,
    close: &mut impl FnMut(W) -> std::io::Result<String>,
) -> std::io::Result<()> {
    if let Some((mut w, mut dec)) = run.take() {
        dec.flush(&mut w)?;
        if !dec.whole() {
            out.doubtful = true;
        }
        let sha = close(w)?;
        out.places.push(out.mail.len());
        out.mail.extend_from_slice(&encode(&marker(&sha)));
        out.mail.extend_from_slice(ending);
        out.parts.push(sha);
    } else {
        out.mail.append(pending);
    }
    Ok(())
}

/// A line without its `\n` or `\r\n`, and which of them it had.
fn split_ending(line: &[u8]) -> (&[u8], &'static [u8]) {
    if let Some(l) = line.strip_suffix(b"\r\n") {
        (l, b"\r\n")
    } else if let Some(l) = line.strip_suffix(b"\n") {
        (l, b"\n")
    } else {
        (line, b"")
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// Letters of the base64 alphabet only; `last` when it ends in padding.
    Base64 {
        last: bool,
    },
    Other,
}

/// Longer lines than any mailer writes are not taken for base64 (RFC 2045 says 76).
const MAX_LINE: usize = 1000;

fn kind(text: &[u8]) -> Line {
    if text.is_empty() || text.len() > MAX_LINE {
        return Line::Other;
    }
    let body = text.strip_suffix(b"==").or_else(|| text.strip_suffix(b"="));
    let letters = body.unwrap_or(text);
    if !letters.is_empty() && letters.iter().all(|b| value(*b).is_some()) {
        Line::Base64 {
            last: body.is_some(),
        }
    } else {
        Line::Other
    }
}

fn value(b: u8) -> Option<u8> {
    match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

const LETTERS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Base64 of `bytes`, with padding.
fn encode(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(LETTERS[((n >> (18 - 6 * i)) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
    out
}

/// Decodes base64 fed in pieces of any length (lines), padding included.
#[derive(Default)]
struct Decoder {
    /// Letters of the group in progress.
    group: [u8; 4],
    filled: usize,
    /// Padding seen: what follows it cannot continue the same data.
    padded: usize,
    /// Decoded bytes not yet written.
    buf: Vec<u8>,
}

impl Decoder {
    fn feed(&mut self, text: &[u8], w: &mut impl Write) -> std::io::Result<()> {
        for &b in text {
            if b == b'=' {
                self.padded += 1;
                continue;
            }
            let Some(v) = value(b) else { continue };
            self.group[self.filled] = v;
            self.filled += 1;
            if self.filled == 4 {
                let g = self.group;
                self.buf.push((g[0] << 2) | (g[1] >> 4));
                self.buf.push((g[1] << 4) | (g[2] >> 2));
                self.buf.push((g[2] << 6) | g[3]);
                self.filled = 0;
            }
        }
        if self.padded > 0 {
            self.finish_padding();
        }
        if self.buf.len() >= 64 * 1024 {
            w.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Writes what is still buffered.
    fn flush(&mut self, w: &mut impl Write) -> std::io::Result<()> {
        w.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    /// The last group, cut short by padding: two letters give one byte, three give two.
    fn finish_padding(&mut self) {
        let g = self.group;
        match (self.filled, self.padded) {
            (2, 2) => {
                self.buf.push((g[0] << 2) | (g[1] >> 4));
                self.filled = 0;
            }
            (3, 1) => {
                self.buf.push((g[0] << 2) | (g[1] >> 4));
                self.buf.push((g[1] << 4) | (g[2] >> 2));
                self.filled = 0;
            }
            _ => {}
        }
    }

    /// Whether the data ended on a whole group (or on correct padding).
    fn whole(&self) -> bool {
        self.filled == 0
    }
}

/// Also the base64 and random bytes the reading tests of `message` and `pipeline::read` build
/// their mails from.
#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn sha(bytes: &[u8]) -> String {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(bytes))
    }

    /// Slims `raw`, collecting what was taken out.
    fn run(raw: &[u8], min_run: usize) -> (Slimmed, Vec<Vec<u8>>) {
        let mut taken = Vec::new();
        let slimmed = slim(
            raw,
            min_run,
            || Ok(Vec::new()),
            |w: Vec<u8>| {
                let s = sha(&w);
                taken.push(w);
                Ok(s)
            },
        )
        .unwrap();
        (slimmed, taken)
    }

    /// Base64 of `bytes` in lines of `width` letters, each ending in `ending`.
    pub(crate) fn wrapped(bytes: &[u8], width: usize, ending: &str) -> String {
        let text = String::from_utf8(encode(bytes)).unwrap();
        text.as_bytes()
            .chunks(width)
            .map(|c| format!("{}{ending}", std::str::from_utf8(c).unwrap()))
            .collect()
    }

    /// `n` bytes no compressor shrinks, the same for the same `seed`.
    pub(crate) fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn encode_decode_round_trip_every_length_and_line_width() {
        for len in 0..40 {
            let data = noise(len, len as u64 + 7);
            for width in [1, 3, 4, 5, 76] {
                for ending in ["\r\n", "\n"] {
                    let text = wrapped(&data, width, ending);
                    let mut dec = Decoder::default();
                    let mut out = Vec::new();
                    for line in text.split(ending).filter(|l| !l.is_empty()) {
                        dec.feed(line.as_bytes(), &mut out).unwrap();
                    }
                    dec.flush(&mut out).unwrap();
                    assert_eq!(out, data, "len {len} width {width}");
                    assert!(dec.whole());
                }
            }
        }
    }

    #[test]
    fn a_large_base64_body_is_taken_out_and_the_rest_kept_byte_for_byte() {
        let data = noise(300_000, 3);
        for ending in ["\r\n", "\n"] {
            let head = format!(
                "From: a@b.c{e}Content-Type: multipart/mixed; boundary=\"XX\"{e}{e}--XX{e}\
                 Content-Type: text/plain{e}{e}short text line{e}QUJD{e}--XX{e}\
                 Content-Type: application/zip; name=\"a.zip\"{e}\
                 Content-Transfer-Encoding: base64{e}{e}",
                e = ending
            );
            let tail = format!("{e}--XX--{e}", e = ending);
            let raw = format!("{head}{}{tail}", wrapped(&data, 76, ending));
            let (s, taken) = run(raw.as_bytes(), 100_000);
            assert!(!s.doubtful);
            assert_eq!(taken, vec![data.clone()]);
            assert_eq!(s.parts, vec![sha(&data)]);
            assert_eq!(s.places, vec![head.len()]);
            let marker_line = String::from_utf8(encode(&marker(&sha(&data)))).unwrap();
            assert!(!marker_line.contains('='), "78 bytes need no padding");
            assert_eq!(
                String::from_utf8(s.mail).unwrap(),
                format!("{head}{marker_line}{ending}{tail}")
            );
        }
    }

    #[test]
    fn short_runs_stay_as_they_were() {
        let data = noise(5_000, 9);
        let raw = format!(
            "Subject: x\r\n\r\n{}\r\nplain words here\r\n{}",
            wrapped(&data, 76, "\r\n"),
            wrapped(&data, 60, "\n")
        );
        let (s, taken) = run(raw.as_bytes(), 100_000);
        assert!(taken.is_empty() && s.parts.is_empty() && !s.doubtful);
        assert_eq!(s.mail, raw.as_bytes());
    }

    #[test]
    fn padding_ends_a_run_and_a_second_body_is_a_second_part() {
        let a = noise(200_000, 1); // ends in "=" padding
        let b = noise(200_002, 2); // ends in "==" padding
        let raw = format!("{}{}", wrapped(&a, 76, "\r\n"), wrapped(&b, 76, "\r\n"));
        let (s, taken) = run(raw.as_bytes(), 100_000);
        assert_eq!(
            taken.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![a.len(), b.len()]
        );
        assert_eq!(taken, vec![a.clone(), b.clone()]);
        assert_eq!(s.parts, vec![sha(&a), sha(&b)]);
        assert!(!s.doubtful);
    }

    #[test]
    fn a_run_cut_mid_group_is_doubtful() {
        let data = noise(150_000, 5);
        let mut text = wrapped(&data, 76, "\n");
        text.truncate(text.len() - 3); // drop two letters and the newline
        let (s, _) = run(format!("{text}\n\nend\n").as_bytes(), 100_000);
        assert!(s.doubtful);
    }

    #[test]
    fn lines_that_are_not_base64_break_a_run() {
        for bad in ["abc def", "abc-def", "ab=cd", "", &"A".repeat(MAX_LINE + 4)] {
            assert_eq!(kind(bad.as_bytes()), Line::Other, "{bad:?}");
        }
        assert_eq!(kind(b"QUJD"), Line::Base64 { last: false });
        assert_eq!(kind(b"QUI="), Line::Base64 { last: true });
        assert_eq!(kind(b"QQ=="), Line::Base64 { last: true });
        assert_eq!(kind(b"==="), Line::Other);
    }

    #[test]
    fn markers_are_recognised_exactly() {
        let s = sha(b"x");
        assert_eq!(marked(&marker(&s)), Some(s.as_str()));
        assert_eq!(marker(&s).len() % 3, 0);
        let mut longer = marker(&s);
        longer.push(b'\n');
        assert_eq!(marked(&longer), None);
        assert_eq!(marked(&marker(&s.to_uppercase())), None);
        assert_eq!(marked(&marker(&s)[..70]), None);
        assert_eq!(marked(b""), None);
        let line = encode(&marker(&s));
        assert!(line.starts_with(&marker_line_start()));
        assert_eq!(marker_line_start().len(), 16);
    }

    #[test]
    fn a_mail_without_a_final_newline_keeps_its_last_line() {
        let data = noise(120_000, 8);
        let text = wrapped(&data, 76, "\r\n");
        let raw = text.trim_end().to_string();
        let (s, taken) = run(raw.as_bytes(), 100_000);
        assert_eq!(taken, vec![data.clone()]);
        assert_eq!(s.mail, encode(&marker(&sha(&data))));
    }
}
