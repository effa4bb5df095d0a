//! Timed text as subtitles: SRT and VTT (WEBVTT) files, for the OpenAI-compatible
//! endpoint's `response_format` and for exporting long transcripts; and as Markdown notes.

use std::fmt::Write as _;

/// One cue: its text between two moments, in milliseconds from the start of the audio.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cue<'a> {
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: &'a str,
}

/// `HH:MM:SS` + `sep` + `mmm`: SRT separates milliseconds with a comma, VTT with a dot.
fn clock(ms: u64, sep: char) -> String {
    let (h, m, s, f) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    format!("{h:02}:{m:02}:{s:02}{sep}{f:03}")
}

/// A cue's text on its lines: no blank lines inside (they would end the cue early), and never
/// the `-->` that starts a timing line.
fn cue_text(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
        .replace("-->", "->")
}

/// SRT: numbered cues, `00:00:01,000 --> 00:00:02,500`.
pub fn srt(cues: &[Cue<'_>]) -> String {
    let mut out = String::new();
    for (i, c) in cues.iter().enumerate() {
        let _ = write!(
            out,
            "{}\n{} --> {}\n{}\n\n",
            i + 1,
            clock(c.start_ms, ','),
            clock(c.end_ms.max(c.start_ms), ','),
            cue_text(c.text)
        );
    }
    out
}

/// Markdown notes: a heading, then one paragraph per cue led by its time (`**0:01:23**`).
pub fn markdown(title: &str, cues: &[Cue<'_>]) -> String {
    let mut out = format!("# {}\n\n", title.trim());
    for c in cues {
        let s = c.start_ms / 1000;
        let _ = write!(
            out,
            "**{}:{:02}:{:02}** {}\n\n",
            s / 3600,
            s / 60 % 60,
            s % 60,
            cue_text(c.text).replace('\n', " ")
        );
    }
    out
}

/// VTT: the `WEBVTT` header, then `00:00:01.000 --> 00:00:02.500` cues.
pub fn vtt(cues: &[Cue<'_>]) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for c in cues {
        let _ = write!(
            out,
            "{} --> {}\n{}\n\n",
            clock(c.start_ms, '.'),
            clock(c.end_ms.max(c.start_ms), '.'),
            cue_text(c.text)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CUES: [Cue<'static>; 2] = [
        Cue {
            start_ms: 0,
            end_ms: 2_500,
            text: "Hello there.",
        },
        Cue {
            start_ms: 3_723_004,
            end_ms: 3_725_000,
            text: "An hour later,\n\nand --> on.",
        },
    ];

    #[test]
    fn srt_numbers_cues_and_uses_commas() {
        assert_eq!(
            srt(&CUES),
            "1\n00:00:00,000 --> 00:00:02,500\nHello there.\n\n\
             2\n01:02:03,004 --> 01:02:05,000\nAn hour later,\nand -> on.\n\n"
        );
    }

    #[test]
    fn vtt_has_its_header_and_dots() {
        assert_eq!(
            vtt(&CUES),
            "WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nHello there.\n\n\
             01:02:03.004 --> 01:02:05.000\nAn hour later,\nand -> on.\n\n"
        );
        assert_eq!(vtt(&[]), "WEBVTT\n\n");
    }

    #[test]
    fn markdown_leads_each_paragraph_with_its_time() {
        assert_eq!(
            markdown(" Weekly sync ", &CUES),
            "# Weekly sync\n\n**0:00:00** Hello there.\n\n**1:02:03** An hour later, and -> on.\n\n"
        );
    }
}
