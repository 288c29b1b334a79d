//! The README is a map: every relative link in README.md and docs/*.md must lead to a file that exists (and a
//! `#fragment` to a heading of that file), and every docs/*.md page must be reachable from the README.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// Markdown link targets `](target)` outside code spans and fenced blocks.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Drop inline code spans: `a](b)` inside backticks is not a link.
        let plain: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = plain.as_str();
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            out.push(after[..end].trim().to_string());
            rest = &after[end..];
        }
    }
    out
}

/// GitHub's anchor for a heading: lower case, spaces to '-', punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(path: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(path).unwrap().lines().filter(|l| l.starts_with('#')).map(|l| anchor(l.trim_start_matches('#'))).collect()
}

#[test]
fn every_relative_link_resolves() {
    let mut bad = Vec::new();
    let mut count = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for link in links(&text) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            count += 1;
            let (file, fragment) = link.split_once('#').unwrap_or((&link, ""));
            let target = if file.is_empty() { page.clone() } else { page.parent().unwrap().join(file) };
            if !target.exists() {
                bad.push(format!("{}: {link} (no such file)", page.display()));
            } else if !fragment.is_empty() && target.extension().is_some_and(|e| e == "md") && !anchors(&target).contains(fragment) {
                bad.push(format!("{}: {link} (no such heading)", page.display()));
            }
        }
    }
    assert!(bad.is_empty(), "broken links:\n{}", bad.join("\n"));
    assert!(count > 20, "only {count} relative links found: is the link parser still reading the pages?");
}

#[test]
fn every_docs_page_is_linked_from_the_readme() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let linked: BTreeSet<String> = links(&readme).into_iter().map(|l| l.split('#').next().unwrap().to_string()).collect();
    let missing: Vec<String> =
        pages()[1..].iter().map(|p| format!("docs/{}", p.file_name().unwrap().to_string_lossy())).filter(|p| !linked.contains(p)).collect();
    assert!(missing.is_empty(), "docs pages the README does not link: {missing:?}");
}

#[test]
fn the_link_checker_sees_links_and_skips_code() {
    let text = "a [x](docs/a.md) b `[y](no.md)`\n```\n[z](no.md)\n```\n[w](b.md#h-1)";
    assert_eq!(links(text), ["docs/a.md", "b.md#h-1"]);
    assert_eq!(anchor(" The demo's run (`tools/run.sh`, one seed)"), "the-demos-run-toolsrunsh-one-seed");
}
