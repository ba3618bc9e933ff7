//! What an exporter wrote about the model in the ONNX file's `metadata_props`: ultralytics'
//! task and, from ultralytics and the `yolov5` package alike, the class names (a custom-trained
//! detector's labels travel in its file).

/// The exporter's notes igcam reads; absent ones are `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    /// Ultralytics' `task`: `detect`, `segment` (instance masks), `pose`, `obb`, `classify`, ...
    pub task: Option<String>,
    /// The class names in class order, from `names`: the Python literal of a dict with the keys
    /// 0, 1, ... (`{0: 'person', 1: 'bicycle'}`, ultralytics) or of a list (`yolov5`).
    pub names: Option<Vec<String>>,
}

impl Metadata {
    /// The notes among `props` (key, value); a `names` that is not such a literal is ignored.
    pub fn read<'a>(props: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut metadata = Metadata::default();
        for (key, value) in props {
            match key {
                "task" => metadata.task = Some(value.trim().to_string()),
                "names" => metadata.names = python_names(value),
                _ => {}
            }
        }
        metadata
    }

    /// Ultralytics' instance-segmentation or pose head: a detection head whose anchors carry
    /// mask coefficients or keypoints after the class scores; in words, what those are.
    pub fn extra_values(&self) -> Option<&'static str> {
        match self.task.as_deref() {
            Some("segment") => Some("mask coefficients"),
            Some("pose") => Some("keypoint values"),
            _ => None,
        }
    }
}

/// Class names from the Python literal of a dict of the keys 0..n (any order) to strings, or of
/// a list of strings; `None` for anything else (no names, a gap in the keys, another type).
fn python_names(text: &str) -> Option<Vec<String>> {
    let mut p = Literal {
        chars: text.trim().chars().collect(),
        at: 0,
    };
    let close = match p.next()? {
        '{' => '}',
        '[' => ']',
        _ => return None,
    };
    let mut names: Vec<(usize, String)> = Vec::new();
    loop {
        p.skip_space();
        if p.peek() == Some(close) {
            p.at += 1;
            break;
        }
        let key = if close == '}' {
            let key = p.integer()?;
            p.skip_space();
            (p.next()? == ':').then_some(())?;
            key
        } else {
            names.len()
        };
        p.skip_space();
        names.push((key, p.string()?));
        p.skip_space();
        match p.next()? {
            ',' => {}
            c if c == close => break,
            _ => return None,
        }
    }
    p.skip_space();
    if p.at != p.chars.len() || names.is_empty() {
        return None;
    }
    names.sort_by_key(|(k, _)| *k);
    let contiguous = names.iter().enumerate().all(|(i, (k, _))| i == *k);
    contiguous.then(|| names.into_iter().map(|(_, n)| n).collect())
}

/// A cursor over a Python literal.
struct Literal {
    chars: Vec<char>,
    at: usize,
}

impl Literal {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += 1;
        Some(c)
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.at += 1;
        }
    }

    /// A non-negative decimal integer.
    fn integer(&mut self) -> Option<usize> {
        let start = self.at;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.at += 1;
        }
        let digits: String = self.chars[start..self.at].iter().collect();
        digits.parse().ok()
    }

    /// A string in single or double quotes, with Python's escapes of quotes, backslashes and
    /// `\n`, `\t`, `\r`, `\xNN`, `\uNNNN` (what `repr` writes).
    fn string(&mut self) -> Option<String> {
        let quote = self.next().filter(|q| *q == '\'' || *q == '"')?;
        let mut out = String::new();
        loop {
            match self.next()? {
                c if c == quote => return Some(out),
                '\\' => match self.next()? {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'x' => out.push(self.hex(2)?),
                    'u' => out.push(self.hex(4)?),
                    'U' => out.push(self.hex(8)?),
                    c => out.push(c),
                },
                c => out.push(c),
            }
        }
    }

    /// The character of the next `digits` hexadecimal digits.
    fn hex(&mut self, digits: usize) -> Option<char> {
        let text: String = (0..digits).map(|_| self.next()).collect::<Option<_>>()?;
        char::from_u32(u32::from_str_radix(&text, 16).ok()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Option<Vec<String>> {
        python_names(text)
    }

    #[test]
    fn reads_ultralytics_and_yolov5_names() {
        // What ultralytics 8.4's exporter wrote for `{0: 'cat', 1: "o'dog", 2: 'bird "x"'}`.
        assert_eq!(
            names(r#"{0: 'cat', 1: "o'dog", 2: 'bird "x"'}"#).unwrap(),
            ["cat", "o'dog", "bird \"x\""]
        );
        assert_eq!(names("{1: 'b', 0: 'a'}").unwrap(), ["a", "b"]);
        assert_eq!(
            names("['person', 'bicycle']").unwrap(),
            ["person", "bicycle"]
        );
        assert_eq!(
            names(r"['a\\b', 'caf\xe9', 'line\n']").unwrap(),
            ["a\\b", "café", "line\n"]
        );
        assert_eq!(names(" { 0 : 'x' , } ").unwrap(), ["x"]);
    }

    #[test]
    fn anything_else_gives_no_names() {
        for bad in [
            "",
            "{}",
            "[]",
            "{0: 'a', 2: 'c'}",
            "{0: 1}",
            "{'a': 'b'}",
            "{0: 'a'",
            "{0: 'a'} extra",
            "names.yaml",
            "{0: 'unterminated}",
        ] {
            assert_eq!(names(bad), None, "{bad}");
        }
    }

    #[test]
    fn reads_the_task_and_ignores_other_keys() {
        let m = Metadata::read([
            ("author", "Ultralytics"),
            ("task", "pose"),
            ("names", "{0: 'person'}"),
            ("kpt_shape", "[17, 3]"),
        ]);
        assert_eq!(m.task.as_deref(), Some("pose"));
        assert_eq!(m.names.as_deref(), Some(&["person".to_string()][..]));
        assert_eq!(m.extra_values(), Some("keypoint values"));
        assert_eq!(Metadata::read([("names", "oops")]), Metadata::default());
    }
}
