//! How the Rancher 1.x metadata server turns a JSON value into an HTTP answer.
//!
//! Pure functions, no I/O: content negotiation on `Accept`, lookup of a path inside the
//! caller's tree, and the text and JSON renderings, each following rancher/rancher-metadata's
//! `main.go` and `answers.go` (gorilla/mux + gddo's `NegotiateContentType`): text by default,
//! compact JSON for `Accept: application/json`, scalars without a trailing newline, a map as its
//! sorted keys (`key/` when the value is a map or list), a list as its indices (`0=name` when the
//! element is a map with a `name` or `uuid`), and the error bodies of Go's `http.Error`.

use serde_json::Value;

/// The representation the caller negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// One answer, ready to be written: status and body. Every answer is sent as
/// `text/plain; charset=utf-8`, JSON included, as the real server does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub fn ok(body: String) -> Self {
        Answer { status: 200, body }
    }

    /// Go's `http.Error`: the message plus a newline; with JSON asked, the error object.
    pub fn error(format: Format, status: u16, message: &str) -> Self {
        let body = match format {
            Format::Text => format!("{message}\n"),
            Format::Json => {
                let object = serde_json::json!({ "code": status, "message": message, "type": "error" });
                format!("{}\n", to_json(&object))
            }
        };
        Answer { status, body }
    }

    pub fn not_found(format: Format) -> Self {
        Self::error(format, 404, "Not found")
    }
}

/// gddo's `NegotiateContentType` over the offers `text/plain` and `application/json`, default
/// `text/plain`: an exact type beats `type/*`, which beats `*/*`; a higher q beats a lower one;
/// on a tie the earlier offer (text) wins; `q=0` is ignored.
pub fn negotiate(accept: Option<&str>) -> Format {
    const OFFERS: [(&str, Format); 2] = [("text/plain", Format::Text), ("application/json", Format::Json)];
    let specs = parse_accept(accept.unwrap_or(""));
    let mut best = Format::Text;
    let mut best_q = -1.0_f64;
    let mut best_wild = 3;
    for (offer, format) in OFFERS {
        for (value, q) in &specs {
            let q = *q;
            if q == 0.0 || q < best_q {
                continue;
            }
            if value == "*/*" {
                if q > best_q || best_wild > 2 {
                    (best_q, best_wild, best) = (q, 2, format);
                }
            } else if let Some(prefix) = value.strip_suffix('*') {
                if prefix.ends_with('/') && offer.starts_with(prefix) && (q > best_q || best_wild > 1) {
                    (best_q, best_wild, best) = (q, 1, format);
                }
            } else if value == offer && (q > best_q || best_wild > 0) {
                (best_q, best_wild, best) = (q, 0, format);
            }
        }
    }
    best
}

/// `type/subtype;q=0.5, …` → `[(type/subtype, q)]`, lower-cased; a bad q counts as 1.
fn parse_accept(header: &str) -> Vec<(String, f64)> {
    header
        .split(',')
        .filter_map(|item| {
            let mut parts = item.split(';');
            let value = parts.next()?.trim().to_ascii_lowercase();
            if value.is_empty() {
                return None;
            }
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q=").or_else(|| p.trim().strip_prefix("Q=")))
                .map(|q| q.trim().parse::<f64>().unwrap_or(1.0))
                .next_back()
                .unwrap_or(1.0);
            Some((value, q))
        })
        .collect()
}

/// The value at `path` inside `tree` (answers.go `valueForPath`): a map is indexed by key; a
/// list by a decimal index, or else by the `name` of an element that is a map. When the exact
/// path finds nothing, the path lower-cased is tried, as the real server does.
pub fn lookup<'a>(tree: &'a Value, path: &[String]) -> Option<&'a Value> {
    lookup_exact(tree, path.iter().map(String::as_str)).or_else(|| {
        let lower: Vec<String> = path.iter().map(|s| s.to_lowercase()).collect();
        lookup_exact(tree, lower.iter().map(String::as_str))
    })
}

fn lookup_exact<'a, 'p>(tree: &'a Value, path: impl Iterator<Item = &'p str>) -> Option<&'a Value> {
    let mut node = tree;
    for key in path {
        node = match node {
            Value::Object(map) => map.get(key)?,
            Value::Array(items) => match key.parse::<i64>() {
                Ok(index) => usize::try_from(index).ok().and_then(|i| items.get(i))?,
                Err(_) => items.iter().find(|item| item.get("name").and_then(Value::as_str) == Some(key))?,
            },
            _ => return None,
        };
    }
    Some(node)
}

/// The body for a found value in the negotiated format.
pub fn render(value: &Value, format: Format) -> String {
    match format {
        Format::Json => to_json(value),
        Format::Text => to_text(value),
    }
}

/// Compact JSON with sorted keys and Go's HTML-safe escapes (`<`, `>`, `&`, U+2028, U+2029),
/// byte for byte what `json.Marshal` writes. (These characters only occur inside strings, so
/// replacing them after serialisation is exact.)
pub fn to_json(value: &Value) -> String {
    let compact = value.to_string();
    if !compact.contains(['<', '>', '&', '\u{2028}', '\u{2029}']) {
        return compact;
    }
    let mut out = String::with_capacity(compact.len() + 16);
    for c in compact.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

fn to_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.to_string()
            } else if let Some(u) = n.as_u64() {
                u.to_string()
            } else {
                // Go prints float64 with %f, then trims trailing zeros and the dot.
                let f = format!("{:.6}", n.as_f64().unwrap_or(0.0));
                f.trim_end_matches('0').trim_end_matches('.').to_string()
            }
        }
        Value::Object(map) => {
            let mut lines: Vec<String> = map
                .iter()
                .map(|(k, v)| {
                    let slash = if v.is_object() || v.is_array() { "/" } else { "" };
                    format!("{}{slash}\n", query_escape(k))
                })
                .collect();
            lines.sort();
            lines.concat()
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let magic = ["name", "uuid"]
                    .iter()
                    .find_map(|k| item.get(k).and_then(Value::as_str).filter(|_| item.is_object()));
                match magic {
                    Some(name) => format!("{i}={}\n", query_escape(name)),
                    None if item.is_object() || item.is_array() => format!("{i}/\n"),
                    None => format!("{i}\n"),
                }
            })
            .collect(),
    }
}

/// Go's `url.QueryEscape`: unreserved bytes kept, space as `+`, the rest `%XX`.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Go's `url.QueryUnescape` for one path segment: `%XX` and `+` as space; `None` when a `%`
/// is not followed by two hex digits or the result is not UTF-8.
pub fn query_unescape(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn negotiation_follows_gddo() {
        assert_eq!(negotiate(None), Format::Text);
        assert_eq!(negotiate(Some("application/json")), Format::Json);
        assert_eq!(negotiate(Some("*/*")), Format::Text);
        assert_eq!(negotiate(Some("application/json, */*")), Format::Json);
        assert_eq!(negotiate(Some("application/*")), Format::Json);
        assert_eq!(negotiate(Some("text/plain;q=0.5, application/json")), Format::Json);
        assert_eq!(negotiate(Some("application/json;q=0, */*")), Format::Text);
        assert_eq!(negotiate(Some("application/yaml")), Format::Text);
        assert_eq!(negotiate(Some("Application/JSON")), Format::Json);
    }

    #[test]
    fn text_rendering_matches_the_real_server() {
        assert_eq!(to_text(&json!(null)), "");
        assert_eq!(to_text(&json!("10.42.0.5")), "10.42.0.5");
        assert_eq!(to_text(&json!(3)), "3");
        assert_eq!(to_text(&json!(1.5)), "1.5");
        assert_eq!(to_text(&json!(2.0)), "2");
        assert_eq!(to_text(&json!(true)), "true");
        assert_eq!(to_text(&json!(["a", "b"])), "0\n1\n");
        assert_eq!(to_text(&json!([{"name": "x y"}, {"k": 1}, [1]])), "0=x+y\n1/\n2/\n");
        assert_eq!(to_text(&json!({"b": 1, "a": {}, "c d": [], "e": null})), "a/\nb\nc+d/\ne\n");
    }

    #[test]
    fn json_rendering_is_compact_sorted_and_html_safe() {
        assert_eq!(to_json(&json!({"b": [1, null], "a": "<&>"})), r#"{"a":"\u003c\u0026\u003e","b":[1,null]}"#);
    }

    #[test]
    fn errors_are_go_http_errors() {
        assert_eq!(Answer::not_found(Format::Text).body, "Not found\n");
        assert_eq!(
            Answer::not_found(Format::Json).body,
            "{\"code\":404,\"message\":\"Not found\",\"type\":\"error\"}\n"
        );
    }

    #[test]
    fn lookup_by_key_index_name_and_lower_case() {
        let tree = json!({"self": {"service": {"containers": [{"name": "a"}, {"name": "b", "ip": "1"}]}}});
        let path = |p: &str| p.split('/').map(String::from).collect::<Vec<_>>();
        assert_eq!(lookup(&tree, &path("self/service/containers/1/ip")), Some(&json!("1")));
        assert_eq!(lookup(&tree, &path("self/service/containers/b/ip")), Some(&json!("1")));
        assert_eq!(lookup(&tree, &path("Self/Service/containers/b/ip")), Some(&json!("1")));
        assert_eq!(lookup(&tree, &path("self/service/containers/2")), None);
        assert_eq!(lookup(&tree, &path("self/service/containers/-1")), None);
        assert_eq!(lookup(&tree, &path("self/service/containers/1/ip/x")), None);
    }

    #[test]
    fn escaping_round_trips() {
        assert_eq!(query_escape("a b/c"), "a+b%2Fc");
        assert_eq!(query_unescape("a+b%2Fc").as_deref(), Some("a b/c"));
        assert_eq!(query_unescape("%zz"), None);
        assert_eq!(query_unescape("%4"), None);
    }
}
