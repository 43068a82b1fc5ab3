//! Full-text search: the query language every search backend answers, the
//! tokenizer, BM25 scoring, and the inverted index kept in memory (the inmem
//! backend's, and exact search over any backend's rows).
//!
//! Query syntax (docs/sql.md, "Full-text search"): words are alternatives
//! (a row matches when it has any of them, and ranks higher with more and
//! rarer ones); `"a phrase"` matches the words in that order; `+word` or
//! `+"a phrase"` must match, `-word` must not; `pre*` matches every word that
//! starts with `pre`. Text is split into words at every character that is
//! not a letter or a digit, and lower-cased; there is no stemming and no
//! stop-word list, so every engine that follows these rules ranks alike.
//!
//! Scores are Okapi BM25 as Lucene (and so Elasticsearch and OpenSearch)
//! computes it: per word, `idf · tf / (tf + k1 · (1 − b + b · dl / avgdl))`
//! with `idf = ln(1 + (N − df + 0.5) / (df + 0.5))`, k1 = 1.2, b = 0.75, where
//! N counts the rows whose field holds at least one word. A phrase scores as
//! one word whose idf is the sum of its words' and whose tf is the number of
//! times the phrase occurs; a prefix scores a constant 1 (as Lucene's
//! constant-score prefix query). Over several fields, a row's score is the
//! sum of its per-field scores, each with that field's own statistics.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::error::ArrowError;

use crate::{ProviderError, Result};

pub const K1: f32 = 1.2;
pub const B: f32 = 0.75;
/// Clauses one query may hold (each row's clause matches are one 64-bit mask).
pub const MAX_CLAUSES: usize = 64;

/// The words of `text`: maximal runs of letters and digits, lower-cased.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Occur {
    /// An alternative: some alternative must match when no clause is required.
    Should,
    Must,
    MustNot,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher {
    Word(String),
    Phrase(Vec<String>),
    Prefix(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    pub occur: Occur,
    pub matcher: Matcher,
}

/// A parsed search query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextQuery {
    pub clauses: Vec<Clause>,
}

impl TextQuery {
    pub fn parse(text: &str) -> Result<TextQuery> {
        let bad = |m: String| ProviderError::Config(format!("search query '{text}': {m}"));
        let mut clauses = Vec::new();
        let mut rest = text.trim_start();
        while !rest.is_empty() {
            let occur = match rest.as_bytes()[0] {
                b'+' => Occur::Must,
                b'-' => Occur::MustNot,
                _ => Occur::Should,
            };
            if occur != Occur::Should {
                rest = &rest[1..];
            }
            if let Some(quoted) = rest.strip_prefix('"') {
                let end = quoted.find('"').ok_or_else(|| bad("a phrase is not closed by '\"'".into()))?;
                let phrase: Vec<String> = words(&quoted[..end]).collect();
                rest = &quoted[end + 1..];
                match phrase.len() {
                    0 => {}
                    1 => clauses.push(Clause { occur, matcher: Matcher::Word(phrase.into_iter().next().unwrap()) }),
                    _ => clauses.push(Clause { occur, matcher: Matcher::Phrase(phrase) }),
                }
            } else {
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                let token = &rest[..end];
                rest = &rest[end..];
                if let Some(stem) = token.strip_suffix('*') {
                    let stem: Vec<String> = words(stem).collect();
                    match stem.as_slice() {
                        [one] => clauses.push(Clause { occur, matcher: Matcher::Prefix(one.clone()) }),
                        _ => return Err(bad(format!("a prefix is one word followed by '*', got '{token}'"))),
                    }
                } else {
                    let parts: Vec<String> = words(token).collect();
                    // `+state-of-the-art` must match as written: a phrase; a
                    // bare `e-mail` offers its words as alternatives.
                    match (occur, parts.len()) {
                        (_, 0) => {}
                        (Occur::Should, _) | (_, 1) => {
                            clauses.extend(parts.into_iter().map(|w| Clause { occur, matcher: Matcher::Word(w) }))
                        }
                        _ => clauses.push(Clause { occur, matcher: Matcher::Phrase(parts) }),
                    }
                }
            }
            rest = rest.trim_start();
        }
        if clauses.len() > MAX_CLAUSES {
            return Err(bad(format!("{} clauses, at most {MAX_CLAUSES}", clauses.len())));
        }
        if !clauses.iter().any(|c| c.occur != Occur::MustNot) {
            return Err(bad("no word to search for".into()));
        }
        Ok(TextQuery { clauses })
    }

    fn masks(&self) -> (u64, u64, u64) {
        let (mut should, mut must, mut not) = (0u64, 0u64, 0u64);
        for (i, c) in self.clauses.iter().enumerate() {
            let bit = 1u64 << i;
            match c.occur {
                Occur::Should => should |= bit,
                Occur::Must => must |= bit,
                Occur::MustNot => not |= bit,
            }
        }
        (should, must, not)
    }

    /// Whether a row whose matching clauses are `mask` is a result.
    pub fn accepts(&self, mask: u64) -> bool {
        let (should, must, not) = self.masks();
        mask & not == 0 && mask & must == must && (must != 0 || mask & should != 0)
    }
}

impl std::fmt::Display for TextQuery {
    /// The query in its canonical form (words as indexed), as EXPLAIN shows it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, c) in self.clauses.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            match c.occur {
                Occur::Should => {}
                Occur::Must => f.write_str("+")?,
                Occur::MustNot => f.write_str("-")?,
            }
            match &c.matcher {
                Matcher::Word(w) => f.write_str(w)?,
                Matcher::Phrase(p) => write!(f, "\"{}\"", p.join(" "))?,
                Matcher::Prefix(p) => write!(f, "{p}*")?,
            }
        }
        Ok(())
    }
}

/// What a text search asks of a backend.
#[derive(Debug, Clone)]
pub struct TextRequest {
    /// The fields searched; a row's score is the sum over them.
    pub columns: Vec<String>,
    pub query: TextQuery,
    pub k: usize,
    /// Only these object_ids are candidates (a filter applied before ranking;
    /// the statistics stay those of every row).
    pub ids: Option<Arc<Vec<String>>>,
}

/// One ranked row: object_id and BM25 score, larger is better.
pub type Scored = (String, f32);

/// BM25's idf of a word held by `df` of `n` documents.
pub fn idf(n: u32, df: u32) -> f32 {
    (1.0 + (n as f32 - df as f32 + 0.5) / (df as f32 + 0.5)).ln()
}

/// BM25's term-frequency part, for a document of `dl` words.
pub fn tf_norm(tf: f32, dl: f32, avgdl: f32) -> f32 {
    tf / (tf + K1 * (1.0 - B + B * dl / avgdl))
}

#[derive(Debug, Clone)]
struct Doc {
    id: String,
    /// Word ids in order (phrases are checked, and removals undone, from it).
    words: Vec<u32>,
    live: bool,
}

/// An inverted index over one field: word → (document, count), with the
/// statistics BM25 needs kept up to date as documents come and go.
#[derive(Debug, Clone, Default)]
pub struct TextIndex {
    /// Word → word id (a prefix query walks all words: a hash lookup per
    /// written word is what writes pay, and they come far more often).
    dictionary: HashMap<String, u32>,
    /// By word id: (document, occurrences), documents ascending; dead
    /// documents stay until the next compaction.
    postings: Vec<Vec<(u32, u32)>>,
    /// By word id: the word's positions in each of its postings' documents,
    /// one run of `occurrences` ascending positions per posting, in posting
    /// order (a walk along the postings finds a document's run by adding up
    /// the occurrences it passes). Phrases are matched from these.
    positions: Vec<Vec<u32>>,
    /// By word id: live documents holding it.
    df: Vec<u32>,
    docs: Vec<Doc>,
    by_id: HashMap<String, u32>,
    total_words: u64,
    dead: usize,
}

impl TextIndex {
    /// Live documents (rows whose field holds at least one word).
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn contains(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// Index `text` as the document of `id`, replacing what it held; NULL or
    /// text without words removes it.
    pub fn put(&mut self, id: &str, text: Option<&str>) {
        self.remove(id);
        let Some(text) = text else { return };
        let mut ids = Vec::new();
        for w in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
            // As `words`, without allocating for words already lower-case and known.
            let lower: std::borrow::Cow<str> = if w.chars().any(char::is_uppercase) { w.to_lowercase().into() } else { w.into() };
            let wid = match self.dictionary.get(lower.as_ref()) {
                Some(wid) => *wid,
                None => {
                    let wid = self.postings.len() as u32;
                    self.dictionary.insert(lower.into_owned(), wid);
                    self.postings.push(Vec::new());
                    self.positions.push(Vec::new());
                    self.df.push(0);
                    wid
                }
            };
            ids.push(wid);
        }
        if ids.is_empty() {
            return;
        }
        let doc = self.docs.len() as u32;
        // (word, position), by word and then position.
        let mut counted: Vec<(u32, u32)> = ids.iter().enumerate().map(|(at, w)| (*w, at as u32)).collect();
        counted.sort_unstable();
        for run in counted.chunk_by(|a, b| a.0 == b.0) {
            let w = run[0].0 as usize;
            self.postings[w].push((doc, run.len() as u32));
            self.positions[w].extend(run.iter().map(|(_, at)| *at));
            self.df[w] += 1;
        }
        self.total_words += ids.len() as u64;
        self.by_id.insert(id.to_string(), doc);
        self.docs.push(Doc { id: id.to_string(), words: ids, live: true });
    }

    /// [`TextIndex::put`] of every row of `batch` (`object_id` first) from
    /// its `column`; a batch without the column changes nothing.
    pub fn put_column(&mut self, batch: &RecordBatch, column: &str) -> std::result::Result<(), ArrowError> {
        let Some(values) = batch.column_by_name(column) else { return Ok(()) };
        let values = datafusion::arrow::compute::cast(values, &DataType::Utf8)?;
        let (ids, values) = (batch.column(0).as_string::<i32>(), values.as_string::<i32>());
        for r in (0..batch.num_rows()).filter(|r| ids.is_valid(*r)) {
            self.put(ids.value(r), values.is_valid(r).then(|| values.value(r)));
        }
        Ok(())
    }

    pub fn remove(&mut self, id: &str) {
        let Some(doc) = self.by_id.remove(id) else { return };
        let d = &mut self.docs[doc as usize];
        d.live = false;
        let mut distinct = d.words.clone();
        distinct.sort_unstable();
        distinct.dedup();
        for w in distinct {
            self.df[w as usize] -= 1;
        }
        self.total_words -= d.words.len() as u64;
        self.dead += 1;
        if self.dead > 1024 && self.dead > self.by_id.len() {
            self.compact();
        }
    }

    /// Rebuild without the dead documents.
    fn compact(&mut self) {
        let live: Vec<Doc> = std::mem::take(&mut self.docs).into_iter().filter(|d| d.live).collect();
        let words: Vec<&String> = {
            let mut by_id = vec![None; self.postings.len()];
            for (w, id) in &self.dictionary {
                by_id[*id as usize] = Some(w);
            }
            by_id.into_iter().map(|w| w.expect("every word id has a word")).collect()
        };
        let mut fresh = TextIndex::default();
        for d in &live {
            let text: Vec<&str> = d.words.iter().map(|w| words[*w as usize].as_str()).collect();
            fresh.put(&d.id, Some(&text.join(" ")));
        }
        *self = fresh;
    }

    /// Every document holding the words `wids` in that order, with how often
    /// (`found(doc, freq)`): the words' postings are walked together, and only
    /// in a document every one of them holds are their positions compared.
    fn phrase_matches(&self, wids: &[u32], mut found: impl FnMut(u32, usize)) {
        // Per word of the phrase: its next posting, and where that posting's
        // positions start.
        let mut at = vec![(0usize, 0usize); wids.len()];
        let lists: Vec<&[(u32, u32)]> = wids.iter().map(|w| self.postings[*w as usize].as_slice()).collect();
        let rarest = (0..wids.len()).min_by_key(|j| lists[*j].len()).expect("a phrase has words");
        for &(doc, _) in lists[rarest] {
            let mut all = true;
            for (j, list) in lists.iter().enumerate() {
                let (i, offset) = &mut at[j];
                while *i < list.len() && list[*i].0 < doc {
                    *offset += list[*i].1 as usize;
                    *i += 1;
                }
                if *i == list.len() {
                    return;
                }
                all &= list[*i].0 == doc;
            }
            if !all {
                continue;
            }
            let runs: Vec<&[u32]> = (0..wids.len())
                .map(|j| {
                    let (i, offset) = at[j];
                    &self.positions[wids[j] as usize][offset..offset + lists[j][i].1 as usize]
                })
                .collect();
            let follows =
                |start: u32| runs.iter().enumerate().skip(1).all(|(j, run)| run.binary_search(&(start + j as u32)).is_ok());
            let freq = runs[0].iter().filter(|start| follows(**start)).count();
            if freq > 0 {
                found(doc, freq);
            }
        }
    }

    fn avgdl(&self) -> f32 {
        if self.by_id.is_empty() { 1.0 } else { self.total_words as f32 / self.by_id.len() as f32 }
    }

    /// Per matching document: which clauses it matched (bit i for clause i)
    /// and its score for them in this field. MustNot clauses are matched but
    /// add nothing to the score.
    fn matches(&self, query: &TextQuery, allowed: Option<&HashSet<&str>>, out: &mut HashMap<u32, (u64, f32)>) {
        let n = self.by_id.len() as u32;
        let avgdl = self.avgdl();
        let ok = |doc: u32| {
            let d = &self.docs[doc as usize];
            d.live && allowed.is_none_or(|a| a.contains(d.id.as_str()))
        };
        for (i, clause) in query.clauses.iter().enumerate() {
            let bit = 1u64 << i;
            let scored = clause.occur != Occur::MustNot;
            match &clause.matcher {
                Matcher::Word(w) => {
                    let Some(&wid) = self.dictionary.get(w) else { continue };
                    let idf = idf(n, self.df[wid as usize]);
                    for &(doc, tf) in &self.postings[wid as usize] {
                        if ok(doc) {
                            let dl = self.docs[doc as usize].words.len() as f32;
                            let e = out.entry(doc).or_insert((0, 0.0));
                            e.0 |= bit;
                            if scored {
                                e.1 += idf * tf_norm(tf as f32, dl, avgdl);
                            }
                        }
                    }
                }
                Matcher::Phrase(p) => {
                    let Some(wids) = p.iter().map(|w| self.dictionary.get(w).copied()).collect::<Option<Vec<u32>>>() else {
                        continue;
                    };
                    let idf: f32 = wids.iter().map(|w| idf(n, self.df[*w as usize])).sum();
                    self.phrase_matches(&wids, |doc, freq| {
                        if !ok(doc) {
                            return;
                        }
                        let e = out.entry(doc).or_insert((0, 0.0));
                        e.0 |= bit;
                        if scored {
                            e.1 += idf * tf_norm(freq as f32, self.docs[doc as usize].words.len() as f32, avgdl);
                        }
                    });
                }
                Matcher::Prefix(p) => {
                    let mut seen = HashSet::new();
                    for (_, &wid) in self.dictionary.iter().filter(|(w, _)| w.starts_with(p.as_str())) {
                        for &(doc, _) in &self.postings[wid as usize] {
                            if ok(doc) && seen.insert(doc) {
                                let e = out.entry(doc).or_insert((0, 0.0));
                                e.0 |= bit;
                                if scored {
                                    e.1 += 1.0;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The `k` best rows of a search over `indexes` (one per requested field),
/// best first; ties go to the smaller object_id, so every engine that scores
/// alike also orders alike.
pub fn search(indexes: &[&TextIndex], query: &TextQuery, k: usize, ids: Option<&[String]>) -> Vec<Scored> {
    let allowed: Option<HashSet<&str>> = ids.map(|ids| ids.iter().map(String::as_str).collect());
    if let [index] = indexes {
        // One field: rank document numbers, and name only the k kept.
        let mut matched = HashMap::new();
        index.matches(query, allowed.as_ref(), &mut matched);
        let mut hits: Vec<(u32, f32)> =
            matched.into_iter().filter(|(_, (mask, _))| query.accepts(*mask)).map(|(doc, (_, s))| (doc, s)).collect();
        let id = |doc: u32| index.docs[doc as usize].id.as_str();
        let by_rank = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then_with(|| id(a.0).cmp(id(b.0)));
        if hits.len() > k {
            hits.select_nth_unstable_by(k, by_rank);
            hits.truncate(k);
        }
        hits.sort_by(by_rank);
        return hits.into_iter().map(|(doc, s)| (id(doc).to_string(), s)).collect();
    }
    let mut by_id: HashMap<&str, (u64, f32)> = HashMap::new();
    let mut per_field = HashMap::new();
    for index in indexes {
        per_field.clear();
        index.matches(query, allowed.as_ref(), &mut per_field);
        for (doc, (mask, score)) in per_field.drain() {
            let e = by_id.entry(index.docs[doc as usize].id.as_str()).or_insert((0, 0.0));
            e.0 |= mask;
            e.1 += score;
        }
    }
    let mut hits: Vec<Scored> =
        by_id.into_iter().filter(|(_, (mask, _))| query.accepts(*mask)).map(|(id, (_, s))| (id.to_string(), s)).collect();
    rank(&mut hits, k);
    hits
}

/// Best first (ties to the smaller object_id), at most `k`.
pub fn rank(hits: &mut Vec<Scored>, k: usize) {
    let by_rank = |a: &Scored, b: &Scored| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0));
    if hits.len() > k {
        hits.select_nth_unstable_by(k, by_rank);
        hits.truncate(k);
    }
    hits.sort_by(by_rank);
}

/// Indexes of `columns` built from batches holding `object_id` first.
pub fn index_batches(batches: &[RecordBatch], columns: &[String]) -> Vec<TextIndex> {
    columns
        .iter()
        .map(|c| {
            let mut index = TextIndex::default();
            for b in batches {
                // A column that does not cast to text indexes nothing.
                let _ = index.put_column(b, c);
            }
            index
        })
        .collect()
}

/// Exact search over rows scanned from any backend (`object_id` first, then
/// the request's columns): the default of [`crate::Backend::text_search`].
pub fn exact_search(batches: &[RecordBatch], request: &TextRequest) -> Vec<Scored> {
    let indexes = index_batches(batches, &request.columns);
    let refs: Vec<&TextIndex> = indexes.iter().collect();
    search(&refs, &request.query, request.k, request.ids.as_deref().map(Vec::as_slice))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> TextQuery {
        TextQuery::parse(text).unwrap()
    }

    #[test]
    fn the_query_language_parses_to_clauses() {
        assert_eq!(q(r#"Rust +"query engine" -java data*"#).to_string(), r#"rust +"query engine" -java data*"#);
        assert_eq!(q("e-mail").to_string(), "e mail");
        assert_eq!(q("+state-of-the-art").to_string(), r#"+"state of the art""#);
        assert!(TextQuery::parse("-only -negative").unwrap_err().to_string().contains("no word"));
        assert!(TextQuery::parse("\"open").unwrap_err().to_string().contains("not closed"));
        assert!(TextQuery::parse("a-b*").unwrap_err().to_string().contains("one word"));
    }

    #[test]
    fn bm25_ranks_rarer_and_denser_matches_higher() {
        let mut ix = TextIndex::default();
        ix.put("a", Some("the quick brown fox"));
        ix.put("b", Some("the lazy dog"));
        ix.put("c", Some("the quick dog jumps over the quick fox"));
        let hits = search(&[&ix], &q("quick"), 10, None);
        assert_eq!(hits.iter().map(|h| h.0.as_str()).collect::<Vec<_>>(), ["c", "a"]);
        // By hand: N=3, df=2, avgdl=15/3.
        let idf = (1.0f32 + (3.0 - 2.0 + 0.5) / 2.5).ln();
        let a = idf * 1.0 / (1.0 + 1.2 * (0.25 + 0.75 * 4.0 / 5.0));
        assert!((hits[1].1 - a).abs() < 1e-6, "{hits:?}");
        assert_eq!(search(&[&ix], &q("\"quick fox\""), 10, None)[0].0, "c");
        assert_eq!(search(&[&ix], &q("+dog -lazy"), 10, None).len(), 1);
        assert_eq!(search(&[&ix], &q("qu*"), 10, None).len(), 2);
        ix.put("c", None);
        ix.remove("a");
        assert!(search(&[&ix], &q("quick"), 10, None).is_empty());
        assert_eq!(ix.len(), 1);
    }

    /// Phrases are matched from positions: the words in that order, every
    /// occurrence counted, repeated words and replaced or removed documents
    /// included, the same as a scan of each document's words would find.
    #[test]
    fn phrases_match_from_positions_as_a_scan_would() {
        let mut ix = TextIndex::default();
        ix.put("a", Some("to be or not to be"));
        ix.put("b", Some("be to be to"));
        ix.put("c", Some("the the the end"));
        ix.put("d", Some("not to be"));
        ix.put("d", Some("to see"));
        ix.put("e", Some("to be"));
        ix.remove("e");
        let freq = |phrase: &str| -> Vec<(String, usize)> {
            let wids: Vec<u32> = phrase.split(' ').map(|w| ix.dictionary[w]).collect();
            let mut found = Vec::new();
            ix.phrase_matches(&wids, |doc, f| {
                if ix.docs[doc as usize].live {
                    found.push((ix.docs[doc as usize].id.clone(), f));
                }
            });
            // As a scan of every live document's words finds them.
            let scanned: Vec<(String, usize)> = ix
                .docs
                .iter()
                .filter(|d| d.live)
                .map(|d| (d.id.clone(), d.words.windows(wids.len()).filter(|w| *w == wids.as_slice()).count()))
                .filter(|(_, f)| *f > 0)
                .collect();
            assert_eq!(found, scanned, "{phrase}");
            found
        };
        let owned = |v: &[(&str, usize)]| v.iter().map(|(d, f)| (d.to_string(), *f)).collect::<Vec<_>>();
        assert_eq!(freq("to be"), owned(&[("a", 2), ("b", 1)]));
        assert_eq!(freq("be to"), owned(&[("b", 2)]));
        assert_eq!(freq("the the"), owned(&[("c", 2)]));
        assert_eq!(freq("the the the"), owned(&[("c", 1)]));
        assert_eq!(freq("not to be"), owned(&[("a", 1)]));
        assert_eq!(freq("to see"), owned(&[("d", 1)]));
        assert!(freq("be or not to be to").is_empty());
    }
}
