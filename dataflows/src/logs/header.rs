//! Loghub-style header formats: `<Date> <Time> <Pid> <Level> <Component>: <Content>`.
//!
//! A format is a sequence of fields (`<Name>`) and literal separators. It means what Loghub's and
//! Drain's `generate_logformat_regex` makes of it: every field is a lazy `.*?`, a run of spaces
//! in the format matches one or more whitespace characters (`\s+`), any other character matches
//! itself, and the whole line must match (`^...$`), so the last field takes the rest of the
//! line. Backslash escapes (`\[`, `\]`, `\|`, as Loghub's formats write them) are literals.
//!
//! Beyond Loghub's formats, optional groups `( ... )?` are supported (the Linux, Mac and
//! Thunderbird formats of Loghub use them, e.g. `<Component>(\[<PID>\])?: <Content>`); a field
//! inside a group that did not match is the empty string. Other regex syntax (`[`, `]`, `{`, `}`,
//! `|`, `*`, `+`, `?`, `^`, `$` unescaped, classes like `\d`) is refused with the position: a
//! format is not a regex, and reading one as a literal silently would hide the mistake. An
//! unescaped `.` is a literal dot (in Loghub it matches any character, which includes the dot).
//!
//! Matching is a bounded backtracking search over a small compiled program that finds exactly
//! the match Python's `re` finds (leftmost, lazy fields, greedy whitespace); a line is tried
//! without memory first and, should a pathological line exhaust a step budget, again with a
//! visited set, so no line costs more than O(program length x line length).
//!
//! Who calls this: the plain-text log decoder (to take the level, component and message out of a
//! line) and the Loghub evaluator ([`super::loghub`]).

use super::WILDCARD;

/// Fields allowed in one format (a compiled format keeps its capture slots on the stack).
const MAX_FIELDS: usize = 32;

/// The name of the field that holds the message.
pub const CONTENT_FIELD: &str = "Content";

/// A parsed header format; see the module documentation for its syntax.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderFormat {
    /// Field names in order of appearance, `Content` included.
    fields: Vec<String>,
    /// Index of `Content` in `fields`.
    content: usize,
    program: Program,
}

/// A line split by a [`HeaderFormat`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header<'s, 'a> {
    /// `(name, value)` of every field except `Content`, in format order. A field inside an
    /// optional group that did not match has the value `""`.
    pub fields: Vec<(&'s str, &'a str)>,
    /// The `Content` field: the message.
    pub content: &'a str,
}

impl Header<'_, '_> {
    /// The value of field `name`, if the format has it (`Content` included).
    pub fn get(&self, name: &str) -> Option<&str> {
        if name == CONTENT_FIELD {
            return Some(self.content);
        }
        self.fields.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
}

/// One instruction of the compiled matcher.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Inst {
    /// These exact bytes.
    Lit(Box<str>),
    /// One whitespace character.
    Ws,
    /// One character other than `\n` (Python's `.`).
    Any,
    /// Try the first target, then the second.
    Split(usize, usize),
    Jmp(usize),
    /// Record the current position in a capture slot.
    Save(usize),
    /// Succeeds at the end of the line.
    Match,
}

/// A parsed piece of a format, before compilation.
enum Node {
    Lit(String),
    /// One or more whitespace characters.
    Ws,
    Field(usize),
    Optional(Vec<Node>),
}

impl HeaderFormat {
    /// Parses a format; the error names the problem and its byte position.
    pub fn parse(format: &str) -> Result<HeaderFormat, String> {
        if format.trim().is_empty() {
            return Err("header format is empty".into());
        }
        let mut fields: Vec<String> = Vec::new();
        // Stack of open groups; the bottom is the whole format.
        let mut stack: Vec<(usize, Vec<Node>)> = vec![(0, Vec::new())];
        let bytes = format.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let c = format[i..].chars().next().unwrap_or('\0');
            // The bottom group (the whole format) is never popped.
            let Some((_, top)) = stack.last_mut() else { break };
            match c {
                '<' => {
                    // `<[^<>]+>` is a field, as in Loghub's `re.split(r'(<[^<>]+>)', ...)`.
                    let rest = &format[i + 1..];
                    match rest.find(['<', '>']) {
                        Some(end) if end > 0 && rest.as_bytes()[end] == b'>' => {
                            let name = &rest[..end];
                            if !is_identifier(name) {
                                return Err(format!("field name `<{name}>` at byte {i} is not an identifier (letters, digits, `_`; not starting with a digit)"));
                            }
                            if fields.iter().any(|f| f == name) {
                                return Err(format!("field `<{name}>` appears twice (second time at byte {i})"));
                            }
                            if fields.len() == MAX_FIELDS {
                                return Err(format!("header format has more than {MAX_FIELDS} fields"));
                            }
                            if let Some(Node::Field(_)) = top.last() {
                                return Err(format!("field `<{name}>` at byte {i} follows another field with no separator; the first would always be empty"));
                            }
                            top.push(Node::Field(fields.len()));
                            fields.push(name.to_string());
                            i += end + 2;
                            continue;
                        }
                        _ => push_lit(top, '<'),
                    }
                }
                ' ' => {
                    if !matches!(top.last(), Some(Node::Ws)) {
                        top.push(Node::Ws);
                    }
                }
                '\\' => {
                    let Some(e) = format[i + 1..].chars().next() else {
                        return Err(format!("header format ends with a lone `\\` at byte {i}"));
                    };
                    if e.is_alphanumeric() || e == '_' {
                        return Err(format!("unsupported escape `\\{e}` at byte {i}: only punctuation can be escaped (`\\[` for a literal `[`)"));
                    }
                    push_lit(top, e);
                    i += 1 + e.len_utf8();
                    continue;
                }
                '(' => stack.push((i, Vec::new())),
                ')' => {
                    if bytes.get(i + 1) != Some(&b'?') {
                        return Err(format!("group closed at byte {i} without `?`: only optional groups `( ... )?` are supported; write `\\)` for a literal"));
                    }
                    let group = if stack.len() > 1 { stack.pop() } else { None };
                    let (Some((_, nodes)), Some((_, parent))) = (group, stack.last_mut()) else {
                        return Err(format!("`)?` at byte {i} closes no group; write `\\)` for a literal"));
                    };
                    parent.push(Node::Optional(nodes));
                    i += 2;
                    continue;
                }
                '[' | ']' | '{' | '}' | '|' | '*' | '+' | '?' | '^' | '$' => {
                    return Err(format!("unescaped `{c}` at byte {i}: a header format is not a regex; write `\\{c}` for a literal"));
                }
                _ => push_lit(top, c),
            }
            i += c.len_utf8();
        }
        if stack.len() > 1 {
            return Err(format!("group opened at byte {} is not closed with `)?`", stack[stack.len() - 1].0));
        }
        let nodes = stack.pop().map(|(_, n)| n).unwrap_or_default();
        let Some(content) = fields.iter().position(|f| f == CONTENT_FIELD) else {
            return Err(format!("header format has no `<{CONTENT_FIELD}>` field (fields: {})", fields.join(", ")));
        };
        if content_is_optional(&nodes, content) {
            return Err(format!("`<{CONTENT_FIELD}>` must not be inside an optional group"));
        }
        Ok(HeaderFormat { fields, content, program: Program::compile(&nodes) })
    }

    /// Field names in order of appearance, `Content` included (Loghub's `headers`).
    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// Splits a line into its header fields and content; `None` when the line does not match.
    ///
    /// Surrounding whitespace (a `\r` left by CRLF files included) is trimmed first, as Loghub's
    /// loader does with `line.strip()`.
    pub fn split<'s, 'a>(&'s self, line: &'a str) -> Option<Header<'s, 'a>> {
        let line = line.trim();
        let mut slots = [usize::MAX; 2 * MAX_FIELDS];
        if !self.program.matches(line, &mut slots) {
            return None;
        }
        let value = |k: usize| match (slots[2 * k], slots[2 * k + 1]) {
            (s, e) if s != usize::MAX && e != usize::MAX => &line[s..e],
            _ => "",
        };
        let fields = self.fields.iter().enumerate().filter(|(k, _)| *k != self.content).map(|(k, name)| (name.as_str(), value(k))).collect();
        Some(Header { fields, content: value(self.content) })
    }
}

/// A compiled matcher: literals, whitespace runs and lazy captures, with Python `re`
/// semantics. Header formats compile to one; so do templates, for parameter extraction
/// ([`super::drain::extract_parameters`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Program {
    insts: Vec<Inst>,
    /// The same, as a flat sequence, when there are no optional groups: the fast path.
    atoms: Option<Vec<Atom>>,
}

/// A step of the fast path.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Atom {
    Lit(Box<str>),
    Ws,
    Field(usize),
}

impl Program {
    /// A template (`<*>` wildcards, tokens separated by whitespace) as a program with one
    /// capture per wildcard: literal text matches itself, a space matches any whitespace run,
    /// a wildcard is a lazy `.*?`, as Loghub's `get_parameter_list` does it.
    pub(super) fn template(template: &str) -> (Program, usize) {
        let mut nodes = Vec::new();
        let mut captures = 0;
        for (i, token) in template.split_whitespace().enumerate() {
            if i > 0 {
                nodes.push(Node::Ws);
            }
            let mut rest = token;
            while let Some(at) = rest.find(WILDCARD) {
                if at > 0 {
                    nodes.push(Node::Lit(rest[..at].to_string()));
                }
                nodes.push(Node::Field(captures));
                captures += 1;
                rest = &rest[at + WILDCARD.len()..];
            }
            if !rest.is_empty() {
                nodes.push(Node::Lit(rest.to_string()));
            }
        }
        (Program::compile(&nodes), captures)
    }

    fn compile(nodes: &[Node]) -> Program {
        let mut insts = Vec::new();
        compile(nodes, &mut insts);
        insts.push(Inst::Match);
        let atoms = nodes
            .iter()
            .map(|n| match n {
                Node::Lit(s) => Some(Atom::Lit(s.clone().into_boxed_str())),
                Node::Ws => Some(Atom::Ws),
                Node::Field(k) => Some(Atom::Field(*k)),
                Node::Optional(_) => None,
            })
            .collect();
        Program { insts, atoms }
    }

    /// Runs the program over all of `text`; on success `slots` (two per capture: start, end)
    /// hold the captures, `usize::MAX` for a capture that did not take part.
    pub(super) fn matches(&self, text: &str, slots: &mut [usize]) -> bool {
        if let Some(atoms) = &self.atoms {
            if !text.contains('\n') && fast(atoms, text, slots) {
                return true;
            }
            slots.fill(usize::MAX);
        }
        self.matches_vm(text, slots)
    }

    /// The backtracking matcher: exact for every program.
    fn matches_vm(&self, text: &str, slots: &mut [usize]) -> bool {
        let budget = self.insts.len().saturating_mul(text.len() + 1).max(1024);
        match run(&self.insts, text, slots, None, budget) {
            Some(found) => found,
            None => {
                slots.fill(usize::MAX);
                let mut visited = vec![0u64; (self.insts.len() * (text.len() + 1)).div_ceil(64)];
                run(&self.insts, text, slots, Some(&mut visited), usize::MAX).unwrap_or(false)
            }
        }
    }
}

/// The first path the backtracking matcher would try, without backtracking: a field ends where
/// what follows it first matches (lazy), a whitespace run is taken whole (greedy). When this
/// path reaches the end of the text it is the match the backtracking matcher finds (it explores
/// the same choices in the same order, and every choice skipped here fails at its first step
/// there); when it does not, the caller falls back to that matcher. Fields never span `\n`
/// (texts holding one go to the backtracking matcher).
fn fast(atoms: &[Atom], text: &str, slots: &mut [usize]) -> bool {
    let mut pos = 0;
    for (i, atom) in atoms.iter().enumerate() {
        match atom {
            Atom::Lit(l) => {
                if !text[pos..].starts_with(&**l) {
                    return false;
                }
                pos += l.len();
            }
            Atom::Ws => {
                let run = ws_run(&text[pos..]);
                if run == 0 {
                    return false;
                }
                pos += run;
            }
            Atom::Field(k) => {
                slots[2 * k] = pos;
                let end = match atoms.get(i + 1) {
                    None => text.len(),
                    Some(Atom::Lit(l)) => match text[pos..].find(&**l) {
                        Some(at) => pos + at,
                        None => return false,
                    },
                    Some(Atom::Ws) => match text[pos..].find(char::is_whitespace) {
                        Some(at) => pos + at,
                        None => return false,
                    },
                    Some(Atom::Field(_)) => pos,
                };
                slots[2 * k + 1] = end;
                pos = end;
            }
        }
    }
    pos == text.len()
}

/// Length in bytes of the whitespace run that starts `s`.
fn ws_run(s: &str) -> usize {
    s.char_indices().find(|(_, c)| !c.is_whitespace()).map_or(s.len(), |(i, _)| i)
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_alphabetic() || c == '_') && chars.all(|c| c.is_alphanumeric() || c == '_')
}

fn push_lit(nodes: &mut Vec<Node>, c: char) {
    if let Some(Node::Lit(s)) = nodes.last_mut() {
        s.push(c);
    } else {
        nodes.push(Node::Lit(c.to_string()));
    }
}

fn content_is_optional(nodes: &[Node], content: usize) -> bool {
    fn contains(nodes: &[Node], field: usize) -> bool {
        nodes.iter().any(|n| match n {
            Node::Field(k) => *k == field,
            Node::Optional(inner) => contains(inner, field),
            _ => false,
        })
    }
    nodes.iter().any(|n| matches!(n, Node::Optional(inner) if contains(inner, content)))
}

fn compile(nodes: &[Node], program: &mut Vec<Inst>) {
    for node in nodes {
        match node {
            Node::Lit(s) => program.push(Inst::Lit(s.clone().into_boxed_str())),
            Node::Ws => {
                // `\s+`, greedy: one, then loop preferring more.
                program.push(Inst::Ws);
                let split = program.len();
                program.push(Inst::Split(split + 1, split + 3));
                program.push(Inst::Ws);
                program.push(Inst::Jmp(split));
            }
            Node::Field(k) => {
                // `(?P<k>.*?)`: lazy, so the exit is preferred over one more character.
                program.push(Inst::Save(2 * k));
                let split = program.len();
                program.push(Inst::Split(split + 3, split + 1));
                program.push(Inst::Any);
                program.push(Inst::Jmp(split));
                program.push(Inst::Save(2 * k + 1));
            }
            Node::Optional(inner) => {
                // `( ... )?`, greedy: the group is preferred over skipping it.
                let split = program.len();
                program.push(Inst::Split(split + 1, usize::MAX));
                compile(inner, program);
                let after = program.len();
                program[split] = Inst::Split(split + 1, after);
            }
        }
    }
}

/// A backtracking frame: a state still to explore, or a capture slot to restore.
enum Frame {
    Explore(usize, usize),
    Restore(usize, usize),
}

/// Runs the program over `line` in priority order (Python's `re` semantics). Returns
/// `Some(matched)`, or `None` when the step budget ran out before an answer.
fn run(program: &[Inst], line: &str, slots: &mut [usize], mut visited: Option<&mut [u64]>, budget: usize) -> Option<bool> {
    let bytes = line.as_bytes();
    let width = line.len() + 1;
    let mut steps = 0usize;
    let mut stack = vec![Frame::Explore(0, 0)];
    while let Some(frame) = stack.pop() {
        let (mut pc, mut pos) = match frame {
            Frame::Explore(pc, pos) => (pc, pos),
            Frame::Restore(slot, old) => {
                slots[slot] = old;
                continue;
            }
        };
        loop {
            steps += 1;
            if steps > budget {
                return None;
            }
            if let Some(v) = visited.as_deref_mut() {
                let bit = pc * width + pos;
                if v[bit / 64] & (1 << (bit % 64)) != 0 {
                    break;
                }
                v[bit / 64] |= 1 << (bit % 64);
            }
            match &program[pc] {
                Inst::Lit(s) => {
                    if bytes[pos..].starts_with(s.as_bytes()) {
                        pos += s.len();
                        pc += 1;
                    } else {
                        break;
                    }
                }
                Inst::Ws => match line[pos..].chars().next() {
                    Some(c) if c.is_whitespace() => {
                        pos += c.len_utf8();
                        pc += 1;
                    }
                    _ => break,
                },
                Inst::Any => match line[pos..].chars().next() {
                    Some(c) if c != '\n' => {
                        pos += c.len_utf8();
                        pc += 1;
                    }
                    _ => break,
                },
                Inst::Split(first, second) => {
                    stack.push(Frame::Explore(*second, pos));
                    pc = *first;
                }
                Inst::Jmp(target) => pc = *target,
                Inst::Save(slot) => {
                    stack.push(Frame::Restore(*slot, slots[*slot]));
                    slots[*slot] = pos;
                    pc += 1;
                }
                Inst::Match => {
                    if pos == line.len() {
                        return Some(true);
                    }
                    break;
                }
            }
        }
    }
    Some(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split<'s, 'a>(f: &'s HeaderFormat, line: &'a str) -> (Vec<(&'s str, &'a str)>, &'a str) {
        let h = f.split(line).unwrap_or_else(|| panic!("no match: {line}"));
        (h.fields, h.content)
    }

    #[test]
    fn hdfs() {
        let f = HeaderFormat::parse("<Date> <Time> <Pid> <Level> <Component>: <Content>").unwrap();
        assert_eq!(f.fields(), ["Date", "Time", "Pid", "Level", "Component", "Content"]);
        let (fields, content) = split(&f, "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_38865049064139660 terminating\r");
        assert_eq!(fields, vec![("Date", "081109"), ("Time", "203615"), ("Pid", "148"), ("Level", "INFO"), ("Component", "dfs.DataNode$PacketResponder")]);
        assert_eq!(content, "PacketResponder 1 for block blk_38865049064139660 terminating");
    }

    #[test]
    fn escapes_and_double_spaces() {
        let f = HeaderFormat::parse(r"<Date> <Time> - <Level>  \[<Node>:<Component>@<Id>\] - <Content>").unwrap();
        let line = "2015-07-29 17:41:44,747 - INFO  [QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181:FastLeaderElection@774] - Notification time out: 3200";
        let h = f.split(line).unwrap();
        assert_eq!(h.get("Level"), Some("INFO"));
        assert_eq!(h.get("Node"), Some("QuorumPeer[myid=1]/0"));
        assert_eq!(h.get("Component"), Some("0:0:0:0:0:0:0:2181:FastLeaderElection"));
        assert_eq!(h.get("Id"), Some("774"));
        assert_eq!(h.content, "Notification time out: 3200");

        let f = HeaderFormat::parse(r"<Time>\|<Component>\|<Pid>\|<Content>").unwrap();
        let (fields, content) = split(&f, "20171223-22:15:29:606|Step_LSC|30002312|onStandStepChanged 3579");
        assert_eq!(fields, vec![("Time", "20171223-22:15:29:606"), ("Component", "Step_LSC"), ("Pid", "30002312")]);
        assert_eq!(content, "onStandStepChanged 3579");
    }

    #[test]
    fn lazy_fields_backtrack_like_python_re() {
        // Lazy fields take the shortest value that lets the rest of the line match: `Msg` must
        // run past its first `: ` to reach ` end `, `Component` stops at its first `: `.
        let f = HeaderFormat::parse("<Level> <Component>: <Msg> end <Content>").unwrap();
        let h = f.split("INFO a: b: c end tail end x").unwrap();
        assert_eq!(h.get("Component"), Some("a"));
        assert_eq!(h.get("Msg"), Some("b: c"));
        assert_eq!(h.content, "tail end x");
        // Greedy whitespace gives back a character when the next literal needs it.
        let f = HeaderFormat::parse("<A>:x <Content>").unwrap();
        assert_eq!(f.split("p:x:x q").unwrap().get("A"), Some("p:x"));
        // A run of spaces in the format matches any whitespace run, tabs included.
        let f = HeaderFormat::parse("<Level> <Content>").unwrap();
        assert_eq!(f.split("WARN \t  disk full").unwrap().content, "disk full");
        // Lazy: the first field stops at the first whitespace that lets the rest match.
        assert_eq!(f.split("WARN a b").unwrap().get("Level"), Some("WARN"));
    }

    #[test]
    fn non_matching_lines() {
        let f = HeaderFormat::parse(r"\[<Time>\] \[<Level>\] <Content>").unwrap();
        assert!(f.split("no brackets here").is_none());
        assert!(f.split("[Sun Dec 04 04:47:44 2005] [notice]").is_none());
        let h = f.split("[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok /etc/httpd/conf/workers2.properties").unwrap();
        assert_eq!(h.get("Time"), Some("Sun Dec 04 04:47:44 2005"));
        assert_eq!(h.get("Level"), Some("notice"));
    }

    #[test]
    fn optional_groups() {
        let f = HeaderFormat::parse(r"<Month> <Date> <Time> <Level> <Component>(\[<PID>\])?: <Content>").unwrap();
        let h = f.split("Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure").unwrap();
        assert_eq!(h.get("Component"), Some("sshd(pam_unix)"));
        assert_eq!(h.get("PID"), Some("19939"));
        let h = f.split("Jun 14 15:16:02 combo kernel: Linux version 2.6.5").unwrap();
        assert_eq!(h.get("Component"), Some("kernel"));
        assert_eq!(h.get("PID"), Some(""));
        assert_eq!(h.content, "Linux version 2.6.5");
    }

    #[test]
    fn pathological_lines_stay_bounded() {
        let f = HeaderFormat::parse("<A> <B> <C> <D> <E> x <Content>").unwrap();
        let line = "a ".repeat(3000);
        assert!(f.split(&line).is_none());
        let line = format!("{}x y", "a ".repeat(3000));
        assert_eq!(f.split(&line).unwrap().content, "y");
    }

    #[test]
    fn fast_path_agrees_with_backtracking() {
        let formats = ["<Date> <Time> <Pid> <Level> <Component>: <Content>", r"<Date> <Time> - <Level>  \[<Node>:<Component>@<Id>\] - <Content>", "<A>:x <Content>", "<Level> <Component>: <Msg> end <Content>", r"<Time>\|<Component>\|<Pid>\|<Content>"];
        let lines = [
            "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1",
            "2015-07-29 17:41:44,747 - INFO  [QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181:FastLeaderElection@774] - Notification time out: 3200",
            "p:x:x q",
            "INFO a: b: c end tail end x",
            "a|b|c|d|e",
            "x y",
            "",
            "a  b   c: d: e",
            "INFO\u{a0}a: b end c",
        ];
        for f in formats {
            let f = HeaderFormat::parse(f).unwrap();
            for line in lines {
                let line = line.trim();
                let (mut a, mut b) = ([usize::MAX; 64], [usize::MAX; 64]);
                let fast_ok = f.program.atoms.as_ref().is_some_and(|atoms| fast(atoms, line, &mut a));
                let vm_ok = f.program.matches_vm(line, &mut b);
                if fast_ok {
                    assert!(vm_ok && a == b, "{line:?} with {:?}", f.fields());
                }
                assert_eq!(f.program.matches(line, &mut a), vm_ok);
            }
        }
    }

    #[test]
    fn errors_name_the_problem() {
        let err = |f: &str| HeaderFormat::parse(f).unwrap_err();
        assert!(err("").contains("empty"));
        assert!(err("<Date> <Time>").contains("no `<Content>`"));
        assert!(err("<Date> <Date> <Content>").contains("appears twice"));
        assert!(err("[<Time>] <Content>").contains("unescaped `[` at byte 0"));
        assert!(err(r"\d <Content>").contains("unsupported escape"));
        assert!(err("(<A> )<Content>").contains("without `?`"));
        assert!(err("(<A> <Content>").contains("not closed"));
        assert!(err("<A><Content>").contains("no separator"));
        assert!(err("<1x> <Content>").contains("not an identifier"));
        assert!(err("<A> (<Content>)?").contains("optional"));
    }
}
