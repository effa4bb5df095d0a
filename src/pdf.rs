//! A PDF from the Markdown candybar writes (Mission Control's reports and briefings): headings,
//! paragraphs and bullets wrapped to an A4 page in Helvetica, tables in Courier with their
//! columns aligned, footnotes small, page numbers at the foot. The fonts are PDF's standard ones
//! (every reader has them, nothing is embedded) with the Windows-1252 encoding: characters
//! outside it are spelled out (→ "->", ⚠ "!") or become "?".

use pdf_writer::{Content, Finish as _, Name, Pdf, Rect, Ref, Str, TextStr};

const PAGE_W: f32 = 595.0;
const PAGE_H: f32 = 842.0;
const MARGIN: f32 = 50.0;
const TEXT_W: f32 = PAGE_W - 2.0 * MARGIN;

/// Helvetica's advance widths (per 1,000 units of the font size), ASCII 32–126, from its AFM.
const HELVETICA: [u16; 95] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556,
    556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, 1015, 667, 667, 722, 722, 667,
    611, 778, 722, 278, 500, 667, 556, 833, 722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667,
    667, 611, 278, 278, 278, 469, 556, 333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500,
    222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584,
];

#[derive(Clone, Copy, PartialEq)]
enum Font {
    Regular,
    Bold,
    Mono,
}

impl Font {
    fn name(self) -> Name<'static> {
        match self {
            Self::Regular => Name(b"F1"),
            Self::Bold => Name(b"F2"),
            Self::Mono => Name(b"F3"),
        }
    }

    /// The width of `bytes` (Windows-1252) at `size`.
    fn width(self, bytes: &[u8], size: f32) -> f32 {
        let units: u32 = bytes
            .iter()
            .map(|&b| {
                if self == Self::Mono {
                    return 600;
                }
                let w = HELVETICA
                    .get(usize::from(b.wrapping_sub(32)))
                    .copied()
                    .map_or(556, u32::from);
                // Bold runs about 5 % wider.
                if self == Self::Bold { w * 105 / 100 } else { w }
            })
            .sum();
        units as f32 * size / 1000.0
    }
}

/// `s` in Windows-1252, what it cannot hold spelled out or "?".
fn cp1252(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        match c {
            ' '..='~' => out.push(c as u8),
            '\u{a0}'..='\u{ff}' => out.push(c as u32 as u8),
            '€' => out.push(0x80),
            '…' => out.push(0x85),
            '•' => out.push(0xb7),
            '‘' => out.push(0x91),
            '’' => out.push(0x92),
            '“' => out.push(0x93),
            '”' => out.push(0x94),
            '–' => out.push(0x96),
            '—' => out.push(0x97),
            '→' | '➡' => out.extend_from_slice(b"->"),
            '←' => out.extend_from_slice(b"<-"),
            '⚠' => out.push(b'!'),
            // A sparkline's bars, as rising marks.
            '\u{2581}'..='\u{2588}' => {
                out.push(b"_.:-=+*#"[(c as usize - 0x2581).min(7)]);
            }
            '⬆' | '▲' => out.push(b'^'),
            '⬇' | '▼' | '✓' | '✔' => out.push(b'v'),
            '−' => out.push(b'-'),
            '\t' => out.extend_from_slice(b"    "),
            c if c.is_control() => {}
            _ => out.push(b'?'),
        }
    }
    out
}

/// Markdown's inline marks removed: `**bold**` (the line is set bold instead when it is all
/// bold), escapes.
fn plain(s: &str) -> String {
    s.replace("**", "")
        .replace("\\[", "[")
        .replace("\\]", "]")
        .replace("\\|", "|")
        .replace('`', "")
}

/// Pages being filled, top to bottom.
struct Writer {
    pages: Vec<Content>,
    y: f32,
    title: Vec<u8>,
}

impl Writer {
    fn new(title: &str) -> Self {
        let mut w = Self {
            pages: Vec::new(),
            y: 0.0,
            title: cp1252(title),
        };
        w.new_page();
        w
    }

    fn new_page(&mut self) {
        self.pages.push(Content::new());
        self.y = PAGE_H - MARGIN;
    }

    /// Room for `h` more points on this page, or a new one.
    fn room(&mut self, h: f32) {
        if self.y - h < MARGIN + 20.0 {
            self.new_page();
        }
    }

    fn line(&mut self, font: Font, size: f32, x: f32, bytes: &[u8]) {
        let leading = size * 1.35;
        self.room(leading);
        self.y -= leading;
        let y = self.y;
        let page = self.pages.last_mut().expect("a page");
        page.begin_text();
        page.set_font(font.name(), size);
        page.next_line(x, y);
        page.show(Str(bytes));
        page.end_text();
    }

    /// `text` wrapped at word boundaries to the text width (a word longer than a line is cut).
    fn paragraph(&mut self, font: Font, size: f32, indent: f32, first: &[u8], text: &str) {
        let width = TEXT_W - indent;
        let mut line: Vec<u8> = first.to_vec();
        let mut started = !first.is_empty();
        for word in cp1252(text).split(|&b| b == b' ').filter(|w| !w.is_empty()) {
            let mut candidate = line.clone();
            if started {
                candidate.push(b' ');
            }
            candidate.extend_from_slice(word);
            if font.width(&candidate, size) <= width || !started {
                line = candidate;
                started = true;
                // A single word wider than the line: cut it.
                while font.width(&line, size) > width && line.len() > 1 {
                    let mut cut = line.len() - 1;
                    while cut > 1 && font.width(&line[..cut], size) > width {
                        cut -= 1;
                    }
                    let rest = line.split_off(cut);
                    self.line(font, size, MARGIN + indent, &line);
                    line = rest;
                }
            } else {
                self.line(font, size, MARGIN + indent, &line);
                line = word.to_vec();
            }
        }
        if !line.is_empty() {
            self.line(font, size, MARGIN + indent, &line);
        }
    }

    /// A Markdown table's rows, their columns aligned in Courier (cells cut to fit the page).
    fn table(&mut self, rows: &[Vec<String>]) {
        let size = 7.5;
        let max_chars = (TEXT_W / (0.6 * size)) as usize;
        let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0usize; columns];
        for r in rows {
            for (i, c) in r.iter().enumerate() {
                widths[i] = widths[i].max(c.chars().count().min(40));
            }
        }
        // Narrow the widest columns until a row fits.
        while widths.iter().sum::<usize>() + 2 * columns > max_chars {
            let Some(widest) = widths.iter_mut().max() else {
                break;
            };
            if *widest <= 6 {
                break;
            }
            *widest -= 1;
        }
        for (n, r) in rows.iter().enumerate() {
            let mut text = String::new();
            for (i, c) in r.iter().enumerate() {
                let w = widths[i];
                let cell: String = if c.chars().count() > w {
                    c.chars().take(w.saturating_sub(1)).chain(['…']).collect()
                } else {
                    c.clone()
                };
                text.push_str(&cell);
                text.extend(std::iter::repeat_n(' ', w - cell.chars().count() + 2));
            }
            self.line(Font::Mono, size, MARGIN, &cp1252(text.trim_end()));
            if n == 0 {
                let rule: String = "-".repeat(widths.iter().sum::<usize>() + 2 * columns);
                self.line(Font::Mono, size, MARGIN, rule.as_bytes());
            }
        }
    }
}

/// Splits a Markdown table row into its cells (`| a | b |`), escaped pipes kept.
fn cells(row: &str) -> Vec<String> {
    let inner = row.trim().trim_start_matches('|').trim_end_matches('|');
    let mut out = Vec::new();
    let mut cell = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cell.push('|');
                chars.next();
            }
            '|' => out.push(std::mem::take(&mut cell).trim().to_owned()),
            _ => cell.push(c),
        }
    }
    out.push(cell.trim().to_owned());
    out.into_iter().map(|c| plain(&c)).collect()
}

/// A PDF of `markdown`, `title` in its metadata and at each page's foot.
#[must_use]
pub fn markdown_to_pdf(markdown: &str, title: &str) -> Vec<u8> {
    let mut w = Writer::new(title);
    let lines: Vec<&str> = markdown.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim_start().starts_with('|') {
            let mut rows = Vec::new();
            while i < lines.len() && lines[i].trim_start().starts_with('|') {
                let is_rule = lines[i].chars().all(|c| matches!(c, '|' | '-' | ':' | ' '));
                if !is_rule {
                    rows.push(cells(lines[i]));
                }
                i += 1;
            }
            w.table(&rows);
            continue;
        }
        if let Some(h) = line.strip_prefix("# ") {
            w.room(40.0);
            w.paragraph(Font::Bold, 18.0, 0.0, b"", &plain(h));
            w.y -= 6.0;
        } else if let Some(h) = line.strip_prefix("## ") {
            w.room(36.0);
            w.y -= 6.0;
            w.paragraph(Font::Bold, 13.0, 0.0, b"", &plain(h));
        } else if line.starts_with("[^") {
            w.paragraph(Font::Regular, 7.0, 0.0, b"", &plain(line));
        } else if line.trim() == "---" {
            w.y -= 8.0;
        } else if let Some(b) = line
            .strip_prefix("- ")
            .or_else(|| line.strip_prefix("  - "))
        {
            let indent = if line.starts_with("  ") { 24.0 } else { 12.0 };
            w.paragraph(Font::Regular, 10.0, indent, b"\xb7 ", &plain(b));
        } else if line.trim().is_empty() {
            w.y -= 5.0;
        } else {
            w.paragraph(Font::Regular, 10.0, 0.0, b"", &plain(line));
        }
        i += 1;
    }
    finish(w)
}

fn finish(w: Writer) -> Vec<u8> {
    let mut pdf = Pdf::new();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let info = Ref::new(3);
    let fonts = [Ref::new(4), Ref::new(5), Ref::new(6)];
    let mut next = 7;
    let mut alloc = || {
        let r = Ref::new(next);
        next += 1;
        r
    };
    let count = w.pages.len();
    let ids: Vec<(Ref, Ref)> = (0..count).map(|_| (alloc(), alloc())).collect();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids(ids.iter().map(|(p, _)| *p))
        .count(i32::try_from(count).unwrap_or(i32::MAX));
    let title_text = String::from_utf8_lossy(&w.title).into_owned();
    pdf.document_info(info)
        .title(TextStr(&title_text))
        .creator(TextStr("candybar"));
    for (font, (id, base)) in
        [Font::Regular, Font::Bold, Font::Mono]
            .into_iter()
            .zip(
                fonts
                    .iter()
                    .zip([&b"Helvetica"[..], b"Helvetica-Bold", b"Courier"]),
            )
    {
        let _ = font;
        pdf.type1_font(*id)
            .base_font(Name(base))
            .encoding_predefined(Name(b"WinAnsiEncoding"));
    }
    for (n, (mut content, (page_id, content_id))) in w.pages.into_iter().zip(ids).enumerate() {
        // The foot: the title and the page number.
        let mut foot = w.title.clone();
        foot.extend_from_slice(format!("  -  page {} of {count}", n + 1).as_bytes());
        content.begin_text();
        content.set_font(Font::Regular.name(), 8.0);
        content.next_line(MARGIN, MARGIN - 20.0);
        content.show(Str(&foot));
        content.end_text();
        let mut page = pdf.page(page_id);
        page.media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H));
        page.parent(tree);
        page.contents(content_id);
        let mut resources = page.resources();
        let mut f = resources.fonts();
        for (font, id) in [Font::Regular, Font::Bold, Font::Mono]
            .into_iter()
            .zip(fonts)
        {
            f.pair(font.name(), id);
        }
        f.finish();
        resources.finish();
        page.finish();
        pdf.stream(content_id, &content.finish());
    }
    pdf.finish()
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;

    #[test]
    fn text_outside_windows_1252_is_spelled_out() {
        assert_eq!(cp1252("a → b ⚠ — é 日"), b"a -> b ! \x97 \xe9 ?");
        assert_eq!(cp1252("▁▅█"), b"_=#");
        assert_eq!(cells(r"| a \| b | c |"), ["a | b", "c"]);
    }

    #[test]
    fn a_long_document_is_paged_and_every_page_has_its_foot() {
        let mut md = String::from("# Report\n\n| a | b |\n|---|---|\n| 1 | 2 |\n");
        for i in 0..300 {
            let _ = writeln!(md, "- item {i}: {}", "word ".repeat(30));
        }
        let pdf = markdown_to_pdf(&md, "t");
        let text = String::from_utf8_lossy(&pdf);
        assert!(text.starts_with("%PDF-"));
        let pages = text.matches("/Type /Page\n").count() + text.matches("/Type /Page ").count();
        assert!(
            pages >= 10 || text.matches("/Type /Page").count() > 10,
            "{pages}"
        );
        assert!(text.contains("page 1 of"));
    }
}
