//! Sentence splitting for streaming synthesis: the first sentence is spoken while later ones
//! are still being synthesized.
//!
//! Splits after `.`, `?` and `!` when a space or the end follows (so "3.5" and "e.g.x" stay
//! whole), and always after the full-width `。`, `？`, `！` and `；`. Closing quotes and brackets
//! stay with their sentence. Pieces without a letter or digit (stray punctuation) are dropped.

/// Splits text into sentences, each trimmed, with its closing punctuation.
pub fn split_sentences(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut sentences = Vec::new();
    let mut current = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        current.push(c);
        i += 1;
        let full_width = is_full_width_terminator(c);
        if !(full_width || is_ascii_terminator(c)) {
            continue;
        }
        // Keep runs like "?!", "..." and closing quotes with the sentence.
        let mut saw_full_width = full_width;
        while i < chars.len() && (is_terminator(chars[i]) || is_closer(chars[i])) {
            saw_full_width |= is_full_width_terminator(chars[i]);
            current.push(chars[i]);
            i += 1;
        }
        let at_boundary =
            saw_full_width || i == chars.len() || chars[i].is_whitespace() || is_cjk(chars[i]);
        if at_boundary {
            push_sentence(&mut sentences, &mut current);
        }
    }
    push_sentence(&mut sentences, &mut current);
    sentences
}

fn push_sentence(sentences: &mut Vec<String>, current: &mut String) {
    let sentence = current.trim();
    if sentence.chars().any(char::is_alphanumeric) {
        sentences.push(sentence.to_string());
    }
    current.clear();
}

fn is_ascii_terminator(c: char) -> bool {
    matches!(c, '.' | '?' | '!')
}

fn is_full_width_terminator(c: char) -> bool {
    matches!(c, '。' | '？' | '！' | '；')
}

fn is_terminator(c: char) -> bool {
    is_ascii_terminator(c) || is_full_width_terminator(c)
}

fn is_closer(c: char) -> bool {
    matches!(c, '"' | '\'' | ')' | ']' | '”' | '’' | '」' | '』' | '）')
}

/// CJK ideographs and punctuation: Chinese text has no spaces after its sentences.
fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3000..=0x303F | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0xFF00..=0xFFEF)
}

#[cfg(test)]
mod tests {
    use super::split_sentences;

    #[test]
    fn english() {
        assert_eq!(
            split_sentences("Hello there. How can I help? Call 3.5 times!  "),
            vec!["Hello there.", "How can I help?", "Call 3.5 times!"]
        );
    }

    #[test]
    fn chinese() {
        assert_eq!(
            split_sentences("你好，欢迎致电。请问有什么可以帮您？谢谢！再见；好的"),
            vec![
                "你好，欢迎致电。",
                "请问有什么可以帮您？",
                "谢谢！",
                "再见；",
                "好的"
            ]
        );
    }

    #[test]
    fn punctuation_runs_and_quotes() {
        assert_eq!(
            split_sentences("Really?! \"Yes.\" OK..."),
            vec!["Really?!", "\"Yes.\"", "OK..."]
        );
        assert!(split_sentences(" ... !! ").is_empty());
        assert!(split_sentences("").is_empty());
    }
}
