//! `!> nonce` on a static page's first line: each response gets a fresh
//! nonce (16 random bytes from wasi:random, base64) written as
//! ` nonce="N"` into every `<script>` start tag of the page, and added as
//! `'nonce-N'` to the Content-Security-Policy's `script-src`, so that the
//! page's own inline scripts run under a policy that refuses injected ones.
//!
//! The policy is the response's own Content-Security-Policy if it has one,
//! else the `policy` setting. Its `script-src` (and `script-src-elem`, if
//! present) gets the nonce; a policy without `script-src` gets one made of
//! its `default-src` sources and the nonce. A
//! Content-Security-Policy-Report-Only header already there gets the same
//! treatment (none is added).
//!
//! ```toml
//! [config]
//! policy = "default-src 'self'"
//! ```

use base64::Engine;
use kavro_sdk::{
    config, export, log, Directive, Manifest, Plugin, Present, PresentOutcome, Request, Response,
};

/// The policy a response without a Content-Security-Policy starts from
/// when `policy` is not set.
const DEFAULT_POLICY: &str = "default-src 'self'";

const CSP: &str = "content-security-policy";
const CSP_REPORT_ONLY: &str = "content-security-policy-report-only";

/// 16 bytes from the CSPRNG, in base64 (24 characters).
fn fresh_nonce() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c')
}

/// Where `needle` (lower-case ASCII) first occurs in `hay` from `from` on,
/// ignoring ASCII case.
fn find_ci(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
        .map(|p| from + p)
}

/// Whether `rest` starts a `<script` start tag: the name, then whitespace,
/// `>` or `/`.
fn is_script_tag(rest: &[u8]) -> bool {
    rest.len() > 7
        && rest[1..7].eq_ignore_ascii_case(b"script")
        && (is_space(rest[7]) || rest[7] == b'>' || rest[7] == b'/')
}

/// Reads a tag's attributes from `at` (just after its name): where the tag
/// ends (after its `>`, or the end of `html`) and whether it has a `nonce`
/// attribute. Quoted values may hold `>`.
fn scan_attributes(html: &[u8], mut at: usize) -> (usize, bool) {
    let len = html.len();
    let mut has_nonce = false;
    loop {
        while at < len && (is_space(html[at]) || html[at] == b'/') {
            at += 1;
        }
        if at >= len {
            return (len, has_nonce);
        }
        if html[at] == b'>' {
            return (at + 1, has_nonce);
        }
        let name_start = at;
        at += 1;
        while at < len && !is_space(html[at]) && !matches!(html[at], b'/' | b'>' | b'=') {
            at += 1;
        }
        has_nonce |= html[name_start..at].eq_ignore_ascii_case(b"nonce");
        while at < len && is_space(html[at]) {
            at += 1;
        }
        if at < len && html[at] == b'=' {
            at += 1;
            while at < len && is_space(html[at]) {
                at += 1;
            }
            match html.get(at) {
                Some(&q @ (b'"' | b'\'')) => {
                    at = match html[at + 1..].iter().position(|&b| b == q) {
                        Some(p) => at + 1 + p + 1,
                        None => len,
                    };
                }
                _ => {
                    while at < len && !is_space(html[at]) && html[at] != b'>' {
                        at += 1;
                    }
                }
            }
        }
    }
}

/// Where a script's content ends: at its `</script` end tag, or the end.
fn script_end(html: &[u8], mut from: usize) -> usize {
    while let Some(at) = find_ci(html, from, b"</script") {
        match html.get(at + 8) {
            None => return at,
            Some(&b) if is_space(b) || b == b'>' || b == b'/' => return at,
            Some(_) => from = at + 8,
        }
    }
    html.len()
}

/// `html` with ` nonce="N"` after the name of each `<script` start tag that
/// has no `nonce` attribute. Comments, other tags' attribute values and
/// scripts' own text are skipped, so a `<script` there is left alone.
fn inject_nonce(html: &str, nonce: &str) -> String {
    let b = html.as_bytes();
    let mut out = String::with_capacity(html.len() + 64);
    let mut copied = 0;
    let mut at = 0;
    while let Some(p) = b[at..].iter().position(|&c| c == b'<') {
        let lt = at + p;
        let rest = &b[lt..];
        if rest.starts_with(b"<!--") {
            at = find_ci(b, lt + 4, b"-->").map_or(b.len(), |e| e + 3);
        } else if is_script_tag(rest) {
            let name_end = lt + 7;
            let (tag_end, has_nonce) = scan_attributes(b, name_end);
            if !has_nonce {
                out.push_str(&html[copied..name_end]);
                out.push_str(" nonce=\"");
                out.push_str(nonce);
                out.push('"');
                copied = name_end;
            }
            at = script_end(b, tag_end);
        } else if rest.len() > 1 && (rest[1].is_ascii_alphabetic() || rest[1] == b'/') {
            let mut name_end = lt + 2;
            while name_end < b.len()
                && !is_space(b[name_end])
                && !matches!(b[name_end], b'/' | b'>')
            {
                name_end += 1;
            }
            at = scan_attributes(b, name_end).0;
        } else {
            at = lt + 1;
        }
    }
    out.push_str(&html[copied..]);
    out
}

/// A directive's name, lower-cased.
fn directive_name(directive: &str) -> String {
    directive
        .split_ascii_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// `name`, `sources` (without `'none'`, which another source contradicts)
/// and `extra`.
fn source_list<'a>(name: &str, sources: impl Iterator<Item = &'a str>, extra: &str) -> String {
    let mut list = name.to_string();
    for s in sources.filter(|s| !s.eq_ignore_ascii_case("'none'")) {
        list.push(' ');
        list.push_str(s);
    }
    list.push(' ');
    list.push_str(extra);
    list
}

/// One policy (no commas) with `source` added to its `script-src` and
/// `script-src-elem`; without a `script-src`, one is added from its
/// `default-src`. As browsers do, only a directive's first occurrence
/// counts.
fn add_source_to_policy(policy: &str, source: &str) -> String {
    let directives: Vec<&str> = policy
        .split(';')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    let mut seen = std::collections::HashSet::new();
    let mut has_script_src = false;
    let mut default_src: Option<&str> = None;
    let mut out: Vec<String> = Vec::with_capacity(directives.len() + 1);
    for d in &directives {
        let name = directive_name(d);
        if !seen.insert(name.clone()) {
            out.push(d.to_string());
            continue;
        }
        match name.as_str() {
            "script-src" | "script-src-elem" => {
                has_script_src |= name == "script-src";
                let mut words = d.split_ascii_whitespace();
                let written = words.next().unwrap_or_default();
                out.push(source_list(written, words, source));
            }
            "default-src" => {
                default_src = Some(d);
                out.push(d.to_string());
            }
            _ => out.push(d.to_string()),
        }
    }
    if !has_script_src {
        let defaults = default_src
            .map(|d| d.split_ascii_whitespace().skip(1))
            .into_iter()
            .flatten();
        out.push(source_list("script-src", defaults, source));
    }
    out.join("; ")
}

/// A Content-Security-Policy value (one policy, or several separated by
/// commas, each enforced) with `'nonce-N'` added to each.
fn merge_csp(header: &str, nonce: &str) -> String {
    let source = format!("'nonce-{nonce}'");
    let mut policies: Vec<&str> = header
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if policies.is_empty() {
        policies.push("");
    }
    policies
        .iter()
        .map(|p| add_source_to_policy(p, &source))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A response header's fields as one value, if it has any that is not
/// blank.
fn header_value(resp: &Response, name: &str) -> Option<String> {
    let fields: Vec<String> = resp
        .header_all(name)
        .into_iter()
        .filter(|v| !v.trim().is_empty())
        .collect();
    (!fields.is_empty()).then(|| fields.join(", "))
}

struct Nonce {
    policy: String,
}

impl Default for Nonce {
    fn default() -> Self {
        Nonce {
            policy: config::get("policy").unwrap_or_else(|| DEFAULT_POLICY.to_string()),
        }
    }
}

impl Plugin for Nonce {
    type State = ();
    fn manifest(&self) -> Manifest {
        Manifest::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION")).answers("nonce")
    }
}

impl Present for Nonce {
    fn on_directive(
        &self,
        _: &mut (),
        req: &Request,
        resp: &Response,
        body: Vec<u8>,
        _: &Directive,
    ) -> PresentOutcome {
        let Ok(html) = std::str::from_utf8(&body) else {
            log::warn(&format!(
                "nonce: {} is not UTF-8: served without a nonce",
                req.path()
            ));
            return PresentOutcome::Keep;
        };
        let nonce = match fresh_nonce() {
            Ok(n) => n,
            Err(e) => {
                log::error(&format!(
                    "nonce: no random bytes ({e}): {} served without a nonce",
                    req.path()
                ));
                return PresentOutcome::Keep;
            }
        };
        let policy = header_value(resp, CSP).unwrap_or_else(|| self.policy.clone());
        if let Err(e) = resp.set_header(CSP, &merge_csp(&policy, &nonce)) {
            log::error(&format!("nonce: cannot set {CSP} on {}: {e:?}", req.path()));
        }
        if let Some(report_only) = header_value(resp, CSP_REPORT_ONLY) {
            let _ = resp.set_header(CSP_REPORT_ONLY, &merge_csp(&report_only, &nonce));
        }
        let page = inject_nonce(html, &nonce);
        if page.len() == html.len() {
            return PresentOutcome::Keep;
        }
        PresentOutcome::Replace(page.into_bytes())
    }
}

export!(Nonce: present);

#[cfg(test)]
mod tests {
    use super::*;

    const N: &str = "abc+/12==";

    #[test]
    fn nonces_are_fresh_base64_of_16_bytes() {
        let a = fresh_nonce().unwrap();
        let b = fresh_nonce().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 24);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&a)
            .unwrap();
        assert_eq!(bytes.len(), 16);
    }

    #[test]
    fn script_tags_get_the_nonce() {
        assert_eq!(
            inject_nonce("<script>a()</script><script src=\"/x.js\"></script>", N),
            format!(
                "<script nonce=\"{N}\">a()</script><script nonce=\"{N}\" src=\"/x.js\"></script>"
            )
        );
        // Any case; whitespace or `/` after the name.
        assert_eq!(
            inject_nonce("<SCRIPT>1</SCRIPT><ScRiPt\ttype=module>2</ScRiPt><script/>", N),
            format!(
                "<SCRIPT nonce=\"{N}\">1</SCRIPT><ScRiPt nonce=\"{N}\"\ttype=module>2</ScRiPt><script nonce=\"{N}\"/>"
            )
        );
        // Not script tags.
        for text in [
            "<scripts>",
            "<scripting a>",
            "<noscript>x</noscript>",
            "</script>",
            "a < script",
            "<script",
            "<!-- <script> -->",
            "<div title=\"<script >\">",
            "<img alt='<script>'>",
        ] {
            assert_eq!(inject_nonce(text, N), text);
        }
    }

    #[test]
    fn tags_with_a_nonce_keep_theirs() {
        for text in [
            "<script nonce=\"mine\">x</script>",
            "<script NONCE='mine'>x</script>",
            "<script async nonce>x</script>",
            "<script src=/a.js nonce = mine >x</script>",
        ] {
            assert_eq!(inject_nonce(text, N), text);
        }
        // `nonce` only inside another attribute's value is not one.
        assert_eq!(
            inject_nonce("<script data-x=\"nonce\" data-nonce=1>", N),
            format!("<script nonce=\"{N}\" data-x=\"nonce\" data-nonce=1>")
        );
    }

    #[test]
    fn script_text_and_odd_markup() {
        // A `<script` inside a script's text is not a tag.
        let page = "<script>document.write('<script>x<\\/script>')</script><p><script>y</script>";
        assert_eq!(
            inject_nonce(page, N),
            format!(
                "<script nonce=\"{N}\">document.write('<script>x<\\/script>')</script><p><script nonce=\"{N}\">y</script>"
            )
        );
        // `>` in a quoted value; an unclosed tag at the end; non-ASCII text.
        assert_eq!(
            inject_nonce("é<script data-a=\"x>y\">z</script>", N),
            format!("é<script nonce=\"{N}\" data-a=\"x>y\">z</script>")
        );
        assert_eq!(
            inject_nonce("<script src='a", N),
            format!("<script nonce=\"{N}\" src='a")
        );
        assert_eq!(inject_nonce("", N), "");
        assert_eq!(
            inject_nonce("<<script>>", N),
            format!("<<script nonce=\"{N}\">>")
        );
    }

    #[test]
    fn csp_gets_the_nonce() {
        // The default: script-src from default-src.
        assert_eq!(
            merge_csp("default-src 'self'", N),
            format!("default-src 'self'; script-src 'self' 'nonce-{N}'")
        );
        // An existing script-src gets it, in any case, whatever its place.
        assert_eq!(
            merge_csp(
                "Script-Src 'self' https://cdn.example;img-src *; default-src 'none'",
                N
            ),
            format!(
                "Script-Src 'self' https://cdn.example 'nonce-{N}'; img-src *; default-src 'none'"
            )
        );
        // Neither: script-src with only the nonce.
        assert_eq!(
            merge_csp("img-src 'self'", N),
            format!("img-src 'self'; script-src 'nonce-{N}'")
        );
        assert_eq!(merge_csp("", N), format!("script-src 'nonce-{N}'"));
        // 'none' would contradict the nonce.
        assert_eq!(
            merge_csp("default-src 'none'", N),
            format!("default-src 'none'; script-src 'nonce-{N}'")
        );
        assert_eq!(
            merge_csp("script-src 'none'", N),
            format!("script-src 'nonce-{N}'")
        );
        // script-src-elem governs script elements: it gets it too.
        assert_eq!(
            merge_csp("script-src-elem 'self'; default-src https:", N),
            format!("script-src-elem 'self' 'nonce-{N}'; default-src https:; script-src https: 'nonce-{N}'")
        );
        // Only the first of a repeated directive counts; empty ones and
        // stray spaces go.
        assert_eq!(
            merge_csp(" script-src a ;; script-src b ; ", N),
            format!("script-src a 'nonce-{N}'; script-src b")
        );
        // Several policies, each enforced: each gets it.
        assert_eq!(
            merge_csp("default-src 'self', script-src https:", N),
            format!(
                "default-src 'self'; script-src 'self' 'nonce-{N}', script-src https: 'nonce-{N}'"
            )
        );
    }
}
