//! Just enough MIME to read back what lettre writes: unfolded headers, RFC 2047 encoded words,
//! multipart bodies and the quoted-printable and base64 transfer encodings.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// A message's or part's headers (names as written, values unfolded) and its raw body, with line
/// ends as `\n`.
pub(crate) struct Entity {
    headers: Vec<(String, String)>,
    body: String,
}

impl Entity {
    pub(crate) fn parse(raw: &str) -> Entity {
        let raw = raw.replace("\r\n", "\n");
        let (head, body) = match raw.split_once("\n\n") {
            Some((head, body)) => (head.to_owned(), body.to_owned()),
            None => (raw.clone(), String::new()),
        };
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = headers.last_mut() {
                    value.push_str(line);
                }
            } else if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_owned(), value.trim().to_owned()));
            }
        }
        Entity { headers, body }
    }

    /// The first header called `name` (any case), unfolded, encoded words decoded.
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| decode_encoded_words(v))
    }

    /// Leaf parts as (lower-case content type, decoded body) in order.
    pub(crate) fn leaves(&self) -> Vec<(String, String)> {
        let content_type = self.header("Content-Type").unwrap_or_else(|| "text/plain".to_owned());
        let mime_type = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if mime_type.starts_with("multipart/") {
            let Some(boundary) = param(&content_type, "boundary") else {
                return Vec::new();
            };
            return split_multipart(&self.body, &boundary)
                .iter()
                .flat_map(|part| Entity::parse(part).leaves())
                .collect();
        }
        let encoding = self.header("Content-Transfer-Encoding").unwrap_or_default().to_ascii_lowercase();
        let bytes = match encoding.trim() {
            "quoted-printable" => decode_quoted_printable(&self.body),
            "base64" => {
                let compact: String = self.body.chars().filter(|c| !c.is_whitespace()).collect();
                STANDARD.decode(compact).unwrap_or_default()
            }
            _ => self.body.clone().into_bytes(),
        };
        vec![(mime_type, String::from_utf8_lossy(&bytes).into_owned())]
    }
}

/// A parameter of a header value such as `multipart/alternative; boundary="abc"`.
fn param(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim().trim_matches('"').to_owned())
    })
}

fn split_multipart(body: &str, boundary: &str) -> Vec<String> {
    let delimiter = format!("--{boundary}");
    let close = format!("--{boundary}--");
    let mut parts = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in body.split('\n') {
        let trimmed = line.trim_end();
        if trimmed == close {
            if let Some(lines) = current.take() {
                parts.push(lines.join("\n"));
            }
            break;
        }
        if trimmed == delimiter {
            if let Some(lines) = current.take() {
                parts.push(lines.join("\n"));
            }
            current = Some(Vec::new());
        } else if let Some(lines) = current.as_mut() {
            lines.push(line);
        }
    }
    parts
}

fn hex(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

fn decode_quoted_printable(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'=' {
            match (bytes.get(i + 1), bytes.get(i + 2)) {
                (Some(b'\n'), _) => {
                    i += 2;
                    continue;
                }
                (Some(&h), Some(&l)) => {
                    if let (Some(h), Some(l)) = (hex(h), hex(l)) {
                        out.push(h * 16 + l);
                        i += 3;
                        continue;
                    }
                }
                _ => {}
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

/// Decodes RFC 2047 `=?charset?B|Q?text?=` words (UTF-8 and ASCII only), dropping the white
/// space between adjacent encoded words.
pub(crate) fn decode_encoded_words(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    let mut pending_space = String::new();
    let mut last_was_word = false;
    while !rest.is_empty() {
        if let Some((decoded, after)) = encoded_word(rest) {
            if !last_was_word {
                out.push_str(&pending_space);
            }
            pending_space.clear();
            out.push_str(&decoded);
            rest = after;
            last_was_word = true;
            continue;
        }
        let Some(c) = rest.chars().next() else { break };
        rest = rest.get(c.len_utf8()..).unwrap_or("");
        if c.is_whitespace() {
            pending_space.push(c);
        } else {
            out.push_str(&pending_space);
            pending_space.clear();
            out.push(c);
            last_was_word = false;
        }
    }
    out.push_str(&pending_space);
    out
}

fn encoded_word(s: &str) -> Option<(String, &str)> {
    let inner = s.strip_prefix("=?")?;
    let (_charset, inner) = inner.split_once('?')?;
    let (encoding, inner) = inner.split_once('?')?;
    let end = inner.find("?=")?;
    let text = inner.get(..end)?;
    let after = inner.get(end + 2..)?;
    let bytes = match encoding {
        "B" | "b" => STANDARD.decode(text).ok()?,
        "Q" | "q" => decode_quoted_printable(&text.replace('_', " ")),
        _ => return None,
    };
    Some((String::from_utf8_lossy(&bytes).into_owned(), after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_quoted_printable_with_soft_breaks() {
        assert_eq!(decode_quoted_printable("caf=C3=A9 =\nau lait =3D ok"), "café au lait = ok".as_bytes());
    }

    #[test]
    fn decodes_encoded_words() {
        assert_eq!(decode_encoded_words("=?utf-8?b?Q2Fmw6k=?= =?utf-8?q?_Clinic?= & co"), "Café Clinic & co");
        assert_eq!(decode_encoded_words("plain subject"), "plain subject");
    }

    #[test]
    fn reads_multipart_leaves() {
        let raw = "Subject: x\r\nContent-Type: multipart/alternative;\r\n boundary=\"b1\"\r\n\r\n\
                   --b1\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\naGk=\r\n\
                   --b1\r\nContent-Type: text/html\r\n\r\n<p>hi</p>\r\n--b1--\r\n";
        let leaves = Entity::parse(raw).leaves();
        assert_eq!(
            leaves,
            vec![("text/plain".to_owned(), "hi".to_owned()), ("text/html".to_owned(), "<p>hi</p>".to_owned())]
        );
    }
}
