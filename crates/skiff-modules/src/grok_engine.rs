//! Grok patterns matched on the `regex` crate's automata, with the fancy-regex backtracking VM
//! kept as the reference and the fallback.
//!
//! The standard grok library uses look-arounds (`IPV4` is `(?<![0-9])...(?![0-9])`, `TIME`
//! ends with `(?![0-9])`) and atomic groups (`NUMBER`'s `BASE10NUM`, `YEAR`), which the
//! `regex` crate does not have; on fancy-regex's VM every fileset pattern ran ~10x slower than
//! the rest of the pipeline together. This module compiles a *relaxed* copy of each expanded
//! pattern for `regex-automata`: every look-around becomes an empty capture group (its
//! position) and every atomic group a capture group (its span). The relaxed pattern matches a
//! superset of the original's paths, in the same priority order (both engines report the
//! highest-priority path of the leftmost start, as a backtracker does). So:
//!
//! - no relaxed match: the original cannot match either (answered without the VM);
//! - a relaxed match whose recorded positions satisfy every dropped assertion (each
//!   look-around holds where it was crossed; each atomic group spans exactly its body's first
//!   choice from its start, which is what backtracking would have committed to) is also the
//!   original's highest-priority path, so its captures are the original's;
//! - otherwise the answer is unknown and the fancy-regex pattern decides.
//!
//! A capture inside a repetition only records the last iteration, so a repetition that
//! contains an assertion is unrolled a few times (`X*` is `(?:X(?:X(?:X...)?)?)?`, with the
//! same priorities) and a sentinel group marks a match that needed more iterations than were
//! unrolled: that one goes to the fallback too. Patterns this cannot express (back-references,
//! captures inside look-arounds, variable-length look-behinds, ...) always use the fallback.
//! `tests/grok_differential.rs` compares both engines on every fileset pattern.
//!
//! One known difference: fancy-regex gives up (reports no match) after a million backtracking
//! steps; the automata have no such limit, so on such a pathological line the fast path finds
//! the match the pattern defines.

use std::collections::{BTreeMap, HashMap};

use fancy_regex::{Assertion, Expr, LookAround};
use grok::parser::{GrokComponent, grok_split};
use regex_automata::nfa::thompson::backtrack::{self, BoundedBacktracker};
use regex_automata::util::captures::Captures;
use regex_automata::util::pool::Pool;
use regex_automata::{Anchored, Input, meta};

/// How often a repetition containing an assertion is unrolled: enough for the proxy chains of
/// real access logs (`X-Forwarded-For` lists); longer ones use the fallback.
const UNROLL: usize = 4;

/// The backtracker's visited set (bits: NFA states x span length): the nginx access pattern
/// (~3,000 states) fits lines of up to ~10 KiB; a longer match goes to the fallback.
const VISITED_BYTES: usize = 4 << 20;

/// Past this size (of the relaxed regex's text) the fast path is not built.
const MAX_RELAXED_LEN: usize = 1 << 17;

/// Patterns replaced, in the fast path only, by a small pattern matching every string they
/// match (and more), behind a sentinel group: a match that goes through one is left to the
/// fallback. A match that does not is exact: any higher-priority path of the real pattern
/// through the replaced one would have a copy through the superset, ranked the same, so the
/// automata would have reported that one instead. `IPV6` is ~3,700 automaton states per use
/// (a dozen alternatives of counted repetitions); what it matches is hex digits, `\d` digits,
/// `.` and at least one `:` (every alternative has one), then an optional `%zone` (any text).
/// The `:` keeps the superset from matching the digits after a shortened IPv4 address, which
/// the relaxed pattern (without `IPV4`'s look-ahead) would otherwise prefer.
const SUPERSETS: &[(&str, &str)] = &[(
    "IPV6",
    r"(?:[0-9A-Fa-f.]|\d)*:(?:[0-9A-Fa-f:.]|\d)*(?:%.+)?",
)];

/// The group name prefix of those sentinels.
const SENTINEL: &str = "__superset";

/// Grok's expansion depth limit (the grok crate's `MAX_RECURSION`).
const MAX_DEPTH: usize = 1024;

/// A compiled grok pattern.
pub struct GrokPattern {
    slow: grok::Pattern,
    fast: Option<Fast>,
}

/// The relaxed pattern and what must be checked after it matched.
struct Fast {
    /// Finds the match (lazy DFA, no captures).
    re: meta::Regex,
    /// Takes the captures within it: the same priorities as a backtracker, and unlike the
    /// PikeVM, the cost does not grow with the number of groups times live threads.
    bt: BoundedBacktracker,
    caches: Pool<backtrack::Cache, CacheFn>,
    checks: Vec<Check>,
    /// Each capture name grok reports (sorted, as grok lists them), with its groups in the
    /// relaxed regex: several when the group was unrolled; the last that took part holds the
    /// last iteration's value.
    names: Vec<(String, Vec<usize>)>,
}

type CacheFn = Box<
    dyn Fn() -> backtrack::Cache + Send + Sync + std::panic::UnwindSafe + std::panic::RefUnwindSafe,
>;

/// An assertion dropped from the relaxed regex, checked at the position its group recorded.
enum Check {
    /// A look-ahead: `re` (anchored) matches (or, `negate`, does not) at the position.
    Ahead {
        group: usize,
        re: meta::Regex,
        negate: bool,
    },
    /// A look-behind of `chars` characters: `re` matches (or does not) the text before it.
    Behind {
        group: usize,
        re: meta::Regex,
        chars: usize,
        negate: bool,
    },
    /// An atomic group: its span must be its body's first-choice match from its start.
    Atomic { group: usize, re: meta::Regex },
    /// The sentinel of an unrolled repetition: taking part means too many iterations.
    Absent { group: usize },
}

/// What the fast path says about a text.
pub enum FastOutcome<'t> {
    /// The pattern does not match.
    NoMatch,
    /// The pattern matches with these captures (name, value), in `capture_names` order.
    Match(Vec<(&'t str, &'t str)>),
    /// Not decided here: the fancy-regex pattern has to be run.
    Unknown,
}

impl GrokPattern {
    /// Compiles `pattern` with the library `lib` (the grok crate's, for the fallback) and its
    /// copy `defs` (name -> definition, the same patterns), as `Grok::compile(p, true)` does.
    pub fn compile(
        pattern: &str,
        lib: &grok::Grok,
        defs: &BTreeMap<String, String>,
    ) -> Result<Self, String> {
        let slow = lib.compile(pattern, true).map_err(|e| e.to_string())?;
        let fast = expand(pattern, defs).ok().and_then(|(regex, aliases)| {
            let mut names = slow.capture_names().map(String::from).collect::<Vec<_>>();
            names.sort();
            build_fast(&regex, &aliases, &names)
        });
        Ok(Self { slow, fast })
    }

    /// Whether the fast path exists for this pattern (else every match runs fancy-regex).
    pub fn has_fast_path(&self) -> bool {
        self.fast.is_some()
    }

    /// The names this pattern captures, sorted.
    pub fn capture_names(&self) -> impl Iterator<Item = &str> {
        self.slow.capture_names()
    }

    /// The type given to a capture (`%{NUMBER:n:long}` gives `long`).
    pub fn extract(&self, name: &str) -> Option<&str> {
        self.slow.get_extract(name)
    }

    /// Matches: the fast path if it decides, else fancy-regex. Captures that took part, as
    /// (name, value) in `capture_names` order.
    pub fn captures<'t>(&'t self, text: &'t str) -> Option<Vec<(&'t str, &'t str)>> {
        match self.captures_fast(text) {
            FastOutcome::NoMatch => None,
            FastOutcome::Match(found) => Some(found),
            FastOutcome::Unknown => self.captures_fancy(text),
        }
    }

    /// The fancy-regex engine alone (the reference).
    pub fn captures_fancy<'t>(&'t self, text: &'t str) -> Option<Vec<(&'t str, &'t str)>> {
        let m = self.slow.match_against(text)?;
        // grok's `get` ties the value to the match object; each value is a slice of `text`,
        // so it is taken again from `text` at the same offset.
        let base = text.as_ptr() as usize;
        Some(
            self.slow
                .capture_names()
                .filter_map(|n| {
                    let v = m.get(n)?;
                    let start = (v.as_ptr() as usize).checked_sub(base)?;
                    Some((n, text.get(start..start + v.len())?))
                })
                .collect(),
        )
    }

    /// The fast path alone.
    pub fn captures_fast<'t>(&'t self, text: &'t str) -> FastOutcome<'t> {
        let Some(fast) = &self.fast else {
            return FastOutcome::Unknown;
        };
        let Some(m) = fast.re.search(&Input::new(text)) else {
            return FastOutcome::NoMatch;
        };
        let mut caps = fast.bt.create_captures();
        let within = Input::new(text).span(m.range()).anchored(Anchored::Yes);
        let mut cache = fast.caches.get();
        if fast.bt.try_captures(&mut cache, within, &mut caps).is_err() || !caps.is_match() {
            return FastOutcome::Unknown;
        }
        if !fast.checks.iter().all(|c| c.holds(text, &caps)) {
            return FastOutcome::Unknown;
        }
        let found = fast
            .names
            .iter()
            .filter_map(|(name, groups)| {
                let span = groups.iter().rev().find_map(|g| caps.get_group(*g))?;
                Some((name.as_str(), text.get(span.range())?))
            })
            .collect();
        FastOutcome::Match(found)
    }
}

impl Check {
    fn holds(&self, text: &str, caps: &Captures) -> bool {
        let span = |g: &usize| caps.get_group(*g);
        match self {
            Check::Absent { group } => span(group).is_none(),
            Check::Ahead { group, re, negate } => span(group).is_none_or(|s| {
                let at = Input::new(text).range(s.start..).anchored(Anchored::Yes);
                re.is_match(at) != *negate
            }),
            Check::Behind {
                group,
                re,
                chars,
                negate,
            } => span(group).is_none_or(|s| {
                let found = back_chars(text, s.start, *chars).is_some_and(|from| {
                    let at = Input::new(text)
                        .range(from..s.start)
                        .anchored(Anchored::Yes);
                    // The body has a fixed length, so any match of it ends at the position.
                    re.search(&at).is_some_and(|m| m.end() == s.start)
                });
                found != *negate
            }),
            Check::Atomic { group, re } => span(group).is_none_or(|s| {
                let at = Input::new(text).range(s.start..).anchored(Anchored::Yes);
                re.search(&at).is_some_and(|m| m.end() == s.end)
            }),
        }
    }
}

/// The byte offset `chars` characters before `pos`, if there are that many.
fn back_chars(text: &str, pos: usize, chars: usize) -> Option<usize> {
    let before = text.get(..pos)?;
    match chars {
        0 => Some(pos),
        n => before.char_indices().rev().nth(n - 1).map(|(i, _)| i),
    }
}

/// Expands grok references as the grok crate does with `with_alias_only`: a named reference
/// becomes group `_n_<i>` (in order), an unnamed one a non-capturing group. Returns the regex
/// and the map `_n_<i>` -> capture name (`name`, `name[1]` for the second use, ...).
fn expand(
    pattern: &str,
    defs: &BTreeMap<String, String>,
) -> Result<(String, HashMap<String, String>), String> {
    struct State {
        out: String,
        index: usize,
        aliases: HashMap<String, String>,
        uses: HashMap<String, usize>,
        sentinels: usize,
    }
    fn walk(
        pattern: &str,
        defs: &BTreeMap<String, String>,
        st: &mut State,
        depth: usize,
    ) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("recursion too deep".into());
        }
        // `%{NAME=definition}` defines NAME for the rest of this level.
        let mut local: BTreeMap<&str, &str> = BTreeMap::new();
        for c in grok_split(pattern) {
            match c {
                GrokComponent::RegularExpression { string, .. } => st.out.push_str(string),
                GrokComponent::PatternError(e) => return Err(format!("{e:?}")),
                GrokComponent::GrokPattern {
                    name,
                    alias,
                    definition,
                    ..
                } => {
                    let body = if !definition.is_empty() {
                        local.insert(name, definition);
                        definition
                    } else if let Some(d) = local.get(name) {
                        d
                    } else {
                        defs.get(name)
                            .ok_or_else(|| format!("no pattern {name}"))?
                            .as_str()
                    };
                    if alias.is_empty() {
                        st.out.push_str("(?:");
                    } else {
                        let group = format!("_n_{}", st.index);
                        st.index += 1;
                        let count = st.uses.entry(alias.to_string()).or_insert(0);
                        let key = match *count {
                            0 => alias.to_string(),
                            n => format!("{alias}[{n}]"),
                        };
                        *count += 1;
                        st.out.push_str("(?<");
                        st.out.push_str(&group);
                        st.out.push('>');
                        st.aliases.insert(group, key);
                    }
                    match SUPERSETS.iter().find(|(n, _)| *n == name) {
                        Some((_, superset))
                            if definition.is_empty()
                                && !local.contains_key(name)
                                && is_standard(name, body) =>
                        {
                            st.out
                                .push_str(&format!("(?<{SENTINEL}{}>){superset}", st.sentinels));
                            st.sentinels += 1;
                        }
                        _ => walk(body, defs, st, depth + 1)?,
                    }
                    st.out.push(')');
                }
            }
        }
        Ok(())
    }
    let mut st = State {
        out: String::with_capacity(pattern.len() * 4),
        index: 0,
        aliases: HashMap::new(),
        uses: HashMap::new(),
        sentinels: 0,
    };
    walk(pattern, defs, &mut st, 0)?;
    Ok((st.out, st.aliases))
}

/// Whether `body` is the standard library's definition of `name` (not a fileset's own).
fn is_standard(name: &str, body: &str) -> bool {
    // The grok crate's map keeps the last of a name's definitions in its sorted list.
    grok::patterns()
        .iter()
        .rev()
        .find(|(n, _)| *n == name)
        .is_some_and(|(_, d)| *d == body)
}

/// Builds the relaxed regex and its checks; `None` when the pattern needs the fallback always.
fn build_fast(regex: &str, aliases: &HashMap<String, String>, names: &[String]) -> Option<Fast> {
    let tree = Expr::parse_tree(regex).ok()?;
    let mut group_names: HashMap<usize, String> = HashMap::new();
    for (name, i) in &tree.named_groups {
        group_names.insert(*i, aliases.get(name).unwrap_or(name).clone());
    }
    let mut b = Relaxer {
        out: String::with_capacity(regex.len() * 2),
        groups: 0,
        orig: 0,
        group_names,
        named: HashMap::new(),
        checks: Vec::new(),
    };
    b.emit(&tree.expr, Mode::Checked).ok()?;
    if b.out.len() > MAX_RELAXED_LEN {
        return None;
    }
    let re = meta::Regex::new(&b.out).ok()?;
    let bt = BoundedBacktracker::builder()
        .configure(backtrack::Config::new().visited_capacity(VISITED_BYTES))
        .build(&b.out)
        .ok()?;
    let for_cache = bt.clone();
    let caches: Pool<backtrack::Cache, CacheFn> =
        Pool::new(Box::new(move || for_cache.create_cache()));
    if re.group_info().group_len(regex_automata::PatternID::ZERO) != b.groups + 1 {
        return None;
    }
    let names = names
        .iter()
        .map(|n| (n.clone(), b.named.remove(n).unwrap_or_default()))
        .collect();
    for (name, groups) in &b.named {
        if name.starts_with(SENTINEL) {
            b.checks
                .extend(groups.iter().map(|g| Check::Absent { group: *g }));
        }
    }
    Some(Fast {
        re,
        bt,
        caches,
        checks: b.checks,
        names,
    })
}

/// Why a construct cannot be relaxed.
struct Unsupported;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// The main pattern: assertions become checked groups, named groups capture.
    Checked,
    /// Plain `regex` syntax for a check's own regex: no assertions, no captures allowed.
    Plain,
    /// Beyond the unrolled iterations (only reached with the sentinel, which sends the match
    /// to the fallback): assertions dropped, nothing captured.
    Dropped,
}

struct Relaxer {
    out: String,
    /// Capture groups emitted so far (group 0 is the whole match).
    groups: usize,
    /// The next group number of the original pattern (numbered in order of `(`).
    orig: usize,
    /// Original group number -> grok capture name.
    group_names: HashMap<usize, String>,
    /// Grok capture name -> emitted groups.
    named: HashMap<String, Vec<usize>>,
    checks: Vec<Check>,
}

impl Relaxer {
    fn new_group(&mut self) -> usize {
        self.out.push('(');
        self.groups += 1;
        self.groups
    }

    /// The plain regex of a check's body.
    fn plain(&mut self, e: &Expr) -> Result<meta::Regex, Unsupported> {
        let mut sub = Relaxer {
            out: String::new(),
            groups: 0,
            orig: self.orig,
            group_names: self.group_names.clone(),
            named: HashMap::new(),
            checks: Vec::new(),
        };
        sub.emit(e, Mode::Plain)?;
        // The body's groups are groups of the original too.
        self.orig = sub.orig;
        meta::Regex::new(&sub.out).map_err(|_| Unsupported)
    }

    fn emit(&mut self, e: &Expr, mode: Mode) -> Result<(), Unsupported> {
        match e {
            Expr::Empty => {}
            Expr::Any { newline } => self.out.push_str(if *newline { "(?s:.)" } else { "." }),
            Expr::Literal { val, casei } => {
                self.out.push_str(if *casei { "(?i:" } else { "(?:" });
                self.out.push_str(&regex::escape(val));
                self.out.push(')');
            }
            Expr::Assertion(a) => self.out.push_str(match a {
                Assertion::StartText => r"\A",
                Assertion::EndText => r"\z",
                Assertion::StartLine { crlf: false } => "(?m:^)",
                Assertion::EndLine { crlf: false } => "(?m:$)",
                Assertion::StartLine { crlf: true } => "(?Rm:^)",
                Assertion::EndLine { crlf: true } => "(?Rm:$)",
                Assertion::LeftWordBoundary => r"\b{start}",
                Assertion::RightWordBoundary => r"\b{end}",
                Assertion::WordBoundary => r"\b",
                Assertion::NotWordBoundary => r"\B",
            }),
            Expr::Concat(children) => {
                self.out.push_str("(?:");
                for c in children {
                    self.emit(c, mode)?;
                }
                self.out.push(')');
            }
            Expr::Alt(children) => {
                self.out.push_str("(?:");
                for (i, c) in children.iter().enumerate() {
                    if i > 0 {
                        self.out.push('|');
                    }
                    self.emit(c, mode)?;
                }
                self.out.push(')');
            }
            Expr::Group(child) => {
                self.orig += 1;
                let name = self.group_names.get(&self.orig).cloned();
                match (name, mode) {
                    (Some(name), Mode::Checked) => {
                        let g = self.new_group();
                        self.named.entry(name).or_default().push(g);
                    }
                    (Some(_), Mode::Plain) => return Err(Unsupported),
                    _ => self.out.push_str("(?:"),
                }
                self.emit(child, mode)?;
                self.out.push(')');
            }
            Expr::Delegate { inner, casei, .. } => {
                self.out.push_str(if *casei { "(?i:" } else { "(?:" });
                self.out.push_str(inner);
                self.out.push(')');
            }
            Expr::LookAround(body, kind) => match mode {
                Mode::Plain => return Err(Unsupported),
                Mode::Dropped => {
                    // Keeps the numbering of any group in the body.
                    let _ = self.plain(body)?;
                }
                Mode::Checked => {
                    let re = self.plain(body)?;
                    let group = self.new_group();
                    self.out.push(')');
                    self.checks.push(match kind {
                        LookAround::LookAhead | LookAround::LookAheadNeg => Check::Ahead {
                            group,
                            re,
                            negate: *kind == LookAround::LookAheadNeg,
                        },
                        LookAround::LookBehind | LookAround::LookBehindNeg => Check::Behind {
                            group,
                            re,
                            chars: fixed_chars(body).ok_or(Unsupported)?,
                            negate: *kind == LookAround::LookBehindNeg,
                        },
                    });
                }
            },
            Expr::AtomicGroup(body) => match mode {
                Mode::Plain => return Err(Unsupported),
                Mode::Dropped => {
                    self.out.push_str("(?:");
                    self.emit(body, mode)?;
                    self.out.push(')');
                }
                Mode::Checked => {
                    let start = self.orig;
                    let re = self.plain(body)?;
                    self.orig = start;
                    let group = self.new_group();
                    self.emit(body, mode)?;
                    self.out.push(')');
                    self.checks.push(Check::Atomic { group, re });
                }
            },
            Expr::Repeat {
                child,
                lo,
                hi,
                greedy,
            } => {
                if mode == Mode::Checked && has_assertion(child) {
                    self.unroll(child, *lo, *hi, *greedy)?;
                } else {
                    self.out.push_str("(?:");
                    self.emit(child, mode)?;
                    self.out.push(')');
                    push_quantifier(&mut self.out, *lo, *hi, *greedy);
                }
            }
            Expr::Backref(_)
            | Expr::KeepOut
            | Expr::ContinueFromPreviousMatchEnd
            | Expr::BackrefExistsCondition(_)
            | Expr::Conditional { .. } => return Err(Unsupported),
        }
        if self.out.len() > MAX_RELAXED_LEN {
            return Err(Unsupported);
        }
        Ok(())
    }

    /// `child{lo,hi}` with each of the first `UNROLL` iterations written out (own groups, own
    /// checks), then a sentinel group before any further iteration.
    fn unroll(
        &mut self,
        child: &Expr,
        lo: usize,
        hi: usize,
        greedy: bool,
    ) -> Result<(), Unsupported> {
        // An iteration that can match nothing is where backtrackers and automata differ.
        if lo > UNROLL.max(2) || can_be_empty(child) {
            return Err(Unsupported);
        }
        let start = self.orig;
        let copy = |me: &mut Self, mode: Mode| -> Result<(), Unsupported> {
            me.orig = start;
            me.emit(child, mode)
        };
        self.out.push_str("(?:");
        for _ in 0..lo {
            copy(self, Mode::Checked)?;
        }
        let lazy = if greedy { ")?" } else { ")??" };
        // `X{0,k}` is `(?:X X{0,k-1})?` with the same priorities (greedy or lazy).
        let mut left = hi.saturating_sub(lo);
        let mut open = 0;
        // Small bounded repetitions (`?`, `YEAR`'s `{1,2}`) are written out whole.
        let budget = if left <= 2 { left } else { UNROLL };
        while left > 0 && open < budget {
            self.out.push_str("(?:");
            copy(self, Mode::Checked)?;
            open += 1;
            if left != usize::MAX {
                left -= 1;
            }
        }
        if left > 0 {
            self.out.push_str("(?:");
            let group = self.new_group();
            self.out.push(')');
            self.checks.push(Check::Absent { group });
            self.out.push_str("(?:");
            copy(self, Mode::Dropped)?;
            self.out.push(')');
            push_quantifier(&mut self.out, 1, left, greedy);
            self.out.push_str(lazy);
        }
        for _ in 0..open {
            self.out.push_str(lazy);
        }
        self.out.push(')');
        self.orig = start + count_groups(child);
        Ok(())
    }
}

/// The capture groups in an expression (look-around bodies included).
fn count_groups(e: &Expr) -> usize {
    match e {
        Expr::Group(c) => 1 + count_groups(c),
        Expr::Concat(c) | Expr::Alt(c) => c.iter().map(count_groups).sum(),
        Expr::LookAround(c, _) | Expr::AtomicGroup(c) | Expr::Repeat { child: c, .. } => {
            count_groups(c)
        }
        Expr::Conditional {
            condition,
            true_branch,
            false_branch,
        } => count_groups(condition) + count_groups(true_branch) + count_groups(false_branch),
        _ => 0,
    }
}

fn push_quantifier(out: &mut String, lo: usize, hi: usize, greedy: bool) {
    match (lo, hi) {
        (0, 1) => out.push('?'),
        (0, usize::MAX) => out.push('*'),
        (1, usize::MAX) => out.push('+'),
        (lo, usize::MAX) => out.push_str(&format!("{{{lo},}}")),
        (lo, hi) if lo == hi => out.push_str(&format!("{{{lo}}}")),
        (lo, hi) => out.push_str(&format!("{{{lo},{hi}}}")),
    }
    if !greedy {
        out.push('?');
    }
}

/// Whether the expression contains a look-around or an atomic group.
fn has_assertion(e: &Expr) -> bool {
    match e {
        Expr::LookAround(..) | Expr::AtomicGroup(_) => true,
        Expr::Concat(c) | Expr::Alt(c) => c.iter().any(has_assertion),
        Expr::Group(c) | Expr::Repeat { child: c, .. } => has_assertion(c),
        Expr::Conditional {
            condition,
            true_branch,
            false_branch,
        } => [condition, true_branch, false_branch]
            .iter()
            .any(|c| has_assertion(c)),
        _ => false,
    }
}

/// Whether the expression may match the empty string (conservatively: yes when unsure).
fn can_be_empty(e: &Expr) -> bool {
    match e {
        Expr::Literal { val, .. } => val.is_empty(),
        Expr::Any { .. } => false,
        Expr::Delegate { size, .. } => *size == 0,
        Expr::Concat(c) => c.iter().all(can_be_empty),
        Expr::Alt(c) => c.iter().any(can_be_empty),
        Expr::Group(c) | Expr::AtomicGroup(c) => can_be_empty(c),
        Expr::Repeat { child, lo, .. } => *lo == 0 || can_be_empty(child),
        _ => true,
    }
}

/// The number of characters every match of the expression has, if fixed.
fn fixed_chars(e: &Expr) -> Option<usize> {
    match e {
        Expr::Empty | Expr::Assertion(_) | Expr::LookAround(..) => Some(0),
        Expr::Literal { val, .. } => Some(val.chars().count()),
        Expr::Any { .. } => Some(1),
        Expr::Delegate { size, .. } => Some(*size),
        Expr::Concat(c) => c.iter().map(fixed_chars).sum(),
        Expr::Alt(c) => {
            let sizes = c.iter().map(fixed_chars).collect::<Option<Vec<_>>>()?;
            let first = *sizes.first()?;
            sizes.iter().all(|s| *s == first).then_some(first)
        }
        Expr::Group(c) | Expr::AtomicGroup(c) => fixed_chars(c),
        Expr::Repeat { child, lo, hi, .. } if lo == hi => fixed_chars(child)?.checked_mul(*lo),
        _ => None,
    }
}
